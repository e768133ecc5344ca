/* postgres.c - the PostgreSQL backend of the store (libpq, loaded with dlopen when a postgresql:// URL is
 * opened): named server-side prepared statements with text parameters, errors mapped from SQLSTATE to
 * errno, and bulk insert by COPY FROM STDIN in text format (through a temporary table and INSERT … ON
 * CONFLICT DO NOTHING when duplicates are dropped). */
#include <errno.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <math.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dlopen-util.h"
#include "parse.h"
#include "store-internal.h"
#include "timeutil.h"

/* libpq is loaded on demand, when a postgresql:// URL is opened (dlopen-util.h): `joule measure` and the
 * SQLite store never map it (nor the TLS, Kerberos and LDAP libraries it brings). <libpq-fe.h> gives the
 * types and prototypes; every entry point used is resolved into a sym_ pointer, and the macros below make
 * the calls in this file go through those pointers. A libpq function used here must be listed. */
#define PQ_LIBRARY "libpq.so.5"

#define PQ_SYMBOLS(X)                                                                                       \
        X(PQclear)                                                                                          \
        X(PQcmdStatus)                                                                                      \
        X(PQcmdTuples)                                                                                      \
        X(PQconnectdbParams)                                                                                \
        X(PQconsumeInput)                                                                                   \
        X(PQdescribePrepared)                                                                               \
        X(PQerrorMessage)                                                                                   \
        X(PQexec)                                                                                           \
        X(PQexecParams)                                                                                     \
        X(PQexecPrepared)                                                                                   \
        X(PQfinish)                                                                                         \
        X(PQfname)                                                                                          \
        X(PQfreemem)                                                                                        \
        X(PQgetResult)                                                                                      \
        X(PQgetisnull)                                                                                      \
        X(PQgetvalue)                                                                                       \
        X(PQnfields)                                                                                        \
        X(PQnotifies)                                                                                       \
        X(PQnparams)                                                                                        \
        X(PQntuples)                                                                                        \
        X(PQprepare)                                                                                        \
        X(PQputCopyData)                                                                                    \
        X(PQputCopyEnd)                                                                                     \
        X(PQreset)                                                                                          \
        X(PQresultErrorField)                                                                               \
        X(PQresultStatus)                                                                                   \
        X(PQsetNoticeProcessor)                                                                             \
        X(PQsocket)                                                                                         \
        X(PQstatus)                                                                                         \
        X(PQtransactionStatus)

#define PQ_DECLARE(f) static __typeof__(f) *sym_##f;
PQ_SYMBOLS(PQ_DECLARE)
#define PQ_ENTRY(f) {#f, &sym_##f, false},
static const jl_dlsym pq_syms[] = {PQ_SYMBOLS(PQ_ENTRY)};
static jl_dlib pq_lib = JL_DLIB_INIT(PQ_LIBRARY, pq_syms);

#define PQclear sym_PQclear
#define PQcmdStatus sym_PQcmdStatus
#define PQcmdTuples sym_PQcmdTuples
#define PQconnectdbParams sym_PQconnectdbParams
#define PQconsumeInput sym_PQconsumeInput
#define PQdescribePrepared sym_PQdescribePrepared
#define PQerrorMessage sym_PQerrorMessage
#define PQexec sym_PQexec
#define PQexecParams sym_PQexecParams
#define PQexecPrepared sym_PQexecPrepared
#define PQfinish sym_PQfinish
#define PQfname sym_PQfname
#define PQfreemem sym_PQfreemem
#define PQgetResult sym_PQgetResult
#define PQgetisnull sym_PQgetisnull
#define PQgetvalue sym_PQgetvalue
#define PQnfields sym_PQnfields
#define PQnotifies sym_PQnotifies
#define PQnparams sym_PQnparams
#define PQntuples sym_PQntuples
#define PQprepare sym_PQprepare
#define PQputCopyData sym_PQputCopyData
#define PQputCopyEnd sym_PQputCopyEnd
#define PQreset sym_PQreset
#define PQresultErrorField sym_PQresultErrorField
#define PQresultStatus sym_PQresultStatus
#define PQsetNoticeProcessor sym_PQsetNoticeProcessor
#define PQsocket sym_PQsocket
#define PQstatus sym_PQstatus
#define PQtransactionStatus sym_PQtransactionStatus

