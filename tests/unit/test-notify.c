/* test-notify.c - the store's LISTEN/NOTIFY helpers (jl_store_notify / listen / notify_fd / wait_notify):
 * on PostgreSQL a notification sent by one connection reaches a listener on another at once (also through
 * poll() on jl_store_notify_fd), only after the commit when sent inside a transaction, with the timeout
 * honoured when nothing comes, and again after the listener's session was killed and reconnected; bad
 * channel names are refused; on SQLite every helper answers -EOPNOTSUPP. TAP.
 *
 *   test-notify [URL]                    the tests (URL or $JOULE_TEST_DATABASE_URL; none: SQLite in /tmp)
 *   test-notify listen URL CHANNEL MS    listen, print "ready", then the first payload that comes within
 *                                        MS ms (exit 0), or exit 1 on timeout (used by test-queue.sh) */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "parse.h"
#include "store.h"
#include "tap.h"
#include "timeutil.h"

static double elapsed_ms(uint64_t t0)
{
        return (double)(mono_ns() - t0) / 1e6;
}

static int listen_mode(const char *url, const char *channel, const char *ms)
{
        uint64_t timeout_ms;
        char err[512], ch[64], payload[256];
        jl_store *s = NULL;
        if (parse_u64(ms, &timeout_ms) < 0 || timeout_ms > 600000) {
                fprintf(stderr, "bad timeout '%s'\n", ms);
                return 2;
        }
        if (jl_store_open(url, 0, &s, err, sizeof(err)) < 0) {
                fprintf(stderr, "%s\n", err);
                return 2;
        }
        int r = jl_store_listen(s, channel);
        if (r < 0) {
                fprintf(stderr, "listen: %s\n", jl_store_error(s));
                jl_store_close(s);
                return 2;
        }
        printf("ready\n");
        fflush(stdout);
        r = jl_store_wait_notify(s, (int)timeout_ms, ch, sizeof(ch), payload, sizeof(payload));
        if (r == 1)
                printf("%s %s\n", ch, payload);
        else if (r < 0)
                fprintf(stderr, "wait: %s\n", jl_store_error(s));
        jl_store_close(s);
        return r == 1 ? 0 : 1;
}

static void test_sqlite(const char *url)
{
        char err[512];
        jl_store *s = NULL;
        int r = jl_store_open(url, JL_STORE_OPEN_CREATE, &s, err, sizeof(err));
        if (!ok(r == 0, "open SQLite %s", url)) {
                printf("#   %s\n", err);
                return;
        }
        is_int(jl_store_notify(s, "joule_jobs", "1"), -EOPNOTSUPP, "SQLite: notify is -EOPNOTSUPP");
        is_int(jl_store_listen(s, "joule_jobs"), -EOPNOTSUPP, "SQLite: listen is -EOPNOTSUPP");
        is_int(jl_store_notify_fd(s), -EOPNOTSUPP, "SQLite: notify_fd is -EOPNOTSUPP");
        is_int(jl_store_wait_notify(s, 10, NULL, 0, NULL, 0), -EOPNOTSUPP, "SQLite: wait is -EOPNOTSUPP");
        ok(strstr(jl_store_error(s), "notifications") != NULL, "SQLite: the error says why ('%s')",
           jl_store_error(s));
        is_int(jl_store_notify(s, "bad channel", "1"), -EINVAL, "a channel that is no identifier: -EINVAL");
        jl_store_close(s);
}

