/* acct.c - `joule acct [--user U] [--job ID] [--from T] [--to T] [--json|--csv]`: energy, time and average
 * power per job step from the store's steps table (one row per step and node, written by joule-dbd or by
 * jouled directly), summed over the step's nodes. Also the helpers the store-reading verbs share (opening
 * the store, times on the command line). */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "json.h"
#include "log.h"
#include "macro.h"
#include "parse.h"
#include "store.h"
#include "timeutil.h"

int cli_open_store(cli_context *ctx, const char *url, jl_store **ret)
{
        char err[1024] = "", red[512];
        if (!url)
                url = ctx->config.database.url;
        jl_store_url_redact(url, red, sizeof(red));
        jl_store *s = NULL;
        int r = jl_store_open(url, 0, &s, err, sizeof(err));
        if (r < 0) {
                if (r == -ENOENT)
                        return log_error(r, "%s (create it with `joule db init`)", err[0] ? err : red);
                return log_error(r, "%s", err[0] ? err : red);
        }
        int version = 0;
        r = jl_store_schema_version(s, &version);
        if (r < 0 || version == 0) {
                if (r < 0)
                        log_error(r, "%s: %s", red, jl_store_error(s));
                else
                        log_error(ENOENT, "%s holds no joule schema (run `joule db init`)", red);
                jl_store_close(s);
                return r < 0 ? r : -ENOENT;
        }
        *ret = s;
        return 0;
}

/* Does day/month/year name a real date (parse_iso8601 lets timegm() move 2026-02-31 to March)? */
static bool date_exists(const char *s, uint64_t ns)
{
        int y, m, d;
        if (sscanf(s, "%4d-%2d-%2d", &y, &m, &d) != 3)
                return false;
        time_t t = (time_t)(ns / NSEC_PER_SEC);
        struct tm tm;
        return gmtime_r(&t, &tm) && tm.tm_year + 1900 == y && tm.tm_mon + 1 == m && tm.tm_mday == d;
}

int cli_parse_time(const char *s, uint64_t now_us, uint64_t *ret_us)
{
        if (strcmp(s, "now") == 0) {
                *ret_us = now_us;
                return 0;
        }
        if (s[0] == '-') { /* relative: -90s, -2h, -1d */
                uint64_t ns;
                size_t n = strlen(s);
                if (n > 2 && s[n - 1] == 'd') {
                        char buf[64];
                        double days;
                        if (n - 2 >= sizeof(buf))
                                return -EINVAL;
                        memcpy(buf, s + 1, n - 2);
                        buf[n - 2] = '\0';
                        if (parse_double(buf, &days) < 0 || days < 0 || days > 100000)
                                return -EINVAL;
                        ns = (uint64_t)(days * 86400e9);
                } else if (parse_duration_ns(s + 1, NSEC_PER_SEC, &ns) < 0) {
                        return -EINVAL;
                }
                if (ns / 1000 > now_us)
                        return -ERANGE;
                *ret_us = now_us - ns / 1000;
                return 0;
        }
        uint64_t ns;
        if (parse_iso8601(s, &ns) < 0 || !date_exists(s, ns))
                return -EINVAL;
        *ret_us = ns / 1000;
        return 0;
}

int cli_parse_range(const char *from, const char *to, uint64_t now_us, uint64_t *ret_from_us,
                    uint64_t *ret_to_us)
{
        uint64_t f = 0, t = now_us;
        if (from && cli_parse_time(from, now_us, &f) < 0) {
                log_error(EINVAL,
                          "--from '%s' is not a time (YYYY-MM-DD[THH:MM:SS[.fff]][Z] in UTC, now, "
                          "or -DURATION such as -2h, -1d)",
                          from);
                return -EINVAL;
        }
        if (to && cli_parse_time(to, now_us, &t) < 0) {
                log_error(EINVAL,
                          "--to '%s' is not a time (YYYY-MM-DD[THH:MM:SS[.fff]][Z] in UTC, now, "
                          "or -DURATION such as -2h, -1d)",
                          to);
                return -EINVAL;
        }
        if (f >= t) {
                char a[40], b[40];
                log_error(EINVAL, "the time range is empty or inverted: --from %s is not before --to %s",
                          format_iso8601(f * 1000, a, sizeof(a)), format_iso8601(t * 1000, b, sizeof(b)));
                return -EINVAL;
        }
        *ret_from_us = f;
        *ret_to_us = t;
        return 0;
}

