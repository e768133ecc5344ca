/* test-store.c - the store's tests, the same on SQLite and PostgreSQL: URL handling and errors,
 * migrations, round trips of every type, duplicates dropped, bulk insert, transactions, and the atomic
 * job claim by two connections at once. The database comes from argv[1] or $JOULE_TEST_DATABASE_URL and
 * must be empty (tests/with-postgres.sh makes one); with neither, a temporary SQLite file is used. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "macro.h"
#include "cluster.h"
#include "store.h"
#include "tap.h"
#include "timeutil.h"

static const char *url;
static char tmpdir[64];

static int64_t query_int(jl_store *s, const char *sql)
{
        _cleanup_stmt_ jl_stmt *st = NULL;
        if (jl_store_prepare(s, sql, &st) < 0 || jl_stmt_step(st) != JL_STORE_ROW) {
                printf("# query failed: %s: %s\n", sql, jl_store_error(s));
                return -1;
        }
        return jl_stmt_column_int64(st, 0);
}

static int free_port(void)
{
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t len = sizeof(a);
        if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
            getsockname(fd, (struct sockaddr *)&a, &len) < 0) {
                if (fd >= 0)
                        close(fd);
                return 1;
        }
        close(fd); /* nothing listens there now */
        return ntohs(a.sin_port);
}

static void test_urls(void)
{
        char buf[256], err[512];
        jl_store_backend b;
        const char *path;
        jl_store *s = NULL;

        is_str(
            jl_store_url_redact("postgresql://joule:s3cret@db:5432/joule?sslmode=require", buf, sizeof(buf)),
            "postgresql://joule:***@db:5432/joule?sslmode=require", "redact: user:password@");
        is_str(jl_store_url_redact("postgres://db/joule?user=j&password=s3cret&x=1", buf, sizeof(buf)),
               "postgres://db/joule?user=j&password=***&x=1", "redact: password= parameter");
        is_str(jl_store_url_redact("postgresql://joule@db/joule", buf, sizeof(buf)),
               "postgresql://joule@db/joule", "redact: no password, unchanged");
        is_str(jl_store_url_redact("/var/lib/joule/joule.db", buf, sizeof(buf)), "/var/lib/joule/joule.db",
               "redact: a path is unchanged");

        ok(jl_store_url_parse("/x/y.db", &b, &path) == 0 && b == JL_STORE_SQLITE &&
               strcmp(path, "/x/y.db") == 0,
           "url: a path is SQLite");
        ok(jl_store_url_parse("sqlite:rel.db", &b, &path) == 0 && b == JL_STORE_SQLITE &&
               strcmp(path, "rel.db") == 0,
           "url: sqlite:PATH");
        ok(jl_store_url_parse("sqlite:///abs.db", &b, &path) == 0 && strcmp(path, "/abs.db") == 0,
           "url: sqlite:///ABSPATH");
        ok(jl_store_url_parse("postgres://h/d", &b, NULL) == 0 && b == JL_STORE_POSTGRES,
           "url: postgres://");
        is_int(jl_store_url_parse("", &b, NULL), -EINVAL, "url: empty");
        is_int(jl_store_url_parse("sqlite:", &b, NULL), -EINVAL, "url: sqlite: without a path");

        is_int(jl_store_open("mysql://db/joule", 0, &s, err, sizeof(err)), -EPROTONOSUPPORT,
               "open: mysql:// refused");
        ok(strstr(err, "mysql://db/joule") && strstr(err, "scheme"),
           "open: message names the URL and cause: %s", err);
        is_int(jl_store_open("", 0, &s, err, sizeof(err)), -EINVAL, "open: empty URL");
        ok(s == NULL, "open: ret_store untouched on failure");

        char p[128];
        snprintf(p, sizeof(p), "%s/no/such/dir/x.db", tmpdir);
        is_int(jl_store_open(p, JL_STORE_OPEN_CREATE, &s, err, sizeof(err)), -ENOENT,
               "open: missing directory");
        ok(strstr(err, p) != NULL, "open: message names the path: %s", err);
        snprintf(p, sizeof(p), "%s/absent.db", tmpdir);
        is_int(jl_store_open(p, 0, &s, err, sizeof(err)), -ENOENT, "open: missing file without CREATE");
        ok(strstr(err, "joule db init") != NULL, "open: message says how to create it: %s", err);
        ok(access(p, F_OK) < 0, "open: nothing created without CREATE");

        snprintf(p, sizeof(p), "%s/garbage.db", tmpdir);
        FILE *f = fopen(p, "w");
        if (f) {
                for (int i = 0; i < 200; i++)
                        fputs("this is not a database file. ", f);
                fclose(f);
        }
        is_int(jl_store_open(p, 0, &s, err, sizeof(err)), -EBADMSG, "open: a file that is not a database");
        ok(strstr(err, "not a database") != NULL, "open: message says so: %s", err);

        char pg[256];
        int port = free_port();
        snprintf(pg, sizeof(pg), "postgresql://joule:s3cret@127.0.0.1:%d/joule?connect_timeout=5", port);
        is_int(jl_store_open(pg, 0, &s, err, sizeof(err)), -ECONNREFUSED, "open: no server on port %d",
               port);
        ok(strstr(err, "postgresql://joule:***@127.0.0.1") && !strstr(err, "s3cret"),
           "open: message names the URL without the password: %s", err);
        ok(strstr(err, "refused") != NULL, "open: message says why");
        int r = jl_store_open("postgresql://[::1/joule", 0, &s, err, sizeof(err));
        ok(r < 0, "open: malformed postgresql URL fails (%d): %s", r, err);
}

