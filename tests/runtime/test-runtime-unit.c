/* test-runtime-unit.c - the loader's and the runtime's logic that needs no MPI: programs the loader stays
 * out of, MPI version strings (as the libraries print them) to runtime builds, the call table against the
 * MPI standard's argument counts, event ids (peer, size class, no buffer address), the counts and their
 * summary line. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "detect.h"
#include "event.h"
#include "runtime.h"
#include "tap.h"

static void test_stays_out(void)
{
        const char *out[] = {
            "bash",          "sh",      "dash",    "mpirun",          "mpirun.openmpi", "mpiexec.mpich",
            "mpiexec.hydra", "orterun", "orted",   "hydra_pmi_proxy", "prterun",        "srun",
            "slurmstepd",    "ssh",     "nsenter", "unshare",         "bwrap"};
        const char *in[] = {"a.out",   "mpi-pingpong", "bashful",   "shred", "sleep",
                            "python3", "orted2",       "mpirunner", "cat",   ""};
        for (size_t i = 0; i < sizeof(out) / sizeof(out[0]); i++)
                ok(jl_loader_stays_out(out[i]), "stays out of %s", out[i]);
        for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++)
                ok(!jl_loader_stays_out(in[i]), "manages '%s'", in[i]);
        ok(!jl_loader_stays_out(NULL), "a missing name is not a launcher");
}

static void test_classify(void)
{
        static const struct {
                const char *version;
                int ret;
                enum jl_rt_flavour flavour;
                const char *label;
        } cases[] = {
            /* as Debian 12's libraries print them */
            {"Open MPI v4.1.4, package: Debian OpenMPI, ident: 4.1.4, repo rev: v4.1.4, May 26, 2022", 0,
             JL_RT_OMPI, "Open MPI"},
            {"MPICH Version:\t4.0.2\nMPICH Release date:\tThu Apr  7 12:34:45 CDT 2022\nMPICH "
             "ABI:\t14:2:2\n",
             0, JL_RT_MPICH, "MPICH"},
            /* as Intel MPI and MVAPICH print theirs (MPICH's ABI) */
            {"Intel(R) MPI Library 2021.6 for Linux* OS\n", 0, JL_RT_MPICH, "Intel MPI"},
            {"MVAPICH2 Version      :\t2.3.7\nMVAPICH2 Release date :\tWed March 02 22:00:00 EST 2022\n", 0,
             JL_RT_MPICH, "MVAPICH"},
            {"Open MPI v5.0.0rc2, package: Open MPI builder", 0, JL_RT_OMPI, "Open MPI"},
            {"FooMPI 1.0", -ENOENT, JL_RT_NONE, NULL},
            {"", -ENOENT, JL_RT_NONE, NULL},
        };
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                enum jl_rt_flavour f = JL_RT_NONE;
                const char *label = NULL;
                int r = jl_loader_classify_mpi(cases[i].version, &f, &label);
                char what[16]; /* the strings hold tabs and newlines: name each by its first word */
                snprintf(what, sizeof(what), "%.*s", (int)strcspn(cases[i].version, " \t\n"),
                         cases[i].version);
                is_int(r, cases[i].ret, "version string %zu (%s): return", i, what);
                if (cases[i].ret == 0) {
                        is_int(f, cases[i].flavour, "version string %zu (%s): flavour", i, what);
                        is_str(label, cases[i].label, "version string %zu (%s): label", i, what);
                } else {
                        ok(label == NULL, "version string %zu (%s): nothing written", i, what);
                }
        }
        is_int(jl_loader_classify_mpi(NULL, &(enum jl_rt_flavour){0}, &(const char *){NULL}), -EINVAL,
               "NULL");
        is_str(jl_loader_build_name(JL_RT_OMPI), "libjoule-rt-ompi.so", "Open MPI build");
        is_str(jl_loader_build_name(JL_RT_MPICH), "libjoule-rt-mpich.so", "MPICH build");
        is_str(jl_loader_build_name(JL_RT_NONE), "libjoule-rt.so", "build without MPI");
}

