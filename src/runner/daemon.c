/* daemon.c - the measurement machine's job loop (joule-runner and `joule jobs run`): the store with retries
 * and reconnects, status reporting, the per-machine lock, temperature gating, child processes (git clone,
 * the cleanup script, the warm-up load), the pass itself and the wait for the next one. Storing a run and
 * the control workload are in daemon-store.c. See daemon.h and docs/cluster.md. */
#include <errno.h>
#include <execinfo.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon-internal.h"
#include "hwmon.h"
#include "timeutil.h"

static const char *const status_names[_JL_STATUS_MAX] = {
    [JL_STATUS_JOB_NO] = "job_no",
    [JL_STATUS_JOB_START] = "job_start",
    [JL_STATUS_JOB_END] = "job_end",
    [JL_STATUS_JOB_ERROR] = "job_error",
    [JL_STATUS_COOLDOWN] = "cooldown",
    [JL_STATUS_WARMUP] = "warmup",
    [JL_STATUS_CLEANUP_START] = "cleanup_start",
    [JL_STATUS_CLEANUP_STOP] = "cleanup_stop",
    [JL_STATUS_CONTROL_START] = "measurement_control_start",
    [JL_STATUS_CONTROL_END] = "measurement_control_end",
    [JL_STATUS_CONTROL_ERROR] = "measurement_control_error",
};

const char *jl_runner_status_name(jl_runner_status s)
{
        return s >= 0 && s < _JL_STATUS_MAX ? status_names[s] : "none";
}

void runner_say(jl_runner *r, int level, int err, const char *fmt, ...)
{
        if (!r->o.log)
                return;
        char msg[2048];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        r->o.log(r->o.userdata, level, err, msg);
}

int64_t runner_now_us(void)
{
        return (int64_t)(now_ns(CLOCK_REALTIME) / NSEC_PER_USEC);
}

/* ---- signals and waiting ---- */

static void note_signal(jl_runner *r, int sig)
{
        if (r->stop_signal)
                return;
        r->stop_signal = sig;
        r->stop_deadline_ns = mono_ns() + (uint64_t)(JL_RUNNER_STOP_GRACE_S * 1e9);
        runner_say(r, LOG_LEVEL_NOTICE, 0, "%s received: stopping", sig == SIGINT ? "SIGINT" : "SIGTERM");
}

void runner_signal_seen(jl_runner *r, int sig)
{
        note_signal(r, sig);
}

/* Poll the signalfd and `fd` (-1: none) for up to timeout_ns. 1: fd readable, 0: timeout, -EINTR: a signal
 * (recorded in r->stop_signal). */
int runner_poll(jl_runner *r, int fd, uint64_t timeout_ns)
{
        struct pollfd p[2];
        nfds_t n = 0;
        int si = -1, fi = -1;
        if (r->o.signal_fd >= 0) {
                p[n] = (struct pollfd){.fd = r->o.signal_fd, .events = POLLIN};
                si = (int)n++;
        }
        if (fd >= 0) {
                p[n] = (struct pollfd){.fd = fd, .events = POLLIN};
                fi = (int)n++;
        }
        uint64_t ms = (timeout_ns + NSEC_PER_MSEC - 1) / NSEC_PER_MSEC;
        int k = poll(p, n, ms > INT_MAX ? INT_MAX : (int)ms);
        if (k < 0)
                return errno == EINTR ? 0 : -errno;
        if (si >= 0 && (p[si].revents & POLLIN)) {
                struct signalfd_siginfo info;
                if (read(r->o.signal_fd, &info, sizeof(info)) == (ssize_t)sizeof(info)) {
                        note_signal(r, (int)info.ssi_signo);
                        return -EINTR;
                }
        }
        if (fi >= 0 && (p[fi].revents & (POLLIN | POLLHUP | POLLERR)))
                return 1;
        return 0;
}

/* Sleep; -EINTR at once when stopped or when a signal comes. */
int runner_sleep(jl_runner *r, double seconds)
{
        if (r->stop_signal)
                return -EINTR;
        uint64_t end = mono_ns() + (uint64_t)(fmax(seconds, 0) * 1e9);
        for (;;) { /* bounded by `end` */
                uint64_t now = mono_ns();
                if (now >= end)
                        return 0;
                if (runner_poll(r, -1, end - now) == -EINTR)
                        return -EINTR;
        }
}

/* Sleep even when stopping (a result is still to be stored), but never past the stop deadline. */
static void sleep_must(jl_runner *r, double seconds)
{
        uint64_t end = mono_ns() + (uint64_t)(fmax(seconds, 0) * 1e9);
        if (r->stop_signal && end > r->stop_deadline_ns)
                end = r->stop_deadline_ns;
        for (;;) { /* bounded by `end` */
                uint64_t now = mono_ns();
                if (now >= end)
                        return;
                runner_poll(r, -1, end - now);
        }
}

/* ---- the database: connect, retry, reconnect ---- */

static bool transient(int k)
{
        switch (-k) {
        case ECONNRESET:
        case ECONNREFUSED:
        case ECONNABORTED:
        case ETIMEDOUT:
        case EBUSY:
        case EAGAIN:
        case EDEADLK:
        case ENOTCONN:
        case EHOSTUNREACH:
        case ENETUNREACH:
        case EPIPE:
                return true;
        default:
                return false;
        }
}

static int ensure_connected(jl_runner *r)
{
        int k;
        if (!r->store) {
                k = jl_store_open(r->c->database.url, 0, &r->store, r->err, sizeof(r->err));
                if (k < 0) {
                        r->store = NULL;
                        return k == -ENOENT ? -ECONNREFUSED : k; /* a file that is not there yet */
                }
                r->broken = false;
                r->listening = false;
        } else if (r->broken) {
                k = jl_store_reconnect(r->store);
                if (k < 0) {
                        snprintf(r->err, sizeof(r->err), "%s", jl_store_error(r->store));
                        return transient(k) ? k : -ECONNREFUSED;
                }
                r->broken = false;
        }
        if (!r->listening && jl_store_get_backend(r->store) == JL_STORE_POSTGRES) {
                k = jl_store_listen(r->store, JL_RUNNER_CHANNEL);
                if (k < 0) {
                        snprintf(r->err, sizeof(r->err), "%s", jl_store_error(r->store));
                        r->broken = transient(k);
                        return k;
                }
                r->listening = true; /* listened to again by jl_store_reconnect() */
        }
        return 0;
}

