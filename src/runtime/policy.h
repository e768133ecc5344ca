/* policy.h - the policies of the runtime, one decision per node: `monitoring` (never changes a frequency),
 * `min_energy` (least projected energy whose time stays within th of the time at the default frequency;
 * the time at the chosen frequency is then measured and the frequency stepped back up while the bound is
 * broken), `min_time` (from its start frequency, step up while PerfGain ≥ th × FreqGain); and the phase
 * classification of a signature. A state machine fed with one signature per window; it never does I/O:
 * the caller (manage.c) sets the frequency it decides and reports its words. See docs/policies.md. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "coeffs.h"
#include "model.h"

#define JL_RT_FREQS_MAX 128

typedef enum {
        JL_RT_MONITORING,
        JL_RT_MIN_ENERGY,
        JL_RT_MIN_TIME,
} jl_rt_policy_kind;

typedef enum {
        JL_RT_PHASE_UNKNOWN,
        JL_RT_PHASE_CPU_BOUND,
        JL_RT_PHASE_MEMORY_BOUND,
        JL_RT_PHASE_MPI_BOUND,
        JL_RT_PHASE_BUSY_WAITING,
        JL_RT_PHASE_IO_BOUND,
        JL_RT_PHASE_GPU_WAIT,
} jl_rt_phase;

/* One signature: what a window of iterations measured. NAN where unknown. */
typedef struct {
        double tpi_s;            /* time per iteration */
        double power_w;          /* node power */
        double khz;              /* average CPU frequency over the window */
        double cpi, gbs, gflops; /* from hardware counters; NAN without */
        double tpi;              /* memory transactions per instruction (counters); NAN without */
        double calls_per_s;      /* MPI calls per second (0 for programs without MPI) */
        double io_mbs;           /* read + written MB/s of the process */
        double cpus;             /* CPUs the step runs on (for per-CPU figures) */
        double fp_cpus;          /* CPUs the GFLOPS were counted on (jl_rt_counters_fp_cpus: the step's
                                  * counted per CPU, else the node master's affinity); 0: cpus */
        bool gpu_busy; /* NVML shows the step's GPUs computing while the CPU waits (jl_rt_gpu_busy) */
        /* the noise of tpi_s and power_w: their standard errors over the window (from the spread of the
         * iterations' durations and of the power between jouled's samples); NAN or 0 where unknown */
        double tpi_err_s, power_err_w;
} jl_rt_sig;

/* What the policy decides after a signature. */
typedef struct {
        bool set;          /* set khz now */
        unsigned long khz; /* the frequency the policy wants from now on */
        const char *kind;  /* event kind ("policy", "frequency", "bound", ...) or NULL: nothing to say */
        double value;
        char message[240];
        /* the model this decision projected with ("default", "curve", "counters"), or NULL: none; the
         * caller reports it as an event `model` */
        const char *model;
        char model_message[200];
} jl_rt_decision;

typedef struct {
        jl_rt_policy_kind kind;
        double th;
        unsigned long freqs[JL_RT_FREQS_MAX]; /* ascending */
        size_t n;
        unsigned long def_khz; /* the reference (min_energy) or start (min_time) frequency */
        unsigned long cur_khz; /* the frequency asked for last */
        int state;
        double t_ref, p_ref;         /* at def_khz (min_energy) */
        double t_ref_err, p_ref_err; /* their standard errors (NAN where unknown) */
        double t_probe, p_probe;     /* at probe_khz */
        unsigned long
            probe_khz; /* the farthest point measured for the model (the probe, or a farther one) */
        double t_cur;  /* min_time: time at cur_khz; min_energy: first time measured where it holds */
        /* min_energy, since the reference: the energy per iteration last measured within the bound at each
         * frequency (0: none), and the lowest frequency not below one that broke the bound (a time that
         * was within it once, by the noise, and over it later rules out that frequency and those below) */
        double e_at[JL_RT_FREQS_MAX];
        unsigned long floor_khz;
        jl_rt_time_model tm;
        bool have_tm;
        jl_rt_power_model pm;
        bool have_pm;
        unsigned moved;   /* consecutive windows whose time moved by more than CHANGE */
        unsigned repairs; /* bound repairs so far */
        unsigned nopower; /* min_energy: windows in a row without a power reading */
        unsigned rounds;  /* min_energy: refits after a verified choice */
        uint64_t
            measured[(JL_RT_FREQS_MAX + 63) / 64]; /* min_energy: frequencies measured since the reference */
        /* the node's learnt model (jl_rt_policy_set_model): its power curve, and EAR's pairs for the
         * counter model (not owned) */
        jl_rt_power_curve curve;
        bool have_curve;
        const jl_coeffs *coeffs;
} jl_rt_policy;

