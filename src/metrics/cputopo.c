/* cputopo.c - CPU topology, cpufreq, cpuidle and SMT state from /sys/devices/system/cpu, and the cpufreq
 * setters (see cputopo.h). A missing or unreadable file leaves its field unknown; only a machine whose CPU
 * list cannot be read at all is an error. */
#include "cputopo.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fileio.h"
#include "macro.h"
#include "parse.h"

/* Frequencies above this (100 GHz) are garbage, not a CPU. */
#define FREQ_KHZ_MAX UINT64_C(100000000)

int jl_cpu_online_mask(uint64_t ret_mask[JL_CPU_MASK_WORDS])
{
        char buf[4096];
        int r = read_text_path(JL_CPU_SYSFS "/online", buf, sizeof(buf));
        if (r < 0)
                return r == -EFBIG || r == -ENODATA ? -EINVAL : r;
        uint64_t mask[JL_CPU_MASK_WORDS] = {0};
        r = parse_cpu_list(buf, mask, JL_CPU_MAX);
        if (r < 0)
                return r;
        if (r == 0)
                return -EINVAL; /* no CPU online is not a machine */
        memcpy(ret_mask, mask, sizeof(mask));
        return r;
}

/* Fallback when the online file is missing: every cpuN directory. */
static int enumerate_cpu_dirs(uint64_t *mask)
{
        DIR *d = opendir(JL_CPU_SYSFS);
        if (!d)
                return negative_errno();
        int n = 0, r = 0;
        struct dirent *de;
        while ((de = readdir(d))) {
                uint64_t c;
                if (strncmp(de->d_name, "cpu", 3) != 0 || !isdigit((unsigned char)de->d_name[3]) ||
                    parse_u64(de->d_name + 3, &c) < 0)
                        continue;
                if (c >= JL_CPU_MAX) {
                        r = -ERANGE;
                        break;
                }
                if (!jl_cpu_mask_test(mask, (int)c))
                        n++;
                mask[c / 64] |= UINT64_C(1) << (c % 64);
        }
        closedir(d);
        return r < 0 ? r : n;
}

static uint64_t read_khz(int cpu, const char *file)
{
        char path[128];
        uint64_t v;
        snprintf(path, sizeof(path), JL_CPU_SYSFS "/cpu%d/cpufreq/%s", cpu, file);
        if (read_u64_path(path, &v) < 0 || v == 0 || v > FREQ_KHZ_MAX)
                return 0;
        return v;
}

static int read_small_int(const char *path, int max)
{
        uint64_t v;
        if (read_u64_path(path, &v) < 0 || v > (uint64_t)max)
                return -1;
        return (int)v;
}

/* A one-word sysfs string ("performance", "intel_pstate"); "" when missing or not a plain word. */
static void read_word(const char *path, char *buf, size_t size)
{
        char tmp[128];
        int r = read_line_path(path, tmp, sizeof(tmp));
        if (r <= 0 || (size_t)r >= size) {
                buf[0] = '\0';
                return;
        }
        for (char *p = tmp; *p; p++)
                if (!isgraph((unsigned char)*p)) {
                        buf[0] = '\0';
                        return;
                }
        memcpy(buf, tmp, (size_t)r + 1);
}

static jl_tristate read_tristate(const char *path)
{
        uint64_t v;
        if (read_u64_path(path, &v) < 0 || v > 1)
                return JL_TRI_UNKNOWN;
        return v ? JL_TRI_YES : JL_TRI_NO;
}

static void read_cpu(int cpu, jl_cpu *c)
{
        char path[128];
        *c = (jl_cpu){.cpu = cpu};
        snprintf(path, sizeof(path), JL_CPU_SYSFS "/cpu%d/topology/physical_package_id", cpu);
        c->package = read_small_int(path, 1 << 20);
        snprintf(path, sizeof(path), JL_CPU_SYSFS "/cpu%d/topology/core_id", cpu);
        c->core = read_small_int(path, 1 << 20);
        c->cur_khz = read_khz(cpu, "scaling_cur_freq");
        c->min_khz = read_khz(cpu, "scaling_min_freq");
        c->max_khz = read_khz(cpu, "scaling_max_freq");
        c->cpuinfo_min_khz = read_khz(cpu, "cpuinfo_min_freq");
        c->cpuinfo_max_khz = read_khz(cpu, "cpuinfo_max_freq");
        snprintf(path, sizeof(path), JL_CPU_SYSFS "/cpu%d/cpufreq/scaling_governor", cpu);
        read_word(path, c->governor, sizeof(c->governor));
}

static void read_idle_states(int cpu, jl_cpu_info *info)
{
        char path[160];
        snprintf(path, sizeof(path), JL_CPU_SYSFS "/cpu%d/cpuidle", cpu);
        DIR *d = opendir(path);
        if (!d)
                return;
        closedir(d);
        info->idle_known = true;
        for (size_t k = 0; k < JL_CPUIDLE_MAX; k++) {
                snprintf(path, sizeof(path), JL_CPU_SYSFS "/cpu%d/cpuidle/state%zu/name", cpu, k);
                char name[sizeof(info->idle[0].name)];
                read_word(path, name, sizeof(name));
                if (!name[0])
                        break;
                memcpy(info->idle[k].name, name, sizeof(name));
                snprintf(path, sizeof(path), JL_CPU_SYSFS "/cpu%d/cpuidle/state%zu/disable", cpu, k);
                info->idle[k].disabled = read_tristate(path);
                info->n_idle_states = k + 1;
        }
}

