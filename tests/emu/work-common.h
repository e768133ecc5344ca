/* work-common.h - what emu-work and emu-work-mpi share (README.md, "Workloads"): the control channel to
 * joule-emu, the CPU list and frequencies read at the real sysfs paths, and the step of the model of time
 * that both follow. libc and libm only: emu-work-mpi is built from it with each MPI's mpicc. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#define WORK_MAX_CPU 1024

/* The options both workloads take: --root DIR, --kind KIND, --cpus all|LIST, --cycles C, --mem-s S,
 * --slice-ms MS (slice_s: MS / 1000), --gpu-util-file PATH and --gpu-util PCT (gpu_util; default 95). */
typedef struct {
        const char *root, *kind, *cpus_arg, *cycles, *mem_s;
        double slice_s;
        const char *gpu_util_file;
        const char *gpu_util;
} work_opts;
/* The option a with its value v when it is one of them: stored, true. */
bool work_option(work_opts *o, const char *a, const char *v);

double work_now_s(void);
/* Tells the emulated NVML how busy the workload's GPU is: "PCT MEM_PCT" into --gpu-util-file (the file a gpu
 * line's util_file= names, tests/emu/nvml), replaced at once (rename). busy: --gpu-util (default 95) and 40
 * % memory; else 0 0. Nothing without --gpu-util-file. Returns 0, or -1 with a message printed. */
int work_gpu_util(const char *prog, const work_opts *o, bool busy);
/* One command to joule-emu's control socket under root; the reply in buf. Returns 0, or -1 with a message
 * printed (prog: the program's name). */
int work_ctl(const char *prog, const char *root, const char *line, char *buf, size_t size);
/* The number after "KEY": in text (after `after` when given), NAN if absent. */
double work_json_num(const char *text, const char *after, const char *key);
/* "0-3,5" → cpus[]; returns how many, -1 on a bad list. */
int work_parse_cpu_list(const char *s, int *cpus, int max);
/* The CPUs of --cpus: "all" (the online ones) or a list. Returns how many (0 or -1: a bad list), or -2 when
 * the online CPUs cannot be read (printed). */
int work_cpus(const char *prog, const char *cpus_arg, int *cpus, int max);
bool work_read_khz(int cpu, double *ret);
/* The frequency in force on the CPUs: the slowest scaling_cur_freq, kHz; INFINITY when none reads. */
double work_slowest_khz(const int *cpus, int ncpu);
/* One slice of the model: progress (in iterations) advances at 1 / T(f), T(f) = cycles / f + mem_s, for
 * slice_s or until it reaches target; *t (the time of the last step, work_now_s()) and *f_time (the
 * integral of f over time) follow. */
void work_advance(double target, double f_khz, double cycles, double mem_s, double slice_s, double *progress,
                  double *t, double *f_time);
