/* bench-sample.c - the cost of one sample of every RAPL domain: jl_sampler_sample() with only the "rapl"
 * provider open, against the limit, a raw loop that pread()s the same energy_uj files (descriptors opened
 * once) and parses them with a minimal digit loop. Both are timed one call at a time, interleaved (the
 * order alternates every iteration), after a warm-up; it prints median, p99 and mean of each and the
 * ratio of the medians. Run it where the powercap tree is the one to measure, e.g.
 *   tests/ns-run.sh FIXTURE -- bench-sample [ITERATIONS [WARMUP]]
 * Then, to explain what `joule measure` pays per tick, the median cost of one jl_sampler_sample() with each
 * other provider alone and with every provider as joule measure opens them (the process-tree part of
 * "proc" follows a sleeping child, as joule measure follows its command).
 * Output: a human table on stderr and key=value lines on stdout (for bench/run.sh). */
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sampler.h"

#define MAX_ZONES 64

static uint64_t clock_ns(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
        uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
        return x < y ? -1 : x > y;
}

typedef struct {
        double median_us, p99_us, mean_us, min_us;
} stats;

static stats stats_of(uint64_t *ns, size_t n)
{
        qsort(ns, n, sizeof(ns[0]), cmp_u64);
        double sum = 0;
        for (size_t i = 0; i < n; i++)
                sum += (double)ns[i];
        size_t p99 = (n * 99) / 100;
        if (p99 >= n)
                p99 = n - 1;
        return (stats){
            .median_us = (double)ns[n / 2] / 1e3,
            .p99_us = (double)ns[p99] / 1e3,
            .mean_us = sum / (double)n / 1e3,
            .min_us = (double)ns[0] / 1e3,
        };
}

/* The limit: one pread per file and the least parse that still yields the number. */
static uint64_t raw_read_all(const int *fds, size_t n)
{
        uint64_t sum = 0;
        for (size_t i = 0; i < n; i++) {
                char buf[32];
                ssize_t k = pread(fds[i], buf, sizeof(buf), 0);
                uint64_t v = 0;
                for (ssize_t j = 0; j < k && buf[j] >= '0' && buf[j] <= '9'; j++)
                        v = v * 10 + (uint64_t)(buf[j] - '0');
                sum += v;
        }
        return sum;
}

/* Median µs of one jl_sampler_sample() with these providers (NULL: all, as joule measure opens them). */
static int provider_cost(const jl_provider_config *cfg, const char *name, long iters, long warmup,
                         long gap_ms, uint64_t *t)
{
        jl_sampler *s = NULL;
        int r = jl_sampler_open(cfg, name ? (const char *const[]){name, NULL} : NULL, &s);
        if (r < 0)
                return r;
        size_t nch = s->channels.n;
        if (nch == 0) {
                jl_sampler_free(s);
                return -ENODEV;
        }
        for (long i = 0; i < warmup; i++)
                jl_sampler_sample(s);
        for (long i = 0; i < iters; i++) {
                if (gap_ms > 0)
                        nanosleep(&(struct timespec){.tv_nsec = gap_ms * 1000000}, NULL);
                uint64_t a = clock_ns();
                jl_sampler_sample(s);
                t[i] = clock_ns() - a;
        }
        jl_sampler_free(s);
        stats st = stats_of(t, (size_t)iters);
        fprintf(stderr, "  %-22s %9.3f %9.3f %9.3f %9.3f  (%zu channels)\n",
                name ? name : "all (joule measure)", st.median_us, st.p99_us, st.mean_us, st.min_us, nch);
        printf("provider=%s gap_ms=%ld channels=%zu median_us=%.3f p99_us=%.3f\n", name ? name : "all",
               gap_ms, nch, st.median_us, st.p99_us);
        return 0;
}