int runner_db(jl_runner *r, const char *what, runner_db_fn fn, void *arg, bool must)
{
        double backoff = 0.5;
        for (;;) { /* bounded: by a signal (or, for `must`, the stop deadline after it) */
                int k = ensure_connected(r);
                if (k >= 0) {
                        k = fn(r, arg);
                        if (k >= 0) {
                                if (r->outage) {
                                        runner_say(r, LOG_LEVEL_NOTICE, 0, "the database answers again");
                                        r->outage = false;
                                }
                                return k;
                        }
                        snprintf(r->err, sizeof(r->err), "%s", jl_store_error(r->store));
                        jl_store_rollback(r->store);
                }
                if (!transient(k)) {
                        runner_say(r, LOG_LEVEL_ERROR, k, "%s: %s", what, r->err[0] ? r->err : strerror(-k));
                        return k;
                }
                if (!r->outage) {
                        runner_say(
                            r, LOG_LEVEL_WARNING, k,
                            "%s: the database is unreachable (%s); retrying with backoff up to %.0f s", what,
                            r->err[0] ? r->err : strerror(-k), JL_RUNNER_BACKOFF_MAX_S);
                        r->outage = true;
                }
                if (r->store && k != -EBUSY)
                        r->broken = true;
                if (!must) {
                        if (runner_sleep(r, backoff) < 0)
                                return -EINTR;
                } else {
                        if (r->stop_signal && mono_ns() >= r->stop_deadline_ns) {
                                runner_say(
                                    r, LOG_LEVEL_ERROR, k,
                                    "%s: giving up %.0f s after the stop signal: the database is still "
                                    "unreachable",
                                    what, JL_RUNNER_STOP_GRACE_S);
                                return k;
                        }
                        sleep_must(r, backoff);
                }
                backoff = fmin(backoff * 2, JL_RUNNER_BACKOFF_MAX_S);
        }
}

/* ---- status ---- */

static int write_status(jl_runner *r, void *arg)
{
        (void)arg;
        jl_store *s = r->store;
        int64_t now = runner_now_us();
        _cleanup_stmt_ jl_stmt *ins = NULL, *up = NULL;
        int k = jl_store_begin(s);
        if (k >= 0)
                k = jl_store_prepare(
                    s,
                    "INSERT INTO runner_status (machine_id, time_us, status, job_id, message) "
                    "VALUES ($1, $2, $3, $4, $5)",
                    &ins);
        if (k >= 0 && (k = jl_stmt_bind_int64(ins, 1, r->c->machine.id)) >= 0 &&
            (k = jl_stmt_bind_int64(ins, 2, now)) >= 0 &&
            (k = jl_stmt_bind_text(ins, 3, jl_runner_status_name(r->status))) >= 0 &&
            (k = r->status_job > 0 ? jl_stmt_bind_int64(ins, 4, r->status_job)
                                   : jl_stmt_bind_null(ins, 4)) >= 0 &&
            (k = jl_stmt_bind_text(ins, 5, r->status_msg[0] ? r->status_msg : NULL)) >= 0)
                k = jl_stmt_step(ins);
        /* the control workload's error stays until an operator clears it: only the runner that found it, or
         * a new finding, writes it over */
        if (k >= 0)
                k = jl_store_prepare(s,
                                     "UPDATE machines SET status = $2, updated_us = $3 WHERE id = $1 AND "
                                     "(status IS NULL OR status <> 'measurement_control_error' OR $2 = "
                                     "'measurement_control_error')",
                                     &up);
        if (k >= 0 && (k = jl_stmt_bind_int64(up, 1, r->c->machine.id)) >= 0 &&
            (k = jl_stmt_bind_text(up, 2, jl_runner_status_name(r->status))) >= 0 &&
            (k = jl_stmt_bind_int64(up, 3, now)) >= 0)
                k = jl_stmt_step(up);
        if (k >= 0)
                k = jl_store_commit(s);
        return k < 0 ? k : 0;
}

/* Write a pending status with one attempt (no retry: the next change or pass writes it). */
static void flush_status(jl_runner *r)
{
        if (!r->status_pending || !r->store || r->broken)
                return;
        int k = write_status(r, NULL);
        if (k >= 0) {
                r->status_pending = false;
                return;
        }
        snprintf(r->err, sizeof(r->err), "%s", jl_store_error(r->store));
        jl_store_rollback(r->store);
        if (transient(k) && k != -EBUSY)
                r->broken = true;
        if (!transient(k))
                runner_say(r, LOG_LEVEL_WARNING, k, "cannot report the status %s: %s",
                           jl_runner_status_name(r->status), r->err);
}

void jl_runner_report(jl_runner *r, jl_runner_status st, int64_t job_id, const char *message)
{
        if (st == r->status && job_id == r->status_job)
                return;
        r->status = st;
        r->status_job = job_id;
        snprintf(r->status_msg, sizeof(r->status_msg), "%s", message ? message : "");
        r->status_pending = true;
        int level =
            st == JL_STATUS_JOB_ERROR || st == JL_STATUS_CONTROL_ERROR ? LOG_LEVEL_WARNING : LOG_LEVEL_INFO;
        const char *sep = message && *message ? ": " : "";
        if (job_id > 0)
                runner_say(r, level, 0, "status %s (job %" PRId64 ")%s%s", jl_runner_status_name(st), job_id,
                           sep, message && *message ? message : "");
        else
                runner_say(r, level, 0, "status %s%s%s", jl_runner_status_name(st), sep,
                           message && *message ? message : "");
        flush_status(r);
}

static int write_temp(jl_runner *r, void *arg)
{
        double t = *(double *)arg;
        _cleanup_stmt_ jl_stmt *up = NULL;
        int k = jl_store_prepare(
            r->store, "UPDATE machines SET current_temperature_c = $2, updated_us = $3 WHERE id = $1", &up);
        if (k >= 0 && (k = jl_stmt_bind_int64(up, 1, r->c->machine.id)) >= 0 &&
            (k = jl_stmt_bind_double(up, 2, t)) >= 0 &&
            (k = jl_stmt_bind_int64(up, 3, runner_now_us())) >= 0)
                k = jl_stmt_step(up);
        return k < 0 ? k : 0;
}

