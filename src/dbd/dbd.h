/* dbd.h - joule-dbd's parts and the interfaces between them: the items a node connection yields (conn.c,
 * the per-connection protocol state machine, free of sockets so that it can be fuzzed), the cache of
 * items in chunks of dbd.batch_records shared between the event loop and the writer (queue.c), and the
 * writer thread that stores chunks in one transaction each, updates steps, jobs and nodes, and recomputes
 * the energy aggregations (writer.c). main.c owns the sockets, signals and the order of it all. */
#pragma once

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "msg.h"
#include "wire.h"

#define DBD_MAX_FRAME (64u * 1024u) /* a RECORD is below 4 KiB; anything larger is refused */

typedef enum {
        DBD_ITEM_HELLO,  /* a node connected (authenticated) */
        DBD_ITEM_BYE,    /* its connection ended */
        DBD_ITEM_RECORD, /* one periodic record */
        DBD_ITEM_JOB,    /* a job step began or ended */
} dbd_item_kind;

typedef struct {
        uint8_t kind;
        uint64_t conn_id;
        uint64_t seq;
        char node[JL_MSG_NAME_MAX];
        union {
                struct {
                        int64_t start_us, end_us, energy_uj;
                        double power_w, temp_c, freq_khz; /* NAN: none */
                        bool has_job;
                        int64_t job_id, step_id;
                        char *domains_json; /* malloc'd; NULL when no domains */
                        int64_t gap_us;
                } rec;
                struct {
                        bool end, complete;
                        int64_t job_id, step_id, time_us, energy_uj;
                        char user[JL_MSG_NAME_MAX];
                } job;
                struct {
                        int64_t time_us; /* realtime µs of the HELLO or of the disconnect */
                        char partition[JL_MSG_NAME_MAX];
                        char island[JL_MSG_NAME_MAX];
                } hello;
        };
} dbd_item;

void dbd_item_clear(dbd_item *it);
size_t dbd_item_bytes(const dbd_item *it); /* what it costs in memory, for dbd.max_memory_mb */

/* ---- conn.c: one node connection's protocol ---- */

/* Checks a HELLO's credential: 0 when it is valid, made by root or an allowed user, and wraps exactly the
 * node name; else a negative errno with words in why. The production one is MUNGE (dbd_auth_munge). */
typedef int (*dbd_auth_fn)(void *userdata, const uint8_t *cred, size_t cred_len, const char *node, char *why,
                           size_t whylen);

typedef struct {
        const char *socket; /* munged's socket; NULL: the default */
        uid_t *uids;        /* allowed besides root */
        size_t nuids;
} dbd_munge_auth;

int dbd_auth_munge(void *userdata, const uint8_t *cred, size_t cred_len, const char *node, char *why,
                   size_t whylen);

typedef enum {
        DBD_CONN_AWAIT_HELLO,
        DBD_CONN_READY,
} dbd_conn_state;

typedef struct {
        uint64_t id;
        dbd_conn_state state;
        jl_framer framer;
        char node[JL_MSG_NAME_MAX];
        char partition[JL_MSG_NAME_MAX];
        char island[JL_MSG_NAME_MAX];
        uint64_t last_seq; /* the latest seq received on this connection (strictly increasing) */
        uint64_t frames;
} dbd_conn_proto;

/* Items come out through emit (which takes ownership of the item's allocations, or returns a negative
 * errno to stop). */
typedef int (*dbd_emit_fn)(void *userdata, dbd_item *it);

void dbd_proto_init(dbd_conn_proto *c, uint64_t id);
void dbd_proto_free(dbd_conn_proto *c);
/* Feed bytes read from the peer; every complete frame is checked and turned into items. 0, or a negative
 * errno with the reason in why: the connection must be dropped (what was emitted before stays good). */
int dbd_proto_feed(dbd_conn_proto *c, const void *data, size_t n, int64_t now_us, dbd_auth_fn auth,
                   void *auth_data, dbd_emit_fn emit, void *emit_data, char *why, size_t whylen);

/* ---- queue.c: the cache between the event loop and the writer ---- */

typedef struct dbd_chunk {
        struct dbd_chunk *next;
        dbd_item *items;
        size_t n, cap;
        uint64_t first_ns; /* CLOCK_MONOTONIC when its first item came */
        size_t bytes;
        bool stored; /* set by the writer: committed (ACK it); false: given up at exit (do not) */
} dbd_chunk;

typedef struct {
        pthread_mutex_t lock;
        pthread_cond_t cond;    /* the writer waits on it */
        dbd_chunk *head, *tail; /* waiting to be written, oldest first; tail is being filled */
        dbd_chunk *done;        /* written (or given up at exit), for the loop to ACK and free */
        size_t batch_records;
        uint64_t batch_ms;
        bool flush_all; /* write every chunk now, whatever its size (shutdown) */
        bool stop;      /* the writer ends once nothing is left (or at once with abort) */
        bool abort;
        int done_fd; /* eventfd: the loop's wake-up when chunks are done */
        /* writer's health, for the log and tests */
        bool db_ok;
} dbd_queue;

int dbd_queue_init(dbd_queue *q, size_t batch_records, uint64_t batch_ms);
void dbd_queue_destroy(dbd_queue *q);
/* The loop: append items (moved in), wake the writer when a chunk is full. */
int dbd_queue_push(dbd_queue *q, dbd_item *items, size_t n);
/* The loop: take the chunks written so far (a list, oldest first). */
dbd_chunk *dbd_queue_take_done(dbd_queue *q);
void dbd_chunk_free(dbd_chunk *c);

/* ---- writer.c: the database thread ---- */

typedef struct dbd_writer dbd_writer;

typedef struct {
        const char *url;
        double aggregation_period_s;
        dbd_queue *queue;
} dbd_writer_opts;

int dbd_writer_start(const dbd_writer_opts *o, dbd_writer **ret);
/* Ask the writer to finish (queue->stop, flush_all, abort set by the caller) and join it. */
void dbd_writer_join(dbd_writer *w);
