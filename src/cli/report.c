/* report.c - `joule report --by node|partition|cluster [--from T] [--to T] [--json]`: energy and average
 * power per node, partition or for the whole cluster over a time range, from joule-dbd's
 * periodic_aggregations windows that lie inside the range and the nodes' periodic_metrics records (finer:
 * one per node and period) at the edges of the range outside those windows, or from the records alone
 * when no aggregation window of that scope lies inside it. Average power is over the time a key's windows
 * or records cover; the rest of the range is shown as missing. The queries are jl_store_report_sql()'s. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "json.h"
#include "log.h"
#include "macro.h"
#include "store.h"
#include "timeutil.h"

static int usage(FILE *f)
{
        fputs("Usage: joule report [--by node|partition|cluster] [--from T] [--to T] [--json] [--url URL]\n\n"
              "Energy and average power per node, partition or cluster over [--from, --to).\n\n"
              "  -b, --by SCOPE  node, partition or cluster (default: cluster)\n"
              "      --from T    YYYY-MM-DD[THH:MM:SS[.fff]][Z] (UTC), now, or -DURATION (-2h, -7d);\n"
              "                  default: the first record\n"
              "      --to T      default: now\n"
              "      --json      {from, to, by, source, total_energy_j,\n"
              "                  rows: [{key, energy_j, avg_power_w, covered_s, missing_s, gap_s}]}\n"
              "      --url URL   the database (default: database.url)\n",
              f);
        return f == stdout ? 0 : 2;
}

typedef struct {
        char *key;
        int64_t energy_uj;
        int64_t start_us, end_us;
        int64_t covered_us; /* the union of the spans of its windows or records */
        int64_t gap_us;     /* time whose energy is estimated across counter wraps */
} report_row;

static int cmp_key(const void *a, const void *b)
{
        return strcmp(((const report_row *)a)->key, ((const report_row *)b)->key);
}

/* Run sql (params $1 = from, $2 = to, $3 = scope when set) and collect its rows (key, energy, start, end,
 * covered, gap). Returns the row count or a negative errno. */
static int collect(jl_store *s, const char *sql, uint64_t from_us, uint64_t to_us, const char *scope,
                   report_row **ret_rows)
{
        _cleanup_stmt_ jl_stmt *st = NULL;
        int r = jl_store_prepare(s, sql, &st);
        if (r == 0)
                r = jl_stmt_bind_int64(st, 1, (int64_t)from_us);
        if (r == 0)
                r = jl_stmt_bind_int64(st, 2, (int64_t)to_us);
        if (r == 0 && scope)
                r = jl_stmt_bind_text(st, 3, scope);
        if (r < 0)
                return r;
        report_row *rows = NULL;
        size_t n = 0;
        while ((r = jl_stmt_step(st)) == JL_STORE_ROW) {
                report_row *g = realloc(rows, (n + 1) * sizeof(*rows));
                if (!g) {
                        r = -ENOMEM;
                        break;
                }
                rows = g;
                const char *k = jl_stmt_column_text(st, 0);
                rows[n] = (report_row){.key = strdup(k && *k ? k : "(none)"),
                                       .energy_uj = jl_stmt_column_int64(st, 1),
                                       .start_us = jl_stmt_column_int64(st, 2),
                                       .end_us = jl_stmt_column_int64(st, 3),
                                       .covered_us = jl_stmt_column_int64(st, 4),
                                       .gap_us = jl_stmt_column_int64(st, 5)};
                if (!rows[n++].key) {
                        r = -ENOMEM;
                        break;
                }
        }
        if (r < 0) {
                for (size_t i = 0; i < n; i++)
                        free(rows[i].key);
                free(rows);
                return r;
        }
        *ret_rows = rows;
        return (int)n;
}

static void free_rows(report_row *rows, int n)
{
        for (int i = 0; i < n; i++)
                free(rows[i].key);
        free(rows);
}

