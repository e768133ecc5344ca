/* hwmon.c - the "hwmon" provider: temperature, power and energy inputs of every hwmon chip through
 * libsensors, named as `sensors` prints them ("coretemp-isa-0000/Package id 0"), plus the whole-node energy
 * of an ACPI power meter integrated from its power ("power_meter-acpi-0/power1/energy"); and
 * jl_hwmon_read_temp() (see hwmon.h). libsensors' one global init is shared by a reference count.
 *
 * libsensors finds the chips and their inputs, names and labels them and applies sensors.conf (ignore,
 * label, compute). Reading goes around it: sensors_get_value() opens, stats, reads and closes the sysfs file
 * on every call, so at open each input's file (the chip's path + the subfeature's name, e.g. temp1_input)
 * is opened once and each read is one pread() and a strict parse, scaled as libsensors scales it (m°C → °C,
 * µW → W, µJ → J). A compute statement cannot be asked of libsensors' API, so it is detected: at open the
 * value of sensors_get_value() is compared with the file's own value scaled; an input where they differ
 * (or whose file reads 0, where a compute that only scales cannot be told apart) keeps being read through
 * sensors_get_value(), as before. A read that fails on the kept descriptor (a removed attribute fails reads,
 * or reads empty) opens the path again once, so that errors are those of a fresh open: -ENOENT once the
 * file is gone, and the reading resumes when it comes back. */
#include "hwmon.h"

#include <errno.h>
#include <fnmatch.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <sensors/error.h>
#include <sensors/sensors.h>

#include "fileio.h"
#include "macro.h"
#include "parse.h"
#include "timeutil.h"

/* Plausible ranges; anything outside is a broken sensor, not a reading. */
#define TEMP_C_MIN (-100.0)
#define TEMP_C_MAX 300.0
#define POWER_W_MAX 1e5     /* 100 kW: more than any node */
#define ENERGY_J_MAX 1.8e13 /* µJ must fit in 64 bits */

static pthread_mutex_t sensors_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned sensors_users;
static char sensors_parse_msg[200]; /* the first configuration error of the latest sensors_init() */

/* libsensors prints configuration errors on stderr by default; a library does not. Keep the first. */
static void quiet_parse_error(const char *err, const char *filename, int lineno)
{
        if (!sensors_parse_msg[0])
                snprintf(sensors_parse_msg, sizeof(sensors_parse_msg), "%s:%d: %s",
                         filename ? filename : "sensors configuration", lineno, err);
}

/* Returns 0, or a negative libsensors error (reason in sensors_parse_msg when it was the configuration). */
static int sensors_acquire(char *reason, size_t size)
{
        int r = 0;
        pthread_mutex_lock(&sensors_lock);
        if (sensors_users == 0) {
                sensors_parse_msg[0] = '\0';
                sensors_parse_error_wfn = quiet_parse_error;
                r = sensors_init(NULL);
                if (r != 0) {
                        if (reason)
                                snprintf(reason, size, "%s%s%s", sensors_strerror(r),
                                         sensors_parse_msg[0] ? ": " : "", sensors_parse_msg);
                        r = r < 0 ? r : -r;
                }
        }
        if (r == 0)
                sensors_users++;
        pthread_mutex_unlock(&sensors_lock);
        return r;
}

static void sensors_release(void)
{
        pthread_mutex_lock(&sensors_lock);
        if (sensors_users > 0 && --sensors_users == 0)
                sensors_cleanup();
        pthread_mutex_unlock(&sensors_lock);
}

/* Read a subfeature; libsensors' errors become errno values (fopen's or read's errno where known). */
static int get_value(const sensors_chip_name *chip, int nr, double *ret)
{
        double v;
        errno = 0;
        int r = sensors_get_value(chip, nr, &v);
        int saved = errno;
        if (r == 0) {
                *ret = v;
                return 0;
        }
        switch (r < 0 ? -r : r) {
        case SENSORS_ERR_KERNEL: /* the file could not be opened */
                return saved > 0 ? -saved : -ENXIO;
        case SENSORS_ERR_ACCESS_R: /* empty, garbage, or a read error other than EIO */
                return saved > 0 ? -saved : -EINVAL;
        case SENSORS_ERR_IO:
                return -EIO;
        case SENSORS_ERR_DIV_ZERO:
                return -EDOM;
        default:
                return -EIO;
        }
}

