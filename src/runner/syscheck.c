/* syscheck.c - system checks of a measurement machine against its profile: the CPU state before a run
 * (governor, driver, turbo, SMT, C-states) and what happened during it (steal time, suspend). */
#include "syscheck.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"

#define STEAL_MAX 0.005 /* fraction of CPU time */

int jl_machine_profile_from_string(const char *s, jl_machine_profile *ret)
{
        if (!s)
                return -EINVAL;
        if (strcmp(s, "benchmarking") == 0)
                *ret = JL_PROFILE_BENCHMARKING;
        else if (strcmp(s, "profiling") == 0)
                *ret = JL_PROFILE_PROFILING;
        else
                return -EINVAL;
        return 0;
}

const char *jl_machine_profile_name(jl_machine_profile p)
{
        return p == JL_PROFILE_PROFILING ? "profiling" : "benchmarking";
}

int jl_check_breach_from_string(const char *s, jl_check_status *ret)
{
        if (!s)
                return -EINVAL;
        if (strcmp(s, "warn") == 0)
                *ret = JL_CHECK_WARN;
        else if (strcmp(s, "fail") == 0)
                *ret = JL_CHECK_FAIL;
        else
                return -EINVAL;
        return 0;
}

const char *jl_check_status_name(jl_check_status s)
{
        switch (s) {
        case JL_CHECK_OK:
                return "ok";
        case JL_CHECK_WARN:
                return "warn";
        default:
                return "fail";
        }
}

static void add(jl_syschecks *c, const char *name, jl_check_status st, const char *expected, const char *fmt,
                ...) _printf_(5, 6);
static void add(jl_syschecks *c, const char *name, jl_check_status st, const char *expected, const char *fmt,
                ...)
{
        if (c->n >= JL_SYSCHECK_MAX)
                return;
        jl_syscheck *k = &c->items[c->n++];
        *k = (jl_syscheck){.status = st};
        snprintf(k->name, sizeof(k->name), "%s", name);
        snprintf(k->expected, sizeof(k->expected), "%s", expected);
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(k->observed, sizeof(k->observed), fmt, ap);
        va_end(ap);
}

/* Whether every CPU's scaling_min_freq equals its scaling_max_freq: 1 yes, 0 no, -1 unknown. */
static int min_eq_max(const jl_cpu_info *info, uint64_t *ret_min, uint64_t *ret_max)
{
        int res = 1;
        uint64_t lo = UINT64_MAX, hi = 0;
        for (size_t i = 0; i < info->n_cpus; i++) {
                const jl_cpu *c = &info->cpus[i];
                if (!c->min_khz || !c->max_khz)
                        return -1;
                if (c->min_khz != c->max_khz)
                        res = 0;
                lo = MIN(lo, c->min_khz);
                hi = MAX(hi, c->max_khz);
        }
        if (info->n_cpus == 0)
                return -1;
        *ret_min = lo;
        *ret_max = hi;
        return res;
}

static void check_governor(const jl_cpu_info *info, jl_machine_profile p, jl_check_status breach,
                           jl_syschecks *c)
{
        const char *exp_b = "userspace, or performance with min == max";
        const char *exp_p = "a dynamic governor (not userspace, min < max)";
        const char *exp = p == JL_PROFILE_BENCHMARKING ? exp_b : exp_p;
        uint64_t lo = 0, hi = 0;
        int fixed_limits = min_eq_max(info, &lo, &hi);
        if (!info->governor[0] || fixed_limits < 0) {
                add(c, "governor", JL_CHECK_WARN, exp, "unknown (no cpufreq): cannot be verified");
                return;
        }
        if (info->governors_agree == JL_TRI_NO) {
                add(c, "governor", breach, exp, "%s on cpu%d, but not on every CPU", info->governor,
                    info->cpus[0].cpu);
                return;
        }
        bool userspace = strcmp(info->governor, "userspace") == 0;
        bool performance = strcmp(info->governor, "performance") == 0;
        bool fixed = userspace || (performance && fixed_limits == 1);
        bool dynamic = !userspace && fixed_limits == 0;
        bool good = p == JL_PROFILE_BENCHMARKING ? fixed : dynamic;
        if (fixed_limits == 1)
                add(c, "governor", good ? JL_CHECK_OK : breach, exp, "%s (min == max == %llu MHz)", info->governor,
                    (unsigned long long)(lo / 1000));
        else
                add(c, "governor", good ? JL_CHECK_OK : breach, exp, "%s (min %llu MHz, max %llu MHz)",
                    info->governor, (unsigned long long)(lo / 1000), (unsigned long long)(hi / 1000));
}

static void check_turbo(const jl_cpu_info *info, jl_machine_profile p, jl_check_status breach, jl_syschecks *c)
{
        bool want = p == JL_PROFILE_PROFILING;
        const char *exp = want ? "on" : "off";
        if (info->boost == JL_TRI_UNKNOWN) {
                add(c, "turbo", JL_CHECK_WARN, exp, "unknown (neither intel_pstate/no_turbo nor cpufreq/boost): "
                                                    "cannot be verified");
                return;
        }
        bool on = info->boost == JL_TRI_YES;
        add(c, "turbo", on == want ? JL_CHECK_OK : breach, exp, "%s (%s)", on ? "on" : "off", info->boost_source);
}

