/* daemon.h - the measurement machine's job loop, shared by `joule-runner` (the service) and `joule jobs run`
 * (cron mode): connect to the store (retrying with backoff), fail this machine's stale RUNNING jobs, and in
 * each pass: send queued mail, honour the control-workload error and revalidation flags, gate on
 * temperature (cooldown / warm-up), claim one WAITING job atomically under a per-machine lock, run it under
 * measurement (a stored scenario, or a git repository's joule.yml), store the run in one transaction
 * (runs, phase_stats, measurement_values, notes, the job's state and its e-mail), then run the cleanup
 * script. Status changes go to runner_status (only when they change) and the machines row. See
 * docs/cluster.md.
 *
 * Like every joule library it never logs: what a person should read is handed to the caller's log
 * callback, once, where it happens. Signals: the caller blocks SIGINT and SIGTERM and passes a signalfd for
 * them; every wait of the library polls it, so a signal stops the pass: the job in hand is FAILED ("stopped
 * by SIGINT") or stored as finished when it already was, and the pass returns -EINTR. Results are never
 * dropped: storing one is retried (reconnecting) through a database outage, also after a signal, up to
 * JL_RUNNER_STOP_GRACE_S. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

#define JL_RUNNER_STOP_GRACE_S 300.0 /* after a signal: time left to store a result (TimeoutStopSec=600) */
#define JL_RUNNER_BACKOFF_MAX_S 30.0 /* database retries: 0.5 s doubling up to this */
#define JL_RUNNER_CLONE_TIMEOUT_S 900.0 /* git clone of a repository job */
#define JL_RUNNER_CLEANUP_TIMEOUT_S 600.0
#define JL_RUNNER_SCENARIO_FILE "joule.yml" /* a repository job's scenario, at the repository's root */
#define JL_RUNNER_CHANNEL "joule_jobs"      /* `joule submit` NOTIFYs it with the machine id */
#define JL_RUNNER_OUTPUT_MAX (64 * 1024)    /* the tail of a job's output kept in bench_jobs.output */

typedef enum {
        JL_STATUS_NONE = -1,
        JL_STATUS_JOB_NO,
        JL_STATUS_JOB_START,
        JL_STATUS_JOB_END,
        JL_STATUS_JOB_ERROR,
        JL_STATUS_COOLDOWN,
        JL_STATUS_WARMUP,
        JL_STATUS_CLEANUP_START,
        JL_STATUS_CLEANUP_STOP,
        JL_STATUS_CONTROL_START,
        JL_STATUS_CONTROL_END,
        JL_STATUS_CONTROL_ERROR,
        _JL_STATUS_MAX,
} jl_runner_status;

/* "job_no", "job_start", …, "measurement_control_error" (the runner_status.status values). */
const char *jl_runner_status_name(jl_runner_status s);

/* level: LOG_LEVEL_* of log.h (3 error … 7 debug); err: a negative errno or 0. */
typedef void (*jl_runner_log_fn)(void *userdata, int level, int err, const char *msg);

typedef struct {
        const joule_config *config; /* borrowed; outlives the runner */
        int signal_fd;              /* signalfd of SIGINT/SIGTERM (blocked by the caller); -1: none */
        const char *lock_dir;       /* the per-machine lock file's directory (jl_runner_default_lock_dir) */
        bool send_mail;             /* send queued e-mail at the start of every pass */
        jl_runner_log_fn log;
        void *userdata;
} jl_runner_opts;

typedef struct jl_runner jl_runner;

/* The lock directory: $RUNTIME_DIRECTORY (systemd's RuntimeDirectory=), else /run/joule for root, else
 * $XDG_RUNTIME_DIR/joule, else /tmp/joule-UID. Returns 0 or -ENAMETOOLONG. */
int jl_runner_default_lock_dir(char *buf, size_t size);

int jl_runner_new(const jl_runner_opts *o, jl_runner **ret);
void jl_runner_free(jl_runner *r);

/* Open the database, retrying with backoff until it answers (-EINTR on a signal), check that machine.id
 * exists (-ENOENT otherwise: a configuration error), LISTEN on PostgreSQL, store the configuration snapshot,
 * and fail this machine's stale RUNNING jobs ("runner restarted while the job was running") under the
 * machine's lock. once (cron mode): give up after the first failed connection attempt, and leave the stale
 * jobs alone when another process holds the lock (a runner at work). */
int jl_runner_start(jl_runner *r, bool once);

/* One pass of the loop. Returns 1 when a job (or the control workload) ran, 0 when there was nothing to do
 * (no job, another process holds the machine's lock, the control workload reported an error), -EINTR when a
 * signal stopped it, another negative errno for a fatal error (logged through the callback). */
int jl_runner_pass(jl_runner *r);

/* Wait up to `seconds`: on PostgreSQL a NOTIFY for this machine ends it early (wake = true), a signal ends
 * it with -EINTR. Returns 0. */
int jl_runner_wait(jl_runner *r, double seconds, bool wake);

/* The signal that stopped the runner (SIGINT, SIGTERM), or 0. */
int jl_runner_stop_signal(const jl_runner *r);

/* Report the runner's status now (only written when it differs from the last one). */
void jl_runner_report(jl_runner *r, jl_runner_status st, int64_t job_id, const char *message);

/* Install a handler for SIGSEGV, SIGBUS, SIGABRT, SIGFPE and SIGILL that writes a backtrace to stderr
 * (backtrace_symbols_fd) and raises the signal again with its default action. */
void jl_runner_install_crash_handler(void);

/* ---- the control workload's comparison (pure; daemon-control.c) ---- */

typedef enum {
        JL_CONTROL_ENERGY,
        JL_CONTROL_POWER,
        JL_CONTROL_DURATION,
        _JL_CONTROL_METRIC_MAX,
} jl_control_metric;

typedef struct {
        bool absolute;                            /* runner.control_threshold_type */
        double threshold[_JL_CONTROL_METRIC_MAX]; /* fraction of the mean (relative) or J, W, s */
} jl_control_limits;

void jl_control_limits_from(const joule_config *c, jl_control_limits *ret);
const char *jl_control_metric_name(jl_control_metric m); /* "energy", "power", "duration" */
const char *jl_control_metric_unit(jl_control_metric m); /* "J", "W", "s" */

/* Check one metric of one phase: `value` of the new control run and `history` (n earlier good runs, n >= 2).
 * The standard deviation (sample) of the n + 1 values, relative to their mean or absolute, against the
 * threshold. Returns 1 (and the details in msg) on a breach, 0 within it, -EINVAL for n < 2. */
int jl_control_check(const jl_control_limits *l, jl_control_metric m, const char *phase, double value,
                     const double *history, size_t n, char *msg, size_t msglen);