#define PG_CONNECT_TIMEOUT_S "10"
#define PG_COPY_FLUSH_BYTES (256 * 1024)
#define PG_STAGE_TABLE "jl_bulk_stage"

typedef struct {
        jl_store base;
        PGconn *conn;
        uint64_t next_stmt;
        uint64_t generation; /* incremented by each reconnect: statements prepared before are re-prepared */
        char **dealloc;      /* names of finalised statements still to DEALLOCATE */
        size_t ndealloc, dealloc_cap;
        char **channels; /* LISTENed to: listened to again after a reconnect */
        size_t nchannels;
} pg_store;

typedef struct {
        jl_stmt base;
        char name[32];
        char *sql;
        uint64_t generation;
        int nparams;
        char **values; /* text of each parameter, NULL for NULL */
        PGresult *desc, *res;
        int row, nrows;
        bool executed;
} pg_stmt;

typedef struct {
        jl_bulk base;
        char *buf;
        size_t len, cap;
        bool copying;
        char *insert_sql; /* staging table -> target, with JL_BULK_IGNORE_CONFLICTS */
} pg_bulk;

#define PG(s) ((pg_store *)(s))
#define CONN(s) (PG(s)->conn)

static bool prefix(const char *s, const char *p)
{
        return s && strncmp(s, p, strlen(p)) == 0;
}

static int sqlstate_errno(const char *state)
{
        if (!state || strlen(state) != 5)
                return -EIO;
        if (strcmp(state, "23505") == 0)
                return -EEXIST;
        if (prefix(state, "23"))
                return -EINVAL; /* not null, foreign key, check */
        if (strcmp(state, "40001") == 0)
                return -EAGAIN; /* serialization failure: retry */
        if (strcmp(state, "40P01") == 0)
                return -EDEADLK;
        if (strcmp(state, "55P03") == 0)
                return -EBUSY; /* lock not available */
        if (strcmp(state, "57014") == 0 || strcmp(state, "25P02") == 0)
                return -ECANCELED;
        if (prefix(state, "57P") || prefix(state, "08"))
                return -ECONNRESET;
        if (strcmp(state, "53100") == 0)
                return -ENOSPC;
        if (strcmp(state, "53200") == 0)
                return -ENOMEM;
        if (strcmp(state, "53300") == 0)
                return -EUSERS;
        if (prefix(state, "28") || strcmp(state, "42501") == 0)
                return -EACCES;
        if (strcmp(state, "3D000") == 0 || strcmp(state, "3F000") == 0)
                return -ENOENT;
        if (strcmp(state, "22003") == 0)
                return -ERANGE;
        if (strcmp(state, "0A000") == 0)
                return -EOPNOTSUPP;
        if (prefix(state, "22") || prefix(state, "42") || prefix(state, "26") || prefix(state, "34"))
                return -EINVAL;
        return -EIO;
}

/* Record the error of res (or of the connection when res is NULL); returns the negative errno. */
static int fail(jl_store *s, const PGresult *res, const char *what)
{
        if (PQstatus(CONN(s)) == CONNECTION_BAD)
                return store_error(s, -ECONNRESET, "%s: connection to the server lost: %s", what,
                                   PQerrorMessage(CONN(s)));
        const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
        const char *primary = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
        const char *detail = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL) : NULL;
        if (!primary)
                return store_error(s, -EIO, "%s: %s", what, PQerrorMessage(CONN(s)));
        return store_error(s, sqlstate_errno(state), "%s: %s%s%s%s [SQLSTATE %s]", what, primary,
                           detail ? " (" : "", detail ? detail : "", detail ? ")" : "", state ? state : "?");
}

/* Run sql; 0 when it returned one of the two good statuses (*ret_res keeps the result if asked). */
static int run(jl_store *s, const char *sql, const char *what, PGresult **ret_res)
{
        PGresult *res = PQexec(CONN(s), sql);
        ExecStatusType st = PQresultStatus(res);
        if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
                int r = fail(s, res, what);
                PQclear(res);
                return r;
        }
        if (ret_res)
                *ret_res = res;
        else
                PQclear(res);
        return 0;
}

