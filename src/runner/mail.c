/* mail.c - e-mail for the measurement cluster: the queue in the `emails` table (lease, send, mark sent or
 * back off), one SMTP conversation per message through libcurl (loaded at the first send), RFC 5322
 * formatting, and the runner's three messages (job finished with its energy per phase, job failed, control
 * workload deviation). */
#include "mail.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define CURL_DISABLE_TYPECHECK /* no type-checking wrappers: the calls go through pointers (below) */
#include <curl/curl.h>

#include "dlopen-util.h"
#include "macro.h"
#include "timeutil.h"
#include "why.h"

/* libcurl is loaded on demand (dlopen-util.h), by the first message sent: `joule` and the runner do not map
 * it (nor the TLS, SSH, LDAP and HTTP/2 libraries it brings) unless they send mail. The header gives the
 * types and prototypes (its type-checking macros are off, so that the calls can be redirected); each entry
 * point used is resolved into a sym_ pointer, and the macros below send the calls of this file through them.
 * A libcurl function used here must be listed. */
#define CURL_LIBRARY "libcurl.so.4"

#define CURL_SYMBOLS(X)                                                                                     \
        X(curl_easy_cleanup)                                                                                \
        X(curl_easy_getinfo)                                                                                \
        X(curl_easy_init)                                                                                   \
        X(curl_easy_perform)                                                                                \
        X(curl_easy_setopt)                                                                                 \
        X(curl_easy_strerror)                                                                               \
        X(curl_slist_append)                                                                                \
        X(curl_slist_free_all)

/* curl.h wraps these two in macros of the same name (to check the number of arguments) */
#undef curl_easy_getinfo
#undef curl_easy_setopt
#define CURL_DECLARE(f) static __typeof__(f) *sym_##f;
CURL_SYMBOLS(CURL_DECLARE)
#define CURL_ENTRY(f) {#f, &sym_##f, false},
static const jl_dlsym curl_syms[] = {CURL_SYMBOLS(CURL_ENTRY)};
static jl_dlib curl_lib = JL_DLIB_INIT(CURL_LIBRARY, curl_syms);

#define curl_easy_cleanup sym_curl_easy_cleanup
#define curl_easy_getinfo sym_curl_easy_getinfo
#define curl_easy_init sym_curl_easy_init
#define curl_easy_perform sym_curl_easy_perform
#define curl_easy_setopt sym_curl_easy_setopt
#define curl_easy_strerror sym_curl_easy_strerror
#define curl_slist_append sym_curl_slist_append
#define curl_slist_free_all sym_curl_slist_free_all

#define LEASE_MARGIN_S 60.0 /* a leased mail is free again this long after the send's timeout */
#define MAX_LINE 990        /* body lines are broken before SMTP's 998-byte limit */

static int store_errf(char *err, size_t errlen, jl_store *s, int r, const char *what)
{
        return jl_why(err, errlen, r, "%s: %s", what,
                      jl_store_error(s)[0] ? jl_store_error(s) : strerror(-r));
}

/* ---- configuration ---- */

void jl_mail_config_from(const joule_config *c, jl_mail_config *ret)
{
        *ret = (jl_mail_config){
            .server = c->smtp.server,
            .user = c->smtp.user,
            .password = c->smtp.password,
            .sender = c->smtp.sender,
            .starttls = c->smtp.starttls,
            .retry_base_s = c->smtp.retry_base_s,
            .retry_max_s = c->smtp.retry_max_s,
            .timeout_s = c->smtp.timeout_s,
            .ca_file = c->smtp.ca_file,
        };
}

/* The host of smtp[s]://[user@]HOST[:PORT][/…] into buf ([v6] without brackets); false when there is none.
 */
static bool url_host(const char *url, char *buf, size_t size)
{
        const char *p = strstr(url, "://");
        if (!p)
                return false;
        p += 3;
        const char *end = p + strcspn(p, "/?#");
        const char *at = memchr(p, '@', (size_t)(end - p));
        if (at)
                p = at + 1;
        size_t len;
        if (*p == '[') {
                const char *close = memchr(p, ']', (size_t)(end - p));
                if (!close)
                        return false;
                p++;
                len = (size_t)(close - p);
        } else {
                const char *colon = memchr(p, ':', (size_t)(end - p));
                len = (size_t)((colon ? colon : end) - p);
        }
        if (len == 0 || len >= size)
                return false;
        memcpy(buf, p, len);
        buf[len] = '\0';
        return true;
}

/* Loopback by address, never by the look of a name ("127.example.com" is anyone's host): an IPv4 literal in
 * 127.0.0.0/8, the IPv6 loopback (also as an IPv4-mapped 127.x), or "localhost", which resolvers and
 * libcurl keep on the loopback (RFC 6761). */
