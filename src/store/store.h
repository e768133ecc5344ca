/* store.h - joule's database layer: one small API over SQLite (embedded, the default) and PostgreSQL
 * (libpq, for clusters): connections opened by URL, statements with $1, $2 parameters on both backends,
 * transactions, a bulk-insert path, versioned migrations and the job-claim pattern of the runner.
 *
 * Contract (libuv-like, as everywhere in joule): functions that can fail return 0 (or a non-negative
 * count) on success and a negative errno on failure; ret_ parameters are written only on success. The
 * library never logs: after a failure jl_store_error() holds one line saying what went wrong, for the
 * caller to log. A connection and its statements belong to one thread at a time. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct jl_store jl_store;
typedef struct jl_stmt jl_stmt;
typedef struct jl_bulk jl_bulk;

typedef enum {
        JL_STORE_SQLITE,
        JL_STORE_POSTGRES,
} jl_store_backend;

enum {
        /* SQLite: create the database file when it does not exist (`joule db init`). Without it a missing
         * file is -ENOENT. PostgreSQL databases are never created. */
        JL_STORE_OPEN_CREATE = 1 << 0,
};

/* jl_stmt_step() results. */
enum {
        JL_STORE_DONE = 0,
        JL_STORE_ROW = 1,
};

/* ---- connections ---- */

/* Open `url`: a path, `sqlite:PATH` or `sqlite://PATH` (SQLite; WAL, a busy timeout, foreign keys on), or
 * `postgresql://…` / `postgres://…` (any libpq URI). On failure returns a negative errno (-EINVAL bad URL,
 * -EPROTONOSUPPORT unknown scheme, -ENOENT no such file/database, -ECONNREFUSED, -ETIMEDOUT, -EACCES, …)
 * and writes a reason naming the URL without its password into err. */
int jl_store_open(const char *url, unsigned flags, jl_store **ret_store, char *err, size_t errlen);
void jl_store_close(jl_store *s);
static inline void jl_store_closep(jl_store **s)
{
        if (*s)
                jl_store_close(*s);
}
#define _cleanup_store_ __attribute__((cleanup(jl_store_closep)))

jl_store_backend jl_store_get_backend(const jl_store *s);
const char *jl_store_backend_name(jl_store_backend b); /* "sqlite", "postgresql" */
/* The last error of this connection, one line ("" when none). Valid until the next call on it. */
const char *jl_store_error(const jl_store *s);
/* Copy url into buf with any password replaced by "***" (user:PASS@ and password=PASS). Returns buf. */
char *jl_store_url_redact(const char *url, char *buf, size_t size);
/* Parse a URL: *ret_backend, and for SQLite the file path (a pointer into url). -EINVAL/-EPROTONOSUPPORT. */
int jl_store_url_parse(const char *url, jl_store_backend *ret_backend, const char **ret_path);

/* After -ECONNRESET (the server went away): connect again with the same URL. Statements prepared before
 * stay valid (they are prepared again on first use); an open transaction was lost and is forgotten.
 * SQLite: a no-op. */
int jl_store_reconnect(jl_store *s);

/* Run one or more statements without parameters or results (DDL, SET, …). */
int jl_store_exec(jl_store *s, const char *sql);

/* ---- transactions ---- */

int jl_store_begin(jl_store *s);
/* A transaction that takes the write lock at once: SQLite BEGIN IMMEDIATE (waits up to the busy
 * timeout, then -EBUSY); PostgreSQL BEGIN (rows are locked by SELECT … FOR UPDATE). */
int jl_store_begin_immediate(jl_store *s);
int jl_store_commit(jl_store *s);
/* Roll back the open transaction; a no-op returning 0 when none is open. */
int jl_store_rollback(jl_store *s);
bool jl_store_in_transaction(const jl_store *s);

/* ---- prepared statements ---- */

/* Prepare one statement. Parameters are written $1, $2, … on both backends (in any order, each may
 * appear several times); other placeholder forms are -EINVAL. */
