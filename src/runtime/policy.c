/* policy.c - the policies' state machines and the phase classification (policy.h). */
#include "policy.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { ME_REF, ME_PROBE, ME_FAR, ME_VERIFY, ME_HOLD };
enum { MT_START, MT_STEP, MT_HOLD };

int jl_rt_policy_parse(const char *name, jl_rt_policy_kind *ret)
{
        static const struct {
                const char *name;
                jl_rt_policy_kind kind;
        } names[] = {
            {"monitoring", JL_RT_MONITORING}, {"min_energy", JL_RT_MIN_ENERGY},
            {"min-energy", JL_RT_MIN_ENERGY}, {"min_time", JL_RT_MIN_TIME},
            {"min-time", JL_RT_MIN_TIME},
        };
        if (!name)
                return -EINVAL;
        for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
                if (strcmp(name, names[i].name) == 0) {
                        *ret = names[i].kind;
                        return 0;
                }
        return -EINVAL;
}

const char *jl_rt_policy_name(jl_rt_policy_kind kind)
{
        switch (kind) {
        case JL_RT_MONITORING:
                return "monitoring";
        case JL_RT_MIN_ENERGY:
                return "min_energy";
        case JL_RT_MIN_TIME:
                return "min_time";
        }
        return "?";
}

const char *jl_rt_phase_name(jl_rt_phase phase)
{
        static const char *const names[] = {
            [JL_RT_PHASE_UNKNOWN] = "unknown",           [JL_RT_PHASE_CPU_BOUND] = "cpu-bound",
            [JL_RT_PHASE_MEMORY_BOUND] = "memory-bound", [JL_RT_PHASE_MPI_BOUND] = "mpi-bound",
            [JL_RT_PHASE_BUSY_WAITING] = "busy-waiting", [JL_RT_PHASE_IO_BOUND] = "io-bound",
            [JL_RT_PHASE_GPU_WAIT] = "cpu-waiting-gpu",
        };
        return (unsigned)phase < sizeof(names) / sizeof(names[0]) ? names[phase] : "?";
}

static int cmp_ulong(const void *a, const void *b)
{
        unsigned long x = *(const unsigned long *)a, y = *(const unsigned long *)b;
        return x < y ? -1 : x > y;
}

__attribute__((format(printf, 5, 6))) static void decide(jl_rt_decision *d, const char *kind, bool set,
                                                         unsigned long khz, const char *fmt, ...)
{
        va_list ap;
        d->kind = kind;
        d->set = set;
        d->khz = khz;
        va_start(ap, fmt);
        vsnprintf(d->message, sizeof(d->message), fmt, ap);
        va_end(ap);
}

static size_t index_of(const jl_rt_policy *p, unsigned long khz)
{
        return jl_rt_freq_index_up(p->freqs, p->n, khz);
}

/* Set a frequency from now on. */
static void go(jl_rt_policy *p, jl_rt_decision *d, const char *kind, double value, unsigned long khz)
{
        d->kind = kind;
        d->value = value;
        d->set = khz != p->cur_khz;
        d->khz = khz;
        p->cur_khz = khz;
}

int jl_rt_policy_init(jl_rt_policy *p, jl_rt_policy_kind kind, double th, const unsigned long *freqs,
                      size_t n, unsigned long def_khz, jl_rt_decision *ret_first)
{
        if (!p || !ret_first || !(th >= 0 && th <= 1) || (kind != JL_RT_MONITORING && (!freqs || n == 0)) ||
            n > JL_RT_FREQS_MAX)
                return -EINVAL;
        memset(p, 0, sizeof(*p));
        p->kind = kind;
        p->th = th;
        for (size_t i = 0; i < n; i++)
                if (freqs[i] > 0)
                        p->freqs[p->n++] = freqs[i];
        qsort(p->freqs, p->n, sizeof(p->freqs[0]), cmp_ulong);
        size_t k = 0;
        for (size_t i = 0; i < p->n; i++)
                if (k == 0 || p->freqs[i] != p->freqs[k - 1])
                        p->freqs[k++] = p->freqs[i];
        p->n = k;
        if (kind != JL_RT_MONITORING && p->n == 0)
                return -EINVAL;
        p->def_khz = p->n ? p->freqs[index_of(p, def_khz)] : def_khz;
        p->t_cur = NAN;
        memset(ret_first, 0, sizeof(*ret_first));
        switch (kind) {
        case JL_RT_MONITORING:
                decide(ret_first, "policy", false, 0, "monitoring: frequencies are never changed");
                break;
        case JL_RT_MIN_ENERGY:
                decide(ret_first, "policy", true, p->def_khz,
                       "min_energy th %.3f: the reference is taken at the default frequency %lu kHz", th,
                       p->def_khz);
                p->state = ME_REF;
                break;
        case JL_RT_MIN_TIME:
                decide(ret_first, "policy", true, p->def_khz, "min_time th %.3f: starts at %lu kHz", th,
                       p->def_khz);
                p->state = MT_START;
                break;
        }
        ret_first->value = th;
        p->cur_khz = ret_first->set ? p->def_khz : 0;
        return 0;
}

