/* work.c - joule-emu's model of time and power across frequencies (tests/emu/README.md, "Workloads"): the
 * workload kinds (compute, mixed, memory, and gpuwait: a CPU that waits for its GPU), the time of one
 * iteration at a frequency (compute cycles / f + memory time), the core and DRAM activity that follow from
 * it, dynamic power ~ activity × V(f)^2 × f with V linear in f, the node's power for given per-CPU workloads
 * and frequencies (the server's and the sweep's one function), and the sweep: the exact time and energy per
 * iteration at every available frequency. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "emu.h"

/* The kinds' defaults, relative to the model's f_max so that each model keeps their character: at f_max an
 * iteration lasts 20 ms; compute is all cycles, mixed half and half, memory 2 % cycles; gpuwait none: the
 * whole iteration waits for the GPU (its time does not depend on the CPU's frequency, its power does). */
static const struct {
        const char *name;
        double compute_frac; /* of the iteration's time at f_max */
} kinds[] = {
    [WORK_NONE] = {"idle", 0},
    [WORK_COMPUTE] = {"compute", 1.0},
    [WORK_MIXED] = {"mixed", 0.5},
    [WORK_MEMORY] = {"memory", 0.02},
    [WORK_GPUWAIT] = {"gpuwait", 0.0},
};

const char *work_kind_name(work_kind k)
{
        return (unsigned)k < sizeof(kinds) / sizeof(kinds[0]) ? kinds[k].name : "?";
}

static bool parse_pos(const char *s, double lo, double hi, double *ret)
{
        char *end;
        if (!s)
                return false;
        errno = 0;
        double v = strtod(s, &end);
        if (errno || end == s || *end || !isfinite(v) || v < lo || v > hi)
                return false;
        *ret = v;
        return true;
}

int work_parse(const model *m, int argc, char **argv, work *ret)
{
        work w = {.kind = WORK_NONE, .activity = 1.0};
        if (argc < 1 || argc > 4)
                return -EINVAL;
        size_t k;
        for (k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++)
                if (strcmp(argv[0], kinds[k].name) == 0)
                        break;
        if (k == sizeof(kinds) / sizeof(kinds[0]))
                return -EINVAL;
        w.kind = (work_kind)k;
        if (w.kind == WORK_NONE) {
                *ret = w;
                return argc == 1 ? 0 : -EINVAL;
        }
        double t = WORK_ITER_S_AT_FMAX, fmax_hz = m->fmax_khz * 1e3;
        w.cycles = kinds[k].compute_frac * t * fmax_hz;
        w.mem_s = (1 - kinds[k].compute_frac) * t;
        if (argc == 2)
                return -EINVAL;
        if (argc >= 3 && (!parse_pos(argv[1], 0, 1e13, &w.cycles) || !parse_pos(argv[2], 0, 3600, &w.mem_s)))
                return -EINVAL;
        if (argc == 4 && !parse_pos(argv[3], 0, 1, &w.activity))
                return -EINVAL;
        if (w.cycles <= 0 && w.mem_s <= 0)
                return -EINVAL;
        *ret = w;
        return 0;
}

double work_time_s(const work *w, uint32_t khz)
{
        return w->cycles / (khz * 1e3) + w->mem_s;
}

/* Cores are busy while they compute (activity), and stall at WORK_STALL_ACTIVITY of it while they wait for
 * memory (gpuwait: spin at WORK_SPIN_ACTIVITY while they wait for the GPU); DRAM is busy for the memory part
 * (idle while a CPU waits for its GPU). */
double work_core_activity(const work *w, uint32_t khz)
{
        double tc = w->cycles / (khz * 1e3), t = tc + w->mem_s;
        double wait = w->kind == WORK_GPUWAIT ? WORK_SPIN_ACTIVITY : WORK_STALL_ACTIVITY;
        return t > 0 ? w->activity * (tc + wait * w->mem_s) / t : 0;
}

double work_mem_activity(const work *w, uint32_t khz)
{
        double t = work_time_s(w, khz);
        return t > 0 && w->kind != WORK_GPUWAIT ? w->mem_s / t : 0;
}

/* V(f) / V_max, V linear from V_min at f_min to V_max at f_max. */
double volt_ratio(const model *m, uint32_t khz)
{
        double span = (double)m->fmax_khz - m->fmin_khz,
               x = span > 0 ? (khz - (double)m->fmin_khz) / span : 1;
        if (x < 0)
                x = 0;
        if (x > 1)
                x = 1;
        return WORK_VMIN_OVER_VMAX + (1 - WORK_VMIN_OVER_VMAX) * x;
}

