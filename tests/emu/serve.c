/* serve.c - `joule-emu serve`: advances a fixture tree made by `joule-emu create` in real time. Every tick
 * it integrates each domain's power into an exact integer ground truth in µJ, writes the counters in place
 * (energy_uj modulo max_energy_range_uj, MSR counters modulo 2^32 units), follows the cpufreq controls
 * (scaling_max_freq, scaling_setspeed, governor, no_turbo/boost) with scaling_cur_freq, runs a first-order
 * thermal model per package, and answers the control channel (a unix socket ROOT/emu.sock, one command per
 * connection). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "emu.h"

#define CPU_DIR "sys/devices/system/cpu"

typedef struct {
        model m;
        const char *root;
        domain dom[EMU_MAX_DOM];
        int ndom;
        int ncpu;
        bool online[EMU_MAX_CPU];
        uint32_t cur_khz[EMU_MAX_CPU];
        double jiffies[EMU_MAX_CPU][2]; /* busy, idle (USER_HZ) */
        int msr_fd[EMU_MAX_CPU];
        double temp_c[EMU_MAX_PKG];
        int temp_written[EMU_MAX_PKG];
        double ambient_c;
        double load;
        bool frozen;
        uint64_t t0_ns, last_ns;
        uint64_t node_truth_uj; /* the whole node: packages + DRAM + the rest of the board */
        double node_carry_uj, node_w;
        double pkg_w[EMU_MAX_PKG];
        double dram_w[EMU_MAX_PKG];
        work work[EMU_MAX_CPU]; /* the workload each CPU runs (`work`), WORK_NONE: the plain load model */
        char stat_text[8192];
        /* a phase in progress */
        int phase_fd;
        uint64_t phase_start_ns, phase_end_ns;
        double phase_load;
        bool phase_refreeze;
        uint64_t phase_truth[EMU_MAX_DOM + 1];
        bool quit;
} emu;

static volatile sig_atomic_t got_signal;

static void on_signal(int sig)
{
        got_signal = sig;
}

