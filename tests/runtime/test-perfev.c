/* test-perfev.c - the runtime's hardware counters beyond CPI (src/runtime/perfev.c, counters.c).
 * Without arguments: the parsers of the kernel's PMU descriptions with good and bad input (format bits,
 * event terms and their encoding, scale, unit, cpumask, cpuinfo, PMU and event directories in temporary
 * trees: missing files, garbage, bits out of range, overlong values, non-numbers), the plans made from
 * variants of a tree, and GB/s, GFLOPS, TPI from known counts.
 * With "intel", "amd" or "amd-zen4": run by tests/ns-run.sh with tests/fixtures/pmu-VENDOR shown at
 * /sys/bus/event_source/devices and /proc/cpuinfo: the encodings at the real path against hand-derived
 * values and against perf itself (`perf stat -vv` prints the perf_event_attr it would open, whether or not
 * the open then succeeds), the plan the runtime makes, and the real open: on a machine without these PMUs
 * it fails and every figure is NAN, and the program runs on. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/perf_event.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <sched.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "counters.h"
#include "perfev.h"
#include "tap.h"

static char tmp[256];

static void put(const char *rel, const char *text)
{
        char path[PATH_MAX * 2];
        snprintf(path, sizeof(path), "%s/%s", tmp, rel);
        for (char *s = strchr(path + strlen(tmp) + 1, '/'); s; s = strchr(s + 1, '/')) {
                *s = 0;
                mkdir(path, 0755);
                *s = '/';
        }
        FILE *f = fopen(path, "w");
        if (!f) {
                perror(path);
                exit(1);
        }
        fputs(text, f);
        fclose(f);
}

static void del(const char *rel)
{
        char path[PATH_MAX];
        snprintf(path, sizeof(path), "%s/%s", tmp, rel);
        unlink(path);
}

static void rm_rf(const char *dir)
{
        char cmd[PATH_MAX + 16];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        if (system(cmd) != 0)
                printf("# could not remove %s\n", dir);
}

static jl_pe_pmu pmu_of(const char *const (*f)[2], size_t n)
{
        jl_pe_pmu p = {.name = "x", .type = 4};
        for (size_t i = 0; i < n; i++) {
                snprintf(p.formats[i].name, sizeof(p.formats[i].name), "%s", f[i][0]);
                if (jl_pe_format_parse(f[i][1], &p.formats[i].field, &p.formats[i].mask) < 0)
                        abort();
        }
        p.nformats = n;
        return p;
}

static void test_format(void)
{
        unsigned field = 9;
        uint64_t mask = 0;
        is_int(jl_pe_format_parse("config:0-7\n", &field, &mask), 0, "config:0-7");
        ok(field == 0 && mask == 0xff, "field config, bits 0-7");
        is_int(jl_pe_format_parse("config:0-7,32-35", &field, &mask), 0, "config:0-7,32-35");
        ok(mask == UINT64_C(0xf000000ff), "split bits");
        is_int(jl_pe_format_parse("config1:0-63", &field, &mask), 0, "config1:0-63");
        ok(field == 1 && mask == ~UINT64_C(0), "all of config1");
        is_int(jl_pe_format_parse("config2:5", &field, &mask), 0, "config2:5");
        ok(field == 2 && mask == 0x20, "one bit of config2");
        is_int(jl_pe_format_parse("config:0-7,32-35,59-60", &field, &mask), 0, "amd_df's event");
        ok(mask == (UINT64_C(0xff) | UINT64_C(0xf) << 32 | UINT64_C(3) << 59), "three ranges");
        static const struct {
                const char *text;
                int err;
        } bad[] = {
            {"", -EINVAL},
            {"\n", -EINVAL},
            {"config", -EINVAL},
            {"config:", -EINVAL},
            {"config3:0-7", -EINVAL},
            {"cfg:0-1", -EINVAL},
            {"config:7-0", -EINVAL},
            {"config:0-64", -ERANGE},
            {"config:64", -ERANGE},
            {"config:0-7,4", -EINVAL},
            {"config:a-b", -EINVAL},
            {"config:0-7,", -EINVAL},
            {"config:-3", -EINVAL},
            {"config:1000", -ERANGE},
            {"config:0001", -ERANGE},
            {"config: 0-7", -EINVAL},
            {"config:0--7", -EINVAL},
            {":0-7", -EINVAL},
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                field = 7;
                mask = 7;
                is_int(jl_pe_format_parse(bad[i].text, &field, &mask), bad[i].err,
                       "format %zu \"%s\" refused", i,
                       strchr(bad[i].text, '\n') ? "(a newline)" : bad[i].text);
                ok(field == 7 && mask == 7, "and nothing written");
        }
        char longer[700];
        memset(longer, '0', sizeof(longer) - 1);
        longer[sizeof(longer) - 1] = 0;
        memcpy(longer, "config:", 7);
        is_int(jl_pe_format_parse(longer, &field, &mask), -EINVAL, "an overlong format refused");
}

static const char *const intel_fmt[][2] = {
    {"event", "config:0-7"},   {"umask", "config:8-15"},     {"edge", "config:18"},
    {"inv", "config:23"},      {"cmask", "config:24-31"},    {"offcore_rsp", "config1:0-63"},
    {"ldlat", "config1:0-15"}, {"frontend", "config1:0-23"},
};
static const char *const amd_fmt[][2] = {{"event", "config:0-7,32-35"}, {"umask", "config:8-15"}};
static const char *const df_fmt[][2] = {{"event", "config:0-7,32-35,59-60"}, {"umask", "config:8-15"}};

static void test_encode(void)
{
        jl_pe_pmu in = pmu_of(intel_fmt, 8), amd = pmu_of(amd_fmt, 2), df = pmu_of(df_fmt, 2);
        uint64_t c[3] = {9, 9, 9};
        is_int(jl_pe_encode(&in, "event=0x04,umask=0x03\n", c), 0, "cas_count_read's terms");
        ok(c[0] == 0x304 && c[1] == 0 && c[2] == 0, "config 0x304");
        is_int(jl_pe_encode(&in, "event=4,umask=12", c), 0, "decimal values");
        ok(c[0] == 0xc04, "config 0xc04");
        is_int(jl_pe_encode(&in, "event=0xc7,umask=0x80,edge,inv,cmask=2", c), 0,
               "flags without a value are 1");
        ok(c[0] == (0x80c7 | 1 << 18 | 1 << 23 | 2u << 24), "config 0x%llx", (unsigned long long)c[0]);
        is_int(jl_pe_encode(&in, "event=0xcd,umask=0x1,ldlat=3", c), 0, "mem-loads: ldlat in config1");
        ok(c[0] == 0x1cd && c[1] == 3, "config 0x1cd, config1 3");
        is_int(jl_pe_encode(&in, "event=0xb7,umask=0x1,offcore_rsp=0x3fffc00001", c), 0, "offcore_rsp");
        ok(c[1] == UINT64_C(0x3fffc00001), "config1 0x3fffc00001");
        is_int(jl_pe_encode(&in, "config=0x1234,config1=0x5,config2=0xffffffffffffffff", c), 0,
               "config, config1, config2 terms");
        ok(c[0] == 0x1234 && c[1] == 5 && c[2] == ~UINT64_C(0), "whole fields");
        is_int(jl_pe_encode(&amd, "event=0x1c3,umask=0x01", c), 0, "AMD's 12-bit event");
        ok(c[0] == UINT64_C(0x1000001c3), "bits 8-11 of the event at 32-35: 0x%llx",
           (unsigned long long)c[0]);
        is_int(jl_pe_encode(&df, "event=0x3fff,umask=0x38", c), 0, "amd_df's 14-bit event");
        ok(c[0] == (UINT64_C(0xff) | UINT64_C(0xf) << 32 | UINT64_C(3) << 59 | 0x3800), "0x%llx",
           (unsigned long long)c[0]);
        is_int(jl_pe_encode(&in, "event=0x00000000000000000000004", c), 0, "leading zeros");
        ok(c[0] == 4, "event 4");
        const struct {
                const jl_pe_pmu *p;
                const char *terms;
                int err;
        } bad[] = {
            {&in, "event=0x100", -ERANGE},
            {&amd, "event=0x1000", -ERANGE},
            {&df, "event=0x4000", -ERANGE},
            {&in, "umask=256", -ERANGE},
            {&in, "foo=1", -ENOENT},
            {&in, "event=", -EINVAL},
            {&in, "event=?", -EINVAL},
            {&in, "event=0xzz", -EINVAL},
            {&in, "event=0x", -EINVAL},
            {&in, "event=-1", -EINVAL},
            {&in, "event= 1", -EINVAL},
            {&in, "event=0x1,event=0x2", -EINVAL},
            {&in, "event=0x1,,umask=1", -EINVAL},
            {&in, "event=0x1,", -EINVAL},
            {&in, ",event=0x1", -EINVAL},
            {&in, "", -EINVAL},
            {&in, "EVENT=1", -EINVAL},
            {&in, "event=0x1ffffffffffffffff", -ERANGE},
            {&in, "config=99999999999999999999999", -ERANGE},
            {&in, "event==1", -EINVAL},
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                c[0] = c[1] = c[2] = 7;
                is_int(jl_pe_encode(bad[i].p, bad[i].terms, c), bad[i].err, "terms \"%s\" refused",
                       bad[i].terms);
                ok(c[0] == 7 && c[1] == 7 && c[2] == 7, "and nothing written");
        }
        char longer[600];
        memset(longer, 'a', sizeof(longer) - 1);
        longer[sizeof(longer) - 1] = 0;
        is_int(jl_pe_encode(&in, longer, c), -EINVAL, "overlong terms refused");
}

static void test_values(void)
{
        double d = 0;
        is_int(jl_pe_scale_parse("6.103515625e-5\n", &d), 0, "a scale");
        ok(d == 6.103515625e-5, "its value");
        is_int(jl_pe_scale_parse("2.3283064365386962890625e-10", &d), 0, "RAPL's scale");
        const char *bad_scale[] = {"",      "abc",  "0",    "-1", "nan",  "inf",
                                   "1e999", "1.0x", "0x10", " ",  "1.5.5"};
        for (size_t i = 0; i < sizeof(bad_scale) / sizeof(bad_scale[0]); i++) {
                d = 7;
                is_int(jl_pe_scale_parse(bad_scale[i], &d), -EINVAL, "scale \"%s\" refused", bad_scale[i]);
                ok(d == 7, "and nothing written");
        }
        char u[16] = "";
        is_int(jl_pe_unit_parse("MiB\n", u, sizeof(u)), 0, "unit MiB");
        is_str(u, "MiB", "its text");
        is_int(jl_pe_unit_parse("Joules", u, sizeof(u)), 0, "unit Joules");
        const char *bad_unit[] = {"", "Mi B", "MiB1", "0123456789abcdefg", "abcdefghijklmnop", "é"};
        for (size_t i = 0; i < sizeof(bad_unit) / sizeof(bad_unit[0]); i++)
                is_int(jl_pe_unit_parse(bad_unit[i], u, sizeof(u)), -EINVAL, "unit \"%s\" refused",
                       bad_unit[i]);
        char small[4];
        is_int(jl_pe_unit_parse("Joules", small, sizeof(small)), -EINVAL, "a unit longer than the buffer");

        int cpus[4];
        is_int(jl_pe_cpumask_parse("0,36\n", cpus, 4), 2, "cpumask 0,36");
        ok(cpus[0] == 0 && cpus[1] == 36, "its CPUs");
        is_int(jl_pe_cpumask_parse("4-7", cpus, 4), 4, "cpumask 4-7");
        ok(cpus[0] == 4 && cpus[3] == 7, "its CPUs");
        is_int(jl_pe_cpumask_parse("", cpus, 4), -EINVAL, "empty cpumask");
        is_int(jl_pe_cpumask_parse("x", cpus, 4), -EINVAL, "garbage cpumask");
        is_int(jl_pe_cpumask_parse("0,", cpus, 4), -EINVAL, "trailing comma");
        is_int(jl_pe_cpumask_parse("8192", cpus, 4), -ERANGE, "a CPU beyond 8191");
        is_int(jl_pe_cpumask_parse("99999999999999999999", cpus, 4), -ERANGE, "a CPU number overflowing");
        is_int(jl_pe_cpumask_parse("0-4", cpus, 4), -E2BIG, "more CPUs than room");

        jl_pe_cpuid id = {.family = 7};
        const char *intel =
            "processor\t: 0\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 85\n"
            "model name\t: Intel(R) Xeon(R) Gold 6140\n\nprocessor\t: 1\nvendor_id\t: Other\n";
        is_int(jl_pe_cpuinfo_parse(intel, &id), 0, "cpuinfo");
        ok(strcmp(id.vendor, "GenuineIntel") == 0 && id.family == 6 && id.model == 85,
           "the first processor's vendor, family, model");
        id.family = 7;
        is_int(jl_pe_cpuinfo_parse("vendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel name\t: X\n", &id),
               -ENOENT, "no model (only a model name)");
        is_int(jl_pe_cpuinfo_parse("vendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t: x85\n", &id),
               -EINVAL, "a model that is not a number");
        is_int(jl_pe_cpuinfo_parse("vendor_id\t: GenuineIntel\ncpu family\t: -6\nmodel\t: 85\n", &id),
               -EINVAL, "a negative family");
        is_int(
            jl_pe_cpuinfo_parse("vendor_id\t: AVendorNameFarTooLong\ncpu family\t: 6\nmodel\t: 85\n", &id),
            -EINVAL, "an overlong vendor");
        is_int(jl_pe_cpuinfo_parse("", &id), -ENOENT, "empty cpuinfo");
        is_int(jl_pe_cpuinfo_parse("processor : 0\n\nvendor_id : GenuineIntel\n", &id), -ENOENT,
               "garbage cpuinfo");
        ok(id.family == 7, "nothing written");
}

static void test_dirs(void)
{
        char root[PATH_MAX + 8];
        snprintf(root, sizeof(root), "%s/dev", tmp);
        jl_pe_pmu p = {.type = 77};
        jl_pe_event e;
        is_int(jl_pe_pmu_load(root, "nothere", &p), -ENOENT, "a missing PMU");
        is_int(jl_pe_pmu_load(root, "../dev", &p), -EINVAL, "a name with a slash");
        is_int(jl_pe_pmu_load(root, "..", &p), -EINVAL, "..");
        put("dev/a/type", "four\n");
        is_int(jl_pe_pmu_load(root, "a", &p), -EINVAL, "type not a number");
        put("dev/a/type", "4294967296\n");
        is_int(jl_pe_pmu_load(root, "a", &p), -ERANGE, "type beyond 32 bits");
        put("dev/a/type", "");
        is_int(jl_pe_pmu_load(root, "a", &p), -ENODATA, "empty type");
        put("dev/a/type", "13\n");
        is_int(jl_pe_pmu_load(root, "a", &p), 0, "a PMU with only a type");
        ok(p.type == 13 && p.ncpus == 0 && p.nformats == 0, "no cpumask, no formats");
        put("dev/a/cpumask", "zero\n");
        p.type = 77;
        is_int(jl_pe_pmu_load(root, "a", &p), -EINVAL, "a garbage cpumask");
        ok(p.type == 77, "nothing written");
        put("dev/a/cpumask", "0,36\n");
        put("dev/a/format/event", "config:0-7\n");
        put("dev/a/format/umask", "config:8-15\n");
        is_int(jl_pe_pmu_load(root, "a", &p), 0, "cpumask and formats");
        ok(p.ncpus == 2 && p.cpus[1] == 36 && p.nformats == 2, "two CPUs, two formats");
        put("dev/a/format/bad", "config:0-99\n");
        is_int(jl_pe_pmu_load(root, "a", &p), -ERANGE, "a format's bit out of range");
        put("dev/a/format/bad", "bits 0 to 7\n");
        is_int(jl_pe_pmu_load(root, "a", &p), -EINVAL, "a garbage format");
        char big[2000];
        memset(big, '1', sizeof(big) - 1);
        big[sizeof(big) - 1] = 0;
        put("dev/a/format/bad", big);
        is_int(jl_pe_pmu_load(root, "a", &p), -EINVAL, "an overlong format file");
        del("dev/a/format/bad");
        for (int i = 0; i <= JL_PE_FORMATS_MAX; i++) {
                char rel[64];
                snprintf(rel, sizeof(rel), "dev/b/format/f%d", i);
                put(rel, "config:1\n");
        }
        put("dev/b/type", "5\n");
        is_int(jl_pe_pmu_load(root, "b", &p), -E2BIG, "more formats than room");

        is_int(jl_pe_pmu_load(root, "a", &p), 0, "PMU a again");
        is_int(jl_pe_event_load(root, &p, "cas", &e), -ENOENT, "a missing event");
        is_int(jl_pe_event_load(root, &p, "../type", &e), -EINVAL, "an event name with a slash");
        put("dev/a/events/cas", "event=0x04,umask=0x03\n");
        is_int(jl_pe_event_load(root, &p, "cas", &e), 0, "an event without scale or unit");
        ok(e.type == 13 && e.config[0] == 0x304 && e.scale == 1 && e.unit[0] == 0, "config 0x304, scale 1");
        put("dev/a/events/cas.scale", "6.103515625e-5\n");
        put("dev/a/events/cas.unit", "MiB\n");
        is_int(jl_pe_event_load(root, &p, "cas", &e), 0, "with scale and unit");
        ok(e.scale == 6.103515625e-5 && strcmp(e.unit, "MiB") == 0, "scale and unit read");
        put("dev/a/events/cas.scale", "a lot\n");
        is_int(jl_pe_event_load(root, &p, "cas", &e), -EINVAL, "a garbage scale");
        put("dev/a/events/cas.scale", big);
        is_int(jl_pe_event_load(root, &p, "cas", &e), -EINVAL, "an overlong scale");
        put("dev/a/events/cas.scale", "6.103515625e-5\n");
        put("dev/a/events/cas.unit", "Mi B\n");
        is_int(jl_pe_event_load(root, &p, "cas", &e), -EINVAL, "a garbage unit");
        put("dev/a/events/cas.unit", "MiB\n");
        put("dev/a/events/cas", "event=0x04,umask=0x03,thresh=1\n");
        is_int(jl_pe_event_load(root, &p, "cas", &e), -ENOENT, "a term the PMU has no format for");
        put("dev/a/events/cas", "event=0x104\n");
        is_int(jl_pe_event_load(root, &p, "cas", &e), -ERANGE, "a value beyond its format's bits");
        put("dev/a/events/cas", "garbage!\n");
        is_int(jl_pe_event_load(root, &p, "cas", &e), -EINVAL, "a garbage event");
        put("dev/a/events/cas", big);
        is_int(jl_pe_event_load(root, &p, "cas", &e), -EINVAL, "an overlong event file");

        char names[8][JL_PE_NAME_MAX];
        put("dev/uncore_imc_10/type", "1");
        put("dev/uncore_imc_2/type", "1");
        put("dev/uncore_imc_0/type", "1");
        put("dev/uncore_cha_0/type", "1");
        is_int(jl_pe_pmu_list(root, "uncore_imc_", names, 8), 3, "three uncore_imc_ PMUs");
        ok(strcmp(names[0], "uncore_imc_0") == 0 && strcmp(names[1], "uncore_imc_2") == 0 &&
               strcmp(names[2], "uncore_imc_10") == 0,
           "in version order");
        is_int(jl_pe_pmu_list(root, "uncore_imc_", names, 2), 2, "at most max");
        char none[PATH_MAX];
        snprintf(none, sizeof(none), "%s/none", tmp);
        is_int(jl_pe_pmu_list(none, "", names, 8), -ENOENT, "a missing root");
}

/* A tree like tests/fixtures/pmu-intel's, changed by the caller. */
static void intel_tree(const char *dir, int nimc)
{
        char rel[128];
        snprintf(rel, sizeof(rel), "%s/cpu/type", dir);
        put(rel, "4\n");
        snprintf(rel, sizeof(rel), "%s/cpu/format/event", dir);
        put(rel, "config:0-7\n");
        snprintf(rel, sizeof(rel), "%s/cpu/format/umask", dir);
        put(rel, "config:8-15\n");
        for (int i = 0; i < nimc; i++) {
                static const char *const files[][2] = {
                    {"type", "20\n"},
                    {"cpumask", "0\n"},
                    {"format/event", "config:0-7\n"},
                    {"format/umask", "config:8-15\n"},
                    {"events/cas_count_read", "event=0x04,umask=0x03\n"},
                    {"events/cas_count_read.scale", "6.103515625e-5\n"},
                    {"events/cas_count_read.unit", "MiB\n"},
                    {"events/cas_count_write", "event=0x04,umask=0x0c\n"},
                    {"events/cas_count_write.scale", "6.103515625e-5\n"},
                    {"events/cas_count_write.unit", "MiB\n"},
                };
                for (size_t k = 0; k < sizeof(files) / sizeof(files[0]); k++) {
                        snprintf(rel, sizeof(rel), "%s/uncore_imc_%d/%s", dir, i, files[k][0]);
                        put(rel, files[k][1]);
                }
        }
}

