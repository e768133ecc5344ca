/* counters.h - hardware counters through perf_event_open, where the machine has them:
 * - cycles and instructions of the process (CPI, and instructions as the progress of a program without
 *   loops);
 * - floating-point operations of the process (GFLOPS): Intel's FP_ARITH_INST_RETIRED umasks as raw events
 *   (Broadwell and later, non-hybrid), AMD's cpu PMU FLOPS event where the kernel names it in sysfs;
 * - the node's memory traffic (GB/s, and TPI: 64-byte transactions per instruction): the uncore memory
 *   controllers' PMUs (Intel uncore_imc*: cas_count_read/write or data_read/write), system-wide on one
 *   CPU of each PMU's cpumask (perf_event_paranoid <= 0 or CAP_PERFMON).
 * Each group is all or nothing: where a group cannot be opened (most VMs, perf_event_paranoid, a
 * container's seccomp, an unknown CPU model) its figures are NAN: null in the records, never a guess.
 * Which events is decided from the kernel's descriptions in /sys/bus/event_source/devices (perfev.h) and
 * /proc/cpuinfo. Never logs. See docs/runtime.md. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JL_RT_FP_MAX 8
#define JL_RT_MEM_MAX 128

/* One counter to open: pid -1 and cpu >= 0 for a system-wide (uncore) one, cpu -1 for the process's. */
typedef struct {
        uint32_t type;
        uint64_t config[3];
        int cpu;
        double weight; /* FLOPs or bytes per count */
} jl_rt_ctr_event;

typedef struct {
        jl_rt_ctr_event fp[JL_RT_FP_MAX];
        size_t nfp;
        jl_rt_ctr_event mem[JL_RT_MEM_MAX];
        size_t nmem;
        char fp_what[128], mem_what[128]; /* the events, or why none */
} jl_rt_counters_plan;

typedef struct {
        int fd_cycles, fd_instr; /* -1: absent */
        int fd_fp[JL_RT_FP_MAX];
        double fp_weight[JL_RT_FP_MAX];
        size_t nfp; /* 0: no FLOPs */
        int fd_mem[JL_RT_MEM_MAX];
        double mem_weight[JL_RT_MEM_MAX];
        size_t nmem;                      /* 0: no memory traffic */
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

/* Opens the counters of the calling process (its threads included, user space) and those of the plan
 * made from the real sysfs and /proc/cpuinfo (only the node master should: the memory counters are the
 * node's). Returns 0 when cycles and instructions opened, else a negative errno with both fds -1 (no CPI:
 * not an error for the caller); the FLOP and memory groups are opened or not independently (nfp, nmem,
 * and why in fp_what, mem_what). Close it in either case. */
int jl_rt_counters_open(jl_rt_counters *c);
/* Opens the plan's groups into c (each all or nothing). Returns how many groups opened (0-2). */
int jl_rt_counters_open_plan(jl_rt_counters *c, const jl_rt_counters_plan *plan);
void jl_rt_counters_close(jl_rt_counters *c);
/* Current counts; a group's valid flag is false when it is absent or a read fails. */
void jl_rt_counters_read(const jl_rt_counters *c, jl_rt_counts *ret);
/* CPI between two reads: NAN when either is invalid or no instruction retired. */
double jl_rt_counts_cpi(const jl_rt_counts *a, const jl_rt_counts *b);
/* GB/s (10^9 bytes) and GFLOPS over dt_s between two reads; NAN without the group or dt_s <= 0. */
double jl_rt_counts_gbs(const jl_rt_counts *a, const jl_rt_counts *b, double dt_s);
double jl_rt_counts_gflops(const jl_rt_counts *a, const jl_rt_counts *b, double dt_s);
/* TPI: 64-byte memory transactions (the node's) per instruction (the process's); NAN without either. */
double jl_rt_counts_tpi(const jl_rt_counts *a, const jl_rt_counts *b);
