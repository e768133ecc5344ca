/* daemon-internal.h - what daemon.c (the loop, the store's retries, gating, children) and daemon-store.c
 * (running a job or the control workload and storing its run) share. Not installed. */
#pragma once

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include "daemon.h"
#include "log.h"
#include "macro.h"
#include "mail.h"
#include "run.h"
#include "store.h"

#define JL_RUNNER_STALE_MESSAGE "runner restarted while the job was running"

struct jl_runner {
        jl_runner_opts o;
        const joule_config *c;
        jl_store *store;
        bool broken;    /* the connection needs jl_store_reconnect() */
        bool listening; /* LISTEN joule_jobs was sent on this connection */
        bool outage;    /* an outage was logged; log its end once */
        bool mail_failing;
        char err[1024]; /* the store's last words, kept across a rollback */
        int stop_signal;
        uint64_t stop_deadline_ns;
        jl_runner_status status; /* the last one reported */
        int64_t status_job;
        char status_msg[1024];
        bool status_pending; /* not written yet (the database was away) */
        int lock_fd;
        char lock_path[PATH_MAX];
        double temp_c;
        jl_run_opts run_opts;
        jl_mail_config mail;
        jl_control_limits limits;
        char *config_json;
};

typedef int (*runner_db_fn)(jl_runner *r, void *arg);

void runner_say(jl_runner *r, int level, int err, const char *fmt, ...) _printf_(4, 5);
int64_t runner_now_us(void);
void runner_signal_seen(jl_runner *r, int sig);
int runner_poll(jl_runner *r, int fd, uint64_t timeout_ns);
int runner_sleep(jl_runner *r, double seconds);
/* Run fn (one transaction, safe to repeat) until it succeeds, reconnecting with backoff through outages.
 * Not `must`: gives up with -EINTR on a signal; `must`: goes on after a signal until the stop deadline. A
 * non-transient error is logged and returned. */
int runner_db(jl_runner *r, const char *what, runner_db_fn fn, void *arg, bool must);
int runner_lock(jl_runner *r, bool wait);
void runner_unlock(jl_runner *r);
/* Run argv (execvp) in its own process group in cwd, output captured (its tail in `tail`), for at most
 * timeout_s. Returns the exit status (0…255, 256 + signal when killed by one), -ETIMEDOUT, -EINTR (a stop
 * signal: the group was killed), or the errno of pipe/fork. */
int runner_spawn(jl_runner *r, char *const argv[], const char *cwd, double timeout_s, char *tail,
                 size_t tailsize);
const char *runner_last_line(char *text);
int runner_gate(jl_runner *r, int64_t job_id, char *msg, size_t msglen);
void runner_send_mail(jl_runner *r);

/* daemon-store.c */
int runner_config_json(jl_runner *r, char **ret);
/* Run claimed job `id` whole: status, workdir, clone, scenario, run, store, cleanup. 0 or -EINTR (stopped;
 * the job was stored as FAILED or finished) or a fatal negative errno. */
int runner_job(jl_runner *r, int64_t id);
/* Mark a claimed job FAILED with `message` without running it (and queue its mail). */
int runner_fail_job(jl_runner *r, int64_t id, const char *message);
/* Run the control workload, compare, store, and on a breach set measurement_control_error and mail the
 * admin. 1, -EINTR, or a fatal negative errno. */
int runner_control(jl_runner *r, bool flagged);
