/* run.h - run a scenario under measurement on this machine: setup (not measured), a baseline idle phase
 * "[BASELINE]", each flow step as a phase, teardown (not measured), with the system checks before and
 * after. Sampling runs on a timerfd at the configured interval and a sample is taken exactly at every
 * phase boundary: the sample that ends one phase starts the next, so no energy is lost or counted twice
 * at the edges. Per phase: duration, energy per domain and in total, average/maximum power, maximum
 * temperature, mean CPU utilization; for the whole run: the timeline of every sample. See
 * docs/scenarios.md.
 *
 * Commands run one after another through /bin/sh -c, each in its own process group, with stdin from
 * /dev/null, the runner's environment plus the scenario's and the step's variables, in opts->workdir. A
 * step's timeout bounds the whole step (all its commands); setup and teardown commands are bounded by
 * opts->setup_timeout_s each. When a command ends (or is killed), whatever it left in its process group is
 * killed too; only processes that leave the group (setsid, daemons, systemd-run) outlive it.
 *
 * Signals. For its duration jl_run_scenario() blocks SIGCHLD, SIGINT and SIGTERM in the calling thread
 * and reads them through its own signalfd; it restores the mask before returning. Call it from a
 * single-threaded program or with those signals blocked in every other thread. SIGINT or SIGTERM kills the
 * running command's process group (SIGTERM, then SIGKILL after 2 s), skips the remaining steps, runs the
 * teardown (a second signal stops that too) and returns a FAILED result whose `signal` says which signal
 * came: the caller decides what to do (the runner stops; `joule run` exits 130). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "config.h"
#include "json.h"
#include "provider.h"
#include "sampler.h"
#include "scenario.h"
#include "syscheck.h"

#define JL_RUN_BASELINE_NAME "[BASELINE]"
#define JL_RUN_MAX_POINTS (10u * 1000 * 1000) /* timeline bound: beyond it points_truncated is set */

typedef struct {
        double baseline_s;            /* idle phase before the flow; default 5 s; 0: no baseline phase */
        uint64_t interval_ns;         /* sampling interval; default 99 ms (measurement.sampling_rate) */
        double setup_timeout_s;       /* per setup/teardown command; default JL_SCENARIO_DEFAULT_TIMEOUT_S */
        jl_provider_config providers; /* jl_provider_config_default(); .pid is ignored */
        const char *const *only;      /* provider names (NULL-terminated), NULL: every provider */
        const char *workdir;          /* commands' working directory; NULL: the caller's */
        int output_fd;                /* commands' stdout and stderr; -1: the caller's own */
        jl_machine_profile profile;   /* machine.profile; default benchmarking */
        jl_check_status breach;       /* runner.system_checks: JL_CHECK_WARN (default) or JL_CHECK_FAIL */
        bool timeline;                /* keep every sample in the result (default true) */
} jl_run_opts;

typedef struct {
        char name[JL_NAME_MAX]; /* "package-0", "dram-0", "psys", ... */
        const char *provider;   /* static string */
        jl_scope scope;
        bool estimated;
        double energy_j;
        double power_avg_w, power_max_w;
        double gap_s; /* time whose energy was estimated across unresolved counter wraps (metrics.md) */
} jl_run_domain;

typedef struct {
        char *name;               /* JL_RUN_BASELINE_NAME or the step's name */
        bool complete;            /* false: the phase was cut short by a failure or a signal */
        uint64_t start_ns, end_ns; /* CLOCK_MONOTONIC of its boundary samples */
        double duration_s;
        double energy_j;            /* packages + DRAM + GPUs; else a whole-node sensor; else the estimate */
        jl_total_source energy_source;
        double power_avg_w, power_max_w; /* of energy_j; max over the sampling intervals */
        double temp_max_c;         /* over every temperature sensor; NAN: none */
        double cpu_utilization;    /* mean over the phase, 0..1 (whole machine, /proc/stat); NAN: unknown */
        double steal;              /* mean stolen fraction of CPU time; NAN: unknown */
        double suspended_s;
        uint64_t samples;          /* samples in the phase, both boundaries included */
        jl_run_domain *domains;    /* every energy channel, summed or not */
        size_t n_domains;
} jl_run_phase;

/* The timeline: one point per sample and channel that read well. Energy metrics hold the energy (J) of the
 * interval since the previous sample (their sum over a phase is the phase's energy); gauges hold their
 * reading (W, °C, kHz, fraction). */
typedef struct {
        char name[JL_NAME_MAX];
        const char *provider;
        jl_kind kind;
        const char *unit; /* "J", "W", "C", "kHz", "ratio" */
} jl_run_metric;

typedef struct {
        uint64_t t_ns;   /* CLOCK_MONOTONIC; realtime = t_ns + result->realtime_offset_ns */
        uint32_t metric; /* index into result->metrics */
        uint32_t phase;  /* index into result->phases */
        double value;
} jl_run_point;

typedef enum {
        JL_RUN_FINISHED,
        JL_RUN_FAILED,
} jl_run_state;

typedef struct {
        jl_run_state state;
        char message[1024]; /* why it failed ("step 'compile': command 'make -j2' exited with status 2"); "" */
        char failed_step[JL_SCENARIO_MAX_NAME + 16]; /* the step, "[BASELINE]", "setup", "teardown",
                                                        "system checks"; "" */
        int signal;                                  /* SIGINT/SIGTERM that interrupted the run; 0 */
        jl_run_phase *phases;
        size_t n_phases;
        jl_syschecks checks;
        double suspended_s; /* over the measured phases */
        uint64_t start_ns, end_ns;
        int64_t realtime_offset_ns;
        jl_run_metric *metrics;
        size_t n_metrics;
        jl_run_point *points;
        size_t n_points;
        bool points_truncated;
        char **notes; /* providers' notes ("rapl: ..."), n_notes of them */
        size_t n_notes;
} jl_run_result;

void jl_run_opts_default(jl_run_opts *o);

/* Run the scenario. Returns 0 and a result in *ret (FINISHED or FAILED with a message: failing commands,
 * timeouts, signals, a failed system check, no measurement providers, a failed fork are all FAILED
 * results, never errors), or -EINVAL for bad options, -ENOMEM. */
int jl_run_scenario(const jl_scenario *s, const jl_run_opts *o, jl_run_result **ret);
void jl_run_result_free(jl_run_result *r);

const char *jl_run_state_name(jl_run_state s); /* "FINISHED", "FAILED" */

/* Write the "run" object of `joule run --json` and `joule jobs show --json`: {"phases": [{"name",
 * "complete", "duration_s", "energy_j", "energy_source", "power_w": {"avg", "max"}, "temperature_c":
 * {"max"}, "cpu_utilization", "domains": [{"name", "provider", "scope", "energy_j", "power_w": {"avg",
 * "max"}, "estimated"}]}], "system_checks": [{"name", "observed", "expected", "status"}], "suspended_s",
 * "samples", "notes": [...]} */
void jl_run_result_json(const jl_run_result *r, json_writer *w);

/* Map the configuration onto options (over jl_run_opts_default()): measurement.sampling_rate,
 * measurement.hwmon_sensors, estimate.idle_w/max_w, machine.profile, runner.system_checks. The options
 * borrow strings from `c`. Returns 0 or -EINVAL (a profile or mode the config loader should have refused). */
int jl_run_opts_from_config(const joule_config *c, jl_run_opts *o);