static void test_plans(void)
{
        const char *skx = "vendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 85\n";
        const char *cfl = "vendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 158\n";
        const char *hsw = "vendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 63\n";
        const char *zen = "vendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 1\n";
        char root[PATH_MAX + 16], rel[128];
        jl_rt_counters_plan *p = malloc(sizeof(*p));
        if (!p)
                abort();

        intel_tree("p1", 2);
        snprintf(root, sizeof(root), "%s/p1", tmp);
        jl_rt_counters_plan_make(root, skx, p);
        is_int(p->nfp, 8, "Skylake-SP: 8 FP_ARITH umasks (%s)", p->fp_what);
        is_int(p->nmem, 4, "2 IMCs on 1 CPU, read and write (%s)", p->mem_what);
        ok(p->nmem == 4 && p->mem[0].config[0] == 0x304 && p->mem[1].config[0] == 0xc04 &&
               p->mem[0].cpu == 0 && p->mem[0].weight == 64,
           "cas_count_read/write: 0x304, 0xc04 on CPU 0, 64 bytes per count");
        jl_rt_counters_plan_make(root, cfl, p);
        is_int(p->nfp, 6, "Coffee Lake: no 512-bit umasks (%s)", p->fp_what);
        jl_rt_counters_plan_make(root, hsw, p);
        is_int(p->nfp, 0, "Haswell-EP: no FP_ARITH_INST_RETIRED (%s)", p->fp_what);
        jl_rt_counters_plan_make(root, NULL, p);
        ok(p->nfp == 0 && p->nmem == 4, "no cpuinfo: no FLOPs, the IMCs still (%s)", p->fp_what);
        jl_rt_counters_plan_make(root, zen, p);
        ok(p->nfp == 0, "AMD without a named FLOPS event: none (%s)", p->fp_what);
        put("p1/cpu/events/fp_ret_sse_avx_ops.all", "event=0x03,umask=0xff\n");
        jl_rt_counters_plan_make(root, zen, p);
        ok(p->nfp == 1 && p->fp[0].config[0] == 0xff03 && p->fp[0].type == 4 && p->fp[0].weight == 1,
           "AMD with the kernel naming it: cpu/fp_ret_sse_avx_ops.all/ (%s)", p->fp_what);

        /* one IMC of the group cannot be described: the whole group is left out */
        intel_tree("p2", 3);
        del("p2/uncore_imc_1/events/cas_count_write");
        snprintf(root, sizeof(root), "%s/p2", tmp);
        jl_rt_counters_plan_make(root, skx, p);
        ok(p->nmem == 0, "an IMC without cas_count_write: no GB/s at all (%s)", p->mem_what);
        put("p2/uncore_imc_1/events/cas_count_write", "event=0x04,umask=0x0c\n");
        put("p2/uncore_imc_1/events/cas_count_write.unit", "furlongs\n");
        jl_rt_counters_plan_make(root, skx, p);
        ok(p->nmem == 0, "an unknown unit: no GB/s (%s)", p->mem_what);
        put("p2/uncore_imc_1/events/cas_count_write.unit", "MiB\n");
        jl_rt_counters_plan_make(root, skx, p);
        is_int(p->nmem, 6, "repaired: 3 IMCs (%s)", p->mem_what);
        del("p2/uncore_imc_2/cpumask");
        jl_rt_counters_plan_make(root, skx, p);
        ok(p->nmem == 0, "an uncore PMU without a cpumask: no GB/s (%s)", p->mem_what);

        /* a client's free-running IMC; a hybrid CPU (cpu_core, no cpu) */
        put("p3/cpu_core/type", "4\n");
        static const char *const fr[][2] = {
            {"type", "15\n"},
            {"cpumask", "0\n"},
            {"events/data_read", "event=0xff,umask=0x20\n"},
            {"events/data_read.scale", "6.103515625e-5\n"},
            {"events/data_read.unit", "MiB\n"},
            {"events/data_write", "event=0xff,umask=0x21\n"},
            {"events/data_write.scale", "6.103515625e-5\n"},
            {"events/data_write.unit", "MiB\n"},
            {"format/event", "config:0-7\n"},
            {"format/umask", "config:8-15\n"},
        };
        for (size_t k = 0; k < sizeof(fr) / sizeof(fr[0]); k++) {
                snprintf(rel, sizeof(rel), "p3/uncore_imc_free_running_0/%s", fr[k][0]);
                put(rel, fr[k][1]);
        }
        snprintf(root, sizeof(root), "%s/p3", tmp);
        jl_rt_counters_plan_make(root, "vendor_id : GenuineIntel\ncpu family : 6\nmodel : 151\n", p);
        ok(p->nfp == 0, "hybrid Alder Lake: no FLOPs (%s)", p->fp_what);
        ok(p->nmem == 2 && p->mem[0].config[0] == 0x20ff && p->mem[1].config[0] == 0x21ff,
           "uncore_imc_free_running_0/data_read,data_write/ (%s)", p->mem_what);
        /* an amd_umc PMU whose format has no rdwrmask is not the UMC PMU the events are known for */
        put("p4/amd_umc_0/type", "14\n");
        put("p4/amd_umc_0/cpumask", "0\n");
        put("p4/amd_umc_0/format/event", "config:0-7\n");
        snprintf(root, sizeof(root), "%s/p4", tmp);
        jl_rt_counters_plan_make(root, zen, p);
        ok(p->nmem == 0, "amd_umc_0 without rdwrmask: no GB/s (%s)", p->mem_what);
        put("p4/amd_umc_0/format/rdwrmask", "config:8-9\n");
        jl_rt_counters_plan_make(root, zen, p);
        ok(p->nmem == 2 && p->mem[0].config[0] == 0x10a && p->mem[1].config[0] == 0x20a &&
               p->mem[0].weight == 64,
           "with it: 0x10a, 0x20a, 64 bytes (%s)", p->mem_what);
        snprintf(root, sizeof(root), "%s/none", tmp);
        jl_rt_counters_plan_make(root, skx, p);
        ok(p->nfp == 0 && p->nmem == 0, "no sysfs tree: nothing (%s; %s)", p->fp_what, p->mem_what);
        free(p);
}