static void test_migrations(jl_store *s)
{
        int v = -1;
        is_int(jl_store_schema_version(s, &v), 0, "schema version of an empty database");
        is_int(v, 0, "empty database is at version 0");
        int latest = jl_store_schema_latest();
        ok(latest >= 2, "this build knows %d migrations", latest);
        ok(jl_store_migration_name(1) && jl_store_migration_name(latest) &&
               !jl_store_migration_name(latest + 1),
           "migrations are named");

        /* versions need not be contiguous (branches number theirs ahead) */
        int count = 0;
        for (int i = 1; i <= latest; i++)
                count += jl_store_migration_name(i) != NULL;
        int r = jl_store_migrate(s);
        is_int(r, count, "migrate from empty applies every migration");
        if (r < 0)
                printf("# %s\n", jl_store_error(s));
        is_int(jl_store_schema_version(s, &v), 0, "schema version after migrate");
        is_int(v, latest, "database is current");
        is_int(jl_store_migrate(s), 0, "migrate again is a no-op");
        is_int(query_int(s, "SELECT COUNT(*) FROM schema_version"), count,
               "one schema_version row per migration");

        static const char *const tables[] = {
            "nodes",
            "jobs",
            "steps",
            "applications",
            "loops",
            "periodic_metrics",
            "periodic_aggregations",
            "events",
            "global_energy",
            "machines",
            "bench_jobs",
            "runs",
            "measurement_values",
            "phase_stats",
            "runner_status",
            "emails",
            "notes",
            "changelog",
        };
        int present = 0;
        for (size_t i = 0; i < ARRAY_SIZE(tables); i++) {
                char sql[128];
                snprintf(sql, sizeof(sql), "SELECT COUNT(*) FROM %s", tables[i]);
                present += query_int(s, sql) == 0;
        }
        is_int(present, (int)ARRAY_SIZE(tables), "every table of DESIGN.md exists and is empty");
}

