/* timeutil.c - clock helpers and ISO 8601 formatting/parsing in UTC (see timeutil.h). */
#include "timeutil.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

uint64_t now_ns(clockid_t clock)
{
        struct timespec ts;
        if (clock_gettime(clock, &ts) < 0)
                return 0;
        return (uint64_t)ts.tv_sec * NSEC_PER_SEC + (uint64_t)ts.tv_nsec;
}

int64_t realtime_offset_ns(void)
{
        uint64_t m0 = now_ns(CLOCK_MONOTONIC);
        uint64_t r = now_ns(CLOCK_REALTIME);
        uint64_t m1 = now_ns(CLOCK_MONOTONIC);
        return (int64_t)r - (int64_t)(m0 + (m1 - m0) / 2);
}

char *format_iso8601(uint64_t realtime_ns, char *buf, size_t size)
{
        time_t sec = (time_t)(realtime_ns / NSEC_PER_SEC);
        unsigned ms = (unsigned)((realtime_ns % NSEC_PER_SEC) / NSEC_PER_MSEC);
        struct tm tm;
        if (!gmtime_r(&sec, &tm)) {
                snprintf(buf, size, "invalid");
                return buf;
        }
        snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03uZ", tm.tm_year + 1900, tm.tm_mon + 1,
                 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
        return buf;
}

int parse_iso8601(const char *s, uint64_t *ret_realtime_ns)
{
        struct tm tm = {0};
        int n = 0;
        double frac = 0;
        if (sscanf(s, "%4d-%2d-%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &n) != 3 || n != 10)
                return -EINVAL;
        const char *p = s + n;
        if (*p == 'T' || *p == ' ') {
                int m = 0;
                if (sscanf(p + 1, "%2d:%2d:%2d%n", &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &m) != 3 || m != 8)
                        return -EINVAL;
                p += 1 + m;
                if (*p == '.') {
                        char *end;
                        frac = strtod(p, &end);
                        p = end;
                }
                if (*p == 'Z')
                        p++;
                else if (strncmp(p, "+00:00", 6) == 0)
                        p += 6;
        }
        if (*p != '\0')
                return -EINVAL;
        if (tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 ||
            tm.tm_min > 59 || tm.tm_sec > 60 || tm.tm_year < 1970)
                return -EINVAL;
        tm.tm_year -= 1900;
        tm.tm_mon -= 1;
        time_t t = timegm(&tm);
        if (t < 0)
                return -EINVAL;
        *ret_realtime_ns = (uint64_t)t * NSEC_PER_SEC + (uint64_t)(frac * 1e9);
        return 0;
}
