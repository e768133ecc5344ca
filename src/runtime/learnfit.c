/* learnfit.c - least squares for the learning run: the power curve and EAR's pair coefficients
 * (learnfit.h). */
#include "learnfit.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define LSQ_P_MAX 64

int jl_learn_lsq(const double *x, const double *y, size_t n, size_t p, double *ret_beta)
{
        if (!x || !y || !ret_beta || p == 0 || p > LSQ_P_MAX || n < p)
                return -EINVAL;
        for (size_t i = 0; i < n * p; i++)
                if (!isfinite(x[i]))
                        return -EINVAL;
        for (size_t i = 0; i < n; i++)
                if (!isfinite(y[i]))
                        return -EINVAL;
        double *a = malloc(n * p * sizeof(double)), *b = malloc(n * sizeof(double));
        if (!a || !b) {
                free(a);
                free(b);
                return -ENOMEM;
        }
        memcpy(a, x, n * p * sizeof(double));
        memcpy(b, y, n * sizeof(double));
        double norm[LSQ_P_MAX];
        for (size_t j = 0; j < p; j++) {
                double s = 0;
                for (size_t i = 0; i < n; i++)
                        s += a[i * p + j] * a[i * p + j];
                norm[j] = sqrt(s);
        }
        int r = 0;
        /* Householder: column j below the diagonal zeroed, the same reflection applied to b */
        for (size_t j = 0; j < p && r == 0; j++) {
                double s = 0;
                for (size_t i = j; i < n; i++)
                        s += a[i * p + j] * a[i * p + j];
                double alpha = sqrt(s);
                if (!(alpha > 1e-10 * norm[j]) || !(norm[j] > 0)) {
                        r = -EINVAL;
                        break;
                }
                if (a[j * p + j] > 0)
                        alpha = -alpha;
                /* v = a[j..n, j] − alpha e_j, stored in place */
                a[j * p + j] -= alpha;
                double vv = 0;
                for (size_t i = j; i < n; i++)
                        vv += a[i * p + j] * a[i * p + j];
                if (!(vv > 0)) {
                        r = -EINVAL;
                        break;
                }
                for (size_t k = j + 1; k < p; k++) {
                        double d = 0;
                        for (size_t i = j; i < n; i++)
                                d += a[i * p + j] * a[i * p + k];
                        d = 2 * d / vv;
                        for (size_t i = j; i < n; i++)
                                a[i * p + k] -= d * a[i * p + j];
                }
                double d = 0;
                for (size_t i = j; i < n; i++)
                        d += a[i * p + j] * b[i];
                d = 2 * d / vv;
                for (size_t i = j; i < n; i++)
                        b[i] -= d * a[i * p + j];
                a[j * p + j] = alpha; /* R's diagonal */
        }
        if (r == 0) {
                /* relative rank check on R's diagonal, then back substitution */
                double beta[LSQ_P_MAX];
                for (size_t j = p; j-- > 0 && r == 0;) {
                        double s = b[j];
                        for (size_t k = j + 1; k < p; k++)
                                s -= a[j * p + k] * beta[k];
                        if (!(fabs(a[j * p + j]) > 1e-9 * norm[j]))
                                r = -EINVAL;
                        else
                                beta[j] = s / a[j * p + j];
                }
                for (size_t j = 0; j < p && r == 0; j++)
                        if (!isfinite(beta[j]))
                                r = -EINVAL;
                if (r == 0)
                        memcpy(ret_beta, beta, p * sizeof(double));
        }
        free(a);
        free(b);
        return r;
}

/* The linear part of the curve's fit for one shape: static, then per code k >= 1 its offset d_k and its
 * b_k; the residual sum of squares. */
static int curve_at(const double *khz, const double *power_w, const size_t *code, size_t n, size_t ncodes,
                    double fmin_khz, double fmax_khz, double v0, double *beta, double *ret_sse)
{
        size_t p = 1 + 2 * (ncodes - 1);
        double *x = calloc(n * p, sizeof(double));
        if (!x)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                x[i * p] = 1;
                if (code[i] == 0)
                        continue;
                x[i * p + code[i]] = 1;
                x[i * p + (ncodes - 1) + code[i]] = jl_rt_power_shape_v(khz[i], fmin_khz, fmax_khz, v0);
        }
        int r = jl_learn_lsq(x, power_w, n, p, beta);
        if (r == 0) {
                double sse = 0;
                for (size_t i = 0; i < n; i++) {
                        double e = power_w[i];
                        for (size_t j = 0; j < p; j++)
                                e -= x[i * p + j] * beta[j];
                        sse += e * e;
                }
                *ret_sse = sse;
        }
        free(x);
        return r;
}