static void test_round_trip(jl_store *s)
{
        static const char tricky[] = "it's \"quoted\"; back\\slash\ttab\nnewline -- DROP TABLE events; "
                                     "Zürich ⚡ 電力 €";
        _cleanup_stmt_ jl_stmt *ins = NULL, *sel = NULL;
        int64_t id1 = 0, id2 = 0;

        /* parameters out of order and one used twice */
        int r = jl_store_prepare(s,
                                 "INSERT INTO events (kind, time_us, node, job_id, step_id, value, message) "
                                 "VALUES ($3, $1, $2, $4, $4, $5, $6) RETURNING id",
                                 &ins);
        is_int(r, 0, "prepare an INSERT … RETURNING id with $N out of order");
        if (r < 0) {
                printf("# %s\n", jl_store_error(s));
                return;
        }
        ok(jl_stmt_bind_text(ins, 6, tricky) == 0 && jl_stmt_bind_double(ins, 5, 1.0 / 3.0) == 0 &&
               jl_stmt_bind_int64(ins, 4, INT64_MIN) == 0 && jl_stmt_bind_text(ins, 3, "kind-a") == 0 &&
               jl_stmt_bind_text(ins, 2, "node-ü") == 0 && jl_stmt_bind_int64(ins, 1, INT64_MAX) == 0,
           "bind int64, double, text in any order");
        is_int(jl_stmt_insert_id(ins, &id1), 1, "insert returns an id");
        is_int(jl_stmt_changes(ins), 1, "one row changed");

        ok(jl_stmt_bind_null(ins, 2) == 0 && jl_stmt_bind_null(ins, 5) == 0 &&
               jl_stmt_bind_text(ins, 6, NULL) == 0 && jl_stmt_bind_int64(ins, 4, -1) == 0 &&
               jl_stmt_bind_int64(ins, 1, 0) == 0,
           "bind NULLs (bindings of the other parameters kept)");
        is_int(jl_stmt_insert_id(ins, &id2), 1, "second insert returns an id");
        ok(id2 > id1 && id1 > 0, "ids increase (%" PRId64 ", %" PRId64 ")", id1, id2);
        is_int(jl_stmt_bind_int64(ins, 7, 1), -ERANGE, "bind a parameter the statement does not have");
        ok(jl_store_error(s)[0] != '\0', "… with a message: %s", jl_store_error(s));

        r = jl_store_prepare(s,
                             "SELECT id, time_us, node, job_id, step_id, value, message, kind FROM events "
                             "WHERE id >= $1 ORDER BY id",
                             &sel);
        is_int(r, 0, "prepare a SELECT");
        if (r < 0)
                return;
        is_int(jl_stmt_column_count(sel), 8, "column count before stepping");
        is_str(jl_stmt_column_name(sel, 2), "node", "column name");
        jl_stmt_bind_int64(sel, 1, id1);
        is_int(jl_stmt_step(sel), JL_STORE_ROW, "first row");
        is_int(jl_stmt_column_int64(sel, 0), id1, "id");
        ok(jl_stmt_column_int64(sel, 1) == INT64_MAX, "INT64_MAX round trip");
        is_str(jl_stmt_column_text(sel, 2), "node-ü", "UTF-8 text round trip");
        ok(jl_stmt_column_int64(sel, 3) == INT64_MIN && jl_stmt_column_int64(sel, 4) == INT64_MIN,
           "INT64_MIN round trip, one parameter used twice");
        ok(jl_stmt_column_double(sel, 5) == 1.0 / 3.0, "double round trip is exact");
        is_str(jl_stmt_column_text(sel, 6), tricky, "quotes, backslash, tab, newline and UTF-8 round trip");
        is_str(jl_stmt_column_text(sel, 7), "kind-a", "text");
        ok(!jl_stmt_column_is_null(sel, 2), "not NULL");
        is_int(jl_stmt_step(sel), JL_STORE_ROW, "second row");
        ok(jl_stmt_column_is_null(sel, 2) && jl_stmt_column_text(sel, 2) == NULL, "NULL text reads as NULL");
        ok(jl_stmt_column_is_null(sel, 5) && isnan(jl_stmt_column_double(sel, 5)),
           "NULL double reads as NAN");
        ok(jl_stmt_column_is_null(sel, 6), "bound NULL via bind_text(NULL)");
        is_int(jl_stmt_column_int64(sel, 1), 0, "zero");
        is_int(jl_stmt_column_int64(sel, 3), -1, "negative");
        is_int(jl_stmt_step(sel), JL_STORE_DONE, "done");
        is_int(jl_stmt_step(sel), JL_STORE_DONE, "done stays done");
        ok(jl_stmt_column_is_null(sel, 0), "no row after done");
        is_int(jl_stmt_reset(sel), 0, "reset");
        is_int(jl_stmt_step(sel), JL_STORE_ROW, "runs again after reset");
        jl_stmt_bind_int64(sel, 1, id2); /* binding after a step resets */
        is_int(jl_stmt_step(sel), JL_STORE_ROW, "rebinding resets the statement");
        is_int(jl_stmt_column_int64(sel, 0), id2, "… and uses the new value");
        jl_stmt_finalize(TAKE_PTR(sel));

        /* doubles that are awkward in text */
        _cleanup_stmt_ jl_stmt *d = NULL;
        if (jl_store_prepare(s, "INSERT INTO events (time_us, kind, value) VALUES (1, 'd', $1)", &d) == 0) {
                static const double vals[] = {-1e300, 5e-324, 123456789.123456789, -0.0};
                bool all = true;
                for (size_t i = 0; i < ARRAY_SIZE(vals); i++)
                        all &= jl_stmt_bind_double(d, 1, vals[i]) == 0 && jl_stmt_step(d) == JL_STORE_DONE;
                ok(all, "insert extreme doubles");
                _cleanup_stmt_ jl_stmt *q = NULL;
                jl_store_prepare(s, "SELECT value FROM events WHERE kind = 'd' ORDER BY id", &q);
                bool same = q != NULL;
                for (size_t i = 0; q && i < ARRAY_SIZE(vals); i++)
                        same &= jl_stmt_step(q) == JL_STORE_ROW && jl_stmt_column_double(q, 0) == vals[i];
                ok(same, "extreme doubles round trip exactly");
        }
}

static void test_duplicates(jl_store *s)
{
        _cleanup_stmt_ jl_stmt *ins = NULL, *plain = NULL;
        int64_t id;
        int r = jl_store_prepare(
            s,
            "INSERT INTO periodic_metrics (node, seq, start_us, end_us, energy_uj, avg_power_w) "
            "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING RETURNING id",
            &ins);
        is_int(r, 0, "prepare INSERT … ON CONFLICT DO NOTHING RETURNING id");
        if (r < 0) {
                printf("# %s\n", jl_store_error(s));
                return;
        }
        jl_stmt_bind_text(ins, 1, "dup-node");
        jl_stmt_bind_int64(ins, 2, 7);
        jl_stmt_bind_int64(ins, 3, 1000000);
        jl_stmt_bind_int64(ins, 4, 11000000);
        jl_stmt_bind_int64(ins, 5, 2500000000);
        jl_stmt_bind_double(ins, 6, 250.0);
        is_int(jl_stmt_insert_id(ins, &id), 1, "first (node, seq) inserted");
        is_int(jl_stmt_insert_id(ins, &id), 0, "duplicate (node, seq) dropped: no id");
        is_int(jl_stmt_changes(ins), 0, "… and no row changed");
        is_int(query_int(s, "SELECT COUNT(*) FROM periodic_metrics WHERE node = 'dup-node'"), 1,
               "one row stored");

        r = jl_store_prepare(s,
                             "INSERT INTO periodic_metrics (node, seq, start_us, end_us, energy_uj) "
                             "VALUES ('dup-node', 7, 1, 2, 3)",
                             &plain);
        is_int(r, 0, "prepare a plain INSERT");
        if (r == 0) {
                is_int(jl_stmt_step(plain), -EEXIST, "without ON CONFLICT a duplicate is -EEXIST");
                ok(jl_store_error(s)[0] != '\0', "… with a message: %s", jl_store_error(s));
        }
}

