/* cli.h - the `joule` command's verbs and what they share (global options, config loading). */
#pragma once

#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "config.h"
#include "json.h"
#include "msg.h"
#include "store.h"
#include "provider.h"

typedef struct {
        const char *config_path; /* -c FILE */
        joule_config config;
} cli_context;

int verb_measure(cli_context *ctx, int argc, char **argv);
int verb_info(cli_context *ctx, int argc, char **argv);
int verb_db(cli_context *ctx, int argc, char **argv);
int verb_job(cli_context *ctx, int argc, char **argv);
int verb_control(cli_context *ctx, int argc, char **argv);
int verb_acct(cli_context *ctx, int argc, char **argv);
int verb_report(cli_context *ctx, int argc, char **argv);
int verb_status(cli_context *ctx, int argc, char **argv);
int verb_machines(cli_context *ctx, int argc, char **argv);
int verb_submit(cli_context *ctx, int argc, char **argv);
int verb_jobs(cli_context *ctx, int argc, char **argv);
int verb_run(cli_context *ctx, int argc, char **argv);
int verb_calibrate(cli_context *ctx, int argc, char **argv);
int verb_events(cli_context *ctx, int argc, char **argv);
int verb_launch(cli_context *ctx, int argc, char **argv);
int verb_learn(cli_context *ctx, int argc, char **argv);

/* A table of query results (events.c): column i of the query is cols[i]; text (NULL as "-"), JSON (an array
 * of objects, NULL as null) or CSV (NULL empty). none: the text line when there are no rows. */
typedef enum {
        CLI_COL_INT,
        CLI_COL_DOUBLE,
        CLI_COL_UJ_AS_J, /* a µJ integer column shown in joules */
        CLI_COL_TIME_US, /* µs since the epoch, shown as ISO 8601 UTC */
        CLI_COL_TEXT,
} cli_col_type;
typedef struct {
        const char *name;    /* JSON key and CSV header */
        const char *heading; /* text header */
        int width;
        cli_col_type type;
} cli_col;
int cli_print_table(jl_stmt *st, const cli_col *cols, size_t ncols, bool json, bool csv, const char *none);

/* The option loop of the store-reading verbs (acct, events, status; events.c): getopt_long over optstring
 * and opts, taking the output options they share into o: --json ('J'), --csv ('C'), --url URL ('U').
 * Returns the verb's next own option (optarg as getopt_long leaves it); -1 at the end of the options, when
 * no operand is left and --json and --csv are not both given; or -2 when the verb is to return
 * *ret_exit: --help (usage(stdout)), a bad option or an operand (logged, usage(stderr)), --json with
 * --csv (logged, 2). */
typedef struct {
        bool json, csv;
        const char *url;
} cli_output;
int cli_getopt(int argc, char **argv, const char *optstring, const struct option *opts, const char *verb,
               int (*usage)(FILE *f), cli_output *o, int *ret_exit);

/* Put a CPU list ("0-3,8") into a request's CPU mask (CPU i: bit i % 8 of byte i / 8); -EINVAL, -ERANGE. */
int cli_cpus_to_mask(const char *s, jl_msg_request *req);

/* The store-reading verbs (acct, report, status): open url (NULL: database.url) and check that it holds
 * joule's schema; logs why not. */
int cli_open_store(cli_context *ctx, const char *url, jl_store **ret);
/* A time on the command line: ISO 8601 UTC (a date that exists), "now", or "-DURATION" before now (-90s,
 * -2h, -7d); µs since the epoch. -EINVAL on garbage. */
int cli_parse_time(const char *s, uint64_t now_us, uint64_t *ret_us);
/* --from/--to (either may be NULL: the epoch, now); logs and returns -EINVAL on garbage or from >= to. */
int cli_parse_range(const char *from, const char *to, uint64_t now_us, uint64_t *ret_from_us,
                    uint64_t *ret_to_us);
uint64_t cli_now_us(void);

/* Map the config onto provider settings. */
void cli_provider_config(const cli_context *ctx, jl_provider_config *ret);
/* Split "a,b,c" into a NULL-terminated vector (for --providers); returns NULL on ENOMEM. */
char **cli_split_list(const char *s);
void cli_strv_free(char **v);

/* The job queue's verbs (machines.c): a positive id from the command line (logs "WHAT 'S' is not …"); a
 * printable non-empty text of at most max bytes; whether machine id exists (1/0, or logs and returns a
 * negative errno); a µs timestamp column as ISO 8601 UTC or null. */
int cli_parse_id(const char *what, const char *s, int64_t *ret);
bool cli_text_ok(const char *s, size_t max);
int cli_machine_exists(jl_store *s, int64_t id);
void cli_json_time(json_writer *w, jl_stmt *st, int col);
