/* model.c - the node models of joule-emu (compiled in) and `joule-emu create`: lays a model out as a
 * fixture tree at the kernel's paths (powercap, hwmon, cpufreq and CPU topology, MSR device files,
 * /proc/cpuinfo and /proc/stat), and the small file helpers the server shares. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "emu.h"

static const model models[] = {
        {
                .name = "intel2s",
                .npkg = 2, .cores_per_pkg = 2, .threads_per_core = 1,
                .powercap = true, .msr = true, .psys = true, .dram = true, .core = true,
                .coretemp = true,
                .driver = "intel_pstate", .governor = "powersave", .governors = "performance powersave",
                .fmin_khz = 800000, .fbase_khz = 2100000, .fmax_khz = 3000000,
                .idle_w = 20, .dyn_w = 80, .dram_idle_w = 3, .dram_dyn_w = 7, .rest_w = 40,
                .range_uj = 262143328850ULL, .esu = 14,
                .ambient_c = 30, .rth_k_per_w = 0.4, .tau_s = 4,
        },
        {
                .name = "amd",
                .amd = true,
                .npkg = 1, .cores_per_pkg = 2, .threads_per_core = 2,
                .powercap = true, .msr = true,
                .k10temp = true,
                .driver = "acpi-cpufreq", .governor = "ondemand",
                .governors = "conservative ondemand userspace powersave performance schedutil",
                .fmin_khz = 1400000, .fbase_khz = 3000000, .fmax_khz = 4200000,
                .idle_w = 15, .dyn_w = 90, .rest_w = 35,
                .range_uj = 65712999613ULL, .esu = 16,
                .ambient_c = 32, .rth_k_per_w = 0.35, .tau_s = 4,
        },
        {
                .name = "hwmon-only",
                .npkg = 1, .cores_per_pkg = 2, .threads_per_core = 2,
                .coretemp = true, .power_meter = true,
                .driver = "intel_pstate", .governor = "powersave", .governors = "performance powersave",
                .fmin_khz = 800000, .fbase_khz = 2400000, .fmax_khz = 3400000,
                .idle_w = 12, .dyn_w = 50, .dram_idle_w = 2, .dram_dyn_w = 4, .rest_w = 30,
                .range_uj = 262143328850ULL, .esu = 14,
                .ambient_c = 28, .rth_k_per_w = 0.5, .tau_s = 4,
        },
        {
                .name = "broken",
                .npkg = 2, .cores_per_pkg = 2, .threads_per_core = 1,
                .powercap = true, .psys = true, .dram = true, .core = true,
                .coretemp = true, .broken = true,
                .driver = "intel_pstate", .governor = "powersave", .governors = "performance powersave",
                .fmin_khz = 800000, .fbase_khz = 2100000, .fmax_khz = 3000000,
                .idle_w = 20, .dyn_w = 80, .dram_idle_w = 3, .dram_dyn_w = 7, .rest_w = 40,
                .range_uj = 262143328850ULL, .esu = 14,
                .ambient_c = 30, .rth_k_per_w = 0.4, .tau_s = 4,
        },
};

/* The faults of the broken model's zones, in the order model_domains() lists them. */
static const fault broken_faults[] = {
        FAULT_NONE,     /* package-0 works: something to measure */
        FAULT_EMPTY,    /* core-0 */
        FAULT_GARBAGE,  /* dram-0 */
        FAULT_NEGATIVE, /* package-1 */
        FAULT_HUGE,     /* core-1 */
        FAULT_NO_RANGE, /* dram-1 */
        FAULT_RANGE0,   /* psys */
        FAULT_NO_NAME,  /* intel-rapl:3 */
};

int model_ncpu(const model *m)
{
        return m->npkg * m->cores_per_pkg * m->threads_per_core;
}

int cpu_pkg(const model *m, int cpu)
{
        return cpu / (m->cores_per_pkg * m->threads_per_core);
}

static int cpu_core(const model *m, int cpu)
{
        return (cpu % (m->cores_per_pkg * m->threads_per_core)) / m->threads_per_core;
}

void model_list(void)
{
        for (size_t i = 0; i < sizeof(models) / sizeof(models[0]); i++)
                printf("%s\n", models[i].name);
}