static void test_bulk(jl_store *s)
{
        static const char *const cols[] = {"node",         "seq",        "start_us",
                                           "end_us",       "energy_uj",  "avg_power_w",
                                           "domains_json", "max_temp_c", "job_id"};
        const int n = 20000;
        jl_bulk *b = NULL;
        char node[32];

        uint64_t t0 = mono_ns();
        int r =
            jl_store_bulk_begin(s, "periodic_metrics", cols, ARRAY_SIZE(cols), JL_BULK_IGNORE_CONFLICTS, &b);
        is_int(r, 0, "bulk begin");
        if (r < 0) {
                printf("# %s\n", jl_store_error(s));
                return;
        }
        bool all = true;
        for (int i = 0; i < n && all; i++) {
                /* 100 nodes; the last 50 rows repeat earlier (node, seq) pairs and must be dropped */
                int k = i < n - 50 ? i : i - 1000;
                snprintf(node, sizeof(node), "node%03d", k % 100);
                all &= jl_bulk_text(b, node) == 0;
                all &= jl_bulk_int64(b, k / 100) == 0;
                all &= jl_bulk_int64(b, 1700000000000000 + (int64_t)k * 1000) == 0;
                all &= jl_bulk_int64(b, 1700000000000000 + (int64_t)k * 1000 + 1000) == 0;
                all &= jl_bulk_int64(b, 1000 + k) == 0;
                all &= jl_bulk_double(b, k * 0.5) == 0;
                all &= jl_bulk_text(b, i == 3 ? "{\"a\\b\":\t1,\n\"ü\":2}" : "{\"package-0\":1}") == 0;
                all &= (i % 2 ? jl_bulk_null(b) : jl_bulk_double(b, 40.5)) == 0;
                all &= (i % 3 ? jl_bulk_int64(b, 42) : jl_bulk_text(b, NULL)) == 0;
                all &= jl_bulk_row_end(b) == 0;
        }
        ok(all, "append %d rows", n);
        uint64_t rows = 0;
        r = jl_bulk_finish(b, &rows);
        double secs = (double)(mono_ns() - t0) / 1e9;
        is_int(r, 0, "bulk finish");
        if (r < 0)
                printf("# %s\n", jl_store_error(s));
        is_int(rows, n - 50, "rows inserted, duplicates within the batch dropped");
        printf("# bulk insert (%s): %d rows in %.3f s, %.0f rows/s\n",
               jl_store_backend_name(jl_store_get_backend(s)), n, secs, n / secs);
        is_int(query_int(s, "SELECT COUNT(*) FROM periodic_metrics WHERE node LIKE 'node%'"), n - 50,
               "count");
        is_int(query_int(s, "SELECT SUM(energy_uj) FROM periodic_metrics WHERE node LIKE 'node%'"),
               (int64_t)(n - 50) * 1000 + (int64_t)(n - 50) * (n - 51) / 2, "energy sum");
        is_int(
            query_int(s, "SELECT COUNT(*) FROM periodic_metrics WHERE node LIKE 'node%' AND job_id IS NULL"),
            (n - 50 + 2) / 3, "NULLs in bulk rows");
        _cleanup_stmt_ jl_stmt *q = NULL;
        if (jl_store_prepare(
                s,
                "SELECT domains_json, max_temp_c FROM periodic_metrics WHERE node = 'node003' AND seq = 0",
                &q) == 0 &&
            jl_stmt_step(q) == JL_STORE_ROW) {
                is_str(jl_stmt_column_text(q, 0), "{\"a\\b\":\t1,\n\"ü\":2}",
                       "bulk text with escapes round trips");
                ok(jl_stmt_column_is_null(q, 1), "bulk NULL double");
        } else
                ok(false, "bulk row readable: %s", jl_store_error(s));

        /* a second batch overlapping the first entirely: nothing new */
        r = jl_store_bulk_begin(s, "periodic_metrics", cols, 5, JL_BULK_IGNORE_CONFLICTS, &b);
        for (int i = 0; r == 0 && i < 10; i++) {
                snprintf(node, sizeof(node), "node%03d", i);
                r = jl_bulk_text(b, node) ?: jl_bulk_int64(b, 0) ?: jl_bulk_int64(b, 1) ?: jl_bulk_int64(b, 2) ?:
                    jl_bulk_int64(b, 3) ?: jl_bulk_row_end(b);
        }
        rows = 99;
        if (r == 0)
                r = jl_bulk_finish(b, &rows);
        ok(r == 0 && rows == 0, "a batch of duplicates inserts nothing");

        /* without IGNORE_CONFLICTS a duplicate fails the whole batch, which is rolled back */
        int64_t before = query_int(s, "SELECT COUNT(*) FROM periodic_metrics");
        r = jl_store_bulk_begin(s, "periodic_metrics", cols, 5, 0, &b);
        for (int i = 0; r == 0 && i < 10; i++) {
                snprintf(node, sizeof(node), i == 5 ? "node000" : "fresh%d", i);
                r = jl_bulk_text(b, node) ?: jl_bulk_int64(b, 0) ?: jl_bulk_int64(b, 1) ?: jl_bulk_int64(b, 2) ?:
                    jl_bulk_int64(b, 3) ?: jl_bulk_row_end(b);
        }
        if (r == 0)
                r = jl_bulk_finish(b, &rows);
        else
                jl_bulk_abort(b);
        is_int(r, -EEXIST, "a duplicate without IGNORE_CONFLICTS fails the batch");
        ok(jl_store_error(s)[0] != '\0', "… with a message: %s", jl_store_error(s));
        is_int(query_int(s, "SELECT COUNT(*) FROM periodic_metrics"), before,
               "… and nothing of it is stored");
        ok(!jl_store_in_transaction(s), "… and the transaction is closed");

        /* misuse */
        r = jl_store_bulk_begin(s, "periodic_metrics", cols, 2, 0, &b);
        if (r == 0) {
                jl_bulk_text(b, "x");
                is_int(jl_bulk_row_end(b), -EINVAL, "a short row is refused");
                is_int(jl_bulk_finish(b, NULL), -EINVAL, "… and the batch is lost");
        }
        static const char *const bad[] = {"node; DROP TABLE nodes"};
        is_int(jl_store_bulk_begin(s, "periodic_metrics", bad, 1, 0, &b), -EINVAL,
               "a bad column name is refused");
        is_int(jl_store_bulk_begin(s, "no_such_table", cols, 1, 0, &b), -EINVAL, "an unknown table fails");
        ok(!jl_store_in_transaction(s), "… and leaves no transaction open");
        is_int(query_int(s, "SELECT COUNT(*) FROM periodic_metrics"), before,
               "the store is usable afterwards");
}

