/* dlopen-util.h - optional shared libraries loaded at run time, only by the code path that needs them: the
 * library is opened with dlopen(RTLD_NOW | RTLD_LOCAL) once per process (thread-safe) and a list of its
 * symbols is resolved into the caller's function (or data) pointers. The outcome of the first attempt,
 * success or failure, is kept and returned to every later call; the library stays loaded until exit. */
#pragma once

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct {
        const char *name; /* the symbol: "PQexec" */
        void *ret_ptr;    /* the address of the pointer that receives it: &sym_PQexec */
        bool optional;    /* when missing: the pointer is set to NULL instead of failing the load */
} jl_dlsym;

typedef struct {
        const char *soname; /* "libpq.so.5" */
        const jl_dlsym *syms;
        size_t n_syms;
        /* private */
        pthread_mutex_t lock;
        bool tried;
        int err;
        char error[256];
        void *handle;
} jl_dlib;

#define JL_DLIB_INIT(so, sym_array)                                                                         \
        {                                                                                                   \
                .soname = (so), .syms = (sym_array), .n_syms = sizeof(sym_array) / sizeof((sym_array)[0]),  \
                .lock = PTHREAD_MUTEX_INITIALIZER,                                                          \
        }

/* Load lib and resolve its symbols (all or none: on failure every pointer is left NULL). Returns 0; -ENOENT
 * when the library cannot be loaded (not installed, not in the loader's path, or not loadable); -ENOSYS
 * when a symbol that is not optional is missing (a too old library). On failure the loader's words
 * (dlerror()) are copied into reason (may be NULL). */
int jl_dlib_load(jl_dlib *lib, char *reason, size_t reason_size);
