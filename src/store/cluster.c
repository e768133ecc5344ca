/* cluster.c - the shared writer of the cluster tables (cluster.h): periodic_metrics by the bulk path,
 * steps and the jobs rows recomputed from them, the nodes rows. The SQL here is the only SQL that writes
 * those tables for jouled and joule-dbd. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster.h"
#include "macro.h"

#define CLUSTER_LOCK_KEY "74200001" /* pg_advisory_xact_lock key of the derived-row writers */
#define NODES_PER_UPDATE 100

static int step_done(jl_stmt *st)
{
        int r = jl_stmt_step(st);
        return r < 0 ? r : 0;
}

int jl_store_cluster_lock(jl_store *s)
{
        if (jl_store_get_backend(s) != JL_STORE_POSTGRES)
                return 0;
        return jl_store_exec(s, "SELECT pg_advisory_xact_lock(" CLUSTER_LOCK_KEY ")");
}

static const char *const record_columns[] = {"node",         "seq",         "start_us",     "end_us",
                                             "energy_uj",    "avg_power_w", "domains_json", "max_temp_c",
                                             "avg_freq_khz", "job_id",      "step_id",      "gap_us"};

static int put_record(jl_bulk *b, const jl_store_record *m)
{
        int r;
        if ((r = jl_bulk_text(b, m->node)) < 0 || (r = jl_bulk_int64(b, (int64_t)m->seq)) < 0 ||
            (r = jl_bulk_int64(b, m->start_us)) < 0 || (r = jl_bulk_int64(b, m->end_us)) < 0 ||
            (r = jl_bulk_int64(b, m->energy_uj)) < 0 || (r = jl_bulk_double(b, m->avg_power_w)) < 0 ||
            (r = jl_bulk_text(b, m->domains_json)) < 0)
                return r;
        r = isfinite(m->max_temp_c) ? jl_bulk_double(b, m->max_temp_c) : jl_bulk_null(b);
        if (r >= 0)
                r = isfinite(m->avg_freq_khz) && fabs(m->avg_freq_khz) < 9e18
                        ? jl_bulk_int64(b, (int64_t)llround(m->avg_freq_khz))
                        : jl_bulk_null(b);
        if (r >= 0)
                r = m->has_job ? jl_bulk_int64(b, m->job_id) : jl_bulk_null(b);
        if (r >= 0)
                r = m->has_job ? jl_bulk_int64(b, m->step_id) : jl_bulk_null(b);
        if (r >= 0)
                r = jl_bulk_int64(b, m->gap_us);
        if (r >= 0)
                r = jl_bulk_row_end(b);
        return r;
}

int jl_store_put_records(jl_store *s, const jl_store_record *recs, size_t n, uint64_t *ret_inserted)
{
        if (n == 0) {
                if (ret_inserted)
                        *ret_inserted = 0;
                return 0;
        }
        jl_bulk *b;
        int r = jl_store_bulk_begin(s, "periodic_metrics", record_columns, ARRAY_SIZE(record_columns),
                                    JL_BULK_IGNORE_CONFLICTS, &b);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n && r >= 0; i++)
                r = put_record(b, &recs[i]);
        if (r < 0) {
                jl_bulk_abort(b);
                return r;
        }
        return jl_bulk_finish(b, ret_inserted);
}

static const char sql_begin[] =
    "INSERT INTO steps (job_id, step_id, node, user_name, start_us, complete) "
    "VALUES ($1, $2, $3, $4, $5, 0) ON CONFLICT (job_id, step_id, node) DO UPDATE SET "
    "start_us = excluded.start_us, user_name = COALESCE(excluded.user_name, steps.user_name)";
/* an end without its begin is kept, marked incomplete (no start: no average power) */
static const char sql_end[] =
    "INSERT INTO steps (job_id, step_id, node, user_name, end_us, energy_uj, complete) "
    "VALUES ($1, $2, $3, $4, $5, $6, 0) ON CONFLICT (job_id, step_id, node) DO UPDATE SET "
    "end_us = excluded.end_us, energy_uj = excluded.energy_uj, "
    "user_name = COALESCE(steps.user_name, excluded.user_name), "
    "complete = CASE WHEN steps.start_us IS NULL THEN 0 ELSE $7 END";
static const char sql_fix[] =
    "UPDATE steps SET avg_power_w = CASE WHEN start_us IS NOT NULL AND end_us IS NOT NULL AND "
    "end_us > start_us AND energy_uj IS NOT NULL THEN CAST(energy_uj AS DOUBLE PRECISION) / "
    "(end_us - start_us) ELSE NULL END WHERE job_id = $1 AND step_id = $2 AND node = $3";