uint64_t cli_now_us(void)
{
        return now_ns(CLOCK_REALTIME) / 1000;
}

static int usage(FILE *f)
{
        fputs(
            "Usage: joule acct [--user U] [--job ID] [--from T] [--to T] [--json | --csv] [--url URL]\n\n"
            "Energy, time and average power of every job step that ran in the time range, over all of\n"
            "its nodes (steps still running show no end and no energy yet).\n\n"
            "  -u, --user U    only U's job steps\n"
            "  -j, --job ID    only job ID\n"
            "      --from T    steps running at or after T: YYYY-MM-DD[THH:MM:SS[.fff]][Z] (UTC), now,\n"
            "                  or -DURATION (-90min, -2h, -7d)\n"
            "      --to T      steps that began before T (default: now)\n"
            "      --json      one JSON array of {job_id, step_id, jobid, user, nodes, start, end, time_s,\n"
            "                  energy_j, avg_power_w, complete}; jobid as sacct's: 77.0, 77.batch\n"
            "      --csv       the same as CSV with a header line\n"
            "      --url URL   the database (default: database.url)\n"
            "  -l, --long      the runtime's application signature per step and node: {job_id, step_id,\n"
            "                  node, app_name, policy, policy_th, time_s, energy_j, avg_power_w,\n"
            "                  avg_cpufreq_khz, def_cpufreq_khz, cpi, gbs, tag} (null where unknown)\n"
            "  -r, --loops     the runtime's loop signatures: {job_id, step_id, node, loop, iterations,\n"
            "                  time_per_iteration_s, avg_power_w, avg_cpufreq_khz, cpi, gbs}\n",
            f);
        return f == stdout ? 0 : 2;
}

/* acct -l (applications) and acct -r (loops): what the runtime recorded, per step and node. */
static int acct_runtime(cli_context *ctx, bool loops, const char *job, bool json, bool csv, const char *url)
{
        uint64_t job_id = 0;
        if (job && (parse_u64(job, &job_id) < 0 || job_id > INT64_MAX)) {
                log_error(EINVAL, "acct: the job id '%s' is not a non-negative integer", job);
                return 2;
        }
        _cleanup_store_ jl_store *s = NULL;
        if (cli_open_store(ctx, url, &s) < 0)
                return 1;
        static const cli_col app_cols[] = {
            {"job_id", "JOB", 16, CLI_COL_INT},
            {"step_id", "STEP", 5, CLI_COL_INT},
            {"node", "NODE", 12, CLI_COL_TEXT},
            {"app_name", "APP", 14, CLI_COL_TEXT},
            {"policy", "POLICY", 11, CLI_COL_TEXT},
            {"policy_th", "TH", 5, CLI_COL_DOUBLE},
            {"time_s", "TIME(s)", 9, CLI_COL_DOUBLE},
            {"energy_j", "ENERGY(J)", 12, CLI_COL_UJ_AS_J},
            {"avg_power_w", "POWER(W)", 9, CLI_COL_DOUBLE},
            {"avg_cpufreq_khz", "AVG(kHz)", 9, CLI_COL_INT},
            {"def_cpufreq_khz", "DEF(kHz)", 9, CLI_COL_INT},
            {"cpi", "CPI", 7, CLI_COL_DOUBLE},
            {"gbs", "GB/s", 7, CLI_COL_DOUBLE},
            {"tag", "TAG", 0, CLI_COL_TEXT},
        };
        static const cli_col loop_cols[] = {
            {"job_id", "JOB", 16, CLI_COL_INT},
            {"step_id", "STEP", 5, CLI_COL_INT},
            {"node", "NODE", 12, CLI_COL_TEXT},
            {"loop", "LOOP", 20, CLI_COL_TEXT},
            {"iterations", "ITERS", 9, CLI_COL_INT},
            {"time_per_iteration_s", "TIME/IT(s)", 11, CLI_COL_DOUBLE},
            {"avg_power_w", "POWER(W)", 9, CLI_COL_DOUBLE},
            {"avg_cpufreq_khz", "AVG(kHz)", 9, CLI_COL_INT},
            {"cpi", "CPI", 7, CLI_COL_DOUBLE},
            {"gbs", "GB/s", 0, CLI_COL_DOUBLE},
        };
        char sql[512];
        if (loops)
                snprintf(
                    sql, sizeof(sql),
                    "SELECT job_id, step_id, node, loop_key, iterations, time_per_iteration_s, power_w, "
                    "avg_freq_khz, cpi, gbs FROM loops%s ORDER BY job_id, step_id, node, time_us, id",
                    job ? " WHERE job_id = $1" : "");
        else
                snprintf(
                    sql, sizeof(sql),
                    "SELECT job_id, step_id, node, app_name, policy, policy_th, exec_time_s, energy_uj, "
                    "power_w, avg_freq_khz, def_freq_khz, cpi, gbs, tag FROM applications%s "
                    "ORDER BY job_id, step_id, node",
                    job ? " WHERE job_id = $1" : "");
        _cleanup_stmt_ jl_stmt *st = NULL;
        int r = jl_store_prepare(s, sql, &st);
        if (r == 0 && job)
                r = jl_stmt_bind_int64(st, 1, (int64_t)job_id);
        if (r == 0)
                r = loops ? cli_print_table(st, loop_cols, ARRAY_SIZE(loop_cols), json, csv,
                                            "(no loops recorded)")
                          : cli_print_table(st, app_cols, ARRAY_SIZE(app_cols), json, csv,
                                            "(no application signatures recorded)");
        if (r < 0) {
                log_error(r, "acct: %s", jl_store_error(s));
                return 1;
        }
        return 0;
}

