/* client.c - one REQUEST/REPLY exchange with jouled over its unix socket, fd passing included (see
 * client.h). */
#include "client.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "macro.h"
#include "timeutil.h"
#include "wire.h"

/* A reply is small: jouled's status text (QUERY) is the largest. */
#define REPLY_MAX_PAYLOAD (256u * 1024u)

void jl_client_reply_free(jl_client_reply *r)
{
        free(r->text);
        r->text = NULL;
        if (r->fd >= 0)
                close(r->fd);
        r->fd = -1;
}

const char *jl_client_socket_path(const char *config_socket)
{
        const char *e = getenv("JOULE_SOCKET");
        if (e && *e)
                return e;
        if (config_socket && *config_socket)
                return config_socket;
        return JL_CLIENT_SOCKET_DEFAULT;
}

int jl_client_connect(const char *path, int *ret_fd)
{
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        if (!path || !*path)
                return -EINVAL;
        if (strlen(path) >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        memcpy(sa.sun_path, path, strlen(path) + 1);
        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return negative_errno();
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
                return negative_errno();
        *ret_fd = TAKE_FD(fd);
        return 0;
}

static int wait_fd(int fd, short events, uint64_t deadline_ns)
{
        for (int tries = 0; tries < 1000; tries++) {
                uint64_t now = mono_ns();
                if (now >= deadline_ns)
                        return -ETIMEDOUT;
                uint64_t left_ms = (deadline_ns - now + NSEC_PER_MSEC - 1) / NSEC_PER_MSEC;
                struct pollfd p = {.fd = fd, .events = events};
                int r = poll(&p, 1, (int)MIN(left_ms, (uint64_t)60000));
                if (r > 0)
                        return 0;
                if (r < 0 && errno != EINTR)
                        return negative_errno();
        }
        return -ETIMEDOUT;
}

int jl_client_write_all(int fd, const void *buf, size_t len, uint64_t deadline_ns)
{
        const uint8_t *p = buf;
        while (len > 0) {
                ssize_t n = send(fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno != EAGAIN)
                                return errno == EPIPE ? -ECONNRESET : negative_errno();
                        int r = wait_fd(fd, POLLOUT, deadline_ns);
                        if (r < 0)
                                return r;
                        continue;
                }
                p += n;
                len -= (size_t)n;
        }
        return 0;
}

/* Receive into buf, taking any fds that come with the bytes. */
static ssize_t recv_fds(int fd, void *buf, size_t len, int *keep_fd)
{
        union {
                struct cmsghdr h;
                char buf[CMSG_SPACE(sizeof(int) * 4)];
        } c;
        struct iovec iov = {.iov_base = buf, .iov_len = len};
        struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = c.buf, .msg_controllen = sizeof(c.buf)};
        ssize_t n = recvmsg(fd, &m, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        if (n < 0)
                return n;
        for (struct cmsghdr *h = CMSG_FIRSTHDR(&m); h; h = CMSG_NXTHDR(&m, h)) {
                if (h->cmsg_level != SOL_SOCKET || h->cmsg_type != SCM_RIGHTS)
                        continue;
                size_t nfds = (h->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                for (size_t i = 0; i < nfds; i++) {
                        int got;
                        memcpy(&got, CMSG_DATA(h) + i * sizeof(int), sizeof(int));
                        if (*keep_fd < 0)
                                *keep_fd = got;
                        else
                                close(got);
                }
        }
        return n;
}

static int read_exact(int fd, uint8_t *buf, size_t len, uint64_t deadline_ns, int *keep_fd)
{
        size_t got = 0;
        while (got < len) {
                ssize_t n = recv_fds(fd, buf + got, len - got, keep_fd);
                if (n == 0)
                        return -ECONNRESET;
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno != EAGAIN)
                                return negative_errno();
                        int r = wait_fd(fd, POLLIN, deadline_ns);
                        if (r < 0)
                                return r;
                        continue;
                }
                got += (size_t)n;
        }
        return 0;
}