/* ---- the per-machine lock ---- */

int jl_runner_default_lock_dir(char *buf, size_t size)
{
        const char *rd = getenv("RUNTIME_DIRECTORY"), *xdg = getenv("XDG_RUNTIME_DIR");
        int n;
        if (rd && *rd) {
                /* systemd may list several, separated by ':' */
                const char *colon = strchr(rd, ':');
                n = snprintf(buf, size, "%.*s", colon ? (int)(colon - rd) : (int)strlen(rd), rd);
        } else if (geteuid() == 0)
                n = snprintf(buf, size, "/run/joule");
        else if (xdg && *xdg)
                n = snprintf(buf, size, "%s/joule", xdg);
        else
                n = snprintf(buf, size, "/tmp/joule-%u", (unsigned)geteuid());
        return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

/* Take the machine's lock: 1 held, 0 busy (wait = false), -EINTR, or the errno of open/flock. */
int runner_lock(jl_runner *r, bool wait)
{
        if (r->lock_fd < 0) {
                if (mkdir(r->o.lock_dir, 0755) < 0 && errno != EEXIST)
                        return -errno;
                r->lock_fd = open(r->lock_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
                if (r->lock_fd < 0)
                        return -errno;
        }
        for (;;) { /* bounded: by a signal */
                if (flock(r->lock_fd, LOCK_EX | LOCK_NB) == 0)
                        return 1;
                if (errno != EWOULDBLOCK && errno != EINTR)
                        return -errno;
                if (!wait)
                        return 0;
                if (runner_sleep(r, 0.2) < 0)
                        return -EINTR;
        }
}

void runner_unlock(jl_runner *r)
{
        if (r->lock_fd >= 0)
                flock(r->lock_fd, LOCK_UN);
}

/* ---- child processes ---- */

int runner_spawn(jl_runner *r, char *const argv[], const char *cwd, double timeout_s, char *tail,
                 size_t tailsize)
{
        int pfd[2];
        if (pipe2(pfd, O_CLOEXEC) < 0)
                return -errno;
        pid_t pid = fork();
        if (pid < 0) {
                int e = -errno;
                close(pfd[0]);
                close(pfd[1]);
                return e;
        }
        if (pid == 0) {
                sigset_t none;
                sigemptyset(&none);
                sigprocmask(SIG_SETMASK, &none, NULL);
                signal(SIGPIPE, SIG_DFL);
                setpgid(0, 0);
                int nul = open("/dev/null", O_RDONLY);
                if (nul >= 0)
                        dup2(nul, 0);
                dup2(pfd[1], 1);
                dup2(pfd[1], 2);
                if (cwd && chdir(cwd) < 0)
                        _exit(126);
                setenv("GIT_TERMINAL_PROMPT", "0", 1); /* never wait for a password */
                execvp(argv[0], argv);
                dprintf(2, "cannot run %s: %s\n", argv[0], strerror(errno));
                _exit(127);
        }
        close(pfd[1]);
        setpgid(pid, pid);
        fcntl(pfd[0], F_SETFL, O_NONBLOCK);
        size_t len = 0;
        if (tail && tailsize)
                tail[0] = '\0';
        uint64_t start = mono_ns(), deadline = start + (uint64_t)(timeout_s * 1e9), kill_at = 0;
        int result = 0, status = 0;
        bool open_pipe = true, killed = false;
        for (;;) { /* bounded: the timeout, then SIGKILL after 2 s */
                pid_t w = waitpid(pid, &status, WNOHANG);
                if (w == pid)
                        break;
                uint64_t now = mono_ns();
                if (!killed && (now >= deadline || r->stop_signal)) {
                        result = r->stop_signal ? -EINTR : -ETIMEDOUT;
                        kill(-pid, SIGTERM);
                        killed = true;
                        kill_at = now + 2 * NSEC_PER_SEC;
                } else if (killed && now >= kill_at) {
                        kill(-pid, SIGKILL);
                        kill_at = UINT64_MAX;
                }
                int k = runner_poll(r, open_pipe ? pfd[0] : -1, 100 * NSEC_PER_MSEC);
                if (k == 1 && open_pipe) {
                        char buf[4096];
                        ssize_t n = read(pfd[0], buf, sizeof(buf));
                        if (n == 0)
                                open_pipe = false;
                        else if (n > 0 && tail && tailsize > 1) {
                                /* keep the last tailsize - 1 bytes */
                                size_t nn = (size_t)n;
                                if (nn >= tailsize - 1) {
                                        memcpy(tail, buf + nn - (tailsize - 1), tailsize - 1);
                                        len = tailsize - 1;
                                } else {
                                        if (len + nn > tailsize - 1) {
                                                size_t drop = len + nn - (tailsize - 1);
                                                memmove(tail, tail + drop, len - drop);
                                                len -= drop;
                                        }
                                        memcpy(tail + len, buf, nn);
                                        len += nn;
                                }
                                tail[len] = '\0';
                        }
                }
        }
        kill(-pid, SIGKILL); /* whatever it left in its group */
        close(pfd[0]);
        if (result < 0)
                return result;
        if (WIFEXITED(status))
                return WEXITSTATUS(status);
        return 256 + WTERMSIG(status);
}

/* The last non-empty line of a command's output (for messages), trimmed in place. */
const char *runner_last_line(char *text)
{
        size_t n = strlen(text);
        while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == '\r' || text[n - 1] == ' '))
                text[--n] = '\0';
        char *nl = strrchr(text, '\n');
        return nl ? nl + 1 : text;
}

/* ---- temperature ---- */

static int read_temp(jl_runner *r, double *ret_c)
{
        const char *chip = r->c->machine.base_temperature_chip,
                   *feat = r->c->machine.base_temperature_feature;
        if (!chip || !feat)
                return -EOPNOTSUPP;
        double t;
        int k = jl_hwmon_read_temp(chip, feat, &t);
        if (k < 0)
                return k;
        if (r->store && !r->broken && (k = write_temp(r, &t)) < 0 && transient(k) && k != -EBUSY)
                r->broken = true; /* best effort: the next pass reconnects */
        r->temp_c = t;
        *ret_c = t;
        return 0;
}

