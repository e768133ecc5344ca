/* rapl_powercap.c - RAPL energy counters through the powercap sysfs (/sys/class/powercap/intel-rapl:*):
 * every package, its sub-zones (core, uncore, dram) and psys, each unwrapped at max_energy_range_uj.
 * Reads the files directly with one pread() per zone on descriptors opened once (see docs/metrics.md for
 * why not libpowercap). AMD CPUs appear under the same control type since Linux 5.8. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fileio.h"
#include "macro.h"
#include "provider.h"

#define POWERCAP "/sys/class/powercap"

typedef struct {
        size_t n;
        int fds[];
} rapl_state;

/* "intel-rapl:0" -> pkg 0, sub -1; "intel-rapl:0:1" -> pkg 0, sub 1. */
static bool parse_zone(const char *d, int *pkg, int *sub)
{
        unsigned a, b;
        char tail;
        if (sscanf(d, "intel-rapl:%u:%u%c", &a, &b, &tail) == 2) {
                *pkg = (int)a;
                *sub = (int)b;
                return true;
        }
        if (sscanf(d, "intel-rapl:%u%c", &a, &tail) == 1) {
                *pkg = (int)a;
                *sub = -1;
                return true;
        }
        return false;
}

static int zone_cmp(const void *a, const void *b)
{
        int pa = 0, sa = -1, pb = 0, sb = -1; /* parse_zone() leaves them as they are on a name it rejects */
        const char *x = *(const char *const *)a, *y = *(const char *const *)b;
        parse_zone(x, &pa, &sa);
        parse_zone(y, &pb, &sb);
        return pa != pb ? pa - pb : sa - sb;
}

/* Channel name and scope from the zone's name file. `parent` is the package's name (for sub-zones). */
static void zone_channel(const char *zname, const char *parent_name, int pkg, bool sub, jl_channel *ch)
{
        int idx = pkg;
        /* Packages are named "package-N" by the kernel; sub-zones take the index of their package. */
        if (parent_name && sscanf(parent_name, "package-%d", &idx) != 1)
                idx = pkg;
        if (!sub) {
                if (strncmp(zname, "package-", 8) == 0) {
                        snprintf(ch->name, sizeof(ch->name), "%s", zname);
                        ch->scope = JL_SCOPE_PACKAGE;
                } else if (strcmp(zname, "psys") == 0) {
                        snprintf(ch->name, sizeof(ch->name), "psys");
                        ch->scope = JL_SCOPE_NODE;
                } else if (strcmp(zname, "dram") == 0) { /* some servers expose dram as a top-level zone */
                        snprintf(ch->name, sizeof(ch->name), "dram-%d", idx);
                        ch->scope = JL_SCOPE_DRAM;
                } else {
                        snprintf(ch->name, sizeof(ch->name), "%.40s-%d", zname, pkg);
                        ch->scope = JL_SCOPE_SUBDOMAIN;
                }
                return;
        }
        snprintf(ch->name, sizeof(ch->name), "%.40s-%d", zname, idx);
        ch->scope = strcmp(zname, "dram") == 0 ? JL_SCOPE_DRAM : JL_SCOPE_SUBDOMAIN;
}

/* The highest constraint_N_max_power_uw of a zone in W (the hardware's own statement of the most the domain
 * can draw), or 0 when the zone states none. Garbage or a missing file is no error: the sampler then
 * schedules by the power it observes. */
static double zone_max_power_w(const char *zone)
{
        uint64_t max_uw = 0;
        for (int k = 0; k < 8; k++) {
                char path[512];
                uint64_t uw;
                snprintf(path, sizeof(path), POWERCAP "/%s/constraint_%d_max_power_uw", zone, k);
                if (read_u64_path(path, &uw) == 0)
                        max_uw = MAX(max_uw, uw);
        }
        return (double)max_uw / 1e6;
}

