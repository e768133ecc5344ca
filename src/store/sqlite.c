/* sqlite.c - the SQLite backend of the store: WAL, a busy timeout and foreign keys on every connection;
 * $N parameters bound through sqlite3_bind_parameter_index(); bulk insert as one reused prepared INSERT
 * inside one transaction. */
#include <errno.h>
#include <inttypes.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store-internal.h"

#define SQLITE_BUSY_TIMEOUT_MS 5000

typedef struct {
        jl_store base;
        sqlite3 *db;
} sqlite_store;

typedef struct {
        jl_stmt base;
        sqlite3_stmt *stmt;
        int *map; /* map[N]: SQLite's index of parameter $N, 0 when the statement has no $N */
        int nmap; /* entries in map (largest N + 1) */
        bool stepped, done;
} sqlite_stmt;

typedef struct {
        jl_bulk base;
        sqlite3_stmt *insert;
        uint64_t inserted;
} sqlite_bulk;

#define DB(s) (((sqlite_store *)(s))->db)

static int sqlite_errno(sqlite3 *db, int rc)
{
        int sys = db ? sqlite3_system_errno(db) : 0;
        switch (rc & 0xff) {
        case SQLITE_CONSTRAINT:
                return rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY ? -EEXIST
                                                                                            : -EINVAL;
        case SQLITE_BUSY:
        case SQLITE_LOCKED:
                return -EBUSY;
        case SQLITE_NOMEM:
                return -ENOMEM;
        case SQLITE_READONLY:
                return -EROFS;
        case SQLITE_CANTOPEN:
                return sys > 0 ? -sys : -ENOENT;
        case SQLITE_IOERR:
                return sys > 0 ? -sys : -EIO;
        case SQLITE_FULL:
                return -ENOSPC;
        case SQLITE_CORRUPT:
        case SQLITE_NOTADB:
                return -EBADMSG;
        case SQLITE_PERM:
        case SQLITE_AUTH:
                return -EACCES;
        case SQLITE_TOOBIG:
                return -E2BIG;
        case SQLITE_MISMATCH:
        case SQLITE_RANGE:
                return -ERANGE;
        case SQLITE_INTERRUPT:
                return -EINTR;
        case SQLITE_SCHEMA:
                return -EAGAIN;
        case SQLITE_ERROR:
        case SQLITE_MISUSE:
                return -EINVAL;
        default:
                return -EIO;
        }
}

