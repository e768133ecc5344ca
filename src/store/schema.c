/* schema.c - joule's database schema as versioned migrations, and the code that applies them: each
 * migration runs in one transaction with its row in schema_version, in order, one migrator at a time.
 * Units are in column names: *_us are microseconds since the epoch (UTC) or durations in µs, *_uj
 * microjoules, *_w watts, *_c degrees Celsius, *_khz kHz. The one dialect difference (the auto-increment
 * key) is written @ID@ and expanded from the backend's dialect. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store-internal.h"
#include "timeutil.h"

typedef struct {
        int version;
        const char *name;
        const char *sql;
} migration;

static const migration migrations[] = {
    {1,
     "cluster: nodes, jobs, steps, applications, loops, periodic metrics and aggregations, events, "
     "global energy",
     /* one row per node that ever reported */
     "CREATE TABLE nodes ("
     " id @ID@,"
     " name TEXT NOT NULL UNIQUE,"
     " partition_name TEXT,"
     " island TEXT,"
     " first_seen_us BIGINT,"
     " last_seen_us BIGINT,"
     " last_seq BIGINT,"
     " status TEXT,"
     " daemon_version TEXT);\n"
     /* one row per job step (Slurm's job_id, step_id), totals over its nodes */
     "CREATE TABLE jobs ("
     " id @ID@,"
     " job_id BIGINT NOT NULL,"
     " step_id BIGINT NOT NULL,"
     " user_name TEXT,"
     " job_name TEXT,"
     " partition_name TEXT,"
     " nodes TEXT," /* comma-separated node names */
     " node_count INTEGER,"
     " policy TEXT,"
     " policy_th DOUBLE PRECISION,"
     " start_us BIGINT,"
     " end_us BIGINT,"
     " energy_uj BIGINT,"
     " avg_power_w DOUBLE PRECISION,"
     " complete INTEGER NOT NULL DEFAULT 0 CHECK (complete IN (0, 1)),"
     " UNIQUE (job_id, step_id));\n"
     "CREATE INDEX jobs_user ON jobs (user_name, start_us);\n"
     "CREATE INDEX jobs_start ON jobs (start_us);\n"
     /* one row per job step and node: what jouled accounted on that node */
     "CREATE TABLE steps ("
     " id @ID@,"
     " job_id BIGINT NOT NULL,"
     " step_id BIGINT NOT NULL,"
     " node TEXT NOT NULL,"
     " user_name TEXT,"
     " start_us BIGINT,"
     " end_us BIGINT,"
     " energy_uj BIGINT,"
     " avg_power_w DOUBLE PRECISION,"
     " max_power_w DOUBLE PRECISION,"
     " domains_json TEXT," /* {"package-0": energy_uj, ...} */
     " avg_freq_khz BIGINT,"
     " complete INTEGER NOT NULL DEFAULT 0 CHECK (complete IN (0, 1)),"
     " UNIQUE (job_id, step_id, node));\n"
     "CREATE INDEX steps_node ON steps (node, start_us);\n"
     "CREATE INDEX steps_start ON steps (start_us);\n"
     /* the runtime's application signature per job step and node */
     "CREATE TABLE applications ("
     " id @ID@,"
     " job_id BIGINT NOT NULL,"
     " step_id BIGINT NOT NULL,"
     " node TEXT NOT NULL,"
     " time_us BIGINT NOT NULL,"
     " app_name TEXT,"
     " policy TEXT,"
     " policy_th DOUBLE PRECISION,"
     " exec_time_s DOUBLE PRECISION,"
     " energy_uj BIGINT,"
     " power_w DOUBLE PRECISION,"
     " dram_power_w DOUBLE PRECISION,"
     " pck_power_w DOUBLE PRECISION,"
     " gpu_power_w DOUBLE PRECISION,"
     " cpi DOUBLE PRECISION,"
     " tpi DOUBLE PRECISION,"
     " gbs DOUBLE PRECISION,"
     " gflops DOUBLE PRECISION,"
     " avg_freq_khz BIGINT,"
     " def_freq_khz BIGINT,"
     " UNIQUE (job_id, step_id, node));\n"
     /* the signature of each detected loop, over time */
     "CREATE TABLE loops ("
     " id @ID@,"
     " job_id BIGINT NOT NULL,"
     " step_id BIGINT NOT NULL,"
     " node TEXT NOT NULL,"
     " loop_key TEXT NOT NULL," /* event:size:level of the loop detector */
     " time_us BIGINT NOT NULL,"
     " iterations BIGINT,"
     " exec_time_s DOUBLE PRECISION,"
     " power_w DOUBLE PRECISION,"
     " cpi DOUBLE PRECISION,"
     " tpi DOUBLE PRECISION,"
     " gbs DOUBLE PRECISION,"
     " gflops DOUBLE PRECISION,"
     " avg_freq_khz BIGINT,"
     " selected_freq_khz BIGINT);\n"
     "CREATE INDEX loops_job ON loops (job_id, step_id, node, time_us);\n"
     /* one record per node and monitoring period; (node, seq) makes replays idempotent */
     "CREATE TABLE periodic_metrics ("
     " id @ID@,"
     " node TEXT NOT NULL,"
     " seq BIGINT NOT NULL,"
     " start_us BIGINT NOT NULL,"
     " end_us BIGINT NOT NULL,"
     " energy_uj BIGINT NOT NULL,"
     " avg_power_w DOUBLE PRECISION,"
     " domains_json TEXT," /* {"package-0": energy_uj, "dram-0": energy_uj, ...} */
     " max_temp_c DOUBLE PRECISION,"
     " avg_freq_khz BIGINT,"
     " job_id BIGINT,"
     " step_id BIGINT,"
     " UNIQUE (node, seq));\n"
     "CREATE INDEX periodic_metrics_start ON periodic_metrics (start_us);\n"
     /* energy sums over aggregation windows, per cluster / partition / island / node */
     "CREATE TABLE periodic_aggregations ("
     " id @ID@,"
     " start_us BIGINT NOT NULL,"
     " end_us BIGINT NOT NULL,"
     " scope TEXT NOT NULL CHECK (scope IN ('cluster', 'partition', 'island', 'node')),"
     " scope_key TEXT NOT NULL,"
     " energy_uj BIGINT NOT NULL,"
     " avg_power_w DOUBLE PRECISION,"
     " node_count INTEGER,"
     " records INTEGER,"
     " UNIQUE (scope, scope_key, start_us));\n"
     "CREATE INDEX periodic_aggregations_start ON periodic_aggregations (start_us, scope);\n"
     "CREATE TABLE events ("
     " id @ID@,"
     " time_us BIGINT NOT NULL,"
     " node TEXT,"
     " job_id BIGINT,"
     " step_id BIGINT,"
     " kind TEXT NOT NULL,"
     " value DOUBLE PRECISION,"
     " message TEXT);\n"
     "CREATE INDEX events_time ON events (time_us);\n"
     /* the global manager's view of the cluster energy budget */
     "CREATE TABLE global_energy ("
     " id @ID@,"
     " time_us BIGINT NOT NULL,"
     " window_start_us BIGINT,"
     " window_end_us BIGINT,"
     " energy_uj BIGINT,"
     " limit_uj BIGINT,"
     " percent DOUBLE PRECISION,"
     " warning_level INTEGER,"
     " policy TEXT,"
     " power_cap_w DOUBLE PRECISION);\n"
     "CREATE INDEX global_energy_time ON global_energy (time_us);\n"},

    {2,
     "measurement cluster: machines, bench jobs, runs, measurement values, phase stats, runner status, "
     "e-mails, notes, changelog",
     "CREATE TABLE machines ("
     " id BIGINT PRIMARY KEY," /* assigned by the administrator (machine.id) */
     " description TEXT NOT NULL UNIQUE,"
     " status TEXT,"
     " current_temperature_c DOUBLE PRECISION,"
     " jobs_processed BIGINT NOT NULL DEFAULT 0,"
     " needs_validation INTEGER NOT NULL DEFAULT 0 CHECK (needs_validation IN (0, 1)),"
     " config_json TEXT," /* the runner's configuration snapshot */
     " created_us BIGINT,"
     " updated_us BIGINT);\n"
     "CREATE TABLE bench_jobs ("
     " id @ID@,"
     " machine_id BIGINT NOT NULL REFERENCES machines (id),"
     " state TEXT NOT NULL DEFAULT 'WAITING'"
     "  CHECK (state IN ('WAITING', 'RUNNING', 'FINISHED', 'FAILED', 'CANCELLED')),"
     " name TEXT,"
     " scenario TEXT," /* the scenario YAML itself */
     " repo_url TEXT,"
     " branch TEXT,"
     " email TEXT,"
     " message TEXT,"
     " created_us BIGINT NOT NULL,"
     " started_us BIGINT,"
     " finished_us BIGINT);\n"
     /* the runner's claim: WAITING jobs of one machine, oldest first */
     "CREATE INDEX bench_jobs_claim ON bench_jobs (machine_id, state, created_us, id);\n"
     "CREATE TABLE runs ("
     " id @ID@,"
     " job_id BIGINT REFERENCES bench_jobs (id) ON DELETE CASCADE," /* NULL for control/calibration */
     " machine_id BIGINT NOT NULL REFERENCES machines (id),"
     " kind TEXT NOT NULL DEFAULT 'job' CHECK (kind IN ('job', 'control', 'calibration')),"
     " start_us BIGINT,"
     " end_us BIGINT,"
     " sampling_rate_ms DOUBLE PRECISION,"
     " energy_uj BIGINT,"
     " system_checks_json TEXT,"
     " config_json TEXT,"
     " error TEXT);\n"
     "CREATE INDEX runs_job ON runs (job_id);\n"
     "CREATE INDEX runs_machine ON runs (machine_id, kind, start_us);\n"
     /* the timeline: one value of one metric at one time */
     "CREATE TABLE measurement_values ("
     " run_id BIGINT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,"
     " phase TEXT,"
     " time_us BIGINT NOT NULL,"
     " metric TEXT NOT NULL,"
     " value DOUBLE PRECISION);\n"
     "CREATE INDEX measurement_values_run ON measurement_values (run_id, time_us);\n"
     "CREATE TABLE phase_stats ("
     " id @ID@,"
     " run_id BIGINT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,"
     " phase TEXT NOT NULL,"
     " phase_order INTEGER NOT NULL,"
     " start_us BIGINT,"
     " end_us BIGINT,"
     " duration_us BIGINT,"
     " energy_uj BIGINT,"
     " domains_json TEXT," /* {"package-0": energy_uj, ...} */
     " avg_power_w DOUBLE PRECISION,"
     " max_power_w DOUBLE PRECISION,"
     " avg_temp_c DOUBLE PRECISION,"
     " max_temp_c DOUBLE PRECISION,"
     " cpu_utilization DOUBLE PRECISION," /* 0 … 1 */
     " UNIQUE (run_id, phase_order));\n"
     "CREATE TABLE runner_status ("
     " id @ID@,"
     " machine_id BIGINT NOT NULL REFERENCES machines (id),"
     " time_us BIGINT NOT NULL,"
     " status TEXT NOT NULL,"
     " job_id BIGINT,"
     " message TEXT);\n"
     "CREATE INDEX runner_status_machine ON runner_status (machine_id, time_us);\n"
     "CREATE TABLE emails ("
     " id @ID@,"
     " to_addr TEXT NOT NULL,"
     " subject TEXT NOT NULL,"
     " body TEXT NOT NULL,"
     " state TEXT NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'sent', 'failed')),"
     " tries INTEGER NOT NULL DEFAULT 0,"
     " next_try_us BIGINT,"
     " last_error TEXT,"
     " job_id BIGINT,"
     " created_us BIGINT NOT NULL,"
     " sent_us BIGINT);\n"
     "CREATE INDEX emails_queue ON emails (state, next_try_us);\n"
     "CREATE TABLE notes ("
     " id @ID@,"
     " run_id BIGINT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,"
     " time_us BIGINT NOT NULL,"
     " note TEXT NOT NULL);\n"
     "CREATE INDEX notes_run ON notes (run_id, time_us);\n"
     "CREATE TABLE changelog ("
     " id @ID@,"
     " time_us BIGINT NOT NULL,"
     " machine_id BIGINT,"
     " message TEXT NOT NULL);\n"},

    {3,
     "periodic_metrics.gap_us: time of a record whose energy is estimated (counter wraps it could not "
     "resolve for certain)",
     /* NULL in rows of older nodes: no gaps known */
     "ALTER TABLE periodic_metrics ADD COLUMN gap_us BIGINT;\n"},
    {4, "measurement cluster: the claimer of a job, its output, control-error reminders, calibration",
     /* who holds a RUNNING job (docs/cluster.md, "Stale jobs"): the host, its boot, the process and the
      * process's start time (clock ticks after boot, /proc/PID/stat), so that a stale job is told from one
      * that another runner is measuring */
     "ALTER TABLE bench_jobs ADD COLUMN claim_host TEXT;\n"
     "ALTER TABLE bench_jobs ADD COLUMN claim_boot_id TEXT;\n"
     "ALTER TABLE bench_jobs ADD COLUMN claim_pid BIGINT;\n"
     "ALTER TABLE bench_jobs ADD COLUMN claim_pid_start BIGINT;\n"
     /* the tail of the commands' output (stdout and stderr), at most 64 KiB */
     "ALTER TABLE bench_jobs ADD COLUMN output TEXT;\n"
     /* the last mail about a control-workload error (the first one, or a reminder) */
     "ALTER TABLE machines ADD COLUMN control_error_mailed_us BIGINT;\n"
     /* joule calibrate --write */
     "ALTER TABLE machines ADD COLUMN calibrated_us BIGINT;\n"
     "ALTER TABLE machines ADD COLUMN calibrated_base_temperature_c DOUBLE PRECISION;\n"
     "ALTER TABLE machines ADD COLUMN calibrated_sleep_time_after_job_s DOUBLE PRECISION;\n"
     "ALTER TABLE machines ADD COLUMN calibration_json TEXT;\n"},
    {5, "report windows: the time each aggregation's records cover, indexes for report and acct windows",
     /* the union of the records' time inside the window (NULL on rows written before: the whole window) */
     "ALTER TABLE periodic_aggregations ADD COLUMN covered_us BIGINT;\n"
     /* joule report reads one scope over [from, to): both bounds on the index */
     "CREATE INDEX periodic_aggregations_scope ON periodic_aggregations (scope, start_us);\n"
     /* joule acct: the longest finished step bounds how far before --from a step can have begun; the
      * running ones have their own small index, in the report's order (so that no planner scans the
      * whole table for the order when none is running) */
     "CREATE INDEX steps_duration ON steps ((end_us - start_us));\n"
     "CREATE INDEX steps_running ON steps (job_id, step_id, node) WHERE end_us IS NULL;\n"},
    {6,
     "runtime: applications.tag, loops.time_per_iteration_s, and (node, seq) of the runtime's records so "
     "that replays are harmless",
     "ALTER TABLE applications ADD COLUMN tag TEXT;\n"
     "ALTER TABLE applications ADD COLUMN seq BIGINT;\n"
     "ALTER TABLE loops ADD COLUMN time_per_iteration_s DOUBLE PRECISION;\n"
     "ALTER TABLE loops ADD COLUMN seq BIGINT;\n"
     "ALTER TABLE events ADD COLUMN seq BIGINT;\n"
     "CREATE UNIQUE INDEX loops_node_seq ON loops (node, seq);\n"
     "CREATE UNIQUE INDEX events_node_seq ON events (node, seq);\n"
     "CREATE INDEX events_job ON events (job_id, step_id);\n"},
    {7, "periodic_aggregations.gap_us: the time of a window whose energy was estimated across counter wraps",
     /* the records' gap_us, clipped to the window as their energy is (NULL on rows written before) */
     "ALTER TABLE periodic_aggregations ADD COLUMN gap_us BIGINT;\n"},
};

