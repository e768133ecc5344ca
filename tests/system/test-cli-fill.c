/* test-cli-fill.c - fill a joule database (already migrated) with a known cluster history through the store
 * API, for tests/system/test-cli-store.sh: 4 nodes in 2 partitions, periodic records, aggregation windows,
 * job steps (complete, incomplete, running, of a user this machine does not know), and a node that
 * reported with a 4-minute gap (and 3 s whose energy was estimated across counter wraps).
 * Usage: test-cli-fill URL BASE_US NOW_US */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "store.h"

#define S 1000000LL /* µs per second */
#define J 1000000LL /* µJ per joule */

static jl_store *st;

static int exec_args(const char *sql, int n, const int64_t *v, const char *const *t)
{
        jl_stmt *p = NULL;
        int r = jl_store_prepare(st, sql, &p);
        for (int i = 0; r == 0 && i < n; i++)
                r = t && t[i] ? jl_stmt_bind_text(p, i + 1, t[i])
                    : v[i] == INT64_MIN ? jl_stmt_bind_null(p, i + 1)
                                        : jl_stmt_bind_int64(p, i + 1, v[i]);
        if (r == 0)
                r = jl_stmt_step(p);
        if (r < 0)
                fprintf(stderr, "test-cli-fill: %s: %s\n", sql, jl_store_error(st));
        if (p)
                jl_stmt_finalize(p);
        return r < 0 ? r : 0;
}

static int node(const char *name, const char *part)
{
        return exec_args("INSERT INTO nodes (name, partition_name) VALUES ($1, $2)", 2, (int64_t[]){0, 0},
                         (const char *const[]){name, part});
}

static int metric(const char *n, int64_t seq, int64_t start, int64_t end, int64_t energy_uj)
{
        return exec_args("INSERT INTO periodic_metrics (node, seq, start_us, end_us, energy_uj, avg_power_w) "
                         "VALUES ($1, $2, $3, $4, $5, 0)",
                         5, (int64_t[]){0, seq, start, end, energy_uj}, (const char *const[]){n, NULL, NULL, NULL, NULL});
}

/* a record that had gap_us of its time's energy estimated across counter wraps */
static int metric_gap(const char *n, int64_t seq, int64_t start, int64_t end, int64_t energy_uj, int64_t gap_us)
{
        return exec_args("INSERT INTO periodic_metrics (node, seq, start_us, end_us, energy_uj, avg_power_w, gap_us) "
                         "VALUES ($1, $2, $3, $4, $5, 0, $6)",
                         6, (int64_t[]){0, seq, start, end, energy_uj, gap_us},
                         (const char *const[]){n, NULL, NULL, NULL, NULL, NULL});
}

static int agg(const char *scope, const char *key, int64_t start, int64_t end, int64_t energy_uj)
{
        return exec_args("INSERT INTO periodic_aggregations (start_us, end_us, scope, scope_key, energy_uj) "
                         "VALUES ($1, $2, $3, $4, $5)",
                         5, (int64_t[]){start, end, 0, 0, energy_uj}, (const char *const[]){NULL, NULL, scope, key, NULL});
}

static int agg_covered(const char *scope, const char *key, int64_t start, int64_t end, int64_t energy_uj,
                       int64_t covered_us, int64_t gap_us)
{
        return exec_args("INSERT INTO periodic_aggregations (start_us, end_us, scope, scope_key, energy_uj, "
                         "covered_us, gap_us) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                         7, (int64_t[]){start, end, 0, 0, energy_uj, covered_us, gap_us},
                         (const char *const[]){NULL, NULL, scope, key, NULL, NULL, NULL});
}

static int step(int64_t job, int64_t stp, const char *n, const char *user, int64_t start, int64_t end,
                int64_t energy_uj, int64_t complete)
{
        return exec_args("INSERT INTO steps (job_id, step_id, node, user_name, start_us, end_us, energy_uj, complete) "
                         "VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                         8, (int64_t[]){job, stp, 0, 0, start, end, energy_uj, complete},
                         (const char *const[]){NULL, NULL, n, user, NULL, NULL, NULL, NULL});
}

