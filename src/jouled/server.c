/* server.c - jouled's two request servers, one thread each: the local unix socket (SO_PEERCRED identifies
 * every client; the shared-memory page's fd travels with SCM_RIGHTS) and the remote control port over TCP
 * (every request is an AUTHED frame whose MUNGE credential wraps the REQUEST). Each is an epoll loop over
 * non-blocking connections with a frame assembler and an output buffer per connection, so that many
 * clients are served at once and none can stall the others. A malformed frame, a bad credential or (on the
 * control port) a refused change is logged with the peer and drops that connection only. A request must
 * arrive whole within REQUEST_DEADLINE_NS of its first byte, and a reply must be read within as long (a
 * client that sends one byte a second is dropped all the same); each peer (uid on the socket, address on
 * the control port) holds a bounded number of connections, root on the socket excepted. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "auth.h"
#include "jouled.h"
#include "log.h"
#include "macro.h"
#include "timeutil.h"
#include "wire.h"

#define MAX_CONNS 16384
#define MAX_CONNS_PER_UID 1024 /* local socket, every uid but root (an MPI job: one per rank) */
#define MAX_CONNS_PER_ADDR 64  /* control port, per client address */
#define MAX_REQUEST_PAYLOAD (64u * 1024)
#define MAX_OUT (4u * 1024 * 1024)
#define REQUEST_DEADLINE_NS (5 * NSEC_PER_SEC)
#define CONTROL_IDLE_NS (10 * NSEC_PER_SEC) /* control port: a connection without a request in progress */

typedef struct conn conn;
struct conn {
        conn *prev, *next;
        int fd;
        jl_framer fr;
        uint8_t *out;
        size_t out_len, out_cap;
        bool closing;                 /* drop once the output is flushed */
        bool dead;                    /* drop now (set while a frame is being served) */
        uint64_t frame_start_ns;      /* first byte of the frame being received; 0: none */
        uint64_t out_since_ns;        /* output waiting since; 0: none */
        uint64_t idle_since_ns;       /* accepted, or its last request arrived */
        struct sockaddr_storage addr; /* control port: the peer's address (the per-address limit) */
        jd_peer peer;
};

struct jd_server {
        jouled *d;
        bool remote;
        int listen_fd, epfd;
        int watch_epfd; /* local socket: the watched processes' pidfds (-1: none) */
        char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
        jl_auth_opts auth;
        char *munge_socket;
        conn *conns;
        size_t nconns;
        jd_log_limit log;        /* lines about clients' faults: a client cannot flood the journal */
        uint64_t refused;        /* connections refused by a limit since the last log line */
        uint64_t refused_log_ns; /* that log line's time: at most one every 10 s */
};

static const char listen_tag = 'L', stop_tag = 'S', watch_tag = 'W';

