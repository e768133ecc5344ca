/* test-policy-unit.c - the policies' logic with synthetic signatures: the time and power model (fit,
 * projection), min_energy's choice, its bound (measured after every change, repaired by stepping back up,
 * the reference always at the default frequency: EAR's issue #5; a probe within the noise measured
 * farther), min_time's rule, monitoring, the phase
 * classification, the JOULE_* settings with bad values, and the counters' null path. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "counters.h"
#include "manage.h"
#include "model.h"
#include "policy.h"
#include "tap.h"

/* A synthetic machine: T(f) = c / f + m (with an optional cliff: below cliff_khz every iteration takes
 * cliff_factor times longer, which no two-point model foresees), P(f) = static + dyn × s(f) × activity. */
typedef struct {
        double c, m, p_static, p_dyn;
        double cliff_khz, cliff_factor;
} machine;

static unsigned long freqs[23];
static size_t nfreqs;

static double m_time(const machine *x, double f)
{
        double t = x->c / f + x->m;
        return f < x->cliff_khz ? t * x->cliff_factor : t;
}

static double m_power(const machine *x, double f)
{
        double busy = (x->c / f + 0.3 * x->m) / (x->c / f + x->m);
        return x->p_static + x->p_dyn * busy * jl_rt_power_shape(f, 800000, 3000000);
}

static double m_energy(const machine *x, double f)
{
        return m_time(x, f) * m_power(x, f);
}

/* Runs the policy on the machine until it holds (or 40 windows); returns the frequency it holds. The
 * frequency is what the policy last set (it starts wherever start_khz says: the node's state before). */
static unsigned long run(jl_rt_policy *p, const machine *x, unsigned long start_khz, int *ret_sets,
                         int *ret_bounds, double noise)
{
        jl_rt_decision d;
        unsigned long f = start_khz;
        int sets = 0, bounds = 0;
        srand(7);
        for (int w = 0; w < 40; w++) {
                double e = noise * ((double)rand() / RAND_MAX * 2 - 1);
                jl_rt_sig s = {.tpi_s = m_time(x, (double)f) * (1 + e),
                               .power_w = m_power(x, (double)f),
                               .khz = (double)f,
                               .cpi = NAN,
                               .gbs = NAN,
                               .gflops = NAN};
                jl_rt_policy_signature(p, &s, &d);
                if (d.set) {
                        f = d.khz;
                        sets++;
                }
                if (d.kind && strcmp(d.kind, "bound") == 0)
                        bounds++;
        }
        if (ret_sets)
                *ret_sets = sets;
        if (ret_bounds)
                *ret_bounds = bounds;
        return f;
}

/* The least-energy frequency within the bound (the sweep's answer). */
static unsigned long best_within(const machine *x, double th)
{
        double bound = (1 + th) * m_time(x, 3000000);
        unsigned long best = 3000000;
        for (size_t i = 0; i < nfreqs; i++)
                if (m_time(x, (double)freqs[i]) <= bound &&
                    m_energy(x, (double)freqs[i]) < m_energy(x, (double)best))
                        best = freqs[i];
        return best;
}