static bool host_is_loopback(const char *h)
{
        struct in_addr a4;
        struct in6_addr a6;
        if (strcasecmp(h, "localhost") == 0)
                return true;
        if (inet_pton(AF_INET, h, &a4) == 1)
                return (ntohl(a4.s_addr) >> 24) == 127;
        if (inet_pton(AF_INET6, h, &a6) == 1)
                return IN6_IS_ADDR_LOOPBACK(&a6) || (IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127);
        return false;
}

int jl_mail_config_check(const jl_mail_config *c, char *err, size_t errlen)
{
        char host[256];
        if (!c->server || !*c->server)
                return jl_why(err, errlen, -ENOTCONN, "no SMTP server configured (smtp.server)");
        bool smtps = strncasecmp(c->server, "smtps://", 8) == 0;
        if (!smtps && strncasecmp(c->server, "smtp://", 7) != 0)
                return jl_why(err, errlen, -EINVAL,
                              "smtp.server '%s': use smtp://HOST:PORT or smtps://HOST:PORT", c->server);
        if (!url_host(c->server, host, sizeof(host)))
                return jl_why(err, errlen, -EINVAL, "smtp.server '%s': no host", c->server);
        if (strpbrk(c->server, "@ \t\r\n"))
                return jl_why(
                    err, errlen, -EINVAL,
                    "smtp.server '%s': credentials belong in smtp.user and smtp.password, not the URL",
                    c->server);
        if (!c->sender || !jl_mail_address_ok(c->sender))
                return jl_why(err, errlen, -EINVAL, "smtp.sender '%s' is not an e-mail address",
                              c->sender ? c->sender : "");
        if (c->user && *c->user && !smtps && !c->starttls && !host_is_loopback(host))
                return jl_why(err, errlen, -EINVAL,
                              "refusing to send the SMTP password in clear text to %s: use smtps:// or "
                              "smtp.starttls: true",
                              host);
        if (!(c->retry_base_s > 0) || !(c->retry_max_s > 0) || !(c->timeout_s > 0))
                return jl_why(err, errlen, -EINVAL,
                              "smtp.retry_base, smtp.retry_max and smtp.timeout must be > 0");
        return 0;
}

bool jl_mail_address_ok(const char *addr)
{
        if (!addr)
                return false;
        size_t n = strlen(addr);
        if (n < 3 || n > JL_MAIL_MAX_ADDRESS)
                return false;
        const char *at = strchr(addr, '@');
        if (!at || at == addr || at[1] == '\0' || strchr(at + 1, '@'))
                return false;
        for (const char *p = addr; *p; p++) {
                unsigned char ch = (unsigned char)*p;
                if (ch <= ' ' || ch >= 0x7f || strchr("<>()[]\\,;:\"", ch))
                        return false;
        }
        return at[1] != '.' && addr[n - 1] != '.';
}

double jl_mail_backoff_s(const jl_mail_config *c, unsigned tries)
{
        double b = c->retry_base_s;
        for (unsigned i = 1; i < tries && b < c->retry_max_s; i++) /* bounded: b doubles each pass */
                b *= 2;
        return MIN(b, c->retry_max_s);
}

/* ---- the queue ---- */

static bool has_control(const char *s, bool allow_newlines)
{
        for (; *s; s++) {
                unsigned char ch = (unsigned char)*s;
                if (ch == '\n' || ch == '\r' || ch == '\t') {
                        if (!allow_newlines)
                                return true;
                } else if (ch < ' ' || ch == 0x7f)
                        return true;
        }
        return false;
}

int jl_mail_queue(jl_store *s, const char *to, const char *subject, const char *body, int64_t job_id,
                  int64_t now_us, int64_t *ret_id, char *err, size_t errlen)
{
        if (!jl_mail_address_ok(to))
                return jl_why(err, errlen, -EINVAL, "'%s' is not an e-mail address", to ? to : "");
        if (!subject || !*subject || strlen(subject) > JL_MAIL_MAX_SUBJECT || has_control(subject, false))
                return jl_why(err, errlen, -EINVAL,
                              "the subject is empty, too long or holds control characters");
        if (!body || !*body || strlen(body) > JL_MAIL_MAX_BODY || has_control(body, true))
                return jl_why(err, errlen, -EINVAL,
                              "the body is empty, too long or holds control characters");
        _cleanup_stmt_ jl_stmt *st = NULL;
        int r = jl_store_prepare(
            s,
            "INSERT INTO emails (to_addr, subject, body, state, tries, next_try_us, job_id, "
            "created_us) VALUES ($1, $2, $3, 'queued', 0, $4, $5, $4) RETURNING id",
            &st);
        if (r < 0)
                return store_errf(err, errlen, s, r, "queue an e-mail");
        int64_t id;
        if ((r = jl_stmt_bind_text(st, 1, to)) < 0 || (r = jl_stmt_bind_text(st, 2, subject)) < 0 ||
            (r = jl_stmt_bind_text(st, 3, body)) < 0 || (r = jl_stmt_bind_int64(st, 4, now_us)) < 0 ||
            (r = job_id >= 0 ? jl_stmt_bind_int64(st, 5, job_id) : jl_stmt_bind_null(st, 5)) < 0 ||
            (r = jl_stmt_insert_id(st, &id)) < 0)
                return store_errf(err, errlen, s, r, "queue an e-mail");
        if (r == 0)
                return jl_why(err, errlen, -EIO, "queue an e-mail: no id came back");
        if (ret_id)
                *ret_id = id;
        return 0;
}