int jd_parse_listen(const char *s, void *ret_sockaddr, unsigned *ret_len, char *err, size_t errlen)
{
        char host[256];
        const char *colon = strrchr(s, ':');
        if (!colon || colon == s || !colon[1] || (size_t)(colon - s) >= sizeof(host)) {
                snprintf(err, errlen, "'%s' is not host:port", s);
                return -EINVAL;
        }
        memcpy(host, s, (size_t)(colon - s));
        host[colon - s] = '\0';
        if (host[0] == '[' && host[strlen(host) - 1] == ']') {
                memmove(host, host + 1, strlen(host));
                host[strlen(host) - 1] = '\0';
        }
        struct addrinfo hints = {
            .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
        struct addrinfo *res = NULL;
        int g = getaddrinfo(host, colon + 1, &hints, &res);
        if (g != 0 || !res) {
                snprintf(err, errlen, "'%s': %s", s, g ? gai_strerror(g) : "no address");
                return -EINVAL;
        }
        memcpy(ret_sockaddr, res->ai_addr, res->ai_addrlen);
        *ret_len = (unsigned)res->ai_addrlen;
        freeaddrinfo(res);
        return 0;
}

static int epoll_add(int epfd, int fd, uint32_t events, void *ptr)
{
        struct epoll_event ev = {.events = events, .data.ptr = ptr};
        return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ? negative_errno() : 0;
}

static int server_new(jouled *d, bool remote, int listen_fd, jd_server **ret)
{
        jd_server *s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->d = d;
        s->remote = remote;
        s->listen_fd = listen_fd;
        s->watch_epfd = -1;
        s->epfd = epoll_create1(EPOLL_CLOEXEC);
        if (s->epfd < 0 || epoll_add(s->epfd, listen_fd, EPOLLIN, (void *)&listen_tag) < 0 ||
            epoll_add(s->epfd, d->stop_fd, EPOLLIN, (void *)&stop_tag) < 0) {
                int r = negative_errno();
                if (s->epfd >= 0)
                        close(s->epfd);
                free(s);
                return r;
        }
        *ret = s;
        return 0;
}

static int mkdir_parents(const char *path)
{
        char buf[sizeof(((struct sockaddr_un *)0)->sun_path)];
        jd_copy(buf, sizeof(buf), path);
        for (char *p = buf + 1; *p; p++)
                if (*p == '/') {
                        *p = '\0';
                        if (mkdir(buf, 0755) < 0 && errno != EEXIST)
                                return negative_errno();
                        *p = '/';
                }
        return 0;
}

int jd_server_open_local(jouled *d, const char *path, jd_server **ret, char *err, size_t errlen)
{
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        if (strlen(path) >= sizeof(sa.sun_path)) {
                snprintf(err, errlen, "node.socket '%s' is longer than %zu bytes", path,
                         sizeof(sa.sun_path) - 1);
                return -ENAMETOOLONG;
        }
        jd_copy(sa.sun_path, sizeof(sa.sun_path), path);
        int r = mkdir_parents(path);
        if (r < 0) {
                snprintf(err, errlen, "creating the directory of %s: %s", path, strerror(-r));
                return r;
        }
        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
                r = negative_errno();
                snprintf(err, errlen, "socket: %s", strerror(-r));
                return r;
        }
        /* A socket file left by a jouled that died: remove it, unless a live jouled answers on it. */
        struct stat st;
        if (lstat(path, &st) == 0) {
                if (!S_ISSOCK(st.st_mode)) {
                        snprintf(err, errlen, "%s exists and is not a socket", path);
                        return -EEXIST;
                }
                _cleanup_close_ int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
                if (probe >= 0 && connect(probe, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
                        snprintf(err, errlen, "another jouled serves %s", path);
                        return -EADDRINUSE;
                }
                unlink(path);
        }
        if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || chmod(path, 0666) < 0 ||
            listen(fd, 128) < 0) {
                r = negative_errno();
                snprintf(err, errlen, "listening on %s: %s", path, strerror(-r));
                return r;
        }
        jd_server *s;
        r = server_new(d, false, fd, &s);
        if (r < 0) {
                unlink(path);
                snprintf(err, errlen, "epoll: %s", strerror(-r));
                return r;
        }
        TAKE_FD(fd);
        jd_copy(s->path, sizeof(s->path), path);
        /* the processes whose end ends a step (JL_OP_WATCH_PID): their pidfds in an epoll set of their own,
         * watched by this loop */
        s->watch_epfd = epoll_create1(EPOLL_CLOEXEC);
        if (s->watch_epfd < 0 || epoll_add(s->epfd, s->watch_epfd, EPOLLIN, (void *)&watch_tag) < 0) {
                r = negative_errno();
                snprintf(err, errlen, "epoll: %s", strerror(-r));
                jd_server_free(s);
                return r;
        }
        jd_watch_start(d, s->watch_epfd);
        *ret = s;
        return 0;
}