static void quiet_notices(void *arg, const char *message)
{
        /* the library never logs: NOTICEs ("… already exists, skipping") are dropped */
}

static int connect_errno(const char *msg)
{
        static const struct {
                const char *text;
                int err;
        } map[] = {
            {"Connection refused", -ECONNREFUSED},
            {"No such file or directory", -ECONNREFUSED}, /* no server on that unix socket */
            {"timeout expired", -ETIMEDOUT},
            {"timed out", -ETIMEDOUT},
            {"does not exist", -ENOENT},
            {"authentication failed", -EACCES},
            {"no pg_hba.conf entry", -EACCES},
            {"permission denied", -EACCES},
            {"could not translate host name", -EHOSTUNREACH},
            {"No route to host", -EHOSTUNREACH},
            {"Network is unreachable", -ENETUNREACH},
            {"too many clients", -EUSERS},
            {"invalid", -EINVAL},
            {"missing \"=\"", -EINVAL},
            {"unterminated", -EINVAL},
            {"unexpected", -EINVAL},
        };
        for (size_t i = 0; i < ARRAY_SIZE(map); i++)
                if (strstr(msg, map[i].text))
                        return map[i].err;
        return -EIO;
}

static int pg_open(jl_store *s, const char *url, const char *path, unsigned flags)
{
        /* Defaults first: the URL (expanded from dbname) overrides them. */
        const char *const keys[] = {"connect_timeout", "fallback_application_name", "client_encoding",
                                    "dbname", NULL};
        const char *const values[] = {PG_CONNECT_TIMEOUT_S, "joule", "UTF8", url, NULL};

        char why[256];
        int r = jl_dlib_load(&pq_lib, why, sizeof(why));
        if (r == -ENOSYS)
                return store_error(s, r, "PostgreSQL client library " PQ_LIBRARY " is too old: %s", why);
        if (r < 0)
                return store_error(s, r,
                                   "PostgreSQL client library " PQ_LIBRARY
                                   " not found: apt-get install libpq5 (%s)",
                                   why);
        CONN(s) = PQconnectdbParams(keys, values, 1);
        if (!CONN(s))
                return store_error(s, -ENOMEM, "out of memory");
        if (PQstatus(CONN(s)) != CONNECTION_OK) {
                const char *msg = PQerrorMessage(CONN(s));
                return store_error(s, connect_errno(msg), "cannot connect: %s", msg);
        }
        PQsetNoticeProcessor(CONN(s), quiet_notices, NULL);
        return 0;
}

static void pg_close(jl_store *s)
{
        if (CONN(s)) /* NULL when the open failed, libpq perhaps not loaded */
                PQfinish(CONN(s));
        CONN(s) = NULL;
        for (size_t i = 0; i < PG(s)->ndealloc; i++)
                free(PG(s)->dealloc[i]);
        free(PG(s)->dealloc);
        for (size_t i = 0; i < PG(s)->nchannels; i++)
                free(PG(s)->channels[i]);
        free(PG(s)->channels);
}

static void forget_deallocs(pg_store *p)
{
        for (size_t i = 0; i < p->ndealloc; i++)
                free(p->dealloc[i]);
        p->ndealloc = 0;
}

static int pg_reconnect(jl_store *s)
{
        PQreset(CONN(s));
        /* the old session's prepared statements died with it */
        PG(s)->generation++;
        forget_deallocs(PG(s));
        if (PQstatus(CONN(s)) != CONNECTION_OK) {
                const char *msg = PQerrorMessage(CONN(s));
                return store_error(s, connect_errno(msg), "cannot reconnect: %s", msg);
        }
        PQsetNoticeProcessor(CONN(s), quiet_notices, NULL);
        for (size_t i = 0; i < PG(s)->nchannels; i++) {
                char sql[128];
                snprintf(sql, sizeof(sql), "LISTEN %s", PG(s)->channels[i]);
                int r = run(s, sql, "listen again after reconnecting", NULL);
                if (r < 0)
                        return r;
        }
        return 0;
}

static bool pg_txn_aborted(const jl_store *s)
{
        return PQtransactionStatus(CONN(s)) == PQTRANS_INERROR;
}

static int pg_exec(jl_store *s, const char *sql)
{
        return run(s, sql, "exec", NULL);
}

