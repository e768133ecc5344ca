/* manage.h - the runtime's brain, shared by every build: the JOULE_* settings, loop tracking on the
 * event stream (DynAIS, level 0), signatures over windows of iterations (time per iteration; node,
 * package and DRAM power from jouled's shared page; average frequency; CPI from counters), the phase, the
 * node's policy and its decisions, and the records for jouled (report.h). Only the node master manages;
 * the other ranks only count. Time-guided where no loop guides it. See docs/runtime.md and
 * docs/policies.md. */
#pragma once

#include <sched.h>
#include <stdbool.h>
#include <stdint.h>

#include "policy.h"

typedef struct {
        jl_rt_policy_kind policy;
        double th;                 /* the policy's threshold */
        unsigned long cpufreq_khz; /* JOULE_CPUFREQ; 0: the nominal maximum (min_time: 3 steps below) */
        unsigned window_ms;        /* JOULE_WINDOW_MS: shortest signature window (default 10000) */
        unsigned window_iters;     /* JOULE_WINDOW_ITERATIONS: fewest iterations per window (default 3) */
        unsigned settle_ms;        /* JOULE_SETTLE_MS: after a change, before a window opens (default 100) */
        unsigned loop_wait_ms; /* JOULE_LOOP_WAIT_MS: no loop for that long: time-guided (default 15000) */
        unsigned period_ms;    /* JOULE_PERIOD_MS: time-guided period (default 1000) */
        double max_call_rate;  /* JOULE_MAX_CALL_RATE: MPI calls/s above which detection stops (200000) */
        char tag[64], app_name[64];
        int learning; /* JOULE_LEARNING: a learning run at P-state N (0: the nominal maximum); -1 none */
        char report_path[4000]; /* JOULE_REPORT: the user's CSV file, PATH.<node>.csv ("": none) */
} jl_rt_config;

/* Reads the settings through get (getenv in the runtime; a table in the unit tests). Bad values are
 * replaced by the defaults and described in why (one line per problem, "; "-separated); returns how many
 * were bad (0: all good). */
int jl_rt_config_parse(const char *(*get)(const char *name), jl_rt_config *ret, char *why, size_t whylen);

/* Start managing on this process (the node master, or a program without MPI) for the CPUs of the set. */
void jl_rt_manage_start(bool mpi, const cpu_set_t *cpus);
/* One MPI event (node master only; any thread). */
void jl_rt_manage_event(uint32_t event_id);
/* A time-guided period elapsed (programs without MPI: the timer thread). */
void jl_rt_manage_period(void);
/* The end: the last loop's and the application's records, the step's frequency given back. */
void jl_rt_manage_fini(void);
bool jl_rt_managing(void);
/* The time-guided period (JOULE_PERIOD_MS) of the settings read at start. */
unsigned jl_rt_manage_period_ms(void);
