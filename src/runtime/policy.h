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
        double calls_per_s;      /* MPI calls per second (0 for programs without MPI) */
        double io_mbs;           /* read + written MB/s of the process */
        double cpus;             /* CPUs the step runs on (for per-CPU figures) */
        double fp_cpus;          /* CPUs the process whose GFLOPS are counted runs on (the node master's
                                  * affinity: GFLOPS are that process's); 0: cpus */
        bool gpu_busy;           /* NVML shows the step's GPUs computing */
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
        double e_best; /* min_energy: least measured energy per iteration within the bound */
        unsigned long best_khz;
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

/* "monitoring", "min_energy", "min_time" (also with '-'). Returns 0 or -EINVAL. */
int jl_rt_policy_parse(const char *name, jl_rt_policy_kind *ret);
const char *jl_rt_policy_name(jl_rt_policy_kind kind);
const char *jl_rt_phase_name(jl_rt_phase phase);

/* freqs: the available frequencies, any order (sorted and deduplicated here; at most JL_RT_FREQS_MAX);
 * def_khz: min_energy's reference / min_time's start (snapped to an available one). Fills *ret_first with
 * the first frequency to set (monitoring: none). Returns 0 or -EINVAL. */
int jl_rt_policy_init(jl_rt_policy *p, jl_rt_policy_kind kind, double th, const unsigned long *freqs,
                      size_t n, unsigned long def_khz, jl_rt_decision *ret_first);

/* One signature measured at the frequency the policy asked for last. Fills *ret (ret->set: change now). */
void jl_rt_policy_signature(jl_rt_policy *p, const jl_rt_sig *s, jl_rt_decision *ret);

/* Phase of a signature; tm (may be NULL) is the time model when one was fitted. */
jl_rt_phase jl_rt_phase_classify(const jl_rt_sig *s, const jl_rt_time_model *tm);
