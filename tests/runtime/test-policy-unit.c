/* test-policy-unit.c - the policies' logic with synthetic signatures: the time and power model (fit,
 * projection), min_energy's choice, its bound (measured after every change, repaired by stepping back up,
 * the reference always at the default frequency: EAR's issue #5; a probe within the noise measured
 * farther), min_time's rule, monitoring, the phase
 * classification, the JOULE_* settings with bad values, and the counters' null path; the CPU waiting while
 * the GPUs compute (GPU utilisation and the CPU side), and min_energy on such a code. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "counters.h"
#include "manage.h"
#include "model.h"
#include "node.h"
#include "policy.h"
#include "tap.h"
#include "userfile.h"

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

/* min_energy on a machine whose GPUs are utilised at util: each window's gpu_busy as manage.c fills it (the
 * policy's time model once it has one). Returns the frequency it holds; the first decision's kind and the
 * phase of the last window in *ret_first / *ret_phase, bound repairs in *ret_bounds. */
static unsigned long run_gpu(jl_rt_policy *p, const machine *x, double util, const char **ret_first,
                             jl_rt_phase *ret_phase, int *ret_bounds)
{
        jl_rt_decision d;
        unsigned long f = p->def_khz;
        int bounds = 0;
        *ret_first = NULL;
        for (int w = 0; w < 40; w++) {
                jl_rt_sig s = {.tpi_s = m_time(x, (double)f),
                               .power_w = m_power(x, (double)f),
                               .khz = (double)f,
                               .cpi = NAN,
                               .gbs = NAN,
                               .gflops = NAN,
                               .cpus = 4};
                const jl_rt_time_model *tm = p->have_tm ? &p->tm : NULL;
                s.gpu_busy = jl_rt_gpu_busy(util, &s, tm);
                *ret_phase = jl_rt_phase_classify(&s, tm);
                jl_rt_policy_signature(p, &s, &d);
                if (w == 0)
                        *ret_first = d.kind;
                if (d.set)
                        f = d.khz;
                if (d.kind && strcmp(d.kind, "bound") == 0)
                        bounds++;
        }
        *ret_bounds = bounds;
        return f;
}

