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

/* Who claimed a job (bench_jobs.claim_*). */
typedef struct {
        char host[256];
        char boot_id[64]; /* /proc/sys/kernel/random/boot_id; "": unknown */
        int64_t pid;
        int64_t pid_start; /* clock ticks after boot (/proc/PID/stat field 22); -1: unknown */
} jl_claimer;

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
        jl_claimer self;          /* this process, as recorded in the jobs it claims */
        char spool_dir[PATH_MAX]; /* results not yet stored (daemon-spool.c) */
        char spool_prefix[64];    /* this machine's and database's spool files: "m<id>-<hash>-" */
        bool spool_failing;       /* a failure to spool was logged */
};

/* One result to store (daemon-store.c's transaction; daemon-spool.c writes and reads it back). */
typedef struct {
        int64_t job_id;           /* <= 0: none (a control run) */
        const char *kind;         /* "job", "control" */
        const jl_run_result *res; /* NULL: nothing was measured */
        bool finished;            /* the job's state: FINISHED or FAILED */
        const char *message;      /* the job's message */
        const char *run_error;    /* runs.error; NULL: the run is good */
        bool control;             /* a control run: needs_validation is cleared */
        const char
            *deviation;     /* a control run that deviated: measurement_control_error and the admin's mail */
        const char *output; /* the tail of the job's output (bench_jobs.output); NULL: none */
        double sampling_rate_ms; /* runs.sampling_rate_ms */
        const char *config_json; /* runs.config_json */
        bool job_changed;        /* out: this transaction ended the job */
} store_args;

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

/* daemon-claim.c */
int runner_claimer_self(jl_claimer *ret);
/* 1 when the holder of a RUNNING job is provably gone (same host: another boot, or its process is not
 * running any more; or no claimer recorded), 0 otherwise; the reason in why. */
int runner_claimer_gone(const jl_claimer *self, const jl_claimer *holder, char *why, size_t whylen);
typedef struct runner_output runner_output;
/* A file for the job's commands' output (*ret_fd, unlinked, in $TMPDIR). */
int runner_output_start(runner_output **ret, int *ret_fd);
/* Copy the output to stdout (the journal), keep its last JL_RUNNER_OUTPUT_MAX bytes as valid UTF-8 without
 * NUL bytes (malloc'd; NULL when out of memory), close the file. Frees o. */
char *runner_output_finish(runner_output *o);

/* daemon-spool.c: a result is written to the spool (atomically: a unique temporary file, fsync, rename)
 * before it is stored, removed once stored, and replayed at start and at every pass, so that a kill -9
 * or a power loss while the database is away loses nothing. */
typedef struct {
        int fd; /* locked (flock) while the result is being stored; -1: not spooled */
        char path[PATH_MAX + 320];
} runner_spool;
int runner_spool_init(jl_runner *r);
/* Spool a; on failure (logged once) sp->fd is -1 and the result is only in memory. */
void runner_spool_write(jl_runner *r, const store_args *a, runner_spool *sp);
/* The result is stored: remove its file. */
void runner_spool_done(runner_spool *sp);
/* Store every spooled result of this machine and database that no other process is storing now. Returns
 * the number stored, -EINTR, or another negative errno (logged). */
int runner_spool_replay(jl_runner *r);

/* daemon-store.c */
/* Store a result with retries (also after a signal, up to the stop deadline); a run that cannot be stored
 * (not an outage) marks the job FAILED with the reason at least. */
int runner_store(jl_runner *r, store_args *a);
/* Store a spooled result (its file is the caller's): retried through outages until a signal (-EINTR); a
 * run that cannot be stored marks the job FAILED with the reason. */
int runner_store_spooled(jl_runner *r, store_args *a);
int runner_config_json(jl_runner *r, char **ret);
/* Run claimed job `id` whole: status, workdir, clone, scenario, run, store, cleanup. 0 or -EINTR (stopped;
 * the job was stored as FAILED or finished) or a fatal negative errno. */
int runner_job(jl_runner *r, int64_t id);
/* Mark a claimed job FAILED with `message` without running it (and queue its mail). */
int runner_fail_job(jl_runner *r, int64_t id, const char *message);
/* Run the control workload, compare, store, and on a breach set measurement_control_error and mail the
 * admin. 1, -EINTR, or a fatal negative errno. */
int runner_control(jl_runner *r, bool flagged);
