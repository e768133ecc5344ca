/* auth.h - MUNGE authentication between hosts: a credential that binds a payload to the sender's uid and
 * gid, and the AUTHED frame that carries a whole request inside one credential. */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "wire.h"

/* munged's socket; NULL: MUNGE's default (/run/munge/munge.socket.2). */
typedef struct {
        const char *socket;
        int ttl_s; /* credential lifetime; 0: MUNGE's default */
} jl_auth_opts;

/* Encode payload into a credential (a malloc'd NUL-terminated string in *ret_cred). */
int jl_auth_encode(const jl_auth_opts *o, const void *payload, size_t len, char **ret_cred, char *why,
                   size_t whylen);
/* Decode a credential: the sender's uid/gid and the payload (malloc'd, may be NULL when empty).
 * Errors: -EBADMSG (invalid or forged), -ETIME (expired), -EALREADY (replayed), -ECONNREFUSED (no munged),
 * each with words in why. */
int jl_auth_decode(const jl_auth_opts *o, const char *cred, size_t cred_len, uid_t *ret_uid, gid_t *ret_gid,
                   void **ret_payload, size_t *ret_len, char *why, size_t whylen);

/* Wrap a whole encoded frame into an AUTHED frame (id is the outer frame's request id). */
int jl_auth_wrap_frame(const jl_auth_opts *o, const uint8_t *frame, size_t len, uint32_t id, jl_wbuf *w,
                       char *why, size_t whylen);
/* Unwrap an AUTHED frame's payload: the sender and the inner frame (malloc'd in *ret_frame, header
 * included and already validated against max_payload). */
int jl_auth_unwrap_frame(const jl_auth_opts *o, const uint8_t *payload, size_t len, uint32_t max_payload,
                         uid_t *ret_uid, gid_t *ret_gid, uint8_t **ret_frame, size_t *ret_len, char *why,
                         size_t whylen);