static void test_counts(void)
{
        jl_rt_counts a = {.cycles = 1000,
                          .instructions = 1000,
                          .flops = 1e9,
                          .mem_bytes = 64e9,
                          .valid = true,
                          .fp_valid = true,
                          .mem_valid = true};
        jl_rt_counts b = {.cycles = 3000,
                          .instructions = 2001000,
                          .flops = 5e9,
                          .mem_bytes = 84e9,
                          .valid = true,
                          .fp_valid = true,
                          .mem_valid = true};
        is_near(jl_rt_counts_gbs(&a, &b, 2), 10, 1e-12, "20 GB over 2 s: 10 GB/s");
        is_near(jl_rt_counts_gflops(&a, &b, 2), 2, 1e-12, "4 GFLOP over 2 s: 2 GFLOPS");
        is_near(jl_rt_counts_tpi(&a, &b), 20e9 / 64 / 2e6, 1e-9, "TPI: 64-byte lines per instruction");
        ok(isnan(jl_rt_counts_gbs(&a, &b, 0)) && isnan(jl_rt_counts_gflops(&a, &b, -1)), "no time: NAN");
        jl_rt_counts c = b;
        c.mem_valid = false;
        ok(isnan(jl_rt_counts_gbs(&a, &c, 2)) && isnan(jl_rt_counts_tpi(&a, &c)), "no memory counters: NAN");
        ok(isfinite(jl_rt_counts_gflops(&a, &c, 2)), "the FLOPs still");
        c = b;
        c.fp_valid = false;
        ok(isnan(jl_rt_counts_gflops(&a, &c, 2)) && isfinite(jl_rt_counts_gbs(&a, &c, 2)),
           "no FP counters: NAN");
        c = b;
        c.valid = false;
        ok(isnan(jl_rt_counts_tpi(&a, &c)), "no instructions: no TPI");
        ok(isnan(jl_rt_counts_gbs(&b, &a, 2)) && isnan(jl_rt_counts_gflops(&b, &a, 2)),
           "going backwards: NAN");

        jl_rt_counters none = {.fd_cycles = -1, .fd_instr = -1};
        jl_rt_counts r;
        jl_rt_counters_read(&none, &r);
        ok(!r.valid && !r.fp_valid && !r.mem_valid, "no counters: every group invalid");
        ok(isnan(jl_rt_counts_gbs(&r, &r, 1)) && isnan(jl_rt_counts_gflops(&r, &r, 1)) &&
               isnan(jl_rt_counts_tpi(&r, &r)),
           "and every figure NAN");
}