static double bound_of(const jl_rt_policy *p)
{
        return (1.0 + p->th) * p->t_ref;
}

/* The loop changed under a held frequency: start over from the default. */
static bool changed(jl_rt_policy *p, const jl_rt_sig *s, jl_rt_decision *d)
{
        if (!(p->t_cur > 0)) {
                p->t_cur = s->tpi_s;
                return false;
        }
        double rel = (s->tpi_s - p->t_cur) / p->t_cur;
        if (fabs(rel) <= JL_RT_POLICY_CHANGE) {
                p->moved = 0;
                return false;
        }
        if (++p->moved < 2)
                return false;
        p->moved = 0;
        snprintf(
            d->message, sizeof(d->message),
            "the time per iteration moved by %+.1f%% at %lu kHz (%.6f s, was %.6f s): the loop changed, "
            "new reference at %lu kHz",
            rel * 100, p->cur_khz, s->tpi_s, p->t_cur, p->def_khz);
        go(p, d, "policy", rel, p->def_khz);
        p->state = p->kind == JL_RT_MIN_ENERGY ? ME_REF : MT_START;
        p->t_cur = NAN;
        p->have_tm = false;
        p->have_pm = false;
        return true;
}

/* The frequency of the least energy measured within the bound and not ruled out, its energy in *ret_e;
 * 0: none. */
static unsigned long me_best(const jl_rt_policy *p, double *ret_e)
{
        unsigned long best = 0;
        for (size_t i = 0; i < p->n; i++)
                if (p->e_at[i] > 0 && p->freqs[i] >= p->floor_khz && (best == 0 || p->e_at[i] < *ret_e)) {
                        *ret_e = p->e_at[i];
                        best = p->freqs[i];
                }
        return best;
}

static void me_remember(jl_rt_policy *p, const jl_rt_sig *s)
{
        if (!(s->tpi_s <= bound_of(p) * (1 + JL_RT_POLICY_TOL)) || !isfinite(s->power_w) ||
            p->cur_khz < p->floor_khz)
                return;
        double e = s->power_w * s->tpi_s;
        if (!(e > 0))
                return;
        p->e_at[index_of(p, p->cur_khz)] = e;
}

/* The bound broke at cur_khz: it and every frequency below are ruled out until the next reference. */
static void me_rule_out(jl_rt_policy *p)
{
        size_t i = index_of(p, p->cur_khz);
        unsigned long above = i + 1 < p->n ? p->freqs[i + 1] : p->freqs[i];
        if (above > p->floor_khz)
                p->floor_khz = above;
}

static void mark(jl_rt_policy *p)
{
        size_t i = index_of(p, p->cur_khz);
        p->measured[i / 64] |= UINT64_C(1) << (i % 64);
}

static bool was_measured(const jl_rt_policy *p, unsigned long khz)
{
        size_t i = index_of(p, khz);
        return p->measured[i / 64] & (UINT64_C(1) << (i % 64));
}

void jl_rt_policy_set_model(jl_rt_policy *p, const jl_rt_power_curve *curve, const jl_coeffs *coeffs)
{
        if (!p)
                return;
        p->have_curve = curve && curve->fmax_khz > curve->fmin_khz && curve->fmin_khz > 0 &&
                        curve->vmin_ratio > 0 && curve->vmin_ratio <= 1 && curve->static_w >= 0;
        if (p->have_curve)
                p->curve = *curve;
        p->coeffs = coeffs;
}

/* The power model through the reference and (f2, p2): the node's learnt curve through the reference alone
 * where there is one, else the default shape through both points. */
