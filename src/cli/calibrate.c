/* calibrate.c - `joule calibrate`: measure a measurement machine's idle baseline (power and temperature,
 * mean and standard deviation), the cost of joule's own sampling, a load phase (stress-ng by default) and
 * the time it takes to cool back to the idle temperature; recommend machine.base_temperature_value and
 * runner.sleep_time_after_job, and with --write FILE store them as a YAML snippet and in the machine's row
 * of the database. See docs/calibrate.md. */
#include <errno.h>
#include <fnmatch.h>
#include <getopt.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "json.h"
#include "log.h"
#include "macro.h"
#include "parse.h"
#include "run.h"
#include "sampler.h"
#include "scenario.h"
#include "timeutil.h"

#define COOL_MARGIN_C 1.0

typedef struct {
        double idle_s, load_s, cool_max_s;
        const char *load_command;
        const char *write_path;
        bool json;
} cal_opts;

/* Running statistics (Welford). */
typedef struct {
        double n, mean, m2, max;
} stat_acc;

static void stat_add(stat_acc *a, double x)
{
        if (!isfinite(x))
                return;
        a->n++;
        double d = x - a->mean;
        a->mean += d / a->n;
        a->m2 += d * (x - a->mean);
        a->max = a->n == 1 ? x : MAX(a->max, x);
}

static double stat_sd(const stat_acc *a)
{
        return a->n > 1 ? sqrt(a->m2 / (a->n - 1)) : 0;
}

typedef struct {
        const char *chip, *feature; /* machine.base_temperature_*; NULL: the hottest sensor */
        stat_acc power, temp;
        double total_prev_j;
        bool collect;
} cal_state;

/* The machine's temperature now: the configured sensor's latest reading, else the hottest one. */
static double current_temp(const cal_state *st, const jl_sampler *s)
{
        double best = NAN;
        for (size_t i = 0; i < s->channels.n; i++) {
                const jl_track *t = &s->tracks[i];
                if (t->ch.kind != JL_KIND_TEMPERATURE || !t->have_value || s->values[i].err < 0)
                        continue;
                if (st->chip && st->feature) {
                        char pattern[512];
                        snprintf(pattern, sizeof(pattern), "%s/%s", st->chip, st->feature);
                        if (fnmatch(pattern, t->ch.name, 0) == 0)
                                return t->value;
                        continue;
                }
                best = isnan(best) ? t->value : MAX(best, t->value);
        }
        return best;
}

static void on_sample(void *userdata, const jl_sampler *s, uint64_t t_ns)
{
        cal_state *st = userdata;
        double total = jl_sampler_total_energy_j(s, NULL);
        if (st->collect) {
                if (s->nsamples > 1 && t_ns > s->t_prev_ns)
                        stat_add(&st->power, (total - st->total_prev_j) / ((double)(t_ns - s->t_prev_ns) / 1e9));
                stat_add(&st->temp, current_temp(st, s));
        }
        st->total_prev_j = total;
}

