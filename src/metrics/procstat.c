/* procstat.c - the "proc" provider: CPU utilization and steal of the whole machine from /proc/stat, and the
 * CPU utilization of a process tree from /proc/PID/stat, plus the parsers and readers behind them (see
 * procstat.h). */
#include "procstat.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fileio.h"
#include "macro.h"
#include "parse.h"
#include "provider.h"
#include "timeutil.h"

/* Copy the next space-separated token of a line into tok; *p advances past it. Returns the token's length,
 * 0 at the end of the line, -E2BIG when it does not fit (tok then holds its beginning). */
static int next_token(const char **p, char *tok, size_t size)
{
        const char *s = *p;
        while (*s == ' ' || *s == '\t')
                s++;
        size_t n = 0;
        while (*s && !isspace((unsigned char)*s)) {
                if (n + 1 >= size) {
                        tok[n] = '\0';
                        return -E2BIG;
                }
                tok[n++] = *s++;
        }
        tok[n] = '\0';
        *p = s;
        return (int)n;
}

/* One "cpu..." line after its label: at least `min` unsigned fields, at most `max` stored in out[]. */
static int parse_tick_fields(const char *s, uint64_t *out, size_t min, size_t max)
{
        char tok[32];
        size_t n = 0;
        for (;;) {
                int r = next_token(&s, tok, sizeof(tok));
                if (r < 0)
                        return strspn(tok, "0123456789") == sizeof(tok) - 1 ? -ERANGE : -EINVAL;
                if (r == 0)
                        break;
                uint64_t v;
                r = parse_u64(tok, &v);
                if (r < 0)
                        return r;
                if (n < max)
                        out[n] = v;
                n++;
        }
        if (*s && *s != '\n')
                return -EINVAL;
        return n >= min ? 0 : -EINVAL;
}

int jl_parse_proc_stat_cpu(const char *text, jl_cpu_times *ret)
{
        if (!text)
                return -EINVAL;
        uint64_t f[10] = {0};
        bool have_total = false;
        int ncpu = 0;
        for (const char *line = text; *line;) {
                const char *eol = strchr(line, '\n');
                if (strncmp(line, "cpu", 3) == 0) {
                        const char *p = line + 3;
                        if (*p == ' ') {
                                if (have_total)
                                        return -EINVAL;
                                int r = parse_tick_fields(p, f, 8, ARRAY_SIZE(f));
                                if (r < 0)
                                        return r;
                                have_total = true;
                        } else if (isdigit((unsigned char)*p)) {
                                if (!have_total)
                                        return -EINVAL; /* the aggregate line comes first */
                                while (isdigit((unsigned char)*p))
                                        p++;
                                if (*p != ' ')
                                        return -EINVAL;
                                uint64_t g[10];
                                int r = parse_tick_fields(p, g, 8, ARRAY_SIZE(g));
                                if (r < 0)
                                        return r;
                                ncpu++;
                        } else
                                return -EINVAL;
                }
                if (!eol)
                        break;
                line = eol + 1;
        }
        if (!have_total)
                return -EINVAL;
        *ret = (jl_cpu_times){
            .user = f[0],
            .nice = f[1],
            .system = f[2],
            .idle = f[3],
            .iowait = f[4],
            .irq = f[5],
            .softirq = f[6],
            .steal = f[7],
            .guest = f[8],
            .guest_nice = f[9],
        };
        return ncpu;
}

static double tick_delta(uint64_t prev, uint64_t now)
{
        return now > prev ? (double)(now - prev) : 0.0;
}

int jl_cpu_times_delta(const jl_cpu_times *prev, const jl_cpu_times *now, double *ret_util,
                       double *ret_steal)
{
        double busy = tick_delta(prev->user, now->user) + tick_delta(prev->nice, now->nice) +
                      tick_delta(prev->system, now->system) + tick_delta(prev->irq, now->irq) +
                      tick_delta(prev->softirq, now->softirq) + tick_delta(prev->steal, now->steal);
        double total = busy + tick_delta(prev->idle, now->idle) + tick_delta(prev->iowait, now->iowait);
        if (!(total > 0))
                return -EAGAIN;
        *ret_util = busy / total;
        *ret_steal = tick_delta(prev->steal, now->steal) / total;
        return 0;
}