static void test_transactions(jl_store *s, jl_store *s2)
{
        int64_t before = query_int(s, "SELECT COUNT(*) FROM changelog");
        is_int(jl_store_begin(s), 0, "begin");
        ok(jl_store_in_transaction(s), "in a transaction");
        is_int(jl_store_begin(s), -EBUSY, "begin twice is refused");
        is_int(jl_store_exec(s, "INSERT INTO changelog (time_us, message) VALUES (1, 'rolled back')"), 0,
               "insert");
        is_int(query_int(s, "SELECT COUNT(*) FROM changelog"), before + 1, "visible inside");
        is_int(query_int(s2, "SELECT COUNT(*) FROM changelog"), before, "not visible to another connection");
        is_int(jl_store_rollback(s), 0, "rollback");
        is_int(query_int(s, "SELECT COUNT(*) FROM changelog"), before, "rolled back");
        is_int(jl_store_rollback(s), 0, "rollback without a transaction is a no-op");
        is_int(jl_store_commit(s), -EINVAL, "commit without a transaction is refused");

        is_int(jl_store_begin_immediate(s), 0, "begin immediate");
        is_int(jl_store_exec(s, "INSERT INTO changelog (time_us, message) VALUES (2, 'kept')"), 0, "insert");
        is_int(jl_store_commit(s), 0, "commit");
        is_int(query_int(s2, "SELECT COUNT(*) FROM changelog"), before + 1,
               "committed rows visible to another connection");

        /* an error inside a transaction, then rollback: the store recovers */
        jl_store_begin(s);
        jl_store_exec(s, "INSERT INTO changelog (time_us, message) VALUES (3, 'lost')");
        int r = jl_store_exec(s, "INSERT INTO changelog (time_us) VALUES (4)");
        is_int(r, -EINVAL, "NOT NULL violation inside a transaction");
        is_int(jl_store_rollback(s), 0, "rollback after the error");
        is_int(query_int(s, "SELECT COUNT(*) FROM changelog"), before + 1, "nothing of it stored");

        /* committing a transaction that had an error: PostgreSQL has aborted it and says so; SQLite keeps
         * the statements that worked. Either way the connection is usable afterwards. */
        jl_store_begin(s);
        jl_store_exec(s, "INSERT INTO changelog (time_us) VALUES (5)");
        r = jl_store_commit(s);
        ok(jl_store_get_backend(s) == JL_STORE_POSTGRES ? r == -ECANCELED : r == 0,
           "commit after an error: %d %s", r, jl_store_error(s));
        ok(!jl_store_in_transaction(s) && query_int(s, "SELECT COUNT(*) FROM changelog") == before + 1,
           "… no transaction left open, store usable");
}

