/* test-learn-unit.c - the learning run's fits and its coefficient file: least squares (known solutions,
 * dependent columns), the power curve recovered from synthetic samples made with a known static power,
 * voltage shape and per-code activity plus noise, EAR's pair coefficients recovered from synthetic codes,
 * degenerate data refused; the coefficient file written and read back, and bad files refused with words
 * (truncated, wrong version, NaN, negative, unknown node, a pair outside the frequencies, garbage). */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "coeffs.h"
#include "learnfit.h"
#include "model.h"
#include "policy.h"
#include "tap.h"

/* a uniform deviate in [-1, 1] from a fixed sequence */
static double noise(void)
{
        return (double)rand() / RAND_MAX * 2 - 1;
}

static void test_lsq(void)
{
        /* y = 2 + 3 x exactly */
        double x[5 * 2], y[5], b[2];
        for (int i = 0; i < 5; i++) {
                x[i * 2] = 1;
                x[i * 2 + 1] = i;
                y[i] = 2 + 3 * i;
        }
        is_int(jl_learn_lsq(x, y, 5, 2, b), 0, "lsq: a line");
        ok(fabs(b[0] - 2) < 1e-12 && fabs(b[1] - 3) < 1e-12, "lsq: 2 + 3x recovered (%.15g, %.15g)", b[0],
           b[1]);
        /* two identical columns */
        for (int i = 0; i < 5; i++)
                x[i * 2 + 1] = 1;
        is_int(jl_learn_lsq(x, y, 5, 2, b), -EINVAL, "lsq: dependent columns: EINVAL");
        is_int(jl_learn_lsq(x, y, 1, 2, b), -EINVAL, "lsq: fewer rows than unknowns: EINVAL");
        x[3] = NAN;
        is_int(jl_learn_lsq(x, y, 5, 2, b), -EINVAL, "lsq: NaN: EINVAL");
}

static void test_curve(void)
{
        /* the node at rest and three codes on an intel2s-like node: static 86 W, V_min/V_max 0.75, each code
         * adding d (DRAM) and b x s(f): (0, 160), (3.5, 100), (7, 50) W */
        const double fmin = 800000, fmax = 3000000, st = 86, v0 = 0.75, bk[4] = {0, 160, 100, 50},
                     dk[4] = {0, 0, 3.5, 7};
        double khz[4 * 23], pw[4 * 23], b[4];
        size_t code[4 * 23], n = 0;
        jl_rt_power_curve c;
        srand(11);
        for (size_t k = 0; k < 4; k++)
                for (double f = fmin; f <= fmax; f += 100000) {
                        khz[n] = f;
                        code[n] = k;
                        pw[n] = (st + dk[k] + bk[k] * jl_rt_power_shape_v(f, fmin, fmax, v0)) *
                                (1 + 0.002 * noise());
                        n++;
                }
        is_int(jl_learn_fit_curve(khz, pw, code, n, 4, fmin, fmax, &c, b), 0, "curve: fitted");
        /* stated tolerance: 0.2 % noise on every sample -> static within 1 W, the shape within 0.02 */
        is_near(c.static_w, st, 1.0, "curve: static power %.3f W (86 W)", c.static_w);
        is_near(c.vmin_ratio, v0, 0.02, "curve: V_min/V_max %.4f (0.75)", c.vmin_ratio);
        ok(b[0] == 0 && fabs(b[1] - 160) < 3 && fabs(b[2] - 100) < 3 && fabs(b[3] - 50) < 3,
           "curve: per-code b %.2f %.2f %.2f (160 100 50)", b[1], b[2], b[3]);
        ok(c.rms_w < 0.5 && c.fmin_khz == fmin && c.fmax_khz == fmax, "curve: residual %.3f W, range kept",
           c.rms_w);

        /* exact data: exact recovery */
        for (size_t i = 0; i < n; i++)
                pw[i] = st + dk[code[i]] + bk[code[i]] * jl_rt_power_shape_v(khz[i], fmin, fmax, 0.8);
        is_int(jl_learn_fit_curve(khz, pw, code, n, 4, fmin, fmax, &c, NULL), 0, "curve: exact data");
        ok(fabs(c.static_w - st) < 1e-3 && fabs(c.vmin_ratio - 0.8) < 1e-4, "curve: exact: %.6f W, %.6f",
           c.static_w, c.vmin_ratio);

        /* the runtime's model from the curve and one point */
        jl_rt_power_model pm;
        double p_ref = st + 100 * jl_rt_power_shape_v(fmax, fmin, fmax, 0.8);
        is_int(jl_rt_power_from_curve(&c, fmax, p_ref, &pm), 0, "curve -> model through one point");
        is_near(jl_rt_power_project(&pm, 1500000), st + 100 * jl_rt_power_shape_v(1500000, fmin, fmax, 0.8),
                0.01, "curve -> model: projection at 1.5 GHz");
        is_int(jl_rt_power_from_curve(&c, fmax, 50, &pm), 0, "a point below the static power");
        ok(pm.b_w == 0 && pm.a_w == 50, "... b = 0, a = the point");

        /* degenerate */
        size_t one[3] = {0, 1, 1};
        double f1[3] = {fmax, fmax, fmax}, p1[3] = {100, 101, 102};
        is_int(jl_learn_fit_curve(f1, p1, one, 3, 2, fmin, fmax, &c, NULL), -EINVAL,
               "curve: a code at one frequency only: EINVAL");
        is_int(jl_learn_fit_curve(khz, pw, code, n, 5, fmin, fmax, &c, NULL), -EINVAL,
               "curve: a code without samples: EINVAL");
        is_int(jl_learn_fit_curve(khz + 23, pw + 23, code + 23, n - 23, 4, fmin, fmax, &c, NULL), -EINVAL,
               "curve: no sample of the node at rest: EINVAL");
        pw[30] = NAN;
        is_int(jl_learn_fit_curve(khz, pw, code, n, 4, fmin, fmax, &c, NULL), -EINVAL, "curve: NaN: EINVAL");
        is_int(jl_learn_fit_curve(khz, pw, code, n, 4, fmax, fmin, &c, NULL), -EINVAL,
               "curve: range upside down: EINVAL");
}