/* Range checks per kind; the value is already in °C, W or J. */
static int check_value(jl_kind kind, double v)
{
        if (!isfinite(v))
                return -ERANGE;
        switch (kind) {
        case JL_KIND_TEMPERATURE:
                return v >= TEMP_C_MIN && v <= TEMP_C_MAX ? 0 : -ERANGE;
        case JL_KIND_POWER:
                return v >= 0 && v <= POWER_W_MAX ? 0 : -ERANGE;
        case JL_KIND_ENERGY:
                return v >= 0 && v <= ENERGY_J_MAX ? 0 : -ERANGE;
        default:
                return -EINVAL;
        }
}

/* A value in °C, W or J, checked, into the channel's slot. */
static int store_value(jl_kind kind, double v, jl_value *ret)
{
        int r = check_value(kind, v);
        if (r < 0)
                return r;
        if (kind == JL_KIND_ENERGY)
                ret->counter = (uint64_t)llround(v * 1e6);
        else
                ret->gauge = v;
        return 0;
}

static int read_channel(const sensors_chip_name *chip, int nr, jl_kind kind, jl_value *ret)
{
        double v;
        int r = get_value(chip, nr, &v);
        return r < 0 ? r : store_value(kind, v, ret);
}

static bool wanted(const char *const *patterns, const char *name)
{
        if (!patterns)
                return true;
        for (; *patterns; patterns++)
                if (fnmatch(*patterns, name, 0) == 0)
                        return true;
        return false;
}

typedef struct {
        const sensors_chip_name *chip; /* libsensors' own, valid until sensors_cleanup() */
        int subfeature;
        jl_kind kind;
        int fd;     /* the input's sysfs file, kept open; -1: read through sensors_get_value() */
        char *path; /* that file, to open again after a failed read */
        double scale;
        /* The energy integrated from the power channel just before this one (a power meter's): the
         * trapezoid rule between good readings; a failed reading keeps the baseline, so the next good one
         * bridges the gap. */
        bool integrate;
        double last_w, energy_uj;
        uint64_t last_ns;
} hwmon_input;

typedef struct {
        size_t n, cap;
        hwmon_input *in;
} hwmon_state;

/* libsensors' divisor for the input subfeatures joule reads (temp*_input: m°C; power*_input,
 * power*_average: µW; energy*_input: µJ). */
static double kind_scale(jl_kind kind)
{
        return kind == JL_KIND_TEMPERATURE ? 1e3 : 1e6;
}

/* "nan", "inf", "-infinity", ...: a number, but not a finite one (fscanf("%lf") in libsensors reads them).
 */
static bool non_finite_text(const char *t)
{
        t += strspn(t, " \t");
        if (*t == '-' || *t == '+')
                t++;
        size_t n = strcspn(t, " \t\n");
        return (n == 3 && (strncasecmp(t, "nan", 3) == 0 || strncasecmp(t, "inf", 3) == 0)) ||
               (n == 8 && strncasecmp(t, "infinity", 8) == 0) || (n > 4 && strncasecmp(t, "nan(", 4) == 0);
}

/* One pread() of the kept descriptor and a strict parse: the raw value in the file's unit. -ENODATA when
 * the file is empty, the read's own error, or the parse's: -EINVAL for garbage (too long included), -ERANGE
 * for a number out of range or not finite. */
static int pread_raw(int fd, double *ret)
{
        char buf[64];
        int n = read_text_fd(fd, buf, sizeof(buf));
        if (n == -EFBIG)
                return -EINVAL;
        if (n < 0)
                return n;
        int r = parse_double(buf, ret);
        if (r == -EINVAL && non_finite_text(buf))
                return -ERANGE;
        return r;
}

