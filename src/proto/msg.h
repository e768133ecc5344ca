/* msg.h - the typed messages jouled, joule-dbd and the control clients exchange, and their strict
 * encoders/decoders over the TLV wire format (wire.h). A decoder checks every required attribute, rejects
 * duplicates, bad types and out-of-range values with -EBADMSG, and ignores attributes it does not know
 * (so that newer nodes can talk to an older dbd of the same protocol version). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sched.h>
#include <stdint.h>

#include "wire.h"

enum {
        JL_MSG_HELLO = 1,   /* node -> dbd: who I am (with a MUNGE credential) */
        JL_MSG_RECORD = 2,  /* node -> dbd: one periodic power record */
        JL_MSG_JOB = 3,     /* node -> dbd: job/step begin or end with its energy */
        JL_MSG_ACK = 4,     /* dbd -> node: every record up to seq is stored */
        JL_MSG_ERROR = 5,   /* either way: a request was rejected, with errno and words */
        JL_MSG_REQUEST = 6, /* client -> jouled (local socket or control port): one operation */
        JL_MSG_REPLY = 7,   /* jouled -> client */
        JL_MSG_AUTHED = 8, /* control port: payload is one MUNGE credential wrapping a whole REQUEST frame */
        JL_MSG_RT = 9,     /* node -> dbd: one record of the runtime (application, loop or event) */
};

/* Operations of a REQUEST. Local socket: anyone may read; changing a frequency is for root and for the
 * owner of the job running on those CPUs; job begin/end for root and the job's own user. Control port:
 * every request is AUTHED; only root and node.admins may change anything. */
enum {
        JL_OP_GET_SHM = 1,     /* reply carries the shared-memory page's fd (SCM_RIGHTS) */
        JL_OP_ENERGY = 2,      /* reply: energy_uj, time_ms (the round-trip path) */
        JL_OP_SET_CPUFREQ = 3, /* cpumask, khz (0: back to the default) */
        JL_OP_SET_GPUFREQ = 4, /* gpu, khz */
        JL_OP_SET_GPUFREQ_LIST = 5,
        JL_OP_JOB_BEGIN = 6, /* job_id, step_id, user */
        JL_OP_JOB_END = 7,
        JL_OP_QUERY = 8,        /* reply: text = node status as JSON */
        JL_OP_SET_POWERCAP = 9, /* watts (0: remove) */
        JL_OP_RELOAD = 10,
        JL_OP_RT_RECORD = 11, /* job_id, step_id, rt: a record of the runtime for the step (local socket) */
        JL_OP_WATCH_PID = 12, /* job_id, step_id, pid: the step ends when that process does (local socket) */
        _JL_OP_MAX,
};

#define JL_MSG_CPUMASK_BYTES 128 /* 1024 CPUs, as cpu_set_t */
#define JL_MSG_GPUS_MAX 16

#define JL_MSG_NAME_MAX 64
#define JL_MSG_DOMAINS_MAX 32

typedef struct {
        char node[JL_MSG_NAME_MAX];
        uint64_t next_seq;               /* the next sequence number the node will send */
        char partition[JL_MSG_NAME_MAX]; /* "" when none (node.partition) */
        char island[JL_MSG_NAME_MAX];    /* "" when none (node.island) */
        size_t cred_len;
        const uint8_t *cred; /* points into the decoded payload */
} jl_msg_hello;

typedef struct {
        char node[JL_MSG_NAME_MAX];
        uint64_t seq;      /* per node, strictly increasing: the dbd drops duplicates by (node, seq) */
        uint64_t start_us; /* window, µs since the epoch (UTC) */
        uint64_t end_us;
        uint64_t energy_uj; /* the node's energy in the window */
        double avg_power_w;
        double temp_max_c;   /* NAN: no sensor */
        double freq_avg_khz; /* NAN: no cpufreq */
        uint64_t gap_us;     /* time in the window whose energy is estimated: intervals too long to unwrap a
                                counter for certain (docs/metrics.md, "Gaps"); optional on the wire, 0 absent */
        char job_id[JL_MSG_NAME_MAX]; /* "" when idle */
        int64_t step_id;              /* -1 when idle */
        size_t ndomains;
        struct {
                char name[JL_MSG_NAME_MAX];
                uint64_t energy_uj;
        } domains[JL_MSG_DOMAINS_MAX];
} jl_msg_record;

typedef struct {
        char node[JL_MSG_NAME_MAX];
        uint64_t seq;
        bool end; /* false: begin */
        char job_id[JL_MSG_NAME_MAX];
        int64_t step_id;
        char user[JL_MSG_NAME_MAX];
        uint64_t time_us;
        uint64_t energy_uj; /* end: energy of the step on this node */
        bool complete;      /* end: false when the node lost track (daemon restarted mid-step) */
} jl_msg_job;

typedef struct {
        uint64_t seq;
} jl_msg_ack;

typedef struct {
        int32_t err; /* negative errno */
        char message[256];
} jl_msg_error;

/* What the runtime (libjoule-rt through src/runtime/report.c) tells jouled about a step: its application's
 * signature (one applications row per step and node), a loop's signature (loops rows) or a policy decision
 * (events rows). Doubles are NAN where unknown (not sent on the wire; NULL in the store). */
enum {
        JL_RT_APP = 1,
        JL_RT_LOOP = 2,
        JL_RT_EVENT = 3,
};
#define JL_MSG_RT_MESSAGE_MAX 256