int main(int argc, char **argv)
{
        long iters = argc > 1 ? strtol(argv[1], NULL, 10) : 20000;
        long warmup = argc > 2 ? strtol(argv[2], NULL, 10) : 2000;
        if (iters < 100 || iters > 10000000 || warmup < 0 || warmup > 10000000) {
                fprintf(stderr, "usage: bench-sample [ITERATIONS>=100 [WARMUP]]\n");
                return 2;
        }

        jl_provider_config cfg;
        jl_provider_config_default(&cfg);
        jl_sampler *s = NULL;
        int r = jl_sampler_open(&cfg, (const char *const[]){"rapl", NULL}, &s);
        if (r < 0 || s->channels.n == 0) {
                fprintf(stderr, "bench-sample: no RAPL channel (%s)\n", r < 0 ? strerror(-r) : "none open");
                for (size_t i = 0; s && i < s->notes.n; i++)
                        fprintf(stderr, "  %s: %s\n", s->notes.items[i].subject, s->notes.items[i].reason);
                jl_sampler_free(s);
                return 1;
        }

        glob_t g;
        if (glob("/sys/class/powercap/intel-rapl:*/energy_uj", 0, NULL, &g) != 0 || g.gl_pathc > MAX_ZONES) {
                fprintf(stderr, "bench-sample: no energy_uj files under /sys/class/powercap\n");
                jl_sampler_free(s);
                return 1;
        }
        int fds[MAX_ZONES];
        size_t nfd = 0;
        for (size_t i = 0; i < g.gl_pathc; i++) {
                int fd = open(g.gl_pathv[i], O_RDONLY | O_CLOEXEC);
                if (fd >= 0)
                        fds[nfd++] = fd;
        }
        globfree(&g);
        if (nfd != s->channels.n) {
                fprintf(stderr, "bench-sample: %zu energy_uj files but %zu sampler channels\n", nfd,
                        s->channels.n);
                jl_sampler_free(s);
                return 1;
        }

        uint64_t *t_sampler = calloc((size_t)iters, sizeof(uint64_t));
        uint64_t *t_raw = calloc((size_t)iters, sizeof(uint64_t));
        uint64_t *t_empty = calloc((size_t)iters, sizeof(uint64_t));
        if (!t_sampler || !t_raw || !t_empty)
                return 1;
        volatile uint64_t sink = 0;

        for (long i = 0; i < warmup; i++) {
                jl_sampler_sample(s);
                sink += raw_read_all(fds, nfd);
        }
        for (long i = 0; i < iters; i++) {
                uint64_t a, b;
                for (int k = 0; k < 2; k++) {
                        if ((k == 0) == (i % 2 == 0)) {
                                a = clock_ns();
                                jl_sampler_sample(s);
                                b = clock_ns();
                                t_sampler[i] = b - a;
                        } else {
                                a = clock_ns();
                                sink += raw_read_all(fds, nfd);
                                b = clock_ns();
                                t_raw[i] = b - a;
                        }
                }
                a = clock_ns();
                b = clock_ns();
                t_empty[i] = b - a;
        }

        size_t errors = 0;
        for (size_t i = 0; i < s->channels.n; i++)
                errors += s->tracks[i].errors + s->tracks[i].glitches;
        size_t nch = s->channels.n;
        stats ss = stats_of(t_sampler, (size_t)iters), sr = stats_of(t_raw, (size_t)iters),
              se = stats_of(t_empty, (size_t)iters);
        double ratio = ss.median_us / sr.median_us;

        fprintf(stderr, "one sample of %zu RAPL domains, %ld iterations after %ld warm-up (µs)\n", nch,
                iters, warmup);
        fprintf(stderr, "  %-22s %9s %9s %9s %9s\n", "", "median", "p99", "mean", "min");
        fprintf(stderr, "  %-22s %9.3f %9.3f %9.3f %9.3f\n", "jl_sampler_sample()", ss.median_us, ss.p99_us,
                ss.mean_us, ss.min_us);
        fprintf(stderr, "  %-22s %9.3f %9.3f %9.3f %9.3f\n", "raw pread loop", sr.median_us, sr.p99_us,
                sr.mean_us, sr.min_us);
        fprintf(stderr, "  %-22s %9.3f %9.3f %9.3f %9.3f\n", "timer alone", se.median_us, se.p99_us,
                se.mean_us, se.min_us);
        fprintf(stderr, "  ratio of medians: %.2fx (target <= 1.5x); sampler errors+glitches: %zu\n", ratio,
                errors);
        printf("channels=%zu iterations=%ld warmup=%ld sampler_median_us=%.3f sampler_p99_us=%.3f "
               "raw_median_us=%.3f raw_p99_us=%.3f timer_median_us=%.3f ratio=%.3f errors=%zu\n",
               nch, iters, warmup, ss.median_us, ss.p99_us, sr.median_us, sr.p99_us, se.median_us, ratio,
               errors);

        /* The other providers, one at a time, then all of them. */
        pid_t child = fork();
        if (child == 0) {
                pause();
                _exit(0);
        }
        if (child > 0)
                cfg.pid = child;
        long piters = iters / 10 > 100 ? iters / 10 : 100;
        fprintf(stderr, "one jl_sampler_sample() per provider, hot: back to back, %ld iterations (µs)\n",
                piters);
        fprintf(stderr, "  %-22s %9s %9s %9s %9s\n", "", "median", "p99", "mean", "min");
        for (const jl_provider_ops *const *p = jl_providers; *p; p++)
                provider_cost(&cfg, (*p)->name, piters, piters / 10, 0, t_sampler);
        provider_cost(&cfg, NULL, piters, piters / 10, 0, t_sampler);
        /* As joule measure runs them: after a 10 ms sleep, with caches cooled by whatever ran meanwhile. */
        fprintf(
            stderr,
            "one jl_sampler_sample() per provider, cold: 10 ms sleep before each, 100 iterations (µs)\n");
        fprintf(stderr, "  %-22s %9s %9s %9s %9s\n", "", "median", "p99", "mean", "min");
        for (const jl_provider_ops *const *p = jl_providers; *p; p++)
                provider_cost(&cfg, (*p)->name, 100, 5, 10, t_sampler);
        provider_cost(&cfg, NULL, 100, 5, 10, t_sampler);
        if (child > 0) {
                kill(child, SIGKILL);
                waitpid(child, NULL, 0);
        }

        for (size_t i = 0; i < nfd; i++)
                close(fds[i]);
        free(t_sampler);
        free(t_raw);
        free(t_empty);
        jl_sampler_free(s);
        return (int)(sink & 0); /* keeps the raw loop's result alive */
}