static int fail(jl_store *s, int rc, const char *what)
{
        sqlite3 *db = DB(s);
        return store_error(s, sqlite_errno(db, rc), "%s: %s", what,
                           db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
}

static int sq_exec(jl_store *s, const char *sql)
{
        char *msg = NULL;
        int rc = sqlite3_exec(DB(s), sql, NULL, NULL, &msg);
        if (rc != SQLITE_OK) {
                int r = store_error(s, sqlite_errno(DB(s), rc), "%s", msg ? msg : sqlite3_errstr(rc));
                sqlite3_free(msg);
                return r;
        }
        return 0;
}

static int sq_open(jl_store *s, const char *url, const char *path, unsigned flags)
{
        int oflags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX;
        bool memory = strcmp(path, ":memory:") == 0;

        if (flags & JL_STORE_OPEN_CREATE)
                oflags |= SQLITE_OPEN_CREATE;
        else if (!memory && access(path, F_OK) < 0) {
                int r = negative_errno();
                return store_error(s, r, "cannot open database file %s: %s%s", path, strerror(-r),
                                   r == -ENOENT ? " (create it with `joule db init`)" : "");
        }
        int rc = sqlite3_open_v2(path, &DB(s), oflags, NULL);
        if (rc != SQLITE_OK) {
                int r = sqlite_errno(DB(s), rc);
                int sys = DB(s) ? sqlite3_system_errno(DB(s)) : 0;
                return store_error(s, r, "cannot open database file %s: %s%s%s%s", path,
                                   DB(s) ? sqlite3_errmsg(DB(s)) : sqlite3_errstr(rc), sys > 0 ? " (" : "",
                                   sys > 0 ? strerror(sys) : "", sys > 0 ? ")" : "");
        }
        sqlite3_extended_result_codes(DB(s), 1);
        sqlite3_busy_timeout(DB(s), SQLITE_BUSY_TIMEOUT_MS);
        /* journal_mode answers with a row; sqlite3_exec discards it. WAL lets readers run beside the one
         * writer; synchronous=NORMAL is durable across application crashes in WAL mode. The first statement
         * also reads the header, so a file that is not a database fails here. */
        int r =
            sq_exec(s, "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;");
        if (r < 0) {
                char why[sizeof(s->error)];
                memcpy(why, s->error, sizeof(why));
                return store_error(s, r, "cannot use database file %s: %s", path, why);
        }
        return 0;
}

static void sq_close(jl_store *s)
{
        /* sqlite3_close_v2 defers the close until every statement is finalised */
        sqlite3_close_v2(DB(s));
        DB(s) = NULL;
}

static int sq_reconnect(jl_store *s)
{
        return 0;
}

static bool sq_txn_aborted(const jl_store *s)
{
        return false;
}

/* ---- statements ---- */

static int sq_prepare(jl_stmt *jst, const char *sql)
{
        sqlite_stmt *st = (sqlite_stmt *)jst;
        jl_store *s = jst->store;
        const char *tail = NULL;

        int rc = sqlite3_prepare_v2(DB(s), sql, -1, &st->stmt, &tail);
        if (rc != SQLITE_OK)
                return fail(s, rc, "prepare");
        if (!st->stmt)
                return store_error(s, -EINVAL, "prepare: empty statement");
        if (tail && tail[strspn(tail, " \t\r\n;")])
                return store_error(s, -EINVAL, "prepare: more than one statement (use jl_store_exec)");

        int count = sqlite3_bind_parameter_count(st->stmt);
        int max = 0;
        for (int i = 1; i <= count; i++) {
                const char *name = sqlite3_bind_parameter_name(st->stmt, i);
                size_t len = 0;
                int n = name ? store_param_number(name, &len) : -1;
                if (n < 0 || name[len] != '\0')
                        return store_error(s, -EINVAL,
                                           "prepare: parameter %s: write parameters as $1, $2, ...",
                                           name ? name : "?");
                max = MAX(max, n);
        }
        if (max > 0) {
                st->map = calloc((size_t)max + 1, sizeof(int));
                if (!st->map)
                        return store_error(s, -ENOMEM, "out of memory");
                st->nmap = max + 1;
                for (int i = 1; i <= count; i++) {
                        size_t len;
                        st->map[store_param_number(sqlite3_bind_parameter_name(st->stmt, i), &len)] = i;
                }
        }
        return 0;
}

static void sq_finalize(jl_stmt *jst)
{
        sqlite_stmt *st = (sqlite_stmt *)jst;
        sqlite3_finalize(st->stmt);
        free(st->map);
}

static int sq_reset(jl_stmt *jst)
{
        sqlite_stmt *st = (sqlite_stmt *)jst;
        /* sqlite3_reset repeats the last step's error, which was reported already */
        (void)sqlite3_reset(st->stmt);
        st->stepped = st->done = false;
        return 0;
}

static int sq_bind(jl_stmt *jst, int idx, const jl_value *v)
{
        sqlite_stmt *st = (sqlite_stmt *)jst;
        if (idx >= st->nmap || st->map[idx] == 0)
                return store_error(jst->store, -ERANGE, "bind: the statement has no parameter $%d", idx);
        if (st->stepped)
                (void)sq_reset(jst);
        int i = st->map[idx], rc;
        switch (v->type) {
        case JL_VALUE_INT64:
                rc = sqlite3_bind_int64(st->stmt, i, v->i);
                break;
        case JL_VALUE_DOUBLE:
                rc = sqlite3_bind_double(st->stmt, i, v->d);
                break;
        case JL_VALUE_TEXT:
                rc = sqlite3_bind_text(st->stmt, i, v->s, -1, SQLITE_TRANSIENT);
                break;
        default:
                rc = sqlite3_bind_null(st->stmt, i);
                break;
        }
        return rc == SQLITE_OK ? 0 : fail(jst->store, rc, "bind");
}

static int sq_clear_bindings(jl_stmt *jst)
{
        sqlite_stmt *st = (sqlite_stmt *)jst;
        if (st->stepped)
                (void)sq_reset(jst);
        sqlite3_clear_bindings(st->stmt);
        return 0;
}

static int sq_step(jl_stmt *jst)
{
        sqlite_stmt *st = (sqlite_stmt *)jst;
        if (st->done)
                return JL_STORE_DONE;
        if (!st->stepped)
                jst->changes = 0;
        st->stepped = true;
        int rc = sqlite3_step(st->stmt);
        if (rc == SQLITE_ROW)
                return JL_STORE_ROW;
        if (rc == SQLITE_DONE) {
                st->done = true;
                if (!sqlite3_stmt_readonly(st->stmt))
                        jst->changes = sqlite3_changes64(DB(jst->store));
                return JL_STORE_DONE;
        }
        st->done = true;
        return fail(jst->store, rc, "step");
}

static int sq_column_count(const jl_stmt *jst)
{
        return sqlite3_column_count(((const sqlite_stmt *)jst)->stmt);
}

static const char *sq_column_name(const jl_stmt *jst, int col)
{
        return sqlite3_column_name(((const sqlite_stmt *)jst)->stmt, col);
}

static bool sq_column_is_null(const jl_stmt *jst, int col)
{
        const sqlite_stmt *st = (const sqlite_stmt *)jst;
        return !st->stepped || st->done || sqlite3_column_type(st->stmt, col) == SQLITE_NULL;
}

static int64_t sq_column_int64(const jl_stmt *jst, int col)
{
        return sqlite3_column_int64(((const sqlite_stmt *)jst)->stmt, col);
}

static double sq_column_double(const jl_stmt *jst, int col)
{
        return sqlite3_column_double(((const sqlite_stmt *)jst)->stmt, col);
}

static const char *sq_column_text(const jl_stmt *jst, int col)
{
        return (const char *)sqlite3_column_text(((const sqlite_stmt *)jst)->stmt, col);
}

/* ---- bulk: one prepared INSERT, reused for every row, inside the front end's transaction ---- */

static int sq_bulk_begin(jl_bulk *jb, const char *table, const char *const *columns)
{
        sqlite_bulk *b = (sqlite_bulk *)jb;
        jl_store *s = jb->store;
        size_t size = 64 + strlen(table) + jb->ncolumns * 8;
        for (size_t i = 0; i < jb->ncolumns; i++)
                size += strlen(columns[i]) + 2;
        _cleanup_free_ char *sql = malloc(size);
        if (!sql)
                return store_error(s, -ENOMEM, "out of memory");
        size_t o = (size_t)snprintf(sql, size, "INSERT INTO %s (", table);
        for (size_t i = 0; i < jb->ncolumns; i++)
                o += (size_t)snprintf(sql + o, size - o, "%s%s", i ? ", " : "", columns[i]);
        o += (size_t)snprintf(sql + o, size - o, ") VALUES (");
        for (size_t i = 0; i < jb->ncolumns; i++)
                o += (size_t)snprintf(sql + o, size - o, "%s$%zu", i ? ", " : "", i + 1);
        snprintf(sql + o, size - o, ")%s",
                 jb->flags & JL_BULK_IGNORE_CONFLICTS ? " ON CONFLICT DO NOTHING" : "");

        int rc = sqlite3_prepare_v2(DB(s), sql, -1, &b->insert, NULL);
        if (rc != SQLITE_OK)
                return fail(s, rc, "bulk insert");
        return 0;
}

static int sq_bulk_value(jl_bulk *jb, const jl_value *v)
{
        sqlite_bulk *b = (sqlite_bulk *)jb;
        /* the generated statement numbers its parameters $1 … $n in order: index == column + 1 */
        int i = (int)jb->col + 1, rc;
        switch (v->type) {
        case JL_VALUE_INT64:
                rc = sqlite3_bind_int64(b->insert, i, v->i);
                break;
        case JL_VALUE_DOUBLE:
                rc = sqlite3_bind_double(b->insert, i, v->d);
                break;
        case JL_VALUE_TEXT:
                rc = sqlite3_bind_text(b->insert, i, v->s, -1, SQLITE_TRANSIENT);
                break;
        default:
                rc = sqlite3_bind_null(b->insert, i);
                break;
        }
        return rc == SQLITE_OK ? 0 : fail(jb->store, rc, "bulk insert");
}

static int sq_bulk_row_end(jl_bulk *jb)
{
        sqlite_bulk *b = (sqlite_bulk *)jb;
        int rc = sqlite3_step(b->insert);
        if (rc != SQLITE_DONE) {
                int r = fail(jb->store, rc, "bulk insert");
                (void)sqlite3_reset(b->insert);
                return r;
        }
        /* 0 for a duplicate dropped by ON CONFLICT DO NOTHING */
        b->inserted += (uint64_t)sqlite3_changes64(DB(jb->store));
        sqlite3_reset(b->insert);
        return 0;
}

static int sq_bulk_finish(jl_bulk *jb, uint64_t *ret_rows)
{
        *ret_rows = ((sqlite_bulk *)jb)->inserted;
        return 0;
}

static void sq_bulk_release(jl_bulk *jb)
{
        sqlite_bulk *b = (sqlite_bulk *)jb;
        sqlite3_finalize(b->insert);
        b->insert = NULL;
}

const jl_store_ops jl_store_sqlite_ops = {
        .name = "sqlite",
        .backend = JL_STORE_SQLITE,
        .dialect =
                &(const jl_store_dialect){
                        .id_column = "INTEGER PRIMARY KEY",
                        .begin_immediate = "BEGIN IMMEDIATE",
                        .skip_locked = "",
                        .table_exists = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = $1",
                        .migrate_lock = NULL,
                },
        .store_size = sizeof(sqlite_store),
        .stmt_size = sizeof(sqlite_stmt),
        .bulk_size = sizeof(sqlite_bulk),
        .open = sq_open,
        .close = sq_close,
        .reconnect = sq_reconnect,
        .exec = sq_exec,
        .txn_aborted = sq_txn_aborted,
        .prepare = sq_prepare,
        .finalize = sq_finalize,
        .bind = sq_bind,
        .clear_bindings = sq_clear_bindings,
        .step = sq_step,
        .reset = sq_reset,
        .column_count = sq_column_count,
        .column_name = sq_column_name,
        .column_is_null = sq_column_is_null,
        .column_int64 = sq_column_int64,
        .column_double = sq_column_double,
        .column_text = sq_column_text,
        .bulk_begin = sq_bulk_begin,
        .bulk_value = sq_bulk_value,
        .bulk_row_end = sq_bulk_row_end,
        .bulk_finish = sq_bulk_finish,
        .bulk_release = sq_bulk_release,
};
