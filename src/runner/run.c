/* run.c - running a scenario under measurement: the child processes (process groups, environment,
 * timeouts, signals), the sampling loop (timerfd plus a sample exactly at each phase boundary), per-phase
 * statistics, the timeline, the system checks, and the "run" JSON object. */
#include "run.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "macro.h"
#include "timeutil.h"

extern char **environ;

#define KILL_GRACE_NS (2 * NSEC_PER_SEC)
#define SHORT_INTERVAL_NS (NSEC_PER_MSEC / 2) /* intervals shorter than this do not count for max power */

typedef struct {
        const jl_scenario *sc;
        const jl_run_opts *o;
        jl_run_result *res;
        jl_sampler *s;
        int sfd, tfd;
        sigset_t old_mask;
        bool measuring;
        /* current phase */
        double total_prev_j; /* cumulative total at the previous sample (since the phase began) */
        double power_max_w;
        bool have_power_max;
        uint64_t *energy_prev_uj; /* per channel, since the phase began */
        bool oom;
} run_ctx;

typedef enum { EV_EXIT, EV_DEADLINE, EV_SIGNAL, EV_ERROR } event;

void jl_run_opts_default(jl_run_opts *o)
{
        *o = (jl_run_opts){
                .baseline_s = 5.0,
                .interval_ns = 99 * NSEC_PER_MSEC,
                .setup_timeout_s = JL_SCENARIO_DEFAULT_TIMEOUT_S,
                .output_fd = -1,
                .profile = JL_PROFILE_BENCHMARKING,
                .breach = JL_CHECK_WARN,
                .timeline = true,
        };
        jl_provider_config_default(&o->providers);
}

const char *jl_run_state_name(jl_run_state s)
{
        return s == JL_RUN_FINISHED ? "FINISHED" : "FAILED";
}

/* The first failure wins: later ones (a teardown after a failed step) do not overwrite it. */
static void set_failed(run_ctx *x, const char *where, const char *fmt, ...) _printf_(3, 4);
static void set_failed(run_ctx *x, const char *where, const char *fmt, ...)
{
        if (x->res->state == JL_RUN_FAILED)
                return;
        x->res->state = JL_RUN_FAILED;
        snprintf(x->res->failed_step, sizeof(x->res->failed_step), "%s", where);
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(x->res->message, sizeof(x->res->message), fmt, ap);
        va_end(ap);
}

/* A command as messages quote it: at most 200 bytes, one line. */
static void quote_cmd(const char *cmd, char *buf, size_t size)
{
        size_t n = 0;
        for (const char *p = cmd; *p && n + 4 < size && n < 200; p++)
                buf[n++] = (*p == '\n' || *p == '\t') ? ' ' : *p;
        buf[n] = '\0';
        if (strlen(cmd) > n && n + 4 < size)
                strcpy(buf + n, "...");
}

/* ---- the timeline and per-interval power ---- */

static int timeline_add(jl_run_result *res, uint64_t t_ns, uint32_t metric, double value)
{
        if (res->n_points >= JL_RUN_MAX_POINTS) {
                res->points_truncated = true;
                return 0;
        }
        size_t n = res->n_points;
        if ((n & (n - 1)) == 0 && n >= 1024) {
                /* grow at powers of two */
                jl_run_point *p = realloc(res->points, 2 * n * sizeof(*p));
                if (!p) {
                        res->points_truncated = true;
                        return -ENOMEM;
                }
                res->points = p;
        } else if (n == 0) {
                res->points = malloc(1024 * sizeof(*res->points));
                if (!res->points) {
                        res->points_truncated = true;
                        return -ENOMEM;
                }
        }
        res->points[n] = (jl_run_point){.t_ns = t_ns, .metric = metric, .phase = (uint32_t)res->n_phases,
                                        .value = value};
        res->n_points = n + 1;
        return 0;
}

