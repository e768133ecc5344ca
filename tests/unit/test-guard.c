/* test-guard.c - the sampler's guard reads with the real rapl provider against a powercap fixture shown at
 * /sys/class by tests/ns-run.sh: the schedule follows the zone's constraint_0_max_power_uw, a guard read
 * reads only when due and is not a sample, wraps seen by guard reads are exact, and an interval left too
 * long becomes a counted gap. Times are explicit (jl_sampler_sample_at, jl_sampler_guard_at).
 *
 * Usage: ns-run.sh FIXTURE -- test-guard FIXTURE */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "sampler.h"
#include "tap.h"

#define MS 1000000ULL

static const char *fx;

static void put(const char *rel, unsigned long long v)
{
        char p[512];
        snprintf(p, sizeof(p), "%s/sys/class/powercap/intel-rapl:0/%s", fx, rel);
        FILE *f = fopen(p, "w"); /* truncates in place: the provider's open descriptor sees the new value */
        if (!f) {
                perror(p);
                exit(1);
        }
        if (strcmp(rel, "name") == 0)
                fputs("package-0\n", f);
        else
                fprintf(f, "%llu\n", v);
        fclose(f);
}

int main(int argc, char **argv)
{
        if (argc < 2) {
                fprintf(stderr, "usage: test-guard FIXTURE\n");
                return 2;
        }
        fx = argv[1];
        char p[512];
        snprintf(p, sizeof(p), "%s/sys/class/powercap", fx);
        mkdir(p, 0755);
        snprintf(p, sizeof(p), "%s/sys/class/powercap/intel-rapl:0", fx);
        mkdir(p, 0755);
        put("name", 0);
        put("max_energy_range_uj", 60000000);
        put("constraint_0_max_power_uw", 500000000);
        put("energy_uj", 0);

        jl_provider_config cfg;
        jl_provider_config_default(&cfg);
        const char *const only[] = {"rapl", NULL};
        jl_sampler *s = NULL;
        is_int(jl_sampler_open(&cfg, only, &s), 0, "sampler opens the rapl provider");
        if (!s || s->channels.n != 1)
                return tap_done();
        is_near(s->channels.items[0].max_power_w, 500, 1e-9, "the provider states the zone's max power");
        ok(jl_sampler_next_due_ns(s) == UINT64_MAX, "no guard read before the first sample");

        uint64_t t0 = 1000 * MS;
        jl_sampler_sample_at(s, t0, t0);
        is_int(jl_sampler_next_due_ns(s), t0 + 30 * MS, "60 J at 500 W: next read 30 ms after the sample");
        is_int(jl_sampler_guard_timeout_ms(s, t0 + 10 * MS), 20, "poll timeout: 20 ms from t0 + 10 ms");

        put("energy_uj", 5000000);
        jl_sampler_guard_at(s, t0 + 10 * MS);
        is_int(s->tracks[0].energy_uj, 0, "a guard read before it is due reads nothing");
        jl_sampler_guard_at(s, t0 + 30 * MS);
        is_int(s->tracks[0].energy_uj, 5000000, "a due guard read unwraps the counter");
        is_int(s->nsamples, 1, "a guard read is not a sample");
        is_int(jl_sampler_next_due_ns(s), t0 + 60 * MS, "the next one 30 ms later");

        /* 400 W: 12 J per 30 ms, through a wrap, each read on schedule */
        uint64_t raw = 5000000, truth = 5000000, t = t0 + 30 * MS;
        for (int k = 0; k < 8; k++) {
                t += 30 * MS;
                raw += 12000000;
                truth += 12000000;
                put("energy_uj", raw % 60000000);
                jl_sampler_guard_at(s, t);
        }
        is_int(s->tracks[0].energy_uj, truth, "guard reads across wraps: exact");
        is_int(s->tracks[0].wraps, 1, "one wrap seen");
        is_int(s->tracks[0].gaps, 0, "no gap");

        /* a sample ends the statistics interval: its power is over the guard reads' energy */
        t += 10 * MS;
        raw += 4000000;
        truth += 4000000;
        put("energy_uj", raw % 60000000);
        jl_sampler_sample_at(s, t, t);
        is_int(s->nsamples, 2, "second sample");
        is_near(s->tracks[0].power_w, (double)(truth) / 1e6 / ((double)(t - t0) / 1e9), 1e-6,
                "the sample's power covers the whole interval since the previous sample");

        /* left unread for 200 ms (at 500 W up to 100 J: ambiguous) at a steady 400 W: a counted gap */
        t += 200 * MS;
        raw += 80000000;
        truth += 80000000;
        put("energy_uj", raw % 60000000);
        jl_sampler_sample_at(s, t, t);
        is_int(s->tracks[0].gaps, 1, "the 200 ms interval is a gap");
        is_int(s->tracks[0].gap_ns, 200 * MS, "of 200 ms");
        is_int(s->tracks[0].energy_uj, truth, "resolved by the steady power: exact");
        uint64_t gap_ns;
        is_int(jl_sampler_gaps(s, &gap_ns), 1, "counted for the sampler");
        jl_sampler_free(s);
        return tap_done();
}
