/* bench-query.c - how the cost of joule's queries and of the ingest follows the store's size. Fills an
 * empty, migrated store with periodic records of NODES nodes (10 s each, back to back, a realistic
 * domains_json) and the aggregation windows joule-dbd would write for them (60 s; cluster, partition,
 * node), growing it to each SIZE in turn; at each size times, as the median of REPEAT runs, the queries of
 * `joule report` (jl_store_report_sql(): every scope, from the aggregations and from the records, an
 * hour at the start, an hour at the end and the whole history), `joule acct`'s (job steps of an hour on
 * every node), the former one-sided queries,
 * `joule status`'s query, and a batch of new records stored as joule-dbd stores them
 * (jl_store_put_records). Prints a Markdown table, one column per size.
 * Usage: bench-query URL SIZE... (environment: NODES, default 100; REPEAT, default 5; ALL_MAX, default
 * 2000000: the largest store whose whole history is also read from the records, "-" above it) */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cluster.h"
#include "macro.h"
#include "store.h"

#define S 1000000LL
#define BASE 1767225600000000LL /* 2026-01-01T00:00:00Z */
#define PERIOD (10 * S)
#define WINDOW (60 * S)
#define MAX_SIZES 8
#define MAX_QUERIES 32

static jl_store *st;
static int nodes = 100, repeat = 5;
static int64_t all_max = 2000000;
static int64_t filled; /* records per node stored so far */