/* DEALLOCATE the statements finalised since the last call, when the connection can run statements. */
static void flush_deallocs(jl_store *s)
{
        pg_store *p = PG(s);
        PGTransactionStatusType ts = PQtransactionStatus(p->conn);
        if (p->ndealloc == 0 || (ts != PQTRANS_IDLE && ts != PQTRANS_INTRANS))
                return;
        size_t size = 1;
        for (size_t i = 0; i < p->ndealloc; i++)
                size += strlen(p->dealloc[i]) + 16;
        _cleanup_free_ char *sql = malloc(size);
        if (!sql)
                return;
        size_t o = 0;
        for (size_t i = 0; i < p->ndealloc; i++)
                o += (size_t)snprintf(sql + o, size - o, "DEALLOCATE %s;", p->dealloc[i]);
        PGresult *res = PQexec(p->conn, sql);
        PQclear(res);
        forget_deallocs(p);
}

/* ---- statements ---- */

static int pg_prepare(jl_stmt *jst, const char *sql)
{
        pg_stmt *st = (pg_stmt *)jst;
        jl_store *s = jst->store;

        flush_deallocs(s);
        st->row = -1;
        st->generation = PG(s)->generation;
        st->sql = strdup(sql);
        if (!st->sql)
                return store_error(s, -ENOMEM, "out of memory");
        snprintf(st->name, sizeof(st->name), "jl_%" PRIu64, ++PG(s)->next_stmt);
        PGresult *res = PQprepare(CONN(s), st->name, sql, 0, NULL);
        if (PQresultStatus(res) != PGRES_COMMAND_OK) {
                int r = fail(s, res, "prepare");
                PQclear(res);
                st->name[0] = '\0';
                return r;
        }
        PQclear(res);
        st->desc = PQdescribePrepared(CONN(s), st->name);
        if (PQresultStatus(st->desc) != PGRES_COMMAND_OK)
                return fail(s, st->desc, "prepare");
        st->nparams = PQnparams(st->desc);
        if (st->nparams > 0) {
                st->values = calloc((size_t)st->nparams, sizeof(char *));
                if (!st->values)
                        return store_error(s, -ENOMEM, "out of memory");
        }
        return 0;
}

static void clear_result(pg_stmt *st)
{
        PQclear(st->res);
        st->res = NULL;
        st->row = -1;
        st->nrows = 0;
        st->executed = false;
}

static void pg_finalize(jl_stmt *jst)
{
        pg_stmt *st = (pg_stmt *)jst;
        pg_store *p = PG(jst->store);

        clear_result(st);
        PQclear(st->desc);
        for (int i = 0; i < st->nparams && st->values; i++)
                free(st->values[i]);
        free(st->values);
        free(st->sql);
        if (st->name[0] && st->generation == p->generation && PQstatus(p->conn) == CONNECTION_OK) {
                /* deallocated lazily (no round trip here; possible even inside an aborted transaction) */
                if (p->ndealloc == p->dealloc_cap) {
                        size_t cap = p->dealloc_cap ? p->dealloc_cap * 2 : 16;
                        char **n = realloc(p->dealloc, cap * sizeof(char *));
                        if (!n)
                                return;
                        p->dealloc = n;
                        p->dealloc_cap = cap;
                }
                char *name = strdup(st->name);
                if (name)
                        p->dealloc[p->ndealloc++] = name;
        }
}

static int pg_reset(jl_stmt *jst)
{
        clear_result((pg_stmt *)jst);
        return 0;
}

/* Text forms that PostgreSQL reads back exactly: %.17g round-trips a double. */
static void format_double(double d, char *buf, size_t size)
{
        if (isnan(d))
                snprintf(buf, size, "NaN");
        else if (isinf(d))
                snprintf(buf, size, d > 0 ? "Infinity" : "-Infinity");
        else
                snprintf(buf, size, "%.17g", d);
}