static void test_errors(jl_store *s)
{
        jl_stmt *st = NULL;
        is_int(jl_store_prepare(s, "SELEC 1", &st), -EINVAL, "syntax error");
        ok(st == NULL && strlen(jl_store_error(s)) > 0, "… message: %s", jl_store_error(s));
        is_int(jl_store_prepare(s, "SELECT * FROM no_such_table", &st), -EINVAL, "unknown table");
        ok(strstr(jl_store_error(s), "no_such_table") != NULL, "… message names it: %s", jl_store_error(s));
        is_int(jl_store_exec(s, "INSERT INTO no_such_table VALUES (1)"), -EINVAL, "exec of wrong SQL");
        is_int(jl_store_prepare(s, "SELECT id FROM events WHERE id = ?", &st), -EINVAL,
               "'?' parameters refused");
        is_int(jl_store_prepare(s, "", &st), -EINVAL, "empty statement");
        is_int(jl_store_exec(
                   s, "INSERT INTO bench_jobs (machine_id, state, created_us) VALUES (1, 'BOGUS', 1)"),
               -EINVAL, "CHECK on bench_jobs.state");
        is_int(jl_store_exec(s, "INSERT INTO bench_jobs (machine_id, created_us) VALUES (424242, 1)"),
               -EINVAL, "foreign key bench_jobs.machine_id -> machines");
        ok(strlen(jl_store_error(s)) > 0, "… message: %s", jl_store_error(s));
        is_int(jl_store_exec(s, "INSERT INTO machines (id, description) VALUES (900, 'm')"), 0, "a machine");
        is_int(jl_store_exec(s, "INSERT INTO machines (id, description) VALUES (901, 'm')"), -EEXIST,
               "machines.description is unique");
        is_int(jl_store_exec(s, "DELETE FROM machines WHERE id = 900"), 0, "cleanup");
}

static void test_reconnect(jl_store *s, jl_store *s2)
{
        if (jl_store_get_backend(s) != JL_STORE_POSTGRES) {
                is_int(jl_store_reconnect(s), 0, "reconnect is a no-op on SQLite");
                return;
        }
        _cleanup_stmt_ jl_stmt *st = NULL;
        int r = jl_store_prepare(s, "SELECT COUNT(*) FROM changelog WHERE time_us >= $1", &st);
        if (r < 0) {
                ok(false, "prepare: %s", jl_store_error(s));
                return;
        }
        jl_stmt_bind_int64(st, 1, 0);
        is_int(jl_stmt_step(st), JL_STORE_ROW, "a statement works");
        jl_stmt_reset(st);

        /* the server ends this connection's session, as a restart or an administrator would */
        char sql[128];
        snprintf(sql, sizeof(sql), "SELECT pg_terminate_backend(%" PRId64 ", 5000)",
                 query_int(s, "SELECT pg_backend_pid()"));
        is_int(query_int(s2, sql), 1, "the server terminates the session");
        is_int(jl_stmt_step(st), -ECONNRESET, "the next step reports -ECONNRESET");
        ok(strstr(jl_store_error(s), "connection") != NULL, "… with a message: %s", jl_store_error(s));
        is_int(jl_store_exec(s, "SELECT 1"), -ECONNRESET, "exec too, no crash");
        is_int(jl_store_reconnect(s), 0, "reconnect");
        jl_stmt_reset(st);
        is_int(jl_stmt_step(st), JL_STORE_ROW, "the statement prepared before works again");
        ok(jl_stmt_column_int64(st, 0) > 0, "… with the data");
        _cleanup_stmt_ jl_stmt *fresh = NULL;
        ok(jl_store_prepare(s, "SELECT 1", &fresh) == 0 && jl_stmt_step(fresh) == JL_STORE_ROW,
           "new statements work after reconnecting");
}

/* ---- the claim: two connections, each in its own thread ---- */

#define CLAIM_JOBS 60

typedef struct {
        int64_t machine;
        bool random;
        int64_t got[CLAIM_JOBS + 1];
        int n, err;
        char msg[512];
} claimer;

static void *claim_thread(void *arg)
{
        claimer *c = arg;
        _cleanup_store_ jl_store *s = NULL;
        if (jl_store_open(url, 0, &s, c->msg, sizeof(c->msg)) < 0) {
                c->err = -1;
                return NULL;
        }
        for (;;) {
                int64_t id;
                int r = jl_store_claim_job(s, c->machine, c->random, 5, &id);
                if (r == -EBUSY || r == -EAGAIN)
                        continue;
                if (r < 0) {
                        c->err = r;
                        snprintf(c->msg, sizeof(c->msg), "%s", jl_store_error(s));
                        return NULL;
                }
                if (r == 0)
                        return NULL;
                if (c->n < CLAIM_JOBS + 1)
                        c->got[c->n++] = id;
        }
}