int main(int argc, char **argv)
{
        char err[512];
        if (argc != 4) {
                fprintf(stderr, "usage: test-cli-fill URL BASE_US NOW_US\n");
                return 2;
        }
        int64_t b = strtoll(argv[2], NULL, 10), now = strtoll(argv[3], NULL, 10);
        if (jl_store_open(argv[1], 0, &st, err, sizeof(err)) < 0) {
                fprintf(stderr, "test-cli-fill: %s\n", err);
                return 1;
        }
        int r = jl_store_begin(st);
        r = r ?: node("n1", "p1");
        r = r ?: node("n2", "p1");
        r = r ?: node("n3", "p2");
        r = r ?: node("n4", "p2"); /* never reported */
        /* 12 records of 10 s from BASE: n1 100 W, n2 200 W, n3 50 W */
        for (int i = 0; r == 0 && i < 12; i++) {
                int64_t s0 = b + i * 10 * S, s1 = s0 + 10 * S;
                r = r ?: metric("n1", i, s0, s1, 1000 * J);
                r = r ?: metric("n2", i, s0, s1, 2000 * J);
                r = r ?: metric("n3", i, s0, s1, 500 * J);
        }
        /* the latest records: n1 and n2 5 s ago, n3 100 s ago (stale at a 10 s period) */
        r = r ?: metric("n1", 100, now - 15 * S, now - 5 * S, 1000 * J);
        r = r ?: metric("n2", 100, now - 15 * S, now - 5 * S, 2000 * J);
        r = r ?: metric("n3", 100, now - 110 * S, now - 100 * S, 500 * J);
        /* aggregation windows of 60 s (no node scope: report --by node reads the records) */
        for (int w = 0; r == 0 && w < 2; w++) {
                int64_t s0 = b + w * 60 * S, s1 = s0 + 60 * S;
                r = r ?: agg("cluster", "cluster", s0, s1, 21000 * J);
                r = r ?: agg("partition", "p1", s0, s1, 18000 * J);
                r = r ?: agg("partition", "p2", s0, s1, 3000 * J);
        }
        /* a day later, node g1 (no nodes row) at 76 W with a 4-minute gap: records over [0, 90 s) and
         * [330 s, 360 s), and its node aggregations as joule-dbd writes them (60 s windows, the time the
         * records cover in each, and the time whose energy was estimated: 2 s of [30 s, 40 s), 1 s of
         * [340 s, 350 s)) */
        int64_t g = b + 86400 * S;
        for (int i = 0; r == 0 && i < 12; i++) {
                int64_t s0 = g + (i < 9 ? i * 10 : 330 + (i - 9) * 10) * S;
                r = r ?: metric_gap("g1", i, s0, s0 + 10 * S, 760 * J, i == 3 ? 2 * S : i == 10 ? 1 * S : 0);
        }
        r = r ?: agg_covered("node", "g1", g, g + 60 * S, 4560 * J, 60 * S, 2 * S);
        r = r ?: agg_covered("node", "g1", g + 60 * S, g + 120 * S, 2280 * J, 30 * S, 0);
        r = r ?: agg_covered("node", "g1", g + 300 * S, g + 360 * S, 2280 * J, 30 * S, 1 * S);
        /* job steps */
        r = r ?: step(100, 0, "n1", "root", b + 10 * S, b + 70 * S, 600 * J, 1);
        r = r ?: step(100, 0, "n2", "root", b + 10 * S, b + 70 * S, 1200 * J, 1);
        r = r ?: step(100, 1, "n1", "root", b + 70 * S, b + 100 * S, 300 * J, 0);
        r = r ?: step(101, 0, "n3", "alice-not-here", b + 20 * S, b + 50 * S, 150 * J, 1);
        r = r ?: step(102, 0, "n2", "root", b + 110 * S, INT64_MIN, INT64_MIN, 0);
        r = r ?: jl_store_commit(st);
        jl_store_close(st);
        return r < 0 ? 1 : 0;
}