int jl_store_prepare(jl_store *s, const char *sql, jl_stmt **ret_stmt);
void jl_stmt_finalize(jl_stmt *st);
static inline void jl_stmt_finalizep(jl_stmt **st)
{
        if (*st)
                jl_stmt_finalize(*st);
}
#define _cleanup_stmt_ __attribute__((cleanup(jl_stmt_finalizep)))

/* Bind parameter $idx (1-based). Values are copied. Bindings stay across jl_stmt_reset(). -ERANGE for
 * an index the statement does not have. */
int jl_stmt_bind_int64(jl_stmt *st, int idx, int64_t v);
int jl_stmt_bind_double(jl_stmt *st, int idx, double v);
int jl_stmt_bind_text(jl_stmt *st, int idx, const char *v); /* NULL binds NULL */
int jl_stmt_bind_null(jl_stmt *st, int idx);
int jl_stmt_clear_bindings(jl_stmt *st);

/* Execute (on the first call after prepare/reset) and advance: JL_STORE_ROW when a row is available,
 * JL_STORE_DONE at the end, or a negative errno (-EEXIST unique violation, -EINVAL constraint or SQL
 * error, -EBUSY locked, -ECONNRESET connection lost, …). */
int jl_stmt_step(jl_stmt *st);
/* Make the statement runnable again (bindings kept). */
int jl_stmt_reset(jl_stmt *st);
/* Rows changed by the last INSERT/UPDATE/DELETE run to completion by this statement. */
int64_t jl_stmt_changes(const jl_stmt *st);
/* Step an INSERT … RETURNING id (or any statement whose first row's column 0 is an integer): 1 and
 * *ret_id when a row came back, 0 when none did (ON CONFLICT DO NOTHING skipped it), negative on error.
 * Resets the statement afterwards. */
int jl_stmt_insert_id(jl_stmt *st, int64_t *ret_id);

/* Columns of the current row, 0-based. Getters do not fail: NULL reads as 0, NAN and NULL respectively;
 * an unparseable value as 0/NAN. Text is valid until the next step, reset or finalize. */
int jl_stmt_column_count(const jl_stmt *st);
const char *jl_stmt_column_name(const jl_stmt *st, int col);
bool jl_stmt_column_is_null(const jl_stmt *st, int col);
int64_t jl_stmt_column_int64(const jl_stmt *st, int col);
double jl_stmt_column_double(const jl_stmt *st, int col);
const char *jl_stmt_column_text(const jl_stmt *st, int col);

/* ---- bulk insert ---- */

enum {
        /* Drop rows that violate a unique constraint (e.g. periodic_metrics (node, seq)) instead of failing
         * the batch. */
        JL_BULK_IGNORE_CONFLICTS = 1 << 0,
};

/* Insert many rows into one table fast: SQLite one reused prepared INSERT; PostgreSQL COPY FROM STDIN
 * (through a temporary table and INSERT … ON CONFLICT DO NOTHING with JL_BULK_IGNORE_CONFLICTS). Runs
 * in its own transaction unless one is open already. Append each row's fields in column order, then
 * jl_bulk_row_end(); jl_bulk_finish() commits and frees; jl_bulk_abort() rolls back and frees. Table and
 * column names must be plain identifiers. Until finish/abort nothing else may run on the connection. */
int jl_store_bulk_begin(jl_store *s, const char *table, const char *const *columns, size_t ncolumns,
                        unsigned flags, jl_bulk **ret_bulk);
int jl_bulk_int64(jl_bulk *b, int64_t v);
int jl_bulk_double(jl_bulk *b, double v);
int jl_bulk_text(jl_bulk *b, const char *v); /* NULL appends NULL */
int jl_bulk_null(jl_bulk *b);
int jl_bulk_row_end(jl_bulk *b);
/* Commit: *ret_rows (may be NULL) is the number of rows inserted (without dropped duplicates). After a
 * failure of any jl_bulk_* call the batch is lost: call jl_bulk_abort(). Frees b either way. */
int jl_bulk_finish(jl_bulk *b, uint64_t *ret_rows);
void jl_bulk_abort(jl_bulk *b);

/* ---- schema ---- */