static void on_sample(void *userdata, const jl_sampler *s, uint64_t t_ns)
{
        run_ctx *x = userdata;
        bool first = s->nsamples == 1;
        /* Power of the interval that just ended, by the same rule as the phase's total. */
        double total = jl_sampler_total_energy_j(s, NULL);
        if (!first && t_ns - s->t_prev_ns >= SHORT_INTERVAL_NS) {
                double p = (total - x->total_prev_j) / ((double)(t_ns - s->t_prev_ns) / 1e9);
                if (!x->have_power_max || p > x->power_max_w)
                        x->power_max_w = p;
                x->have_power_max = true;
        }
        x->total_prev_j = total;
        for (size_t i = 0; i < s->channels.n; i++) {
                const jl_track *t = &s->tracks[i];
                const jl_value *v = &s->values[i];
                double value;
                if (t->ch.kind == JL_KIND_ENERGY) {
                        uint64_t d = t->energy_uj - x->energy_prev_uj[i];
                        x->energy_prev_uj[i] = t->energy_uj;
                        if (first && x->res->n_phases == 0)
                                continue; /* the very first reading only sets the baseline */
                        value = (double)d / 1e6;
                } else {
                        if (v->err < 0 || !t->have_value)
                                continue;
                        value = v->gauge;
                }
                if (x->o->timeline && !x->res->points_truncated &&
                    timeline_add(x->res, t_ns, (uint32_t)i, value) < 0)
                        x->oom = true;
        }
}

/* ---- phases ---- */

static void phase_begin(run_ctx *x)
{
        jl_sampler_reset_stats(x->s);
        x->total_prev_j = 0;
        x->power_max_w = 0;
        x->have_power_max = false;
        for (size_t i = 0; i < x->s->channels.n; i++)
                x->energy_prev_uj[i] = 0;
        /* Realign the ticks on the phase's start. */
        struct itimerspec its = {.it_interval = ns_to_timespec(x->o->interval_ns),
                                 .it_value = ns_to_timespec(x->o->interval_ns)};
        timerfd_settime(x->tfd, 0, &its, NULL);
}

/* Take the boundary sample and record the phase that it ends. */
static int phase_end(run_ctx *x, const char *name, bool complete)
{
        jl_sampler *s = x->s;
        jl_sampler_sample(s);
        jl_run_result *res = x->res;
        jl_run_phase *ph = realloc(res->phases, (res->n_phases + 1) * sizeof(*ph));
        if (!ph)
                return -ENOMEM;
        res->phases = ph;
        ph = &res->phases[res->n_phases];
        *ph = (jl_run_phase){.complete = complete,
                             .start_ns = s->t_first_ns,
                             .end_ns = s->t_last_ns,
                             .temp_max_c = NAN,
                             .cpu_utilization = NAN,
                             .steal = NAN,
                             .samples = s->nsamples};
        ph->name = strdup(name);
        size_t nd = 0;
        for (size_t i = 0; i < s->channels.n; i++)
                nd += s->tracks[i].ch.kind == JL_KIND_ENERGY;
        ph->domains = calloc(nd ? nd : 1, sizeof(*ph->domains));
        if (!ph->name || !ph->domains) {
                free(ph->name);
                free(ph->domains);
                return -ENOMEM;
        }
        ph->duration_s = jl_sampler_duration_s(s);
        ph->energy_j = jl_sampler_total_energy_j(s, &ph->energy_source);
        ph->power_avg_w = ph->duration_s > 0 ? ph->energy_j / ph->duration_s : 0;
        ph->power_max_w = x->have_power_max ? MAX(x->power_max_w, ph->power_avg_w) : ph->power_avg_w;
        ph->suspended_s = jl_sampler_suspended_s(s);
        for (size_t i = 0; i < s->channels.n; i++) {
                const jl_track *t = &s->tracks[i];
                if (t->ch.kind == JL_KIND_ENERGY) {
                        jl_run_domain *d = &ph->domains[ph->n_domains++];
                        snprintf(d->name, sizeof(d->name), "%s", t->ch.name);
                        d->provider = t->ch.provider;
                        d->scope = t->ch.scope;
                        d->estimated = t->ch.estimated;
                        d->energy_j = (double)t->energy_uj / 1e6;
                        d->gap_s = (double)t->gap_ns / 1e9;
                        d->power_avg_w = ph->duration_s > 0 ? d->energy_j / ph->duration_s : 0;
                        d->power_max_w = MAX(t->power_max_w, d->power_avg_w);
                        continue;
                }
                if (!t->have_value)
                        continue;
                if (t->ch.kind == JL_KIND_TEMPERATURE)
                        ph->temp_max_c = isnan(ph->temp_max_c) ? t->max : MAX(ph->temp_max_c, t->max);
                else if (t->ch.kind == JL_KIND_UTILIZATION && strcmp(t->ch.name, "cpu-utilization") == 0)
                        ph->cpu_utilization = jl_track_mean(t);
                else if (t->ch.kind == JL_KIND_UTILIZATION && strcmp(t->ch.name, "cpu-steal") == 0)
                        ph->steal = jl_track_mean(t);
        }
        res->n_phases++;
        res->suspended_s += ph->suspended_s;
        return 0;
}

