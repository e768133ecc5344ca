/* bench-dynais.c - the cost of one jl_dynais_push() (src/dynais) at a window and a number of levels (default
 * 200 and 10, EAR's defaults) on three streams: a loop (period 37, random body, the steady state of an MPI
 * application), random events (no loop ever), and loops of loops (inner loops that come and go, so that
 * level 1 works too). Events are pushed in batches of 1,000 timed with CLOCK_MONOTONIC; it prints the
 * median, p99 and maximum over the batches, in ns per event. bench-dynais [WINDOW [LEVELS [BATCHES]]]
 * Output: a human table on stderr and key=value lines on stdout. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "dynais.h"

#define BATCH 1000

static uint64_t clock_ns(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp_d(const void *a, const void *b)
{
        double x = *(const double *)a, y = *(const double *)b;
        return x < y ? -1 : x > y;
}

static uint64_t rng = 88172645463325252ull;
static uint32_t rnd(void)
{
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        return (uint32_t)rng;
}

typedef enum { S_LOOP, S_RANDOM, S_NESTED } kind;
static const char *const kind_name[] = {"loop", "random", "nested"};

static void make_stream(kind k, uint32_t *ev, size_t n)
{
        uint32_t body[37];
        for (int i = 0; i < 37; i++)
                body[i] = rnd();
        for (size_t i = 0; i < n; i++) {
                switch (k) {
                case S_LOOP:
                        ev[i] = body[i % 37];
                        break;
                case S_RANDOM:
                        ev[i] = rnd() % 26;
                        break;
                case S_NESTED: {
                        /* (a b)×100 (c d e)×100 (f)×100: 600 events per outer iteration, beyond the window
                         */
                        size_t j = i % 600;
                        ev[i] = j < 200   ? (j % 2 ? 'b' : 'a')
                                : j < 500 ? 'c' + (uint32_t)((j - 200) % 3)
                                          : 'f';
                        break;
                }
                }
        }
}

int main(int argc, char **argv)
{
        uint32_t window = argc > 1 ? (uint32_t)strtoul(argv[1], NULL, 10) : 200;
        uint32_t levels = argc > 2 ? (uint32_t)strtoul(argv[2], NULL, 10) : 10;
        size_t batches = argc > 3 ? strtoul(argv[3], NULL, 10) : 2000;
        if (batches < 10)
                batches = 10;
        size_t n = batches * BATCH;
        uint32_t *ev = malloc(n * sizeof(*ev));
        double *ns = malloc(batches * sizeof(*ns));
        jl_dynais *d = NULL;
        if (!ev || !ns || jl_dynais_new(window, levels, &d) < 0) {
                fprintf(stderr, "bench-dynais: bad window/levels or out of memory\n");
                return 1;
        }
        fprintf(stderr, "jl_dynais_push, window %u, %u levels, %zu batches of %d events: ns per event\n",
                window, levels, batches, BATCH);
        fprintf(stderr, "%-8s %8s %8s %8s %8s %10s\n", "stream", "min", "median", "p99", "max", "loops");
        for (kind k = S_LOOP; k <= S_NESTED; k++) {
                make_stream(k, ev, n);
                jl_dynais_reset(d);
                /* warm-up: one pass over the first batches */
                for (size_t i = 0; i < 10 * BATCH; i++)
                        jl_dynais_push(d, ev[i], NULL);
                jl_dynais_reset(d);
                size_t loops = 0;
                volatile uint32_t sink = 0;
                for (size_t b = 0; b < batches; b++) {
                        const uint32_t *p = ev + b * BATCH;
                        uint64_t t0 = clock_ns();
                        for (int i = 0; i < BATCH; i++) {
                                jl_dynais_state st = jl_dynais_push(d, p[i], NULL);
                                loops += st == JL_DYNAIS_NEW_LOOP || st == JL_DYNAIS_END_NEW_LOOP;
                                sink += st;
                        }
                        ns[b] = (double)(clock_ns() - t0) / BATCH;
                }
                (void)sink;
                qsort(ns, batches, sizeof(*ns), cmp_d);
                double min = ns[0], med = ns[batches / 2], p99 = ns[batches * 99 / 100],
                       max = ns[batches - 1];
                fprintf(stderr, "%-8s %8.1f %8.1f %8.1f %8.1f %10zu\n", kind_name[k], min, med, p99, max,
                        loops);
                printf("dynais_%s_median_ns=%.1f\ndynais_%s_p99_ns=%.1f\ndynais_%s_loops=%zu\n",
                       kind_name[k], med, kind_name[k], p99, kind_name[k], loops);
        }
        jl_dynais_free(d);
        free(ns);
        free(ev);
        return 0;
}
