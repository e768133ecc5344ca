/* loader.c - libjoule-loader.so's start-up: preloaded into every process of a managed job, it decides
 * whether the program is one to stay out of (shells, MPI launchers), whether it is an MPI program and of
 * which MPI (MPI_Get_library_version, which MPI-3 allows before MPI_Init), and dlopens the matching runtime
 * build from joule's library directory ($JOULE_LIBDIR overrides it). Any failure leaves the program
 * running unmanaged, with one notice on stderr when JOULE_VERBOSE >= 1; nothing here may end the program.
 *
 * The loader is the program's boundary, so it prints its own notices (docs/runtime.md). */
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "detect.h"
#include "loader.h"
#include "parse.h"

#ifndef JOULE_RT_LIBDIR
#error "JOULE_RT_LIBDIR (joule's library directory) must be defined by the build"
#endif

/* MPI_MAX_LIBRARY_VERSION_STRING is 8192 in MPICH, 256 in Open MPI */
#define VERSION_MAX 8192

const struct jl_rt_ops *jl_loader_ops;
static const struct jl_rt_ops *loaded; /* kept for the destructor */
static int verbose;

__attribute__((format(printf, 2, 3))) static void notice(int level, const char *fmt, ...)
{
        char line[1024];
        va_list ap;
        int n;

        if (verbose < level)
                return;
        n = snprintf(line, sizeof(line), "joule: %s[%ld]: ", program_invocation_short_name, (long)getpid());
        if (n < 0 || (size_t)n >= sizeof(line))
                return;
        va_start(ap, fmt);
        vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
        va_end(ap);
        strcat(line, "\n");
        /* one write, so that the lines of many ranks do not interleave */
        if (write(STDERR_FILENO, line, strlen(line)) < 0)
                return;
}

static int parse_verbose(void)
{
        const char *s = getenv("JOULE_VERBOSE");
        uint64_t v;

        if (!s || !*s)
                return 0;
        if (parse_u64(s, &v) < 0 || v > 4) {
                verbose = 1;
                notice(1, "JOULE_VERBOSE=%s is not a number from 0 to 4; using 1", s);
                return 1;
        }
        return (int)v;
}

/* The executable's base name, from /proc/self/exe (launchers are often started by a link of another
 * name: mpirun.openmpi -> orterun). */
static const char *exe_name(char *buf, size_t size)
{
        ssize_t n = readlink("/proc/self/exe", buf, size - 1);
        if (n <= 0)
                return NULL;
        buf[n] = '\0';
        const char *slash = strrchr(buf, '/');
        return slash ? slash + 1 : buf;
}

/* The first line of a version string, for notices. */
static const char *first_line(char *version)
{
        version[strcspn(version, "\r\n")] = '\0';
        return version;
}

static int load_build(enum jl_rt_flavour flavour, const char *what)
{
        const char *dir = secure_getenv("JOULE_LIBDIR");
        const char *name = jl_loader_build_name(flavour);
        char path[PATH_MAX];
        void *handle;
        jl_rt_get_ops_fn get_ops;
        const struct jl_rt_ops *ops;
        int r;

        if (!dir || !*dir)
                dir = JOULE_RT_LIBDIR;
        if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, name) >= sizeof(path)) {
                notice(1, "%s: the runtime's path is too long; the program runs unmanaged", what);
                return -ENAMETOOLONG;
        }
        handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
        if (!handle) {
                notice(1, "%s: cannot load the runtime: %s; the program runs unmanaged", what, dlerror());
                return -ENOENT;
        }
        get_ops = (jl_rt_get_ops_fn)dlsym(handle, JL_RT_GET_OPS);
        ops = get_ops ? get_ops() : NULL;
        if (!ops || ops->abi_version != JL_RT_ABI_VERSION || ops->n_calls != JL_MPI_NCALLS ||
            ops->flavour != flavour) {
                notice(1, "%s: %s is not a joule runtime of this version; the program runs unmanaged", what,
                       path);
                dlclose(handle);
                return -EPROTO;
        }
        r = ops->init(verbose);
        if (r < 0) {
                notice(1, "%s: %s failed to start: %s; the program runs unmanaged", what, path,
                       strerror(-r));
                dlclose(handle);
                return r;
        }
        /* left loaded for the life of the process: hooks may run in any thread until exit */
        loaded = ops;
        __atomic_store_n(&jl_loader_ops, ops, __ATOMIC_RELEASE);
        notice(1, "%s: managed by %s", what, name);
        return 0;
}

__attribute__((constructor)) static void loader_start(void)
{
        char exe[PATH_MAX], version[VERSION_MAX + 1], what[160];
        const char *ename = exe_name(exe, sizeof(exe));
        int (*get_version)(char *, int *);
        enum jl_rt_flavour flavour;
        const char *label;
        int len = 0;

        verbose = parse_verbose();
        if (jl_loader_stays_out(program_invocation_short_name) || jl_loader_stays_out(ename)) {
                notice(2, "a shell or MPI launcher: not managed");
                return;
        }

        get_version = (int (*)(char *, int *))dlsym(RTLD_NEXT, "PMPI_Get_library_version");
        if (!get_version) {
                load_build(JL_RT_NONE, "not an MPI program");
                return;
        }
        memset(version, 0, sizeof(version));
        if (get_version(version, &len) != 0 || len < 0 || len > VERSION_MAX) {
                notice(1, "MPI_Get_library_version failed; the program runs unmanaged");
                return;
        }
        version[len] = '\0';
        if (jl_loader_classify_mpi(version, &flavour, &label) < 0) {
                notice(1, "an MPI joule does not know (\"%.200s\"); the program runs unmanaged",
                       first_line(version));
                return;
        }
        snprintf(what, sizeof(what), "%s program (%.100s)", label, first_line(version));
        load_build(flavour, what);
}

__attribute__((destructor)) static void loader_stop(void)
{
        if (!loaded)
                return;
        __atomic_store_n(&jl_loader_ops, NULL, __ATOMIC_RELEASE);
        loaded->fini();
        loaded = NULL;
}