/* The perf_event_attr type and config fields perf would open for EVENT (perf prints them with -vv before
 * it tries; here the open then fails); false when perf does not print them. */
static bool perf_attr(const char *event, bool system_wide, uint32_t *ret_type, uint64_t ret[3])
{
        char cmd[512], line[512];
        snprintf(cmd, sizeof(cmd), "timeout 20 perf stat %s -e '%s' -vv true 2>&1", system_wide ? "-a" : "",
                 event);
        FILE *f = popen(cmd, "r");
        if (!f)
                return false;
        bool seen = false, typed = false;
        uint64_t c[3] = {0, 0, 0};
        unsigned type = 0;
        int blocks = 0;
        while (fgets(line, sizeof(line), f)) {
                if (strstr(line, "perf_event_attr:"))
                        blocks++;
                if (blocks != 1)
                        continue;
                /* "  type   13", "  config    0x304", "  { bp_addr, config1 }    0x3", "  { bp_len, config2
                 * }  0x1" */
                unsigned long long v;
                const char *brace = strchr(line, '}');
                char key[32];
                if (brace && sscanf(brace + 1, " %llx", &v) == 1) {
                        if (strstr(line, "config1 }"))
                                c[1] = v;
                        else if (strstr(line, "config2 }"))
                                c[2] = v;
                } else if (sscanf(line, " %31s %llx", key, &v) == 2) {
                        if (strcmp(key, "config") == 0)
                                c[0] = v, seen = true;
                        else if (strcmp(key, "config1") == 0)
                                c[1] = v;
                        else if (strcmp(key, "config2") == 0)
                                c[2] = v;
                        else if (strcmp(key, "type") == 0)
                                typed = sscanf(line, " type %u", &type) == 1;
                }
        }
        pclose(f);
        if (!seen || !typed)
                return false;
        *ret_type = type;
        memcpy(ret, c, sizeof(c));
        return true;
}

