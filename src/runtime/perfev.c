/* perfev.c - parsers of the kernel's perf PMU descriptions in sysfs and their encoding (perfev.h). */
#include "perfev.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "fileio.h"
#include "macro.h"
#include "parse.h"

/* Copies text into buf without trailing whitespace (sysfs values end in '\n'). -EINVAL when empty,
 * -E2BIG when it does not fit. */
static int copy_stripped(const char *text, char *buf, size_t size)
{
        size_t n = strlen(text);
        while (n > 0 && isspace((unsigned char)text[n - 1]))
                n--;
        if (n == 0)
                return -EINVAL;
        if (n >= size)
                return -E2BIG;
        memcpy(buf, text, n);
        buf[n] = 0;
        return 0;
}

/* A bit number: 1-2 decimal digits. */
static int parse_bit(const char *s, size_t len, unsigned *ret)
{
        if (len == 0 || len > 3)
                return len ? -ERANGE : -EINVAL;
        unsigned v = 0;
        for (size_t i = 0; i < len; i++) {
                if (!isdigit((unsigned char)s[i]))
                        return -EINVAL;
                v = v * 10 + (unsigned)(s[i] - '0');
        }
        if (v > 63)
                return -ERANGE;
        *ret = v;
        return 0;
}

static int parse_field(const char *s, size_t len, unsigned *ret)
{
        if (len == 6 && memcmp(s, "config", 6) == 0)
                *ret = 0;
        else if (len == 7 && memcmp(s, "config1", 7) == 0)
                *ret = 1;
        else if (len == 7 && memcmp(s, "config2", 7) == 0)
                *ret = 2;
        else
                return -EINVAL;
        return 0;
}

int jl_pe_format_parse(const char *text, unsigned *ret_field, uint64_t *ret_mask)
{
        char buf[JL_PE_TEXT_MAX];
        int r = copy_stripped(text, buf, sizeof(buf));
        if (r < 0)
                return r == -E2BIG ? -EINVAL : r;
        char *colon = strchr(buf, ':');
        if (!colon)
                return -EINVAL;
        unsigned field;
        if (parse_field(buf, (size_t)(colon - buf), &field) < 0)
                return -EINVAL;
        uint64_t mask = 0;
        const char *p = colon + 1;
        for (;;) {
                size_t len = strcspn(p, ",");
                const char *dash = memchr(p, '-', len);
                unsigned lo, hi;
                if (dash) {
                        if ((r = parse_bit(p, (size_t)(dash - p), &lo)) < 0 ||
                            (r = parse_bit(dash + 1, len - (size_t)(dash - p) - 1, &hi)) < 0)
                                return r;
                } else {
                        if ((r = parse_bit(p, len, &lo)) < 0)
                                return r;
                        hi = lo;
                }
                if (lo > hi)
                        return -EINVAL;
                uint64_t m =
                    (hi == 63 ? ~UINT64_C(0) : (UINT64_C(1) << (hi + 1)) - 1) & ~((UINT64_C(1) << lo) - 1);
                if (mask & m)
                        return -EINVAL;
                mask |= m;
                if (p[len] == 0)
                        break;
                p += len + 1;
        }
        *ret_field = field;
        *ret_mask = mask;
        return 0;
}

/* A term's value: decimal or 0x-hexadecimal, 64 bits. */
static int parse_value(const char *s, uint64_t *ret)
{
        if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
                const char *h = s + 2;
                size_t n = strlen(h);
                if (n == 0 || strspn(h, "0123456789abcdefABCDEF") != n)
                        return -EINVAL;
                while (n > 1 && *h == '0')
                        h++, n--;
                if (n > 16)
                        return -ERANGE;
                *ret = strtoull(h, NULL, 16);
                return 0;
        }
        if (!isdigit((unsigned char)s[0]))
                return -EINVAL;
        return parse_u64(s, ret);
}

/* Spreads v over the set bits of mask, lowest first (perf's pmu_format_value). -ERANGE when v has more
 * significant bits than the mask has bits. */
static int deposit(uint64_t v, uint64_t mask, uint64_t *ret)
{
        uint64_t out = 0;
        for (unsigned b = 0; b < 64; b++) {
                if (!(mask & (UINT64_C(1) << b)))
                        continue;
                if (v & 1)
                        out |= UINT64_C(1) << b;
                v >>= 1;
        }
        if (v)
                return -ERANGE;
        *ret = out;
        return 0;
}

#define TERMS_MAX 32