static uint64_t mono_ns(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static bool dom_writable(const domain *d)
{
        return d->fault == FAULT_NONE || d->fault == FAULT_NO_RANGE || d->fault == FAULT_RANGE0 ||
               d->fault == FAULT_NO_NAME;
}

static uint64_t dom_counter(const domain *d)
{
        uint64_t x = (d->offset_uj + d->truth_uj) % d->range_uj, b = d->back_uj % d->range_uj;
        return (x + d->range_uj - b) % d->range_uj;
}

static bool cpu_broken(const emu *e, int c)
{
        return e->m.broken && c < 3;
}

static int path_at(const emu *e, char *buf, size_t size, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int path_at(const emu *e, char *buf, size_t size, const char *fmt, ...)
{
        va_list ap;
        int n = snprintf(buf, size, "%s/", e->root);
        va_start(ap, fmt);
        vsnprintf(buf + n, size - (size_t)n, fmt, ap);
        va_end(ap);
        return 0;
}

static bool read_u32_file(const char *path, uint32_t *ret)
{
        char buf[64], *end;
        if (read_small(path, buf, sizeof(buf)) <= 0)
                return false;
        errno = 0;
        unsigned long v = strtoul(buf, &end, 10);
        if (end == buf || errno || v > UINT32_MAX || (*end && *end != '\n'))
                return false;
        *ret = (uint32_t)v;
        return true;
}

/* --- cpufreq --- */

static void update_freqs(emu *e)
{
        char path[4096], gov[64];
        uint32_t turbo_off = 0, boost = 1;
        if (strcmp(e->m.driver, "intel_pstate") == 0) {
                path_at(e, path, sizeof(path), CPU_DIR "/intel_pstate/no_turbo");
                read_u32_file(path, &turbo_off);
        } else {
                path_at(e, path, sizeof(path), CPU_DIR "/cpufreq/boost");
                if (read_u32_file(path, &boost))
                        turbo_off = boost == 0;
        }
        for (int c = 0; c < e->ncpu; c++) {
                if (!e->online[c] || cpu_broken(e, c))
                        continue;
                uint32_t lo = e->m.fmin_khz, hi = e->m.fmax_khz, set = 0, v;
                path_at(e, path, sizeof(path), CPU_DIR "/cpufreq/policy%d/scaling_max_freq", c);
                if (read_u32_file(path, &v) && v > 0)
                        hi = v;
                path_at(e, path, sizeof(path), CPU_DIR "/cpufreq/policy%d/scaling_min_freq", c);
                if (read_u32_file(path, &v))
                        lo = v;
                if (turbo_off && hi > e->m.fbase_khz)
                        hi = e->m.fbase_khz;
                if (hi > e->m.fmax_khz)
                        hi = e->m.fmax_khz;
                if (lo < e->m.fmin_khz)
                        lo = e->m.fmin_khz;
                if (lo > hi)
                        lo = hi;
                path_at(e, path, sizeof(path), CPU_DIR "/cpufreq/policy%d/scaling_governor", c);
                if (read_small(path, gov, sizeof(gov)) < 0)
                        snprintf(gov, sizeof(gov), "%s", e->m.governor);
                gov[strcspn(gov, "\n")] = '\0';
                path_at(e, path, sizeof(path), CPU_DIR "/cpufreq/policy%d/scaling_setspeed", c);
                bool have_set = read_u32_file(path, &set);
                double target;
                if (have_set) /* a frequency written to scaling_setspeed (accepted under any governor) */
                        target = set;
                else if (strcmp(gov, "userspace") == 0)
                        target = e->cur_khz[c];
                else if (strcmp(gov, "performance") == 0)
                        target = hi;
                else if (strcmp(gov, "powersave") == 0 && strcmp(e->m.driver, "intel_pstate") != 0)
                        target = lo;
                else /* demand-driven: intel_pstate powersave, ondemand, schedutil, conservative; a CPU
                      * running a workload is busy */
                        target = lo + (e->work[c].kind != WORK_NONE ? 1.0 : e->load) * (hi - lo);
                if (target > hi)
                        target = hi;
                if (target < lo)
                        target = lo;
                uint32_t khz = (uint32_t)(lround(target / 1000.0) * 1000);
                if (strcmp(gov, "userspace") == 0 && !have_set) {
                        char text[32];
                        snprintf(text, sizeof(text), "%u\n", khz);
                        rewrite_path(path, text);
                }
                if (khz != e->cur_khz[c]) {
                        char text[32];
                        e->cur_khz[c] = khz;
                        snprintf(text, sizeof(text), "%u\n", khz);
                        path_at(e, path, sizeof(path), CPU_DIR "/cpufreq/policy%d/scaling_cur_freq", c);
                        rewrite_path(path, text);
                }
        }
}

/* --- power, energy, temperature --- */

static void compute_power(emu *e)
{
        const model *m = &e->m;
        /* work.c: idle + load × dyn × f/f_max per CPU, or the workload's activity × V(f)^2 × f */
        node_power(m, e->work, e->cur_khz, e->online, e->load, e->pkg_w, e->dram_w, &e->node_w);
        for (int i = 0; i < e->ndom; i++) {
                domain *d = &e->dom[i];
                switch (d->type) {
                case DOM_PKG:
                        d->power_w = e->pkg_w[d->pkg];
                        break;
                case DOM_CORE:
                        d->power_w = 0.3 * m->idle_w + 0.85 * (e->pkg_w[d->pkg] - m->idle_w);
                        break;
                case DOM_DRAM:
                        /* the broken model's stray dram zone belongs to no package */
                        d->power_w =
                            d->pkg >= 0 ? e->dram_w[d->pkg] : m->dram_idle_w + m->dram_dyn_w * e->load;
                        break;
                case DOM_PSYS:
                        d->power_w = e->node_w;
                        break;
                }
        }
}

static void write_outputs(emu *e)
{
        char path[4096], text[64];
        for (int i = 0; i < e->ndom; i++) {
                domain *d = &e->dom[i];
                if (!dom_writable(d) || d->fd < 0)
                        continue;
                snprintf(text, sizeof(text), "%llu\n", (unsigned long long)dom_counter(d));
                rewrite_fd(d->fd, text);
        }
        for (int c = 0; c < e->ncpu; c++) {
                if (e->msr_fd[c] < 0)
                        continue;
                for (int i = 0; i < e->ndom; i++) {
                        const domain *d = &e->dom[i];
                        uint64_t a = msr_addr(&e->m, d->type);
                        if (a && (d->pkg < 0 || d->pkg == cpu_pkg(&e->m, c)))
                                msr_write(e->msr_fd[c], a, msr_raw(&e->m, d));
                }
        }
        for (int p = 0; p < e->m.npkg; p++) {
                int mc = (int)lround(e->temp_c[p] * 1000);
                if (mc == e->temp_written[p])
                        continue;
                e->temp_written[p] = mc;
                if (e->m.coretemp) {
                        int h = hwmon_index(&e->m, CHIP_CORETEMP, p);
                        for (int k = 0; k <= e->m.cores_per_pkg; k++) {
                                if (e->m.broken && p == 0 && k <= 1)
                                        continue; /* the broken model's bad sensors stay bad */
                                /* the cores run a little cooler than the package's hottest spot */
                                snprintf(text, sizeof(text), "%d\n", k == 0 ? mc : mc - 1000 - 500 * (k - 1));
                                path_at(e, path, sizeof(path), "sys/class/hwmon/hwmon%d/temp%d_input", h, k + 1);
                                rewrite_path(path, text);
                        }
                }
                if (e->m.k10temp && p == 0) {
                        int h = hwmon_index(&e->m, CHIP_K10TEMP, 0);
                        snprintf(text, sizeof(text), "%d\n", mc);
                        path_at(e, path, sizeof(path), "sys/class/hwmon/hwmon%d/temp1_input", h);
                        rewrite_path(path, text);
                        snprintf(text, sizeof(text), "%d\n", mc - 4000);
                        path_at(e, path, sizeof(path), "sys/class/hwmon/hwmon%d/temp3_input", h);
                        rewrite_path(path, text);
                }
        }
        if (e->m.power_meter) {
                int h = hwmon_index(&e->m, CHIP_POWER_METER, 0);
                snprintf(text, sizeof(text), "%llu\n", (unsigned long long)llround(e->node_w * 1e6));
                path_at(e, path, sizeof(path), "sys/class/hwmon/hwmon%d/power1_average", h);
                rewrite_path(path, text);
        }
        char stat[8192];
        if (proc_stat_text(&e->m, e->online, (const double(*)[2])e->jiffies, stat, sizeof(stat)) == 0 &&
            strcmp(stat, e->stat_text) != 0) {
                memcpy(e->stat_text, stat, sizeof(stat));
                path_at(e, path, sizeof(path), "proc/stat");
                rewrite_path(path, stat);
        }
}

static void add_energy(uint64_t *truth, double *carry, double power_w, double dt_s)
{
        double uj = power_w * dt_s * 1e6 + *carry;
        if (uj < 0)
                uj = 0;
        uint64_t whole = (uint64_t)floor(uj);
        *carry = uj - (double)whole;
        *truth += whole;
}

/* Bring the tree up to time `now`: integrate power over the interval, move temperatures, write. */
static void advance(emu *e, uint64_t now)
{
        if (e->frozen || now <= e->last_ns) {
                if (e->frozen)
                        e->last_ns = now;
                return;
        }
        double dt = (double)(now - e->last_ns) / 1e9;
        e->last_ns = now;
        update_freqs(e);
        compute_power(e);
        for (int i = 0; i < e->ndom; i++)
                add_energy(&e->dom[i].truth_uj, &e->dom[i].carry_uj, e->dom[i].power_w, dt);
        add_energy(&e->node_truth_uj, &e->node_carry_uj, e->node_w, dt);
        for (int p = 0; p < e->m.npkg; p++) {
                double eq = e->ambient_c + e->m.rth_k_per_w * e->pkg_w[p];
                e->temp_c[p] = eq + (e->temp_c[p] - eq) * exp(-dt / e->m.tau_s);
        }
        for (int c = 0; c < e->ncpu; c++)
                if (e->online[c]) {
                        double busy = e->work[c].kind != WORK_NONE ? 1.0 : e->load;
                        e->jiffies[c][0] += busy * dt * 100;
                        e->jiffies[c][1] += (1 - busy) * dt * 100;
                }
        write_outputs(e);
}

/* --- replies --- */

typedef struct {
        char buf[16384];
        size_t len;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...)
{
        if (b->len >= sizeof(b->buf))
                return;
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->buf + b->len, sizeof(b->buf) - b->len, fmt, ap);
        va_end(ap);
        if (n > 0)
                b->len += (size_t)n;
}

static void truth_json(const emu *e, sbuf *b)
{
        sb_printf(b, "{\"model\": \"%s\", \"t_s\": %.6f, \"load\": %.4f, \"frozen\": %s, \"energy_uj\": {",
                  e->m.name, (double)(e->last_ns - e->t0_ns) / 1e9, e->load, e->frozen ? "true" : "false");
        for (int i = 0; i < e->ndom; i++)
                sb_printf(b, "\"%s\": %llu, ", e->dom[i].jname, (unsigned long long)e->dom[i].truth_uj);
        sb_printf(b, "\"node\": %llu}, \"counter_uj\": {", (unsigned long long)e->node_truth_uj);
        for (int i = 0; i < e->ndom; i++)
                sb_printf(b, "%s\"%s\": %llu", i ? ", " : "", e->dom[i].jname,
                          (unsigned long long)dom_counter(&e->dom[i]));
        sb_printf(b, "}, \"power_w\": {");
        for (int i = 0; i < e->ndom; i++)
                sb_printf(b, "\"%s\": %.6f, ", e->dom[i].jname, e->dom[i].power_w);
        sb_printf(b, "\"node\": %.6f}, \"temp_c\": {", e->node_w);
        for (int p = 0; p < e->m.npkg; p++)
                sb_printf(b, "%s\"package-%d\": %.3f", p ? ", " : "", p, e->temp_c[p]);
        sb_printf(b, "}, \"ambient_c\": %.3f, \"freq_khz\": {", e->ambient_c);
        bool first = true;
        for (int c = 0; c < e->ncpu; c++)
                if (e->online[c]) {
                        sb_printf(b, "%s\"cpu%d\": %u", first ? "" : ", ", c, e->cur_khz[c]);
                        first = false;
                }
        sb_printf(b, "}, \"work\": {");
        first = true;
        for (int c = 0; c < e->ncpu; c++)
                if (e->work[c].kind != WORK_NONE) {
                        sb_printf(b,
                                  "%s\"cpu%d\": {\"kind\": \"%s\", \"cycles\": %.0f, \"mem_s\": %.9f, "
                                  "\"activity\": %.4f}",
                                  first ? "" : ", ", c, work_kind_name(e->work[c].kind), e->work[c].cycles,
                                  e->work[c].mem_s, e->work[c].activity);
                        first = false;
                }
        sb_printf(b, "}}\n");
}

static void reply(int fd, const char *text)
{
        size_t len = strlen(text);
        while (len > 0) {
                ssize_t n = write(fd, text, len);
                if (n <= 0)
                        break;
                text += n;
                len -= (size_t)n;
        }
        close(fd);
}

static void snapshot(const emu *e, uint64_t *t)
{
        for (int i = 0; i < e->ndom; i++)
                t[i] = e->dom[i].truth_uj;
        t[e->ndom] = e->node_truth_uj;
}

static void finish_phase(emu *e)
{
        uint64_t now_truth[EMU_MAX_DOM + 1];
        advance(e, e->phase_end_ns);
        snapshot(e, now_truth);
        e->load = 0;
        if (e->phase_refreeze)
                e->frozen = true;
        else
                compute_power(e);
        sbuf b = {.len = 0};
        sb_printf(&b, "{\"load\": %.4f, \"seconds\": %.6f, \"energy_uj\": {", e->phase_load,
                  (double)(e->phase_end_ns - e->phase_start_ns) / 1e9);
        for (int i = 0; i <= e->ndom; i++)
                sb_printf(&b, "%s\"%s\": %llu", i ? ", " : "", i < e->ndom ? e->dom[i].jname : "node",
                          (unsigned long long)(now_truth[i] - e->phase_truth[i]));
        sb_printf(&b, "}, \"energy_j\": {");
        for (int i = 0; i <= e->ndom; i++)
                sb_printf(&b, "%s\"%s\": %.6f", i ? ", " : "", i < e->ndom ? e->dom[i].jname : "node",
                          (double)(now_truth[i] - e->phase_truth[i]) / 1e6);
        sb_printf(&b, "}}\n");
        reply(e->phase_fd, b.buf);
        e->phase_fd = -1;
}

/* --- CPU hot-unplug --- */

static void rm_tree(const char *path)
{
        DIR *d = opendir(path);
        if (!d) {
                unlink(path);
                return;
        }
        struct dirent *de;
        char sub[4096];
        while ((de = readdir(d)))
                if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
                        snprintf(sub, sizeof(sub), "%s/%s", path, de->d_name);
                        if (de->d_type == DT_DIR)
                                rm_tree(sub);
                        else {
                                /* a reader that kept the file open now reads nothing, as from a device
                                 * that went away, instead of a frozen value */
                                if (de->d_type == DT_REG && truncate(sub, 0) < 0 && errno != ENOENT)
                                        fprintf(stderr, "joule-emu: truncate %s: %s\n", sub, strerror(errno));
                                unlink(sub);
                        }
                }
        closedir(d);
        rmdir(path);
}