static int pg_bind(jl_stmt *jst, int idx, const jl_value *v)
{
        pg_stmt *st = (pg_stmt *)jst;
        char num[40];
        char *text = NULL;

        if (idx > st->nparams)
                return store_error(jst->store, -ERANGE, "bind: the statement has no parameter $%d", idx);
        if (st->executed)
                clear_result(st);
        switch (v->type) {
        case JL_VALUE_INT64:
                snprintf(num, sizeof(num), "%" PRId64, v->i);
                text = strdup(num);
                break;
        case JL_VALUE_DOUBLE:
                format_double(v->d, num, sizeof(num));
                text = strdup(num);
                break;
        case JL_VALUE_TEXT:
                text = strdup(v->s);
                break;
        default:
                break;
        }
        if (v->type != JL_VALUE_NULL && !text)
                return store_error(jst->store, -ENOMEM, "out of memory");
        free(st->values[idx - 1]);
        st->values[idx - 1] = text;
        return 0;
}

static int pg_clear_bindings(jl_stmt *jst)
{
        pg_stmt *st = (pg_stmt *)jst;
        clear_result(st);
        for (int i = 0; i < st->nparams; i++) {
                free(st->values[i]);
                st->values[i] = NULL;
        }
        return 0;
}

static int pg_step(jl_stmt *jst)
{
        pg_stmt *st = (pg_stmt *)jst;
        jl_store *s = jst->store;

        if (!st->executed && st->generation != PG(s)->generation) {
                /* prepared on a connection since lost: prepare it on this one */
                PGresult *res = PQprepare(CONN(s), st->name, st->sql, 0, NULL);
                if (PQresultStatus(res) != PGRES_COMMAND_OK) {
                        int r = fail(s, res, "prepare");
                        PQclear(res);
                        return r;
                }
                PQclear(res);
                st->generation = PG(s)->generation;
        }
        if (!st->executed) {
                st->executed = true;
                jst->changes = 0;
                st->res = PQexecPrepared(CONN(s), st->name, st->nparams, (const char *const *)st->values,
                                         NULL, NULL, 0);
                ExecStatusType status = PQresultStatus(st->res);
                if (status != PGRES_TUPLES_OK && status != PGRES_COMMAND_OK) {
                        int r = fail(s, st->res, "step");
                        PQclear(st->res);
                        st->res = NULL;
                        return r;
                }
                st->nrows = PQntuples(st->res);
                const char *cmd = PQcmdStatus(st->res);
                if (prefix(cmd, "INSERT") || prefix(cmd, "UPDATE") || prefix(cmd, "DELETE") ||
                    prefix(cmd, "MERGE")) {
                        int64_t n;
                        if (parse_i64(PQcmdTuples(st->res), &n) >= 0)
                                jst->changes = n;
                }
        }
        if (st->row < st->nrows)
                st->row++;
        return st->row < st->nrows ? JL_STORE_ROW : JL_STORE_DONE;
}

static int pg_column_count(const jl_stmt *jst)
{
        const pg_stmt *st = (const pg_stmt *)jst;
        return PQnfields(st->res ? st->res : st->desc);
}

static const char *pg_column_name(const jl_stmt *jst, int col)
{
        const pg_stmt *st = (const pg_stmt *)jst;
        return PQfname(st->res ? st->res : st->desc, col);
}

static bool pg_column_is_null(const jl_stmt *jst, int col)
{
        const pg_stmt *st = (const pg_stmt *)jst;
        if (!st->res || st->row < 0 || st->row >= st->nrows)
                return true;
        return PQgetisnull(st->res, st->row, col);
}

static const char *pg_column_text(const jl_stmt *jst, int col)
{
        const pg_stmt *st = (const pg_stmt *)jst;
        return PQgetvalue(st->res, st->row, col);
}

static int64_t pg_column_int64(const jl_stmt *jst, int col)
{
        const char *v = pg_column_text(jst, col);
        int64_t n;
        double d;
        if (parse_i64(v, &n) >= 0)
                return n;
        if (strcmp(v, "t") == 0) /* boolean */
                return 1;
        if (parse_double(v, &d) >= 0 && d >= -9.2e18 && d <= 9.2e18) /* numeric/float column */
                return (int64_t)d;
        return 0;
}

static double pg_column_double(const jl_stmt *jst, int col)
{
        const char *v = pg_column_text(jst, col);
        char *end;
        if (strcmp(v, "t") == 0) /* boolean */
                return 1;
        if (strcmp(v, "f") == 0)
                return 0;
        /* not parse_double(): the server's text includes NaN, Infinity and subnormals (ERANGE in strtod),
         * all of them values it stored */
        double d = strtod(v, &end);
        return end != v && *end == '\0' ? d : NAN;
}