static bool have_perf(void)
{
        return system("perf --version >/dev/null 2>&1") == 0;
}

/* Our encoding of PMU/TERMS/ (or of PMU/EVENT/ with event) against perf's. */
static void against_perf(const char *pmu_name, const char *terms_or_event, bool is_event, bool system_wide)
{
        jl_pe_pmu *p = malloc(sizeof(*p));
        if (!p)
                abort();
        uint64_t mine[3] = {0, 0, 0}, theirs[3];
        uint32_t type = 0;
        int r = jl_pe_pmu_load(JL_PE_SYSFS, pmu_name, p);
        if (r == 0 && is_event) {
                jl_pe_event e;
                r = jl_pe_event_load(JL_PE_SYSFS, p, terms_or_event, &e);
                if (r == 0)
                        memcpy(mine, e.config, sizeof(mine));
        } else if (r == 0)
                r = jl_pe_encode(p, terms_or_event, mine);
        char ev[256];
        snprintf(ev, sizeof(ev), "%s/%s/", pmu_name, terms_or_event);
        if (!have_perf()) {
                printf("ok %d - # SKIP perf is not installed: %s\n", ++tap_n, ev);
        } else if (!perf_attr(ev, system_wide, &type, theirs)) {
                ok(false, "perf printed no perf_event_attr for %s", ev);
        } else {
                ok(r == 0 && type == p->type && mine[0] == theirs[0] && mine[1] == theirs[1] &&
                       mine[2] == theirs[2],
                   "%s: ours type %u config 0x%llx/0x%llx/0x%llx, perf's type %u 0x%llx/0x%llx/0x%llx", ev,
                   p->type, (unsigned long long)mine[0], (unsigned long long)mine[1],
                   (unsigned long long)mine[2], type, (unsigned long long)theirs[0],
                   (unsigned long long)theirs[1], (unsigned long long)theirs[2]);
        }
        free(p);
}

/* The runtime's plan entry e against perf's attr for EVENT: type and configs. */
static void plan_vs_perf(const char *event, bool system_wide, const jl_rt_ctr_event *e)
{
        uint64_t theirs[3];
        uint32_t type;
        if (!have_perf())
                printf("ok %d - # SKIP perf is not installed: %s\n", ++tap_n, event);
        else if (!perf_attr(event, system_wide, &type, theirs))
                ok(false, "perf printed no perf_event_attr for %s", event);
        else
                ok(type == e->type && theirs[0] == e->config[0] && theirs[1] == e->config[1] &&
                       theirs[2] == e->config[2],
                   "the plan's %s: type %u config 0x%llx, perf's type %u config 0x%llx", event, e->type,
                   (unsigned long long)e->config[0], type, (unsigned long long)theirs[0]);
}

static int read_all(const char *path, char *buf, size_t size)
{
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        ssize_t n = read(fd, buf, size - 1);
        close(fd);
        if (n < 0)
                return -errno;
        buf[n] = 0;
        return 0;
}

/* The open on this machine: with the fixture's PMUs absent from the kernel it fails; figures NAN. */
static void real_open(const jl_rt_counters_plan *plan)
{
        jl_rt_counters c;
        int r = jl_rt_counters_open(&c);
        printf("# open: CPI %s, FLOPs %zu counters, memory %zu counters\n", r == 0 ? "yes" : strerror(-r),
               c.nfp, c.nmem);
        ok(c.nfp || strstr(c.fp_what, "perf_event_open: ") || plan->nfp == 0, "FLOPs: %s", c.fp_what);
        ok(c.nmem || strstr(c.mem_what, "perf_event_open: ") || plan->nmem == 0, "memory: %s", c.mem_what);
        ok(c.nfp == 0 || c.nfp == plan->nfp, "FLOPs: none or the whole plan (%zu)", c.nfp);
        ok(r == 0 || c.nfp ? c.scope == JL_RT_CTR_PROCESS
                           : c.scope == JL_RT_CTR_NONE && strncmp(c.scope_what, "none (", 6) == 0,
           "no step CPUs given: the process's scope, or none and why: %s", c.scope_what);
        ok(c.nmem == 0 || c.nmem == plan->nmem, "memory: none or the whole plan (%zu)", c.nmem);
        jl_rt_counts a, b;
        jl_rt_counters_read(&c, &a);
        volatile double x = 1;
        for (int i = 0; i < 1000000; i++)
                x = x * 1.0000001 + 1e-9;
        jl_rt_counters_read(&c, &b);
        double gbs = jl_rt_counts_gbs(&a, &b, 0.01), gflops = jl_rt_counts_gflops(&a, &b, 0.01);
        ok(c.nmem ? isfinite(gbs) && gbs >= 0 : isnan(gbs), "GB/s %g: %s", gbs,
           c.nmem ? "counted" : "NAN where the memory counters did not open");
        ok(c.nfp ? isfinite(gflops) && gflops >= 0 : isnan(gflops), "GFLOPS %g: %s", gflops,
           c.nfp ? "counted" : "NAN where the FP counters did not open");
        ok(c.nmem && r == 0 ? isfinite(jl_rt_counts_tpi(&a, &b)) : isnan(jl_rt_counts_tpi(&a, &b)),
           "TPI likewise");
        jl_rt_counters_close(&c);
        ok(c.fd_cycles == -1 && c.nfp == 0 && c.nmem == 0, "closed; the program runs on");
}