int jd_server_open_control(jouled *d, const char *listen_addr, jd_server **ret, char *err, size_t errlen)
{
        struct sockaddr_storage ss;
        unsigned len;
        int r = jd_parse_listen(listen_addr, &ss, &len, err, errlen);
        if (r < 0)
                return r;
        _cleanup_close_ int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        int one = 1;
        if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
            bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, 128) < 0) {
                r = negative_errno();
                snprintf(err, errlen, "node.control_listen %s: %s", listen_addr, strerror(-r));
                return r;
        }
        jd_server *s;
        r = server_new(d, true, fd, &s);
        if (r < 0) {
                snprintf(err, errlen, "epoll: %s", strerror(-r));
                return r;
        }
        TAKE_FD(fd);
        if (d->cfg.node.munge_socket && !(s->munge_socket = strdup(d->cfg.node.munge_socket))) {
                jd_server_free(s);
                return -ENOMEM;
        }
        s->auth = (jl_auth_opts){.socket = s->munge_socket};
        *ret = s;
        return 0;
}

static void conn_free(jd_server *s, conn *c)
{
        epoll_ctl(s->epfd, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        jl_framer_free(&c->fr);
        free(c->out);
        if (c->prev)
                c->prev->next = c->next;
        else
                s->conns = c->next;
        if (c->next)
                c->next->prev = c->prev;
        s->nconns--;
        free(c);
}

void jd_server_free(jd_server *s)
{
        if (!s)
                return;
        while (s->conns)
                conn_free(s, s->conns);
        close(s->epfd);
        if (s->watch_epfd >= 0)
                close(s->watch_epfd);
        close(s->listen_fd);
        if (s->path[0])
                unlink(s->path);
        free(s->munge_socket);
        free(s);
}

bool jd_log_limit_ok(jd_log_limit *l, const char *where, const char *about)
{
        uint64_t now = mono_ns();
        if (!l->window_ns || now - l->window_ns >= JD_LOG_WINDOW_NS) {
                if (l->left_out)
                        log_warning(0, "%s%s%" PRIu64 " more lines about %s were left out of the log",
                                    where ? where : "", where ? ": " : "", l->left_out, about);
                l->window_ns = now;
                l->lines = 0;
                l->left_out = 0;
        }
        if (l->lines < JD_LOG_LINES_MAX) {
                l->lines++;
                return true;
        }
        l->left_out++;
        return false;
}

/* May a line about a client's fault be logged now? */
static bool client_log_ok(jd_server *s)
{
        return jd_log_limit_ok(&s->log, s->remote ? "control port" : "socket", "clients");
}

static void conn_drop(jd_server *s, conn *c, const char *fmt, ...) _printf_(3, 4);
static void conn_drop(jd_server *s, conn *c, const char *fmt, ...)
{
        if (fmt && client_log_ok(s)) {
                char why[512];
                va_list ap;
                va_start(ap, fmt);
                vsnprintf(why, sizeof(why), fmt, ap);
                va_end(ap);
                log_warning(0, "%s: %s (%s); connection dropped", s->remote ? "control port" : "socket", why,
                            c->peer.desc);
        }
        conn_free(s, c);
}

/* Flush what can be sent now. Returns 0, or a negative errno when the connection is dead. */
static int conn_flush(jd_server *s, conn *c)
{
        while (c->out_len > 0) {
                ssize_t n = send(c->fd, c->out, c->out_len, MSG_NOSIGNAL | MSG_DONTWAIT);
                if (n < 0) {
                        if (errno == EAGAIN || errno == EWOULDBLOCK)
                                break;
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                memmove(c->out, c->out + n, c->out_len - (size_t)n);
                c->out_len -= (size_t)n;
        }
        if (c->out_len == 0)
                c->out_since_ns = 0;
        else if (!c->out_since_ns)
                c->out_since_ns = mono_ns();
        struct epoll_event ev = {.events = EPOLLIN | (c->out_len ? EPOLLOUT : 0), .data.ptr = c};
        epoll_ctl(s->epfd, EPOLL_CTL_MOD, c->fd, &ev);
        return 0;
}

static int conn_queue(conn *c, const uint8_t *data, size_t len)
{
        if (c->out_len + len > MAX_OUT)
                return -ENOBUFS;
        if (c->out_len + len > c->out_cap) {
                size_t cap = MAX(c->out_cap * 2, c->out_len + len);
                uint8_t *b = realloc(c->out, cap);
                if (!b)
                        return -ENOMEM;
                c->out = b;
                c->out_cap = cap;
        }
        memcpy(c->out + c->out_len, data, len);
        c->out_len += len;
        return 0;
}

/* Send a frame with a descriptor attached (only when nothing else is queued: the fd must travel with
 * this frame's first byte). */
static int send_with_fd(conn *c, const uint8_t *data, size_t len, int fd)
{
        if (c->out_len > 0)
                return -EAGAIN;
        union {
                char buf[CMSG_SPACE(sizeof(int))];
                struct cmsghdr align;
        } u;
        memset(&u, 0, sizeof(u));
        struct iovec iov = {.iov_base = (void *)data, .iov_len = len};
        struct msghdr mh = {
            .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof(u.buf)};
        struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(cm), &fd, sizeof(int));
        ssize_t n = sendmsg(c->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0)
                return negative_errno();
        if ((size_t)n < len)
                return conn_queue(c, data + n, len - (size_t)n);
        return 0;
}

static int send_reply(conn *c, const jl_msg_reply *rep, uint32_t id, int fd)
{
        jl_wbuf w;
        const uint8_t *data;
        size_t len;
        int r = jl_msg_reply_encode(rep, id, &w);
        if (r == 0)
                r = jl_wbuf_finish(&w, &data, &len);
        if (r == 0)
                r = fd >= 0 ? send_with_fd(c, data, len, fd) : conn_queue(c, data, len);
        jl_wbuf_free(&w);
        return r;
}

static void reject(jd_server *s, conn *c, uint32_t id, int err, const char *msg)
{
        jl_msg_reply rep = {.err = err};
        jd_copy(rep.message, sizeof(rep.message), msg);
        (void)send_reply(c, &rep, id, -1);
        c->closing = true;
        (void)s;
}

static void serve_request(jd_server *s, conn *c, const jl_frame_header *h, const uint8_t *payload)
{
        jl_msg_request req;
        char why[256] = "";
        int r = jl_msg_request_decode(payload, h->length, &req, why, sizeof(why));
        if (r < 0) {
                if (client_log_ok(s))
                        log_warning(0, "%s: malformed request: %s (%s); connection dropped",
                                    s->remote ? "control port" : "socket", why, c->peer.desc);
                reject(s, c, h->id, -EBADMSG, why);
                return;
        }
        jl_msg_reply rep;
        _cleanup_free_ char *text = NULL;
        int fd;
        jd_handle_request(s->d, &c->peer, &req, &rep, &text, &fd);
        if (text) {
                rep.text = text;
                rep.text_len = strlen(text);
        }
        r = send_reply(c, &rep, h->id, fd);
        if (r < 0) {
                if (client_log_ok(s))
                        log_warning(0, "%s: cannot send the reply: %s (%s); connection dropped",
                                    s->remote ? "control port" : "socket", strerror(-r), c->peer.desc);
                c->dead = c->closing = true;
                return;
        }
        if (s->remote && rep.err == -EPERM) {
                if (client_log_ok(s))
                        log_warning(
                            0, "control port: operation %u refused to uid %u: %s (%s); connection dropped",
                            req.op, (unsigned)c->peer.uid, rep.message, c->peer.desc);
                c->closing = true;
        } else if (rep.err == -EPERM && client_log_ok(s))
                log_info("socket: operation %u refused: %s (%s)", req.op, rep.message, c->peer.desc);
}

static void serve_authed(jd_server *s, conn *c, const jl_frame_header *h, const uint8_t *payload)
{
        char why[256] = "";
        uid_t uid;
        gid_t gid;
        _cleanup_free_ uint8_t *inner = NULL;
        size_t ilen;
        int r = jl_auth_unwrap_frame(&s->auth, payload, h->length, MAX_REQUEST_PAYLOAD, &uid, &gid, &inner,
                                     &ilen, why, sizeof(why));
        if (r < 0) {
                if (client_log_ok(s))
                        log_warning(0, "control port: credential rejected: %s (%s); connection dropped", why,
                                    c->peer.desc);
                reject(s, c, h->id, r == -ECONNREFUSED ? -ECONNREFUSED : -EACCES, why);
                return;
        }
        jl_frame_header ih;
        r = jl_frame_header_decode(inner, MAX_REQUEST_PAYLOAD, &ih);
        if (r < 0 || ih.type != JL_MSG_REQUEST) {
                if (client_log_ok(s))
                        log_warning(0,
                                    "control port: the credential of uid %u wraps no request (%s); "
                                    "connection dropped",
                                    (unsigned)uid, c->peer.desc);
                reject(s, c, h->id, -EBADMSG, "the credential must wrap one REQUEST frame");
                return;
        }
        c->peer.uid = uid;
        c->peer.gid = gid;
        char *at = strstr(c->peer.desc, " uid ");
        if (at)
                *at = '\0';
        size_t l = strlen(c->peer.desc);
        snprintf(c->peer.desc + l, sizeof(c->peer.desc) - l, " uid %u", (unsigned)uid);
        ih.id = h->id; /* the reply answers the outer frame */
        serve_request(s, c, &ih, inner + JL_WIRE_HEADER_SIZE);
}

static void conn_read(jd_server *s, conn *c)
{
        uint8_t buf[65536];
        for (int rounds = 0; rounds < 16; rounds++) {
                ssize_t n = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT);
                if (n < 0) {
                        if (errno == EAGAIN || errno == EWOULDBLOCK)
                                break;
                        if (errno == EINTR)
                                continue;
                        conn_drop(s, c, "read: %s", strerror(errno));
                        return;
                }
                if (n == 0) {
                        if (c->fr.len > 0)
                                conn_drop(s, c, "the connection closed in the middle of a frame (%zu bytes)",
                                          c->fr.len);
                        else
                                conn_free(s, c);
                        return;
                }
                if (c->closing)
                        continue; /* discard what follows a rejected frame */
                uint64_t now = mono_ns();
                if (c->fr.len == 0)
                        c->frame_start_ns = now; /* the first byte of a request: its deadline starts */
                int r = jl_framer_feed(&c->fr, buf, (size_t)n);
                if (r < 0) {
                        conn_drop(s, c, "%s",
                                  r == -ENOBUFS ? "the client sends faster than it reads replies"
                                                : strerror(-r));
                        return;
                }
                jl_frame_header h;
                const uint8_t *payload;
                while (!c->closing && (r = jl_framer_next(&c->fr, &h, &payload)) == 1) {
                        if (!s->remote && h.type == JL_MSG_REQUEST)
                                serve_request(s, c, &h, payload);
                        else if (s->remote && h.type == JL_MSG_AUTHED)
                                serve_authed(s, c, &h, payload);
                        else if (s->remote && h.type == JL_MSG_REQUEST) {
                                if (client_log_ok(s))
                                        log_warning(
                                            0,
                                            "control port: a request without a MUNGE credential (%s); "
                                            "connection dropped",
                                            c->peer.desc);
                                reject(s, c, h.id, -EACCES,
                                       "every request to the control port must be AUTHED");
                        } else {
                                conn_drop(s, c, "unexpected message type %u", h.type);
                                return;
                        }
                        jl_framer_pop(&c->fr);
                        /* what is left began in this read: the next request's deadline starts now */
                        c->frame_start_ns = c->fr.len > 0 ? now : 0;
                        c->idle_since_ns = now;
                }
                if (r < 0) {
                        conn_drop(s, c, "%s",
                                  r == -EPROTONOSUPPORT ? "a frame of another protocol version"
                                  : r == -EMSGSIZE      ? "an oversized frame"
                                  : r == -EBADMSG       ? "not a joule frame (bad magic)"
                                                        : strerror(-r));
                        return;
                }
        }
        if (c->dead || conn_flush(s, c) < 0 || (c->closing && c->out_len == 0))
                conn_free(s, c);
}

