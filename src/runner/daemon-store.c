/* daemon-store.c - running one claimed job (a stored scenario, or a repository's joule.yml cloned with git)
 * or the control workload under measurement, and storing the run in one transaction that is safe to repeat
 * after a lost connection: runs, phase_stats (per phase, with the energy per domain as JSON),
 * measurement_values (the timeline), notes, the job's final state and message, the machine's job count and
 * the e-mail; the control workload's comparison with its earlier runs; the cleanup script. */
#define _XOPEN_SOURCE 700
#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon-internal.h"
#include "json.h"
#include "scenario.h"
#include "timeutil.h"

/* ---- the configuration snapshot (machines.config_json, runs.config_json) ---- */

static void key_str(json_writer *w, const char *k, const char *v)
{
        json_key(w, k);
        if (v)
                json_string(w, v);
        else
                json_null(w);
}

static void key_num(json_writer *w, const char *k, double v)
{
        json_key(w, k);
        json_double(w, v);
}

int runner_config_json(jl_runner *r, char **ret)
{
        const joule_config *c = r->c;
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);
        if (!f)
                return -ENOMEM;
        json_writer w;
        json_init(&w, f);
        json_object_begin(&w);
        json_key(&w, "machine");
        json_object_begin(&w);
        json_key(&w, "id");
        json_int(&w, c->machine.id);
        key_str(&w, "description", c->machine.description);
        key_num(&w, "base_temperature_value", c->machine.base_temperature_value);
        key_str(&w, "base_temperature_chip", c->machine.base_temperature_chip);
        key_str(&w, "base_temperature_feature", c->machine.base_temperature_feature);
        key_str(&w, "profile", c->machine.profile);
        json_object_end(&w);
        json_key(&w, "runner");
        json_object_begin(&w);
        key_num(&w, "sleep_time_no_job", c->runner.sleep_time_no_job);
        key_num(&w, "sleep_time_after_job", c->runner.sleep_time_after_job);
        key_str(&w, "jobs_processing", c->runner.jobs_processing);
        key_num(&w, "time_between_control_workload_validations",
                c->runner.time_between_control_workload_validations);
        key_str(&w, "control_workload", c->runner.control_workload);
        key_str(&w, "cleanup_script", c->runner.cleanup_script);
        key_num(&w, "temperature_max_tries", (double)c->runner.temperature_max_tries);
        key_num(&w, "temperature_check_interval", c->runner.temperature_check_interval_s);
        key_str(&w, "system_checks", c->runner.system_checks);
        key_num(&w, "baseline", c->runner.baseline_s);
        key_num(&w, "control_comparison_window", (double)c->runner.control_comparison_window);
        key_str(&w, "control_threshold_type", c->runner.control_threshold_type);
        key_num(&w, "control_energy_threshold", c->runner.control_energy_threshold);
        key_num(&w, "control_power_threshold", c->runner.control_power_threshold);
        key_num(&w, "control_duration_threshold", c->runner.control_duration_threshold);
        json_object_end(&w);
        json_key(&w, "measurement");
        json_object_begin(&w);
        key_num(&w, "sampling_rate", c->measurement.sampling_rate_ms);
        json_object_end(&w);
        json_object_end(&w);
        if (fclose(f) != 0) {
                free(buf);
                return -ENOMEM;
        }
        *ret = buf;
        return 0;
}

/* ---- storing a run ---- */

static int64_t rt_us(const jl_run_result *res, uint64_t mono)
{
        return ((int64_t)mono + res->realtime_offset_ns) / 1000;
}

static int memjson_begin(FILE **f, char **buf, size_t *len, json_writer *w)
{
        *buf = NULL;
        *len = 0;
        *f = open_memstream(buf, len);
        if (!*f)
                return -ENOMEM;
        json_init(w, *f);
        return 0;
}

static char *checks_json(const jl_syschecks *c)
{
        FILE *f;
        char *buf;
        size_t len;
        json_writer w;
        if (memjson_begin(&f, &buf, &len, &w) < 0)
                return NULL;
        json_array_begin(&w);
        for (size_t i = 0; i < c->n; i++) {
                json_object_begin(&w);
                key_str(&w, "name", c->items[i].name);
                key_str(&w, "observed", c->items[i].observed);
                key_str(&w, "expected", c->items[i].expected);
                key_str(&w, "status", jl_check_status_name(c->items[i].status));
                json_object_end(&w);
        }
        json_array_end(&w);
        if (fclose(f) != 0) {
                free(buf);
                return NULL;
        }
        return buf;
}

