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

/* The GPUs of the step (the GPU-wait phase's), chosen among the page's GPU domains ("gpu-N", N NVML's index)
 * by their identity on the page (shm.h), first match wins:
 * - SLURM_STEP_GPUS, else SLURM_JOB_GPUS: Slurm's node-global GPU ids (GRES), which are device minor numbers
 *   (/dev/nvidiaN), not NVML indices: the GPUs with those minors (NVML indices where the page holds no minor
 *   at all, with a note); an id that matches nothing is ignored; an empty value counts as unset;
 * - CUDA_VISIBLE_DEVICES as CUDA reads it (relative to the GPUs the job's cgroup shows, hence only when
 *   Slurm names none): "GPU-…" UUIDs or unique prefixes of them; "MIG-GPU-<uuid>/…" the parent GPU;
 *   other MIG ids, and UUIDs where the page holds none, every GPU with a note; indices: NVML's index where
 *   CUDA_DEVICE_ORDER=PCI_BUS_ID, else CUDA's default order ("fastest first"), which joule cannot know,
 *   is taken as PCI bus order (the page's GPUs sorted by PCI bus id). The list ends at the first entry that
 *   matches no GPU (as CUDA ignores it and every one after it), so "" or "NoDevFiles" means none;
 * - none set: every GPU of the node. */
typedef struct {
        const char *step_gpus;    /* SLURM_STEP_GPUS (NULL: unset) */
        const char *job_gpus;     /* SLURM_JOB_GPUS */
        const char *cuda_visible; /* CUDA_VISIBLE_DEVICES */
        const char *cuda_order;   /* CUDA_DEVICE_ORDER */
} jl_rt_gpu_env;

typedef struct {
        bool all;           /* every GPU of the node */
        uint64_t mask;      /* the NVML indices (0..63) when !all */
        const char *source; /* the variable the selection follows ("SLURM_STEP_GPUS", …); NULL: none set */
        char note[256];     /* what could not be matched, or how an entry was taken, in words; "" none */
} jl_rt_gpus;

/* The environment's variables (getenv). */
void jl_rt_gpu_env_get(jl_rt_gpu_env *ret);
/* Choose the step's GPUs among page's (a consistent copy, jl_shm_read). Pure; never fails. */
void jl_rt_gpus_select(const jl_rt_gpu_env *env, const jl_shm_page *page, jl_rt_gpus *ret);
/* "gpu-0,gpu-2", "every GPU" or "none" into buf. */
void jl_rt_gpus_format(const jl_rt_gpus *g, char *buf, size_t size);

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