/* Load every online CPU for up to `seconds` (one spinning child per CPU), stopping early once the
 * temperature is above `target`. */
static int warm_up(jl_runner *r, double seconds, double target)
{
        long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
        if (ncpu < 1)
                ncpu = 1;
        if (ncpu > 1024)
                ncpu = 1024;
        pid_t pids[1024];
        long n = 0;
        uint64_t end = mono_ns() + (uint64_t)(seconds * 1e9);
        for (long i = 0; i < ncpu; i++) {
                pid_t p = fork();
                if (p < 0)
                        break;
                if (p == 0) {
                        prctl(PR_SET_PDEATHSIG, SIGKILL);
                        volatile uint64_t x = 0;
                        while (mono_ns() < end) /* bounded by `end` */
                                for (int j = 0; j < 100000; j++)
                                        x += (uint64_t)j * 2654435761u;
                        (void)x; /* a use, for clang's -Wunused-but-set-variable */
                        _exit(0);
                }
                pids[n++] = p;
        }
        int ret = 0;
        for (;;) { /* bounded by `end` */
                uint64_t now = mono_ns();
                if (now >= end)
                        break;
                uint64_t step = MIN(end - now, (uint64_t)NSEC_PER_SEC);
                if (runner_poll(r, -1, step) == -EINTR) {
                        ret = -EINTR;
                        break;
                }
                double t;
                if (read_temp(r, &t) >= 0 && t > target)
                        break;
        }
        for (long i = 0; i < n; i++)
                kill(pids[i], SIGKILL);
        for (long i = 0; i < n; i++)
                while (waitpid(pids[i], NULL, 0) < 0 && errno == EINTR)
                        ;
        return ret;
}

/* Wait until the machine is at its base temperature: 0 ready (or no sensor configured), 1 gave up (the
 * reason in msg), -EINTR. */
int runner_gate(jl_runner *r, int64_t job_id, char *msg, size_t msglen)
{
        const double base = r->c->machine.base_temperature_value;
        const double interval = r->c->runner.temperature_check_interval_s;
        const uint64_t max = r->c->runner.temperature_max_tries;
        char why[512];
        for (uint64_t tries = 0;; tries++) { /* bounded by temperature_max_tries */
                double t;
                int k = read_temp(r, &t);
                if (k == -EOPNOTSUPP)
                        return 0;
                jl_runner_status st;
                if (k < 0) {
                        st = JL_STATUS_JOB_ERROR;
                        snprintf(why, sizeof(why), "cannot read the temperature %s / %s: %s",
                                 r->c->machine.base_temperature_chip, r->c->machine.base_temperature_feature,
                                 strerror(-k));
                } else if (t > base) {
                        st = JL_STATUS_COOLDOWN;
                        snprintf(why, sizeof(why), "%.1f °C is above the base temperature %.1f °C", t, base);
                } else if (t <= base - 10) {
                        st = JL_STATUS_WARMUP;
                        snprintf(why, sizeof(why),
                                 "%.1f °C is 10 °C or more below the base temperature %.1f °C", t, base);
                } else
                        return 0;
                if (tries >= max) {
                        snprintf(msg, msglen,
                                 "the machine did not reach its base temperature after %" PRIu64
                                 " tries of %.3g s: %s",
                                 max, interval, why);
                        jl_runner_report(r, JL_STATUS_JOB_ERROR, job_id, msg);
                        return 1;
                }
                jl_runner_report(r, st, job_id, why);
                if (st == JL_STATUS_WARMUP)
                        k = warm_up(r, interval, base - 10);
                else
                        k = runner_sleep(r, interval);
                if (k < 0)
                        return -EINTR;
        }
}

/* ---- the runner ---- */

int jl_runner_new(const jl_runner_opts *o, jl_runner **ret)
{
        if (!o || !o->config || !o->lock_dir)
                return -EINVAL;
        jl_runner *r = calloc(1, sizeof(*r));
        if (!r)
                return -ENOMEM;
        r->o = *o;
        r->c = o->config;
        r->lock_fd = -1;
        r->status = JL_STATUS_NONE;
        r->temp_c = NAN;
        int n = snprintf(r->lock_path, sizeof(r->lock_path), "%s/machine-%" PRId64 ".lock", o->lock_dir,
                         r->c->machine.id);
        if (n < 0 || (size_t)n >= sizeof(r->lock_path)) {
                free(r);
                return -ENAMETOOLONG;
        }
        if (jl_run_opts_from_config(r->c, &r->run_opts) < 0) {
                free(r);
                return -EINVAL;
        }
        r->run_opts.baseline_s = r->c->runner.baseline_s;
        r->run_opts.timeline = true;
        r->run_opts.output_fd = -1;
        runner_claimer_self(&r->self);
        if (runner_spool_init(r) < 0) {
                free(r);
                return -ENAMETOOLONG;
        }
        jl_mail_config_from(r->c, &r->mail);
        jl_control_limits_from(r->c, &r->limits);
        int k = runner_config_json(r, &r->config_json);
        if (k < 0) {
                free(r);
                return k;
        }
        *ret = r;
        return 0;
}

void jl_runner_free(jl_runner *r)
{
        if (!r)
                return;
        if (r->store)
                jl_store_close(r->store);
        if (r->lock_fd >= 0)
                close(r->lock_fd);
        free(r->config_json);
        free(r);
}

int jl_runner_stop_signal(const jl_runner *r)
{
        return r->stop_signal;
}

