/* machines.c - `joule machines add | list | show | revalidate | clear-error`: the measurement machines of
 * the cluster (the `machines` table; `id` and `description` unique), flagging one for the control workload
 * and clearing its control-workload error, and the helpers the queue's verbs share (ids on the command line,
 * "does this machine exist", ISO 8601 or null in JSON). */
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

#define DESCRIPTION_MAX 256

int cli_parse_id(const char *what, const char *s, int64_t *ret)
{
        int64_t v;
        if (!s || parse_i64(s, &v) < 0 || v < 1)
                return log_error(EINVAL, "%s '%s' is not a positive integer", what, s ? s : "");
        *ret = v;
        return 0;
}

bool cli_text_ok(const char *s, size_t max)
{
        if (!s || !*s || strlen(s) > max)
                return false;
        for (; *s; s++)
                if ((unsigned char)*s < ' ' || *s == 0x7f)
                        return false;
        return true;
}

int cli_machine_exists(jl_store *s, int64_t id)
{
        _cleanup_stmt_ jl_stmt *st = NULL;
        int r = jl_store_prepare(s, "SELECT 1 FROM machines WHERE id = $1", &st);
        if (r >= 0 && (r = jl_stmt_bind_int64(st, 1, id)) >= 0)
                r = jl_stmt_step(st);
        if (r < 0)
                return log_error(r, "cannot read the machines: %s", jl_store_error(s));
        return r == JL_STORE_ROW;
}

void cli_json_time(json_writer *w, jl_stmt *st, int col)
{
        char buf[64];
        if (jl_stmt_column_is_null(st, col))
                json_null(w);
        else
                json_string(w, format_iso8601((uint64_t)jl_stmt_column_int64(st, col) * NSEC_PER_USEC, buf,
                                              sizeof(buf)));
}

static int usage(FILE *f)
{
        fputs("Usage: joule machines add --id N --description TEXT [--url URL]\n"
              "       joule machines list [--json] [--url URL]\n"
              "       joule machines show --id N [--json] [--url URL]\n"
              "       joule machines revalidate --id N [--url URL]\n"
              "       joule machines clear-error --id N [--url URL]\n\n"
              "The measurement machines that take benchmark jobs (machine.id in each runner's "
              "configuration).\n"
              "Both the id and the description must be unique. revalidate: the runner runs the control\n"
              "workload before its next job; clear-error: the operator clears a control-workload error and\n"
              "the machine takes jobs again (docs/cluster.md).\n\n"
              "  -i, --id N             the machine's id (a positive integer)\n"
              "  -d, --description TEXT what the machine is (printable, at most 256 bytes)\n"
              "  -j, --json             list: one JSON array of {id, description, status, temperature_c,\n"
              "                         jobs_processed, jobs_waiting, needs_validation, updated,\n"
              "                         calibration}; show: that object of one machine, with the\n"
              "                         calibration's report, created and the runner's config\n"
              "  -u, --url URL          the database (default: database.url)\n",
              f);
        return f == stdout ? 0 : 2;
}

static int do_add(jl_store *s, int64_t id, const char *description)
{
        int64_t now = (int64_t)cli_now_us();
        _cleanup_stmt_ jl_stmt *ins = NULL, *who = NULL, *log = NULL;
        int r = jl_store_prepare(s,
                                 "INSERT INTO machines (id, description, jobs_processed, needs_validation, "
                                 "created_us, updated_us) VALUES ($1, $2, 0, 0, $3, $3)",
                                 &ins);
        if (r >= 0 && (r = jl_stmt_bind_int64(ins, 1, id)) >= 0 &&
            (r = jl_stmt_bind_text(ins, 2, description)) >= 0 && (r = jl_stmt_bind_int64(ins, 3, now)) >= 0)
                r = jl_stmt_step(ins);
        if (r == -EEXIST) {
                /* which of the two is taken? */
                r = jl_store_prepare(
                    s,
                    "SELECT id, description FROM machines WHERE id = $1 OR description = $2 "
                    "ORDER BY id = $1 DESC",
                    &who);
                if (r >= 0 && (r = jl_stmt_bind_int64(who, 1, id)) >= 0 &&
                    (r = jl_stmt_bind_text(who, 2, description)) >= 0)
                        r = jl_stmt_step(who);
                if (r == JL_STORE_ROW && jl_stmt_column_int64(who, 0) == id)
                        return log_error(EEXIST, "machine %" PRId64 " already exists ('%s')", id,
                                         jl_stmt_column_text(who, 1));
                if (r == JL_STORE_ROW)
                        return log_error(EEXIST, "the description '%s' is already used by machine %" PRId64,
                                         description, jl_stmt_column_int64(who, 0));
                return log_error(EEXIST, "machine %" PRId64 " or its description already exists", id);
        }
        if (r < 0)
                return log_error(r, "cannot add machine %" PRId64 ": %s", id, jl_store_error(s));
        /* the changelog keeps who the cluster had when */
        if (jl_store_prepare(s, "INSERT INTO changelog (time_us, machine_id, message) VALUES ($1, $2, $3)",
                             &log) >= 0) {
                char msg[DESCRIPTION_MAX + 64];
                snprintf(msg, sizeof(msg), "machine added: %s", description);
                jl_stmt_bind_int64(log, 1, now);
                jl_stmt_bind_int64(log, 2, id);
                jl_stmt_bind_text(log, 3, msg);
                if (jl_stmt_step(log) < 0)
                        log_warning(0, "machine %" PRId64 " added, but not to the changelog: %s", id,
                                    jl_store_error(s));
        }
        printf("machine %" PRId64 " added: %s\n", id, description);
        return 0;
}