static int rapl_open(const jl_provider_config *cfg, jl_channels *channels, jl_notes *notes, void **ret_state)
{
        (void)cfg;
        DIR *d = opendir(POWERCAP);
        if (!d)
                return jl_notes_add(notes, "rapl", -errno,
                                    "%s missing: no powercap support in this kernel, or a VM without RAPL",
                                    POWERCAP),
                       -ENOENT;

        char *zones[256];
        size_t nz = 0;
        struct dirent *de;
        while ((de = readdir(d)) && nz < ARRAY_SIZE(zones)) {
                int pkg, sub;
                if (parse_zone(de->d_name, &pkg, &sub))
                        zones[nz++] = strdup(de->d_name);
        }
        closedir(d);
        for (size_t i = 0; i < nz; i++)
                if (!zones[i]) {
                        for (size_t k = 0; k < nz; k++)
                                free(zones[k]);
                        return -ENOMEM;
                }
        if (nz == 0) {
                jl_notes_add(notes, "rapl", -ENOENT,
                             "no intel-rapl zones under %s: not an Intel/AMD CPU with RAPL, or the driver is "
                             "not loaded (modprobe intel_rapl_msr)",
                             POWERCAP);
                return -ENOENT;
        }
        qsort(zones, nz, sizeof(zones[0]), zone_cmp);

        rapl_state *st = calloc(1, sizeof(*st) + nz * sizeof(int));
        if (!st) {
                for (size_t k = 0; k < nz; k++)
                        free(zones[k]);
                return -ENOMEM;
        }
        int r = 0;
        char path[512], zname[64], parent_name[64] = "";
        for (size_t i = 0; i < nz; i++) {
                int pkg = 0, sub = -1;
                parse_zone(zones[i], &pkg, &sub);
                snprintf(path, sizeof(path), POWERCAP "/%s/name", zones[i]);
                r = read_line_path(path, zname, sizeof(zname));
                if (r <= 0) {
                        r = r == 0 ? -ENODATA : r;
                        jl_notes_add(notes, "rapl", r, "%s: cannot read the zone's name: %s", zones[i],
                                     jl_errno_hint(r));
                        continue;
                }
                if (sub < 0)
                        snprintf(parent_name, sizeof(parent_name), "%s", zname);

                jl_channel ch = {.provider = "rapl", .kind = JL_KIND_ENERGY};
                zone_channel(zname, sub >= 0 ? parent_name : NULL, pkg, sub >= 0, &ch);
                char subject[JL_NAME_MAX + 8];
                snprintf(subject, sizeof(subject), "rapl/%s", ch.name);

                uint64_t range, now;
                snprintf(path, sizeof(path), POWERCAP "/%s/max_energy_range_uj", zones[i]);
                r = read_u64_path(path, &range);
                if (r == 0 && range == 0)
                        r = -ERANGE;
                if (r < 0) {
                        jl_notes_add(notes, subject, r, "%s: %s", path, jl_errno_hint(r));
                        continue;
                }
                snprintf(path, sizeof(path), POWERCAP "/%s/energy_uj", zones[i]);
                int fd = open_ro(path);
                if (fd < 0) {
                        if (fd == -EACCES || fd == -EPERM)
                                jl_notes_add(notes, subject, fd,
                                             "%s: permission denied: energy_uj is readable by root only "
                                             "since the 2020 RAPL side-channel fix (CVE-2020-8694); run as "
                                             "root, use jouled, or grant read access with a udev rule",
                                             path);
                        else
                                jl_notes_add(notes, subject, fd, "%s: %s", path, jl_errno_hint(fd));
                        continue;
                }
                r = read_u64_fd(fd, &now);
                if (r == 0 && now > range)
                        r = -ERANGE;
                if (r < 0) {
                        jl_notes_add(notes, subject, r, "%s: %s", path, jl_errno_hint(r));
                        close(fd);
                        continue;
                }
                ch.wrap_uj = range;
                ch.max_power_w = zone_max_power_w(zones[i]);
                r = jl_channels_add(channels, &ch);
                if (r < 0) {
                        close(fd);
                        break;
                }
                st->fds[st->n++] = fd;
        }
        for (size_t k = 0; k < nz; k++)
                free(zones[k]);
        if (r == -ENOMEM || st->n == 0) {
                for (size_t k = 0; k < st->n; k++)
                        close(st->fds[k]);
                free(st);
                if (r != -ENOMEM)
                        jl_notes_add(notes, "rapl", -ENODEV, "no readable RAPL zone (see the notes above)");
                return r == -ENOMEM ? r : -ENODEV;
        }
        *ret_state = st;
        return 0;
}

static int rapl_read(void *state, jl_value *values)
{
        rapl_state *st = state;
        for (size_t i = 0; i < st->n; i++)
                values[i].err = read_u64_fd(st->fds[i], &values[i].counter);
        return 0;
}

static void rapl_close(void *state)
{
        rapl_state *st = state;
        if (!st)
                return;
        for (size_t i = 0; i < st->n; i++)
                close(st->fds[i]);
        free(st);
}

const jl_provider_ops jl_provider_rapl = {
        .name = "rapl",
        .description = "RAPL energy counters through the powercap sysfs",
        .open = rapl_open,
        .read = rapl_read,
        .close = rapl_close,
};
