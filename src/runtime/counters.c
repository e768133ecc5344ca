/* counters.c - perf_event_open counters: cycles, instructions and FLOPs of the step's CPUs or of the
 * process, the node's memory traffic (counters.h). */
#include "counters.h"

#include <errno.h>
#include <linux/perf_event.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "fileio.h"
#include "macro.h"
#include "perfev.h"

/* Intel's FP_ARITH_INST_RETIRED, event C7H: Intel 64 and IA-32 Architectures Software Developer's Manual,
 * Vol. 3B, chapter "Performance Monitoring Events" (order no. 253669), the tables of the Broadwell,
 * Skylake, Ice Lake and Sapphire Rapids microarchitectures' core events, and Intel's perfmon event files
 * (FP_ARITH_INST_RETIRED.*, EventCode 0xC7): umask 01H SCALAR_DOUBLE, 02H SCALAR_SINGLE,
 * 04H 128B_PACKED_DOUBLE, 08H 128B_PACKED_SINGLE, 10H 256B_PACKED_DOUBLE, 20H 256B_PACKED_SINGLE,
 * 40H 512B_PACKED_DOUBLE, 80H 512B_PACKED_SINGLE; "each count represents N computation operations, one
 * for each element", and FM(N)ADD/SUB count twice (two operations per element): the weights below are
 * the elements per instruction. */
static const struct {
        unsigned umask;
        double flops;
        bool avx512;
} intel_fp[] = {
    {0x01, 1, false}, {0x02, 1, false}, {0x04, 2, false}, {0x08, 4, false},
    {0x10, 4, false}, {0x20, 8, false}, {0x40, 8, true},  {0x80, 16, true},
};

/* Family 6 models with FP_ARITH_INST_RETIRED on a non-hybrid core PMU (the "cpu" PMU: hybrid parts have
 * cpu_core and cpu_atom instead and are left out), and whether they have AVX-512 (512-bit umasks). */
static const struct {
        unsigned model;
        bool avx512;
} intel_fp_models[] = {
    {0x3d, false}, {0x47, false}, {0x4f, false}, {0x56, false}, /* Broadwell, Broadwell-EP/DE */
    {0x4e, false}, {0x5e, false}, {0x55, true},                 /* Skylake, Skylake-SP/Cascade Lake */
    {0x8e, false}, {0x9e, false}, {0xa5, false}, {0xa6, false}, /* Kaby, Coffee, Comet Lake */
    {0x66, true},  {0x7d, true},  {0x7e, true},                 /* Cannon Lake, Ice Lake */
    {0x6a, true},  {0x6c, true},                                /* Ice Lake-SP/D */
    {0x8c, true},  {0x8d, true},  {0xa7, true},                 /* Tiger Lake, Rocket Lake */
    {0x8f, true},  {0xcf, true},                                /* Sapphire and Emerald Rapids */
};

/* AMD: FLOP events of the core PMU, used only where the kernel names them in its events directory. */
static const char *const amd_fp_events[] = {"fp_ret_sse_avx_ops.all"};

