/* emu-work-mpi.c - the MPI variant of emu-work (README.md, "Workloads"): 2-4 ranks advance through
 * iterations of a workload kind at the pace joule-emu's model gives at the frequency in force (the slowest
 * scaling_cur_freq of the CPUs, read at the real sysfs path every slice: run it inside the emulated node's
 * namespace), with MPI calls each iteration (Allreduce and a Sendrecv ring, alternating), so that the
 * runtime finds the loop, measures it and sets frequencies through jouled. Rank 0 tells the emulator the
 * workload (`ctl work CPUS KIND`) and sets the CPUs idle at the end, then prints one JSON object: its own
 * count of iterations and calls per iteration (phase 1, and phase 2 where the period changes), the
 * emulator's time and node energy of the run, and the steady state: time per iteration over the last
 * --steady iterations and the mean frequency meanwhile. Kind gpuwait (the CPUs wait for a GPU) also writes
 * the GPU's utilisation into --gpu-util-file for the emulated NVML (tests/emu/nvml: util_file=): --gpu-util
 * PCT (default 95) while it runs, 0 at the end. Built by the tests with each MPI's mpicc, with
 * work-common.c.
 *   emu-work-mpi --root DIR --kind KIND --iterations N [--calls K] [--iterations2 N2 --calls2 K2]
 *                [--cycles C --mem-s S] [--cpus all|LIST] [--realloc] [--steady S] [--slice-ms 5]
 *                [--gpu-util-file PATH [--gpu-util PCT]] */
#include <math.h>
#include <mpi.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "work-common.h"

