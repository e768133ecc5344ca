/* test-mail-queue.c - drives the mail library (src/runner/mail.h) for test-mail.sh, and checks its pure
 * parts itself (TAP):
 *
 *   test-mail-queue selftest                          addresses, backoff, formatting (headers, RFC 2047,
 *                                                     CRLF, long lines), configuration checks
 *   test-mail-queue finished URL JOB_ID               queue "job finished" (prints the mail's id, or
 *                                                     "none" when the job has no address)
 *   test-mail-queue failed URL JOB_ID REASON          queue "job failed"
 *   test-mail-queue deviation URL ADMIN MACHINE TEXT  queue "control workload deviated"
 *   test-mail-queue raw URL TO SUBJECT BODY           queue any message
 *
 * Exit status of the queueing modes: 0 queued, 3 nothing to queue, 4 no such job, 1 other errors. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mail.h"
#include "parse.h"
#include "store.h"
#include "tap.h"
#include "timeutil.h"

static int selftest(void)
{
        ok(jl_mail_address_ok("user@example.org"), "a plain address");
        ok(jl_mail_address_ok("first.last+tag@sub.example.org"), "dots and plus");
        ok(!jl_mail_address_ok("no-at-sign"), "no @");
        ok(!jl_mail_address_ok("a@b@c"), "two @");
        ok(!jl_mail_address_ok("@example.org"), "empty local part");
        ok(!jl_mail_address_ok("user@"), "empty domain");
        ok(!jl_mail_address_ok("us er@example.org"), "a space");
        ok(!jl_mail_address_ok("user@example.org\r\nBcc: x@y.z"), "CRLF (header injection)");
        ok(!jl_mail_address_ok("<user@example.org>"), "angle brackets");
        ok(!jl_mail_address_ok(NULL), "NULL");

        jl_mail_config c = {.server = "smtp://127.0.0.1:25",
                            .sender = "joule@localhost",
                            .retry_base_s = 60,
                            .retry_max_s = 3600,
                            .timeout_s = 30};
        is_near(jl_mail_backoff_s(&c, 1), 60, 1e-9, "backoff after 1 failure: the base");
        is_near(jl_mail_backoff_s(&c, 2), 120, 1e-9, "after 2: doubled");
        is_near(jl_mail_backoff_s(&c, 6), 1920, 1e-9, "after 6: 60 * 2^5");
        is_near(jl_mail_backoff_s(&c, 7), 3600, 1e-9, "after 7: the ceiling");
        is_near(jl_mail_backoff_s(&c, 4000000), 3600, 1e-9, "after millions: still the ceiling");

        char err[512];
        is_int(jl_mail_config_check(&c, err, sizeof(err)), 0, "a loopback server without TLS");
        jl_mail_config d = c;
        d.server = NULL;
        is_int(jl_mail_config_check(&d, err, sizeof(err)), -ENOTCONN, "no server: -ENOTCONN (%s)", err);
        d.server = "http://mail.example.org";
        is_int(jl_mail_config_check(&d, err, sizeof(err)), -EINVAL, "another scheme: -EINVAL (%s)", err);
        d.server = "smtp://user:pw@mail.example.org";
        is_int(jl_mail_config_check(&d, err, sizeof(err)), -EINVAL, "credentials in the URL: -EINVAL (%s)",
               err);
        d = c;
        d.server = "smtp://mail.example.org:25";
        d.user = "u";
        d.password = "not-a-real-password";
        d.starttls = false;
        is_int(jl_mail_config_check(&d, err, sizeof(err)), -EINVAL,
               "a password in clear text to another host (%s)", err);
        d.starttls = true;
        is_int(jl_mail_config_check(&d, err, sizeof(err)), 0, "the same with STARTTLS");
        d.starttls = false;
        d.server = "smtps://mail.example.org:465";
        is_int(jl_mail_config_check(&d, err, sizeof(err)), 0, "the same with implicit TLS");
        d.server = "smtp://[::1]:2525";
        is_int(jl_mail_config_check(&d, err, sizeof(err)), 0, "clear text to the IPv6 loopback");
        d.server = "smtp://127.0.0.2:2525";
        is_int(jl_mail_config_check(&d, err, sizeof(err)), 0, "clear text to 127.0.0.2 (loopback)");
        d.server = "smtp://localhost:2525";
        is_int(jl_mail_config_check(&d, err, sizeof(err)), 0, "clear text to localhost");
        /* issue 7: loopback is decided by address, not by a name that looks like one */
        d.server = "smtp://127.example.com:25";
        is_int(jl_mail_config_check(&d, err, sizeof(err)), -EINVAL,
               "a password in clear text to 127.example.com is refused (%s)", err);
        d.server = "smtp://127.0.0.1.example.com:25";
        is_int(jl_mail_config_check(&d, err, sizeof(err)), -EINVAL, "and to 127.0.0.1.example.com (%s)",
               err);
        d.server = "smtp://[::ffff:10.0.0.1]:25";
        is_int(jl_mail_config_check(&d, err, sizeof(err)), -EINVAL, "and to ::ffff:10.0.0.1 (%s)", err);
        d = c;
        d.sender = "not an address";
        is_int(jl_mail_config_check(&d, err, sizeof(err)), -EINVAL, "a bad sender (%s)", err);

        char *text = NULL;
        /* 2026-01-02T03:04:05Z, a Friday */
        int r = jl_mail_format("joule@cluster.example.org", "user@example.org", "job 7 finished",
                               "line one\nline two\r\n.dot line\n", 42, INT64_C(1767323045000000), &text);
        is_int(r, 0, "format a message");
        if (text) {
                ok(strstr(text, "Date: Fri, 02 Jan 2026 03:04:05 +0000\r\n") != NULL,
                   "Date in RFC 5322 form");
                ok(strstr(text, "From: joule@cluster.example.org\r\n") != NULL, "From");
                ok(strstr(text, "To: user@example.org\r\n") != NULL, "To");
                ok(strstr(text, "Subject: job 7 finished\r\n") != NULL, "Subject");
                ok(strstr(text, "Message-ID: <joule.42.1767323045000000@cluster.example.org>\r\n") != NULL,
                   "a Message-ID stable across retries, in the sender's domain");
                ok(strstr(text, "Content-Type: text/plain; charset=utf-8\r\n") != NULL, "Content-Type");
                ok(strstr(text, "\r\n\r\nline one\r\nline two\r\n.dot line\r\n") != NULL,
                   "the body with CRLF line ends (dot-stuffing is libcurl's)");
                size_t lf = 0, crlf = 0;
                for (const char *p = text; *p; p++)
                        if (*p == '\n') {
                                lf++;
                                crlf += p > text && p[-1] == '\r';
                        }
                is_int(lf, crlf, "every line ends in CRLF");
        }
        free(text);
        text = NULL;

        r = jl_mail_format("joule@localhost", "u@example.org",
                           "Energie: 12 J für Messung äöü – done\r\nBcc: x@y", "b", 1, 0, &text);
        is_int(r, 0, "format a UTF-8 subject with a CRLF in it");
        if (text) {
                ok(strstr(text, "Subject: =?UTF-8?B?") != NULL, "encoded as RFC 2047 words");
                ok(strstr(text, "\r\nBcc:") == NULL, "no header can be injected through the subject");
        }
        free(text);
        text = NULL;

        char longline[3000];
        memset(longline, 'x', sizeof(longline) - 1);
        longline[sizeof(longline) - 1] = '\0';
        r = jl_mail_format("joule@localhost", "u@example.org", "long", longline, 1, 0, &text);
        is_int(r, 0, "format a 2999-byte line");
        if (text) {
                size_t maxlen = 0, len = 0;
                for (const char *p = text; *p; p++) {
                        if (*p == '\r' || *p == '\n')
                                len = 0;
                        else if (++len > maxlen)
                                maxlen = len;
                }
                ok(maxlen <= 998, "no line above SMTP's 998 bytes (%zu)", maxlen);
        }
        free(text);
        is_int(jl_mail_format("bad", "u@example.org", "s", "b", 1, 0, &text), -EINVAL,
               "a bad sender: -EINVAL");
        return tap_done();
}

