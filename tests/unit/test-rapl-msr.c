/* test-rapl-msr.c - the rapl-msr provider against fixture trees shown at /dev/cpu, /sys/devices/system/cpu
 * and /proc/cpuinfo by tests/ns-run.sh. The fixture's msr files are sparse regular files holding each
 * register's 8 bytes at offset = its address (AMD's are ~3 GiB in). Each scenario rewrites the fixture in
 * place (the bind mounts show the same inodes) and opens the real provider.
 *
 * Usage: ns-run.sh FIXTURE -- test-rapl-msr FIXTURE */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "provider.h"
#include "sampler.h"
#include "provider-open.h"
#include "tap.h"

static const char *fx;

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
        (void)st;
        (void)flag;
        if (ftw->level > 0)
                remove(path);
        return 0;
}

/* Empty the fixture's cpu trees (their top directories are mount points and stay). */
static void fx_reset(void)
{
        char p[512];
        snprintf(p, sizeof(p), "%s/dev/cpu", fx);
        nftw(p, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
        snprintf(p, sizeof(p), "%s/sys/devices/system/cpu", fx);
        nftw(p, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

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

static void fx_cpuinfo(const char *vendor, int family, int model, int ncpus)
{
        char buf[8192] = "";
        size_t n = 0;
        for (int c = 0; c < ncpus; c++)
                n += (size_t)snprintf(buf + n, sizeof(buf) - n,
                                      "processor\t: %d\nvendor_id\t: %s\ncpu family\t: %d\nmodel\t\t: %d\n"
                                      "model name\t: Fixture CPU\nflags\t\t: fpu msr\n\n",
                                      c, vendor, family, model);
        fx_write("proc/cpuinfo", buf);
}

/* CPU `cpu` in package `pkg`, with an (empty, sparse) msr file. */
static void fx_cpu(int cpu, int pkg)
{
        char rel[128], v[32];
        snprintf(rel, sizeof(rel), "%s/sys/devices/system/cpu/cpu%d/topology", fx, cpu);
        char cmd[600];
        snprintf(cmd, sizeof(cmd), "mkdir -p '%s' '%s/dev/cpu/%d'", rel, fx, cpu);
        if (system(cmd) != 0) {
                printf("Bail out! mkdir failed\n");
                exit(1);
        }
        snprintf(rel, sizeof(rel), "sys/devices/system/cpu/cpu%d/topology/physical_package_id", cpu);
        snprintf(v, sizeof(v), "%d\n", pkg);
        fx_write(rel, v);
        snprintf(rel, sizeof(rel), "dev/cpu/%d/msr", cpu);
        fx_write(rel, "");
}

static void fx_msr(int cpu, uint32_t msr, uint64_t value)
{
        char p[512];
        snprintf(p, sizeof(p), "%s/dev/cpu/%d/msr", fx, cpu);
        int fd = open(p, O_WRONLY | O_CLOEXEC);
        if (fd < 0 || pwrite(fd, &value, sizeof(value), (off_t)msr) != (ssize_t)sizeof(value)) {
                printf("Bail out! cannot write MSR %#x of %s: %m\n", msr, p);
                exit(1);
        }
        close(fd);
}

static void do_open(opened *o)
{
        provider_open(&jl_provider_rapl_msr, o);
}

static const jl_note *find_note(const opened *o, const char *subject, const char *text)
{
        for (size_t i = 0; i < o->notes.n; i++)
                if ((!subject || strcmp(o->notes.items[i].subject, subject) == 0) &&
                    strstr(o->notes.items[i].reason, text))
                        return &o->notes.items[i];
        return NULL;
}

static void dump_notes(const opened *o)
{
        for (size_t i = 0; i < o->notes.n; i++)
                printf("#   note %s: %s\n", o->notes.items[i].subject, o->notes.items[i].reason);
}

#define INTEL_UNIT 0xA0E03 /* power 1/8 W, energy 2^-14 J, time 2^-10 s */
#define AMD_UNIT 0xA1003   /* energy 2^-16 J */

/* Two Skylake-X sockets: CPUs 0,1 in package 0 and 2,3 in package 1; package, PP0 and DRAM only (the
 * files end right after PP0, so PP1 and psys read short: "not supported"). */
static void scenario_intel_2s(void)
{
        fx_reset();
        fx_cpuinfo("GenuineIntel", 6, 0x55, 4);
        fx_write("sys/devices/system/cpu/online", "0-3\n");
        for (int c = 0; c < 4; c++)
                fx_cpu(c, c / 2);
        for (int c = 0; c < 4; c += 2) {
                fx_msr(c, 0x606, INTEL_UNIT);
                fx_msr(c, 0x611, 16384 * (uint64_t)(c + 1)); /* 1 J, 3 J */
                fx_msr(c, 0x619, 65536);                     /* DRAM: fixed 2^-16 J on this model: 1 J */
                fx_msr(c, 0x639, 0xDEADBEEF00000001ULL);     /* upper half reserved: ignored */
        }
}

static void test_intel_2s(void)
{
        scenario_intel_2s();
        opened o;
        do_open(&o);
        is_int(o.r, 0, "intel 2s: opens");
        if (!is_int(o.ch.n, 6, "intel 2s: six channels"))
                dump_notes(&o);
        static const char *const names[] = {"package-0", "core-0", "dram-0",
                                            "package-1", "core-1", "dram-1"};
        static const jl_scope scopes[] = {JL_SCOPE_PACKAGE, JL_SCOPE_SUBDOMAIN, JL_SCOPE_DRAM,
                                          JL_SCOPE_PACKAGE, JL_SCOPE_SUBDOMAIN, JL_SCOPE_DRAM};
        for (size_t i = 0; i < 6 && i < o.ch.n; i++) {
                is_str(o.ch.items[i].name, names[i], "intel 2s: channel %zu is %s", i, names[i]);
                is_int(o.ch.items[i].scope, scopes[i], "intel 2s: %s scope", names[i]);
                is_str(o.ch.items[i].provider, "rapl-msr", "intel 2s: %s provider", names[i]);
                is_int(o.ch.items[i].kind, JL_KIND_ENERGY, "intel 2s: %s is energy", names[i]);
        }
        if (o.ch.n == 6) {
                ok(o.ch.items[0].wrap_uj == UINT64_C(262144000000), "package wraps at 2^32 × 2^-14 J");
                ok(o.ch.items[2].wrap_uj == UINT64_C(65536000000), "Skylake-X DRAM wraps at 2^32 × 2^-16 J");
        }
        ok(find_note(&o, "rapl-msr/uncore-0", "not supported"), "intel 2s: PP1 absent is a note");
        ok(find_note(&o, "rapl-msr/psys", "not supported"), "intel 2s: psys absent is a note");

        jl_value v[6] = {0};
        if (o.r == 0 && o.ch.n == 6) {
                is_int(jl_provider_rapl_msr.read(o.state, v), 0, "intel 2s: read");
                for (int i = 0; i < 6; i++)
                        is_int(v[i].err, 0, "intel 2s: %s readable", names[i]);
                is_int(v[0].counter, 1000000, "package-0: 16384 counts = 1 J");
                is_int(v[3].counter, 3000000, "package-1: 49152 counts = 3 J");
                is_int(v[2].counter, 1000000, "dram-0: 65536 counts at the fixed unit = 1 J");
                is_int(v[1].counter, 61, "core-0: 1 count = 61 µJ (rounded down), reserved bits ignored");
                /* exact conversion, no float drift: the largest count */
                fx_msr(0, 0x611, 0xFFFFFFFFu);
                jl_provider_rapl_msr.read(o.state, v);
                ok(v[0].counter == (UINT64_C(0xFFFFFFFF) * 1000000) >> 14, "largest count converts exactly");
                ok(v[0].counter < o.ch.items[0].wrap_uj, "largest count is below the wrap");
        }
        provider_close(&o);
}

static uint64_t track_energy(const jl_sampler *s, const char *name, const jl_track **ret)
{
        for (size_t i = 0; i < s->channels.n; i++)
                if (strcmp(s->tracks[i].ch.name, name) == 0) {
                        *ret = &s->tracks[i];
                        return s->tracks[i].energy_uj;
                }
        *ret = NULL;
        return UINT64_MAX;
}

static void test_wrap_and_vanish(void)
{
        scenario_intel_2s();
        fx_msr(0, 0x611, 0xFFFFC000u); /* 1 J below the top */
        fx_msr(2, 0x611, 0);
        jl_provider_config cfg;
        jl_provider_config_default(&cfg);
        jl_sampler *s = NULL;
        int r = jl_sampler_open(&cfg, (const char *[]){"rapl-msr", NULL}, &s);
        is_int(r, 0, "sampler opens rapl-msr alone");
        if (r < 0)
                return;
        is_int(s->channels.n, 6, "sampler has the six channels");
        const uint64_t S = 1000000000;
        jl_sampler_sample_at(s, 1 * S, 1 * S);
        fx_msr(0, 0x611, 16384); /* wrapped: 1 J up to the top, then 1 J more */
        fx_msr(2, 0x611, 16384 * 5);
        jl_sampler_sample_at(s, 2 * S, 2 * S);
        const jl_track *t0, *t1;
        uint64_t e0 = track_energy(s, "package-0", &t0), e1 = track_energy(s, "package-1", &t1);
        ok(t0 && t1, "tracks found");
        if (!t0 || !t1) {
                jl_sampler_free(s);
                return;
        }
        is_int(e0, 2000000, "package-0: 2 J across the 32-bit wrap");
        is_int(t0->wraps, 1, "package-0: one wrap counted");
        is_int(t0->glitches, 0, "package-0: no glitch");
        is_near(t0->power_w, 2.0, 1e-9, "package-0: 2 W");
        is_int(e1, 5000000, "package-1: 5 J");

        /* CPU 2 goes offline: its msr file disappears (truncated, then removed). */
        char p[512];
        snprintf(p, sizeof(p), "%s/dev/cpu/2/msr", fx);
        ok(truncate(p, 0) == 0 && unlink(p) == 0, "cpu2's msr file vanishes");
        fx_msr(0, 0x611, 16384 * 2);
        jl_sampler_sample_at(s, 3 * S, 3 * S);
        e0 = track_energy(s, "package-0", &t0);
        e1 = track_energy(s, "package-1", &t1);
        is_int(e0, 3000000, "package-0 goes on");
        ok(t1->errors >= 1 && t1->last_err < 0, "package-1: the failed read is an error on its channel");
        is_int(e1, 5000000, "package-1: no energy invented");
        jl_sampler_sample_at(s, 4 * S, 4 * S);
        ok(t1->errors >= 2, "package-1: still an error while its CPU is gone");

        /* The kernel now lists CPU 3 as the package's first online CPU: reading resumes there. */
        fx_write("sys/devices/system/cpu/online", "0-1,3\n");
        fx_msr(3, 0x606, INTEL_UNIT);
        fx_msr(3, 0x611, 16384 * 9);
        fx_msr(3, 0x619, 65536);
        fx_msr(3, 0x639, 1);
        unsigned errs = t1->errors;
        jl_sampler_sample_at(s, 5 * S, 5 * S);
        is_int(t1->errors, errs, "package-1: read again through CPU 3");
        ok(t1->energy_uj > 5000000, "package-1: counts again");
        jl_sampler_free(s);
}

/* MSR_PKG_POWER_INFO (0x614): bits 46:32 the maximum power, bits 14:0 the thermal spec power, in the unit
 * register's power units (INTEL_UNIT: 1/8 W). */
static uint64_t power_info(unsigned max_counts, unsigned tdp_counts)
{
        return ((uint64_t)max_counts << 32) | (UINT64_C(0x50) << 16) | tdp_counts;
}

static void amd_fixture(const char *vendor, int family);

static void test_max_power(void)
{
        scenario_intel_2s();
        fx_msr(0, 0x614, power_info(1000, 800) | (UINT64_C(0x12) << 48)); /* 125 W (TDP 100 W), time bits */
        fx_msr(2, 0x614, power_info(1600, 1600));                         /* 200 W */
        opened o;
        do_open(&o);
        is_int(o.r, 0, "power info: opens");
        if (is_int(o.ch.n, 6, "power info: six channels")) {
                is_near(o.ch.items[0].max_power_w, 125, 1e-9, "package-0: 125 W from MSR_PKG_POWER_INFO");
                is_near(o.ch.items[3].max_power_w, 200, 1e-9, "package-1: 200 W");
                ok(o.ch.items[1].max_power_w == 0 && o.ch.items[2].max_power_w == 0,
                   "core and DRAM state no maximum power of their own");
        }
        ok(!find_note(&o, NULL, "POWER_INFO"), "power info: no note when the register is plausible");
        provider_close(&o);

        /* the sampler schedules its guard reads by it: four reads per wrap at 125 W */
        jl_provider_config cfg;
        jl_provider_config_default(&cfg);
        jl_sampler *s = NULL;
        if (is_int(jl_sampler_open(&cfg, (const char *[]){"rapl-msr", NULL}, &s), 0, "sampler opens")) {
                const jl_track *t;
                track_energy(s, "package-0", &t);
                ok(t && (double)jl_track_guard_ns(t) > 524.287e9 && (double)jl_track_guard_ns(t) < 524.289e9,
                   "package-0: a guard read every wrap / (4 x 125 W) = 524.288 s before any power was seen");
                jl_sampler_free(s);
        }

        /* the power unit comes from the unit register: 2^-0 W here */
        scenario_intel_2s();
        fx_msr(0, 0x606, INTEL_UNIT & ~UINT64_C(0xf));
        fx_msr(0, 0x614, power_info(300, 250));
        fx_msr(2, 0x614, power_info(1600, 1600));
        do_open(&o);
        if (o.ch.n == 6)
                is_near(o.ch.items[0].max_power_w, 300, 1e-9, "package-0: 300 counts of 1 W");
        provider_close(&o);

        /* bad values: ignored with a note, the package still read */
        const struct {
                uint64_t v;
                const char *what;
        } bad[] = {
            {0, "0 (the register unimplemented)"},
            {power_info(0, 800), "no maximum, a TDP"},
            {power_info(0x7fff, 800), "4095.9 W (absurd)"},
            {power_info(8, 800), "1 W, below its own 100 W TDP"},
            {power_info(1000, 800) | (UINT64_C(1) << 60), "with a reserved bit set"},
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                scenario_intel_2s();
                fx_msr(0, 0x614, bad[i].v);
                fx_msr(2, 0x614, power_info(1600, 1600));
                do_open(&o);
                is_int(o.r, 0, "power info %s: opens", bad[i].what);
                if (is_int(o.ch.n, 6, "power info %s: every channel", bad[i].what)) {
                        ok(o.ch.items[0].max_power_w == 0, "power info %s: package-0 states none",
                           bad[i].what);
                        is_near(o.ch.items[3].max_power_w, 200, 1e-9, "power info %s: package-1 unharmed",
                                bad[i].what);
                }
                if (!ok(find_note(&o, "rapl-msr/package-0", "not plausible"), "power info %s: a note",
                        bad[i].what))
                        dump_notes(&o);
                provider_close(&o);
        }

        /* the register missing (the file ends before it): a note, no maximum */
        scenario_intel_2s();
        fx_write("dev/cpu/0/msr", "");
        fx_msr(0, 0x606, INTEL_UNIT);
        fx_msr(0, 0x611, 16384); /* the file ends at 0x619: 0x614 reads short */
        do_open(&o);
        ok(o.r == 0 && o.ch.n >= 1 && strcmp(o.ch.items[0].name, "package-0") == 0 &&
               o.ch.items[0].max_power_w == 0,
           "power info missing: package-0 read, no maximum power");
        ok(find_note(&o, "rapl-msr/package-0", "MSR_PKG_POWER_INFO (0x614) on CPU 0: not supported"),
           "power info missing: a note");
        provider_close(&o);

        /* AMD states none: no maximum, and no note about it */
        amd_fixture("AuthenticAMD", 0x19);
        do_open(&o);
        if (is_int(o.ch.n, 1, "amd: one channel"))
                ok(o.ch.items[0].max_power_w == 0, "amd: no maximum power (the observed peak is used)");
        ok(!find_note(&o, NULL, "POWER_INFO"), "amd: no note about MSR_PKG_POWER_INFO");
        provider_close(&o);
}

static void test_intel_client_psys(void)
{
        fx_reset();
        fx_cpuinfo("GenuineIntel", 6, 0x8C, 2); /* Tiger Lake: client, with PP1 and psys */
        fx_write("sys/devices/system/cpu/online", "0-1\n");
        fx_cpu(0, 0);
        fx_cpu(1, 0);
        fx_msr(0, 0x606, INTEL_UNIT);
        fx_msr(0, 0x611, 16384);
        fx_msr(0, 0x619, 16384);
        fx_msr(0, 0x639, 16384);
        fx_msr(0, 0x641, 16384);
        fx_msr(0, 0x64D, 16384 * 4);
        opened o;
        do_open(&o);
        is_int(o.r, 0, "intel client: opens");
        if (!is_int(o.ch.n, 5, "intel client: package, core, uncore, dram, psys"))
                dump_notes(&o);
        if (o.ch.n == 5) {
                is_str(o.ch.items[2].name, "uncore-0", "uncore-0");
                is_int(o.ch.items[2].scope, JL_SCOPE_SUBDOMAIN, "uncore is a subdomain");
                is_str(o.ch.items[4].name, "psys", "psys named once");
                is_int(o.ch.items[4].scope, JL_SCOPE_NODE, "psys is the node");
                ok(o.ch.items[3].wrap_uj == UINT64_C(262144000000), "client DRAM uses the unit register");
                jl_value v[5] = {0};
                jl_provider_rapl_msr.read(o.state, v);
                is_int(v[4].counter, 4000000, "psys: 4 J");
                is_int(v[3].counter, 1000000, "dram: 1 J at 2^-14");
        }
        provider_close(&o);
}

static void amd_fixture(const char *vendor, int family)
{
        fx_reset();
        fx_cpuinfo(vendor, family, 1, 2);
        fx_write("sys/devices/system/cpu/online", "0-1\n");
        fx_cpu(0, 0);
        fx_cpu(1, 0);
        fx_msr(0, 0xC0010299, AMD_UNIT);
        fx_msr(0, 0xC001029B, 65536 * 7);
}

static void test_amd(void)
{
        amd_fixture("AuthenticAMD", 0x19);
        opened o;
        do_open(&o);
        is_int(o.r, 0, "amd zen3: opens");
        if (!is_int(o.ch.n, 1, "amd: one channel"))
                dump_notes(&o);
        if (o.ch.n == 1) {
                is_str(o.ch.items[0].name, "package-0", "amd: package-0");
                is_int(o.ch.items[0].scope, JL_SCOPE_PACKAGE, "amd: package scope");
                ok(o.ch.items[0].wrap_uj == UINT64_C(65536000000), "amd: wraps at 2^32 × 2^-16 J");
                jl_value v[1] = {0};
                jl_provider_rapl_msr.read(o.state, v);
                is_int(v[0].err, 0, "amd: read");
                is_int(v[0].counter, 7000000, "amd: 7 J");
        }
        provider_close(&o);

        amd_fixture("HygonGenuine", 0x18);
        do_open(&o);
        is_int(o.r, 0, "hygon: opens");
        is_int(o.ch.n, 1, "hygon: one channel");
        provider_close(&o);

        amd_fixture("AuthenticAMD", 0x15);
        do_open(&o);
        ok(o.r < 0, "amd family 15h: unavailable");
        is_int(o.ch.n, 0, "amd family 15h: no channel");
        ok(find_note(&o, "rapl-msr", "family"), "amd family 15h: note names the family");
        provider_close(&o);
}

static void test_unknown(void)
{
        opened o;
        amd_fixture("CentaurHauls", 7);
        do_open(&o);
        is_int(o.r, -ENODEV, "unknown vendor: unavailable");
        is_int(o.ch.n, 0, "unknown vendor: no channel");
        ok(find_note(&o, "rapl-msr", "CentaurHauls"), "unknown vendor: the note names it");
        provider_close(&o);

        amd_fixture("GenuineIntel", 15);
        do_open(&o);
        is_int(o.r, -ENODEV, "intel family 15: unavailable");
        ok(find_note(&o, "rapl-msr", "family 15"), "intel family 15: the note names it");
        provider_close(&o);

        amd_fixture("GenuineIntel", 6);
        fx_cpuinfo("GenuineIntel", 6, 0x37, 2); /* Silvermont: another unit encoding */
        do_open(&o);
        is_int(o.r, -ENODEV, "Silvermont Atom: unavailable");
        ok(find_note(&o, "rapl-msr", "Atom"), "Silvermont Atom: the note says why");
        provider_close(&o);

        fx_write("proc/cpuinfo", "processor\t: 0\nIsa\t\t: rv64imafdc\n\n");
        do_open(&o);
        ok(o.r < 0, "no vendor_id (not x86): unavailable");
        ok(find_note(&o, "rapl-msr", "vendor"), "no vendor_id: note");
        provider_close(&o);

        /* A unit register of 0 (an unimplemented MSR that reads as zero) */
        scenario_intel_2s();
        fx_msr(0, 0x606, 0);
        fx_msr(2, 0x606, 0);
        do_open(&o);
        is_int(o.r, -ENODEV, "unit 0: unavailable");
        is_int(o.ch.n, 0, "unit 0: no channel");
        ok(find_note(&o, "rapl-msr/package-0", "not plausible"), "unit 0: note on package-0");
        provider_close(&o);

        /* One package with an absurd unit: the other is still read */
        scenario_intel_2s();
        fx_msr(2, 0x606, 0x1F03); /* ESU 31 */
        do_open(&o);
        is_int(o.r, 0, "ESU 31 on package-1: opens");
        is_int(o.ch.n, 3, "ESU 31 on package-1: package-0 domains only");
        ok(find_note(&o, "rapl-msr/package-1", "not plausible"), "ESU 31: note on package-1");
        provider_close(&o);

        /* No RAPL at all: the unit register does not exist (reads fail) */
        scenario_intel_2s();
        fx_write("dev/cpu/0/msr", "");
        fx_write("dev/cpu/2/msr", "");
        do_open(&o);
        is_int(o.r, -ENODEV, "no unit register: unavailable");
        ok(find_note(&o, "rapl-msr/package-0", "no RAPL MSRs"), "no unit register: note");
        provider_close(&o);

        /* Garbage in the online list */
        scenario_intel_2s();
        fx_write("sys/devices/system/cpu/online", "zero-three\n");
        do_open(&o);
        ok(o.r < 0, "garbage online list: unavailable");
        ok(find_note(&o, "rapl-msr", "online"), "garbage online list: note");
        provider_close(&o);
}

static void test_no_driver(void)
{
        scenario_intel_2s();
        char p[512];
        for (int c = 0; c < 4; c++) {
                snprintf(p, sizeof(p), "%s/dev/cpu/%d/msr", fx, c);
                unlink(p);
        }
        opened o;
        do_open(&o);
        is_int(o.r, -ENOENT, "no msr files: unavailable");
        ok(find_note(&o, "rapl-msr", "modprobe msr"), "no msr files: says modprobe msr");
        is_int(o.ch.n, 0, "no msr files: no channel");
        provider_close(&o);
}

/* As nobody over mode-0600 msr files: the provider says it needs root. */
static void test_non_root(void)
{
        scenario_intel_2s();
        char p[512];
        for (int c = 0; c < 4; c++) {
                snprintf(p, sizeof(p), "%s/dev/cpu/%d/msr", fx, c);
                chmod(p, 0600);
        }
        int pipefd[2];
        if (pipe(pipefd) < 0)
                return;
        fflush(stdout); /* the child must not inherit (and print again) buffered TAP lines */
        pid_t pid = fork();
        if (pid == 0) {
                close(pipefd[0]);
                char out[512] = "";
                if (setresgid(65534, 65534, 65534) < 0 || setresuid(65534, 65534, 65534) < 0) {
                        snprintf(out, sizeof(out), "setresuid failed");
                } else {
                        opened o;
                        do_open(&o);
                        snprintf(out, sizeof(out), "%d %zu %s", o.r, o.ch.n,
                                 o.notes.n ? o.notes.items[0].reason : "(no note)");
                        provider_close(&o);
                }
                (void)!write(pipefd[1], out, strlen(out));
                _exit(0);
        }
        close(pipefd[1]);
        char buf[512] = "";
        ssize_t n = read(pipefd[0], buf, sizeof(buf) - 1);
        buf[n > 0 ? n : 0] = '\0';
        close(pipefd[0]);
        waitpid(pid, NULL, 0);
        int r = 0;
        size_t nch = 99;
        char reason[480] = "";
        sscanf(buf, "%d %zu %479[^\n]", &r, &nch, reason);
        is_int(r, -EACCES, "non-root: unavailable with EACCES");
        is_int(nch, 0, "non-root: no channel");
        if (!ok(strstr(reason, "root (CAP_SYS_RAWIO)"), "non-root: note says MSRs need root"))
                printf("#   got: %s\n", buf);
}

int main(int argc, char **argv)
{
        if (argc != 2) {
                printf("Bail out! usage: ns-run.sh FIXTURE -- %s FIXTURE\n", argv[0]);
                return 1;
        }
        fx = argv[1];
        /* Refuse to touch anything unless the fixture really is what /dev/cpu shows. */
        char p[512];
        struct stat a, b;
        snprintf(p, sizeof(p), "%s/dev/cpu", fx);
        if (stat(p, &a) < 0 || stat("/dev/cpu", &b) < 0 || a.st_dev != b.st_dev || a.st_ino != b.st_ino) {
                printf("Bail out! %s is not bound at /dev/cpu: run me through tests/ns-run.sh\n", p);
                return 1;
        }
        test_intel_2s();
        test_wrap_and_vanish();
        test_max_power();
        test_intel_client_psys();
        test_amd();
        test_unknown();
        test_no_driver();
        test_non_root();
        fx_reset();
        return tap_done();
}
