/* test-cpu.c - CPU topology and cpufreq state (cputopo.c), the cpufreq setters, and the cpufreq, proc and
 * estimate providers, against the fixture tests/fixtures/cpu-basic (4 CPUs in 2 packages, intel_pstate,
 * SMT on, 4 idle states, a /proc/stat) shown at /sys/devices/system/cpu and /proc/stat by tests/ns-run.sh.
 * Scenarios change the fixture copy in place (the bind mounts show the same inodes).
 *
 * Usage: run-fixture-copy.sh tests/fixtures/cpu-basic DST -- test-cpu DST */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cputopo.h"
#include "fileio.h"
#include "provider.h"
#include "sampler.h"
#include "tap.h"
#include "timeutil.h"

static const char *fx;

#define CPU "sys/devices/system/cpu/"

static void fx_write(const char *rel, const char *text)
{
        char p[512];
        snprintf(p, sizeof(p), "%s/%s", fx, rel);
        FILE *f = fopen(p, "we"); /* truncates in place: the bind mount keeps showing this inode */
        if (!f) {
                printf("Bail out! cannot write %s: %m\n", p);
                exit(1);
        }
        fputs(text, f);
        fclose(f);
}

static void fx_rm(const char *rel)
{
        char cmd[600];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s/%s'", fx, rel);
        if (system(cmd) != 0) {
                printf("Bail out! %s failed\n", cmd);
                exit(1);
        }
}

/* The fixture file's first line, as the test reads it back. */
static const char *fx_read(const char *rel)
{
        static char buf[128];
        char p[512];
        snprintf(p, sizeof(p), "%s/%s", fx, rel);
        if (read_line_path(p, buf, sizeof(buf)) < 0)
                snprintf(buf, sizeof(buf), "(unreadable)");
        return buf;
}

static void sleep_ms(long ms)
{
        struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
        nanosleep(&ts, NULL);
}

/* /proc/stat with the aggregate line built from ten counters (and 4 cpuN lines). */
static void fx_proc_stat(const uint64_t f[10])
{
        char buf[1024];
        snprintf(buf, sizeof(buf),
                 "cpu  %lu %lu %lu %lu %lu %lu %lu %lu %lu %lu\n"
                 "cpu0 1 0 0 1 0 0 0 0 0 0\ncpu1 1 0 0 1 0 0 0 0 0 0\ncpu2 1 0 0 1 0 0 0 0 0 0\n"
                 "cpu3 1 0 0 1 0 0 0 0 0 0\nintr 1 0\nctxt 5\nbtime 1763760000\n",
                 (unsigned long)f[0], (unsigned long)f[1], (unsigned long)f[2], (unsigned long)f[3],
                 (unsigned long)f[4], (unsigned long)f[5], (unsigned long)f[6], (unsigned long)f[7],
                 (unsigned long)f[8], (unsigned long)f[9]);
        fx_write("proc/stat", buf);
}

