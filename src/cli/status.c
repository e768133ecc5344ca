/* status.c - `joule status [--json]`: every node the database has heard from (the nodes table, kept by
 * joule-dbd or by jouled writing directly), the age of its last periodic record, and its health: "ok", or
 * "stale" when no record came for 3 periods (node.period), or "silent" when none ever came. */
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
        fputs(
            "Usage: joule status [--json] [--url URL]\n\n"
            "Every node the database has heard from, the age of its last record and its health: ok,\n"
            "stale (no record for 3 periods of node.period), or silent (never sent a record).\n"
            "\n"
            "      --json      {period_s, nodes: [{node, partition, last_record, age_s, health, last_seq,\n"
            "                  status}], stale}\n"
            "      --url URL   the database (default: database.url)\n",
            f);
        return f == stdout ? 0 : 2;
}

int verb_status(cli_context *ctx, int argc, char **argv)
{
        static const struct option opts[] = {
            {"json", no_argument, NULL, 'J'},
            {"url", required_argument, NULL, 'U'},
            {"help", no_argument, NULL, 'h'},
            {0},
        };
        cli_output out = {0};
        int ret = 2;
        if (cli_getopt(argc, argv, "h", opts, "status", usage, &out, &ret) != -1)
                return ret;
        bool json = out.json;
        _cleanup_store_ jl_store *s = NULL;
        if (cli_open_store(ctx, out.url, &s) < 0)
                return 1;

        _cleanup_stmt_ jl_stmt *st = NULL, *last = NULL;
        int r = jl_store_prepare(
            s, "SELECT name, partition_name, last_seen_us, last_seq, status FROM nodes ORDER BY name", &st);
        /* the last record by the (node, seq) index */
        if (r == 0)
                r = jl_store_prepare(
                    s, "SELECT end_us FROM periodic_metrics WHERE node = $1 ORDER BY seq DESC LIMIT 1",
                    &last);
        if (r < 0) {
                log_error(r, "status: %s", jl_store_error(s));
                return 1;
        }
        double period_s = ctx->config.node.period_s;
        uint64_t now_us = cli_now_us();
        unsigned nstale = 0, nnodes = 0;
        json_writer w;
        if (json) {
                json_init(&w, stdout);
                json_object_begin(&w);
                json_key(&w, "period_s");
                json_double(&w, period_s);
                json_key(&w, "nodes");
                json_array_begin(&w);
        } else {
                printf("%-20s %-12s %-24s %10s %-7s %s\n", "NODE", "PARTITION", "LAST RECORD", "AGE(s)",
                       "HEALTH", "STATUS");
        }
        while ((r = jl_stmt_step(st)) == JL_STORE_ROW) {
                const char *name = jl_stmt_column_text(st, 0);
                const char *part = jl_stmt_column_text(st, 1);
                const char *status = jl_stmt_column_text(st, 4);
                bool have_seq = !jl_stmt_column_is_null(st, 3);
                int64_t seq = jl_stmt_column_int64(st, 3);
                bool have = false;
                int64_t last_us = 0;
                if (jl_stmt_bind_text(last, 1, name ? name : "") == 0 &&
                    jl_stmt_step(last) == JL_STORE_ROW) {
                        have = true;
                        last_us = jl_stmt_column_int64(last, 0);
                }
                jl_stmt_reset(last);
                if (!have && !jl_stmt_column_is_null(st, 2)) {
                        have = true;
                        last_us = jl_stmt_column_int64(st, 2);
                }
                double age_s = have ? (double)((int64_t)now_us - last_us) / 1e6 : NAN;
                const char *health = !have ? "silent" : age_s > 3 * period_s ? "stale" : "ok";
                nstale += strcmp(health, "ok") != 0;
                nnodes++;
                char last_s[40] = "-";
                if (have)
                        format_iso8601((uint64_t)last_us * 1000, last_s, sizeof(last_s));
                if (json) {
                        json_object_begin(&w);
                        json_key(&w, "node");
                        json_string(&w, name ? name : "");
                        json_key(&w, "partition");
                        if (part)
                                json_string(&w, part);
                        else
                                json_null(&w);
                        json_key(&w, "last_record");
                        if (have)
                                json_string(&w, last_s);
                        else
                                json_null(&w);
                        json_key(&w, "age_s");
                        json_double(&w, age_s);
                        json_key(&w, "health");
                        json_string(&w, health);
                        json_key(&w, "last_seq");
                        if (have_seq)
                                json_int(&w, seq);
                        else
                                json_null(&w);
                        json_key(&w, "status");
                        if (status)
                                json_string(&w, status);
                        else
                                json_null(&w);
                        json_object_end(&w);
                } else {
                        char age[32] = "-";
                        if (have)
                                snprintf(age, sizeof(age), "%.1f", age_s);
                        printf("%-20s %-12s %-24s %10s %-7s %s\n", name ? name : "", part ? part : "-",
                               last_s, age, health, status ? status : "");
                }
        }
        if (r < 0) {
                if (json)
                        putchar('\n');
                log_error(r, "status: %s", jl_store_error(s));
                return 1;
        }
        if (json) {
                json_array_end(&w);
                json_key(&w, "stale");
                json_uint(&w, nstale);
                json_object_end(&w);
                putchar('\n');
        } else if (nnodes == 0) {
                printf("(no node has reported yet)\n");
        } else {
                printf("\n%u node(s), %u stale or silent (period %g s; stale after %g s)\n", nnodes, nstale,
                       period_s, 3 * period_s);
        }
        return 0;
}