int jl_cpu_info_read(jl_cpu_info *ret)
{
        _cleanup_free_ jl_cpu_info *info = calloc(1, sizeof(*info));
        if (!info)
                return -ENOMEM;

        int r = jl_cpu_online_mask(info->online);
        info->online_known = r > 0;
        if (r == -ENOENT) {
                r = enumerate_cpu_dirs(info->online);
                if (r == 0)
                        r = -ENOENT;
        }
        if (r < 0)
                return r;

        for (int c = 0; c < JL_CPU_MAX; c++)
                if (jl_cpu_mask_test(info->online, c))
                        read_cpu(c, &info->cpus[info->n_cpus++]);

        /* Packages: distinct ids; unknown when any CPU's id is. */
        info->n_packages = 0;
        for (size_t i = 0; i < info->n_cpus; i++) {
                if (info->cpus[i].package < 0) {
                        info->n_packages = -1;
                        break;
                }
                bool seen = false;
                for (size_t k = 0; k < i && !seen; k++)
                        seen = info->cpus[k].package == info->cpus[i].package;
                if (!seen)
                        info->n_packages++;
        }

        /* Governors: the first CPU's, and whether all agree (unknown when any is unknown and none differ).
         */
        const jl_cpu *first = &info->cpus[0];
        memcpy(info->governor, first->governor, sizeof(info->governor));
        bool any_unknown = false, differ = false;
        for (size_t i = 0; i < info->n_cpus; i++) {
                const char *g = info->cpus[i].governor;
                if (!g[0])
                        any_unknown = true;
                else if (info->governor[0] && strcmp(g, info->governor) != 0)
                        differ = true;
        }
        info->governors_agree = differ ? JL_TRI_NO : any_unknown ? JL_TRI_UNKNOWN : JL_TRI_YES;

        char path[128];
        snprintf(path, sizeof(path), JL_CPU_SYSFS "/cpu%d/cpufreq/scaling_driver", first->cpu);
        read_word(path, info->driver, sizeof(info->driver));

        jl_tristate t = read_tristate(JL_CPU_SYSFS "/intel_pstate/no_turbo");
        if (t != JL_TRI_UNKNOWN) {
                info->boost = t == JL_TRI_YES ? JL_TRI_NO : JL_TRI_YES;
                info->boost_source = "intel_pstate/no_turbo";
        } else {
                info->boost = read_tristate(JL_CPU_SYSFS "/cpufreq/boost");
                info->boost_source = info->boost == JL_TRI_UNKNOWN ? NULL : "cpufreq/boost";
        }

        read_word(JL_CPU_SYSFS "/smt/control", info->smt_control, sizeof(info->smt_control));
        info->smt_active = read_tristate(JL_CPU_SYSFS "/smt/active");

        read_idle_states(first->cpu, info);

        memcpy(ret, info, sizeof(*info));
        return 0;
}

static int write_u64(int cpu, const char *file, uint64_t v)
{
        char path[128], text[32];
        snprintf(path, sizeof(path), JL_CPU_SYSFS "/cpu%d/cpufreq/%s", cpu, file);
        snprintf(text, sizeof(text), "%" PRIu64, v);
        return write_text_path(path, text);
}

int jl_cpufreq_set_limits(int cpu, uint64_t min_khz, uint64_t max_khz)
{
        if (cpu < 0 || cpu >= JL_CPU_MAX || min_khz == 0 || max_khz == 0 || min_khz > max_khz ||
            max_khz > FREQ_KHZ_MAX)
                return -EINVAL;
        char path[128];
        uint64_t cur_max;
        snprintf(path, sizeof(path), JL_CPU_SYSFS "/cpu%d/cpufreq/scaling_max_freq", cpu);
        int r = read_u64_path(path, &cur_max);
        if (r < 0)
                return r;
        /* Raising the window above the current maximum: maximum first; otherwise minimum first. */
        const bool max_first = min_khz > cur_max;
        r = max_first ? write_u64(cpu, "scaling_max_freq", max_khz)
                      : write_u64(cpu, "scaling_min_freq", min_khz);
        if (r < 0)
                return r;
        return max_first ? write_u64(cpu, "scaling_min_freq", min_khz)
                         : write_u64(cpu, "scaling_max_freq", max_khz);
}

int jl_cpufreq_set_governor(int cpu, const char *gov)
{
        if (cpu < 0 || cpu >= JL_CPU_MAX || !gov)
                return -EINVAL;
        size_t n = strlen(gov);
        if (n == 0 || n > 15) /* CPUFREQ_NAME_LEN - 1 */
                return -EINVAL;
        for (const char *p = gov; *p; p++)
                if (!islower((unsigned char)*p) && !isdigit((unsigned char)*p) && *p != '_' && *p != '-')
                        return -EINVAL;
        char path[128];
        snprintf(path, sizeof(path), JL_CPU_SYSFS "/cpu%d/cpufreq/scaling_governor", cpu);
        return write_text_path(path, gov);
}

int jl_cpufreq_set_speed(int cpu, uint64_t khz)
{
        if (cpu < 0 || cpu >= JL_CPU_MAX || khz == 0 || khz > FREQ_KHZ_MAX)
                return -EINVAL;
        char path[128], gov[32];
        snprintf(path, sizeof(path), JL_CPU_SYSFS "/cpu%d/cpufreq/scaling_governor", cpu);
        int r = read_line_path(path, gov, sizeof(gov));
        if (r < 0)
                return r;
        if (strcmp(gov, "userspace") != 0)
                return -EOPNOTSUPP;
        return write_u64(cpu, "scaling_setspeed", khz);
}
