/* bench-counters.c - the runtime's hardware counters (src/runtime/counters.h) against work whose size is
 * known, for machines that have the PMUs (this development VM has none: every figure is NAN and the
 * reasons are printed). Two phases: a floating-point loop of a known number of double-precision operations
 * (8 per iteration: 4 independent multiply-add chains), and a memory sweep over a buffer far larger than
 * the caches (read with 8-byte loads, then written with memset), whose bytes are known. It prints the plan,
 * then per phase the program's own rate beside the counters' GFLOPS, GB/s, CPI and TPI. GB/s are the
 * node's, so other work on the node adds to them; the FLOPs are this process's.
 * bench-counters [BUFFER_MIB [SECONDS]]  (defaults 1024, 2). Output: key=value lines on stdout. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "counters.h"

static double now_s(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void report(const char *phase, const jl_rt_counts *a, const jl_rt_counts *b, double dt,
                   const char *own, double own_rate)
{
        printf("%s_seconds=%.3f\n%s_%s=%.3f\n%s_counted_gflops=%.3f\n%s_counted_gbs=%.3f\n%s_cpi=%.3f\n"
               "%s_tpi=%.5f\n",
               phase, dt, phase, own, own_rate, phase, jl_rt_counts_gflops(a, b, dt), phase,
               jl_rt_counts_gbs(a, b, dt), phase, jl_rt_counts_cpi(a, b), phase, jl_rt_counts_tpi(a, b));
}

int main(int argc, char **argv)
{
        size_t mib = argc > 1 ? strtoul(argv[1], NULL, 10) : 1024;
        double seconds = argc > 2 ? strtod(argv[2], NULL) : 2;
        if (mib == 0 || !(seconds > 0)) {
                fprintf(stderr, "usage: bench-counters [BUFFER_MIB [SECONDS]]\n");
                return 2;
        }
        jl_rt_counters c;
        int r = jl_rt_counters_open(&c);
        printf("cpi_counters=%s\nflops_counters=%zu\nflops_events=\"%s\"\nmemory_counters=%zu\n"
               "memory_events=\"%s\"\n",
               r == 0 ? "yes" : "none", c.nfp, c.fp_what, c.nmem, c.mem_what);

        /* floating point: 4 chains of x = x * m + k, 2 operations each per iteration */
        jl_rt_counts a, b;
        double x0 = 1, x1 = 2, x2 = 3, x3 = 4, m = 0.999999, k = 1e-7;
        unsigned long long iters = 0;
        jl_rt_counters_read(&c, &a);
        double t0 = now_s(), t1;
        do {
                for (int i = 0; i < 1000000; i++) {
                        x0 = x0 * m + k;
                        x1 = x1 * m + k;
                        x2 = x2 * m + k;
                        x3 = x3 * m + k;
                }
                iters += 1000000;
                t1 = now_s();
        } while (t1 - t0 < seconds);
        jl_rt_counters_read(&c, &b);
        report("flops", &a, &b, t1 - t0, "own_gflops", 8.0 * (double)iters / (t1 - t0) / 1e9);
        printf("flops_checksum=%g\n", x0 + x1 + x2 + x3);

        /* memory: read then write the buffer until the time is up */
        size_t n = mib * 1024 * 1024 / sizeof(double);
        double *buf = malloc(n * sizeof(double));
        if (!buf) {
                perror("malloc");
                return 1;
        }
        memset(buf, 1, n * sizeof(double));
        double sum = 0, bytes = 0;
        jl_rt_counters_read(&c, &a);
        t0 = now_s();
        do {
                for (size_t i = 0; i < n; i++)
                        sum += buf[i];
                memset(buf, (int)(sum > 0), n * sizeof(double));
                bytes += 2.0 * (double)(n * sizeof(double));
                t1 = now_s();
        } while (t1 - t0 < seconds);
        jl_rt_counters_read(&c, &b);
        report("memory", &a, &b, t1 - t0, "own_gbs", bytes / (t1 - t0) / 1e9);
        printf("memory_checksum=%g\n", sum);
        free(buf);
        jl_rt_counters_close(&c);
        return 0;
}