static void test_model(void)
{
        jl_rt_time_model tm;
        is_int(jl_rt_time_fit(3000000, 0.020, 1500000, 0.030, &tm), 0, "time fit");
        is_near(tm.c_s_khz, 30000, 1e-6, "c: the part that scales (0.010 s at 3 GHz)");
        is_near(tm.m_s, 0.010, 1e-12, "m: the part that does not");
        is_near(jl_rt_time_project(&tm, 2000000), 0.025, 1e-12, "projection at 2 GHz");
        is_near(jl_rt_time_mem_share(&tm, 3000000), 0.5, 1e-12, "memory share at 3 GHz");
        is_int(jl_rt_time_fit(3000000, 0.020, 1500000, 0.019, &tm), 0, "slower at the higher frequency");
        ok(tm.c_s_khz == 0 && fabs(tm.m_s - 0.0195) < 1e-12, "nothing scales: c = 0, m the mean");
        is_int(jl_rt_time_fit(3000000, 0.020, 1500000, 0.045, &tm), 0, "more than proportional");
        ok(tm.m_s == 0 && fabs(tm.c_s_khz - 60000) < 1e-6, "m clamped at 0, c through the faster point");
        is_int(jl_rt_time_fit(3000000, 0.020, 3000000, 0.030, &tm), -EINVAL, "one frequency twice: EINVAL");
        is_int(jl_rt_time_fit(3000000, 0, 1500000, 0.030, &tm), -EINVAL, "a time of 0: EINVAL");

        jl_rt_power_model pm;
        double s1 = jl_rt_power_shape(3000000, 800000, 3000000),
               s2 = jl_rt_power_shape(800000, 800000, 3000000);
        is_near(s1, 1.0, 1e-12, "s(f_max) = 1");
        is_near(s2, 800000.0 / 3000000 * 0.64, 1e-12, "s(f_min) = f_min/f_max x 0.8^2");
        is_int(jl_rt_power_fit(3000000, 100 + 50 * s1, 800000, 100 + 50 * s2, 800000, 3000000, &pm), 0,
               "power fit");
        ok(fabs(pm.a_w - 100) < 1e-9 && fabs(pm.b_w - 50) < 1e-9, "P = 100 + 50 s(f) recovered");
        is_near(jl_rt_power_project(&pm, 2000000), 100 + 50 * jl_rt_power_shape(2000000, 800000, 3000000),
                1e-9, "power projection");
        is_int(jl_rt_power_fit(3000000, NAN, 800000, 100, 800000, 3000000, &pm), -EINVAL,
               "no power: EINVAL");

        jl_rt_coeffs k = {.A = 0.9, .B = 10, .C = 5, .D = 1.0, .E = 0, .F = 0};
        double t2, p2;
        is_int(jl_rt_coeffs_project(&k, 1.0, 100, 0.5, 0.01, 3000000, 1500000, &t2, &p2), 0, "coefficients");
        ok(fabs(t2 - 2.0) < 1e-12 && fabs(p2 - 95.1) < 1e-9,
           "CPI unchanged: time x f_from/f_to; P = A P + B TPI + C");
        is_int(jl_rt_coeffs_project(&k, 1.0, 100, 0, 0.01, 3000000, 1500000, &t2, &p2), -EINVAL,
               "CPI 0: EINVAL");

        ok(jl_rt_min_time_accept(0.020, 0.019, 2700000, 2800000, 0.7),
           "min_time: 5%% faster for 3.7%% more clock");
        ok(!jl_rt_min_time_accept(0.020, 0.0198, 2700000, 2800000, 0.7),
           "min_time: 1%% faster is not enough");
        ok(!jl_rt_min_time_accept(0.020, 0.019, 2800000, 2800000, 0.7),
           "min_time: no step up, no acceptance");
        is_int(jl_rt_freq_index_up(freqs, nfreqs, 2750000), 20, "index up: 2.75 GHz -> 2.8 GHz");
        is_int(jl_rt_freq_index_up(freqs, nfreqs, 5000000), 22, "index up: above all -> the top");
}

static void test_min_energy(void)
{
        const machine kinds[] = {
            {.c = 60000, .m = 0, .p_static = 70, .p_dyn = 80},      /* compute-bound */
            {.c = 30000, .m = 0.010, .p_static = 30, .p_dyn = 100}, /* mixed */
            {.c = 1200, .m = 0.0196, .p_static = 30, .p_dyn = 100}, /* memory-bound */
        };
        const char *names[] = {"compute", "mixed", "memory"};
        const double ths[] = {0.05, 0.1, 0.2};
        for (size_t k = 0; k < 3; k++)
                for (size_t t = 0; t < 3; t++) {
                        jl_rt_policy p;
                        jl_rt_decision d;
                        const machine *x = &kinds[k];
                        jl_rt_policy_init(&p, JL_RT_MIN_ENERGY, ths[t], freqs, nfreqs, 3000000, &d);
                        ok(d.set && d.khz == 3000000, "%s th %.2f: the reference is taken at the default",
                           names[k], ths[t]);
                        unsigned long f = run(&p, x, 3000000, NULL, NULL, 0);
                        double bound = (1 + ths[t]) * m_time(x, 3000000);
                        ok(m_time(x, (double)f) <= bound, "%s th %.2f: %lu kHz, time %.6f <= bound %.6f",
                           names[k], ths[t], f, m_time(x, (double)f), bound);
                        unsigned long best = best_within(x, ths[t]);
                        double e_def = m_energy(x, 3000000), saved = e_def - m_energy(x, (double)f),
                               best_saved = e_def - m_energy(x, (double)best);
                        ok(saved >= 0.8 * best_saved - 1e-12,
                           "%s th %.2f: saves %.4f J, >= 80%% of the best %.4f J (%lu kHz)", names[k],
                           ths[t], saved, best_saved, best);
                        if (k == 0)
                                is_int(f, 3000000, "compute-bound: left at the default frequency");
                }
}