/* The value of an input read on its kept descriptor, in °C, W or J. */
static int read_direct(hwmon_input *in, double *ret)
{
        double raw;
        int r = pread_raw(in->fd, &raw);
        if (r < 0 && r != -EINVAL && r != -ERANGE) {
                /* The read failed or found nothing: open the path again, as each libsensors read did. */
                int fd = open_ro(in->path);
                if (fd < 0)
                        return fd;
                close(in->fd);
                in->fd = fd;
                r = pread_raw(in->fd, &raw);
        }
        if (r == -ENODATA)
                return -EINVAL; /* empty: libsensors' SENSORS_ERR_ACCESS_R, as before */
        if (r < 0)
                return r;
        *ret = raw / in->scale;
        return 0;
}

static int read_input(hwmon_input *in, jl_value *ret)
{
        if (in->fd < 0)
                return read_channel(in->chip, in->subfeature, in->kind, ret);
        double v;
        int r = read_direct(in, &v);
        return r < 0 ? r : store_value(in->kind, v, ret);
}

static void hwmon_close(void *state)
{
        hwmon_state *st = state;
        if (!st)
                return;
        for (size_t i = 0; i < st->n; i++) {
                if (st->in[i].fd >= 0)
                        close(st->in[i].fd);
                free(st->in[i].path);
        }
        free(st->in);
        free(st);
        sensors_release();
}

/* The input subfeature and kind of a feature joule reads; NULL for the others. */
static const sensors_subfeature *input_of(const sensors_chip_name *chip, const sensors_feature *f,
                                          jl_kind *kind)
{
        const sensors_subfeature *sf = NULL;
        switch (f->type) {
        case SENSORS_FEATURE_TEMP:
                *kind = JL_KIND_TEMPERATURE;
                sf = sensors_get_subfeature(chip, f, SENSORS_SUBFEATURE_TEMP_INPUT);
                break;
        case SENSORS_FEATURE_POWER:
                *kind = JL_KIND_POWER;
                sf = sensors_get_subfeature(chip, f, SENSORS_SUBFEATURE_POWER_INPUT);
                if (!sf)
                        sf = sensors_get_subfeature(chip, f, SENSORS_SUBFEATURE_POWER_AVERAGE);
                break;
        case SENSORS_FEATURE_ENERGY:
                *kind = JL_KIND_ENERGY;
                sf = sensors_get_subfeature(chip, f, SENSORS_SUBFEATURE_ENERGY_INPUT);
                break;
        default:
                break;
        }
        return sf;
}

/* Set the input up to be read on its own descriptor when that reads what sensors_get_value() reads; else
 * (no path, cannot open, a compute statement, or no way to tell) leave it on libsensors. Returns 0 or
 * -ENOMEM. */
static int open_direct(hwmon_input *in, const sensors_chip_name *chip, const sensors_subfeature *sf)
{
        if (!chip->path)
                return 0;
        _cleanup_free_ char *path = NULL;
        if (asprintf(&path, "%s/%s", chip->path, sf->name) < 0)
                return -ENOMEM;
        _cleanup_close_ int fd = open_ro(path);
        if (fd < 0)
                return 0;
        double scale = kind_scale(in->kind);
        /* The file's value before and after libsensors' must agree, or the value moved in between: try
         * again. A compute statement shows as libsensors' value differing from the file's value scaled;
         * at 0 a compute that only multiplies does not show, so 0 stays on libsensors. */
        for (int attempt = 0; attempt < 3; attempt++) {
                double before, after, lib;
                if (pread_raw(fd, &before) < 0 || get_value(chip, sf->number, &lib) < 0 ||
                    pread_raw(fd, &after) < 0)
                        return 0;
                if (before != after)
                        continue;
                if (before == 0 || lib != before / scale)
                        return 0;
                in->fd = TAKE_FD(fd);
                in->path = TAKE_PTR(path);
                in->scale = scale;
                return 0;
        }
        return 0;
}

/* Add one feature as a channel, or leave a note saying why not. Returns 0 or -ENOMEM. */
static int add_input(hwmon_state *st, const hwmon_input *in, const jl_channel *ch, jl_channels *channels)
{
        if (st->n == st->cap) {
                size_t ncap = st->cap ? st->cap * 2 : 16;
                hwmon_input *p = realloc(st->in, ncap * sizeof(*p));
                if (!p)
                        return -ENOMEM;
                st->in = p;
                st->cap = ncap;
        }
        int r = jl_channels_add(channels, ch);
        if (r < 0)
                return r;
        st->in[st->n++] = *in;
        return 0;
}