static int check_machine(jl_runner *r, void *arg)
{
        (void)arg;
        int v = 0, k = jl_store_schema_version(r->store, &v);
        if (k < 0)
                return k;
        if (v < jl_store_schema_latest()) {
                snprintf(r->err, sizeof(r->err),
                         "the database's schema is version %d, this build needs %d: run `joule db %s`", v,
                         jl_store_schema_latest(), v == 0 ? "init" : "migrate");
                return -EPROTO;
        }
        _cleanup_stmt_ jl_stmt *st = NULL, *up = NULL;
        k = jl_store_prepare(r->store, "SELECT description FROM machines WHERE id = $1", &st);
        if (k >= 0 && (k = jl_stmt_bind_int64(st, 1, r->c->machine.id)) >= 0)
                k = jl_stmt_step(st);
        if (k < 0)
                return k;
        if (k != JL_STORE_ROW)
                return 0;
        k = jl_store_prepare(r->store, "UPDATE machines SET config_json = $2, updated_us = $3 WHERE id = $1",
                             &up);
        if (k >= 0 && (k = jl_stmt_bind_int64(up, 1, r->c->machine.id)) >= 0 &&
            (k = jl_stmt_bind_text(up, 2, r->config_json)) >= 0 &&
            (k = jl_stmt_bind_int64(up, 3, runner_now_us())) >= 0)
                k = jl_stmt_step(up);
        return k < 0 ? k : 1;
}

typedef struct {
        int64_t id;
        char why[512];
} stale_job;

/* Fail this machine's RUNNING jobs whose claimer is provably gone (runner_claimer_gone); the others are
 * left to their runner, with a word in the log. */
static int fail_stale(jl_runner *r, void *arg)
{
        int *count = arg;
        jl_store *s = r->store;
        _cleanup_stmt_ jl_stmt *sel = NULL, *up = NULL;
        _cleanup_free_ stale_job *jobs = calloc(256, sizeof(*jobs));
        bool gone[256];
        size_t n = 0;
        if (!jobs)
                return -ENOMEM;
        int k = jl_store_begin_immediate(s);
        if (k >= 0)
                k = jl_store_prepare(s,
                                     "SELECT id, claim_host, claim_boot_id, claim_pid, claim_pid_start FROM "
                                     "bench_jobs WHERE machine_id = $1 AND state = 'RUNNING' ORDER BY id "
                                     "LIMIT 256",
                                     &sel);
        if (k >= 0)
                k = jl_stmt_bind_int64(sel, 1, r->c->machine.id);
        while (k >= 0 && (k = jl_stmt_step(sel)) == JL_STORE_ROW && n < ARRAY_SIZE(gone)) {
                jl_claimer h = {.pid = -1, .pid_start = -1};
                const char *v;
                if ((v = jl_stmt_column_text(sel, 1)))
                        snprintf(h.host, sizeof(h.host), "%s", v);
                if ((v = jl_stmt_column_text(sel, 2)))
                        snprintf(h.boot_id, sizeof(h.boot_id), "%s", v);
                if (!jl_stmt_column_is_null(sel, 3))
                        h.pid = jl_stmt_column_int64(sel, 3);
                if (!jl_stmt_column_is_null(sel, 4))
                        h.pid_start = jl_stmt_column_int64(sel, 4);
                jobs[n].id = jl_stmt_column_int64(sel, 0);
                gone[n] = runner_claimer_gone(&r->self, &h, jobs[n].why, sizeof(jobs[n].why)) == 1;
                n++;
        }
        if (k >= 0)
                k = jl_store_prepare(
                    s,
                    "UPDATE bench_jobs SET state = 'FAILED', message = $2, finished_us = $3 "
                    "WHERE id = $1 AND state = 'RUNNING'",
                    &up);
        int64_t now = runner_now_us();
        for (size_t i = 0; k >= 0 && i < n; i++) {
                if (!gone[i])
                        continue;
                if ((k = jl_stmt_bind_int64(up, 1, jobs[i].id)) >= 0 &&
                    (k = jl_stmt_bind_text(up, 2, JL_RUNNER_STALE_MESSAGE)) >= 0 &&
                    (k = jl_stmt_bind_int64(up, 3, now)) >= 0)
                        k = jl_stmt_step(up);
                if (k >= 0 && jl_stmt_changes(up) == 1) {
                        char err[512];
                        int m = jl_mail_queue_job_failed(s, jobs[i].id, JL_RUNNER_STALE_MESSAGE, now, NULL,
                                                         err, sizeof(err));
                        if (m < 0 && m != -EINVAL) {
                                k = m;
                                break;
                        }
                }
                if (k >= 0)
                        k = jl_stmt_reset(up);
        }
        if (k >= 0)
                k = jl_store_commit(s);
        if (k < 0)
                return k;
        int failed = 0;
        for (size_t i = 0; i < n; i++) {
                if (gone[i]) {
                        runner_say(r, LOG_LEVEL_WARNING, 0, "job %" PRId64 " FAILED: %s (%s)", jobs[i].id,
                                   JL_RUNNER_STALE_MESSAGE, jobs[i].why);
                        failed++;
                } else
                        runner_say(r, LOG_LEVEL_NOTICE, 0,
                                   "job %" PRId64 " is RUNNING and left to its runner: %s", jobs[i].id,
                                   jobs[i].why);
        }
        *count = failed;
        return 0;
}

int jl_runner_start(jl_runner *r, bool once)
{
        double backoff = 0.5;
        bool said = false;
        for (;;) { /* bounded: by a signal */
                int k = ensure_connected(r);
                if (k >= 0)
                        break;
                if (!transient(k) || once) {
                        runner_say(r, LOG_LEVEL_ERROR, k, "cannot open the database: %s",
                                   r->err[0] ? r->err : strerror(-k));
                        return k;
                }
                if (!said) {
                        runner_say(r, LOG_LEVEL_WARNING, k,
                                   "the database is unreachable (%s); retrying with backoff up to %.0f s",
                                   r->err, JL_RUNNER_BACKOFF_MAX_S);
                        said = true;
                }
                if (runner_sleep(r, backoff) < 0)
                        return -EINTR;
                backoff = fmin(backoff * 2, JL_RUNNER_BACKOFF_MAX_S);
        }
        if (said)
                runner_say(r, LOG_LEVEL_NOTICE, 0, "the database answers");
        r->err[0] = '\0';
        int k = runner_db(r, "check the machine", check_machine, NULL, false);
        if (k < 0)
                return k;
        if (k == 0) {
                runner_say(r, LOG_LEVEL_ERROR, ENOENT,
                           "machine %" PRId64
                           " (machine.id) does not exist in the database: add it with `joule "
                           "machines add --id %" PRId64 " --description TEXT`",
                           r->c->machine.id, r->c->machine.id);
                return -ENOENT;
        }
        /* jobs left RUNNING by a runner that died; under the lock, so that a runner of this machine on this
         * host that is running one now is not mistaken for a dead one */
        k = runner_lock(r, !once);
        if (k == 0) /* cron mode: a runner of this machine is at work; the passes find the lock taken too */
                return 0;
        if (k < 0) {
                if (k != -EINTR)
                        runner_say(r, LOG_LEVEL_ERROR, k, "cannot take the lock %s: %s", r->lock_path,
                                   strerror(-k));
                return k;
        }
        /* results spooled by a runner that died while the database was away: stored before the jobs they
         * end could be taken for stale ones */
        k = runner_spool_replay(r);
        if (k == -EINTR) {
                runner_unlock(r);
                return k;
        }
        int stale = 0;
        k = runner_db(r, "fail stale jobs", fail_stale, &stale, false);
        runner_unlock(r);
        return k < 0 ? k : 0;
}