static void test_bound_repair(void)
{
        /* memory-bound above 2 GHz, but below it every iteration takes 1.5 times longer: the model projects
         * the lowest frequency; the measurement there breaks the bound; the policy steps back up */
        machine x = {
            .c = 1200, .m = 0.0196, .p_static = 60, .p_dyn = 80, .cliff_khz = 2000000, .cliff_factor = 1.5};
        jl_rt_policy p;
        jl_rt_decision d;
        int sets, bounds;
        jl_rt_policy_init(&p, JL_RT_MIN_ENERGY, 0.1, freqs, nfreqs, 3000000, &d);
        unsigned long f = run(&p, &x, 3000000, &sets, &bounds, 0);
        ok(bounds >= 1, "the broken bound was seen (%d repairs)", bounds);
        ok(m_time(&x, (double)f) <= 1.1 * m_time(&x, 3000000),
           "repaired: %lu kHz keeps the bound (%.6f <= %.6f)", f, m_time(&x, (double)f),
           1.1 * m_time(&x, 3000000));
        ok(f >= 2000000, "above the cliff");

        /* measurement noise (+-0.2%) does not break the bound nor make the policy wander */
        machine mixed = {.c = 30000, .m = 0.010, .p_static = 30, .p_dyn = 100};
        jl_rt_policy_init(&p, JL_RT_MIN_ENERGY, 0.1, freqs, nfreqs, 3000000, &d);
        f = run(&p, &mixed, 3000000, &sets, &bounds, 0.002);
        ok(m_time(&mixed, (double)f) <= 1.1 * 1.01 * m_time(&mixed, 3000000),
           "noise: the bound holds (%lu kHz)", f);
        ok(sets <= 4, "noise: %d changes in 40 windows", sets);

        /* EAR's issue #5: the program runs at a lowered frequency when the loop changes; the new reference
         * is taken at the default frequency again, not at the lowered one */
        jl_rt_policy_init(&p, JL_RT_MIN_ENERGY, 0.05, freqs, nfreqs, 3000000, &d);
        f = run(&p, &mixed, 3000000, NULL, NULL, 0);
        ok(f < 3000000, "mixed at th 0.05: %lu kHz", f);
        machine slower = mixed;
        slower.m = 0.020; /* the loop changes: more memory time */
        /* (a window whose time broke the bound may first step up: the bound comes first) */
        bool back = false;
        for (int w = 0; w < 4 && !back; w++) {
                jl_rt_sig s = {.tpi_s = m_time(&slower, (double)f),
                               .power_w = m_power(&slower, (double)f),
                               .khz = (double)f,
                               .cpi = NAN,
                               .gbs = NAN,
                               .gflops = NAN};
                jl_rt_policy_signature(&p, &s, &d);
                if (d.set)
                        f = d.khz;
                back = d.set && d.khz == 3000000;
        }
        ok(back, "the loop changed: back to the default frequency for a new reference within 4 windows");
        f = run(&p, &slower, 3000000, NULL, NULL, 0);
        ok(m_time(&slower, (double)f) <= 1.05 * m_time(&slower, 3000000),
           "the bound is against the time at the default frequency (%.6f <= %.6f)",
           m_time(&slower, (double)f), 1.05 * m_time(&slower, 3000000));

        /* a saving within the power readings' noise (under 1 %) does not move the program off the default */
        machine flat = {.c = 30000, .m = 0.010, .p_static = 60, .p_dyn = 80};
        jl_rt_policy_init(&p, JL_RT_MIN_ENERGY, 0.1, freqs, nfreqs, 3000000, &d);
        f = run(&p, &flat, 3000000, NULL, NULL, 0);
        unsigned long fb = best_within(&flat, 0.1);
        ok(f == 3000000 && 1 - m_energy(&flat, (double)fb) / m_energy(&flat, 3000000) < 0.01,
           "the best saving is %.2f%% (< 1%%): the default is held",
           (1 - m_energy(&flat, (double)fb) / m_energy(&flat, 3000000)) * 100);

        /* no power readings: energy cannot be projected; the policy holds the default */
        jl_rt_policy_init(&p, JL_RT_MIN_ENERGY, 0.1, freqs, nfreqs, 3000000, &d);
        unsigned long g = 3000000;
        for (int w = 0; w < 6; w++) {
                jl_rt_sig n = {
                    .tpi_s = m_time(&mixed, (double)g), .power_w = NAN, .khz = (double)g, .cpi = NAN};
                jl_rt_policy_signature(&p, &n, &d);
                if (d.set)
                        g = d.khz;
        }
        is_int(g, 3000000, "without power readings min_energy holds the default");
}

