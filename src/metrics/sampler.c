/* sampler.c - the measurement core's sampling loop body: reading providers, unwrapping, statistics. */
#include "sampler.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "energy.h"
#include "macro.h"
#include "timeutil.h"

static bool name_in(const char *name, const char *const *only)
{
        if (!only)
                return true;
        for (; *only; only++)
                if (strcmp(*only, name) == 0)
                        return true;
        return false;
}

static bool have_channels(const jl_sampler *s, bool (*pred)(const jl_channel *))
{
        for (size_t i = 0; i < s->channels.n; i++)
                if (pred(&s->channels.items[i]))
                        return true;
        return false;
}

static bool is_rapl_package(const jl_channel *c)
{
        return c->kind == JL_KIND_ENERGY && c->scope == JL_SCOPE_PACKAGE && strcmp(c->provider, "rapl") == 0;
}

static bool is_measured_energy(const jl_channel *c)
{
        return c->kind == JL_KIND_ENERGY && !c->estimated &&
               (jl_scope_summed(c->scope) || c->scope == JL_SCOPE_NODE);
}

int jl_sampler_open(const jl_provider_config *cfg, const char *const *only, jl_sampler **ret)
{
        jl_sampler *s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;

        for (const jl_provider_ops *const *p = jl_providers; *p; p++) {
                const jl_provider_ops *ops = *p;
                if (!name_in(ops->name, only))
                        continue;
                if (strcmp(ops->name, "rapl-msr") == 0 && have_channels(s, is_rapl_package)) {
                        jl_notes_add(&s->notes, ops->name, -EEXIST,
                                     "not used: RAPL is already read through the powercap sysfs");
                        continue;
                }
                if (strcmp(ops->name, "estimate") == 0 && have_channels(s, is_measured_energy)) {
                        jl_notes_add(&s->notes, ops->name, -EEXIST,
                                     "not used: this machine has measured energy sensors");
                        continue;
                }
                if (s->nprov == ARRAY_SIZE(s->prov))
                        break;
                size_t before = s->channels.n;
                void *state = NULL;
                int r = ops->open(cfg, &s->channels, &s->notes, &state);
                if (r < 0) {
                        s->channels.n = before;
                        continue;
                }
                if (s->channels.n == before) {
                        ops->close(state);
                        continue;
                }
                s->prov[s->nprov].ops = ops;
                s->prov[s->nprov].state = state;
                s->prov[s->nprov].first = before;
                s->prov[s->nprov].count = s->channels.n - before;
                s->nprov++;
        }

        size_t n = s->channels.n ? s->channels.n : 1;
        s->tracks = calloc(n, sizeof(*s->tracks));
        s->values = calloc(n, sizeof(*s->values));
        s->guard_values = calloc(n, sizeof(*s->guard_values));
        if (!s->tracks || !s->values || !s->guard_values) {
                jl_sampler_free(s);
                return -ENOMEM;
        }
        for (size_t i = 0; i < s->channels.n; i++)
                s->tracks[i].ch = s->channels.items[i];
        *ret = s;
        return 0;
}

void jl_sampler_free(jl_sampler *s)
{
        if (!s)
                return;
        for (size_t i = s->nprov; i > 0; i--)
                s->prov[i - 1].ops->close(s->prov[i - 1].state);
        jl_channels_free(&s->channels);
        jl_notes_free(&s->notes);
        free(s->tracks);
        free(s->values);
        free(s->guard_values);
        free(s);
}

void jl_sampler_set_interval(jl_sampler *s, uint64_t interval_ns)
{
        s->interval_ns = interval_ns;
}

void jl_sampler_set_callback(jl_sampler *s, jl_sample_cb cb, void *userdata)
{
        s->cb = cb;
        s->userdata = userdata;
}

double jl_track_bound_w(const jl_track *t)
{
        if (t->ch.max_power_w > 0)
                return MAX(t->ch.max_power_w, t->peak_w);
        if (t->peak_seen)
                return MAX(JL_GUARD_MARGIN * t->peak_w, JL_GUARD_MIN_W);
        return 0;
}

