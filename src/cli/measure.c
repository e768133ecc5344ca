/* measure.c - `joule measure`: run a command under measurement, forward signals to it, exit with its exit
 * code, and report energy per domain, power, temperature, frequency and utilization (perf-stat-like on
 * stderr, or one JSON object on stdout; optionally a CSV timeline of every sample). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "json.h"
#include "log.h"
#include "macro.h"
#include "parse.h"
#include "sampler.h"
#include "timeutil.h"

typedef struct {
        uint64_t interval_ns;
        bool json;
        const char *timeline_path;
        char **providers;
} measure_opts;

typedef struct {
        FILE *f;
        bool header;
        uint64_t t0_ns;
} timeline;

static void csv_field(FILE *f, const char *name, const char *suffix)
{
        bool quote = strpbrk(name, ",\" \n") != NULL;
        if (!quote) {
                fprintf(f, ",%s%s", name, suffix);
                return;
        }
        fputs(",\"", f);
        for (const char *p = name; *p; p++) {
                if (*p == '"')
                        fputc('"', f);
                fputc(*p, f);
        }
        fprintf(f, "%s\"", suffix);
}

static void timeline_cb(void *userdata, const jl_sampler *s, uint64_t t_ns)
{
        timeline *tl = userdata;
        if (!tl->header) {
                fputs("time_s", tl->f);
                for (size_t i = 0; i < s->channels.n; i++) {
                        const jl_channel *c = &s->channels.items[i];
                        if (c->kind == JL_KIND_ENERGY) {
                                csv_field(tl->f, c->name, "_energy_j");
                                csv_field(tl->f, c->name, "_power_w");
                        } else {
                                char suffix[16];
                                snprintf(suffix, sizeof(suffix), "_%s", c->kind == JL_KIND_TEMPERATURE ? "c"
                                                                         : c->kind == JL_KIND_FREQUENCY ? "khz"
                                                                         : c->kind == JL_KIND_POWER     ? "w"
                                                                                                        : "ratio");
                                csv_field(tl->f, c->name, suffix);
                        }
                }
                fputc('\n', tl->f);
                tl->header = true;
                tl->t0_ns = t_ns;
        }
        fprintf(tl->f, "%.6f", (double)(t_ns - tl->t0_ns) / 1e9);
        for (size_t i = 0; i < s->channels.n; i++) {
                const jl_track *t = &s->tracks[i];
                bool bad = s->values[i].err < 0;
                if (t->ch.kind == JL_KIND_ENERGY) {
                        fprintf(tl->f, ",%.6f", (double)t->energy_uj / 1e6);
                        if (bad || s->nsamples < 2)
                                fputs(",", tl->f);
                        else
                                fprintf(tl->f, ",%.3f", t->power_w);
                } else if (bad || !t->have_value)
                        fputs(",", tl->f);
                else
                        fprintf(tl->f, ",%.6g", t->value);
        }
        fputc('\n', tl->f);
}

static int usage(FILE *f)
{
        fputs("Usage: joule measure [--interval MS] [--json] [--timeline FILE.csv] [--providers LIST] -- CMD "
              "[ARGS...]\n\n"
              "Runs CMD, forwards signals to it, exits with its exit code and reports the energy it took.\n\n"
              "  -i, --interval MS      sampling interval (default 100 ms; 1 ms at least; units: us ms s)\n"
              "  -j, --json             print one JSON object on stdout instead of the summary on stderr\n"
              "  -t, --timeline FILE    write every sample to a CSV file\n"
              "  -p, --providers LIST   only these providers (e.g. rapl,hwmon); see `joule info`\n",
              f);
        return f == stdout ? 0 : 2;
}

/* Summary figures derived from the tracks. */
typedef struct {
        double temp_max, temp_mean_sum;
        size_t ntemp;
        double freq_sum;
        size_t nfreq;
        double util, proc_util;
        bool have_util, have_proc_util;
} derived;