static double cpu_time_s(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Wait until the deadline, sampling on the timer when tfd >= 0. Returns 0, or the signal that came. */
static int wait_until(int sfd, int tfd, jl_sampler *s, uint64_t deadline_ns)
{
        for (;;) {
                uint64_t now = mono_ns();
                if (now >= deadline_ns)
                        return 0;
                int timeout_ms = (int)MIN((deadline_ns - now + NSEC_PER_MSEC - 1) / NSEC_PER_MSEC, (uint64_t)INT32_MAX);
                struct pollfd pfd[2] = {{.fd = sfd, .events = POLLIN}, {.fd = tfd, .events = POLLIN}};
                int n = poll(pfd, tfd >= 0 ? 2 : 1, timeout_ms);
                if (n < 0 && errno != EINTR)
                        return -errno;
                if (n <= 0)
                        continue;
                if (tfd >= 0 && (pfd[1].revents & POLLIN)) {
                        uint64_t exp;
                        if (read(tfd, &exp, sizeof(exp)) > 0)
                                jl_sampler_tick(s);
                }
                struct signalfd_siginfo si;
                if ((pfd[0].revents & POLLIN) && read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
                        return (int)si.ssi_signo;
        }
}

static int usage(FILE *f)
{
        fputs("Usage: joule calibrate [--idle S] [--load S] [--cool-max S] [--load-command CMD] [--json]\n"
              "                       [--write FILE]\n\n"
              "Measures the idle baseline (power, temperature), the cost of joule's sampling, a load phase and\n"
              "the time to cool back to idle; recommends machine.base_temperature_value and\n"
              "runner.sleep_time_after_job. Run it on an otherwise idle machine. See docs/calibrate.md.\n\n"
              "  --idle S           idle baseline length (default 60 s)\n"
              "  --load S           load phase length (default 60 s)\n"
              "  --cool-max S       give up waiting for the cool-down after S (default 900 s)\n"
              "  --load-command CMD the load, through /bin/sh -c (default: stress-ng --cpu N --timeout S)\n"
              "  --json             one JSON object on stdout\n"
              "  --write FILE       write the recommended settings as a YAML snippet to FILE and store\n"
              "                     them in the machine's row of the database (machine.id)\n",
              f);
        return f == stdout ? 0 : 2;
}

static int parse_secs(const char *opt, const char *arg, double max_s, double *ret)
{
        uint64_t ns;
        if (parse_duration_ns(arg, NSEC_PER_SEC, &ns) < 0 || ns == 0 || (double)ns / 1e9 > max_s)
                return log_error(EINVAL, "%s: '%s' is not a duration between 1 ns and %.0f s", opt, arg, max_s);
        *ret = (double)ns / 1e9;
        return 0;
}

static int parse_args(int argc, char **argv, cal_opts *o)
{
        static const struct option opts[] = {
                {"idle", required_argument, NULL, 'i'},
                {"load", required_argument, NULL, 'l'},
                {"cool-max", required_argument, NULL, 'c'},
                {"load-command", required_argument, NULL, 'L'},
                {"json", no_argument, NULL, 'j'},
                {"write", required_argument, NULL, 'w'},
                {"help", no_argument, NULL, 'h'},
                {0},
        };
        int c;
        while ((c = getopt_long(argc, argv, "i:l:c:L:jw:h", opts, NULL)) >= 0) {
                switch (c) {
                case 'i':
                        if (parse_secs("--idle", optarg, 86400, &o->idle_s) < 0)
                                return -EINVAL;
                        break;
                case 'l':
                        if (parse_secs("--load", optarg, 86400, &o->load_s) < 0)
                                return -EINVAL;
                        break;
                case 'c':
                        if (parse_secs("--cool-max", optarg, 86400, &o->cool_max_s) < 0)
                                return -EINVAL;
                        break;
                case 'L':
                        o->load_command = optarg;
                        break;
                case 'j':
                        o->json = true;
                        break;
                case 'w':
                        o->write_path = optarg;
                        break;
                case 'h':
                        usage(stdout);
                        return 1;
                default:
                        usage(stderr);
                        return -EINVAL;
                }
        }
        if (optind < argc) {
                usage(stderr);
                return log_error(EINVAL, "unexpected arguments");
        }
        return 0;
}

typedef struct {
        stat_acc idle_power, idle_temp;
        double idle_s, idle_cpu_s;
        double nos_s, nos_cpu_s, nos_power_w;
        double interval_ms;
        bool load_ok;
        char load_message[1024];
        double load_s, load_power_w, load_power_max_w, load_temp_max_c;
        double cool_s;
        bool cooled;
        double rec_base_temp, rec_sleep_s;
        const char *temp_source;
} cal_result;

static void print_human(const cal_result *r)
{
        FILE *f = stdout;
        double ovh_cpu = r->idle_cpu_s / r->idle_s - (r->nos_s > 0 ? r->nos_cpu_s / r->nos_s : 0);
        fprintf(f, "\n Idle baseline (%.0f s, sampling every %.0f ms):\n", r->idle_s, r->interval_ms);
        fprintf(f, "   power        %8.2f W  (sd %.2f W)\n", r->idle_power.mean, stat_sd(&r->idle_power));
        fprintf(f, "   temperature  %8.2f °C (sd %.2f °C; %s)\n", r->idle_temp.mean, stat_sd(&r->idle_temp),
                r->temp_source);
        fprintf(f, "\n Measurement overhead:\n");
        fprintf(f, "   CPU          %8.3f %% of one core while sampling (%.3f %% without)\n",
                r->idle_cpu_s / r->idle_s * 100, r->nos_s > 0 ? r->nos_cpu_s / r->nos_s * 100 : 0);
        fprintf(f, "   power        %+8.2f W  (idle with sampling minus %.0f s without; within noise when "
                   "below the sd)\n",
                r->idle_power.mean - r->nos_power_w, r->nos_s);
        (void)ovh_cpu;
        fprintf(f, "\n Load (%.1f s): %s\n", r->load_s, r->load_ok ? "" : r->load_message);
        fprintf(f, "   power        %8.2f W avg, %.2f W max\n", r->load_power_w, r->load_power_max_w);
        fprintf(f, "   temperature  %8.2f °C max\n", r->load_temp_max_c);
        fprintf(f, "\n Cool-down to within %.0f °C of idle: %s%.1f s\n", COOL_MARGIN_C, r->cooled ? "" : "not reached in ",
                r->cool_s);
        fprintf(f, "\n Recommended settings:\n   machine.base_temperature_value: %.0f\n"
                   "   runner.sleep_time_after_job: %.0f\n\n",
                r->rec_base_temp, r->rec_sleep_s);
}

static void write_json(const cal_result *r, FILE *f)
{
        json_writer w;
        json_init(&w, f);
        json_object_begin(&w);
        json_key(&w, "idle");
        json_object_begin(&w);
        json_key(&w, "duration_s");
        json_double(&w, r->idle_s);
        json_key(&w, "power_w");
        json_object_begin(&w);
        json_key(&w, "mean");
        json_double(&w, r->idle_power.mean);
        json_key(&w, "sd");
        json_double(&w, stat_sd(&r->idle_power));
        json_object_end(&w);
        json_key(&w, "temperature_c");
        json_object_begin(&w);
        json_key(&w, "mean");
        json_double(&w, r->idle_temp.n ? r->idle_temp.mean : NAN);
        json_key(&w, "sd");
        json_double(&w, stat_sd(&r->idle_temp));
        json_key(&w, "source");
        json_string(&w, r->temp_source);
        json_object_end(&w);
        json_object_end(&w);
        json_key(&w, "overhead");
        json_object_begin(&w);
        json_key(&w, "interval_ms");
        json_double(&w, r->interval_ms);
        json_key(&w, "cpu_sampling");
        json_double(&w, r->idle_cpu_s / r->idle_s);
        json_key(&w, "cpu_not_sampling");
        json_double(&w, r->nos_s > 0 ? r->nos_cpu_s / r->nos_s : NAN);
        json_key(&w, "power_w");
        json_double(&w, r->idle_power.mean - r->nos_power_w);
        json_object_end(&w);
        json_key(&w, "load");
        json_object_begin(&w);
        json_key(&w, "ok");
        json_bool(&w, r->load_ok);
        json_key(&w, "message");
        json_string(&w, r->load_message);
        json_key(&w, "duration_s");
        json_double(&w, r->load_s);
        json_key(&w, "power_w");
        json_object_begin(&w);
        json_key(&w, "avg");
        json_double(&w, r->load_power_w);
        json_key(&w, "max");
        json_double(&w, r->load_power_max_w);
        json_object_end(&w);
        json_key(&w, "temperature_c");
        json_object_begin(&w);
        json_key(&w, "max");
        json_double(&w, r->load_temp_max_c);
        json_object_end(&w);
        json_object_end(&w);
        json_key(&w, "cooldown");
        json_object_begin(&w);
        json_key(&w, "reached");
        json_bool(&w, r->cooled);
        json_key(&w, "duration_s");
        json_double(&w, r->cool_s);
        json_object_end(&w);
        json_key(&w, "recommended");
        json_object_begin(&w);
        json_key(&w, "base_temperature_value");
        json_double(&w, r->rec_base_temp);
        json_key(&w, "sleep_time_after_job");
        json_double(&w, r->rec_sleep_s);
        json_object_end(&w);
        json_object_end(&w);
}

static void print_json(const cal_result *r)
{
        write_json(r, stdout);
        fputc('\n', stdout);
        fflush(stdout);
}

/* Store the calibration in the machine's row (machines.calibrated_*, calibration_json; see `joule machines
 * show`) and the changelog, in one transaction. */
static int store_calibration(const cal_result *r, cli_context *ctx)
{
        _cleanup_free_ char *json = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&json, &len);
        if (!f)
                return log_error(ENOMEM, "out of memory");
        write_json(r, f);
        if (fclose(f) != 0)
                return log_error(ENOMEM, "out of memory");
        jl_store *s = NULL;
        int k = cli_open_store(ctx, NULL, &s);
        if (k < 0)
                return k;
        int64_t id = ctx->config.machine.id, now = (int64_t)cli_now_us();
        char msg[256];
        snprintf(
            msg, sizeof(msg),
            "joule calibrate: base_temperature_value %.0f, sleep_time_after_job %.0f (idle %.2f W, %.2f °C)",
            r->rec_base_temp, r->rec_sleep_s, r->idle_power.mean, r->idle_temp.n ? r->idle_temp.mean : NAN);
        {
                _cleanup_stmt_ jl_stmt *up = NULL, *cl = NULL;
                k = jl_store_begin(s);
                if (k >= 0)
                        k = jl_store_prepare(
                            s,
                            "UPDATE machines SET calibrated_us = $2, calibrated_base_temperature_c "
                            "= $3, calibrated_sleep_time_after_job_s = $4, calibration_json = "
                            "$5, updated_us = $2 WHERE id = $1",
                            &up);
                if (k >= 0 && (k = jl_stmt_bind_int64(up, 1, id)) >= 0 &&
                    (k = jl_stmt_bind_int64(up, 2, now)) >= 0 &&
                    (k = jl_stmt_bind_double(up, 3, r->rec_base_temp)) >= 0 &&
                    (k = jl_stmt_bind_double(up, 4, r->rec_sleep_s)) >= 0 &&
                    (k = jl_stmt_bind_text(up, 5, json)) >= 0)
                        k = jl_stmt_step(up);
                bool missing = k >= 0 && jl_stmt_changes(up) != 1;
                if (missing)
                        k = -ENOENT;
                if (k >= 0)
                        k = jl_store_prepare(
                            s, "INSERT INTO changelog (time_us, machine_id, message) VALUES ($1, $2, $3)",
                            &cl);
                if (k >= 0 && (k = jl_stmt_bind_int64(cl, 1, now)) >= 0 &&
                    (k = jl_stmt_bind_int64(cl, 2, id)) >= 0 && (k = jl_stmt_bind_text(cl, 3, msg)) >= 0)
                        k = jl_stmt_step(cl);
                if (k >= 0)
                        k = jl_store_commit(s);
                if (missing)
                        log_error(ENOENT,
                                  "machine %lld (machine.id) does not exist in the database: add it with "
                                  "`joule machines add --id %lld --description TEXT`",
                                  (long long)id, (long long)id);
                else if (k < 0)
                        log_error(k, "cannot store the calibration of machine %lld: %s", (long long)id,
                                  jl_store_error(s));
                if (k < 0)
                        jl_store_rollback(s);
        } /* the statements are finalized here, before the store is closed */
        jl_store_close(s);
        return k < 0 ? k : 0;
}

static int write_snippet(const char *path, const cal_result *r, const cli_context *ctx)
{
        char when[64], host[256] = "";
        format_iso8601((uint64_t)((int64_t)mono_ns() + realtime_offset_ns()), when, sizeof(when));
        gethostname(host, sizeof(host) - 1);
        FILE *f = fopen(path, "we");
        if (!f)
                return -errno;
        fprintf(f,
                "# joule calibrate on %s at %s (machine.id %lld): idle %.2f W / %.2f °C (sd %.2f), load %.2f W /\n"
                "# %.2f °C max, cool-down %.1f s%s. Merge into the configuration (joule.yml).\n"
                "machine:\n  base_temperature_value: %.0f\nrunner:\n  sleep_time_after_job: %.0f\n",
                host, when, (long long)ctx->config.machine.id, r->idle_power.mean, r->idle_temp.mean,
                stat_sd(&r->idle_temp), r->load_power_w, r->load_temp_max_c, r->cool_s,
                r->cooled ? "" : " (not reached: the bound)", r->rec_base_temp, r->rec_sleep_s);
        int ret = ferror(f) ? -EIO : 0;
        if (fclose(f) != 0 && ret == 0)
                ret = -errno;
        return ret;
}

/* The load phase as a one-step scenario run by the runner's own code (process group, timeout, signals). */
static int run_load(cli_context *ctx, const cal_opts *o, cal_result *cr, int *ret_signal)
{
        char cmd[512];
        if (o->load_command)
                snprintf(cmd, sizeof(cmd), "%s", o->load_command);
        else {
                long n = sysconf(_SC_NPROCESSORS_ONLN);
                snprintf(cmd, sizeof(cmd), "exec stress-ng --cpu %ld --timeout %.0fs --quiet", n > 0 ? n : 1,
                         ceil(o->load_s));
        }
        char *commands[] = {cmd};
        jl_scenario_step step = {.name = (char *)"load", .commands = commands, .n_commands = 1,
                                 .timeout_s = o->load_s + 60};
        jl_scenario sc = {.file = (char *)"calibrate", .name = (char *)"calibrate", .flow = &step, .n_flow = 1};
        jl_run_opts ro;
        jl_run_opts_from_config(&ctx->config, &ro);
        ro.baseline_s = 0;
        ro.breach = JL_CHECK_WARN; /* calibration runs whatever the machine's settings are */
        ro.output_fd = 2;
        ro.timeline = false;
        jl_run_result *res = NULL;
        int r = jl_run_scenario(&sc, &ro, &res);
        if (r < 0)
                return r;
        *ret_signal = res->signal;
        cr->load_ok = res->state == JL_RUN_FINISHED;
        snprintf(cr->load_message, sizeof(cr->load_message), "%s", res->message);
        if (res->n_phases > 0) {
                const jl_run_phase *p = &res->phases[res->n_phases - 1];
                cr->load_s = p->duration_s;
                cr->load_power_w = p->power_avg_w;
                cr->load_power_max_w = p->power_max_w;
                cr->load_temp_max_c = p->temp_max_c;
        }
        jl_run_result_free(res);
        return 0;
}

int verb_calibrate(cli_context *ctx, int argc, char **argv)
{
        cal_opts o = {.idle_s = 60, .load_s = 60, .cool_max_s = 900};
        int r = parse_args(argc, argv, &o);
        if (r != 0)
                return r > 0 ? 0 : 2;

        cal_result cr = {.interval_ms = ctx->config.measurement.sampling_rate_ms, .load_temp_max_c = NAN};
        cal_state st = {.chip = ctx->config.machine.base_temperature_chip,
                        .feature = ctx->config.machine.base_temperature_feature};
        cr.temp_source = st.chip && st.feature ? "machine.base_temperature_chip/feature" : "the hottest sensor";
        uint64_t interval_ns = (uint64_t)llround(cr.interval_ms * 1e6);
        int ret = 1, sig = 0;
        jl_sampler *s = NULL;
        _cleanup_close_ int sfd = -1, tfd = -1;
        sigset_t mask, old;
        sigemptyset(&mask);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGTERM);
        sigprocmask(SIG_BLOCK, &mask, &old);
        sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
        tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
        if (sfd < 0 || tfd < 0) {
                log_error(errno, "cannot set up signals and timers: %m");
                goto finish;
        }
        jl_provider_config pc;
        cli_provider_config(ctx, &pc);
        r = jl_sampler_open(&pc, NULL, &s);
        if (r < 0) {
                log_error(r, "cannot open the measurement providers: %s", strerror(-r));
                goto finish;
        }
        jl_sampler_set_interval(s, interval_ns);
        jl_sampler_set_callback(s, on_sample, &st);
        if (!o.json)
                fprintf(stderr, "joule calibrate: idle baseline for %.0f s ...\n", o.idle_s);

        /* 1. Idle, sampling at the configured rate: the baseline, and the CPU cost of sampling. */
        struct itimerspec its = {.it_interval = ns_to_timespec(interval_ns), .it_value = ns_to_timespec(interval_ns)};
        st.collect = true;
        jl_sampler_sample(s);
        timerfd_settime(tfd, 0, &its, NULL);
        double cpu0 = cpu_time_s();
        uint64_t t0 = mono_ns();
        sig = wait_until(sfd, tfd, s, t0 + (uint64_t)(o.idle_s * 1e9));
        jl_sampler_sample(s);
        cr.idle_cpu_s = cpu_time_s() - cpu0;
        cr.idle_s = (double)(mono_ns() - t0) / 1e9;
        cr.idle_power = st.power;
        cr.idle_temp = st.temp;
        st.collect = false;
        struct itimerspec off = {0};
        timerfd_settime(tfd, 0, &off, NULL);
        if (sig)
                goto interrupted;

        /* 2. Idle without sampling (two samples only): the CPU time and power of not measuring. */
        double nos = MIN(o.idle_s, 10.0);
        jl_sampler_reset_stats(s);
        jl_sampler_sample(s);
        jl_sampler_reset_stats(s);
        cpu0 = cpu_time_s();
        t0 = mono_ns();
        sig = wait_until(sfd, -1, s, t0 + (uint64_t)(nos * 1e9));
        cr.nos_cpu_s = cpu_time_s() - cpu0;
        jl_sampler_sample(s);
        cr.nos_s = jl_sampler_duration_s(s);
        cr.nos_power_w = cr.nos_s > 0 ? jl_sampler_total_energy_j(s, NULL) / cr.nos_s : NAN;
        if (sig)
                goto interrupted;

        /* 3. The load. */
        if (!o.json)
                fprintf(stderr, "joule calibrate: load for %.0f s ...\n", o.load_s);
        r = run_load(ctx, &o, &cr, &sig); /* it reads SIGINT/SIGTERM through its own signalfd */
        if (r < 0) {
                log_error(r, "cannot run the load: %s", strerror(-r));
                goto finish;
        }
        if (sig)
                goto interrupted;
        if (!cr.load_ok)
                log_warning(EIO, "the load failed: %s", cr.load_message);

        /* 4. Cool-down: until the temperature is within COOL_MARGIN_C of the idle mean, bounded. */
        if (!o.json)
                fprintf(stderr, "joule calibrate: waiting for the cool-down (at most %.0f s) ...\n", o.cool_max_s);
        t0 = mono_ns();
        uint64_t give_up = t0 + (uint64_t)(o.cool_max_s * 1e9);
        double target = cr.idle_temp.mean + COOL_MARGIN_C;
        for (;;) {
                jl_sampler_sample(s);
                double t = current_temp(&st, s);
                uint64_t now = mono_ns();
                if (!cr.idle_temp.n || isnan(t) || t <= target) {
                        cr.cooled = true;
                        break;
                }
                if (now >= give_up)
                        break;
                sig = wait_until(sfd, -1, s, MIN(now + interval_ns, give_up));
                if (sig)
                        goto interrupted;
        }
        cr.cool_s = (double)(mono_ns() - t0) / 1e9;

        /* Recommendations: the gate waits while the machine is above base_temperature_value, so give it the
         * idle level plus its noise; wait after a job as long as a full load took to cool down. */
        cr.rec_base_temp = cr.idle_temp.n ? ceil(cr.idle_temp.mean + MAX(COOL_MARGIN_C, 2 * stat_sd(&cr.idle_temp)))
                                          : ctx->config.machine.base_temperature_value;
        cr.rec_sleep_s = ceil(cr.cool_s * 1.1);
        if (!cr.idle_temp.n)
                log_warning(ENOENT, "no temperature sensor%s: the cool-down cannot be measured",
                            st.chip ? " matches machine.base_temperature_chip/feature" : "");
        if (o.json)
                print_json(&cr);
        else
                print_human(&cr);
        ret = 0;
        if (o.write_path) {
                r = write_snippet(o.write_path, &cr, ctx);
                if (r < 0) {
                        log_error(r, "--write %s: %s", o.write_path, strerror(-r));
                        ret = 1;
                } else if (!o.json)
                        fprintf(stderr, "joule calibrate: wrote %s\n", o.write_path);
                if (store_calibration(&cr, ctx) < 0)
                        ret = 1;
                else if (!o.json)
                        fprintf(stderr,
                                "joule calibrate: stored in machine %lld's row (joule machines show)\n",
                                (long long)ctx->config.machine.id);
        }
        goto finish;

interrupted:
        if (sig > 0) {
                log_error(EINTR, "interrupted by SIG%s", sigabbrev_np(sig));
                ret = 128 + sig;
        } else
                log_error(sig, "waiting failed: %s", strerror(-sig));
finish:
        jl_sampler_free(s);
        sigprocmask(SIG_SETMASK, &old, NULL);
        return ret;
}