static int power_model(const jl_rt_policy *p, double f2_khz, double p2_w, jl_rt_power_model *ret)
{
        if (p->have_curve)
                return jl_rt_power_from_curve(&p->curve, (double)p->def_khz, p->p_ref, ret);
        return jl_rt_power_fit((double)p->def_khz, p->p_ref, f2_khz, p2_w, (double)p->freqs[0],
                               (double)p->freqs[p->n - 1], ret);
}

/* Says in d which model a projection used (the caller's event `model`). */
static void say_model(const jl_rt_policy *p, jl_rt_decision *d, const jl_rt_power_model *pm)
{
        if (p->have_curve) {
                d->model = "curve";
                snprintf(
                    d->model_message, sizeof(d->model_message),
                    "learnt power curve: P(f) = %.2f + %.2f s(f) W, V(f_min)/V(f_max) %.3f, through the "
                    "reference's power; time through the measured points",
                    pm->a_w, pm->b_w, p->curve.vmin_ratio);
        } else {
                d->model = "default";
                snprintf(
                    d->model_message, sizeof(d->model_message),
                    "model-free, default shape: P(f) = %.2f + %.2f s(f) W, V(f_min)/V(f_max) 0.8, time and "
                    "power through the measured points",
                    pm->a_w, pm->b_w);
        }
}

/* min_energy with counters: EAR's projection from the reference to every frequency below it with the
 * node's pairs (all of them needed), the least projected energy within the bound chosen; false where the
 * signature or the file does not allow it (then the model-free probe). */
static bool me_counters(jl_rt_policy *p, const jl_rt_sig *s, jl_rt_decision *d)
{
        if (!p->coeffs || !(s->cpi > 0) || !isfinite(s->cpi) || !isfinite(s->tpi) || !isfinite(s->power_w))
                return false;
        double bound = bound_of(p) * (1.0 - JL_RT_POLICY_MARGIN), best_e = s->power_w * s->tpi_s;
        unsigned long best = p->def_khz;
        size_t used = 0;
        for (size_t i = index_of(p, p->def_khz); i-- > 0;) {
                const jl_rt_coeffs *k = jl_coeffs_pair_find(p->coeffs, p->def_khz, p->freqs[i]);
                double t, w;
                if (!k || jl_rt_coeffs_project(k, s->tpi_s, s->power_w, s->cpi, s->tpi, (double)p->def_khz,
                                               (double)p->freqs[i], &t, &w) < 0)
                        return false;
                used++;
                if (t <= bound && w * t < best_e) {
                        best_e = w * t;
                        best = p->freqs[i];
                }
        }
        if (used == 0)
                return false;
        d->model = "counters";
        snprintf(
            d->model_message, sizeof(d->model_message),
            "counters: EAR's coefficients of %zu pairs from %lu kHz (CPI %.3f, TPI %.4f at the reference)",
            used, p->def_khz, s->cpi, s->tpi);
        snprintf(
            d->message, sizeof(d->message),
            "reference %.6f s per iteration at %lu kHz, %.2f W, CPI %.3f, TPI %.4f; counter model: least "
            "projected energy within the bound at %lu kHz",
            s->tpi_s, p->def_khz, s->power_w, s->cpi, s->tpi, best);
        p->probe_khz = p->def_khz;
        if (best == p->def_khz) {
                go(p, d, "frequency", (double)best, best);
                p->state = ME_HOLD;
                p->t_cur = s->tpi_s;
                return true;
        }
        go(p, d, "policy", (double)best, best);
        p->state = ME_VERIFY;
        return true;
}

/* min_energy: the time at the chosen frequency is measured; above the bound, one step up. Within it, and
 * farther from the reference than the probe, the model is fitted again through the reference and this point
 * (a wider base than the probe's, so that noise weighs less) and, when it points to a frequency not yet
 * measured, that one is tried (at most 4 times). */