int model_get(const char *name, const model_opts *o, model *ret)
{
        for (size_t i = 0; i < sizeof(models) / sizeof(models[0]); i++) {
                if (strcmp(models[i].name, name) != 0)
                        continue;
                model m = models[i];
                m.power_scale = 1;
                if (o && o->power_scale > 0) {
                        double k = o->power_scale;
                        m.power_scale = k;
                        m.idle_w *= k;
                        m.dyn_w *= k;
                        m.dram_idle_w *= k;
                        m.dram_dyn_w *= k;
                        m.rest_w *= k;
                        m.rth_k_per_w /= k;
                }
                if (o) {
                        if (o->wrap_uj)
                                m.range_uj = o->wrap_uj;
                        if (o->esu >= 0)
                                m.esu = o->esu;
                        if (!isnan(o->ambient_c))
                                m.ambient_c = o->ambient_c;
                        if (!isnan(o->tau_s))
                                m.tau_s = o->tau_s;
                        m.start_c = isnan(o->start_c) ? m.ambient_c : o->start_c;
                        m.msr_wrap_in_j = isnan(o->msr_wrap_in_j) ? -1 : o->msr_wrap_in_j;
                } else {
                        m.start_c = m.ambient_c;
                        m.msr_wrap_in_j = -1;
                }
                *ret = m;
                return 0;
        }
        return -ENOENT;
}

static void add_dom(domain *d, const char *zone, const char *rel, const char *kname, const char *jname,
                    dom_type type, int pkg, uint64_t range)
{
        *d = (domain){.type = type, .pkg = pkg, .range_uj = range, .fd = -1};
        snprintf(d->zone, sizeof(d->zone), "%s", zone);
        snprintf(d->rel, sizeof(d->rel), "sys/class/powercap/%s", rel);
        snprintf(d->kname, sizeof(d->kname), "%s", kname);
        snprintf(d->jname, sizeof(d->jname), "%s", jname);
}

/* The powercap zones of a model, packages first with their sub-zones, then psys; as the kernel numbers
 * them. Returns how many. */
int model_domains(const model *m, domain *dom, int max)
{
        int n = 0;
        /* rel: short enough that "sys/class/powercap/" + rel fits domain.rel (no -Wformat-truncation) */
        char zone[32], rel[128], kname[32], jname[32];
        if (!m->powercap)
                return 0;
        for (int p = 0; p < m->npkg && n + 3 <= max; p++) {
                snprintf(zone, sizeof(zone), "intel-rapl:%d", p);
                snprintf(rel, sizeof(rel), "intel-rapl/%s", zone);
                snprintf(kname, sizeof(kname), "package-%d", p);
                add_dom(&dom[n++], zone, rel, kname, kname, DOM_PKG, p, m->range_uj);
                int sub = 0;
                if (m->core) {
                        snprintf(zone, sizeof(zone), "intel-rapl:%d:%d", p, sub++);
                        snprintf(rel, sizeof(rel), "intel-rapl/intel-rapl:%d/%s", p, zone);
                        snprintf(jname, sizeof(jname), "core-%d", p);
                        add_dom(&dom[n++], zone, rel, "core", jname, DOM_CORE, p, m->range_uj);
                }
                if (m->dram) {
                        snprintf(zone, sizeof(zone), "intel-rapl:%d:%d", p, sub++);
                        snprintf(rel, sizeof(rel), "intel-rapl/intel-rapl:%d/%s", p, zone);
                        snprintf(jname, sizeof(jname), "dram-%d", p);
                        add_dom(&dom[n++], zone, rel, "dram", jname, DOM_DRAM, p, m->range_uj);
                }
        }
        if (m->psys && n < max) {
                snprintf(zone, sizeof(zone), "intel-rapl:%d", m->npkg);
                snprintf(rel, sizeof(rel), "intel-rapl/%s", zone);
                add_dom(&dom[n++], zone, rel, "psys", "psys", DOM_PSYS, -1, m->range_uj);
        }
        if (m->broken && n < max) {
                snprintf(zone, sizeof(zone), "intel-rapl:%d", m->npkg + 1);
                snprintf(rel, sizeof(rel), "intel-rapl/%s", zone);
                add_dom(&dom[n++], zone, rel, "dram", "dram-9", DOM_DRAM, -1, m->range_uj);
        }
        for (int i = 0; i < n; i++) {
                if (m->broken && (size_t)i < sizeof(broken_faults) / sizeof(broken_faults[0]))
                        dom[i].fault = broken_faults[i];
                /* Counters do not start at 0 on a real machine. */
                dom[i].offset_uj = (dom[i].range_uj / 3 + 7919ULL * (uint64_t)i) % dom[i].range_uj;
                /* 2^32 units of 1/2^esu J = 2^(32-esu) J */
                double msr_range_uj = ldexp(1e6, 32 - m->esu);
                if (m->msr_wrap_in_j >= 0 && m->msr_wrap_in_j * 1e6 < msr_range_uj)
                        dom[i].msr_offset_uj = (uint64_t)(msr_range_uj - m->msr_wrap_in_j * 1e6) + 7919ULL * (uint64_t)i;
                else
                        dom[i].msr_offset_uj = dom[i].offset_uj;
        }
        return n;
}