/* ---- a pass ---- */

static int send_mail(jl_runner *r)
{
        if (!r->o.send_mail || !r->mail.server || !r->store || r->broken)
                return 0;
        jl_mail_stats st = {0};
        char err[1024] = "";
        int k = jl_mail_send_queued(r->store, &r->mail, runner_now_us(), 0, &st, err, sizeof(err));
        if (k < 0) {
                if (transient(k))
                        r->broken = true;
                if (!r->mail_failing)
                        runner_say(r, LOG_LEVEL_WARNING, k, "e-mail: %s", err);
                r->mail_failing = true;
                return k;
        }
        if (st.sent)
                runner_say(r, LOG_LEVEL_INFO, 0, "e-mail: %u sent", st.sent);
        if (st.failed || st.deferred) {
                if (!r->mail_failing)
                        runner_say(r, LOG_LEVEL_WARNING, 0,
                                   "e-mail: %u failed, %u deferred (kept queued, retried with backoff): %s",
                                   st.failed, st.deferred, err);
                r->mail_failing = true;
        } else
                r->mail_failing = false;
        return 0;
}

void runner_send_mail(jl_runner *r)
{
        send_mail(r);
}

typedef struct {
        bool control_error;
        bool needs_validation;
        bool control_due;
        int64_t waiting;
} machine_state;

static int read_state(jl_runner *r, void *arg)
{
        machine_state *ms = arg;
        jl_store *s = r->store;
        _cleanup_stmt_ jl_stmt *m = NULL, *w = NULL, *c = NULL;
        int k = jl_store_prepare(s, "SELECT status, needs_validation FROM machines WHERE id = $1", &m);
        if (k >= 0 && (k = jl_stmt_bind_int64(m, 1, r->c->machine.id)) >= 0)
                k = jl_stmt_step(m);
        if (k < 0)
                return k;
        if (k != JL_STORE_ROW) {
                snprintf(r->err, sizeof(r->err), "machine %" PRId64 " was removed from the database",
                         r->c->machine.id);
                return -ENOENT;
        }
        const char *status = jl_stmt_column_text(m, 0);
        ms->control_error = status && strcmp(status, "measurement_control_error") == 0;
        ms->needs_validation = jl_stmt_column_int64(m, 1) != 0;
        k = jl_store_prepare(
            s, "SELECT COUNT(*) FROM bench_jobs WHERE machine_id = $1 AND state = 'WAITING'", &w);
        if (k >= 0 && (k = jl_stmt_bind_int64(w, 1, r->c->machine.id)) >= 0)
                k = jl_stmt_step(w);
        if (k < 0)
                return k;
        ms->waiting = jl_stmt_column_int64(w, 0);
        ms->control_due = false;
        if (r->c->runner.control_workload) {
                if (ms->needs_validation)
                        ms->control_due = true;
                else if (r->c->runner.time_between_control_workload_validations > 0) {
                        k = jl_store_prepare(
                            s,
                            "SELECT MAX(start_us) FROM runs WHERE machine_id = $1 AND kind = "
                            "'control'",
                            &c);
                        if (k >= 0 && (k = jl_stmt_bind_int64(c, 1, r->c->machine.id)) >= 0)
                                k = jl_stmt_step(c);
                        if (k < 0)
                                return k;
                        if (k != JL_STORE_ROW || jl_stmt_column_is_null(c, 0))
                                ms->control_due = true;
                        else {
                                double age = (double)(runner_now_us() - jl_stmt_column_int64(c, 0)) / 1e6;
                                ms->control_due =
                                    age >= r->c->runner.time_between_control_workload_validations;
                        }
                }
        }
        return 0;
}

/* While the machine stays in measurement_control_error, mail the admin again every
 * runner.control_error_reminder_s (the first mail, or the last reminder, is
 * machines.control_error_mailed_us; the UPDATE that moves it is the lease: two runners never both send one
 * reminder). */
