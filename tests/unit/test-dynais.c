/* test-dynais.c - loop detection on known streams: the period found and when, iterations, the end of a
 * loop, a period that changes mid-run, nested loops on one level and across levels, loops of random bodies,
 * and random streams (26 and 2 symbols) that must never yield a loop. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dynais.h"
#include "tap.h"

static uint64_t rng_state;

static uint32_t rnd(uint32_t n)
{
        /* xorshift64*: deterministic for a given seed */
        rng_state ^= rng_state >> 12;
        rng_state ^= rng_state << 25;
        rng_state ^= rng_state >> 27;
        return (uint32_t)((rng_state * 0x2545f4914f6cdd1dull) >> 32) % n;
}

typedef struct {
        size_t n, size;
        uint32_t *ev;
} stream;

static void put(stream *s, uint32_t e)
{
        if (s->n == s->size) {
                s->size = s->size ? 2 * s->size : 1024;
                s->ev = realloc(s->ev, s->size * sizeof(*s->ev));
                if (!s->ev)
                        abort();
        }
        s->ev[s->n++] = e;
}

/* body repeated `times` times */
static void put_loop(stream *s, const uint32_t *body, size_t len, size_t times)
{
        for (size_t t = 0; t < times; t++)
                for (size_t i = 0; i < len; i++)
                        put(s, body[i]);
}

/* The results of pushing a stream: the state of each event. */
typedef struct {
        jl_dynais_loop *r;
        size_t n;
} run_out;

static run_out feed(jl_dynais *d, const stream *s)
{
        run_out o = {.r = calloc(s->n ? s->n : 1, sizeof(jl_dynais_loop)), .n = s->n};
        if (!o.r)
                abort();
        for (size_t i = 0; i < s->n; i++) {
                jl_dynais_state st = jl_dynais_push(d, s->ev[i], &o.r[i]);
                if (st != o.r[i].state)
                        o.r[i].state = (jl_dynais_state)-1; /* the return and *ret disagree: make it show */
        }
        return o;
}

/* index of the first event from `from` with that state (at that level, any when level < 0), or -1 */
static long first(const run_out *o, size_t from, jl_dynais_state st, int level)
{
        for (size_t i = from; i < o->n; i++)
                if (o->r[i].state == st && (level < 0 || o->r[i].level == (uint32_t)level))
                        return (long)i;
        return -1;
}

static size_t count(const run_out *o, jl_dynais_state st)
{
        size_t c = 0;
        for (size_t i = 0; i < o->n; i++)
                c += o->r[i].state == st;
        return c;
}

static size_t confirm_after(size_t period)
{
        /* events from the loop's first event to the one that confirms it (inclusive) */
        size_t t = (JL_DYNAIS_MIN_PERIODS - 1) * period;
        return period + (t > JL_DYNAIS_MIN_MATCH ? t : JL_DYNAIS_MIN_MATCH);
}

static void test_api(void)
{
        jl_dynais *d = NULL;
        is_int(jl_dynais_new(0, 10, &d), -EINVAL, "window 0 refused");
        is_int(jl_dynais_new(JL_DYNAIS_WINDOW_MAX + 1, 10, &d), -EINVAL, "window above the maximum refused");
        is_int(jl_dynais_new(200, 0, &d), -EINVAL, "0 levels refused");
        is_int(jl_dynais_new(200, JL_DYNAIS_LEVELS_MAX + 1, &d), -EINVAL, "too many levels refused");
        ok(d == NULL, "nothing returned on error");
        is_int(jl_dynais_new(200, 10, &d), 0, "window 200, 10 levels");
        jl_dynais_loop l;
        is_int(jl_dynais_level(d, 10, &l), -EINVAL, "level 10 of 10 does not exist");
        is_int(jl_dynais_level(d, 9, &l), 0, "level 9 exists");
        is_int(l.state, JL_DYNAIS_NO_LOOP, "nothing running at first");
        is_int(jl_dynais_push(d, 7, NULL), JL_DYNAIS_NO_LOOP, "push with no result struct");
        is_str(jl_dynais_state_name(JL_DYNAIS_END_NEW_LOOP), "end-new-loop", "state names");
        ok(jl_dynais_free(d) == NULL, "free");
        ok(jl_dynais_free(NULL) == NULL, "free(NULL)");
}