uint64_t jl_track_guard_ns(const jl_track *t)
{
        if (t->ch.kind != JL_KIND_ENERGY || t->ch.wrap_uj == 0)
                return UINT64_MAX;
        double bound = jl_track_bound_w(t);
        if (bound <= 0)
                return JL_GUARD_PROBE_NS;
        double ns = (double)t->ch.wrap_uj / 1e6 / (4 * bound) * 1e9;
        return ns < (double)JL_GUARD_MIN_NS ? JL_GUARD_MIN_NS : ns > 1e18 ? (uint64_t)1e18 : (uint64_t)ns;
}

/* Resolve the energy of an ambiguous interval: delta0 plus the whole number of wraps (at most what the
 * bound allows) that brings it nearest the latest good power. */
static uint64_t resolve_gap(const jl_track *t, uint64_t delta0, double dt_s, double bound_w, unsigned *ret_k)
{
        double wrap = (double)t->ch.wrap_uj;
        double want = t->rate_w * dt_s * 1e6;
        double kmax = ceil(bound_w * dt_s * 1e6 / wrap);
        double k = want > (double)delta0 ? floor(((want - (double)delta0) / wrap) + 0.5) : 0;
        k = MIN(k, MIN(kmax, 1e6));
        *ret_k = (unsigned)k;
        return delta0 + (uint64_t)k * t->ch.wrap_uj;
}

void jl_track_unwrap(jl_track *t, const jl_value *v, uint64_t t_ns)
{
        if (!t->have_last) {
                t->last_raw = v->counter;
                t->have_last = true;
                t->last_ok_ns = t_ns;
                return;
        }
        uint64_t dt_ns = t_ns - t->last_ok_ns;
        double dt = (double)dt_ns / 1e9;
        uint64_t delta;
        bool wrapped;
        double bound = jl_track_bound_w(t);
        int r;
        if (t->ch.wrap_uj > 0 && bound > 0 && bound * dt * 1e6 >= (double)t->ch.wrap_uj / 2 &&
            v->counter <= t->ch.wrap_uj && t->last_raw <= t->ch.wrap_uj) {
                /* At the power it may draw, the counter could have gone half its range or more round:
                 * how often it wrapped is a guess. Take the guess nearest the latest power, and say so. */
                uint64_t delta0 = v->counter >= t->last_raw ? v->counter - t->last_raw
                                                            : v->counter + (t->ch.wrap_uj - t->last_raw);
                unsigned k;
                delta = resolve_gap(t, delta0, dt, bound, &k);
                t->wraps += k + (v->counter < t->last_raw);
                t->gaps++;
                t->gap_ns += dt_ns;
                t->energy_uj += delta;
                t->last_raw = v->counter;
                t->last_ok_ns = t_ns;
                return;
        }
        r = jl_energy_delta(t->last_raw, v->counter, t->ch.wrap_uj, &delta, &wrapped);
        if (r == 0 && dt > 0 && (double)delta / 1e6 / dt > JL_MAX_PLAUSIBLE_W)
                r = -ERANGE;
        if (r < 0) {
                /* The counter misbehaved (went backwards without a wrap, jumped absurdly): bridge the
                 * interval with the latest good power and resynchronise on the new value. */
                t->glitches++;
                t->last_err = r;
                delta = dt > 0 ? (uint64_t)llround(t->rate_w * dt * 1e6) : 0;
        } else if (dt > 0) {
                t->wraps += wrapped;
                double rate = (double)delta / 1e6 / dt;
                /* Reads close together see the counter's own update steps (about 1 ms on RAPL): the power
                 * that bridges glitches and resolves gaps is smoothed over JL_RATE_TAU_NS, and only
                 * intervals of JL_PEAK_MIN_NS or more count towards the peak that schedules the reads. */
                double alpha = t->peak_seen ? dt / (dt + (double)JL_RATE_TAU_NS / 1e9) : 1;
                t->rate_w += alpha * (rate - t->rate_w);
                if (dt_ns >= JL_PEAK_MIN_NS)
                        t->peak_w = MAX(t->peak_w, rate);
                t->peak_seen = true;
        }
        t->energy_uj += delta;
        t->last_raw = v->counter;
        t->last_ok_ns = t_ns;
}