static void check_smt(const jl_cpu_info *info, jl_machine_profile p, jl_check_status breach, jl_syschecks *c)
{
        bool want = p == JL_PROFILE_PROFILING;
        const char *exp = want ? "on (or not supported)" : "off (or not supported)";
        const char *ctl = info->smt_control;
        if (strcmp(ctl, "notsupported") == 0 || strcmp(ctl, "notimplemented") == 0) {
                add(c, "smt", JL_CHECK_OK, exp, "%s", ctl);
                return;
        }
        if (info->smt_active == JL_TRI_UNKNOWN) {
                add(c, "smt", JL_CHECK_WARN, exp, "unknown (no smt/active): cannot be verified");
                return;
        }
        bool on = info->smt_active == JL_TRI_YES;
        add(c, "smt", on == want ? JL_CHECK_OK : breach, exp, "%s (control %s)", on ? "on" : "off",
            ctl[0] ? ctl : "unknown");
}

static void check_cstates(const jl_cpu_info *info, jl_machine_profile p, jl_check_status breach,
                          jl_syschecks *c)
{
        bool bench = p == JL_PROFILE_BENCHMARKING;
        const char *exp = bench ? "only state0 (C0/POLL) enabled" : "deeper C-states enabled";
        if (!info->idle_known || info->n_idle_states == 0) {
                add(c, "c-states", JL_CHECK_WARN, exp, "unknown (no cpuidle): cannot be verified");
                return;
        }
        char enabled[128] = "", unknown[64] = "";
        size_t n_deep_enabled = 0, n_unknown = 0, le = 0, lu = 0;
        for (size_t k = 0; k < info->n_idle_states; k++) {
                const char *name = info->idle[k].name;
                if (info->idle[k].disabled == JL_TRI_UNKNOWN) {
                        if (k > 0)
                                n_unknown++;
                        if (lu < sizeof(unknown))
                                lu += (size_t)snprintf(unknown + lu, sizeof(unknown) - lu, " %s", name);
                        continue;
                }
                if (info->idle[k].disabled == JL_TRI_NO) {
                        if (k > 0)
                                n_deep_enabled++;
                        if (le < sizeof(enabled))
                                le += (size_t)snprintf(enabled + le, sizeof(enabled) - le, " %s", name);
                }
        }
        char obs[160];
        snprintf(obs, sizeof(obs), "enabled:%s%s%s", enabled[0] ? enabled : " none", n_unknown ? "; unknown:" : "",
                 n_unknown ? unknown : "");
        jl_check_status st;
        if (bench)
                st = n_deep_enabled ? breach : n_unknown ? JL_CHECK_WARN : JL_CHECK_OK;
        else
                st = n_deep_enabled ? JL_CHECK_OK : n_unknown ? JL_CHECK_WARN : breach;
        add(c, "c-states", st, exp, "%s", obs);
}

void jl_syscheck_evaluate_cpu(const jl_cpu_info *info, jl_machine_profile profile, jl_check_status breach,
                              jl_syschecks *checks)
{
        check_governor(info, profile, breach, checks);
        if (info->driver[0])
                add(checks, "driver", JL_CHECK_OK, "any (recorded)", "%s", info->driver);
        else
                add(checks, "driver", JL_CHECK_WARN, "any (recorded)", "unknown (no cpufreq)");
        check_turbo(info, profile, breach, checks);
        check_smt(info, profile, breach, checks);
        check_cstates(info, profile, breach, checks);
}

int jl_syscheck_machine(jl_machine_profile profile, jl_check_status breach, jl_syschecks *checks)
{
        jl_cpu_info *info = calloc(1, sizeof(*info));
        if (!info)
                return -ENOMEM;
        int r = jl_cpu_info_read(info);
        if (r < 0)
                add(checks, "cpu", JL_CHECK_WARN, "a readable /sys/devices/system/cpu",
                    "cannot read the CPU state (%s): nothing can be verified", strerror(-r));
        else
                jl_syscheck_evaluate_cpu(info, profile, breach, checks);
        free(info);
        return r < 0 ? r : 0;
}

void jl_syscheck_add_run(jl_syschecks *checks, jl_check_status breach, double steal_fraction,
                         double suspended_s)
{
        if (isnan(steal_fraction))
                add(checks, "steal", JL_CHECK_WARN, "< 0.50% of CPU time", "unknown (no /proc/stat)");
        else
                add(checks, "steal", steal_fraction < STEAL_MAX ? JL_CHECK_OK : breach, "< 0.50% of CPU time",
                    "%.2f%%", steal_fraction * 100);
        if (suspended_s > 0)
                add(checks, "suspend", breach, "none", "suspended for %.1f s during the run", suspended_s);
        else
                add(checks, "suspend", JL_CHECK_OK, "none", "none");
}

const jl_syscheck *jl_syschecks_first_failure(const jl_syschecks *checks)
{
        for (size_t i = 0; i < checks->n; i++)
                if (checks->items[i].status == JL_CHECK_FAIL)
                        return &checks->items[i];
        return NULL;
}