/* ---- child processes ---- */

/* NAME=VALUE strings for execve(): the runner's environment (borrowed) with the scenario's and then the
 * step's variables over it (owned, from index `borrowed` on). */
typedef struct {
        char **v;
        size_t borrowed, n;
} envp_t;

static void envp_free(envp_t *e)
{
        for (size_t i = e->borrowed; i < e->n; i++)
                free(e->v[i]);
        free(e->v);
        *e = (envp_t){0};
}

static int envp_build(const jl_scenario *sc, const jl_scenario_step *step, envp_t *ret)
{
        size_t n_env = 0;
        for (char **e = environ; e && *e; e++)
                n_env++;
        envp_t e = {.v = calloc(n_env + sc->env.n + (step ? step->env.n : 0) + 1, sizeof(char *))};
        if (!e.v)
                return -ENOMEM;
        for (char **p = environ; p && *p; p++) {
                const char *eq = strchr(*p, '=');
                size_t klen = eq ? (size_t)(eq - *p) : strlen(*p);
                char name[256];
                if (klen >= sizeof(name))
                        continue;
                memcpy(name, *p, klen);
                name[klen] = '\0';
                if (!jl_scenario_getenv(sc, step, name))
                        e.v[e.n++] = *p;
        }
        e.borrowed = e.n;
        for (size_t i = 0; i < sc->env.n; i++) {
                /* a step's variable replaces the scenario's of the same name */
                const char *name = sc->env.names[i];
                if (asprintf(&e.v[e.n], "%s=%s", name, jl_scenario_getenv(sc, step, name)) < 0)
                        goto oom;
                e.n++;
        }
        for (size_t i = 0; step && i < step->env.n; i++) {
                if (jl_scenario_getenv(sc, NULL, step->env.names[i]))
                        continue; /* done above, with the step's value */
                if (asprintf(&e.v[e.n], "%s=%s", step->env.names[i], step->env.values[i]) < 0)
                        goto oom;
                e.n++;
        }
        e.v[e.n] = NULL;
        *ret = e;
        return 0;
oom:
        e.v[e.n] = NULL;
        envp_free(&e);
        return -ENOMEM;
}

static pid_t spawn(run_ctx *x, const char *cmd, char **envp)
{
        fflush(NULL);
        pid_t pid = fork();
        if (pid < 0)
                return -errno;
        if (pid == 0) {
                /* Child: own process group, default signals, stdin from /dev/null, output where asked. */
                setpgid(0, 0);
                signal(SIGINT, SIG_DFL);
                signal(SIGTERM, SIG_DFL);
                signal(SIGPIPE, SIG_DFL);
                signal(SIGCHLD, SIG_DFL);
                sigset_t none;
                sigemptyset(&none);
                sigprocmask(SIG_SETMASK, &none, NULL);
                int in = open("/dev/null", O_RDONLY | O_CLOEXEC);
                if (in >= 0 && in != 0) {
                        dup2(in, 0);
                        close(in);
                }
                if (x->o->output_fd >= 0) {
                        dup2(x->o->output_fd, 1);
                        dup2(x->o->output_fd, 2);
                }
                if (x->o->workdir && chdir(x->o->workdir) < 0) {
                        dprintf(2, "joule: cannot change to %s: %s\n", x->o->workdir, strerror(errno));
                        _exit(126);
                }
                char *argv[] = {(char *)"sh", (char *)"-c", (char *)cmd, NULL};
                execve("/bin/sh", argv, envp);
                _exit(127);
        }
        setpgid(pid, pid); /* also in the parent: no race with the first kill */
        return pid;
}