static int remind_control_error(jl_runner *r, void *arg)
{
        (void)arg;
        jl_store *s = r->store;
        int64_t now = runner_now_us();
        int64_t due = now - (int64_t)(r->c->runner.control_error_reminder_s * 1e6);
        _cleanup_stmt_ jl_stmt *up = NULL, *why = NULL;
        int k = jl_store_begin_immediate(s);
        if (k >= 0)
                k = jl_store_prepare(
                    s,
                    "UPDATE machines SET control_error_mailed_us = $2 WHERE id = $1 AND status = "
                    "'measurement_control_error' AND (control_error_mailed_us IS NULL OR "
                    "control_error_mailed_us <= $3)",
                    &up);
        if (k >= 0 && (k = jl_stmt_bind_int64(up, 1, r->c->machine.id)) >= 0 &&
            (k = jl_stmt_bind_int64(up, 2, now)) >= 0 && (k = jl_stmt_bind_int64(up, 3, due)) >= 0)
                k = jl_stmt_step(up);
        if (k < 0)
                return k;
        if (jl_stmt_changes(up) != 1)
                return jl_store_commit(s);
        _cleanup_free_ char *desc = NULL;
        _cleanup_stmt_ jl_stmt *d = NULL;
        k = jl_store_prepare(s, "SELECT description FROM machines WHERE id = $1", &d);
        if (k >= 0 && (k = jl_stmt_bind_int64(d, 1, r->c->machine.id)) >= 0)
                k = jl_stmt_step(d);
        if (k < 0)
                return k;
        if (k == JL_STORE_ROW && jl_stmt_column_text(d, 0) && !(desc = strdup(jl_stmt_column_text(d, 0))))
                return -ENOMEM;
        /* the reason: the latest control run's error */
        k = jl_store_prepare(
            s,
            "SELECT error, start_us FROM runs WHERE machine_id = $1 AND kind = 'control' AND "
            "error IS NOT NULL ORDER BY start_us DESC LIMIT 1",
            &why);
        if (k >= 0 && (k = jl_stmt_bind_int64(why, 1, r->c->machine.id)) >= 0)
                k = jl_stmt_step(why);
        if (k < 0)
                return k;
        const char *reason = k == JL_STORE_ROW ? jl_stmt_column_text(why, 0) : NULL;
        char subject[256], ts[64] = "";
        _cleanup_free_ char *body = NULL;
        if (k == JL_STORE_ROW)
                format_iso8601((uint64_t)jl_stmt_column_int64(why, 1) * 1000, ts, sizeof(ts));
        snprintf(subject, sizeof(subject),
                 "[joule] reminder: machine %" PRId64 "%s%s%s still in control error", r->c->machine.id,
                 desc ? " (" : "", desc ? desc : "", desc ? ")" : "");
        if (asprintf(&body,
                     "Machine %" PRId64
                     " still takes no jobs: its control workload deviated%s%s and the error "
                     "has not been cleared.\n\n%s%s"
                     "Look at the machine, then clear the error with\n\n"
                     "    joule machines clear-error --id %" PRId64 "\n\n"
                     "This reminder comes every %.0f s (runner.control_error_reminder_s) while the error "
                     "stays.\n",
                     r->c->machine.id, ts[0] ? " at " : "", ts, reason ? reason : "", reason ? "\n\n" : "",
                     r->c->machine.id, r->c->runner.control_error_reminder_s) < 0) {
                body = NULL;
                return -ENOMEM;
        }
        char err[512] = "";
        int q =
            jl_mail_queue(s, r->c->admin.notification_email, subject, body, -1, now, NULL, err, sizeof(err));
        if (q < 0 && q != -EINVAL)
                return q;
        if (q == -EINVAL)
                runner_say(r, LOG_LEVEL_WARNING, q, "control workload: no reminder to the admin: %s", err);
        k = jl_store_commit(s);
        if (k >= 0 && q >= 0)
                runner_say(r, LOG_LEVEL_NOTICE, 0,
                           "control workload: the error stays; the admin is reminded");
        return k;
}

typedef struct {
        int64_t started_us;
        bool random;
        int64_t job_id;
} claim_args;

/* Claim one WAITING job atomically and record the claimer (bench_jobs.claim_*) in the same statement: 1 and
 * the job in a->job_id, 0 when none waits. */
static int claim(jl_runner *r, void *arg)
{
        claim_args *a = arg;
        jl_store *s = r->store;
        _cleanup_stmt_ jl_stmt *st = NULL, *pick = NULL, *mark = NULL;
        int k = jl_store_begin_immediate(s);
        if (k < 0)
                return k;
        /* a claim whose commit was lost with the connection may have happened: it carries our started_us */
        k = jl_store_prepare(s,
                             "SELECT id FROM bench_jobs WHERE machine_id = $1 AND state = 'RUNNING' AND "
                             "started_us = $2 AND claim_pid = $3",
                             &st);
        if (k >= 0 && (k = jl_stmt_bind_int64(st, 1, r->c->machine.id)) >= 0 &&
            (k = jl_stmt_bind_int64(st, 2, a->started_us)) >= 0 &&
            (k = jl_stmt_bind_int64(st, 3, r->self.pid)) >= 0)
                k = jl_stmt_step(st);
        if (k < 0)
                return k;
        if (k == JL_STORE_ROW) {
                a->job_id = jl_stmt_column_int64(st, 0);
                jl_stmt_finalize(TAKE_PTR(st));
                k = jl_store_commit(s);
                return k < 0 ? k : 1;
        }
        char sql[512];
        snprintf(
            sql, sizeof(sql),
            "SELECT id FROM bench_jobs WHERE machine_id = $1 AND state = 'WAITING' ORDER BY %s LIMIT 1%s",
            a->random ? "random()" : "created_us, id",
            jl_store_get_backend(s) == JL_STORE_POSTGRES ? " FOR UPDATE SKIP LOCKED" : "");
        k = jl_store_prepare(s, sql, &pick);
        if (k >= 0 && (k = jl_stmt_bind_int64(pick, 1, r->c->machine.id)) >= 0)
                k = jl_stmt_step(pick);
        if (k < 0)
                return k;
        if (k != JL_STORE_ROW) {
                jl_stmt_finalize(TAKE_PTR(pick));
                k = jl_store_commit(s);
                return k < 0 ? k : 0;
        }
        int64_t id = jl_stmt_column_int64(pick, 0);
        jl_stmt_finalize(TAKE_PTR(pick));
        k = jl_store_prepare(s,
                             "UPDATE bench_jobs SET state = 'RUNNING', started_us = $2, claim_host = $3, "
                             "claim_boot_id = $4, claim_pid = $5, claim_pid_start = $6 WHERE id = $1 AND "
                             "state = 'WAITING'",
                             &mark);
        if (k >= 0 && (k = jl_stmt_bind_int64(mark, 1, id)) >= 0 &&
            (k = jl_stmt_bind_int64(mark, 2, a->started_us)) >= 0 &&
            (k = jl_stmt_bind_text(mark, 3, r->self.host)) >= 0 &&
            (k = jl_stmt_bind_text(mark, 4, r->self.boot_id[0] ? r->self.boot_id : NULL)) >= 0 &&
            (k = jl_stmt_bind_int64(mark, 5, r->self.pid)) >= 0 &&
            (k = r->self.pid_start >= 0 ? jl_stmt_bind_int64(mark, 6, r->self.pid_start)
                                        : jl_stmt_bind_null(mark, 6)) >= 0)
                k = jl_stmt_step(mark);
        if (k < 0)
                return k;
        if (jl_stmt_changes(mark) != 1) {
                snprintf(r->err, sizeof(r->err), "claim: job %" PRId64 " was taken concurrently", id);
                return -EAGAIN; /* transient: rolled back and tried again */
        }
        jl_stmt_finalize(TAKE_PTR(mark));
        k = jl_store_commit(s);
        if (k < 0)
                return k;
        a->job_id = id;
        return 1;
}

