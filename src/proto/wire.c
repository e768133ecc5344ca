/* wire.c - frame headers, TLV writer and strict reader, incremental framer (see wire.h). */
#include "wire.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static void be32(uint8_t *p, uint32_t v)
{
        p[0] = (uint8_t)(v >> 24);
        p[1] = (uint8_t)(v >> 16);
        p[2] = (uint8_t)(v >> 8);
        p[3] = (uint8_t)v;
}

static uint32_t rd32(const uint8_t *p)
{
        return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void be16(uint8_t *p, uint16_t v)
{
        p[0] = (uint8_t)(v >> 8);
        p[1] = (uint8_t)v;
}

static uint16_t rd16(const uint8_t *p)
{
        return (uint16_t)(p[0] << 8 | p[1]);
}

static void be64(uint8_t *p, uint64_t v)
{
        be32(p, (uint32_t)(v >> 32));
        be32(p + 4, (uint32_t)v);
}

static uint64_t rd64(const uint8_t *p)
{
        return (uint64_t)rd32(p) << 32 | rd32(p + 4);
}

void jl_frame_header_encode(const jl_frame_header *h, uint8_t out[JL_WIRE_HEADER_SIZE])
{
        be32(out, JL_WIRE_MAGIC);
        out[4] = h->version;
        out[5] = h->type;
        be16(out + 6, h->flags);
        be32(out + 8, h->length);
        be32(out + 12, h->id);
}

int jl_frame_header_decode(const uint8_t in[JL_WIRE_HEADER_SIZE], uint32_t max_payload, jl_frame_header *ret)
{
        if (rd32(in) != JL_WIRE_MAGIC)
                return -EBADMSG;
        if (in[4] != JL_WIRE_VERSION)
                return -EPROTONOSUPPORT;
        uint32_t len = rd32(in + 8);
        if (len > max_payload || len > JL_WIRE_MAX_PAYLOAD)
                return -EMSGSIZE;
        *ret = (jl_frame_header){
            .version = in[4], .type = in[5], .flags = rd16(in + 6), .length = len, .id = rd32(in + 12)};
        return 0;
}

static uint8_t *reserve(jl_wbuf *w, size_t n)
{
        if (w->err)
                return NULL;
        if (w->len + n > JL_WIRE_HEADER_SIZE + (size_t)JL_WIRE_MAX_PAYLOAD) {
                w->err = -EMSGSIZE;
                return NULL;
        }
        if (w->len + n > w->cap) {
                size_t cap = w->cap ? w->cap : 256;
                while (cap < w->len + n)
                        cap *= 2;
                uint8_t *d = realloc(w->data, cap);
                if (!d) {
                        w->err = -ENOMEM;
                        return NULL;
                }
                w->data = d;
                w->cap = cap;
        }
        uint8_t *p = w->data + w->len;
        w->len += n;
        return p;
}

void jl_wbuf_init(jl_wbuf *w, uint8_t type, uint16_t flags, uint32_t id)
{
        *w = (jl_wbuf){0};
        uint8_t *p = reserve(w, JL_WIRE_HEADER_SIZE);
        if (p)
                jl_frame_header_encode(
                    &(jl_frame_header){.version = JL_WIRE_VERSION, .type = type, .flags = flags, .id = id},
                    p);
}

void jl_wbuf_free(jl_wbuf *w)
{
        free(w->data);
        *w = (jl_wbuf){0};
}

void jl_wbuf_put_bytes(jl_wbuf *w, uint16_t attr, const void *v, size_t n)
{
        if (n > JL_WIRE_MAX_PAYLOAD) {
                w->err = w->err ? w->err : -EMSGSIZE;
                return;
        }
        uint8_t *p = reserve(w, 6 + n);
        if (!p)
                return;
        be16(p, attr);
        be32(p + 2, (uint32_t)n);
        if (n)
                memcpy(p + 6, v, n);
}

void jl_wbuf_put_u64(jl_wbuf *w, uint16_t attr, uint64_t v)
{
        uint8_t b[8];
        be64(b, v);
        jl_wbuf_put_bytes(w, attr, b, 8);
}

void jl_wbuf_put_i64(jl_wbuf *w, uint16_t attr, int64_t v)
{
        jl_wbuf_put_u64(w, attr, (uint64_t)v);
}

void jl_wbuf_put_double(jl_wbuf *w, uint16_t attr, double v)
{
        uint64_t u;
        memcpy(&u, &v, 8);
        jl_wbuf_put_u64(w, attr, u);
}

void jl_wbuf_put_str(jl_wbuf *w, uint16_t attr, const char *s)
{
        size_t n = s ? strlen(s) : 0;
        if (n > JL_WIRE_MAX_STRING) {
                w->err = w->err ? w->err : -ENAMETOOLONG;
                return;
        }
        jl_wbuf_put_bytes(w, attr, s, n);
}

void jl_wbuf_nest_begin(jl_wbuf *w, uint16_t attr)
{
        if (w->depth >= sizeof(w->nest) / sizeof(w->nest[0])) {
                w->err = w->err ? w->err : -E2BIG;
                return;
        }
        size_t at = w->len;
        jl_wbuf_put_bytes(w, attr, NULL, 0);
        w->nest[w->depth++] = at;
}

void jl_wbuf_nest_end(jl_wbuf *w)
{
        if (w->depth == 0) {
                w->err = w->err ? w->err : -EINVAL;
                return;
        }
        size_t at = w->nest[--w->depth];
        if (!w->err)
                be32(w->data + at + 2, (uint32_t)(w->len - at - 6));
}

int jl_wbuf_finish(jl_wbuf *w, const uint8_t **ret_data, size_t *ret_len)
{
        if (!w->err && w->depth)
                w->err = -EINVAL;
        if (w->err)
                return w->err;
        be32(w->data + 8, (uint32_t)(w->len - JL_WIRE_HEADER_SIZE));
        *ret_data = w->data;
        *ret_len = w->len;
        return 0;
}

void jl_rbuf_init(jl_rbuf *r, const void *payload, size_t len)
{
        r->p = payload;
        r->left = len;
}

int jl_rbuf_next(jl_rbuf *r, jl_attr *ret)
{
        if (r->left == 0)
                return 0;
        if (r->left < 6)
                return -EBADMSG;
        uint32_t len = rd32(r->p + 2);
        if (len > r->left - 6)
                return -EBADMSG;
        *ret = (jl_attr){.type = rd16(r->p), .len = len, .value = r->p + 6};
        r->p += 6 + len;
        r->left -= 6 + len;
        return 1;
}

int jl_attr_u64(const jl_attr *a, uint64_t *ret)
{
        if (a->len != 8)
                return -EBADMSG;
        *ret = rd64(a->value);
        return 0;
}

int jl_attr_i64(const jl_attr *a, int64_t *ret)
{
        uint64_t u;
        int r = jl_attr_u64(a, &u);
        if (r < 0)
                return r;
        *ret = (int64_t)u;
        return 0;
}

int jl_attr_double(const jl_attr *a, double *ret)
{
        uint64_t u;
        int r = jl_attr_u64(a, &u);
        if (r < 0)
                return r;
        double d;
        memcpy(&d, &u, 8);
        if (!isfinite(d))
                return -EBADMSG;
        *ret = d;
        return 0;
}

int jl_attr_str(const jl_attr *a, char *buf, size_t size)
{
        if (a->len > JL_WIRE_MAX_STRING || a->len + 1 > size)
                return -ENAMETOOLONG; /* too long, whatever it holds */
        if (memchr(a->value, '\0', a->len))
                return -EBADMSG;
        memcpy(buf, a->value, a->len);
        buf[a->len] = '\0';
        return 0;
}

void jl_attr_nested(const jl_attr *a, jl_rbuf *ret)
{
        jl_rbuf_init(ret, a->value, a->len);
}

void jl_framer_init(jl_framer *f, uint32_t max_payload)
{
        *f = (jl_framer){.max_payload = max_payload ? max_payload : JL_WIRE_MAX_PAYLOAD};
}

void jl_framer_free(jl_framer *f)
{
        free(f->buf);
        *f = (jl_framer){0};
}

int jl_framer_feed(jl_framer *f, const void *data, size_t n)
{
        if (f->len + n > f->cap) {
                size_t cap = f->cap ? f->cap : 4096;
                while (cap < f->len + n)
                        cap *= 2;
                if (cap > 2 * ((size_t)JL_WIRE_HEADER_SIZE + f->max_payload) + 65536)
                        return -ENOBUFS; /* the peer sends faster than frames are taken */
                uint8_t *b = realloc(f->buf, cap);
                if (!b)
                        return -ENOMEM;
                f->buf = b;
                f->cap = cap;
        }
        memcpy(f->buf + f->len, data, n);
        f->len += n;
        return 0;
}

int jl_framer_next(jl_framer *f, jl_frame_header *ret_hdr, const uint8_t **ret_payload)
{
        if (f->len < JL_WIRE_HEADER_SIZE)
                return 0;
        jl_frame_header h;
        int r = jl_frame_header_decode(f->buf, f->max_payload, &h);
        if (r < 0)
                return r;
        size_t total = JL_WIRE_HEADER_SIZE + (size_t)h.length;
        if (f->len < total)
                return 0;
        *ret_hdr = h;
        *ret_payload = f->buf + JL_WIRE_HEADER_SIZE;
        return 1;
}

void jl_framer_pop(jl_framer *f)
{
        jl_frame_header h;
        if (f->len < JL_WIRE_HEADER_SIZE || jl_frame_header_decode(f->buf, f->max_payload, &h) < 0)
                return;
        size_t total = JL_WIRE_HEADER_SIZE + (size_t)h.length;
        if (total > f->len)
                return;
        memmove(f->buf, f->buf + total, f->len - total);
        f->len -= total;
}
