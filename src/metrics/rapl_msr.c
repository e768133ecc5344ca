/* rapl_msr.c - RAPL energy counters read straight from the model-specific registers through the msr
 * driver (/dev/cpu/N/msr, one pread() of 8 bytes at offset = register address), for kernels without the
 * powercap RAPL driver or where its files are root-only and the msr ones are not. Intel (family 6): package,
 * core (PP0), uncore (PP1), DRAM and psys; AMD and Hygon (family 17h and later): package. One CPU per
 * package reads it: the first online CPU of each physical_package_id. The counters are 32 bits wide; they
 * are converted to µJ with exact integer arithmetic and unwrapped by the sampler at wrap_uj. On Intel the
 * package's maximum power (MSR_PKG_POWER_INFO) is its channel's max_power_w, which the sampler schedules its
 * guard reads by; AMD states none, so the sampler uses the observed peak there.
 *
 * Unknown hardware (vendor, family, a register that does not exist, a nonsensical unit) makes the provider
 * or the domain unavailable with a note, never a crash. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fileio.h"
#include "macro.h"
#include "parse.h"
#include "provider.h"

#define CPU_SYSFS "/sys/devices/system/cpu"
#define CPU_MAX 4096
#define PKG_MAX 64

/* Intel (SDM vol. 4, "RAPL interfaces"). */
#define MSR_RAPL_POWER_UNIT 0x606
#define MSR_PKG_ENERGY_STATUS 0x611
#define MSR_PKG_POWER_INFO 0x614
#define MSR_DRAM_ENERGY_STATUS 0x619
#define MSR_PP0_ENERGY_STATUS 0x639
#define MSR_PP1_ENERGY_STATUS 0x641
#define MSR_PLATFORM_ENERGY_STATUS 0x64D
/* AMD family 17h+ (PPR). */
#define MSR_AMD_RAPL_POWER_UNIT 0xC0010299
#define MSR_AMD_PKG_ENERGY_STATUS 0xC001029B

/* Energy status unit: bits 12:8 of the unit register; one count is 1/2^ESU J. */
#define ESU_OF(unit_msr) ((unsigned)(((unit_msr) >> 8) & 0x1f))
#define ESU_MIN 1
#define ESU_MAX 24
/* Power unit: bits 3:0 of the unit register; one count is 1/2^PU W. */
#define PU_OF(unit_msr) ((unsigned)((unit_msr)&0xf))
/* MSR_PKG_POWER_INFO: bits 14:0 the thermal spec power (TDP), bits 46:32 the maximum power, in power units;
 * bits 15, 31, 47 and 63:54 are reserved (read as 0). */
#define POWER_INFO_TDP(v) ((unsigned)((v)&0x7fff))
#define POWER_INFO_MAX(v) ((unsigned)(((v) >> 32) & 0x7fff))
#define POWER_INFO_RESERVED UINT64_C(0xffc0800080008000)
/* A package's maximum power above this is not believed (the field can state up to 32767 W). */
#define PKG_MAX_POWER_PLAUSIBLE_W 2000.0
/* Server parts whose DRAM domain counts in a fixed 15.3 µJ (2^-16 J), whatever the unit register says. */
#define DRAM_FIXED_ESU 16

typedef enum { VENDOR_INTEL, VENDOR_AMD } cpu_vendor;

typedef struct {
        int id;  /* physical_package_id */
        int cpu; /* the CPU whose msr file is read */
        int fd;  /* -1: closed after a failure, reopened on the next read */
} msr_package;

typedef struct {
        size_t pkg;   /* index into packages[] */
        uint32_t msr; /* energy status register */
        unsigned esu; /* energy status unit */
} msr_domain;

typedef struct {
        size_t n_packages, n_domains;
        msr_package packages[PKG_MAX];
        msr_domain domains[PKG_MAX * 5];
} msr_state;

/* raw 32-bit count -> µJ, exact: raw × 10^6 / 2^esu rounded down (raw < 2^32, so no overflow). */
static uint64_t counts_to_uj(uint64_t raw, unsigned esu)
{
        return ((raw & UINT32_MAX) * UINT64_C(1000000)) >> esu;
}

static uint64_t wrap_uj_of(unsigned esu)
{
        return ((UINT64_C(1) << 32) * UINT64_C(1000000)) >> esu;
}