int main(int argc, char **argv)
{
        work_opts o = {.cpus_arg = "all", .slice_s = 0.005};
        long iters1 = 0, iters2 = 0, calls1 = 2, calls2 = 0, steady = 0;
        bool realloc_bufs = false;
        int rank, size;

        MPI_Init(&argc, &argv);
        MPI_Comm_rank(MPI_COMM_WORLD, &rank);
        MPI_Comm_size(MPI_COMM_WORLD, &size);
        for (int i = 1; i < argc; i++) {
                const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
                if (strcmp(a, "--realloc") == 0) {
                        realloc_bufs = true;
                        continue;
                }
                if (!v)
                        goto usage;
                i++;
                if (work_option(&o, a, v))
                        continue;
                if (strcmp(a, "--iterations") == 0)
                        iters1 = atol(v);
                else if (strcmp(a, "--calls") == 0)
                        calls1 = atol(v);
                else if (strcmp(a, "--iterations2") == 0)
                        iters2 = atol(v);
                else if (strcmp(a, "--calls2") == 0)
                        calls2 = atol(v);
                else if (strcmp(a, "--steady") == 0)
                        steady = atol(v);
                else
                        goto usage;
        }
        if (!o.root || !o.kind || iters1 < 1 || calls1 < 1 || calls1 > 100 || iters2 < 0 ||
            (iters2 && calls2 < 1) || calls2 > 100 || !(o.slice_s > 0 && o.slice_s <= 1))
                goto usage;
        long total = iters1 + iters2;
        if (steady <= 0 || steady > total)
                steady = total / 4 > 0 ? total / 4 : 1;

        int cpus[WORK_MAX_CPU];
        char text[16384], line[512];
        int ncpu = work_cpus("emu-work-mpi", o.cpus_arg, cpus, WORK_MAX_CPU);
        if (ncpu == -2)
                MPI_Abort(MPI_COMM_WORLD, 1);
        if (ncpu <= 0)
                goto usage;

        double wl[4] = {0}; /* t0, e0, cycles, mem_s */
        if (rank == 0) {
                snprintf(line, sizeof(line), "work %s %s%s%s%s%s", o.cpus_arg, o.kind, o.cycles ? " " : "",
                         o.cycles ? o.cycles : "", o.mem_s ? " " : "", o.mem_s ? o.mem_s : "");
                if (work_ctl("emu-work-mpi", o.root, line, text, sizeof(text)) < 0)
                        MPI_Abort(MPI_COMM_WORLD, 1);
                wl[0] = work_json_num(text, NULL, "t_s");
                wl[1] = work_json_num(text, "\"energy_uj\"", "node");
                wl[2] = work_json_num(text, "\"work\"", "cycles");
                wl[3] = work_json_num(text, "\"work\"", "mem_s");
                if (isnan(wl[2]) || isnan(wl[3])) {
                        fprintf(stderr, "emu-work-mpi: unexpected reply: %s", text);
                        MPI_Abort(MPI_COMM_WORLD, 1);
                }
                /* gpuwait: the emulated NVML shows the GPU busy while the CPUs wait for it */
                if (strcmp(o.kind, "gpuwait") == 0 && work_gpu_util("emu-work-mpi", &o, true) < 0)
                        MPI_Abort(MPI_COMM_WORLD, 1);
        }
        MPI_Bcast(wl, 4, MPI_DOUBLE, 0, MPI_COMM_WORLD);
        double cyc = wl[2], mem = wl[3];

        double *t_end = calloc((size_t)total + 1, sizeof(double)),
               *f_int = calloc((size_t)total + 1, sizeof(double));
        double *sbuf = malloc(64 * sizeof(double)), *rbuf = malloc(64 * sizeof(double));
        if (!t_end || !f_int || !sbuf || !rbuf)
                MPI_Abort(MPI_COMM_WORLD, 1);
        int right = (rank + 1) % size, left = (rank + size - 1) % size;
        double progress = 0, t = work_now_s(), f_time = 0, last_f = 0;
        t_end[0] = t;
        for (long it = 0; it < total; it++) {
                /* compute: progress follows 1 / T(f), f the slowest of the CPUs, re-read every slice */
                while (progress < (double)(it + 1)) {
                        double f = work_slowest_khz(cpus, ncpu);
                        if (!isfinite(f))
                                MPI_Abort(MPI_COMM_WORLD, 1);
                        last_f = f;
                        work_advance((double)(it + 1), f, cyc, mem, o.slice_s, &progress, &t, &f_time);
                }
                /* communicate */
                long calls = it < iters1 ? calls1 : calls2;
                if (realloc_bufs) {
                        free(sbuf);
                        free(rbuf);
                        sbuf = malloc(64 * sizeof(double));
                        rbuf = malloc(64 * sizeof(double));
                        if (!sbuf || !rbuf)
                                MPI_Abort(MPI_COMM_WORLD, 1);
                }
                for (long c = 0; c < calls; c++) {
                        sbuf[0] = (double)it;
                        if (c % 2 == 0)
                                MPI_Allreduce(sbuf, rbuf, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
                        else
                                MPI_Sendrecv(sbuf, 8, MPI_DOUBLE, right, 7, rbuf, 8, MPI_DOUBLE, left, 7,
                                             MPI_COMM_WORLD, MPI_STATUS_IGNORE);
                }
                double t1 = work_now_s();
                progress += (t1 - t) / (cyc / (last_f * 1e3) + mem);
                f_time += last_f * (t1 - t);
                t = t1;
                t_end[it + 1] = t;
                f_int[it + 1] = f_time;
        }
        if (rank == 0) {
                double final_f = work_slowest_khz(cpus, ncpu);
                if (strcmp(o.kind, "gpuwait") == 0)
                        (void)work_gpu_util("emu-work-mpi", &o, false);
                snprintf(line, sizeof(line), "work %s idle", o.cpus_arg);
                if (work_ctl("emu-work-mpi", o.root, line, text, sizeof(text)) < 0)
                        MPI_Abort(MPI_COMM_WORLD, 1);
                double t1 = work_json_num(text, NULL, "t_s"),
                       e1 = work_json_num(text, "\"energy_uj\"", "node");
                double st = t_end[total] - t_end[total - steady];
                printf("{\"kind\": \"%s\", \"ranks\": %d, \"iterations\": %ld, \"calls\": %ld, "
                       "\"iterations2\": %ld, "
                       "\"calls2\": %ld, \"realloc\": %s, \"time_s\": %.6f, \"energy_j\": %.6f, "
                       "\"time_per_iteration_s\": %.9f, \"energy_per_iteration_j\": %.9f, "
                       "\"steady_iterations\": %ld, "
                       "\"steady_tpi_s\": %.9f, \"steady_khz\": %.0f, \"final_khz\": %.0f}\n",
                       o.kind, size, iters1, calls1, iters2, calls2, realloc_bufs ? "true" : "false",
                       t1 - wl[0], (e1 - wl[1]) / 1e6, (t1 - wl[0]) / (double)total,
                       (e1 - wl[1]) / 1e6 / (double)total, steady, st / (double)steady,
                       (f_int[total] - f_int[total - steady]) / st, final_f);
                fflush(stdout);
        }
        free(t_end);
        free(f_int);
        free(sbuf);
        free(rbuf);
        MPI_Finalize();
        return 0;
usage:
        if (rank == 0)
                fputs("Usage: emu-work-mpi --root DIR --kind KIND --iterations N [--calls K] [--iterations2 "
                      "N2 "
                      "--calls2 K2]\n                    [--cycles C --mem-s S] [--cpus all|LIST] "
                      "[--realloc] [--steady S] "
                      "[--slice-ms 5]\n                    [--gpu-util-file PATH [--gpu-util PCT]]\n",
                      stderr);
        MPI_Finalize();
        return 2;
}