static void derive(const jl_sampler *s, derived *d)
{
        *d = (derived){.temp_max = NAN};
        for (size_t i = 0; i < s->channels.n; i++) {
                const jl_track *t = &s->tracks[i];
                if (!t->have_value)
                        continue;
                switch (t->ch.kind) {
                case JL_KIND_TEMPERATURE:
                        d->temp_max = d->ntemp ? MAX(d->temp_max, t->max) : t->max;
                        d->temp_mean_sum += jl_track_mean(t);
                        d->ntemp++;
                        break;
                case JL_KIND_FREQUENCY:
                        if (strcmp(t->ch.provider, "cpufreq") == 0) {
                                d->freq_sum += jl_track_mean(t);
                                d->nfreq++;
                        }
                        break;
                case JL_KIND_UTILIZATION:
                        if (strcmp(t->ch.name, "cpu-utilization") == 0) {
                                d->util = jl_track_mean(t);
                                d->have_util = true;
                        } else if (strcmp(t->ch.name, "process-utilization") == 0) {
                                d->proc_util = jl_track_mean(t);
                                d->have_proc_util = true;
                        }
                        break;
                default:
                        break;
                }
        }
}

static void print_json(const jl_sampler *s, char **cmd, int exit_code, uint64_t interval_ns)
{
        json_writer w;
        derived d;
        jl_total_source src;
        double total = jl_sampler_total_energy_j(s, &src);
        double dur = jl_sampler_duration_s(s);
        derive(s, &d);

        json_init(&w, stdout);
        json_object_begin(&w);
        json_key(&w, "command");
        json_array_begin(&w);
        for (char **a = cmd; *a; a++)
                json_string(&w, *a);
        json_array_end(&w);
        json_key(&w, "exit_code");
        json_int(&w, exit_code);
        json_key(&w, "duration_s");
        json_double(&w, dur);
        json_key(&w, "energy_j");
        json_double(&w, total);
        json_key(&w, "energy_source");
        json_string(&w, jl_total_source_name(src));
        json_key(&w, "estimated");
        json_bool(&w, src == JL_TOTAL_ESTIMATE);
        json_key(&w, "domains");
        json_array_begin(&w);
        for (size_t i = 0; i < s->channels.n; i++) {
                const jl_track *t = &s->tracks[i];
                if (t->ch.kind != JL_KIND_ENERGY)
                        continue;
                double e = (double)t->energy_uj / 1e6;
                json_object_begin(&w);
                json_key(&w, "name");
                json_string(&w, t->ch.name);
                json_key(&w, "provider");
                json_string(&w, t->ch.provider);
                json_key(&w, "scope");
                json_string(&w, jl_scope_name(t->ch.scope));
                json_key(&w, "energy_j");
                json_double(&w, e);
                json_key(&w, "power_w");
                json_object_begin(&w);
                json_key(&w, "avg");
                json_double(&w, dur > 0 ? e / dur : 0);
                json_key(&w, "max");
                json_double(&w, t->power_max_w);
                json_object_end(&w);
                json_key(&w, "estimated");
                json_bool(&w, t->ch.estimated);
                json_key(&w, "wraps");
                json_uint(&w, t->wraps);
                json_key(&w, "glitches");
                json_uint(&w, t->glitches);
                json_key(&w, "gaps");
                json_uint(&w, t->gaps);
                json_key(&w, "gap_s");
                json_double(&w, (double)t->gap_ns / 1e9);
                json_key(&w, "errors");
                json_uint(&w, t->errors);
                json_object_end(&w);
        }
        json_array_end(&w);
        json_key(&w, "temperature_c");
        if (d.ntemp) {
                json_object_begin(&w);
                json_key(&w, "max");
                json_double(&w, d.temp_max);
                json_key(&w, "mean");
                json_double(&w, d.temp_mean_sum / (double)d.ntemp);
                json_object_end(&w);
        } else
                json_null(&w);
        json_key(&w, "frequency_mhz");
        if (d.nfreq) {
                json_object_begin(&w);
                json_key(&w, "avg");
                json_double(&w, d.freq_sum / (double)d.nfreq / 1000.0);
                json_object_end(&w);
        } else
                json_null(&w);
        json_key(&w, "cpu_utilization");
        if (d.have_util)
                json_double(&w, d.util);
        else
                json_null(&w);
        json_key(&w, "process_utilization");
        if (d.have_proc_util)
                json_double(&w, d.proc_util);
        else
                json_null(&w);
        json_key(&w, "sensors");
        json_array_begin(&w);
        for (size_t i = 0; i < s->channels.n; i++) {
                const jl_track *t = &s->tracks[i];
                if (t->ch.kind == JL_KIND_ENERGY)
                        continue;
                json_object_begin(&w);
                json_key(&w, "name");
                json_string(&w, t->ch.name);
                json_key(&w, "provider");
                json_string(&w, t->ch.provider);
                json_key(&w, "kind");
                json_string(&w, jl_kind_name(t->ch.kind));
                json_key(&w, "unit");
                json_string(&w, jl_kind_unit(t->ch.kind));
                json_key(&w, "min");
                json_double(&w, t->have_value ? t->min : NAN);
                json_key(&w, "max");
                json_double(&w, t->have_value ? t->max : NAN);
                json_key(&w, "mean");
                json_double(&w, jl_track_mean(t));
                json_key(&w, "errors");
                json_uint(&w, t->errors);
                json_object_end(&w);
        }
        json_array_end(&w);
        json_key(&w, "samples");
        json_uint(&w, s->nsamples);
        json_key(&w, "interval_ms");
        json_double(&w, (double)interval_ns / 1e6);
        json_key(&w, "suspended_s");
        json_double(&w, jl_sampler_suspended_s(s));
        json_key(&w, "notes");
        json_array_begin(&w);
        for (size_t i = 0; i < s->notes.n; i++) {
                json_object_begin(&w);
                json_key(&w, "subject");
                json_string(&w, s->notes.items[i].subject);
                json_key(&w, "reason");
                json_string(&w, s->notes.items[i].reason);
                json_object_end(&w);
        }
        for (size_t i = 0; i < s->channels.n; i++) {
                const jl_track *t = &s->tracks[i];
                if (!t->errors && !t->glitches)
                        continue;
                char subject[JL_NAME_MAX + 16];
                snprintf(subject, sizeof(subject), "%s/%s", t->ch.provider, t->ch.name);
                char reason[256];
                snprintf(reason, sizeof(reason), "%u failed readings, %u counter glitches during the run%s%s",
                         t->errors, t->glitches, t->last_err ? ": " : "",
                         t->last_err ? jl_errno_hint(t->last_err) : "");
                json_object_begin(&w);
                json_key(&w, "subject");
                json_string(&w, subject);
                json_key(&w, "reason");
                json_string(&w, reason);
                json_object_end(&w);
        }
        json_array_end(&w);
        json_object_end(&w);
        fputc('\n', stdout);
        fflush(stdout);
}