static char *domains_json(const jl_run_phase *p)
{
        FILE *f;
        char *buf;
        size_t len;
        json_writer w;
        if (memjson_begin(&f, &buf, &len, &w) < 0)
                return NULL;
        json_object_begin(&w);
        for (size_t i = 0; i < p->n_domains; i++) {
                json_key(&w, p->domains[i].name);
                json_int(&w, llround(p->domains[i].energy_j * 1e6));
        }
        json_object_end(&w);
        if (fclose(f) != 0) {
                free(buf);
                return NULL;
        }
        return buf;
}

static int bind_double_or_null(jl_stmt *st, int idx, double v)
{
        return isfinite(v) ? jl_stmt_bind_double(st, idx, v) : jl_stmt_bind_null(st, idx);
}

static int insert_run(jl_runner *r, const store_args *a, int64_t *ret_run)
{
        jl_store *s = r->store;
        const jl_run_result *res = a->res;
        _cleanup_stmt_ jl_stmt *run = NULL, *ph = NULL, *note = NULL;
        _cleanup_free_ char *checks = checks_json(&res->checks);
        double flow_j = 0;
        for (size_t i = 0; i < res->n_phases; i++)
                if (strcmp(res->phases[i].name, JL_RUN_BASELINE_NAME) != 0)
                        flow_j += res->phases[i].energy_j;
        int64_t run_id = 0;
        int k = jl_store_prepare(
            s,
            "INSERT INTO runs (job_id, machine_id, kind, start_us, end_us, sampling_rate_ms, "
            "energy_uj, system_checks_json, config_json, error) VALUES ($1, $2, $3, $4, $5, "
            "$6, $7, $8, $9, $10) RETURNING id",
            &run);
        if (k >= 0 &&
            (k = a->job_id > 0 ? jl_stmt_bind_int64(run, 1, a->job_id) : jl_stmt_bind_null(run, 1)) >= 0 &&
            (k = jl_stmt_bind_int64(run, 2, r->c->machine.id)) >= 0 &&
            (k = jl_stmt_bind_text(run, 3, a->kind)) >= 0 &&
            (k = jl_stmt_bind_int64(run, 4, rt_us(res, res->start_ns))) >= 0 &&
            (k = jl_stmt_bind_int64(run, 5, rt_us(res, res->end_ns))) >= 0 &&
            (k = jl_stmt_bind_double(run, 6, a->sampling_rate_ms)) >= 0 &&
            (k = jl_stmt_bind_int64(run, 7, llround(flow_j * 1e6))) >= 0 &&
            (k = jl_stmt_bind_text(run, 8, checks)) >= 0 &&
            (k = jl_stmt_bind_text(run, 9, a->config_json)) >= 0 &&
            (k = jl_stmt_bind_text(run, 10, a->run_error)) >= 0)
                k = jl_stmt_insert_id(run, &run_id);
        if (k == 0)
                k = -EIO;
        if (k < 0)
                return k;

        /* mean temperature per phase, from the timeline */
        size_t np = res->n_phases;
        _cleanup_free_ double *tsum = calloc(np ? np : 1, sizeof(double));
        _cleanup_free_ uint64_t *tn = calloc(np ? np : 1, sizeof(uint64_t));
        if (!tsum || !tn)
                return -ENOMEM;
        for (size_t i = 0; i < res->n_points; i++) {
                const jl_run_point *p = &res->points[i];
                if (p->phase < np && p->metric < res->n_metrics &&
                    res->metrics[p->metric].kind == JL_KIND_TEMPERATURE && isfinite(p->value)) {
                        tsum[p->phase] += p->value;
                        tn[p->phase]++;
                }
        }
        k = jl_store_prepare(
            s,
            "INSERT INTO phase_stats (run_id, phase, phase_order, start_us, end_us, duration_us, "
            "energy_uj, domains_json, avg_power_w, max_power_w, avg_temp_c, max_temp_c, "
            "cpu_utilization) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
            &ph);
        for (size_t i = 0; k >= 0 && i < np; i++) {
                const jl_run_phase *p = &res->phases[i];
                _cleanup_free_ char *dj = domains_json(p);
                if (!dj)
                        return -ENOMEM;
                if ((k = jl_stmt_bind_int64(ph, 1, run_id)) >= 0 &&
                    (k = jl_stmt_bind_text(ph, 2, p->name)) >= 0 &&
                    (k = jl_stmt_bind_int64(ph, 3, (int64_t)i)) >= 0 &&
                    (k = jl_stmt_bind_int64(ph, 4, rt_us(res, p->start_ns))) >= 0 &&
                    (k = jl_stmt_bind_int64(ph, 5, rt_us(res, p->end_ns))) >= 0 &&
                    (k = jl_stmt_bind_int64(ph, 6, llround(p->duration_s * 1e6))) >= 0 &&
                    (k = jl_stmt_bind_int64(ph, 7, llround(p->energy_j * 1e6))) >= 0 &&
                    (k = jl_stmt_bind_text(ph, 8, dj)) >= 0 &&
                    (k = bind_double_or_null(ph, 9, p->power_avg_w)) >= 0 &&
                    (k = bind_double_or_null(ph, 10, p->power_max_w)) >= 0 &&
                    (k = bind_double_or_null(ph, 11, tn[i] ? tsum[i] / (double)tn[i] : NAN)) >= 0 &&
                    (k = bind_double_or_null(ph, 12, p->temp_max_c)) >= 0 &&
                    (k = bind_double_or_null(ph, 13, p->cpu_utilization)) >= 0)
                        k = jl_stmt_step(ph);
                if (k >= 0)
                        k = jl_stmt_reset(ph);
        }
        if (k < 0)
                return k;

        if (res->n_points > 0) {
                static const char *const cols[] = {"run_id", "phase", "time_us", "metric", "value"};
                jl_bulk *b = NULL;
                k = jl_store_bulk_begin(s, "measurement_values", cols, ARRAY_SIZE(cols), 0, &b);
                for (size_t i = 0; k >= 0 && i < res->n_points; i++) {
                        const jl_run_point *p = &res->points[i];
                        if ((k = jl_bulk_int64(b, run_id)) >= 0 &&
                            (k = jl_bulk_text(b, p->phase < np ? res->phases[p->phase].name : NULL)) >= 0 &&
                            (k = jl_bulk_int64(b, rt_us(res, p->t_ns))) >= 0 &&
                            (k = jl_bulk_text(b, p->metric < res->n_metrics ? res->metrics[p->metric].name
                                                                            : "?")) >= 0 &&
                            (k = isfinite(p->value) ? jl_bulk_double(b, p->value) : jl_bulk_null(b)) >= 0)
                                k = jl_bulk_row_end(b);
                }
                if (b) {
                        if (k >= 0)
                                k = jl_bulk_finish(b, NULL);
                        else
                                jl_bulk_abort(b);
                }
                if (k < 0)
                        return k;
        }

        if (res->n_notes > 0 || res->points_truncated) {
                k = jl_store_prepare(s, "INSERT INTO notes (run_id, time_us, note) VALUES ($1, $2, $3)",
                                     &note);
                for (size_t i = 0; k >= 0 && i < res->n_notes + (res->points_truncated ? 1 : 0); i++) {
                        const char *text =
                            i < res->n_notes ? res->notes[i] : "the timeline was cut at its bound of points";
                        if ((k = jl_stmt_bind_int64(note, 1, run_id)) >= 0 &&
                            (k = jl_stmt_bind_int64(note, 2, rt_us(res, res->end_ns))) >= 0 &&
                            (k = jl_stmt_bind_text(note, 3, text)) >= 0)
                                k = jl_stmt_step(note);
                        if (k >= 0)
                                k = jl_stmt_reset(note);
                }
                if (k < 0)
                        return k;
        }
        *ret_run = run_id;
        return 0;
}