bool jd_addr_is_loopback(const void *sockaddr)
{
        const struct sockaddr *sa = sockaddr;
        if (sa->sa_family == AF_INET)
                return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
        if (sa->sa_family == AF_INET6) {
                const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
                return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
        }
        return false;
}

/* One peer of the control port: one address, except that every loopback address is one peer (any local
 * user may connect from any of 127.0.0.0/8). */
static bool same_addr(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
        bool la = jd_addr_is_loopback(a), lb = jd_addr_is_loopback(b);
        if (la || lb)
                return la && lb;
        if (a->ss_family != b->ss_family)
                return false;
        if (a->ss_family == AF_INET)
                return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
                       ((const struct sockaddr_in *)b)->sin_addr.s_addr;
        if (a->ss_family == AF_INET6)
                return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
                              &((const struct sockaddr_in6 *)b)->sin6_addr, sizeof(struct in6_addr)) == 0;
        return false;
}

/* Why a new connection may not be served (NULL: it may): the limits per peer and in all. */
static const char *over_limit(jd_server *s, const conn *c)
{
        bool root = !s->remote && c->peer.uid == 0;
        if (s->nconns >= MAX_CONNS && !root)
                return "too many connections open";
        if (root)
                return NULL;
        size_t same = 0;
        for (const conn *o = s->conns; o; o = o->next)
                same += s->remote ? same_addr(&o->addr, &c->addr) : o->peer.uid == c->peer.uid;
        if (same >= (s->remote ? MAX_CONNS_PER_ADDR : MAX_CONNS_PER_UID))
                return s->remote ? "too many connections from this address"
                                 : "too many connections of this user";
        return NULL;
}