/* ---- bulk: COPY … FROM STDIN, text format ---- */

static int bulk_reserve(pg_bulk *b, size_t more)
{
        if (b->len + more <= b->cap)
                return 0;
        size_t cap = b->cap ? b->cap : 64 * 1024;
        while (cap < b->len + more)
                cap *= 2;
        char *n = realloc(b->buf, cap);
        if (!n)
                return store_error(b->base.store, -ENOMEM, "out of memory");
        b->buf = n;
        b->cap = cap;
        return 0;
}

static int bulk_flush(pg_bulk *b)
{
        if (b->len == 0)
                return 0;
        if (PQputCopyData(CONN(b->base.store), b->buf, (int)b->len) != 1)
                return fail(b->base.store, NULL, "bulk insert");
        b->len = 0;
        return 0;
}

static int pg_bulk_begin(jl_bulk *jb, const char *table, const char *const *columns)
{
        pg_bulk *b = (pg_bulk *)jb;
        jl_store *s = jb->store;
        bool stage = jb->flags & JL_BULK_IGNORE_CONFLICTS;

        size_t cols_size = 1;
        for (size_t i = 0; i < jb->ncolumns; i++)
                cols_size += strlen(columns[i]) + 2;
        _cleanup_free_ char *cols = malloc(cols_size);
        size_t size = 3 * cols_size + 2 * strlen(table) + 256;
        _cleanup_free_ char *sql = malloc(size);
        if (!cols || !sql)
                return store_error(s, -ENOMEM, "out of memory");
        size_t o = 0;
        for (size_t i = 0; i < jb->ncolumns; i++)
                o += (size_t)snprintf(cols + o, cols_size - o, "%s%s", i ? ", " : "", columns[i]);

        if (stage) {
                /* a staging table of the same column types, dropped at commit; the rows go on from there
                 * with ON CONFLICT DO NOTHING, which COPY itself does not have */
                snprintf(sql, size,
                         "DROP TABLE IF EXISTS pg_temp." PG_STAGE_TABLE "; "
                         "CREATE TEMP TABLE " PG_STAGE_TABLE
                         " ON COMMIT DROP AS SELECT %s FROM %s WITH NO DATA",
                         cols, table);
                int r = run(s, sql, "bulk insert", NULL);
                if (r < 0)
                        return r;
                b->insert_sql = malloc(size);
                if (!b->insert_sql)
                        return store_error(s, -ENOMEM, "out of memory");
                snprintf(b->insert_sql, size,
                         "INSERT INTO %s (%s) SELECT %s FROM " PG_STAGE_TABLE " ON CONFLICT DO NOTHING",
                         table, cols, cols);
        }
        snprintf(sql, size, "COPY %s (%s) FROM STDIN", stage ? PG_STAGE_TABLE : table, cols);
        PGresult *res = PQexec(CONN(s), sql);
        if (PQresultStatus(res) != PGRES_COPY_IN) {
                int r = fail(s, res, "bulk insert");
                PQclear(res);
                return r;
        }
        PQclear(res);
        b->copying = true;
        return 0;
}

static char *format_i64(int64_t v, char *end)
{
        /* digits written backwards from end; returns the start */
        uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
        char *p = end;
        do {
                *--p = (char)('0' + u % 10);
                u /= 10;
        } while (u);
        if (v < 0)
                *--p = '-';
        return p;
}