/* The statistics of the interval since this channel's previous sample. */
static void account_energy(jl_track *t, const jl_value *v, uint64_t t_ns, uint64_t min_interval_ns)
{
        jl_track_unwrap(t, v, t_ns);
        if (!t->have_sample) {
                t->have_sample = true;
                t->sample_uj = t->energy_uj;
                t->sample_ns = t_ns;
                return;
        }
        if (t_ns > t->sample_ns) {
                double dt = (double)(t_ns - t->sample_ns) / 1e9;
                t->power_w = (double)(t->energy_uj - t->sample_uj) / 1e6 / dt;
                /* Only intervals of a regular length count towards the maximum: a very short interval (a
                 * phase boundary right after a tick) quantises the counter too coarsely. */
                if (t_ns - t->sample_ns >= min_interval_ns)
                        t->power_max_w = MAX(t->power_max_w, t->power_w);
        }
        t->sample_uj = t->energy_uj;
        t->sample_ns = t_ns;
}

static void account_gauge(jl_track *t, const jl_value *v, uint64_t t_ns, uint64_t t_prev_ns)
{
        double x = v->gauge;
        if (!isfinite(x)) {
                t->errors++;
                t->last_err = -ERANGE;
                return;
        }
        if (!t->have_value) {
                t->min = t->max = x;
                t->have_value = true;
        }
        t->min = MIN(t->min, x);
        t->max = MAX(t->max, x);
        if (t_prev_ns && t_ns > t_prev_ns) {
                double dt = (double)(t_ns - t_prev_ns) / 1e9;
                t->weighted_sum += x * dt;
                t->weight_s += dt;
        }
        t->value = x;
        t->last_ok_ns = t_ns;
}

void jl_sampler_account(jl_sampler *s, const jl_value *values, uint64_t t_ns, uint64_t boot_ns)
{
        uint64_t t_prev = s->nsamples ? s->t_last_ns : 0;
        for (size_t i = 0; i < s->channels.n; i++) {
                jl_track *t = &s->tracks[i];
                const jl_value *v = &values[i];
                if (v->err == -EAGAIN)
                        continue; /* no value yet (e.g. a rate over less than a clock tick): not a failure */
                if (v->err < 0) {
                        t->errors++;
                        t->last_err = v->err;
                        continue;
                }
                if (t->ch.kind == JL_KIND_ENERGY)
                        account_energy(t, v, t_ns, MAX(s->interval_ns / 2, NSEC_PER_MSEC / 2));
                else if (t->ch.kind == JL_KIND_UTILIZATION && t_prev)
                        /* A rate since the provider's previous value (or since it opened, about the first
                         * sample), which may be older than the previous sample when reads in between
                         * answered -EAGAIN: it weighs for its whole window (within these statistics). */
                        account_gauge(t, v, t_ns, MAX(t->last_ok_ns, s->t_first_ns));
                else
                        /* A reading holds for the time since the previous one of this channel, which may
                         * be several ticks back when its provider is read less often. */
                        account_gauge(t, v, t_ns, t->have_value ? MAX(t->last_ok_ns, s->t_first_ns) : t_prev);
        }
        if (s->nsamples == 0) {
                s->t_first_ns = t_ns;
                s->boot_first_ns = boot_ns;
        }
        s->t_prev_ns = t_prev;
        s->t_last_ns = t_ns;
        s->boot_last_ns = boot_ns;
        s->nsamples++;
        if (s->cb)
                s->cb(s->userdata, s, t_ns);
}

