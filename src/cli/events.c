/* events.c - `joule events [--job ID] [--json|--csv]`: the runtime's policy decisions (the events table:
 * one row per decision, written through jouled and joule-dbd), and the table printer that `joule acct -l`
 * and `joule acct -r` share with it: columns of a query as text, JSON (null where unknown) or CSV. */
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
#include "parse.h"
#include "store.h"
#include "timeutil.h"

static void csv_field(FILE *f, const char *s)
{
        if (!strpbrk(s, ",\"\n\r")) {
                fputs(s, f);
                return;
        }
        fputc('"', f);
        for (; *s; s++) {
                if (*s == '"')
                        fputc('"', f);
                fputc(*s, f);
        }
        fputc('"', f);
}

/* One column's value as text ("" when NULL): the caller's buffer. */
static const char *cell_text(jl_stmt *st, int col, cli_col_type type, char *buf, size_t size)
{
        if (jl_stmt_column_is_null(st, col))
                return "";
        switch (type) {
        case CLI_COL_INT:
                snprintf(buf, size, "%" PRId64, jl_stmt_column_int64(st, col));
                return buf;
        case CLI_COL_DOUBLE: {
                double v = jl_stmt_column_double(st, col);
                if (!isfinite(v))
                        return "";
                snprintf(buf, size, "%.6g", v);
                return buf;
        }
        case CLI_COL_UJ_AS_J:
                snprintf(buf, size, "%.6f", (double)jl_stmt_column_int64(st, col) / 1e6);
                return buf;
        case CLI_COL_TIME_US:
                return format_iso8601((uint64_t)jl_stmt_column_int64(st, col) * 1000, buf, size);
        case CLI_COL_TEXT: {
                const char *t = jl_stmt_column_text(st, col);
                snprintf(buf, size, "%s", t ? t : "");
                return buf;
        }
        }
        return "";
}

int cli_print_table(jl_stmt *st, const cli_col *cols, size_t ncols, bool json, bool csv, const char *none)
{
        json_writer w;
        if (json) {
                json_init(&w, stdout);
                json_array_begin(&w);
        } else if (csv) {
                for (size_t i = 0; i < ncols; i++)
                        printf("%s%s", i ? "," : "", cols[i].name);
                putchar('\n');
        } else {
                for (size_t i = 0; i < ncols; i++)
                        printf("%s%-*s", i ? " " : "", cols[i].width, cols[i].heading);
                putchar('\n');
        }
        size_t rows = 0;
        int r;
        while ((r = jl_stmt_step(st)) == JL_STORE_ROW) {
                rows++;
                if (json)
                        json_object_begin(&w);
                for (size_t i = 0; i < ncols; i++) {
                        char buf[512];
                        int col = (int)i;
                        bool null = jl_stmt_column_is_null(st, col);
                        if (json) {
                                json_key(&w, cols[i].name);
                                if (null) {
                                        json_null(&w);
                                        continue;
                                }
                                switch (cols[i].type) {
                                case CLI_COL_INT:
                                        json_int(&w, jl_stmt_column_int64(st, col));
                                        break;
                                case CLI_COL_DOUBLE:
                                        json_double(&w, jl_stmt_column_double(st, col));
                                        break;
                                case CLI_COL_UJ_AS_J:
                                        json_double(&w, (double)jl_stmt_column_int64(st, col) / 1e6);
                                        break;
                                case CLI_COL_TIME_US:
                                case CLI_COL_TEXT:
                                        json_string(&w, cell_text(st, col, cols[i].type, buf, sizeof(buf)));
                                        break;
                                }
                        } else if (csv) {
                                if (i)
                                        putchar(',');
                                csv_field(stdout, cell_text(st, col, cols[i].type, buf, sizeof(buf)));
                        } else {
                                const char *t = cell_text(st, col, cols[i].type, buf, sizeof(buf));
                                if (i + 1 == ncols)
                                        printf("%s%s", i ? " " : "", *t ? t : "-");
                                else
                                        printf("%s%-*s", i ? " " : "", cols[i].width, *t ? t : "-");
                        }
                }
                if (json)
                        json_object_end(&w);
                else
                        putchar('\n');
        }
        if (json) {
                json_array_end(&w);
                putchar('\n');
        } else if (!csv && rows == 0 && r >= 0)
                printf("%s\n", none);
        return r < 0 ? r : 0;
}

