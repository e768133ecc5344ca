/* ear-dynais-compare.c - joule's loop detection (src/dynais) beside EAR's DynAIS (its AVX2 build, from EAR's
 * sources, which joule does not ship): false loops on random streams of 3,000 events (26 and 2 symbols, 100
 * streams each), and ns per event on the streams of bench-dynais.c, batches of 1,000 timed alternately.
 * Built and run by bench/ear-dynais-compare.sh EAR_SOURCE_DIR; not part of the meson build. */
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <time.h>
#include <library/dynais/avx2/dynais.h>
#include "dynais.h"
static uint64_t rng = 88172645463325252ull;
static uint32_t rnd(void)
{
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        return (uint32_t)rng;
}
static uint64_t ns(void)
{
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        return t.tv_sec * 1000000000ull + t.tv_nsec;
}
static int cmpd(const void *a, const void *b)
{
        double x = *(double *)a, y = *(double *)b;
        return x < y ? -1 : x > y;
}
int main(void)
{
        avx2_dynais_init(200, 10);
        jl_dynais *d;
        jl_dynais_new(200, 10, &d);
        /* false loops on random streams of 3000 events, 100 seeds */
        for (int A = 26; A >= 2; A = A == 26 ? 2 : 0) {
                long ear = 0, jl = 0;
                for (int s = 0; s < 100; s++) {
                        rng = 1234567ull * (s + 1) + A;
                        avx2_dynais_dispose();
                        avx2_dynais_init(200, 10);
                        jl_dynais_reset(d);
                        for (int i = 0; i < 3000; i++) {
                                uint e = rnd() % A, size, lvl;
                                int st = avx2_dynais(e, &size, &lvl);
                                ear += st == NEW_LOOP || st == END_NEW_LOOP;
                                jl_dynais_state js = jl_dynais_push(d, e, NULL);
                                jl += js == JL_DYNAIS_NEW_LOOP || js == JL_DYNAIS_END_NEW_LOOP;
                        }
                }
                printf("random %d symbols, 3000 events: false loops per stream: EAR %.2f, joule %.2f (100 "
                       "streams)\n",
                       A, ear / 100.0, jl / 100.0);
        }
        /* cost: interleaved batches of 1000 events, streams as bench-dynais */
        size_t B = 3000, n = B * 1000;
        uint32_t *ev = malloc(n * 4);
        double *te = malloc(B * 8), *tj = malloc(B * 8);
        const char *names[] = {"loop", "random", "nested"};
        for (int k = 0; k < 3; k++) {
                uint32_t body[37];
                for (int i = 0; i < 37; i++)
                        body[i] = rnd();
                for (size_t i = 0; i < n; i++) {
                        size_t j = i % 600;
                        ev[i] = k == 0   ? body[i % 37]
                                : k == 1 ? rnd() % 26
                                         : (j < 200   ? (j % 2 ? 'b' : 'a')
                                            : j < 500 ? 'c' + (uint32_t)((j - 200) % 3)
                                                      : 'f');
                }
                avx2_dynais_dispose();
                avx2_dynais_init(200, 10);
                jl_dynais_reset(d);
                volatile int sink = 0;
                for (size_t b = 0; b < B; b++) {
                        const uint32_t *p = ev + b * 1000;
                        uint size, lvl;
                        uint64_t t0 = ns();
                        for (int i = 0; i < 1000; i++)
                                sink += avx2_dynais(p[i], &size, &lvl);
                        te[b] = (ns() - t0) / 1000.0;
                        t0 = ns();
                        for (int i = 0; i < 1000; i++)
                                sink += jl_dynais_push(d, p[i], NULL);
                        tj[b] = (ns() - t0) / 1000.0;
                }
                qsort(te, B, 8, cmpd);
                qsort(tj, B, 8, cmpd);
                printf("%-7s ns/event: EAR min %.1f median %.1f | joule min %.1f median %.1f\n", names[k],
                       te[0], te[B / 2], tj[0], tj[B / 2]);
        }
        return 0;
}