static int cpu_offline(emu *e, int c, char *err, size_t errsize)
{
        char path[4096], list[128];
        int on = 0;
        for (int i = 0; i < e->ncpu; i++)
                on += e->online[i];
        if (c < 0 || c >= e->ncpu || !e->online[c] || on <= 1) {
                snprintf(err, errsize, "cpu %d is not an online CPU that can go offline", c);
                return -EINVAL;
        }
        advance(e, mono_ns());
        e->online[c] = false;
        path_at(e, path, sizeof(path), CPU_DIR "/cpu%d/online", c);
        rewrite_path(path, "0\n");
        cpu_list(e->online, e->ncpu, list, sizeof(list));
        strcat(list, "\n");
        path_at(e, path, sizeof(path), CPU_DIR "/online");
        rewrite_path(path, list);
        bool off[EMU_MAX_CPU];
        for (int i = 0; i < e->ncpu; i++)
                off[i] = !e->online[i];
        cpu_list(off, e->ncpu, list, sizeof(list));
        strcat(list, "\n");
        path_at(e, path, sizeof(path), CPU_DIR "/offline");
        rewrite_path(path, list);
        path_at(e, path, sizeof(path), CPU_DIR "/cpu%d/cpufreq", c);
        unlink(path);
        path_at(e, path, sizeof(path), CPU_DIR "/cpufreq/policy%d", c);
        rm_tree(path);
        if (e->msr_fd[c] >= 0) {
                close(e->msr_fd[c]);
                e->msr_fd[c] = -1;
        }
        path_at(e, path, sizeof(path), "dev/cpu/%d", c);
        rm_tree(path);
        compute_power(e);
        write_outputs(e);
        return 0;
}