static int add_feature(hwmon_state *st, const sensors_chip_name *chip, const char *chip_name,
                       const sensors_subfeature *sf, jl_kind kind, const char *name, jl_channels *channels,
                       jl_notes *notes)
{
        char subject[JL_NAME_MAX + 8];
        snprintf(subject, sizeof(subject), "hwmon/%s", name);
        if (!(sf->flags & SENSORS_MODE_R))
                return jl_notes_add(notes, subject, -EACCES, "%s: %s", sf->name, jl_errno_hint(-EACCES));
        jl_value v = {0};
        int r = read_channel(chip, sf->number, kind, &v);
        if (r < 0)
                return jl_notes_add(notes, subject, r, "%s/%s: %s", chip->path ? chip->path : chip_name,
                                    sf->name, jl_errno_hint(r));

        jl_channel ch = {
            .provider = "hwmon",
            .kind = kind,
            /* An ACPI power meter measures the whole node; other chips' power is a part of it. */
            .scope = kind == JL_KIND_TEMPERATURE                ? JL_SCOPE_OTHER
                     : strcmp(chip->prefix, "power_meter") == 0 ? JL_SCOPE_NODE
                                                                : JL_SCOPE_SUBDOMAIN,
            .wrap_uj = 0,
        };
        snprintf(ch.name, sizeof(ch.name), "%s", name);
        hwmon_input in = {.chip = chip, .subfeature = sf->number, .kind = kind, .fd = -1};
        r = open_direct(&in, chip, sf);
        if (r >= 0)
                r = add_input(st, &in, &ch, channels);
        if (r < 0) {
                if (in.fd >= 0)
                        close(in.fd);
                free(in.path);
                return r;
        }
        if (!(kind == JL_KIND_POWER && ch.scope == JL_SCOPE_NODE))
                return 0;

        /* A power meter has no energy counter: integrate its power into the node's energy. */
        jl_channel e = ch;
        e.kind = JL_KIND_ENERGY;
        if (snprintf(e.name, sizeof(e.name), "%s/energy", name) >= (int)sizeof(e.name))
                return jl_notes_add(notes, subject, -ENAMETOOLONG, "%s/energy: the name is too long", name);
        in.kind = JL_KIND_ENERGY;
        in.fd = -1; /* reads nothing itself: the power channel's descriptor stays with it */
        in.path = NULL;
        in.integrate = true;
        in.last_w = v.gauge;
        in.last_ns = mono_ns();
        return add_input(st, &in, &e, channels);
}