static int fixture(const char *vendor)
{
        char cpuinfo[16384];
        jl_rt_counters_plan *p = malloc(sizeof(*p));
        if (!p || read_all("/proc/cpuinfo", cpuinfo, sizeof(cpuinfo)) < 0)
                abort();
        jl_rt_counters_plan_make(JL_PE_SYSFS, cpuinfo, p);
        printf("# FLOPs: %s\n# memory: %s\n", p->fp_what, p->mem_what);
        if (strcmp(vendor, "intel") == 0) {
                jl_pe_pmu *imc = malloc(sizeof(*imc));
                jl_pe_event e;
                if (!imc)
                        abort();
                is_int(jl_pe_pmu_load(JL_PE_SYSFS, "uncore_imc_3", imc), 0, "uncore_imc_3 at the real path");
                ok(imc->type == 16 && imc->ncpus == 2 && imc->cpus[0] == 0 && imc->cpus[1] == 36,
                   "type 16, cpumask 0,36");
                is_int(jl_pe_event_load(JL_PE_SYSFS, imc, "cas_count_read", &e), 0, "cas_count_read");
                ok(e.type == 16 && e.config[0] == 0x304 && e.scale == 6.103515625e-5 &&
                       strcmp(e.unit, "MiB") == 0,
                   "event 0x04 | umask 0x03 << 8 = 0x304, 6.103515625e-5 MiB = 64 bytes");
                is_int(jl_pe_event_load(JL_PE_SYSFS, imc, "cas_count_write", &e), 0, "cas_count_write");
                ok(e.config[0] == 0xc04, "event 0x04 | umask 0x0c << 8 = 0xc04");
                free(imc);
                is_int(p->nfp, 8, "Skylake-SP (family 6 model 85): 8 FP_ARITH_INST_RETIRED umasks");
                static const double w[] = {1, 1, 2, 4, 4, 8, 8, 16};
                bool fp_ok = p->nfp == 8;
                for (size_t i = 0; i < p->nfp && i < 8; i++)
                        fp_ok = fp_ok && p->fp[i].type == 4 /* PERF_TYPE_RAW */ && p->fp[i].cpu == -1 &&
                                p->fp[i].config[0] == (0xc7 | (UINT64_C(1) << i) << 8) &&
                                p->fp[i].weight == w[i];
                ok(fp_ok, "raw 0x1c7, 0x2c7, 0x4c7 ... 0x80c7 weighing 1, 1, 2, 4, 4, 8, 8, 16 FLOPs");
                is_int(p->nmem, 24, "6 IMCs x 2 sockets (cpumask 0,36) x read and write");
                bool mem_ok = p->nmem == 24;
                for (size_t i = 0; i < p->nmem; i++)
                        mem_ok = mem_ok && p->mem[i].type == 13 + i / 4 &&
                                 p->mem[i].cpu == (i % 4 < 2 ? 0 : 36) &&
                                 p->mem[i].config[0] == (i % 2 ? 0xc04 : 0x304) && p->mem[i].weight == 64;
                ok(mem_ok, "uncore_imc_0..5 (types 13-18) on CPUs 0 and 36, 0x304 and 0xc04, 64 bytes each");
                /* every counter of the plan against perf's attr for the same event */
                for (size_t i = 0; i < p->nfp; i++) {
                        char ev[64];
                        snprintf(ev, sizeof(ev), "cpu/event=0xc7,umask=0x%02x/", 1u << i);
                        plan_vs_perf(ev, false, &p->fp[i]);
                }
                for (size_t i = 0; i < p->nmem; i += 4) {
                        char ev[64];
                        snprintf(ev, sizeof(ev), "uncore_imc_%zu/cas_count_read/", i / 4);
                        plan_vs_perf(ev, true, &p->mem[i]);
                        snprintf(ev, sizeof(ev), "uncore_imc_%zu/cas_count_write/", i / 4);
                        plan_vs_perf(ev, true, &p->mem[i + 1]);
                }
                against_perf("uncore_imc_0", "cas_count_read", true, true);
                against_perf("uncore_imc_5", "cas_count_write", true, true);
                against_perf("cpu", "event=0xc7,umask=0x01", false, false);
                against_perf("cpu", "event=0xc7,umask=0x80", false, false);
                against_perf("cpu", "mem-loads", true, false);
                against_perf("cpu", "event=0xb7,umask=0x1,offcore_rsp=0x3fffc00001", false, false);
                against_perf("cpu", "event=0x3c,edge,inv,cmask=3", false, false);
                against_perf("uncore_cha_0", "event=0x34,umask=0x1ffffff01,filter_tid=0x1ff", false, true);
        } else if (strcmp(vendor, "amd-zen4") == 0) {
                ok(p->nfp == 0, "AMD Zen 4: the kernel names no FLOPS event: no GFLOPS (%s)", p->fp_what);
                is_int(p->nmem, 48, "24 UMC PMUs (12 per socket) x read and write (%s)", p->mem_what);
                bool mem_ok = p->nmem == 48;
                for (size_t i = 0; i < p->nmem; i++)
                        mem_ok = mem_ok && p->mem[i].type == 14 + i / 2 &&
                                 p->mem[i].cpu == (i / 2 < 12 ? 0 : 96) &&
                                 p->mem[i].config[0] == (i % 2 ? 0x20a : 0x10a) && p->mem[i].weight == 64;
                ok(mem_ok,
                   "amd_umc_0..23 (types 14-37) on CPU 0 or 96: event 0x0a | rdwrmask 1 or 2 << 8 = 0x10a, "
                   "0x20a, 64 bytes per CAS");
                for (size_t i = 0; i < p->nmem; i += 22) {
                        char ev[64];
                        snprintf(ev, sizeof(ev), "amd_umc_%zu/event=0x0a,rdwrmask=0x1/", i / 2);
                        plan_vs_perf(ev, true, &p->mem[i]);
                        snprintf(ev, sizeof(ev), "amd_umc_%zu/event=0x0a,rdwrmask=0x2/", i / 2);
                        plan_vs_perf(ev, true, &p->mem[i + 1]);
                }
                against_perf("amd_umc_0", "event=0x0a,rdwrmask=0x1", false, true);
                against_perf("amd_umc_23", "event=0x0a,rdwrmask=0x2", false, true);
                against_perf("amd_df", "event=0x3fff,umask=0xfff", false, true);
                against_perf("amd_l3", "event=0x04,umask=0xff,threadmask=0x3", false, true);
        } else {
                ok(p->nfp == 0, "AMD Zen 3: the kernel names no FLOPS event: no GFLOPS (%s)", p->fp_what);
                ok(p->nmem == 0, "AMD Zen 3: no UMC PMU, no named DRAM events: no GB/s (%s)", p->mem_what);
                against_perf("cpu", "event=0x1c3,umask=0x01", false, false);
                against_perf("cpu", "instructions", true, false);
                against_perf("amd_df", "event=0x3fff,umask=0x38", false, true);
                against_perf("amd_df", "event=0x1c7,umask=0x01", false, true);
        }
        real_open(p);
        free(p);
        return 0;
}