/* A /proc/PID/stat field: optional '-', then digits. */
static bool is_integer(const char *t)
{
        if (*t == '-')
                t++;
        if (!*t)
                return false;
        for (; *t; t++)
                if (!isdigit((unsigned char)*t))
                        return false;
        return true;
}

static int parse_pid_field(const char *t, pid_t *ret)
{
        uint64_t v;
        int r = parse_u64(t, &v);
        if (r < 0)
                return r;
        if (v > INT_MAX)
                return -ERANGE;
        *ret = (pid_t)v;
        return 0;
}

int jl_parse_pid_stat(const char *text, jl_pid_stat *ret)
{
        if (!text)
                return -EINVAL;
        const char *open = strchr(text, '('), *close = strrchr(text, ')');
        if (!open || !close || close < open || open == text || open[-1] != ' ')
                return -EINVAL;

        jl_pid_stat st = {0};
        char tok[32];
        size_t n = (size_t)(open - 1 - text);
        if (n == 0 || n >= sizeof(tok))
                return -EINVAL;
        memcpy(tok, text, n);
        tok[n] = '\0';
        int r = parse_pid_field(tok, &st.pid);
        if (r < 0)
                return r;
        n = MIN((size_t)(close - open - 1), sizeof(st.comm) - 1);
        memcpy(st.comm, open + 1, n);
        st.comm[n] = '\0';

        /* Fields 3.. after the comm; field k is token k-3. */
        const char *p = close + 1;
        if (*p != ' ')
                return -EINVAL;
        size_t k = 0;
        for (;; k++) {
                r = next_token(&p, tok, sizeof(tok));
                if (r < 0)
                        return strspn(tok, "0123456789") == sizeof(tok) - 1 ? -ERANGE : -EINVAL;
                if (r == 0)
                        break;
                if (k == 0) {
                        if (r != 1 || !isalpha((unsigned char)tok[0]))
                                return -EINVAL;
                        st.state = tok[0];
                        continue;
                }
                if (!is_integer(tok))
                        return -EINVAL;
                switch (k + 3) {
                case 4:
                        r = parse_pid_field(tok, &st.ppid);
                        break;
                case 14:
                        r = parse_u64(tok, &st.utime);
                        break;
                case 15:
                        r = parse_u64(tok, &st.stime);
                        break;
                case 16:
                        r = parse_u64(tok, &st.cutime);
                        break;
                case 17:
                        r = parse_u64(tok, &st.cstime);
                        break;
                case 20:
                        r = parse_u64(tok, &st.num_threads);
                        break;
                case 22:
                        r = parse_u64(tok, &st.starttime);
                        break;
                default:
                        r = 0;
                }
                if (r < 0)
                        return r;
        }
        if (*p && *p != '\n')
                return -EINVAL;
        if (k < 22 - 2) /* tokens for fields 3..22 */
                return -EINVAL;
        *ret = st;
        return 0;
}

int jl_proc_stat_open(jl_proc_stat_reader *r)
{
        int fd = open_ro("/proc/stat");
        if (fd < 0)
                return fd;
        r->fd = fd;
        return 0;
}

int jl_proc_stat_read(jl_proc_stat_reader *r, jl_cpu_times *ret)
{
        for (;;) {
                if (!r->buf) {
                        r->size = r->size ? r->size : 16384;
                        r->buf = malloc(r->size);
                        if (!r->buf)
                                return -ENOMEM;
                }
                int n = read_text_fd(r->fd, r->buf, r->size);
                if (n == -EFBIG && r->size < 64u << 20) {
                        free(r->buf);
                        r->buf = NULL;
                        r->size *= 4;
                        continue;
                }
                if (n < 0)
                        return n;
                return jl_parse_proc_stat_cpu(r->buf, ret);
        }
}

