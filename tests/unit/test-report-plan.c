/* test-report-plan.c - the cost of `joule report` over a window does not depend on the data outside it:
 * the query plans of jl_store_report_sql() (every scope, from the aggregations and from the records) read
 * the start_us index bounded on both sides, and so do joule acct's (jl_store_acct_sql()), checked with
 * EXPLAIN QUERY PLAN on SQLite (a temporary file) and EXPLAIN on PostgreSQL ($JOULE_TEST_DATABASE_URL,
 * tests/with-postgres.sh), on a store of 40,000 records of 20 nodes, their aggregation windows and
 * 10,000 job steps, for an hour at the start and at the end of the data. Not a timing test.
 * Usage: test-report-plan [URL] */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "store.h"
#include "tap.h"

#define S 1000000LL
#define NODES 20
#define RECORDS 2000 /* per node, 10 s each: 20,000 s of data */
#define STEPS 500    /* per node, 100 s each */
#define BASE 1767225600000000LL

static int fill(jl_store *s)
{
        static const char *const mcols[] = {"node", "seq", "start_us", "end_us", "energy_uj"};
        static const char *const acols[] = {"start_us",  "end_us",    "scope",
                                            "scope_key", "energy_uj", "covered_us"};
        jl_bulk *b;
        char name[16];
        int r = jl_store_begin(s);
        for (int n = 0; r >= 0 && n < NODES; n++) {
                _cleanup_stmt_ jl_stmt *st = NULL;
                snprintf(name, sizeof(name), "n%02d", n);
                r = jl_store_prepare(s, "INSERT INTO nodes (name, partition_name) VALUES ($1, $2)", &st);
                if (r >= 0 && (r = jl_stmt_bind_text(st, 1, name)) >= 0 &&
                    (r = jl_stmt_bind_text(st, 2, n % 2 ? "odd" : "even")) >= 0)
                        r = jl_stmt_step(st);
        }
        if (r >= 0)
                r = jl_store_bulk_begin(s, "periodic_metrics", mcols, ARRAY_SIZE(mcols), 0, &b);
        for (int n = 0; r >= 0 && n < NODES; n++) {
                snprintf(name, sizeof(name), "n%02d", n);
                for (int i = 0; r >= 0 && i < RECORDS; i++) {
                        int64_t t = BASE + (int64_t)i * 10 * S;
                        (void)jl_bulk_text(b, name);
                        (void)jl_bulk_int64(b, i);
                        (void)jl_bulk_int64(b, t);
                        (void)jl_bulk_int64(b, t + 10 * S);
                        (void)jl_bulk_int64(b, 1000 * S);
                        r = jl_bulk_row_end(b);
                }
        }
        if (r >= 0)
                r = jl_bulk_finish(b, NULL);
        else
                jl_bulk_abort(b);
        if (r >= 0)
                r = jl_store_bulk_begin(s, "periodic_aggregations", acols, ARRAY_SIZE(acols), 0, &b);
        for (int w = 0; r >= 0 && w < RECORDS / 6; w++) {
                int64_t t = BASE + (int64_t)w * 60 * S;
                for (int n = -3; r >= 0 && n < NODES; n++) {
                        snprintf(name, sizeof(name), "n%02d", n);
                        (void)jl_bulk_int64(b, t);
                        (void)jl_bulk_int64(b, t + 60 * S);
                        (void)jl_bulk_text(b, n == -3 ? "cluster" : n < 0 ? "partition" : "node");
                        (void)jl_bulk_text(b, n == -3   ? "cluster"
                                              : n == -2 ? "odd"
                                              : n == -1 ? "even"
                                                        : name);
                        (void)jl_bulk_int64(b, 6000 * S);
                        (void)jl_bulk_int64(b, 60 * S);
                        r = jl_bulk_row_end(b);
                }
        }
        if (r >= 0)
                r = jl_bulk_finish(b, NULL);
        else
                jl_bulk_abort(b);
        /* job steps of 100 s on every node, back to back, the last 2 of each node still running */
        static const char *const scols[] = {"job_id",   "step_id", "node",      "user_name",
                                            "start_us", "end_us",  "energy_uj", "complete"};
        if (r >= 0)
                r = jl_store_bulk_begin(s, "steps", scols, ARRAY_SIZE(scols), 0, &b);
        for (int n = 0; r >= 0 && n < NODES; n++) {
                snprintf(name, sizeof(name), "n%02d", n);
                for (int i = 0; r >= 0 && i < STEPS; i++) {
                        int64_t t = BASE + (int64_t)i * 100 * S;
                        bool running = i >= STEPS - 2;
                        (void)jl_bulk_int64(b, i);
                        (void)jl_bulk_int64(b, 0);
                        (void)jl_bulk_text(b, name);
                        (void)jl_bulk_text(b, "root");
                        (void)jl_bulk_int64(b, t);
                        (void)(running ? jl_bulk_null(b) : jl_bulk_int64(b, t + 100 * S));
                        (void)(running ? jl_bulk_null(b) : jl_bulk_int64(b, 10000 * S));
                        (void)jl_bulk_int64(b, !running);
                        r = jl_bulk_row_end(b);
                }
        }
        if (r >= 0)
                r = jl_bulk_finish(b, NULL);
        else
                jl_bulk_abort(b);
        if (r >= 0)
                r = jl_store_commit(s);
        if (r >= 0)
                r = jl_store_exec(s, "ANALYZE");
        return r;
}