static void test_info(void)
{
        jl_cpu_info *info = calloc(1, sizeof(*info));
        if (!info)
                return;
        is_int(jl_cpu_info_read(info), 0, "cpu info");
        is_int(info->n_cpus, 4, "4 online CPUs");
        ok(info->online_known && jl_cpu_mask_test(info->online, 3) && !jl_cpu_mask_test(info->online, 4),
           "online mask 0-3");
        is_int(info->n_packages, 2, "2 packages");
        ok(info->cpus[2].cpu == 2 && info->cpus[2].package == 1 && info->cpus[2].core == 0,
           "cpu2: package 1 core 0");
        is_int(info->cpus[1].cur_khz, 1600000, "cpu1 scaling_cur_freq");
        ok(info->cpus[3].min_khz == 800000 && info->cpus[3].max_khz == 3000000, "scaling min/max");
        ok(info->cpus[3].cpuinfo_min_khz == 800000 && info->cpus[3].cpuinfo_max_khz == 3200000,
           "cpuinfo min/max");
        is_str(info->governor, "powersave", "governor of cpu0");
        is_str(info->cpus[3].governor, "performance", "cpu3 governor");
        is_int(info->governors_agree, JL_TRI_NO, "governors do not agree");
        is_str(info->driver, "intel_pstate", "driver");
        is_int(info->boost, JL_TRI_YES, "turbo on (no_turbo 0)");
        is_str(info->boost_source, "intel_pstate/no_turbo", "boost source");
        is_str(info->smt_control, "on", "smt control");
        is_int(info->smt_active, JL_TRI_YES, "smt active");
        ok(info->idle_known && info->n_idle_states == 4, "4 idle states");
        ok(strcmp(info->idle[0].name, "POLL") == 0 && strcmp(info->idle[2].name, "C1E") == 0 &&
               strcmp(info->idle[3].name, "C6") == 0,
           "idle state names");
        ok(info->idle[2].disabled == JL_TRI_YES && info->idle[1].disabled == JL_TRI_NO,
           "C1E disabled, C1 not");

        /* Unknowns: each missing or broken file leaves only its own field unknown. */
        fx_write(CPU "cpu3/cpufreq/scaling_governor", "powersave\n");
        fx_rm(CPU "intel_pstate");
        char dir[512];
        snprintf(dir, sizeof(dir), "%s/" CPU "cpufreq", fx);
        mkdir(dir, 0755);
        fx_write(CPU "cpufreq/boost", "0\n");
        fx_rm(CPU "smt");
        fx_rm(CPU "cpu2/topology/physical_package_id");
        fx_write(CPU "cpu1/cpufreq/scaling_cur_freq", "garbage\n");
        fx_write(CPU "cpu1/cpufreq/scaling_max_freq", "-5\n");
        fx_write(CPU "cpu0/cpuidle/state3/disable", "");
        is_int(jl_cpu_info_read(info), 0, "cpu info with holes");
        is_int(info->governors_agree, JL_TRI_YES, "governors agree now");
        ok(info->boost == JL_TRI_NO && info->boost_source &&
               strcmp(info->boost_source, "cpufreq/boost") == 0,
           "boost off from cpufreq/boost");
        ok(info->smt_control[0] == '\0' && info->smt_active == JL_TRI_UNKNOWN, "smt unknown");
        ok(info->n_packages == -1 && info->cpus[2].package == -1, "packages unknown");
        ok(info->cpus[1].cur_khz == 0 && info->cpus[1].max_khz == 0 && info->cpus[1].min_khz == 800000,
           "garbage and negative frequencies unknown, the others read");
        is_int(info->idle[3].disabled, JL_TRI_UNKNOWN, "empty disable file: unknown");
        fx_rm(CPU "cpufreq/boost");
        fx_write(CPU "cpu1/cpufreq/scaling_governor", "");
        is_int(jl_cpu_info_read(info), 0, "cpu info without boost files");
        ok(info->boost == JL_TRI_UNKNOWN && info->boost_source == NULL, "boost unknown");
        is_int(info->governors_agree, JL_TRI_UNKNOWN, "a governor unknown: agreement unknown");

        /* The online list. */
        fx_rm(CPU "online");
        is_int(jl_cpu_info_read(info), 0, "no online file");
        ok(!info->online_known && info->n_cpus == 4, "falls back to the cpuN directories");
        uint64_t mask[JL_CPU_MASK_WORDS];
        is_int(jl_cpu_online_mask(mask), -ENOENT, "online mask: -ENOENT");
        info->n_cpus = 99;
        fx_write(CPU "online", "0-3x\n");
        is_int(jl_cpu_info_read(info), -EINVAL, "garbage online list");
        is_int(info->n_cpus, 99, "untouched on failure");
        fx_write(CPU "online", "0-4095\n");
        is_int(jl_cpu_info_read(info), -ERANGE, "more CPUs than JL_CPU_MAX");
        fx_write(CPU "online", "");
        is_int(jl_cpu_online_mask(mask), -EINVAL, "empty online file");
        fx_write(CPU "online", "0-3\n");
        fx_write(CPU "cpu1/cpufreq/scaling_cur_freq", "1600000\n");
        fx_write(CPU "cpu1/cpufreq/scaling_max_freq", "3000000\n");
        fx_write(CPU "cpu1/cpufreq/scaling_governor", "powersave\n");
        fx_write(CPU "cpu2/topology/physical_package_id", "1\n");
        free(info);
}

