/* dynais.h - loop detection on a stream of events (one uint32 per MPI call) in the manner of EAR's DynAIS:
 * a window of the last events per level, nested levels, and the states no-loop / in-loop / new-iteration /
 * new-loop / end-loop / end-new-loop. libc only; no allocation after jl_dynais_new(). See
 * docs/runtime-dynais.md for the algorithm, its guarantees and its cost. */
#pragma once

#include <stdint.h>

/* Limits of jl_dynais_new()'s arguments. */
#define JL_DYNAIS_WINDOW_MAX 4096u
#define JL_DYNAIS_LEVELS_MAX 32u
/* Defaults, as EAR's. */
#define JL_DYNAIS_WINDOW_DEFAULT 200u
#define JL_DYNAIS_LEVELS_DEFAULT 10u

/* A loop of period P is reported once the last max(2P, MIN_MATCH) events each equal the event P before them:
 * at least three full periods, and at least MIN_MATCH consecutive matches, so that a random stream of any
 * alphabet (two symbols included) yields a false loop with probability below 2^-64 per event and lag. Upper
 * levels receive only the identities of loops already confirmed below, and need fewer matches. */
#define JL_DYNAIS_MIN_MATCH 64u
#define JL_DYNAIS_MIN_MATCH_UPPER 8u
#define JL_DYNAIS_MIN_PERIODS 3u

typedef enum {
        JL_DYNAIS_NO_LOOP,       /* no loop at any level */
        JL_DYNAIS_IN_LOOP,       /* the loop goes on, inside an iteration */
        JL_DYNAIS_NEW_ITERATION, /* this event begins a new iteration of the loop */
        JL_DYNAIS_NEW_LOOP,      /* a loop is confirmed at this event (none was running at its level) */
        JL_DYNAIS_END_LOOP,      /* this event broke the loop of its level; no other loop follows yet */
        JL_DYNAIS_END_NEW_LOOP, /* this event broke the loop of its level and another is confirmed at once */
} jl_dynais_state;

typedef struct {
        jl_dynais_state state;
        uint32_t level; /* the level the state belongs to (0: the raw events) */
        uint32_t size;  /* period: events of that level per iteration; 0 without a loop */
        uint32_t id;    /* identity of the loop: equal for the same loop entered at another phase */
        uint64_t
            iterations; /* iterations begun so far, the current one included (the confirming ones too) */
        uint64_t iter_events; /* raw events in the last full iteration (= size at level 0) */
} jl_dynais_loop;

typedef struct jl_dynais jl_dynais;

/* window: the longest period looked for at each level (1..JL_DYNAIS_WINDOW_MAX); levels: how many levels
 * (1..JL_DYNAIS_LEVELS_MAX). Returns 0, -EINVAL, -ENOMEM. */
int jl_dynais_new(uint32_t window, uint32_t levels, jl_dynais **ret);
jl_dynais *jl_dynais_free(jl_dynais *d);
/* Forget every event and loop (as after jl_dynais_new()). */
void jl_dynais_reset(jl_dynais *d);

/* Feed one event. Returns the state of the highest level that has something to say (a loop running, ended
 * or confirmed), or NO_LOOP at level 0; fills *ret (may be NULL) with it. Constant work per level reached:
 * O(window); a level above 0 is reached only when the level below confirms a loop. */
jl_dynais_state jl_dynais_push(jl_dynais *d, uint32_t event, jl_dynais_loop *ret);

/* The loop now running at one level (state IN_LOOP) or none (NO_LOOP, size 0). Returns 0 or -EINVAL. */
int jl_dynais_level(const jl_dynais *d, uint32_t level, jl_dynais_loop *ret);

const char *jl_dynais_state_name(jl_dynais_state s);