static void race(jl_store *s, int64_t machine, bool random)
{
        claimer a = {.machine = machine, .random = random}, b = a;
        pthread_t ta, tb;
        pthread_create(&ta, NULL, claim_thread, &a);
        pthread_create(&tb, NULL, claim_thread, &b);
        pthread_join(ta, NULL);
        pthread_join(tb, NULL);
        ok(a.err == 0 && b.err == 0,
           "two connections claim for machine %" PRId64 " (%s) without errors %s%s", machine,
           random ? "random" : "fifo", a.msg, b.msg);
        is_int(a.n + b.n, CLAIM_JOBS, "every job claimed (%d + %d)", a.n, b.n);
        bool dup = false;
        for (int i = 0; i < a.n; i++)
                for (int j = 0; j < b.n; j++)
                        dup |= a.got[i] == b.got[j];
        ok(!dup, "no job claimed twice");
        char sql[160];
        snprintf(sql, sizeof(sql),
                 "SELECT COUNT(*) FROM bench_jobs WHERE machine_id = %" PRId64 " AND state = 'RUNNING'",
                 machine);
        is_int(query_int(s, sql), CLAIM_JOBS, "all of them RUNNING");
}

/* The runtime's records (cluster.h): replays store nothing twice, a later signature replaces the step's,
 * an older one (a replay) does not, NAN is NULL. */
static void test_runtime_records(jl_store *s)
{
        jl_store_rt app = {.kind = JL_STORE_RT_APP,
                           .node = "rtn",
                           .seq = 10,
                           .job_id = 77,
                           .step_id = 0,
                           .time_us = 1000,
                           .name = "app1",
                           .policy = "min_energy",
                           .tag = "t",
                           .policy_th = 0.05,
                           .time_s = 2,
                           .energy_j = 3.5,
                           .avg_power_w = 1.75,
                           .pck_power_w = NAN,
                           .dram_power_w = NAN,
                           .cpi = NAN,
                           .tpi = NAN,
                           .gbs = 4,
                           .gflops = NAN,
                           .time_per_iteration_s = NAN,
                           .value = NAN,
                           .avg_cpufreq_khz = 0,
                           .def_cpufreq_khz = 2400000};
        jl_store_rt loop = app, ev = app;
        loop.kind = JL_STORE_RT_LOOP;
        loop.seq = 11;
        loop.name = "1:2:3";
        loop.iterations = 40;
        ev.kind = JL_STORE_RT_EVENT;
        ev.seq = 12;
        ev.name = "frequency";
        ev.value = 2000000;
        ev.message = "2 CPUs";
        jl_store_rt all[] = {app, loop, ev};
        is_int(jl_store_put_rt(s, all, 3), 0, "runtime records stored");
        is_int(jl_store_put_rt(s, all, 3), 0, "the same records again (a replay)");
        is_int(query_int(s, "SELECT COUNT(*) FROM applications WHERE job_id = 77"), 1,
               "one applications row");
        is_int(query_int(s, "SELECT COUNT(*) FROM loops WHERE job_id = 77"), 1,
               "one loops row after the replay");
        is_int(query_int(s, "SELECT COUNT(*) FROM events WHERE job_id = 77"), 1,
               "one events row after the replay");
        is_int(query_int(s, "SELECT energy_uj FROM applications WHERE job_id = 77"), 3500000,
               "energy in µJ");
        is_int(query_int(s, "SELECT COUNT(*) FROM applications WHERE job_id = 77 AND cpi IS NULL AND "
                            "avg_freq_khz IS NULL AND def_freq_khz = 2400000"),
               1, "NAN and 0 kHz are NULL");
        jl_store_rt later = app;
        later.seq = 20;
        later.name = "app2";
        is_int(jl_store_put_rt(s, &later, 1), 0, "a later signature of the step");
        is_int(query_int(s, "SELECT COUNT(*) FROM applications WHERE job_id = 77 AND app_name = 'app2'"), 1,
               "it replaces the step's row");
        is_int(jl_store_put_rt(s, &app, 1), 0, "the older one replayed");
        is_int(query_int(s, "SELECT COUNT(*) FROM applications WHERE job_id = 77 AND app_name = 'app2'"), 1,
               "does not overwrite the later one");
        jl_store_rt bad = app;
        bad.kind = 9;
        ok(jl_store_put_rt(s, &bad, 1) < 0, "an unknown kind is refused");
}