typedef struct {
        int64_t job_id, step_id;
        char *user;
        char *nodes;              /* comma-separated */
        int64_t start_us, end_us; /* end_us -1: running on some node */
        int64_t energy_uj;
        bool complete;
} acct_row;

/* The job step's id as sacct shows it: "77" (the job as a whole, step -1), "77.0", and Slurm's special
 * steps by name ("77.batch", "77.extern", "77.interactive"; their ids are slurm.h's SLURM_BATCH_SCRIPT,
 * SLURM_EXTERN_CONT, SLURM_INTERACTIVE_STEP, as the Slurm plugin declares them). */
static const char *step_jobid(int64_t job, int64_t step, char *buf, size_t len)
{
        static const struct {
                int64_t id;
                const char *name;
        } special[] = {{0xfffffffb, "batch"}, {0xfffffffc, "extern"}, {0xfffffffa, "interactive"}};
        if (step < 0) {
                snprintf(buf, len, "%" PRId64, job);
                return buf;
        }
        for (size_t i = 0; i < ARRAY_SIZE(special); i++)
                if (step == special[i].id) {
                        snprintf(buf, len, "%" PRId64 ".%s", job, special[i].name);
                        return buf;
                }
        snprintf(buf, len, "%" PRId64 ".%" PRId64, job, step);
        return buf;
}

static void rows_free(acct_row *rows, size_t n)
{
        for (size_t i = 0; i < n; i++) {
                free(rows[i].user);
                free(rows[i].nodes);
        }
        free(rows);
}

static int append_node(acct_row *r, const char *node)
{
        size_t old = r->nodes ? strlen(r->nodes) : 0, add = strlen(node);
        char *n = realloc(r->nodes, old + add + 2);
        if (!n)
                return -ENOMEM;
        if (old)
                n[old++] = ',';
        memcpy(n + old, node, add + 1);
        r->nodes = n;
        return 0;
}

static void csv_text(FILE *f, const char *s)
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