/* revalidate / clear-error: one conditional UPDATE and a changelog line */
static int do_flag(jl_store *s, int64_t id, bool clear)
{
        int64_t now = (int64_t)cli_now_us();
        _cleanup_stmt_ jl_stmt *up = NULL, *log = NULL;
        int r = jl_store_prepare(
            s,
            clear ? "UPDATE machines SET status = 'measurement_control_cleared', updated_us = $2 "
                    "WHERE id = $1 AND status = 'measurement_control_error'"
                  : "UPDATE machines SET needs_validation = 1, updated_us = $2 WHERE id = $1",
            &up);
        if (r >= 0 && (r = jl_stmt_bind_int64(up, 1, id)) >= 0 && (r = jl_stmt_bind_int64(up, 2, now)) >= 0)
                r = jl_stmt_step(up);
        if (r < 0)
                return log_error(r, "cannot update machine %" PRId64 ": %s", id, jl_store_error(s));
        if (jl_stmt_changes(up) == 0) {
                r = cli_machine_exists(s, id);
                if (r < 0)
                        return r;
                if (r == 0)
                        return log_error(
                            ENOENT, "machine %" PRId64 " does not exist (see `joule machines list`)", id);
                printf("machine %" PRId64 " has no control-workload error\n", id);
                return 0;
        }
        if (jl_store_prepare(s, "INSERT INTO changelog (time_us, machine_id, message) VALUES ($1, $2, $3)",
                             &log) >= 0) {
                jl_stmt_bind_int64(log, 1, now);
                jl_stmt_bind_int64(log, 2, id);
                jl_stmt_bind_text(log, 3,
                                  clear ? "control-workload error cleared by an operator"
                                        : "flagged for revalidation by an operator");
                if (jl_stmt_step(log) < 0)
                        log_warning(0, "machine %" PRId64 ": not written to the changelog: %s", id,
                                    jl_store_error(s));
        }
        printf(clear ? "machine %" PRId64 ": control-workload error cleared; it takes jobs again\n"
                     : "machine %" PRId64
                       ": flagged; its runner runs the control workload before the next job\n",
               id);
        return 0;
}