/* A memory-bound code: between the default and the probe f_def / (1 + th) its time and power differ by less
 * than the noise of a window (EAR's probe at 2.8 of 3.0 GHz), and the noise happens to bring the two power
 * readings together: a model through the pair is flat and projects the default. The policy sees that the
 * differences are within the noise the signatures report and measures a farther point first. */
static unsigned long run_noisy(jl_rt_policy *p, const machine *x, double p_err, int *ret_bounds,
                               int *ret_windows)
{
        jl_rt_decision d;
        unsigned long f = 3000000;
        int bounds = 0, windows = 0;
        srand(11);
        for (int w = 0; w < 40; w++) {
                double et = 0.001 * ((double)rand() / RAND_MAX * 2 - 1),
                       ep = p_err * ((double)rand() / RAND_MAX * 2 - 1);
                if (f == 3000000 && w == 0)
                        et = -0.001, ep = -1.6 * p_err; /* the reference reads low */
                if (f == 2800000)
                        et = 0.001, ep = 1.6 * p_err; /* the probe reads high */
                jl_rt_sig s = {.tpi_s = m_time(x, (double)f) * (1 + et),
                               .power_w = m_power(x, (double)f) + ep,
                               .khz = (double)f,
                               .cpi = NAN,
                               .gbs = NAN,
                               .gflops = NAN,
                               .tpi_err_s = 0.001 * m_time(x, (double)f),
                               .power_err_w = p_err};
                jl_rt_policy_signature(p, &s, &d);
                if (d.set)
                        f = d.khz;
                if (d.kind && strcmp(d.kind, "bound") == 0)
                        bounds++;
                if (windows == 0 && d.kind && strcmp(d.kind, "frequency") == 0)
                        windows = w + 1; /* holds from here on */
        }
        *ret_bounds = bounds;
        *ret_windows = windows;
        return f;
}

static void test_noisy_probe(void)
{
        const machine kinds[] = {
            /* bottom optimum: the lowest frequency is within the bound and least energy */
            {.c = 1200, .m = 0.0196, .p_static = 60, .p_dyn = 80},
            /* interior optimum: below 1.5 GHz the bound breaks */
            {.c = 6000, .m = 0.018, .p_static = 60, .p_dyn = 80},
            /* high static power: the least energy (1.3 GHz) is above the bound's lowest (1.2 GHz) */
            {.c = 4000, .m = 0.0187, .p_static = 200, .p_dyn = 250},
        };
        const char *names[] = {"bottom", "bound-limited", "interior"};
        for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
                const machine *x = &kinds[k];
                /* the window's noise (its standard error): 1.6 of it each way cancel the difference */
                double p_err = fmax(0.9, (m_power(x, 3000000) - m_power(x, 2800000)) / 3.2);
                /* the premise: through the noisy pair the model is flat and holds the default */
                jl_rt_time_model tm;
                jl_rt_power_model pm;
                unsigned long naive;
                jl_rt_time_fit(3000000, m_time(x, 3000000) * 0.999, 2800000, m_time(x, 2800000) * 1.001,
                               &tm);
                jl_rt_power_fit(3000000, m_power(x, 3000000) - 1.6 * p_err, 2800000,
                                m_power(x, 2800000) + 1.6 * p_err, 800000, 3000000, &pm);
                jl_rt_min_energy_choose(freqs, nfreqs, 3000000, m_time(x, 3000000) * 0.999, 0.1,
                                        JL_RT_POLICY_MARGIN, &tm, &pm, &naive);
                ok(naive == 3000000 && pm.b_w < 0.2 * x->p_dyn,
                   "%s: the two-point fit at the probe is flat (P = %.2f + %.2f s(f)) and projects %lu kHz",
                   names[k], pm.a_w, pm.b_w, naive);

                jl_rt_policy p;
                jl_rt_decision d;
                int bounds, windows;
                jl_rt_policy_init(&p, JL_RT_MIN_ENERGY, 0.1, freqs, nfreqs, 3000000, &d);
                unsigned long f = run_noisy(&p, x, p_err, &bounds, &windows);
                double bound = 1.1 * m_time(x, 3000000);
                ok(m_time(x, (double)f) <= bound, "%s: held %lu kHz within the bound (%.6f <= %.6f)",
                   names[k], f, m_time(x, (double)f), bound);
                unsigned long best = best_within(x, 0.1);
                double e_def = m_energy(x, 3000000), saved = e_def - m_energy(x, (double)f),
                       best_saved = e_def - m_energy(x, (double)best);
                ok(best_saved > 0.05 * e_def && saved >= 0.8 * best_saved,
                   "%s: saves %.2f%%, >= 80%% of the best %.2f%% (%lu kHz)", names[k], saved / e_def * 100,
                   best_saved / e_def * 100, best);
                ok(windows <= 7 && bounds <= 1, "%s: decided within %d windows, %d bound repairs", names[k],
                   windows, bounds);
        }

        /* a clear probe (differences well above the noise) is not probed farther: a compute-bound code */
        machine cpu = {.c = 60000, .m = 0, .p_static = 70, .p_dyn = 80};
        jl_rt_policy p;
        jl_rt_decision d;
        int bounds, windows;
        jl_rt_policy_init(&p, JL_RT_MIN_ENERGY, 0.1, freqs, nfreqs, 3000000, &d);
        unsigned long f = run_noisy(&p, &cpu, 0.3, &bounds, &windows);
        ok(f == 3000000 && bounds == 0, "compute-bound with a clear probe: %lu kHz, %d repairs", f, bounds);
}