static void test_setters(void)
{
        is_int(jl_cpufreq_set_limits(0, 1000000, 2000000), 0, "lower the limits");
        is_str(fx_read(CPU "cpu0/cpufreq/scaling_min_freq"), "1000000", "min written");
        is_str(fx_read(CPU "cpu0/cpufreq/scaling_max_freq"), "2000000", "max written");
        is_int(jl_cpufreq_set_limits(0, 2500000, 2800000), 0, "raise the window above the old maximum");
        is_str(fx_read(CPU "cpu0/cpufreq/scaling_min_freq"), "2500000", "min written");
        is_str(fx_read(CPU "cpu0/cpufreq/scaling_max_freq"), "2800000", "max written");

        /* The order: make scaling_min_freq unwritable (a directory) and see which write happened. */
        fx_rm(CPU "cpu1/cpufreq/scaling_min_freq");
        char p[512];
        snprintf(p, sizeof(p), "%s/" CPU "cpu1/cpufreq/scaling_min_freq", fx);
        mkdir(p, 0755);
        is_int(jl_cpufreq_set_limits(1, 1000000, 2000000), -EISDIR, "lowering: the minimum fails");
        is_str(fx_read(CPU "cpu1/cpufreq/scaling_max_freq"), "3000000",
               "lowering writes the minimum first: the maximum is untouched");
        fx_write(CPU "cpu1/cpufreq/scaling_max_freq", "1500000\n");
        is_int(jl_cpufreq_set_limits(1, 2000000, 2500000), -EISDIR, "raising: the minimum fails");
        is_str(fx_read(CPU "cpu1/cpufreq/scaling_max_freq"), "2500000", "raising writes the maximum first");
        rmdir(p);
        fx_write(CPU "cpu1/cpufreq/scaling_min_freq", "800000\n");
        fx_write(CPU "cpu1/cpufreq/scaling_max_freq", "3000000\n");

        is_int(jl_cpufreq_set_limits(0, 2000000, 1000000), -EINVAL, "min > max");
        is_int(jl_cpufreq_set_limits(0, 0, 1000000), -EINVAL, "zero");
        is_int(jl_cpufreq_set_limits(-1, 1000000, 2000000), -EINVAL, "cpu -1");
        is_int(jl_cpufreq_set_limits(JL_CPU_MAX, 1000000, 2000000), -EINVAL, "cpu beyond JL_CPU_MAX");
        is_int(jl_cpufreq_set_limits(9, 1000000, 2000000), -ENOENT, "a CPU that does not exist");

        fx_write(CPU "cpu0/cpufreq/scaling_governor", ""); /* sysfs replaces; a regular file must be empty */
        is_int(jl_cpufreq_set_governor(0, "performance"), 0, "set governor");
        is_str(fx_read(CPU "cpu0/cpufreq/scaling_governor"), "performance", "governor written");
        is_int(jl_cpufreq_set_governor(0, ""), -EINVAL, "empty governor");
        is_int(jl_cpufreq_set_governor(0, "per formance"), -EINVAL, "space");
        is_int(jl_cpufreq_set_governor(0, "../../x"), -EINVAL, "path characters");
        is_int(jl_cpufreq_set_governor(0, "a_very_long_governor"), -EINVAL, "longer than 15");
        is_int(jl_cpufreq_set_governor(0, NULL), -EINVAL, "NULL");

        is_int(jl_cpufreq_set_speed(0, 2000000), -EOPNOTSUPP, "setspeed needs the userspace governor");
        fx_write(CPU "cpu0/cpufreq/scaling_governor", "userspace\n");
        fx_write(CPU "cpu0/cpufreq/scaling_setspeed", "");
        is_int(jl_cpufreq_set_speed(0, 2000000), 0, "setspeed under userspace");
        is_str(fx_read(CPU "cpu0/cpufreq/scaling_setspeed"), "2000000", "speed written");
        is_int(jl_cpufreq_set_speed(0, 0), -EINVAL, "zero speed");
        is_int(jl_cpufreq_set_speed(7, 2000000), -ENOENT, "no such CPU");
        fx_write(CPU "cpu0/cpufreq/scaling_governor", "powersave\n");
        fx_write(CPU "cpu0/cpufreq/scaling_min_freq", "800000\n");
        fx_write(CPU "cpu0/cpufreq/scaling_max_freq", "3000000\n");
}

