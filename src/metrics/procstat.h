/* procstat.h - /proc/stat and /proc/PID/stat: strict parsers, a cheap re-reader of /proc/stat, CPU
 * utilization from two readings, and the CPU time of a process tree. Used by the proc provider
 * (procstat.c) and the estimate (estimate.c); the parsers are pure and unit-tested. */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* The aggregate "cpu" line of /proc/stat, in USER_HZ ticks. guest and guest_nice are already inside user
 * and nice (the kernel counts them twice). */
typedef struct {
        uint64_t user, nice, system, idle, iowait, irq, softirq, steal, guest, guest_nice;
} jl_cpu_times;

/* Parse /proc/stat text: the aggregate "cpu" line (at least the 8 fields user..steal; guest and guest_nice
 * are 0 when absent; further numeric fields are ignored) and the "cpuN" lines after it. Returns the number
 * of "cpuN" lines (the online CPUs; 0 when the text has none), -EINVAL for a missing or repeated "cpu" line,
 * missing fields, a negative number or garbage, -ERANGE for a field above 2^64-1. */
int jl_parse_proc_stat_cpu(const char *text, jl_cpu_times *ret);

/* Utilization between two readings: busy = user+nice+system+irq+softirq+steal, total = busy+idle+iowait,
 * *ret_util = Δbusy/Δtotal and *ret_steal = Δsteal/Δtotal, both in 0..1. A field that went backwards
 * (iowait does on some kernels) counts as 0. Returns 0, or -EAGAIN when no tick (1/USER_HZ s) passed in
 * between: the proc provider then reports -EAGAIN on its channels and keeps its baseline, so the next read
 * covers both intervals. */
int jl_cpu_times_delta(const jl_cpu_times *prev, const jl_cpu_times *now, double *ret_util,
                       double *ret_steal);

/* The fields of /proc/PID/stat that joule uses. Times are in USER_HZ ticks. */
typedef struct {
        pid_t pid;
        char comm[64]; /* truncated when longer */
        char state;
        pid_t ppid;
        uint64_t utime, stime;   /* this process, all its threads */
        uint64_t cutime, cstime; /* its children that it has waited for, recursively */
        uint64_t num_threads;
        uint64_t starttime; /* ticks after boot */
} jl_pid_stat;

/* Parse /proc/PID/stat text. The comm field may hold spaces and parentheses: it runs from the first '('
 * to the LAST ')'. Returns 0, -EINVAL for garbage, missing fields or a negative value where none is valid,
 * -ERANGE for overflow. */
int jl_parse_pid_stat(const char *text, jl_pid_stat *ret);

/* Re-reads /proc/stat on one descriptor opened once, into a buffer that grows to fit the file. */
typedef struct {
        int fd;
        char *buf;
        size_t size;
} jl_proc_stat_reader;

#define JL_PROC_STAT_READER_INIT                                                                            \
        {                                                                                                   \
                .fd = -1                                                                                    \
        }

/* Returns 0 or a negative errno (of open()). */
int jl_proc_stat_open(jl_proc_stat_reader *r);
/* Read and parse; returns the number of "cpuN" lines (see jl_parse_proc_stat_cpu) or a negative errno. */
int jl_proc_stat_read(jl_proc_stat_reader *r, jl_cpu_times *ret);
void jl_proc_stat_close(jl_proc_stat_reader *r);

/* The CPU time (ticks) of the process tree rooted at `root`: utime+stime+cutime+cstime of every live
 * member, found by walking /proc/P/task/T/children from the root (the cost is proportional to the tree, not
 * to the system). Reaped members are inside their reaper's cutime/cstime, so each tick is counted once;
 * descendants reparented away from the tree (daemonized) are lost. Returns 0, -ESRCH when the root is
 * gone, or a negative errno. */
int jl_proc_tree_ticks(pid_t root, uint64_t *ret_ticks);