static void test_pair(void)
{
        const jl_rt_coeffs truth = {.A = 0.82, .B = 35.0, .C = 4.5, .D = 0.97, .E = 2.1, .F = 0.03};
        enum { N = 12 };
        double pf[N], cf[N], tf[N], pt[N], ct[N];
        jl_rt_coeffs k;
        srand(5);
        for (int i = 0; i < N; i++) {
                pf[i] = 90 + 7.0 * i + 3 * noise();
                cf[i] = 0.4 + 0.15 * i + 0.05 * noise();
                tf[i] = 0.002 + 0.0011 * ((i * 7) % N);
                pt[i] = (truth.A * pf[i] + truth.B * tf[i] + truth.C) * (1 + 0.001 * noise());
                ct[i] = (truth.D * cf[i] + truth.E * tf[i] + truth.F) * (1 + 0.001 * noise());
        }
        is_int(jl_learn_fit_pair(pf, cf, tf, pt, ct, N, &k), 0, "pair: fitted from 12 codes");
        /* stated tolerance with 0.1 % noise: A within 0.02, C within 2 W, D within 0.01, F within 0.01, B
         * and E (TPI is small) within 10 % of their value */
        ok(fabs(k.A - truth.A) < 0.02 && fabs(k.C - truth.C) < 2 && fabs(k.B - truth.B) < 3.5,
           "pair: power A %.4f B %.3f C %.3f (0.82 35 4.5)", k.A, k.B, k.C);
        ok(fabs(k.D - truth.D) < 0.01 && fabs(k.F - truth.F) < 0.01 && fabs(k.E - truth.E) < 0.21,
           "pair: CPI D %.4f E %.4f F %.4f (0.97 2.1 0.03)", k.D, k.E, k.F);
        for (int i = 0; i < N; i++)
                tf[i] = 0.004;
        is_int(jl_learn_fit_pair(pf, cf, tf, pt, ct, N, &k), -EINVAL, "pair: one TPI for all codes: EINVAL");
        is_int(jl_learn_fit_pair(pf, cf, tf, pt, ct, 2, &k), -EINVAL, "pair: two codes: EINVAL");
        tf[0] = NAN;
        is_int(jl_learn_fit_pair(pf, cf, tf, pt, ct, N, &k), -EINVAL, "pair: no TPI (NaN): EINVAL");
}

static const char GOOD[] = "# comment\n"
                           "joule-coeffs 1\n"
                           "node emu1\n"
                           "date 2026-12-03T10:50:00Z\n"
                           "freqs 800000 1900000 3000000\n"
                           "curve 86.0 0.8 800000 3000000 0.4\n"
                           "pair 3000000 800000 0.8 30 5 1.0 2 0.01\n"
                           "pair 3000000 1900000 0.9 20 3 1.0 1 0.01\n"
                           "end\n";