/* ---- formatting ---- */

static void put_base64(FILE *f, const unsigned char *p, size_t n)
{
        static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        for (size_t i = 0; i < n; i += 3) {
                unsigned v = (unsigned)p[i] << 16 | (i + 1 < n ? (unsigned)p[i + 1] << 8 : 0) |
                             (i + 2 < n ? p[i + 2] : 0);
                fputc(tab[v >> 18 & 63], f);
                fputc(tab[v >> 12 & 63], f);
                fputc(i + 1 < n ? tab[v >> 6 & 63] : '=', f);
                fputc(i + 2 < n ? tab[v & 63] : '=', f);
        }
}

/* Subject: as is when printable ASCII, else RFC 2047 encoded words of whole UTF-8 characters, folded.
 * Control characters become spaces. */
static void put_subject(FILE *f, const char *subject)
{
        _cleanup_free_ char *s = strdup(subject);
        if (!s)
                return;
        bool ascii = true;
        for (char *p = s; *p; p++) {
                unsigned char ch = (unsigned char)*p;
                if (ch < ' ' || ch == 0x7f)
                        *p = ' ';
                else if (ch >= 0x80)
                        ascii = false;
        }
        fputs("Subject: ", f);
        if (ascii) {
                fputs(s, f);
                fputs("\r\n", f);
                return;
        }
        size_t n = strlen(s);
        for (size_t i = 0; i < n;) {
                size_t len = MIN((size_t)45, n - i); /* 45 bytes: 60 base64 characters per word */
                while (i + len < n && ((unsigned char)s[i + len] & 0xc0) == 0x80 && len > 1)
                        len--; /* never split a UTF-8 character */
                if (i > 0)
                        fputs("\r\n ", f);
                fputs("=?UTF-8?B?", f);
                put_base64(f, (const unsigned char *)s + i, len);
                fputs("?=", f);
                i += len;
        }
        fputs("\r\n", f);
}

/* The body with CRLF line ends, lines broken before MAX_LINE bytes. */
static void put_body(FILE *f, const char *body)
{
        size_t col = 0;
        for (const char *p = body; *p; p++) {
                if (*p == '\r' && p[1] == '\n')
                        continue;
                if (*p == '\n' || *p == '\r') {
                        fputs("\r\n", f);
                        col = 0;
                        continue;
                }
                if (col >= MAX_LINE && ((unsigned char)*p & 0xc0) != 0x80) {
                        fputs("\r\n", f);
                        col = 0;
                }
                fputc(*p, f);
                col++;
        }
        if (col > 0)
                fputs("\r\n", f);
}

int jl_mail_format(const char *sender, const char *to, const char *subject, const char *body, int64_t id,
                   int64_t date_us, char **ret_text)
{
        static const char *const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
        static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                             "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
        if (!jl_mail_address_ok(sender) || !jl_mail_address_ok(to) || !subject || !body)
                return -EINVAL;
        time_t t = (time_t)(date_us / 1000000);
        struct tm tm;
        if (!gmtime_r(&t, &tm))
                return -EINVAL;
        char *text = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&text, &size);
        if (!f)
                return -ENOMEM;
        fprintf(f, "Date: %s, %02d %s %04d %02d:%02d:%02d +0000\r\n", days[tm.tm_wday], tm.tm_mday,
                months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
        fprintf(f, "From: %s\r\nTo: %s\r\n", sender, to);
        put_subject(f, subject);
        fprintf(f, "Message-ID: <joule.%" PRId64 ".%" PRId64 "@%s>\r\n", id, date_us,
                strchr(sender, '@') + 1);
        fputs("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
              "Content-Transfer-Encoding: 8bit\r\nAuto-Submitted: auto-generated\r\n\r\n",
              f);
        put_body(f, body);
        if (fclose(f) != 0 || !text) {
                free(text);
                return -ENOMEM;
        }
        *ret_text = text;
        return 0;
}

/* ---- sending ---- */

typedef struct {
        const char *p;
        size_t left;
} reader;

static size_t read_cb(char *buf, size_t size, size_t nmemb, void *userdata)
{
        reader *rd = userdata;
        size_t n = MIN(size * nmemb, rd->left);
        memcpy(buf, rd->p, n);
        rd->p += n;
        rd->left -= n;
        return n;
}

