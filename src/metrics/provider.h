/* provider.h - the small interface every measurement provider implements (open / read / close), the
 * channel descriptions it publishes, and the notes it leaves when something is unavailable.
 *
 * A provider is one file in src/metrics/ exporting one `const jl_provider_ops`. It reads the real
 * kernel paths (/sys/class/powercap, /dev/cpu/N/msr, /sys/class/hwmon via libsensors,
 * /sys/devices/system/cpu, /proc) and nothing else; tests show it fixture trees at those paths in a
 * private mount namespace. It never logs: it explains itself through jl_notes. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef enum {
        JL_KIND_ENERGY,      /* counter: raw value in µJ (jl_value.counter); wraps at jl_channel.wrap_uj */
        JL_KIND_POWER,       /* gauge: W */
        JL_KIND_TEMPERATURE, /* gauge: °C */
        JL_KIND_FREQUENCY,   /* gauge: kHz */
        JL_KIND_UTILIZATION, /* gauge: fraction 0..1 (of all online CPUs) since the provider's previous read
                              */
        _JL_KIND_MAX,
} jl_kind;

typedef enum {
        JL_SCOPE_PACKAGE,   /* a CPU package: summed into the total */
        JL_SCOPE_DRAM,      /* summed */
        JL_SCOPE_GPU,       /* summed */
        JL_SCOPE_SUBDOMAIN, /* core (pp0), uncore (pp1): inside a package, listed, never summed */
        JL_SCOPE_NODE,      /* psys, IPMI/DCMI, the estimate: the whole node, listed, never summed */
        JL_SCOPE_OTHER,     /* temperatures, frequencies, utilization */
        _JL_SCOPE_MAX,
} jl_scope;

#define JL_NAME_MAX 96

typedef struct {
        char name[JL_NAME_MAX]; /* "package-0", "core-0", "uncore-0", "dram-0", "psys", "gpu-0",
                                   "coretemp-isa-0000/Package id 0", "cpu0", "cpu-utilization" */
        const char *provider;   /* the provider's name: "rapl", "rapl-msr", "hwmon", ... (static string) */
        jl_kind kind;
        jl_scope scope;
        bool estimated;     /* a model's number, not a sensor's: never summed with measured ones */
        uint64_t wrap_uj;   /* JL_KIND_ENERGY: counter range; the counter runs 0..wrap_uj and then restarts
                               at 0 (delta = now + wrap_uj - last). 0: a 64-bit counter that never wraps. */
        double max_power_w; /* JL_KIND_ENERGY: the highest power the domain can draw, as the hardware states
                               it (powercap constraint_*_max_power_uw); 0: unknown. The sampler reads a
                               wrapping counter at least four times per wrap period at this power (or,
                               unknown, at the observed peak with a margin). */
        /* JL_SCOPE_GPU energy channels: the GPU's identity as its driver states it, read once at open (""
         * and !gpu_minor_known: unknown): its UUID ("GPU-…"), PCI bus id ("00000000:3B:00.0") and device
         * minor number (the N of /dev/nvidiaN: the node-global GPU id that Slurm's GRES uses). */
        char gpu_uuid[96];
        char gpu_pci[32];
        bool gpu_minor_known;
        unsigned gpu_minor;
        /* with MIG enabled, its instances' UUIDs ("MIG-…"), comma-separated ("": none, or MIG off) */
        char gpu_mig[320];
} jl_channel;

typedef struct {
        uint64_t counter; /* JL_KIND_ENERGY */
        double gauge;     /* every other kind */
        int err;          /* 0, or a negative errno: not readable this time (offline CPU, vanished file);
                             -EAGAIN: no value yet (not counted as a failure) */
} jl_value;

/* A growable list of channels; providers append with jl_channels_add(). */
typedef struct {
        jl_channel *items;
        size_t n, cap;
} jl_channels;