static void plan_fp(const char *root, const jl_pe_cpuid *id, jl_rt_counters_plan *p)
{
        _cleanup_free_ jl_pe_pmu *cpu = malloc(sizeof(*cpu));
        if (!cpu || jl_pe_pmu_load(root, "cpu", cpu) < 0) {
                snprintf(p->fp_what, sizeof(p->fp_what), "no core PMU \"cpu\" (a VM, or a hybrid CPU)");
                return;
        }
        if (strcmp(id->vendor, "GenuineIntel") == 0) {
                const bool *avx512 = NULL;
                for (size_t i = 0; i < ARRAY_SIZE(intel_fp_models) && !avx512; i++)
                        if (id->family == 6 && intel_fp_models[i].model == id->model)
                                avx512 = &intel_fp_models[i].avx512;
                if (!avx512) {
                        snprintf(p->fp_what, sizeof(p->fp_what),
                                 "Intel family %u model 0x%x: no FP_ARITH_INST_RETIRED known", id->family,
                                 id->model);
                        return;
                }
                size_t n = 0;
                for (size_t i = 0; i < ARRAY_SIZE(intel_fp); i++) {
                        if (intel_fp[i].avx512 && !*avx512)
                                continue;
                        char terms[48];
                        snprintf(terms, sizeof(terms), "event=0xc7,umask=0x%02x", intel_fp[i].umask);
                        jl_rt_ctr_event *e = &p->fp[n];
                        if (jl_pe_encode(cpu, terms, e->config) < 0) {
                                snprintf(p->fp_what, sizeof(p->fp_what),
                                         "the cpu PMU's format does not encode %s", terms);
                                return;
                        }
                        e->type = PERF_TYPE_RAW;
                        e->cpu = -1;
                        e->weight = intel_fp[i].flops;
                        n++;
                }
                p->nfp = n;
                snprintf(p->fp_what, sizeof(p->fp_what), "fp_arith_inst_retired (event 0xc7, %zu umasks)",
                         n);
                return;
        }
        if (strcmp(id->vendor, "AuthenticAMD") == 0) {
                for (size_t i = 0; i < ARRAY_SIZE(amd_fp_events); i++) {
                        jl_pe_event ev;
                        if (jl_pe_event_load(root, cpu, amd_fp_events[i], &ev) < 0)
                                continue;
                        p->fp[0] = (jl_rt_ctr_event){.type = ev.type,
                                                     .config = {ev.config[0], ev.config[1], ev.config[2]},
                                                     .cpu = -1,
                                                     .weight = ev.scale};
                        p->nfp = 1;
                        snprintf(p->fp_what, sizeof(p->fp_what), "cpu/%s/", amd_fp_events[i]);
                        return;
                }
                snprintf(p->fp_what, sizeof(p->fp_what),
                         "AMD: the kernel names no FLOPS event of the cpu PMU");
                return;
        }
        snprintf(p->fp_what, sizeof(p->fp_what), "no FLOPS events known for vendor \"%s\"", id->vendor);
}

/* The memory controllers' PMUs, in order of preference; one group is used, never two (they count the same
 * traffic). Intel's name their events in sysfs, with scale and unit. AMD's UMC PMUs (amd_umc_N, Linux 6.5+,
 * Zen 4 and later) name none: their CAS commands are event 0x0a with rdwrmask 1 (reads) and 2 (writes), 64
 * bytes each (perf's pmu-events amdzen4 and amdzen5 memory-controller.json, umc_cas_cmd.rd and .wr, from
 * AMD's Processor Programming Reference; perf's metric umc_mem_read_bandwidth is umc_cas_cmd.rd x 64),
 * encoded with the PMU's own format (which must have rdwrmask: the kernel's UMC PMU). */
static const struct {
        const char *prefix; /* PMU names: prefix followed by a number, or exactly prefix with exact */
        bool exact;
        const char *read, *write; /* event names, or with bytes > 0 terms */
        double bytes;             /* bytes per count of read and write given as terms */
} mem_groups[] = {
    {"uncore_imc_", false, "cas_count_read", "cas_count_write", 0},    /* servers: BDX, SKX, ICX, SPR */
    {"uncore_imc_free_running_", false, "data_read", "data_write", 0}, /* Tiger Lake and later clients */
    {"uncore_imc_free_running_", false, "read", "write", 0},           /* Ice Lake-SP free-running */
    {"uncore_imc", true, "data_reads", "data_writes", 0},              /* clients: SNB to Comet Lake */
    {"amd_umc_", false, "event=0x0a,rdwrmask=0x1", "event=0x0a,rdwrmask=0x2", 64}, /* AMD Zen 4, 5 */
};

static int unit_bytes(const char *unit, double *ret)
{
        if (strcmp(unit, "MiB") == 0)
                *ret = 1048576;
        else if (strcmp(unit, "MB") == 0)
                *ret = 1e6;
        else if (strcmp(unit, "KiB") == 0)
                *ret = 1024;
        else if (strcmp(unit, "B") == 0 || strcmp(unit, "Bytes") == 0)
                *ret = 1;
        else
                return -EINVAL;
        return 0;
}

#define MEM_PMUS_MAX 64