static void test_gpu_wait(void)
{
        jl_rt_sig s = {
            .tpi_s = 0.02, .power_w = 100, .khz = 3000000, .cpi = NAN, .gbs = NAN, .gflops = NAN, .cpus = 4};
        jl_rt_time_model waits = {.c_s_khz = 0, .m_s = 0.02}, computes = {.c_s_khz = 60000, .m_s = 0};
        ok(!jl_rt_gpu_busy(NAN, &s, NULL), "GPU utilisation unknown (no GPU, no NVML): not busy");
        ok(!jl_rt_gpu_busy(0.3, &s, &waits), "GPUs 30%% utilised: under the threshold, not busy");
        ok(!jl_rt_gpu_busy(0.49, &s, NULL), "GPUs 49%% utilised: not busy");
        ok(jl_rt_gpu_busy(0.5, &s, &waits), "GPUs 50%% utilised, the time does not scale: the CPU waits");
        ok(!jl_rt_gpu_busy(0.95, &s, &computes),
           "GPUs 95%% utilised but every cycle scales: the CPU computes too, not waiting");
        ok(jl_rt_gpu_busy(0.95, &s, NULL),
           "GPUs busy, no model, no counters: counts as waiting (to be measured)");
        s.cpi = 0.3, s.gbs = 1, s.gflops = 0.01;
        ok(jl_rt_gpu_busy(0.95, &s, NULL), "GPUs busy, counters show a busy-waiting CPU");
        s.gflops = 40;
        ok(!jl_rt_gpu_busy(0.95, &s, NULL), "GPUs busy, counters show the CPU computing: not waiting");
        s.cpi = NAN, s.gbs = NAN, s.gflops = NAN;
        s.gpu_busy = jl_rt_gpu_busy(0.95, &s, &waits);
        is_str(jl_rt_phase_name(jl_rt_phase_classify(&s, &waits)), "cpu-waiting-gpu",
               "GPUs busy and the CPU waits: cpu-waiting-gpu");
        s.gpu_busy = jl_rt_gpu_busy(0.0, &s, &waits);
        is_str(jl_rt_phase_name(jl_rt_phase_classify(&s, &waits)), "memory-bound",
               "the same time model with idle GPUs: memory-bound, not GPU-wait");

        /* A code whose iteration waits for the GPU: its time does not depend on the CPU clock, its power
         * does. min_energy goes to the lowest frequency at once, measures it and holds it within the bound.
         */
        machine gw = {.c = 0, .m = 0.02, .p_static = 60, .p_dyn = 60};
        jl_rt_policy p;
        jl_rt_decision d;
        const char *first;
        jl_rt_phase ph;
        int bounds;
        jl_rt_policy_init(&p, JL_RT_MIN_ENERGY, 0.1, freqs, nfreqs, 3000000, &d);
        unsigned long f = run_gpu(&p, &gw, 0.95, &first, &ph, &bounds);
        is_str(first, "phase", "gpu-wait: the first decision is the phase's");
        is_int((long)f, 800000, "gpu-wait: holds the lowest frequency");
        is_int(bounds, 0, "gpu-wait: the bound held");
        ok(m_time(&gw, (double)f) <= 1.1 * m_time(&gw, 3000000), "gpu-wait: time within the bound");
        ok(m_energy(&gw, (double)f) < 0.9 * m_energy(&gw, 3000000), "gpu-wait: energy saved");
        is_str(jl_rt_phase_name(ph), "cpu-waiting-gpu", "gpu-wait: still classified with the fitted model");

        /* the same code with idle GPUs: never GPU-wait; min_energy probes and models as for any code */
        jl_rt_policy_init(&p, JL_RT_MIN_ENERGY, 0.1, freqs, nfreqs, 3000000, &d);
        f = run_gpu(&p, &gw, 0.0, &first, &ph, &bounds);
        is_str(first, "policy", "idle GPUs: the first decision is the probe, not a phase");
        ok(ph != JL_RT_PHASE_GPU_WAIT, "idle GPUs: not GPU-wait (%s)", jl_rt_phase_name(ph));
        ok(m_time(&gw, (double)f) <= 1.1 * m_time(&gw, 3000000), "idle GPUs: time within the bound");

        /* GPUs busy but the CPU computes (every cycle scales): the lowest frequency breaks the bound; the
         * repair projects the time through the two points and goes straight to the lowest frequency within
         * it */
        machine cb = {.c = 60000, .m = 0, .p_static = 60, .p_dyn = 60};
        jl_rt_policy_init(&p, JL_RT_MIN_ENERGY, 0.1, freqs, nfreqs, 3000000, &d);
        f = run_gpu(&p, &cb, 0.95, &first, &ph, &bounds);
        is_str(first, "phase", "GPUs busy, CPU-bound: the lowest frequency is tried (no model yet)");
        is_int(bounds, 1, "GPUs busy, CPU-bound: one repair");
        ok(m_time(&cb, (double)f) <= 1.1 * m_time(&cb, 3000000) * (1 + JL_RT_POLICY_TOL),
           "GPUs busy, CPU-bound: %lu kHz, time within the bound", f);
        ok(f >= 2800000, "GPUs busy, CPU-bound: back up near the default (%lu kHz)", f);
        ok(ph != JL_RT_PHASE_GPU_WAIT, "GPUs busy, CPU-bound: with the model, not GPU-wait (%s)",
           jl_rt_phase_name(ph));
}

/* The step's GPUs chosen by selection (node.h) among a page's GPUs. */
static jl_rt_gpus gsel(const jl_shm_page *pg, const char *step, const char *job, const char *cuda,
                       const char *order)
{
        jl_rt_gpu_env env = {.step_gpus = step, .job_gpus = job, .cuda_visible = cuda, .cuda_order = order};
        jl_rt_gpus g;
        memset(&g, 0xa5, sizeof(g)); /* every field must be written */
        jl_rt_gpus_select(&env, pg, &g);
        return g;
}

static bool gsel_is(jl_rt_gpus g, uint64_t mask, const char *source)
{
        if (!g.all && g.mask != mask)
                printf("#   mask %#" PRIx64 " (all %d), want %#" PRIx64 "; note: %s\n", g.mask, g.all, mask,
                       g.note);
        return !g.all && g.mask == mask &&
               (source ? g.source && strcmp(g.source, source) == 0 : g.source == NULL);
}

static void gpage_add(jl_shm_page *pg, unsigned idx, int minor, const char *uuid, const char *pci)
{
        jl_shm_domain *d = &pg->domains[pg->ndomains++];
        snprintf(d->name, sizeof(d->name), "gpu-%u", idx);
        d->gpu_minor = minor;
        snprintf(d->gpu_uuid, sizeof(d->gpu_uuid), "%s", uuid);
        snprintf(d->gpu_pci, sizeof(d->gpu_pci), "%s", pci);
}

#define U0 "GPU-aaaa1111-0b7d-4c1e-9a53-1d2e3f4a5b60"
#define U1 "GPU-aaaa2222-0b7d-4c1e-9a53-1d2e3f4a5b61"
#define U2 "GPU-bbbb3333-0b7d-4c1e-9a53-1d2e3f4a5b62"
#define U3 "GPU-cccc4444-0b7d-4c1e-9a53-1d2e3f4a5b63"