/* The plan of sql over [from, to) as lines of text. */
static int plan(jl_store *s, bool sqlite, const char *sql, const char *scope, int64_t from, int64_t to,
                char *buf, size_t size)
{
        char q[4096];
        snprintf(q, sizeof(q), "%s%s", sqlite ? "EXPLAIN QUERY PLAN " : "EXPLAIN ", sql);
        _cleanup_stmt_ jl_stmt *st = NULL;
        int r = jl_store_prepare(s, q, &st);
        if (r >= 0 && (r = jl_stmt_bind_int64(st, 1, from)) >= 0 &&
            (r = jl_stmt_bind_int64(st, 2, to)) >= 0 && scope)
                r = jl_stmt_bind_text(st, 3, scope);
        if (r < 0)
                return r;
        size_t n = 0;
        buf[0] = '\0';
        while ((r = jl_stmt_step(st)) == JL_STORE_ROW) {
                const char *line = jl_stmt_column_text(st, sqlite ? 3 : 0);
                n += (size_t)snprintf(buf + n, size - n, "%s\n", line ? line : "");
                if (n >= size)
                        return -E2BIG;
        }
        return r < 0 ? r : 0;
}

/* The plan of joule acct's query over [from, to) (--user set: with --job, the job's own index serves) as
 * lines of text. */
static int plan_acct(jl_store *s, bool sqlite, int64_t from, int64_t to, char *buf, size_t size)
{
        char sql[1024], q[1200];
        int64_t longest = -1;
        int r = jl_store_acct_longest_us(s, &longest);
        if (r < 0 || !ok(longest == 100 * S, "the longest finished step: 100 s"))
                return r < 0 ? r : -EINVAL;
        r = jl_store_acct_sql(true, false, sql, sizeof(sql));
        if (r < 0)
                return r;
        snprintf(q, sizeof(q), "%s%s", sqlite ? "EXPLAIN QUERY PLAN " : "EXPLAIN ", sql);
        _cleanup_stmt_ jl_stmt *st = NULL;
        r = jl_store_prepare(s, q, &st);
        if (r >= 0 && (r = jl_stmt_bind_int64(st, 1, to)) >= 0 &&
            (r = jl_stmt_bind_int64(st, 2, from)) >= 0 &&
            (r = jl_stmt_bind_int64(st, 3, from - longest)) >= 0 &&
            (r = jl_stmt_bind_text(st, 4, "root")) >= 0)
                r = 0;
        if (r < 0)
                return r;
        size_t n = 0;
        buf[0] = '\0';
        while ((r = jl_stmt_step(st)) == JL_STORE_ROW) {
                const char *line = jl_stmt_column_text(st, sqlite ? 3 : 0);
                n += (size_t)snprintf(buf + n, size - n, "%s\n", line ? line : "");
                if (n >= size)
                        return -E2BIG;
        }
        return r < 0 ? r : 0;
}

/* The plan reads table through an index whose condition bounds start_us from below and from above, and
 * never scans the table whole. */
static bool bounded(bool sqlite, const char *p, const char *table, const char *index)
{
        char want[160], scan[96];
        for (const char *l = p; *l;) {
                const char *e = strchr(l, '\n');
                size_t len = e ? (size_t)(e - l) : strlen(l);
                char line[512];
                snprintf(line, sizeof(line), "%.*s", (int)MIN(len, sizeof(line) - 1), l);
                if (sqlite) {
                        /* SEARCH m USING INDEX periodic_metrics_start (start_us>? AND start_us<?) */
                        snprintf(want, sizeof(want), "USING INDEX %s (", index);
                        if (strstr(line, want) && strstr(line, "start_us>?") && strstr(line, "start_us<?"))
                                goto found;
                } else {
                        /* Index Cond: ((start_us >= '…'::bigint) AND (start_us <= '…'::bigint)) */
                        if (strstr(line, "Index Cond:") && strstr(line, "start_us >=") &&
                            (strstr(line, "start_us <=") || strstr(line, "start_us <")))
                                goto found;
                }
                l += len + (e ? 1 : 0);
                continue;
        found:
                /* no whole scan of the table (SQLite: a scan of the partial index of running steps reads
                 * only those) */
                snprintf(scan, sizeof(scan), sqlite ? "SCAN %s" : "Seq Scan on %s", table);
                for (const char *q = p; (q = strstr(q, scan)); q += strlen(scan))
                        if (!sqlite || strncmp(q + strlen(scan), " USING INDEX steps_running", 26) != 0)
                                return false;
                return !(sqlite && strstr(p, "SCAN m\n")) && !(sqlite && strstr(p, "SCAN m "));
        }
        return false;
}