/* One group's events for every PMU of it on every CPU of its cpumask. 0, -ENOENT (no PMU of the group) or
 * another negative errno (a PMU of the group that cannot be described: the group is not used). */
static int plan_mem_group(const char *root, size_t g, jl_rt_counters_plan *p)
{
        _cleanup_free_ char(*names)[JL_PE_NAME_MAX] = calloc(MEM_PMUS_MAX, JL_PE_NAME_MAX);
        _cleanup_free_ jl_pe_pmu *pmu = malloc(sizeof(*pmu));
        if (!names || !pmu)
                return -ENOMEM;
        int n = jl_pe_pmu_list(root, mem_groups[g].prefix, names, MEM_PMUS_MAX);
        if (n < 0)
                return n;
        size_t used = 0, nev = 0;
        for (int i = 0; i < n; i++) {
                const char *rest = names[i] + strlen(mem_groups[g].prefix);
                if (mem_groups[g].exact ? *rest != 0 : (*rest < '0' || *rest > '9'))
                        continue; /* "uncore_imc_free_running_0" is not in "uncore_imc_"'s group */
                int r = jl_pe_pmu_load(root, names[i], pmu);
                if (r < 0)
                        return r;
                if (pmu->ncpus == 0)
                        return -EINVAL; /* an uncore PMU counts on the CPUs of its cpumask */
                jl_pe_event ev[2] = {{.type = pmu->type, .scale = 1}, {.type = pmu->type, .scale = 1}};
                double bytes[2] = {mem_groups[g].bytes, mem_groups[g].bytes};
                if (mem_groups[g].bytes > 0) {
                        if ((r = jl_pe_encode(pmu, mem_groups[g].read, ev[0].config)) < 0 ||
                            (r = jl_pe_encode(pmu, mem_groups[g].write, ev[1].config)) < 0)
                                return r;
                } else {
                        if ((r = jl_pe_event_load(root, pmu, mem_groups[g].read, &ev[0])) < 0 ||
                            (r = jl_pe_event_load(root, pmu, mem_groups[g].write, &ev[1])) < 0)
                                return r;
                        for (int k = 0; k < 2; k++)
                                if ((r = unit_bytes(ev[k].unit, &bytes[k])) < 0)
                                        return r;
                }
                if (nev + 2 * pmu->ncpus > JL_RT_MEM_MAX)
                        return -E2BIG;
                for (size_t c = 0; c < pmu->ncpus; c++)
                        for (int k = 0; k < 2; k++)
                                p->mem[nev++] = (jl_rt_ctr_event){
                                    .type = ev[k].type,
                                    .config = {ev[k].config[0], ev[k].config[1], ev[k].config[2]},
                                    .cpu = pmu->cpus[c],
                                    .weight = ev[k].scale * bytes[k]};
                used++;
        }
        if (!used)
                return -ENOENT;
        p->nmem = nev;
        snprintf(p->mem_what, sizeof(p->mem_what), "%s%s/%s/ and /%s/ (%zu PMUs, %zu counters)",
                 mem_groups[g].prefix, mem_groups[g].exact ? "" : "N", mem_groups[g].read,
                 mem_groups[g].write, used, nev);
        return 0;
}

static void plan_mem(const char *root, const jl_pe_cpuid *id, jl_rt_counters_plan *p)
{
        int bad = 0;
        for (size_t g = 0; g < ARRAY_SIZE(mem_groups); g++) {
                p->nmem = 0;
                int r = plan_mem_group(root, g, p);
                if (r == 0)
                        return;
                p->nmem = 0;
                if (r != -ENOENT && !bad)
                        bad = r;
        }
        if (bad)
                snprintf(p->mem_what, sizeof(p->mem_what), "memory controller PMUs not understood (%s)",
                         strerror(-bad));
        else if (id && strcmp(id->vendor, "AuthenticAMD") == 0)
                snprintf(p->mem_what, sizeof(p->mem_what),
                         "AMD without UMC PMUs (Zen 3 and before, or Linux < 6.5): DRAM events unknown");
        else
                snprintf(p->mem_what, sizeof(p->mem_what), "no uncore memory controller PMU");
}