int jl_pe_encode(const jl_pe_pmu *pmu, const char *terms, uint64_t ret_config[3])
{
        char buf[JL_PE_TEXT_MAX];
        int r = copy_stripped(terms, buf, sizeof(buf));
        if (r < 0)
                return r == -E2BIG ? -EINVAL : r;
        uint64_t cfg[3] = {0, 0, 0};
        const char *seen[TERMS_MAX];
        size_t nseen = 0;
        char *p = buf;
        for (;;) {
                size_t len = strcspn(p, ",");
                bool last = p[len] == 0;
                p[len] = 0;
                char *eq = strchr(p, '=');
                if (eq)
                        *eq = 0;
                size_t nlen = strlen(p);
                if (nlen == 0 || nlen >= JL_PE_NAME_MAX ||
                    strspn(p, "abcdefghijklmnopqrstuvwxyz0123456789_") != nlen)
                        return -EINVAL;
                for (size_t i = 0; i < nseen; i++)
                        if (strcmp(seen[i], p) == 0)
                                return -EINVAL;
                if (nseen == TERMS_MAX)
                        return -EINVAL;
                seen[nseen++] = p;
                uint64_t v = 1;
                if (eq && (r = parse_value(eq + 1, &v)) < 0)
                        return r;
                unsigned field;
                if (parse_field(p, nlen, &field) == 0) {
                        cfg[field] |= v;
                } else {
                        const jl_pe_format *f = NULL;
                        for (size_t i = 0; i < pmu->nformats && !f; i++)
                                if (strcmp(pmu->formats[i].name, p) == 0)
                                        f = &pmu->formats[i];
                        if (!f)
                                return -ENOENT;
                        uint64_t bits;
                        if ((r = deposit(v, f->mask, &bits)) < 0)
                                return r;
                        cfg[f->field] |= bits;
                }
                if (last)
                        break;
                p += len + 1;
        }
        memcpy(ret_config, cfg, sizeof(cfg));
        return 0;
}

int jl_pe_scale_parse(const char *text, double *ret)
{
        char buf[64];
        double v;
        if (copy_stripped(text, buf, sizeof(buf)) < 0 || parse_double(buf, &v) < 0 || !isfinite(v) || v <= 0)
                return -EINVAL;
        *ret = v;
        return 0;
}

int jl_pe_unit_parse(const char *text, char *ret, size_t size)
{
        char buf[16];
        if (copy_stripped(text, buf, sizeof(buf)) < 0)
                return -EINVAL;
        for (const char *c = buf; *c; c++)
                if (!isalpha((unsigned char)*c) && *c != '/' && *c != '%')
                        return -EINVAL;
        if (strlen(buf) >= size)
                return -EINVAL;
        strcpy(ret, buf);
        return 0;
}

int jl_pe_cpumask_parse(const char *text, int *cpus, size_t max)
{
        uint64_t mask[JL_PE_CPU_BITS / 64];
        memset(mask, 0, sizeof(mask));
        int r = parse_cpu_list(text, mask, JL_PE_CPU_BITS);
        if (r < 0)
                return r;
        if (r == 0)
                return -EINVAL;
        if ((size_t)r > max)
                return -E2BIG;
        size_t n = 0;
        for (int c = 0; c < JL_PE_CPU_BITS; c++)
                if (mask[c / 64] & (UINT64_C(1) << (c % 64)))
                        cpus[n++] = c;
        return (int)n;
}

static bool name_ok(const char *name)
{
        size_t n = strlen(name);
        return n > 0 && n < JL_PE_NAME_MAX && !strchr(name, '/') && strcmp(name, ".") != 0 &&
               strcmp(name, "..") != 0;
}

static void closedirp(DIR **d)
{
        if (*d)
                closedir(*d);
}

int jl_pe_pmu_load(const char *root, const char *name, jl_pe_pmu *ret)
{
        char path[4096], text[JL_PE_TEXT_MAX];
        int r;
        if (!name_ok(name))
                return -EINVAL;
        _cleanup_free_ jl_pe_pmu *pmu = calloc(1, sizeof(*pmu));
        if (!pmu)
                return -ENOMEM;
        snprintf(pmu->name, sizeof(pmu->name), "%s", name);

        uint64_t type;
        snprintf(path, sizeof(path), "%s/%s/type", root, name);
        if ((r = read_u64_path(path, &type)) < 0)
                return r;
        if (type > UINT32_MAX)
                return -ERANGE;
        pmu->type = (uint32_t)type;

        snprintf(path, sizeof(path), "%s/%s/cpumask", root, name);
        r = read_text_path(path, text, sizeof(text));
        if (r >= 0) {
                if ((r = jl_pe_cpumask_parse(text, pmu->cpus, JL_PE_CPUS_MAX)) < 0)
                        return r;
                pmu->ncpus = (size_t)r;
        } else if (r != -ENOENT)
                return r;

        snprintf(path, sizeof(path), "%s/%s/format", root, name);
        _cleanup_(closedirp) DIR *d = opendir(path);
        if (!d && errno != ENOENT)
                return -errno;
        for (struct dirent *de; d && (de = readdir(d));) {
                if (de->d_name[0] == '.')
                        continue;
                if (pmu->nformats == JL_PE_FORMATS_MAX)
                        return -E2BIG;
                jl_pe_format *f = &pmu->formats[pmu->nformats];
                if (!name_ok(de->d_name))
                        return -EINVAL;
                memcpy(f->name, de->d_name, strlen(de->d_name) + 1); /* name_ok: it fits */
                snprintf(path, sizeof(path), "%s/%s/format/%s", root, name, de->d_name);
                if ((r = read_text_path(path, text, sizeof(text))) < 0)
                        return r == -EFBIG ? -EINVAL : r;
                if ((r = jl_pe_format_parse(text, &f->field, &f->mask)) < 0)
                        return r;
                pmu->nformats++;
        }
        *ret = *pmu;
        return 0;
}

