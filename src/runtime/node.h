/* node.h - what the runtime reads of its node: the available and current CPU frequencies from sysfs
 * cpufreq (read only: frequencies are set by jouled), and jouled's shared-memory page (src/proto/shm.h)
 * for the node's energy and its GPUs' utilisation, asked for over jouled's local socket (one NVML session
 * per node, jouled's; the runtime never opens NVML). Never logs; errors are negative errnos. */
#pragma once

#include <sched.h>
#include <stdbool.h>
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

/* The GPUs of the step, from the rank's CUDA_VISIBLE_DEVICES as CUDA reads it: unset, every GPU of the node;
 * a comma-separated list of indices, those GPUs (NVML's index, the page's "gpu-N": the same order as CUDA's
 * where CUDA_DEVICE_ORDER=PCI_BUS_ID); the list ends at the first entry that is not an index or a UUID
 * (as CUDA ignores the rest), so "" or "NoDevFiles" means none. UUIDs ("GPU-…", "MIG-…") cannot be matched:
 * the page names GPUs by index only; then every GPU of the node (uuid set). */
typedef struct {
        bool all;      /* every GPU of the node */
        bool uuid;     /* UUIDs were given: all, for want of a match */
        uint64_t mask; /* the indices (0..63) when !all */
} jl_rt_gpus;
/* Parses value (NULL: unset). Never fails: what cannot be read ends the list. */
void jl_rt_gpus_parse(const char *value, jl_rt_gpus *ret);

/* The step's GPUs' utilisation from the page: the sums of their running integrals (shm.h); the mean over a
 * window is Δbusy_s / Δcover_s. */
typedef struct {
        double busy_s, cover_s;
        unsigned ngpus; /* GPUs of the step whose utilisation the page holds */
        uint64_t jouled_pid;
} jl_rt_gpu_util;
/* -ENODATA when none of the step's GPUs has a utilisation on the page (no GPU, no NVML, none visible);
 * -EAGAIN, -ENOTCONN as jl_rt_shm_energy. */
int jl_rt_shm_gpu_util(const jl_rt_shm *s, const jl_rt_gpus *gpus, jl_rt_gpu_util *ret);
/* The mean utilisation (0..1) between two readings, NAN where it cannot be told (no coverage between them,
 * another jouled, other GPUs). */
double jl_rt_gpu_util_mean(const jl_rt_gpu_util *a, const jl_rt_gpu_util *b);