/* Wait for the child to exit, the deadline, or a signal, sampling on the timer while measuring. */
static event wait_event(run_ctx *x, pid_t pid, uint64_t deadline_ns, int *ret_status, int *ret_signo)
{
        for (;;) {
                uint64_t now = mono_ns();
                if (deadline_ns != UINT64_MAX && now >= deadline_ns)
                        return EV_DEADLINE;
                int timeout_ms = -1;
                if (deadline_ns != UINT64_MAX) {
                        uint64_t left = deadline_ns - now;
                        timeout_ms = (int)MIN((left + NSEC_PER_MSEC - 1) / NSEC_PER_MSEC, (uint64_t)INT32_MAX);
                }
                if (x->measuring) {
                        /* between ticks, the reads the sampler needs to unwrap fast-wrapping counters */
                        jl_sampler_guard_at(x->s, now);
                        int g = jl_sampler_guard_timeout_ms(x->s, now);
                        if (g >= 0 && (timeout_ms < 0 || g < timeout_ms))
                                timeout_ms = g;
                }
                struct pollfd pfd[2] = {{.fd = x->sfd, .events = POLLIN}, {.fd = x->tfd, .events = POLLIN}};
                int n = poll(pfd, x->measuring ? 2 : 1, timeout_ms);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return EV_ERROR;
                }
                if (x->measuring && (pfd[1].revents & POLLIN)) {
                        uint64_t expirations;
                        if (read(x->tfd, &expirations, sizeof(expirations)) > 0)
                                jl_sampler_tick(x->s);
                }
                if (!(pfd[0].revents & POLLIN))
                        continue;
                struct signalfd_siginfo si;
                while (read(x->sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
                        if (si.ssi_signo == SIGINT || si.ssi_signo == SIGTERM) {
                                *ret_signo = (int)si.ssi_signo;
                                return EV_SIGNAL;
                        }
                }
                if (pid > 0) {
                        int st;
                        pid_t w = waitpid(pid, &st, WNOHANG);
                        if (w == pid) {
                                *ret_status = st;
                                return EV_EXIT;
                        }
                }
        }
}

/* Kill a command's process group: SIGTERM, SIGKILL after a grace period; reap the leader. */
static int kill_group(run_ctx *x, pid_t pid)
{
        int status = 0, signo = 0;
        kill(-pid, SIGTERM);
        event ev = wait_event(x, pid, mono_ns() + KILL_GRACE_NS, &status, &signo);
        while (ev == EV_SIGNAL) /* a second signal while we already stop: go on stopping */
                ev = wait_event(x, pid, mono_ns() + KILL_GRACE_NS, &status, &signo);
        if (ev != EV_EXIT) {
                kill(-pid, SIGKILL);
                while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                        ;
        }
        kill(-pid, SIGKILL); /* whatever the leader left behind */
        return status;
}

typedef enum { CMD_OK, CMD_FAILED, CMD_TIMEOUT, CMD_SIGNAL } cmd_result;

/* Run one command until it ends, the deadline passes, or a signal comes; describe a failure in `why`. */
static cmd_result run_command(run_ctx *x, const char *cmd, char **envp, uint64_t deadline_ns, double timeout_s,
                              char *why, size_t whylen)
{
        char q[256];
        quote_cmd(cmd, q, sizeof(q));
        pid_t pid = spawn(x, cmd, envp);
        if (pid < 0) {
                snprintf(why, whylen, "command '%s' could not be started: %s", q, strerror((int)-pid));
                return CMD_FAILED;
        }
        int status = 0, signo = 0;
        event ev = wait_event(x, pid, deadline_ns, &status, &signo);
        switch (ev) {
        case EV_EXIT:
                kill(-pid, SIGKILL); /* leftovers in its group */
                if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
                        return CMD_OK;
                if (WIFEXITED(status)) {
                        int code = WEXITSTATUS(status);
                        snprintf(why, whylen, "command '%s' exited with status %d%s", q, code,
                                 code == 127 ? " (command not found?)" : "");
                } else if (WIFSIGNALED(status))
                        snprintf(why, whylen, "command '%s' was killed by signal %d (%s)", q, WTERMSIG(status),
                                 strsignal(WTERMSIG(status)));
                else
                        snprintf(why, whylen, "command '%s' ended abnormally", q);
                return CMD_FAILED;
        case EV_DEADLINE:
                kill_group(x, pid);
                snprintf(why, whylen, "command '%s' timed out after %g s", q, timeout_s);
                return CMD_TIMEOUT;
        case EV_SIGNAL:
                kill_group(x, pid);
                x->res->signal = signo;
                snprintf(why, whylen, "interrupted by SIG%s while running command '%s'", sigabbrev_np(signo), q);
                return CMD_SIGNAL;
        default:
                kill_group(x, pid);
                snprintf(why, whylen, "command '%s': waiting failed: %s", q, strerror(errno));
                return CMD_FAILED;
        }
}

