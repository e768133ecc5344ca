/* report.h - what the runtime asks of jouled and tells it, over jouled's local socket ($JOULE_SOCKET or
 * node.socket's default): frequencies for the step's CPUs, and the application's signature, its loops and
 * its policy's decisions as records that jouled stores (directly or through joule-dbd). The step is taken
 * from JOULE_JOB_ID / JOULE_STEP_ID (set by `joule launch` and the SPANK plugin), else SLURM_JOB_ID /
 * SLURM_STEP_ID. Every call returns 0 or a negative errno and blocks at most JL_RT_REPORT_TIMEOUT_MS; after
 * a timeout, calls fail at once with -EHOSTDOWN for 2 s, then 4, 8 … 30 s while jouled stays silent. A
 * record that could not be sent (-ENOENT, -ECONNREFUSED, -EHOSTDOWN, …; not one that timed out: it was
 * written, and jouled reads it when it runs again) is kept, up to
 * JL_RT_PENDING_MAX, and sent before the next request that reaches jouled. */
#pragma once

#include <sched.h>
#include <stddef.h>
#include <stdint.h>

#define JL_RT_REPORT_TIMEOUT_MS 1000
/* Records kept for a jouled that is away (down, restarting, hung) until it answers again. */
#define JL_RT_PENDING_MAX 128

typedef struct {
        char app_name[64];
        char policy[32];
        double policy_th;
        double time_s;
        double energy_j;
        double avg_power_w;
        double pck_power_w;  /* NAN where unknown */
        double dram_power_w; /* NAN where unknown */
        uint64_t avg_cpufreq_khz;
        uint64_t def_cpufreq_khz;
        double cpi, tpi, gbs, gflops; /* NAN where unknown (no counters) */
        char tag[64];
} jl_rt_app_record;

typedef struct {
        char loop_key[64]; /* "event:size:level" of the loop detector */
        uint64_t iterations;
        double time_per_iteration_s;
        double avg_power_w;
        uint64_t avg_cpufreq_khz;
        double cpi, tpi, gbs, gflops; /* NAN where unknown */
} jl_rt_loop_record;

/* The step: JOULE_JOB_ID / JOULE_STEP_ID, else SLURM_JOB_ID / SLURM_STEP_ID (no step id: -1). -ENOENT when
 * no job id is set, -EINVAL when one is not a number. */
int jl_rt_step_from_env(char *job, size_t size, int64_t *ret_step);
int jl_rt_report_connect(void);
/* Closes the connection; records still waiting are dropped (flush first). */
void jl_rt_report_disconnect(void);
/* Sends the records that wait for jouled (within the timeout). 0 when none is left. */
int jl_rt_report_flush(void);
/* Records waiting, dropped (the queue was full) and refused by jouled when they were sent late. */
void jl_rt_report_stats(size_t *ret_pending, size_t *ret_dropped, size_t *ret_refused);
/* Frequency of the CPUs in the mask (all of them must belong to the step), set by jouled, which remembers
 * what was in force before the step's first change and restores it when the step ends. */
int jl_rt_set_cpufreq(const cpu_set_t *cpus, unsigned long khz);
int jl_rt_report_app(const jl_rt_app_record *r);
int jl_rt_report_loop(const jl_rt_loop_record *r);
/* kind: "policy", "frequency", "bound", "phase", "mode", "error", …; value: the number it is about. */
int jl_rt_report_event(const char *kind, double value, const char *message);
