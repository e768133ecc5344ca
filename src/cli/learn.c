/* learn.c - `joule learn`: the learning run an admin starts on an idle node (docs/policies.md, "The
 * learning run"). It declares a job step at jouled (as `joule launch` does), and at every available
 * frequency (jouled sets each: the set-cpufreq request, so only root and node.admins get anywhere, as jouled
 * decides) measures the node at rest and then every kernel (joule-kernels' compute, memory and mixed, or the
 * commands of --kernel-cmd): wall time, node, package and DRAM power from jouled's shared page, and CPI and
 * TPI from perf_event_open counters on the kernel's processes (NAN where the machine has none). It fits the
 * node's power curve and, when every sample has CPI and TPI, EAR's coefficients of every frequency pair
 * (src/runtime/learnfit.h), and writes them atomically to runtime.coefficients_dir/NODE.coeffs
 * (src/runtime/coeffs.h). The step's end gives back the frequencies in force before (jouled restores them),
 * also on SIGINT/SIGTERM and when learn is killed. `joule learn --show` prints a node's file. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/perf_event.h>
#include <math.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "client.h"
#include "coeffs.h"
#include "learnfit.h"
#include "log.h"
#include "macro.h"
#include "node.h"
#include "parse.h"
#include "timeutil.h"

#ifndef JOULE_KERNELS_PATH
#define JOULE_KERNELS_PATH "/usr/local/bin/joule-kernels"
#endif

#define LEARN_TIMEOUT_MS 5000
#define LEARN_CODES_MAX 16 /* the node at rest and up to 15 kernels */
#define LEARN_POLL_MS 5
#define LEARN_IDLE_WAIT_MS 10000 /* how long a step just ended may stay on jouled's page */

typedef struct {
        size_t code; /* 0: the node at rest */
        unsigned long khz;
        double wall_s, power_w, pkg_w, dram_w, cpi, tpi;
} sample;

typedef struct {
        uint64_t time_ms, node_uj, pkg_uj, dram_uj;
} page_sample;

static volatile sig_atomic_t stop_signal;
static volatile pid_t child_pid = -1;

static void on_signal(int sig)
{
        stop_signal = sig;
        if (child_pid > 0)
                kill(-child_pid, SIGTERM); /* the kernel's process group: sh -c CMD and what it starts */
}

static int usage(FILE *f)
{
        fputs(
            "Usage: joule learn [--kernel-cmd CMD]... [--kernels LIST] [--size N] [--freqs LIST]\n"
            "                   [--idle-ms MS] [--settle-ms MS] [--timeout-s S] [--output FILE]\n"
            "       joule learn --show [--output FILE]\n\n"
            "The learning run (root or node.admins, on an idle node): at every available frequency,\n"
            "set by jouled, measures the node at rest and each kernel (time, node, package and DRAM\n"
            "power, CPI and TPI where the machine has counters), fits the node's power curve and, with\n"
            "counters, EAR's coefficients of every frequency pair, and writes them to\n"
            "runtime.coefficients_dir/NODE.coeffs, which the runtime's min_energy uses.\n\n"
            "  --kernel-cmd CMD  run CMD (sh -c) as a kernel, repeatable; replaces the built-in ones\n"
            "  --kernels LIST    built-in kernels, from compute,memory,mixed (default: all three)\n"
            "  --size N          the built-in kernels' work (default 1: a few hundred ms at the top)\n"
            "  --freqs LIST      only these of the available frequencies (kHz, comma-separated)\n"
            "  --idle-ms MS      the node at rest, per frequency (default 1000; four of jouled's\n"
            "                    samples at least, and a shorter kernel is run again until then)\n"
            "  --settle-ms MS    after each frequency change (default 200)\n"
            "  --timeout-s S     one kernel's limit (default 600)\n"
            "  --output FILE     the file to write or show (default: runtime.coefficients_dir/NODE.coeffs)\n"
            "  --show            print the node's coefficient file\n",
            f);
        return f == stdout ? 0 : 2;
}

static int request(const char *path, jl_msg_request *req, char *why, size_t wl)
{
        jl_client_reply rep = {.fd = -1};
        why[0] = '\0';
        int r = jl_client_request(path, req, LEARN_TIMEOUT_MS, &rep, why, wl);
        if (r == 0 && rep.err < 0) {
                r = rep.err;
                snprintf(why, wl, "%s", rep.message);
        }
        jl_client_reply_free(&rep);
        return r;
}

static double now_s(void)
{
        return (double)now_ns(CLOCK_MONOTONIC) / 1e9;
}