/* --- file helpers --- */

int mkdir_p(const char *path)
{
        char buf[4096];
        snprintf(buf, sizeof(buf), "%s", path);
        for (char *p = buf + 1; *p; p++) {
                if (*p != '/')
                        continue;
                *p = '\0';
                if (mkdir(buf, 0755) < 0 && errno != EEXIST)
                        return -errno;
                *p = '/';
        }
        if (mkdir(buf, 0755) < 0 && errno != EEXIST)
                return -errno;
        return 0;
}

int write_file(const char *path, const char *text)
{
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0)
                return -errno;
        size_t len = strlen(text);
        ssize_t n = write(fd, text, len);
        int r = n == (ssize_t)len ? 0 : -EIO;
        close(fd);
        return r;
}

/* Write a file under root (relative path), creating its directories. */
int write_at(const char *root, const char *rel, const char *fmt, ...)
{
        char path[4096], text[8192];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(text, sizeof(text), fmt, ap);
        va_end(ap);
        snprintf(path, sizeof(path), "%s/%s", root, rel);
        char *slash = strrchr(path, '/');
        *slash = '\0';
        int r = mkdir_p(path);
        *slash = '/';
        if (r < 0)
                return r;
        r = write_file(path, text);
        if (r < 0)
                fprintf(stderr, "joule-emu: %s: %s\n", path, strerror(-r));
        return r;
}

/* Replace a file's content in place as a live sysfs attribute changes: pwrite at offset 0, then ftruncate
 * (a reader holding the file open sees the new value). */
int rewrite_fd(int fd, const char *text)
{
        size_t len = strlen(text);
        if (pwrite(fd, text, len, 0) != (ssize_t)len)
                return -errno ? -errno : -EIO;
        if (ftruncate(fd, (off_t)len) < 0)
                return -errno;
        return 0;
}