/* Add the records that lie inside [from_us, to_us] to the n rows of *rows, key by key. Returns the new row
 * count, or a negative errno (the rows freed). */
static int add_edge(jl_store *s, const char *by, uint64_t from_us, uint64_t to_us, report_row **rows, int n)
{
        report_row *e = NULL;
        bool added = false;
        int ne = collect(s, jl_store_report_sql(by, false), from_us, to_us, NULL, &e);
        if (ne < 0) {
                free_rows(*rows, n);
                return ne;
        }
        for (int j = 0; j < ne; j++) {
                int i = 0;
                while (i < n && strcmp((*rows)[i].key, e[j].key) != 0)
                        i++;
                if (i == n) {
                        report_row *g = realloc(*rows, (size_t)(n + 1) * sizeof(**rows));
                        if (!g) {
                                free_rows(*rows, n);
                                free_rows(e, ne);
                                return -ENOMEM;
                        }
                        *rows = g;
                        g[n++] = e[j];
                        e[j].key = NULL;
                        added = true;
                        continue;
                }
                report_row *r = &(*rows)[i];
                r->energy_uj += e[j].energy_uj;
                r->covered_us += e[j].covered_us;
                r->gap_us += e[j].gap_us;
                r->start_us = MIN(r->start_us, e[j].start_us);
                r->end_us = MAX(r->end_us, e[j].end_us);
        }
        free_rows(e, ne);
        if (added) /* keys in order, as the queries give them */
                qsort(*rows, (size_t)n, sizeof(**rows), cmp_key);
        return n;
}