int jl_learn_fit_curve(const double *khz, const double *power_w, const size_t *code, size_t n, size_t ncodes,
                       double fmin_khz, double fmax_khz, jl_rt_power_curve *ret, double *ret_b)
{
        if (!khz || !power_w || !code || !ret || ncodes < 2 || 2 * ncodes > LSQ_P_MAX || !(fmin_khz > 0) ||
            !(fmax_khz > fmin_khz))
                return -EINVAL;
        /* the idle node needs a sample, every code two frequencies */
        bool idle = false;
        for (size_t i = 0; i < n; i++)
                idle = idle || code[i] == 0;
        if (!idle)
                return -EINVAL;
        for (size_t k = 1; k < ncodes; k++) {
                double f0 = NAN;
                bool two = false;
                for (size_t i = 0; i < n; i++) {
                        if (code[i] >= ncodes || !(khz[i] > 0) || !isfinite(power_w[i]))
                                return -EINVAL;
                        if (code[i] != k)
                                continue;
                        if (isnan(f0))
                                f0 = khz[i];
                        else if (khz[i] != f0)
                                two = true;
                }
                if (!two)
                        return -EINVAL;
        }
        double beta[LSQ_P_MAX], best_beta[LSQ_P_MAX], sse, best_sse = INFINITY, best_v = NAN;
        /* a grid over the shape, then golden sections around its best point */
        for (int g = 0; g <= 80; g++) {
                double v = 0.2 + 0.01 * g;
                if (curve_at(khz, power_w, code, n, ncodes, fmin_khz, fmax_khz, v, beta, &sse) == 0 &&
                    sse < best_sse) {
                        best_sse = sse;
                        best_v = v;
                        memcpy(best_beta, beta, (2 * ncodes - 1) * sizeof(double));
                }
        }
        if (isnan(best_v))
                return -EINVAL;
        const double gr = (sqrt(5.0) - 1) / 2;
        double lo = fmax(0.2, best_v - 0.01), hi = fmin(1.0, best_v + 0.01);
        for (int it = 0; it < 40; it++) {
                double c = hi - gr * (hi - lo), d = lo + gr * (hi - lo), sc, sd;
                if (curve_at(khz, power_w, code, n, ncodes, fmin_khz, fmax_khz, c, beta, &sc) < 0 ||
                    curve_at(khz, power_w, code, n, ncodes, fmin_khz, fmax_khz, d, beta, &sd) < 0)
                        break;
                if (sc < sd)
                        hi = d;
                else
                        lo = c;
        }
        double v = (lo + hi) / 2;
        if (curve_at(khz, power_w, code, n, ncodes, fmin_khz, fmax_khz, v, beta, &sse) == 0 &&
            sse <= best_sse) {
                best_sse = sse;
                best_v = v;
                memcpy(best_beta, beta, (2 * ncodes - 1) * sizeof(double));
        }
        if (!(best_beta[0] >= 0))
                return -EINVAL; /* a negative static power: the samples do not follow the form */
        *ret = (jl_rt_power_curve){.static_w = best_beta[0],
                                   .vmin_ratio = best_v,
                                   .fmin_khz = fmin_khz,
                                   .fmax_khz = fmax_khz,
                                   .rms_w = sqrt(best_sse / (double)n)};
        if (ret_b) {
                ret_b[0] = 0;
                memcpy(ret_b + 1, best_beta + ncodes, (ncodes - 1) * sizeof(double));
        }
        return 0;
}

int jl_learn_fit_pair(const double *p_from, const double *cpi_from, const double *tpi_from,
                      const double *p_to, const double *cpi_to, size_t n, jl_rt_coeffs *ret)
{
        if (!p_from || !cpi_from || !tpi_from || !p_to || !cpi_to || !ret || n < 3)
                return -EINVAL;
        for (size_t i = 0; i < n; i++)
                if (!(cpi_from[i] > 0) || !(cpi_to[i] > 0) || !isfinite(cpi_from[i]) ||
                    !isfinite(cpi_to[i]) || !isfinite(tpi_from[i]) || !(tpi_from[i] >= 0))
                        return -EINVAL;
        double *x = malloc(n * 3 * sizeof(double));
        if (!x)
                return -ENOMEM;
        double bp[3], bc[3];
        for (size_t i = 0; i < n; i++) {
                x[i * 3] = p_from[i];
                x[i * 3 + 1] = tpi_from[i];
                x[i * 3 + 2] = 1;
        }
        int r = jl_learn_lsq(x, p_to, n, 3, bp);
        if (r == 0) {
                for (size_t i = 0; i < n; i++)
                        x[i * 3] = cpi_from[i];
                r = jl_learn_lsq(x, cpi_to, n, 3, bc);
        }
        free(x);
        if (r < 0)
                return r;
        *ret = (jl_rt_coeffs){.A = bp[0], .B = bp[1], .C = bp[2], .D = bc[0], .E = bc[1], .F = bc[2]};
        return 0;
}