static int sample_at(jl_sampler *s, uint64_t t_ns, uint64_t boot_ns, bool all)
{
        for (size_t p = 0; p < s->nprov; p++) {
                jl_value *v = s->values + s->prov[p].first;
                /* A provider is due when its period has (nearly: 5% slack for timer jitter) passed. */
                uint64_t period = s->prov[p].ops->min_period_ns;
                bool due = all || period == 0 || s->prov[p].last_read_ns == 0 ||
                           t_ns - s->prov[p].last_read_ns >= period - period / 20;
                for (size_t k = 0; k < s->prov[p].count; k++)
                        v[k] = (jl_value){.err = due ? 0 : -EAGAIN};
                if (!due)
                        continue;
                s->prov[p].last_read_ns = t_ns;
                int r = s->prov[p].ops->read(s->prov[p].state, v);
                if (r < 0)
                        for (size_t k = 0; k < s->prov[p].count; k++)
                                if (v[k].err == 0)
                                        v[k].err = r;
        }
        jl_sampler_account(s, s->values, t_ns, boot_ns);
        return 0;
}

/* A provider's guard period: the shortest of its counters' (UINT64_MAX: none of them wraps). */
static uint64_t prov_guard_ns(const jl_sampler *s, size_t p)
{
        uint64_t g = UINT64_MAX;
        for (size_t k = 0; k < s->prov[p].count; k++)
                g = MIN(g, jl_track_guard_ns(&s->tracks[s->prov[p].first + k]));
        return g;
}

uint64_t jl_sampler_next_due_ns(const jl_sampler *s)
{
        uint64_t due = UINT64_MAX;
        for (size_t p = 0; p < s->nprov; p++) {
                uint64_t g = prov_guard_ns(s, p);
                if (g != UINT64_MAX && s->prov[p].last_read_ns)
                        due = MIN(due, s->prov[p].last_read_ns + g);
        }
        return due;
}

int jl_sampler_guard_timeout_ms(const jl_sampler *s, uint64_t now_ns)
{
        uint64_t due = jl_sampler_next_due_ns(s);
        if (due == UINT64_MAX)
                return -1;
        if (due <= now_ns)
                return 0;
        return (int)MIN((due - now_ns + NSEC_PER_MSEC - 1) / NSEC_PER_MSEC, (uint64_t)INT32_MAX);
}

int jl_sampler_guard_at(jl_sampler *s, uint64_t t_ns)
{
        for (size_t p = 0; p < s->nprov; p++) {
                uint64_t g = prov_guard_ns(s, p);
                /* due when (nearly: an eighth of the period of slack for timer jitter) its period passed */
                if (g == UINT64_MAX || !s->prov[p].last_read_ns ||
                    t_ns + g / 8 < s->prov[p].last_read_ns + g)
                        continue;
                jl_value *v = s->guard_values + s->prov[p].first;
                for (size_t k = 0; k < s->prov[p].count; k++)
                        v[k] = (jl_value){0};
                s->prov[p].last_read_ns = t_ns;
                int r = s->prov[p].ops->read(s->prov[p].state, v);
                for (size_t k = 0; k < s->prov[p].count; k++) {
                        jl_track *t = &s->tracks[s->prov[p].first + k];
                        int err = r < 0 && v[k].err == 0 ? r : v[k].err;
                        if (t->ch.kind != JL_KIND_ENERGY || err == -EAGAIN)
                                continue;
                        if (err < 0) {
                                t->errors++;
                                t->last_err = err;
                                continue;
                        }
                        jl_track_unwrap(t, &v[k], t_ns);
                }
        }
        return 0;
}

int jl_sampler_guard(jl_sampler *s)
{
        return jl_sampler_guard_at(s, mono_ns());
}

