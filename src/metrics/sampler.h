/* sampler.h - samples every open provider, unwraps counters into 64-bit µJ, and keeps per-channel
 * statistics: energy, average and maximum power, gauge minimum/maximum/time-weighted mean. The caller owns
 * scheduling (it calls jl_sampler_sample() at each tick and exactly at every phase boundary). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "provider.h"

typedef struct {
        jl_channel ch;
        /* energy channels */
        uint64_t last_raw;
        bool have_last;
        uint64_t energy_uj;     /* unwrapped, since the first sample */
        double power_w;         /* over the latest interval */
        double power_max_w;     /* over any interval */
        unsigned wraps;         /* counter wraps seen */
        unsigned glitches;      /* intervals bridged because the counter misbehaved */
        /* gauges */
        double value;           /* latest */
        double min, max;
        double weighted_sum;    /* Σ value × interval */
        double weight_s;
        bool have_value;
        /* both */
        uint64_t last_ok_ns;    /* time of the last good reading */
        unsigned errors;        /* readings that failed */
        int last_err;           /* negative errno of the latest failure */
} jl_track;

typedef struct jl_sampler jl_sampler;

/* Called after every sample; t_ns is CLOCK_MONOTONIC. */
typedef void (*jl_sample_cb)(void *userdata, const jl_sampler *s, uint64_t t_ns);

struct jl_sampler {
        struct {
                const jl_provider_ops *ops;
                void *state;
                size_t first, count; /* its channels */
                uint64_t last_read_ns;
        } prov[16];
        size_t nprov;
        jl_channels channels;
        jl_notes notes;
        jl_track *tracks; /* one per channel */
        jl_value *values; /* scratch, one per channel */
        uint64_t t_first_ns, t_prev_ns, t_last_ns;
        uint64_t boot_first_ns, boot_last_ns; /* CLOCK_BOOTTIME, to detect suspend */
        uint64_t nsamples;
        uint64_t interval_ns; /* the caller's regular sampling interval (0: unknown) */
        jl_sample_cb cb;
        void *userdata;
};

/* Open every provider of the registry (or only those named in `only`, NULL-terminated). Providers that are
 * unavailable leave notes. RAPL via MSR is skipped when powercap already provides it; the estimate is
 * opened only when no measured energy channel exists. */
int jl_sampler_open(const jl_provider_config *cfg, const char *const *only, jl_sampler **ret);
void jl_sampler_free(jl_sampler *s);
void jl_sampler_set_callback(jl_sampler *s, jl_sample_cb cb, void *userdata);
/* The caller's regular sampling interval. Maximum power is taken only over intervals of at least half of
 * it: a sample taken at a phase boundary just after a tick covers too little time to resolve the
 * counter's granularity, and would report a spike that never happened. */
void jl_sampler_set_interval(jl_sampler *s, uint64_t interval_ns);

/* Take one sample now, reading every provider: at a start, an end, a phase boundary. Returns 0 (per-channel
 * failures are counted in the tracks). */
int jl_sampler_sample(jl_sampler *s);
/* A regular tick: reads the providers that are due (see jl_provider_ops.min_period_ns): energy counters
 * every tick, slow gauges (temperatures, frequencies, utilization) less often. */
int jl_sampler_tick(jl_sampler *s);
/* Same, with an explicit time (CLOCK_MONOTONIC ns), for unit tests and replay. */
int jl_sampler_sample_at(jl_sampler *s, uint64_t t_ns, uint64_t boot_ns);
/* Feed one set of values read elsewhere (the core of jl_sampler_sample_at; used by unit tests). */
void jl_sampler_account(jl_sampler *s, const jl_value *values, uint64_t t_ns, uint64_t boot_ns);

/* Reset the statistics (not the raw counter baselines): the next phase starts at the latest sample. */
void jl_sampler_reset_stats(jl_sampler *s);

static inline double jl_sampler_duration_s(const jl_sampler *s)
{
        return s->nsamples ? (double)(s->t_last_ns - s->t_first_ns) / 1e9 : 0.0;
}
/* Seconds during which the machine was suspended between the first and last sample. */
double jl_sampler_suspended_s(const jl_sampler *s);
/* Time-weighted mean of a gauge track (its latest value when no interval has passed). */
double jl_track_mean(const jl_track *t);

typedef enum { JL_TOTAL_NONE, JL_TOTAL_DOMAINS, JL_TOTAL_NODE, JL_TOTAL_ESTIMATE } jl_total_source;

/* The total energy: the sum of the measured non-overlapping domains (packages, DRAM, GPUs); when there are
 * none, a measured whole-node domain (psys, IPMI); else the estimate. */
double jl_sampler_total_energy_j(const jl_sampler *s, jl_total_source *ret_source);
const char *jl_total_source_name(jl_total_source src);