static void me_verify(jl_rt_policy *p, const jl_rt_sig *s, jl_rt_decision *d)
{
        double bound = bound_of(p);
        mark(p);
        if (s->tpi_s > bound * (1 + JL_RT_POLICY_TOL)) {
                size_t i = index_of(p, p->cur_khz);
                unsigned long up = i + 1 < p->n ? p->freqs[i + 1] : p->freqs[i];
                /* the model was wrong here: refit time through the reference and this point, choose again,
                 * at least one step up */
                jl_rt_time_model tm;
                unsigned long again;
                if (p->have_pm && p->cur_khz < p->def_khz &&
                    jl_rt_time_fit((double)p->def_khz, p->t_ref, (double)p->cur_khz, s->tpi_s, &tm) == 0 &&
                    jl_rt_min_energy_choose(p->freqs, p->n, p->def_khz, p->t_ref, p->th, JL_RT_POLICY_MARGIN,
                                            &tm, &p->pm, &again) == 0 &&
                    again > up) {
                        up = again;
                        p->tm = tm;
                }
                /* no power model (a phase sent it to the lowest frequency): the lowest frequency whose time,
                 * projected through the reference and this point, stays within the bound */
                if (!p->have_pm && p->cur_khz < p->def_khz &&
                    jl_rt_time_fit((double)p->def_khz, p->t_ref, (double)p->cur_khz, s->tpi_s, &tm) == 0) {
                        size_t k = index_of(p, up);
                        while (k + 1 < p->n && p->freqs[k] < p->def_khz &&
                               jl_rt_time_project(&tm, (double)p->freqs[k]) >
                                   bound * (1 - JL_RT_POLICY_MARGIN))
                                k++;
                        up = p->freqs[k];
                        p->tm = tm;
                        p->have_tm = true;
                }
                if (up > p->def_khz)
                        up = p->def_khz;
                me_rule_out(p);
                p->repairs++;
                snprintf(d->message, sizeof(d->message),
                         "bound broken at %lu kHz: %.6f s per iteration > (1 + %.3f) x %.6f s (%+.2f%%): "
                         "back up to "
                         "%lu kHz",
                         p->cur_khz, s->tpi_s, p->th, p->t_ref, (s->tpi_s / p->t_ref - 1) * 100, up);
                go(p, d, "bound", s->tpi_s / p->t_ref - 1, up);
                p->state = up >= p->def_khz ? ME_HOLD : ME_VERIFY;
                p->t_cur = NAN;
                return;
        }
        /* within the bound after a phase's jump: the time model through the reference and this point tells
         * the phase from now on (how much of the time scales with the clock) */
        if (!p->have_tm && p->cur_khz < p->def_khz &&
            jl_rt_time_fit((double)p->def_khz, p->t_ref, (double)p->cur_khz, s->tpi_s, &p->tm) == 0)
                p->have_tm = true;
        /* within the bound but no power reading (jouled restarting): measure again, for a while */
        if (!isfinite(s->power_w) && ++p->nopower < 3)
                return;
        p->nopower = 0;
        me_remember(p, s);
        if (p->have_pm && p->rounds < 4 && isfinite(s->power_w) && p->cur_khz < p->probe_khz) {
                jl_rt_time_model tm;
                jl_rt_power_model pm;
                unsigned long again;
                if (jl_rt_time_fit((double)p->def_khz, p->t_ref, (double)p->cur_khz, s->tpi_s, &tm) == 0 &&
                    power_model(p, (double)p->cur_khz, s->power_w, &pm) == 0 &&
                    jl_rt_min_energy_choose(p->freqs, p->n, p->def_khz, p->t_ref, p->th, JL_RT_POLICY_MARGIN,
                                            &tm, &pm, &again) == 0 &&
                    again >= p->floor_khz && !was_measured(p, again)) {
                        p->rounds++;
                        p->tm = tm;
                        p->pm = pm;
                        snprintf(
                            d->message, sizeof(d->message),
                            "%lu kHz: %.6f s per iteration (%+.2f%%), %.2f W; model refitted through %lu "
                            "and "
                            "%lu kHz: T(f) = %.4g/f + %.6f s, P(f) = %.2f + %.2f s(f) W; trying %lu kHz",
                            p->cur_khz, s->tpi_s, (s->tpi_s / p->t_ref - 1) * 100, s->power_w, p->def_khz,
                            p->cur_khz, tm.c_s_khz, tm.m_s, pm.a_w, pm.b_w, again);
                        go(p, d, "policy", (double)again, again);
                        p->state = ME_VERIFY;
                        return;
                }
        }
        double e_best = NAN;
        unsigned long best = me_best(p, &e_best), final = best ? best : p->cur_khz;
        double e_ref = p->p_ref * p->t_ref;
        if (final != p->def_khz && isfinite(e_ref) && best && e_best > e_ref * (1 - JL_RT_POLICY_EMARGIN))
                final = p->def_khz;
        snprintf(d->message, sizeof(d->message),
                 "%lu kHz: %.6f s per iteration (%+.2f%% against %.6f s at %lu kHz, bound %+.1f%%), %.2f W; "
                 "holds %lu kHz (least measured energy within the bound; the default unless 1%% less)",
                 p->cur_khz, s->tpi_s, (s->tpi_s / p->t_ref - 1) * 100, p->t_ref, p->def_khz, p->th * 100,
                 s->power_w, final);
        unsigned long was = p->cur_khz;
        go(p, d, "frequency", (double) final, final);
        p->state = ME_HOLD;
        p->t_cur = final == was ? s->tpi_s : NAN;
}