/* --- commands --- */

static int find_dom(const emu *e, const char *name)
{
        for (int i = 0; i < e->ndom; i++)
                if (strcmp(e->dom[i].jname, name) == 0 || strcmp(e->dom[i].zone, name) == 0)
                        return i;
        return -1;
}

static bool parse_double(const char *s, double lo, double hi, double *ret)
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

/* "all" or a CPU list ("0-3,5") of online CPUs */
static bool parse_cpus(const emu *e, const char *s, bool *set)
{
        for (int c = 0; c < e->ncpu; c++)
                set[c] = s && strcmp(s, "all") == 0 && e->online[c];
        if (!s || strcmp(s, "all") == 0)
                return s != NULL;
        for (const char *p = s; *p;) {
                char *end;
                long a = strtol(p, &end, 10), b = a;
                if (end == p || a < 0 || a >= e->ncpu)
                        return false;
                p = end;
                if (*p == '-') {
                        b = strtol(p + 1, &end, 10);
                        if (end == p + 1 || b < a || b >= e->ncpu)
                                return false;
                        p = end;
                }
                for (long c = a; c <= b; c++) {
                        if (!e->online[c])
                                return false;
                        set[c] = true;
                }
                if (*p == ',')
                        p++;
                else if (*p)
                        return false;
        }
        return true;
}