static int msr_pread(int fd, uint32_t msr, uint64_t *ret)
{
        uint64_t v;
        ssize_t n;
        do
                n = pread(fd, &v, sizeof(v), (off_t)msr);
        while (n < 0 && errno == EINTR);
        if (n < 0)
                return negative_errno();
        if (n != (ssize_t)sizeof(v))
                return -EIO; /* a short read: the register (or the file behind it) is gone */
        *ret = v;
        return 0;
}

static int msr_open_cpu(int cpu)
{
        char path[64];
        snprintf(path, sizeof(path), "/dev/cpu/%d/msr", cpu);
        return open_ro(path);
}

/* The value after "key<spaces/tabs>: " on a /proc/cpuinfo line, or NULL when the line holds another key. */
static const char *cpuinfo_value(const char *line, const char *key)
{
        size_t k = strlen(key);
        if (strncmp(line, key, k) != 0)
                return NULL;
        line += k;
        while (*line == ' ' || *line == '\t')
                line++;
        if (*line != ':')
                return NULL;
        line++;
        while (*line == ' ' || *line == '\t')
                line++;
        return line;
}

/* Vendor, family and model of the first processor in /proc/cpuinfo. */
static int read_cpuinfo(char *vendor, size_t vendor_size, uint64_t *ret_family, uint64_t *ret_model)
{
        _cleanup_fclose_ FILE *f = fopen("/proc/cpuinfo", "re");
        if (!f)
                return negative_errno();
        _cleanup_free_ char *line = NULL;
        size_t cap = 0;
        bool have_vendor = false, have_family = false, have_model = false;
        uint64_t family = 0, model = 0;
        char v[32] = "";
        while (getline(&line, &cap, f) > 0) {
                strip_trailing(line);
                if (line[0] == '\0' && (have_vendor || have_family))
                        break; /* end of the first processor's block */
                const char *val;
                if ((val = cpuinfo_value(line, "vendor_id"))) {
                        snprintf(v, sizeof(v), "%s", val);
                        have_vendor = true;
                } else if ((val = cpuinfo_value(line, "cpu family")))
                        have_family = parse_u64(val, &family) == 0;
                else if ((val = cpuinfo_value(line, "model")))
                        have_model = parse_u64(val, &model) == 0;
        }
        if (!have_vendor)
                return -ENODATA;
        snprintf(vendor, vendor_size, "%s", v);
        *ret_family = have_family ? family : 0;
        *ret_model = have_model ? model : 0;
        return 0;
}

/* Intel server models whose DRAM energy unit is fixed at 2^-16 J (as the kernel's intel_rapl driver knows
 * them): Haswell-X, Broadwell-X, Skylake-X, Ice Lake-X/D, Sapphire/Emerald Rapids, Xeon Phi. */
/* Silvermont/Airmont Atoms encode the energy unit differently (2^ESU µJ, per model): not decoded here. */
static bool intel_atom_other_unit(uint64_t model)
{
        static const uint8_t models[] = {0x37, 0x4A, 0x4C, 0x5A, 0x5D};
        for (size_t i = 0; i < ARRAY_SIZE(models); i++)
                if (model == models[i])
                        return true;
        return false;
}

static bool intel_dram_fixed_unit(uint64_t model)
{
        static const uint8_t models[] = {0x3F, 0x4F, 0x55, 0x6A, 0x6C, 0x8F, 0xCF, 0x57, 0x85};
        for (size_t i = 0; i < ARRAY_SIZE(models); i++)
                if (model == models[i])
                        return true;
        return false;
}

/* The first online CPU of each package, in the order of the CPUs. Returns the number of packages. */
static int find_packages(msr_package *pk, size_t max, jl_notes *notes)
{
        char buf[4096];
        int r = read_line_path(CPU_SYSFS "/online", buf, sizeof(buf));
        uint64_t mask[CPU_MAX / 64] = {0};
        if (r >= 0)
                r = parse_cpu_list(buf, mask, CPU_MAX);
        if (r <= 0) {
                r = r == 0 ? -ENODATA : r;
                jl_notes_add(notes, "rapl-msr", r, "%s/online: cannot tell which CPUs are online: %s",
                             CPU_SYSFS, jl_errno_hint(r));
                return r;
        }
        size_t n = 0;
        for (int cpu = 0; cpu < CPU_MAX; cpu++) {
                if (!((mask[cpu / 64] >> (cpu % 64)) & 1))
                        continue;
                char path[128];
                int64_t id;
                snprintf(path, sizeof(path), CPU_SYSFS "/cpu%d/topology/physical_package_id", cpu);
                r = read_i64_path(path, &id);
                if (r < 0 || id < 0 || id >= 4096) {
                        /* no topology (some VMs): count the CPU as package 0 */
                        id = 0;
                }
                bool seen = false;
                for (size_t i = 0; i < n; i++)
                        if (pk[i].id == (int)id)
                                seen = true;
                if (seen)
                        continue;
                if (n == max) {
                        jl_notes_add(notes, "rapl-msr", -ERANGE,
                                     "more than %zu packages: only the first %zu are read", max, max);
                        break;
                }
                pk[n++] = (msr_package){.id = (int)id, .cpu = cpu, .fd = -1};
        }
        return (int)n;
}

