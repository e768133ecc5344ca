/* rt-core.c - what every runtime build shares: the event entry point, per-call counts, the set of distinct
 * events and the summary line. Counters are relaxed atomics. A read-modify-write (a locked instruction,
 * most of the interception's cost) only where MPI_THREAD_MULTIPLE lets threads call MPI at once; otherwise
 * one thread calls at a time and a relaxed load and store suffice. On the node master each event also goes
 * to the manager (manage.c: loop detection, signatures, the policy) through the event hook. */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "event.h"
#include "runtime.h"

#define EVENT_SET_SIZE 4096u /* a power of two */

int jl_rt_verbose;
static bool threaded;
/* the node master's manager (manage.c), set once it starts */
static void (*event_hook)(uint32_t event_id);

void jl_rt_set_event_hook(void (*hook)(uint32_t event_id))
{
        __atomic_store_n(&event_hook, hook, __ATOMIC_RELEASE);
}

static uint64_t counts[JL_MPI_NCALLS];
/* open addressing on event id + 1 (0: empty); full: new ids are no longer recorded */
static uint32_t event_set[EVENT_SET_SIZE];
static unsigned event_set_used;

static void event_set_add(uint32_t event_id)
{
        uint32_t key = event_id + 1u, h = (event_id * 2654435761u) & (EVENT_SET_SIZE - 1u);

        if (key == 0)
                return;
        for (unsigned probe = 0; probe < 64; probe++, h = (h + 1u) & (EVENT_SET_SIZE - 1u)) {
                uint32_t cur = __atomic_load_n(&event_set[h], __ATOMIC_RELAXED);
                if (cur == key)
                        return;
                if (cur == 0) {
                        uint32_t expected = 0;
                        if (__atomic_compare_exchange_n(&event_set[h], &expected, key, false,
                                                        __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
                                __atomic_fetch_add(&event_set_used, 1u, __ATOMIC_RELAXED);
                                return;
                        }
                        if (expected == key)
                                return;
                }
        }
}

void jl_rt_event(uint32_t event_id, enum jl_mpi_call call)
{
        if ((unsigned)call >= JL_MPI_NCALLS)
                return;
        if (__atomic_load_n(&threaded, __ATOMIC_RELAXED))
                __atomic_fetch_add(&counts[call], 1u, __ATOMIC_RELAXED);
        else
                __atomic_store_n(&counts[call], __atomic_load_n(&counts[call], __ATOMIC_RELAXED) + 1u,
                                 __ATOMIC_RELAXED);
        event_set_add(event_id);
        void (*hook)(uint32_t) = __atomic_load_n(&event_hook, __ATOMIC_ACQUIRE);
        if (hook)
                hook(event_id);
}

void jl_rt_set_threaded(bool on)
{
        __atomic_store_n(&threaded, on, __ATOMIC_RELAXED);
}

bool jl_rt_threaded(void)
{
        return __atomic_load_n(&threaded, __ATOMIC_RELAXED);
}

uint64_t jl_rt_count(enum jl_mpi_call call)
{
        return (unsigned)call < JL_MPI_NCALLS ? __atomic_load_n(&counts[call], __ATOMIC_RELAXED) : 0;
}

uint64_t jl_rt_count_total(void)
{
        uint64_t total = 0;
        for (unsigned i = 0; i < JL_MPI_NCALLS; i++)
                total += __atomic_load_n(&counts[i], __ATOMIC_RELAXED);
        return total;
}

unsigned jl_rt_distinct_events(void)
{
        return __atomic_load_n(&event_set_used, __ATOMIC_RELAXED);
}

size_t jl_rt_format_counts(char *buf, size_t size)
{
        size_t len = 0;

        if (size == 0)
                return 0;
        buf[0] = '\0';
        for (unsigned i = 0; i < JL_MPI_NCALLS; i++) {
                uint64_t n = jl_rt_count((enum jl_mpi_call)i);
                if (n == 0)
                        continue;
                int r = snprintf(buf + len, size - len, "%s%s %llu", len ? ", " : "",
                                 jl_mpi_call_info[i].name, (unsigned long long)n);
                if (r < 0 || (size_t)r >= size - len) {
                        buf[len] = '\0';
                        break;
                }
                len += (size_t)r;
        }
        return len;
}

void jl_rt_say(const char *fmt, ...)
{
        char line[8192];
        va_list ap;
        int n;

        n = snprintf(line, sizeof(line) - 1, "joule: %s[%ld]: ", program_invocation_short_name,
                     (long)getpid());
        if (n < 0 || (size_t)n >= sizeof(line) - 1)
                return;
        va_start(ap, fmt);
        vsnprintf(line + n, sizeof(line) - 1 - (size_t)n, fmt, ap);
        va_end(ap);
        n = (int)strlen(line);
        line[n++] = '\n';
        /* one write, so that the lines of many ranks do not interleave */
        if (write(STDERR_FILENO, line, (size_t)n) < 0)
                return;
}
