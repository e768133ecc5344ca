/* userfile.c - JOULE_REPORT's per-node CSV file (userfile.h). */
#include "userfile.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define HEADER                                                                                              \
        "record,time,job_id,step_id,node,name,policy,policy_th,iterations,time_s,time_per_iteration_s,"     \
        "energy_j,avg_power_w,pck_power_w,dram_power_w,avg_cpufreq_khz,def_cpufreq_khz,cpi,tpi,gbs,gflops," \
        "tag,value,message\n"

#define LINE_MAX_BYTES 2048

static void add(char *buf, size_t size, size_t *len, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void add(char *buf, size_t size, size_t *len, const char *fmt, ...)
{
        if (*len >= size - 1)
                return;
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(buf + *len, size - *len, fmt, ap);
        va_end(ap);
        if (n < 0)
                return;
        *len += (size_t)n < size - *len ? (size_t)n : size - *len - 1;
}

void jl_rt_csv_str(char *buf, size_t size, size_t *len, const char *s)
{
        s = s ? s : "";
        if (!strpbrk(s, ",\"\r\n")) {
                add(buf, size, len, "%s", s);
                return;
        }
        add(buf, size, len, "\"");
        for (; *s; s++)
                add(buf, size, len, *s == '"' ? "\"\"" : "%c", *s);
        add(buf, size, len, "\"");
}

/* A number, or an empty field for an unknown one (NAN). */
static void num(char *buf, size_t size, size_t *len, double v)
{
        if (isfinite(v))
                add(buf, size, len, ",%.9g", v);
        else
                add(buf, size, len, ",");
}

static void khz(char *buf, size_t size, size_t *len, unsigned long long v)
{
        if (v)
                add(buf, size, len, ",%llu", v);
        else
                add(buf, size, len, ",");
}

static void start(const jl_rt_userfile *f, char *buf, size_t size, size_t *len, const char *record)
{
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        struct tm tm;
        gmtime_r(&ts.tv_sec, &tm);
        char t[40];
        strftime(t, sizeof(t), "%Y-%m-%dT%H:%M:%S", &tm);
        add(buf, size, len, "%s,%s.%03ldZ,", record, t, ts.tv_nsec / 1000000);
        jl_rt_csv_str(buf, size, len, f->job_id);
        if (f->step_id >= 0)
                add(buf, size, len, ",%lld,", f->step_id);
        else
                add(buf, size, len, ",,");
        jl_rt_csv_str(buf, size, len, f->node);
        add(buf, size, len, ",");
}

static int put(jl_rt_userfile *f, char *buf, size_t size, size_t len)
{
        if (f->fd < 0)
                return -EBADF;
        if (len >= size - 1) /* cut: end the line anyway */
                len = size - 2;
        buf[len++] = '\n';
        ssize_t n = write(f->fd, buf, len);
        if (n == (ssize_t)len)
                return 0;
        int r = n < 0 ? -errno : -ENOSPC;
        jl_rt_userfile_close(f);
        return r;
}

int jl_rt_userfile_open(jl_rt_userfile *f, const char *path, const char *node, char *why, size_t whylen)
{
        f->fd = -1;
        if (!path || !*path || !node || !*node) {
                snprintf(why, whylen, "JOULE_REPORT: no file or node name");
                return -EINVAL;
        }
        int n = snprintf(f->path, sizeof(f->path), "%s.%s.csv", path, node);
        if (n < 0 || (size_t)n >= sizeof(f->path)) {
                snprintf(why, whylen, "JOULE_REPORT: the path is too long");
                return -ENAMETOOLONG;
        }
        snprintf(f->node, sizeof(f->node), "%s", node);
        int64_t step = -1;
        if (jl_rt_step_from_env(f->job_id, sizeof(f->job_id), &step) < 0)
                f->job_id[0] = '\0'; /* none, or not a number: the column stays empty */
        f->step_id = step;
        int fd = open(f->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0666);
        if (fd < 0) {
                int r = -errno;
                snprintf(why, whylen, "JOULE_REPORT: cannot write %s: %s", f->path, strerror(-r));
                return r;
        }
        struct stat st;
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
                close(fd);
                snprintf(why, whylen, "JOULE_REPORT: %s is not a regular file", f->path);
                return -EINVAL;
        }
        if (st.st_size == 0) {
                ssize_t w = write(fd, HEADER, strlen(HEADER));
                if (w != (ssize_t)strlen(HEADER)) {
                        int r = w < 0 ? -errno : -ENOSPC;
                        close(fd);
                        snprintf(why, whylen, "JOULE_REPORT: cannot write %s: %s", f->path, strerror(-r));
                        return r;
                }
        }
        f->fd = fd;
        return 0;
}