int jl_runner_pass(jl_runner *r)
{
        if (r->stop_signal)
                return -EINTR;
        if (!r->store || r->broken)
                ensure_connected(r);
        flush_status(r);
        send_mail(r);
        machine_state ms = {0};
        int k = runner_db(r, "read the machine's state", read_state, &ms, false);
        if (k < 0)
                return k;
        k = runner_spool_replay(r); /* results left by a runner that died while the database was away */
        if (k == -EINTR)
                return k;
        if (ms.control_error) {
                if (r->c->runner.control_error_reminder_s > 0 && r->c->admin.notification_email &&
                    runner_db(r, "remind the admin of the control-workload error", remind_control_error,
                              NULL, false) == -EINTR)
                        return -EINTR;
                jl_runner_report(
                    r, JL_STATUS_CONTROL_ERROR, 0,
                    "the control workload deviated: no jobs until `joule machines clear-error`");
                return 0;
        }
        if (ms.control_due) {
                k = runner_lock(r, false);
                if (k < 0)
                        return k == -EINTR ? k : runner_say(r, LOG_LEVEL_ERROR, k, "lock %s", r->lock_path),
                               k;
                if (k == 0)
                        return 0;
                k = runner_control(r, ms.needs_validation);
                runner_unlock(r);
                return k;
        }
        if (ms.waiting == 0) {
                jl_runner_report(r, JL_STATUS_JOB_NO, 0, NULL);
                return 0;
        }
        char gate_msg[1024] = "";
        k = runner_gate(r, 0, gate_msg, sizeof(gate_msg));
        if (k < 0)
                return k;
        k = runner_lock(r, false);
        if (k < 0) {
                if (k != -EINTR)
                        runner_say(r, LOG_LEVEL_ERROR, k, "cannot take the lock %s: %s", r->lock_path,
                                   strerror(-k));
                return k;
        }
        if (k == 0) {
                runner_say(r, LOG_LEVEL_DEBUG, 0, "another process holds %s: not taking a job now",
                           r->lock_path);
                return 0;
        }
        claim_args ca = {.started_us = runner_now_us(),
                         .random = r->c->runner.jobs_processing &&
                                   strcmp(r->c->runner.jobs_processing, "random") == 0};
        k = runner_db(r, "claim a job", claim, &ca, false);
        if (k <= 0) {
                runner_unlock(r);
                if (k == 0)
                        jl_runner_report(r, JL_STATUS_JOB_NO, 0, NULL);
                return k;
        }
        if (gate_msg[0])
                k = runner_fail_job(r, ca.job_id, gate_msg);
        else
                k = runner_job(r, ca.job_id);
        runner_unlock(r);
        send_mail(r);
        return k < 0 ? k : 1;
}

int jl_runner_wait(jl_runner *r, double seconds, bool wake)
{
        uint64_t end = mono_ns() + (uint64_t)(fmax(seconds, 0) * 1e9);
        char want[32];
        snprintf(want, sizeof(want), "%" PRId64, r->c->machine.id);
        for (;;) { /* bounded by `end` */
                if (r->stop_signal)
                        return -EINTR;
                uint64_t now = mono_ns();
                if (now >= end)
                        return 0;
                int fd = -1;
                if (wake && r->store && !r->broken && r->listening)
                        fd = jl_store_notify_fd(r->store);
                int k = runner_poll(r, fd < 0 ? -1 : fd, end - now);
                if (k == -EINTR)
                        return -EINTR;
                if (k != 1)
                        continue;
                for (int i = 0; i < 1000; i++) { /* drain what arrived */
                        char ch[64], payload[64];
                        int n = jl_store_wait_notify(r->store, 0, ch, sizeof(ch), payload, sizeof(payload));
                        if (n == -ECONNRESET) {
                                r->broken = true;
                                break;
                        }
                        if (n <= 0)
                                break;
                        if (strcmp(ch, JL_RUNNER_CHANNEL) == 0 && strcmp(payload, want) == 0)
                                return 0;
                }
                if (r->broken) {
                        /* the server went away: sleep out the rest; the next pass reconnects */
                        return runner_sleep(r, (double)(end - mono_ns()) / 1e9) < 0 ? -EINTR : 0;
                }
        }
}

/* ---- a fatal signal's backtrace ---- */

static void crash_handler(int sig)
{
        char msg[96] = "joule: fatal signal ";
        size_t n = strlen(msg);
        char digits[12];
        int d = 0, v = sig;
        do
                digits[d++] = (char)('0' + v % 10);
        while ((v /= 10) > 0 && d < 11);
        while (d > 0)
                msg[n++] = digits[--d];
        memcpy(msg + n, ", backtrace:\n", 14);
        n += 13;
        (void)!write(2, msg, n);
        void *frames[64];
        int nf = backtrace(frames, 64);
        backtrace_symbols_fd(frames, nf, 2);
        signal(sig, SIG_DFL);
        raise(sig);
}

void jl_runner_install_crash_handler(void)
{
        static char altstack[64 * 1024];
        void *warm[1];
        backtrace(warm, 1); /* load libgcc's unwinder now, not in the handler */
        stack_t ss = {.ss_sp = altstack, .ss_size = sizeof(altstack)};
        sigaltstack(&ss, NULL);
        struct sigaction sa = {.sa_handler = crash_handler,
                               .sa_flags = SA_ONSTACK | SA_RESETHAND | SA_NODEFER};
        sigemptyset(&sa.sa_mask);
        static const int sigs[] = {SIGSEGV, SIGBUS, SIGABRT, SIGFPE, SIGILL};
        for (size_t i = 0; i < ARRAY_SIZE(sigs); i++)
                sigaction(sigs[i], &sa, NULL);
}
