/* store.c - the store's front end: URL parsing and redaction, connection and statement life cycle,
 * transactions, bulk batches and the job claim, dispatched to a backend's ops (sqlite.c, postgres.c). */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store-internal.h"

int store_error(jl_store *s, int r, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(s->error, sizeof(s->error), fmt, ap);
        va_end(ap);
        /* one line: backends' messages may contain newlines and tabs; runs of white space become one space
         */
        char *o = s->error;
        for (const char *p = s->error; *p; p++) {
                bool space = *p == ' ' || *p == '\n' || *p == '\r' || *p == '\t';
                if (space && (o == s->error || o[-1] == ' '))
                        continue;
                *o++ = space ? ' ' : *p;
        }
        while (o > s->error && o[-1] == ' ')
                o--;
        *o = '\0';
        return r;
}

void store_clear_error(jl_store *s)
{
        s->error[0] = '\0';
}

int store_param_number(const char *p, size_t *ret_len)
{
        if (p[0] != '$' || p[1] < '1' || p[1] > '9')
                return -1;
        long n = 0;
        size_t i = 1;
        for (; p[i] >= '0' && p[i] <= '9'; i++) {
                n = n * 10 + (p[i] - '0');
                if (n > 32767)
                        return -1;
        }
        /* "$1abc" is not a parameter on either backend */
        if ((p[i] >= 'a' && p[i] <= 'z') || (p[i] >= 'A' && p[i] <= 'Z') || p[i] == '_')
                return -1;
        *ret_len = i;
        return (int)n;
}

bool store_identifier_ok(const char *s)
{
        if (!s || !((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || *s == '_'))
                return false;
        for (; *s; s++)
                if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
                      *s == '_'))
                        return false;
        return true;
}

static bool has_prefix(const char *s, const char *prefix)
{
        return strncmp(s, prefix, strlen(prefix)) == 0;
}