int jl_store_schema_latest(void)
{
        return migrations[ARRAY_SIZE(migrations) - 1].version;
}

const char *jl_store_migration_name(int version)
{
        for (size_t i = 0; i < ARRAY_SIZE(migrations); i++)
                if (migrations[i].version == version)
                        return migrations[i].name;
        return NULL;
}

/* The migration's SQL for this backend: @ID@ replaced by the dialect's key column. */
static char *expand(const jl_store_dialect *d, const char *sql)
{
        static const char token[] = "@ID@";
        size_t n = 0;
        for (const char *p = sql; (p = strstr(p, token)); p += strlen(token))
                n++;
        size_t size = strlen(sql) + n * strlen(d->id_column) + 1;
        char *out = malloc(size), *o = out;
        if (!out)
                return NULL;
        for (const char *p = sql;;) {
                const char *t = strstr(p, token);
                size_t len = t ? (size_t)(t - p) : strlen(p);
                memcpy(o, p, len);
                o += len;
                if (!t)
                        break;
                o = stpcpy(o, d->id_column);
                p = t + strlen(token);
        }
        *o = '\0';
        return out;
}

static int table_exists(jl_store *s, const char *table, bool *ret)
{
        _cleanup_stmt_ jl_stmt *st = NULL;
        int r = jl_store_prepare(s, s->ops->dialect->table_exists, &st);
        if (r < 0)
                return r;
        r = jl_stmt_bind_text(st, 1, table);
        if (r < 0)
                return r;
        r = jl_stmt_step(st);
        if (r < 0)
                return r;
        *ret = r == JL_STORE_ROW;
        return 0;
}