static void test_min_time(void)
{
        const machine kinds[] = {
            {.c = 60000, .m = 0, .p_static = 70, .p_dyn = 80},
            {.c = 30000, .m = 0.010, .p_static = 30, .p_dyn = 100},
        };
        const double ths[] = {0.7, 0.5, 0.3};
        for (size_t k = 0; k < 2; k++)
                for (size_t t = 0; t < 3; t++) {
                        jl_rt_policy p;
                        jl_rt_decision d;
                        jl_rt_policy_init(&p, JL_RT_MIN_TIME, ths[t], freqs, nfreqs, 2700000, &d);
                        ok(d.set && d.khz == 2700000, "min_time starts at its start frequency");
                        unsigned long f = run(&p, &kinds[k], 2700000, NULL, NULL, 0);
                        size_t i = jl_rt_freq_index_up(freqs, nfreqs, f);
                        bool came =
                            f == 2700000 || jl_rt_min_time_accept(m_time(&kinds[k], (double)freqs[i - 1]),
                                                                  m_time(&kinds[k], (double)f),
                                                                  (double)freqs[i - 1], (double)f, ths[t]);
                        bool next =
                            i + 1 < nfreqs && jl_rt_min_time_accept(m_time(&kinds[k], (double)f),
                                                                    m_time(&kinds[k], (double)freqs[i + 1]),
                                                                    (double)f, (double)freqs[i + 1], ths[t]);
                        ok(came && !next,
                           "min_time %s th %.1f: %lu kHz satisfies the rule, the next one up does not",
                           k ? "mixed" : "compute", ths[t], f);
                }
}

static void test_monitoring(void)
{
        jl_rt_policy p;
        jl_rt_decision d;
        int sets;
        machine x = {.c = 30000, .m = 0.010, .p_static = 30, .p_dyn = 100};
        jl_rt_policy_init(&p, JL_RT_MONITORING, 0.1, freqs, nfreqs, 3000000, &d);
        ok(!d.set, "monitoring: no first frequency");
        run(&p, &x, 3000000, &sets, NULL, 0.01);
        is_int(sets, 0, "monitoring never sets a frequency");
        is_int(jl_rt_policy_init(&p, JL_RT_MIN_ENERGY, 1.5, freqs, nfreqs, 3000000, &d), -EINVAL,
               "th 1.5: EINVAL");
        is_int(jl_rt_policy_init(&p, JL_RT_MIN_ENERGY, 0.1, freqs, 0, 3000000, &d), -EINVAL,
               "no frequencies: EINVAL");
        jl_rt_policy_kind k;
        ok(jl_rt_policy_parse("min_energy", &k) == 0 && k == JL_RT_MIN_ENERGY, "parse min_energy");
        ok(jl_rt_policy_parse("min-time", &k) == 0 && k == JL_RT_MIN_TIME, "parse min-time");
        is_int(jl_rt_policy_parse("fastest", &k), -EINVAL, "an unknown policy: EINVAL");
}

