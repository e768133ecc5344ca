/* emu.h - joule-emu, the emulated node: node models (model.c), laying out a fixture tree at the kernel's
 * paths (model.c), advancing it in real time with exact ground truth (serve.c), and the control channel
 * client (emu.c). A test tool: libc and libm only, nothing from src/. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define EMU_MAX_DOM 16
#define EMU_MAX_PKG 4
#define EMU_MAX_CPU 16
#define EMU_SOCK "emu.sock"
#define EMU_CONF "emu.conf"

/* MSR addresses (Intel SDM vol. 4; AMD PPR for family 17h/19h). */
#define MSR_RAPL_POWER_UNIT 0x606
#define MSR_PKG_ENERGY_STATUS 0x611
#define MSR_DRAM_ENERGY_STATUS 0x619
#define MSR_PP0_ENERGY_STATUS 0x639
#define MSR_PLATFORM_ENERGY_STATUS 0x64D
#define MSR_AMD_RAPL_POWER_UNIT 0xC0010299ULL
#define MSR_AMD_CORE_ENERGY_STATUS 0xC001029AULL
#define MSR_AMD_PKG_ENERGY_STATUS 0xC001029BULL

typedef enum { DOM_PKG, DOM_CORE, DOM_DRAM, DOM_PSYS } dom_type;

/* How a zone of the `broken` model is broken. */
typedef enum {
        FAULT_NONE,
        FAULT_EMPTY,    /* energy_uj empty */
        FAULT_GARBAGE,  /* energy_uj "12ab!?" */
        FAULT_NEGATIVE, /* energy_uj "-42" */
        FAULT_HUGE,     /* energy_uj ten times max_energy_range_uj */
        FAULT_NO_RANGE, /* max_energy_range_uj missing */
        FAULT_RANGE0,   /* max_energy_range_uj "0" */
        FAULT_NO_NAME,  /* name missing */
} fault;

typedef struct {
        char zone[32];     /* "intel-rapl:0:1" */
        char rel[160];     /* the real directory, relative to the root */
        char kname[32];    /* the name file: "package-0", "core", "dram", "psys" */
        char jname[32];    /* joule's channel name: "package-0", "core-0", "dram-0", "psys" */
        dom_type type;
        int pkg;           /* -1 for psys */
        fault fault;
        uint64_t range_uj; /* max_energy_range_uj: the counter runs modulo this */
        uint64_t offset_uj; /* the counter's value when the ground truth was 0 */
        uint64_t msr_offset_uj; /* the same for the MSR counter (in µJ) */
        uint64_t back_uj;   /* `backwards`: how far the counter was set back (not energy) */
        uint64_t truth_uj;  /* ground truth: exactly the µJ added to the counter, never wraps */
        double carry_uj;    /* fraction of a µJ not yet added */
        double power_w;     /* current */
        int fd;             /* energy_uj, open for writing (serve) */
} domain;

typedef enum { CHIP_CORETEMP, CHIP_K10TEMP, CHIP_POWER_METER } chip_kind;

typedef struct {
        char name[24];          /* "intel2s" */
        bool amd;
        int npkg, cores_per_pkg, threads_per_core; /* CPUs = npkg × cores × threads */
        bool powercap, msr, psys, dram, core;
        bool coretemp, k10temp, power_meter;
        bool broken;
        const char *driver;     /* "intel_pstate" | "acpi-cpufreq" */
        const char *governor;   /* default scaling_governor */
        const char *governors;  /* scaling_available_governors */
        uint32_t fmin_khz, fbase_khz, fmax_khz;
        double idle_w, dyn_w;   /* per package: idle + load × dyn × f/f_max */
        double dram_idle_w, dram_dyn_w, rest_w; /* rest: the board outside packages and DRAM (psys) */
        uint64_t range_uj;      /* max_energy_range_uj */
        int esu;                /* MSR energy status units: 1/2^esu J */
        double ambient_c, start_c, rth_k_per_w, tau_s; /* first-order thermal model */
        double msr_wrap_in_j;   /* >= 0: MSR counters start this many J before their 32-bit wrap */
        double power_scale;     /* every power (and TDP) times this; the thermal resistance divided by it */
} model;

typedef struct {
        uint64_t wrap_uj;  /* 0: the model's */
        int esu;           /* -1: the model's */
        double ambient_c;  /* NAN: the model's */
        double start_c;    /* NAN: = ambient */
        double tau_s;      /* NAN: the model's */
        double msr_wrap_in_j; /* NAN: MSR counters start where the powercap ones do */
        double power_scale;   /* 0: 1 */
} model_opts;

/* model.c */
int model_get(const char *name, const model_opts *o, model *ret);
void model_list(void);
int model_domains(const model *m, domain *dom, int max);
int model_create(const model *m, const model_opts *o, const char *root);
int model_load_conf(const char *root, model *ret);
int cpu_pkg(const model *m, int cpu);
int model_ncpu(const model *m);
int hwmon_index(const model *m, chip_kind kind, int pkg);
void cpu_list(const bool *on, int n, char *buf, size_t size);
int proc_stat_text(const model *m, const bool *online, const double (*jiffies)[2], char *buf, size_t size);
uint64_t msr_addr(const model *m, dom_type t);
uint64_t msr_raw(const model *m, const domain *d);
uint64_t msr_unit(const model *m);
int msr_write(int fd, uint64_t addr, uint64_t value);

/* work.c: workloads, and time and power across frequencies (README.md, "Workloads") */
typedef enum { WORK_NONE, WORK_COMPUTE, WORK_MIXED, WORK_MEMORY, WORK_GPUWAIT } work_kind;
typedef struct {
        work_kind kind;  /* WORK_NONE: the CPU follows the plain `load` model */
        double cycles;   /* compute cycles per iteration */
        double mem_s;    /* memory time per iteration (does not scale with f); gpuwait: the time the CPU
                          * waits for its GPU, spinning (WORK_SPIN_ACTIVITY), the DRAM idle */
        double activity; /* core activity while computing, 0..1 */
} work;
#define WORK_ITER_S_AT_FMAX 0.020 /* the kinds' iteration at f_max */
#define WORK_STALL_ACTIVITY 0.3   /* core activity while stalled on memory, relative to computing */
#define WORK_SPIN_ACTIVITY 0.6    /* core activity while polling for a GPU (a CUDA synchronize that spins) */
#define WORK_VMIN_OVER_VMAX 0.8   /* V(f_min) / V(f_max); V is linear in f between them */

const char *work_kind_name(work_kind k);
int work_parse(const model *m, int argc, char **argv, work *ret); /* KIND [CYCLES MEM_S [ACTIVITY]] */
double work_time_s(const work *w, uint32_t khz);
double work_core_activity(const work *w, uint32_t khz);
double work_mem_activity(const work *w, uint32_t khz);
double volt_ratio(const model *m, uint32_t khz);
void node_power(const model *m, const work *w, const uint32_t *khz, const bool *online, double load,
                double *pkg_w, double *dram_w, double *node_w);
int work_sweep(const model *m, const work *w, const bool *on_set, const bool *online, char *buf,
               size_t size);

/* serve.c */
int serve_main(const char *root, unsigned tick_ms);

/* small file helpers (model.c) */
int mkdir_p(const char *path);
int write_file(const char *path, const char *text);
int write_at(const char *root, const char *rel, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int rewrite_fd(int fd, const char *text);
int rewrite_path(const char *path, const char *text);
int read_small(const char *path, char *buf, size_t size);
