/* mail.h - the measurement cluster's e-mail: messages queued in the store's `emails` table and sent through
 * SMTP with libcurl (STARTTLS or implicit TLS, AUTH), retried with exponential backoff until the server
 * takes them, never dropped. Builders for the three messages the runner sends: a job finished (with its
 * energy per phase), a job failed (with the reason), the control workload deviated (to the admin). Used by
 * joule-runner and `joule jobs email`. See docs/mail.md.
 *
 * Like every joule library it never logs: functions return 0 (or a count) or a negative errno, and fill a
 * caller's reason buffer where a person needs words. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "store.h"

#define JL_MAIL_MAX_ADDRESS 254        /* RFC 5321's path limit */
#define JL_MAIL_MAX_SUBJECT 998        /* one header line */
#define JL_MAIL_MAX_BODY (1024 * 1024) /* what joule itself ever writes is far less */
#define JL_MAIL_DEFAULT_BATCH 1000     /* mails sent by one jl_mail_send_queued() at most */

typedef struct {
        const char *server; /* smtp://HOST[:PORT] or smtps://HOST[:PORT]; NULL: mail is not configured */
        const char *user;   /* AUTH when set */
        const char *password;
        const char *sender;  /* From: and MAIL FROM */
        bool starttls;       /* smtp://: STARTTLS required (CURLUSESSL_ALL); false: plain text */
        double retry_base_s; /* backoff after the first failure; doubled after each further one */
        double retry_max_s;  /* the backoff's ceiling */
        double timeout_s;    /* one SMTP conversation, connection included */
        const char *ca_file; /* CA bundle to verify the server with; NULL: the system's */
} jl_mail_config;

/* The smtp.* keys of the configuration (the strings are borrowed from c). */
void jl_mail_config_from(const joule_config *c, jl_mail_config *ret);
/* Check a configuration before use: a server URL of a known scheme, a sender, no password sent in clear text
 * to a host other than the loopback. -EINVAL (or -ENOTCONN when no server is set) with the reason in err. */
int jl_mail_config_check(const jl_mail_config *c, char *err, size_t errlen);

/* A mailbox address as joule accepts one: local@domain, printable ASCII without spaces, quotes, angle
 * brackets or control characters, at most JL_MAIL_MAX_ADDRESS bytes. */
bool jl_mail_address_ok(const char *addr);

/* Backoff after `tries` failed attempts (>= 1): retry_base_s * 2^(tries-1), at most retry_max_s. */
double jl_mail_backoff_s(const jl_mail_config *c, unsigned tries);

/* Queue one message (state queued, tries 0, next_try_us = now_us). job_id < 0: none. Returns 0 and the new
 * row's id in *ret_id (may be NULL); -EINVAL for a bad address, an empty or too long subject or body (with
 * the reason in err), or the store's error (jl_store_error()). */
int jl_mail_queue(jl_store *s, const char *to, const char *subject, const char *body, int64_t job_id,
                  int64_t now_us, int64_t *ret_id, char *err, size_t errlen);

/* The whole message as sent (RFC 5322, CRLF line ends): Date (date_us), From, To, Subject (RFC 2047
 * encoded when not ASCII), Message-ID (<joule.ID.DATE_US@DOMAIN-OF-SENDER>, the same on every retry),
 * MIME-Version, Content-Type text/plain; charset=utf-8, Content-Transfer-Encoding 8bit, then the body.
 * Returns 0 and a new string in *ret_text. */
int jl_mail_format(const char *sender, const char *to, const char *subject, const char *body, int64_t id,
                   int64_t date_us, char **ret_text);

/* Send one formatted message now. Returns 0 when the server took it, else a negative errno (-ECONNREFUSED,
 * -ETIMEDOUT, -EACCES for a refused login, -EPROTO for a TLS failure, -EIO for a refusal by the server, …)
 * with libcurl's and the server's words in err. *ret_server_down (may be NULL) tells whether the failure was
 * the server's as a whole (unreachable, TLS, login) rather than this message's. */
int jl_mail_send(const jl_mail_config *c, const char *to, const char *text, char *err, size_t errlen,
                 bool *ret_server_down);

typedef struct {
        unsigned sent;   /* taken by the server and marked sent */
        unsigned failed; /* attempted, refused or not delivered: tries, next_try_us, last_error advanced */
        unsigned
            deferred; /* due but not attempted because the server was down: untouched, tried next time */
} jl_mail_stats;

/* Send every queued message whose next_try_us has come (at most `max`, 0: JL_MAIL_DEFAULT_BATCH), oldest
 * first. Each one is first leased (next_try_us moved past the send's timeout in one conditional UPDATE)
 * so that two senders at once never send the same mail twice; a sender that dies mid-send lets the lease
 * expire and the mail is sent later (at least once, never lost). On success: state sent, sent_us, tries + 1.
 * On failure: tries + 1, last_error, next_try_us = now + backoff. When the server as a whole is down the
 * pass stops after the first failure (the rest are deferred). Returns 0 with the counts in *ret_stats (may
 * be NULL) when the pass ran (failed mails are not an error of the pass; err then holds the last failed
 * send's reason), or a negative errno for the store's or the configuration's failure, with the reason in
 * err. */
int jl_mail_send_queued(jl_store *s, const jl_mail_config *c, int64_t now_us, unsigned max,
                        jl_mail_stats *ret_stats, char *err, size_t errlen);

/* ---- the runner's messages ---- */

/* "job N finished" to the job's e-mail address, with its energy per phase (energy J, average and maximum
 * power W, duration s, maximum temperature) from the job's latest run and phase_stats. Returns 1 when a
 * message was queued (*ret_id, may be NULL), 0 when the job has no e-mail address, -ENOENT when there is no
 * such job, or another negative errno with the reason in err. */
int jl_mail_queue_job_finished(jl_store *s, int64_t job_id, int64_t now_us, int64_t *ret_id, char *err,
                               size_t errlen);
/* "job N failed" with the reason (NULL: the job's message column). Same returns. */
int jl_mail_queue_job_failed(jl_store *s, int64_t job_id, const char *reason, int64_t now_us,
                             int64_t *ret_id, char *err, size_t errlen);
/* "control workload deviated on machine N" to `admin` (admin.notification_email) with `details` (which
 * metric, its value, the window's mean and threshold). -EINVAL when admin is NULL or not an address. */
int jl_mail_queue_control_deviation(jl_store *s, const char *admin, int64_t machine_id, const char *details,
                                    int64_t now_us, int64_t *ret_id, char *err, size_t errlen);