static double now_s(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int fail(const char *what)
{
        fprintf(stderr, "bench-query: %s: %s\n", what, jl_store_error(st));
        return -EIO;
}

static void node_name(int n, char *buf, size_t size)
{
        snprintf(buf, size, "node%04d", n);
}

/* Records [filled, upto) of every node, in time order (as they arrive), and the windows they complete. */
static int grow(int64_t upto)
{
        static const char *const mcols[] = {"node",      "seq",         "start_us",     "end_us",
                                            "energy_uj", "avg_power_w", "domains_json", "max_temp_c"};
        static const char *const acols[] = {"start_us",    "end_us",     "scope",   "scope_key", "energy_uj",
                                            "avg_power_w", "node_count", "records", "covered_us"};
        char name[32], dom[160];
        for (int64_t from = filled; from < upto;) {
                int64_t to = MIN(upto, from + MAX(1, 100000 / nodes));
                jl_bulk *b;
                int r = jl_store_bulk_begin(st, "periodic_metrics", mcols, ARRAY_SIZE(mcols), 0, &b);
                if (r < 0)
                        return fail("bulk begin");
                for (int64_t j = from; j < to && r >= 0; j++)
                        for (int n = 0; n < nodes && r >= 0; n++) {
                                int64_t p_w = 100 + n % 50, e = p_w * PERIOD;
                                node_name(n, name, sizeof(name));
                                snprintf(dom, sizeof(dom),
                                         "{\"package-0\":%" PRId64 ",\"package-1\":%" PRId64
                                         ",\"dram-0\":%" PRId64 ",\"dram-1\":%" PRId64 "}",
                                         e * 4 / 10, e * 4 / 10, e / 10, e / 10);
                                (void)jl_bulk_text(b, name);
                                (void)jl_bulk_int64(b, j);
                                (void)jl_bulk_int64(b, BASE + j * PERIOD);
                                (void)jl_bulk_int64(b, BASE + (j + 1) * PERIOD);
                                (void)jl_bulk_int64(b, e);
                                (void)jl_bulk_double(b, (double)p_w);
                                (void)jl_bulk_text(b, dom);
                                (void)jl_bulk_double(b, 55.5);
                                r = jl_bulk_row_end(b);
                        }
                if (r < 0) {
                        jl_bulk_abort(b);
                        return fail("bulk rows");
                }
                if (jl_bulk_finish(b, NULL) < 0)
                        return fail("bulk finish");
                /* the windows [from, to) completed: 6 records per node each */
                int64_t w0 = from * PERIOD / WINDOW, w1 = to * PERIOD / WINDOW;
                if (w1 > w0) {
                        r = jl_store_bulk_begin(st, "periodic_aggregations", acols, ARRAY_SIZE(acols), 0,
                                                &b);
                        if (r < 0)
                                return fail("bulk begin");
                        for (int64_t w = w0; w < w1 && r >= 0; w++) {
                                int64_t ws = BASE + w * WINDOW, tot = 0, part[2] = {0, 0};
                                for (int n = 0; n < nodes; n++) {
                                        int64_t e = (100 + n % 50) * WINDOW;
                                        tot += e;
                                        part[n % 2] += e;
                                }
                                for (int k = -3; k < nodes && r >= 0; k++) {
                                        int64_t e = k == -3 ? tot
                                                    : k < 0 ? part[k + 2]
                                                            : (100 + k % 50) * WINDOW;
                                        int cnt = k == -3 ? nodes : k < 0 ? nodes / 2 : 1;
                                        if (k >= 0)
                                                node_name(k, name, sizeof(name));
                                        (void)jl_bulk_int64(b, ws);
                                        (void)jl_bulk_int64(b, ws + WINDOW);
                                        (void)jl_bulk_text(b, k == -3 ? "cluster"
                                                              : k < 0 ? "partition"
                                                                      : "node");
                                        (void)jl_bulk_text(b, k == -3   ? "cluster"
                                                              : k == -2 ? "p0"
                                                              : k == -1 ? "p1"
                                                                        : name);
                                        (void)jl_bulk_int64(b, e);
                                        (void)jl_bulk_double(b, (double)e / (double)WINDOW);
                                        (void)jl_bulk_int64(b, cnt);
                                        (void)jl_bulk_int64(b, cnt * 6);
                                        (void)jl_bulk_int64(b, WINDOW);
                                        r = jl_bulk_row_end(b);
                                }
                        }
                        if (r < 0) {
                                jl_bulk_abort(b);
                                return fail("aggregation rows");
                        }
                        if (jl_bulk_finish(b, NULL) < 0)
                                return fail("bulk finish");
                }
                from = to;
        }
        /* job steps of an hour on every node, back to back (the finished hours) */
        static const char *const scols[] = {"job_id",   "step_id", "node",      "user_name",
                                            "start_us", "end_us",  "energy_uj", "complete"};
        int64_t h0 = filled * PERIOD / (3600 * S), h1 = upto * PERIOD / (3600 * S);
        if (h1 > h0) {
                jl_bulk *b;
                int r = jl_store_bulk_begin(st, "steps", scols, ARRAY_SIZE(scols), 0, &b);
                if (r < 0)
                        return fail("bulk begin");
                for (int64_t h = h0; h < h1 && r >= 0; h++)
                        for (int n = 0; n < nodes && r >= 0; n++) {
                                node_name(n, name, sizeof(name));
                                (void)jl_bulk_int64(b, h);
                                (void)jl_bulk_int64(b, 0);
                                (void)jl_bulk_text(b, name);
                                (void)jl_bulk_text(b, "root");
                                (void)jl_bulk_int64(b, BASE + h * 3600 * S);
                                (void)jl_bulk_int64(b, BASE + (h + 1) * 3600 * S);
                                (void)jl_bulk_int64(b, 100 * 3600 * S);
                                r = jl_bulk_int64(b, 1);
                                if (r >= 0)
                                        r = jl_bulk_row_end(b);
                        }
                if (r < 0) {
                        jl_bulk_abort(b);
                        return fail("steps rows");
                }
                if (jl_bulk_finish(b, NULL) < 0)
                        return fail("bulk finish");
        }
        filled = upto;
        return 0;
}

typedef struct {
        const char *name;
        const char *sql;
        const char *scope; /* $3 */
        int range;         /* 0 first hour, 1 last hour, 2 everything */
        int kind;          /* 0 a query, 1 status, 2 ingest, 3 acct */
        double ms[MAX_SIZES];
} query;

/* The report's former query from the records (start_us bounded from below only). */
static const char *const old_cluster = "SELECT 'cluster', SUM(energy_uj), MIN(start_us), MAX(end_us) FROM "
                                       "periodic_metrics WHERE start_us >= $1 "
                                       "AND end_us <= $2 HAVING COUNT(*) > 0";

/* The report's former query --by node: every record, for want of node aggregations. */
static const char *const old_node =
    "SELECT node, SUM(energy_uj), MIN(start_us), MAX(end_us) FROM periodic_metrics "
    "WHERE start_us >= $1 AND end_us <= $2 GROUP BY node ORDER BY node";

/* joule acct's former query: start_us bounded from above only. */
static const char *const old_acct =
    "SELECT job_id, step_id, user_name, node, start_us, end_us, energy_uj, complete "
    "FROM steps WHERE start_us < $1 AND (end_us IS NULL OR end_us >= $2) "
    "ORDER BY job_id, step_id, node";

static int run_once(query *q, double *ret_s)
{
        int64_t end = BASE + filled * PERIOD;
        int64_t from = q->range == 1 ? end - 3600 * S : BASE, to = q->range == 0 ? BASE + 3600 * S : end;
        char name[32];
        double t0 = now_s();
        if (q->kind == 0) {
                _cleanup_stmt_ jl_stmt *s = NULL;
                if (jl_store_prepare(st, q->sql, &s) < 0 || jl_stmt_bind_int64(s, 1, from) < 0 ||
                    jl_stmt_bind_int64(s, 2, to) < 0 || (q->scope && jl_stmt_bind_text(s, 3, q->scope) < 0))
                        return fail(q->name);
                int r, rows = 0;
                while ((r = jl_stmt_step(s)) == JL_STORE_ROW)
                        rows++;
                if (r < 0 || rows == 0)
                        return r < 0 ? fail(q->name) : -ENODATA;
        } else if (q->kind == 3) {
                /* joule acct's query over the hour (params $1 = to, $2 = from, $3 = from - longest) */
                char sql[1024];
                int64_t longest = 0;
                _cleanup_stmt_ jl_stmt *s = NULL;
                if ((!q->sql && (jl_store_acct_longest_us(st, &longest) < 0 ||
                                 jl_store_acct_sql(false, false, sql, sizeof(sql)) < 0)) ||
                    jl_store_prepare(st, q->sql ? q->sql : sql, &s) < 0 ||
                    jl_stmt_bind_int64(s, 1, to) < 0 || jl_stmt_bind_int64(s, 2, from) < 0 ||
                    (!q->sql && jl_stmt_bind_int64(s, 3, from - longest) < 0))
                        return fail(q->name);
                int r, rows = 0;
                while ((r = jl_stmt_step(s)) == JL_STORE_ROW)
                        rows++;
                if (r < 0 || rows == 0)
                        return r < 0 ? fail(q->name) : -ENODATA;
        } else if (q->kind == 1) {
                /* joule status: each node's newest record through the (node, seq) index */
                _cleanup_stmt_ jl_stmt *s = NULL;
                if (jl_store_prepare(st,
                                     "SELECT end_us FROM periodic_metrics WHERE node = $1 ORDER BY seq DESC "
                                     "LIMIT 1",
                                     &s) < 0)
                        return fail(q->name);
                for (int n = 0; n < nodes; n++) {
                        node_name(n, name, sizeof(name));
                        if (jl_stmt_bind_text(s, 1, name) < 0 || jl_stmt_step(s) != JL_STORE_ROW)
                                return fail(q->name);
                }
        } else {
                /* one batch of 10 records per node (1,000 at 100 nodes) as joule-dbd stores it: duplicates
                 * dropped by (node, seq); the batch is deleted afterwards so that the store keeps its size
                 */
                int per = 10;
                jl_store_record *recs = calloc((size_t)(nodes * per), sizeof(*recs));
                char(*names)[32] = calloc((size_t)nodes, sizeof(*names));
                if (!recs || !names) {
                        free(recs);
                        free(names);
                        return -ENOMEM;
                }
                for (int n = 0; n < nodes; n++) {
                        node_name(n, names[n], sizeof(names[n]));
                        for (int j = 0; j < per; j++) {
                                jl_store_record *r = &recs[n * per + j];
                                r->node = names[n];
                                r->seq = (uint64_t)(filled + j);
                                r->start_us = BASE + (filled + j) * PERIOD;
                                r->end_us = r->start_us + PERIOD;
                                r->energy_uj = 100 * PERIOD;
                                r->avg_power_w = 100;
                                r->max_temp_c = r->avg_freq_khz = NAN;
                        }
                }
                t0 = now_s();
                int r = jl_store_put_records(st, recs, (size_t)(nodes * per), NULL);
                *ret_s = now_s() - t0;
                free(recs);
                free(names);
                if (r < 0)
                        return fail(q->name);
                _cleanup_stmt_ jl_stmt *d = NULL;
                if (jl_store_prepare(st, "DELETE FROM periodic_metrics WHERE start_us >= $1", &d) < 0 ||
                    jl_stmt_bind_int64(d, 1, BASE + filled * PERIOD) < 0 || jl_stmt_step(d) < 0)
                        return fail("delete the batch");
                return 0;
        }
        *ret_s = now_s() - t0;
        return 0;
}

static int cmp_double(const void *a, const void *b)
{
        double x = *(const double *)a, y = *(const double *)b;
        return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
        if (argc < 3 || argc - 2 > MAX_SIZES) {
                fprintf(stderr, "usage: bench-query URL SIZE... (at most %d sizes, records in all)\n",
                        MAX_SIZES);
                return 2;
        }
        if (getenv("NODES"))
                nodes = atoi(getenv("NODES"));
        if (getenv("REPEAT"))
                repeat = atoi(getenv("REPEAT"));
        if (getenv("ALL_MAX"))
                all_max = strtoll(getenv("ALL_MAX"), NULL, 10);
        if (nodes < 2 || nodes > 100000 || repeat < 1 || repeat > 100) {
                fprintf(stderr, "bench-query: NODES 2…100000, REPEAT 1…100\n");
                return 2;
        }
        char err[512];
        if (jl_store_open(argv[1], JL_STORE_OPEN_CREATE, &st, err, sizeof(err)) < 0) {
                fprintf(stderr, "bench-query: %s\n", err);
                return 1;
        }
        if (jl_store_migrate(st) < 0)
                return fail("migrate"), 1;
        for (int n = 0; n < nodes; n++) {
                char name[32];
                _cleanup_stmt_ jl_stmt *s = NULL;
                node_name(n, name, sizeof(name));
                if (jl_store_prepare(st, "INSERT INTO nodes (name, partition_name) VALUES ($1, $2)", &s) <
                        0 ||
                    jl_stmt_bind_text(s, 1, name) < 0 || jl_stmt_bind_text(s, 2, n % 2 ? "p1" : "p0") < 0 ||
                    jl_stmt_step(s) < 0)
                        return fail("nodes"), 1;
        }

        static const char *const scopes[] = {"cluster", "partition", "node"};
        static const char *const ranges[] = {"first hour", "last hour", "all"};
        query qs[MAX_QUERIES];
        size_t nq = 0;
        static char names[MAX_QUERIES][96];
        for (int range = 0; range < 3; range++)
                for (int agg = 1; agg >= 0; agg--)
                        for (size_t i = 0; i < ARRAY_SIZE(scopes); i++) {
                                snprintf(names[nq], sizeof(names[nq]), "report --by %s, %s, from the %s",
                                         scopes[i], ranges[range], agg ? "aggregations" : "records");
                                qs[nq] = (query){.name = names[nq],
                                                 .sql = jl_store_report_sql(scopes[i], agg),
                                                 .scope = agg ? scopes[i] : NULL,
                                                 .range = range};
                                nq++;
                        }
        qs[nq++] =
            (query){.name = "before: report --by cluster, first hour, records, start_us bounded below only",
                    .sql = old_cluster};
        qs[nq++] = (query){.name = "before: report --by node, all, records (no node aggregations)",
                           .sql = old_node,
                           .range = 2};
        qs[nq++] = (query){.name = "acct, first hour", .kind = 3};
        qs[nq++] = (query){.name = "acct, last hour", .kind = 3, .range = 1};
        qs[nq++] = (query){.name = "before: acct, last hour, start_us bounded above only",
                           .sql = old_acct,
                           .kind = 3,
                           .range = 1};
        qs[nq++] = (query){.name = "status: the newest record of every node", .kind = 1};
        qs[nq++] = (query){.name = "ingest: 10 records per node through jl_store_put_records", .kind = 2};

        int nsizes = argc - 2;
        double fill_rate[MAX_SIZES];
        for (int z = 0; z < nsizes; z++) {
                int64_t size = strtoll(argv[2 + z], NULL, 10);
                int64_t per_node = size / nodes;
                if (per_node <= filled || per_node * PERIOD < 2 * 3600 * S) {
                        fprintf(stderr, "bench-query: sizes must grow, and hold two hours of records\n");
                        return 2;
                }
                double t0 = now_s();
                if (grow(per_node) < 0)
                        return 1;
                fill_rate[z] =
                    (double)((per_node - (z ? strtoll(argv[1 + z], NULL, 10) / nodes : 0)) * nodes) /
                    (now_s() - t0);
                if (jl_store_exec(st, "ANALYZE") < 0)
                        return fail("analyze"), 1;
                fprintf(stderr, "bench-query: %" PRId64 " records (%.0f records/s filled)\n",
                        per_node * nodes, fill_rate[z]);
                for (size_t i = 0; i < nq; i++) {
                        double t[100], s;
                        if (qs[i].kind == 0 && qs[i].range == 2 && !qs[i].scope &&
                            per_node * nodes > all_max) {
                                qs[i].ms[z] = NAN;
                                continue;
                        }
                        if (run_once(&qs[i], &s) < 0) /* warm-up */
                                return 1;
                        for (int k = 0; k < repeat; k++)
                                if (run_once(&qs[i], &t[k]) < 0)
                                        return 1;
                        qsort(t, (size_t)repeat, sizeof(double), cmp_double);
                        qs[i].ms[z] = t[repeat / 2] * 1e3;
                        if (qs[i].kind == 2) /* records per second */
                                qs[i].ms[z] = (double)(nodes * 10) / t[repeat / 2];
                }
        }

        printf("| query (%s, %d nodes, median of %d) |", jl_store_backend_name(jl_store_get_backend(st)),
               nodes, repeat);
        for (int z = 0; z < nsizes; z++)
                printf(" %s |", argv[2 + z]);
        printf("\n|---|");
        for (int z = 0; z < nsizes; z++)
                printf("---|");
        printf("\n");
        for (size_t i = 0; i < nq; i++) {
                printf("| %s |", qs[i].name);
                for (int z = 0; z < nsizes; z++)
                        if (isnan(qs[i].ms[z]))
                                printf(" - |");
                        else if (qs[i].kind == 2)
                                printf(" %.0f rec/s |", qs[i].ms[z]);
                        else
                                printf(" %.2f ms |", qs[i].ms[z]);
                printf("\n");
        }
        printf("| fill (bulk, in batches of 100,000 records) |");
        for (int z = 0; z < nsizes; z++)
                printf(" %.0f rec/s |", fill_rate[z]);
        printf("\n");
        jl_store_close(st);
        return 0;
}