static int curl_errno(CURLcode c, long response, bool *server_down)
{
        *server_down = true;
        switch (c) {
        case CURLE_COULDNT_CONNECT:
                return -ECONNREFUSED;
        case CURLE_COULDNT_RESOLVE_HOST:
                return -EHOSTUNREACH;
        case CURLE_OPERATION_TIMEDOUT:
                return -ETIMEDOUT;
        case CURLE_LOGIN_DENIED:
                return -EACCES;
        case CURLE_USE_SSL_FAILED:
        case CURLE_SSL_CONNECT_ERROR:
        case CURLE_PEER_FAILED_VERIFICATION:
        case CURLE_SSL_CACERT_BADFILE:
        case CURLE_SSL_CERTPROBLEM:
                return -EPROTO;
        case CURLE_URL_MALFORMAT:
        case CURLE_UNSUPPORTED_PROTOCOL:
                return -EINVAL;
        case CURLE_OUT_OF_MEMORY:
                return -ENOMEM;
        default:
                /* a reply the server gave to this message (MAIL FROM, RCPT TO, DATA refused): the next one
                 * may pass; no reply at all: the server is away */
                *server_down = !(response >= 400 && response != 421);
                return -EIO;
        }
}

int jl_mail_send(const jl_mail_config *c, const char *to, const char *text, char *err, size_t errlen,
                 bool *ret_server_down)
{
        int r = jl_mail_config_check(c, err, errlen);
        if (r < 0)
                return r;
        if (!jl_mail_address_ok(to))
                return jl_why(err, errlen, -EINVAL, "'%s' is not an e-mail address", to ? to : "");
        char why[256];
        r = jl_dlib_load(&curl_lib, why, sizeof(why));
        if (r < 0) {
                if (ret_server_down)
                        *ret_server_down = true; /* no message can go out: stop this pass */
                return jl_why(err, errlen, r,
                              r == -ENOSYS ? "the libcurl found (" CURL_LIBRARY ") is too old: %s"
                                           : "libcurl (" CURL_LIBRARY
                                             ") not found: apt-get install libcurl4 (%s)",
                              why);
        }
        CURL *h = curl_easy_init();
        if (!h)
                return jl_why(err, errlen, -ENOMEM, "cannot initialise libcurl");
        char from[JL_MAIL_MAX_ADDRESS + 3], rcpt[JL_MAIL_MAX_ADDRESS + 3], cerr[CURL_ERROR_SIZE] = "";
        snprintf(from, sizeof(from), "<%s>", c->sender);
        snprintf(rcpt, sizeof(rcpt), "<%s>", to);
        struct curl_slist *rcpts = curl_slist_append(NULL, rcpt);
        reader rd = {.p = text, .left = strlen(text)};
        bool smtps = strncasecmp(c->server, "smtps://", 8) == 0;
        long timeout_ms = (long)(c->timeout_s * 1000);

        CURLcode cc = rcpts ? CURLE_OK : CURLE_OUT_OF_MEMORY;
        /* each option set in turn; the first failure is kept */
#define SET(opt, val)                                                                                       \
        do {                                                                                                \
                if (cc == CURLE_OK)                                                                         \
                        cc = curl_easy_setopt(h, opt, val);                                                 \
        } while (0)
        SET(CURLOPT_URL, c->server);
        SET(CURLOPT_PROTOCOLS_STR, "smtp,smtps");
        SET(CURLOPT_ERRORBUFFER, cerr);
        SET(CURLOPT_NOSIGNAL, 1L);
        SET(CURLOPT_TIMEOUT_MS, timeout_ms);
        SET(CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
        SET(CURLOPT_MAIL_FROM, from);
        SET(CURLOPT_MAIL_RCPT, rcpts);
        SET(CURLOPT_UPLOAD, 1L);
        SET(CURLOPT_READFUNCTION, read_cb);
        SET(CURLOPT_READDATA, &rd);
        SET(CURLOPT_INFILESIZE_LARGE, (curl_off_t)rd.left);
        if (!smtps)
                SET(CURLOPT_USE_SSL, (long)(c->starttls ? CURLUSESSL_ALL : CURLUSESSL_NONE));
        if (c->ca_file && *c->ca_file)
                SET(CURLOPT_CAINFO, c->ca_file);
        if (c->user && *c->user) {
                SET(CURLOPT_USERNAME, c->user);
                SET(CURLOPT_PASSWORD, c->password ? c->password : "");
        }
#undef SET
        if (cc == CURLE_OK)
                cc = curl_easy_perform(h);
        long response = 0;
        (void)curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &response);
        curl_slist_free_all(rcpts);
        curl_easy_cleanup(h);
        if (cc == CURLE_OK)
                return 0;
        bool down;
        r = curl_errno(cc, response, &down);
        if (response > 0)
                jl_why(err, errlen, r, "%s: %s (the server's last reply: %ld)", c->server,
                       cerr[0] ? cerr : curl_easy_strerror(cc), response);
        else
                jl_why(err, errlen, r, "%s: %s", c->server, cerr[0] ? cerr : curl_easy_strerror(cc));
        if (ret_server_down)
                *ret_server_down = down;
        return r;
}