int jl_client_read_frame(int fd, uint64_t deadline_ns, uint8_t **ret_frame, size_t *ret_len, int *ret_fd,
                         char *why, size_t whylen)
{
        uint8_t hdr[JL_WIRE_HEADER_SIZE];
        int keep_fd = -1;
        jl_frame_header h;

        int r = read_exact(fd, hdr, sizeof(hdr), deadline_ns, &keep_fd);
        if (r == 0) {
                r = jl_frame_header_decode(hdr, REPLY_MAX_PAYLOAD, &h);
                if (r < 0)
                        snprintf(why, whylen, "%s",
                                 r == -EPROTONOSUPPORT ? "the reply is of another protocol version"
                                 : r == -EMSGSIZE      ? "the reply is too large"
                                                       : "the reply is not a joule frame");
        }
        _cleanup_free_ uint8_t *frame = NULL;
        if (r == 0) {
                frame = malloc(sizeof(hdr) + h.length);
                if (!frame)
                        r = -ENOMEM;
        }
        if (r == 0) {
                memcpy(frame, hdr, sizeof(hdr));
                r = read_exact(fd, frame + sizeof(hdr), h.length, deadline_ns, &keep_fd);
        }
        if (r < 0) {
                if (keep_fd >= 0)
                        close(keep_fd);
                return r;
        }
        *ret_len = sizeof(hdr) + h.length;
        *ret_frame = TAKE_PTR(frame);
        if (ret_fd)
                *ret_fd = keep_fd;
        else if (keep_fd >= 0)
                close(keep_fd);
        return 0;
}

int jl_client_parse_reply(const uint8_t *frame, size_t len, jl_client_reply *ret, char *why, size_t whylen)
{
        jl_frame_header h;
        int r = jl_frame_header_decode(frame, REPLY_MAX_PAYLOAD, &h);
        if (r < 0)
                return r;
        const uint8_t *payload = frame + JL_WIRE_HEADER_SIZE;
        if (len != JL_WIRE_HEADER_SIZE + (size_t)h.length)
                return -EBADMSG;
        jl_client_reply out = {.fd = -1};
        if (h.type == JL_MSG_ERROR) {
                jl_msg_error e;
                r = jl_msg_error_decode(payload, h.length, &e, why, whylen);
                if (r < 0)
                        return r;
                out.err = e.err ? e.err : -EIO;
                memcpy(out.message, e.message, sizeof(out.message));
                *ret = out;
                return 0;
        }
        if (h.type != JL_MSG_REPLY) {
                snprintf(why, whylen, "a frame of type %u came instead of a reply", h.type);
                return -EBADMSG;
        }
        jl_msg_reply m;
        r = jl_msg_reply_decode(payload, h.length, &m, why, whylen);
        if (r < 0)
                return r;
        out.err = m.err;
        memcpy(out.message, m.message, sizeof(out.message));
        out.energy_uj = m.energy_uj;
        out.time_ms = m.time_ms;
        if (m.text_len) {
                out.text = strndup(m.text, m.text_len);
                if (!out.text)
                        return -ENOMEM;
        }
        *ret = out;
        return 0;
}

int jl_client_exchange(int fd, const jl_msg_request *req, int timeout_ms, jl_client_reply *ret, char *why,
                       size_t whylen)
{
        static _Atomic uint32_t next_id = 1;
        uint32_t id = next_id++;
        uint64_t deadline = mono_ns() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 1) * NSEC_PER_MSEC;
        jl_wbuf w;
        const uint8_t *data;
        size_t len;

        int r = jl_msg_request_encode(req, id, &w);
        if (r == 0)
                r = jl_wbuf_finish(&w, &data, &len);
        if (r == 0)
                r = jl_client_write_all(fd, data, len, deadline);
        jl_wbuf_free(&w);
        if (r < 0)
                return r;

        _cleanup_free_ uint8_t *frame = NULL;
        int passed = -1;
        r = jl_client_read_frame(fd, deadline, &frame, &len, &passed, why, whylen);
        if (r < 0)
                return r;
        jl_client_reply rep;
        r = jl_client_parse_reply(frame, len, &rep, why, whylen);
        if (r < 0) {
                if (passed >= 0)
                        close(passed);
                return r;
        }
        rep.fd = passed;
        *ret = rep;
        return 0;
}

int jl_client_request(const char *path, const jl_msg_request *req, int timeout_ms, jl_client_reply *ret,
                      char *why, size_t whylen)
{
        _cleanup_close_ int fd = -1;
        int r = jl_client_connect(path, &fd);
        if (r < 0)
                return r;
        return jl_client_exchange(fd, req, timeout_ms, ret, why, whylen);
}