static const char sql_steps[] = "SELECT node, user_name, start_us, end_us, energy_uj, complete FROM steps "
                                "WHERE job_id = $1 AND step_id = $2 ORDER BY node";
static const char sql_job[] =
    "INSERT INTO jobs (job_id, step_id, user_name, nodes, node_count, start_us, end_us, "
    "energy_uj, avg_power_w, complete) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) "
    "ON CONFLICT (job_id, step_id) DO UPDATE SET user_name = excluded.user_name, "
    "nodes = excluded.nodes, node_count = excluded.node_count, "
    "start_us = excluded.start_us, end_us = excluded.end_us, "
    "energy_uj = excluded.energy_uj, avg_power_w = excluded.avg_power_w, "
    "complete = excluded.complete";

typedef struct {
        jl_stmt *begin, *end, *fix, *steps, *job;
} job_stmts;

static void job_stmts_free(job_stmts *j)
{
        jl_stmt *all[] = {j->begin, j->end, j->fix, j->steps, j->job};
        for (size_t i = 0; i < ARRAY_SIZE(all); i++)
                if (all[i])
                        jl_stmt_finalize(all[i]);
}

static int prep(jl_store *s, jl_stmt **st, const char *sql)
{
        return *st ? jl_stmt_reset(*st) : jl_store_prepare(s, sql, st);
}

static int step_event(jl_store *s, job_stmts *j, const jl_store_job_event *e)
{
        const char *user = e->user && e->user[0] ? e->user : NULL;
        jl_stmt *st;
        int r;
        if (!e->end) {
                r = prep(s, &j->begin, sql_begin);
                st = j->begin;
                if (r < 0 || (r = jl_stmt_bind_text(st, 4, user)) < 0 ||
                    (r = jl_stmt_bind_int64(st, 5, e->time_us)) < 0)
                        return r;
        } else {
                r = prep(s, &j->end, sql_end);
                st = j->end;
                if (r < 0 || (r = jl_stmt_bind_text(st, 4, user)) < 0 ||
                    (r = jl_stmt_bind_int64(st, 5, e->time_us)) < 0 ||
                    (r = jl_stmt_bind_int64(st, 6, e->energy_uj)) < 0 ||
                    (r = jl_stmt_bind_int64(st, 7, e->complete ? 1 : 0)) < 0)
                        return r;
        }
        if ((r = jl_stmt_bind_int64(st, 1, e->job_id)) < 0 ||
            (r = jl_stmt_bind_int64(st, 2, e->step_id)) < 0 || (r = jl_stmt_bind_text(st, 3, e->node)) < 0 ||
            (r = step_done(st)) < 0)
                return r;
        r = prep(s, &j->fix, sql_fix);
        if (r < 0 || (r = jl_stmt_bind_int64(j->fix, 1, e->job_id)) < 0 ||
            (r = jl_stmt_bind_int64(j->fix, 2, e->step_id)) < 0 ||
            (r = jl_stmt_bind_text(j->fix, 3, e->node)) < 0)
                return r;
        return step_done(j->fix);
}