/* Slurm's node-global ids (minor numbers), CUDA_VISIBLE_DEVICES as CUDA reads it (UUIDs, prefixes, MIG,
 * indices in PCI or NVML order), and the step's GPUs' utilisation read from a page laid out as jouled writes
 * it (src/proto/shm.h). */
static void test_gpu_select(void)
{
        jl_shm_page *node = calloc(1, sizeof(*node));
        if (!node)
                return;
        /* four GPUs whose minor numbers, NVML indices and PCI order all differ:
         * NVML index  minor  PCI bus   (PCI order: gpu-2, gpu-1, gpu-0, gpu-3) */
        snprintf(node->domains[node->ndomains++].name, sizeof(node->domains[0].name), "package-0");
        gpage_add(node, 0, 2, U0, "00000000:81:00.0");
        gpage_add(node, 1, 0, U1, "00000000:3B:00.0");
        gpage_add(node, 2, 3, U2, "00000000:1a:00.0");
        gpage_add(node, 3, 1, U3, "00000000:C1:00.0");
        jl_rt_gpus g = gsel(node, NULL, NULL, NULL, NULL);
        ok(g.all && !g.source && !g.note[0], "nothing set: every GPU of the node");
        char list[64];

        /* Slurm: minor numbers, before CUDA_VISIBLE_DEVICES (relative to the job's cgroup) */
        g = gsel(node, "1", NULL, NULL, NULL);
        ok(gsel_is(g, 1u << 3, "SLURM_STEP_GPUS"), "SLURM_STEP_GPUS=1: the GPU with minor 1, NVML's gpu-3");
        jl_rt_gpus_format(&g, list, sizeof(list));
        is_str(list, "gpu-3", "formatted");
        ok(gsel_is(gsel(node, "0,2", NULL, "0,1", NULL), 3, "SLURM_STEP_GPUS"),
           "SLURM_STEP_GPUS=0,2 with CUDA_VISIBLE_DEVICES=0,1 (relative): minors 0 and 2, gpu-1 and gpu-0");
        ok(gsel_is(gsel(node, "3", "0,1,2,3", "0", "PCI_BUS_ID"), 1u << 2, "SLURM_STEP_GPUS"),
           "SLURM_STEP_GPUS before SLURM_JOB_GPUS and CUDA_VISIBLE_DEVICES");
        ok(gsel_is(gsel(node, NULL, "2", "1", NULL), 1, "SLURM_JOB_GPUS"), "SLURM_JOB_GPUS=2: gpu-0");
        ok(gsel_is(gsel(node, " ", "3", NULL, NULL), 1u << 2, "SLURM_JOB_GPUS"),
           "an empty SLURM_STEP_GPUS counts as unset");
        ok(gsel_is(gsel(node, "1-2", NULL, NULL, NULL), 9, "SLURM_STEP_GPUS"), "a range 1-2: gpu-3, gpu-0");
        g = gsel(node, "x,1,9, -1", NULL, NULL, NULL);
        ok(gsel_is(g, 1u << 3, "SLURM_STEP_GPUS") && strstr(g.note, "\"x\"") && strstr(g.note, "id 9"),
           "garbage and unknown Slurm ids are ignored, said so (%s)", g.note);
        ok(gsel_is(gsel(node, "garbage", NULL, "0", NULL), 0, "SLURM_STEP_GPUS"),
           "only garbage in SLURM_STEP_GPUS: no GPU (CUDA_VISIBLE_DEVICES not consulted)");
        ok(gsel_is(gsel(NULL, "1", NULL, NULL, NULL), 0, "SLURM_STEP_GPUS"), "no page: no GPU to match");

        /* CUDA_VISIBLE_DEVICES: UUIDs and unique prefixes */
        ok(gsel_is(gsel(node, NULL, NULL, U2, NULL), 1u << 2, "CUDA_VISIBLE_DEVICES"), "a full UUID: gpu-2");
        ok(gsel_is(gsel(node, NULL, NULL, "GPU-bbbb", NULL), 1u << 2, "CUDA_VISIBLE_DEVICES"),
           "a unique prefix GPU-bbbb: gpu-2");
        ok(gsel_is(gsel(node, NULL, NULL, " GPU-CCCC4444 , " U1, NULL), 0xa, "CUDA_VISIBLE_DEVICES"),
           "a prefix in capitals and a UUID, with blanks: gpu-3 and gpu-1");
        g = gsel(node, NULL, NULL, "GPU-aaaa", NULL);
        ok(gsel_is(g, 0, "CUDA_VISIBLE_DEVICES") && strstr(g.note, "several"),
           "an ambiguous prefix: nothing (%s)", g.note);
        ok(gsel_is(gsel(node, NULL, NULL, "GPU-cccc,GPU-aaaa,GPU-bbbb", NULL), 1u << 3,
                   "CUDA_VISIBLE_DEVICES"),
           "the list ends at the ambiguous prefix");
        ok(gsel_is(gsel(node, NULL, NULL, "GPU-dddd,GPU-bbbb", NULL), 0, "CUDA_VISIBLE_DEVICES"),
           "an unknown UUID ends the list");
        ok(gsel_is(gsel(node, NULL, NULL, "GPU-", NULL), 0, "CUDA_VISIBLE_DEVICES"),
           "\"GPU-\" alone: nothing");
        /* MIG */
        ok(gsel_is(gsel(node, NULL, NULL, "MIG-" U1 "/1/0", NULL), 2, "CUDA_VISIBLE_DEVICES"),
           "MIG-GPU-<uuid>/1/0: its parent gpu-1");
        g = gsel(node, NULL, NULL, "MIG-0c1d2e3f-4a5b-6c7d-8e9f-0a1b2c3d4e5f", NULL);
        ok(g.all && strstr(g.note, "MIG"), "a MIG id the page cannot place: every GPU, said so (%s)",
           g.note);
        /* MIG-<uuid> (R470 and later): the instances jouled lists under their GPU (shm.h, version 4) */
#define M0 "MIG-0c1d2e3f-4a5b-6c7d-8e9f-0a1b2c3d4e5f"
#define M1 "MIG-0c1d2e3f-4a5b-6c7d-8e9f-0a1b2c3d4e60"
#define M2 "MIG-9f8e7d6c-4a5b-6c7d-8e9f-0a1b2c3d4e61"
        snprintf(node->domains[1].gpu_mig, sizeof(node->domains[1].gpu_mig), "%s,%s", M2, M1); /* gpu-0 */
        snprintf(node->domains[4].gpu_mig, sizeof(node->domains[4].gpu_mig), "%s", M0);        /* gpu-3 */
        g = gsel(node, NULL, NULL, M0, NULL);
        ok(gsel_is(g, 1u << 3, "CUDA_VISIBLE_DEVICES") && strstr(g.note, "MIG instance"),
           "MIG-<uuid> listed under gpu-3: gpu-3, said so (%s)", g.note);
        ok(gsel_is(gsel(node, NULL, NULL, M1, NULL), 1u << 0, "CUDA_VISIBLE_DEVICES"),
           "the second instance listed under gpu-0: gpu-0");
        ok(gsel_is(gsel(node, NULL, NULL, "mig-9F8E7D6C," M0, NULL), 9, "CUDA_VISIBLE_DEVICES"),
           "a unique prefix in other case, then a full UUID: gpu-0 and gpu-3");
        g = gsel(node, NULL, NULL, "MIG-0c1d2e3f", NULL);
        ok(gsel_is(g, 0, "CUDA_VISIBLE_DEVICES") && strstr(g.note, "several"),
           "a prefix of two instances on two GPUs: nothing (%s)", g.note);
        g = gsel(node, NULL, NULL, "MIG-77777777-4a5b-6c7d-8e9f-0a1b2c3d4e5f", NULL);
        ok(g.all && strstr(g.note, "does not list"),
           "an instance not listed (MIG set up again since jouled started): every GPU, said so");
        node->domains[1].gpu_mig[0] = node->domains[4].gpu_mig[0] = '\0';
        /* indices */
        ok(gsel_is(gsel(node, NULL, NULL, "0", "PCI_BUS_ID"), 1, "CUDA_VISIBLE_DEVICES"),
           "CUDA_DEVICE_ORDER=PCI_BUS_ID: index 0 is NVML's gpu-0");
        ok(gsel_is(gsel(node, NULL, NULL, "0", NULL), 1u << 2, "CUDA_VISIBLE_DEVICES"),
           "default order: index 0 is the lowest PCI bus id, gpu-2");
        ok(gsel_is(gsel(node, NULL, NULL, "1,0", "FASTEST_FIRST"), 6, "CUDA_VISIBLE_DEVICES"),
           "FASTEST_FIRST taken as PCI order: 1,0 are gpu-1, gpu-2");
        ok(gsel_is(gsel(node, NULL, NULL, "3", NULL), 1u << 3, "CUDA_VISIBLE_DEVICES"),
           "default order: index 3 is gpu-3 (the highest bus id)");
        ok(gsel_is(gsel(node, NULL, NULL, "2,x,1", NULL), 1, "CUDA_VISIBLE_DEVICES"),
           "\"2,x,1\": the list ends at the invalid entry, as CUDA's does");
        ok(gsel_is(gsel(node, NULL, NULL, "4,0", "PCI_BUS_ID"), 0, "CUDA_VISIBLE_DEVICES"),
           "an index beyond the node's GPUs ends the list");
        ok(gsel_is(gsel(node, NULL, NULL, "", NULL), 0, "CUDA_VISIBLE_DEVICES"), "\"\": no GPU");
        ok(gsel_is(gsel(node, NULL, NULL, "NoDevFiles", NULL), 0, "CUDA_VISIBLE_DEVICES"),
           "\"NoDevFiles\" (Slurm, no GPU allocated): no GPU");
        ok(gsel_is(gsel(node, NULL, NULL, "99999999999999999999999", NULL), 0, "CUDA_VISIBLE_DEVICES"),
           "an index that overflows: no GPU");

        /* a page whose NVML could not tell minors, UUIDs or PCI ids */
        for (uint32_t i = 1; i < node->ndomains; i++) {
                node->domains[i].gpu_minor = -1;
                node->domains[i].gpu_uuid[0] = node->domains[i].gpu_pci[0] = '\0';
        }
        g = gsel(node, "1", NULL, NULL, NULL);
        ok(gsel_is(g, 2, "SLURM_STEP_GPUS") && strstr(g.note, "minor"),
           "no minors on the page: Slurm's ids as NVML indices, said so (%s)", g.note);
        g = gsel(node, NULL, NULL, "GPU-aaaa", NULL);
        ok(g.all && strstr(g.note, "UUID"), "no UUIDs on the page: every GPU, said so (%s)", g.note);
        ok(gsel_is(gsel(node, NULL, NULL, "0", NULL), 1, "CUDA_VISIBLE_DEVICES"),
           "no PCI ids on the page: indices in NVML's order");
        free(node);

        jl_shm_page *pg = calloc(1, sizeof(*pg));
        if (!pg)
                return;
        pg->magic = JL_SHM_MAGIC;
        pg->version = JL_SHM_VERSION;
        pg->size = sizeof(*pg);
        pg->jouled_pid = 42;
        pg->ndomains = 4;
        snprintf(pg->domains[0].name, sizeof(pg->domains[0].name), "package-0");
        for (int i = 0; i < 3; i++) {
                jl_shm_domain *d = &pg->domains[1 + i];
                snprintf(d->name, sizeof(d->name), "gpu-%d", i);
                d->flags = JL_SHM_UTIL;
                d->util_cover_s = 10;
                d->util_gpu_s = 1.0 * i; /* 0, 10 %, 20 % so far */
        }
        jl_rt_shm shm = {.page = pg, .len = sizeof(*pg)};
        jl_rt_gpu_util a, b;
        g = gsel(pg, NULL, NULL, "2", "PCI_BUS_ID");
        is_int(jl_rt_shm_gpu_util(&shm, &g, &a), 0, "GPU 2's utilisation is on the page");
        is_int(a.ngpus, 1, "one GPU");
        pg->domains[3].util_gpu_s += 0.9 * 5; /* 5 s at 90 % */
        pg->domains[3].util_cover_s += 5;
        pg->domains[2].util_cover_s += 5; /* GPU 1 idle meanwhile */
        is_int(jl_rt_shm_gpu_util(&shm, &g, &b), 0, "read again");
        is_near(jl_rt_gpu_util_mean(&a, &b), 0.9, 1e-9, "GPU 2: 90 %% busy over the window");
        g = gsel(pg, NULL, NULL, "1,2", "PCI_BUS_ID");
        pg->domains[2].util_cover_s -= 5, pg->domains[3].util_cover_s -= 5, pg->domains[3].util_gpu_s -= 4.5;
        jl_rt_shm_gpu_util(&shm, &g, &a);
        pg->domains[2].util_cover_s += 5, pg->domains[3].util_cover_s += 5, pg->domains[3].util_gpu_s += 4.5;
        jl_rt_shm_gpu_util(&shm, &g, &b);
        is_near(jl_rt_gpu_util_mean(&a, &b), 0.45, 1e-9, "GPUs 1 and 2: their mean, 45 %%");
        b.jouled_pid = 43;
        ok(isnan(jl_rt_gpu_util_mean(&a, &b)), "another jouled between the readings: unknown");
        g = gsel(pg, NULL, NULL, "5", "PCI_BUS_ID");
        is_int(jl_rt_shm_gpu_util(&shm, &g, &a), -ENODATA, "a GPU the page does not know: -ENODATA");
        pg->domains[1].flags = pg->domains[2].flags = pg->domains[3].flags = 0;
        g = gsel(pg, NULL, NULL, NULL, NULL);
        is_int(jl_rt_shm_gpu_util(&shm, &g, &a), -ENODATA, "GPUs without utilisation (no NVML): -ENODATA");
        free(pg);
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
        ok(c.learning == -1 && c.report_path[0] == '\0', "no learning run, no report file by default");
        memset(table, 0, sizeof(table));
        table[0][0] = "JOULE_LEARNING", table[0][1] = "64";
        table[1][0] = "JOULE_REPORT", table[1][1] = "/tmp/mine";
        is_int(jl_rt_config_parse(tget, &c, why, sizeof(why)), 1, "JOULE_LEARNING=64 is bad");
        ok(c.learning == -1 && strstr(why, "JOULE_LEARNING=\"64\" is not a P-state"), "and named: %s", why);
        ok(strcmp(c.report_path, "/tmp/mine") == 0, "JOULE_REPORT kept");
        table[0][1] = "x3";
        is_int(jl_rt_config_parse(tget, &c, why, sizeof(why)), 1, "JOULE_LEARNING=x3 is bad");
        table[0][1] = "3";
        is_int(jl_rt_config_parse(tget, &c, why, sizeof(why)), 0, "JOULE_LEARNING=3");
        is_int(c.learning, 3, "a learning run at P-state 3");
        static char longpath[5000];
        memset(longpath, 'a', sizeof(longpath) - 1);
        table[1][1] = longpath;
        is_int(jl_rt_config_parse(tget, &c, why, sizeof(why)), 1, "a JOULE_REPORT path that is too long");
        ok(c.report_path[0] == '\0' && strstr(why, "JOULE_REPORT"), "no report file, named: %.80s", why);
}

