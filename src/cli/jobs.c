/* jobs.c - `joule jobs list | show | cancel | email`: the measurement cluster's job queue (bench_jobs) as
 * the submitter sees it, the result of a job (its latest run's phases from phase_stats), cancelling a job
 * that is still WAITING (one conditional UPDATE: a runner's claim and a cancel never both win), and cron
 * mode's mail pass (send every queued e-mail that is due, then exit). */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <strings.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "cli.h"
#include "daemon.h"
#include "json.h"
#include "log.h"
#include "macro.h"
#include "mail.h"
#include "parse.h"
#include "store.h"
#include "timeutil.h"

static const char *const states[] = {"WAITING", "RUNNING", "FINISHED", "FAILED", "CANCELLED"};

static int usage(FILE *f)
{
        fputs("Usage: joule jobs list [--machine ID] [--state S] [--limit N] [--json]\n"
              "       joule jobs show ID [--json]\n"
              "       joule jobs cancel ID\n"
              "       joule jobs email [--max N]\n"
              "       joule jobs run [--max N]\n\n"
              "The benchmark job queue of the measurement cluster (docs/queue.md).\n\n"
              "  list     the jobs, oldest first (--limit: only the newest N)\n"
              "  show     one job: its state, message and, once it ran, the energy of each phase\n"
              "  cancel   cancel a job that is still WAITING (a RUNNING one is the runner's)\n"
              "  email    send every queued e-mail whose time has come, then exit (cron mode)\n"
              "  run      process this machine's (machine.id) queued jobs one after another, then exit\n"
              "           (cron mode: joule-runner's loop, under the machine's lock; docs/cluster.md)\n\n"
              "  -m, --machine ID   only this machine's jobs\n"
              "  -s, --state S      only jobs in state S: WAITING, RUNNING, FINISHED, FAILED, CANCELLED\n"
              "  -l, --limit N      list: the newest N jobs\n"
              "      --max N        email: send at most N messages (default 1000); run: at most N jobs\n"
              "  -j, --json         list: a JSON array; show: {id, machine_id, state, message, ..., run}\n"
              "  -u, --url URL      the database (default: database.url)\n",
              f);
        return f == stdout ? 0 : 2;
}

static void json_text_or_null(json_writer *w, jl_stmt *st, int col)
{
        if (jl_stmt_column_is_null(st, col))
                json_null(w);
        else
                json_string(w, jl_stmt_column_text(st, col));
}

static const char *time_or_dash(jl_stmt *st, int col, char *buf, size_t size)
{
        if (jl_stmt_column_is_null(st, col))
                return "-";
        return format_iso8601((uint64_t)jl_stmt_column_int64(st, col) * NSEC_PER_USEC, buf, size);
}

/* ---- list ---- */