/* After a failure: the first online CPU of package `id` now (it may have changed), or a negative errno. */
static int package_cpu_now(int id)
{
        msr_package pk[PKG_MAX];
        jl_notes scratch = {0};
        int n = find_packages(pk, ARRAY_SIZE(pk), &scratch);
        jl_notes_free(&scratch);
        if (n < 0)
                return n;
        for (int i = 0; i < n; i++)
                if (pk[i].id == id)
                        return pk[i].cpu;
        return -ENODEV;
}

static void note_open_error(jl_notes *notes, const char *subject, int cpu, int r)
{
        if (r == -ENOENT)
                jl_notes_add(notes, subject, r, "/dev/cpu/%d/msr missing: load the msr driver: modprobe msr",
                             cpu);
        else if (r == -EACCES || r == -EPERM)
                jl_notes_add(notes, subject, r,
                             "/dev/cpu/%d/msr: permission denied: reading MSRs needs root (CAP_SYS_RAWIO); "
                             "run as root or use jouled",
                             cpu);
        else
                jl_notes_add(notes, subject, r, "/dev/cpu/%d/msr: %s", cpu, jl_errno_hint(r));
}

/* The package's maximum power in W from MSR_PKG_POWER_INFO (Intel), or 0 with a note when the register is
 * missing or states nothing plausible: none, above PKG_MAX_POWER_PLAUSIBLE_W, below the package's own
 * thermal spec power, or reserved bits set. 0 is no error: the sampler then schedules its guard reads by the
 * observed peak. */
static double pkg_max_power_w(int fd, uint64_t unit, int cpu, const char *subject, jl_notes *notes)
{
        uint64_t v;
        int r = msr_pread(fd, MSR_PKG_POWER_INFO, &v);
        if (r < 0) {
                jl_notes_add(
                    notes, subject, r,
                    "MSR_PKG_POWER_INFO (%#x) on CPU %d: %s; guard reads follow the observed peak power",
                    MSR_PKG_POWER_INFO, cpu, r == -EIO ? "not supported on this CPU" : jl_errno_hint(r));
                return 0;
        }
        double w_per_count = ldexp(1.0, -(int)PU_OF(unit));
        double max_w = POWER_INFO_MAX(v) * w_per_count, tdp_w = POWER_INFO_TDP(v) * w_per_count;
        if (max_w <= 0 || max_w > PKG_MAX_POWER_PLAUSIBLE_W || max_w < tdp_w || (v & POWER_INFO_RESERVED)) {
                jl_notes_add(
                    notes, subject, -ERANGE,
                    "MSR_PKG_POWER_INFO (%#x) on CPU %d reads %#" PRIx64
                    ": maximum power %g W (thermal spec power %g W) is not plausible; ignored, guard "
                    "reads follow the observed peak power",
                    MSR_PKG_POWER_INFO, cpu, v, max_w, tdp_w);
                return 0;
        }
        return max_w;
}

typedef struct {
        const char *prefix; /* channel name: "<prefix>-<package id>", or the prefix alone when once */
        uint32_t msr;
        jl_scope scope;
        bool once;       /* one per node (psys): read on the first package only */
        bool power_info; /* its maximum power is MSR_PKG_POWER_INFO's */
} domain_def;

static const domain_def intel_domains[] = {
    {"package", MSR_PKG_ENERGY_STATUS, JL_SCOPE_PACKAGE, false, true},
    {"core", MSR_PP0_ENERGY_STATUS, JL_SCOPE_SUBDOMAIN, false, false},
    {"uncore", MSR_PP1_ENERGY_STATUS, JL_SCOPE_SUBDOMAIN, false, false},
    {"dram", MSR_DRAM_ENERGY_STATUS, JL_SCOPE_DRAM, false, false},
    {"psys", MSR_PLATFORM_ENERGY_STATUS, JL_SCOPE_NODE, true, false},
};

