/* test-hwmon.c - the hwmon provider and jl_hwmon_read_temp() through libsensors, against the fixture trees
 * tests/fixtures/hwmon-basic and hwmon-broken shown at /sys/class by tests/ns-run.sh; names and values are
 * compared with what lm-sensors' own `sensors -j` prints in the same namespace.
 *
 * Usage: run-fixture-copy.sh tests/fixtures/hwmon-X DST -- test-hwmon DST basic|broken */
#include <errno.h>
#include <grp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hwmon.h"
#include "provider.h"
#include "tap.h"
#include "timeutil.h"

static const char *fx;

static void fx_path(char *buf, size_t size, const char *rel)
{
        snprintf(buf, size, "%s/sys/class/hwmon/%s", fx, rel);
}

static void fx_write(const char *rel, const char *text)
{
        char p[512];
        fx_path(p, sizeof(p), rel);
        FILE *f = fopen(p, "we");
        if (!f) {
                printf("Bail out! cannot write %s: %m\n", p);
                exit(1);
        }
        fputs(text, f);
        fclose(f);
}

typedef struct {
        jl_channels ch;
        jl_notes notes;
        void *state;
        jl_value v[64];
        int r;
} opened;

static void open_hwmon(opened *o, const char *const *patterns)
{
        jl_provider_config cfg;
        jl_provider_config_default(&cfg);
        cfg.hwmon_sensors = patterns;
        *o = (opened){0};
        o->r = jl_provider_hwmon.open(&cfg, &o->ch, &o->notes, &o->state);
}

static void close_hwmon(opened *o)
{
        if (o->r == 0)
                jl_provider_hwmon.close(o->state);
        jl_channels_free(&o->ch);
        jl_notes_free(&o->notes);
}

static int read_hwmon(opened *o)
{
        memset(o->v, 0, sizeof(o->v));
        return jl_provider_hwmon.read(o->state, o->v);
}

static int find(const opened *o, const char *name)
{
        for (size_t i = 0; i < o->ch.n; i++)
                if (strcmp(o->ch.items[i].name, name) == 0)
                        return (int)i;
        return -1;
}

static const jl_note *find_note(const opened *o, const char *subject)
{
        for (size_t i = 0; i < o->notes.n; i++)
                if (strcmp(o->notes.items[i].subject, subject) == 0)
                        return &o->notes.items[i];
        return NULL;
}

/* One reading of `sensors -j`: "chip/feature", the subfeature's name, its value. */
typedef struct {
        char name[JL_NAME_MAX];
        char sub[32];
        double value;
} sensors_entry;

/* Run `sensors -j` and flatten its output (one key per line, as lm-sensors prints it). */
static size_t sensors_json(sensors_entry *out, size_t max)
{
        FILE *p = popen("sensors -j 2>/dev/null", "r");
        if (!p)
                return 0;
        char line[512], chip[128] = "", feature[128] = "";
        int depth = 0;
        size_t n = 0;
        while (fgets(line, sizeof(line), p)) {
                char *s = line + strspn(line, " \t");
                if (*s == '}') {
                        depth--;
                        continue;
                }
                if (*s != '"')
                        continue;
                char *end = strchr(s + 1, '"');
                if (!end)
                        continue;
                *end = '\0';
                char *rest = end + 1 + strspn(end + 1, ": ");
                if (*rest == '{') {
                        snprintf(depth == 0 ? chip : feature, sizeof(chip), "%s", s + 1);
                        depth++;
                        continue;
                }
                if (depth == 2 && n < max) {
                        snprintf(out[n].name, sizeof(out[n].name), "%.40s/%.50s", chip, feature);
                        snprintf(out[n].sub, sizeof(out[n].sub), "%s", s + 1);
                        out[n].value = strtod(rest, NULL);
                        n++;
                }
        }
        pclose(p);
        return n;
}

static const sensors_entry *find_entry(const sensors_entry *e, size_t n, const char *name,
                                       const char *suffix)
{
        for (size_t i = 0; i < n; i++) {
                size_t ls = strlen(e[i].sub), lx = strlen(suffix);
                if (strcmp(e[i].name, name) == 0 && ls > lx && strcmp(e[i].sub + ls - lx, suffix) == 0)
                        return &e[i];
        }
        return NULL;
}

