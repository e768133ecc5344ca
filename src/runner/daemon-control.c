/* daemon-control.c - the control workload's accuracy check (the seed's "accuracy control"): one metric of
 * one phase of a new control run against the same metric of earlier good control runs, by the standard
 * deviation of the window relative to its mean or absolute, against a per-metric threshold. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "daemon.h"

void jl_control_limits_from(const joule_config *c, jl_control_limits *ret)
{
        jl_control_limits l = {
            .absolute = c->runner.control_threshold_type &&
                        strcmp(c->runner.control_threshold_type, "absolute") == 0,
        };
        l.threshold[JL_CONTROL_ENERGY] = c->runner.control_energy_threshold;
        l.threshold[JL_CONTROL_POWER] = c->runner.control_power_threshold;
        l.threshold[JL_CONTROL_DURATION] = c->runner.control_duration_threshold;
        *ret = l;
}

const char *jl_control_metric_name(jl_control_metric m)
{
        static const char *const names[] = {"energy", "power", "duration"};
        return m >= 0 && m < _JL_CONTROL_METRIC_MAX ? names[m] : "?";
}

const char *jl_control_metric_unit(jl_control_metric m)
{
        static const char *const units[] = {"J", "W", "s"};
        return m >= 0 && m < _JL_CONTROL_METRIC_MAX ? units[m] : "";
}

int jl_control_check(const jl_control_limits *l, jl_control_metric m, const char *phase, double value,
                     const double *history, size_t n, char *msg, size_t msglen)
{
        if (n < 2 || m < 0 || m >= _JL_CONTROL_METRIC_MAX)
                return -EINVAL;
        double sum = value;
        for (size_t i = 0; i < n; i++)
                sum += history[i];
        double mean = sum / (double)(n + 1), ss = (value - mean) * (value - mean);
        for (size_t i = 0; i < n; i++)
                ss += (history[i] - mean) * (history[i] - mean);
        double sd = sqrt(ss / (double)n); /* sample standard deviation of the n + 1 values */
        double dev = l->absolute ? sd : (mean != 0 ? sd / fabs(mean) : (sd == 0 ? 0 : INFINITY));
        double th = l->threshold[m];
        if (!(dev > th) && isfinite(value))
                return 0;
        if (msg && msglen) {
                double hmean = (sum - value) / (double)n;
                if (l->absolute)
                        snprintf(
                            msg, msglen,
                            "phase '%s': %s %.6g %s against a mean of %.6g %s over the last %zu control "
                            "runs: standard deviation %.6g %s > threshold %.6g %s",
                            phase, jl_control_metric_name(m), value, jl_control_metric_unit(m), hmean,
                            jl_control_metric_unit(m), n, sd, jl_control_metric_unit(m), th,
                            jl_control_metric_unit(m));
                else
                        snprintf(
                            msg, msglen,
                            "phase '%s': %s %.6g %s against a mean of %.6g %s over the last %zu control "
                            "runs: relative standard deviation %.2f%% > threshold %.2f%%",
                            phase, jl_control_metric_name(m), value, jl_control_metric_unit(m), hmean,
                            jl_control_metric_unit(m), n, dev * 100, th * 100);
        }
        return 1;
}
