/* dynais.c - loop detection on a stream of events in the manner of EAR's DynAIS (see dynais.h and
 * docs/runtime-dynais.md). Each level keeps its last `window` events and, for every lag 1..window, how many
 * consecutive events equalled the one that lag back. A loop of period P is confirmed when that run at lag
 * P reaches max((JL_DYNAIS_MIN_PERIODS - 1) × P, min_match), P the smallest such lag; it lasts while each
 * event equals the one P back. Level n + 1 receives the identity of every loop that level n confirms. */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "dynais.h"

typedef struct {
        uint32_t *buf; /* 2 × window: each event at pos and pos + window, so that the last window events are
                        * contiguous at buf[pos .. pos + window - 1], oldest first */
        uint16_t *run; /* run[k]: consecutive matches at lag window - k, saturating */
        uint16_t *thr; /* thr[k]: the run that confirms a loop of period window - k */
        uint64_t *raw; /* 2 × window: the raw event index of each of the last 2 × window events */
        uint32_t pos, rpos;
        uint64_t seen;
        /* the loop running at this level; period 0: none */
        uint32_t period, phase, id;
        uint64_t iterations, boundary_raw, iter_events, iter_events_max;
        jl_dynais_loop ended; /* the loop the last END_LOOP / END_NEW_LOOP broke */
} level;

struct jl_dynais {
        uint32_t window, nlevels;
        uint64_t raw; /* events pushed */
        level lv[JL_DYNAIS_LEVELS_MAX];
};

static uint32_t mix32(uint32_t x)
{
        /* the finaliser of MurmurHash3 */
        x ^= x >> 16;
        x *= 0x85ebca6bu;
        x ^= x >> 13;
        x *= 0xc2b2ae35u;
        x ^= x >> 16;
        return x;
}

static void level_reset(level *L, uint32_t window)
{
        memset(L->buf, 0, 2 * (size_t)window * sizeof(*L->buf));
        memset(L->run, 0, (size_t)window * sizeof(*L->run));
        memset(L->raw, 0, 2 * (size_t)window * sizeof(*L->raw));
        L->pos = L->rpos = 0;
        L->seen = 0;
        L->period = L->phase = L->id = 0;
        L->iterations = L->boundary_raw = L->iter_events = L->iter_events_max = 0;
        L->ended = (jl_dynais_loop){.state = JL_DYNAIS_NO_LOOP};
}

void jl_dynais_reset(jl_dynais *d)
{
        if (!d)
                return;
        d->raw = 0;
        for (uint32_t l = 0; l < d->nlevels; l++)
                level_reset(&d->lv[l], d->window);
}

jl_dynais *jl_dynais_free(jl_dynais *d)
{
        if (!d)
                return NULL;
        for (uint32_t l = 0; l < d->nlevels; l++) {
                free(d->lv[l].buf);
                free(d->lv[l].run);
                free(d->lv[l].thr);
                free(d->lv[l].raw);
        }
        free(d);
        return NULL;
}

int jl_dynais_new(uint32_t window, uint32_t levels, jl_dynais **ret)
{
        if (!ret || window < 1 || window > JL_DYNAIS_WINDOW_MAX || levels < 1 ||
            levels > JL_DYNAIS_LEVELS_MAX)
                return -EINVAL;
        jl_dynais *d = calloc(1, sizeof(*d));
        if (!d)
                return -ENOMEM;
        d->window = window;
        for (uint32_t l = 0; l < levels; l++) {
                level *L = &d->lv[l];
                L->buf = malloc(2 * (size_t)window * sizeof(*L->buf));
                L->run = malloc((size_t)window * sizeof(*L->run));
                L->thr = malloc((size_t)window * sizeof(*L->thr));
                L->raw = malloc(2 * (size_t)window * sizeof(*L->raw));
                d->nlevels = l + 1;
                if (!L->buf || !L->run || !L->thr || !L->raw) {
                        jl_dynais_free(d);
                        return -ENOMEM;
                }
                uint32_t min_match = l == 0 ? JL_DYNAIS_MIN_MATCH : JL_DYNAIS_MIN_MATCH_UPPER;
                for (uint32_t k = 0; k < window; k++) {
                        uint32_t lag = window - k, t = (JL_DYNAIS_MIN_PERIODS - 1) * lag;
                        /* ≤ 2 × 4096 + 64: fits a uint16_t, and a saturated run still reaches it */
                        L->thr[k] = (uint16_t)(t > min_match ? t : min_match);
                }
        }
        jl_dynais_reset(d);
        *ret = d;
        return 0;
}