/* Setup or teardown: unmeasured, each command bounded by setup_timeout_s. Returns false on failure. */
static bool run_unmeasured(run_ctx *x, const char *what, char **cmds, size_t n)
{
        envp_t envp;
        if (envp_build(x->sc, NULL, &envp) < 0) {
                x->oom = true;
                return false;
        }
        bool good = true;
        for (size_t i = 0; i < n && good; i++) {
                char why[600];
                uint64_t deadline = mono_ns() + (uint64_t)(x->o->setup_timeout_s * 1e9);
                cmd_result r = run_command(x, cmds[i], envp.v, deadline, x->o->setup_timeout_s, why, sizeof(why));
                if (r != CMD_OK) {
                        set_failed(x, what, "%s: %s", what, why);
                        good = false;
                }
        }
        envp_free(&envp);
        return good;
}

/* ---- the run ---- */

static int copy_metrics_and_notes(run_ctx *x)
{
        jl_run_result *res = x->res;
        const jl_sampler *s = x->s;
        res->metrics = calloc(s->channels.n ? s->channels.n : 1, sizeof(*res->metrics));
        res->notes = calloc(s->notes.n ? s->notes.n : 1, sizeof(char *));
        if (!res->metrics || !res->notes)
                return -ENOMEM;
        for (size_t i = 0; i < s->channels.n; i++) {
                jl_run_metric *m = &res->metrics[i];
                snprintf(m->name, sizeof(m->name), "%s", s->channels.items[i].name);
                m->provider = s->channels.items[i].provider;
                m->kind = s->channels.items[i].kind;
                m->unit = jl_kind_unit(m->kind);
        }
        res->n_metrics = s->channels.n;
        for (size_t i = 0; i < s->notes.n; i++) {
                if (asprintf(&res->notes[i], "%s: %s", s->notes.items[i].subject, s->notes.items[i].reason) < 0)
                        return -ENOMEM;
                res->n_notes++;
        }
        return 0;
}

/* Baseline and flow: the measured part. */
static void run_measured(run_ctx *x)
{
        const jl_scenario *sc = x->sc;
        x->measuring = true;
        jl_sampler_sample(x->s); /* the start of the first phase */
        phase_begin(x);

        if (x->o->baseline_s > 0) {
                int status, signo = 0;
                uint64_t deadline = x->s->t_last_ns + (uint64_t)(x->o->baseline_s * 1e9);
                event ev = wait_event(x, 0, deadline, &status, &signo);
                if (phase_end(x, JL_RUN_BASELINE_NAME, ev == EV_DEADLINE) < 0)
                        x->oom = true;
                if (ev == EV_SIGNAL) {
                        x->res->signal = signo;
                        set_failed(x, JL_RUN_BASELINE_NAME, "%s: interrupted by SIG%s", JL_RUN_BASELINE_NAME,
                                   sigabbrev_np(signo));
                        x->measuring = false;
                        return;
                }
                if (ev == EV_ERROR) {
                        set_failed(x, JL_RUN_BASELINE_NAME, "%s: waiting failed: %s", JL_RUN_BASELINE_NAME,
                                   strerror(errno));
                        x->measuring = false;
                        return;
                }
                phase_begin(x);
        }

        for (size_t i = 0; i < sc->n_flow && x->res->state == JL_RUN_FINISHED && !x->oom; i++) {
                const jl_scenario_step *st = &sc->flow[i];
                envp_t envp;
                if (envp_build(sc, st, &envp) < 0) {
                        x->oom = true;
                        break;
                }
                uint64_t deadline = x->s->t_last_ns + (uint64_t)(st->timeout_s * 1e9);
                cmd_result r = CMD_OK;
                char why[600] = "";
                for (size_t k = 0; k < st->n_commands && r == CMD_OK; k++)
                        r = run_command(x, st->commands[k], envp.v, deadline, st->timeout_s, why, sizeof(why));
                envp_free(&envp);
                if (phase_end(x, st->name, r == CMD_OK) < 0)
                        x->oom = true;
                if (r != CMD_OK) {
                        set_failed(x, st->name, "step '%s': %s", st->name, why);
                        break;
                }
                phase_begin(x);
        }
        x->measuring = false;
        struct itimerspec off = {0};
        timerfd_settime(x->tfd, 0, &off, NULL);
}