/* The jobs row of one job step: the sum over its nodes' steps rows. */
static int job_recompute(jl_store *s, job_stmts *j, int64_t job_id, int64_t step_id)
{
        int r = prep(s, &j->steps, sql_steps);
        if (r < 0 || (r = jl_stmt_bind_int64(j->steps, 1, job_id)) < 0 ||
            (r = jl_stmt_bind_int64(j->steps, 2, step_id)) < 0)
                return r;
        _cleanup_free_ char *nodes = NULL;
        _cleanup_free_ char *user = NULL;
        size_t nodes_len = 0;
        FILE *f = open_memstream(&nodes, &nodes_len);
        if (!f)
                return -ENOMEM;
        int64_t count = 0, start = INT64_MAX, end = INT64_MIN, energy = 0;
        bool all_ended = true, complete = true, any_start = false;
        while ((r = jl_stmt_step(j->steps)) == JL_STORE_ROW) {
                fprintf(f, "%s%s", count ? "," : "", jl_stmt_column_text(j->steps, 0));
                if (!user && !jl_stmt_column_is_null(j->steps, 1) &&
                    !(user = strdup(jl_stmt_column_text(j->steps, 1)))) {
                        r = -ENOMEM;
                        break;
                }
                if (!jl_stmt_column_is_null(j->steps, 2)) {
                        any_start = true;
                        start = MIN(start, jl_stmt_column_int64(j->steps, 2));
                }
                if (jl_stmt_column_is_null(j->steps, 3))
                        all_ended = false;
                else
                        end = MAX(end, jl_stmt_column_int64(j->steps, 3));
                energy += jl_stmt_column_int64(j->steps, 4);
                complete = complete && jl_stmt_column_int64(j->steps, 5) == 1;
                count++;
        }
        fclose(f);
        if (r < 0)
                return r;
        if (count == 0)
                return 0;
        r = prep(s, &j->job, sql_job);
        if (r < 0)
                return r;
        jl_stmt *st = j->job;
        bool ended = all_ended && end != INT64_MIN;
        if ((r = jl_stmt_bind_int64(st, 1, job_id)) < 0 || (r = jl_stmt_bind_int64(st, 2, step_id)) < 0 ||
            (r = jl_stmt_bind_text(st, 3, user)) < 0 || (r = jl_stmt_bind_text(st, 4, nodes)) < 0 ||
            (r = jl_stmt_bind_int64(st, 5, count)) < 0 ||
            (r = any_start ? jl_stmt_bind_int64(st, 6, start) : jl_stmt_bind_null(st, 6)) < 0 ||
            (r = ended ? jl_stmt_bind_int64(st, 7, end) : jl_stmt_bind_null(st, 7)) < 0 ||
            (r = ended ? jl_stmt_bind_int64(st, 8, energy) : jl_stmt_bind_null(st, 8)) < 0 ||
            (r = ended && any_start && end > start
                     ? jl_stmt_bind_double(st, 9, (double)energy / (double)(end - start))
                     : jl_stmt_bind_null(st, 9)) < 0 ||
            (r = jl_stmt_bind_int64(st, 10, ended && any_start && complete ? 1 : 0)) < 0)
                return r;
        return step_done(st);
}

int jl_store_put_job_events(jl_store *s, const jl_store_job_event *ev, size_t n)
{
        if (n == 0)
                return 0;
        job_stmts j = {0};
        int r = 0;
        for (size_t i = 0; i < n && r >= 0; i++)
                r = step_event(s, &j, &ev[i]);
        if (r >= 0)
                r = jl_store_cluster_lock(s);
        /* each job step once: the first event that names it recomputes it */
        for (size_t i = 0; i < n && r >= 0; i++) {
                bool earlier = false;
                for (size_t k = 0; k < i && !earlier; k++)
                        earlier = ev[k].job_id == ev[i].job_id && ev[k].step_id == ev[i].step_id;
                if (!earlier)
                        r = job_recompute(s, &j, ev[i].job_id, ev[i].step_id);
        }
        job_stmts_free(&j);
        return r < 0 ? r : 0;
}

int jl_store_node_hello(jl_store *s, const char *node, const char *partition, const char *island,
                        int64_t time_us, const char *daemon_version)
{
        _cleanup_stmt_ jl_stmt *st = NULL;
        int r = jl_store_prepare(
            s,
            "INSERT INTO nodes (name, partition_name, island, first_seen_us, last_seen_us, status, "
            "daemon_version) VALUES ($1, $2, $3, $4, $4, 'connected', $5) ON CONFLICT (name) DO UPDATE SET "
            "partition_name = excluded.partition_name, island = excluded.island, "
            "last_seen_us = CASE WHEN nodes.last_seen_us IS NULL OR nodes.last_seen_us < "
            "excluded.last_seen_us THEN excluded.last_seen_us ELSE nodes.last_seen_us END, "
            "status = 'connected', daemon_version = COALESCE(excluded.daemon_version, nodes.daemon_version)",
            &st);
        if (r < 0 || (r = jl_stmt_bind_text(st, 1, node)) < 0 ||
            (r = jl_stmt_bind_text(st, 2, partition && partition[0] ? partition : NULL)) < 0 ||
            (r = jl_stmt_bind_text(st, 3, island && island[0] ? island : NULL)) < 0 ||
            (r = jl_stmt_bind_int64(st, 4, time_us)) < 0 ||
            (r = jl_stmt_bind_text(st, 5, daemon_version)) < 0)
                return r;
        return step_done(st);
}

int jl_store_node_bye(jl_store *s, const char *node, int64_t time_us)
{
        _cleanup_stmt_ jl_stmt *st = NULL;
        int r =
            jl_store_prepare(s,
                             "UPDATE nodes SET status = 'disconnected', last_seen_us = $2 WHERE name = $1 "
                             "AND (last_seen_us IS NULL OR last_seen_us <= $2)",
                             &st);
        if (r < 0 || (r = jl_stmt_bind_text(st, 1, node)) < 0 ||
            (r = jl_stmt_bind_int64(st, 2, time_us)) < 0)
                return r;
        return step_done(st);
}

