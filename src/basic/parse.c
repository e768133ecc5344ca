/* parse.c - strict number, boolean, duration and CPU-list parsers (see parse.h). */
#include "parse.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *skip_space(const char *s)
{
        while (*s && isspace((unsigned char)*s))
                s++;
        return s;
}

static bool only_space(const char *s)
{
        return *skip_space(s) == '\0';
}

int parse_u64(const char *s, uint64_t *ret)
{
        if (!s)
                return -EINVAL;
        s = skip_space(s);
        if (!isdigit((unsigned char)*s))
                return -EINVAL; /* empty, sign or garbage */
        errno = 0;
        char *end;
        unsigned long long v = strtoull(s, &end, 10);
        if (errno == ERANGE)
                return -ERANGE;
        if (end == s || !only_space(end))
                return -EINVAL;
        *ret = (uint64_t)v;
        return 0;
}

int parse_i64(const char *s, int64_t *ret)
{
        if (!s)
                return -EINVAL;
        s = skip_space(s);
        const char *d = s;
        if (*d == '-' || *d == '+')
                d++;
        if (!isdigit((unsigned char)*d))
                return -EINVAL;
        errno = 0;
        char *end;
        long long v = strtoll(s, &end, 10);
        if (errno == ERANGE)
                return -ERANGE;
        if (end == s || !only_space(end))
                return -EINVAL;
        *ret = (int64_t)v;
        return 0;
}

int parse_double(const char *s, double *ret)
{
        if (!s)
                return -EINVAL;
        s = skip_space(s);
        const char *d = s;
        if (*d == '-' || *d == '+')
                d++;
        if (!isdigit((unsigned char)*d) && *d != '.')
                return -EINVAL; /* rejects "nan", "inf", hex floats' prefix is still a digit: see below */
        if (d[0] == '0' && (d[1] == 'x' || d[1] == 'X'))
                return -EINVAL;
        errno = 0;
        char *end;
        double v = strtod(s, &end);
        if (errno == ERANGE || !isfinite(v))
                return -ERANGE;
        if (end == s || !only_space(end))
                return -EINVAL;
        *ret = v;
        return 0;
}

int parse_bool(const char *s, bool *ret)
{
        static const char *const yes[] = {"1", "yes", "true", "on", "y"};
        static const char *const no[] = {"0", "no", "false", "off", "n"};
        if (!s)
                return -EINVAL;
        char buf[16];
        s = skip_space(s);
        size_t n = strlen(s);
        if (n >= sizeof(buf))
                return -EINVAL;
        memcpy(buf, s, n + 1);
        strip_trailing(buf);
        for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
                if (strcasecmp(buf, yes[i]) == 0) {
                        *ret = true;
                        return 0;
                }
        for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
                if (strcasecmp(buf, no[i]) == 0) {
                        *ret = false;
                        return 0;
                }
        return -EINVAL;
}

int parse_duration_ns(const char *s, uint64_t default_unit_ns, uint64_t *ret)
{
        static const struct {
                const char *suffix;
                double ns;
        } units[] = {
                {"ns", 1},          {"us", 1e3},    {"ms", 1e6}, {"s", 1e9}, {"sec", 1e9},
                {"min", 60e9},      {"m", 60e9},    {"h", 3600e9},
        };
        if (!s)
                return -EINVAL;
        s = skip_space(s);
        if (!isdigit((unsigned char)*s) && *s != '.')
                return -EINVAL;
        errno = 0;
        char *end;
        double v = strtod(s, &end);
        if (errno == ERANGE || !isfinite(v) || v < 0)
                return -ERANGE;
        if (end == s)
                return -EINVAL;
        char suffix[8];
        size_t n = 0;
        while (*end && !isspace((unsigned char)*end)) {
                if (n + 1 >= sizeof(suffix))
                        return -EINVAL;
                suffix[n++] = *end++;
        }
        suffix[n] = '\0';
        if (!only_space(end))
                return -EINVAL;
        double unit = (double)default_unit_ns;
        if (n > 0) {
                size_t i;
                for (i = 0; i < sizeof(units) / sizeof(units[0]); i++)
                        if (strcmp(suffix, units[i].suffix) == 0)
                                break;
                if (i == sizeof(units) / sizeof(units[0]))
                        return -EINVAL;
                unit = units[i].ns;
        }
        double ns = v * unit;
        if (ns >= 1.8e19)
                return -ERANGE;
        *ret = (uint64_t)(ns + 0.5);
        return 0;
}

int parse_cpu_list(const char *s, uint64_t *mask, size_t nbits)
{
        if (!s)
                return -EINVAL;
        int count = 0;
        s = skip_space(s);
        if (*s == '\0')
                return 0; /* an empty list is valid: no CPU */
        for (;;) {
                char *end;
                if (!isdigit((unsigned char)*s))
                        return -EINVAL;
                errno = 0;
                unsigned long a = strtoul(s, &end, 10), b = a;
                if (errno)
                        return -ERANGE;
                s = end;
                if (*s == '-') {
                        s++;
                        if (!isdigit((unsigned char)*s))
                                return -EINVAL;
                        b = strtoul(s, &end, 10);
                        if (errno)
                                return -ERANGE;
                        s = end;
                        if (b < a)
                                return -EINVAL;
                }
                if (b >= nbits)
                        return -ERANGE;
                for (unsigned long c = a; c <= b; c++) {
                        if (!(mask[c / 64] & (UINT64_C(1) << (c % 64))))
                                count++;
                        mask[c / 64] |= UINT64_C(1) << (c % 64);
                }
                if (*s == ',') {
                        s++;
                        continue;
                }
                if (!only_space(s))
                        return -EINVAL;
                return count;
        }
}

char *strip_trailing(char *s)
{
        size_t n = strlen(s);
        while (n > 0 && isspace((unsigned char)s[n - 1]))
                s[--n] = '\0';
        return s;
}