int jl_run_scenario(const jl_scenario *sc, const jl_run_opts *o, jl_run_result **ret)
{
        if (!sc || !o || !ret || sc->n_flow == 0 || o->interval_ns < NSEC_PER_MSEC || !(o->baseline_s >= 0) ||
            !(o->setup_timeout_s > 0))
                return -EINVAL;
        jl_run_result *res = calloc(1, sizeof(*res));
        if (!res)
                return -ENOMEM;
        run_ctx x = {.sc = sc, .o = o, .res = res, .sfd = -1, .tfd = -1};
        res->state = JL_RUN_FINISHED;
        res->realtime_offset_ns = realtime_offset_ns();
        res->start_ns = mono_ns();

        sigset_t mask;
        sigemptyset(&mask);
        sigaddset(&mask, SIGCHLD);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGTERM);
        sigprocmask(SIG_BLOCK, &mask, &x.old_mask);
        x.sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
        x.tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
        if (x.sfd < 0 || x.tfd < 0) {
                set_failed(&x, "runner", "cannot set up signals and timers: %s", strerror(errno));
                goto finish;
        }

        jl_provider_config pc = o->providers;
        pc.pid = 0;
        int r = jl_sampler_open(&pc, o->only, &x.s);
        if (r < 0) {
                if (r == -ENOMEM)
                        x.oom = true;
                set_failed(&x, "runner", "cannot open the measurement providers: %s", strerror(-r));
                goto finish;
        }
        x.energy_prev_uj = calloc(x.s->channels.n ? x.s->channels.n : 1, sizeof(uint64_t));
        if (!x.energy_prev_uj || copy_metrics_and_notes(&x) < 0) {
                x.oom = true;
                goto finish;
        }
        jl_sampler_set_interval(x.s, o->interval_ns);
        jl_sampler_set_callback(x.s, on_sample, &x);

        if (run_unmeasured(&x, "setup", sc->setup, sc->n_setup)) {
                r = jl_syscheck_machine(o->profile, o->breach, &res->checks);
                if (r == -ENOMEM)
                        x.oom = true;
                const jl_syscheck *bad = jl_syschecks_first_failure(&res->checks);
                if (bad)
                        set_failed(&x, "system checks",
                                   "system check '%s' failed: observed %s, expected %s (machine.profile %s)",
                                   bad->name, bad->observed, bad->expected, jl_machine_profile_name(o->profile));
                else
                        run_measured(&x);
        }
        /* The teardown runs after a failed step too; after a signal as well (a second one stops it). */
        if (sc->n_teardown && !x.oom) {
                x.measuring = false;
                run_unmeasured(&x, "teardown", sc->teardown, sc->n_teardown);
        }

        if (res->n_phases > 0) {
                double steal_w = 0, dur = 0;
                bool have_steal = false;
                for (size_t i = 0; i < res->n_phases; i++)
                        if (!isnan(res->phases[i].steal)) {
                                steal_w += res->phases[i].steal * res->phases[i].duration_s;
                                dur += res->phases[i].duration_s;
                                have_steal = true;
                        }
                double steal = !have_steal ? NAN : dur > 0 ? steal_w / dur : 0;
                size_t before = res->checks.n;
                jl_syscheck_add_run(&res->checks, o->breach, steal, res->suspended_s);
                for (size_t i = before; i < res->checks.n; i++)
                        if (res->checks.items[i].status == JL_CHECK_FAIL)
                                set_failed(&x, "system checks", "system check '%s' failed: observed %s, expected %s",
                                           res->checks.items[i].name, res->checks.items[i].observed,
                                           res->checks.items[i].expected);
        }

finish:
        res->end_ns = mono_ns();
        jl_sampler_free(x.s);
        free(x.energy_prev_uj);
        if (x.tfd >= 0)
                close(x.tfd);
        if (x.sfd >= 0)
                close(x.sfd);
        sigprocmask(SIG_SETMASK, &x.old_mask, NULL);
        if (x.oom) {
                jl_run_result_free(res);
                return -ENOMEM;
        }
        *ret = res;
        return 0;
}

