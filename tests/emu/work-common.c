/* work-common.c - what emu-work and emu-work-mpi share (work-common.h). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "work-common.h"

#define EMU_SOCK "emu.sock" /* emu.h */

bool work_option(work_opts *o, const char *a, const char *v)
{
        if (strcmp(a, "--root") == 0)
                o->root = v;
        else if (strcmp(a, "--kind") == 0)
                o->kind = v;
        else if (strcmp(a, "--cpus") == 0)
                o->cpus_arg = v;
        else if (strcmp(a, "--cycles") == 0)
                o->cycles = v;
        else if (strcmp(a, "--mem-s") == 0)
                o->mem_s = v;
        else if (strcmp(a, "--slice-ms") == 0)
                o->slice_s = strtod(v, NULL) / 1e3;
        else if (strcmp(a, "--gpu-util-file") == 0)
                o->gpu_util_file = v;
        else if (strcmp(a, "--gpu-util") == 0)
                o->gpu_util = v;
        else
                return false;
        return true;
}

double work_now_s(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int work_gpu_util(const char *prog, const work_opts *o, bool busy)
{
        if (!o->gpu_util_file)
                return 0;
        char *end;
        double pct = o->gpu_util ? strtod(o->gpu_util, &end) : 95;
        if (o->gpu_util && (end == o->gpu_util || *end || !(pct >= 0 && pct <= 100))) {
                fprintf(stderr, "%s: --gpu-util %s: not a percentage\n", prog, o->gpu_util);
                return -1;
        }
        char tmp[4096];
        snprintf(tmp, sizeof(tmp), "%s.tmp", o->gpu_util_file);
        FILE *f = fopen(tmp, "we");
        if (!f) {
                fprintf(stderr, "%s: %s: %s\n", prog, tmp, strerror(errno));
                return -1;
        }
        fprintf(f, "%.0f %d\n", busy ? pct : 0, busy ? 40 : 0);
        if (fclose(f) != 0 || rename(tmp, o->gpu_util_file) < 0) {
                fprintf(stderr, "%s: %s: %s\n", prog, o->gpu_util_file, strerror(errno));
                return -1;
        }
        return 0;
}

int work_ctl(const char *prog, const char *root, const char *line, char *buf, size_t size)
{
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/%s", root, EMU_SOCK);
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
                fprintf(stderr, "%s: %s: %s\n", prog, sa.sun_path, strerror(errno));
                if (fd >= 0)
                        close(fd);
                return -1;
        }
        size_t n = strlen(line), got = 0;
        if (write(fd, line, n) != (ssize_t)n || write(fd, "\n", 1) != 1) {
                fprintf(stderr, "%s: write: %s\n", prog, strerror(errno));
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
                fprintf(stderr, "%s: '%s': %s", prog, line, got ? buf : "no reply\n");
                return -1;
        }
        return 0;
}

double work_json_num(const char *text, const char *after, const char *key)
{
        char pat[64];
        if (after && !(text = strstr(text, after)))
                return NAN;
        snprintf(pat, sizeof(pat), "\"%s\": ", key);
        const char *p = strstr(text, pat);
        return p ? strtod(p + strlen(pat), NULL) : NAN;
}

int work_parse_cpu_list(const char *s, int *cpus, int max)
{
        int n = 0;
        for (const char *p = s; *p && *p != '\n';) {
                char *end;
                long a = strtol(p, &end, 10), b = a;
                if (end == p || a < 0 || a >= WORK_MAX_CPU)
                        return -1;
                p = end;
                if (*p == '-') {
                        b = strtol(p + 1, &end, 10);
                        if (end == p + 1 || b < a || b >= WORK_MAX_CPU)
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

/* A small file read whole: true when it holds anything. */
static bool read_text(const char *path, char *buf, size_t size)
{
        FILE *f = fopen(path, "re");
        if (!f)
                return false;
        size_t n = fread(buf, 1, size - 1, f);
        fclose(f);
        buf[n] = '\0';
        return n > 0;
}

int work_cpus(const char *prog, const char *cpus_arg, int *cpus, int max)
{
        if (strcmp(cpus_arg, "all") != 0)
                return work_parse_cpu_list(cpus_arg, cpus, max);
        char text[16384];
        if (!read_text("/sys/devices/system/cpu/online", text, sizeof(text))) {
                fprintf(stderr, "%s: /sys/devices/system/cpu/online: cannot read\n", prog);
                return -2;
        }
        return work_parse_cpu_list(text, cpus, max);
}

bool work_read_khz(int cpu, double *ret)
{
        char path[128], buf[64], *end;
        snprintf(path, sizeof(path), "/sys/devices/system/cpu/cpu%d/cpufreq/scaling_cur_freq", cpu);
        if (!read_text(path, buf, sizeof(buf)))
                return false;
        double v = strtod(buf, &end);
        if (end == buf || !(v > 0))
                return false;
        *ret = v;
        return true;
}

double work_slowest_khz(const int *cpus, int ncpu)
{
        double f = INFINITY, khz;
        for (int i = 0; i < ncpu; i++)
                if (work_read_khz(cpus[i], &khz) && khz < f)
                        f = khz;
        return f;
}

void work_advance(double target, double f_khz, double cycles, double mem_s, double slice_s, double *progress,
                  double *t, double *f_time)
{
        double T = cycles / (f_khz * 1e3) + mem_s, left = (target - *progress) * T;
        double dt_want = left < slice_s ? left : slice_s;
        struct timespec ts = {.tv_sec = (time_t)dt_want,
                              .tv_nsec = (long)((dt_want - floor(dt_want)) * 1e9)};
        nanosleep(&ts, NULL);
        double t1 = work_now_s(), dt = t1 - *t;
        *t = t1;
        *progress += dt / T;
        *f_time += f_khz * dt;
}