static int do_list(jl_store *s, int64_t machine, const char *state, uint64_t limit, bool json)
{
        char sql[1024], mcond[32] = "", scond[32] = "", lim[32] = "";
        int n = 0, pm = 0, ps = 0,
            pl = 0; /* parameters are numbered as they appear: PostgreSQL types each */
        if (machine > 0)
                snprintf(mcond, sizeof(mcond), " AND machine_id = $%d", pm = ++n);
        if (state)
                snprintf(scond, sizeof(scond), " AND state = $%d", ps = ++n);
        if (limit > 0)
                snprintf(lim, sizeof(lim), " LIMIT $%d", pl = ++n);
        /* the newest `limit` jobs, shown oldest first */
        snprintf(
            sql, sizeof(sql),
            "SELECT * FROM (SELECT id, machine_id, state, name, created_us, started_us, finished_us, "
            "message, "
            "email, repo_url, branch FROM bench_jobs WHERE 1 = 1%s%s ORDER BY id DESC%s) AS t ORDER BY id",
            mcond, scond, lim);
        _cleanup_stmt_ jl_stmt *st = NULL;
        int r = jl_store_prepare(s, sql, &st);
        if (r >= 0 && pm)
                r = jl_stmt_bind_int64(st, pm, machine);
        if (r >= 0 && ps)
                r = jl_stmt_bind_text(st, ps, state);
        if (r >= 0 && pl)
                r = jl_stmt_bind_int64(st, pl, (int64_t)limit);
        if (r < 0)
                return log_error(r, "cannot read the jobs: %s", jl_store_error(s));
        json_writer w;
        if (json) {
                json_init(&w, stdout);
                json_array_begin(&w);
        } else
                printf("%6s %7s %-9s %-24s %-24s %s\n", "ID", "MACHINE", "STATE", "SUBMITTED", "NAME",
                       "MESSAGE");
        while ((r = jl_stmt_step(st)) == JL_STORE_ROW) {
                if (json) {
                        json_object_begin(&w);
                        json_key(&w, "id");
                        json_int(&w, jl_stmt_column_int64(st, 0));
                        json_key(&w, "machine_id");
                        json_int(&w, jl_stmt_column_int64(st, 1));
                        json_key(&w, "state");
                        json_string(&w, jl_stmt_column_text(st, 2));
                        json_key(&w, "name");
                        json_text_or_null(&w, st, 3);
                        json_key(&w, "created");
                        cli_json_time(&w, st, 4);
                        json_key(&w, "started");
                        cli_json_time(&w, st, 5);
                        json_key(&w, "finished");
                        cli_json_time(&w, st, 6);
                        json_key(&w, "message");
                        json_text_or_null(&w, st, 7);
                        json_key(&w, "email");
                        json_text_or_null(&w, st, 8);
                        json_key(&w, "repo_url");
                        json_text_or_null(&w, st, 9);
                        json_key(&w, "branch");
                        json_text_or_null(&w, st, 10);
                        json_object_end(&w);
                } else {
                        char tbuf[64];
                        const char *name = jl_stmt_column_text(st, 3), *msg = jl_stmt_column_text(st, 7);
                        printf("%6" PRId64 " %7" PRId64 " %-9s %-24s %-24.24s %.60s\n",
                               jl_stmt_column_int64(st, 0), jl_stmt_column_int64(st, 1),
                               jl_stmt_column_text(st, 2), time_or_dash(st, 4, tbuf, sizeof(tbuf)),
                               name ? name : "-", msg ? msg : "");
                }
        }
        if (json) {
                json_array_end(&w);
                fputc('\n', stdout);
        }
        if (r < 0)
                return log_error(r, "cannot read the jobs: %s", jl_store_error(s));
        return 0;
}

/* ---- show ---- */

