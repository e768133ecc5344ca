/* model.c - projections of time and power across frequencies and the policies' rules (model.h). */
#include "model.h"

#include <errno.h>
#include <math.h>

#define VMIN_OVER_VMAX 0.8

int jl_rt_time_fit(double f1_khz, double t1_s, double f2_khz, double t2_s, jl_rt_time_model *ret)
{
        if (!(f1_khz > 0) || !(f2_khz > 0) || !(t1_s > 0) || !(t2_s > 0) || f1_khz == f2_khz || !ret)
                return -EINVAL;
        /* t1 = c/f1 + m, t2 = c/f2 + m */
        double c = (t1_s - t2_s) / (1.0 / f1_khz - 1.0 / f2_khz), m;
        if (!(c > 0)) {
                c = 0;
                m = (t1_s + t2_s) / 2;
        } else {
                m = t1_s - c / f1_khz;
                if (m < 0) {
                        /* all of it scales (or noise): c through the faster point's time */
                        m = 0;
                        c = f1_khz > f2_khz ? t1_s * f1_khz : t2_s * f2_khz;
                }
        }
        *ret = (jl_rt_time_model){.c_s_khz = c, .m_s = m};
        return 0;
}

double jl_rt_time_project(const jl_rt_time_model *m, double f_khz)
{
        return m->c_s_khz / f_khz + m->m_s;
}

double jl_rt_time_mem_share(const jl_rt_time_model *m, double f_khz)
{
        double t = jl_rt_time_project(m, f_khz);
        return t > 0 ? m->m_s / t : 0;
}

double jl_rt_power_shape_v(double f_khz, double fmin_khz, double fmax_khz, double vmin_ratio)
{
        double v = 1.0;
        if (fmax_khz > fmin_khz)
                v = vmin_ratio + (1.0 - vmin_ratio) * (f_khz - fmin_khz) / (fmax_khz - fmin_khz);
        return f_khz / fmax_khz * v * v;
}

double jl_rt_power_shape(double f_khz, double fmin_khz, double fmax_khz)
{
        return jl_rt_power_shape_v(f_khz, fmin_khz, fmax_khz, VMIN_OVER_VMAX);
}

int jl_rt_power_fit(double f1_khz, double p1_w, double f2_khz, double p2_w, double fmin_khz, double fmax_khz,
                    jl_rt_power_model *ret)
{
        if (!(f1_khz > 0) || !(f2_khz > 0) || f1_khz == f2_khz || !(fmax_khz > 0) || !(fmin_khz > 0) ||
            fmin_khz > fmax_khz || !isfinite(p1_w) || !isfinite(p2_w) || !ret)
                return -EINVAL;
        double s1 = jl_rt_power_shape(f1_khz, fmin_khz, fmax_khz),
               s2 = jl_rt_power_shape(f2_khz, fmin_khz, fmax_khz);
        double b = (p1_w - p2_w) / (s1 - s2), a;
        if (!(b > 0)) {
                b = 0;
                a = (p1_w + p2_w) / 2;
        } else
                a = p1_w - b * s1;
        *ret = (jl_rt_power_model){.a_w = a, .b_w = b, .fmin_khz = fmin_khz, .fmax_khz = fmax_khz};
        return 0;
}

double jl_rt_power_project(const jl_rt_power_model *m, double f_khz)
{
        double v0 = m->vmin_ratio > 0 ? m->vmin_ratio : VMIN_OVER_VMAX;
        return m->a_w + m->b_w * jl_rt_power_shape_v(f_khz, m->fmin_khz, m->fmax_khz, v0);
}

int jl_rt_power_from_curve(const jl_rt_power_curve *c, double f_khz, double p_w, jl_rt_power_model *ret)
{
        if (!c || !ret || !(f_khz > 0) || !isfinite(p_w) || !(c->fmin_khz > 0) ||
            !(c->fmax_khz > c->fmin_khz) || !(c->vmin_ratio > 0 && c->vmin_ratio <= 1) ||
            !(c->static_w >= 0))
                return -EINVAL;
        double s = jl_rt_power_shape_v(f_khz, c->fmin_khz, c->fmax_khz, c->vmin_ratio);
        if (!(s > 0))
                return -EINVAL;
        double a = c->static_w, b = (p_w - a) / s;
        if (!(b > 0)) {
                b = 0;
                a = p_w;
        }
        *ret = (jl_rt_power_model){.a_w = a,
                                   .b_w = b,
                                   .fmin_khz = c->fmin_khz,
                                   .fmax_khz = c->fmax_khz,
                                   .vmin_ratio = c->vmin_ratio};
        return 0;
}

int jl_rt_coeffs_project(const jl_rt_coeffs *k, double t_s, double power_w, double cpi, double tpi,
                         double from_khz, double to_khz, double *ret_t_s, double *ret_power_w)
{
        if (!k || !(cpi > 0) || !(from_khz > 0) || !(to_khz > 0) || !(t_s > 0) || !isfinite(power_w) ||
            !isfinite(tpi))
                return -EINVAL;
        double p = k->A * power_w + k->B * tpi + k->C;
        double cpi2 = k->D * cpi + k->E * tpi + k->F;
        if (!(cpi2 > 0))
                return -EINVAL;
        if (ret_t_s)
                *ret_t_s = t_s * (cpi2 / cpi) * (from_khz / to_khz);
        if (ret_power_w)
                *ret_power_w = p;
        return 0;
}

int jl_rt_min_energy_choose(const unsigned long *freqs, size_t n, unsigned long def_khz, double t_ref_s,
                            double th, double margin, const jl_rt_time_model *tm,
                            const jl_rt_power_model *pm, unsigned long *ret_khz)
{
        if (!freqs || n == 0 || !tm || !pm || !(t_ref_s > 0) || !(th >= 0 && th <= 1) || !(margin >= 0) ||
            !ret_khz)
                return -EINVAL;
        double bound = (1.0 + th) * t_ref_s * (1.0 - margin);
        unsigned long best = def_khz;
        double best_e = jl_rt_power_project(pm, (double)def_khz) * jl_rt_time_project(tm, (double)def_khz);
        /* from the top down: a tie keeps the higher frequency */
        for (size_t i = n; i-- > 0;) {
                double f = (double)freqs[i];
                if (freqs[i] >= def_khz)
                        continue;
                double t = jl_rt_time_project(tm, f);
                if (t > bound)
                        continue;
                double e = jl_rt_power_project(pm, f) * t;
                if (e < best_e) {
                        best_e = e;
                        best = freqs[i];
                }
        }
        *ret_khz = best;
        return 0;
}

bool jl_rt_min_time_accept(double t_cur_s, double t_next_s, double f_cur_khz, double f_next_khz, double th)
{
        if (!(t_cur_s > 0) || !(f_cur_khz > 0) || !(f_next_khz > f_cur_khz))
                return false;
        return (t_cur_s - t_next_s) / t_cur_s >= th * (f_next_khz - f_cur_khz) / f_cur_khz;
}

size_t jl_rt_freq_index_up(const unsigned long *freqs, size_t n, unsigned long khz)
{
        for (size_t i = 0; i < n; i++)
                if (freqs[i] >= khz)
                        return i;
        return n ? n - 1 : 0;
}