static int read_version(jl_store *s, int *ret)
{
        bool exists;
        int r = table_exists(s, "schema_version", &exists);
        if (r < 0)
                return r;
        if (!exists) {
                *ret = 0;
                return 0;
        }
        _cleanup_stmt_ jl_stmt *st = NULL;
        r = jl_store_prepare(s, "SELECT COALESCE(MAX(version), 0) FROM schema_version", &st);
        if (r < 0)
                return r;
        r = jl_stmt_step(st);
        if (r < 0)
                return r;
        if (r != JL_STORE_ROW)
                return store_error(s, -EIO, "schema_version: no answer");
        *ret = (int)jl_stmt_column_int64(st, 0);
        return 0;
}

int jl_store_schema_version(jl_store *s, int *ret_version)
{
        store_clear_error(s);
        return read_version(s, ret_version);
}

/* One step: in one transaction, take the lock, create schema_version if needed, and apply the migration
 * after the current version. Returns 1 when one was applied, 0 when the schema is current. */
static int migrate_one(jl_store *s)
{
        _cleanup_free_ char *sql = NULL;
        _cleanup_stmt_ jl_stmt *ins = NULL;
        int r = jl_store_begin_immediate(s);
        if (r < 0)
                return r;
        if (s->ops->dialect->migrate_lock && (r = jl_store_exec(s, s->ops->dialect->migrate_lock)) < 0)
                goto fail;
        r = jl_store_exec(s, "CREATE TABLE IF NOT EXISTS schema_version ("
                             " version INTEGER PRIMARY KEY,"
                             " name TEXT NOT NULL,"
                             " applied_us BIGINT NOT NULL)");
        if (r < 0)
                goto fail;
        int current = 0; /* read_version() sets it on success only */
        r = read_version(s, &current);
        if (r < 0)
                goto fail;
        if (current > jl_store_schema_latest()) {
                r = store_error(
                    s, -EPROTO,
                    "the database's schema version %d is newer than this joule's (%d): upgrade joule",
                    current, jl_store_schema_latest());
                goto fail;
        }
        if (current == jl_store_schema_latest()) {
                /* nothing to do; commit keeps a just-created empty schema_version on an empty database */
                r = jl_store_commit(s);
                return r < 0 ? r : 0;
        }

        const migration *m = NULL;
        for (size_t i = 0; i < ARRAY_SIZE(migrations); i++)
                if (migrations[i].version > current) {
                        m = &migrations[i];
                        break;
                }
        sql = expand(s->ops->dialect, m->sql);
        if (!sql) {
                r = store_error(s, -ENOMEM, "out of memory");
                goto fail;
        }
        r = jl_store_exec(s, sql);
        if (r < 0) {
                char why[sizeof(s->error)];
                memcpy(why, s->error, sizeof(why));
                r = store_error(s, r, "migration %d (%s): %s", m->version, m->name, why);
                goto fail;
        }
        r = jl_store_prepare(s, "INSERT INTO schema_version (version, name, applied_us) VALUES ($1, $2, $3)",
                             &ins);
        if (r < 0)
                goto fail;
        if ((r = jl_stmt_bind_int64(ins, 1, m->version)) < 0 ||
            (r = jl_stmt_bind_text(ins, 2, m->name)) < 0 ||
            (r = jl_stmt_bind_int64(ins, 3, (int64_t)(now_ns(CLOCK_REALTIME) / NSEC_PER_USEC))) < 0 ||
            (r = jl_stmt_step(ins)) < 0)
                goto fail;
        jl_stmt_finalize(TAKE_PTR(ins));
        r = jl_store_commit(s);
        return r < 0 ? r : 1;
fail:;
        char saved[sizeof(s->error)];
        memcpy(saved, s->error, sizeof(saved));
        (void)jl_store_rollback(s);
        memcpy(s->error, saved, sizeof(saved));
        return r;
}

int jl_store_migrate(jl_store *s)
{
        int applied = 0;
        store_clear_error(s);
        if (s->in_txn)
                return store_error(s, -EBUSY, "migrate: a transaction is already open on this connection");
        for (;;) {
                int r = migrate_one(s);
                if (r < 0)
                        return r;
                if (r == 0)
                        return applied;
                applied++;
        }
}