static const domain_def amd_domains[] = {
    {"package", MSR_AMD_PKG_ENERGY_STATUS, JL_SCOPE_PACKAGE, false, false},
};

static void close_packages(msr_state *st)
{
        for (size_t i = 0; i < st->n_packages; i++)
                if (st->packages[i].fd >= 0)
                        close(st->packages[i].fd);
}

static int msr_open(const jl_provider_config *cfg, jl_channels *channels, jl_notes *notes, void **ret_state)
{
        (void)cfg;
        char vendor[32];
        uint64_t family, model;
        int r = read_cpuinfo(vendor, sizeof(vendor), &family, &model);
        if (r < 0) {
                jl_notes_add(notes, "rapl-msr", r, "/proc/cpuinfo: cannot tell the CPU vendor: %s",
                             r == -ENODATA ? "no vendor_id line (not an x86 CPU?)" : jl_errno_hint(r));
                return r == -ENODATA ? -ENODEV : r;
        }

        cpu_vendor vend;
        if (strcmp(vendor, "GenuineIntel") == 0) {
                vend = VENDOR_INTEL;
                if (family != 6) {
                        jl_notes_add(notes, "rapl-msr", -ENODEV,
                                     "Intel CPU family %" PRIu64 " is not known to have RAPL MSRs; "
                                     "use the powercap provider (modprobe intel_rapl_msr)",
                                     family);
                        return -ENODEV;
                }
                if (intel_atom_other_unit(model)) {
                        jl_notes_add(notes, "rapl-msr", -ENODEV,
                                     "Intel Atom model %#" PRIx64
                                     " encodes its RAPL energy unit differently; "
                                     "use the powercap provider (modprobe intel_rapl_msr)",
                                     model);
                        return -ENODEV;
                }
        } else if (strcmp(vendor, "AuthenticAMD") == 0 || strcmp(vendor, "HygonGenuine") == 0) {
                vend = VENDOR_AMD;
                if (family < 0x17) {
                        jl_notes_add(notes, "rapl-msr", -ENODEV,
                                     "%s CPU family %#" PRIx64
                                     " has no RAPL MSRs (they start with family 17h, "
                                     "Zen)",
                                     vendor, family);
                        return -ENODEV;
                }
        } else {
                jl_notes_add(notes, "rapl-msr", -ENODEV,
                             "CPU vendor '%s' has no known RAPL MSRs (only GenuineIntel, AuthenticAMD and "
                             "HygonGenuine are supported)",
                             vendor);
                return -ENODEV;
        }

        _cleanup_free_ msr_state *st = calloc(1, sizeof(*st));
        if (!st)
                return -ENOMEM;
        r = find_packages(st->packages, ARRAY_SIZE(st->packages), notes);
        if (r < 0)
                return r;
        st->n_packages = (size_t)r;

        const domain_def *defs = vend == VENDOR_INTEL ? intel_domains : amd_domains;
        size_t n_defs = vend == VENDOR_INTEL ? ARRAY_SIZE(intel_domains) : ARRAY_SIZE(amd_domains);
        uint32_t unit_msr = vend == VENDOR_INTEL ? MSR_RAPL_POWER_UNIT : MSR_AMD_RAPL_POWER_UNIT;
        size_t before = channels->n;
        bool psys_done = false;

        for (size_t p = 0; p < st->n_packages; p++) {
                msr_package *pk = &st->packages[p];
                char subject[JL_NAME_MAX];
                snprintf(subject, sizeof(subject), "rapl-msr/package-%d", pk->id);
                r = msr_open_cpu(pk->cpu);
                if (r < 0) {
                        /* Without the first package's file the provider as a whole is unavailable. */
                        note_open_error(notes, p == 0 ? "rapl-msr" : subject, pk->cpu, r);
                        if (p == 0) {
                                st->n_packages = 0;
                                goto fail;
                        }
                        continue;
                }
                pk->fd = r;

                uint64_t unit;
                r = msr_pread(pk->fd, unit_msr, &unit);
                if (r < 0) {
                        jl_notes_add(notes, subject, r,
                                     "cannot read the RAPL unit register %#x on CPU %d: %s", unit_msr,
                                     pk->cpu,
                                     r == -EIO ? "this CPU model has no RAPL MSRs" : jl_errno_hint(r));
                        continue;
                }
                unsigned esu = ESU_OF(unit);
                if (unit == 0 || esu < ESU_MIN || esu > ESU_MAX) {
                        jl_notes_add(notes, subject, -ERANGE,
                                     "the RAPL unit register %#x on CPU %d reads %#" PRIx64
                                     ": energy unit 2^-%u J is not plausible; not reading this package",
                                     unit_msr, pk->cpu, unit, esu);
                        continue;
                }

                for (size_t d = 0; d < n_defs; d++) {
                        const domain_def *def = &defs[d];
                        if (def->once && psys_done)
                                continue;
                        jl_channel ch = {
                            .provider = "rapl-msr", .kind = JL_KIND_ENERGY, .scope = def->scope};
                        if (def->once)
                                snprintf(ch.name, sizeof(ch.name), "%s", def->prefix);
                        else
                                snprintf(ch.name, sizeof(ch.name), "%s-%d", def->prefix, pk->id);
                        char dsubject[JL_NAME_MAX + 16];
                        snprintf(dsubject, sizeof(dsubject), "rapl-msr/%s", ch.name);

                        uint64_t v;
                        r = msr_pread(pk->fd, def->msr, &v);
                        if (r < 0) {
                                jl_notes_add(notes, dsubject, r, "MSR %#x on CPU %d: %s", def->msr, pk->cpu,
                                             r == -EIO ? "not supported on this CPU" : jl_errno_hint(r));
                                continue;
                        }
                        unsigned desu = esu;
                        if (def->msr == MSR_DRAM_ENERGY_STATUS && intel_dram_fixed_unit(model))
                                desu = DRAM_FIXED_ESU;
                        ch.wrap_uj = wrap_uj_of(desu);
                        if (def->power_info)
                                ch.max_power_w = pkg_max_power_w(pk->fd, unit, pk->cpu, dsubject, notes);
                        r = jl_channels_add(channels, &ch);
                        if (r < 0)
                                goto fail;
                        st->domains[st->n_domains++] = (msr_domain){.pkg = p, .msr = def->msr, .esu = desu};
                        if (def->once)
                                psys_done = true;
                }
        }
        if (st->n_domains == 0) {
                jl_notes_add(notes, "rapl-msr", -ENODEV, "no readable RAPL MSR (see the notes above)");
                r = -ENODEV;
                goto fail;
        }
        *ret_state = TAKE_PTR(st);
        return 0;

fail:
        channels->n = before;
        close_packages(st);
        return r;
}