static int pg_bulk_value(jl_bulk *jb, const jl_value *v)
{
        pg_bulk *b = (pg_bulk *)jb;
        char num[40];
        int r;

        switch (v->type) {
        case JL_VALUE_INT64: {
                char *start = format_i64(v->i, num + sizeof(num));
                size_t n = (size_t)(num + sizeof(num) - start);
                if ((r = bulk_reserve(b, n + 1)) < 0)
                        return r;
                memcpy(b->buf + b->len, start, n);
                b->len += n;
                break;
        }
        case JL_VALUE_DOUBLE: {
                format_double(v->d, num, sizeof(num));
                size_t n = strlen(num);
                if ((r = bulk_reserve(b, n + 1)) < 0)
                        return r;
                memcpy(b->buf + b->len, num, n);
                b->len += n;
                break;
        }
        case JL_VALUE_TEXT: {
                size_t n = strlen(v->s);
                if ((r = bulk_reserve(b, 2 * n + 1)) < 0)
                        return r;
                for (const char *p = v->s; *p; p++) {
                        char c = *p, esc = 0;
                        switch (c) {
                        case '\\':
                                esc = '\\';
                                break;
                        case '\t':
                                esc = 't';
                                break;
                        case '\n':
                                esc = 'n';
                                break;
                        case '\r':
                                esc = 'r';
                                break;
                        default:
                                break;
                        }
                        if (esc) {
                                b->buf[b->len++] = '\\';
                                b->buf[b->len++] = esc;
                        } else
                                b->buf[b->len++] = c;
                }
                break;
        }
        default:
                if ((r = bulk_reserve(b, 3)) < 0)
                        return r;
                memcpy(b->buf + b->len, "\\N", 2);
                b->len += 2;
                break;
        }
        /* the separator: a tab between fields; jl_bulk_row_end turns the last one into a newline */
        b->buf[b->len++] = '\t';
        return 0;
}

static int pg_bulk_row_end(jl_bulk *jb)
{
        pg_bulk *b = (pg_bulk *)jb;
        b->buf[b->len - 1] = '\n';
        return b->len >= PG_COPY_FLUSH_BYTES ? bulk_flush(b) : 0;
}

static int pg_bulk_finish(jl_bulk *jb, uint64_t *ret_rows)
{
        pg_bulk *b = (pg_bulk *)jb;
        jl_store *s = jb->store;
        int r = bulk_flush(b);
        if (r < 0)
                return r;
        b->copying = false;
        if (PQputCopyEnd(CONN(s), NULL) != 1)
                return fail(s, NULL, "bulk insert");
        PGresult *res;
        r = 0;
        uint64_t rows = 0;
        while ((res = PQgetResult(CONN(s)))) {
                if (r == 0 && PQresultStatus(res) != PGRES_COMMAND_OK)
                        r = fail(s, res, "bulk insert");
                else if (r == 0)
                        (void)parse_u64(PQcmdTuples(res), &rows);
                PQclear(res);
        }
        if (r < 0)
                return r;
        if (b->insert_sql) {
                r = run(s, b->insert_sql, "bulk insert", &res);
                if (r < 0)
                        return r;
                rows = 0;
                (void)parse_u64(PQcmdTuples(res), &rows);
                PQclear(res);
                /* gone at commit anyway; dropped now so that a caller's longer transaction can bulk again */
                r = run(s, "DROP TABLE " PG_STAGE_TABLE, "bulk insert", NULL);
                if (r < 0)
                        return r;
        }
        *ret_rows = rows;
        return 0;
}

static void pg_bulk_release(jl_bulk *jb)
{
        pg_bulk *b = (pg_bulk *)jb;
        jl_store *s = jb->store;
        if (b->copying) {
                /* end the COPY with an error so that the server throws the rows away */
                b->copying = false;
                if (PQputCopyEnd(CONN(s), "bulk insert aborted") == 1) {
                        PGresult *res;
                        while ((res = PQgetResult(CONN(s))))
                                PQclear(res);
                }
        }
        free(b->buf);
        b->buf = NULL;
        free(b->insert_sql);
        b->insert_sql = NULL;
}

/* ---- LISTEN/NOTIFY ---- */

static int pg_notify(jl_store *s, const char *channel, const char *payload)
{
        const char *const values[] = {channel, payload};
        PGresult *res = PQexecParams(CONN(s), "SELECT pg_notify($1, $2)", 2, NULL, values, NULL, NULL, 0);
        int r = PQresultStatus(res) == PGRES_TUPLES_OK ? 0 : fail(s, res, "notify");
        PQclear(res);
        return r;
}