int jl_store_touch_nodes(jl_store *s, const jl_store_node_seen *seen, size_t n)
{
        int r = 0;
        for (size_t off = 0; off < n && r >= 0; off += NODES_PER_UPDATE) {
                size_t k = MIN((size_t)NODES_PER_UPDATE, n - off);
                _cleanup_free_ char *sql = NULL;
                size_t len = 0;
                FILE *f = open_memstream(&sql, &len);
                if (!f)
                        return -ENOMEM;
                fputs("UPDATE nodes SET last_seen_us = CASE WHEN nodes.last_seen_us IS NULL OR "
                      "nodes.last_seen_us < v.column2 THEN v.column2 ELSE nodes.last_seen_us END, "
                      "last_seq = CASE WHEN nodes.last_seq IS NULL OR nodes.last_seq < v.column3 THEN "
                      "v.column3 ELSE nodes.last_seq END FROM (VALUES ",
                      f);
                for (size_t j = 0; j < k; j++)
                        fprintf(f, "%s($%zu, CAST($%zu AS BIGINT), CAST($%zu AS BIGINT))", j ? ", " : "",
                                3 * j + 1, 3 * j + 2, 3 * j + 3);
                fputs(") AS v WHERE nodes.name = v.column1", f);
                if (fclose(f) != 0 || !sql)
                        return -ENOMEM;
                _cleanup_stmt_ jl_stmt *st = NULL;
                r = jl_store_prepare(s, sql, &st);
                for (size_t j = 0; j < k && r >= 0; j++) {
                        const jl_store_node_seen *v = &seen[off + j];
                        r = jl_stmt_bind_text(st, (int)(3 * j + 1), v->node);
                        if (r >= 0)
                                r = jl_stmt_bind_int64(st, (int)(3 * j + 2), v->time_us);
                        if (r >= 0)
                                r = jl_stmt_bind_int64(st, (int)(3 * j + 3), (int64_t)v->seq);
                }
                if (r >= 0)
                        r = step_done(st);
        }
        return r < 0 ? r : 0;
}

/* ---- the runtime's records ---- */

static const char sql_app[] =
    "INSERT INTO applications (job_id, step_id, node, time_us, app_name, policy, policy_th, exec_time_s, "
    "energy_uj, power_w, pck_power_w, dram_power_w, cpi, tpi, gbs, gflops, avg_freq_khz, def_freq_khz, tag, "
    "seq) "
    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20) "
    "ON CONFLICT (job_id, step_id, node) DO UPDATE SET time_us = excluded.time_us, app_name = "
    "excluded.app_name, policy = excluded.policy, policy_th = excluded.policy_th, exec_time_s = "
    "excluded.exec_time_s, energy_uj = excluded.energy_uj, power_w = excluded.power_w, pck_power_w = "
    "excluded.pck_power_w, dram_power_w = excluded.dram_power_w, cpi = excluded.cpi, tpi = excluded.tpi, "
    "gbs = "
    "excluded.gbs, gflops = excluded.gflops, avg_freq_khz = excluded.avg_freq_khz, def_freq_khz = "
    "excluded.def_freq_khz, tag = excluded.tag, seq = excluded.seq "
    "WHERE applications.seq IS NULL OR applications.seq <= excluded.seq";
static const char sql_loop[] = "INSERT INTO loops (job_id, step_id, node, time_us, loop_key, iterations, "
                               "time_per_iteration_s, power_w, "
                               "avg_freq_khz, cpi, tpi, gbs, gflops, seq) "
                               "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) ON "
                               "CONFLICT (node, seq) DO NOTHING";
static const char sql_event[] =
    "INSERT INTO events (job_id, step_id, node, time_us, kind, value, message, seq) "
    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (node, seq) DO NOTHING";

static int bind_dbl(jl_stmt *st, int idx, double v)
{
        return isfinite(v) ? jl_stmt_bind_double(st, idx, v) : jl_stmt_bind_null(st, idx);
}

static int bind_khz(jl_stmt *st, int idx, int64_t v)
{
        return v > 0 ? jl_stmt_bind_int64(st, idx, v) : jl_stmt_bind_null(st, idx);
}

static int bind_str(jl_stmt *st, int idx, const char *v)
{
        return jl_stmt_bind_text(st, idx, v && *v ? v : NULL);
}

