/* sampler.h - samples every open provider, unwraps counters into 64-bit µJ, and keeps per-channel
 * statistics: energy, average and maximum power, gauge minimum/maximum/time-weighted mean. The caller owns
 * its regular schedule (it calls jl_sampler_tick() at each tick and jl_sampler_sample() exactly at every
 * phase boundary); the sampler owns the reads that unwrapping needs in between: it tells the caller when
 * the next one is due (jl_sampler_next_due_ns) and takes it (jl_sampler_guard), reading only the providers
 * of counters that would otherwise wrap unseen. */
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
        double power_w;         /* over the latest interval between samples */
        double power_max_w;     /* over any interval between samples */
        unsigned wraps;         /* counter wraps seen */
        unsigned glitches;      /* intervals bridged because the counter misbehaved */
        unsigned gaps;          /* intervals too long to unwrap for certain (see jl_track_bound_w) */
        uint64_t gap_ns;        /* their total length */
        double rate_w;          /* power over the latest good reads (guard reads included), smoothed */
        double peak_w;          /* highest read-to-read power since open (never reset): schedules reads */
        bool peak_seen;         /* a good read-to-read interval has been seen */
        uint64_t sample_uj, sample_ns; /* energy_uj and time at this channel's previous sample */
        bool have_sample;
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
        jl_track *tracks;       /* one per channel */
        jl_value *values;       /* one per channel: the latest sample's readings */
        jl_value *guard_values; /* scratch of the guard reads */
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

/* Guard reads. A wrapping counter is read at least four times per wrap period at the highest power it can
 * draw, jl_track_bound_w(): the provider's max_power_w where known (raised to the observed peak if that is
 * higher), else JL_GUARD_MARGIN × the observed peak (at least JL_GUARD_MIN_W); before anything is known it
 * is probed every JL_GUARD_PROBE_NS. An interval between two reads in which the counter could, at that
 * power, have advanced half its range or more is ambiguous: its wraps are resolved by the latest good power
 * and it is counted as a gap (jl_track.gaps, .gap_ns), never silently dropped. */
#define JL_GUARD_MARGIN 4.0
#define JL_GUARD_MIN_W 10.0
#define JL_GUARD_PROBE_NS (20 * 1000 * 1000ULL)
#define JL_GUARD_MIN_NS (1000 * 1000ULL)
#define JL_RATE_TAU_NS (200 * 1000 * 1000ULL) /* time constant of jl_track.rate_w */
#define JL_PEAK_MIN_NS (10 * 1000 * 1000ULL)  /* shortest interval whose power counts towards peak_w */
/* The highest power the track's counter is taken to be able to draw (W); 0: unknown yet. */
double jl_track_bound_w(const jl_track *t);
/* How often the track's counter must be read (ns); UINT64_MAX for a counter that does not wrap. */
uint64_t jl_track_guard_ns(const jl_track *t);
/* CLOCK_MONOTONIC time by which the sampler must read a wrapping counter again (UINT64_MAX: none needs
 * it). A caller whose next regular tick comes later wakes up at this time and calls jl_sampler_guard(). */
uint64_t jl_sampler_next_due_ns(const jl_sampler *s);
/* Milliseconds from now_ns until jl_sampler_next_due_ns() (rounded up; at most INT32_MAX), or -1 when no
 * guard read is needed: a poll() timeout for callers that sample on a timerfd. */
int jl_sampler_guard_timeout_ms(const jl_sampler *s, uint64_t now_ns);
/* Read the providers whose guard read is due (only those) and unwrap their counters. Not a sample: no
 * statistics interval ends, the callback is not called, gauges are not accounted. */
int jl_sampler_guard(jl_sampler *s);
/* Same, at an explicit CLOCK_MONOTONIC time. */
int jl_sampler_guard_at(jl_sampler *s, uint64_t t_ns);
/* Unwrap one energy reading into a track (the core of both samples and guard reads; for unit tests). */
void jl_track_unwrap(jl_track *t, const jl_value *v, uint64_t t_ns);
/* Sums of gaps over the channels summed into the total (or the whole-node one it uses). */
unsigned jl_sampler_gaps(const jl_sampler *s, uint64_t *ret_gap_ns);

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
