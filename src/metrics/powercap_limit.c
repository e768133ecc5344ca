/* powercap_limit.c - RAPL power limits through the powercap sysfs: read the package zones' constraints,
 * set one, spread a node limit over the packages. */
#include "powercap_limit.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fileio.h"
#include "macro.h"
#include "parse.h"

static int zone_path(char *buf, size_t size, int zone, const char *file)
{
        int n = snprintf(buf, size, JL_POWERCAP_SYSFS "/intel-rapl:%d/%s", zone, file);
        return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

/* intel-rapl:N exactly (no sub-zone, no trailing garbage). */
static int zone_index(const char *name, int *ret)
{
        const char *p = name + strlen("intel-rapl:");
        if (strncmp(name, "intel-rapl:", strlen("intel-rapl:")) != 0 || *p < '0' || *p > '9')
                return -EINVAL;
        uint64_t v;
        if (parse_u64(p, &v) < 0 || v > 1023)
                return -EINVAL;
        *ret = (int)v;
        return 0;
}

static int cmp_zone(const void *a, const void *b)
{
        return ((const jl_powercap_zone *)a)->index - ((const jl_powercap_zone *)b)->index;
}

static int read_zone(int idx, jl_powercap_zone *z)
{
        char path[256];
        *z = (jl_powercap_zone){.index = idx};
        if (zone_path(path, sizeof(path), idx, "name") < 0 ||
            read_line_path(path, z->name, sizeof(z->name)) < 0)
                return -ENOENT;
        for (int k = 0; k < JL_POWERCAP_CONSTRAINTS_MAX; k++) {
                jl_powercap_constraint *c = &z->constraints[z->nconstraints];
                char file[64];
                uint64_t v;
                snprintf(file, sizeof(file), "constraint_%d_power_limit_uw", k);
                if (zone_path(path, sizeof(path), idx, file) < 0 || read_u64_path(path, &v) < 0)
                        break;
                *c = (jl_powercap_constraint){.limit_uw = v};
                snprintf(file, sizeof(file), "constraint_%d_max_power_uw", k);
                if (zone_path(path, sizeof(path), idx, file) == 0 && read_u64_path(path, &v) == 0)
                        c->max_uw = v;
                snprintf(file, sizeof(file), "constraint_%d_name", k);
                if (zone_path(path, sizeof(path), idx, file) < 0 ||
                    read_line_path(path, c->name, sizeof(c->name)) < 0)
                        c->name[0] = '\0';
                z->nconstraints++;
        }
        return 0;
}

int jl_powercap_zones_read(jl_powercap_zone *ret_zones, size_t max)
{
        DIR *d = opendir(JL_POWERCAP_SYSFS);
        if (!d)
                return errno == ENOENT ? 0 : negative_errno();
        size_t n = 0;
        struct dirent *de;
        while ((de = readdir(d)) && n < max) {
                int idx;
                if (zone_index(de->d_name, &idx) < 0)
                        continue;
                if (read_zone(idx, &ret_zones[n]) == 0)
                        n++;
        }
        closedir(d);
        qsort(ret_zones, n, sizeof(*ret_zones), cmp_zone);
        return (int)n;
}

int jl_powercap_zone_set_limit(int zone, int constraint, uint64_t uw)
{
        if (zone < 0 || constraint < 0 || constraint >= JL_POWERCAP_CONSTRAINTS_MAX)
                return -EINVAL;
        char path[256], file[64], text[32];
        uint64_t max;
        snprintf(file, sizeof(file), "constraint_%d_max_power_uw", constraint);
        if (zone_path(path, sizeof(path), zone, file) == 0 && read_u64_path(path, &max) == 0 && max > 0 &&
            uw > max)
                return -EINVAL;
        snprintf(file, sizeof(file), "constraint_%d_power_limit_uw", constraint);
        int r = zone_path(path, sizeof(path), zone, file);
        if (r < 0)
                return r;
        uint64_t cur;
        r = read_u64_path(path, &cur);
        if (r < 0)
                return r == -ENOENT ? -ENOENT : r;
        snprintf(text, sizeof(text), "%" PRIu64 "\n", uw);
        return write_text_path(path, text);
}

int jl_powercap_set_node_limit(double watts)
{
        if (!isfinite(watts) || watts < 0 || watts > 1e6)
                return -EINVAL;
        jl_powercap_zone zones[JL_POWERCAP_ZONES_MAX];
        int n = jl_powercap_zones_read(zones, ARRAY_SIZE(zones));
        if (n < 0)
                return n;
        size_t npkg = 0;
        for (int i = 0; i < n; i++)
                if (strncmp(zones[i].name, "package-", 8) == 0 && zones[i].nconstraints > 0)
                        npkg++;
        if (npkg == 0)
                return -ENODEV;
        uint64_t share_uw = (uint64_t)llround(watts * 1e6 / (double)npkg);
        /* check every package first so that a refused limit changes nothing */
        for (int i = 0; i < n; i++) {
                const jl_powercap_zone *z = &zones[i];
                if (strncmp(z->name, "package-", 8) != 0 || z->nconstraints == 0)
                        continue;
                if (watts > 0 && z->constraints[0].max_uw > 0 && share_uw > z->constraints[0].max_uw)
                        return -ERANGE;
                if (watts == 0 && z->constraints[0].max_uw == 0)
                        return -EOPNOTSUPP; /* nothing to go back to */
        }
        int set = 0;
        for (int i = 0; i < n; i++) {
                const jl_powercap_zone *z = &zones[i];
                if (strncmp(z->name, "package-", 8) != 0 || z->nconstraints == 0)
                        continue;
                int r =
                    jl_powercap_zone_set_limit(z->index, 0, watts > 0 ? share_uw : z->constraints[0].max_uw);
                if (r < 0)
                        return r;
                set++;
        }
        return set;
}