static int store_tx(jl_runner *r, void *arg)
{
        store_args *a = arg;
        jl_store *s = r->store;
        int64_t now = runner_now_us();
        a->job_changed = false;
        int k = jl_store_begin_immediate(s);
        if (k < 0)
                return k;
        if (a->res) {
                /* stored already by an attempt whose commit reply was lost with the connection? */
                _cleanup_stmt_ jl_stmt *ex = NULL;
                k = jl_store_prepare(
                    s, "SELECT 1 FROM runs WHERE machine_id = $1 AND kind = $2 AND start_us = $3", &ex);
                if (k >= 0 && (k = jl_stmt_bind_int64(ex, 1, r->c->machine.id)) >= 0 &&
                    (k = jl_stmt_bind_text(ex, 2, a->kind)) >= 0 &&
                    (k = jl_stmt_bind_int64(ex, 3, rt_us(a->res, a->res->start_ns))) >= 0)
                        k = jl_stmt_step(ex);
                if (k < 0)
                        return k;
                if (k == JL_STORE_ROW) {
                        jl_stmt_finalize(TAKE_PTR(ex));
                        return jl_store_rollback(s);
                }
        }
        if (a->job_id > 0) {
                _cleanup_stmt_ jl_stmt *up = NULL;
                k = jl_store_prepare(
                    s,
                    "UPDATE bench_jobs SET state = $2, message = $3, finished_us = $4, output = $5 WHERE "
                    "id = $1 AND state = 'RUNNING'",
                    &up);
                if (k >= 0 && (k = jl_stmt_bind_int64(up, 1, a->job_id)) >= 0 &&
                    (k = jl_stmt_bind_text(up, 2, a->finished ? "FINISHED" : "FAILED")) >= 0 &&
                    (k = jl_stmt_bind_text(up, 3, a->message)) >= 0 &&
                    (k = jl_stmt_bind_int64(up, 4, now)) >= 0 &&
                    (k = jl_stmt_bind_text(up, 5, a->output)) >= 0)
                        k = jl_stmt_step(up);
                if (k < 0)
                        return k;
                a->job_changed = jl_stmt_changes(up) == 1;
        }
        int64_t run_id = 0;
        if (a->res && (k = insert_run(r, a, &run_id)) < 0)
                return k;
        _cleanup_stmt_ jl_stmt *m = NULL;
        if (a->job_changed) {
                k = jl_store_prepare(
                    s,
                    "UPDATE machines SET jobs_processed = jobs_processed + 1, updated_us = $2 WHERE "
                    "id = $1",
                    &m);
                if (k >= 0 && (k = jl_stmt_bind_int64(m, 1, r->c->machine.id)) >= 0 &&
                    (k = jl_stmt_bind_int64(m, 2, now)) >= 0)
                        k = jl_stmt_step(m);
                if (k < 0)
                        return k;
                char err[1024] = "";
                int q = a->finished ? jl_mail_queue_job_finished(s, a->job_id, now, NULL, err, sizeof(err))
                                    : jl_mail_queue_job_failed(s, a->job_id, a->message, now, NULL, err,
                                                               sizeof(err));
                if (q < 0 && q != -EINVAL)
                        return q;
                if (q == -EINVAL)
                        runner_say(r, LOG_LEVEL_WARNING, q, "job %" PRId64 ": no e-mail: %s", a->job_id,
                                   err);
        }
        if (a->control) {
                k = jl_store_prepare(s,
                                     a->deviation
                                         ? "UPDATE machines SET needs_validation = 0, status = "
                                           "'measurement_control_error', control_error_mailed_us = $2, "
                                           "updated_us = $2 WHERE id = $1"
                                         : "UPDATE machines SET needs_validation = 0, updated_us = $2 WHERE "
                                           "id = $1",
                                     &m);
                if (k >= 0 && (k = jl_stmt_bind_int64(m, 1, r->c->machine.id)) >= 0 &&
                    (k = jl_stmt_bind_int64(m, 2, now)) >= 0)
                        k = jl_stmt_step(m);
                if (k < 0)
                        return k;
                if (a->deviation && r->c->admin.notification_email) {
                        char err[1024] = "";
                        int q = jl_mail_queue_control_deviation(s, r->c->admin.notification_email,
                                                                r->c->machine.id, a->deviation, now, NULL,
                                                                err, sizeof(err));
                        if (q < 0 && q != -EINVAL)
                                return q;
                        if (q == -EINVAL)
                                runner_say(r, LOG_LEVEL_WARNING, q,
                                           "control workload: no e-mail to the admin: %s", err);
                }
        }
        return jl_store_commit(s);
}