void node_power(const model *m, const work *w, const uint32_t *khz, const bool *online, double load,
                double *pkg_w, double *dram_w, double *node_w)
{
        int per_pkg = m->cores_per_pkg * m->threads_per_core;
        double cpu_dyn = m->dyn_w / per_pkg, node = m->rest_w;
        for (int p = 0; p < m->npkg; p++) {
                double dyn = 0, mem = 0;
                for (int c = p * per_pkg; c < (p + 1) * per_pkg; c++) {
                        uint32_t f = khz[c] ? khz[c] : m->fmin_khz;
                        if (w[c].kind == WORK_NONE) {
                                /* the plain load model: load × dyn × f/f_max per CPU */
                                if (online[c])
                                        dyn += cpu_dyn * load * ((double)f / m->fmax_khz);
                                mem += load;
                                continue;
                        }
                        double v = volt_ratio(m, f);
                        if (online[c])
                                dyn += cpu_dyn * work_core_activity(&w[c], f) * v * v *
                                       ((double)f / m->fmax_khz);
                        mem += work_mem_activity(&w[c], f);
                }
                pkg_w[p] = m->idle_w + dyn;
                dram_w[p] = m->dram_idle_w + m->dram_dyn_w * mem / per_pkg;
                node += pkg_w[p] + dram_w[p];
        }
        *node_w = node;
}

/* The frequencies a sweep visits: intel_pstate's P-states (100 MHz steps), acpi-cpufreq's available list and
 * the boost frequency. Returns how many. */
static int sweep_freqs(const model *m, uint32_t *khz, int max)
{
        int n = 0;
        if (strcmp(m->driver, "intel_pstate") == 0) {
                for (uint32_t f = m->fmin_khz; f <= m->fmax_khz && n < max; f += 100000)
                        khz[n++] = f;
                return n;
        }
        khz[n++] = m->fmin_khz;
        khz[n++] = (m->fbase_khz + m->fmin_khz) / 2;
        khz[n++] = m->fbase_khz;
        if (m->fmax_khz > m->fbase_khz)
                khz[n++] = m->fmax_khz;
        return n;
}

int work_sweep(const model *m, const work *w, const bool *on_set, const bool *online, char *buf, size_t size)
{
        uint32_t fs[64], khz[EMU_MAX_CPU];
        work per_cpu[EMU_MAX_CPU];
        double pkg[EMU_MAX_PKG], dram[EMU_MAX_PKG], t[64], e[64], pw[64];
        int nf = sweep_freqs(m, fs, 64), ncpu = model_ncpu(m), best = 0;
        size_t len = 0;
#define OUT(...)                                                                                            \
        do {                                                                                                \
                if (len < size)                                                                             \
                        len += (size_t)snprintf(buf + len, size - len, __VA_ARGS__);                        \
        } while (0)
        OUT("{\"kind\": \"%s\", \"cycles\": %.0f, \"mem_s\": %.9f, \"activity\": %.4f, \"ref_khz\": %u, "
            "\"points\": [",
            work_kind_name(w->kind), w->cycles, w->mem_s, w->activity, fs[nf - 1]);
        for (int i = 0; i < nf; i++) {
                double node;
                for (int c = 0; c < ncpu; c++) {
                        per_cpu[c] = on_set[c] ? *w : (work){.kind = WORK_NONE};
                        khz[c] = fs[i];
                }
                node_power(m, per_cpu, khz, online, 0, pkg, dram, &node);
                t[i] = work_time_s(w, fs[i]);
                pw[i] = node;
                e[i] = t[i] * node;
                if (e[i] < e[best])
                        best = i;
                OUT("%s{\"khz\": %u, \"time_s\": %.9f, \"power_w\": %.6f, \"energy_j\": %.9f}",
                    i ? ", " : "", fs[i], t[i], pw[i], e[i]);
        }
        OUT("], \"optimal_khz\": %u, \"min_energy\": {", fs[best]);
        /* min_energy: the lowest energy whose time stays within th of the time at the reference (the top) */
        static const char *const ths[] = {"0.05", "0.1", "0.2"};
        for (size_t k = 0; k < 3; k++) {
                double th = strtod(ths[k], NULL);
                int pick = nf - 1;
                for (int i = 0; i < nf; i++)
                        if (t[i] <= t[nf - 1] * (1 + th) && e[i] < e[pick])
                                pick = i;
                OUT("%s\"%s\": %u", k ? ", " : "", ths[k], fs[pick]);
        }
        OUT("}}\n");
#undef OUT
        return len < size ? 0 : -ENOBUFS;
}