/* The newest schema version this build knows. */
int jl_store_schema_latest(void);
/* The name of migration `version` (1 … latest), or NULL. */
const char *jl_store_migration_name(int version);
/* The database's schema version: 0 for an empty database (no schema_version table). */
int jl_store_schema_version(jl_store *s, int *ret_version);
/* Apply every pending migration in order, each in one transaction (concurrent migrators serialise).
 * Returns the number applied (0: already current), -EPROTO when the database is newer than this build. */
int jl_store_migrate(jl_store *s);

/* ---- the measurement cluster's job queue ---- */

/* Atomically take one WAITING bench job of machine_id (oldest first, or a random one) and mark it
 * RUNNING with started_us = now_us: PostgreSQL SELECT … FOR UPDATE SKIP LOCKED, SQLite BEGIN IMMEDIATE.
 * Two connections never get the same job. Returns 1 and *ret_job_id, 0 when none is waiting. Must be
 * called outside a transaction. */
int jl_store_claim_job(jl_store *s, int64_t machine_id, bool random_order, int64_t now_us,
                       int64_t *ret_job_id);

/* ---- notifications (PostgreSQL LISTEN/NOTIFY; `joule submit` wakes an idle runner) ---- */

/* Send `payload` (may be NULL: empty) on `channel` (a plain identifier): delivered to every listener when
 * the current transaction commits, or at once outside one. SQLite: -EOPNOTSUPP (the runner polls). */
int jl_store_notify(jl_store *s, const char *channel, const char *payload);
/* Start listening on `channel` (a plain identifier) on this connection. Channels listened to are listened
 * to again after jl_store_reconnect(). SQLite: -EOPNOTSUPP. */
int jl_store_listen(jl_store *s, const char *channel);
/* The connection's socket, to poll() for POLLIN together with other descriptors before calling
 * jl_store_wait_notify() with timeout 0; changes after jl_store_reconnect(). SQLite: -EOPNOTSUPP. */
int jl_store_notify_fd(jl_store *s);
/* Wait up to timeout_ms (0: do not wait) for a notification on a channel listened to. Returns 1 with the
 * channel and payload copied (truncated to fit; either buffer may be NULL) when one is there, 0 when the
 * time ran out, -EINTR when a signal interrupted the wait, -ECONNRESET when the connection was lost.
 * Notifications that arrived while other statements ran are kept and returned first. SQLite:
 * -EOPNOTSUPP. */
int jl_store_wait_notify(jl_store *s, int timeout_ms, char *ret_channel, size_t channel_size,
                         char *ret_payload, size_t payload_size);

/* ---- report queries (`joule report`, bench/bench-query) ---- */

/* The SQL of `joule report --by by` ("node", "partition" or "cluster"; NULL for anything else) over
 * [$1, $2) (µs): from the periodic_aggregations windows of scope $3 that lie inside the range when
 * aggregations is set, else from the periodic_metrics records that lie inside it. Each row: key, energy
 * (µJ), first start, last end (µs), and the time the key's windows or records cover inside the range (µs:
 * the union of their spans, so that nodes reporting side by side count once and gaps count not at all),
 * and the time of the records whose energy was estimated across counter wraps (periodic_metrics.gap_us;
 * 0 from the aggregations).
 * Both read the start_us index bounded on both sides: the cost follows the data inside the range. */
const char *jl_store_report_sql(const char *by, bool aggregations);

/* The SQL of `joule acct`: the job steps (steps rows, one per step and node) that ran in [from, to), that
 * is began before $1 (to) and had not ended before $2 (from), in (job_id, step_id, node) order, with
 * $3 = from minus the longest finished step (jl_store_acct_longest_us()), then the user ($4) when user is
 * set and the job id (the next number) when job is set. Rows: job_id, step_id, user_name, node, start_us,
 * end_us, energy_uj, complete. Finished steps are read through the start_us index bounded on both sides,
 * running ones through an index of running steps: the cost does not depend on the history outside the
 * range. Returns 0, or -ENOBUFS when size is too small. */
int jl_store_acct_sql(bool user, bool job, char *buf, size_t size);
/* The duration of the longest finished job step (µs; 0 when there is none), through an index. */
int jl_store_acct_longest_us(jl_store *s, int64_t *ret_us);