typedef struct {
        jl_channels ch;
        jl_notes notes;
        void *state;
        jl_value v[16];
        int r;
} opened;

static void popen_(opened *o, const jl_provider_ops *ops, const jl_provider_config *cfg)
{
        *o = (opened){0};
        o->r = ops->open(cfg, &o->ch, &o->notes, &o->state);
}

static void pclose_(opened *o, const jl_provider_ops *ops)
{
        if (o->r == 0)
                ops->close(o->state);
        jl_channels_free(&o->ch);
        jl_notes_free(&o->notes);
}

static int pread_(opened *o, const jl_provider_ops *ops)
{
        memset(o->v, 0, sizeof(o->v));
        return ops->read(o->state, o->v);
}

static void test_cpufreq(void)
{
        const jl_provider_ops *ops = &jl_provider_cpufreq;
        opened o;
        popen_(&o, ops, NULL);
        is_int(o.r, 0, "cpufreq opens");
        is_int(o.ch.n, 4, "one channel per online CPU");
        for (size_t i = 0; i < o.ch.n && i < 4; i++) {
                char want[8];
                snprintf(want, sizeof(want), "cpu%zu", i);
                ok(strcmp(o.ch.items[i].name, want) == 0 && o.ch.items[i].kind == JL_KIND_FREQUENCY &&
                       o.ch.items[i].scope == JL_SCOPE_OTHER &&
                       strcmp(o.ch.items[i].provider, "cpufreq") == 0,
                   "channel %s: frequency, other", want);
        }
        is_int(pread_(&o, ops), 0, "read");
        ok(o.v[0].err == 0 && o.v[0].gauge == 1200000 && o.v[3].err == 0 && o.v[3].gauge == 2400000,
           "cpu0 1.2 GHz, cpu3 2.4 GHz (kHz)");

        /* cpu2 goes away mid-run (its file empties, turns to garbage, to 0), then comes back. */
        fx_write(CPU "cpu2/cpufreq/scaling_cur_freq", "");
        fx_write(CPU "cpu3/cpufreq/scaling_cur_freq", "<unknown>\n");
        fx_write(CPU "cpu1/cpufreq/scaling_cur_freq", "0\n");
        is_int(pread_(&o, ops), 0, "read with broken CPUs");
        is_int(o.v[2].err, -ENODATA, "empty: -ENODATA");
        is_int(o.v[3].err, -EINVAL, "garbage: -EINVAL");
        is_int(o.v[1].err, -ERANGE, "0 kHz: -ERANGE");
        ok(o.v[0].err == 0 && o.v[0].gauge == 1200000, "cpu0 unaffected");
        fx_write(CPU "cpu1/cpufreq/scaling_cur_freq", "1600000\n");
        fx_write(CPU "cpu2/cpufreq/scaling_cur_freq", "2000000\n");
        fx_write(CPU "cpu3/cpufreq/scaling_cur_freq", "2400000\n");
        pread_(&o, ops);
        ok(o.v[2].err == 0 && o.v[2].gauge == 2000000, "cpu2 back");
        pclose_(&o, ops);

        /* Only cpuinfo_cur_freq (root only) for cpu1; an online CPU without cpufreq (cpu3). */
        char p[512];
        snprintf(p, sizeof(p), "%s/" CPU "cpu1/cpufreq/scaling_cur_freq", fx);
        if (rename(p, "scaling_cur_freq.saved") < 0)
                printf("# rename failed\n");
        snprintf(p, sizeof(p), "%s/" CPU "cpu1/cpufreq/cpuinfo_cur_freq", fx);
        chmod(p, 0400);
        if (rename(CPU "cpu3/cpufreq", CPU "cpu3/cpufreq.off") < 0)
                printf("# rename failed\n");
        popen_(&o, ops, NULL);
        is_int(o.r, 0, "cpufreq opens with holes");
        is_int(o.ch.n, 3, "cpu0, cpu1 (cpuinfo_cur_freq), cpu2");
        pread_(&o, ops);
        ok(o.ch.n == 3 && strcmp(o.ch.items[1].name, "cpu1") == 0 && o.v[1].gauge == 1600000,
           "cpu1 from cpuinfo_cur_freq");
        pclose_(&o, ops);
        fflush(stdout);
        pid_t pid = fork();
        if (pid == 0) {
                if (setgroups(0, NULL) < 0 || setgid(65534) < 0 || setuid(65534) < 0)
                        _exit(100);
                opened n;
                popen_(&n, ops, NULL);
                int bits = n.r == 0 && n.ch.n == 2 ? 1 : 0;
                for (size_t i = 0; i < n.notes.n; i++)
                        if (strcmp(n.notes.items[i].subject, "cpufreq/cpu1") == 0 &&
                            n.notes.items[i].err == -EACCES)
                                bits |= 2;
                pclose_(&n, ops);
                _exit(bits);
        }
        int status = 0;
        waitpid(pid, &status, 0);
        int bits = WIFEXITED(status) ? WEXITSTATUS(status) : 0;
        ok(bits != 100 && (bits & 1), "as nobody: cpu0 and cpu2 only");
        ok(bits != 100 && (bits & 2), "as nobody: a note says cpu1's cpuinfo_cur_freq is root only");
        chmod(p, 0644);
        snprintf(p, sizeof(p), "%s/" CPU "cpu1/cpufreq/scaling_cur_freq", fx);
        if (rename("scaling_cur_freq.saved", p) < 0)
                printf("# rename back failed\n");
        if (rename(CPU "cpu3/cpufreq.off", CPU "cpu3/cpufreq") < 0)
                printf("# rename back failed\n");
}