/* The job's latest run and its phases: JSON "run" (null when none) or a table. */
static int show_run(jl_store *s, int64_t job_id, json_writer *w)
{
        _cleanup_stmt_ jl_stmt *run = NULL, *ph = NULL;
        int r = jl_store_prepare(
            s,
            "SELECT id, start_us, end_us, energy_uj, error, sampling_rate_ms FROM runs WHERE "
            "job_id = $1 AND kind = 'job' ORDER BY id DESC LIMIT 1",
            &run);
        if (r >= 0 && (r = jl_stmt_bind_int64(run, 1, job_id)) >= 0)
                r = jl_stmt_step(run);
        if (r < 0)
                return log_error(r, "cannot read the job's run: %s", jl_store_error(s));
        if (r != JL_STORE_ROW) {
                if (w)
                        json_null(w);
                else
                        printf("run:       none yet\n");
                return 0;
        }
        int64_t run_id = jl_stmt_column_int64(run, 0);
        r = jl_store_prepare(
            s,
            "SELECT phase, duration_us, energy_uj, avg_power_w, max_power_w, avg_temp_c, max_temp_c, "
            "cpu_utilization, start_us, end_us FROM phase_stats WHERE run_id = $1 ORDER BY "
            "phase_order",
            &ph);
        if (r >= 0)
                r = jl_stmt_bind_int64(ph, 1, run_id);
        if (r < 0)
                return log_error(r, "cannot read the run's phases: %s", jl_store_error(s));
        char b1[64], b2[64];
        if (w) {
                json_object_begin(w);
                json_key(w, "id");
                json_int(w, run_id);
                json_key(w, "start");
                cli_json_time(w, run, 1);
                json_key(w, "end");
                cli_json_time(w, run, 2);
                json_key(w, "energy_j");
                if (jl_stmt_column_is_null(run, 3))
                        json_null(w);
                else
                        json_double(w, (double)jl_stmt_column_int64(run, 3) / 1e6);
                json_key(w, "sampling_rate_ms");
                json_double(w, jl_stmt_column_double(run, 5));
                json_key(w, "error");
                json_text_or_null(w, run, 4);
                json_key(w, "phases");
                json_array_begin(w);
        } else {
                const char *error = jl_stmt_column_text(run, 4);
                printf("run:       %" PRId64 " from %s to %s%s%s\n", run_id,
                       time_or_dash(run, 1, b1, sizeof(b1)), time_or_dash(run, 2, b2, sizeof(b2)),
                       error ? ", error: " : "", error ? error : "");
                printf("\n  %-24s %12s %12s %12s %12s %12s\n", "PHASE", "ENERGY_J", "AVG_POWER_W",
                       "MAX_POWER_W", "DURATION_S", "MAX_TEMP_C");
        }
        while ((r = jl_stmt_step(ph)) == JL_STORE_ROW) {
                const char *name = jl_stmt_column_text(ph, 0);
                double dur_s = (double)jl_stmt_column_int64(ph, 1) / 1e6,
                       e_j = (double)jl_stmt_column_int64(ph, 2) / 1e6;
                double avg = jl_stmt_column_double(ph, 3), mx = jl_stmt_column_double(ph, 4);
                double tavg = jl_stmt_column_double(ph, 5), tmax = jl_stmt_column_double(ph, 6);
                if (w) {
                        json_object_begin(w);
                        json_key(w, "name");
                        json_string(w, name ? name : "");
                        json_key(w, "start");
                        cli_json_time(w, ph, 8);
                        json_key(w, "end");
                        cli_json_time(w, ph, 9);
                        json_key(w, "duration_s");
                        json_double(w, dur_s);
                        json_key(w, "energy_j");
                        json_double(w, e_j);
                        json_key(w, "power_w");
                        json_object_begin(w);
                        json_key(w, "avg");
                        json_double(w, avg);
                        json_key(w, "max");
                        json_double(w, mx);
                        json_object_end(w);
                        json_key(w, "temperature_c");
                        json_object_begin(w);
                        json_key(w, "avg");
                        json_double(w, tavg);
                        json_key(w, "max");
                        json_double(w, tmax);
                        json_object_end(w);
                        json_key(w, "cpu_utilization");
                        json_double(w, jl_stmt_column_double(ph, 7));
                        json_object_end(w);
                } else {
                        char tb[32] = "-";
                        if (!isnan(tmax))
                                snprintf(tb, sizeof(tb), "%.1f", tmax);
                        printf("  %-24s %12.3f %12.3f %12.3f %12.3f %12s\n", name ? name : "?", e_j, avg, mx,
                               dur_s, tb);
                }
        }
        if (r < 0)
                return log_error(r, "cannot read the run's phases: %s", jl_store_error(s));
        if (w) {
                json_array_end(w);
                json_object_end(w);
        }
        return 0;
}

