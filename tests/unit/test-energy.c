/* test-energy.c - counter unwrapping and the sampler's accounting: wraps, glitches, errors, totals, the
 * guard schedule of wrapping counters and ambiguous intervals counted as gaps. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "energy.h"
#include "sampler.h"
#include "tap.h"

static jl_sampler *fake_sampler(const jl_channel *chs, size_t n)
{
        jl_sampler *s = calloc(1, sizeof(*s));
        for (size_t i = 0; i < n; i++)
                jl_channels_add(&s->channels, &chs[i]);
        s->tracks = calloc(n, sizeof(*s->tracks));
        s->values = calloc(n, sizeof(*s->values));
        for (size_t i = 0; i < n; i++)
                s->tracks[i].ch = chs[i];
        return s;
}

int main(void)
{
        uint64_t d = 0;
        bool w = false;
        is_int(jl_energy_delta(100, 250, 1000, &d, &w), 0, "plain delta");
        is_int(d, 150, "delta 150");
        ok(!w, "no wrap");
        is_int(jl_energy_delta(900, 100, 1000, &d, &w), 0, "wrap");
        is_int(d, 200, "wrapped delta = 100 + 1000 - 900");
        ok(w, "wrap flagged");
        is_int(jl_energy_delta(600, 500, 1000, &d, &w), -ERANGE, "backwards without a plausible wrap is a glitch");
        is_int(jl_energy_delta(100, 700, 1000, &d, &w), -ERANGE, "jump beyond half range");
        is_int(jl_energy_delta(100, 1001, 1000, &d, &w), -ERANGE, "value outside range");
        is_int(jl_energy_delta(5, 4, 0, &d, &w), -ERANGE, "64-bit counter backwards");
        is_int(jl_energy_delta(5, UINT64_MAX, 0, &d, &w), 0, "64-bit counter large step is allowed here");

        jl_channel chs[] = {
                {.name = "package-0", .provider = "rapl", .kind = JL_KIND_ENERGY, .scope = JL_SCOPE_PACKAGE,
                 .wrap_uj = 1000000},
                {.name = "core-0", .provider = "rapl", .kind = JL_KIND_ENERGY, .scope = JL_SCOPE_SUBDOMAIN,
                 .wrap_uj = 1000000},
                {.name = "dram-0", .provider = "rapl", .kind = JL_KIND_ENERGY, .scope = JL_SCOPE_DRAM,
                 .wrap_uj = 1000000},
                {.name = "temp", .provider = "hwmon", .kind = JL_KIND_TEMPERATURE, .scope = JL_SCOPE_OTHER},
        };
        jl_sampler *s = fake_sampler(chs, 4);
        jl_value v[4] = {0};
        /* package at 10 W (0.1 J per 10 ms), wrapping every second; dram at 1 W; core 5 W. */
        uint64_t pkg = 0, core = 0, dram = 0, truth_pkg = 0;
        for (int k = 0; k <= 500; k++) {
                uint64_t t = (uint64_t)k * 10000000ULL + 1;
                v[0].counter = pkg % 1000000;
                v[1].counter = core % 1000000;
                v[2].counter = dram % 1000000;
                v[3].gauge = 40 + (k % 10);
                jl_sampler_account(s, v, t, t);
                pkg += 100000;
                core += 50000;
                dram += 10000;
                truth_pkg += k < 500 ? 100000 : 0;
        }
        is_int(s->tracks[0].energy_uj, truth_pkg, "package energy across 50 wraps");
        is_int(s->tracks[0].wraps, 50, "50 wraps");
        is_near(s->tracks[0].power_max_w, 10, 1e-9, "max power 10 W");
        is_near(jl_sampler_duration_s(s), 5.0, 1e-9, "duration 5 s");
        jl_total_source src;
        is_near(jl_sampler_total_energy_j(s, &src), 50 + 5, 1e-9, "total = package + dram, core not summed");
        is_int(src, JL_TOTAL_DOMAINS, "total from domains");
        is_near(s->tracks[3].max, 49, 1e-9, "temperature max");
        is_near(jl_track_mean(&s->tracks[3]), 44.5, 0.1, "temperature time-weighted mean");

        /* A counter that goes backwards without a wrap: the interval is bridged at the last power. */
        v[0].counter = pkg % 1000000;
        v[1].counter = core % 1000000;
        v[2].counter = dram % 1000000;
        jl_sampler_account(s, v, 501ULL * 10000000ULL + 1, 501ULL * 10000000ULL + 1);
        uint64_t before = s->tracks[2].energy_uj;
        pkg += 100000;
        core += 50000;
        v[0].counter = pkg % 1000000;
        v[1].counter = core % 1000000;
        v[2].counter = dram % 1000000 - 5000; /* dram steps back: glitch */
        jl_sampler_account(s, v, 502ULL * 10000000ULL + 1, 502ULL * 10000000ULL + 1);
        is_int(s->tracks[2].glitches, 1, "glitch counted");
        is_near((double)(s->tracks[2].energy_uj - before), 10000, 1, "bridged with 1 W over 10 ms");

        /* A read error leaves the energy untouched and is counted. */
        before = s->tracks[0].energy_uj;
        v[0].err = -ENXIO;
        jl_sampler_account(s, v, 503ULL * 10000000ULL + 1, 503ULL * 10000000ULL + 1);
        is_int(s->tracks[0].energy_uj, before, "no energy from a failed read");
        is_int(s->tracks[0].errors, 1, "error counted");
        is_int(s->tracks[0].last_err, -ENXIO, "error kept");

        /* Suspend detection: boottime advanced 30 s more than monotonic. */
        jl_sampler_account(s, v, 504ULL * 10000000ULL + 1, 504ULL * 10000000ULL + 1 + 30000000000ULL);
        is_near(jl_sampler_suspended_s(s), 30, 1e-6, "suspend of 30 s detected");

        jl_sampler_reset_stats(s);
        is_int(s->tracks[0].energy_uj, 0, "reset clears energy");
        ok(s->tracks[0].have_last, "reset keeps the counter baseline");

        jl_channels_free(&s->channels);
        free(s->tracks);
        free(s->values);
        free(s);

        /* A phase-boundary sample 1 ms after a tick that carries a whole tick of energy is no power spike. */
        s = fake_sampler(chs, 1);
        jl_sampler_set_interval(s, 100000000);
        jl_value q = {0};
        q.counter = 0;
        jl_sampler_account(s, &q, 1000000000, 1000000000);
        q.counter = 400000; /* 0.4 J in 100 ms: 4 W */
        jl_sampler_account(s, &q, 1100000000, 1100000000);
        q.counter = 440000; /* 0.04 J more, 1 ms later: "40 W" over a too-short interval */
        jl_sampler_account(s, &q, 1101000000, 1101000000);
        is_near(s->tracks[0].power_max_w, 4, 1e-9, "short boundary interval does not raise max power");
        is_int(s->tracks[0].energy_uj, 440000, "its energy still counts");
        jl_channels_free(&s->channels);
        free(s->tracks);
        free(s->values);
        free(s);

        /* The guard schedule: four reads per wrap period at the highest power the counter can draw. */
        jl_track g = {.ch = {.name = "package-0",
                             .kind = JL_KIND_ENERGY,
                             .scope = JL_SCOPE_PACKAGE,
                             .wrap_uj = 60000000,
                             .max_power_w = 500}};
        is_near(jl_track_bound_w(&g), 500, 1e-9, "bound: the zone's max power");
        is_int(jl_track_guard_ns(&g), 30000000, "60 J at 500 W: read every 30 ms");
        jl_track h = {
            .ch = {.name = "dram-0", .kind = JL_KIND_ENERGY, .scope = JL_SCOPE_DRAM, .wrap_uj = 60000000}};
        is_int(jl_track_guard_ns(&h), JL_GUARD_PROBE_NS, "no max power, nothing seen yet: probe");
        jl_value r = {.counter = 1000000};
        jl_track_unwrap(&h, &r, 1000000000);
        r.counter += 200000; /* 10 W over 20 ms */
        jl_track_unwrap(&h, &r, 1020000000);
        is_near(jl_track_bound_w(&h), 40, 1e-9, "observed 10 W: bound with the margin, 40 W");
        is_int(jl_track_guard_ns(&h), 375000000, "60 J at 40 W: read every 375 ms");
        r.counter += 10000000; /* 100 W over 100 ms: the power rose */
        jl_track_unwrap(&h, &r, 1120000000);
        is_int(jl_track_guard_ns(&h), 37500000, "re-checked as power rises: 60 J at 400 W, every 37.5 ms");
        g.peak_w = 800;
        is_near(jl_track_bound_w(&g), 800, 1e-9,
                "an observed peak above the stated max power raises the bound");
        jl_track n64 = {.ch = {.name = "gpu-0", .kind = JL_KIND_ENERGY, .scope = JL_SCOPE_GPU}};
        ok(jl_track_guard_ns(&n64) == UINT64_MAX, "a counter that does not wrap needs no guard reads");
        jl_track tiny = {.ch = {.name = "x", .kind = JL_KIND_ENERGY, .wrap_uj = 1000, .max_power_w = 1e5}};
        is_int(jl_track_guard_ns(&tiny), JL_GUARD_MIN_NS, "never faster than JL_GUARD_MIN_NS");

        /* An interval too long to unwrap for certain is a counted gap, resolved by the latest power. */
        jl_track a = {.ch = {.name = "package-0",
                             .kind = JL_KIND_ENERGY,
                             .scope = JL_SCOPE_PACKAGE,
                             .wrap_uj = 1000000,
                             .max_power_w = 10}};
        uint64_t truth = 0, raw = 0, tns = 1000000000;
        jl_value x = {.counter = 0};
        jl_track_unwrap(&a, &x, tns);
        for (int k = 0; k < 10; k++) { /* 8 W, read every 10 ms */
                tns += 10000000;
                raw += 80000;
                truth += 80000;
                x.counter = raw % 1000000;
                jl_track_unwrap(&a, &x, tns);
        }
        is_int(a.energy_uj, truth, "8 W read every 10 ms: exact");
        is_int(a.gaps, 0, "no gap");
        tns += 300000000; /* 300 ms unread: at 10 W up to 3 J, three wraps of 1 J */
        raw += 2400000;
        truth += 2400000;
        x.counter = raw % 1000000;
        jl_track_unwrap(&a, &x, tns);
        is_int(a.gaps, 1, "the 300 ms interval is a gap");
        is_int(a.gap_ns, 300000000, "gap length counted");
        is_int(a.energy_uj, truth, "its energy: 0.4 J read plus the two wraps that 8 W implies");
        tns += 10000000;
        raw += 80000;
        truth += 80000;
        x.counter = raw % 1000000;
        jl_track_unwrap(&a, &x, tns);
        is_int(a.gaps, 1, "reads on schedule again: no more gaps");
        is_int(a.energy_uj, truth, "and exact again");
        /* the same without the gap rule (the old unwrapping) would have seen 0.4 J in 300 ms: 1.33 W */
        ok(a.energy_uj - 80000 * 11 > 2000000, "the gap's energy is not silently dropped");

        /* A counter that moves in steps (500 W in 5 J steps every 10 ms, as the emulator's) read every 7.5
         * ms, then 1 ms after a step (5 J in 1 ms: "5000 W"), then 60 ms later: the gap is resolved by the
         * smoothed power, not by the last short interval's. */
        jl_track q5 = {.ch = {.name = "psys",
                              .kind = JL_KIND_ENERGY,
                              .scope = JL_SCOPE_NODE,
                              .wrap_uj = 60000000,
                              .max_power_w = 2000}};