static void test_phases(void)
{
        jl_rt_sig s = {
            .tpi_s = 0.02, .power_w = 100, .khz = 3000000, .cpi = NAN, .gbs = NAN, .gflops = NAN, .cpus = 4};
        is_str(jl_rt_phase_name(jl_rt_phase_classify(&s, NULL)), "unknown",
               "no counters, no model: unknown");
        jl_rt_time_model tm = {.c_s_khz = 1200, .m_s = 0.0196};
        is_str(jl_rt_phase_name(jl_rt_phase_classify(&s, &tm)), "memory-bound", "model: memory share 98%%");
        tm = (jl_rt_time_model){.c_s_khz = 60000, .m_s = 0};
        is_str(jl_rt_phase_name(jl_rt_phase_classify(&s, &tm)), "cpu-bound", "model: all cycles");
        s.io_mbs = 50;
        is_str(jl_rt_phase_name(jl_rt_phase_classify(&s, &tm)), "io-bound", "50 MB/s of I/O");
        s.io_mbs = 0;
        s.calls_per_s = 50000;
        is_str(jl_rt_phase_name(jl_rt_phase_classify(&s, &tm)), "mpi-bound", "50,000 MPI calls/s");
        s.calls_per_s = 100;
        s.cpi = 0.3, s.gbs = 1, s.gflops = 0.01;
        is_str(jl_rt_phase_name(jl_rt_phase_classify(&s, NULL)), "busy-waiting",
               "CPI 0.3, no bandwidth, no flops");
        s.gflops = 10;
        is_str(jl_rt_phase_name(jl_rt_phase_classify(&s, NULL)), "cpu-bound", "CPI 0.3 with flops");
        s.cpi = 1.5, s.gbs = 150;
        is_str(jl_rt_phase_name(jl_rt_phase_classify(&s, NULL)), "memory-bound", "CPI 1.5, 150 GB/s");
        s.gpu_busy = true;
        is_str(jl_rt_phase_name(jl_rt_phase_classify(&s, NULL)), "cpu-waiting-gpu", "the GPUs compute");

        /* IO-bound: min_energy tries the lowest frequency at once, and measures it */
        jl_rt_policy p;
        jl_rt_decision d;
        jl_rt_policy_init(&p, JL_RT_MIN_ENERGY, 0.1, freqs, nfreqs, 3000000, &d);
        jl_rt_sig io = {.tpi_s = 0.02,
                        .power_w = 100,
                        .khz = 3000000,
                        .cpi = NAN,
                        .gbs = NAN,
                        .gflops = NAN,
                        .io_mbs = 200};
        jl_rt_policy_signature(&p, &io, &d);
        ok(d.set && d.khz == 800000 && strcmp(d.kind, "phase") == 0, "io-bound: the lowest frequency");
        io.khz = 800000;
        io.tpi_s = 0.021;
        io.power_w = 70;
        jl_rt_policy_signature(&p, &io, &d);
        ok(!d.set && strcmp(d.kind, "frequency") == 0, "measured within the bound: holds it");
}

static const char *table[16][2];
static const char *tget(const char *name)
{
        for (int i = 0; i < 16 && table[i][0]; i++)
                if (strcmp(table[i][0], name) == 0)
                        return table[i][1];
        return NULL;
}

