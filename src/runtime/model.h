/* model.h - projections of time and power across CPU frequencies for the policies (policy.c), and the two
 * rules they apply: min_energy's least projected energy within the time bound, min_time's PerfGain ≥ th ×
 * FreqGain. Model-free (from iterations measured at two frequencies): time T(f) = c / f + m (a part that
 * scales with the clock, a part that does not), power P(f) = a + b × s(f) with s(f) = f/f_max ×
 * (V(f)/V_max)² and V linear from 0.8 V_max at f_min to V_max at f_max (dynamic power ~ C V² f). With
 * counters and a node's learnt coefficients: EAR's form P' = A P + B TPI + C, CPI' = D CPI + E TPI + F. Pure
 * functions, no I/O; see docs/policies.md. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

typedef struct {
        double c_s_khz; /* T(f) = c / f + m, f in kHz */
        double m_s;
} jl_rt_time_model;

typedef struct {
        double a_w, b_w; /* P(f) = a + b × s(f) */
        double fmin_khz, fmax_khz;
        double vmin_ratio; /* V(f_min) / V(f_max) of the shape s(f); 0: the default 0.8 */
} jl_rt_power_model;

/* A node's power curve, learnt by a learning run (`joule learn`, docs/policies.md): P(f) = static_w + b ×
 * s(f) with the node's own voltage shape (V linear from vmin_ratio × V_max at f_min to V_max at f_max), b
 * per code (its activity). With it, one measured power (the reference's) gives b: the runtime needs its
 * measured points for the time only. */
typedef struct {
        double static_w;
        double vmin_ratio;
        double fmin_khz, fmax_khz;
        double rms_w; /* the fit's residual over the learning run's samples */
} jl_rt_power_curve;

/* Coefficients of one (from, to) frequency pair, learnt by a learning run (docs/policies.md). */
typedef struct {
        double A, B, C; /* power */
        double D, E, F; /* CPI */
} jl_rt_coeffs;

/* Fits T(f) = c / f + m through two measured points (f1 != f2, times > 0). c and m are clamped at 0 (a
 * measurement slower at the higher frequency means no part scales: c = 0, m the mean). Returns 0 or -EINVAL.
 */
int jl_rt_time_fit(double f1_khz, double t1_s, double f2_khz, double t2_s, jl_rt_time_model *ret);
double jl_rt_time_project(const jl_rt_time_model *m, double f_khz);
/* The share of the time at f that does not scale with the clock (0..1): memory, I/O, waiting. */
double jl_rt_time_mem_share(const jl_rt_time_model *m, double f_khz);

double jl_rt_power_shape(double f_khz, double fmin_khz, double fmax_khz);
/* The same shape with V(f_min) / V(f_max) = vmin_ratio (the default shape: 0.8). */
double jl_rt_power_shape_v(double f_khz, double fmin_khz, double fmax_khz, double vmin_ratio);
/* Fits P(f) = a + b s(f) through two measured points. b is clamped at 0. Returns 0 or -EINVAL. */
int jl_rt_power_fit(double f1_khz, double p1_w, double f2_khz, double p2_w, double fmin_khz, double fmax_khz,
                    jl_rt_power_model *ret);
double jl_rt_power_project(const jl_rt_power_model *m, double f_khz);
/* The power model of a code from a node's learnt curve and one measured point (f_khz, p_w): b = (p − static)
 * / s(f), at least 0 (a point below the static power: b = 0, a = p). Returns 0 or -EINVAL. */
int jl_rt_power_from_curve(const jl_rt_power_curve *c, double f_khz, double p_w, jl_rt_power_model *ret);

/* EAR's counter model from f_from to f_to: power and time (T' = T × CPI'/CPI × f_from/f_to). Returns 0 or
 * -EINVAL (CPI not positive, frequencies not positive). */
int jl_rt_coeffs_project(const jl_rt_coeffs *k, double t_s, double power_w, double cpi, double tpi,
                         double from_khz, double to_khz, double *ret_t_s, double *ret_power_w);

/* min_energy's choice among freqs[0..n) (ascending, kHz): the frequency at or below def_khz with the least
 * projected energy per iteration P(f) × T(f) among those whose projected time stays within
 * (1 + th) × t_ref × (1 − margin); def_khz itself always qualifies. Ties go to the higher frequency.
 * Returns 0 or -EINVAL. */
int jl_rt_min_energy_choose(const unsigned long *freqs, size_t n, unsigned long def_khz, double t_ref_s,
                            double th, double margin, const jl_rt_time_model *tm,
                            const jl_rt_power_model *pm, unsigned long *ret_khz);

/* min_time's rule for one step up from f_cur (time t_cur) to f_next (time t_next):
 * PerfGain = (t_cur − t_next) / t_cur ≥ th × FreqGain = th × (f_next − f_cur) / f_cur. */
bool jl_rt_min_time_accept(double t_cur_s, double t_next_s, double f_cur_khz, double f_next_khz, double th);

/* Index of khz in freqs (ascending), or of the nearest one above it (n − 1 when above all). */
size_t jl_rt_freq_index_up(const unsigned long *freqs, size_t n, unsigned long khz);