void jl_rt_counters_plan_make(const char *root, const char *cpuinfo, jl_rt_counters_plan *ret)
{
        memset(ret, 0, sizeof(*ret));
        ret->core[0] = (jl_rt_ctr_event){
            .type = PERF_TYPE_HARDWARE, .config = {PERF_COUNT_HW_CPU_CYCLES}, .cpu = -1, .weight = 1};
        ret->core[1] = (jl_rt_ctr_event){
            .type = PERF_TYPE_HARDWARE, .config = {PERF_COUNT_HW_INSTRUCTIONS}, .cpu = -1, .weight = 1};
        ret->ncore = 2;
        jl_pe_cpuid id;
        bool have_id = cpuinfo && jl_pe_cpuinfo_parse(cpuinfo, &id) == 0;
        if (have_id)
                plan_fp(root, &id, ret);
        else
                snprintf(ret->fp_what, sizeof(ret->fp_what), "CPU vendor and model unknown");
        plan_mem(root, have_id ? &id : NULL, ret);
}

static void closedirp(DIR **d)
{
        if (*d)
                closedir(*d);
}

static void close_all(int *fds, size_t n)
{
        for (size_t i = 0; i < n; i++)
                if (fds[i] >= 0)
                        close(fds[i]);
}

/* One counter: a system-wide one of e->cpu (uncore) as the plan says; a core event (e->cpu -1) on site, a
 * CPU of the step, system-wide, or with site -1 for this process and its threads (inherit). Core events
 * count user space in either case (what perf_event_paranoid 2 allows for the process). */
static int open_event(const jl_rt_ctr_event *e, int site)
{
        struct perf_event_attr a;
        memset(&a, 0, sizeof(a));
        a.size = sizeof(a);
        a.type = e->type;
        a.config = e->config[0];
        a.config1 = e->config[1];
        a.config2 = e->config[2];
        a.read_format = PERF_FORMAT_TOTAL_TIME_ENABLED | PERF_FORMAT_TOTAL_TIME_RUNNING;
        int pid = -1, cpu = e->cpu;
        if (e->cpu < 0) {
                a.exclude_hv = 1;
                a.exclude_kernel = 1;
                cpu = site;
                if (site < 0) {
                        a.inherit = 1;
                        pid = 0;
                }
        }
        long fd = syscall(SYS_perf_event_open, &a, pid, cpu, -1, PERF_FLAG_FD_CLOEXEC);
        return fd < 0 ? -errno : (int)fd;
}

/* Opens a group: all or nothing. 0, -ENOENT for an empty plan, or the first failure's negative errno. */
static int open_group(const jl_rt_ctr_event *ev, size_t n, int *fds, double *weights)
{
        for (size_t i = 0; i < n; i++) {
                int fd = open_event(&ev[i], -1);
                if (fd < 0) {
                        close_all(fds, i);
                        return fd;
                }
                fds[i] = fd;
                weights[i] = ev[i].weight;
        }
        return n > 0 ? 0 : -ENOENT;
}

/* Opens a group of core events on every site (fds [nsites][n]): all or nothing. 0 with *ret_fds, -ENOENT
 * for an empty plan, or the first failure's negative errno. */
static int open_sites(const jl_rt_ctr_event *ev, size_t n, const int *sites, size_t nsites, int **ret_fds)
{
        if (n == 0)
                return -ENOENT;
        _cleanup_free_ int *fds = malloc(nsites * n * sizeof(int));
        if (!fds)
                return -ENOMEM;
        for (size_t i = 0; i < nsites * n; i++) {
                int fd = open_event(&ev[i % n], sites[i / n]);
                if (fd < 0) {
                        close_all(fds, i);
                        return fd;
                }
                fds[i] = fd;
        }
        *ret_fds = TAKE_PTR(fds);
        return 0;
}

/* what: the plan's words for the group; on a failed open, why, in words an admin can act on. */
static void group_words(char *buf, size_t size, const char *what, size_t n, int r, bool system_wide)
{
        if (n == 0 || r == 0)
                snprintf(buf, size, "%s", what);
        else if (snprintf(buf, size, "%s: perf_event_open: %s%s", what, strerror(-r),
                          (r == -EACCES || r == -EPERM) && system_wide
                              ? " (system-wide counters need perf_event_paranoid <= 0 or CAP_PERFMON)"
                          : r == -EACCES || r == -EPERM ? " (perf_event_paranoid)"
                                                        : "") >= (int)size &&
                 size > 1)
                buf[size - 2] = '~'; /* cut: said so */
}