static int open_url(const char *url, jl_store **s)
{
        char err[512];
        if (jl_store_open(url, 0, s, err, sizeof(err)) < 0) {
                fprintf(stderr, "%s\n", err);
                return -1;
        }
        return 0;
}

static int report(int r, int64_t id, const char *err)
{
        if (r == 1 || (r == 0 && id > 0)) {
                printf("%" PRId64 "\n", id);
                return 0;
        }
        if (r == 0) {
                printf("none\n");
                return 3;
        }
        fprintf(stderr, "%s\n", err);
        return r == -ENOENT ? 4 : 1;
}

int main(int argc, char **argv)
{
        if (argc == 2 && strcmp(argv[1], "selftest") == 0)
                return selftest();
        if (argc < 3) {
                fprintf(stderr, "usage: see the header of test-mail-queue.c\n");
                return 2;
        }
        jl_store *s = NULL;
        if (open_url(argv[2], &s) < 0)
                return 1;
        int64_t now = (int64_t)(now_ns(CLOCK_REALTIME) / 1000), id = 0, n;
        char err[1024] = "";
        int r, ret = 2;
        if (strcmp(argv[1], "finished") == 0 && argc == 4 && parse_i64(argv[3], &n) == 0) {
                r = jl_mail_queue_job_finished(s, n, now, &id, err, sizeof(err));
                ret = report(r, id, err);
        } else if (strcmp(argv[1], "failed") == 0 && argc == 5 && parse_i64(argv[3], &n) == 0) {
                r = jl_mail_queue_job_failed(s, n, argv[4], now, &id, err, sizeof(err));
                ret = report(r, id, err);
        } else if (strcmp(argv[1], "deviation") == 0 && argc == 6 && parse_i64(argv[4], &n) == 0) {
                r = jl_mail_queue_control_deviation(s, argv[3], n, argv[5], now, &id, err, sizeof(err));
                ret = report(r, id, err);
        } else if (strcmp(argv[1], "raw") == 0 && argc == 6) {
                r = jl_mail_queue(s, argv[3], argv[4], argv[5], -1, now, &id, err, sizeof(err));
                ret = report(r < 0 ? r : 1, id, err);
        } else
                fprintf(stderr, "usage: see the header of test-mail-queue.c\n");
        jl_store_close(s);
        return ret;
}