static void print_summary(const jl_sampler *s, char **cmd)
{
        FILE *f = stderr;
        derived d;
        jl_total_source src;
        double total = jl_sampler_total_energy_j(s, &src);
        double dur = jl_sampler_duration_s(s);
        derive(s, &d);

        fprintf(f, "\n Energy stats for '");
        for (char **a = cmd; *a; a++)
                fprintf(f, "%s%s", a == cmd ? "" : " ", *a);
        fprintf(f, "':\n\n");
        for (size_t i = 0; i < s->channels.n; i++) {
                const jl_track *t = &s->tracks[i];
                if (t->ch.kind != JL_KIND_ENERGY)
                        continue;
                double e = (double)t->energy_uj / 1e6;
                const char *tag = t->ch.estimated                    ? "  (estimated)"
                                  : t->ch.scope == JL_SCOPE_SUBDOMAIN ? "  (part of a package)"
                                  : t->ch.scope == JL_SCOPE_NODE      ? "  (whole node)"
                                                                      : "";
                fprintf(f, " %14.3f J   %-22s %-9s %9.2f W avg %9.2f W max%s\n", e, t->ch.name,
                        t->ch.provider, dur > 0 ? e / dur : 0, t->power_max_w, tag);
        }
        switch (src) {
        case JL_TOTAL_DOMAINS:
                fprintf(f, " %14.3f J   total (packages + DRAM + GPUs) %9.2f W avg\n", total,
                        dur > 0 ? total / dur : 0);
                break;
        case JL_TOTAL_NODE:
                fprintf(f, " %14.3f J   total (whole-node sensor)  %9.2f W avg\n", total, dur > 0 ? total / dur : 0);
                break;
        case JL_TOTAL_ESTIMATE:
                fprintf(f, " %14.3f J   total, ESTIMATED from utilization (no power sensor) %9.2f W avg\n",
                        total, dur > 0 ? total / dur : 0);
                break;
        default:
                fprintf(f, "                  no energy sensor on this machine (see `joule info`)\n");
        }
        fprintf(f, "\n %14.6f s   elapsed\n", dur);
        if (d.ntemp)
                fprintf(f, " %14.1f °C  max temperature (mean %.1f °C)\n", d.temp_max,
                        d.temp_mean_sum / (double)d.ntemp);
        if (d.nfreq)
                fprintf(f, " %14.0f MHz average CPU frequency\n", d.freq_sum / (double)d.nfreq / 1000.0);
        if (d.have_util)
                fprintf(f, " %14.1f %%   CPU utilization (system)\n", d.util * 100);
        if (d.have_proc_util)
                fprintf(f, " %14.1f %%   CPU utilization (the command's process tree)\n", d.proc_util * 100);
        double susp = jl_sampler_suspended_s(s);
        if (susp > 0)
                fprintf(f, " warning: the machine was suspended for %.1f s during the run\n", susp);
        for (size_t i = 0; i < s->channels.n; i++) {
                const jl_track *t = &s->tracks[i];
                if (t->errors || t->glitches)
                        fprintf(f, " warning: %s/%s: %u failed readings, %u counter glitches%s%s\n",
                                t->ch.provider, t->ch.name, t->errors, t->glitches, t->last_err ? ": " : "",
                                t->last_err ? jl_errno_hint(t->last_err) : "");
                if (t->gaps)
                        fprintf(
                            f,
                            " warning: %s/%s: %u gaps (%.3f s): reads too far apart to unwrap the counter "
                            "for certain; their energy is estimated from the power around them\n",
                            t->ch.provider, t->ch.name, t->gaps, (double)t->gap_ns / 1e9);
        }
        fputc('\n', f);
}

