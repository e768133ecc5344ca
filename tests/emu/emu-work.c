/* emu-work.c - a workload whose progress follows joule-emu's model of time (tests/emu/README.md,
 * "Workloads"): it tells the emulator which CPUs run which kind of work (`ctl work`), so that their power
 * follows, then runs N iterations, each lasting compute cycles / f + memory time at the frequency in force
 * on its CPUs (the slowest of them), read from scaling_cur_freq at the real sysfs path (run it inside the
 * emulated node's namespace, tests/ns-run.sh) every slice, so that a frequency changed mid-run changes its
 * pace at once. Progress is continuous across iterations: sleeping late is carried, not lost. At the end it
 * sets its CPUs idle again and prints one JSON object with the emulator's time and node energy of the run
 * (both taken by the emulator at the two `work` commands) and per iteration.
 *   emu-work --root DIR --kind compute|mixed|memory --iterations N [--cpus all|LIST]
 *            [--cycles C --mem-s S [--activity A]] [--slice-ms 10] */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "emu.h"

#define MAX_CPU 1024

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
        stop = sig;
}

static double now_s(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* One command to joule-emu's control socket; the reply in buf. Returns 0, or -1 with a message printed. */
static int ctl(const char *root, const char *line, char *buf, size_t size)
{
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/%s", root, EMU_SOCK);
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
                fprintf(stderr, "emu-work: %s: %s\n", sa.sun_path, strerror(errno));
                if (fd >= 0)
                        close(fd);
                return -1;
        }
        size_t n = strlen(line), got = 0;
        if (write(fd, line, n) != (ssize_t)n || write(fd, "\n", 1) != 1) {
                fprintf(stderr, "emu-work: write: %s\n", strerror(errno));
                close(fd);
                return -1;
        }
        shutdown(fd, SHUT_WR);
        for (;;) {
                ssize_t k = read(fd, buf + got, size - 1 - got);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0)
                        break;
                got += (size_t)k;
                if (got == size - 1)
                        break;
        }
        close(fd);
        buf[got] = '\0';
        if (got == 0 || strncmp(buf, "error", 5) == 0) {
                fprintf(stderr, "emu-work: '%s': %s", line, got ? buf : "no reply\n");
                return -1;
        }
        return 0;
}

/* The number after "KEY": in text (after `after` when given), NAN if absent. */
static double json_num(const char *text, const char *after, const char *key)
{
        char pat[64];
        if (after && !(text = strstr(text, after)))
                return NAN;
        snprintf(pat, sizeof(pat), "\"%s\": ", key);
        const char *p = strstr(text, pat);
        return p ? strtod(p + strlen(pat), NULL) : NAN;
}

/* "0-3,5" → cpus[]; returns how many, -1 on a bad list. */
static int parse_cpu_list(const char *s, int *cpus, int max)
{
        int n = 0;
        for (const char *p = s; *p && *p != '\n';) {
                char *end;
                long a = strtol(p, &end, 10), b = a;
                if (end == p || a < 0 || a >= MAX_CPU)
                        return -1;
                p = end;
                if (*p == '-') {
                        b = strtol(p + 1, &end, 10);
                        if (end == p + 1 || b < a || b >= MAX_CPU)
                                return -1;
                        p = end;
                }
                for (long c = a; c <= b && n < max; c++)
                        cpus[n++] = (int)c;
                if (*p == ',')
                        p++;
                else if (*p && *p != '\n')
                        return -1;
        }
        return n;
}

static bool read_khz(int cpu, double *ret)
{
        char path[128], buf[64], *end;
        snprintf(path, sizeof(path), "/sys/devices/system/cpu/cpu%d/cpufreq/scaling_cur_freq", cpu);
        if (read_small(path, buf, sizeof(buf)) <= 0)
                return false;
        double v = strtod(buf, &end);
        if (end == buf || !(v > 0))
                return false;
        *ret = v;
        return true;
}

static int usage(void)
{
        fputs("Usage: emu-work --root DIR --kind compute|mixed|memory --iterations N [--cpus all|LIST]\n"
              "                [--cycles C --mem-s S [--activity A]] [--slice-ms 10]\n",
              stderr);
        return 2;
}