void jl_proc_stat_close(jl_proc_stat_reader *r)
{
        if (r->fd >= 0)
                close(r->fd);
        free(r->buf);
        *r = (jl_proc_stat_reader)JL_PROC_STAT_READER_INIT;
}

/* A stack of pids to visit. */
typedef struct {
        pid_t *items;
        size_t n, cap;
} pid_stack;

#define TREE_MAX 65536 /* members visited at most: a guard against pid reuse making a loop */

static int push_children(pid_stack *s, const char *text)
{
        const char *p = text;
        char tok[32];
        int r;
        while ((r = next_token(&p, tok, sizeof(tok))) > 0) {
                pid_t pid;
                if (parse_pid_field(tok, &pid) < 0 || pid <= 0)
                        return -EINVAL;
                if (s->n == s->cap) {
                        size_t ncap = s->cap ? s->cap * 2 : 64;
                        pid_t *q = realloc(s->items, ncap * sizeof(*q));
                        if (!q)
                                return -ENOMEM;
                        s->items = q;
                        s->cap = ncap;
                }
                s->items[s->n++] = pid;
                if (*p == '\n')
                        p++;
        }
        return r;
}

/* Queue the children of every thread of pid. A process that vanished meanwhile has none. The task directory
 * is listed with getdents64() into a small buffer (opendir() would allocate 32 KiB for a handful of
 * entries). */
static int queue_children(pid_stack *s, pid_t pid)
{
        char path[64];
        snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
        _cleanup_close_ int dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
                return 0;
        int r = 0;
        char dents[1024] __attribute__((aligned(8)));
        char buf[8192];
        for (;;) {
                ssize_t nd = getdents64(dfd, dents, sizeof(dents));
                if (nd <= 0)
                        break; /* the end, or the process went away while listing */
                for (ssize_t o = 0; o < nd && r >= 0;) {
                        const struct dirent64 *de = (const struct dirent64 *)(dents + o);
                        o += de->d_reclen;
                        if (!isdigit((unsigned char)de->d_name[0]))
                                continue;
                        char cpath[128];
                        snprintf(cpath, sizeof(cpath), "/proc/%d/task/%.16s/children", (int)pid, de->d_name);
                        int n = read_text_path(cpath, buf, sizeof(buf));
                        if (n == -EFBIG) {
                                /* Thousands of children of one thread: read it into a larger buffer. */
                                _cleanup_free_ char *big = malloc(1 << 20);
                                if (!big) {
                                        r = -ENOMEM;
                                        break;
                                }
                                n = read_text_path(cpath, big, 1 << 20);
                                if (n > 0)
                                        r = push_children(s, big);
                                continue;
                        }
                        if (n > 0)
                                r = push_children(s, buf);
                }
                if (r < 0)
                        break;
        }
        return r;
}

/* Read and parse /proc/PID/stat: through fd when one is kept open (fd >= 0), else by path. -ESRCH when
 * the process is gone. */
static int read_pid_stat(pid_t pid, int fd, jl_pid_stat *ret)
{
        char path[64], buf[2048];
        int n;
        if (fd >= 0)
                n = read_text_fd(fd, buf, sizeof(buf));
        else {
                snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
                n = read_text_path(path, buf, sizeof(buf));
        }
        if (n == -ENOENT)
                return -ESRCH;
        if (n < 0)
                return n;
        return jl_parse_pid_stat(buf, ret);
}