static void close_core(jl_rt_counters *c)
{
        if (c->fd_core)
                close_all(c->fd_core, c->nsites * 2);
        if (c->fd_fp)
                close_all(c->fd_fp, c->nsites * c->nfp);
        free(c->fd_core);
        free(c->fd_fp);
        c->fd_core = c->fd_fp = NULL;
        c->fd_cycles = c->fd_instr = -1;
        c->nfp = 0;
        c->nsites = 0;
        c->scope = JL_RT_CTR_NONE;
}

/* The core groups (cycles and instructions, then FLOPs) on the sites. Returns 0 when either opened (the
 * other's words say why not), else the core group's error (or the FLOP group's without a core group). */
static int open_core(jl_rt_counters *c, const jl_rt_counters_plan *plan, const int *sites, size_t nsites,
                     int *ret_core_err)
{
        bool system_wide = sites[0] >= 0;
        c->nsites = nsites;
        int rc = open_sites(plan->core, plan->ncore == 2 ? 2 : 0, sites, nsites, &c->fd_core);
        int rf = open_sites(plan->fp, plan->nfp, sites, nsites, &c->fd_fp);
        if (rf == 0) {
                c->nfp = plan->nfp;
                for (size_t i = 0; i < plan->nfp; i++)
                        c->fp_weight[i] = plan->fp[i].weight;
        }
        group_words(c->fp_what, sizeof(c->fp_what), plan->fp_what, plan->nfp, rf, system_wide);
        if (rc == 0) {
                c->fd_cycles = c->fd_core[0];
                c->fd_instr = c->fd_core[1];
        }
        *ret_core_err = rc;
        if (rc == 0 || rf == 0)
                return 0;
        close_core(c);
        return plan->ncore ? rc : rf;
}

/* The fds open now (/proc/self/fd), or -errno. */
static int fds_open(void)
{
        _cleanup_(closedirp) DIR *d = opendir("/proc/self/fd");
        if (!d)
                return -errno;
        int n = 0;
        for (struct dirent *de; (de = readdir(d));)
                n += de->d_name[0] != '.';
        return n - 1; /* the directory's own */
}

/* Whether need more fds fit: at most half of what RLIMIT_NOFILE's soft limit leaves free (the rest is the
 * program's). Else false with why. */
static bool fds_fit(size_t need, char *why, size_t size)
{
        struct rlimit rl;
        int open_now = fds_open();
        if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || open_now < 0) {
                snprintf(why, size, "the open files' limit is unknown");
                return false;
        }
        if (rl.rlim_cur == RLIM_INFINITY)
                return true;
        uint64_t free_fds = rl.rlim_cur > (rlim_t)open_now ? (uint64_t)(rl.rlim_cur - (rlim_t)open_now) : 0;
        if ((uint64_t)need <= free_fds / 2)
                return true;
        snprintf(why, size,
                 "per CPU would take %zu fds, more than half of the %llu that RLIMIT_NOFILE %llu leaves",
                 need, (unsigned long long)free_fds, (unsigned long long)rl.rlim_cur);
        return false;
}