/* The transaction with retries (also after a signal); when the run itself cannot be stored (not an outage),
 * mark the job FAILED with the reason at least, so that it never stays RUNNING. */
static int store_retry(jl_runner *r, store_args *a, bool must)
{
        int k = runner_db(r, "store the run", store_tx, a, must);
        if (k >= 0 || !a->res || k == -EINTR)
                return k;
        char msg[1536];
        snprintf(msg, sizeof(msg), "the run could not be stored: %s", r->err);
        store_args b = {.job_id = a->job_id,
                        .kind = a->kind,
                        .finished = false,
                        .message = msg,
                        .control = a->control,
                        .deviation = a->control ? msg : NULL};
        return runner_db(r, "mark the job FAILED", store_tx, &b, must);
}

int runner_store_spooled(jl_runner *r, store_args *a)
{
        return store_retry(r, a, false);
}

int runner_store(jl_runner *r, store_args *a)
{
        if (a->sampling_rate_ms <= 0)
                a->sampling_rate_ms = (double)r->run_opts.interval_ns / 1e6;
        if (!a->config_json)
                a->config_json = r->config_json;
        /* a run, or a job's end: kept on disk until it is stored (a failed control workload without a run
         * is found again by the next pass) */
        runner_spool sp = {.fd = -1};
        if (a->res || a->job_id > 0)
                runner_spool_write(r, a, &sp);
        int k = store_retry(r, a, true);
        if (k >= 0)
                runner_spool_done(&sp);
        else if (sp.fd >= 0) {
                runner_say(r, LOG_LEVEL_WARNING, 0,
                           "the result stays in %s: stored once the database answers", sp.path);
                close(sp.fd);
        }
        return k;
}