static int parse_args(int argc, char **argv, measure_opts *o)
{
        static const struct option opts[] = {
                {"interval", required_argument, NULL, 'i'},
                {"json", no_argument, NULL, 'j'},
                {"timeline", required_argument, NULL, 't'},
                {"providers", required_argument, NULL, 'p'},
                {"help", no_argument, NULL, 'h'},
                {0},
        };
        int c, r;
        while ((c = getopt_long(argc, argv, "+i:jt:p:h", opts, NULL)) >= 0) {
                switch (c) {
                case 'i':
                        r = parse_duration_ns(optarg, NSEC_PER_MSEC, &o->interval_ns);
                        if (r < 0 || o->interval_ns < NSEC_PER_MSEC || o->interval_ns > 60 * NSEC_PER_SEC)
                                return log_error(EINVAL, "--interval: '%s' is not a duration between 1 ms and 60 s",
                                                 optarg);
                        break;
                case 'j':
                        o->json = true;
                        break;
                case 't':
                        o->timeline_path = optarg;
                        break;
                case 'p':
                        cli_strv_free(o->providers);
                        o->providers = cli_split_list(optarg);
                        if (!o->providers)
                                return log_error(ENOMEM, "out of memory");
                        break;
                case 'h':
                        usage(stdout);
                        return 1;
                default:
                        usage(stderr);
                        return -EINVAL;
                }
        }
        if (optind >= argc) {
                usage(stderr);
                return log_error(EINVAL, "no command given");
        }
        return 0;
}

static int exit_code_of(int status)
{
        if (WIFEXITED(status))
                return WEXITSTATUS(status);
        if (WIFSIGNALED(status))
                return 128 + WTERMSIG(status);
        return 1;
}

