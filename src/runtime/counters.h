/* counters.h - hardware counters through perf_event_open, where the machine has them:
 * - cycles and instructions (CPI, and instructions as the progress of a program without loops);
 * - floating-point operations (GFLOPS): Intel's FP_ARITH_INST_RETIRED umasks as raw events (Broadwell and
 *   later, non-hybrid), AMD's cpu PMU FLOPS event where the kernel names it in sysfs;
 *   these core events count per CPU of the step's CPUs, summed (every rank and thread on this node: the
 *   scope JL_RT_CTR_CPUS), where the machine allows system-wide counting and the fds fit, else for the
 *   calling process and its threads (JL_RT_CTR_PROCESS), with why in scope_what;
 * - the node's memory traffic (GB/s, and TPI: 64-byte transactions per instruction): the uncore memory
 *   controllers' PMUs (Intel uncore_imc*: cas_count_read/write or data_read/write), system-wide on one
 *   CPU of each PMU's cpumask (perf_event_paranoid <= 0 or CAP_PERFMON).
 * Each group is all or nothing: where a group cannot be opened (most VMs, perf_event_paranoid, a
 * container's seccomp, an unknown CPU model) its figures are NAN: null in the records, never a guess.
 * Which events is decided from the kernel's descriptions in /sys/bus/event_source/devices (perfev.h) and
 * /proc/cpuinfo. Never logs. See docs/runtime.md. */
#pragma once

#include <sched.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JL_RT_FP_MAX 8
#define JL_RT_MEM_MAX 128

/* One counter to open: pid -1 and cpu >= 0 for a system-wide (uncore) one; cpu -1 for a core event, counted
 * per CPU of the step or for the process (the counters' scope). */
typedef struct {
        uint32_t type;
        uint64_t config[3];
        int cpu;
        double weight; /* FLOPs or bytes per count */
} jl_rt_ctr_event;

typedef struct {
        jl_rt_ctr_event core[2]; /* cycles, instructions (CPI, TPI), ncore 2; 0: none */
        size_t ncore;
        jl_rt_ctr_event fp[JL_RT_FP_MAX];
        size_t nfp;
        jl_rt_ctr_event mem[JL_RT_MEM_MAX];
        size_t nmem;
        char fp_what[128], mem_what[128]; /* the events, or why none */
} jl_rt_counters_plan;

/* Where the core events (cycles, instructions, FLOPs) count. */
typedef enum {
        JL_RT_CTR_NONE,    /* no core event open */
        JL_RT_CTR_PROCESS, /* the calling process and its threads (inherit), user space */
        JL_RT_CTR_CPUS, /* system-wide on each CPU of the step's, summed (every process there), user space */
} jl_rt_ctr_scope;

typedef struct {
        int fd_cycles, fd_instr; /* the first site's (CPU's or the process's); -1: absent */
        jl_rt_ctr_scope scope;
        size_t nsites; /* CPUs counted (JL_RT_CTR_CPUS), 1 (JL_RT_CTR_PROCESS), 0 */
        int *fd_core;  /* [nsites][2]: cycles, instructions; NULL: absent */
        int *fd_fp;    /* [nsites][nfp]; NULL: absent */
        double fp_weight[JL_RT_FP_MAX];
        size_t nfp; /* 0: no FLOPs */
        int fd_mem[JL_RT_MEM_MAX];
        double mem_weight[JL_RT_MEM_MAX];
        size_t nmem;                      /* 0: no memory traffic */
        char scope_what[192];             /* the scope in words, and why not per CPU where it is not */
        char fp_what[192], mem_what[192]; /* the events opened, or why none (filled by the open) */
} jl_rt_counters;

typedef struct {
        uint64_t cycles, instructions;
        double flops, mem_bytes; /* estimates scaled by time enabled / running, as perf stat does */
        bool valid, fp_valid, mem_valid;
} jl_rt_counts;

/* The FLOP and memory events this machine describes (the kernel's sysfs PMU tree at root, normally
 * JL_PE_SYSFS, and cpuinfo's text, normally /proc/cpuinfo's first processor). Groups it cannot describe
 * honestly are empty, with why in fp_what / mem_what. Never fails. */
void jl_rt_counters_plan_make(const char *root, const char *cpuinfo, jl_rt_counters_plan *ret);

/* Opens the plan made from the real sysfs and /proc/cpuinfo, cycles and instructions included (only the
 * node master should: the memory counters are the node's, and with cpus the core events are the step's).
 * cpus: the step's CPUs on this node, to count the core events per CPU there; NULL or empty: the calling
 * process's (its threads included, user space). Returns 0 when cycles and instructions opened, else a
 * negative errno with both fds -1 (no CPI: not an error for the caller); the FLOP and memory groups are
 * opened or not independently (nfp, nmem, and why in fp_what, mem_what); the scope and why in scope_what.
 * Close it in either case. jl_rt_counters_open(c) is jl_rt_counters_open_step(c, NULL). */
int jl_rt_counters_open_step(jl_rt_counters *c, const cpu_set_t *cpus);
int jl_rt_counters_open(jl_rt_counters *c);
/* Opens the plan's groups into c, each all or nothing: the core events (core, then fp) per CPU of cpus
 * (one fd per event and CPU) when cpus is non-empty, the fds fit (at most half of those RLIMIT_NOFILE's
 * soft limit leaves free) and the kernel allows it; else, or when neither core group opens per CPU, for
 * the process. Returns how many groups opened (0-3). */
int jl_rt_counters_open_plan(jl_rt_counters *c, const jl_rt_counters_plan *plan, const cpu_set_t *cpus);
void jl_rt_counters_close(jl_rt_counters *c);
/* The CPUs the FLOPs were counted on, for per-CPU figures: the CPUs counted in scope JL_RT_CTR_CPUS, else
 * own_cpus (the process's affinity: its FLOPs are its own). */
double jl_rt_counters_fp_cpus(const jl_rt_counters *c, int own_cpus);
/* "cpus", "process", "none". */
const char *jl_rt_ctr_scope_name(jl_rt_ctr_scope scope);
/* Current counts; a group's valid flag is false when it is absent or a read fails. */
void jl_rt_counters_read(const jl_rt_counters *c, jl_rt_counts *ret);
/* CPI between two reads: NAN when either is invalid or no instruction retired. */
double jl_rt_counts_cpi(const jl_rt_counts *a, const jl_rt_counts *b);
/* GB/s (10^9 bytes) and GFLOPS over dt_s between two reads; NAN without the group or dt_s <= 0. */
double jl_rt_counts_gbs(const jl_rt_counts *a, const jl_rt_counts *b, double dt_s);
double jl_rt_counts_gflops(const jl_rt_counts *a, const jl_rt_counts *b, double dt_s);
/* TPI: 64-byte memory transactions (the node's) per instruction (the step's on the node in scope
 * JL_RT_CTR_CPUS, else the process's); NAN without either. */
double jl_rt_counts_tpi(const jl_rt_counts *a, const jl_rt_counts *b);