static int hwmon_open(const jl_provider_config *cfg, jl_channels *channels, jl_notes *notes,
                      void **ret_state)
{
        const char *const *patterns = cfg ? cfg->hwmon_sensors : NULL;
        char reason[256];
        int r = sensors_acquire(reason, sizeof(reason));
        if (r < 0) {
                jl_notes_add(notes, "hwmon", -EIO,
                             "libsensors cannot initialise: %s (check /etc/sensors3.conf)", reason);
                return -EIO;
        }
        hwmon_state *st = calloc(1, sizeof(*st));
        if (!st) {
                sensors_release();
                return -ENOMEM;
        }

        size_t before = channels->n, nchips = 0, matched = 0;
        int cnr = 0;
        const sensors_chip_name *chip;
        r = 0;
        while (r >= 0 && (chip = sensors_get_detected_chips(NULL, &cnr))) {
                char chip_name[JL_NAME_MAX];
                nchips++;
                if (sensors_snprintf_chip_name(chip_name, sizeof(chip_name), chip) < 0)
                        continue;
                int fnr = 0;
                const sensors_feature *f;
                while (r >= 0 && (f = sensors_get_features(chip, &fnr))) {
                        jl_kind kind;
                        const sensors_subfeature *sf = input_of(chip, f, &kind);
                        if (!sf)
                                continue;
                        _cleanup_free_ char *label = sensors_get_label(chip, f);
                        char name[JL_NAME_MAX * 2];
                        snprintf(name, sizeof(name), "%s/%s", chip_name, label ? label : f->name);
                        if (!wanted(patterns, name))
                                continue;
                        matched++;
                        if (strlen(name) >= JL_NAME_MAX) {
                                r = jl_notes_add(notes, "hwmon", -ENAMETOOLONG, "%s: the name is too long",
                                                 name);
                                continue;
                        }
                        r = add_feature(st, chip, chip_name, sf, kind, name, channels, notes);
                }
        }
        if (r < 0 || st->n == 0) {
                channels->n = before;
                hwmon_close(st);
                if (r < 0)
                        return r;
                if (nchips == 0)
                        r = -ENOENT,
                        jl_notes_add(notes, "hwmon", r,
                                     "no hwmon chips: load the sensor drivers (sensors-detect), or "
                                     "this is a VM without sensors");
                else if (matched == 0 && patterns)
                        r = -ENOENT,
                        jl_notes_add(notes, "hwmon", r,
                                     "%zu hwmon chip(s), but no temperature, power or energy input "
                                     "matches the configured hwmon_sensors patterns (see `sensors`)",
                                     nchips);
                else if (matched == 0)
                        r = -ENOENT,
                        jl_notes_add(notes, "hwmon", r,
                                     "%zu hwmon chip(s), none with a temperature, power or energy "
                                     "input",
                                     nchips);
                else
                        r = -ENODEV,
                        jl_notes_add(notes, "hwmon", r, "no readable hwmon input (see the notes above)");
                return r;
        }
        *ret_state = st;
        return 0;
}

static int hwmon_read(void *state, jl_value *values)
{
        hwmon_state *st = state;
        for (size_t i = 0; i < st->n; i++) {
                hwmon_input *in = &st->in[i];
                if (!in->integrate) {
                        values[i].err = read_input(in, &values[i]);
                        continue;
                }
                /* The power channel just read (always the one before). */
                if (values[i - 1].err < 0) {
                        values[i].err = values[i - 1].err;
                        continue;
                }
                uint64_t t = mono_ns();
                double w = values[i - 1].gauge;
                if (t > in->last_ns)
                        in->energy_uj +=
                            (in->last_w + w) / 2 * (double)(t - in->last_ns) / 1e3; /* W·ns → µJ */
                in->last_w = w;
                in->last_ns = t;
                values[i] = (jl_value){.counter = (uint64_t)in->energy_uj};
        }
        return 0;
}

const jl_provider_ops jl_provider_hwmon = {
    .name = "hwmon",
    .description = "temperature, power and energy inputs of hwmon chips through libsensors",
    .open = hwmon_open,
    .read = hwmon_read,
    .close = hwmon_close,
};

int jl_hwmon_read_temp(const char *chip_pattern, const char *feature_label, double *ret_c)
{
        if (!chip_pattern || !feature_label)
                return -EINVAL;
        sensors_chip_name match;
        if (sensors_parse_chip_name(chip_pattern, &match) != 0)
                return -EINVAL;
        int r = sensors_acquire(NULL, 0);
        if (r < 0) {
                sensors_free_chip_name(&match);
                return -EIO;
        }
        r = -ENOENT;
        int cnr = 0;
        const sensors_chip_name *chip;
        while (r == -ENOENT && (chip = sensors_get_detected_chips(&match, &cnr))) {
                int fnr = 0;
                const sensors_feature *f;
                while (r == -ENOENT && (f = sensors_get_features(chip, &fnr))) {
                        if (f->type != SENSORS_FEATURE_TEMP)
                                continue;
                        _cleanup_free_ char *label = sensors_get_label(chip, f);
                        if (!label || strcmp(label, feature_label) != 0)
                                continue;
                        const sensors_subfeature *sf =
                            sensors_get_subfeature(chip, f, SENSORS_SUBFEATURE_TEMP_INPUT);
                        if (!sf)
                                continue;
                        jl_value v;
                        r = read_channel(chip, sf->number, JL_KIND_TEMPERATURE, &v);
                        if (r == 0)
                                *ret_c = v.gauge;
                }
        }
        sensors_release();
        sensors_free_chip_name(&match);
        return r;
}