static int do_show(jl_store *s, int64_t id, bool json)
{
        _cleanup_stmt_ jl_stmt *st = NULL;
        int r = jl_store_prepare(
            s,
            "SELECT j.id, j.machine_id, j.state, j.message, j.name, j.email, j.repo_url, "
            "j.branch, j.scenario, j.created_us, j.started_us, j.finished_us, m.description, j.output, "
            "j.claim_host, j.claim_boot_id, j.claim_pid "
            "FROM bench_jobs j LEFT JOIN machines m ON m.id = j.machine_id WHERE j.id = $1",
            &st);
        if (r >= 0 && (r = jl_stmt_bind_int64(st, 1, id)) >= 0)
                r = jl_stmt_step(st);
        if (r < 0)
                return log_error(r, "cannot read job %" PRId64 ": %s", id, jl_store_error(s));
        if (r != JL_STORE_ROW)
                return log_error(ENOENT, "job %" PRId64 " does not exist", id);
        if (json) {
                json_writer w;
                json_init(&w, stdout);
                json_object_begin(&w);
                json_key(&w, "id");
                json_int(&w, jl_stmt_column_int64(st, 0));
                json_key(&w, "machine_id");
                json_int(&w, jl_stmt_column_int64(st, 1));
                json_key(&w, "state");
                json_string(&w, jl_stmt_column_text(st, 2));
                json_key(&w, "message");
                json_text_or_null(&w, st, 3);
                json_key(&w, "name");
                json_text_or_null(&w, st, 4);
                json_key(&w, "email");
                json_text_or_null(&w, st, 5);
                json_key(&w, "repo_url");
                json_text_or_null(&w, st, 6);
                json_key(&w, "branch");
                json_text_or_null(&w, st, 7);
                json_key(&w, "scenario");
                json_text_or_null(&w, st, 8);
                json_key(&w, "created");
                cli_json_time(&w, st, 9);
                json_key(&w, "started");
                cli_json_time(&w, st, 10);
                json_key(&w, "finished");
                cli_json_time(&w, st, 11);
                json_key(&w, "claimed_by");
                if (jl_stmt_column_is_null(st, 14))
                        json_null(&w);
                else {
                        json_object_begin(&w);
                        json_key(&w, "host");
                        json_text_or_null(&w, st, 14);
                        json_key(&w, "boot_id");
                        json_text_or_null(&w, st, 15);
                        json_key(&w, "pid");
                        if (jl_stmt_column_is_null(st, 16))
                                json_null(&w);
                        else
                                json_int(&w, jl_stmt_column_int64(st, 16));
                        json_object_end(&w);
                }
                json_key(&w, "output");
                json_text_or_null(&w, st, 13);
                json_key(&w, "run");
                r = show_run(s, id, &w);
                json_object_end(&w);
                fputc('\n', stdout);
                return r;
        }
        char b[64];
        const char *v;
        printf("job:       %" PRId64 "\n", jl_stmt_column_int64(st, 0));
        if ((v = jl_stmt_column_text(st, 4)))
                printf("name:      %s\n", v);
        v = jl_stmt_column_text(st, 12);
        printf("machine:   %" PRId64 "%s%s%s\n", jl_stmt_column_int64(st, 1), v ? " (" : "", v ? v : "",
               v ? ")" : "");
        printf("state:     %s\n", jl_stmt_column_text(st, 2));
        if ((v = jl_stmt_column_text(st, 3)))
                printf("message:   %s\n", v);
        if ((v = jl_stmt_column_text(st, 6))) {
                const char *branch = jl_stmt_column_text(st, 7);
                printf("source:    %s%s%s\n", v, branch ? " branch " : "", branch ? branch : "");
        } else if ((v = jl_stmt_column_text(st, 8)))
                printf("source:    scenario (%zu bytes, `joule jobs show %" PRId64 " --json` holds it)\n",
                       strlen(v), id);
        if ((v = jl_stmt_column_text(st, 5)))
                printf("e-mail:    %s\n", v);
        printf("submitted: %s\n", time_or_dash(st, 9, b, sizeof(b)));
        printf("started:   %s\n", time_or_dash(st, 10, b, sizeof(b)));
        printf("finished:  %s\n", time_or_dash(st, 11, b, sizeof(b)));
        if ((v = jl_stmt_column_text(st, 14)))
                printf("runner:    pid %" PRId64 " on %s\n", jl_stmt_column_int64(st, 16), v);
        r = show_run(s, id, NULL);
        if ((v = jl_stmt_column_text(st, 13)) && *v) {
                size_t n = strlen(v);
                printf("output (its last %d KiB at most):\n%s%s", JL_RUNNER_OUTPUT_MAX / 1024, v,
                       v[n - 1] == '\n' ? "" : "\n");
        }
        return r;
}

/* ---- cancel ---- */

static int do_cancel(jl_store *s, int64_t id)
{
        _cleanup_stmt_ jl_stmt *up = NULL, *st = NULL;
        /* one statement: a runner claiming the job at the same moment either sees it CANCELLED or makes this
         * UPDATE change nothing */
        int r = jl_store_prepare(
            s,
            "UPDATE bench_jobs SET state = 'CANCELLED', finished_us = $2, message = 'cancelled' "
            "WHERE id = $1 AND state = 'WAITING'",
            &up);
        if (r >= 0 && (r = jl_stmt_bind_int64(up, 1, id)) >= 0 &&
            (r = jl_stmt_bind_int64(up, 2, (int64_t)cli_now_us())) >= 0)
                r = jl_stmt_step(up);
        if (r < 0)
                return log_error(r, "cannot cancel job %" PRId64 ": %s", id, jl_store_error(s));
        if (jl_stmt_changes(up) == 1) {
                printf("job %" PRId64 " cancelled\n", id);
                return 0;
        }
        r = jl_store_prepare(s, "SELECT state FROM bench_jobs WHERE id = $1", &st);
        if (r >= 0 && (r = jl_stmt_bind_int64(st, 1, id)) >= 0)
                r = jl_stmt_step(st);
        if (r < 0)
                return log_error(r, "cannot read job %" PRId64 ": %s", id, jl_store_error(s));
        if (r != JL_STORE_ROW)
                return log_error(ENOENT, "job %" PRId64 " does not exist", id);
        const char *state = jl_stmt_column_text(st, 0);
        if (strcmp(state, "RUNNING") == 0)
                return log_error(EBUSY, "job %" PRId64 " is RUNNING: only a WAITING job can be cancelled",
                                 id);
        return log_error(EALREADY, "job %" PRId64 " is %s already: only a WAITING job can be cancelled", id,
                         state);
}

