/* wire.h - joule's wire format between daemons: a fixed 16-byte frame header followed by a payload of
 * TLV attributes (type u16, length u32, value), all integers big-endian. The reader is strict: every
 * length is checked against what remains, strings must be NUL-free UTF-8-agnostic bytes of bounded
 * length, and a malformed frame is an error, never a crash (OpenBSD daemons: fatal for the connection,
 * not for the daemon). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JL_WIRE_MAGIC UINT32_C(0x4A4F554C) /* "JOUL" */
#define JL_WIRE_VERSION 1
#define JL_WIRE_HEADER_SIZE 16
#define JL_WIRE_MAX_PAYLOAD (1u << 20) /* 1 MiB */
#define JL_WIRE_MAX_STRING 4096

/* Frame header: magic u32 | version u8 | type u8 | flags u16 | length u32 | request id u32. */
typedef struct {
        uint8_t version;
        uint8_t type;
        uint16_t flags;
        uint32_t length; /* payload bytes */
        uint32_t id;     /* request id, echoed in the reply */
} jl_frame_header;

/* Encode a header into 16 bytes. */
void jl_frame_header_encode(const jl_frame_header *h, uint8_t out[JL_WIRE_HEADER_SIZE]);
/* Decode and validate: -EBADMSG for a wrong magic, -EPROTONOSUPPORT for another version, -EMSGSIZE for a
 * payload above max_payload. */
int jl_frame_header_decode(const uint8_t in[JL_WIRE_HEADER_SIZE], uint32_t max_payload, jl_frame_header *ret);

/* A growable output buffer for one frame; the header is filled by jl_wbuf_finish(). */
typedef struct {
        uint8_t *data;
        size_t len, cap;
        int err; /* sticky: the first error (ENOMEM, EMSGSIZE) */
        size_t nest[8];
        unsigned depth;
} jl_wbuf;

void jl_wbuf_init(jl_wbuf *w, uint8_t type, uint16_t flags, uint32_t id);
void jl_wbuf_free(jl_wbuf *w);
void jl_wbuf_put_u64(jl_wbuf *w, uint16_t attr, uint64_t v);
void jl_wbuf_put_i64(jl_wbuf *w, uint16_t attr, int64_t v);
void jl_wbuf_put_double(jl_wbuf *w, uint16_t attr, double v);
void jl_wbuf_put_str(jl_wbuf *w, uint16_t attr, const char *s);
void jl_wbuf_put_bytes(jl_wbuf *w, uint16_t attr, const void *p, size_t n);
/* Nested attribute lists (e.g. one per domain). */
void jl_wbuf_nest_begin(jl_wbuf *w, uint16_t attr);
void jl_wbuf_nest_end(jl_wbuf *w);
/* Fill in the header's length. Returns 0 and the frame, or the sticky negative errno. */
int jl_wbuf_finish(jl_wbuf *w, const uint8_t **ret_data, size_t *ret_len);

/* Reading attributes of a payload (or of a nested attribute). */
typedef struct {
        const uint8_t *p;
        size_t left;
} jl_rbuf;

typedef struct {
        uint16_t type;
        uint32_t len;
        const uint8_t *value;
} jl_attr;

void jl_rbuf_init(jl_rbuf *r, const void *payload, size_t len);
/* Next attribute: 1 and *ret, 0 at the end, -EBADMSG when an attribute overruns the payload. */
int jl_rbuf_next(jl_rbuf *r, jl_attr *ret);
int jl_attr_u64(const jl_attr *a, uint64_t *ret);   /* -EBADMSG unless exactly 8 bytes */
int jl_attr_i64(const jl_attr *a, int64_t *ret);
int jl_attr_double(const jl_attr *a, double *ret);  /* also rejects non-finite values */
/* Copy a string attribute into buf; -ENAMETOOLONG if it does not fit (whatever it holds), -EBADMSG if it
 * holds a NUL. */
int jl_attr_str(const jl_attr *a, char *buf, size_t size);
void jl_attr_nested(const jl_attr *a, jl_rbuf *ret);

/* Incremental frame assembly from a byte stream (non-blocking sockets): feed bytes, take whole frames. */
typedef struct {
        uint8_t *buf;
        size_t len, cap;
        uint32_t max_payload;
} jl_framer;

void jl_framer_init(jl_framer *f, uint32_t max_payload);
void jl_framer_free(jl_framer *f);
int jl_framer_feed(jl_framer *f, const void *data, size_t n);
/* 1 with the first complete frame (the payload pointer stays valid until jl_framer_pop() or the next
 * feed), 0 when more bytes are needed, or a negative errno for a malformed stream: the connection must be
 * dropped. Calling it again without a pop returns the same frame. */
int jl_framer_next(jl_framer *f, jl_frame_header *ret_hdr, const uint8_t **ret_payload);
/* Drop the frame returned by jl_framer_next(). */
void jl_framer_pop(jl_framer *f);
