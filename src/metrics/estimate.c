/* estimate.c - the "estimate" provider, for machines without a power sensor (VMs): one estimated whole-node
 * energy counter that integrates P = idle_w + (max_w - idle_w) × u × f/f_max between reads, with u the CPU
 * utilization from /proc/stat and f/f_max the mean current/maximum cpufreq frequency (1 without cpufreq).
 * The model is described in docs/metrics.md. The sampler opens it only when nothing is measured. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cputopo.h"
#include "fileio.h"
#include "macro.h"
#include "procstat.h"
#include "provider.h"
#include "timeutil.h"

typedef struct {
        int fd;           /* scaling_cur_freq */
        uint64_t max_khz; /* cpuinfo_max_freq */
} freq_input;

typedef struct {
        double idle_w, max_w;
        jl_proc_stat_reader stat;
        jl_cpu_times prev;
        double util; /* over the latest interval that had ticks */
        uint64_t last_ns;
        double energy_uj; /* the integral since open */
        size_t nfreq;
        freq_input freq[];
} estimate_state;

static void estimate_close(void *state)
{
        estimate_state *st = state;
        if (!st)
                return;
        for (size_t i = 0; i < st->nfreq; i++)
                close(st->freq[i].fd);
        jl_proc_stat_close(&st->stat);
        free(st);
}

/* f/f_max averaged over the CPUs whose frequency reads; 1 when none does (no cpufreq: assume full speed). */
static double freq_ratio(const estimate_state *st)
{
        double sum = 0;
        size_t n = 0;
        for (size_t i = 0; i < st->nfreq; i++) {
                uint64_t khz;
                if (read_u64_fd(st->freq[i].fd, &khz) < 0 || khz == 0)
                        continue;
                double x = (double)khz / (double)st->freq[i].max_khz;
                sum += x > 1.0 ? 1.0 : x;
                n++;
        }
        return n ? sum / (double)n : 1.0;
}

static int estimate_open(const jl_provider_config *cfg, jl_channels *channels, jl_notes *notes,
                         void **ret_state)
{
        jl_provider_config def;
        if (!cfg) {
                jl_provider_config_default(&def);
                cfg = &def;
        }
        double idle = cfg->estimate_idle_w, max = cfg->estimate_max_w;
        if (!isfinite(idle) || !isfinite(max) || idle < 0 || max < idle || max > 1e5) {
                jl_notes_add(notes, "estimate", -EINVAL,
                             "estimate_idle_w %g W and estimate_max_w %g W: need 0 <= idle <= max <= 100000",
                             idle, max);
                return -EINVAL;
        }

        uint64_t mask[JL_CPU_MASK_WORDS];
        int ncpu = jl_cpu_online_mask(mask);
        if (ncpu < 0)
                ncpu = 0; /* no CPU list: no frequencies either, f/f_max = 1 */
        estimate_state *st = calloc(1, sizeof(*st) + (size_t)ncpu * sizeof(freq_input));
        if (!st)
                return -ENOMEM;
        st->stat = (jl_proc_stat_reader)JL_PROC_STAT_READER_INIT;
        st->idle_w = idle;
        st->max_w = max;
        int r = jl_proc_stat_open(&st->stat);
        if (r >= 0)
                r = jl_proc_stat_read(&st->stat, &st->prev);
        if (r < 0) {
                jl_notes_add(notes, "estimate", r, "/proc/stat: %s: no utilization to estimate from",
                             jl_errno_hint(r));
                estimate_close(st);
                return r;
        }
        for (int c = 0; c < JL_CPU_MAX && ncpu > 0; c++) {
                if (!jl_cpu_mask_test(mask, c))
                        continue;
                char path[128];
                uint64_t max_khz, cur;
                snprintf(path, sizeof(path), JL_CPU_SYSFS "/cpu%d/cpufreq/cpuinfo_max_freq", c);
                if (read_u64_path(path, &max_khz) < 0 || max_khz == 0)
                        continue;
                snprintf(path, sizeof(path), JL_CPU_SYSFS "/cpu%d/cpufreq/scaling_cur_freq", c);
                int fd = open_ro(path);
                if (fd < 0)
                        continue;
                if (read_u64_fd(fd, &cur) < 0) {
                        close(fd);
                        continue;
                }
                st->freq[st->nfreq++] = (freq_input){.fd = fd, .max_khz = max_khz};
        }

        jl_channel ch = {
            .name = "node-estimate",
            .provider = "estimate",
            .kind = JL_KIND_ENERGY,
            .scope = JL_SCOPE_NODE,
            .estimated = true,
            .wrap_uj = 0,
        };
        r = jl_channels_add(channels, &ch);
        if (r < 0) {
                estimate_close(st);
                return r;
        }
        st->last_ns = mono_ns();
        *ret_state = st;
        return 0;
}

static int estimate_read(void *state, jl_value *values)
{
        estimate_state *st = state;
        uint64_t t = mono_ns();
        jl_cpu_times now;
        int r = jl_proc_stat_read(&st->stat, &now);
        if (r < 0) {
                /* Keep the time baseline: the next good read integrates the whole gap with its utilization.
                 */
                values[0].err = r;
                return r;
        }
        double util, steal;
        if (jl_cpu_times_delta(&st->prev, &now, &util, &steal) == 0) {
                st->util = util;
                st->prev = now;
        } /* else no tick yet: keep the latest utilization and the baseline */

        double p_w = st->idle_w + (st->max_w - st->idle_w) * st->util * freq_ratio(st);
        if (t > st->last_ns)
                st->energy_uj += p_w * (double)(t - st->last_ns) / 1e3; /* W × ns / 1e3 = µJ */
        st->last_ns = t;
        values[0] = (jl_value){.counter = (uint64_t)st->energy_uj};
        return 0;
}

const jl_provider_ops jl_provider_estimate = {
    .name = "estimate",
    .description = "estimated node energy from CPU utilization and frequency (machines without sensors)",
    .min_period_ns = 500 * NSEC_PER_MSEC, /* slow gauges: read twice a second on ticks */
    .open = estimate_open,
    .read = estimate_read,
    .close = estimate_close,
};
