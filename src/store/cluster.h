/* cluster.h - the one writer of the cluster tables that jouled (single machine, straight into the store)
 * and joule-dbd (many nodes) share, so that the rows they write are the same by construction: periodic
 * records (bulk, duplicates by (node, seq) dropped), job step begin/end into steps with the jobs row
 * recomputed as the sum over the step's nodes, and the nodes rows (HELLO, disconnect, last seen).
 *
 * Every function runs in the caller's transaction when one is open (callers batch them in one), else in
 * its own. Contract as store.h: 0 or a negative errno, jl_store_error() says why; never logs. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

/* One periodic record of one node (periodic_metrics). */
typedef struct {
        const char *node;
        uint64_t seq;
        int64_t start_us, end_us; /* realtime µs */
        int64_t energy_uj;
        double avg_power_w;
        double max_temp_c, avg_freq_khz; /* NAN (or any non-finite value): none */
        bool has_job;                    /* the first job step running in the window */
        int64_t job_id, step_id;
        const char *domains_json; /* {"package-0":123,...}: names in the node's order, µJ; NULL: none */
        int64_t gap_us;           /* time of the window whose energy is estimated (metrics.md, "Gaps") */
} jl_store_record;

/* A job step began or ended on one node. */
typedef struct {
        const char *node;
        bool end;
        int64_t job_id, step_id;
        const char *user;  /* NULL or "": unknown */
        int64_t time_us;   /* begin or end, realtime µs */
        int64_t energy_uj; /* end: the step's energy on this node */
        bool complete;     /* end: false when the node lost track (daemon restarted mid-step) */
} jl_store_job_event;

/* A record of the runtime (libjoule-rt, through jouled): an application's signature (one applications row
 * per job step and node: a later one replaces it), a loop's signature (a loops row) or a policy decision (an
 * events row). Doubles: NAN (any non-finite value) is NULL; kHz 0 is NULL. (node, seq) makes replays
 * harmless. */
enum {
        JL_STORE_RT_APP = 1,
        JL_STORE_RT_LOOP = 2,
        JL_STORE_RT_EVENT = 3,
};

typedef struct {
        int kind; /* JL_STORE_RT_* */
        const char *node;
        uint64_t seq;
        int64_t job_id, step_id;
        int64_t time_us;
        const char *name;                   /* app_name, loop_key or event kind */
        const char *policy, *tag, *message; /* NULL or "": NULL */
        double policy_th, time_s, energy_j, avg_power_w, pck_power_w, dram_power_w;
        double cpi, tpi, gbs, gflops, time_per_iteration_s, value;
        int64_t iterations, avg_cpufreq_khz, def_cpufreq_khz;
} jl_store_rt;

int jl_store_put_rt(jl_store *s, const jl_store_rt *recs, size_t n);

/* A node's latest sign of life. */
typedef struct {
        const char *node;
        int64_t time_us;
        uint64_t seq; /* the newest sequence number stored for it */
} jl_store_node_seen;

/* Insert records into periodic_metrics through the bulk path; a (node, seq) already there is dropped
 * (ON CONFLICT DO NOTHING), so replays and several writers are harmless. *ret_inserted (may be NULL): the
 * rows actually inserted. */
int jl_store_put_records(jl_store *s, const jl_store_record *recs, size_t n, uint64_t *ret_inserted);

/* Apply job step begins and ends to steps (one row per job, step and node; an end without its begin is
 * kept, marked incomplete; a replayed message is harmless), then recompute the jobs row of every job step
 * they touch from its steps rows (nodes, user, first start, last end, energy summed, complete when every
 * node's step is). On PostgreSQL the recomputation holds the cluster lock (jl_store_cluster_lock). */
int jl_store_put_job_events(jl_store *s, const jl_store_job_event *ev, size_t n);

/* A node (re)connected: its nodes row is created or updated (partition, island, status 'connected',
 * last_seen_us = time_us unless a later one is recorded; daemon_version when not NULL). */
int jl_store_node_hello(jl_store *s, const char *node, const char *partition, const char *island,
                        int64_t time_us, const char *daemon_version);
/* A node's connection ended: status 'disconnected', unless a later HELLO (by any writer) is recorded. */
int jl_store_node_bye(jl_store *s, const char *node, int64_t time_us);
/* last_seen_us and last_seq of nodes that have a row (never moved backwards), in statements of up to 100
 * nodes. */
int jl_store_touch_nodes(jl_store *s, const jl_store_node_seen *seen, size_t n);

/* Serialise the writers of derived rows (jobs, periodic_aggregations) among processes sharing one
 * PostgreSQL database: pg_advisory_xact_lock, held until the open transaction ends. SQLite: a no-op (its
 * writers are serialised by the database lock). Call inside a transaction. */
int jl_store_cluster_lock(jl_store *s);