static void test_proc(void)
{
        const jl_provider_ops *ops = &jl_provider_proc;
        uint64_t f[10] = {1000, 20, 300, 8000, 100, 10, 20, 50, 0, 0};
        fx_proc_stat(f);
        opened o;
        popen_(&o, ops, NULL);
        is_int(o.r, 0, "proc opens on the fixture /proc/stat");
        is_int(o.ch.n, 2, "no pid: two channels");
        f[0] += 200, f[2] += 50, f[7] += 50, f[3] += 600, f[4] += 100;
        fx_proc_stat(f);
        is_int(pread_(&o, ops), 0, "read");
        ok(o.v[0].err == 0 && fabs(o.v[0].gauge - 0.3) < 1e-12, "cpu-utilization 0.3 (%g)", o.v[0].gauge);
        ok(o.v[1].err == 0 && fabs(o.v[1].gauge - 0.05) < 1e-12, "cpu-steal 0.05 (%g)", o.v[1].gauge);
        pread_(&o, ops);
        ok(o.v[0].err == -EAGAIN && o.v[1].err == -EAGAIN, "no tick since: -EAGAIN");
        fx_write("proc/stat", "cpu  garbage\n");
        ok(pread_(&o, ops) == -EINVAL && o.v[0].err == -EINVAL, "garbage /proc/stat: -EINVAL");
        f[3] += 1000;
        fx_proc_stat(f);
        pread_(&o, ops);
        ok(o.v[0].err == 0 && o.v[0].gauge == 0, "idle since the last good read: 0");
        pclose_(&o, ops);
}