/* Take mail `id` for this sender: move its next try past the send. 1: ours; 0: another sender has it. */
static int lease(jl_stmt *st, int64_t id, int64_t now_us, int64_t until_us)
{
        int r;
        if ((r = jl_stmt_bind_int64(st, 1, id)) < 0 || (r = jl_stmt_bind_int64(st, 2, until_us)) < 0 ||
            (r = jl_stmt_bind_int64(st, 3, now_us)) < 0 || (r = jl_stmt_step(st)) < 0)
                return r;
        r = jl_stmt_changes(st) == 1;
        jl_stmt_reset(st);
        return r;
}

int jl_mail_send_queued(jl_store *s, const jl_mail_config *c, int64_t now_us, unsigned max,
                        jl_mail_stats *ret_stats, char *err, size_t errlen)
{
        jl_mail_stats stats = {0};
        uint64_t t0 = mono_ns();
        int r = jl_mail_config_check(c, err, errlen);
        if (r < 0)
                return r;
        if (max == 0)
                max = JL_MAIL_DEFAULT_BATCH;

        _cleanup_stmt_ jl_stmt *due = NULL, *take = NULL, *load = NULL, *sent = NULL, *failed = NULL;
        if ((r = jl_store_prepare(s,
                                  "SELECT id FROM emails WHERE state = 'queued' AND (next_try_us IS NULL OR "
                                  "next_try_us <= $1) ORDER BY next_try_us, id LIMIT $2",
                                  &due)) < 0 ||
            (r = jl_store_prepare(
                 s,
                 "UPDATE emails SET next_try_us = $2 WHERE id = $1 AND state = 'queued' AND "
                 "(next_try_us IS NULL OR next_try_us <= $3)",
                 &take)) < 0 ||
            (r = jl_store_prepare(
                 s, "SELECT to_addr, subject, body, created_us, tries FROM emails WHERE id = $1", &load)) <
                0 ||
            (r = jl_store_prepare(
                 s, "UPDATE emails SET state = 'sent', sent_us = $2, tries = tries + 1 WHERE id = $1",
                 &sent)) < 0 ||
            (r = jl_store_prepare(s,
                                  "UPDATE emails SET tries = tries + 1, last_error = $2, next_try_us = $3 "
                                  "WHERE id = $1",
                                  &failed)) < 0)
                return store_errf(err, errlen, s, r, "e-mail queue");

        _cleanup_free_ int64_t *ids = calloc(max, sizeof(int64_t));
        if (!ids)
                return jl_why(err, errlen, -ENOMEM, "out of memory");
        size_t n = 0;
        if ((r = jl_stmt_bind_int64(due, 1, now_us)) < 0 || (r = jl_stmt_bind_int64(due, 2, max)) < 0)
                return store_errf(err, errlen, s, r, "e-mail queue");
        while (n < max && (r = jl_stmt_step(due)) == JL_STORE_ROW)
                ids[n++] = jl_stmt_column_int64(due, 0);
        if (r < 0)
                return store_errf(err, errlen, s, r, "e-mail queue");

        int64_t lease_us = (int64_t)((c->timeout_s + LEASE_MARGIN_S) * 1e6);
        for (size_t i = 0; i < n; i++) {
                int64_t now = now_us + (int64_t)((mono_ns() - t0) / NSEC_PER_USEC);
                r = lease(take, ids[i], now_us, now + lease_us);
                if (r < 0)
                        return store_errf(err, errlen, s, r, "e-mail queue: lease");
                if (r == 0)
                        continue; /* another sender took it */
                if ((r = jl_stmt_bind_int64(load, 1, ids[i])) < 0 || (r = jl_stmt_step(load)) < 0)
                        return store_errf(err, errlen, s, r, "e-mail queue: load");
                if (r != JL_STORE_ROW) {
                        jl_stmt_reset(load);
                        continue; /* deleted meanwhile */
                }
                _cleanup_free_ char *to = strdup(jl_stmt_column_text(load, 0) ?: "");
                _cleanup_free_ char *text = NULL;
                int64_t tries = jl_stmt_column_int64(load, 4);
                int fr = jl_mail_format(c->sender, to ?: "", jl_stmt_column_text(load, 1) ?: "",
                                        jl_stmt_column_text(load, 2) ?: "", ids[i],
                                        jl_stmt_column_int64(load, 3), &text);
                jl_stmt_reset(load);
                char why[1024] = "";
                bool down = false;
                if (fr < 0)
                        r = jl_why(why, sizeof(why), fr, "cannot format the message (recipient '%s'): %s",
                                   to ?: "", strerror(-fr));
                else
                        r = jl_mail_send(c, to, text, why, sizeof(why), &down);
                now = now_us + (int64_t)((mono_ns() - t0) / NSEC_PER_USEC);
                jl_stmt *mark = r == 0 ? sent : failed;
                int sr;
                if (r == 0) {
                        if ((sr = jl_stmt_bind_int64(sent, 1, ids[i])) >= 0 &&
                            (sr = jl_stmt_bind_int64(sent, 2, now)) >= 0)
                                sr = jl_stmt_step(sent);
                } else {
                        int64_t next =
                            now + (int64_t)(jl_mail_backoff_s(c, (unsigned)MIN(tries + 1, 64)) * 1e6);
                        if ((sr = jl_stmt_bind_int64(failed, 1, ids[i])) >= 0 &&
                            (sr = jl_stmt_bind_text(failed, 2, why)) >= 0 &&
                            (sr = jl_stmt_bind_int64(failed, 3, next)) >= 0)
                                sr = jl_stmt_step(failed);
                }
                jl_stmt_reset(mark);
                if (sr < 0)
                        return store_errf(err, errlen, s, sr, "e-mail queue: mark");
                if (r == 0)
                        stats.sent++;
                else
                        stats.failed++;
                if (r < 0 && down) {
                        stats.deferred = (unsigned)(n - i - 1);
                        jl_why(err, errlen, 0, "%s", why);
                        break;
                }
                if (r < 0)
                        jl_why(err, errlen, 0, "%s", why);
        }
        if (ret_stats)
                *ret_stats = stats;
        return 0;
}

