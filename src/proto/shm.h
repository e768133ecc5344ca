/* shm.h - the read-only shared-memory page jouled publishes with the node's live energy counters, and
 * the seqlock that readers (libjoule-api, the runtime) use to read it consistently without a system call.
 * jouled hands the page's fd to a client over its unix socket (JL_OP_GET_SHM, SCM_RIGHTS); the client maps
 * it PROT_READ. The layout is versioned; a reader checks magic, version and size before use. Version 2 added
 * the GPU domains' utilisation (one NVML session per node, jouled's: the runtime reads it here); version 3
 * their identity (UUID, device minor number, PCI bus id: the runtime matches its step's GPUs with them);
 * version 4 the UUIDs of a GPU's MIG instances (a step given one names it in CUDA_VISIBLE_DEVICES). */
#pragma once

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#define JL_SHM_MAGIC UINT32_C(0x4A4C5348) /* "JLSH" */
#define JL_SHM_VERSION 4
#define JL_SHM_DOMAINS_MAX 32
#define JL_SHM_NAME_MAX 48
#define JL_SHM_UUID_MAX 96
#define JL_SHM_PCI_MAX 32
#define JL_SHM_MIG_MAX 320

typedef struct {
        char name[JL_SHM_NAME_MAX]; /* "package-0", "dram-0", "gpu-0", "psys", "node-ipmi" */
        uint64_t energy_uj;         /* unwrapped since jouled started */
        uint32_t scope;             /* jl_scope */
        uint32_t flags;             /* bit 0: estimated; bit 1: counted in node_energy_uj; bit 2: the util_
                                       fields hold a GPU's utilisation (JL_SHM_UTIL) */
        /* GPU domains ("gpu-N", N NVML's index) with bit 2: the utilisation NVML reported at the latest
         * sample (0..1: the share of the driver's last sample period in which a kernel ran, in which the
         * GPU's memory was read or written), and two running sums since jouled started: ∫ util_gpu dt and
         * the time its readings covered, in s; the mean over a window is Δutil_gpu_s / Δutil_cover_s. */
        double util_gpu, util_mem;
        double util_gpu_s, util_cover_s;
        /* GPU domains: the GPU's identity as NVML stated it at jouled's start ("" and -1: unknown): its UUID
         * ("GPU-…"), its PCI bus id ("00000000:3B:00.0") and its device minor number (the N of /dev/nvidiaN,
         * the node-global id Slurm's GRES lists in SLURM_STEP_GPUS / SLURM_JOB_GPUS). */
        char gpu_uuid[JL_SHM_UUID_MAX];
        char gpu_pci[JL_SHM_PCI_MAX];
        int32_t gpu_minor;
        uint32_t reserved;
        /* GPU domains with MIG enabled: the UUIDs of its instances ("MIG-…", as nvmlDeviceGetUUID states
         * them and CUDA_VISIBLE_DEVICES names them since driver R470), comma-separated; "" none or MIG off.
         * A step on an instance is matched to this GPU (NVML reports no utilisation per instance). */
        char gpu_mig[JL_SHM_MIG_MAX];
} jl_shm_domain;

#define JL_SHM_ESTIMATED 1u
#define JL_SHM_COUNTED 2u
#define JL_SHM_UTIL 4u

typedef struct {
        uint32_t magic;
        uint32_t version;
        uint32_t size; /* sizeof(jl_shm_page) as the writer built it */
        uint32_t ndomains;
        _Atomic uint64_t seq;    /* seqlock: odd while jouled writes */
        uint64_t node_energy_uj; /* the node's energy: whole-node domain if any, else the summed domains */
        uint64_t time_ms;        /* CLOCK_MONOTONIC ms of the sample behind these numbers */
        uint64_t samples;
        double power_w; /* node power over the latest interval */
        char node[64];
        char job_id[64]; /* "" when idle */
        int64_t step_id;
        uint64_t jouled_pid;
        jl_shm_domain domains[JL_SHM_DOMAINS_MAX];
} jl_shm_page;

/* Writer (jouled, the only writer): bracket every update. */
static inline void jl_shm_write_begin(jl_shm_page *p)
{
        atomic_fetch_add_explicit(&p->seq, 1, memory_order_relaxed);
        atomic_thread_fence(memory_order_release);
}

static inline void jl_shm_write_end(jl_shm_page *p)
{
        atomic_thread_fence(memory_order_release);
        atomic_fetch_add_explicit(&p->seq, 1, memory_order_relaxed);
}

/* Reader: copy the page consistently. Returns false when the writer kept it busy for too long (a stuck
 * writer) or the layout is not one this reader knows. */
static inline bool jl_shm_read(const jl_shm_page *p, jl_shm_page *ret)
{
        if (p->magic != JL_SHM_MAGIC || p->version != JL_SHM_VERSION || p->size != sizeof(jl_shm_page))
                return false;
        for (int tries = 0; tries < 10000; tries++) {
                uint64_t s0 = atomic_load_explicit(&p->seq, memory_order_acquire);
                if (s0 & 1)
                        continue;
                memcpy((void *)ret, (const void *)p, sizeof(*ret));
                atomic_thread_fence(memory_order_acquire);
                uint64_t s1 = atomic_load_explicit(&p->seq, memory_order_relaxed);
                if (s0 == s1)
                        return true;
        }
        return false;
}

/* Reader of just the two numbers joule_energy() needs (cheaper than a whole copy). */
static inline bool jl_shm_read_energy(const jl_shm_page *p, uint64_t *ret_energy_uj, uint64_t *ret_time_ms)
{
        for (int tries = 0; tries < 10000; tries++) {
                uint64_t s0 = atomic_load_explicit(&p->seq, memory_order_acquire);
                if (s0 & 1)
                        continue;
                uint64_t e = p->node_energy_uj, t = p->time_ms;
                atomic_thread_fence(memory_order_acquire);
                if (atomic_load_explicit(&p->seq, memory_order_relaxed) == s0) {
                        *ret_energy_uj = e;
                        *ret_time_ms = t;
                        return true;
                }
        }
        return false;
}