#define STEPPED(ns) ((ns) / 10000000ULL * 5000000ULL)
        uint64_t t5 = 0;
        for (; t5 <= 1000000000ULL; t5 += 7500000ULL) {
                x.counter = STEPPED(t5) % 60000000ULL;
                jl_track_unwrap(&q5, &x, t5 + 1);
        }
        t5 = 1009500000ULL; /* just before a step */
        x.counter = STEPPED(t5) % 60000000ULL;
        jl_track_unwrap(&q5, &x, t5 + 1);
        t5 = 1010500000ULL; /* 1 ms later, just after it */
        x.counter = STEPPED(t5) % 60000000ULL;
        jl_track_unwrap(&q5, &x, t5 + 1);
        t5 += 60000000ULL;
        x.counter = STEPPED(t5) % 60000000ULL;
        jl_track_unwrap(&q5, &x, t5 + 1);
        is_int(q5.gaps, 1, "the 60 ms interval at a 2000 W bound is a gap");
        is_int(q5.energy_uj, STEPPED(t5), "resolved to the truth despite the 1 ms interval's 5000 W");
#undef STEPPED

        /* Gaps are summed over the measured domains. */
        s = fake_sampler(chs, 4);
        s->tracks[0].gaps = 2;
        s->tracks[0].gap_ns = 5;
        s->tracks[1].gaps = 7; /* a sub-domain: not summed */
        s->tracks[2].gaps = 1;
        uint64_t gap_ns = 0;
        is_int(jl_sampler_gaps(s, &gap_ns), 3, "gaps of package and dram");
        is_int(gap_ns, 5, "their length");
        jl_channels_free(&s->channels);
        free(s->tracks);
        free(s->values);
        free(s);
        return tap_done();
}
