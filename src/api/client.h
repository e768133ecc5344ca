/* client.h - a client of jouled's local unix socket: one REQUEST, its REPLY (and an fd passed with
 * SCM_RIGHTS), with a deadline. Shared by libjoule-api and the `joule` command; never logs. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "msg.h"

#define JL_CLIENT_SOCKET_DEFAULT "/run/joule/jouled.sock"

/* The reply of one request, owning its text. */
typedef struct {
        int32_t err;       /* jouled's answer: 0 or a negative errno */
        char message[256]; /* jouled's words (may be empty) */
        uint64_t energy_uj;
        uint64_t time_ms;
        char *text; /* NUL-terminated copy of the reply's text, or NULL */
        int fd;     /* an fd jouled passed with the reply (SCM_RIGHTS), or -1 */
} jl_client_reply;

void jl_client_reply_free(jl_client_reply *r);

/* The socket path: $JOULE_SOCKET when set and not empty, else config_socket, else the default. */
const char *jl_client_socket_path(const char *config_socket);

/* Connect to the unix socket at path (non-blocking connect is not needed: a unix connect does not wait).
 * Errors: -ENOENT (no socket), -ECONNREFUSED (nobody listens), -EACCES, -ENAMETOOLONG, ... */
int jl_client_connect(const char *path, int *ret_fd);

/* Send req on fd and read its reply within timeout_ms. Errors of the exchange: -ETIMEDOUT, -ECONNRESET
 * (jouled closed the connection), -EBADMSG (a malformed reply, words in why), -EPROTONOSUPPORT; a reply
 * that is jouled's refusal is not an error here: see ret->err. */
int jl_client_exchange(int fd, const jl_msg_request *req, int timeout_ms, jl_client_reply *ret, char *why,
                       size_t whylen);

/* Connect, exchange, close. */
int jl_client_request(const char *path, const jl_msg_request *req, int timeout_ms, jl_client_reply *ret,
                      char *why, size_t whylen);

/* Read one whole frame (header and payload, malloc'd in *ret_frame) from a stream socket by the deadline
 * (CLOCK_MONOTONIC ns), keeping the first fd that arrives with it in *ret_fd (-1 when none; others are
 * closed). Used for the control port too. */
int jl_client_read_frame(int fd, uint64_t deadline_ns, uint8_t **ret_frame, size_t *ret_len, int *ret_fd,
                         char *why, size_t whylen);
/* Write all of buf by the deadline. */
int jl_client_write_all(int fd, const void *buf, size_t len, uint64_t deadline_ns);
/* Decode a whole frame that should be a REPLY (an ERROR frame is turned into a reply with its errno). */
int jl_client_parse_reply(const uint8_t *frame, size_t len, jl_client_reply *ret, char *why, size_t whylen);