/* ---- working directories ---- */

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
        (void)st;
        (void)flag;
        (void)ftw;
        remove(path);
        return 0;
}

static void rm_rf(const char *dir)
{
        if (dir && *dir)
                nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static int make_workdir(const char *what, int64_t id, char *buf, size_t size)
{
        const char *tmp = getenv("TMPDIR");
        int n = snprintf(buf, size, "%s/joule-%s-%" PRId64 "-XXXXXX", tmp && *tmp ? tmp : "/tmp", what, id);
        if (n < 0 || (size_t)n >= size)
                return -ENAMETOOLONG;
        return mkdtemp(buf) ? 0 : -errno;
}

/* ---- the cleanup script ---- */

static void cleanup_script(jl_runner *r, int64_t job_id)
{
        const char *script = r->c->runner.cleanup_script;
        if (!script || r->stop_signal)
                return;
        jl_runner_report(r, JL_STATUS_CLEANUP_START, job_id, script);
        /* sudoers allows the script with no arguments only (the "" in contrib/sudoers.d/joule-cleanup) */
        char *root_argv[] = {(char *)script, NULL};
        char *sudo_argv[] = {"sudo", "-n", (char *)script, NULL};
        char tail[1024];
        int k = runner_spawn(r, geteuid() == 0 ? root_argv : sudo_argv, "/", JL_RUNNER_CLEANUP_TIMEOUT_S,
                             tail, sizeof(tail));
        if (k != 0)
                runner_say(r, LOG_LEVEL_WARNING, k < 0 ? k : 0, "cleanup script %s: %s%s%s", script,
                           k == -ETIMEDOUT ? "timed out"
                           : k < 0         ? strerror(-k)
                                           : "failed",
                           k > 0 ? ": " : "", k > 0 ? runner_last_line(tail) : "");
        jl_runner_report(r, JL_STATUS_CLEANUP_STOP, job_id, k == 0 ? NULL : "the cleanup script failed");
}

/* ---- a job ---- */

typedef struct {
        int64_t id;
        char *scenario, *repo, *branch;
} job_row;

static int load_job(jl_runner *r, void *arg)
{
        job_row *j = arg;
        _cleanup_stmt_ jl_stmt *st = NULL;
        int k = jl_store_prepare(r->store, "SELECT scenario, repo_url, branch FROM bench_jobs WHERE id = $1",
                                 &st);
        if (k >= 0 && (k = jl_stmt_bind_int64(st, 1, j->id)) >= 0)
                k = jl_stmt_step(st);
        if (k < 0)
                return k;
        if (k != JL_STORE_ROW)
                return -ENOENT;
        const char *v;
        if ((v = jl_stmt_column_text(st, 0)) && !(j->scenario = strdup(v)))
                return -ENOMEM;
        if ((v = jl_stmt_column_text(st, 1)) && !(j->repo = strdup(v)))
                return -ENOMEM;
        if ((v = jl_stmt_column_text(st, 2)) && !(j->branch = strdup(v)))
                return -ENOMEM;
        return 0;
}

static const char *signame(int sig)
{
        return sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : "a signal";
}

int runner_fail_job(jl_runner *r, int64_t id, const char *message)
{
        store_args a = {.job_id = id, .kind = "job", .finished = false, .message = message};
        int k = runner_store(r, &a);
        jl_runner_report(r, JL_STATUS_JOB_ERROR, id, message);
        runner_say(r, LOG_LEVEL_WARNING, 0, "job %" PRId64 " FAILED: %s", id, message);
        return k < 0 ? k : 0;
}

int runner_job(jl_runner *r, int64_t id)
{
        jl_runner_report(r, JL_STATUS_JOB_START, id, NULL);
        job_row j = {.id = id};
        char msg[2048] = "", dir[PATH_MAX] = "", src[PATH_MAX + 8] = "";
        jl_scenario *sc = NULL;
        jl_run_result *res = NULL;
        int k = runner_db(r, "read the job", load_job, &j, true);
        if (k < 0)
                snprintf(msg, sizeof(msg), "the job could not be read: %s",
                         k == -ENOENT ? "it is gone" : r->err);
        else if ((k = make_workdir("job", id, dir, sizeof(dir))) < 0)
                snprintf(msg, sizeof(msg), "cannot create a working directory: %s", strerror(-k));
        else if (j.repo) {
                snprintf(src, sizeof(src), "%s/src", dir);
                char *argv[12];
                size_t n = 0;
                argv[n++] = "git";
                argv[n++] = "clone";
                argv[n++] = "--quiet";
                argv[n++] = "--depth";
                argv[n++] = "1";
                if (j.branch) {
                        argv[n++] = "--branch";
                        argv[n++] = j.branch;
                }
                argv[n++] = "--";
                argv[n++] = j.repo;
                argv[n++] = src;
                argv[n] = NULL;
                char tail[1024];
                k = runner_spawn(r, argv, dir, JL_RUNNER_CLONE_TIMEOUT_S, tail, sizeof(tail));
                if (k == -EINTR)
                        snprintf(msg, sizeof(msg), "stopped by %s (during git clone)",
                                 signame(r->stop_signal));
                else if (k != 0)
                        snprintf(msg, sizeof(msg), "git clone of %s%s%s failed: %s", j.repo,
                                 j.branch ? " branch " : "", j.branch ? j.branch : "",
                                 k == -ETIMEDOUT ? "timed out"
                                 : k < 0         ? strerror(-k)
                                                 : runner_last_line(tail));
                else {
                        char path[PATH_MAX + 32], err[1024] = "";
                        snprintf(path, sizeof(path), "%s/" JL_RUNNER_SCENARIO_FILE, src);
                        k = jl_scenario_load(path, &sc, err, sizeof(err));
                        if (k == -ENOENT)
                                snprintf(msg, sizeof(msg),
                                         "the repository has no " JL_RUNNER_SCENARIO_FILE " at its root");
                        else if (k < 0) /* name the file as the repository has it */
                                snprintf(msg, sizeof(msg), "scenario: %s",
                                         strncmp(err, src, strlen(src)) == 0 ? err + strlen(src) + 1 : err);
                }
        } else if (!j.scenario)
                snprintf(msg, sizeof(msg), "the job has neither a scenario nor a repository");
        else {
                char err[1024] = "", name[64];
                snprintf(name, sizeof(name), "job %" PRId64, id);
                k = jl_scenario_load_string(name, j.scenario, strlen(j.scenario), &sc, err, sizeof(err));
                if (k < 0)
                        snprintf(msg, sizeof(msg), "scenario: %s", err[0] ? err : strerror(-k));
        }
        _cleanup_free_ char *output = NULL;
        if (sc && !r->stop_signal) {
                jl_run_opts o = r->run_opts;
                o.workdir = src[0] ? src : dir;
                runner_output *out = NULL;
                int ofd = -1;
                if ((k = runner_output_start(&out, &ofd)) < 0)
                        runner_say(r, LOG_LEVEL_WARNING, k, "job %" PRId64 ": its output is not kept: %s",
                                   id, strerror(-k));
                else
                        o.output_fd = ofd;
                runner_say(r, LOG_LEVEL_INFO, 0, "job %" PRId64 ": running '%s'", id, sc->name);
                k = jl_run_scenario(sc, &o, &res);
                output = runner_output_finish(out);
                if (k < 0)
                        snprintf(msg, sizeof(msg), "the scenario could not be run: %s", strerror(-k));
        } else if (sc && r->stop_signal)
                snprintf(msg, sizeof(msg), "stopped by %s", signame(r->stop_signal));
        bool finished = false;
        if (res) {
                if (res->signal) {
                        runner_signal_seen(r, res->signal);
                        snprintf(msg, sizeof(msg), "stopped by %s%s%s", signame(res->signal),
                                 res->message[0] ? ": " : "", res->message);
                } else if (res->state == JL_RUN_FINISHED) {
                        finished = true;
                        snprintf(msg, sizeof(msg), "finished");
                } else
                        snprintf(msg, sizeof(msg), "%s", res->message[0] ? res->message : "the run failed");
        }
        if (!msg[0])
                snprintf(msg, sizeof(msg), "the job failed");
        store_args a = {.job_id = id,
                        .kind = "job",
                        .res = res,
                        .finished = finished,
                        .message = msg,
                        .run_error = finished ? NULL : msg,
                        .output = output};
        k = runner_store(r, &a);
        runner_say(r, finished ? LOG_LEVEL_INFO : LOG_LEVEL_WARNING, 0, "job %" PRId64 " %s: %s", id,
                   finished ? "FINISHED" : "FAILED", msg);
        jl_run_result_free(res);
        jl_scenario_free(sc);
        free(j.scenario);
        free(j.repo);
        free(j.branch);
        rm_rf(dir);
        jl_runner_report(r, finished ? JL_STATUS_JOB_END : JL_STATUS_JOB_ERROR, id, finished ? NULL : msg);
        if (k < 0)
                return k;
        runner_send_mail(r);
        cleanup_script(r, id);
        return r->stop_signal ? -EINTR : 0;
}

/* ---- the control workload ---- */

typedef struct {
        const char *phase;
        size_t window;
        double *vals[_JL_CONTROL_METRIC_MAX];
        size_t n;
} history_args;

static int load_history(jl_runner *r, void *arg)
{
        history_args *h = arg;
        _cleanup_stmt_ jl_stmt *st = NULL;
        h->n = 0;
        int k =
            jl_store_prepare(r->store,
                             "SELECT p.energy_uj, p.avg_power_w, p.duration_us FROM phase_stats p WHERE "
                             "p.phase = $3 AND p.run_id IN (SELECT id FROM runs WHERE machine_id = $1 AND "
                             "kind = 'control' AND error IS NULL ORDER BY start_us DESC LIMIT $2)",
                             &st);
        if (k >= 0 && (k = jl_stmt_bind_int64(st, 1, r->c->machine.id)) >= 0 &&
            (k = jl_stmt_bind_int64(st, 2, (int64_t)h->window)) >= 0 &&
            (k = jl_stmt_bind_text(st, 3, h->phase)) >= 0)
                while ((k = jl_stmt_step(st)) == JL_STORE_ROW && h->n < h->window) {
                        h->vals[JL_CONTROL_ENERGY][h->n] = (double)jl_stmt_column_int64(st, 0) / 1e6;
                        h->vals[JL_CONTROL_POWER][h->n] = jl_stmt_column_double(st, 1);
                        h->vals[JL_CONTROL_DURATION][h->n] = (double)jl_stmt_column_int64(st, 2) / 1e6;
                        h->n++;
                }
        return k < 0 ? k : 0;
}

/* Compare every flow phase of res with the window; the breaches joined into out ("" when none). */
static int compare(jl_runner *r, const jl_run_result *res, char *out, size_t outlen)
{
        size_t w = (size_t)r->c->runner.control_comparison_window;
        _cleanup_free_ double *mem = calloc(w * _JL_CONTROL_METRIC_MAX, sizeof(double));
        if (!mem)
                return -ENOMEM;
        out[0] = '\0';
        size_t used = 0, compared = 0;
        for (size_t i = 0; i < res->n_phases; i++) {
                const jl_run_phase *p = &res->phases[i];
                if (strcmp(p->name, JL_RUN_BASELINE_NAME) == 0)
                        continue;
                history_args h = {.phase = p->name, .window = w};
                for (int m = 0; m < _JL_CONTROL_METRIC_MAX; m++)
                        h.vals[m] = mem + (size_t)m * w;
                int k = runner_db(r, "read the control workload's history", load_history, &h, true);
                if (k < 0)
                        return k;
                if (h.n < 2)
                        continue;
                compared++;
                const double now[_JL_CONTROL_METRIC_MAX] = {p->energy_j, p->power_avg_w, p->duration_s};
                for (int m = 0; m < _JL_CONTROL_METRIC_MAX; m++) {
                        char one[512];
                        if (jl_control_check(&r->limits, (jl_control_metric)m, p->name, now[m], h.vals[m],
                                             h.n, one, sizeof(one)) == 1 &&
                            used + 3 < outlen) {
                                int n = snprintf(out + used, outlen - used, "%s%s", used ? "; " : "", one);
                                if (n > 0)
                                        used = MIN(outlen - 1, used + (size_t)n);
                        }
                }
        }
        return (int)compared;
}

int runner_control(jl_runner *r, bool flagged)
{
        const char *file = r->c->runner.control_workload;
        jl_runner_report(r, JL_STATUS_CONTROL_START, 0, flagged ? "flagged for revalidation" : file);
        char msg[1024] = "", deviation[4096] = "", err[1024] = "", dir[PATH_MAX] = "";
        int k = runner_gate(r, 0, msg, sizeof(msg));
        if (k < 0)
                return k;
        if (k == 1)
                return 1; /* job_error reported; the control workload stays due */
        jl_scenario *sc = NULL;
        jl_run_result *res = NULL;
        k = jl_scenario_load(file, &sc, err, sizeof(err));
        if (k < 0)
                snprintf(deviation, sizeof(deviation), "the control workload cannot be loaded: %s",
                         err[0] ? err : strerror(-k));
        else if ((k = make_workdir("control", r->c->machine.id, dir, sizeof(dir))) < 0)
                snprintf(deviation, sizeof(deviation), "cannot create a working directory: %s",
                         strerror(-k));
        else {
                jl_run_opts o = r->run_opts;
                o.workdir = dir;
                k = jl_run_scenario(sc, &o, &res);
                if (k < 0)
                        snprintf(deviation, sizeof(deviation), "the control workload could not be run: %s",
                                 strerror(-k));
        }
        int compared = 0;
        if (res && res->signal) {
                runner_signal_seen(r, res->signal);
                snprintf(msg, sizeof(msg), "stopped by %s", signame(res->signal));
        } else if (res && res->state != JL_RUN_FINISHED)
                snprintf(deviation, sizeof(deviation), "the control workload failed: %s", res->message);
        else if (res) {
                compared = compare(r, res, deviation, sizeof(deviation));
                if (compared < 0) {
                        k = compared;
                        goto out;
                }
        }
        bool stopped = res && res->signal;
        store_args a = {.kind = "control",
                        .res = res,
                        .control = !stopped,
                        .run_error = deviation[0] ? deviation
                                     : stopped    ? msg
                                                  : NULL,
                        .deviation = deviation[0] && !stopped ? deviation : NULL};
        k = runner_store(r, &a);
        if (k < 0)
                goto out;
        if (stopped)
                k = -EINTR;
        else if (deviation[0]) {
                jl_runner_report(r, JL_STATUS_CONTROL_ERROR, 0, deviation);
                if (!r->c->admin.notification_email)
                        runner_say(
                            r, LOG_LEVEL_WARNING, 0,
                            "control workload: admin.notification_email is not set: nobody is mailed");
                runner_send_mail(r);
                k = 1;
        } else {
                char done[128];
                snprintf(done, sizeof(done),
                         compared ? "within the thresholds"
                                  : "recorded (fewer than 2 earlier control runs to compare with)");
                jl_runner_report(r, JL_STATUS_CONTROL_END, 0, done);
                k = 1;
        }
out:
        jl_run_result_free(res);
        jl_scenario_free(sc);
        rm_rf(dir);
        return k;
}