/* A measurement's standard error, at least floor_rel of its value. */
static double noise_of(double err, double v, double floor_rel)
{
        double floor = fabs(v) * floor_rel;
        return isfinite(err) && err > floor ? err : floor;
}

/* The noise of the difference between the reference and a signature: time (s) and power (W). */
static double t_noise(const jl_rt_policy *p, const jl_rt_sig *s)
{
        return hypot(noise_of(p->t_ref_err, p->t_ref, JL_RT_POLICY_TNOISE),
                     noise_of(s->tpi_err_s, s->tpi_s, JL_RT_POLICY_TNOISE));
}

static double p_noise(const jl_rt_policy *p, const jl_rt_sig *s)
{
        return hypot(noise_of(p->p_ref_err, p->p_ref, JL_RT_POLICY_PNOISE),
                     noise_of(s->power_err_w, s->power_w, JL_RT_POLICY_PNOISE));
}

/* Whether the probe's differences from the reference, in time or in power, are within the noise: a model
 * through the two is then decided by the noise. */
static bool ill_conditioned(const jl_rt_policy *p, const jl_rt_sig *s)
{
        /* with a learnt power curve the probe's power is not used: only its time matters */
        return fabs(s->tpi_s - p->t_ref) < JL_RT_POLICY_NOISE_K * t_noise(p, s) ||
               (!p->have_curve && fabs(s->power_w - p->p_ref) < JL_RT_POLICY_NOISE_K * p_noise(p, s));
}

/* The farther point after an ill-conditioned probe: the lowest frequency whose time the measurements cannot
 * exclude from the bound, i.e. within it under the least slope c that the probe's noise allows (c - K σ_c,
 * at least 0), through the reference. Its measured time tells whether it holds; if not, the policy steps
 * back up from there with a time model through that wide pair. */
static unsigned long far_point(const jl_rt_policy *p, const jl_rt_sig *s)
{
        double inv = 1.0 / (double)p->cur_khz - 1.0 / (double)p->def_khz;
        double c = (s->tpi_s - p->t_ref) / inv, sigma_c = t_noise(p, s) / inv;
        double c_lo = fmax(0, c - JL_RT_POLICY_NOISE_K * sigma_c);
        double bound = bound_of(p) * (1 - JL_RT_POLICY_MARGIN);
        for (size_t i = 0; i < p->n; i++)
                if (p->t_ref + c_lo * (1.0 / (double)p->freqs[i] - 1.0 / (double)p->def_khz) <= bound)
                        return p->freqs[i];
        return p->cur_khz;
}

