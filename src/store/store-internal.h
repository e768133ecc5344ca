/* store-internal.h - what the store's front end (store.c, schema.c) shares with its backends (sqlite.c,
 * postgres.c): the per-backend ops table, the SQL dialect, and the base structs each backend extends. */
#pragma once

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macro.h"
#include "store.h"

typedef enum {
        JL_VALUE_NULL,
        JL_VALUE_INT64,
        JL_VALUE_DOUBLE,
        JL_VALUE_TEXT,
} jl_value_type;

typedef struct {
        jl_value_type type;
        int64_t i;
        double d;
        const char *s;
} jl_value;

/* The SQL dialect: every difference between the backends' SQL lives here (and nowhere else). */
typedef struct {
        const char *id_column;       /* a 64-bit auto-increment primary key column's type */
        const char *begin_immediate; /* the statement that opens a write-locking transaction */
        const char *skip_locked;     /* appended to a claim's SELECT */
        const char *table_exists;    /* one row when table $1 exists */
        const char *migrate_lock;    /* run first in each migration transaction, or NULL */
} jl_store_dialect;

typedef struct jl_store_ops {
        const char *name;
        jl_store_backend backend;
        const jl_store_dialect *dialect;
        size_t store_size, stmt_size, bulk_size;

        /* path: the SQLite file (NULL for PostgreSQL); url: the full URL. Sets the error on failure. */
        int (*open)(jl_store *s, const char *url, const char *path, unsigned flags);
        void (*close)(jl_store *s);
        int (*reconnect)(jl_store *s);
        int (*exec)(jl_store *s, const char *sql);
        /* True when the open transaction has failed and can only be rolled back (PostgreSQL). */
        bool (*txn_aborted)(const jl_store *s);

        int (*prepare)(jl_stmt *st, const char *sql);
        void (*finalize)(jl_stmt *st);
        int (*bind)(jl_stmt *st, int idx, const jl_value *v);
        int (*clear_bindings)(jl_stmt *st);
        int (*step)(jl_stmt *st);
        int (*reset)(jl_stmt *st);
        int (*column_count)(const jl_stmt *st);
        const char *(*column_name)(const jl_stmt *st, int col);
        bool (*column_is_null)(const jl_stmt *st, int col);
        int64_t (*column_int64)(const jl_stmt *st, int col);
        double (*column_double)(const jl_stmt *st, int col);
        const char *(*column_text)(const jl_stmt *st, int col);

        /* Bulk: begin (inside a transaction the front end has opened), one value, end of row, finish
         * (flush; *ret_rows inserted), release (free backend resources; after finish or on abort). */
        int (*bulk_begin)(jl_bulk *b, const char *table, const char *const *columns);
        int (*bulk_value)(jl_bulk *b, const jl_value *v);
        int (*bulk_row_end)(jl_bulk *b);
        int (*bulk_finish)(jl_bulk *b, uint64_t *ret_rows);
        void (*bulk_release)(jl_bulk *b);

        /* LISTEN/NOTIFY (NULL where the backend has none: the front end answers -EOPNOTSUPP). */
        int (*notify)(jl_store *s, const char *channel, const char *payload);
        int (*listen)(jl_store *s, const char *channel);
        int (*notify_fd)(jl_store *s);
        int (*wait_notify)(jl_store *s, int timeout_ms, char *channel, size_t channel_size, char *payload,
                           size_t payload_size);
} jl_store_ops;

struct jl_store {
        const jl_store_ops *ops;
        char url_redacted[256];
        bool in_txn;
        char error[1024];
};

struct jl_stmt {
        jl_store *store;
        int64_t changes;
};

struct jl_bulk {
        jl_store *store;
        unsigned flags;
        size_t ncolumns, col;
        uint64_t rows;
        bool own_txn, failed;
};

extern const jl_store_ops jl_store_sqlite_ops;
extern const jl_store_ops jl_store_postgres_ops;

/* Set the connection's error message; returns r (a negative errno) so that callers can
 * `return store_error(s, -EINVAL, "…")`. */
int store_error(jl_store *s, int r, const char *fmt, ...) _printf_(3, 4);
void store_clear_error(jl_store *s);

/* Parse "$N" at p (p[0] == '$'): N (1 … 32767) and the length consumed, or -1 when it is not a
 * parameter. */
int store_param_number(const char *p, size_t *ret_len);
/* True when s is a plain SQL identifier ([A-Za-z_][A-Za-z0-9_]*). */
bool store_identifier_ok(const char *s);