typedef struct {
        uint8_t kind; /* JL_RT_* */
        /* set by jouled (the client's are ignored): node, seq, time_us */
        char node[JL_MSG_NAME_MAX];
        uint64_t seq;
        uint64_t time_us;
        char job_id[JL_MSG_NAME_MAX];
        int64_t step_id;
        char name[JL_MSG_NAME_MAX]; /* app: app_name; loop: loop_key; event: kind ("policy", "frequency", …)
                                     */
        char policy[32];            /* app */
        char tag[JL_MSG_NAME_MAX];  /* app */
        char message[JL_MSG_RT_MESSAGE_MAX]; /* event */
        double policy_th, time_s, energy_j, avg_power_w, pck_power_w,
            dram_power_w;                          /* app (avg_power_w: loop) */
        double cpi, tpi, gbs, gflops;              /* app, loop */
        double time_per_iteration_s;               /* loop */
        double value;                              /* event */
        uint64_t iterations;                       /* loop */
        uint64_t avg_cpufreq_khz, def_cpufreq_khz; /* 0: unknown */
} jl_msg_rt;

/* A record with every double NAN and the step unset (-1). */
void jl_msg_rt_init(jl_msg_rt *m, uint8_t kind);

typedef struct {
        uint8_t op;
        char job_id[JL_MSG_NAME_MAX];
        int64_t step_id;
        char user[JL_MSG_NAME_MAX];
        size_t cpumask_len;
        uint8_t cpumask[JL_MSG_CPUMASK_BYTES];
        uint64_t khz;
        int64_t gpu;
        size_t ngpus;
        uint64_t gpu_khz[JL_MSG_GPUS_MAX];
        double watts;
        int64_t pid;  /* WATCH_PID */
        bool has_rt;  /* RT_RECORD */
        jl_msg_rt rt; /* RT_RECORD (its job_id/step_id are the request's) */
} jl_msg_request;

/* Adds the CPUs of a set (a cpu_set_t, or a mask of nbits bits in 64-bit words) to req's cpumask in the
 * wire layout (CPU i is bit i % 8 of byte i / 8), growing cpumask_len to cover them; CPUs beyond
 * JL_MSG_CPUMASK_BYTES * 8 are left out. */
void jl_msg_request_add_cpuset(jl_msg_request *req, const cpu_set_t *set);
void jl_msg_request_add_cpumask(jl_msg_request *req, const uint64_t *mask, size_t nbits);

typedef struct {
        int32_t err; /* 0 or a negative errno */
        char message[256];
        uint64_t energy_uj;
        uint64_t time_ms;
        size_t text_len;
        const char *text; /* points into the decoded payload; NOT NUL-terminated */
} jl_msg_reply;

/* Encoders append a whole frame to a fresh jl_wbuf (caller frees it). Return 0 or negative errno. */
int jl_msg_hello_encode(const jl_msg_hello *m, uint32_t id, jl_wbuf *w);
int jl_msg_record_encode(const jl_msg_record *m, uint32_t id, jl_wbuf *w);
int jl_msg_job_encode(const jl_msg_job *m, uint32_t id, jl_wbuf *w);
int jl_msg_ack_encode(const jl_msg_ack *m, uint32_t id, jl_wbuf *w);
int jl_msg_error_encode(const jl_msg_error *m, uint32_t id, jl_wbuf *w);

int jl_msg_request_encode(const jl_msg_request *m, uint32_t id, jl_wbuf *w);
int jl_msg_rt_encode(const jl_msg_rt *m, uint32_t id, jl_wbuf *w);
int jl_msg_reply_encode(const jl_msg_reply *m, uint32_t id, jl_wbuf *w);

/* What joule-dbd stores, beyond what the decoders check: node, user and domain names of printable ASCII
 * without spaces or quotes (users may be empty), job ids of decimal digits below 2^63 ("" = idle in a
 * record), every integer below 2^63 (they become BIGINT columns). 0, or -EINVAL with a reason in why. The
 * reporter checks before spooling, the dbd after decoding. */
int jl_msg_record_validate(const jl_msg_record *m, char *why, size_t whylen);
int jl_msg_job_validate(const jl_msg_job *m, char *why, size_t whylen);
/* A runtime record: a known kind, a numeric job id, names of printable characters (app names, loop keys,
 * policies, tags, event kinds; messages may hold spaces but no control characters), numbers in range
 * (non-negative where a negative one means nothing, every integer below 2^63). With check_node false the
 * node is not checked (jouled checks a client's record before it names the node). */
int jl_msg_rt_validate(const jl_msg_rt *m, bool check_node, char *why, size_t whylen);
bool jl_msg_name_valid(const char *s);
/* A decimal job id below 2^63: 0 and *ret (ret may be NULL), or -EINVAL. */
int jl_msg_job_id_parse(const char *s, int64_t *ret);

/* Decoders of a frame's payload: 0, or -EBADMSG with a reason in why (what was wrong, for the log). */
int jl_msg_hello_decode(const uint8_t *payload, size_t len, jl_msg_hello *ret, char *why, size_t whylen);
int jl_msg_record_decode(const uint8_t *payload, size_t len, jl_msg_record *ret, char *why, size_t whylen);
int jl_msg_job_decode(const uint8_t *payload, size_t len, jl_msg_job *ret, char *why, size_t whylen);
int jl_msg_ack_decode(const uint8_t *payload, size_t len, jl_msg_ack *ret, char *why, size_t whylen);
int jl_msg_error_decode(const uint8_t *payload, size_t len, jl_msg_error *ret, char *why, size_t whylen);
int jl_msg_request_decode(const uint8_t *payload, size_t len, jl_msg_request *ret, char *why, size_t whylen);
int jl_msg_reply_decode(const uint8_t *payload, size_t len, jl_msg_reply *ret, char *why, size_t whylen);
int jl_msg_rt_decode(const uint8_t *payload, size_t len, jl_msg_rt *ret, char *why, size_t whylen);