/* Same, by path; a file that is gone (a test removed it) is not recreated. */
int rewrite_path(const char *path, const char *text)
{
        int fd = open(path, O_WRONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        int r = rewrite_fd(fd, text);
        close(fd);
        return r;
}

int read_small(const char *path, char *buf, size_t size)
{
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        ssize_t n = read(fd, buf, size - 1);
        int e = errno;
        close(fd);
        if (n < 0)
                return -e;
        buf[n] = '\0';
        return (int)n;
}

/* --- create --- */

static int symlink_at(const char *root, const char *target, const char *rel)
{
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s", root, rel);
        if (symlink(target, path) < 0 && errno != EEXIST) {
                fprintf(stderr, "joule-emu: symlink %s: %s\n", path, strerror(errno));
                return -errno;
        }
        return 0;
}

static int create_powercap(const model *m, const char *root)
{
        domain dom[EMU_MAX_DOM];
        int n = model_domains(m, dom, EMU_MAX_DOM), r = 0;
        if (n == 0)
                return 0;
        r |= write_at(root, "sys/class/powercap/intel-rapl/enabled", "1\n");
        for (int i = 0; i < n; i++) {
                const domain *d = &dom[i];
                char rel[256];
#define Z(file, ...)                                                                                         \
        (snprintf(rel, sizeof(rel), "%s/%s", d->rel, file), write_at(root, rel, __VA_ARGS__))
                if (d->fault != FAULT_NO_NAME)
                        r |= Z("name", "%s\n", d->kname);
                if (d->fault == FAULT_RANGE0)
                        r |= Z("max_energy_range_uj", "0\n");
                else if (d->fault != FAULT_NO_RANGE)
                        r |= Z("max_energy_range_uj", "%llu\n", (unsigned long long)d->range_uj);
                switch (d->fault) {
                case FAULT_EMPTY:
                        r |= Z("energy_uj", "%s", "");
                        break;
                case FAULT_GARBAGE:
                        r |= Z("energy_uj", "12ab!?\n");
                        break;
                case FAULT_NEGATIVE:
                        r |= Z("energy_uj", "-42\n");
                        break;
                case FAULT_HUGE:
                        r |= Z("energy_uj", "%llu\n", (unsigned long long)d->range_uj * 10ULL);
                        break;
                default:
                        r |= Z("energy_uj", "%llu\n", (unsigned long long)d->offset_uj);
                }
                r |= Z("enabled", "1\n");
                if (d->type == DOM_PKG || d->type == DOM_PSYS) {
                        double tdp = d->type == DOM_PKG ? m->idle_w + m->dyn_w : 400 * m->power_scale;
                        r |= Z("constraint_0_name", "long_term\n");
                        r |= Z("constraint_0_power_limit_uw", "%llu\n", (unsigned long long)(tdp * 1e6));
                        r |= Z("constraint_0_time_window_us", "999424\n");
                        r |= Z("constraint_0_max_power_uw", "%llu\n", (unsigned long long)(tdp * 1e6));
                        r |= Z("constraint_1_name", "short_term\n");
                        r |= Z("constraint_1_power_limit_uw", "%llu\n",
                               (unsigned long long)(tdp * 1.2 * 1e6));
                        r |= Z("constraint_1_time_window_us", "2440\n");
                        r |= Z("constraint_1_max_power_uw", "0\n");
                } else {
                        r |= Z("constraint_0_name", "long_term\n");
                        r |= Z("constraint_0_power_limit_uw", "0\n");
                        r |= Z("constraint_0_time_window_us", "976\n");
                }
#undef Z
                /* The class-level link, as /sys/class/powercap/intel-rapl:0 -> .../intel-rapl/intel-rapl:0 */
                snprintf(rel, sizeof(rel), "sys/class/powercap/%.31s", d->zone);
                r |= symlink_at(root, d->rel + strlen("sys/class/powercap/"), rel);
        }
        return r ? -EIO : 0;
}

/* hwmon chips are numbered coretemp (one per package), k10temp, power_meter; serve.c uses the same. */
int hwmon_index(const model *m, chip_kind kind, int pkg)
{
        int i = 0;
        if (kind == CHIP_CORETEMP)
                return m->coretemp ? pkg : -1;
        if (m->coretemp)
                i += m->npkg;
        if (kind == CHIP_K10TEMP)
                return m->k10temp ? i : -1;
        if (m->k10temp)
                i++;
        return m->power_meter ? i : -1;
}

/* hwmonN/device: the chip's parent device, as libsensors and node_exporter name chips by it
 * (coretemp-isa-0000, k10temp-pci-00c3, power_meter-acpi-0). The device directories live in the fixture
 * under sys/class/.devices (bound with the rest of sys/class); their subsystem links name the bus. */
static int hwmon_device(const char *root, int h, const char *bus, const char *dev)
{
        char rel[256], target[256];
        int r = 0;
        snprintf(rel, sizeof(rel), "sys/class/.devices/%s/%s/uevent", bus, dev);
        r |= write_at(root, rel, "DRIVER=%s\n", bus);
        snprintf(rel, sizeof(rel), "sys/class/.devices/%s/%s/subsystem", bus, dev);
        snprintf(target, sizeof(target), "/sys/bus/%s", bus);
        r |= symlink_at(root, target, rel);
        snprintf(rel, sizeof(rel), "sys/class/hwmon/hwmon%d/device", h);
        snprintf(target, sizeof(target), "../../.devices/%s/%s", bus, dev);
        r |= symlink_at(root, target, rel);
        return r;
}

static int create_hwmon(const model *m, const char *root)
{
        int r = 0;
        int t = (int)lround(m->start_c * 1000);
        if (m->coretemp)
                for (int p = 0; p < m->npkg; p++) {
                        int h = hwmon_index(m, CHIP_CORETEMP, p);
                        char rel[256];
#define H(file, ...) (snprintf(rel, sizeof(rel), "sys/class/hwmon/hwmon%d/%s", h, file), write_at(root, rel, __VA_ARGS__))
                        r |= H("name", "coretemp\n");
                        char dev[32];
                        snprintf(dev, sizeof(dev), "coretemp.%d", p);
                        r |= hwmon_device(root, h, "platform", dev);
                        for (int k = 0; k <= m->cores_per_pkg; k++) {
                                char f[64];
                                /* temp1: the package; temp2..: the cores (the kernel numbers cores from 2) */
                                snprintf(f, sizeof(f), "temp%d_label", k + 1);
                                if (k == 0)
                                        r |= H(f, "Package id %d\n", p);
                                else
                                        r |= H(f, "Core %d\n", k - 1);
                                snprintf(f, sizeof(f), "temp%d_input", k + 1);
                                if (m->broken && p == 0 && k == 0)
                                        r |= H(f, "hot\n");
                                else if (m->broken && p == 0 && k == 1)
                                        r |= H(f, "%s", "");
                                else
                                        r |= H(f, "%d\n", t);
                                snprintf(f, sizeof(f), "temp%d_max", k + 1);
                                r |= H(f, "80000\n");
                                snprintf(f, sizeof(f), "temp%d_crit", k + 1);
                                r |= H(f, "100000\n");
                                snprintf(f, sizeof(f), "temp%d_crit_alarm", k + 1);
                                r |= H(f, "0\n");
                        }
                }
        if (m->k10temp) {
                int h = hwmon_index(m, CHIP_K10TEMP, 0);
                char rel[256];
                r |= H("name", "k10temp\n");
                r |= hwmon_device(root, h, "pci", "0000:00:18.3");
                r |= H("temp1_label", "Tctl\n");
                r |= H("temp1_input", "%d\n", t);
                r |= H("temp3_label", "Tccd1\n");
                r |= H("temp3_input", "%d\n", t);
        }
        if (m->power_meter) {
                int h = hwmon_index(m, CHIP_POWER_METER, 0);
                char rel[256];
                r |= H("name", "power_meter\n");
                r |= hwmon_device(root, h, "acpi", "ACPI000D:00");
                r |= H("power1_average", "%llu\n", (unsigned long long)0);
                r |= H("power1_average_interval", "1000\n");
                r |= H("power1_is_battery", "0\n");
#undef H
        }
        return r ? -EIO : 0;
}

/* "0-3", "0-1,3": the kernel's CPU list format. */
void cpu_list(const bool *on, int n, char *buf, size_t size)
{
        size_t len = 0;
        buf[0] = '\0';
        for (int i = 0; i < n; i++) {
                if (!on[i])
                        continue;
                int j = i;
                while (j + 1 < n && on[j + 1])
                        j++;
                if (j > i)
                        len += (size_t)snprintf(buf + len, size - len, "%s%d-%d", len ? "," : "", i, j);
                else
                        len += (size_t)snprintf(buf + len, size - len, "%s%d", len ? "," : "", i);
                i = j;
                if (len >= size)
                        break;
        }
}

uint64_t msr_addr(const model *m, dom_type t)
{
        if (m->amd)
                return t == DOM_PKG ? MSR_AMD_PKG_ENERGY_STATUS : 0;
        switch (t) {
        case DOM_PKG:
                return MSR_PKG_ENERGY_STATUS;
        case DOM_CORE:
                return MSR_PP0_ENERGY_STATUS;
        case DOM_DRAM:
                return MSR_DRAM_ENERGY_STATUS;
        case DOM_PSYS:
                return MSR_PLATFORM_ENERGY_STATUS;
        }
        return 0;
}

/* The MSR counter of a domain: its ground truth (plus the same start offset as the powercap counter) in
 * units of 1/2^esu J, 32 bits, wrapping at 2^32 units. */
uint64_t msr_raw(const model *m, const domain *d)
{
        unsigned __int128 uj = (unsigned __int128)(d->msr_offset_uj + d->truth_uj);
        /* Intel server parts (the models here are Xeons, family 6 model 85) count DRAM in a fixed 2^-16 J,
         * whatever the unit register says, as the kernel's intel_rapl driver knows. */
        int esu = !m->amd && d->type == DOM_DRAM ? 16 : m->esu;
        uint64_t raw = (uint64_t)((uj << esu) / 1000000u) & 0xffffffffULL;
        /* MSR_PKG_POWER_INFO (0x614) cannot be laid out in a file of registers at offset = address: its 8
         * bytes are the package counter's (0x611) bytes 3-7 and the DRAM counter's (0x619) bytes 0-2. The
         * package counter's reserved upper half reads as ones here, so that 0x614 always has reserved bits
         * set (bit 15) and providers ignore it rather than believe a maximum power made of counter bits. */
        if (!m->amd && d->type == DOM_PKG)
                raw |= 0xffffffff00000000ULL;
        return raw;
}

uint64_t msr_unit(const model *m)
{
        /* power units 1/8 W (bits 3:0), energy status units (bits 12:8), time units 1/1024 s (19:16) */
        return (10ULL << 16) | ((uint64_t)(m->esu & 0x1f) << 8) | 3ULL;
}

int msr_write(int fd, uint64_t addr, uint64_t value)
{
        if (pwrite(fd, &value, sizeof(value), (off_t)addr) != (ssize_t)sizeof(value))
                return -EIO;
        return 0;
}

static int create_msr(const model *m, const char *root)
{
        domain dom[EMU_MAX_DOM];
        int n = model_domains(m, dom, EMU_MAX_DOM), r = 0;
        char path[4096];
        for (int c = 0; c < model_ncpu(m); c++) {
                snprintf(path, sizeof(path), "%s/dev/cpu/%d", root, c);
                r |= mkdir_p(path);
                if (!m->msr)
                        continue; /* as without the msr module: /dev/cpu/N without msr */
                snprintf(path, sizeof(path), "%s/dev/cpu/%d/msr", root, c);
                int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
                if (fd < 0)
                        return -errno;
                r |= msr_write(fd, m->amd ? MSR_AMD_RAPL_POWER_UNIT : MSR_RAPL_POWER_UNIT, msr_unit(m));
                for (int i = 0; i < n; i++) {
                        uint64_t a = msr_addr(m, dom[i].type);
                        if (a && (dom[i].pkg < 0 || dom[i].pkg == cpu_pkg(m, c)))
                                r |= msr_write(fd, a, msr_raw(m, &dom[i]));
                }
                close(fd);
        }
        return r ? -EIO : 0;
}

static int create_cpus(const model *m, const char *root)
{
        const char *base = "sys/devices/system/cpu";
        int ncpu = model_ncpu(m), r = 0;
        char rel[512], list[64];
        bool on[EMU_MAX_CPU];
        for (int c = 0; c < ncpu; c++)
                on[c] = true;
        cpu_list(on, ncpu, list, sizeof(list));
#define C(file, ...) (snprintf(rel, sizeof(rel), "%s/%s", base, file), write_at(root, rel, __VA_ARGS__))
        r |= C("online", "%s\n", list);
        r |= C("possible", "%s\n", list);
        r |= C("present", "%s\n", list);
        r |= C("offline", "\n");
        r |= C("kernel_max", "8191\n");
        bool smt = m->threads_per_core > 1;
        r |= C("smt/control", "%s\n", smt ? "on" : "notsupported");
        r |= C("smt/active", "%d\n", smt ? 1 : 0);
        if (strcmp(m->driver, "intel_pstate") == 0) {
                r |= C("intel_pstate/status", "active\n");
                r |= C("intel_pstate/no_turbo", "0\n");
                r |= C("intel_pstate/max_perf_pct", "100\n");
                r |= C("intel_pstate/min_perf_pct", "%u\n", m->fmin_khz * 100 / m->fmax_khz);
                r |= C("intel_pstate/num_pstates", "%u\n", (m->fmax_khz - m->fmin_khz) / 100000 + 1);
                r |= C("intel_pstate/turbo_pct", "%u\n",
                       (m->fmax_khz - m->fbase_khz) * 100 / (m->fmax_khz - m->fmin_khz));
        } else
                r |= C("cpufreq/boost", "1\n");
        for (int c = 0; c < ncpu; c++) {
                char f[128];
                int p = cpu_pkg(m, c), k = cpu_core(m, c);
#define CPU(file, ...) (snprintf(f, sizeof(f), "cpu%d/%s", c, file), C(f, __VA_ARGS__))
                r |= CPU("online", "1\n");
                r |= CPU("topology/physical_package_id", "%d\n", p);
                r |= CPU("topology/die_id", "0\n");
                r |= CPU("topology/core_id", "%d\n", k);
                int first = c - c % m->threads_per_core;
                if (m->threads_per_core > 1)
                        snprintf(list, sizeof(list), "%d-%d", first, first + m->threads_per_core - 1);
                else
                        snprintf(list, sizeof(list), "%d", c);
                r |= CPU("topology/thread_siblings_list", "%s\n", list);
                r |= CPU("topology/core_cpus_list", "%s\n", list);
                /* cpuidle as intel_idle / acpi_idle lay it out: every state enabled (the system checks) */
                static const char *const idle_names[] = {"POLL", "C1", "C6"};
                for (int i = 0; i < 3; i++) {
                        char st[64];
                        snprintf(st, sizeof(st), "cpuidle/state%d/name", i);
                        r |= CPU(st, "%s\n", i == 2 && m->amd ? "C2" : idle_names[i]);
                        snprintf(st, sizeof(st), "cpuidle/state%d/disable", i);
                        r |= CPU(st, "0\n");
                }
#undef CPU
                /* The policy is a real directory; cpuN/cpufreq links to it, as the kernel lays it out. */
#define POL(file, ...) (snprintf(f, sizeof(f), "cpufreq/policy%d/%s", c, file), C(f, __VA_ARGS__))
                bool bad = m->broken && c < 3;
                r |= POL("affected_cpus", "%d\n", c);
                r |= POL("related_cpus", "%d\n", c);
                r |= POL("cpuinfo_min_freq", "%u\n", m->fmin_khz);
                r |= POL("cpuinfo_max_freq", "%u\n", m->fmax_khz);
                r |= POL("cpuinfo_transition_latency", "%u\n", m->amd ? 20000u : 0u);
                r |= POL("scaling_min_freq", "%u\n", m->fmin_khz);
                if (bad && c == 1)
                        r |= POL("scaling_max_freq", "garbage\n");
                else
                        r |= POL("scaling_max_freq", "%u\n", m->fmax_khz);
                if (bad)
                        r |= POL("scaling_cur_freq", "%s", c == 0 ? "fast\n" : c == 1 ? "" : "-1\n");
                else
                        r |= POL("scaling_cur_freq", "%u\n", m->fmin_khz);
                r |= POL("scaling_governor", "%s\n", m->governor);
                r |= POL("scaling_available_governors", "%s\n", m->governors);
                r |= POL("scaling_driver", "%s\n", m->driver);
                r |= POL("scaling_setspeed", "<unsupported>\n");
                if (strcmp(m->driver, "intel_pstate") == 0) {
                        r |= POL("base_frequency", "%u\n", m->fbase_khz);
                        r |= POL("energy_performance_preference", "balance_performance\n");
                } else
                        r |= POL("scaling_available_frequencies", "%u %u %u\n", m->fbase_khz,
                                 (m->fbase_khz + m->fmin_khz) / 2, m->fmin_khz);
#undef POL
                char target[64], link[128];
                snprintf(target, sizeof(target), "../cpufreq/policy%d", c);
                snprintf(link, sizeof(link), "%s/cpu%d/cpufreq", base, c);
                r |= symlink_at(root, target, link);
        }
#undef C
        return r ? -EIO : 0;
}

/* /proc/stat as the kernel writes it; serve.c rewrites it with the same function. */
int proc_stat_text(const model *m, const bool *online, const double (*jiffies)[2], char *buf, size_t size)
{
        unsigned long long tb = 0, ti = 0;
        for (int c = 0; c < model_ncpu(m); c++)
                if (online[c]) {
                        tb += (unsigned long long)jiffies[c][0];
                        ti += (unsigned long long)jiffies[c][1];
                }
        size_t len = (size_t)snprintf(buf, size, "cpu  %llu 0 0 %llu 0 0 0 0 0 0\n", tb, ti);
        for (int c = 0; c < model_ncpu(m) && len < size; c++)
                if (online[c])
                        len += (size_t)snprintf(buf + len, size - len, "cpu%d %llu 0 0 %llu 0 0 0 0 0 0\n", c,
                                                (unsigned long long)jiffies[c][0],
                                                (unsigned long long)jiffies[c][1]);
        if (len < size)
                len += (size_t)snprintf(buf + len, size - len,
                                        "intr 0\nctxt 0\nbtime 1700000000\nprocesses 1\nprocs_running 1\n"
                                        "procs_blocked 0\nsoftirq 0 0 0 0 0 0 0 0 0 0 0\n");
        return len < size ? 0 : -ENOBUFS;
}

static int create_proc(const model *m, const char *root)
{
        char text[16384];
        size_t len = 0;
        int r = 0;
        for (int c = 0; c < model_ncpu(m); c++)
                len += (size_t)snprintf(
                        text + len, sizeof(text) - len,
                        "processor\t: %d\nvendor_id\t: %s\ncpu family\t: %d\nmodel\t\t: %d\n"
                        "model name\t: %s\nstepping\t: 1\ncpu MHz\t\t: %.3f\nphysical id\t: %d\n"
                        "siblings\t: %d\ncore id\t\t: %d\ncpu cores\t: %d\nflags\t\t: fpu msr tsc %s\n\n",
                        c, m->amd ? "AuthenticAMD" : "GenuineIntel", m->amd ? 25 : 6, m->amd ? 1 : 85,
                        m->amd ? "AMD EPYC Emulated Processor" : "Intel(R) Xeon(R) Emulated CPU @ 2.10GHz",
                        m->fmin_khz / 1000.0, cpu_pkg(m, c), m->cores_per_pkg * m->threads_per_core,
                        cpu_core(m, c), m->cores_per_pkg, m->amd ? "rapl" : "rapl pln pts");
        r |= write_at(root, "proc/cpuinfo", "%s", text);
        bool on[EMU_MAX_CPU];
        double j[EMU_MAX_CPU][2];
        for (int c = 0; c < model_ncpu(m); c++) {
                on[c] = true;
                j[c][0] = 1000;
                j[c][1] = 100000;
        }
        if (proc_stat_text(m, on, (const double(*)[2])j, text, sizeof(text)) < 0)
                return -ENOBUFS;
        r |= write_at(root, "proc/stat", "%s", text);
        return r ? -EIO : 0;
}

int model_create(const model *m, const model_opts *o, const char *root)
{
        int r = mkdir_p(root);
        if (r < 0)
                return r;
        r = write_at(root, EMU_CONF, "model %s\nwrap_uj %llu\nesu %d\nambient_c %.3f\nstart_c %.3f\ntau_s %.3f\n"
                     "msr_wrap_in_j %.6f\npower_scale %.6f\n",
                     m->name, (unsigned long long)m->range_uj, m->esu, m->ambient_c, m->start_c, m->tau_s,
                     m->msr_wrap_in_j, m->power_scale);
        if (r < 0)
                return r;
        (void)o;
        char path[4096];
        snprintf(path, sizeof(path), "%s/sys/class/hwmon", root);
        if ((r = mkdir_p(path)) < 0)
                return r;
        if ((r = create_powercap(m, root)) < 0 || (r = create_hwmon(m, root)) < 0 ||
            (r = create_cpus(m, root)) < 0 || (r = create_msr(m, root)) < 0 || (r = create_proc(m, root)) < 0)
                return r;
        return 0;
}

/* Rebuild the model of a tree made by model_create() from its emu.conf. */
int model_load_conf(const char *root, model *ret)
{
        char path[4096], text[1024], name[32] = "";
        snprintf(path, sizeof(path), "%s/%s", root, EMU_CONF);
        int r = read_small(path, text, sizeof(text));
        if (r < 0)
                return r;
        unsigned long long wrap = 0;
        model_opts o = {.esu = -1, .ambient_c = NAN, .start_c = NAN, .tau_s = NAN};
        if (sscanf(text, "model %31s\nwrap_uj %llu\nesu %d\nambient_c %lf\nstart_c %lf\ntau_s %lf\nmsr_wrap_in_j %lf",
                   name, &wrap, &o.esu, &o.ambient_c, &o.start_c, &o.tau_s, &o.msr_wrap_in_j) != 7)
                return -EINVAL;
        if (o.msr_wrap_in_j < 0)
                o.msr_wrap_in_j = NAN;
        const char *ps = strstr(text, "\npower_scale ");
        if (ps && sscanf(ps, "\npower_scale %lf", &o.power_scale) != 1)
                return -EINVAL;
        o.wrap_uj = wrap;
        return model_get(name, &o, ret);
}