/* The tree's ticks; root_st: the root's stat when the caller has just read it (else NULL). */
static int tree_ticks(pid_t root, const jl_pid_stat *root_st, uint64_t *ret_ticks)
{
        if (root <= 0)
                return -EINVAL;
        pid_stack s = {0};
        uint64_t ticks = 0;
        size_t visited = 0;
        int r = 0;
        s.items = malloc(64 * sizeof(*s.items));
        if (!s.items)
                return -ENOMEM;
        s.cap = 64;
        s.items[s.n++] = root;
        while (s.n > 0 && visited < TREE_MAX) {
                pid_t pid = s.items[--s.n];
                jl_pid_stat st;
                int n = 0;
                if (pid == root && root_st)
                        st = *root_st;
                else
                        n = read_pid_stat(pid, -1, &st);
                if (n < 0) {
                        if (pid == root) {
                                r = n;
                                break;
                        }
                        continue; /* exited meanwhile: its time is in its reaper's cutime by now */
                }
                visited++;
                ticks += st.utime + st.stime + st.cutime + st.cstime;
                r = queue_children(&s, pid);
                if (r < 0)
                        break;
        }
        free(s.items);
        if (r < 0)
                return r;
        *ret_ticks = ticks;
        return 0;
}

int jl_proc_tree_ticks(pid_t root, uint64_t *ret_ticks)
{
        return tree_ticks(root, NULL, ret_ticks);
}

/* ---- the provider ---- */

/* The tree is walked at most about this often (its tick counts move in 1/CLK_TCK steps anyway); in between,
 * reads only look at the root's own stat, on a descriptor kept open, and answer -EAGAIN (the next figure
 * covers the whole time since the last one). The slack lets a 100 ms sampler, whose ticks jitter, walk on
 * every tick. */
#define TREE_WALK_NS (100 * NSEC_PER_MSEC)
#define TREE_WALK_SLACK_NS (5 * NSEC_PER_MSEC)

typedef struct {
        jl_proc_stat_reader stat;
        jl_cpu_times prev;
        int prev_ncpu;
        pid_t pid;
        bool have_tree;
        bool walked; /* a read has walked the tree since open */
        int root_fd; /* /proc/PID/stat of the root: the PID stays ours until its parent reaps it */
        uint64_t prev_tree_ticks, prev_tree_ns;
        long clk_tck;
} proc_state;

static void proc_close(void *state)
{
        proc_state *st = state;
        if (!st)
                return;
        if (st->root_fd >= 0)
                close(st->root_fd);
        jl_proc_stat_close(&st->stat);
        free(st);
}

static int proc_open(const jl_provider_config *cfg, jl_channels *channels, jl_notes *notes, void **ret_state)
{
        proc_state *st = calloc(1, sizeof(*st));
        if (!st)
                return -ENOMEM;
        st->stat = (jl_proc_stat_reader)JL_PROC_STAT_READER_INIT;
        st->root_fd = -1;
        int r = jl_proc_stat_open(&st->stat);
        if (r >= 0)
                r = jl_proc_stat_read(&st->stat, &st->prev);
        if (r < 0) {
                jl_notes_add(notes, "proc", r, "/proc/stat: %s (is /proc mounted?)", jl_errno_hint(r));
                proc_close(st);
                return r;
        }
        st->prev_ncpu = r;
        st->clk_tck = sysconf(_SC_CLK_TCK);
        if (st->clk_tck <= 0)
                st->clk_tck = 100;

        if (cfg && cfg->pid > 0) {
                st->pid = cfg->pid;
                char path[64];
                snprintf(path, sizeof(path), "/proc/%d/stat", (int)st->pid);
                st->root_fd = open_ro(path);
                jl_pid_stat root = {0};
                r = st->root_fd >= 0         ? read_pid_stat(st->pid, st->root_fd, &root)
                    : st->root_fd == -ENOENT ? -ESRCH
                                             : st->root_fd;
                if (r >= 0)
                        r = tree_ticks(st->pid, &root, &st->prev_tree_ticks);
                if (r < 0)
                        jl_notes_add(notes, "proc/process-utilization", r, "process %d: %s", (int)st->pid,
                                     r == -ESRCH ? "no such process (it exited already?)"
                                                 : jl_errno_hint(r));
                else {
                        st->have_tree = true;
                        st->prev_tree_ns = mono_ns();
                }
        }

        size_t before = channels->n;
        static const char *const names[] = {"cpu-utilization", "cpu-steal", "process-utilization"};
        for (size_t i = 0; i < (st->have_tree ? 3u : 2u); i++) {
                jl_channel ch = {.provider = "proc", .kind = JL_KIND_UTILIZATION, .scope = JL_SCOPE_OTHER};
                snprintf(ch.name, sizeof(ch.name), "%s", names[i]);
                r = jl_channels_add(channels, &ch);
                if (r < 0) {
                        channels->n = before;
                        proc_close(st);
                        return r;
                }
        }
        *ret_state = st;
        return 0;
}