static void min_energy(jl_rt_policy *p, const jl_rt_sig *s, jl_rt_decision *d)
{
        switch (p->state) {
        case ME_REF: {
                if (!isfinite(s->power_w) && ++p->nopower < 3)
                        return;
                p->nopower = 0;
                p->t_ref = s->tpi_s;
                p->p_ref = s->power_w;
                p->t_ref_err = s->tpi_err_s;
                p->p_ref_err = s->power_err_w;
                memset(p->e_at, 0, sizeof(p->e_at));
                p->floor_khz = 0;
                p->rounds = 0;
                memset(p->measured, 0, sizeof(p->measured));
                mark(p);
                me_remember(p, s);
                jl_rt_phase ph = jl_rt_phase_classify(s, NULL);
                if (ph == JL_RT_PHASE_IO_BOUND || ph == JL_RT_PHASE_BUSY_WAITING ||
                    ph == JL_RT_PHASE_GPU_WAIT) {
                        snprintf(
                            d->message, sizeof(d->message),
                            "reference %.6f s per iteration at %lu kHz; %s: the lowest frequency %lu kHz, "
                            "to be measured",
                            s->tpi_s, p->def_khz, jl_rt_phase_name(ph), p->freqs[0]);
                        go(p, d, "phase", ph, p->freqs[0]);
                        p->state = p->freqs[0] < p->def_khz ? ME_VERIFY : ME_HOLD;
                        return;
                }
                if (me_counters(p, s, d))
                        return;
                /* the probe: even a code whose every cycle scales stays within the bound there */
                size_t i = index_of(p, (unsigned long)ceil((double)p->def_khz / (1.0 + p->th)));
                p->probe_khz = p->freqs[i];
                if (p->probe_khz >= p->def_khz) {
                        snprintf(
                            d->message, sizeof(d->message),
                            "reference %.6f s per iteration at %lu kHz; no lower frequency within th %.3f: "
                            "holds it",
                            s->tpi_s, p->def_khz, p->th);
                        go(p, d, "frequency", (double)p->def_khz, p->def_khz);
                        p->state = ME_HOLD;
                        p->t_cur = s->tpi_s;
                        return;
                }
                snprintf(d->message, sizeof(d->message),
                         "reference %.6f s per iteration at %lu kHz, %.2f W; probing %lu kHz", s->tpi_s,
                         p->def_khz, s->power_w, p->probe_khz);
                go(p, d, "policy", s->tpi_s, p->probe_khz);
                p->state = ME_PROBE;
                return;
        }
        case ME_PROBE: {
                if (!isfinite(s->power_w) && ++p->nopower < 3)
                        return;
                p->nopower = 0;
                p->t_probe = s->tpi_s;
                p->p_probe = s->power_w;
                mark(p);
                me_remember(p, s);
                if (jl_rt_time_fit((double)p->def_khz, p->t_ref, (double)p->probe_khz, p->t_probe, &p->tm) <
                    0) {
                        go(p, d, "error", 0, p->def_khz);
                        snprintf(d->message, sizeof(d->message), "no time model: holds %lu kHz", p->def_khz);
                        p->state = ME_HOLD;
                        return;
                }
                p->have_tm = true;
                jl_rt_power_model pm;
                unsigned long choice;
                if (power_model(p, (double)p->probe_khz, p->p_probe, &pm) < 0 ||
                    jl_rt_min_energy_choose(p->freqs, p->n, p->def_khz, p->t_ref, p->th, JL_RT_POLICY_MARGIN,
                                            &p->tm, &pm, &choice) < 0) {
                        p->have_pm = false;
                        snprintf(d->message, sizeof(d->message),
                                 "no power readings: energy cannot be projected; holds %lu kHz", p->def_khz);
                        go(p, d, "error", 0, p->def_khz);
                        p->state = ME_HOLD;
                        p->t_cur = NAN;
                        return;
                }
                p->pm = pm;
                p->have_pm = true;
                say_model(p, d, &pm);
                /* a farther point is measured first where the pair cannot decide: the probe's differences
                 * within the noise, or the model's least energy at the probe itself (through two close
                 * points a few percent of noise in the power decides that: a mixed code whose best lies far
                 * below held the probe and saved 1 % of 2.4 %); the widest pair the bound allows decides
                 * instead */
                bool ill = ill_conditioned(p, s);
                unsigned long far;
                if ((ill || choice == p->probe_khz) && (far = far_point(p, s)) < p->probe_khz) {
                        if (ill)
                                snprintf(
                                    d->message, sizeof(d->message),
                                    "%lu kHz: %.6f s per iteration (%+.3f%%, noise %.3f%%), %.2f W (%+.2f "
                                    "W, "
                                    "noise %.2f W): within the noise, no model; probing %lu kHz farther",
                                    p->probe_khz, s->tpi_s, (s->tpi_s / p->t_ref - 1) * 100,
                                    t_noise(p, s) / p->t_ref * 100, s->power_w, s->power_w - p->p_ref,
                                    p_noise(p, s), far);
                        else
                                snprintf(
                                    d->message, sizeof(d->message),
                                    "%lu kHz: %.6f s per iteration (%+.2f%%), %.2f W; the model's least "
                                    "energy is here, from two close points: probing %lu kHz farther",
                                    p->probe_khz, s->tpi_s, (s->tpi_s / p->t_ref - 1) * 100, s->power_w,
                                    far);
                        go(p, d, "policy", (double)far, far);
                        p->state = ME_FAR;
                        return;
                }
                if (choice == p->probe_khz) {
                        me_verify(p, s, d);
                        return;
                }
                snprintf(
                    d->message, sizeof(d->message),
                    "%lu kHz: %.6f s per iteration, %.2f W; model T(f) = %.4g/f + %.6f s, P(f) = %.2f + "
                    "%.2f s(f) W; projected least energy within the bound: %lu kHz (%.6f s, %.2f W)",
                    p->probe_khz, s->tpi_s, s->power_w, p->tm.c_s_khz, p->tm.m_s, pm.a_w, pm.b_w, choice,
                    jl_rt_time_project(&p->tm, (double)choice), jl_rt_power_project(&pm, (double)choice));
                go(p, d, "policy", (double)choice, choice);
                p->state = ME_VERIFY;
                return;
        }
        case ME_FAR: {
                /* the farther point: time and power fitted through it and the reference (the widest pair),
                 * then projected; a broken bound here is repaired as after any choice */
                if (!isfinite(s->power_w) && ++p->nopower < 3)
                        return;
                p->nopower = 0;
                p->probe_khz = p->cur_khz;
                jl_rt_power_model pm;
                if (power_model(p, (double)p->cur_khz, s->power_w, &pm) == 0)
                        p->pm = pm;
                jl_rt_time_model tm;
                unsigned long choice;
                if (s->tpi_s > bound_of(p) * (1 + JL_RT_POLICY_TOL) ||
                    jl_rt_time_fit((double)p->def_khz, p->t_ref, (double)p->cur_khz, s->tpi_s, &tm) < 0 ||
                    jl_rt_min_energy_choose(p->freqs, p->n, p->def_khz, p->t_ref, p->th, JL_RT_POLICY_MARGIN,
                                            &tm, &p->pm, &choice) < 0 ||
                    choice == p->cur_khz) {
                        me_verify(p, s, d);
                        return;
                }
                mark(p);
                me_remember(p, s);
                p->tm = tm;
                snprintf(
                    d->message, sizeof(d->message),
                    "%lu kHz: %.6f s per iteration (%+.2f%%), %.2f W; model through %lu and %lu kHz: T(f) "
                    "= %.4g/f + %.6f s, P(f) = %.2f + %.2f s(f) W; projected least energy: %lu kHz",
                    p->cur_khz, s->tpi_s, (s->tpi_s / p->t_ref - 1) * 100, s->power_w, p->def_khz,
                    p->cur_khz, tm.c_s_khz, tm.m_s, p->pm.a_w, p->pm.b_w, choice);
                go(p, d, "policy", (double)choice, choice);
                p->state = ME_VERIFY;
                return;
        }
        case ME_VERIFY:
                me_verify(p, s, d);
                return;
        case ME_HOLD:
                if (changed(p, s, d))
                        return;
                if (p->cur_khz < p->def_khz && s->tpi_s > bound_of(p) * (1 + JL_RT_POLICY_TOL))
                        me_verify(p, s, d);
                return;
        }
}