static void handle(emu *e, int fd, char *line)
{
        char *argv[8] = {0};
        int argc = 0;
        for (char *save = NULL, *t = strtok_r(line, " \t\r\n", &save); t && argc < 8;
             t = strtok_r(NULL, " \t\r\n", &save))
                argv[argc++] = t;
        const char *cmd = argc ? argv[0] : "";
        double x, y;
        char text[256];
        uint64_t now = mono_ns();

        if (strcmp(cmd, "ping") == 0)
                return reply(fd, "ok\n");
        if (strcmp(cmd, "truth") == 0) {
                sbuf b = {.len = 0};
                advance(e, now);
                truth_json(e, &b);
                return reply(fd, b.buf);
        }
        if (strcmp(cmd, "load") == 0) {
                if (!parse_double(argv[1], 0, 1, &x))
                        return reply(fd, "error: usage: load L (0..1)\n");
                advance(e, now);
                e->load = x;
                compute_power(e);
                return reply(fd, "ok\n");
        }
        if (strcmp(cmd, "phase") == 0) {
                if (!parse_double(argv[1], 0, 1, &x) || !parse_double(argv[2], 0, 3600, &y))
                        return reply(fd, "error: usage: phase L SECONDS\n");
                if (e->phase_fd >= 0)
                        return reply(fd, "error: a phase is already running\n");
                advance(e, now);
                snapshot(e, e->phase_truth);
                e->phase_refreeze = e->frozen;
                e->frozen = false;
                e->last_ns = now;
                e->load = e->phase_load = x;
                e->phase_start_ns = now;
                e->phase_end_ns = now + (uint64_t)llround(y * 1e9);
                e->phase_fd = fd;
                compute_power(e);
                return;
        }
        if (strcmp(cmd, "work") == 0 || strcmp(cmd, "sweep") == 0) {
                bool set[EMU_MAX_CPU];
                work w;
                /* CPUS may be left out: all online CPUs */
                int skip = argc > 1 && argv[1][0] >= 'a' && argv[1][0] <= 'z' && strcmp(argv[1], "all") != 0
                               ? 1
                               : 2;
                if (!parse_cpus(e, skip == 1 ? "all" : argv[1], set) ||
                    work_parse(&e->m, argc - skip, argv + skip, &w) < 0 ||
                    (w.kind == WORK_NONE && cmd[0] == 's'))
                        return reply(
                            fd,
                            "error: usage: work [CPUS] idle|compute|mixed|memory|gpuwait [CYCLES MEM_S [ACTIVITY]]"
                            " | sweep [CPUS] compute|mixed|memory|gpuwait [CYCLES MEM_S [ACTIVITY]]"
                            " (CPUS: all, the default, or a list of online CPUs, 0-3,5)\n");
                sbuf b = {.len = 0};
                if (cmd[0] == 's') {
                        if (work_sweep(&e->m, &w, set, e->online, b.buf, sizeof(b.buf)) < 0)
                                return reply(fd, "error: sweep: reply too long\n");
                        return reply(fd, b.buf);
                }
                /* the interval so far at the old power, then the new workload; the truth at this instant */
                advance(e, now);
                for (int c = 0; c < e->ncpu; c++)
                        if (set[c])
                                e->work[c] = w;
                update_freqs(e); /* a demand governor follows the new work at once */
                compute_power(e);
                truth_json(e, &b);
                return reply(fd, b.buf);
        }
        if (strcmp(cmd, "set-temp") == 0 || strcmp(cmd, "ambient") == 0) {
                if (!parse_double(argv[1], -50, 150, &x))
                        return reply(fd, "error: usage: set-temp|ambient CELSIUS\n");
                advance(e, now);
                if (strcmp(cmd, "ambient") == 0)
                        e->ambient_c = x;
                else
                        for (int p = 0; p < e->m.npkg; p++)
                                e->temp_c[p] = x;
                write_outputs(e);
                return reply(fd, "ok\n");
        }
        if (strcmp(cmd, "offline") == 0) {
                if (!parse_double(argv[1], 0, EMU_MAX_CPU - 1, &x))
                        return reply(fd, "error: usage: offline CPU\n");
                char err[128];
                if (cpu_offline(e, (int)x, err, sizeof(err)) < 0) {
                        snprintf(text, sizeof(text), "error: %s\n", err);
                        return reply(fd, text);
                }
                return reply(fd, "ok\n");
        }
        if (strcmp(cmd, "backwards") == 0) {
                int i = argv[1] ? find_dom(e, argv[1]) : -1;
                if (i < 0)
                        return reply(fd, "error: usage: backwards DOMAIN [UJ] (a domain of `truth`)\n");
                advance(e, now);
                domain *d = &e->dom[i];
                uint64_t v = dom_counter(d), step = v > d->range_uj / 4 ? d->range_uj / 4 : v / 2;
                if (argv[2] && parse_double(argv[2], 1, (double)v, &x))
                        step = (uint64_t)x;
                if (step == 0)
                        return reply(fd, "error: the counter is at 0, nothing to step back\n");
                d->back_uj += step;
                write_outputs(e);
                snprintf(text, sizeof(text), "ok %llu -> %llu\n", (unsigned long long)v,
                         (unsigned long long)dom_counter(d));
                return reply(fd, text);
        }
        if (strcmp(cmd, "freeze") == 0) {
                advance(e, now);
                e->frozen = true;
                return reply(fd, "ok\n");
        }
        if (strcmp(cmd, "thaw") == 0) {
                e->frozen = false;
                e->last_ns = now;
                return reply(fd, "ok\n");
        }
        if (strcmp(cmd, "tick") == 0) {
                advance(e, now);
                return reply(fd, "ok\n");
        }
        if (strcmp(cmd, "quit") == 0) {
                e->quit = true;
                return reply(fd, "ok\n");
        }
        snprintf(text, sizeof(text),
                 "error: unknown command '%.64s' (ping truth load phase work sweep set-temp ambient offline "
                 "backwards freeze thaw tick quit)\n",
                 cmd);
        reply(fd, text);
}