int main(int argc, char **argv)
{
        char dir[] = "/tmp/test-report-plan-XXXXXX", url_buf[256], err[512];
        const char *url = argc > 1 ? argv[1] : getenv("JOULE_TEST_DATABASE_URL");
        bool sqlite = !url || !*url;
        if (sqlite) {
                if (!mkdtemp(dir))
                        return 1;
                snprintf(url_buf, sizeof(url_buf), "sqlite:%s/joule.db", dir);
                url = url_buf;
        }
        _cleanup_store_ jl_store *s = NULL;
        if (!ok(jl_store_open(url, JL_STORE_OPEN_CREATE, &s, err, sizeof(err)) >= 0, "open %s", url)) {
                printf("# %s\n", err);
                return tap_done();
        }
        ok(jl_store_migrate(s) >= 0, "migrate");
        if (!ok(fill(s) >= 0, "%d records of %d nodes and their aggregation windows", NODES * RECORDS,
                NODES))
                printf("# %s\n", jl_store_error(s));

        static const char *const scopes[] = {"cluster", "partition", "node"};
        char p[16384];
        for (size_t i = 0; i < ARRAY_SIZE(scopes); i++)
                for (int agg = 1; agg >= 0; agg--) {
                        const char *sql = jl_store_report_sql(scopes[i], agg);
                        int r = plan(s, sqlite, sql, agg ? scopes[i] : NULL, BASE, BASE + 3600 * S, p,
                                     sizeof(p));
                        if (!ok(r >= 0, "EXPLAIN report --by %s from the %s", scopes[i],
                                agg ? "aggregations" : "records"))
                                printf("# %s\n", jl_store_error(s));
                        bool b =
                            agg ? bounded(sqlite, p, "periodic_aggregations", "periodic_aggregations_scope")
                                : bounded(sqlite, p, "periodic_metrics", "periodic_metrics_start");
                        ok(b,
                           "… an hour at the start of the data: the start_us index, bounded on both sides");
                        if (!b)
                                for (char *save = NULL, *l = strtok_r(p, "\n", &save); l;
                                     l = strtok_r(NULL, "\n", &save))
                                        printf("#   %s\n", l);
                }
        ok(jl_store_report_sql("galaxy", false) == NULL, "an unknown scope has no query");

        /* joule acct, an hour at the start of the steps: finished steps by steps_start with both bounds,
         * running ones by their own index, never the whole table */
        int64_t ends[2] = {BASE + 3600 * S, BASE + (int64_t)STEPS * 100 * S};
        for (int e = 0; e < 4; e++) {
                int64_t from = ends[e % 2] - 3600 * S, to = ends[e % 2];
                /* and once no step is running (the planner must not scan the table for the order) */
                if (e == 2 && !ok(jl_store_exec(s, "DELETE FROM steps WHERE end_us IS NULL") >= 0 &&
                                      jl_store_exec(s, "ANALYZE") >= 0,
                                  "no step running"))
                        printf("# %s\n", jl_store_error(s));
                int r = plan_acct(s, sqlite, from, to, p, sizeof(p));
                if (!ok(r >= 0, "EXPLAIN acct, the %s hour%s", e % 2 ? "last" : "first",
                        e >= 2 ? ", no step running" : ""))
                        printf("# %s\n", jl_store_error(s));
                bool b = bounded(sqlite, p, "steps", "steps_start") &&
                         strstr(p, sqlite ? "USING INDEX steps_running" : "steps_running") != NULL;
                ok(b, "… the start_us index bounded on both sides, and the index of running steps");
                if (!b)
                        for (char *save = NULL, *l = strtok_r(p, "\n", &save); l;
                             l = strtok_r(NULL, "\n", &save))
                                printf("#   %s\n", l);
        }

        jl_store_close(TAKE_PTR(s));
        if (sqlite) {
                char cmd[300];
                snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
                if (system(cmd) != 0)
                        printf("# could not remove %s\n", dir);
        }
        return tap_done();
}