static void sleep_ms(unsigned ms)
{
        struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR && !stop_signal)
                ;
}

/* perf_event_open for pid (its children too), counting from its exec; -1 where the machine has none. */
static int counter_open(pid_t pid, uint64_t config)
{
        struct perf_event_attr a;
        memset(&a, 0, sizeof(a));
        a.size = sizeof(a);
        a.type = PERF_TYPE_HARDWARE;
        a.config = config;
        a.disabled = 1;
        a.enable_on_exec = 1;
        a.inherit = 1;
        a.exclude_kernel = 1;
        a.exclude_hv = 1;
        long fd = syscall(SYS_perf_event_open, &a, pid, -1, -1, PERF_FLAG_FD_CLOEXEC);
        return fd < 0 ? -1 : (int)fd;
}

static double counter_read(int fd)
{
        uint64_t v;
        if (fd < 0 || read(fd, &v, sizeof(v)) != (ssize_t)sizeof(v))
                return NAN;
        return (double)v;
}

/* Power (W) between jouled's samples taken inside [lo_ms, hi_ms], less the first and the last interval when
 * there are three or more (the sample before the first one inside may lie before the kernel began its work,
 * e.g. a program's start); NAN with fewer than two samples or a domain the page does not have. */
static void powers_between(const page_sample *ps, size_t n, uint64_t lo_ms, uint64_t hi_ms, sample *s)
{
        const page_sample *a = NULL, *b = NULL;
        size_t first = n, last = n, inside = 0;
        for (size_t i = 0; i < n; i++) {
                if (ps[i].time_ms < lo_ms || ps[i].time_ms > hi_ms)
                        continue;
                if (first == n)
                        first = i;
                last = i;
                inside++;
        }
        if (inside >= 4) {
                first++;
                last--;
        }
        if (inside >= 2) {
                a = &ps[first];
                b = &ps[last];
        }
        s->power_w = s->pkg_w = s->dram_w = NAN;
        if (!a || !b || b->time_ms <= a->time_ms)
                return;
        double dt_ms = (double)(b->time_ms - a->time_ms);
#define W(field)                                                                                            \
        (a->field == UINT64_MAX || b->field == UINT64_MAX || b->field < a->field                            \
             ? NAN                                                                                          \
             : (double)(b->field - a->field) / dt_ms / 1000.0)
        s->power_w = W(node_uj);
        s->pkg_w = W(pkg_uj);
        s->dram_w = W(dram_uj);
#undef W
}

/* Starts argv in a process group of its own, held at a gate until its counters are open; the gate's write
 * end comes back in *ret_gate (closing it lets the kernel go). */
static int spawn(char *const *argv, pid_t *ret_pid, int *ret_gate, int fds[3])
{
        int gate[2];
        if (pipe2(gate, O_CLOEXEC) < 0)
                return -errno;
        fflush(NULL);
        pid_t pid = fork();
        if (pid < 0) {
                int e = errno;
                close(gate[0]);
                close(gate[1]);
                return -e;
        }
        if (pid == 0) {
                setpgid(0, 0);
                close(gate[1]);
                char b;
                while (read(gate[0], &b, 1) < 0 && errno == EINTR)
                        ;
                int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
                if (null >= 0)
                        dup2(null, STDOUT_FILENO);
                signal(SIGINT, SIG_DFL);
                signal(SIGTERM, SIG_DFL);
                execvp(argv[0], argv);
                fprintf(stderr, "joule learn: %s: %s\n", argv[0], strerror(errno));
                _exit(127);
        }
        setpgid(pid, pid); /* as the child does: no window where a signal misses the group */
        child_pid = pid;
        fds[0] = counter_open(pid, PERF_COUNT_HW_CPU_CYCLES);
        fds[1] = counter_open(pid, PERF_COUNT_HW_INSTRUCTIONS);
        fds[2] = counter_open(pid, PERF_COUNT_HW_CACHE_MISSES);
        close(gate[0]);
        *ret_pid = pid;
        *ret_gate = gate[1];
        return 0;
}

/* One measurement at the frequency in force: argv (NULL: the node at rest for idle_ms). The power is taken
 * between jouled's samples inside the run, less its first and last 5 % (a process's start and exit). A
 * kernel that ends before min_ms (four of jouled's sampling intervals: fewer samples would fall inside) is
 * run again until min_ms have passed; its time is then the mean of the runs, and *ret_runs says how many. */