/* The raw index of the event j back at a level (j = 0: the one just stored), j < 2 × window. */
static uint64_t raw_back(const jl_dynais *d, const level *L, uint32_t j)
{
        uint32_t n = 2 * d->window;
        return L->raw[(L->rpos + n - 1 - j) % n];
}

/* A loop is confirmed at the event just stored: take the smallest lag whose run reached its threshold. */
static bool confirm(const jl_dynais *d, level *L)
{
        uint32_t W = d->window, k = W;
        while (k-- > 0)
                if (L->run[k] >= L->thr[k])
                        break;
        if (k >= W)
                return false;
        uint32_t P = W - k, R = L->run[k];
        /* the loop began P + R - 1 events back; this event is at offset (R - 1) mod P of its iteration */
        L->period = P;
        L->phase = (R - 1) % P;
        L->iterations = ((uint64_t)R + P - 1) / P + 1; /* iterations begun, this one included */
        L->boundary_raw = raw_back(d, L, L->phase);
        L->iter_events = L->boundary_raw - raw_back(d, L, L->phase + P);
        L->iter_events_max = L->iter_events;
        /* the identity does not depend on the phase: a sum over one period of the events' hashes */
        uint32_t h = mix32(P * 0x9e3779b9u);
        const uint32_t *newest = L->buf + L->pos + W - 1; /* pos has moved past the event just stored */
        for (uint32_t j = 0; j < P; j++)
                h += mix32(*(newest - j) ^ 0x5bd1e995u);
        L->id = mix32(h);
        return true;
}

static void loop_end(level *L)
{
        L->ended = (jl_dynais_loop){.state = JL_DYNAIS_END_LOOP,
                                    .size = L->period,
                                    .id = L->id,
                                    .iterations = L->iterations,
                                    .iter_events = L->iter_events};
        L->period = L->phase = L->id = 0;
        L->iterations = L->boundary_raw = L->iter_events = L->iter_events_max = 0;
}

/* On x86-64 the hot loops are also built for AVX2, chosen at load time (an ifunc): a quarter faster. */
#if defined(__x86_64__) && defined(__has_attribute)
#if __has_attribute(target_clones)
#define HOT_CLONES __attribute__((target_clones("avx2", "default")))
#endif
#endif
#ifndef HOT_CLONES
#define HOT_CLONES
#endif

HOT_CLONES static jl_dynais_state level_push(jl_dynais *d, level *L, uint32_t e, uint64_t raw)
{
        const uint32_t W = d->window;
        const uint32_t *restrict b = L->buf + L->pos;
        uint16_t *restrict run = L->run;
        const uint16_t *restrict thr = L->thr;
        uint32_t hit = 0;
        /* The hot loops: branch-free so that compilers vectorise them. Inside a loop only the runs are kept
         * up to date (the steady state of an application, a third cheaper); whether another lag qualifies is
         * asked (confirm()) only when the loop breaks. */
        if (L->period) {
                for (uint32_t k = 0; k < W; k++) {
                        uint16_t r = run[k];
                        run[k] = b[k] == e ? (uint16_t)(r + (r != UINT16_MAX)) : 0;
                }
                hit = 1;
        } else
                for (uint32_t k = 0; k < W; k++) {
                        uint16_t r = run[k];
                        r = b[k] == e ? (uint16_t)(r + (r != UINT16_MAX)) : 0;
                        run[k] = r;
                        hit |= r >= thr[k];
                }
        /* lags longer than what was seen compared with nothing */
        if (L->seen < W)
                memset(run, 0, (W - L->seen) * sizeof(*run));
        L->buf[L->pos] = L->buf[L->pos + W] = e;
        L->pos = L->pos + 1 == W ? 0 : L->pos + 1;
        L->raw[L->rpos] = raw;
        L->rpos = L->rpos + 1 == 2 * W ? 0 : L->rpos + 1;
        L->seen++;

        if (L->period) {
                if (run[W - L->period] > 0) {
                        if (++L->phase < L->period)
                                return JL_DYNAIS_IN_LOOP;
                        L->phase = 0;
                        L->iterations++;
                        L->iter_events = raw - L->boundary_raw;
                        if (L->iter_events > L->iter_events_max)
                                L->iter_events_max = L->iter_events;
                        L->boundary_raw = raw;
                        return JL_DYNAIS_NEW_ITERATION;
                }
                loop_end(L);
                return hit && confirm(d, L) ? JL_DYNAIS_END_NEW_LOOP : JL_DYNAIS_END_LOOP;
        }
        return hit && confirm(d, L) ? JL_DYNAIS_NEW_LOOP : JL_DYNAIS_NO_LOOP;
}