/* Notes: why a provider or one of its domains is unavailable, in words a user can act on. */
typedef struct {
        char subject[JL_NAME_MAX]; /* "rapl", "rapl/package-1", "cpufreq/cpu3" */
        char reason[320];
        int err; /* negative errno */
} jl_note;

typedef struct {
        jl_note *items;
        size_t n, cap;
} jl_notes;

/* Settings that providers may consult; every field has a default (jl_provider_config_default). */
typedef struct {
        pid_t pid;                        /* process tree to account CPU time of (proc provider); 0: none */
        double estimate_idle_w;           /* estimate: power at 0% utilization */
        double estimate_max_w;            /* estimate: power at 100% utilization and maximum frequency */
        const char *const *hwmon_sensors; /* NULL-terminated "chip/feature" patterns (wildcards); NULL: all
                                             temperature, power and energy inputs */
} jl_provider_config;

typedef struct jl_provider_ops {
        const char *name;        /* "rapl" */
        const char *description; /* "RAPL energy counters via the powercap sysfs" */
        /* On regular ticks (jl_sampler_tick) the sampler reads this provider at most this often; samples
         * taken at a start, an end or a phase boundary (jl_sampler_sample) read every provider. 0: every
         * tick. Providers of wrapping counters also get the sampler's guard reads in between ticks
         * (jl_sampler_next_due_ns), whatever this says. */
        uint64_t min_period_ns;
        /* Probe and open. On success return 0, set *ret_state and append the channels it will read with
         * jl_channels_add(); domains it skipped get a note each. When the provider as a whole is
         * unavailable, return a negative errno with a note saying why and what to do; channels must then
         * be left as they were. */
        int (*open)(const jl_provider_config *cfg, jl_channels *channels, jl_notes *notes, void **ret_state);
        /* Fill values[0..k) for the k channels this provider added, in the order it added them. Returns 0,
         * or a negative errno when nothing could be read at all (per-channel failures go in .err). */
        int (*read)(void *state, jl_value *values);
        void (*close)(void *state);
} jl_provider_ops;

/* Helpers for providers. Both return 0 or -ENOMEM. */
int jl_channels_add(jl_channels *c, const jl_channel *ch);
void jl_channels_free(jl_channels *c);
int jl_notes_add(jl_notes *n, const char *subject, int err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void jl_notes_free(jl_notes *n);

void jl_provider_config_default(jl_provider_config *cfg);

/* Explain common errno values for a sysfs file in actionable words (e.g. EACCES on energy_uj). */
const char *jl_errno_hint(int err);

const char *jl_kind_name(jl_kind k);   /* "energy", "power", ... */
const char *jl_kind_unit(jl_kind k);   /* "J", "W", "C", "kHz", "ratio" */
const char *jl_scope_name(jl_scope s); /* "package", "dram", "gpu", "subdomain", "node", "other" */
/* Whether the scope is one of the non-overlapping domains summed into a total. */
static inline bool jl_scope_summed(jl_scope s)
{
        return s == JL_SCOPE_PACKAGE || s == JL_SCOPE_DRAM || s == JL_SCOPE_GPU;
}

/* The registry: every provider compiled in, in the order they are opened. NULL-terminated. */
extern const jl_provider_ops *const jl_providers[];

extern const jl_provider_ops jl_provider_rapl;     /* rapl_powercap.c */
extern const jl_provider_ops jl_provider_rapl_msr; /* rapl_msr.c */
extern const jl_provider_ops jl_provider_hwmon;    /* hwmon.c */
extern const jl_provider_ops jl_provider_cpufreq;  /* cpufreq.c */
extern const jl_provider_ops jl_provider_proc;     /* procstat.c */
extern const jl_provider_ops jl_provider_nvml;     /* nvml.c */
extern const jl_provider_ops jl_provider_ipmi;     /* ipmi.c */
extern const jl_provider_ops jl_provider_estimate; /* estimate.c */