/* A loop of period P after a prefix of distinct events: confirmed exactly confirm_after(P) events after its
 * start, with size P; then a new iteration every P events and in-loop between; the first event that breaks
 * it ends it. */
static void test_period(uint32_t window, uint32_t P)
{
        jl_dynais *d = NULL;
        if (jl_dynais_new(window, 10, &d) < 0)
                abort();
        stream s = {0};
        uint32_t body[JL_DYNAIS_WINDOW_MAX + 1];
        for (uint32_t i = 0; i < 30; i++)
                put(&s, 100000 + i); /* distinct prefix */
        for (uint32_t i = 0; i < P; i++)
                body[i] = 1000 + i;
        size_t reps = confirm_after(P) / P + 10, start = s.n;
        put_loop(&s, body, P, reps);
        size_t end = s.n;
        put(&s, 999999);
        run_out o = feed(d, &s);
        long nl = first(&o, 0, JL_DYNAIS_NEW_LOOP, 0);
        if (P > window) {
                is_int(count(&o, JL_DYNAIS_NEW_LOOP), 0, "period %u > window %u: never a loop", P, window);
                goto out;
        }
        is_int(nl, (long)(start + confirm_after(P) - 1), "period %u: new loop %zu events after its start", P,
               confirm_after(P));
        if (nl < 0)
                goto out;
        is_int(o.r[nl].size, P, "period %u: size", P);
        is_int(o.r[nl].iterations, (confirm_after(P) - 1) / P + 1,
               "period %u: iterations begun at confirmation", P);
        bool states_ok = true;
        for (size_t i = (size_t)nl + 1; i < end; i++) {
                jl_dynais_state want = (i - start) % P == 0 ? JL_DYNAIS_NEW_ITERATION : JL_DYNAIS_IN_LOOP;
                if (o.r[i].state != want || o.r[i].size != P || o.r[i].level != 0)
                        states_ok = false;
        }
        ok(states_ok, "period %u: new-iteration on each iteration's first event, in-loop between", P);
        is_int(o.r[end - 1].iterations, reps, "period %u: %zu iterations counted", P, reps);
        is_int(o.r[end].state, JL_DYNAIS_END_LOOP, "period %u: the breaking event ends the loop", P);
        is_int(o.r[end].size, P, "period %u: end-loop names the period", P);
        if (P > 1)
                is_int(o.r[nl].iter_events, P, "period %u: raw events per iteration", P);
out:
        free(o.r);
        free(s.ev);
        jl_dynais_free(d);
}

/* 3 → 5: the change ends the loop at once; the new one is confirmed confirm_after(5) events later. */
static void test_period_change(void)
{
        jl_dynais *d = NULL;
        if (jl_dynais_new(200, 10, &d) < 0)
                abort();
        stream s = {0};
        const uint32_t b3[] = {1, 2, 3}, b5[] = {1, 2, 3, 4, 5};
        put_loop(&s, b3, 3, 60);
        size_t change = s.n;
        put_loop(&s, b5, 5, 60);
        run_out o = feed(d, &s);
        long e = first(&o, 0, JL_DYNAIS_END_LOOP, 0);
        /* 1 2 3 | 1 2 3 4: the '4' is the first event unlike the one 3 back */
        is_int(e, (long)change + 3, "3→5: end-loop on the first event that breaks period 3");
        long n = first(&o, (size_t)(e > 0 ? e : 0), JL_DYNAIS_NEW_LOOP, 0);
        ok(n > 0 && o.r[n].size == 5, "3→5: the new loop has period 5");
        ok(n > 0 && (size_t)n <= change + confirm_after(5),
           "3→5: confirmed at most %zu events after the change", confirm_after(5));
        is_int(count(&o, JL_DYNAIS_NEW_LOOP), 2, "3→5: two loops, nothing else");
        free(o.r);
        free(s.ev);
        jl_dynais_free(d);
}

/* (ab×40 cd)×N on one level, window 200, the stream entering the pattern at its 70th event: first period 2
 * (ab); the outer period 82 is confirmed (3 periods) while ab runs, and replaces it on the event that breaks
 * ab (end-new-loop), and stays. */