static int pg_listen(jl_store *s, const char *channel)
{
        pg_store *p = PG(s);
        char sql[128];
        if (strlen(channel) > 63)
                return store_error(s, -EINVAL, "listen: channel name longer than 63 bytes");
        snprintf(sql, sizeof(sql), "LISTEN %s", channel);
        int r = run(s, sql, "listen", NULL);
        if (r < 0)
                return r;
        for (size_t i = 0; i < p->nchannels; i++)
                if (strcmp(p->channels[i], channel) == 0)
                        return 0;
        char **v = realloc(p->channels, (p->nchannels + 1) * sizeof(char *));
        if (!v)
                return store_error(s, -ENOMEM, "out of memory");
        p->channels = v;
        if (!(v[p->nchannels] = strdup(channel)))
                return store_error(s, -ENOMEM, "out of memory");
        p->nchannels++;
        return 0;
}

static int pg_notify_fd(jl_store *s)
{
        int fd = PQsocket(CONN(s));
        if (fd < 0)
                return store_error(s, -ECONNRESET, "no connection to the server");
        return fd;
}

static void copy_out(char *buf, size_t size, const char *v)
{
        if (buf && size)
                snprintf(buf, size, "%s", v ? v : "");
}

static int pg_wait_notify(jl_store *s, int timeout_ms, char *channel, size_t channel_size, char *payload,
                          size_t payload_size)
{
        PGconn *c = CONN(s);
        uint64_t deadline = mono_ns() + (uint64_t)timeout_ms * NSEC_PER_MSEC;
        /* Each pass either returns or waits on the socket until data comes or the deadline passes: bounded
         * by the deadline (a pass with data consumes it). */
        for (;;) {
                if (!PQconsumeInput(c))
                        return store_error(s, -ECONNRESET, "wait for a notification: connection lost: %s",
                                           PQerrorMessage(c));
                PGnotify *n = PQnotifies(c);
                if (n) {
                        copy_out(channel, channel_size, n->relname);
                        copy_out(payload, payload_size, n->extra);
                        PQfreemem(n);
                        return 1;
                }
                uint64_t now = mono_ns();
                if (now >= deadline)
                        return 0;
                int fd = PQsocket(c);
                if (fd < 0)
                        return store_error(s, -ECONNRESET, "wait for a notification: no connection");
                uint64_t left_ms = (deadline - now + NSEC_PER_MSEC - 1) / NSEC_PER_MSEC;
                struct pollfd pfd = {.fd = fd, .events = POLLIN};
                int k = poll(&pfd, 1, (int)MIN(left_ms, (uint64_t)INT32_MAX));
                if (k < 0 && errno == EINTR)
                        return store_error(s, -EINTR, "wait for a notification: interrupted");
                if (k < 0)
                        return store_error(s, negative_errno(), "wait for a notification: poll: %s",
                                           strerror(errno));
        }
}

const jl_store_ops jl_store_postgres_ops = {
        .name = "postgresql",
        .backend = JL_STORE_POSTGRES,
        .dialect =
                &(const jl_store_dialect){
                        .id_column = "BIGSERIAL PRIMARY KEY",
                        .begin_immediate = "BEGIN",
                        .skip_locked = " FOR UPDATE SKIP LOCKED",
                        .table_exists = "SELECT 1 WHERE to_regclass($1) IS NOT NULL",
                        /* one migrator at a time per database; released at commit/rollback */
                        .migrate_lock = "SELECT pg_advisory_xact_lock(7418204481926401)",
                },
        .store_size = sizeof(pg_store),
        .stmt_size = sizeof(pg_stmt),
        .bulk_size = sizeof(pg_bulk),
        .open = pg_open,
        .close = pg_close,
        .reconnect = pg_reconnect,
        .exec = pg_exec,
        .txn_aborted = pg_txn_aborted,
        .prepare = pg_prepare,
        .finalize = pg_finalize,
        .bind = pg_bind,
        .clear_bindings = pg_clear_bindings,
        .step = pg_step,
        .reset = pg_reset,
        .column_count = pg_column_count,
        .column_name = pg_column_name,
        .column_is_null = pg_column_is_null,
        .column_int64 = pg_column_int64,
        .column_double = pg_column_double,
        .column_text = pg_column_text,
        .bulk_begin = pg_bulk_begin,
        .bulk_value = pg_bulk_value,
        .bulk_row_end = pg_bulk_row_end,
        .bulk_finish = pg_bulk_finish,
        .bulk_release = pg_bulk_release,
        .notify = pg_notify,
        .listen = pg_listen,
        .notify_fd = pg_notify_fd,
        .wait_notify = pg_wait_notify,
};