/* A connection refused by a limit: logged at most once every 10 s, with the count since the last line. */
static void refused(jd_server *s, const conn *c, const char *why)
{
        uint64_t now = mono_ns();
        s->refused++;
        if (s->refused_log_ns && now - s->refused_log_ns < 10 * NSEC_PER_SEC)
                return;
        log_warning(0, "%s: %s (%s): %" PRIu64 " connection%s refused",
                    s->remote ? "control port" : "socket", why, c->peer.desc, s->refused,
                    s->refused == 1 ? "" : "s");
        s->refused = 0;
        s->refused_log_ns = now;
}

static void accept_all(jd_server *s)
{
        for (int i = 0; i < 64; i++) {
                struct sockaddr_storage ss;
                socklen_t sl = sizeof(ss);
                int fd = accept4(s->listen_fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
                if (fd < 0) {
                        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                                log_warning(errno, "%s: accept: %s", s->remote ? "control port" : "socket",
                                            strerror(errno));
                        return;
                }
                conn *c = calloc(1, sizeof(*c));
                if (!c) {
                        close(fd);
                        continue;
                }
                c->fd = fd;
                c->addr = ss;
                c->idle_since_ns = mono_ns();
                jl_framer_init(&c->fr, MAX_REQUEST_PAYLOAD);
                c->peer.remote = s->remote;
                c->peer.uid = (uid_t)-1;
                c->peer.gid = (gid_t)-1;
                if (!s->remote) {
                        struct ucred cr;
                        socklen_t cl = sizeof(cr);
                        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &cl) < 0) {
                                log_warning(errno, "socket: SO_PEERCRED: %s; connection refused",
                                            strerror(errno));
                                jl_framer_free(&c->fr);
                                free(c);
                                close(fd);
                                continue;
                        }
                        c->peer.uid = cr.uid;
                        c->peer.gid = cr.gid;
                        c->peer.pid = cr.pid;
                        snprintf(c->peer.desc, sizeof(c->peer.desc), "pid %d uid %u", (int)cr.pid,
                                 (unsigned)cr.uid);
                } else {
                        char host[INET6_ADDRSTRLEN] = "?";
                        unsigned port = 0;
                        if (ss.ss_family == AF_INET) {
                                struct sockaddr_in *in = (struct sockaddr_in *)&ss;
                                inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
                                port = ntohs(in->sin_port);
                        } else if (ss.ss_family == AF_INET6) {
                                struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
                                inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
                                port = ntohs(in6->sin6_port);
                        }
                        snprintf(c->peer.desc, sizeof(c->peer.desc), "%s:%u", host, port);
                }
                const char *why = over_limit(s, c);
                if (why) {
                        refused(s, c, why);
                        jl_framer_free(&c->fr);
                        free(c);
                        close(fd);
                        continue;
                }
                if (epoll_add(s->epfd, fd, EPOLLIN, c) < 0) {
                        jl_framer_free(&c->fr);
                        free(c);
                        close(fd);
                        continue;
                }
                c->next = s->conns;
                if (s->conns)
                        s->conns->prev = c;
                s->conns = c;
                s->nconns++;
        }
}