static int rt_common(jl_stmt *st, const jl_store_rt *m)
{
        int r;
        if ((r = jl_stmt_reset(st)) < 0 || (r = jl_stmt_bind_int64(st, 1, m->job_id)) < 0 ||
            (r = jl_stmt_bind_int64(st, 2, m->step_id)) < 0 || (r = jl_stmt_bind_text(st, 3, m->node)) < 0 ||
            (r = jl_stmt_bind_int64(st, 4, m->time_us)) < 0 || (r = bind_str(st, 5, m->name)) < 0)
                return r;
        return 0;
}

static int put_app(jl_stmt *st, const jl_store_rt *m)
{
        int r;
        double uj = m->energy_j * 1e6;
        if ((r = rt_common(st, m)) < 0 || (r = bind_str(st, 6, m->policy)) < 0 ||
            (r = bind_dbl(st, 7, m->policy_th)) < 0 || (r = bind_dbl(st, 8, m->time_s)) < 0 ||
            (r = isfinite(uj) && uj < 9e18 ? jl_stmt_bind_int64(st, 9, (int64_t)llround(uj))
                                           : jl_stmt_bind_null(st, 9)) < 0 ||
            (r = bind_dbl(st, 10, m->avg_power_w)) < 0 || (r = bind_dbl(st, 11, m->pck_power_w)) < 0 ||
            (r = bind_dbl(st, 12, m->dram_power_w)) < 0 || (r = bind_dbl(st, 13, m->cpi)) < 0 ||
            (r = bind_dbl(st, 14, m->tpi)) < 0 || (r = bind_dbl(st, 15, m->gbs)) < 0 ||
            (r = bind_dbl(st, 16, m->gflops)) < 0 || (r = bind_khz(st, 17, m->avg_cpufreq_khz)) < 0 ||
            (r = bind_khz(st, 18, m->def_cpufreq_khz)) < 0 || (r = bind_str(st, 19, m->tag)) < 0 ||
            (r = jl_stmt_bind_int64(st, 20, (int64_t)m->seq)) < 0)
                return r;
        return step_done(st);
}

static int put_loop(jl_stmt *st, const jl_store_rt *m)
{
        int r;
        if ((r = rt_common(st, m)) < 0 || (r = jl_stmt_bind_int64(st, 6, m->iterations)) < 0 ||
            (r = bind_dbl(st, 7, m->time_per_iteration_s)) < 0 ||
            (r = bind_dbl(st, 8, m->avg_power_w)) < 0 || (r = bind_khz(st, 9, m->avg_cpufreq_khz)) < 0 ||
            (r = bind_dbl(st, 10, m->cpi)) < 0 || (r = bind_dbl(st, 11, m->tpi)) < 0 ||
            (r = bind_dbl(st, 12, m->gbs)) < 0 || (r = bind_dbl(st, 13, m->gflops)) < 0 ||
            (r = jl_stmt_bind_int64(st, 14, (int64_t)m->seq)) < 0)
                return r;
        return step_done(st);
}

static int put_event(jl_stmt *st, const jl_store_rt *m)
{
        int r;
        if ((r = rt_common(st, m)) < 0 || (r = bind_dbl(st, 6, m->value)) < 0 ||
            (r = bind_str(st, 7, m->message)) < 0 || (r = jl_stmt_bind_int64(st, 8, (int64_t)m->seq)) < 0)
                return r;
        return step_done(st);
}

int jl_store_put_rt(jl_store *s, const jl_store_rt *recs, size_t n)
{
        _cleanup_stmt_ jl_stmt *app = NULL;
        _cleanup_stmt_ jl_stmt *loop = NULL;
        _cleanup_stmt_ jl_stmt *event = NULL;
        int r = 0;
        for (size_t i = 0; i < n && r >= 0; i++) {
                const jl_store_rt *m = &recs[i];
                switch (m->kind) {
                case JL_STORE_RT_APP:
                        if (!app && (r = jl_store_prepare(s, sql_app, &app)) < 0)
                                break;
                        r = put_app(app, m);
                        break;
                case JL_STORE_RT_LOOP:
                        if (!loop && (r = jl_store_prepare(s, sql_loop, &loop)) < 0)
                                break;
                        r = put_loop(loop, m);
                        break;
                case JL_STORE_RT_EVENT:
                        if (!event && (r = jl_store_prepare(s, sql_event, &event)) < 0)
                                break;
                        r = put_event(event, m);
                        break;
                default:
                        r = -EINVAL;
                }
        }
        return r < 0 ? r : 0;
}
