/* dbd.h - joule-dbd's parts and the interfaces between them: the items a node connection yields (conn.c,
 * the per-connection protocol state machine, free of sockets so that it can be fuzzed), the cache of
 * items in chunks of dbd.batch_records shared between the event loop and the writer (queue.c), and the
 * writer thread that stores chunks in one transaction each, updates steps, jobs and nodes, and recomputes
 * the energy aggregations (writer.c), and the worker threads that check HELLO credentials with MUNGE off the
 * event loop (authpool.c). main.c owns the sockets, signals and the order of it all. */
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
        DBD_ITEM_RT,     /* a record of the runtime: application, loop or event */
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
                jl_msg_rt *rt; /* malloc'd */
                struct {
                        int64_t time_us; /* realtime µs of the HELLO or of the disconnect */
                        char partition[JL_MSG_NAME_MAX];
                        char island[JL_MSG_NAME_MAX];
                } hello;
        };
} dbd_item;

void dbd_item_clear(dbd_item *it);
size_t dbd_item_bytes(const dbd_item *it); /* what it costs in memory (malloc's chunks included) */

/* ---- conn.c: one node connection's protocol ---- */

/* Checks a HELLO's credential: 0 when it is valid, made by root or an allowed user, and wraps exactly the
 * node name; else a negative errno with words in why. The production one is MUNGE (dbd_auth_munge), run off
 * the event loop: there the check returns DBD_AUTH_PENDING after handing the credential to the pool
 * (authpool.c), and the answer comes back later through dbd_proto_auth_done(). */
#define DBD_AUTH_PENDING 1
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
        DBD_CONN_AUTHENTICATING, /* HELLO read, its credential being checked: later bytes are only buffered
                                  */
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
        uint64_t hello_next_seq; /* of the HELLO being authenticated */
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
/* The answer to a check that returned DBD_AUTH_PENDING: auth_r 0 (accepted: the HELLO is emitted, then the
 * frames that came after it are processed) or a negative errno with auth_why (refused). Returns as
 * dbd_proto_feed. */
int dbd_proto_auth_done(dbd_conn_proto *c, int auth_r, const char *auth_why, int64_t now_us,
                        dbd_emit_fn emit, void *emit_data, char *why, size_t whylen);

/* ---- authpool.c: MUNGE decodes on worker threads, off the event loop ---- */

typedef struct dbd_auth_pool dbd_auth_pool;

typedef struct {
        uint64_t conn_id;
        int r; /* 0: accepted; else a negative errno */
        char why[256];
} dbd_auth_result;

/* threads workers, at most max_waiting credentials queued; results are announced on an eventfd. */
int dbd_auth_pool_start(const char *munge_socket, unsigned threads, size_t max_waiting, dbd_auth_pool **ret);
/* The users besides root whose credentials may speak for nodes (copied; a reload may change them). */
int dbd_auth_pool_set_uids(dbd_auth_pool *p, const uid_t *uids, size_t n);
int dbd_auth_pool_fd(const dbd_auth_pool *p);
/* Queue one check: 0, or -EAGAIN when max_waiting are queued already, -ENOMEM. */
int dbd_auth_pool_submit(dbd_auth_pool *p, uint64_t conn_id, const uint8_t *cred, size_t cred_len,
                         const char *node);
/* The answers so far (up to max), oldest first; clears the eventfd once all are taken. */
size_t dbd_auth_pool_take(dbd_auth_pool *p, dbd_auth_result *out, size_t max);
/* Stop and join the workers (a decode in progress ends within MUNGE's own timeout). */
void dbd_auth_pool_stop(dbd_auth_pool *p);

/* ---- queue.c: the cache between the event loop and the writer ---- */

typedef struct dbd_chunk {
        struct dbd_chunk *next;
        dbd_item *items;
        size_t n, cap;
        uint64_t first_ns; /* CLOCK_MONOTONIC when its first item came */
        size_t bytes;      /* memory it holds: the chunk, its array's capacity, the items' allocations */
        bool stored;       /* set by the writer: committed (ACK it); false: given up at exit (do not) */
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
/* The loop: append items (moved in), wake the writer when a chunk is full. *ret_bytes: the memory this
 * added to the cache (new chunks, their arrays' capacity, the items' own allocations), which the chunks'
 * bytes give back once done. */
int dbd_queue_push(dbd_queue *q, dbd_item *items, size_t n, size_t *ret_bytes);
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