/* Drop connections whose request did not arrive whole, or whose reply was not read, within the deadline
 * (however slowly they trickle). Returns the time until the next deadline in ms, -1: none. */
static int reap_stalled(jd_server *s)
{
        uint64_t now = mono_ns(), next_dl = UINT64_MAX;
        for (conn *c = s->conns, *next; c; c = next) {
                next = c->next;
                if (c->frame_start_ns && c->fr.len > 0 && now - c->frame_start_ns >= REQUEST_DEADLINE_NS) {
                        conn_drop(s, c, "a request not complete %llu s after its first byte (%zu bytes)",
                                  (unsigned long long)(REQUEST_DEADLINE_NS / NSEC_PER_SEC), c->fr.len);
                        continue;
                }
                if (c->out_since_ns && now - c->out_since_ns >= REQUEST_DEADLINE_NS) {
                        conn_drop(s, c, "a reply not read within %llu s (%zu bytes)",
                                  (unsigned long long)(REQUEST_DEADLINE_NS / NSEC_PER_SEC), c->out_len);
                        continue;
                }
                bool idle = c->fr.len == 0 && c->out_len == 0;
                if (s->remote && idle && now - c->idle_since_ns >= CONTROL_IDLE_NS) {
                        conn_drop(s, c, "no request for %llu s",
                                  (unsigned long long)(CONTROL_IDLE_NS / NSEC_PER_SEC));
                        continue;
                }
                if (s->remote && idle)
                        next_dl = MIN(next_dl, c->idle_since_ns + CONTROL_IDLE_NS);
                if (c->frame_start_ns && c->fr.len > 0)
                        next_dl = MIN(next_dl, c->frame_start_ns + REQUEST_DEADLINE_NS);
                if (c->out_since_ns)
                        next_dl = MIN(next_dl, c->out_since_ns + REQUEST_DEADLINE_NS);
        }
        if (next_dl == UINT64_MAX)
                return -1;
        return (int)MIN((next_dl - now) / NSEC_PER_MSEC + 1, (uint64_t)60000);
}

