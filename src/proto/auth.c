/* auth.c - MUNGE credentials and AUTHED frames (see auth.h). */
#include "auth.h"

#include <errno.h>
#include <munge.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "msg.h"
#include "why.h"

enum { A_CRED = 13 }; /* the same number as in msg.c */

static int munge_errno(munge_err_t e)
{
        switch (e) {
        case EMUNGE_SUCCESS:
                return 0;
        case EMUNGE_SOCKET:
                return -ECONNREFUSED;
        case EMUNGE_CRED_EXPIRED:
        case EMUNGE_CRED_REWOUND:
                return -ETIME;
        case EMUNGE_CRED_REPLAYED:
                return -EALREADY;
        case EMUNGE_NO_MEMORY:
                return -ENOMEM;
        case EMUNGE_BAD_ARG:
        case EMUNGE_BAD_LENGTH:
                return -EINVAL;
        default:
                return -EBADMSG;
        }
}

static munge_ctx_t make_ctx(const jl_auth_opts *o)
{
        munge_ctx_t ctx = munge_ctx_create();
        if (!ctx)
                return NULL;
        if (o && o->socket && munge_ctx_set(ctx, MUNGE_OPT_SOCKET, o->socket) != EMUNGE_SUCCESS) {
                munge_ctx_destroy(ctx);
                return NULL;
        }
        if (o && o->ttl_s > 0 && munge_ctx_set(ctx, MUNGE_OPT_TTL, o->ttl_s) != EMUNGE_SUCCESS) {
                munge_ctx_destroy(ctx);
                return NULL;
        }
        return ctx;
}

int jl_auth_encode(const jl_auth_opts *o, const void *payload, size_t len, char **ret_cred, char *why,
                   size_t whylen)
{
        if (len > JL_WIRE_MAX_PAYLOAD)
                return jl_why(why, whylen, -EMSGSIZE, "payload too large for a credential");
        munge_ctx_t ctx = make_ctx(o);
        if (!ctx)
                return jl_why(why, whylen, -ENOMEM, "cannot create a MUNGE context");
        char *cred = NULL;
        munge_err_t e = munge_encode(&cred, ctx, payload, (int)len);
        int r = munge_errno(e);
        if (r < 0) {
                jl_why(why, whylen, r, "MUNGE: %s",
                       munge_ctx_strerror(ctx) ? munge_ctx_strerror(ctx) : munge_strerror(e));
                munge_ctx_destroy(ctx);
                free(cred);
                return r;
        }
        munge_ctx_destroy(ctx);
        *ret_cred = cred;
        return 0;
}

int jl_auth_decode(const jl_auth_opts *o, const char *cred, size_t cred_len, uid_t *ret_uid, gid_t *ret_gid,
                   void **ret_payload, size_t *ret_len, char *why, size_t whylen)
{
        if (cred_len == 0 || cred_len > 2 * (size_t)JL_WIRE_MAX_PAYLOAD)
                return jl_why(why, whylen, -EBADMSG, "missing or oversized credential");
        char *c = malloc(cred_len + 1);
        if (!c)
                return -ENOMEM;
        memcpy(c, cred, cred_len);
        c[cred_len] = '\0';
        if (strlen(c) != cred_len) {
                free(c);
                return jl_why(why, whylen, -EBADMSG, "the credential holds a NUL byte");
        }
        munge_ctx_t ctx = make_ctx(o);
        if (!ctx) {
                free(c);
                return jl_why(why, whylen, -ENOMEM, "cannot create a MUNGE context");
        }
        void *buf = NULL;
        int blen = 0;
        uid_t uid;
        gid_t gid;
        munge_err_t e = munge_decode(c, ctx, &buf, &blen, &uid, &gid);
        int r = munge_errno(e);
        if (r < 0)
                jl_why(why, whylen, r, "MUNGE credential rejected: %s",
                       munge_ctx_strerror(ctx) ? munge_ctx_strerror(ctx) : munge_strerror(e));
        munge_ctx_destroy(ctx);
        free(c);
        if (r < 0) {
                free(buf);
                return r;
        }
        *ret_uid = uid;
        *ret_gid = gid;
        *ret_payload = buf;
        *ret_len = blen > 0 ? (size_t)blen : 0;
        return 0;
}

int jl_auth_wrap_frame(const jl_auth_opts *o, const uint8_t *frame, size_t len, uint32_t id, jl_wbuf *w,
                       char *why, size_t whylen)
{
        char *cred = NULL;
        int r = jl_auth_encode(o, frame, len, &cred, why, whylen);
        if (r < 0)
                return r;
        jl_wbuf_init(w, JL_MSG_AUTHED, 0, id);
        jl_wbuf_put_bytes(w, A_CRED, cred, strlen(cred));
        free(cred);
        const uint8_t *d;
        size_t n;
        return jl_wbuf_finish(w, &d, &n);
}

int jl_auth_unwrap_frame(const jl_auth_opts *o, const uint8_t *payload, size_t len, uint32_t max_payload,
                         uid_t *ret_uid, gid_t *ret_gid, uint8_t **ret_frame, size_t *ret_len, char *why,
                         size_t whylen)
{
        jl_rbuf rb;
        jl_attr a, cred = {0};
        int k;
        jl_rbuf_init(&rb, payload, len);
        while ((k = jl_rbuf_next(&rb, &a)) > 0)
                if (a.type == A_CRED) {
                        if (cred.value)
                                return jl_why(why, whylen, -EBADMSG, "two credentials in one frame");
                        cred = a;
                }
        if (k < 0)
                return jl_why(why, whylen, -EBADMSG, "malformed AUTHED frame");
        if (!cred.value)
                return jl_why(why, whylen, -EBADMSG, "the request carries no MUNGE credential");
        uid_t uid;
        gid_t gid;
        void *inner = NULL;
        size_t ilen = 0;
        int r =
            jl_auth_decode(o, (const char *)cred.value, cred.len, &uid, &gid, &inner, &ilen, why, whylen);
        if (r < 0)
                return r;
        jl_frame_header h;
        if (ilen < JL_WIRE_HEADER_SIZE || (r = jl_frame_header_decode(inner, max_payload, &h)) < 0 ||
            h.length != ilen - JL_WIRE_HEADER_SIZE || h.type == JL_MSG_AUTHED) {
                free(inner);
                return jl_why(why, whylen, -EBADMSG, "the credential does not hold one valid frame");
        }
        *ret_uid = uid;
        *ret_gid = gid;
        *ret_frame = inner;
        *ret_len = ilen;
        return 0;
}