static void min_time(jl_rt_policy *p, const jl_rt_sig *s, jl_rt_decision *d)
{
        switch (p->state) {
        case MT_START: {
                p->t_cur = s->tpi_s;
                p->probe_khz = p->cur_khz; /* the frequency accepted so far */
                size_t i = index_of(p, p->cur_khz);
                if (i + 1 >= p->n) {
                        snprintf(d->message, sizeof(d->message),
                                 "%lu kHz is the highest frequency: holds it", p->cur_khz);
                        go(p, d, "frequency", (double)p->cur_khz, p->cur_khz);
                        p->state = MT_HOLD;
                        return;
                }
                snprintf(d->message, sizeof(d->message), "%.6f s per iteration at %lu kHz; trying %lu kHz",
                         s->tpi_s, p->cur_khz, p->freqs[i + 1]);
                go(p, d, "policy", s->tpi_s, p->freqs[i + 1]);
                p->state = MT_STEP;
                return;
        }
        case MT_STEP: {
                double f_cur = (double)p->probe_khz, f_next = (double)p->cur_khz;
                double perf = (p->t_cur - s->tpi_s) / p->t_cur, freq = (f_next - f_cur) / f_cur;
                if (jl_rt_min_time_accept(p->t_cur, s->tpi_s, f_cur, f_next, p->th)) {
                        p->t_cur = s->tpi_s;
                        p->probe_khz = p->cur_khz;
                        size_t i = index_of(p, p->cur_khz);
                        if (i + 1 >= p->n) {
                                snprintf(
                                    d->message, sizeof(d->message),
                                    "PerfGain %.4f >= %.2f x FreqGain %.4f: %lu kHz, the highest: holds it",
                                    perf, p->th, freq, p->cur_khz);
                                go(p, d, "frequency", (double)p->cur_khz, p->cur_khz);
                                p->state = MT_HOLD;
                                return;
                        }
                        snprintf(d->message, sizeof(d->message),
                                 "PerfGain %.4f >= %.2f x FreqGain %.4f: %lu kHz accepted; trying %lu kHz",
                                 perf, p->th, freq, p->cur_khz, p->freqs[i + 1]);
                        go(p, d, "policy", perf, p->freqs[i + 1]);
                        return;
                }
                snprintf(d->message, sizeof(d->message),
                         "PerfGain %.4f < %.2f x FreqGain %.4f from %lu to %lu kHz: holds %lu kHz", perf,
                         p->th, freq, p->probe_khz, p->cur_khz, p->probe_khz);
                go(p, d, "frequency", (double)p->probe_khz, p->probe_khz);
                p->state = MT_HOLD;
                p->t_cur = NAN;
                return;
        }
        case MT_HOLD:
                changed(p, s, d);
                return;
        }
}