unsigned jl_sampler_gaps(const jl_sampler *s, uint64_t *ret_gap_ns)
{
        unsigned n = 0;
        uint64_t ns = 0;
        for (size_t i = 0; i < s->channels.n; i++) {
                const jl_track *t = &s->tracks[i];
                if (t->ch.kind == JL_KIND_ENERGY && !t->ch.estimated &&
                    (jl_scope_summed(t->ch.scope) || t->ch.scope == JL_SCOPE_NODE)) {
                        n += t->gaps;
                        ns += t->gap_ns;
                }
        }
        if (ret_gap_ns)
                *ret_gap_ns = ns;
        return n;
}

int jl_sampler_sample_at(jl_sampler *s, uint64_t t_ns, uint64_t boot_ns)
{
        return sample_at(s, t_ns, boot_ns, true);
}

int jl_sampler_sample(jl_sampler *s)
{
        uint64_t t = mono_ns();
        return sample_at(s, t, now_ns(CLOCK_BOOTTIME), true);
}

int jl_sampler_tick(jl_sampler *s)
{
        uint64_t t = mono_ns();
        return sample_at(s, t, now_ns(CLOCK_BOOTTIME), false);
}

void jl_sampler_reset_stats(jl_sampler *s)
{
        for (size_t i = 0; i < s->channels.n; i++) {
                jl_track *t = &s->tracks[i];
                t->energy_uj = 0;
                t->sample_uj = 0;
                t->power_max_w = 0;
                t->wraps = t->glitches = t->errors = t->gaps = 0;
                t->gap_ns = 0;
                t->weighted_sum = t->weight_s = 0;
                if (t->have_value)
                        t->min = t->max = t->value;
        }
        s->t_first_ns = s->t_last_ns;
        s->boot_first_ns = s->boot_last_ns;
        s->nsamples = s->nsamples ? 1 : 0;
}

double jl_sampler_suspended_s(const jl_sampler *s)
{
        if (s->nsamples < 2)
                return 0;
        int64_t boot = (int64_t)(s->boot_last_ns - s->boot_first_ns);
        int64_t mono = (int64_t)(s->t_last_ns - s->t_first_ns);
        double d = (double)(boot - mono) / 1e9;
        return d > 0.5 ? d : 0; /* below half a second it is clock noise, not a suspend */
}

double jl_track_mean(const jl_track *t)
{
        if (!t->have_value)
                return NAN;
        return t->weight_s > 0 ? t->weighted_sum / t->weight_s : t->value;
}

double jl_sampler_total_energy_j(const jl_sampler *s, jl_total_source *ret_source)
{
        double domains = 0, node = 0, estimate = 0;
        bool have_domains = false, have_node = false, have_estimate = false;
        for (size_t i = 0; i < s->channels.n; i++) {
                const jl_track *t = &s->tracks[i];
                if (t->ch.kind != JL_KIND_ENERGY)
                        continue;
                double e = (double)t->energy_uj / 1e6;
                if (t->ch.estimated) {
                        if (t->ch.scope == JL_SCOPE_NODE) {
                                estimate += e;
                                have_estimate = true;
                        }
                } else if (jl_scope_summed(t->ch.scope)) {
                        domains += e;
                        have_domains = true;
                } else if (t->ch.scope == JL_SCOPE_NODE && !have_node) {
                        node = e; /* one whole-node reading: psys and IPMI both see the same node */
                        have_node = true;
                }
        }
        jl_total_source src = have_domains ? JL_TOTAL_DOMAINS
                              : have_node  ? JL_TOTAL_NODE
                              : have_estimate ? JL_TOTAL_ESTIMATE
                                              : JL_TOTAL_NONE;
        if (ret_source)
                *ret_source = src;
        return src == JL_TOTAL_DOMAINS ? domains : src == JL_TOTAL_NODE ? node : estimate;
}

const char *jl_total_source_name(jl_total_source src)
{
        switch (src) {
        case JL_TOTAL_DOMAINS:
                return "domains";
        case JL_TOTAL_NODE:
                return "node";
        case JL_TOTAL_ESTIMATE:
                return "estimate";
        default:
                return "none";
        }
}
