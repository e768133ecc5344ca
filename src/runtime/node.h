/* node.h - what the runtime reads of its node: the available and current CPU frequencies from sysfs
 * cpufreq (read only: frequencies are set by jouled), and jouled's shared-memory page (src/proto/shm.h)
 * for the node's energy, asked for over jouled's local socket. Never logs; errors are negative errnos. */
#pragma once

#include <sched.h>
#include <stddef.h>
#include <stdint.h>

#include "shm.h"

/* The frequencies cpu can run at, ascending: scaling_available_frequencies where the driver lists them
 * (acpi-cpufreq), else cpuinfo_min_freq to cpuinfo_max_freq by 100 MHz (intel_pstate, amd-pstate).
 * Returns how many (at most max), or -ENOENT (no cpufreq), -EINVAL (garbage). */
int jl_rt_cpufreq_list(int cpu, unsigned long *freqs, size_t max);
/* The nominal maximum: cpuinfo_max_freq of cpu. */
int jl_rt_cpufreq_max(int cpu, unsigned long *ret_khz);
/* Mean scaling_cur_freq over the CPUs of the set that have one; -ENOENT when none has. */
int jl_rt_cpufreq_cur(const cpu_set_t *cpus, double *ret_khz);

/* Energies read from the page: the node's, and the sums of its package-N and dram-N domains (UINT64_MAX
 * when the page has none). */
typedef struct {
        uint64_t node_uj, pkg_uj, dram_uj;
        uint64_t time_ms; /* the sample's CLOCK_MONOTONIC ms */
        uint64_t jouled_pid;
} jl_rt_energy;

typedef struct {
        const jl_shm_page *page;
        size_t len;
} jl_rt_shm;

/* Ask jouled at socket_path for its page and map it read-only. why (may be NULL) gets words on failure. */
int jl_rt_shm_open(const char *socket_path, jl_rt_shm *ret, char *why, size_t whylen);
void jl_rt_shm_close(jl_rt_shm *s);
/* Read the energies consistently (seqlock); -EAGAIN when the writer kept the page busy, -ENOTCONN. */
int jl_rt_shm_energy(const jl_rt_shm *s, jl_rt_energy *ret);