static void test_nested_one_level(void)
{
        jl_dynais *d = NULL;
        if (jl_dynais_new(200, 10, &d) < 0)
                abort();
        stream s = {0};
        uint32_t outer[82];
        for (int i = 0; i < 80; i++)
                outer[i] = i % 2 ? 'b' : 'a';
        outer[80] = 'c';
        outer[81] = 'd';
        for (int i = 70; i < 82; i++)
                put(&s, outer[i]);
        put_loop(&s, outer, 82, 12);
        run_out o = feed(d, &s);
        long a = first(&o, 0, JL_DYNAIS_NEW_LOOP, 0);
        ok(a >= 0 && o.r[a].size == 2, "nested: the inner loop (period 2) first");
        long en = first(&o, 0, JL_DYNAIS_END_NEW_LOOP, 0);
        ok(en > a && o.r[en].size == 82,
           "nested: then the outer loop (82) on the event that breaks the inner");
        ok(en > 0 && (size_t)en < 4 * 82, "nested: the outer loop found within 4 outer iterations");
        bool stays = en > 0;
        for (size_t i = (size_t)(en > 0 ? en : 0) + 1; i < o.n; i++)
                if (o.r[i].size != 82 ||
                    (o.r[i].state != JL_DYNAIS_IN_LOOP && o.r[i].state != JL_DYNAIS_NEW_ITERATION))
                        stays = false;
        ok(stays, "nested: the outer loop holds to the end");
        free(o.r);
        free(s.ev);
        jl_dynais_free(d);
}

/* Loops longer than the window, window 16: (a b)×40 (c d e)×30 repeated. Level 0 finds ab, then cde, in
 * every outer iteration; level 1 receives their identities and finds the outer loop (size 2, 170 raw events
 * per iteration). When the stream turns random, level 1's loop ends by its timeout. */
static void test_nested_levels(void)
{
        jl_dynais *d = NULL;
        if (jl_dynais_new(16, 3, &d) < 0)
                abort();
        stream s = {0};
        const uint32_t ab[] = {'a', 'b'}, cde[] = {'c', 'd', 'e'};
        for (int k = 0; k < 10; k++) {
                put_loop(&s, ab, 2, 40);
                put_loop(&s, cde, 3, 30);
        }
        size_t outer_end = s.n;
        rng_state = 42;
        for (int i = 0; i < 2000; i++)
                put(&s, 1000 + rnd(1u << 30));
        run_out o = feed(d, &s);
        long l1 = first(&o, 0, JL_DYNAIS_NEW_LOOP, 1);
        ok(l1 > 0, "levels: a loop at level 1");
        if (l1 > 0) {
                is_int(o.r[l1].size, 2, "levels: level 1 loop has two inner loops per iteration");
                is_int(o.r[l1].iter_events, 170, "levels: 170 raw events per outer iteration");
                ok((size_t)l1 < 6 * 170, "levels: found within 6 outer iterations (at %ld)", l1);
        }
        size_t its = 0;
        bool inner_seen = false;
        for (size_t i = (size_t)(l1 > 0 ? l1 : 0) + 1; i < outer_end; i++) {
                its += o.r[i].state == JL_DYNAIS_NEW_ITERATION && o.r[i].level == 1;
                inner_seen |= o.r[i].level == 0 && o.r[i].state != JL_DYNAIS_NO_LOOP;
        }
        ok(!inner_seen, "levels: while the outer loop runs, the reported level is 1");
        ok(its >= 4 && its <= 6, "levels: one new iteration at level 1 per outer iteration (%zu)", its);
        jl_dynais_loop l0;
        jl_dynais_level(d, 0, &l0);
        is_int(l0.state, JL_DYNAIS_NO_LOOP, "levels: level 0 has no loop in the random tail");
        long e1 = first(&o, outer_end, JL_DYNAIS_END_LOOP, 1);
        ok(e1 > 0 && (size_t)e1 < outer_end + 2 * 170 + 3 * 16 + JL_DYNAIS_MIN_MATCH + 1,
           "levels: level 1's loop ends by timeout once its input stops (at %ld, outer end %zu)", e1,
           outer_end);
        jl_dynais_loop l1s;
        jl_dynais_level(d, 1, &l1s);
        is_int(l1s.state, JL_DYNAIS_NO_LOOP, "levels: nothing runs at level 1 at the end");
        is_int(o.r[o.n - 1].state, JL_DYNAIS_NO_LOOP, "levels: the random tail ends as no-loop");
        free(o.r);
        free(s.ev);
        jl_dynais_free(d);
}