static void test_estimate(void)
{
        const jl_provider_ops *ops = &jl_provider_estimate;
        jl_provider_config cfg;
        jl_provider_config_default(&cfg);
        cfg.estimate_idle_w = 10;
        cfg.estimate_max_w = 100;
        uint64_t f[10] = {1000, 20, 300, 8000, 100, 10, 20, 50, 0, 0};
        fx_proc_stat(f);

        opened o;
        uint64_t t0 = mono_ns();
        popen_(&o, ops, &cfg);
        uint64_t t1 = mono_ns();
        is_int(o.r, 0, "estimate opens");
        ok(o.ch.n == 1 && strcmp(o.ch.items[0].name, "node-estimate") == 0, "one channel node-estimate");
        ok(o.ch.n == 1 && o.ch.items[0].kind == JL_KIND_ENERGY && o.ch.items[0].scope == JL_SCOPE_NODE &&
               o.ch.items[0].estimated && o.ch.items[0].wrap_uj == 0,
           "energy, node, estimated, never wraps");

        /* u = 0.3, f/f_max = mean(1.2, 1.6, 2.0, 2.4)/3.2 = 0.5625: P = 10 + 90 × 0.3 × 0.5625 W. */
        f[0] += 200, f[2] += 100, f[3] += 600, f[4] += 100;
        fx_proc_stat(f);
        sleep_ms(200);
        uint64_t t2 = mono_ns();
        is_int(pread_(&o, ops), 0, "read");
        uint64_t t3 = mono_ns();
        double p = 10 + 90 * 0.3 * 0.5625;
        double e = (double)o.v[0].counter;
        ok(o.v[0].err == 0 && e >= p * (double)(t2 - t1) / 1e3 - 1 && e <= p * (double)(t3 - t0) / 1e3 + 1,
           "energy %.0f µJ = %.4f W × %.3f s", e, p, (double)(t2 - t1) / 1e9);

        /* Full load at full speed: 100 W. */
        f[0] += 1000;
        fx_proc_stat(f);
        for (int c = 0; c < 4; c++) {
                char rel[128];
                snprintf(rel, sizeof(rel), CPU "cpu%d/cpufreq/scaling_cur_freq", c);
                fx_write(rel, "3200000\n");
        }
        sleep_ms(100);
        uint64_t t4 = mono_ns();
        pread_(&o, ops);
        uint64_t t5 = mono_ns();
        double e2 = (double)o.v[0].counter - e;
        ok(o.v[0].err == 0 && e2 >= 100 * (double)(t4 - t3) / 1e3 - 1 &&
               e2 <= 100 * (double)(t5 - t2) / 1e3 + 1,
           "100 W at full load and speed: %.0f µJ in %.3f s", e2, (double)(t4 - t3) / 1e9);

        /* /proc/stat breaks: an error, no energy lost: the next good read covers the gap. */
        fx_write("proc/stat", "");
        ok(pread_(&o, ops) < 0 && o.v[0].err < 0, "empty /proc/stat: error %d", o.v[0].err);
        f[3] += 1000;
        fx_proc_stat(f);
        sleep_ms(50);
        uint64_t t6 = mono_ns();
        pread_(&o, ops);
        double e3 = (double)o.v[0].counter - e - e2;
        ok(o.v[0].err == 0 && e3 >= 10 * (double)(t6 - t5) / 1e3 - 1, "idle over the whole gap: %.0f µJ",
           e3);
        pclose_(&o, ops);

        /* Bad model parameters. */
        cfg.estimate_idle_w = 50;
        cfg.estimate_max_w = 10;
        popen_(&o, ops, &cfg);
        ok(o.r == -EINVAL && o.ch.n == 0 && o.notes.n == 1, "idle > max: -EINVAL with a note: %s",
           o.notes.n ? o.notes.items[0].reason : "");
        pclose_(&o, ops);
        cfg.estimate_idle_w = NAN;
        popen_(&o, ops, &cfg);
        is_int(o.r, -EINVAL, "NaN idle power: -EINVAL");
        pclose_(&o, ops);
}