int jl_rt_userfile_app(jl_rt_userfile *f, const jl_rt_app_record *a)
{
        if (f->fd < 0)
                return -EBADF;
        char b[LINE_MAX_BYTES];
        size_t n = 0, z = sizeof(b);
        start(f, b, z, &n, "application");
        jl_rt_csv_str(b, z, &n, a->app_name);
        add(b, z, &n, ",");
        jl_rt_csv_str(b, z, &n, a->policy);
        num(b, z, &n, a->policy_th);
        add(b, z, &n, ","); /* iterations */
        num(b, z, &n, a->time_s);
        add(b, z, &n, ","); /* time per iteration */
        num(b, z, &n, a->energy_j);
        num(b, z, &n, a->avg_power_w);
        num(b, z, &n, a->pck_power_w);
        num(b, z, &n, a->dram_power_w);
        khz(b, z, &n, a->avg_cpufreq_khz);
        khz(b, z, &n, a->def_cpufreq_khz);
        num(b, z, &n, a->cpi);
        num(b, z, &n, a->tpi);
        num(b, z, &n, a->gbs);
        num(b, z, &n, a->gflops);
        add(b, z, &n, ",");
        jl_rt_csv_str(b, z, &n, a->tag);
        add(b, z, &n, ",,"); /* value, message */
        return put(f, b, z, n);
}

int jl_rt_userfile_loop(jl_rt_userfile *f, const jl_rt_loop_record *l)
{
        if (f->fd < 0)
                return -EBADF;
        char b[LINE_MAX_BYTES];
        size_t n = 0, z = sizeof(b);
        start(f, b, z, &n, "loop");
        jl_rt_csv_str(b, z, &n, l->loop_key);
        add(b, z, &n, ",,"); /* policy, policy_th */
        add(b, z, &n, ",%llu,", (unsigned long long)l->iterations);
        num(b, z, &n, l->time_per_iteration_s);
        add(b, z, &n, ","); /* energy */
        num(b, z, &n, l->avg_power_w);
        add(b, z, &n, ",,"); /* package, DRAM */
        khz(b, z, &n, l->avg_cpufreq_khz);
        add(b, z, &n, ","); /* default */
        num(b, z, &n, l->cpi);
        num(b, z, &n, l->tpi);
        num(b, z, &n, l->gbs);
        num(b, z, &n, l->gflops);
        add(b, z, &n, ",,,"); /* tag, value, message */
        return put(f, b, z, n);
}

int jl_rt_userfile_event(jl_rt_userfile *f, const char *kind, double value, const char *message)
{
        if (f->fd < 0)
                return -EBADF;
        char b[LINE_MAX_BYTES];
        size_t n = 0, z = sizeof(b);
        start(f, b, z, &n, "event");
        jl_rt_csv_str(b, z, &n, kind);
        add(b, z, &n, ",,,,,,,,,,,,,,,,"); /* policy … gflops, tag */
        num(b, z, &n, value);
        add(b, z, &n, ",");
        jl_rt_csv_str(b, z, &n, message);
        return put(f, b, z, n);
}

void jl_rt_userfile_close(jl_rt_userfile *f)
{
        if (f->fd >= 0)
                close(f->fd);
        f->fd = -1;
}