static int measure_one(const jl_rt_shm *shm, char *const *argv, unsigned idle_ms, unsigned min_ms,
                       unsigned timeout_s, sample *s, unsigned *ret_runs, char *why, size_t wl)
{
        size_t cap = 4096, n = 0;
        _cleanup_free_ page_sample *ps = malloc(cap * sizeof(*ps));
        if (!ps)
                return -ENOMEM;
        int gate = -1, fds[3] = {-1, -1, -1};
        double counts[3] = {0, 0, 0};
        unsigned runs = 0;
        pid_t pid = -1;
        int status = 0, r = 0;
        if (argv) {
                r = spawn(argv, &pid, &gate, fds);
                if (r < 0)
                        return r;
        }
        double t0 = now_s(), t1 = t0;
        uint64_t t0_ms = now_ns(CLOCK_MONOTONIC) / 1000000;
        if (argv)
                close(gate); /* the kernel goes */
        for (;;) {
                jl_rt_energy e;
                if (jl_rt_shm_energy(shm, &e) == 0 && (n == 0 || e.time_ms != ps[n - 1].time_ms)) {
                        if (n == cap) {
                                page_sample *m = realloc(ps, 2 * cap * sizeof(*ps));
                                if (!m) {
                                        r = -ENOMEM;
                                        break;
                                }
                                ps = m;
                                cap *= 2;
                        }
                        ps[n++] = (page_sample){e.time_ms, e.node_uj, e.pkg_uj, e.dram_uj};
                }
                t1 = now_s();
                if (argv) {
                        pid_t w = waitpid(pid, &status, WNOHANG);
                        if (w == pid) {
                                runs++;
                                for (int i = 0; i < 3; i++) {
                                        counts[i] += counter_read(fds[i]); /* NAN stays NAN */
                                        if (fds[i] >= 0)
                                                close(fds[i]);
                                        fds[i] = -1;
                                }
                                pid = -1;
                                child_pid = -1;
                                if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0) || stop_signal ||
                                    (t1 - t0) * 1000 >= min_ms)
                                        break;
                                r = spawn(argv, &pid, &gate, fds); /* too short: again */
                                if (r < 0)
                                        break;
                                close(gate);
                                continue;
                        }
                        if (w < 0 && errno != EINTR) {
                                r = -errno;
                                break;
                        }
                        if (t1 - t0 > timeout_s) {
                                kill(-pid, SIGKILL);
                                waitpid(pid, &status, 0);
                                pid = -1;
                                r = -ETIMEDOUT;
                                snprintf(why, wl, "the kernel ran longer than %u s", timeout_s);
                                break;
                        }
                } else if (t1 - t0 >= idle_ms / 1000.0 || stop_signal)
                        break;
                sleep_ms(LEARN_POLL_MS);
        }
        if (pid > 0) {
                /* no kernel is left behind */
                kill(-pid, SIGKILL);
                while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                        ;
        }
        child_pid = -1;
        t1 = now_s();
        for (int i = 0; i < 3; i++)
                if (fds[i] >= 0)
                        close(fds[i]);
        double cycles = counts[0], instr = counts[1], misses = counts[2];
        if (r < 0)
                return r;
        if (stop_signal)
                return -EINTR;
        if (argv && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
                snprintf(why, wl, "the kernel %s %d",
                         WIFSIGNALED(status) ? "was killed by signal" : "exited with status",
                         WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
                return -ECHILD;
        }
        double span = t1 - t0;
        s->wall_s = runs > 1 ? span / runs : span;
        uint64_t trim = (uint64_t)(span * 1000 * 0.05);
        powers_between(ps, n, t0_ms + trim, t0_ms + (uint64_t)(span * 1000) - trim, s);
        *ret_runs = runs;
        s->cpi = instr > 0 && isfinite(cycles) ? cycles / instr : NAN;
        s->tpi = instr > 0 && isfinite(misses) ? misses / instr : NAN;
        if (!isfinite(s->power_w)) {
                snprintf(
                    why, wl,
                    "%.3f s is shorter than two of jouled's samples (node.sample_ms): lengthen the kernel "
                    "(--size, --idle-ms)",
                    s->wall_s);
                return -ERANGE;
        }
        return 0;
}

static int set_freq(const char *path, const char *job, int64_t step, const cpu_set_t *cpus,
                    unsigned long khz, char *why, size_t wl)
{
        jl_msg_request req = {.op = JL_OP_SET_CPUFREQ, .step_id = step, .khz = khz};
        snprintf(req.job_id, sizeof(req.job_id), "%s", job);
        jl_msg_request_add_cpuset(&req, cpus);
        return request(path, &req, why, wl);
}