/* ---- the runner's messages ---- */

typedef struct {
        int64_t id, machine_id, created_us, started_us, finished_us;
        char *name, *email, *state, *message, *machine;
} job_info;

static void job_info_free(job_info *j)
{
        free(j->name);
        free(j->email);
        free(j->state);
        free(j->message);
        free(j->machine);
}

static char *dup_col(jl_stmt *st, int col)
{
        const char *v = jl_stmt_column_text(st, col);
        return v ? strdup(v) : NULL;
}

static int load_job(jl_store *s, int64_t job_id, job_info *ret, char *err, size_t errlen)
{
        _cleanup_stmt_ jl_stmt *st = NULL;
        int r = jl_store_prepare(
            s,
            "SELECT j.id, j.machine_id, j.name, j.email, j.state, j.message, j.created_us, "
            "j.started_us, j.finished_us, m.description FROM bench_jobs j LEFT JOIN machines m "
            "ON m.id = j.machine_id WHERE j.id = $1",
            &st);
        if (r < 0 || (r = jl_stmt_bind_int64(st, 1, job_id)) < 0 || (r = jl_stmt_step(st)) < 0)
                return store_errf(err, errlen, s, r, "read the job");
        if (r != JL_STORE_ROW)
                return jl_why(err, errlen, -ENOENT, "job %" PRId64 " does not exist", job_id);
        job_info j = {
            .id = jl_stmt_column_int64(st, 0),
            .machine_id = jl_stmt_column_int64(st, 1),
            .name = dup_col(st, 2),
            .email = dup_col(st, 3),
            .state = dup_col(st, 4),
            .message = dup_col(st, 5),
            .created_us = jl_stmt_column_is_null(st, 6) ? -1 : jl_stmt_column_int64(st, 6),
            .started_us = jl_stmt_column_is_null(st, 7) ? -1 : jl_stmt_column_int64(st, 7),
            .finished_us = jl_stmt_column_is_null(st, 8) ? -1 : jl_stmt_column_int64(st, 8),
            .machine = dup_col(st, 9),
        };
        *ret = j;
        return 0;
}

static void put_time(FILE *f, const char *label, int64_t us)
{
        char buf[64];
        if (us < 0)
                return;
        fprintf(f, "%-11s%s\n", label, format_iso8601((uint64_t)us * NSEC_PER_USEC, buf, sizeof(buf)));
}

/* "job 12 (name) on machine 3 (description)" */
static void put_job_title(FILE *f, const job_info *j)
{
        fprintf(f, "job %" PRId64, j->id);
        if (j->name && *j->name)
                fprintf(f, " (%s)", j->name);
        fprintf(f, " on machine %" PRId64, j->machine_id);
        if (j->machine && *j->machine)
                fprintf(f, " (%s)", j->machine);
}

static int finish_text(FILE *f, char **text)
{
        if (fclose(f) != 0 || !*text) {
                free(*text);
                *text = NULL;
                return -ENOMEM;
        }
        return 0;
}