void jl_run_result_free(jl_run_result *r)
{
        if (!r)
                return;
        for (size_t i = 0; i < r->n_phases; i++) {
                free(r->phases[i].name);
                free(r->phases[i].domains);
        }
        free(r->phases);
        free(r->metrics);
        free(r->points);
        for (size_t i = 0; i < r->n_notes; i++)
                free(r->notes[i]);
        free(r->notes);
        free(r);
}

/* ---- JSON ---- */

static void json_maybe(json_writer *w, double v)
{
        if (isnan(v))
                json_null(w);
        else
                json_double(w, v);
}

void jl_run_result_json(const jl_run_result *r, json_writer *w)
{
        json_object_begin(w);
        json_key(w, "phases");
        json_array_begin(w);
        for (size_t i = 0; i < r->n_phases; i++) {
                const jl_run_phase *p = &r->phases[i];
                json_object_begin(w);
                json_key(w, "name");
                json_string(w, p->name);
                json_key(w, "complete");
                json_bool(w, p->complete);
                json_key(w, "duration_s");
                json_double(w, p->duration_s);
                json_key(w, "energy_j");
                json_double(w, p->energy_j);
                json_key(w, "energy_source");
                json_string(w, jl_total_source_name(p->energy_source));
                json_key(w, "power_w");
                json_object_begin(w);
                json_key(w, "avg");
                json_double(w, p->power_avg_w);
                json_key(w, "max");
                json_double(w, p->power_max_w);
                json_object_end(w);
                json_key(w, "temperature_c");
                json_object_begin(w);
                json_key(w, "max");
                json_maybe(w, p->temp_max_c);
                json_object_end(w);
                json_key(w, "cpu_utilization");
                json_maybe(w, p->cpu_utilization);
                json_key(w, "samples");
                json_uint(w, p->samples);
                json_key(w, "domains");
                json_array_begin(w);
                for (size_t k = 0; k < p->n_domains; k++) {
                        const jl_run_domain *d = &p->domains[k];
                        json_object_begin(w);
                        json_key(w, "name");
                        json_string(w, d->name);
                        json_key(w, "provider");
                        json_string(w, d->provider);
                        json_key(w, "scope");
                        json_string(w, jl_scope_name(d->scope));
                        json_key(w, "energy_j");
                        json_double(w, d->energy_j);
                        json_key(w, "power_w");
                        json_object_begin(w);
                        json_key(w, "avg");
                        json_double(w, d->power_avg_w);
                        json_key(w, "max");
                        json_double(w, d->power_max_w);
                        json_object_end(w);
                        json_key(w, "estimated");
                        json_bool(w, d->estimated);
                        json_key(w, "gap_s");
                        json_double(w, d->gap_s);
                        json_object_end(w);
                }
                json_array_end(w);
                json_object_end(w);
        }
        json_array_end(w);
        json_key(w, "system_checks");
        json_array_begin(w);
        for (size_t i = 0; i < r->checks.n; i++) {
                const jl_syscheck *c = &r->checks.items[i];
                json_object_begin(w);
                json_key(w, "name");
                json_string(w, c->name);
                json_key(w, "observed");
                json_string(w, c->observed);
                json_key(w, "expected");
                json_string(w, c->expected);
                json_key(w, "status");
                json_string(w, jl_check_status_name(c->status));
                json_object_end(w);
        }
        json_array_end(w);
        json_key(w, "suspended_s");
        json_double(w, r->suspended_s);
        json_key(w, "timeline_points");
        json_uint(w, r->n_points);
        json_key(w, "notes");
        json_array_begin(w);
        for (size_t i = 0; i < r->n_notes; i++)
                json_string(w, r->notes[i]);
        json_array_end(w);
        json_object_end(w);
}

int jl_run_opts_from_config(const joule_config *c, jl_run_opts *o)
{
        jl_run_opts_default(o);
        o->interval_ns = (uint64_t)llround(c->measurement.sampling_rate_ms * 1e6);
        o->providers.estimate_idle_w = c->estimate.idle_w;
        o->providers.estimate_max_w = c->estimate.max_w;
        o->providers.hwmon_sensors = (const char *const *)c->measurement.hwmon_sensors;
        if (jl_machine_profile_from_string(c->machine.profile, &o->profile) < 0 ||
            jl_check_breach_from_string(c->runner.system_checks, &o->breach) < 0)
                return -EINVAL;
        if (o->interval_ns < NSEC_PER_MSEC)
                o->interval_ns = NSEC_PER_MSEC;
        return 0;
}