int verb_report(cli_context *ctx, int argc, char **argv)
{
        static const struct option opts[] = {
                {"by", required_argument, NULL, 'b'},  {"from", required_argument, NULL, 'F'},
                {"to", required_argument, NULL, 'T'},  {"json", no_argument, NULL, 'J'},
                {"url", required_argument, NULL, 'U'}, {"help", no_argument, NULL, 'h'},
                {0},
        };
        const char *by = "cluster", *from = NULL, *to = NULL, *url = NULL;
        bool json = false;
        int c;
        while ((c = getopt_long(argc, argv, "b:h", opts, NULL)) >= 0) {
                switch (c) {
                case 'b':
                        by = optarg;
                        break;
                case 'F':
                        from = optarg;
                        break;
                case 'T':
                        to = optarg;
                        break;
                case 'J':
                        json = true;
                        break;
                case 'U':
                        url = optarg;
                        break;
                case 'h':
                        return usage(stdout);
                default:
                        return usage(stderr);
                }
        }
        if (optind != argc) {
                log_error(EINVAL, "report: unexpected argument '%s'", argv[optind]);
                return usage(stderr);
        }
        if (strcmp(by, "node") != 0 && strcmp(by, "partition") != 0 && strcmp(by, "cluster") != 0) {
                log_error(EINVAL, "report: --by '%s': say node, partition or cluster", by);
                return 2;
        }
        uint64_t now_us = cli_now_us(), from_us, to_us;
        if (cli_parse_range(from, to, now_us, &from_us, &to_us) < 0)
                return 2;

        _cleanup_store_ jl_store *s = NULL;
        if (cli_open_store(ctx, url, &s) < 0)
                return 1;

        report_row *rows = NULL;
        const char *source = "aggregations";
        int n = collect(s, jl_store_report_sql(by, true), from_us, to_us, by, &rows);
        if (n == 0) {
                free(rows);
                rows = NULL;
                source = "metrics";
                n = collect(s, jl_store_report_sql(by, false), from_us, to_us, NULL, &rows);
        } else if (n > 0) {
                /* the edges of the range outside the whole windows (and the records after the last
                 * window the dbd has written) from the records */
                int64_t lo = INT64_MAX, hi = INT64_MIN;
                for (int i = 0; i < n; i++) {
                        lo = MIN(lo, rows[i].start_us);
                        hi = MAX(hi, rows[i].end_us);
                }
                if ((uint64_t)lo > from_us)
                        n = add_edge(s, by, from_us, (uint64_t)lo, &rows, n);
                if (n > 0 && (uint64_t)hi < to_us)
                        n = add_edge(s, by, (uint64_t)hi, to_us, &rows, n);
        }
        if (n < 0) {
                log_error(n, "report: %s", n == -ENOMEM ? "out of memory" : jl_store_error(s));
                return 1;
        }
        /* without --from the range starts at the first record */
        if (!from) {
                int64_t first = (int64_t)to_us;
                for (int i = 0; i < n; i++)
                        first = MIN(first, rows[i].start_us);
                from_us = (uint64_t)first;
        }

        int64_t total_uj = 0, gap_us = 0;
        for (int i = 0; i < n; i++) {
                total_uj += rows[i].energy_uj;
                gap_us += rows[i].gap_us;
        }
        char from_s[40], to_s[40];
        format_iso8601(from_us * 1000, from_s, sizeof(from_s));
        format_iso8601(to_us * 1000, to_s, sizeof(to_s));
        json_writer w;
        if (json) {
                json_init(&w, stdout);
                json_object_begin(&w);
                json_key(&w, "from");
                json_string(&w, from_s);
                json_key(&w, "to");
                json_string(&w, to_s);
                json_key(&w, "by");
                json_string(&w, by);
                json_key(&w, "source");
                json_string(&w, source);
                json_key(&w, "rows");
                json_array_begin(&w);
        } else {
                printf("Energy by %s from %s to %s (%s)\n\n%-24s %16s %12s %12s %12s\n", by, from_s, to_s,
                       strcmp(source, "metrics") == 0 ? "from the nodes' periodic records"
                                                      : "from the aggregations",
                       "KEY", "ENERGY(J)", "POWER(W)", "COVERED(s)", "MISSING(s)");
        }
        for (int i = 0; i < n; i++) {
                double e_j = (double)rows[i].energy_uj / 1e6;
                /* power over the time the key's data covers, not over the range: a node that reported for
                 * part of it is not shown as drawing less */
                double covered_s = (double)rows[i].covered_us / 1e6;
                double missing_s =
                    (double)MAX((int64_t)(to_us - from_us) - rows[i].covered_us, (int64_t)0) / 1e6;
                double p_w = covered_s > 0 ? e_j / covered_s : NAN;
                if (json) {
                        json_object_begin(&w);
                        json_key(&w, "key");
                        json_string(&w, rows[i].key);
                        json_key(&w, "energy_j");
                        json_double(&w, e_j);
                        json_key(&w, "avg_power_w");
                        json_double(&w, p_w);
                        json_key(&w, "covered_s");
                        json_double(&w, covered_s);
                        json_key(&w, "missing_s");
                        json_double(&w, missing_s);
                        json_key(&w, "gap_s");
                        json_double(&w, (double)rows[i].gap_us / 1e6);
                        json_object_end(&w);
                } else {
                        printf("%-24s %16.3f %12.2f %12.1f %12.1f\n", rows[i].key, e_j, p_w, covered_s,
                               missing_s);
                }
                free(rows[i].key);
        }
        free(rows);
        if (json) {
                json_array_end(&w);
                json_key(&w, "total_energy_j");
                json_double(&w, (double)total_uj / 1e6);
                json_object_end(&w);
                putchar('\n');
        } else {
                printf("%-24s %16.3f\n", "TOTAL", (double)total_uj / 1e6);
                if (gap_us > 0)
                        printf("(%.3f s of this time had its energy estimated across counter wraps that "
                               "could not be resolved for certain: see docs/metrics.md, \"Gaps\")\n",
                               (double)gap_us / 1e6);
                if (n == 0)
                        printf("(no records in this range)\n");
        }
        return 0;
}