static void test_sampler(void)
{
        static const char *const only[] = {"cpufreq", "proc", "estimate", NULL};
        jl_provider_config cfg;
        jl_provider_config_default(&cfg);
        jl_sampler *s = NULL;
        is_int(jl_sampler_open(&cfg, only, &s), 0, "sampler with cpufreq, proc, estimate");
        if (!s)
                return;
        is_int(s->channels.n, 4 + 2 + 1, "7 channels");
        jl_sampler_sample(s);
        sleep_ms(20);
        jl_sampler_sample(s);
        jl_total_source src;
        double j = jl_sampler_total_energy_j(s, &src);
        ok(src == JL_TOTAL_ESTIMATE && j > 0, "the total comes from the estimate: %.4f J", j);
        jl_sampler_free(s);
}

static void test_no_cpufreq(void)
{
        for (int c = 0; c < 4; c++) {
                char rel[64];
                snprintf(rel, sizeof(rel), CPU "cpu%d/cpufreq", c);
                fx_rm(rel);
        }
        opened o;
        popen_(&o, &jl_provider_cpufreq, NULL);
        is_int(o.r, -ENOENT, "no cpufreq: -ENOENT");
        ok(o.notes.n == 1 && strstr(o.notes.items[0].reason, "no cpufreq"), "note: %s",
           o.notes.n ? o.notes.items[0].reason : "");
        pclose_(&o, &jl_provider_cpufreq);

        jl_cpu_info *info = calloc(1, sizeof(*info));
        if (info) {
                is_int(jl_cpu_info_read(info), 0, "cpu info without cpufreq");
                ok(info->n_cpus == 4 && info->driver[0] == '\0' && info->governor[0] == '\0' &&
                       info->cpus[0].cur_khz == 0 && info->n_packages == 2,
                   "frequencies and driver unknown, topology known");
                free(info);
        }

        /* The estimate without cpufreq assumes f = f_max. */
        jl_provider_config cfg;
        jl_provider_config_default(&cfg);
        cfg.estimate_idle_w = 0;
        cfg.estimate_max_w = 100;
        uint64_t f[10] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
        fx_proc_stat(f);
        popen_(&o, &jl_provider_estimate, &cfg);
        uint64_t t1 = mono_ns();
        f[0] = 100;
        fx_proc_stat(f);
        sleep_ms(100);
        uint64_t t2 = mono_ns();
        pread_(&o, &jl_provider_estimate);
        double e = (double)o.v[0].counter;
        ok(o.r == 0 && e >= 100 * (double)(t2 - t1) / 1e3 - 1,
           "no cpufreq: full power at full load: %.0f µJ", e);
        pclose_(&o, &jl_provider_estimate);
}

int main(int argc, char **argv)
{
        if (argc != 2) {
                printf("Bail out! usage: test-cpu FIXTURE\n");
                return 1;
        }
        fx = argv[1];
        if (chdir(fx) < 0) /* scratch files (renames) land in the fixture copy */
                return 1;
        test_info();
        test_setters();
        test_cpufreq();
        test_proc();
        test_estimate();
        test_sampler();
        test_no_cpufreq();
        return tap_done();
}