static int proc_read(void *state, jl_value *values)
{
        proc_state *st = state;
        jl_cpu_times now;
        int ncpu = jl_proc_stat_read(&st->stat, &now);
        if (ncpu >= 0) {
                double util, steal;
                int r = jl_cpu_times_delta(&st->prev, &now, &util, &steal);
                values[0] = (jl_value){.gauge = util, .err = r};
                values[1] = (jl_value){.gauge = steal, .err = r};
                if (r == 0)
                        st->prev = now; /* with no tick in between, keep the baseline */
                st->prev_ncpu = ncpu > 0 ? ncpu : st->prev_ncpu;
        } else
                values[0].err = values[1].err = ncpu;

        if (!st->have_tree)
                return ncpu < 0 ? ncpu : 0;

        /* Walk the tree on the first read, at most every TREE_WALK_NS after, and whenever the root has
         * exited: a zombie root means the command is over and this read may be the last one (joule measure
         * takes its last sample before it reaps the command), so it must see the whole tree's time. */
        uint64_t ticks, t = mono_ns();
        jl_pid_stat root = {0};
        int r = read_pid_stat(st->pid, st->root_fd, &root);
        if (r >= 0 && st->walked && t - st->prev_tree_ns < TREE_WALK_NS - TREE_WALK_SLACK_NS &&
            root.state != 'Z' && root.state != 'X') {
                values[2].err = -EAGAIN; /* no new figure yet: the baseline is kept */
                return ncpu < 0 ? ncpu : 0;
        }
        if (r >= 0) {
                r = tree_ticks(st->pid, &root, &ticks);
                st->walked = true;
        }
        if (r < 0) {
                values[2].err = r;
                return ncpu < 0 ? ncpu : 0;
        }
        long cpus = st->prev_ncpu > 0 ? st->prev_ncpu : sysconf(_SC_NPROCESSORS_ONLN);
        double wall_s = (double)(t - st->prev_tree_ns) / 1e9;
        /* Shorter than a tick, the tick counts say nothing yet: keep the baseline (as for /proc/stat). */
        if (cpus <= 0 || wall_s < 1.0 / (double)st->clk_tck) {
                values[2].err = -EAGAIN;
                return 0;
        }
        /* Members that vanished without a reaper in the tree take their ticks with them: never negative. */
        double cpu_s =
            ticks > st->prev_tree_ticks ? (double)(ticks - st->prev_tree_ticks) / (double)st->clk_tck : 0.0;
        double u = cpu_s / (wall_s * (double)cpus);
        values[2] = (jl_value){.gauge = u > 1.0 ? 1.0 : u};
        st->prev_tree_ticks = ticks;
        st->prev_tree_ns = t;
        return 0;
}

const jl_provider_ops jl_provider_proc = {
    .name = "proc",
    .description = "CPU utilization and steal (/proc/stat) and of the measured process tree (/proc/PID)",
    .min_period_ns = 500 * NSEC_PER_MSEC, /* slow gauges: read twice a second on ticks */
    .open = proc_open,
    .read = proc_read,
    .close = proc_close,
};
