/* reporter.h - jouled's link to joule-dbd: every RECORD and JOB message goes first into an append-only
 * spool file, then over TCP to the dbd, and leaves the spool only when the dbd has acknowledged it
 * (ACK(seq): every message up to seq is stored). One thread of its own connects (with backoff), says
 * HELLO with a MUNGE credential wrapping the node name, replays the spool in order and streams new
 * messages; it works in any start order (dbd down at first, dbd killed mid-run, database stopped) and
 * across restarts of jouled (the spool is read back at start). The dbd drops duplicates by (node, seq), so
 * delivery is exactly-once in effect.
 *
 * Thread safety: jl_reporter_submit_*() and jl_reporter_get_status() may be called from any thread at any
 * time between jl_reporter_new() and jl_reporter_free(); they never block on I/O (they copy the encoded
 * frame into a queue and wake the reporter's thread). The library never logs: the status holds the last
 * error in words for the caller to log.
 *
 * Sequence numbers belong to the caller (jouled persists them), from 1: each message's seq must be greater
 * than the previous one's (gaps are fine), including the messages found in the spool at start
 * (jl_reporter_get_status().last_seq). Job ids must be decimal integers (Slurm job ids), node, user and
 * domain names printable: what the dbd would refuse is refused here at once (-EINVAL), so that a bad
 * message can never block the spool.
 *
 * Spool file (node.spool): "JLSPOOL1", then one entry per message: u32 length, u32 CRC-32C of the frame,
 * the frame as sent on the wire (big-endian, wire.h). Written by the thread as messages come, fsync'd at
 * most every fsync_ms, rewritten without the acknowledged entries (temporary file + rename) once they
 * outweigh the rest. A torn or corrupt tail (a crash mid-write) is cut off at start and counted in the
 * status. Unacknowledged messages are also held in memory (at most max_pending_mb; beyond, submit
 * returns -ENOBUFS). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth.h"
#include "msg.h"

typedef struct jl_reporter jl_reporter;

typedef struct {
        const char *node;        /* node name: HELLO, and every message's node must equal it */
        const char *dbd;         /* "host:port" of joule-dbd (node.dbd) */
        const char *spool;       /* spool file path (node.spool); its directory is created when missing */
        const char *partition;   /* NULL or "": none (node.partition) */
        const char *island;      /* NULL or "": none (node.island) */
        jl_auth_opts auth;       /* munged's socket for the HELLO credential */
        unsigned fsync_ms;       /* 0: 200 */
        unsigned backoff_min_ms; /* 0: 100; reconnect delay doubles up to backoff_max_ms */
        unsigned backoff_max_ms; /* 0: 5000 */
        unsigned
            ack_timeout_ms; /* 0: 60000; connected, messages outstanding, no ACK for this long: reconnect */
        unsigned max_pending_mb; /* 0: 256 */
} jl_reporter_opts;

typedef struct {
        bool connected;               /* HELLO sent on a live connection */
        uint64_t submitted;           /* messages accepted by submit since start */
        uint64_t acked;               /* messages acknowledged since start */
        uint64_t pending;             /* messages not yet acknowledged (spool, memory) */
        uint64_t last_seq;            /* highest seq submitted or found in the spool; 0 when none */
        uint64_t acked_seq;           /* highest seq acknowledged by the dbd; 0 when none */
        uint64_t spool_bytes;         /* size of the spool file */
        uint64_t connects;            /* successful connections since start */
        uint64_t spool_dropped_bytes; /* a torn/corrupt tail cut off at start */
        char last_error[256];         /* "" when none: the latest failure (connect, dbd ERROR, spool I/O) */
} jl_reporter_status;

/* Open (or create) the spool, load its messages and start the thread. Errors: -EINVAL (bad options, with
 * words in err), the spool's open/read errors. */
int jl_reporter_new(const jl_reporter_opts *o, jl_reporter **ret, char *err, size_t errlen);

/* Queue one message. 0; -EINVAL (node differs, seq not increasing, bad job id or names, values beyond
 * 2^63), -ENOBUFS (max_pending_mb of unacknowledged messages), -ENOMEM, -ESHUTDOWN after free began. */
int jl_reporter_submit_record(jl_reporter *r, const jl_msg_record *m);
int jl_reporter_submit_job(jl_reporter *r, const jl_msg_job *m);
int jl_reporter_submit_rt(jl_reporter *r, const jl_msg_rt *m);

void jl_reporter_get_status(jl_reporter *r, jl_reporter_status *ret);

/* Wait until every message up to seq is acknowledged: 0, or -ETIMEDOUT. For shutdown and tests. */
int jl_reporter_wait_acked(jl_reporter *r, uint64_t seq, unsigned timeout_ms);

/* Stop: give the dbd up to timeout_ms to acknowledge what is outstanding, but only while it is connected
 * and acknowledges something every second (not connected: no wait at all), write and fsync the spool (what
 * is unacknowledged stays there for the next start), close everything. NULL is a no-op. */
void jl_reporter_free(jl_reporter *r, unsigned timeout_ms);