void *jd_server_thread(void *userdata)
{
        jd_server *s = userdata;
        int timeout_ms = -1; /* no deadline pending: sleep until a client comes */
        for (;;) {
                struct epoll_event ev[64];
                int n = epoll_wait(s->epfd, ev, 64, timeout_ms);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        log_error(errno, "%s: epoll_wait: %s", s->remote ? "control port" : "socket",
                                  strerror(errno));
                        break;
                }
                bool stop = false;
                for (int i = 0; i < n; i++) {
                        void *p = ev[i].data.ptr;
                        if (p == &stop_tag)
                                stop = true;
                        else if (p == &listen_tag)
                                accept_all(s);
                        else if (p == &watch_tag)
                                jd_watch_reap(s->d);
                }
                if (stop)
                        break;
                for (int i = 0; i < n; i++) {
                        void *p = ev[i].data.ptr;
                        if (p == &stop_tag || p == &listen_tag || p == &watch_tag)
                                continue;
                        conn *c = p;
                        /* a connection freed earlier in this batch cannot appear: each fd has one event */
                        if (ev[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
                                conn_read(s, c);
                        else if (ev[i].events & EPOLLOUT) {
                                if (conn_flush(s, c) < 0 || (c->closing && c->out_len == 0))
                                        conn_free(s, c);
                        }
                }
                timeout_ms = reap_stalled(s);
        }
        return NULL;
}