static void describe(const level *L, uint32_t l, jl_dynais_state s, jl_dynais_loop *ret)
{
        if (s == JL_DYNAIS_END_LOOP) {
                *ret = L->ended;
                ret->level = l;
                return;
        }
        *ret = (jl_dynais_loop){.state = s,
                                .level = l,
                                .size = L->period,
                                .id = L->id,
                                .iterations = L->iterations,
                                .iter_events = L->iter_events};
}

jl_dynais_state jl_dynais_push(jl_dynais *d, uint32_t event, jl_dynais_loop *ret)
{
        jl_dynais_state st[JL_DYNAIS_LEVELS_MAX];
        uint64_t raw = d->raw++;
        uint32_t l = 0, touched;
        st[0] = level_push(d, &d->lv[0], event, raw);
        /* a confirmed loop's identity is the next level's event */
        while ((st[l] == JL_DYNAIS_NEW_LOOP || st[l] == JL_DYNAIS_END_NEW_LOOP) && l + 1 < d->nlevels) {
                uint32_t id = d->lv[l].id;
                l++;
                st[l] = level_push(d, &d->lv[l], id, raw);
        }
        touched = l;
        /* Levels not reached go on, unless their current iteration has lasted more than twice their longest
         * one (plus the time a loop below needs to be confirmed again): then what fed them has stopped. */
        for (l = touched + 1; l < d->nlevels; l++) {
                level *L = &d->lv[l];
                st[l] = JL_DYNAIS_NO_LOOP;
                if (!L->period)
                        continue;
                uint64_t slack = 2 * L->iter_events_max + 3ull * d->window + JL_DYNAIS_MIN_MATCH;
                if (raw - L->boundary_raw > slack) {
                        loop_end(L);
                        st[l] = JL_DYNAIS_END_LOOP;
                } else
                        st[l] = JL_DYNAIS_IN_LOOP;
        }
        for (l = d->nlevels; l-- > 0;)
                if (st[l] != JL_DYNAIS_NO_LOOP)
                        break;
        if (l >= d->nlevels)
                l = 0;
        if (ret)
                describe(&d->lv[l], l, st[l], ret);
        return st[l];
}

int jl_dynais_level(const jl_dynais *d, uint32_t level_no, jl_dynais_loop *ret)
{
        if (!d || !ret || level_no >= d->nlevels)
                return -EINVAL;
        const level *L = &d->lv[level_no];
        describe(L, level_no, L->period ? JL_DYNAIS_IN_LOOP : JL_DYNAIS_NO_LOOP, ret);
        return 0;
}

const char *jl_dynais_state_name(jl_dynais_state s)
{
        static const char *const names[] = {
            [JL_DYNAIS_NO_LOOP] = "no-loop",
            [JL_DYNAIS_IN_LOOP] = "in-loop",
            [JL_DYNAIS_NEW_ITERATION] = "new-iteration",
            [JL_DYNAIS_NEW_LOOP] = "new-loop",
            [JL_DYNAIS_END_LOOP] = "end-loop",
            [JL_DYNAIS_END_NEW_LOOP] = "end-new-loop",
        };
        return (unsigned)s < sizeof(names) / sizeof(names[0]) ? names[s] : "?";
}