int verb_measure(cli_context *ctx, int argc, char **argv)
{
        measure_opts o = {.interval_ns = 100 * NSEC_PER_MSEC};
        int r = parse_args(argc, argv, &o);
        if (r != 0) {
                cli_strv_free(o.providers);
                return r > 0 ? 0 : 2;
        }
        char **cmd = argv + optind;
        int ret = 1;
        jl_sampler *s = NULL;
        timeline tl = {0};
        _cleanup_close_ int sfd = -1, tfd = -1, go_r = -1, go_w = -1, err_r = -1, err_w = -1;
        int pipes[2][2];
        pid_t pid = -1;

        if (o.timeline_path) {
                tl.f = fopen(o.timeline_path, "we");
                if (!tl.f) {
                        log_error(errno, "--timeline %s: %m", o.timeline_path);
                        goto finish;
                }
        }

        static const int forwarded[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH, SIGCONT};
        sigset_t mask, old;
        sigemptyset(&mask);
        sigaddset(&mask, SIGCHLD);
        for (size_t i = 0; i < ARRAY_SIZE(forwarded); i++)
                sigaddset(&mask, forwarded[i]);
        sigprocmask(SIG_BLOCK, &mask, &old);
        sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
        if (sfd < 0 || pipe2(pipes[0], O_CLOEXEC) < 0) {
                log_error(errno, "cannot set up signals and pipes: %m");
                goto finish;
        }
        go_r = pipes[0][0];
        go_w = pipes[0][1];
        if (pipe2(pipes[1], O_CLOEXEC) < 0) {
                log_error(errno, "cannot set up pipes: %m");
                goto finish;
        }
        err_r = pipes[1][0];
        err_w = pipes[1][1];

        fflush(NULL);
        pid = fork();
        if (pid < 0) {
                log_error(errno, "fork: %m");
                goto finish;
        }
        if (pid == 0) {
                /* Child: wait until the first sample is taken, then become the command. */
                char b;
                close(go_w);
                close(err_r);
                if (read(go_r, &b, 1) != 1)
                        _exit(127);
                sigprocmask(SIG_SETMASK, &old, NULL);
                execvp(cmd[0], cmd);
                int e = errno;
                if (write(err_w, &e, sizeof(e)) < 0) {
                        /* nothing more to do */
                }
                _exit(e == ENOENT ? 127 : 126);
        }
        close(TAKE_FD(go_r));
        close(TAKE_FD(err_w));

        jl_provider_config pc;
        cli_provider_config(ctx, &pc);
        pc.pid = pid;
        r = jl_sampler_open(&pc, (const char *const *)o.providers, &s);
        if (r < 0) {
                log_error(r, "cannot open the measurement providers: %s", strerror(-r));
                kill(pid, SIGKILL);
                waitpid(pid, NULL, 0);
                goto finish;
        }
        jl_sampler_set_interval(s, o.interval_ns);
        if (tl.f)
                jl_sampler_set_callback(s, timeline_cb, &tl);

        tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
        if (tfd < 0) {
                log_error(errno, "timerfd: %m");
                kill(pid, SIGKILL);
                waitpid(pid, NULL, 0);
                goto finish;
        }

        jl_sampler_sample(s); /* exactly at the start */
        if (write(go_w, "g", 1) != 1) {
                log_error(errno, "cannot start the command: %m");
                goto finish;
        }
        close(TAKE_FD(go_w));
        int exec_errno = 0;
        ssize_t n;
        do
                n = read(err_r, &exec_errno, sizeof(exec_errno));
        while (n < 0 && errno == EINTR);
        if (n == (ssize_t)sizeof(exec_errno)) {
                log_error(exec_errno, "%s: %s", cmd[0], strerror(exec_errno));
                waitpid(pid, NULL, 0);
                ret = exec_errno == ENOENT ? 127 : 126;
                goto finish;
        }

        struct itimerspec its = {.it_interval = ns_to_timespec(o.interval_ns),
                                 .it_value = ns_to_timespec(o.interval_ns)};
        timerfd_settime(tfd, 0, &its, NULL);

        int status = 0;
        for (bool done = false; !done;) {
                struct pollfd pfd[2] = {{.fd = tfd, .events = POLLIN}, {.fd = sfd, .events = POLLIN}};
                /* between ticks, the reads the sampler needs to unwrap fast-wrapping counters */
                if (poll(pfd, 2, jl_sampler_guard_timeout_ms(s, mono_ns())) < 0) {
                        if (errno == EINTR)
                                continue;
                        log_error(errno, "poll: %m");
                        break;
                }
                if (pfd[0].revents & POLLIN) {
                        uint64_t expirations;
                        if (read(tfd, &expirations, sizeof(expirations)) > 0)
                                jl_sampler_tick(s);
                }
                jl_sampler_guard(s);
                if (!(pfd[1].revents & POLLIN))
                        continue;
                struct signalfd_siginfo si;
                while (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
                        if (si.ssi_signo == SIGCHLD) {
                                /* Detect the exit without reaping: the zombie's /proc entry still holds the
                                 * process tree's CPU time for the last sample. */
                                siginfo_t info = {0};
                                if (waitid(P_PID, (id_t)pid, &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
                                    info.si_pid == pid) {
                                        jl_sampler_sample(s); /* exactly at the end */
                                        waitpid(pid, &status, 0);
                                        done = true;
                                }
                                continue;
                        }
                        /* A signal from the terminal reached the whole process group, the command
                         * included; one sent to joule alone is passed on. */
                        if (si.ssi_code != SI_KERNEL)
                                kill(pid, (int)si.ssi_signo);
                }
        }
        ret = exit_code_of(status);

        if (o.json)
                print_json(s, cmd, ret, o.interval_ns);
        else
                print_summary(s, cmd);
        if (tl.f && fflush(tl.f) != 0)
                log_error(errno, "--timeline %s: %m", o.timeline_path);

finish:
        if (tl.f)
                fclose(tl.f);
        jl_sampler_free(s);
        cli_strv_free(o.providers);
        return ret;
}