void jl_rt_policy_signature(jl_rt_policy *p, const jl_rt_sig *s, jl_rt_decision *ret)
{
        memset(ret, 0, sizeof(*ret));
        if (!(s->tpi_s > 0) || p->kind == JL_RT_MONITORING)
                return;
        if (p->kind == JL_RT_MIN_ENERGY)
                min_energy(p, s, ret);
        else
                min_time(p, s, ret);
}

bool jl_rt_gpu_busy(double gpu_util, const jl_rt_sig *s, const jl_rt_time_model *tm)
{
        if (!(gpu_util >= JL_RT_GPU_BUSY_UTIL))
                return false;
        if (tm && s->khz > 0)
                return jl_rt_time_mem_share(tm, s->khz) >= 0.5;
        if (isfinite(s->cpi) && isfinite(s->gbs) && isfinite(s->gflops)) {
                double cpus = s->cpus > 0 ? s->cpus : 1, fp_cpus = s->fp_cpus > 0 ? s->fp_cpus : cpus;
                return s->cpi < 0.4 && s->gbs / cpus < 3 && s->gflops / fp_cpus < 0.1;
        }
        return true;
}

jl_rt_phase jl_rt_phase_classify(const jl_rt_sig *s, const jl_rt_time_model *tm)
{
        double cpus = s->cpus > 0 ? s->cpus : 1;
        /* GB/s are the node's (per CPU of the step); GFLOPS per CPU they were counted on: the step's where
         * counted per CPU, else the node master's process's own (jl_rt_counters_fp_cpus) */
        double fp_cpus = s->fp_cpus > 0 ? s->fp_cpus : cpus;
        if (s->gpu_busy)
                return JL_RT_PHASE_GPU_WAIT;
        if (s->io_mbs > 10)
                return JL_RT_PHASE_IO_BOUND;
        if (s->calls_per_s > 20000)
                return JL_RT_PHASE_MPI_BOUND;
        if (isfinite(s->cpi)) {
                if (isfinite(s->gbs) && isfinite(s->gflops) && s->cpi < 0.4 && s->gbs / cpus < 3 &&
                    s->gflops / fp_cpus < 0.1)
                        return JL_RT_PHASE_BUSY_WAITING;
                if (s->cpi > 0.8 && (!isfinite(s->gbs) || s->gbs > 100))
                        return JL_RT_PHASE_MEMORY_BOUND;
                if (s->cpi < 0.6 && (!isfinite(s->gbs) || s->gbs < 30))
                        return JL_RT_PHASE_CPU_BOUND;
        }
        if (tm && s->khz > 0)
                return jl_rt_time_mem_share(tm, s->khz) >= 0.5 ? JL_RT_PHASE_MEMORY_BOUND
                                                               : JL_RT_PHASE_CPU_BOUND;
        return JL_RT_PHASE_UNKNOWN;
}
