/* cputopo.h - CPU topology and cpufreq/cpuidle/SMT state read from /sys/devices/system/cpu, and the
 * cpufreq setters (limits, governor, userspace speed) that the node daemon uses. Not a provider. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The largest CPU number handled (CPUs 0..JL_CPU_MAX-1). Machines with more CPUs get -ERANGE. */
#define JL_CPU_MAX 1024
#define JL_CPU_MASK_WORDS (JL_CPU_MAX / 64)
#define JL_CPUIDLE_MAX 16

#define JL_CPU_SYSFS "/sys/devices/system/cpu"

/* A yes/no that may be unknown (its file missing or unreadable). */
typedef enum {
        JL_TRI_UNKNOWN = -1,
        JL_TRI_NO = 0,
        JL_TRI_YES = 1,
} jl_tristate;

typedef struct {
        int cpu;     /* its number */
        int package; /* topology/physical_package_id; -1: unknown */
        int core;    /* topology/core_id; -1: unknown */
        /* kHz; 0: unknown (file missing, unreadable or garbage) */
        uint64_t cur_khz;         /* cpufreq/scaling_cur_freq */
        uint64_t min_khz;         /* cpufreq/scaling_min_freq */
        uint64_t max_khz;         /* cpufreq/scaling_max_freq */
        uint64_t cpuinfo_min_khz; /* cpufreq/cpuinfo_min_freq */
        uint64_t cpuinfo_max_khz; /* cpufreq/cpuinfo_max_freq */
        char governor[32];        /* cpufreq/scaling_governor; "": unknown */
} jl_cpu;

typedef struct {
        size_t n_cpus; /* online CPUs, in cpus[0..n_cpus) in increasing order */
        jl_cpu cpus[JL_CPU_MAX];
        uint64_t online[JL_CPU_MASK_WORDS]; /* bit c set: CPU c is online */
        bool online_known;                  /* false: the online file is missing; cpus[] lists every cpuN */

        int n_packages; /* distinct physical_package_id values; -1: unknown */

        char governor[32]; /* cpu0's (the first online CPU's) governor; "": unknown */
        jl_tristate governors_agree;
        char driver[32]; /* cpufreq/scaling_driver of the first online CPU; "": unknown (no cpufreq) */

        jl_tristate boost;        /* turbo/boost enabled */
        const char *boost_source; /* "intel_pstate/no_turbo", "cpufreq/boost", or NULL when unknown */

        char smt_control[24];   /* smt/control: "on", "off", "forceoff", "notsupported", "notimplemented" */
        jl_tristate smt_active; /* smt/active */

        size_t n_idle_states; /* cpuidle states of the first online CPU; 0 with idle_known false: none */
        bool idle_known;
        struct {
                char name[32];
                jl_tristate disabled;
        } idle[JL_CPUIDLE_MAX];
} jl_cpu_info;

/* Read the whole state. jl_cpu_info is large (~70 KiB): allocate it. Returns 0, -ENOENT when
 * /sys/devices/system/cpu lists no CPU at all, -ERANGE when a CPU number is >= JL_CPU_MAX, -EINVAL when the
 * online list is garbage. Every other missing file leaves its field unknown. */
int jl_cpu_info_read(jl_cpu_info *ret);

/* The online CPUs from /sys/devices/system/cpu/online, as a mask of JL_CPU_MASK_WORDS words. Returns the
 * number of online CPUs (> 0), or a negative errno (-ENOENT missing, -EINVAL garbage or empty, -ERANGE too
 * many CPUs). */
int jl_cpu_online_mask(uint64_t ret_mask[JL_CPU_MASK_WORDS]);

static inline bool jl_cpu_mask_test(const uint64_t *mask, int cpu)
{
        return cpu >= 0 && cpu < JL_CPU_MAX && (mask[cpu / 64] >> (cpu % 64)) & 1;
}

/* Setters (root only). Each returns 0 or a negative errno: -EINVAL for bad arguments (cpu outside
 * 0..JL_CPU_MAX-1, min > max, a zero frequency, a governor name with odd characters), -ENOENT when the CPU
 * has no cpufreq, or the errno of the write (the kernel answers -EINVAL to values it refuses). */

/* Set scaling_min_freq and scaling_max_freq. The order is safe: when the new minimum is above the current
 * maximum the maximum is written first, otherwise the minimum is, so that min <= max holds after each
 * write and the kernel never refuses a step. */
int jl_cpufreq_set_limits(int cpu, uint64_t min_khz, uint64_t max_khz);
/* Write scaling_governor ("performance", "powersave", "userspace", "schedutil", ...). */
int jl_cpufreq_set_governor(int cpu, const char *gov);
/* Write scaling_setspeed. Only the userspace governor has one: -EOPNOTSUPP when another governor runs. */
int jl_cpufreq_set_speed(int cpu, uint64_t khz);