static int parse_edit(const char *from, const char *to, const char *node, char *why, size_t wl)
{
        char buf[1024];
        const char *at = strstr(GOOD, from);
        if (!at)
                return 999;
        snprintf(buf, sizeof(buf), "%.*s%s%s", (int)(at - GOOD), GOOD, to, at + strlen(from));
        jl_coeffs c;
        int r = jl_coeffs_parse(buf, strlen(buf), node, &c, why, wl);
        if (r == 0)
                jl_coeffs_free(&c);
        return r;
}

static void test_file(void)
{
        jl_coeffs c, c2;
        char why[256] = "";
        is_int(jl_coeffs_parse(GOOD, strlen(GOOD), "emu1", &c, why, sizeof(why)), 0, "file: parsed (%s)",
               why);
        ok(strcmp(c.node, "emu1") == 0 && c.nfreqs == 3 && c.freqs[2] == 3000000 && c.npairs == 2 &&
               c.curve.static_w == 86 && c.curve.vmin_ratio == 0.8,
           "file: node, freqs, curve, pairs");
        const jl_rt_coeffs *k = jl_coeffs_pair_find(&c, 3000000, 1900000);
        ok(k && k->A == 0.9 && k->B == 20 && !jl_coeffs_pair_find(&c, 1900000, 3000000),
           "file: pair lookup");
        char *text = NULL;
        is_int(jl_coeffs_format(&c, &text), 0, "file: written");
        is_int(jl_coeffs_parse(text, strlen(text), NULL, &c2, why, sizeof(why)), 0, "file: read back (%s)",
               why);
        ok(c2.npairs == 2 && c2.curve.fmax_khz == 3000000 &&
               jl_coeffs_pair_find(&c2, 3000000, 800000)->F == 0.01,
           "file: the same after a round trip");
        jl_coeffs_free(&c2);
        free(text);
        /* values that "%.6f" would have written as 0 (a file that did not read back: libFuzzer's find) */
        c.curve.vmin_ratio = 1e-7;
        c.curve.static_w = 1e-300;
        is_int(jl_coeffs_format(&c, &text), 0, "file: tiny values written");
        is_int(jl_coeffs_parse(text, strlen(text), NULL, &c2, why, sizeof(why)), 0, "... and read back (%s)",
               why);
        ok(c2.curve.vmin_ratio == 1e-7, "... the same");
        jl_coeffs_free(&c2);
        free(text);
        jl_coeffs_free(&c);

        struct {
                const char *from, *to, *node;
                int want;
                const char *what;
        } bad[] = {
            {"end\n", "", NULL, -EINVAL, "truncated: no end"},
            {"pair 3000000 1900000 0.9 20 3 1.0 1 0.01\nend\n", "pair 3000000 1900000 0.9 2", NULL, -EINVAL,
             "truncated mid-line"},
            {"joule-coeffs 1", "joule-coeffs 2", NULL, -EPROTONOSUPPORT, "wrong version"},
            {"joule-coeffs 1\n", "", NULL, -EINVAL, "no version line"},
            {"curve 86.0", "curve nan", NULL, -EINVAL, "NaN static power"},
            {"0.8 30 5", "0.8 NaN 5", NULL, -EINVAL, "NaN coefficient"},
            {"curve 86.0", "curve -86.0", NULL, -EINVAL, "negative static power"},
            {"0.8 800000 3000000", "1.7 800000 3000000", NULL, -EINVAL, "V ratio above 1"},
            {"freqs 800000", "freqs -800000", NULL, -EINVAL, "negative frequency"},
            {"1900000 3000000\n", "1900000 1900000\n", NULL, -EINVAL, "frequencies not ascending"},
            {"pair 3000000 800000", "pair 3000000 700000", NULL, -EINVAL, "a pair outside freqs"},
            {"pair 3000000 1900000", "pair 3000000 800000", NULL, -EINVAL, "a pair twice"},
            {"node emu1", "node emu/../x", NULL, -EINVAL, "a node name with a slash"},
            {"node emu1", "node emu2", "emu1", -ENODEV, "unknown node (another node's file)"},
            {"date 2026-12-03T10:50:00Z", "date yesterday", NULL, -EINVAL, "a date that is not ISO 8601"},
            {"end\n", "end\nnode x\n", NULL, -EINVAL, "a line after end"},
            {"curve", "colour", NULL, -EINVAL, "an unknown line"},
            {"node emu1\n", "", NULL, -EINVAL, "no node"},
            {"0.8 800000 3000000", "0.8 0.08 3000000", NULL, -EINVAL, "a curve frequency not in whole kHz"},
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                why[0] = '\0';
                int r = parse_edit(bad[i].from, bad[i].to, bad[i].node, why, sizeof(why));
                ok(r == bad[i].want && why[0], "file: %s: %d (%s)", bad[i].what, r, why);
        }
        is_int(jl_coeffs_parse("", 0, NULL, &c, why, sizeof(why)), -EINVAL, "file: empty");
        is_int(jl_coeffs_parse("joule-coeffs 1\0node x\n", 22, NULL, &c, why, sizeof(why)), -EINVAL,
               "file: a NUL byte");
}