/* The energy table of the job's latest run into f. Returns the number of phases, or a negative errno. */
static int put_phases(jl_store *s, FILE *f, int64_t job_id, double *ret_total_j)
{
        _cleanup_stmt_ jl_stmt *run = NULL, *ph = NULL;
        int r = jl_store_prepare(
            s,
            "SELECT id, error FROM runs WHERE job_id = $1 AND kind = 'job' ORDER BY id DESC "
            "LIMIT 1",
            &run);
        if (r < 0 || (r = jl_stmt_bind_int64(run, 1, job_id)) < 0 || (r = jl_stmt_step(run)) < 0)
                return r;
        if (r != JL_STORE_ROW) {
                fputs("No measurement was stored for this job.\n", f);
                return 0;
        }
        int64_t run_id = jl_stmt_column_int64(run, 0);
        r = jl_store_prepare(
            s,
            "SELECT phase, duration_us, energy_uj, avg_power_w, max_power_w, max_temp_c FROM "
            "phase_stats WHERE run_id = $1 ORDER BY phase_order",
            &ph);
        if (r < 0 || (r = jl_stmt_bind_int64(ph, 1, run_id)) < 0)
                return r;
        fprintf(f, "Energy per phase (run %" PRId64 "):\n\n", run_id);
        fprintf(f, "  %-24s %12s %12s %12s %12s %12s\n", "phase", "energy J", "avg power W", "max power W",
                "duration s", "max temp °C");
        double total_j = 0, total_s = 0;
        int n = 0;
        while ((r = jl_stmt_step(ph)) == JL_STORE_ROW) {
                const char *name = jl_stmt_column_text(ph, 0);
                double dur_s = (double)jl_stmt_column_int64(ph, 1) / 1e6;
                double e_j = (double)jl_stmt_column_int64(ph, 2) / 1e6;
                double avg = jl_stmt_column_double(ph, 3), mx = jl_stmt_column_double(ph, 4);
                double temp = jl_stmt_column_double(ph, 5);
                char tbuf[32] = "-";
                if (!isnan(temp))
                        snprintf(tbuf, sizeof(tbuf), "%.1f", temp);
                fprintf(f, "  %-24s %12.3f %12.3f %12.3f %12.3f %12s\n", name ? name : "?", e_j, avg, mx,
                        dur_s, tbuf);
                if (!name || name[0] != '[') { /* "[BASELINE]" is the idle machine, not the job */
                        total_j += e_j;
                        total_s += dur_s;
                }
                n++;
        }
        if (r < 0)
                return r;
        if (n == 0)
                fputs("  (no phases were stored)\n", f);
        else
                fprintf(f, "  %-24s %12.3f %12.3f %12s %12.3f\n", "total (flow)", total_j,
                        total_s > 0 ? total_j / total_s : 0.0, "", total_s);
        fputs("\nThe baseline phase is the idle machine before the flow; the total sums the flow's steps.\n",
              f);
        *ret_total_j = total_j;
        return n;
}

int jl_mail_queue_job_finished(jl_store *s, int64_t job_id, int64_t now_us, int64_t *ret_id, char *err,
                               size_t errlen)
{
        job_info j = {0};
        int r = load_job(s, job_id, &j, err, errlen);
        if (r < 0)
                return r;
        if (!j.email || !*j.email) {
                job_info_free(&j);
                return 0;
        }
        _cleanup_free_ char *body = NULL, *subject = NULL;
        size_t bsize = 0, ssize = 0;
        FILE *f = open_memstream(&body, &bsize);
        if (!f) {
                job_info_free(&j);
                return jl_why(err, errlen, -ENOMEM, "out of memory");
        }
        fputs("The ", f);
        put_job_title(f, &j);
        fputs(" has finished.\n\n", f);
        put_time(f, "Submitted:", j.created_us);
        put_time(f, "Started:", j.started_us);
        put_time(f, "Finished:", j.finished_us);
        fputc('\n', f);
        double total_j = 0;
        r = put_phases(s, f, job_id, &total_j);
        fprintf(f, "\nDetails: joule jobs show %" PRId64 " --json\n", job_id);
        int fr = finish_text(f, &body);
        if (r < 0 || fr < 0) {
                job_info_free(&j);
                return r < 0 ? store_errf(err, errlen, s, r, "read the job's run")
                             : jl_why(err, errlen, fr, "out of memory");
        }
        f = open_memstream(&subject, &ssize);
        if (!f) {
                job_info_free(&j);
                return jl_why(err, errlen, -ENOMEM, "out of memory");
        }
        fputs("[joule] ", f);
        put_job_title(f, &j);
        if (r > 0)
                fprintf(f, " finished: %.3f J", total_j);
        else
                fputs(" finished", f);
        fr = finish_text(f, &subject);
        if (fr < 0) {
                job_info_free(&j);
                return jl_why(err, errlen, fr, "out of memory");
        }
        if (strlen(subject) > 200)
                strcpy(subject + 196, "...");
        int64_t id;
        r = jl_mail_queue(s, j.email, subject, body, job_id, now_us, &id, err, errlen);
        job_info_free(&j);
        if (r < 0)
                return r;
        if (ret_id)
                *ret_id = id;
        return 1;
}