static void test_config(void)
{
        jl_rt_config c;
        char why[1024];
        memset(table, 0, sizeof(table));
        is_int(jl_rt_config_parse(tget, &c, why, sizeof(why)), 0, "no settings: all defaults");
        ok(c.policy == JL_RT_MONITORING && c.th == 0.05 && c.cpufreq_khz == 0 && c.window_ms == 10000,
           "monitoring, th 0.05, nominal frequency, 10 s windows");
        table[0][0] = "JOULE_POLICY", table[0][1] = "min_time";
        is_int(jl_rt_config_parse(tget, &c, why, sizeof(why)), 0, "min_time");
        is_near(c.th, 0.7, 0, "min_time's default th 0.7");
        table[0][1] = "turbo";
        table[1][0] = "JOULE_POLICY_TH", table[1][1] = "1.5";
        table[2][0] = "JOULE_CPUFREQ", table[2][1] = "2.4GHz";
        table[3][0] = "JOULE_WINDOW_MS", table[3][1] = "-5";
        is_int(jl_rt_config_parse(tget, &c, why, sizeof(why)), 4, "four bad values");
        ok(c.policy == JL_RT_MONITORING && c.th == 0.05 && c.cpufreq_khz == 0 && c.window_ms == 10000,
           "bad values: the defaults");
        ok(strstr(why, "JOULE_POLICY=\"turbo\" is not a policy") && strstr(why, "JOULE_POLICY_TH=\"1.5\"") &&
               strstr(why, "JOULE_CPUFREQ=\"2.4GHz\" is not a frequency") &&
               strstr(why, "JOULE_WINDOW_MS=\"-5\""),
           "each bad value is named: %s", why);
        table[0][1] = "min_energy", table[1][1] = "0.2", table[2][1] = "2400000", table[3][1] = "500";
        table[4][0] = "JOULE_TAG", table[4][1] = "run-7";
        is_int(jl_rt_config_parse(tget, &c, why, sizeof(why)), 0, "good values");
        ok(c.policy == JL_RT_MIN_ENERGY && c.th == 0.2 && c.cpufreq_khz == 2400000 && c.window_ms == 500 &&
               strcmp(c.tag, "run-7") == 0,
           "min_energy th 0.2 at 2.4 GHz, 500 ms windows, tag");
}

static void test_counters(void)
{
        jl_rt_counters c = {.fd_cycles = -1, .fd_instr = -1};
        jl_rt_counts a, b;
        jl_rt_counters_read(&c, &a);
        jl_rt_counters_read(NULL, &b);
        ok(!a.valid && !b.valid, "absent counters read as invalid");
        ok(isnan(jl_rt_counts_cpi(&a, &b)), "CPI without counters: NAN (null), never a guess");
        int r = jl_rt_counters_open(&c);
        if (r < 0) {
                ok(c.fd_cycles == -1 && c.fd_instr == -1, "no perf counters here (%s): none open",
                   strerror(-r));
                jl_rt_counters_read(&c, &a);
                ok(!a.valid, "and reads are invalid");
                jl_rt_counters_close(&c); /* the FLOP and memory groups may have opened */
        } else {
                jl_rt_counters_read(&c, &a);
                volatile double x = 1;
                for (int i = 0; i < 1000000; i++)
                        x = x * 1.0000001 + 1e-9;
                jl_rt_counters_read(&c, &b);
                double cpi = jl_rt_counts_cpi(&a, &b);
                ok(cpi > 0 && cpi < 100, "perf counters: CPI %.3f", cpi);
                jl_rt_counters_close(&c);
                ok(c.fd_cycles == -1, "closed");
        }
}

/* The phases' rows with GB/s and GFLOPS known (docs/policies.md, EAR's thresholds), and signatures made
 * from counts as the runtime makes them. */
static const char *phase_of(const jl_rt_sig *s, const jl_rt_time_model *tm)
{
        return jl_rt_phase_name(jl_rt_phase_classify(s, tm));
}