/* The policy with a learnt curve: the model event says so; with counters and pairs, the counter model. */
static void test_policy_models(void)
{
        unsigned long freqs[23];
        size_t n = 0;
        for (unsigned long f = 800000; f <= 3000000; f += 100000)
                freqs[n++] = f;
        /* a mixed code on a node whose curve is known: T = 0.030/f[GHz]... c = 30000 s kHz, m = 0.010 s */
        jl_rt_power_curve curve = {
            .static_w = 86, .vmin_ratio = 0.8, .fmin_khz = 800000, .fmax_khz = 3000000};
        jl_rt_policy p;
        jl_rt_decision d;
        jl_rt_policy_init(&p, JL_RT_MIN_ENERGY, 0.1, freqs, n, 3000000, &d);
        jl_rt_policy_set_model(&p, &curve, NULL);
        unsigned long f = 3000000;
        bool said_curve = false;
        for (int w = 0; w < 20; w++) {
                double t = 30000.0 / (double)f + 0.010;
                jl_rt_sig s = {.tpi_s = t,
                               .power_w = 86 + 120 * jl_rt_power_shape(f, 800000, 3000000),
                               .khz = (double)f,
                               .cpi = NAN,
                               .tpi = NAN,
                               .gbs = NAN,
                               .gflops = NAN};
                jl_rt_policy_signature(&p, &s, &d);
                said_curve = said_curve || (d.model && strcmp(d.model, "curve") == 0);
                if (d.set)
                        f = d.khz;
        }
        ok(said_curve, "min_energy with a learnt curve: the model event says 'curve'");
        ok(30000.0 / (double)f + 0.010 <= 1.1 * 0.020 && f < 3000000, "... holds %lu kHz within the bound",
           f);

        /* counters: the pairs say power falls linearly and CPI stays: the counter model chooses */
        jl_coeffs c = {.nfreqs = n};
        memcpy(c.freqs, freqs, sizeof(freqs));
        c.pairs = calloc(n, sizeof(*c.pairs));
        for (size_t i = 0; i + 1 < n; i++)
                c.pairs[c.npairs++] = (jl_coeffs_pair){
                    .from_khz = 3000000,
                    .to_khz = freqs[i],
                    .k = {.A = pow((double)freqs[i] / 3000000, 2), .B = 0, .C = 0, .D = 1, .E = 0, .F = 0}};
        jl_rt_policy_init(&p, JL_RT_MIN_ENERGY, 0.1, freqs, n, 3000000, &d);
        jl_rt_policy_set_model(&p, NULL, &c);
        jl_rt_sig s = {.tpi_s = 0.020,
                       .power_w = 100,
                       .khz = 3000000,
                       .cpi = 1.0,
                       .tpi = 0.01,
                       .gbs = NAN,
                       .gflops = NAN};
        jl_rt_policy_signature(&p, &s, &d);
        ok(d.model && strcmp(d.model, "counters") == 0 && d.set && d.khz == 2800000,
           "min_energy with counters and pairs: the counter model, %lu kHz (the lowest within 10%% - "
           "margin)",
           d.khz);
        s.cpi = NAN;
        jl_rt_policy_init(&p, JL_RT_MIN_ENERGY, 0.1, freqs, n, 3000000, &d);
        jl_rt_policy_set_model(&p, NULL, &c);
        jl_rt_policy_signature(&p, &s, &d);
        ok(!d.model && d.set && d.khz == 2800000 && strstr(d.message, "probing"),
           "no CPI: the model-free probe instead");
        jl_coeffs_free(&c);
}

int main(void)
{
        test_lsq();
        test_curve();
        test_pair();
        test_file();
        test_policy_models();
        printf("1..%d\n", tap_n);
        return tap_failed ? 1 : 0;
}