static void test_postgres(const char *url)
{
        char err[512], ch[64], payload[256];
        jl_store *l = NULL, *n = NULL;
        if (!ok(jl_store_open(url, 0, &l, err, sizeof(err)) == 0, "open the listener's connection") ||
            !ok(jl_store_open(url, 0, &n, err, sizeof(err)) == 0, "open the notifier's connection")) {
                printf("#   %s\n", err);
                jl_store_close(l);
                return;
        }
        is_int(jl_store_listen(l, "joule_jobs"), 0, "LISTEN joule_jobs");
        is_int(jl_store_listen(l, "joule_jobs"), 0, "LISTEN again is harmless");
        is_int(jl_store_listen(l, "x; DROP TABLE y"), -EINVAL, "listen: an injected name is refused");
        is_int(jl_store_notify(n, "joule jobs", "1"), -EINVAL, "notify: a name with a space is refused");

        uint64_t t0 = mono_ns();
        is_int(jl_store_wait_notify(l, 200, ch, sizeof(ch), payload, sizeof(payload)), 0,
               "nothing sent: the wait times out");
        double ms = elapsed_ms(t0);
        ok(ms >= 190 && ms < 1500, "the timeout is honoured (%.0f ms for 200)", ms);
        is_int(jl_store_wait_notify(l, 0, NULL, 0, NULL, 0), 0, "timeout 0 does not wait");

        is_int(jl_store_notify(n, "joule_jobs", "42"), 0, "NOTIFY joule_jobs, '42'");
        t0 = mono_ns();
        is_int(jl_store_wait_notify(l, 5000, ch, sizeof(ch), payload, sizeof(payload)), 1,
               "the listener gets it");
        is_str(ch, "joule_jobs", "on the right channel");
        is_str(payload, "42", "with the payload");
        ok(elapsed_ms(t0) < 1000, "at once (%.1f ms)", elapsed_ms(t0));

        /* payloads with quotes are parameters, not SQL */
        is_int(jl_store_notify(n, "joule_jobs", "it's \"quoted\""), 0, "a payload with quotes");
        is_int(jl_store_wait_notify(l, 5000, NULL, 0, payload, sizeof(payload)), 1, "arrives");
        is_str(payload, "it's \"quoted\"", "unchanged");

        /* inside a transaction: only at commit */
        is_int(jl_store_begin(n), 0, "begin on the notifier");
        is_int(jl_store_notify(n, "joule_jobs", "7"), 0, "notify inside the transaction");
        is_int(jl_store_wait_notify(l, 300, NULL, 0, payload, sizeof(payload)), 0,
               "nothing before the commit");
        is_int(jl_store_commit(n), 0, "commit");
        is_int(jl_store_wait_notify(l, 5000, NULL, 0, payload, sizeof(payload)), 1,
               "delivered at the commit");
        is_str(payload, "7", "payload 7");

        /* a rolled-back notification is never delivered */
        jl_store_begin(n);
        jl_store_notify(n, "joule_jobs", "rolled back");
        jl_store_rollback(n);
        is_int(jl_store_wait_notify(l, 300, NULL, 0, payload, sizeof(payload)), 0,
               "a rollback sends nothing");

        /* the descriptor, for a poll() loop beside other fds */
        int fd = jl_store_notify_fd(l);
        ok(fd >= 0, "notify_fd is a descriptor (%d)", fd);
        jl_store_notify(n, "joule_jobs", "9");
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        ok(poll(&pfd, 1, 5000) == 1, "poll() on it wakes");
        is_int(jl_store_wait_notify(l, 0, NULL, 0, payload, sizeof(payload)), 1, "then wait(0) returns it");
        is_str(payload, "9", "payload 9");

        /* two notifications queue up: both returned, in order */
        jl_store_notify(n, "joule_jobs", "a");
        jl_store_notify(n, "joule_jobs", "b");
        usleep(100000);
        char p1[16] = "", p2[16] = "";
        jl_store_wait_notify(l, 2000, NULL, 0, p1, sizeof(p1));
        jl_store_wait_notify(l, 2000, NULL, 0, p2, sizeof(p2));
        ok(strcmp(p1, "a") == 0 && strcmp(p2, "b") == 0, "two notifications, in order ('%s', '%s')", p1, p2);

        /* notifications that arrive while the listener runs statements are kept */
        jl_store_notify(n, "joule_jobs", "during");
        usleep(100000);
        jl_store_exec(l, "SELECT 1");
        is_int(jl_store_wait_notify(l, 0, NULL, 0, payload, sizeof(payload)), 1,
               "a notification read during another statement is kept");
        is_str(payload, "during", "payload 'during'");

        /* the listener's session dies: -ECONNRESET, and after the reconnect it listens again */
        jl_stmt *pid = NULL;
        int64_t backend = 0;
        if (jl_store_prepare(l, "SELECT pg_backend_pid()", &pid) == 0 && jl_stmt_step(pid) == JL_STORE_ROW)
                backend = jl_stmt_column_int64(pid, 0);
        jl_stmt_finalize(pid);
        jl_stmt *kill = NULL;
        if (jl_store_prepare(n, "SELECT pg_terminate_backend($1)", &kill) == 0) {
                jl_stmt_bind_int64(kill, 1, backend);
                jl_stmt_step(kill);
        }
        jl_stmt_finalize(kill);
        int r = 0;
        for (int i = 0; i < 50 && (r = jl_store_wait_notify(l, 100, NULL, 0, NULL, 0)) == 0; i++)
                ;
        is_int(r, -ECONNRESET, "the listener's session terminated: -ECONNRESET");
        is_int(jl_store_reconnect(l), 0, "reconnect");
        jl_store_notify(n, "joule_jobs", "after");
        is_int(jl_store_wait_notify(l, 5000, NULL, 0, payload, sizeof(payload)), 1,
               "after the reconnect the channel is listened to again");
        is_str(payload, "after", "payload 'after'");

        /* another channel is not heard */
        jl_store_notify(n, "other_channel", "x");
        is_int(jl_store_wait_notify(l, 200, NULL, 0, NULL, 0), 0, "a channel not listened to is not heard");

        jl_store_close(n);
        jl_store_close(l);
}

int main(int argc, char **argv)
{
        if (argc == 5 && strcmp(argv[1], "listen") == 0)
                return listen_mode(argv[2], argv[3], argv[4]);

        const char *url = argc > 1 ? argv[1] : getenv("JOULE_TEST_DATABASE_URL");
        char tmp[64] = "";
        if (!url || !*url) {
                snprintf(tmp, sizeof(tmp), "/tmp/joule-test-notify-%d.db", (int)getpid());
                url = tmp;
        }
        jl_store_backend backend;
        if (jl_store_url_parse(url, &backend, NULL) < 0) {
                printf("Bail out! bad URL %s\n", url);
                return 1;
        }
        if (backend == JL_STORE_SQLITE)
                test_sqlite(url);
        else
                test_postgres(url);
        if (tmp[0]) {
                char side[96];
                unlink(tmp);
                snprintf(side, sizeof(side), "%s-wal", tmp);
                unlink(side);
                snprintf(side, sizeof(side), "%s-shm", tmp);
                unlink(side);
        }
        return tap_done();
}