static int mkdir_parents(const char *dir)
{
        char buf[PATH_MAX];
        if (snprintf(buf, sizeof(buf), "%s", dir) >= (int)sizeof(buf))
                return -ENAMETOOLONG;
        for (char *p = buf + 1;; p++) {
                if (*p != '/' && *p != '\0')
                        continue;
                char c = *p;
                *p = '\0';
                if (mkdir(buf, 0755) < 0 && errno != EEXIST)
                        return -errno;
                *p = c;
                if (!c)
                        return 0;
        }
}

/* Writes text to path atomically: a temporary file beside it, fsync, rename. */
static int write_atomic(const char *path, const char *text)
{
        char tmp[PATH_MAX + 32];
        snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid());
        int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd < 0)
                return -errno;
        size_t len = strlen(text), off = 0;
        int r = 0;
        while (off < len) {
                ssize_t w = write(fd, text + off, len - off);
                if (w < 0) {
                        if (errno == EINTR)
                                continue;
                        r = -errno;
                        break;
                }
                off += (size_t)w;
        }
        if (r == 0 && fsync(fd) < 0)
                r = -errno;
        if (close(fd) < 0 && r == 0)
                r = -errno;
        if (r == 0 && rename(tmp, path) < 0)
                r = -errno;
        if (r < 0)
                unlink(tmp);
        return r;
}

static int default_path(const cli_context *ctx, const char *node, char *buf, size_t size)
{
        const char *dir = ctx->config.runtime.coefficients_dir ? ctx->config.runtime.coefficients_dir
                                                               : JL_COEFFS_DIR_DEFAULT;
        if (!jl_coeffs_node_valid(node))
                return -EINVAL;
        return snprintf(buf, size, "%s/%s.coeffs", dir, node) < (int)size ? 0 : -ENAMETOOLONG;
}

static int show(const cli_context *ctx, const char *output)
{
        char path[PATH_MAX], node[64] = "";
        if (!output) {
                if (ctx->config.node.name)
                        snprintf(node, sizeof(node), "%s", ctx->config.node.name);
                else if (gethostname(node, sizeof(node) - 1) < 0)
                        node[0] = '\0';
                if (default_path(ctx, node, path, sizeof(path)) < 0) {
                        log_error(EINVAL, "learn: no coefficient file for node name '%s'", node);
                        return 1;
                }
                output = path;
        }
        _cleanup_fclose_ FILE *f = fopen(output, "re");
        if (!f) {
                log_error(errno, "learn: %s: %m (an admin writes it with joule learn)", output);
                return 1;
        }
        size_t cap = 1u << 22;
        _cleanup_free_ char *text = malloc(cap + 1);
        if (!text) {
                log_error(ENOMEM, "learn: out of memory");
                return 1;
        }
        size_t len = fread(text, 1, cap, f);
        text[len] = '\0';
        jl_coeffs c;
        char why[256] = "";
        int r = jl_coeffs_parse(text, len, NULL, &c, why, sizeof(why));
        if (r < 0) {
                log_error(r, "learn: %s is not a coefficient file joule uses: %s", output, why);
                return 1;
        }
        fputs(text, stdout);
        fprintf(
            stderr,
            "joule learn: %s: node %s, learnt %s, %zu frequencies %lu..%lu kHz; power curve %.2f W at rest, "
            "V(f_min)/V(f_max) %.3f (residual %.2f W); %zu counter pairs\n",
            output, c.node, c.date, c.nfreqs, c.freqs[0], c.freqs[c.nfreqs - 1], c.curve.static_w,
            c.curve.vmin_ratio, c.curve.rms_w, c.npairs);
        jl_coeffs_free(&c);
        return 0;
}

/* The learning run's state, so that any exit path restores what it changed. */
typedef struct {
        const char *path;
        char job[32];
        int64_t step;
        bool step_open;
} learn_run;

static void end_step(learn_run *lr)
{
        if (!lr->step_open)
                return;
        /* jouled gives back the frequencies in force before the step */
        jl_msg_request req = {.op = JL_OP_JOB_END, .step_id = lr->step};
        snprintf(req.job_id, sizeof(req.job_id), "%s", lr->job);
        char why[256];
        int r = request(lr->path, &req, why, sizeof(why));
        if (r < 0 && r != -ENOENT)
                log_warning(r, "learn: ending job %s step %" PRId64 " (the frequencies' restore): %s",
                            lr->job, lr->step, why[0] ? why : strerror(-r));
        lr->step_open = false;
}