static void check_channel(const opened *o, const char *name, jl_kind kind, jl_scope scope, double want)
{
        int i = find(o, name);
        if (!ok(i >= 0, "channel '%s'", name))
                return;
        const jl_channel *c = &o->ch.items[i];
        ok(c->kind == kind && c->scope == scope, "%s: %s, %s", name, jl_kind_name(c->kind),
           jl_scope_name(c->scope));
        ok(strcmp(c->provider, "hwmon") == 0 && !c->estimated && c->wrap_uj == 0,
           "%s: provider hwmon, measured", name);
        is_int(o->v[i].err, 0, "%s readable", name);
        if (kind == JL_KIND_ENERGY)
                is_int(o->v[i].counter, (uint64_t)want, "%s = %.0f µJ", name, want);
        else
                is_near(o->v[i].gauge, want, 1e-9, "%s = %g", name, want);
}

static void test_basic(void)
{
        opened o;
        open_hwmon(&o, NULL);
        is_int(o.r, 0, "hwmon opens on hwmon-basic");
        is_int(o.ch.n, 7,
               "7 channels: 3 temperatures, 2 powers, 1 energy, the power meter's energy (in0 and "
               "fan1 are not read)");
        uint64_t t0 = mono_ns();
        struct timespec ts = {0, 100 * 1000 * 1000};
        nanosleep(&ts, NULL);
        uint64_t t1 = mono_ns();
        is_int(read_hwmon(&o), 0, "read");
        uint64_t t2 = mono_ns();
        check_channel(&o, "coretemp-isa-0000/Package id 0", JL_KIND_TEMPERATURE, JL_SCOPE_OTHER, 45.0);
        check_channel(&o, "coretemp-isa-0000/Core 0", JL_KIND_TEMPERATURE, JL_SCOPE_OTHER, 43.0);
        check_channel(&o, "coretemp-isa-0000/Core 1", JL_KIND_TEMPERATURE, JL_SCOPE_OTHER, 44.5);
        check_channel(&o, "power_meter-acpi-0/power1", JL_KIND_POWER, JL_SCOPE_NODE, 250.5);
        check_channel(&o, "fixture_energy-virtual-0/Package", JL_KIND_POWER, JL_SCOPE_SUBDOMAIN, 12.5);
        check_channel(&o, "fixture_energy-virtual-0/Ecore 0", JL_KIND_ENERGY, JL_SCOPE_SUBDOMAIN, 123456789);
        /* The power meter's power integrated since open: 250.5 W × (0.1 s and a little). */
        int k = find(&o, "power_meter-acpi-0/power1/energy");
        ok(k >= 0 && o.ch.items[k].kind == JL_KIND_ENERGY && o.ch.items[k].scope == JL_SCOPE_NODE &&
               !o.ch.items[k].estimated && o.ch.items[k].wrap_uj == 0,
           "power_meter-acpi-0/power1/energy: measured node energy");
        double uj = k >= 0 ? (double)o.v[k].counter : 0;
        ok(k >= 0 && o.v[k].err == 0 && uj >= 250.5 * (double)(t1 - t0) / 1e3 - 1 &&
               uj <= 250.5 * (double)(t2 - t0 + 50 * NSEC_PER_MSEC) / 1e3,
           "the power meter's energy: %.0f µJ over about %.3f s", uj, (double)(t2 - t0) / 1e9);

        /* lm-sensors itself, in the same namespace, names and reads the same. */
        sensors_entry e[64];
        size_t ne = sensors_json(e, 64);
        ok(ne >= 6, "sensors -j: %zu readings", ne);
        for (size_t i = 0; i < o.ch.n; i++) {
                const jl_channel *c = &o.ch.items[i];
                if (strstr(c->name, "/energy"))
                        continue; /* joule's own integral, not a sensor */
                const sensors_entry *x = find_entry(e, ne, c->name, "_input");
                if (!x)
                        x = find_entry(e, ne, c->name, "_average");
                if (!ok(x != NULL, "sensors -j has '%s'", c->name))
                        continue;
                double mine = c->kind == JL_KIND_ENERGY ? (double)o.v[i].counter / 1e6 : o.v[i].gauge;
                is_near(mine, x->value, 0.0015, "'%s': joule %g, sensors %g (%s)", c->name, mine, x->value,
                        x->sub);
        }

        /* Values change between reads; unreadable ones give a per-channel error. */
        fx_write("hwmon0/temp1_input", "46500\n");
        fx_write("hwmon2/energy1_input", "123556789\n");
        fx_write("hwmon0/temp2_input", "garbage\n");
        fx_write("hwmon0/temp3_input", "999000\n");
        /* A sysfs attribute that goes away fails reads even on a descriptor kept open; a removed regular
         * file would still read its old content, so it is emptied first (as tests/system/test-faults.sh
         * does). */
        char p[512];
        fx_write("hwmon2/power1_input", "");
        fx_path(p, sizeof(p), "hwmon2/power1_input");
        unlink(p);
        fx_write("hwmon1/power1_average", "garbage\n");
        uint64_t before = k >= 0 ? o.v[k].counter : 0;
        is_int(read_hwmon(&o), 0, "read after changes");
        int i = find(&o, "coretemp-isa-0000/Package id 0");
        ok(i >= 0 && o.v[i].err == 0 && o.v[i].gauge == 46.5, "a new temperature is read: 46.5");
        i = find(&o, "fixture_energy-virtual-0/Ecore 0");
        ok(i >= 0 && o.v[i].err == 0 && o.v[i].counter == 123556789, "the energy counter advanced");
        i = find(&o, "coretemp-isa-0000/Core 0");
        ok(i >= 0 && o.v[i].err == -EINVAL, "garbage: -EINVAL");
        i = find(&o, "coretemp-isa-0000/Core 1");
        ok(i >= 0 && o.v[i].err == -ERANGE, "999 °C: -ERANGE");
        i = find(&o, "fixture_energy-virtual-0/Package");
        ok(i >= 0 && o.v[i].err == -ENOENT, "a vanished file: -ENOENT");
        ok(k >= 0 && o.v[k].err == -EINVAL, "the power meter unreadable: its energy too (%d)",
           k >= 0 ? o.v[k].err : 0);
        fx_write("hwmon1/power1_average", "250500000\n");
        nanosleep(&ts, NULL);
        read_hwmon(&o);
        uint64_t t4 = mono_ns();
        double gap = k >= 0 ? (double)(o.v[k].counter - before) : 0;
        ok(k >= 0 && o.v[k].err == 0 && gap >= 250.5 * (double)(t4 - t2) / 1e3 * 0.95 &&
               gap <= 250.5 * (double)(t4 - t1) / 1e3 * 1.05,
           "the next good reading bridges the gap: %.0f µJ over %.3f s", gap, (double)(t4 - t2) / 1e9);
        fx_write("hwmon0/temp2_input", "43000\n");
        fx_write("hwmon0/temp3_input", "44500\n");
        fx_write("hwmon2/power1_input", "12500000\n");

        /* The one-shot read shares libsensors with the open provider. */
        double c = 0;
        is_int(jl_hwmon_read_temp("coretemp-*", "Package id 0", &c), 0,
               "read_temp while the provider is open");
        is_near(c, 46.5, 1e-9, "46.5 °C");
        close_hwmon(&o);

        c = -1;
        is_int(jl_hwmon_read_temp("coretemp-isa-0000", "Core 1", &c), 0, "read_temp by full chip name");
        is_near(c, 44.5, 1e-9, "44.5 °C");
        c = -1;
        is_int(jl_hwmon_read_temp("coretemp-*", "Core 9", &c), -ENOENT, "no such feature");
        is_int(jl_hwmon_read_temp("nct6775-*", "Core 0", &c), -ENOENT, "no such chip");
        is_int(jl_hwmon_read_temp("power_meter-*", "power1", &c), -ENOENT, "not a temperature");
        is_int(jl_hwmon_read_temp("coretemp-isa-zzzz", "Core 0", &c), -EINVAL, "unparsable chip name");
        is_near(c, -1, 0, "failures leave the output untouched");

        /* Patterns. */
        static const char *const pat[] = {"coretemp-*/Package id *", "*/Ecore ?", NULL};
        open_hwmon(&o, pat);
        is_int(o.r, 0, "open with patterns");
        is_int(o.ch.n, 2, "two channels match");
        ok(find(&o, "coretemp-isa-0000/Package id 0") >= 0 &&
               find(&o, "fixture_energy-virtual-0/Ecore 0") >= 0,
           "the matching ones");
        close_hwmon(&o);
        static const char *const none[] = {"nothing-*/*", NULL};
        open_hwmon(&o, none);
        is_int(o.r, -ENOENT, "no match: -ENOENT");
        is_int(o.ch.n, 0, "no channels added");
        ok(o.notes.n == 1 && strstr(o.notes.items[0].reason, "hwmon_sensors"),
           "the note names hwmon_sensors: %s", o.notes.n ? o.notes.items[0].reason : "");
        close_hwmon(&o);

        /* Permission denied: a root-only file, read as nobody. */
        fx_path(p, sizeof(p), "hwmon0/temp3_input");
        chmod(p, 0400);
        fflush(stdout);
        pid_t pid = fork();
        if (pid == 0) {
                if (setgroups(0, NULL) < 0 || setgid(65534) < 0 || setuid(65534) < 0)
                        _exit(100);
                int bits = 0;
                opened n;
                open_hwmon(&n, NULL);
                bits |= n.r == 0 ? 1 : 0;
                bits |= find(&n, "coretemp-isa-0000/Core 1") < 0 ? 2 : 0;
                const jl_note *note = find_note(&n, "hwmon/coretemp-isa-0000/Core 1");
                bits |= note && note->err == -EACCES && strstr(note->reason, "permission") ? 4 : 0;
                bits |= find(&n, "coretemp-isa-0000/Core 0") >= 0 && n.ch.n == 6 ? 8 : 0;
                close_hwmon(&n);
                double t;
                bits |= jl_hwmon_read_temp("coretemp-*", "Core 1", &t) == -EACCES ? 16 : 0;
                _exit(bits);
        }
        int status = 0;
        waitpid(pid, &status, 0);
        int bits = WIFEXITED(status) ? WEXITSTATUS(status) : 0;
        ok(bits != 100, "dropped to nobody");
        ok(bits & 1, "as nobody: hwmon opens");
        ok(bits & 2, "as nobody: the root-only input is left out");
        ok(bits & 4, "as nobody: a note says permission denied (EACCES)");
        ok(bits & 8, "as nobody: the other inputs are there");
        ok(bits & 16, "as nobody: read_temp says -EACCES");
        chmod(p, 0644);
}