/* ---- email (cron mode) ---- */

static int do_email(cli_context *ctx, jl_store *s, uint64_t max)
{
        jl_mail_config mc;
        jl_mail_stats stats;
        char err[1024] = "";
        jl_mail_config_from(&ctx->config, &mc);
        int r = jl_mail_send_queued(s, &mc, (int64_t)cli_now_us(), (unsigned)max, &stats, err, sizeof(err));
        if (r < 0)
                return log_error(r, "jobs email: %s", err);
        printf("%u sent, %u failed, %u deferred\n", stats.sent, stats.failed, stats.deferred);
        if (stats.failed > 0 || stats.deferred > 0)
                return log_error(
                    EIO, "jobs email: not every message went out (they stay queued and are retried): %s",
                    err);
        return 0;
}

/* ---- run (cron mode): the runner's loop until no job is left ---- */

static void run_log(void *userdata, int level, int err, const char *msg)
{
        (void)userdata;
        log_full(level, err, "jobs run: %s", msg);
}

static int do_run(cli_context *ctx, uint64_t max)
{
        jl_runner_install_crash_handler();
        sigset_t mask, old;
        sigemptyset(&mask);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGTERM);
        sigprocmask(SIG_BLOCK, &mask, &old);
        _cleanup_close_ int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
        char lock_dir[4096];
        if (sfd < 0 || jl_runner_default_lock_dir(lock_dir, sizeof(lock_dir)) < 0)
                return log_error(sfd < 0 ? errno : ENAMETOOLONG,
                                 "jobs run: cannot set up signals or the lock");
        jl_runner_opts o = {.config = &ctx->config, .signal_fd = sfd, .lock_dir = lock_dir, .log = run_log};
        jl_runner *run = NULL;
        int r = jl_runner_new(&o, &run);
        if (r < 0)
                return log_error(r, "jobs run: cannot set up the runner: %s", strerror(-r));
        uint64_t done = 0;
        r = jl_runner_start(run, true);
        while (r >= 0 && done < (max ? max : 1000)) { /* bounded by --max */
                if (done > 0 &&
                    (r = jl_runner_wait(run, ctx->config.runner.sleep_time_after_job, false)) < 0)
                        break;
                r = jl_runner_pass(run);
                if (r <= 0)
                        break;
                done++;
        }
        int sig = jl_runner_stop_signal(run);
        jl_runner_free(run);
        sigprocmask(SIG_SETMASK, &old, NULL);
        printf("%" PRIu64 " job%s processed\n", done, done == 1 ? "" : "s");
        if (sig)
                return log_error(EINTR, "jobs run: stopped by %s", sig == SIGINT ? "SIGINT" : "SIGTERM"), 0;
        return r < 0 ? r : 0;
}