static int parse_freq_list(const char *s, unsigned long *out, size_t max, size_t *ret_n)
{
        _cleanup_free_ char *copy = strdup(s);
        size_t n = 0;
        if (!copy)
                return -ENOMEM;
        for (char *save = NULL, *w = strtok_r(copy, ",", &save); w; w = strtok_r(NULL, ",", &save)) {
                uint64_t u;
                if (n == max || parse_u64(w, &u) < 0 || u == 0 || u > 100000000u)
                        return -EINVAL;
                out[n++] = (unsigned long)u;
        }
        if (n == 0)
                return -EINVAL;
        *ret_n = n;
        return 0;
}

int verb_learn(cli_context *ctx, int argc, char **argv)
{
        static const struct option opts[] = {
            {"kernel-cmd", required_argument, NULL, 'k'},
            {"kernels", required_argument, NULL, 'K'},
            {"size", required_argument, NULL, 's'},
            {"freqs", required_argument, NULL, 'f'},
            {"idle-ms", required_argument, NULL, 'i'},
            {"settle-ms", required_argument, NULL, 'S'},
            {"timeout-s", required_argument, NULL, 't'},
            {"output", required_argument, NULL, 'o'},
            {"show", no_argument, NULL, 'w'},
            {"help", no_argument, NULL, 'h'},
            {0},
        };
        const char *cmds[LEARN_CODES_MAX], *output = NULL, *kernels = "compute,memory,mixed",
                                           *freqs_arg = NULL;
        size_t ncmds = 0;
        uint64_t size = 1, idle_ms = 1000, settle_ms = 200, timeout_s = 600;
        bool want_show = false;
        int c;
        while ((c = getopt_long(argc, argv, "h", opts, NULL)) >= 0) {
                switch (c) {
                case 'k':
                        if (ncmds == LEARN_CODES_MAX - 1) {
                                log_error(EINVAL, "learn: at most %d kernels", LEARN_CODES_MAX - 1);
                                return 2;
                        }
                        cmds[ncmds++] = optarg;
                        break;
                case 'K':
                        kernels = optarg;
                        break;
                case 'f':
                        freqs_arg = optarg;
                        break;
                case 'o':
                        output = optarg;
                        break;
                case 'w':
                        want_show = true;
                        break;
                case 's':
                case 'i':
                case 'S':
                case 't': {
                        uint64_t v, *dst = c == 's'   ? &size
                                           : c == 'i' ? &idle_ms
                                           : c == 'S' ? &settle_ms
                                                      : &timeout_s;
                        uint64_t lo = c == 'S' ? 0 : 1, hi = c == 's' ? 1000 : c == 't' ? 86400 : 600000;
                        if (parse_u64(optarg, &v) < 0 || v < lo || v > hi) {
                                log_error(EINVAL, "learn: '%s' is not a whole number %" PRIu64 "..%" PRIu64,
                                          optarg, lo, hi);
                                return 2;
                        }
                        *dst = v;
                        break;
                }
                case 'h':
                        return usage(stdout);
                default:
                        return usage(stderr);
                }
        }
        if (optind != argc)
                return usage(stderr);
        if (want_show)
                return show(ctx, output);
        /* the power is taken between jouled's samples inside a run less 5 % at each end: four sampling
         * intervals leave three, so that two samples always fall inside (fewer missed them now and then, by
         * the phase of jouled's clock alone). The node at rest is measured that long at least, and a kernel
         * that ends sooner is run again until then. */
        unsigned min_ms = (unsigned)ceil(4 * ctx->config.node.sample_ms);
        if (idle_ms < min_ms) {
                fprintf(stderr,
                        "joule learn: --idle-ms %" PRIu64 " is shorter than four of jouled's samples "
                        "(node.sample_ms %g): the node at rest is measured for %u ms\n",
                        idle_ms, ctx->config.node.sample_ms, min_ms);
                idle_ms = min_ms;
        }

        /* the kernels: argv of each, code 1.. (code 0 is the node at rest) */
        const char *names[LEARN_CODES_MAX] = {"idle"};
        char *kargv[LEARN_CODES_MAX][6];
        char sizebuf[32];
        size_t ncodes = 1;
        _cleanup_free_ char *klist = strdup(kernels);
        const char *kprog = getenv("JOULE_KERNELS");
        if (!kprog || !*kprog)
                kprog = JOULE_KERNELS_PATH;
        snprintf(sizebuf, sizeof(sizebuf), "%" PRIu64, size);
        if (!klist) {
                log_error(ENOMEM, "learn: out of memory");
                return 1;
        }
        if (ncmds) {
                for (size_t i = 0; i < ncmds; i++) {
                        names[ncodes] = cmds[i];
                        kargv[ncodes][0] = (char *)"/bin/sh";
                        kargv[ncodes][1] = (char *)"-c";
                        kargv[ncodes][2] = (char *)cmds[i];
                        kargv[ncodes][3] = NULL;
                        ncodes++;
                }
        } else
                for (char *save = NULL, *w = strtok_r(klist, ",", &save); w;
                     w = strtok_r(NULL, ",", &save)) {
                        if (strcmp(w, "compute") != 0 && strcmp(w, "memory") != 0 &&
                            strcmp(w, "mixed") != 0) {
                                log_error(EINVAL, "learn: --kernels: '%s' is not compute, memory or mixed",
                                          w);
                                return 2;
                        }
                        if (ncodes == LEARN_CODES_MAX)
                                break;
                        names[ncodes] = w;
                        kargv[ncodes][0] = (char *)kprog;
                        kargv[ncodes][1] = (char *)"--kernel";
                        kargv[ncodes][2] = w;
                        kargv[ncodes][3] = (char *)"--size";
                        kargv[ncodes][4] = sizebuf;
                        kargv[ncodes][5] = NULL;
                        ncodes++;
                }
        if (ncodes < 2) {
                log_error(EINVAL, "learn: no kernel to run");
                return 2;
        }

        /* the CPUs (learn's affinity: the kernels run there) and their frequencies */
        cpu_set_t cpus;
        CPU_ZERO(&cpus);
        if (sched_getaffinity(0, sizeof(cpus), &cpus) < 0) {
                log_error(errno, "learn: sched_getaffinity: %m");
                return 1;
        }
        int first = -1;
        for (int i = 0; i < CPU_SETSIZE && first < 0; i++)
                if (CPU_ISSET(i, &cpus))
                        first = i;
        unsigned long avail[JL_COEFFS_FREQS_MAX], freqs[JL_COEFFS_FREQS_MAX];
        int na = first >= 0 ? jl_rt_cpufreq_list(first, avail, JL_COEFFS_FREQS_MAX) : -ENOENT;
        if (na < 2) {
                log_error(na < 0 ? -na : ENOENT,
                          "learn: cpu%d has no cpufreq with two frequencies or more: nothing to learn",
                          first);
                return 1;
        }
        size_t nf = 0;
        if (freqs_arg) {
                unsigned long want[JL_COEFFS_FREQS_MAX];
                size_t nw;
                if (parse_freq_list(freqs_arg, want, JL_COEFFS_FREQS_MAX, &nw) < 0) {
                        log_error(EINVAL, "learn: --freqs '%s' is not a list of frequencies in kHz",
                                  freqs_arg);
                        return 2;
                }
                for (int i = 0; i < na; i++)
                        for (size_t j = 0; j < nw; j++)
                                if (avail[i] == want[j]) {
                                        freqs[nf++] = avail[i];
                                        break;
                                }
                if (nf != nw || nf < 2) {
                        log_error(
                            EINVAL,
                            "learn: --freqs: every frequency must be one of cpu%d's %d, and two at least",
                            first, na);
                        return 2;
                }
        } else {
                memcpy(freqs, avail, (size_t)na * sizeof(freqs[0]));
                nf = (size_t)na;
        }

        /* jouled: its page (the node's name, the energies) and a step of our own */
        learn_run lr = {.path = jl_client_socket_path(ctx->config.node.socket), .step = 0};
        jl_rt_shm shm = {0};
        char why[256] = "";
        int r = jl_rt_shm_open(lr.path, &shm, why, sizeof(why));
        if (r < 0) {
                log_error(r, "learn: jouled is not reachable at %s (%s): a learning run measures through it",
                          lr.path, why);
                return 1;
        }
        jl_shm_page pg;
        if (!jl_shm_read(shm.page, &pg)) {
                log_error(EPROTO, "learn: jouled's page cannot be read");
                jl_rt_shm_close(&shm);
                return 1;
        }
        char node[64];
        snprintf(node, sizeof(node), "%.63s", pg.node);
        /* a step that has just ended stays on the page until jouled's next sample and its check of the
         * step's processes: give it LEARN_IDLE_WAIT_MS to go before calling the node busy */
        if (pg.job_id[0]) {
                fprintf(stderr,
                        "joule learn: job %.63s step %" PRId64 " is on the node; waiting up to %d s "
                        "for it to end\n",
                        pg.job_id, pg.step_id, LEARN_IDLE_WAIT_MS / 1000);
                for (int waited = 0; waited < LEARN_IDLE_WAIT_MS && pg.job_id[0]; waited += LEARN_POLL_MS) {
                        jl_shm_page now;
                        sleep_ms(LEARN_POLL_MS);
                        if (jl_shm_read(shm.page, &now))
                                pg = now;
                }
        }
        if (pg.job_id[0]) {
                log_error(EBUSY,
                          "learn: the node is not idle: job %.63s step %" PRId64
                          " runs; learn on an idle node",
                          pg.job_id, pg.step_id);
                jl_rt_shm_close(&shm);
                return 1;
        }
        char path[PATH_MAX];
        if (!output) {
                if (default_path(ctx, node, path, sizeof(path)) < 0) {
                        log_error(EINVAL, "learn: jouled's node name '%s' cannot name a coefficient file",
                                  node);
                        jl_rt_shm_close(&shm);
                        return 1;
                }
                output = path;
        }

        snprintf(lr.job, sizeof(lr.job), "%" PRIu64, now_ns(CLOCK_REALTIME) / 1000);
        jl_msg_request req = {.op = JL_OP_JOB_BEGIN, .step_id = 0};
        snprintf(req.job_id, sizeof(req.job_id), "%s", lr.job);
        jl_msg_request_add_cpuset(&req, &cpus);
        r = request(lr.path, &req, why, sizeof(why));
        if (r < 0) {
                log_error(r, "learn: jouled did not begin a job step: %s", why[0] ? why : strerror(-r));
                jl_rt_shm_close(&shm);
                return 1;
        }
        lr.step_open = true;
        jl_msg_request wreq = {.op = JL_OP_WATCH_PID, .step_id = 0, .pid = getpid()};
        snprintf(wreq.job_id, sizeof(wreq.job_id), "%s", lr.job);
        if (request(lr.path, &wreq, why, sizeof(why)) < 0)
                log_warning(0, "learn: jouled will not end the step if learn is killed: %s", why);
        fprintf(stderr, "joule learn: node %s, job %s step 0: %zu frequencies x (rest + %zu kernels)\n",
                node, lr.job, nf, ncodes - 1);

        struct sigaction sa = {.sa_handler = on_signal};
        sigemptyset(&sa.sa_mask);
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);

        size_t ns = nf * ncodes, k = 0;
        bool repeated[LEARN_CODES_MAX] = {false};
        _cleanup_free_ sample *smp = calloc(ns, sizeof(*smp));
        int ret = 0;
        if (!smp) {
                log_error(ENOMEM, "learn: out of memory");
                ret = 1;
        }
        printf("%-10s %-24s %10s %10s %10s %10s %8s %8s\n", "khz", "kernel", "time_s", "node_w", "pkg_w",
               "dram_w", "cpi", "tpi");
        for (size_t fi = 0; fi < nf && ret == 0; fi++) {
                r = set_freq(lr.path, lr.job, lr.step, &cpus, freqs[fi], why, sizeof(why));
                if (r < 0) {
                        if (r == -EPERM)
                                log_error(r,
                                          "learn: jouled refused to set %lu kHz (%s): a learning run is for "
                                          "root and node.admins",
                                          freqs[fi], why);
                        else
                                log_error(r, "learn: jouled did not set %lu kHz: %s", freqs[fi],
                                          why[0] ? why : strerror(-r));
                        ret = 1;
                        break;
                }
                sleep_ms((unsigned)settle_ms);
                for (size_t code = 0; code < ncodes && ret == 0 && !stop_signal; code++) {
                        sample *s = &smp[k];
                        *s = (sample){.code = code, .khz = freqs[fi]};
                        unsigned runs = 0;
                        r = measure_one(&shm, code ? kargv[code] : NULL, (unsigned)idle_ms, min_ms,
                                        (unsigned)timeout_s, s, &runs, why, sizeof(why));
                        if (r == -EINTR || stop_signal)
                                break;
                        if (r < 0) {
                                log_error(r, "learn: %s at %lu kHz: %s", names[code], freqs[fi],
                                          why[0] ? why : strerror(-r));
                                ret = 1;
                                break;
                        }
                        if (runs > 1 && !repeated[code]) {
                                repeated[code] = true;
                                fprintf(
                                    stderr,
                                    "joule learn: %s takes %.3f s, shorter than four of jouled's samples "
                                    "(node.sample_ms %g): run %u times at %lu kHz (and as often as "
                                    "needed at the others)\n",
                                    names[code], s->wall_s, ctx->config.node.sample_ms, runs, freqs[fi]);
                        }
                        const char *shown = names[code];
                        if (strlen(shown) > 24)
                                shown += strlen(shown) - 24; /* a command's tail says most */
                        printf("%-10lu %-24.24s %10.4f %10.3f %10.3f %10.3f %8.3f %8.5f\n", s->khz, shown,
                               s->wall_s, s->power_w, s->pkg_w, s->dram_w, s->cpi, s->tpi);
                        fflush(stdout);
                        k++;
                }
                if (stop_signal)
                        break;
        }
        end_step(&lr);
        jl_rt_shm_close(&shm);
        if (stop_signal) {
                fprintf(
                    stderr,
                    "joule learn: stopped by signal %d: the frequencies are given back, nothing written\n",
                    (int)stop_signal);
                return 128 + stop_signal;
        }
        if (ret)
                return ret;

        /* the fits */
        double *khz = calloc(ns, sizeof(double)), *pw = calloc(ns, sizeof(double));
        size_t *codes = calloc(ns, sizeof(size_t));
        jl_coeffs out = {.nfreqs = nf};
        if (!khz || !pw || !codes) {
                free(khz);
                free(pw);
                free(codes);
                log_error(ENOMEM, "learn: out of memory");
                return 1;
        }
        bool counters = true;
        for (size_t i = 0; i < ns; i++) {
                khz[i] = (double)smp[i].khz;
                pw[i] = smp[i].power_w;
                codes[i] = smp[i].code;
                if (smp[i].code && !(isfinite(smp[i].cpi) && isfinite(smp[i].tpi)))
                        counters = false;
        }
        double b[LEARN_CODES_MAX];
        r = jl_learn_fit_curve(khz, pw, codes, ns, ncodes, (double)freqs[0], (double)freqs[nf - 1],
                               &out.curve, b);
        free(khz);
        free(pw);
        free(codes);
        if (r < 0) {
                log_error(r, "learn: the power curve cannot be fitted to these samples (a kernel whose "
                             "power does not rise "
                             "with the frequency?)");
                return 1;
        }
        snprintf(out.node, sizeof(out.node), "%s", node);
        memcpy(out.freqs, freqs, nf * sizeof(freqs[0]));
        time_t now = time(NULL);
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(out.date, sizeof(out.date), "%Y-%m-%dT%H:%M:%SZ", &tm);
        size_t nk = ncodes - 1, skipped = 0;
        if (counters && nk >= 3) {
                out.pairs = calloc(nf * nf, sizeof(*out.pairs));
                double pf[LEARN_CODES_MAX], cf[LEARN_CODES_MAX], tf[LEARN_CODES_MAX], pt[LEARN_CODES_MAX],
                    ct[LEARN_CODES_MAX];
                for (size_t fa = 0; fa < nf && out.pairs; fa++)
                        for (size_t fb = 0; fb < nf; fb++) {
                                if (fa == fb)
                                        continue;
                                for (size_t j = 0; j < nk; j++) {
                                        const sample *sa_ = &smp[fa * ncodes + 1 + j],
                                                     *sb = &smp[fb * ncodes + 1 + j];
                                        pf[j] = sa_->power_w;
                                        cf[j] = sa_->cpi;
                                        tf[j] = sa_->tpi;
                                        pt[j] = sb->power_w;
                                        ct[j] = sb->cpi;
                                }
                                jl_coeffs_pair *p = &out.pairs[out.npairs];
                                if (jl_learn_fit_pair(pf, cf, tf, pt, ct, nk, &p->k) == 0) {
                                        p->from_khz = freqs[fa];
                                        p->to_khz = freqs[fb];
                                        out.npairs++;
                                } else
                                        skipped++;
                        }
        }
        _cleanup_free_ char *text = NULL;
        const char *dir_end = strrchr(output, '/');
        if (dir_end && dir_end != output) {
                char dir[PATH_MAX];
                snprintf(dir, sizeof(dir), "%.*s", (int)(dir_end - output), output);
                (void)mkdir_parents(dir);
        }
        r = jl_coeffs_format(&out, &text);
        if (r == 0)
                r = write_atomic(output, text);
        if (r < 0) {
                log_error(r, "learn: %s: cannot write it: %s", output, strerror(-r));
                jl_coeffs_free(&out);
                return 1;
        }
        fprintf(stderr,
                "joule learn: wrote %s: power curve %.2f W at rest, V(f_min)/V(f_max) %.3f (residual %.2f "
                "W); %s",
                output, out.curve.static_w, out.curve.vmin_ratio, out.curve.rms_w,
                counters ? ""
                         : "no hardware counters: no counter pairs, the runtime projects model-free with "
                           "this curve\n");
        if (counters)
                fprintf(stderr, "%zu counter pairs%s\n", out.npairs,
                        nk < 3    ? " (3 kernels at least are needed)"
                        : skipped ? " (some pairs could not be fitted)"
                                  : "");
        jl_coeffs_free(&out);
        return 0;
}
