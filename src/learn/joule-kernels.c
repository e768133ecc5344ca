/* joule-kernels.c - the learning run's own kernels (`joule learn`, docs/policies.md): a fixed amount of work
 * each, a few hundred ms at the top frequency of a current server core, so that their time and power across
 * frequencies span what codes do: `compute` (a dependent floating-point chain: every cycle scales with the
 * clock), `memory` (a stream triad over buffers far larger than any last-level cache: the time is the
 * memory's), `mixed` (half of each). `--size N` scales the work (default 1). Prints one JSON line with a
 * checksum (so that no compiler drops the work) and exits 0. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "parse.h"

#define TRIAD_DOUBLES (8u << 20) /* 64 MiB per array, 192 MiB in all */

static double compute(uint64_t steps)
{
        /* a dependent chain of multiply-adds: no overlap between iterations, no vectorisation */
        volatile double seed = 1.0000001;
        double x = seed, a = 0.9999999, b = 1e-7;
        for (uint64_t i = 0; i < steps; i++)
                x = x * a + b;
        return x;
}

static int memory(unsigned passes, double *ret)
{
        double *a = malloc(TRIAD_DOUBLES * sizeof(double)), *b = malloc(TRIAD_DOUBLES * sizeof(double)),
               *c = malloc(TRIAD_DOUBLES * sizeof(double));
        if (!a || !b || !c) {
                free(a);
                free(b);
                free(c);
                return -ENOMEM;
        }
        for (size_t i = 0; i < TRIAD_DOUBLES; i++) {
                b[i] = (double)i;
                c[i] = 1.0 / (double)(i + 1);
        }
        const double s = 3.0;
        for (unsigned p = 0; p < passes; p++)
                for (size_t i = 0; i < TRIAD_DOUBLES; i++)
                        a[i] = b[i] + s * c[i];
        *ret = a[TRIAD_DOUBLES / 2] + a[TRIAD_DOUBLES - 1];
        free(a);
        free(b);
        free(c);
        return 0;
}

static int usage(FILE *f)
{
        fputs("Usage: joule-kernels --kernel compute|memory|mixed [--size N]\n\n"
              "Runs one of joule learn's kernels: a fixed amount of work (times N), then prints\n"
              "{\"kernel\", \"size\", \"time_s\", \"checksum\"} on stdout.\n",
              f);
        return f == stdout ? 0 : 2;
}

int main(int argc, char **argv)
{
        static const struct option opts[] = {
            {"kernel", required_argument, NULL, 'k'},
            {"size", required_argument, NULL, 's'},
            {"help", no_argument, NULL, 'h'},
            {0},
        };
        const char *kernel = NULL;
        uint64_t size = 1;
        int c;
        while ((c = getopt_long(argc, argv, "h", opts, NULL)) >= 0) {
                switch (c) {
                case 'k':
                        kernel = optarg;
                        break;
                case 's':
                        if (parse_u64(optarg, &size) < 0 || size == 0 || size > 1000) {
                                fprintf(stderr, "joule-kernels: --size '%s' is not a whole number 1..1000\n",
                                        optarg);
                                return 2;
                        }
                        break;
                case 'h':
                        return usage(stdout);
                default:
                        return usage(stderr);
                }
        }
        if (!kernel || optind != argc)
                return usage(stderr);
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        double sum = 0, m = 0;
        if (strcmp(kernel, "compute") == 0)
                sum = compute(size * 150000000u); /* ~4 cycles each: ~0.2 s at 3 GHz */
        else if (strcmp(kernel, "memory") == 0) {
                if (memory((unsigned)size * 4, &m) < 0) {
                        fprintf(stderr, "joule-kernels: no memory for the triad's 192 MiB\n");
                        return 1;
                }
                sum = m;
        } else if (strcmp(kernel, "mixed") == 0) {
                if (memory((unsigned)size * 2, &m) < 0) {
                        fprintf(stderr, "joule-kernels: no memory for the triad's 192 MiB\n");
                        return 1;
                }
                sum = m + compute(size * 75000000u);
        } else {
                fprintf(stderr, "joule-kernels: '%s' is not a kernel (compute, memory, mixed)\n", kernel);
                return 2;
        }
        clock_gettime(CLOCK_MONOTONIC, &t1);
        printf("{\"kernel\": \"%s\", \"size\": %llu, \"time_s\": %.6f, \"checksum\": %.17g}\n", kernel,
               (unsigned long long)size, (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9,
               sum);
        return 0;
}