int verb_jobs(cli_context *ctx, int argc, char **argv)
{
        static const struct option opts[] = {
            {"machine", required_argument, NULL, 'm'}, {"state", required_argument, NULL, 's'},
            {"limit", required_argument, NULL, 'l'},   {"max", required_argument, NULL, 'M'},
            {"json", no_argument, NULL, 'j'},          {"url", required_argument, NULL, 'u'},
            {"help", no_argument, NULL, 'h'},          {0},
        };
        const char *machine_s = NULL, *state_s = NULL, *limit_s = NULL, *max_s = NULL, *url = NULL;
        bool json = false;
        int c;
        while ((c = getopt_long(argc, argv, "m:s:l:ju:h", opts, NULL)) >= 0) {
                switch (c) {
                case 'm':
                        machine_s = optarg;
                        break;
                case 's':
                        state_s = optarg;
                        break;
                case 'l':
                        limit_s = optarg;
                        break;
                case 'M':
                        max_s = optarg;
                        break;
                case 'j':
                        json = true;
                        break;
                case 'u':
                        url = optarg;
                        break;
                case 'h':
                        return usage(stdout);
                default:
                        return usage(stderr);
                }
        }
        if (optind >= argc) {
                usage(stderr);
                log_error(EINVAL, "jobs: no command given (list, show, cancel, email or run)");
                return 2;
        }
        const char *cmd = argv[optind++];
        bool list = strcmp(cmd, "list") == 0, show = strcmp(cmd, "show") == 0,
             cancel = strcmp(cmd, "cancel") == 0, email = strcmp(cmd, "email") == 0,
             run = strcmp(cmd, "run") == 0;
        if (!list && !show && !cancel && !email && !run) {
                usage(stderr);
                log_error(EINVAL, "jobs: unknown command '%s'", cmd);
                return 2;
        }
        int64_t id = 0, machine = 0;
        uint64_t limit = 0, max = 0;
        const char *state = NULL;
        if (show || cancel) {
                if (optind != argc - 1) {
                        log_error(EINVAL, "jobs %s: give one job id", cmd);
                        return 2;
                }
                if (cli_parse_id("the job id", argv[optind], &id) < 0)
                        return 2;
        } else if (optind != argc) {
                log_error(EINVAL, "jobs %s: unexpected argument '%s'", cmd, argv[optind]);
                return 2;
        }
        if ((machine_s || state_s || limit_s) && !list) {
                log_error(EINVAL, "jobs %s: --machine, --state and --limit are for `jobs list`", cmd);
                return 2;
        }
        if (max_s && !email && !run) {
                log_error(EINVAL, "jobs %s: --max is for `jobs email` and `jobs run`", cmd);
                return 2;
        }
        if (json && (cancel || email || run)) {
                log_error(EINVAL, "jobs %s: --json is for list and show", cmd);
                return 2;
        }
        if (machine_s && cli_parse_id("the machine id", machine_s, &machine) < 0)
                return 2;
        if (state_s) {
                for (size_t i = 0; i < ARRAY_SIZE(states); i++)
                        if (strcasecmp(state_s, states[i]) == 0)
                                state = states[i];
                if (!state) {
                        log_error(
                            EINVAL,
                            "jobs list: unknown state '%s' (WAITING, RUNNING, FINISHED, FAILED, CANCELLED)",
                            state_s);
                        return 2;
                }
        }
        if (limit_s && (parse_u64(limit_s, &limit) < 0 || limit == 0 || limit > INT32_MAX)) {
                log_error(EINVAL, "jobs list: the limit '%s' is not a positive integer", limit_s);
                return 2;
        }
        if (max_s && (parse_u64(max_s, &max) < 0 || max == 0 || max > 1000000)) {
                log_error(EINVAL, "jobs %s: --max '%s' is not an integer from 1 to 1000000", cmd, max_s);
                return 2;
        }

        if (run) {
                if (url) {
                        free(ctx->config.database.url);
                        if (!(ctx->config.database.url = strdup(url)))
                                return log_error(ENOMEM, "out of memory"), 1;
                }
                return do_run(ctx, max) < 0 ? 1 : 0;
        }
        _cleanup_store_ jl_store *s = NULL;
        if (cli_open_store(ctx, url, &s) < 0)
                return 1;
        if (list) {
                if (machine > 0) {
                        int r = cli_machine_exists(s, machine);
                        if (r < 0)
                                return 1;
                        if (r == 0) {
                                log_error(ENOENT,
                                          "jobs list: machine %" PRId64
                                          " does not exist (see `joule machines list`)",
                                          machine);
                                return 1;
                        }
                }
                return do_list(s, machine, state, limit, json) < 0 ? 1 : 0;
        }
        if (show)
                return do_show(s, id, json) < 0 ? 1 : 0;
        if (cancel)
                return do_cancel(s, id) < 0 ? 1 : 0;
        return do_email(ctx, s, max) < 0 ? 1 : 0;
}