int main(int argc, char **argv)
{
        const char *root = NULL, *kind = NULL, *cpus_arg = "all", *cycles = NULL, *mem_s = NULL, *act = NULL;
        double iterations = 0, slice_s = 0.010;
        for (int i = 1; i + 1 < argc; i += 2) {
                const char *a = argv[i], *v = argv[i + 1];
                if (strcmp(a, "--root") == 0)
                        root = v;
                else if (strcmp(a, "--kind") == 0)
                        kind = v;
                else if (strcmp(a, "--cpus") == 0)
                        cpus_arg = v;
                else if (strcmp(a, "--cycles") == 0)
                        cycles = v;
                else if (strcmp(a, "--mem-s") == 0)
                        mem_s = v;
                else if (strcmp(a, "--activity") == 0)
                        act = v;
                else if (strcmp(a, "--iterations") == 0)
                        iterations = strtod(v, NULL);
                else if (strcmp(a, "--slice-ms") == 0)
                        slice_s = strtod(v, NULL) / 1e3;
                else
                        return usage();
        }
        if (argc % 2 == 0 || !root || !kind || !(iterations >= 1 && iterations <= 1e9) ||
            !(slice_s > 0 && slice_s <= 1) || (!cycles != !mem_s) || (act && !cycles))
                return usage();

        int cpus[MAX_CPU], ncpu;
        char text[16384], line[512];
        if (strcmp(cpus_arg, "all") == 0) {
                if (read_small("/sys/devices/system/cpu/online", text, sizeof(text)) <= 0) {
                        fprintf(stderr, "emu-work: /sys/devices/system/cpu/online: cannot read\n");
                        return 1;
                }
                ncpu = parse_cpu_list(text, cpus, MAX_CPU);
        } else
                ncpu = parse_cpu_list(cpus_arg, cpus, MAX_CPU);
        if (ncpu <= 0) {
                fprintf(stderr, "emu-work: bad CPU list '%s'\n", cpus_arg);
                return 2;
        }
        double khz;
        for (int i = 0; i < ncpu; i++)
                if (!read_khz(cpus[i], &khz)) {
                        fprintf(stderr,
                                "emu-work: cpu%d: no scaling_cur_freq (inside the node's namespace?)\n",
                                cpus[i]);
                        return 1;
                }

        struct sigaction sa = {.sa_handler = on_signal};
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);

        snprintf(line, sizeof(line), "work %s %s%s%s%s%s%s%s", cpus_arg, kind, cycles ? " " : "",
                 cycles ? cycles : "", mem_s ? " " : "", mem_s ? mem_s : "", act ? " " : "", act ? act : "");
        if (ctl(root, line, text, sizeof(text)) < 0)
                return 1;
        double t0 = json_num(text, NULL, "t_s"), e0 = json_num(text, "\"energy_uj\"", "node");
        double cyc = json_num(text, "\"work\"", "cycles"), mem = json_num(text, "\"work\"", "mem_s");
        if (isnan(t0) || isnan(e0) || isnan(cyc) || isnan(mem)) {
                fprintf(stderr, "emu-work: unexpected reply: %s", text);
                return 1;
        }

        /* progress in iterations; d(progress)/dt = 1 / T(f), f the slowest of the CPUs, read every slice */
        double progress = 0, wall0 = now_s(), t = wall0, f_time = 0;
        while (progress < iterations && !stop) {
                double f = INFINITY;
                for (int i = 0; i < ncpu; i++)
                        if (read_khz(cpus[i], &khz) && khz < f)
                                f = khz;
                if (!isfinite(f))
                        break;
                double T = cyc / (f * 1e3) + mem, left = (iterations - progress) * T;
                double dt_want = left < slice_s ? left : slice_s;
                struct timespec ts = {.tv_sec = (time_t)dt_want,
                                      .tv_nsec = (long)((dt_want - floor(dt_want)) * 1e9)};
                nanosleep(&ts, NULL);
                double t1 = now_s(), dt = t1 - t;
                t = t1;
                progress += dt / T;
                f_time += f * dt;
        }
        double wall = now_s() - wall0;
        snprintf(line, sizeof(line), "work %s idle", cpus_arg);
        if (ctl(root, line, text, sizeof(text)) < 0)
                return 1;
        double t1 = json_num(text, NULL, "t_s"), e1 = json_num(text, "\"energy_uj\"", "node");
        double n = progress < iterations ? floor(progress) : iterations;
        printf("{\"kind\": \"%s\", \"cpus\": \"%s\", \"iterations\": %.0f, \"completed\": %s, \"freq_khz\": "
               "%.0f, "
               "\"wall_s\": %.6f, \"t_start_s\": %.6f, \"t_end_s\": %.6f, \"time_s\": %.6f, \"energy_j\": "
               "%.6f, \"time_per_iteration_s\": %.9f, "
               "\"energy_per_iteration_j\": %.9f}\n",
               kind, cpus_arg, n, progress >= iterations ? "true" : "false", wall > 0 ? f_time / wall : 0,
               wall, t0, t1, t1 - t0, (e1 - e0) / 1e6, n > 0 ? (t1 - t0) / n : 0,
               n > 0 ? (e1 - e0) / 1e6 / n : 0);
        return progress >= iterations ? 0 : 1;
}