static void test_claim(jl_store *s)
{
        is_int(jl_store_exec(
                   s, "INSERT INTO machines (id, description) VALUES (1, 'one'), (2, 'two'), (3, 'three')"),
               0, "three machines");
        _cleanup_stmt_ jl_stmt *ins = NULL;
        int r = jl_store_prepare(
            s, "INSERT INTO bench_jobs (machine_id, name, created_us) VALUES ($1, $2, $3) RETURNING id",
            &ins);
        if (r < 0) {
                ok(false, "prepare: %s", jl_store_error(s));
                return;
        }
        jl_store_begin(s);
        int64_t first3 = 0, id;
        for (int m = 1; m <= 3; m++)
                for (int i = 0; i < CLAIM_JOBS; i++) {
                        jl_stmt_bind_int64(ins, 1, m);
                        jl_stmt_bind_text(ins, 2, "job");
                        /* machine 3: created in reverse order of id, so FIFO follows created_us */
                        jl_stmt_bind_int64(ins, 3, m == 3 ? 1000 - i : 100 + i);
                        if (jl_stmt_insert_id(ins, &id) == 1 && m == 3 && i == CLAIM_JOBS - 1)
                                first3 = id;
                }
        is_int(jl_store_commit(s), 0, "%d jobs queued", 3 * CLAIM_JOBS);

        int64_t got = 0;
        is_int(jl_store_claim_job(s, 3, false, 77, &got), 1, "claim one job FIFO");
        is_int(got, first3, "the oldest job (by created_us)");
        is_int(query_int(s, "SELECT started_us FROM bench_jobs WHERE state = 'RUNNING'"), 77,
               "started_us set");
        is_int(jl_store_claim_job(s, 4, false, 1, &got), 0, "no job for an unknown machine");
        jl_store_exec(s, "UPDATE bench_jobs SET state = 'WAITING' WHERE machine_id = 3");

        race(s, 1, false);
        race(s, 2, true);
        is_int(query_int(s, "SELECT COUNT(*) FROM bench_jobs WHERE machine_id = 3 AND state = 'WAITING'"),
               CLAIM_JOBS, "the other machine's jobs untouched");

        /* while one connection holds the claim transaction, the other still gets a different job
         * (PostgreSQL: SKIP LOCKED) or waits for the first to commit (SQLite: BEGIN IMMEDIATE) */
        jl_store *s2 = NULL;
        char err[512];
        if (jl_store_open(url, 0, &s2, err, sizeof(err)) < 0) {
                ok(false, "second connection: %s", err);
                return;
        }
        if (jl_store_get_backend(s) == JL_STORE_POSTGRES) {
                _cleanup_stmt_ jl_stmt *pick = NULL;
                jl_store_begin(s);
                jl_store_prepare(s,
                                 "SELECT id FROM bench_jobs WHERE machine_id = 3 AND state = 'WAITING' "
                                 "ORDER BY created_us, id LIMIT 1 FOR UPDATE SKIP LOCKED",
                                 &pick);
                ok(pick && jl_stmt_step(pick) == JL_STORE_ROW, "connection A locks the oldest job");
                int64_t locked = pick ? jl_stmt_column_int64(pick, 0) : -1;
                is_int(jl_store_claim_job(s2, 3, false, 1, &got), 1, "connection B claims meanwhile");
                ok(got != locked, "… a different job (%" PRId64 " vs %" PRId64 ")", got, locked);
                jl_store_rollback(s);
        } else {
                is_int(jl_store_begin_immediate(s), 0, "connection A holds the write lock");
                is_int(jl_store_exec(s2, "PRAGMA busy_timeout = 100"), 0,
                       "connection B waits at most 100 ms");
                is_int(jl_store_claim_job(s2, 3, false, 1, &got), -EBUSY,
                       "connection B cannot claim meanwhile");
                ok(strlen(jl_store_error(s2)) > 0, "… and says why: %s", jl_store_error(s2));
                jl_store_rollback(s);
                is_int(jl_store_claim_job(s2, 3, false, 1, &got), 1, "… and can once A is done");
        }
        jl_store_close(s2);
}

int main(int argc, char **argv)
{
        char path[128];
        snprintf(tmpdir, sizeof(tmpdir), "/tmp/test-store-XXXXXX");
        if (!mkdtemp(tmpdir)) {
                perror("mkdtemp");
                return 1;
        }
        url = argc > 1 ? argv[1] : getenv("JOULE_TEST_DATABASE_URL");
        if (!url || !*url) {
                snprintf(path, sizeof(path), "sqlite:%s/store.db", tmpdir);
                url = path;
        }
        printf("# database: %s\n", url);

        test_urls();

        _cleanup_store_ jl_store *s = NULL, *s2 = NULL;
        char err[512];
        int r = jl_store_open(url, JL_STORE_OPEN_CREATE, &s, err, sizeof(err));
        is_int(r, 0, "open %s", url);
        if (r < 0) {
                printf("# %s\n", err);
                return tap_done();
        }
        r = jl_store_open(url, 0, &s2, err, sizeof(err));
        is_int(r, 0, "open a second connection");
        if (r < 0) {
                printf("# %s\n", err);
                return tap_done();
        }

        test_migrations(s);
        int v = 0;
        jl_store_schema_version(s, &v);
        if (v != jl_store_schema_latest()) {
                printf("Bail out! the schema is not current: %s\n", jl_store_error(s));
                return 1;
        }
        test_round_trip(s);
        test_duplicates(s);
        test_bulk(s);
        test_transactions(s, s2);
        test_errors(s);
        test_reconnect(s, s2);
        test_claim(s);
        test_runtime_records(s);

        jl_store_close(TAKE_PTR(s2));
        jl_store_close(TAKE_PTR(s));
        char cmd[160];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
        if (system(cmd) != 0)
                printf("# could not remove %s\n", tmpdir);
        return tap_done();
}
