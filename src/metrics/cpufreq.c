/* cpufreq.c - the "cpufreq" provider: the current frequency of every online CPU (kHz) from
 * /sys/devices/system/cpu/cpuN/cpufreq/scaling_cur_freq (cpuinfo_cur_freq where that is missing), one
 * pread() per CPU on descriptors opened once. A CPU that goes offline mid-run reports an error on its
 * channel. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cputopo.h"
#include "fileio.h"
#include "macro.h"
#include "provider.h"
#include "timeutil.h"

/* Above 100 GHz a frequency is garbage. */
#define FREQ_KHZ_MAX UINT64_C(100000000)

typedef struct {
        size_t n;
        int fds[];
} cpufreq_state;

static int read_khz_fd(int fd, uint64_t *ret)
{
        uint64_t v;
        int r = read_u64_fd(fd, &v);
        if (r < 0)
                return r;
        if (v == 0 || v > FREQ_KHZ_MAX)
                return -ERANGE;
        *ret = v;
        return 0;
}

static void cpufreq_close(void *state)
{
        cpufreq_state *st = state;
        if (!st)
                return;
        for (size_t i = 0; i < st->n; i++)
                close(st->fds[i]);
        free(st);
}

/* Open the CPU's frequency file: scaling_cur_freq, else cpuinfo_cur_freq (root only on most drivers). */
static int open_cpu(int cpu, jl_notes *notes, bool *ret_has_cpufreq)
{
        char path[128], subject[JL_NAME_MAX];
        snprintf(subject, sizeof(subject), "cpufreq/cpu%d", cpu);
        snprintf(path, sizeof(path), JL_CPU_SYSFS "/cpu%d/cpufreq", cpu);
        if (access(path, F_OK) < 0) {
                *ret_has_cpufreq = false;
                return -ENOENT;
        }
        *ret_has_cpufreq = true;
        snprintf(path, sizeof(path), JL_CPU_SYSFS "/cpu%d/cpufreq/scaling_cur_freq", cpu);
        int fd = open_ro(path);
        if (fd == -ENOENT) {
                snprintf(path, sizeof(path), JL_CPU_SYSFS "/cpu%d/cpufreq/cpuinfo_cur_freq", cpu);
                fd = open_ro(path);
        }
        if (fd < 0) {
                jl_notes_add(notes, subject, fd, "%s: %s", path, jl_errno_hint(fd));
                return fd;
        }
        uint64_t khz;
        int r = read_khz_fd(fd, &khz);
        if (r < 0) {
                jl_notes_add(notes, subject, r, "%s: %s", path, jl_errno_hint(r));
                close(fd);
                return r;
        }
        return fd;
}

static int cpufreq_open(const jl_provider_config *cfg, jl_channels *channels, jl_notes *notes,
                        void **ret_state)
{
        (void)cfg;
        uint64_t mask[JL_CPU_MASK_WORDS];
        int ncpu = jl_cpu_online_mask(mask);
        if (ncpu < 0) {
                jl_notes_add(notes, "cpufreq", ncpu, JL_CPU_SYSFS "/online: %s", jl_errno_hint(ncpu));
                return ncpu;
        }
        cpufreq_state *st = calloc(1, sizeof(*st) + (size_t)ncpu * sizeof(int));
        if (!st)
                return -ENOMEM;
        size_t before = channels->n;
        bool any_cpufreq = false;
        int r = 0;
        for (int c = 0; c < JL_CPU_MAX; c++) {
                if (!jl_cpu_mask_test(mask, c))
                        continue;
                bool has;
                int fd = open_cpu(c, notes, &has);
                any_cpufreq |= has;
                if (fd < 0)
                        continue;
                jl_channel ch = {.provider = "cpufreq", .kind = JL_KIND_FREQUENCY, .scope = JL_SCOPE_OTHER};
                snprintf(ch.name, sizeof(ch.name), "cpu%d", c);
                r = jl_channels_add(channels, &ch);
                if (r < 0) {
                        close(fd);
                        break;
                }
                st->fds[st->n++] = fd;
        }
        if (r < 0 || st->n == 0) {
                channels->n = before;
                cpufreq_close(st);
                if (r < 0)
                        return r;
                if (!any_cpufreq) {
                        jl_notes_add(
                            notes, "cpufreq", -ENOENT,
                            "no cpufreq: the kernel has no cpufreq driver for this CPU (a VM?), or load "
                            "acpi-cpufreq/intel_pstate");
                        return -ENOENT;
                }
                jl_notes_add(notes, "cpufreq", -ENODEV, "no readable CPU frequency (see the notes above)");
                return -ENODEV;
        }
        *ret_state = st;
        return 0;
}

static int cpufreq_read(void *state, jl_value *values)
{
        cpufreq_state *st = state;
        for (size_t i = 0; i < st->n; i++) {
                uint64_t khz;
                values[i].err = read_khz_fd(st->fds[i], &khz);
                if (values[i].err == 0)
                        values[i].gauge = (double)khz;
        }
        return 0;
}

const jl_provider_ops jl_provider_cpufreq = {
    .name = "cpufreq",
    .description = "CPU frequencies through the cpufreq sysfs (scaling_cur_freq)",
    .min_period_ns = 500 * NSEC_PER_MSEC, /* slow gauges: read twice a second on ticks */
    .open = cpufreq_open,
    .read = cpufreq_read,
    .close = cpufreq_close,
};