int verb_acct(cli_context *ctx, int argc, char **argv)
{
        static const struct option opts[] = {
            {"user", required_argument, NULL, 'u'},
            {"job", required_argument, NULL, 'j'},
            {"from", required_argument, NULL, 'F'},
            {"to", required_argument, NULL, 'T'},
            {"json", no_argument, NULL, 'J'},
            {"csv", no_argument, NULL, 'C'},
            {"url", required_argument, NULL, 'U'},
            {"help", no_argument, NULL, 'h'},
            {"long", no_argument, NULL, 'l'},
            {"loops", no_argument, NULL, 'r'},
            {0},
        };
        const char *user = NULL, *job = NULL, *from = NULL, *to = NULL;
        bool app_long = false, loops = false;
        cli_output out = {0};
        int c, ret = 2;
        while ((c = cli_getopt(argc, argv, "u:j:hlr", opts, "acct", usage, &out, &ret)) >= 0) {
                switch (c) {
                case 'l':
                        app_long = true;
                        break;
                case 'r':
                        loops = true;
                        break;
                case 'u':
                        user = optarg;
                        break;
                case 'j':
                        job = optarg;
                        break;
                case 'F':
                        from = optarg;
                        break;
                case 'T':
                        to = optarg;
                        break;
                }
        }
        if (c < -1)
                return ret;
        if (app_long || loops) {
                if (app_long && loops) {
                        log_error(EINVAL, "acct: -l and -r exclude each other");
                        return 2;
                }
                if (user || from || to) {
                        log_error(EINVAL, "acct: -l and -r take --job only (not --user, --from, --to)");
                        return 2;
                }
                return acct_runtime(ctx, loops, job, out.json, out.csv, out.url);
        }
        uint64_t job_id = 0, now_us = cli_now_us(), from_us, to_us;
        if (job && (parse_u64(job, &job_id) < 0 || job_id > INT64_MAX)) {
                log_error(EINVAL, "acct: the job id '%s' is not a non-negative integer", job);
                return 2;
        }
        if (user && !*user) {
                log_error(EINVAL, "acct: the user name is empty");
                return 2;
        }
        if (cli_parse_range(from, to, now_us, &from_us, &to_us) < 0)
                return 2;

        _cleanup_store_ jl_store *s = NULL;
        if (cli_open_store(ctx, out.url, &s) < 0)
                return 1;

        char sql[1024];
        int64_t longest_us = 0;
        int r = jl_store_acct_longest_us(s, &longest_us);
        if (r >= 0)
                r = jl_store_acct_sql(user != NULL, job != NULL, sql, sizeof(sql));
        int p_user = 4, p_job = user ? 5 : 4;

        _cleanup_stmt_ jl_stmt *st = NULL;
        if (r >= 0)
                r = jl_store_prepare(s, sql, &st);
        if (r == 0)
                r = jl_stmt_bind_int64(st, 1, (int64_t)to_us);
        if (r == 0)
                r = jl_stmt_bind_int64(st, 2, (int64_t)from_us);
        if (r == 0)
                r = jl_stmt_bind_int64(st, 3, (int64_t)from_us - longest_us);
        if (r == 0 && user)
                r = jl_stmt_bind_text(st, p_user, user);
        if (r == 0 && job)
                r = jl_stmt_bind_int64(st, p_job, (int64_t)job_id);
        if (r < 0) {
                log_error(r, "acct: %s", jl_store_error(s));
                return 1;
        }
        acct_row *rows = NULL;
        size_t nrows = 0, cap = 0;
        while ((r = jl_stmt_step(st)) == JL_STORE_ROW) {
                int64_t jid = jl_stmt_column_int64(st, 0), sid = jl_stmt_column_int64(st, 1);
                acct_row *row = nrows ? &rows[nrows - 1] : NULL;
                if (!row || row->job_id != jid || row->step_id != sid) {
                        if (nrows == cap) {
                                size_t nc = cap ? cap * 2 : 64;
                                acct_row *g = realloc(rows, nc * sizeof(*rows));
                                if (!g) {
                                        r = -ENOMEM;
                                        break;
                                }
                                rows = g;
                                cap = nc;
                        }
                        row = &rows[nrows++];
                        const char *u = jl_stmt_column_text(st, 2);
                        *row = (acct_row){.job_id = jid,
                                          .step_id = sid,
                                          .user = strdup(u ? u : ""),
                                          .start_us = INT64_MAX,
                                          .end_us = 0,
                                          .complete = true};
                        if (!row->user) {
                                r = -ENOMEM;
                                break;
                        }
                }
                const char *node = jl_stmt_column_text(st, 3);
                if (append_node(row, node ? node : "?") < 0) {
                        r = -ENOMEM;
                        break;
                }
                int64_t start = jl_stmt_column_int64(st, 4);
                row->start_us = MIN(row->start_us, start);
                if (jl_stmt_column_is_null(st, 5) || row->end_us < 0)
                        row->end_us = -1;
                else
                        row->end_us = MAX(row->end_us, jl_stmt_column_int64(st, 5));
                row->energy_uj += jl_stmt_column_int64(st, 6);
                row->complete = row->complete && jl_stmt_column_int64(st, 7) == 1;
        }
        if (r < 0) {
                log_error(r, "acct: %s", r == -ENOMEM ? "out of memory" : jl_store_error(s));
                rows_free(rows, nrows);
                return 1;
        }

        if (user && nrows == 0 && !getpwnam(user)) {
                /* not in this machine's passwd database: has the store ever seen the name? */
                _cleanup_stmt_ jl_stmt *q = NULL;
                bool seen = false;
                if (jl_store_prepare(s, "SELECT 1 FROM steps WHERE user_name = $1 LIMIT 1", &q) == 0 &&
                    jl_stmt_bind_text(q, 1, user) == 0)
                        seen = jl_stmt_step(q) == JL_STORE_ROW;
                if (!seen) {
                        log_error(ENOENT,
                                  "acct: unknown user '%s' (not a user of this machine, and no job step "
                                  "of that user was ever recorded)",
                                  user);
                        rows_free(rows, nrows);
                        return 1;
                }
        }

        json_writer w;
        if (out.json) {
                json_init(&w, stdout);
                json_array_begin(&w);
        } else if (out.csv) {
                printf("job_id,step_id,user,nodes,start,end,time_s,energy_j,avg_power_w,complete\n");
        } else {
                printf("%-16s %-12s %-24s %-24s %10s %14s %10s %s\n", "JOBID", "USER", "START", "END",
                       "TIME(s)", "ENERGY(J)", "POWER(W)", "NODES");
        }
        for (size_t i = 0; i < nrows; i++) {
                acct_row *a = &rows[i];
                bool running = a->end_us < 0;
                int64_t end = running ? (int64_t)now_us : a->end_us;
                double time_s = (double)(end - a->start_us) / 1e6;
                double energy_j = (double)a->energy_uj / 1e6;
                double power_w = !running && time_s > 0 ? energy_j / time_s : NAN;
                char start_s[40], end_s[40], jobid[48];
                format_iso8601((uint64_t)a->start_us * 1000, start_s, sizeof(start_s));
                if (running)
                        snprintf(end_s, sizeof(end_s), "running");
                else
                        format_iso8601((uint64_t)a->end_us * 1000, end_s, sizeof(end_s));
                if (out.json) {
                        json_object_begin(&w);
                        json_key(&w, "job_id");
                        json_int(&w, a->job_id);
                        json_key(&w, "step_id");
                        json_int(&w, a->step_id);
                        json_key(&w, "jobid"); /* as sacct's JobID: "77.0", "77.batch" */
                        json_string(&w, step_jobid(a->job_id, a->step_id, jobid, sizeof(jobid)));
                        json_key(&w, "user");
                        json_string(&w, a->user);
                        json_key(&w, "nodes");
                        json_array_begin(&w);
                        for (char *save = NULL, *tok = strtok_r(a->nodes, ",", &save); tok;
                             tok = strtok_r(NULL, ",", &save))
                                json_string(&w, tok);
                        json_array_end(&w);
                        json_key(&w, "start");
                        json_string(&w, start_s);
                        json_key(&w, "end");
                        if (running)
                                json_null(&w);
                        else
                                json_string(&w, end_s);
                        json_key(&w, "time_s");
                        json_double(&w, time_s);
                        json_key(&w, "energy_j");
                        json_double(&w, running ? NAN : energy_j);
                        json_key(&w, "avg_power_w");
                        json_double(&w, power_w);
                        json_key(&w, "complete");
                        json_bool(&w, !running && a->complete);
                        json_object_end(&w);
                } else if (out.csv) {
                        printf("%" PRId64 ",%" PRId64 ",", a->job_id, a->step_id);
                        csv_text(stdout, a->user);
                        putchar(',');
                        csv_text(stdout, a->nodes);
                        printf(",%s,%s,%.3f,", start_s, running ? "" : end_s, time_s);
                        if (running)
                                printf(",,0\n");
                        else
                                printf("%.6f,%.3f,%d\n", energy_j, power_w, a->complete ? 1 : 0);
                } else {
                        char e[32] = "-", p[32] = "-";
                        if (!running) {
                                snprintf(e, sizeof(e), "%.3f%s", energy_j, a->complete ? "" : "*");
                                snprintf(p, sizeof(p), "%.2f", power_w);
                        }
                        printf("%-16s %-12s %-24s %-24s %10.1f %14s %10s %s\n",
                               step_jobid(a->job_id, a->step_id, jobid, sizeof(jobid)), a->user, start_s,
                               end_s, time_s, e, p, a->nodes);
                }
        }
        if (out.json) {
                json_array_end(&w);
                putchar('\n');
        } else if (!out.csv) {
                bool any_incomplete = false;
                for (size_t i = 0; i < nrows; i++)
                        any_incomplete |= rows[i].end_us >= 0 && !rows[i].complete;
                if (nrows == 0)
                        printf("(no job steps in this range)\n");
                else if (any_incomplete)
                        printf("* incomplete: a node lost track of the step (jouled restarted during it)\n");
        }
        rows_free(rows, nrows);
        return 0;
}