static int counters_open_plan(jl_rt_counters *c, const jl_rt_counters_plan *plan, const cpu_set_t *cpus,
                              int *ret_core_err)
{
        *c = (jl_rt_counters){.fd_cycles = -1, .fd_instr = -1, .scope = JL_RT_CTR_NONE};
        *ret_core_err = -ENOENT;
        size_t ncpus = cpus ? (size_t)CPU_COUNT(cpus) : 0, per = (plan->ncore == 2 ? 2 : 0) + plan->nfp;
        char why[160] = "";
        snprintf(c->fp_what, sizeof(c->fp_what), "%s", plan->fp_what);
        if (per == 0)
                snprintf(c->scope_what, sizeof(c->scope_what), "none: no core events");
        else if (!cpus)
                snprintf(why, sizeof(why), "no CPUs given to count per CPU");
        else if (ncpus == 0)
                snprintf(why, sizeof(why), "the step's CPUs unknown");
        else if (fds_fit(ncpus * per + plan->nmem, why, sizeof(why))) {
                _cleanup_free_ int *sites = malloc(ncpus * sizeof(int));
                if (!sites)
                        snprintf(why, sizeof(why), "out of memory");
                else {
                        size_t n = 0;
                        for (int cpu = 0; cpu < CPU_SETSIZE && n < ncpus; cpu++)
                                if (CPU_ISSET(cpu, cpus))
                                        sites[n++] = cpu;
                        int r = open_core(c, plan, sites, n, ret_core_err);
                        if (r == 0) {
                                c->scope = JL_RT_CTR_CPUS;
                                snprintf(c->scope_what, sizeof(c->scope_what),
                                         "per CPU: the step's %zu CPUs on this node, every process on them",
                                         n);
                        } else
                                snprintf(why, sizeof(why), "per CPU: perf_event_open: %s%s", strerror(-r),
                                         r == -EACCES || r == -EPERM
                                             ? " (needs perf_event_paranoid <= 0 or CAP_PERFMON)"
                                             : "");
                }
        }
        if (per > 0 && c->scope == JL_RT_CTR_NONE) {
                const int self = -1;
                int r = open_core(c, plan, &self, 1, ret_core_err);
                if (r == 0) {
                        c->scope = JL_RT_CTR_PROCESS;
                        snprintf(c->scope_what, sizeof(c->scope_what), "the process and its threads (%s)",
                                 why);
                } else
                        snprintf(c->scope_what, sizeof(c->scope_what), "none (%s%sfor the process: %s)", why,
                                 why[0] ? "; " : "", strerror(-r));
        }
        int r = open_group(plan->mem, plan->nmem, c->fd_mem, c->mem_weight);
        if (r == 0)
                c->nmem = plan->nmem;
        group_words(c->mem_what, sizeof(c->mem_what), plan->mem_what, plan->nmem, r, true);
        return (c->fd_cycles >= 0) + (c->nfp > 0) + (c->nmem > 0);
}

int jl_rt_counters_open_plan(jl_rt_counters *c, const jl_rt_counters_plan *plan, const cpu_set_t *cpus)
{
        int core_err;
        return counters_open_plan(c, plan, cpus, &core_err);
}

/* The first processor's lines of /proc/cpuinfo (the whole file may be larger than any buffer). */
static int read_cpuinfo(char *buf, size_t size)
{
        _cleanup_close_ int fd = open_ro("/proc/cpuinfo");
        if (fd < 0)
                return fd;
        size_t n = 0;
        while (n + 1 < size) {
                ssize_t k = read(fd, buf + n, size - 1 - n);
                if (k < 0)
                        return -errno;
                if (k == 0)
                        break;
                n += (size_t)k;
        }
        buf[n] = 0;
        return 0;
}

int jl_rt_counters_open_step(jl_rt_counters *c, const cpu_set_t *cpus)
{
        *c = (jl_rt_counters){.fd_cycles = -1, .fd_instr = -1, .scope = JL_RT_CTR_NONE};
        snprintf(c->scope_what, sizeof(c->scope_what), "none (out of memory)");
        snprintf(c->fp_what, sizeof(c->fp_what), "out of memory");
        snprintf(c->mem_what, sizeof(c->mem_what), "out of memory");
        _cleanup_free_ jl_rt_counters_plan *plan = malloc(sizeof(*plan));
        _cleanup_free_ char *cpuinfo = malloc(16384);
        if (!plan || !cpuinfo)
                return -ENOMEM;
        jl_rt_counters_plan_make(JL_PE_SYSFS, read_cpuinfo(cpuinfo, 16384) == 0 ? cpuinfo : NULL, plan);
        int core_err;
        counters_open_plan(c, plan, cpus, &core_err);
        return c->fd_cycles >= 0 ? 0 : core_err;
}

int jl_rt_counters_open(jl_rt_counters *c)
{
        return jl_rt_counters_open_step(c, NULL);
}