static int do_list(jl_store *s, bool json, int64_t only)
{
        _cleanup_stmt_ jl_stmt *st = NULL;
        int r = jl_store_prepare(
            s,
            "SELECT m.id, m.description, m.status, m.current_temperature_c, m.jobs_processed, "
            "m.needs_validation, m.updated_us, (SELECT COUNT(*) FROM bench_jobs j WHERE "
            "j.machine_id = m.id AND j.state = 'WAITING'), m.calibrated_us, "
            "m.calibrated_base_temperature_c, "
            "m.calibrated_sleep_time_after_job_s, m.calibration_json, m.config_json, m.created_us "
            "FROM machines m WHERE $1 = 0 OR m.id = $1 ORDER BY m.id",
            &st);
        if (r >= 0)
                r = jl_stmt_bind_int64(st, 1, only);
        if (r < 0)
                return log_error(r, "cannot read the machines: %s", jl_store_error(s));
        json_writer w;
        int found = 0;
        if (json) {
                json_init(&w, stdout);
                if (!only)
                        json_array_begin(&w);
        } else if (!only)
                printf("%6s  %-32s %-14s %8s %8s %8s  %s\n", "ID", "DESCRIPTION", "STATUS", "TEMP_C", "JOBS",
                       "WAITING", "UPDATED");
        while ((r = jl_stmt_step(st)) == JL_STORE_ROW) {
                double temp = jl_stmt_column_double(st, 3);
                if (json) {
                        json_object_begin(&w);
                        json_key(&w, "id");
                        json_int(&w, jl_stmt_column_int64(st, 0));
                        json_key(&w, "description");
                        json_string(&w, jl_stmt_column_text(st, 1));
                        json_key(&w, "status");
                        if (jl_stmt_column_is_null(st, 2))
                                json_null(&w);
                        else
                                json_string(&w, jl_stmt_column_text(st, 2));
                        json_key(&w, "temperature_c");
                        json_double(&w, temp);
                        json_key(&w, "jobs_processed");
                        json_int(&w, jl_stmt_column_int64(st, 4));
                        json_key(&w, "jobs_waiting");
                        json_int(&w, jl_stmt_column_int64(st, 7));
                        json_key(&w, "needs_validation");
                        json_bool(&w, jl_stmt_column_int64(st, 5) != 0);
                        json_key(&w, "updated");
                        cli_json_time(&w, st, 6);
                        json_key(&w, "calibration");
                        if (jl_stmt_column_is_null(st, 8))
                                json_null(&w);
                        else {
                                json_object_begin(&w);
                                json_key(&w, "time");
                                cli_json_time(&w, st, 8);
                                json_key(&w, "base_temperature_value");
                                json_double(&w, jl_stmt_column_double(st, 9));
                                json_key(&w, "sleep_time_after_job");
                                json_double(&w, jl_stmt_column_double(st, 10));
                                if (only) { /* show: the whole report of `joule calibrate --json` */
                                        json_key(&w, "report");
                                        const char *rep = jl_stmt_column_text(st, 11);
                                        if (rep) {
                                                fputs(rep, stdout); /* JSON already */
                                                w.after_key = false;
                                        } else
                                                json_null(&w);
                                }
                                json_object_end(&w);
                        }
                        if (only) {
                                json_key(&w, "created");
                                cli_json_time(&w, st, 13);
                                json_key(&w, "config");
                                const char *cfg = jl_stmt_column_text(st, 12);
                                if (cfg) {
                                        fputs(cfg, stdout); /* JSON already */
                                        w.after_key = false;
                                } else
                                        json_null(&w);
                        }
                        json_object_end(&w);
                } else if (only) {
                        char ubuf[64] = "-";
                        const char *status = jl_stmt_column_text(st, 2);
                        printf("machine:     %" PRId64 "\n", jl_stmt_column_int64(st, 0));
                        printf("description: %s\n", jl_stmt_column_text(st, 1));
                        printf("status:      %s%s\n", status ? status : "-",
                               jl_stmt_column_int64(st, 5) ? " (needs validation)" : "");
                        if (!isnan(temp))
                                printf("temperature: %.1f °C\n", temp);
                        printf("jobs:        %" PRId64 " processed, %" PRId64 " waiting\n",
                               jl_stmt_column_int64(st, 4), jl_stmt_column_int64(st, 7));
                        if (!jl_stmt_column_is_null(st, 6))
                                format_iso8601((uint64_t)jl_stmt_column_int64(st, 6) * NSEC_PER_USEC, ubuf,
                                               sizeof(ubuf));
                        printf("updated:     %s\n", ubuf);
                        if (jl_stmt_column_is_null(st, 8))
                                printf("calibrated:  never (joule calibrate --write FILE)\n");
                        else {
                                format_iso8601((uint64_t)jl_stmt_column_int64(st, 8) * NSEC_PER_USEC, ubuf,
                                               sizeof(ubuf));
                                printf("calibrated:  %s: base_temperature_value %.0f, sleep_time_after_job "
                                       "%.0f\n",
                                       ubuf, jl_stmt_column_double(st, 9), jl_stmt_column_double(st, 10));
                        }
                } else {
                        char tbuf[32] = "-", ubuf[64] = "-";
                        if (!isnan(temp))
                                snprintf(tbuf, sizeof(tbuf), "%.1f", temp);
                        if (!jl_stmt_column_is_null(st, 6))
                                format_iso8601((uint64_t)jl_stmt_column_int64(st, 6) * NSEC_PER_USEC, ubuf,
                                               sizeof(ubuf));
                        const char *status = jl_stmt_column_text(st, 2);
                        printf("%6" PRId64 "  %-32s %-14s %8s %8" PRId64 " %8" PRId64 "  %s%s\n",
                               jl_stmt_column_int64(st, 0), jl_stmt_column_text(st, 1),
                               status ? status : "-", tbuf, jl_stmt_column_int64(st, 4),
                               jl_stmt_column_int64(st, 7), ubuf,
                               jl_stmt_column_int64(st, 5) ? "  (needs validation)" : "");
                        if (!jl_stmt_column_is_null(st, 8))
                                printf("%6s  calibrated: base_temperature_value %.0f, sleep_time_after_job "
                                       "%.0f\n",
                                       "", jl_stmt_column_double(st, 9), jl_stmt_column_double(st, 10));
                }
                found++;
        }
        if (json && !only)
                json_array_end(&w);
        if (json && (found || !only))
                fputc('\n', stdout);
        if (r < 0)
                return log_error(r, "cannot read the machines: %s", jl_store_error(s));
        if (only && !found)
                return log_error(ENOENT, "machine %" PRId64 " does not exist (see `joule machines list`)",
                                 only);
        return 0;
}

