/* counters.c - perf_event_open counters of the process (counters.h). */
#include "counters.h"

#include <errno.h>
#include <linux/perf_event.h>
#include <math.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

static int open_one(uint64_t config)
{
        struct perf_event_attr a;
        memset(&a, 0, sizeof(a));
        a.type = PERF_TYPE_HARDWARE;
        a.size = sizeof(a);
        a.config = config;
        a.inherit = 1;
        a.exclude_hv = 1;
        a.exclude_kernel = 1; /* allowed at perf_event_paranoid 2 */
        long fd = syscall(SYS_perf_event_open, &a, 0 /* this process */, -1 /* any CPU */, -1,
                          PERF_FLAG_FD_CLOEXEC);
        return fd < 0 ? -errno : (int)fd;
}

int jl_rt_counters_open(jl_rt_counters *c)
{
        c->fd_cycles = c->fd_instr = -1;
        int a = open_one(PERF_COUNT_HW_CPU_CYCLES);
        if (a < 0)
                return a;
        int b = open_one(PERF_COUNT_HW_INSTRUCTIONS);
        if (b < 0) {
                close(a);
                return b;
        }
        c->fd_cycles = a;
        c->fd_instr = b;
        return 0;
}

void jl_rt_counters_close(jl_rt_counters *c)
{
        if (c->fd_cycles >= 0)
                close(c->fd_cycles);
        if (c->fd_instr >= 0)
                close(c->fd_instr);
        c->fd_cycles = c->fd_instr = -1;
}

void jl_rt_counters_read(const jl_rt_counters *c, jl_rt_counts *ret)
{
        uint64_t cy, in;
        *ret = (jl_rt_counts){0};
        if (!c || c->fd_cycles < 0 || c->fd_instr < 0)
                return;
        if (read(c->fd_cycles, &cy, sizeof(cy)) != (ssize_t)sizeof(cy) ||
            read(c->fd_instr, &in, sizeof(in)) != (ssize_t)sizeof(in))
                return;
        *ret = (jl_rt_counts){.cycles = cy, .instructions = in, .valid = true};
}

double jl_rt_counts_cpi(const jl_rt_counts *a, const jl_rt_counts *b)
{
        if (!a->valid || !b->valid || b->instructions <= a->instructions || b->cycles < a->cycles)
                return NAN;
        return (double)(b->cycles - a->cycles) / (double)(b->instructions - a->instructions);
}