/* The smallest period of a cyclic body */
static uint32_t min_period(const uint32_t *b, uint32_t len)
{
        for (uint32_t p = 1; p < len; p++) {
                if (len % p)
                        continue;
                bool same = true;
                for (uint32_t i = 0; i < len && same; i++)
                        same = b[i] == b[(i + p) % len];
                if (same)
                        return p;
        }
        return len;
}

/* Random bodies (26 symbols, period 1..200) after a random prefix: the loop found has the body's smallest
 * period, no later than confirm_after(period) events after the loop starts; no loop before it starts. */
static void test_random_bodies(void)
{
        jl_dynais *d = NULL;
        if (jl_dynais_new(200, 10, &d) < 0)
                abort();
        rng_state = 7;
        int good = 0, n = 60, early = 0;
        for (int t = 0; t < n; t++) {
                jl_dynais_reset(d);
                stream s = {0};
                uint32_t body[200], len = 1 + rnd(200);
                for (uint32_t i = 0; i < len; i++)
                        body[i] = 'a' + rnd(26);
                for (int i = 0; i < 500; i++)
                        put(&s, 'a' + rnd(26));
                size_t start = s.n;
                put_loop(&s, body, len, confirm_after(len) / len + 2);
                uint32_t P = min_period(body, len);
                run_out o = feed(d, &s);
                long nl = first(&o, 0, JL_DYNAIS_NEW_LOOP, 0);
                early += nl >= 0 && (size_t)nl < start;
                if (nl >= (long)start && o.r[nl].size == P && (size_t)nl <= start + confirm_after(P) - 1)
                        good++;
                else
                        printf("# body %u (period %u): new loop at %ld size %u, start %zu\n", len, P, nl,
                               nl >= 0 ? o.r[nl].size : 0, start);
                free(o.r);
                free(s.ev);
        }
        is_int(early, 0, "random bodies: no loop in the random prefixes");
        is_int(good, n, "random bodies: the smallest period, in time, every time");
        jl_dynais_free(d);
}

/* Random streams never yield a loop: EAR's DynAIS reports 5 false loops in 3,000 events of 26 symbols and
 * 492 of 2 symbols; here 20 streams of 20,000 events each, of 26 and of 2 symbols. */
static void test_random_streams(void)
{
        jl_dynais *d = NULL;
        if (jl_dynais_new(200, 10, &d) < 0)
                abort();
        const uint32_t alphabets[] = {26, 2};
        for (size_t a = 0; a < 2; a++) {
                size_t loops = 0, events = 0;
                for (uint64_t seed = 1; seed <= 20; seed++) {
                        rng_state = seed * 0x9e3779b97f4a7c15ull + a;
                        jl_dynais_reset(d);
                        for (int i = 0; i < 20000; i++, events++) {
                                jl_dynais_state st = jl_dynais_push(d, rnd(alphabets[a]), NULL);
                                loops += st != JL_DYNAIS_NO_LOOP;
                        }
                }
                is_int(loops, 0, "random stream of %u symbols: no loop state in %zu events", alphabets[a],
                       events);
        }
        jl_dynais_free(d);
}

/* reset forgets everything: the same stream gives the same states again. */
static void test_reset(void)
{
        jl_dynais *d = NULL;
        if (jl_dynais_new(50, 4, &d) < 0)
                abort();
        stream s = {0};
        const uint32_t b[] = {5, 6, 7, 8};
        put_loop(&s, b, 4, 40);
        run_out o1 = feed(d, &s);
        jl_dynais_reset(d);
        run_out o2 = feed(d, &s);
        ok(memcmp(o1.r, o2.r, s.n * sizeof(*o1.r)) == 0, "reset: the same stream gives the same results");
        ok(first(&o2, 0, JL_DYNAIS_NEW_LOOP, 0) == (long)confirm_after(4) - 1,
           "reset: no memory of the first pass");
        free(o1.r);
        free(o2.r);
        free(s.ev);
        jl_dynais_free(d);
}

int main(void)
{
        test_api();
        const uint32_t periods[] = {1, 2, 3, 7, 31, 32, 33, 50, 199, 200, 201};
        for (size_t i = 0; i < sizeof(periods) / sizeof(periods[0]); i++)
                test_period(200, periods[i]);
        test_period(16, 17);
        test_period(JL_DYNAIS_WINDOW_MAX, JL_DYNAIS_WINDOW_MAX);
        test_period_change();
        test_nested_one_level();
        test_nested_levels();
        test_random_bodies();
        test_random_streams();
        test_reset();
        return tap_done();
}