int jl_store_url_parse(const char *url, jl_store_backend *ret_backend, const char **ret_path)
{
        if (!url || !*url)
                return -EINVAL;
        if (has_prefix(url, "postgresql://") || has_prefix(url, "postgres://")) {
                *ret_backend = JL_STORE_POSTGRES;
                if (ret_path)
                        *ret_path = NULL;
                return 0;
        }
        const char *path = url;
        if (has_prefix(url, "sqlite://"))
                path = url + strlen("sqlite://");
        else if (has_prefix(url, "sqlite:"))
                path = url + strlen("sqlite:");
        else {
                /* "scheme://": a backend joule does not have (mysql://, http://, …) */
                size_t n = strspn(url, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+.-");
                if (n > 0 && has_prefix(url + n, "://"))
                        return -EPROTONOSUPPORT;
        }
        if (!*path)
                return -EINVAL;
        *ret_backend = JL_STORE_SQLITE;
        if (ret_path)
                *ret_path = path;
        return 0;
}

char *jl_store_url_redact(const char *url, char *buf, size_t size)
{
        if (size == 0)
                return buf;
        if (!url) {
                snprintf(buf, size, "(none)");
                return buf;
        }
        /* Build into a growing copy, then truncate into buf. */
        size_t len = strlen(url);
        char *out = malloc(len + 16 * 4 + 1);
        if (!out) {
                snprintf(buf, size, "(url)");
                return buf;
        }
        size_t o = 0, i = 0;
        const char *scheme_end = strstr(url, "://");
        if (scheme_end) {
                size_t auth = (size_t)(scheme_end - url) + 3;
                size_t auth_end = auth + strcspn(url + auth, "/?#");
                /* userinfo ends at the last '@' of the authority */
                size_t at = 0;
                for (size_t k = auth; k < auth_end; k++)
                        if (url[k] == '@')
                                at = k;
                memcpy(out, url, auth);
                o = i = auth;
                if (at) {
                        const char *colon = memchr(url + auth, ':', at - auth);
                        if (colon) {
                                size_t c = (size_t)(colon - url);
                                memcpy(out + o, url + auth, c + 1 - auth);
                                o += c + 1 - auth;
                                memcpy(out + o, "***", 3);
                                o += 3;
                                i = at;
                        }
                }
        }
        /* copy the rest, masking password=VALUE parameters */
        while (i < len) {
                if ((i == 0 || url[i - 1] == '?' || url[i - 1] == '&' || url[i - 1] == ' ') &&
                    has_prefix(url + i, "password=")) {
                        memcpy(out + o, "password=***", 12);
                        o += 12;
                        i += strlen("password=");
                        i += strcspn(url + i, "& ");
                        continue;
                }
                out[o++] = url[i++];
        }
        out[o] = '\0';
        snprintf(buf, size, "%s", out);
        free(out);
        return buf;
}

const char *jl_store_backend_name(jl_store_backend b)
{
        return b == JL_STORE_POSTGRES ? "postgresql" : "sqlite";
}

int jl_store_open(const char *url, unsigned flags, jl_store **ret_store, char *err, size_t errlen)
{
        jl_store_backend backend;
        const char *path = NULL;
        char redacted[256];

        jl_store_url_redact(url, redacted, sizeof(redacted));
        int r = jl_store_url_parse(url, &backend, &path);
        if (r < 0) {
                if (err && errlen)
                        snprintf(err, errlen, "%s: %s", redacted,
                                 r == -EPROTONOSUPPORT
                                     ? "unknown database URL scheme (use a path, sqlite:PATH or "
                                       "postgresql://...)"
                                     : "empty database URL");
                return r;
        }
        const jl_store_ops *ops =
            backend == JL_STORE_POSTGRES ? &jl_store_postgres_ops : &jl_store_sqlite_ops;
        jl_store *s = calloc(1, ops->store_size);
        if (!s) {
                if (err && errlen)
                        snprintf(err, errlen, "%s: out of memory", redacted);
                return -ENOMEM;
        }
        s->ops = ops;
        snprintf(s->url_redacted, sizeof(s->url_redacted), "%s", redacted);
        r = ops->open(s, url, path, flags);
        if (r < 0) {
                if (err && errlen)
                        snprintf(err, errlen, "%s: %s", redacted, s->error[0] ? s->error : strerror(-r));
                ops->close(s);
                free(s);
                return r;
        }
        *ret_store = s;
        return 0;
}

void jl_store_close(jl_store *s)
{
        if (!s)
                return;
        s->ops->close(s);
        free(s);
}

int jl_store_reconnect(jl_store *s)
{
        store_clear_error(s);
        s->in_txn = false;
        return s->ops->reconnect(s);
}

jl_store_backend jl_store_get_backend(const jl_store *s)
{
        return s->ops->backend;
}

const char *jl_store_error(const jl_store *s)
{
        return s ? s->error : "";
}

int jl_store_exec(jl_store *s, const char *sql)
{
        if (!sql)
                return store_error(s, -EINVAL, "no SQL given");
        store_clear_error(s);
        return s->ops->exec(s, sql);
}

/* ---- transactions ---- */

static int begin_with(jl_store *s, const char *sql)
{
        if (s->in_txn)
                return store_error(s, -EBUSY, "a transaction is already open on this connection");
        int r = jl_store_exec(s, sql);
        if (r < 0)
                return r;
        s->in_txn = true;
        return 0;
}

int jl_store_begin(jl_store *s)
{
        return begin_with(s, "BEGIN");
}

int jl_store_begin_immediate(jl_store *s)
{
        return begin_with(s, s->ops->dialect->begin_immediate);
}

int jl_store_commit(jl_store *s)
{
        if (!s->in_txn)
                return store_error(s, -EINVAL, "commit without an open transaction");
        if (s->ops->txn_aborted(s)) {
                /* PostgreSQL would answer COMMIT with a silent ROLLBACK: say so. */
                s->in_txn = false;
                (void)s->ops->exec(s, "ROLLBACK");
                return store_error(
                    s, -ECANCELED,
                    "commit: the transaction was aborted by an earlier error and rolled back");
        }
        int r = jl_store_exec(s, "COMMIT");
        if (r < 0) {
                /* The transaction is over either way: roll back what is left (SQLite keeps a transaction
                 * open after a failed COMMIT; PostgreSQL's aborted transactions are reported as errors by
                 * the backend). */
                char saved[sizeof(s->error)];
                memcpy(saved, s->error, sizeof(saved));
                (void)s->ops->exec(s, "ROLLBACK");
                memcpy(s->error, saved, sizeof(saved));
        }
        s->in_txn = false;
        return r;
}

int jl_store_rollback(jl_store *s)
{
        if (!s->in_txn)
                return 0;
        s->in_txn = false;
        return jl_store_exec(s, "ROLLBACK");
}

bool jl_store_in_transaction(const jl_store *s)
{
        return s->in_txn;
}

/* ---- statements ---- */

int jl_store_prepare(jl_store *s, const char *sql, jl_stmt **ret_stmt)
{
        if (!sql || !sql[strspn(sql, " \t\r\n;")])
                return store_error(s, -EINVAL, "prepare: empty statement");
        store_clear_error(s);
        jl_stmt *st = calloc(1, s->ops->stmt_size);
        if (!st)
                return store_error(s, -ENOMEM, "out of memory");
        st->store = s;
        int r = s->ops->prepare(st, sql);
        if (r < 0) {
                s->ops->finalize(st);
                free(st);
                return r;
        }
        *ret_stmt = st;
        return 0;
}

void jl_stmt_finalize(jl_stmt *st)
{
        if (!st)
                return;
        st->store->ops->finalize(st);
        free(st);
}

static int bind(jl_stmt *st, int idx, const jl_value *v)
{
        store_clear_error(st->store);
        if (idx < 1)
                return store_error(st->store, -ERANGE, "parameter $%d does not exist", idx);
        return st->store->ops->bind(st, idx, v);
}

int jl_stmt_bind_int64(jl_stmt *st, int idx, int64_t v)
{
        return bind(st, idx, &(jl_value){.type = JL_VALUE_INT64, .i = v});
}

int jl_stmt_bind_double(jl_stmt *st, int idx, double v)
{
        return bind(st, idx, &(jl_value){.type = JL_VALUE_DOUBLE, .d = v});
}

int jl_stmt_bind_text(jl_stmt *st, int idx, const char *v)
{
        return bind(st, idx, &(jl_value){.type = v ? JL_VALUE_TEXT : JL_VALUE_NULL, .s = v});
}

int jl_stmt_bind_null(jl_stmt *st, int idx)
{
        return bind(st, idx, &(jl_value){.type = JL_VALUE_NULL});
}

int jl_stmt_clear_bindings(jl_stmt *st)
{
        return st->store->ops->clear_bindings(st);
}

int jl_stmt_step(jl_stmt *st)
{
        store_clear_error(st->store);
        return st->store->ops->step(st);
}

int jl_stmt_reset(jl_stmt *st)
{
        return st->store->ops->reset(st);
}

int64_t jl_stmt_changes(const jl_stmt *st)
{
        return st->changes;
}

int jl_stmt_insert_id(jl_stmt *st, int64_t *ret_id)
{
        int r = jl_stmt_step(st);
        if (r < 0) {
                (void)jl_stmt_reset(st);
                return r;
        }
        int64_t id = 0;
        bool have = r == JL_STORE_ROW;
        if (have) {
                if (jl_stmt_column_count(st) < 1 || jl_stmt_column_is_null(st, 0)) {
                        (void)jl_stmt_reset(st);
                        return store_error(st->store, -EINVAL, "the statement returned no id");
                }
                id = jl_stmt_column_int64(st, 0);
                /* run it to completion so that changes are counted and SQLite's statement finishes */
                while ((r = jl_stmt_step(st)) == JL_STORE_ROW)
                        ;
                if (r < 0) {
                        (void)jl_stmt_reset(st);
                        return r;
                }
        }
        r = jl_stmt_reset(st);
        if (r < 0)
                return r;
        if (!have)
                return 0;
        *ret_id = id;
        return 1;
}

int jl_stmt_column_count(const jl_stmt *st)
{
        return st->store->ops->column_count(st);
}

const char *jl_stmt_column_name(const jl_stmt *st, int col)
{
        if (col < 0 || col >= jl_stmt_column_count(st))
                return NULL;
        return st->store->ops->column_name(st, col);
}

bool jl_stmt_column_is_null(const jl_stmt *st, int col)
{
        if (col < 0 || col >= jl_stmt_column_count(st))
                return true;
        return st->store->ops->column_is_null(st, col);
}

int64_t jl_stmt_column_int64(const jl_stmt *st, int col)
{
        if (jl_stmt_column_is_null(st, col))
                return 0;
        return st->store->ops->column_int64(st, col);
}

double jl_stmt_column_double(const jl_stmt *st, int col)
{
        if (jl_stmt_column_is_null(st, col))
                return NAN;
        return st->store->ops->column_double(st, col);
}

const char *jl_stmt_column_text(const jl_stmt *st, int col)
{
        if (jl_stmt_column_is_null(st, col))
                return NULL;
        return st->store->ops->column_text(st, col);
}

/* ---- bulk ---- */

int jl_store_bulk_begin(jl_store *s, const char *table, const char *const *columns, size_t ncolumns,
                        unsigned flags, jl_bulk **ret_bulk)
{
        store_clear_error(s);
        if (!store_identifier_ok(table))
                return store_error(s, -EINVAL, "bulk insert: bad table name");
        if (ncolumns == 0 || ncolumns > 1000)
                return store_error(s, -EINVAL, "bulk insert: bad number of columns");
        for (size_t i = 0; i < ncolumns; i++)
                if (!store_identifier_ok(columns[i]))
                        return store_error(s, -EINVAL, "bulk insert: bad column name");

        jl_bulk *b = calloc(1, s->ops->bulk_size);
        if (!b)
                return store_error(s, -ENOMEM, "out of memory");
        b->store = s;
        b->flags = flags;
        b->ncolumns = ncolumns;
        int r = 0;
        if (!s->in_txn) {
                /* a write transaction from the start: SQLite waits for the lock here (busy timeout) instead
                 * of failing on the first row when another writer holds it */
                r = jl_store_begin_immediate(s);
                if (r < 0) {
                        free(b);
                        return r;
                }
                b->own_txn = true;
        }
        r = s->ops->bulk_begin(b, table, columns);
        if (r < 0) {
                jl_bulk_abort(b);
                return r;
        }
        *ret_bulk = b;
        return 0;
}

static int bulk_value(jl_bulk *b, const jl_value *v)
{
        if (b->failed)
                return store_error(b->store, -EINVAL, "bulk insert: the batch failed already");
        if (b->col >= b->ncolumns) {
                b->failed = true;
                return store_error(b->store, -EINVAL, "bulk insert: more values than columns in a row");
        }
        int r = b->store->ops->bulk_value(b, v);
        if (r < 0) {
                b->failed = true;
                return r;
        }
        b->col++;
        return 0;
}

int jl_bulk_int64(jl_bulk *b, int64_t v)
{
        return bulk_value(b, &(jl_value){.type = JL_VALUE_INT64, .i = v});
}

int jl_bulk_double(jl_bulk *b, double v)
{
        return bulk_value(b, &(jl_value){.type = JL_VALUE_DOUBLE, .d = v});
}

int jl_bulk_text(jl_bulk *b, const char *v)
{
        return bulk_value(b, &(jl_value){.type = v ? JL_VALUE_TEXT : JL_VALUE_NULL, .s = v});
}

int jl_bulk_null(jl_bulk *b)
{
        return bulk_value(b, &(jl_value){.type = JL_VALUE_NULL});
}

int jl_bulk_row_end(jl_bulk *b)
{
        if (b->failed)
                return store_error(b->store, -EINVAL, "bulk insert: the batch failed already");
        if (b->col != b->ncolumns) {
                b->failed = true;
                return store_error(b->store, -EINVAL,
                                   "bulk insert: row %" PRIu64 " has %zu values, want %zu", b->rows + 1,
                                   b->col, b->ncolumns);
        }
        int r = b->store->ops->bulk_row_end(b);
        if (r < 0) {
                b->failed = true;
                return r;
        }
        b->col = 0;
        b->rows++;
        return 0;
}

int jl_bulk_finish(jl_bulk *b, uint64_t *ret_rows)
{
        jl_store *s = b->store;
        if (b->failed || b->col != 0) {
                int r = store_error(s, -EINVAL, "bulk insert: %s",
                                    b->failed ? "the batch failed already" : "the last row is unfinished");
                jl_bulk_abort(b);
                return r;
        }
        uint64_t rows = 0;
        int r = s->ops->bulk_finish(b, &rows);
        if (r < 0) {
                jl_bulk_abort(b);
                return r;
        }
        s->ops->bulk_release(b);
        if (b->own_txn) {
                r = jl_store_commit(s);
                if (r < 0) {
                        free(b);
                        return r;
                }
        }
        free(b);
        if (ret_rows)
                *ret_rows = rows;
        return 0;
}

void jl_bulk_abort(jl_bulk *b)
{
        if (!b)
                return;
        jl_store *s = b->store;
        char saved[sizeof(s->error)];
        memcpy(saved, s->error, sizeof(saved));
        s->ops->bulk_release(b);
        if (b->own_txn)
                (void)jl_store_rollback(s);
        memcpy(s->error, saved, sizeof(saved));
        free(b);
}

/* ---- the bench job queue ---- */

int jl_store_claim_job(jl_store *s, int64_t machine_id, bool random_order, int64_t now_us,
                       int64_t *ret_job_id)
{
        char sql[512];
        int r;

        if (s->in_txn)
                return store_error(s, -EBUSY, "claim: a transaction is already open on this connection");
        snprintf(
            sql, sizeof(sql),
            "SELECT id FROM bench_jobs WHERE machine_id = $1 AND state = 'WAITING' ORDER BY %s LIMIT 1%s",
            random_order ? "random()" : "created_us, id", s->ops->dialect->skip_locked);
        _cleanup_stmt_ jl_stmt *pick = NULL, *mark = NULL;
        r = jl_store_prepare(s, sql, &pick);
        if (r < 0)
                return r;
        r = jl_store_prepare(s,
                             "UPDATE bench_jobs SET state = 'RUNNING', started_us = $2 "
                             "WHERE id = $1 AND state = 'WAITING'",
                             &mark);
        if (r < 0)
                return r;

        r = jl_store_begin_immediate(s);
        if (r < 0)
                return r;
        int64_t id = 0;
        bool found = false;
        r = jl_stmt_bind_int64(pick, 1, machine_id);
        if (r < 0)
                goto fail;
        r = jl_stmt_step(pick);
        if (r < 0)
                goto fail;
        if (r == JL_STORE_ROW) {
                id = jl_stmt_column_int64(pick, 0);
                found = true;
        }
        (void)jl_stmt_reset(pick);
        if (found) {
                if ((r = jl_stmt_bind_int64(mark, 1, id)) < 0 ||
                    (r = jl_stmt_bind_int64(mark, 2, now_us)) < 0)
                        goto fail;
                r = jl_stmt_step(mark);
                if (r < 0)
                        goto fail;
                if (jl_stmt_changes(mark) != 1) {
                        r = store_error(s, -EAGAIN, "claim: job %" PRId64 " was taken concurrently", id);
                        goto fail;
                }
        }
        r = jl_store_commit(s);
        if (r < 0)
                return r;
        if (!found)
                return 0;
        *ret_job_id = id;
        return 1;
fail:;
        char saved[sizeof(s->error)];
        memcpy(saved, s->error, sizeof(saved));
        (void)jl_store_rollback(s);
        memcpy(s->error, saved, sizeof(saved));
        return r;
}

/* ---- notifications ---- */

int jl_store_notify(jl_store *s, const char *channel, const char *payload)
{
        store_clear_error(s);
        if (!channel || !store_identifier_ok(channel))
                return store_error(s, -EINVAL, "notify: '%s' is not a plain identifier",
                                   channel ? channel : "");
        if (!s->ops->notify)
                return store_error(s, -EOPNOTSUPP, "notify: %s has no notifications", s->ops->name);
        return s->ops->notify(s, channel, payload ? payload : "");
}

int jl_store_listen(jl_store *s, const char *channel)
{
        store_clear_error(s);
        if (!channel || !store_identifier_ok(channel))
                return store_error(s, -EINVAL, "listen: '%s' is not a plain identifier",
                                   channel ? channel : "");
        if (!s->ops->listen)
                return store_error(s, -EOPNOTSUPP, "listen: %s has no notifications", s->ops->name);
        return s->ops->listen(s, channel);
}

int jl_store_notify_fd(jl_store *s)
{
        store_clear_error(s);
        if (!s->ops->notify_fd)
                return store_error(s, -EOPNOTSUPP, "%s has no notifications", s->ops->name);
        return s->ops->notify_fd(s);
}

int jl_store_wait_notify(jl_store *s, int timeout_ms, char *ret_channel, size_t channel_size,
                         char *ret_payload, size_t payload_size)
{
        store_clear_error(s);
        if (timeout_ms < 0)
                return store_error(s, -EINVAL, "wait for a notification: negative timeout");
        if (!s->ops->wait_notify)
                return store_error(s, -EOPNOTSUPP, "%s has no notifications", s->ops->name);
        return s->ops->wait_notify(s, timeout_ms, ret_channel, channel_size, ret_payload, payload_size);
}

/* ---- report queries ---- */

/* The union of the spans [s, t) of a key's records: each record adds what lies beyond the latest end of
 * the records that start before it (pm, a window function: SQLite ≥ 3.25 and PostgreSQL alike). */
#define REPORT_COVER                                                                                        \
        "SUM(CASE WHEN x.pm IS NULL OR x.s >= x.pm THEN x.t - x.s WHEN x.t > x.pm THEN x.t - x.pm ELSE 0 "  \
        "END)"
/* records wholly inside [$1, $2): start_us is bounded on both sides, so the index reads only the range */
#define REPORT_RECORDS_WHERE " WHERE m.start_us >= $1 AND m.start_us <= $2 AND m.end_us <= $2"
#define REPORT_RECORDS(key, join)                                                                           \
        "SELECT x.k, SUM(x.e), MIN(x.s), MAX(x.t), " REPORT_COVER ", SUM(x.g) FROM (SELECT " key            \
        " AS k, m.energy_uj "                                                                               \
        "AS e, m.start_us AS s, m.end_us AS t, COALESCE(m.gap_us, 0) AS g, MAX(m.end_us) OVER (PARTITION "  \
        "BY " key " ORDER BY "                                                                              \
        "m.start_us, m.end_us ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS pm FROM "                \
        "periodic_metrics m" join REPORT_RECORDS_WHERE ") x GROUP BY x.k ORDER BY x.k"

const char *jl_store_report_sql(const char *by, bool aggregations)
{
        if (!by || (strcmp(by, "node") != 0 && strcmp(by, "partition") != 0 && strcmp(by, "cluster") != 0))
                return NULL;
        if (aggregations)
                /* a key's windows never overlap (one row per scope, key and window) */
                return "SELECT scope_key, SUM(energy_uj), MIN(start_us), MAX(end_us), "
                       "SUM(COALESCE(covered_us, end_us - start_us)), SUM(COALESCE(gap_us, 0)) FROM "
                       "periodic_aggregations "
                       "WHERE scope = $3 AND start_us >= $1 AND start_us < $2 AND end_us <= $2 "
                       "GROUP BY scope_key ORDER BY scope_key";
        if (strcmp(by, "node") == 0)
                return REPORT_RECORDS("m.node", "");
        if (strcmp(by, "partition") == 0)
                return REPORT_RECORDS("COALESCE(n.partition_name, '')",
                                      " LEFT JOIN nodes n ON n.name = m.node");
        return REPORT_RECORDS("CAST('cluster' AS TEXT)", "");
}

int jl_store_acct_sql(bool user, bool job, char *buf, size_t size)
{
        static const char cols[] =
            "SELECT job_id, step_id, user_name, node, start_us, end_us, energy_uj, complete "
            "FROM steps WHERE ";
        char filter[64];
        int np = 3;
        int f = 0;
        filter[0] = '\0';
        if (user)
                f += snprintf(filter + f, sizeof(filter) - (size_t)f, " AND user_name = $%d", ++np);
        if (job)
                snprintf(filter + f, sizeof(filter) - (size_t)f, " AND job_id = $%d", ++np);
        /* a finished step that had not ended before from began at most the longest step before it */
        int n = snprintf(buf, size,
                         "%sstart_us >= $3 AND start_us < $1 AND end_us >= $2%s UNION ALL "
                         "%send_us IS NULL AND start_us < $1%s ORDER BY 1, 2, 4",
                         cols, filter, cols, filter);
        return n < 0 || (size_t)n >= size ? -ENOBUFS : 0;
}

int jl_store_acct_longest_us(jl_store *s, int64_t *ret_us)
{
        jl_stmt *st = NULL;
        /* the steps_duration index (migration 5) answers it */
        int r = jl_store_prepare(s, "SELECT MAX(end_us - start_us) FROM steps", &st);
        if (r >= 0)
                r = jl_stmt_step(st);
        if (r == JL_STORE_ROW) {
                int64_t d = jl_stmt_column_is_null(st, 0) ? 0 : jl_stmt_column_int64(st, 0);
                *ret_us = d > 0 ? d : 0;
                r = 0;
        } else if (r >= 0)
                r = store_error(s, -EIO, "steps: no answer");
        jl_stmt_finalize(st);
        return r;
}
