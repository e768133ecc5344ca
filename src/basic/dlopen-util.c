/* dlopen-util.c - load an optional shared library once and resolve its symbols (see dlopen-util.h). */
#include "dlopen-util.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

static void set_ptr(void *ret_ptr, void *value)
{
        /* dlsym() returns void *; the destination is a function (or data) pointer of the same size. */
        memcpy(ret_ptr, &value, sizeof(value));
}

static int load_locked(jl_dlib *lib)
{
        dlerror(); /* clear a stale message */
        void *h = dlopen(lib->soname, RTLD_NOW | RTLD_LOCAL);
        if (!h) {
                const char *e = dlerror();
                snprintf(lib->error, sizeof(lib->error), "%s", e ? e : "cannot be loaded");
                return -ENOENT;
        }
        for (size_t i = 0; i < lib->n_syms; i++) {
                const jl_dlsym *s = &lib->syms[i];
                dlerror();
                void *p = dlsym(h, s->name);
                if (!p && !s->optional) {
                        const char *e = dlerror();
                        snprintf(lib->error, sizeof(lib->error), "%s", e ? e : s->name);
                        for (size_t k = 0; k < lib->n_syms; k++)
                                set_ptr(lib->syms[k].ret_ptr, NULL);
                        dlclose(h);
                        return -ENOSYS;
                }
                set_ptr(s->ret_ptr, p);
        }
        lib->handle = h;
        return 0;
}

int jl_dlib_load(jl_dlib *lib, char *reason, size_t reason_size)
{
        if (!lib || !lib->soname || (lib->n_syms > 0 && !lib->syms))
                return -EINVAL;
        pthread_mutex_lock(&lib->lock);
        if (!lib->tried) {
                lib->err = load_locked(lib);
                lib->tried = true;
        }
        int r = lib->err;
        if (r < 0 && reason && reason_size > 0)
                snprintf(reason, reason_size, "%s", lib->error);
        pthread_mutex_unlock(&lib->lock);
        return r;
}