static void test_broken(void)
{
        opened o;
        open_hwmon(&o, NULL);
        is_int(o.r, 0, "hwmon opens on hwmon-broken");
        is_int(o.ch.n, 1, "only the good input is a channel");
        is_int(find(&o, "broken-virtual-0/Good"), 0, "broken-virtual-0/Good");
        static const struct {
                const char *label;
                int err;
        } bad[] = {
            {"Garbage", -EINVAL},     {"Empty", -EINVAL}, {"Below absolute zero", -ERANGE},
            {"Molten", -ERANGE},      {"NaN", -ERANGE},   {"Negative power", -ERANGE},
            {"Huge energy", -ERANGE},
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                char subject[128];
                snprintf(subject, sizeof(subject), "hwmon/broken-virtual-0/%s", bad[i].label);
                const jl_note *n = find_note(&o, subject);
                ok(n && n->err == bad[i].err, "note for '%s': %d (%s)", bad[i].label, n ? n->err : 0,
                   n ? n->reason : "none");
        }
        is_int(read_hwmon(&o), 0, "read");
        ok(o.v[0].err == 0 && o.v[0].gauge == 30.0, "Good = 30 °C");
        fx_write("hwmon0/temp6_input", "garbage\n");
        read_hwmon(&o);
        is_int(o.v[0].err, -EINVAL, "turns to garbage mid-run: -EINVAL");
        fx_write("hwmon0/temp6_input", "");
        read_hwmon(&o);
        ok(o.v[0].err < 0, "turns empty mid-run: %d", o.v[0].err);
        fx_write("hwmon0/temp6_input", "nan\n");
        read_hwmon(&o);
        is_int(o.v[0].err, -ERANGE, "turns NaN mid-run: -ERANGE");
        fx_write("hwmon0/temp6_input", "-45000\n");
        read_hwmon(&o);
        ok(o.v[0].err == 0 && o.v[0].gauge == -45.0, "-45 °C is a valid temperature");
        close_hwmon(&o);

        double c = 7;
        is_int(jl_hwmon_read_temp("broken-*", "Molten", &c), -ERANGE,
               "read_temp of an absurd value: -ERANGE");
        is_int(jl_hwmon_read_temp("broken-*", "Garbage", &c), -EINVAL, "read_temp of garbage: -EINVAL");
        is_near(c, 7, 0, "untouched");

        /* No chips at all: the provider says what to do. */
        char cmd[600];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s/sys/class/hwmon/hwmon0'", fx);
        is_int(system(cmd), 0, "remove the chip");
        jl_channel keep = {.name = "other", .provider = "other"};
        o = (opened){0};
        jl_channels_add(&o.ch, &keep);
        jl_provider_config cfg;
        jl_provider_config_default(&cfg);
        void *st = NULL;
        o.r = jl_provider_hwmon.open(&cfg, &o.ch, &o.notes, &st);
        is_int(o.r, -ENOENT, "no chips: -ENOENT");
        is_int(o.ch.n, 1, "channels left as they were");
        ok(o.notes.n >= 1 && strstr(o.notes.items[o.notes.n - 1].reason, "sensors-detect"), "note: %s",
           o.notes.n ? o.notes.items[o.notes.n - 1].reason : "");
        close_hwmon(&o);
        is_int(jl_hwmon_read_temp("broken-*", "Good", &c), -ENOENT, "read_temp without chips: -ENOENT");
}

int main(int argc, char **argv)
{
        if (argc != 3) {
                printf("Bail out! usage: test-hwmon FIXTURE basic|broken\n");
                return 1;
        }
        fx = argv[1];
        if (strcmp(argv[2], "basic") == 0)
                test_basic();
        else
                test_broken();
        return tap_done();
}
