/* timeutil.h - clocks (CLOCK_MONOTONIC ns plus one realtime offset), suspend detection, ISO 8601 UTC. */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define NSEC_PER_SEC UINT64_C(1000000000)
#define NSEC_PER_MSEC UINT64_C(1000000)
#define NSEC_PER_USEC UINT64_C(1000)

uint64_t now_ns(clockid_t clock);
static inline uint64_t mono_ns(void)
{
        return now_ns(CLOCK_MONOTONIC);
}

/* The realtime clock minus the monotonic clock, taken once at start: realtime = mono + offset. */
int64_t realtime_offset_ns(void);

/* Format a realtime timestamp (ns since the epoch) as "2026-11-21T10:00:00.123Z"; returns buf. */
char *format_iso8601(uint64_t realtime_ns, char *buf, size_t size);
/* Parse "YYYY-MM-DDTHH:MM:SS[.fff][Z]" (UTC) or "YYYY-MM-DD"; returns 0 or -EINVAL. */
int parse_iso8601(const char *s, uint64_t *ret_realtime_ns);

static inline struct timespec ns_to_timespec(uint64_t ns)
{
        return (struct timespec){.tv_sec = (time_t)(ns / NSEC_PER_SEC), .tv_nsec = (long)(ns % NSEC_PER_SEC)};
}