static int count_fds(void)
{
        int n = 0;
        DIR *d = opendir("/proc/self/fd");
        for (struct dirent *de; d && (de = readdir(d));)
                n += de->d_name[0] != '.';
        if (d)
                closedir(d);
        return n;
}

static double busy_for(double s)
{
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        volatile double x = 1;
        do {
                for (int i = 0; i < 100000; i++)
                        x = x * 1.0000001 + 1e-9;
                clock_gettime(CLOCK_MONOTONIC, &b);
        } while ((double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9 < s);
        return (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
}

/* The open, read and close of the plan's groups with the kernel's software counters, which every Linux
 * has (this VM has no PMU): task-clock of the process as the "FLOP" group and cpu-clock of CPU 0
 * system-wide as the "memory" group, 1 ns per count, so that the figures are known: GFLOPS = the share of
 * the interval this thread ran, GB/s = CPU 0's clock over the interval = 1. */
static void test_open_software(void)
{
        jl_rt_counters_plan *p = calloc(1, sizeof(*p));
        if (!p)
                abort();
        p->fp[0] = (jl_rt_ctr_event){
            .type = PERF_TYPE_SOFTWARE, .config = {PERF_COUNT_SW_TASK_CLOCK}, .cpu = -1, .weight = 1};
        p->nfp = 1;
        snprintf(p->fp_what, sizeof(p->fp_what), "task-clock");
        p->mem[0] = (jl_rt_ctr_event){
            .type = PERF_TYPE_SOFTWARE, .config = {PERF_COUNT_SW_CPU_CLOCK}, .cpu = 0, .weight = 1};
        p->nmem = 1;
        int fds0 = count_fds();
        jl_rt_counters c = {.fd_cycles = -1, .fd_instr = -1};
        int groups = jl_rt_counters_open_plan(&c, p, NULL);
        ok(c.nfp == 1, "the process's task-clock opens as a group");
        bool sys = c.nmem == 1;
        if (!sys)
                printf("# system-wide cpu-clock on CPU 0 refused (not root, or perf_event_paranoid): %d "
                       "group\n",
                       groups);
        jl_rt_counts a, b;
        jl_rt_counters_read(&c, &a);
        ok(a.fp_valid && a.mem_valid == sys && !a.valid,
           "read: the groups that opened are valid, CPI absent");
        double dt = busy_for(0.2);
        jl_rt_counters_read(&c, &b);
        double gflops = jl_rt_counts_gflops(&a, &b, dt), gbs = jl_rt_counts_gbs(&a, &b, dt);
        ok(gflops > 0.05 && gflops <= 1.05, "task-clock over %.3f s of busy loop: %.3f of it on a CPU", dt,
           gflops);
        if (sys)
                is_near(gbs, 1, 0.05, "CPU 0's cpu-clock, system-wide: 1 s per s");
        ok(isnan(jl_rt_counts_tpi(&a, &b)), "no instructions: no TPI");
        jl_rt_counters_close(&c);
        is_int(count_fds(), fds0, "closed: no fd left");

        /* all or nothing: one event the kernel refuses closes the others of its group */
        p->fp[1] = p->fp[0];
        p->fp[1].type = 0x7fffffff;
        p->nfp = 2;
        p->mem[1] = p->mem[0];
        p->nmem = 2;
        c = (jl_rt_counters){.fd_cycles = -1, .fd_instr = -1};
        groups = jl_rt_counters_open_plan(&c, p, NULL);
        ok(c.nfp == 0, "a refused event: no FLOP group at all");
        ok(strstr(c.fp_what, "perf_event_open: ") != NULL, "and why: %s", c.fp_what);
        ok(c.nmem == (sys ? 2u : 0u), "the memory group independently (%d group)", groups);
        jl_rt_counters_read(&c, &b);
        ok(!b.fp_valid && isnan(jl_rt_counts_gflops(&a, &b, 1)), "its figure NAN");
        jl_rt_counters_close(&c);
        is_int(count_fds(), fds0, "no fd left of the refused group either");
        free(p);
}

/* A plan of software events standing in for the core events (this VM has no PMU): cpu-clock as "cycles",
 * "instructions" and the one "FLOP" event, 1 ns per count. Per CPU, cpu-clock counts each CPU's clock
 * whether it runs anything or not: over dt the sum is dt x CPUs, so GFLOPS = the CPUs counted and CPI 1;
 * for the process it counts the time the process ran (<= 1 s per s for this one busy thread). */
static void sw_core_plan(jl_rt_counters_plan *p)
{
        memset(p, 0, sizeof(*p));
        const jl_rt_ctr_event clk = {
            .type = PERF_TYPE_SOFTWARE, .config = {PERF_COUNT_SW_CPU_CLOCK}, .cpu = -1, .weight = 1};
        p->core[0] = p->core[1] = p->fp[0] = clk;
        p->ncore = 2;
        p->nfp = 1;
        snprintf(p->fp_what, sizeof(p->fp_what), "cpu-clock");
        snprintf(p->mem_what, sizeof(p->mem_what), "none");
}

/* The step's CPUs for the per-CPU tests: {0, 1}, or {0} on a machine of one CPU. */
static int step_cpus(cpu_set_t *set)
{
        CPU_ZERO(set);
        CPU_SET(0, set);
        if (sysconf(_SC_NPROCESSORS_ONLN) >= 2)
                CPU_SET(1, set);
        return CPU_COUNT(set);
}

/* "scope": run by test_open_per_cpu as an unprivileged user (setpriv): the scope of the software plan on
 * the step's CPUs, as one line. */
static int child_scope(void)
{
        jl_rt_counters_plan *p = malloc(sizeof(*p));
        if (!p)
                return 1;
        sw_core_plan(p);
        cpu_set_t set;
        step_cpus(&set);
        jl_rt_counters c;
        int groups = jl_rt_counters_open_plan(&c, p, &set);
        jl_rt_counts a, b;
        jl_rt_counters_read(&c, &a);
        double dt = busy_for(0.1);
        jl_rt_counters_read(&c, &b);
        printf("groups=%d scope=%s sites=%zu fp_cpus=%g gflops=%.3f why=%s\n", groups,
               jl_rt_ctr_scope_name(c.scope), c.nsites, jl_rt_counters_fp_cpus(&c, 1),
               jl_rt_counts_gflops(&a, &b, dt), c.scope_what);
        jl_rt_counters_close(&c);
        free(p);
        return 0;
}

/* The core events per CPU of the step (system-wide: root here, or perf_event_paranoid <= 0), summed; and
 * the fallbacks to the process's: too few fds (RLIMIT_NOFILE), a CPU that refuses (all or nothing across
 * CPUs), an unprivileged user (setpriv as nobody at perf_event_paranoid >= 1). */
static void test_open_per_cpu(void)
{
        jl_rt_counters_plan *p = malloc(sizeof(*p));
        if (!p)
                abort();
        sw_core_plan(p);
        cpu_set_t set;
        int n = step_cpus(&set);
        int fds0 = count_fds();
        jl_rt_counters c;
        int groups = jl_rt_counters_open_plan(&c, p, &set);
        bool per_cpu = c.scope == JL_RT_CTR_CPUS;
        if (!per_cpu) {
                printf("ok %d - # SKIP per-CPU counting refused here (not root?): %s\n", ++tap_n,
                       c.scope_what);
                jl_rt_counters_close(&c);
        } else {
                ok(groups == 2 && c.nsites == (size_t)n && c.nfp == 1 && c.fd_instr >= 0,
                   "per CPU of %d CPUs: cycles, instructions and FLOPs open (%s)", n, c.scope_what);
                is_int(count_fds() - fds0, 3 * n, "one fd per event and CPU");
                is_near(jl_rt_counters_fp_cpus(&c, 1), n, 0, "GFLOPS per CPU divide by the step's CPUs");
                jl_rt_counts a, b;
                jl_rt_counters_read(&c, &a);
                double dt = busy_for(0.3);
                jl_rt_counters_read(&c, &b);
                /* the cost of a read (a window's edge): the mean of 50 */
                jl_rt_counts x;
                struct timespec t0, t1;
                clock_gettime(CLOCK_MONOTONIC, &t0);
                for (int i = 0; i < 50; i++)
                        jl_rt_counters_read(&c, &x);
                clock_gettime(CLOCK_MONOTONIC, &t1);
                printf("# one read of %d fds: %.1f us (mean of 50)\n", 3 * n,
                       ((double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec)) / 1e3 /
                           50);
                double gflops = jl_rt_counts_gflops(&a, &b, dt);
                ok(a.valid && b.valid && a.fp_valid && b.fp_valid, "reads valid");
                is_near(gflops, n, 0.05 * n,
                        "summed over the CPUs: %.3f s of CPU clock per s over %.3f s "
                        "(wall time x %d CPUs, +-5 %%)",
                        gflops, dt, n);
                is_near((double)(b.cycles - a.cycles) / dt / 1e9, n, 0.05 * n, "cycles likewise summed");
                is_near(jl_rt_counts_cpi(&a, &b), 1, 0.01, "CPI of the sums");
                jl_rt_counters_close(&c);
                ok(c.fd_cycles == -1 && c.fd_core == NULL && c.nsites == 0 && c.scope == JL_RT_CTR_NONE,
                   "closed");
                is_int(count_fds(), fds0, "no fd left");

                /* all or nothing across CPUs: one the kernel refuses (none such) and the process's */
                cpu_set_t bad = set;
                CPU_SET(CPU_SETSIZE - 1, &bad);
                jl_rt_counters_open_plan(&c, p, &bad);
                ok(c.scope == JL_RT_CTR_PROCESS && c.nsites == 1 && strstr(c.scope_what, "per CPU: "),
                   "a CPU that cannot count: the process's scope (%s)", c.scope_what);
                is_int(count_fds() - fds0, 3, "and none of the other CPUs' fds left open");
                jl_rt_counters_close(&c);
        }

        /* too few fds: RLIMIT_NOFILE's soft limit leaves fewer than twice what per CPU takes */
        struct rlimit old, lim;
        getrlimit(RLIMIT_NOFILE, &old);
        lim = old;
        lim.rlim_cur = (rlim_t)(count_fds() - 1) + (rlim_t)(3 * n * 2 - 1); /* count_fds' own is closed */
        setrlimit(RLIMIT_NOFILE, &lim);
        groups = jl_rt_counters_open_plan(&c, p, &set);
        setrlimit(RLIMIT_NOFILE, &old);
        ok(c.scope == JL_RT_CTR_PROCESS && c.nsites == 1 && groups == 2,
           "RLIMIT_NOFILE %llu: the process's scope", (unsigned long long)lim.rlim_cur);
        ok(strstr(c.scope_what, "RLIMIT_NOFILE") != NULL, "and why: %s", c.scope_what);
        is_near(jl_rt_counters_fp_cpus(&c, 3), 3, 0, "GFLOPS per CPU divide by the process's own CPUs");
        jl_rt_counts a, b;
        jl_rt_counters_read(&c, &a);
        double dt = busy_for(0.2);
        jl_rt_counters_read(&c, &b);
        double gflops = jl_rt_counts_gflops(&a, &b, dt);
        ok(gflops > 0.05 && gflops <= 1.05, "the process's clock: %.3f s per s (one busy thread)", gflops);
        jl_rt_counters_close(&c);
        is_int(count_fds(), fds0, "closed: no fd left");
        lim.rlim_cur += 1;
        setrlimit(RLIMIT_NOFILE, &lim);
        jl_rt_counters_open_plan(&c, p, &set);
        setrlimit(RLIMIT_NOFILE, &old);
        ok(per_cpu ? c.scope == JL_RT_CTR_CPUS : c.scope == JL_RT_CTR_PROCESS, "one fd more: %s (%s)",
           per_cpu ? "per CPU fits" : "refused here anyway", c.scope_what);
        jl_rt_counters_close(&c);

        /* an unprivileged user at perf_event_paranoid >= 1: per CPU refused, the process's counted */
        char exe[PATH_MAX], cmd[PATH_MAX + 128], line[512] = "", paranoid[32] = "";
        ssize_t len = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
        bool can = geteuid() == 0 && len > 0 && access("/usr/bin/setpriv", X_OK) == 0 &&
                   read_all("/proc/sys/kernel/perf_event_paranoid", paranoid, sizeof(paranoid)) == 0 &&
                   atoi(paranoid) >= 1;
        if (!can) {
                printf("ok %d - # SKIP needs root, setpriv and perf_event_paranoid >= 1 (%s)\n", ++tap_n,
                       paranoid);
        } else {
                exe[len] = 0;
                snprintf(cmd, sizeof(cmd),
                         "setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all '%s' scope",
                         exe);
                FILE *f = popen(cmd, "r");
                if (f && !fgets(line, sizeof(line), f))
                        line[0] = 0;
                int st = f ? pclose(f) : -1;
                printf("# as nobody: %s", line);
                ok(st == 0 && strstr(line, "groups=2 scope=process sites=1 fp_cpus=1 ") &&
                       strstr(line, "per CPU: perf_event_open: ") &&
                       strstr(line, "perf_event_paranoid <= 0"),
                   "as nobody at perf_event_paranoid %d: the process's scope, its own CPUs, and why",
                   atoi(paranoid));
                char *g = strstr(line, "gflops=");
                ok(g && atof(g + 7) > 0.05 && atof(g + 7) <= 1.05, "its own clock counted");
        }
        free(p);
}

int main(int argc, char **argv)
{
        if (argc > 1 && strcmp(argv[1], "scope") == 0)
                return child_scope();
        if (argc > 1) {
                fixture(argv[1]);
                return tap_done();
        }
        snprintf(tmp, sizeof(tmp), "%s/test-perfev-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
        if (!mkdtemp(tmp)) {
                perror("mkdtemp");
                return 1;
        }
        test_format();
        test_encode();
        test_values();
        test_dirs();
        test_plans();
        test_counts();
        test_open_software();
        test_open_per_cpu();
        rm_rf(tmp);
        return tap_done();
}