int cli_getopt(int argc, char **argv, const char *optstring, const struct option *opts, const char *verb,
               int (*usage)(FILE *f), cli_output *o, int *ret_exit)
{
        int c;
        while ((c = getopt_long(argc, argv, optstring, opts, NULL)) >= 0) {
                switch (c) {
                case 'J':
                        o->json = true;
                        break;
                case 'C':
                        o->csv = true;
                        break;
                case 'U':
                        o->url = optarg;
                        break;
                case 'h':
                        *ret_exit = usage(stdout);
                        return -2;
                case '?':
                case ':':
                        *ret_exit = usage(stderr);
                        return -2;
                default:
                        return c;
                }
        }
        if (optind != argc) {
                log_error(EINVAL, "%s: unexpected argument '%s'", verb, argv[optind]);
                *ret_exit = usage(stderr);
                return -2;
        }
        if (o->json && o->csv) {
                log_error(EINVAL, "%s: --json and --csv exclude each other", verb);
                *ret_exit = 2;
                return -2;
        }
        return -1;
}

static int usage(FILE *f)
{
        fputs("Usage: joule events [--job ID] [--json | --csv] [--url URL]\n\n"
              "The runtime's policy decisions (frequency changes, bounds, phases, modes, errors), oldest\n"
              "first, from every node.\n\n"
              "  -j, --job ID    only job ID's\n"
              "      --json      one JSON array of {time, node, job_id, step_id, kind, value, message}\n"
              "      --csv       the same as CSV with a header line\n"
              "      --url URL   the database (default: database.url)\n",
              f);
        return f == stdout ? 0 : 2;
}

int verb_events(cli_context *ctx, int argc, char **argv)
{
        static const struct option opts[] = {
            {"job", required_argument, NULL, 'j'}, {"json", no_argument, NULL, 'J'},
            {"csv", no_argument, NULL, 'C'},       {"url", required_argument, NULL, 'U'},
            {"help", no_argument, NULL, 'h'},      {0},
        };
        const char *job = NULL;
        cli_output out = {0};
        int c, ret = 2;
        while ((c = cli_getopt(argc, argv, "j:h", opts, "events", usage, &out, &ret)) >= 0)
                if (c == 'j')
                        job = optarg;
        if (c < -1)
                return ret;
        uint64_t job_id = 0;
        if (job && (parse_u64(job, &job_id) < 0 || job_id > INT64_MAX)) {
                log_error(EINVAL, "events: the job id '%s' is not a non-negative integer", job);
                return 2;
        }
        _cleanup_store_ jl_store *s = NULL;
        if (cli_open_store(ctx, out.url, &s) < 0)
                return 1;
        static const cli_col cols[] = {
            {"time", "TIME", 24, CLI_COL_TIME_US},   {"node", "NODE", 12, CLI_COL_TEXT},
            {"job_id", "JOB", 16, CLI_COL_INT},      {"step_id", "STEP", 5, CLI_COL_INT},
            {"kind", "KIND", 10, CLI_COL_TEXT},      {"value", "VALUE", 12, CLI_COL_DOUBLE},
            {"message", "MESSAGE", 0, CLI_COL_TEXT},
        };
        _cleanup_stmt_ jl_stmt *st = NULL;
        int r =
            jl_store_prepare(s,
                             job ? "SELECT time_us, node, job_id, step_id, kind, value, message FROM events "
                                   "WHERE job_id = $1 ORDER BY time_us, id"
                                 : "SELECT time_us, node, job_id, step_id, kind, value, message FROM events "
                                   "ORDER BY time_us, id",
                             &st);
        if (r == 0 && job)
                r = jl_stmt_bind_int64(st, 1, (int64_t)job_id);
        if (r == 0)
                r = cli_print_table(st, cols, ARRAY_SIZE(cols), out.json, out.csv, "(no events)");
        if (r < 0) {
                log_error(r, "events: %s", jl_store_error(s));
                return 1;
        }
        return 0;
}