static void accept_one(emu *e, int lfd)
{
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
                return;
        struct timeval tv = {.tv_sec = 2};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        char line[512];
        size_t len = 0;
        while (len < sizeof(line) - 1) {
                ssize_t n = read(fd, line + len, sizeof(line) - 1 - len);
                if (n <= 0)
                        break;
                len += (size_t)n;
                if (memchr(line, '\n', len))
                        break;
        }
        line[len] = '\0';
        handle(e, fd, line);
}

/* --- main loop --- */

static int setup(emu *e, const char *root)
{
        char path[4096];
        int r = model_load_conf(root, &e->m);
        if (r < 0) {
                fprintf(stderr, "joule-emu serve: %s/%s: %s (run `joule-emu create` first)\n", root, EMU_CONF,
                        strerror(-r));
                return r;
        }
        e->root = root;
        e->ndom = model_domains(&e->m, e->dom, EMU_MAX_DOM);
        e->ncpu = model_ncpu(&e->m);
        e->ambient_c = e->m.ambient_c;
        e->phase_fd = -1;
        for (int p = 0; p < e->m.npkg; p++) {
                e->temp_c[p] = e->m.start_c;
                e->temp_written[p] = INT32_MIN;
        }
        for (int i = 0; i < e->ndom; i++) {
                domain *d = &e->dom[i];
                path_at(e, path, sizeof(path), "%s/energy_uj", d->rel);
                if (dom_writable(d) && (d->fd = open(path, O_WRONLY | O_CLOEXEC)) < 0)
                        fprintf(stderr, "joule-emu serve: %s: %s\n", path, strerror(errno));
        }
        for (int c = 0; c < e->ncpu; c++) {
                uint32_t v;
                e->msr_fd[c] = -1;
                path_at(e, path, sizeof(path), CPU_DIR "/cpu%d/online", c);
                e->online[c] = !read_u32_file(path, &v) || v == 1;
                path_at(e, path, sizeof(path), CPU_DIR "/cpufreq/policy%d/scaling_cur_freq", c);
                e->cur_khz[c] = read_u32_file(path, &v) ? v : e->m.fmin_khz;
                e->jiffies[c][0] = 1000;
                e->jiffies[c][1] = 100000;
                if (e->m.msr && e->online[c]) {
                        path_at(e, path, sizeof(path), "dev/cpu/%d/msr", c);
                        e->msr_fd[c] = open(path, O_RDWR | O_CLOEXEC);
                }
        }
        e->t0_ns = e->last_ns = mono_ns();
        compute_power(e);
        write_outputs(e);
        return 0;
}

