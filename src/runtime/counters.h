/* counters.h - hardware counters of the process through perf_event_open: cycles and instructions (CPI,
 * and instructions as the progress of a program without loops). Where the machine has none (most VMs,
 * perf_event_paranoid, a container's seccomp) every figure is NAN: null in the records, never a guess.
 * GB/s and GFLOPS need model-specific events (uncore memory controllers, FP_ARITH) that are not opened
 * here: they are NAN too. Never logs. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

typedef struct {
        int fd_cycles, fd_instr; /* -1: absent */
} jl_rt_counters;

typedef struct {
        uint64_t cycles, instructions;
        bool valid;
} jl_rt_counts;

/* Opens the counters of the calling process (its threads included, user and kernel as permitted).
 * Returns 0, or a negative errno with both fds -1 (no counters: not an error for the caller). */
int jl_rt_counters_open(jl_rt_counters *c);
void jl_rt_counters_close(jl_rt_counters *c);
/* Current counts; valid is false when the counters are absent or a read fails. */
void jl_rt_counters_read(const jl_rt_counters *c, jl_rt_counts *ret);
/* CPI between two reads: NAN when either is invalid or no instruction retired. */
double jl_rt_counts_cpi(const jl_rt_counts *a, const jl_rt_counts *b);