int jl_mail_queue_job_failed(jl_store *s, int64_t job_id, const char *reason, int64_t now_us,
                             int64_t *ret_id, char *err, size_t errlen)
{
        job_info j = {0};
        int r = load_job(s, job_id, &j, err, errlen);
        if (r < 0)
                return r;
        if (!j.email || !*j.email) {
                job_info_free(&j);
                return 0;
        }
        if (!reason || !*reason)
                reason = j.message && *j.message ? j.message : "(no reason was recorded)";
        _cleanup_free_ char *body = NULL, *subject = NULL;
        size_t bsize = 0, ssize = 0;
        FILE *f = open_memstream(&body, &bsize);
        if (!f) {
                job_info_free(&j);
                return jl_why(err, errlen, -ENOMEM, "out of memory");
        }
        fputs("The ", f);
        put_job_title(f, &j);
        fprintf(f, " has FAILED.\n\nReason: %s\n\n", reason);
        put_time(f, "Submitted:", j.created_us);
        put_time(f, "Started:", j.started_us);
        put_time(f, "Failed:", j.finished_us);
        fprintf(f, "\nDetails: joule jobs show %" PRId64 "\n", job_id);
        r = finish_text(f, &body);
        f = r < 0 ? NULL : open_memstream(&subject, &ssize);
        if (f) {
                fputs("[joule] ", f);
                put_job_title(f, &j);
                /* the first line of the reason, control characters dropped by jl_mail_format's rules */
                fprintf(f, " failed: %.*s", (int)MIN(strcspn(reason, "\r\n"), (size_t)120), reason);
                r = finish_text(f, &subject);
        } else
                r = -ENOMEM;
        if (r < 0) {
                job_info_free(&j);
                return jl_why(err, errlen, r, "out of memory");
        }
        for (char *p = subject; *p; p++)
                if ((unsigned char)*p < ' ' || *p == 0x7f)
                        *p = ' ';
        int64_t id;
        r = jl_mail_queue(s, j.email, subject, body, job_id, now_us, &id, err, errlen);
        job_info_free(&j);
        if (r < 0)
                return r;
        if (ret_id)
                *ret_id = id;
        return 1;
}

int jl_mail_queue_control_deviation(jl_store *s, const char *admin, int64_t machine_id, const char *details,
                                    int64_t now_us, int64_t *ret_id, char *err, size_t errlen)
{
        if (!admin || !jl_mail_address_ok(admin))
                return jl_why(err, errlen, -EINVAL, "admin.notification_email '%s' is not an e-mail address",
                              admin ? admin : "");
        _cleanup_free_ char *desc = NULL, *body = NULL, *subject = NULL;
        _cleanup_stmt_ jl_stmt *st = NULL;
        int r = jl_store_prepare(s, "SELECT description FROM machines WHERE id = $1", &st);
        if (r < 0 || (r = jl_stmt_bind_int64(st, 1, machine_id)) < 0 || (r = jl_stmt_step(st)) < 0)
                return store_errf(err, errlen, s, r, "read the machine");
        if (r == JL_STORE_ROW)
                desc = dup_col(st, 0);
        char when[64];
        format_iso8601((uint64_t)now_us * NSEC_PER_USEC, when, sizeof(when));
        if (asprintf(&subject,
                     "[joule] machine %" PRId64 "%s%s%s: control workload deviated, job intake stopped",
                     machine_id, desc ? " (" : "", desc ? desc : "", desc ? ")" : "") < 0) {
                subject = NULL;
                return jl_why(err, errlen, -ENOMEM, "out of memory");
        }
        if (asprintf(&body,
                     "The control workload on machine %" PRId64
                     "%s%s%s deviated from its baseline at %s:\n\n"
                     "%s\n\n"
                     "Its measurements can no longer be trusted to be comparable: the runner takes no jobs "
                     "on this\n"
                     "machine until an operator has checked it and cleared the error.\n",
                     machine_id, desc ? " (" : "", desc ? desc : "", desc ? ")" : "", when,
                     details && *details ? details : "(no details were given)") < 0) {
                body = NULL;
                return jl_why(err, errlen, -ENOMEM, "out of memory");
        }
        int64_t id;
        r = jl_mail_queue(s, admin, subject, body, -1, now_us, &id, err, errlen);
        if (r < 0)
                return r;
        if (ret_id)
                *ret_id = id;
        return 1;
}