static void test_phases_counters(void)
{
        jl_rt_time_model mem = {.c_s_khz = 1200, .m_s = 0.0196}, cpu = {.c_s_khz = 60000, .m_s = 0};
        jl_rt_sig s = {.tpi_s = 0.02, .power_w = 100, .khz = 3000000, .cpus = 4, .fp_cpus = 4};

        /* busy-waiting: CPI < 0.4, GB/s per CPU < 3, GFLOPS per CPU < 0.1, all three needed */
        s.cpi = 0.3, s.gbs = 8, s.gflops = 0.2;
        is_str(phase_of(&s, NULL), "busy-waiting", "CPI 0.3, 2 GB/s and 0.05 GFLOPS per CPU: busy-waiting");
        s.gbs = 16;
        is_str(phase_of(&s, NULL), "cpu-bound", "4 GB/s per CPU: not busy-waiting; < 30 GB/s: cpu-bound");
        s.gbs = 8, s.gflops = 0.8;
        is_str(phase_of(&s, NULL), "cpu-bound", "0.2 GFLOPS per CPU: not busy-waiting");
        s.gflops = NAN;
        is_str(phase_of(&s, NULL), "cpu-bound", "GFLOPS unknown: never busy-waiting");
        s.gflops = 0, s.gbs = NAN;
        is_str(phase_of(&s, NULL), "cpu-bound", "GB/s unknown: never busy-waiting");
        /* GFLOPS are the node master's process's: per CPU of that process, not of the step */
        s.cpus = 16, s.gbs = 2, s.gflops = 0.4, s.fp_cpus = 1;
        is_str(phase_of(&s, NULL), "cpu-bound", "one rank's 0.4 GFLOPS on its one CPU of 16: computing");
        s.fp_cpus = 0;
        is_str(phase_of(&s, NULL), "busy-waiting", "without its CPUs the step's are used: 0.025 per CPU");
        s.cpus = 4, s.fp_cpus = 4;

        /* memory-bound: CPI > 0.8 and > 100 GB/s where known */
        s.cpi = 1.5, s.gflops = 1, s.gbs = 150;
        is_str(phase_of(&s, &cpu), "memory-bound", "CPI 1.5, 150 GB/s: memory-bound (the counters decide)");
        s.gbs = NAN;
        is_str(phase_of(&s, &cpu), "memory-bound", "CPI 1.5, GB/s unknown: memory-bound");
        s.gbs = 50;
        is_str(phase_of(&s, NULL), "unknown", "CPI 1.5, 50 GB/s: neither row; no model: unknown");
        is_str(phase_of(&s, &mem), "memory-bound", "and with a model: its memory share");
        is_str(phase_of(&s, &cpu), "cpu-bound", "or its clock share");
        s.cpi = 0.8, s.gbs = 150;
        is_str(phase_of(&s, NULL), "unknown", "CPI 0.8 is not above 0.8");

        /* CPU-bound: CPI < 0.6 and < 30 GB/s where known */
        s.cpi = 0.5, s.gbs = 20;
        is_str(phase_of(&s, &mem), "cpu-bound", "CPI 0.5, 20 GB/s: cpu-bound (the counters decide)");
        s.gbs = NAN;
        is_str(phase_of(&s, &mem), "cpu-bound", "CPI 0.5, GB/s unknown: cpu-bound");
        s.gbs = 40;
        is_str(phase_of(&s, NULL), "unknown", "CPI 0.5 but 40 GB/s: not cpu-bound");
        is_str(phase_of(&s, &mem), "memory-bound", "the model decides");

        /* from counts, as manage.c makes a signature: 0.1 s, 20 GB moved, CPI 1.2 */
        jl_rt_counts a = {
            .cycles = 0, .instructions = 0, .valid = true, .mem_valid = true, .fp_valid = true};
        jl_rt_counts b = {.cycles = 1200000000,
                          .instructions = 1000000000,
                          .mem_bytes = 20e9,
                          .flops = 1e8,
                          .valid = true,
                          .mem_valid = true,
                          .fp_valid = true};
        jl_rt_sig c = {.tpi_s = 0.1,
                       .khz = 3000000,
                       .cpi = jl_rt_counts_cpi(&a, &b),
                       .gbs = jl_rt_counts_gbs(&a, &b, 0.1),
                       .gflops = jl_rt_counts_gflops(&a, &b, 0.1),
                       .cpus = 4,
                       .fp_cpus = 4};
        is_near(c.gbs, 200, 1e-9, "200 GB/s from the counts");
        is_near(c.gflops, 1, 1e-12, "1 GFLOPS");
        is_near(jl_rt_counts_tpi(&a, &b), 20e9 / 64 / 1e9, 1e-12, "TPI 0.3125");
        is_str(phase_of(&c, &cpu), "memory-bound", "CPI 1.2 and 200 GB/s: memory-bound");
        b.mem_valid = false;
        c.gbs = jl_rt_counts_gbs(&a, &b, 0.1);
        ok(isnan(c.gbs), "without the memory counters GB/s is NAN");
        is_str(phase_of(&c, &cpu), "memory-bound", "and CPI alone decides");
}

int main(void)
{
        for (unsigned long f = 800000; f <= 3000000; f += 100000)
                freqs[nfreqs++] = f;
        test_model();
        test_min_energy();
        test_bound_repair();
        test_noisy_probe();
        test_min_time();
        test_monitoring();
        test_phases();
        test_phases_counters();
        test_config();
        test_counters();
        printf("1..%d\n", tap_n);
        return tap_failed ? 1 : 0;
}