int verb_machines(cli_context *ctx, int argc, char **argv)
{
        static const struct option opts[] = {
            {"id", required_argument, NULL, 'i'}, {"description", required_argument, NULL, 'd'},
            {"json", no_argument, NULL, 'j'},     {"url", required_argument, NULL, 'u'},
            {"help", no_argument, NULL, 'h'},     {0},
        };
        const char *id_s = NULL, *description = NULL, *url = NULL;
        bool json = false;
        int c;
        while ((c = getopt_long(argc, argv, "i:d:ju:h", opts, NULL)) >= 0) {
                switch (c) {
                case 'i':
                        id_s = optarg;
                        break;
                case 'd':
                        description = optarg;
                        break;
                case 'j':
                        json = true;
                        break;
                case 'u':
                        url = optarg;
                        break;
                case 'h':
                        return usage(stdout);
                default:
                        return usage(stderr);
                }
        }
        if (optind != argc - 1) {
                usage(stderr);
                log_error(EINVAL,
                          optind >= argc
                              ? "machines: no command given (add, list, show, revalidate, clear-error)"
                              : "machines: too many arguments");
                return 2;
        }
        const char *cmd = argv[optind];
        bool add = strcmp(cmd, "add") == 0, reval = strcmp(cmd, "revalidate") == 0,
             clear = strcmp(cmd, "clear-error") == 0, show = strcmp(cmd, "show") == 0;
        if (!add && !reval && !clear && !show && strcmp(cmd, "list") != 0) {
                usage(stderr);
                log_error(EINVAL, "machines: unknown command '%s'", cmd);
                return 2;
        }
        int64_t id = 0;
        if (add) {
                if (!id_s || !description) {
                        log_error(EINVAL, "machines add: --id and --description are both required");
                        return 2;
                }
                if (cli_parse_id("machines add: the id", id_s, &id) < 0)
                        return 2;
                if (!cli_text_ok(description, DESCRIPTION_MAX)) {
                        log_error(EINVAL, "machines add: the description must be 1 to %d printable bytes",
                                  DESCRIPTION_MAX);
                        return 2;
                }
        } else if (reval || clear || show) {
                if (!id_s || description) {
                        log_error(EINVAL, "machines %s: --id is required (and no --description)", cmd);
                        return 2;
                }
                if (cli_parse_id("the machine id", id_s, &id) < 0)
                        return 2;
        } else if (id_s || description) {
                log_error(EINVAL, "machines list takes no --id or --description");
                return 2;
        }
        _cleanup_store_ jl_store *s = NULL;
        if (cli_open_store(ctx, url, &s) < 0)
                return 1;
        if (reval || clear)
                return do_flag(s, id, clear) < 0 ? 1 : 0;
        return (add ? do_add(s, id, description) : do_list(s, json, show ? id : 0)) < 0 ? 1 : 0;
}