int serve_main(const char *root, unsigned tick_ms)
{
        static emu e_static;
        emu *e = &e_static;
        if (setup(e, root) < 0)
                return 1;

        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        if ((size_t)snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/%s", root, EMU_SOCK) >= sizeof(sa.sun_path)) {
                fprintf(stderr, "joule-emu serve: %s/%s: path too long for a unix socket\n", root, EMU_SOCK);
                return 1;
        }
        unlink(sa.sun_path);
        int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(lfd, 16) < 0) {
                fprintf(stderr, "joule-emu serve: %s: %s\n", sa.sun_path, strerror(errno));
                return 1;
        }
        struct sigaction act = {.sa_handler = on_signal};
        sigaction(SIGTERM, &act, NULL);
        sigaction(SIGINT, &act, NULL);
        signal(SIGPIPE, SIG_IGN);

        uint64_t tick_ns = (uint64_t)tick_ms * 1000000ULL, next = mono_ns() + tick_ns;
        while (!e->quit && !got_signal) {
                uint64_t now = mono_ns(), wake = next;
                if (e->phase_fd >= 0 && e->phase_end_ns < wake)
                        wake = e->phase_end_ns;
                uint64_t wait_ns = wake > now ? wake - now : 0;
                struct timespec ts = {.tv_sec = (time_t)(wait_ns / 1000000000ULL),
                                      .tv_nsec = (long)(wait_ns % 1000000000ULL)};
                struct pollfd pfd = {.fd = lfd, .events = POLLIN};
                int n = ppoll(&pfd, 1, &ts, NULL);
                now = mono_ns();
                if (e->phase_fd >= 0 && now >= e->phase_end_ns)
                        finish_phase(e);
                if (now >= next) {
                        advance(e, now);
                        next += tick_ns;
                        if (next <= now)
                                next = now + tick_ns;
                }
                if (n > 0 && (pfd.revents & POLLIN))
                        accept_one(e, lfd);
        }
        if (e->phase_fd >= 0)
                reply(e->phase_fd, "error: the emulator stopped\n");
        close(lfd);
        unlink(sa.sun_path);
        for (int i = 0; i < e->ndom; i++)
                if (e->dom[i].fd >= 0)
                        close(e->dom[i].fd);
        for (int c = 0; c < e->ncpu; c++)
                if (e->msr_fd[c] >= 0)
                        close(e->msr_fd[c]);
        return 0;
}