static void test_userfile(void)
{
        char dir[] = "/tmp/jl-userfile-XXXXXX";
        if (!mkdtemp(dir)) {
                ok(0, "mkdtemp");
                return;
        }
        char base[256], path[300], why[256];
        snprintf(base, sizeof(base), "%s/mine", dir);
        jl_rt_userfile f;
        setenv("JOULE_JOB_ID", "42", 1);
        setenv("JOULE_STEP_ID", "3", 1);
        is_int(jl_rt_userfile_open(&f, base, "n1", why, sizeof(why)), 0, "open PATH.n1.csv");
        jl_rt_app_record a = {.policy_th = 0.1,
                              .time_s = 2.5,
                              .energy_j = 500,
                              .avg_power_w = 200,
                              .pck_power_w = NAN,
                              .dram_power_w = NAN,
                              .avg_cpufreq_khz = 2000000,
                              .def_cpufreq_khz = 2400000,
                              .cpi = NAN,
                              .tpi = NAN,
                              .gbs = NAN,
                              .gflops = NAN};
        snprintf(a.app_name, sizeof(a.app_name), "my,app");
        snprintf(a.policy, sizeof(a.policy), "min_energy");
        is_int(jl_rt_userfile_event(&f, "phase", 2, "said \"CPU bound\", then\nmore"), 0, "an event");
        is_int(jl_rt_userfile_app(&f, &a), 0, "the application");
        jl_rt_userfile_close(&f);
        is_int(jl_rt_userfile_open(&f, base, "n1", why, sizeof(why)), 0, "open again: appends");
        jl_rt_loop_record l = {.iterations = 7,
                               .time_per_iteration_s = 0.25,
                               .avg_power_w = 190,
                               .cpi = NAN,
                               .tpi = NAN,
                               .gbs = NAN,
                               .gflops = NAN};
        snprintf(l.loop_key, sizeof(l.loop_key), "0000abcd:4:0");
        is_int(jl_rt_userfile_loop(&f, &l), 0, "a loop");
        jl_rt_userfile_close(&f);
        is_int(jl_rt_userfile_loop(&f, &l), -EBADF, "closed: -EBADF");
        snprintf(path, sizeof(path), "%s.n1.csv", base);
        FILE *in = fopen(path, "r");
        char buf[4096] = "";
        size_t n = in ? fread(buf, 1, sizeof(buf) - 1, in) : 0;
        buf[n] = '\0';
        if (in)
                fclose(in);
        const char *hdr = "record,time,job_id,step_id,node,name,";
        ok(strncmp(buf, hdr, strlen(hdr)) == 0, "the header first, once");
        ok(strstr(buf + 1, "record,time") == NULL, "no second header when appending");
        ok(strstr(buf, ",42,3,n1,phase,,,,,,,,,,,,,,,,,2,\"said \"\"CPU bound\"\", then\nmore\"\n") != NULL,
           "the event: job, step, node, kind, value, its message quoted as RFC 4180 says");
        ok(strstr(buf, ",42,3,n1,\"my,app\",min_energy,0.1,,2.5,,500,200,,,2000000,2400000,,,,,,,\n") !=
               NULL,
           "the application: unknowns empty, a comma in the name quoted");
        ok(strstr(buf, "n1,0000abcd:4:0,,,7,,0.25,,190,,,,,,,,,,,\n") != NULL, "the loop");
        unlink(path);
        is_int(jl_rt_userfile_open(&f, "/proc/none/x", "n1", why, sizeof(why)), -ENOENT,
               "an unwritable path: -ENOENT");
        ok(strstr(why, "cannot write /proc/none/x.n1.csv") != NULL, "named: %s", why);
        ok(f.fd == -1, "left closed");
        snprintf(path, sizeof(path), "%s/d", dir);
        mkdir(path, 0700);
        snprintf(base, sizeof(base), "%s/d.n1.csv", dir);
        mkdir(base, 0700);
        snprintf(base, sizeof(base), "%s/d", dir);
        ok(jl_rt_userfile_open(&f, base, "n1", why, sizeof(why)) < 0, "a directory in the way: refused (%s)",
           why);
        snprintf(path, sizeof(path), "%s/d.n1.csv", dir);
        rmdir(path);
        snprintf(path, sizeof(path), "%s/d", dir);
        rmdir(path);
        f.fd = open("/dev/full", O_WRONLY);
        snprintf(f.path, sizeof(f.path), "/dev/full");
        ok(jl_rt_userfile_loop(&f, &l) == -ENOSPC && f.fd == -1, "a full disk: -ENOSPC, the file closed");
        rmdir(dir);
        unsetenv("JOULE_JOB_ID");
        unsetenv("JOULE_STEP_ID");
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

/* The phase rules' per-CPU GFLOPS follow the counters' scope (jl_rt_counters_fp_cpus, as manage.c fills
 * jl_rt_sig.fp_cpus): counted per CPU of the step, they are the node's and divide by the step's CPUs;
 * counted for the node master's process, they are its own and divide by its CPUs. */
static void test_fp_divisor_scope(void)
{
        const jl_rt_counters node = {.fd_cycles = -1, .fd_instr = -1, .scope = JL_RT_CTR_CPUS, .nsites = 16};
        const jl_rt_counters proc = {
            .fd_cycles = -1, .fd_instr = -1, .scope = JL_RT_CTR_PROCESS, .nsites = 1};
        const jl_rt_counters none = {.fd_cycles = -1, .fd_instr = -1, .scope = JL_RT_CTR_NONE};
        is_near(jl_rt_counters_fp_cpus(&node, 1), 16, 0, "per CPU: the step's 16 CPUs, not the master's 1");
        is_near(jl_rt_counters_fp_cpus(&proc, 1), 1, 0, "the process: its own CPU");
        is_near(jl_rt_counters_fp_cpus(&none, 0), 0, 0, "unknown: 0 (the step's CPUs then)");

        /* 16 ranks spinning in MPI at 0.075 GFLOPS each: the node counts 1.2 */
        jl_rt_sig s = {.tpi_s = 0.02, .khz = 3000000, .cpi = 0.3, .gbs = 8, .gflops = 1.2, .cpus = 16};
        s.fp_cpus = jl_rt_counters_fp_cpus(&node, 1);
        is_str(phase_of(&s, NULL), "busy-waiting",
               "the node's 1.2 GFLOPS over 16 CPUs: 0.075 each, busy-waiting");
        ok(jl_rt_gpu_busy(0.9, &s, NULL), "and with the GPUs computing, the CPU waits for them");
        /* one rank computing at 0.4 GFLOPS, counted for the master's process alone */
        s.gflops = 0.4;
        s.fp_cpus = jl_rt_counters_fp_cpus(&proc, 1);
        is_str(phase_of(&s, NULL), "cpu-bound", "the process's 0.4 GFLOPS on its one CPU: computing");
        ok(!jl_rt_gpu_busy(0.9, &s, NULL),
           "and the GPU rule divides by the same CPUs (not 16: 0.025 would read as waiting)");
}

/* A window's signature at f: its time and power, no counters, no noise figures. */
static jl_rt_sig sig_without_counters(double tpi_s, double power_w, unsigned long f)
{
        return (jl_rt_sig){.tpi_s = tpi_s,
                           .power_w = power_w,
                           .khz = (double)f,
                           .cpi = NAN,
                           .gbs = NAN,
                           .gflops = NAN,
                           .tpi_err_s = NAN,
                           .power_err_w = NAN};
}

/* A frequency whose time lies just over the bound reads within it once (the reference read a little slow)
 * and over it later: the policy rules it out and holds the next one up, not the two in turn. The readings
 * are those of a run that flipped between 800 and 1000 MHz (memory-bound, th 0.05, a loaded machine). */
static void test_bound_flicker(void)
{
        static const struct {
                unsigned long khz;
                double t[3], w;
        } at[] = {
            {3000000, {0.020033, 0.020033, 0.020033}, 118.00},
            {2900000, {0.019996, 0.019996, 0.019996}, 116.74},
            {1000000, {0.020801, 0.020827, 0.020822}, 98.63},
            {800000, {0.021091, 0.021123, 0.021101}, 97.09},
        };
        jl_rt_policy p;
        jl_rt_decision d;
        jl_rt_policy_init(&p, JL_RT_MIN_ENERGY, 0.05, freqs, nfreqs, 3000000, &d);
        unsigned long f = 3000000;
        int seen[4] = {0}, bounds = 0, at800 = 0, unknown = 0;
        for (int w = 0; w < 30; w++) {
                size_t k = 0;
                while (k < 4 && at[k].khz != f)
                        k++;
                if (k == 4) { /* a frequency the run never measured: over the bound by its time */
                        unknown++;
                        k = 2;
                }
                int r = seen[k] < 3 ? seen[k] : 2;
                seen[k]++;
                jl_rt_sig s = sig_without_counters(at[k].t[r], at[k].w, f);
                jl_rt_policy_signature(&p, &s, &d);
                if (d.kind && strcmp(d.kind, "bound") == 0)
                        bounds++;
                if (d.set)
                        f = d.khz;
                if (w >= 10 && f == 800000)
                        at800++;
        }
        is_int(f, 1000000, "a bound broken after a reading within it: 1000 MHz held, not 800 MHz");
        ok(bounds == 1 && at800 == 0 && unknown == 0,
           "the frequency ruled out stays out (%d repairs, %d late windows at 800 MHz)", bounds, at800);
}

/* A mixed code whose least energy lies far below the probe (2.2 GHz, 2.4 % less than the default's), where
 * the probe's power reads a little off so that the model through the reference and the probe puts its
 * least energy at the probe itself: the policy measures a farther point before it holds anything. */
static void test_probe_is_choice(void)
{
        machine x = {.c = 12000, .m = 0.016, .p_static = 60, .p_dyn = 80};
        unsigned long best = best_within(&x, 0.1);
        double e_def = m_energy(&x, 3000000);
        /* the premise: a probe power reading, within 2 % of the truth, that makes the two-point model choose
         * the probe */
        double off = NAN;
        for (double ep = -0.02; ep <= 0.02 && isnan(off); ep += 0.0005) {
                jl_rt_time_model tm;
                jl_rt_power_model pm;
                unsigned long c;
                if (jl_rt_time_fit(3000000, m_time(&x, 3000000), 2800000, m_time(&x, 2800000), &tm) == 0 &&
                    jl_rt_power_fit(3000000, m_power(&x, 3000000), 2800000, m_power(&x, 2800000) * (1 + ep),
                                    800000, 3000000, &pm) == 0 &&
                    jl_rt_min_energy_choose(freqs, nfreqs, 3000000, m_time(&x, 3000000), 0.1,
                                            JL_RT_POLICY_MARGIN, &tm, &pm, &c) == 0 &&
                    c == 2800000)
                        off = ep;
        }
        if (!ok(!isnan(off) && best < 2600000,
                "premise: the probe's power %+.1f%% off makes the two-point model choose the probe (the "
                "best is %lu kHz)",
                off * 100, best))
                return;
        jl_rt_policy p;
        jl_rt_decision d;
        jl_rt_policy_init(&p, JL_RT_MIN_ENERGY, 0.1, freqs, nfreqs, 3000000, &d);
        unsigned long f = 3000000;
        bool farther = false;
        for (int w = 0; w < 30; w++) {
                jl_rt_sig s = sig_without_counters(m_time(&x, (double)f),
                                                   m_power(&x, (double)f) * (f == 2800000 ? 1 + off : 1), f);
                jl_rt_policy_signature(&p, &s, &d);
                farther |= d.set && f == 2800000 && d.khz < 2800000 && strstr(d.message, "farther");
                if (d.set)
                        f = d.khz;
        }
        double saved = e_def - m_energy(&x, (double)f), best_saved = e_def - m_energy(&x, (double)best);
        ok(farther && m_time(&x, (double)f) <= 1.1 * m_time(&x, 3000000) && saved >= 0.8 * best_saved,
           "the probe chosen by two close points: measured farther, holds %lu kHz, saves %.2f%% of the best "
           "%.2f%%",
           f, saved / e_def * 100, best_saved / e_def * 100);
}

int main(void)
{
        for (unsigned long f = 800000; f <= 3000000; f += 100000)
                freqs[nfreqs++] = f;
        test_model();
        test_min_energy();
        test_bound_repair();
        test_bound_flicker();
        test_probe_is_choice();
        test_noisy_probe();
        test_min_time();
        test_monitoring();
        test_phases();
        test_gpu_wait();
        test_gpu_select();
        test_phases_counters();
        test_config();
        test_userfile();
        test_counters();
        test_fp_divisor_scope();
        printf("1..%d\n", tap_n);
        return tap_failed ? 1 : 0;
}
