/* syscheck.h - the system checks recorded with every run of the measurement cluster and evaluated against
 * the machine's profile (machine.profile): CPU frequency governor and driver, turbo, SMT and C-states read
 * from /sys/devices/system/cpu before the flow, then steal time and suspend over the run. Each check has a
 * name, the observed and the expected value, and a status; a breach is a warning or a failure as
 * runner.system_checks says. See docs/scenarios.md ("System checks").
 *
 *   check      benchmarking                                   profiling (a user's machine)
 *   governor   userspace, or performance with min == max      a dynamic governor (not userspace, min < max)
 *   driver     recorded (always ok when known)                recorded
 *   turbo      off                                            on
 *   smt        off (or not supported)                         on (or not supported)
 *   c-states   every state but state0 (POLL/C0) disabled      at least one deeper state enabled
 *   steal      < 0.5% of CPU time                             < 0.5%
 *   suspend    none                                           none
 *
 * A value that cannot be read (a VM without cpufreq, no cpuidle) is a warning ("cannot be verified") in
 * either mode, never a failure. The C-states are those of the first online CPU. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "cputopo.h"

typedef enum {
        JL_CHECK_OK,
        JL_CHECK_WARN,
        JL_CHECK_FAIL,
} jl_check_status;

typedef enum {
        JL_PROFILE_BENCHMARKING,
        JL_PROFILE_PROFILING,
} jl_machine_profile;

typedef struct {
        char name[16];      /* "governor", "driver", "turbo", "smt", "c-states", "steal", "suspend" */
        char observed[160]; /* "powersave (min 800 MHz, max 3000 MHz)", "on", "enabled: POLL C1 C6", "0.00%" */
        char expected[96];  /* "userspace, or performance with min == max", "off", ... */
        jl_check_status status;
} jl_syscheck;

#define JL_SYSCHECK_MAX 16

typedef struct {
        jl_syscheck items[JL_SYSCHECK_MAX];
        size_t n;
} jl_syschecks;

/* "benchmarking" | "profiling" -> profile; -EINVAL otherwise. */
int jl_machine_profile_from_string(const char *s, jl_machine_profile *ret);
const char *jl_machine_profile_name(jl_machine_profile p);
/* "warn" | "fail" -> JL_CHECK_WARN | JL_CHECK_FAIL (the status of a breach); -EINVAL otherwise. */
int jl_check_breach_from_string(const char *s, jl_check_status *ret);
const char *jl_check_status_name(jl_check_status s); /* "ok", "warn", "fail" */

/* Evaluate the machine's CPU state (pure: for tests and for a state read elsewhere). Appends governor,
 * driver, turbo, smt and c-states to *checks; a breach gets status `breach` (JL_CHECK_WARN or
 * JL_CHECK_FAIL). */
void jl_syscheck_evaluate_cpu(const jl_cpu_info *info, jl_machine_profile profile, jl_check_status breach,
                              jl_syschecks *checks);
/* Read /sys/devices/system/cpu (jl_cpu_info_read) and evaluate it. Returns 0, or the negative errno of
 * jl_cpu_info_read (-ENOENT: no CPU listed) after appending one warning check "cpu" that says so, or
 * -ENOMEM. */
int jl_syscheck_machine(jl_machine_profile profile, jl_check_status breach, jl_syschecks *checks);
/* Append the checks over the run: steal (the mean fraction of CPU time stolen, NAN when unknown) and
 * suspend (seconds the machine was suspended). */
void jl_syscheck_add_run(jl_syschecks *checks, jl_check_status breach, double steal_fraction,
                         double suspended_s);
/* The first check with status JL_CHECK_FAIL, or NULL. */
const jl_syscheck *jl_syschecks_first_failure(const jl_syschecks *checks);