static void test_table(void)
{
        /* a few arities as the MPI-3.1 standard gives them (C; Fortran adds ierr) */
        is_int(jl_mpi_call_info[JL_MPI_Send].c_arity, 6, "MPI_Send has 6 arguments");
        is_int(jl_mpi_call_info[JL_MPI_Send].f_arity, 7, "mpi_send has 7");
        is_int(jl_mpi_call_info[JL_MPI_Sendrecv].c_arity, 12, "MPI_Sendrecv has 12");
        is_int(jl_mpi_call_info[JL_MPI_Ialltoallw].c_arity, 10, "MPI_Ialltoallw has 10");
        is_int(jl_mpi_call_info[JL_MPI_Init].f_arity, 1, "mpi_init has only ierr");
        is_int(jl_mpi_call_info[JL_MPI_Finalize].c_arity, 0, "MPI_Finalize has none");
        is_str(jl_mpi_call_info[JL_MPI_Allreduce].name, "MPI_Allreduce", "names");
        bool sane = true;
        for (unsigned i = 0; i < JL_MPI_NCALLS; i++) {
                const struct jl_mpi_call_info *ci = &jl_mpi_call_info[i];
                /* positions inside the C arguments; count and type both or neither; ierr added in Fortran */
                if (ci->count >= ci->c_arity || ci->type >= ci->c_arity || ci->peer >= ci->c_arity ||
                    ci->inplace >= ci->c_arity || (ci->count < 0) != (ci->type < 0) || ci->c_arity > 13 ||
                    (i != JL_MPI_Init && i != JL_MPI_Init_thread && ci->f_arity != ci->c_arity + 1)) {
                        sane = false;
                        printf("# %s: bad entry\n", ci->name);
                }
        }
        ok(sane, "every entry of the call table is consistent");
        ok(JL_MPI_NCALLS < 256, "call ids fit the event's 8 bits");
}

static void test_event(void)
{
        is_int(jl_event_size_class(0), 0, "no data: class 0");
        is_int(jl_event_size_class(1), 1, "1 byte: class 1");
        is_int(jl_event_size_class(2), 2, "2 bytes: class 2");
        is_int(jl_event_size_class(3), 2, "3 bytes: class 2");
        is_int(jl_event_size_class(4096), 13, "4 KiB: class 13");
        is_int(jl_event_size_class(UINT64_MAX), 64, "the largest: class 64");

        uint32_t a = jl_event_id(JL_MPI_Send, 1, 800);
        is_int(jl_event_call(a), JL_MPI_Send, "the call comes back out of the id");
        is_int(a, jl_event_id(JL_MPI_Send, 1, 1000), "800 and 1000 bytes: same size class, same event");
        ok(a != jl_event_id(JL_MPI_Send, 2, 800), "another peer: another event");
        ok(a != jl_event_id(JL_MPI_Recv, 1, 800), "another call: another event");
        ok(a != jl_event_id(JL_MPI_Send, 1, 8000), "another size class: another event");
        ok(jl_event_id(JL_MPI_Barrier, JL_EVENT_NO_PEER, 0) != jl_event_id(JL_MPI_Barrier, 0, 0),
           "no peer differs from rank 0");
        is_int(jl_event_id(JL_MPI_Recv, -1, 8), jl_event_id(JL_MPI_Recv, -2, 8),
               "negative peers (ANY_SOURCE, PROC_NULL) share one value");
        is_int((jl_event_id(JL_MPI_Recv, 1000000, 8) >> 8) & 0xffff, 1000000 % 0xfffd + 1,
               "large ranks fold");
}

static void test_counts(void)
{
        char buf[256];

        is_int(jl_rt_count_total(), 0, "nothing counted yet");
        is_int(jl_rt_format_counts(buf, sizeof(buf)), 0, "empty summary");
        for (int i = 0; i < 1000; i++) {
                /* a buffer at a new address each time changes nothing: the id has no address */
                void *p = malloc((size_t)(64 + i % 7));
                jl_rt_event(jl_event_id(JL_MPI_Send, 1, 64), JL_MPI_Send);
                jl_rt_event(jl_event_id(JL_MPI_Recv, 1, 64), JL_MPI_Recv);
                free(p);
        }
        jl_rt_event(jl_event_id(JL_MPI_Allreduce, JL_EVENT_NO_PEER, 8), JL_MPI_Allreduce);
        jl_rt_event(0, JL_MPI_NCALLS); /* not a call: ignored */
        is_int(jl_rt_count(JL_MPI_Send), 1000, "1000 sends");
        is_int(jl_rt_count(JL_MPI_Allreduce), 1, "1 allreduce");
        is_int(jl_rt_count_total(), 2001, "2001 in all");
        is_int(jl_rt_distinct_events(), 3, "3 distinct events");
        jl_rt_format_counts(buf, sizeof(buf));
        is_str(buf, "MPI_Send 1000, MPI_Recv 1000, MPI_Allreduce 1", "the summary in table order");
        is_int(jl_rt_format_counts(buf, 10), 0, "a summary that does not fit is cut at an entry");
        is_str(buf, "", "and left terminated");
        for (uint32_t i = 0; i < 5000; i++)
                jl_rt_event(jl_event_id(JL_MPI_Send, (int64_t)i, 8), JL_MPI_Send);
        ok(jl_rt_distinct_events() <= 4096, "the set of events stays bounded (%u)", jl_rt_distinct_events());
}

int main(void)
{
        test_stays_out();
        test_classify();
        test_table();
        test_event();
        test_counts();
        return tap_done();
}