void jl_rt_counters_close(jl_rt_counters *c)
{
        close_core(c);
        close_all(c->fd_mem, c->nmem);
        c->nmem = 0;
}

double jl_rt_counters_fp_cpus(const jl_rt_counters *c, int own_cpus)
{
        return c->scope == JL_RT_CTR_CPUS ? (double)c->nsites : (double)(own_cpus > 0 ? own_cpus : 0);
}

const char *jl_rt_ctr_scope_name(jl_rt_ctr_scope scope)
{
        return scope == JL_RT_CTR_CPUS ? "cpus" : scope == JL_RT_CTR_PROCESS ? "process" : "none";
}

/* One counter's count scaled by its time enabled / running (a counter multiplexed with others counts part
 * of the time; one not scheduled yet has counted nothing). false when the read fails. */
static bool read_scaled(int fd, double *ret)
{
        uint64_t v[3]; /* value, time enabled, time running */
        if (read(fd, v, sizeof(v)) != (ssize_t)sizeof(v))
                return false;
        *ret = v[2] ? (double)v[0] * ((double)v[1] / (double)v[2]) : 0;
        return true;
}

/* The sum of a group's counts times their weights over nsites sites (fds [nsites][n]). false when a read
 * fails or the group is absent. */
static bool read_group(const int *fds, const double *weights, size_t n, size_t nsites, double *ret)
{
        double sum = 0;
        for (size_t i = 0; i < n * nsites; i++) {
                double v;
                if (!read_scaled(fds[i], &v))
                        return false;
                sum += v * weights[i % n];
        }
        *ret = sum;
        return n > 0 && nsites > 0;
}

void jl_rt_counters_read(const jl_rt_counters *c, jl_rt_counts *ret)
{
        *ret = (jl_rt_counts){0};
        if (!c)
                return;
        if (c->fd_fp)
                ret->fp_valid = read_group(c->fd_fp, c->fp_weight, c->nfp, c->nsites, &ret->flops);
        ret->mem_valid = read_group(c->fd_mem, c->mem_weight, c->nmem, 1, &ret->mem_bytes);
        if (c->fd_cycles < 0 || c->fd_instr < 0 || !c->fd_core)
                return;
        static const double one[2] = {1, 1};
        double cy = 0, in = 0;
        for (size_t s = 0; s < c->nsites; s++) {
                double v[2];
                if (!read_group(c->fd_core + 2 * s, one, 1, 1, &v[0]) ||
                    !read_group(c->fd_core + 2 * s + 1, one, 1, 1, &v[1]))
                        return;
                cy += v[0];
                in += v[1];
        }
        ret->cycles = (uint64_t)llround(cy);
        ret->instructions = (uint64_t)llround(in);
        ret->valid = true;
}

double jl_rt_counts_cpi(const jl_rt_counts *a, const jl_rt_counts *b)
{
        if (!a->valid || !b->valid || b->instructions <= a->instructions || b->cycles < a->cycles)
                return NAN;
        return (double)(b->cycles - a->cycles) / (double)(b->instructions - a->instructions);
}

double jl_rt_counts_gbs(const jl_rt_counts *a, const jl_rt_counts *b, double dt_s)
{
        if (!a->mem_valid || !b->mem_valid || !(dt_s > 0) || b->mem_bytes < a->mem_bytes)
                return NAN;
        return (b->mem_bytes - a->mem_bytes) / dt_s / 1e9;
}

double jl_rt_counts_gflops(const jl_rt_counts *a, const jl_rt_counts *b, double dt_s)
{
        if (!a->fp_valid || !b->fp_valid || !(dt_s > 0) || b->flops < a->flops)
                return NAN;
        return (b->flops - a->flops) / dt_s / 1e9;
}

double jl_rt_counts_tpi(const jl_rt_counts *a, const jl_rt_counts *b)
{
        if (!a->mem_valid || !b->mem_valid || !a->valid || !b->valid || b->instructions <= a->instructions ||
            b->mem_bytes < a->mem_bytes)
                return NAN;
        return (b->mem_bytes - a->mem_bytes) / 64.0 / (double)(b->instructions - a->instructions);
}