static int msr_read(void *state, jl_value *values)
{
        msr_state *st = state;
        /* Reopen packages whose file failed last time: the CPU may be back, or another CPU of the package
         * may now be the first online one. */
        for (size_t p = 0; p < st->n_packages; p++) {
                msr_package *pk = &st->packages[p];
                if (pk->fd >= 0)
                        continue;
                bool used = false;
                for (size_t d = 0; d < st->n_domains; d++)
                        used |= st->domains[d].pkg == p;
                if (!used)
                        continue;
                int cpu = package_cpu_now(pk->id);
                if (cpu >= 0) {
                        int fd = msr_open_cpu(cpu);
                        if (fd >= 0) {
                                pk->cpu = cpu;
                                pk->fd = fd;
                        }
                }
        }
        for (size_t d = 0; d < st->n_domains; d++) {
                const msr_domain *dom = &st->domains[d];
                msr_package *pk = &st->packages[dom->pkg];
                if (pk->fd < 0) {
                        values[d].err = -ENODEV;
                        continue;
                }
                uint64_t raw;
                int r = msr_pread(pk->fd, dom->msr, &raw);
                if (r < 0) {
                        values[d].err = r;
                        /* The CPU went offline or its file vanished: close, retry on the next read. */
                        close(pk->fd);
                        pk->fd = -1;
                        continue;
                }
                values[d].counter = counts_to_uj(raw, dom->esu);
        }
        return 0;
}

static void msr_close(void *state)
{
        msr_state *st = state;
        if (!st)
                return;
        close_packages(st);
        free(st);
}

const jl_provider_ops jl_provider_rapl_msr = {
    .name = "rapl-msr",
    .description = "RAPL energy counters read from the MSRs through /dev/cpu/N/msr (Intel, AMD)",
    .open = msr_open,
    .read = msr_read,
    .close = msr_close,
};