int jl_pe_event_load(const char *root, const jl_pe_pmu *pmu, const char *event, jl_pe_event *ret)
{
        char path[4096], text[JL_PE_TEXT_MAX];
        int r;
        if (!name_ok(event))
                return -EINVAL;
        jl_pe_event e = {.type = pmu->type, .scale = 1};
        snprintf(path, sizeof(path), "%s/%s/events/%s", root, pmu->name, event);
        if ((r = read_text_path(path, text, sizeof(text))) < 0)
                return r == -EFBIG ? -EINVAL : r;
        if ((r = jl_pe_encode(pmu, text, e.config)) < 0)
                return r;
        snprintf(path, sizeof(path), "%s/%s/events/%s.scale", root, pmu->name, event);
        r = read_text_path(path, text, sizeof(text));
        if (r >= 0 && (r = jl_pe_scale_parse(text, &e.scale)) < 0)
                return r;
        if (r < 0 && r != -ENOENT)
                return r == -EFBIG ? -EINVAL : r;
        snprintf(path, sizeof(path), "%s/%s/events/%s.unit", root, pmu->name, event);
        r = read_text_path(path, text, sizeof(text));
        if (r >= 0 && (r = jl_pe_unit_parse(text, e.unit, sizeof(e.unit))) < 0)
                return r;
        if (r < 0 && r != -ENOENT)
                return r == -EFBIG ? -EINVAL : r;
        *ret = e;
        return 0;
}

static int cmp_names(const void *a, const void *b)
{
        return strverscmp((const char *)a, (const char *)b);
}

int jl_pe_pmu_list(const char *root, const char *prefix, char (*names)[JL_PE_NAME_MAX], size_t max)
{
        _cleanup_(closedirp) DIR *d = opendir(root);
        if (!d)
                return -errno;
        size_t n = 0, plen = strlen(prefix);
        for (struct dirent *de; (de = readdir(d)) && n < max;) {
                if (de->d_name[0] == '.' || strncmp(de->d_name, prefix, plen) != 0 || !name_ok(de->d_name))
                        continue;
                memcpy(names[n++], de->d_name, strlen(de->d_name) + 1); /* name_ok: it fits */
        }
        qsort(names, n, JL_PE_NAME_MAX, cmp_names);
        return (int)n;
}

/* The value of "key<spaces/tabs>: value" when line's key is key; NULL otherwise. */
static const char *cpuinfo_value(const char *line, const char *key)
{
        size_t n = strlen(key);
        if (strncmp(line, key, n) != 0)
                return NULL;
        line += n;
        line += strspn(line, " \t");
        if (*line != ':')
                return NULL;
        line++;
        return line + strspn(line, " \t");
}

int jl_pe_cpuinfo_parse(const char *text, jl_pe_cpuid *ret)
{
        jl_pe_cpuid id = {.vendor = ""};
        bool fam = false, mod = false;
        for (const char *line = text; line && *line;) {
                const char *nl = strchr(line, '\n');
                size_t len = nl ? (size_t)(nl - line) : strlen(line);
                if (len == 0 && (id.vendor[0] || fam || mod))
                        break; /* the end of the first processor's block */
                char l[256];
                if (len < sizeof(l)) {
                        memcpy(l, line, len);
                        l[len] = 0;
                        const char *v;
                        uint64_t u;
                        if ((v = cpuinfo_value(l, "vendor_id"))) {
                                size_t vl = strlen(v);
                                if (vl == 0 || vl >= sizeof(id.vendor))
                                        return -EINVAL;
                                memcpy(id.vendor, v, vl + 1);
                        } else if ((v = cpuinfo_value(l, "cpu family"))) {
                                if (parse_u64(v, &u) < 0 || u > 0xffff)
                                        return -EINVAL;
                                id.family = (unsigned)u;
                                fam = true;
                        } else if ((v = cpuinfo_value(l, "model"))) {
                                if (parse_u64(v, &u) < 0 || u > 0xffff)
                                        return -EINVAL;
                                id.model = (unsigned)u;
                                mod = true;
                        }
                }
                line = nl ? nl + 1 : NULL;
        }
        if (!id.vendor[0] || !fam || !mod)
                return -ENOENT;
        *ret = id;
        return 0;
}
