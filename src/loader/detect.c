/* detect.c - the loader's decisions that need no MPI: programs to stay out of, the MPI behind a version
 * string, and the file name of each runtime build. */
#include <errno.h>
#include <string.h>
#include <strings.h>

#include "detect.h"

/* Shells, MPI launchers and the daemons they start on each node: they never call MPI themselves, and a
 * runtime in them would only count their time as the program's. Namespace tools, which a runtime's
 * thread would break. */
static const char *const stay_out[] = {
    /* shells */
    "sh",
    "bash",
    "dash",
    "zsh",
    "ksh",
    "mksh",
    "csh",
    "tcsh",
    "fish",
    "busybox",
    /* launchers: Open MPI, MPICH (hydra), Intel MPI, Slurm */
    "mpirun",
    "mpiexec",
    "orterun",
    "orted",
    "prterun",
    "prted",
    "prte",
    "mpiexec.hydra",
    "mpiexec.gforker",
    "hydra_pmi_proxy",
    "hydra_nameserver",
    "hydra_persist",
    "pmi_proxy",
    "srun",
    "slurmstepd",
    /* remote starters the launchers use */
    "ssh",
    "rsh",
    /* namespace tools: setns(2) into a mount namespace and unshare(2) of a user namespace need a process
     * of one thread, and libjoule-rt.so's timer thread would make them fail (EINVAL); the program they
     * start gets the loader from the environment */
    "nsenter",
    "unshare",
    "bwrap",
};

bool jl_loader_stays_out(const char *name)
{
        if (!name || !*name)
                return false;
        for (size_t i = 0; i < sizeof(stay_out) / sizeof(stay_out[0]); i++) {
                size_t n = strlen(stay_out[i]);
                /* Debian's alternatives: mpirun.openmpi, mpiexec.mpich, mpirun.mpich, ... */
                if (strncmp(name, stay_out[i], n) == 0 && (name[n] == '\0' || name[n] == '.'))
                        return true;
        }
        return false;
}

static bool contains(const char *haystack, const char *needle)
{
        size_t n = strlen(needle);
        for (const char *p = haystack; *p; p++)
                if (strncasecmp(p, needle, n) == 0)
                        return true;
        return false;
}

int jl_loader_classify_mpi(const char *version, enum jl_rt_flavour *ret_flavour, const char **ret_label)
{
        static const struct {
                const char *needle;
                enum jl_rt_flavour flavour;
                const char *label;
        } known[] = {
            /* first match wins: Open MPI's string never names MPICH; Intel MPI's and MVAPICH's may */
            {"Open MPI", JL_RT_OMPI, "Open MPI"},    {"Intel(R) MPI", JL_RT_MPICH, "Intel MPI"},
            {"Intel MPI", JL_RT_MPICH, "Intel MPI"}, {"MVAPICH", JL_RT_MPICH, "MVAPICH"},
            {"MPICH", JL_RT_MPICH, "MPICH"},
        };

        if (!version)
                return -EINVAL;
        for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
                if (contains(version, known[i].needle)) {
                        *ret_flavour = known[i].flavour;
                        *ret_label = known[i].label;
                        return 0;
                }
        return -ENOENT;
}

const char *jl_loader_build_name(enum jl_rt_flavour flavour)
{
        switch (flavour) {
        case JL_RT_OMPI:
                return "libjoule-rt-ompi.so";
        case JL_RT_MPICH:
                return "libjoule-rt-mpich.so";
        case JL_RT_NONE:
                break;
        }
        return "libjoule-rt.so";
}
