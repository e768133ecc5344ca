/* provider.c - helpers shared by all providers: channel and note lists, names, errno hints, registry. */
#include "provider.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int grow(void **items, size_t *cap, size_t n, size_t size)
{
        if (n < *cap)
                return 0;
        size_t ncap = *cap ? *cap * 2 : 8;
        void *p = realloc(*items, ncap * size);
        if (!p)
                return -ENOMEM;
        *items = p;
        *cap = ncap;
        return 0;
}

int jl_channels_add(jl_channels *c, const jl_channel *ch)
{
        int r = grow((void **)&c->items, &c->cap, c->n, sizeof(*c->items));
        if (r < 0)
                return r;
        c->items[c->n++] = *ch;
        return 0;
}

void jl_channels_free(jl_channels *c)
{
        free(c->items);
        *c = (jl_channels){0};
}

int jl_notes_add(jl_notes *n, const char *subject, int err, const char *fmt, ...)
{
        int r = grow((void **)&n->items, &n->cap, n->n, sizeof(*n->items));
        if (r < 0)
                return r;
        jl_note *note = &n->items[n->n++];
        memset(note, 0, sizeof(*note));
        snprintf(note->subject, sizeof(note->subject), "%s", subject);
        note->err = err;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(note->reason, sizeof(note->reason), fmt, ap);
        va_end(ap);
        return 0;
}

void jl_notes_free(jl_notes *n)
{
        free(n->items);
        *n = (jl_notes){0};
}

void jl_provider_config_default(jl_provider_config *cfg)
{
        *cfg = (jl_provider_config){
                .pid = 0,
                .estimate_idle_w = 10.0,
                .estimate_max_w = 100.0,
                .hwmon_sensors = NULL,
        };
}

const char *jl_errno_hint(int err)
{
        switch (err < 0 ? -err : err) {
        case ENOENT:
                return "not present on this machine";
        case EACCES:
        case EPERM:
                return "permission denied: run as root (or grant read access)";
        case ENODATA:
                return "the file is empty";
        case EINVAL:
                return "the file holds garbage, not a number";
        case ERANGE:
                return "the value is out of range (negative or absurd)";
        case ENXIO:
        case ENODEV:
                return "the device is gone (CPU offline or hardware removed)";
        case EIO:
                return "I/O error reading the device (unsupported register on this CPU?)";
        default:
                return strerror(err < 0 ? -err : err);
        }
}

const char *jl_kind_name(jl_kind k)
{
        static const char *const names[] = {"energy", "power", "temperature", "frequency", "utilization"};
        return (unsigned)k < _JL_KIND_MAX ? names[k] : "unknown";
}

const char *jl_kind_unit(jl_kind k)
{
        static const char *const units[] = {"J", "W", "C", "kHz", "ratio"};
        return (unsigned)k < _JL_KIND_MAX ? units[k] : "";
}

const char *jl_scope_name(jl_scope s)
{
        static const char *const names[] = {"package", "dram", "gpu", "subdomain", "node", "other"};
        return (unsigned)s < _JL_SCOPE_MAX ? names[s] : "unknown";
}