/* Tolerances: a choice is made with MARGIN below the bound; a measured time above the bound by more than
 * TOL is a broken bound; a time that moves by more than CHANGE at a held frequency in two windows in a row
 * means the loop changed. */
#define JL_RT_POLICY_MARGIN 0.005
#define JL_RT_POLICY_TOL 0.003
#define JL_RT_POLICY_CHANGE 0.10
/* min_energy leaves the default frequency only for a measured saving of more than this share of the
 * energy per iteration there: less is within the power readings' noise and not worth the time. */
#define JL_RT_POLICY_EMARGIN 0.01
/* min_energy's probe: a difference from the reference of less than NOISE_K standard errors (each at least
 * TNOISE / PNOISE of its value: the windows' drift that the spread within one does not show) is noise; a
 * model through such a pair is ill-conditioned and a farther point is measured first. */
#define JL_RT_POLICY_NOISE_K 2.0
#define JL_RT_POLICY_TNOISE 0.002
#define JL_RT_POLICY_PNOISE 0.005

/* The step's GPUs compute when their mean utilisation over the window (NVML's share of time a kernel ran)
 * is at least this. */
#define JL_RT_GPU_BUSY_UTIL 0.5

/* "monitoring", "min_energy", "min_time" (also with '-'). Returns 0 or -EINVAL. */
int jl_rt_policy_parse(const char *name, jl_rt_policy_kind *ret);
const char *jl_rt_policy_name(jl_rt_policy_kind kind);
const char *jl_rt_phase_name(jl_rt_phase phase);

/* freqs: the available frequencies, any order (sorted and deduplicated here; at most JL_RT_FREQS_MAX);
 * def_khz: min_energy's reference / min_time's start (snapped to an available one). Fills *ret_first with
 * the first frequency to set (monitoring: none). Returns 0 or -EINVAL. */
int jl_rt_policy_init(jl_rt_policy *p, jl_rt_policy_kind kind, double th, const unsigned long *freqs,
                      size_t n, unsigned long def_khz, jl_rt_decision *ret_first);

/* The node's learnt model, after init: curve (may be NULL) replaces the default power shape, fitted through
 * the reference's power alone; coeffs (may be NULL; kept, not copied) projects from the reference where the
 * signature has CPI and TPI and the file has every pair from the default frequency down. */
void jl_rt_policy_set_model(jl_rt_policy *p, const jl_rt_power_curve *curve, const jl_coeffs *coeffs);

/* One signature measured at the frequency the policy asked for last. Fills *ret (ret->set: change now). */
void jl_rt_policy_signature(jl_rt_policy *p, const jl_rt_sig *s, jl_rt_decision *ret);

/* Whether the CPU waits while the step's GPUs compute: gpu_util (0..1, NAN unknown) ≥ JL_RT_GPU_BUSY_UTIL
 * and the CPU side waits: with a time model, the share of the time that does not scale with the clock at
 * s->khz is at least half; else with counters (CPI, GB/s, GFLOPS), the busy-waiting signature; with neither
 * it cannot be told and counts as waiting (min_energy then measures the lowest frequency and the bound
 * decides). */
bool jl_rt_gpu_busy(double gpu_util, const jl_rt_sig *s, const jl_rt_time_model *tm);

/* Phase of a signature; tm (may be NULL) is the time model when one was fitted. */
jl_rt_phase jl_rt_phase_classify(const jl_rt_sig *s, const jl_rt_time_model *tm);
