/* main.c - joule-dbd, the database daemon: accepts node connections on dbd.listen, runs one epoll event
 * loop over non-blocking sockets (a protocol state machine per connection, conn.c; HELLO credentials checked
 * by MUNGE worker threads, authpool.c, never on the loop), caches what the nodes send in chunks for the
 * writer thread (queue.c, writer.c), ACKs what is committed, stops reading while the cache is over
 * dbd.max_memory_mb (backpressure, never dropping), reloads its batch settings on SIGHUP, and on SIGTERM
 * stores (and ACKs) what it holds before exiting 0.
 *
 * Order: configuration and log, listening socket, queue, writer thread, MUNGE workers, signals, then the
 * loop; torn down in reverse. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <malloc.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "config-joule.h"
#include "config.h"
#include "dbd.h"
#include "log.h"
#include "macro.h"
#include "store.h"
#include "timeutil.h"

#define TAG_LISTEN 1
#define TAG_SIGNAL 2
#define TAG_DONE 3
#define TAG_TIMER 4
#define TAG_AUTH 5
#define AUTH_THREADS 4        /* MUNGE decodes at once (each mostly waits on munged) */
#define AUTH_MAX_WAITING 4096 /* HELLOs queued for them; beyond, a HELLO is refused (the node retries) */
#define HELLO_READ 4096       /* read before a HELLO is accepted: what waits for the credential's answer */
#define HELLO_TIMEOUT_NS (10 * NSEC_PER_SEC)
#define OUT_MAX (1u << 20)
#define STOP_DEADLINE_NS (20 * NSEC_PER_SEC)
#define FEED_PIECE 4096 /* jl_framer_pop moves the rest of its buffer: feed it small pieces */
#define SWAP_STR(a, b)                                                                                      \
        do {                                                                                                \
                char *_t = (a);                                                                             \
                (a) = (b);                                                                                  \
                (b) = _t;                                                                                   \
        } while (0)

typedef struct conn {
        int fd;
        uint64_t id;
        char peer[80];
        struct conn *node_next; /* in d->by_node, once its HELLO is accepted */
        bool by_node;
        dbd_conn_proto proto;
        uint8_t *out;
        size_t out_len, out_off;
        uint64_t ack_seq, acked_seq;
        bool want_ack, epollout, closing;
        uint64_t opened_ns;
} conn;

typedef struct {
        joule_config cfg;
        const char *config_path;
        int epfd, listen_fd, signal_fd, timer_fd;
        char listen_name[96];
        dbd_queue queue;
        dbd_writer *writer;
        dbd_munge_auth auth;
        char *munge_socket;
        dbd_auth_pool *authpool;
        uint64_t feeding; /* the connection whose bytes are being fed (its HELLO goes to the pool) */

        conn **conns;   /* by slot */
        conn **by_node; /* accepted connections by node name: chained buckets */
        size_t nbuckets, nby_node;
        uint32_t *gens;
        size_t nslots;
        size_t *free_slots;
        size_t nfree;
        size_t nconns;

        uint64_t mem_used, mem_limit; /* the cache: queued chunks and the items of the current read */
        uint64_t mem_peak;            /* since the last malloc_trim */
        bool paused, stopping, listen_paused;
        uint64_t stop_deadline_ns;

        dbd_item *pending; /* items of the current read, pushed to the queue together */
        size_t npending, pending_cap;
        uint64_t pending_bytes;
        uint64_t records_in, acks_out, dropped_conns;
} dbd;

static int64_t realtime_us(void)
{
        return (int64_t)(now_ns(CLOCK_REALTIME) / NSEC_PER_USEC);
}

/* ---- configuration ---- */

static int resolve_users(dbd *d, char **users)
{
        free(d->auth.uids);
        d->auth.uids = NULL;
        d->auth.nuids = 0;
        size_t n = 0;
        for (char **u = users; u && *u; u++)
                n++;
        if (n == 0)
                return 0;
        d->auth.uids = calloc(n, sizeof(uid_t));
        if (!d->auth.uids)
                return -ENOMEM;
        for (char **u = users; *u; u++) {
                struct passwd *pw = getpwnam(*u);
                if (!pw)
                        return log_error(ENOENT, "dbd.node_users: no such user '%s'", *u);
                d->auth.uids[d->auth.nuids++] = pw->pw_uid;
        }
        return 0;
}

static void apply_batch_settings(dbd *d)
{
        pthread_mutex_lock(&d->queue.lock);
        d->queue.batch_records = (size_t)d->cfg.dbd.batch_records;
        d->queue.batch_ms = d->cfg.dbd.batch_ms;
        pthread_cond_signal(&d->queue.cond);
        pthread_mutex_unlock(&d->queue.lock);
        d->mem_limit = d->cfg.dbd.max_memory_mb << 20;
}

static void reload(dbd *d)
{
        sd_notify(0, "RELOADING=1\nSTATUS=Reloading the configuration");
        joule_config c;
        char err[512];
        int r = joule_config_init(&c);
        if (r == 0)
                r = joule_config_load(&c, d->config_path, err, sizeof(err));
        if (r < 0) {
                log_error(r, "reload: %s; keeping the running configuration",
                          r == -ENOMEM ? "out of memory" : err);
                joule_config_free(&c);
                sd_notify(0, "READY=1\nSTATUS=Running (the last reload failed)");
                return;
        }
        if (strcmp(c.dbd.listen, d->cfg.dbd.listen) != 0 ||
            strcmp(c.database.url, d->cfg.database.url) != 0 ||
            c.dbd.aggregation_period_s != d->cfg.dbd.aggregation_period_s)
                log_warning(
                    0, "reload: dbd.listen, database.url and dbd.aggregation_period change only at restart");
        char **users = c.dbd.node_users;
        if (resolve_users(d, users) < 0)
                (void)resolve_users(d, d->cfg.dbd.node_users);
        if (dbd_auth_pool_set_uids(d->authpool, d->auth.uids, d->auth.nuids) < 0)
                log_error(ENOMEM, "reload: out of memory; dbd.node_users may be stale");
        /* keep what cannot change at run time, take the rest */
        SWAP_STR(c.dbd.listen, d->cfg.dbd.listen);
        SWAP_STR(c.database.url, d->cfg.database.url);
        c.dbd.aggregation_period_s = d->cfg.dbd.aggregation_period_s;
        joule_config_free(&d->cfg);
        d->cfg = c;
        apply_batch_settings(d);
        log_notice("reloaded: batch_records %" PRIu64 ", batch_ms %" PRIu64 ", max_memory_mb %" PRIu64,
                   d->cfg.dbd.batch_records, d->cfg.dbd.batch_ms, d->cfg.dbd.max_memory_mb);
        sd_notify(0, "READY=1\nSTATUS=Running");
}

/* ---- connections ---- */

static conn *conn_lookup(dbd *d, uint64_t id)
{
        size_t slot = (size_t)(id & 0xffffffffu);
        if (slot >= d->nslots || !d->conns[slot] || d->conns[slot]->id != id)
                return NULL;
        return d->conns[slot];
}

/* HELLOs are read even while the cache is full (in small pieces, see conn_read), so that a node connecting
 * during a database outage is not dropped for a HELLO it could not send. */
static bool conn_wants_read(const dbd *d, const conn *c)
{
        if (d->stopping || c->closing)
                return false;
        return c->proto.state == DBD_CONN_AWAIT_HELLO || (c->proto.state == DBD_CONN_READY && !d->paused);
}

static void conn_events(dbd *d, conn *c)
{
        struct epoll_event ev = {.data.u64 = c->id};
        if (conn_wants_read(d, c))
                ev.events |= EPOLLIN;
        if (c->out_off < c->out_len)
                ev.events |= EPOLLOUT;
        (void)epoll_ctl(d->epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

static int emit(void *userdata, dbd_item *it)
{
        dbd *d = userdata;
        if (d->npending == d->pending_cap) {
                size_t cap = d->pending_cap ? d->pending_cap * 2 : 256;
                dbd_item *p = realloc(d->pending, cap * sizeof(dbd_item));
                if (!p)
                        return -ENOMEM;
                d->pending = p;
                d->pending_cap = cap;
        }
        d->pending_bytes += dbd_item_bytes(it);
        d->pending[d->npending++] = *it;
        return 0;
}

/* A HELLO's credential goes to the pool of MUNGE workers; the answer comes back through on_auth(). */
static int auth_async(void *userdata, const uint8_t *cred, size_t cred_len, const char *node, char *why,
                      size_t whylen)
{
        dbd *d = userdata;
        if (cred_len == 0)
                return dbd_auth_munge(NULL, cred, cred_len, node, why, whylen);
        int r = dbd_auth_pool_submit(d->authpool, d->feeding, cred, cred_len, node);
        if (r == -EAGAIN)
                snprintf(why, whylen, "%d HELLOs are waiting for MUNGE already; try again later",
                         AUTH_MAX_WAITING);
        else if (r < 0)
                snprintf(why, whylen, "out of memory");
        return r < 0 ? r : DBD_AUTH_PENDING;
}

static bool cache_full(const dbd *d)
{
        return d->mem_used + d->pending_bytes >= d->mem_limit;
}

static void push_pending(dbd *d)
{
        if (d->npending == 0)
                return;
        for (size_t i = 0; i < d->npending; i++)
                d->records_in += d->pending[i].kind == DBD_ITEM_RECORD;
        size_t added;
        int r = dbd_queue_push(&d->queue, d->pending, d->npending, &added);
        d->mem_used += added;
        d->mem_peak = MAX(d->mem_peak, d->mem_used);
        d->pending_bytes = 0;
        if (r < 0) {
                /* not cached, not ACKed: the nodes send them again */
                log_error(r, "cannot cache %zu messages: out of memory", d->npending);
                for (size_t i = 0; i < d->npending; i++)
                        dbd_item_clear(&d->pending[i]);
        }
        d->npending = 0;
}

/* ---- accepted connections by node name (a node that connects again closes its old connection) ---- */

static size_t node_hash(const char *s)
{
        uint64_t h = 1469598103934665603ull;
        for (; *s; s++)
                h = (h ^ (uint8_t)*s) * 1099511628211ull;
        return (size_t)h;
}

static void by_node_add(dbd *d, conn *c)
{
        if (d->nby_node >= d->nbuckets) {
                size_t n = d->nbuckets ? d->nbuckets * 2 : 64;
                conn **b = calloc(n, sizeof(conn *));
                if (b) { /* else longer chains */
                        for (size_t i = 0; i < d->nbuckets; i++)
                                for (conn *o = d->by_node[i], *next; o; o = next) {
                                        next = o->node_next;
                                        size_t j = node_hash(o->proto.node) & (n - 1);
                                        o->node_next = b[j];
                                        b[j] = o;
                                }
                        free(d->by_node);
                        d->by_node = b;
                        d->nbuckets = n;
                }
        }
        if (d->nbuckets == 0)
                return; /* out of memory: an old connection of this node is not found (it ends by itself) */
        size_t j = node_hash(c->proto.node) & (d->nbuckets - 1);
        c->node_next = d->by_node[j];
        d->by_node[j] = c;
        c->by_node = true;
        d->nby_node++;
}

static void by_node_del(dbd *d, conn *c)
{
        if (!c->by_node)
                return;
        for (conn **p = &d->by_node[node_hash(c->proto.node) & (d->nbuckets - 1)]; *p; p = &(*p)->node_next)
                if (*p == c) {
                        *p = c->node_next;
                        break;
                }
        c->by_node = false;
        d->nby_node--;
}

static conn *by_node_find(const dbd *d, const char *node)
{
        if (d->nbuckets == 0)
                return NULL;
        for (conn *o = d->by_node[node_hash(node) & (d->nbuckets - 1)]; o; o = o->node_next)
                if (strcmp(o->proto.node, node) == 0)
                        return o;
        return NULL;
}

static void conn_free(dbd *d, conn *c)
{
        by_node_del(d, c);
        size_t slot = (size_t)(c->id & 0xffffffffu);
        (void)epoll_ctl(d->epfd, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        dbd_proto_free(&c->proto);
        free(c->out);
        d->conns[slot] = NULL;
        d->free_slots[d->nfree++] = slot;
        d->nconns--;
        free(c);
}

/* Drop a connection; a node that said HELLO gets a BYE item (its nodes row says disconnected). */
static void conn_drop(dbd *d, conn *c, const char *why)
{
        if (why) {
                d->dropped_conns++;
                if (c->proto.state == DBD_CONN_READY)
                        log_warning(0, "peer %s (node %s): %s; connection dropped", c->peer, c->proto.node,
                                    why);
                else
                        log_warning(0, "peer %s: %s; connection dropped", c->peer, why);
        }
        if (c->proto.state == DBD_CONN_READY && !d->stopping) {
                dbd_item it = {.kind = DBD_ITEM_BYE, .conn_id = c->id};
                memcpy(it.node, c->proto.node, sizeof(it.node));
                it.hello.time_us = realtime_us();
                (void)emit(d, &it);
                push_pending(d);
        }
        conn_free(d, c);
}

static int conn_flush(dbd *d, conn *c)
{
        while (c->out_off < c->out_len) {
                ssize_t k = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN)
                                break;
                        return negative_errno();
                }
                c->out_off += (size_t)k;
        }
        if (c->out_off == c->out_len)
                c->out_off = c->out_len = 0;
        bool want = c->out_off < c->out_len;
        if (want != c->epollout) {
                c->epollout = want;
                conn_events(d, c);
        }
        return 0;
}

static int conn_send(dbd *d, conn *c, jl_wbuf *w)
{
        const uint8_t *data;
        size_t len;
        int r = jl_wbuf_finish(w, &data, &len);
        if (r < 0)
                return r;
        if (c->out_len + len > OUT_MAX)
                return -ENOBUFS;
        if (c->out_off > 0) {
                memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
                c->out_len -= c->out_off;
                c->out_off = 0;
        }
        uint8_t *o = realloc(c->out, c->out_len + len);
        if (!o)
                return -ENOMEM;
        c->out = o;
        memcpy(c->out + c->out_len, data, len);
        c->out_len += len;
        return conn_flush(d, c);
}

static void conn_send_error(dbd *d, conn *c, int err, const char *why)
{
        jl_msg_error m = {.err = err < 0 && err > -4096 ? err : -EPROTO};
        size_t n = MIN(strlen(why), sizeof(m.message) - 1);
        memcpy(m.message, why, n);
        m.message[n] = '\0';
        _cleanup_(jl_wbuf_free) jl_wbuf w = {0};
        if (jl_msg_error_encode(&m, 0, &w) == 0)
                (void)conn_send(d, c, &w);
}

static void set_paused(dbd *d, bool paused);

/* Read what a connection sent, up to 256 KiB at a time, and not beyond the cache's limit: the check is made
 * before every read, so that the cache overshoots dbd.max_memory_mb by one read's items at most. Before its
 * HELLO is accepted a connection is read in small pieces, and not at all while the credential is checked:
 * what follows the HELLO waits in its framer meanwhile. */
static void conn_read(dbd *d, conn *c)
{
        static uint8_t buf[65536];
        size_t total = 0;
        while (total < 4 * sizeof(buf) && c->proto.state != DBD_CONN_AUTHENTICATING) {
                if (c->proto.state == DBD_CONN_READY && cache_full(d)) {
                        push_pending(d);
                        set_paused(d, true);
                        return;
                }
                size_t want = c->proto.state == DBD_CONN_READY ? sizeof(buf) : HELLO_READ;
                ssize_t k = recv(c->fd, buf, want, 0);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN)
                                break;
                        char why[128];
                        snprintf(why, sizeof(why), "read: %s", strerror(errno));
                        push_pending(d);
                        conn_drop(d, c, why);
                        return;
                }
                if (k == 0) {
                        push_pending(d);
                        if (c->proto.framer.len > 0)
                                conn_drop(d, c, "the connection ended inside a frame (truncated frame)");
                        else
                                conn_drop(d, c, NULL);
                        return;
                }
                total += (size_t)k;
                int64_t now = realtime_us();
                d->feeding = c->id;
                for (size_t off = 0; off < (size_t)k; off += FEED_PIECE) {
                        char why[512];
                        size_t n = MIN((size_t)FEED_PIECE, (size_t)k - off);
                        int r = dbd_proto_feed(&c->proto, buf + off, n, now, auth_async, d, emit, d, why,
                                               sizeof(why));
                        if (r < 0) {
                                /* what came before the bad frame is good: keep it */
                                push_pending(d);
                                conn_send_error(d, c, r, why);
                                conn_drop(d, c, why);
                                return;
                        }
                }
        }
        push_pending(d);
        if (c->proto.state == DBD_CONN_AUTHENTICATING)
                conn_events(d, c); /* no EPOLLIN until the answer */
}

/* The answers of the MUNGE workers: a refused HELLO ends its connection; an accepted one closes any other
 * connection of the same node (a node that reconnects before its old connection broke) and processes what
 * the node sent after its HELLO. */
static void on_auth(dbd *d)
{
        dbd_auth_result res[64];
        size_t n = dbd_auth_pool_take(d->authpool, res, ARRAY_SIZE(res));
        for (size_t i = 0; i < n; i++) {
                conn *c = conn_lookup(d, res[i].conn_id);
                if (!c || c->proto.state != DBD_CONN_AUTHENTICATING)
                        continue; /* gone meanwhile (closed, timed out) */
                if (d->stopping)
                        continue; /* no new node now: its BYE would never be stored */
                conn *o;
                while (res[i].r == 0 && (o = by_node_find(d, c->proto.node))) {
                        char why[160];
                        snprintf(why, sizeof(why),
                                 "the node connected again (from %s): its old connection is closed",
                                 c->peer);
                        conn_drop(d, o, why); /* its BYE goes before the new HELLO */
                }
                char why[512];
                int r = dbd_proto_auth_done(&c->proto, res[i].r, res[i].why, realtime_us(), emit, d, why,
                                            sizeof(why));
                push_pending(d);
                if (r < 0) {
                        conn_send_error(d, c, r, why);
                        conn_drop(d, c, why);
                        continue;
                }
                by_node_add(d, c);
                conn_events(d, c);
        }
        if (!d->paused && !d->stopping && cache_full(d))
                set_paused(d, true);
}

static void accept_all(dbd *d)
{
        for (;;) {
                struct sockaddr_storage sa;
                socklen_t sl = sizeof(sa);
                int fd = accept4(d->listen_fd, (struct sockaddr *)&sa, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
                if (fd < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                                log_warning(errno, "accept: %m; not accepting for a second");
                                struct epoll_event ev = {.data.u64 = TAG_LISTEN};
                                (void)epoll_ctl(d->epfd, EPOLL_CTL_MOD, d->listen_fd, &ev);
                                d->listen_paused = true;
                        }
                        return;
                }
                if (d->nfree == 0) {
                        size_t n = d->nslots ? d->nslots * 2 : 64;
                        conn **cs = realloc(d->conns, n * sizeof(conn *));
                        if (cs)
                                d->conns = cs;
                        uint32_t *g = cs ? realloc(d->gens, n * sizeof(uint32_t)) : NULL;
                        if (g)
                                d->gens = g;
                        size_t *fs = g ? realloc(d->free_slots, n * sizeof(size_t)) : NULL;
                        if (!fs) {
                                close(fd);
                                log_error(ENOMEM, "accept: out of memory");
                                return;
                        }
                        d->free_slots = fs;
                        for (size_t i = d->nslots; i < n; i++) {
                                d->conns[i] = NULL;
                                d->gens[i] = 0;
                        }
                        for (size_t i = n; i-- > d->nslots;)
                                d->free_slots[d->nfree++] = i;
                        d->nslots = n;
                }
                conn *c = calloc(1, sizeof(*c));
                if (!c) {
                        close(fd);
                        return;
                }
                size_t slot = d->free_slots[--d->nfree];
                d->gens[slot]++;
                c->fd = fd;
                c->id = (uint64_t)d->gens[slot] << 32 | slot;
                c->opened_ns = mono_ns();
                dbd_proto_init(&c->proto, c->id);
                char host[64] = "?", port[16] = "?";
                (void)getnameinfo((struct sockaddr *)&sa, sl, host, sizeof(host), port, sizeof(port),
                                  NI_NUMERICHOST | NI_NUMERICSERV);
                snprintf(c->peer, sizeof(c->peer), "%s:%s", host, port);
                int one = 1;
                (void)setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
                (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
                d->conns[slot] = c;
                d->nconns++;
                struct epoll_event ev = {.events = EPOLLIN, .data.u64 = c->id}; /* its HELLO */
                if (epoll_ctl(d->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
                        conn_free(d, c);
                        continue;
                }
                log_debug("peer %s connected", c->peer);
        }
}

static void set_paused(dbd *d, bool paused)
{
        if (d->paused == paused)
                return;
        d->paused = paused;
        if (paused)
                log_notice("cache at %" PRIu64 " MiB (dbd.max_memory_mb %" PRIu64
                           "): not reading from the nodes "
                           "until the database catches up",
                           d->mem_used >> 20, d->cfg.dbd.max_memory_mb);
        else
                log_notice("cache down to %" PRIu64 " MiB: reading from the nodes again", d->mem_used >> 20);
        for (size_t i = 0; i < d->nslots; i++)
                if (d->conns[i])
                        conn_events(d, d->conns[i]);
}

/* Chunks are stored: ACK each connection's latest seq in them, free them. */
static void on_done(dbd *d)
{
        dbd_chunk *list = dbd_queue_take_done(&d->queue);
        _cleanup_free_ conn **acks = NULL;
        size_t nacks = 0, cap = 0;
        for (dbd_chunk *c = list; c; c = c->next) {
                d->mem_used -= MIN(d->mem_used, (uint64_t)c->bytes);
                if (!c->stored)
                        continue;
                for (size_t i = 0; i < c->n; i++) {
                        const dbd_item *it = &c->items[i];
                        if (it->kind != DBD_ITEM_RECORD && it->kind != DBD_ITEM_JOB &&
                            it->kind != DBD_ITEM_RT)
                                continue;
                        conn *cn = conn_lookup(d, it->conn_id);
                        if (!cn)
                                continue;
                        if (it->seq > cn->ack_seq)
                                cn->ack_seq = it->seq;
                        if (!cn->want_ack) {
                                if (nacks == cap) {
                                        cap = cap ? cap * 2 : 64;
                                        conn **a = realloc(acks, cap * sizeof(conn *));
                                        if (!a)
                                                break;
                                        acks = a;
                                }
                                cn->want_ack = true;
                                acks[nacks++] = cn;
                        }
                }
        }
        dbd_chunk_free(list);
        for (size_t i = 0; i < nacks; i++) {
                conn *c = acks[i];
                c->want_ack = false;
                if (c->ack_seq <= c->acked_seq)
                        continue;
                jl_msg_ack a = {.seq = c->ack_seq};
                _cleanup_(jl_wbuf_free) jl_wbuf w = {0};
                int r = jl_msg_ack_encode(&a, 0, &w);
                if (r == 0)
                        r = conn_send(d, c, &w);
                if (r < 0) {
                        char why[128];
                        snprintf(why, sizeof(why), "cannot send ACK: %s", strerror(-r));
                        acks[i] = NULL;
                        conn_drop(d, c, why);
                        /* a later entry may point to it no more: it is not in the list twice */
                        continue;
                }
                c->acked_seq = c->ack_seq;
                d->acks_out++;
        }
        if (d->paused && d->mem_used <= d->mem_limit / 4 * 3)
                set_paused(d, false);
}

static void on_timer(dbd *d)
{
        uint64_t v;
        ssize_t k = read(d->timer_fd, &v, sizeof(v));
        (void)k;
        uint64_t now = mono_ns();
        for (size_t i = 0; i < d->nslots; i++) {
                conn *c = d->conns[i];
                if (c && c->proto.state != DBD_CONN_READY && now - c->opened_ns > HELLO_TIMEOUT_NS)
                        conn_drop(d, c,
                                  c->proto.state == DBD_CONN_AWAIT_HELLO
                                      ? "no HELLO within 10 s"
                                      : "no answer from MUNGE within 10 s of the connection");
        }
        /* the cache shrank well below its peak: hand the freed pages back (glibc keeps them otherwise) */
        if (d->mem_peak > d->mem_used * 2 && d->mem_peak - d->mem_used > (4u << 20)) {
                malloc_trim(0);
                d->mem_peak = d->mem_used;
        }
        if (d->listen_paused && !d->stopping) {
                struct epoll_event ev = {.events = EPOLLIN, .data.u64 = TAG_LISTEN};
                (void)epoll_ctl(d->epfd, EPOLL_CTL_MOD, d->listen_fd, &ev);
                d->listen_paused = false;
        }
        char status[200];
        snprintf(status, sizeof(status),
                 "STATUS=%zu nodes connected, %" PRIu64 " records received, cache %" PRIu64 " KiB%s",
                 d->nconns, d->records_in, d->mem_used >> 10, d->paused ? ", paused (database behind)" : "");
        sd_notify(0, status);
}

static void begin_stop(dbd *d)
{
        if (d->stopping)
                return;
        log_notice("stopping: storing and acknowledging what is cached");
        sd_notify(0, "STOPPING=1\nSTATUS=Storing the cache before exiting");
        /* every node's nodes row says disconnected, in the last batch */
        for (size_t i = 0; i < d->nslots; i++) {
                conn *c = d->conns[i];
                if (c && c->proto.state == DBD_CONN_READY) {
                        dbd_item it = {.kind = DBD_ITEM_BYE, .conn_id = c->id};
                        memcpy(it.node, c->proto.node, sizeof(it.node));
                        it.hello.time_us = realtime_us();
                        (void)emit(d, &it);
                }
        }
        push_pending(d);
        d->stopping = true;
        d->stop_deadline_ns = mono_ns() + STOP_DEADLINE_NS;
        (void)epoll_ctl(d->epfd, EPOLL_CTL_DEL, d->listen_fd, NULL);
        close(d->listen_fd);
        d->listen_fd = -1;
        for (size_t i = 0; i < d->nslots; i++)
                if (d->conns[i])
                        conn_events(d, d->conns[i]);
        pthread_mutex_lock(&d->queue.lock);
        d->queue.flush_all = true;
        d->queue.stop = true;
        pthread_cond_signal(&d->queue.cond);
        pthread_mutex_unlock(&d->queue.lock);
}

static bool writer_finished(dbd *d)
{
        pthread_mutex_lock(&d->queue.lock);
        bool fin = d->queue.head == NULL;
        pthread_mutex_unlock(&d->queue.lock);
        return fin;
}

static int on_signal(dbd *d)
{
        struct signalfd_siginfo si;
        while (read(d->signal_fd, &si, sizeof(si)) == sizeof(si)) {
                switch (si.ssi_signo) {
                case SIGTERM:
                case SIGINT:
                        begin_stop(d);
                        break;
                case SIGHUP:
                        reload(d);
                        break;
                }
        }
        return 0;
}

/* ---- set-up ---- */

static int open_listen(dbd *d)
{
        const char *spec = d->cfg.dbd.listen;
        _cleanup_free_ char *host = NULL;
        const char *port;
        if (spec[0] == '[') {
                const char *end = strchr(spec, ']');
                if (!end || end[1] != ':')
                        return log_error(EINVAL, "dbd.listen '%s' is not host:port", spec);
                host = strndup(spec + 1, (size_t)(end - spec - 1));
                port = end + 2;
        } else {
                const char *colon = strrchr(spec, ':');
                if (!colon)
                        return log_error(EINVAL, "dbd.listen '%s' is not host:port", spec);
                host = strndup(spec, (size_t)(colon - spec));
                port = colon + 1;
        }
        if (!host)
                return log_error(ENOMEM, "out of memory");
        struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE},
                        *ai;
        int r = getaddrinfo(*host ? host : NULL, port, &hints, &ai);
        if (r != 0)
                return log_error(EINVAL, "dbd.listen '%s': %s", spec, gai_strerror(r));
        int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
                freeaddrinfo(ai);
                return log_error(errno, "socket: %m");
        }
        int one = 1;
        (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 4096) < 0) {
                r = log_error(errno, "dbd.listen %s: %m", spec);
                freeaddrinfo(ai);
                close(fd);
                return r;
        }
        freeaddrinfo(ai);
        struct sockaddr_storage sa;
        socklen_t sl = sizeof(sa);
        char h[64] = "?", p[16] = "?";
        if (getsockname(fd, (struct sockaddr *)&sa, &sl) == 0)
                (void)getnameinfo((struct sockaddr *)&sa, sl, h, sizeof(h), p, sizeof(p),
                                  NI_NUMERICHOST | NI_NUMERICSERV);
        snprintf(d->listen_name, sizeof(d->listen_name), "%s:%s", h, p);
        d->listen_fd = fd;
        return 0;
}

static int epoll_add(dbd *d, int fd, uint64_t tag)
{
        struct epoll_event ev = {.events = EPOLLIN, .data.u64 = tag};
        return epoll_ctl(d->epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ? log_error(errno, "epoll: %m") : 0;
}

static void usage(FILE *f)
{
        fprintf(
            f, "Usage: joule-dbd [-c CONFIG] [-v]\n\n"
               "joule's database daemon: collects records from the nodes' jouled into the database.\n\n"
               "  -c, --config FILE  configuration file (default $JOULE_CONFIG or " JOULE_CONFIG_DEFAULT_PATH
               ")\n"
               "  -v, --verbose      log debug messages\n"
               "  -h, --help         this help\n"
               "      --version      the version\n");
}

static int run(dbd *d)
{
        struct epoll_event evs[256];
        for (;;) {
                if (d->stopping) {
                        if (writer_finished(d))
                                break; /* the last chunk may be in the writer's hands: ACKed after the join
                                        */
                        if (mono_ns() > d->stop_deadline_ns) {
                                log_warning(
                                    0, "the database did not take the cache within 20 s; exiting without "
                                       "it (the nodes keep those records in their spools)");
                                pthread_mutex_lock(&d->queue.lock);
                                d->queue.abort = true;
                                pthread_cond_broadcast(&d->queue.cond);
                                pthread_mutex_unlock(&d->queue.lock);
                                break;
                        }
                }
                int n = epoll_wait(d->epfd, evs, (int)ARRAY_SIZE(evs), d->stopping ? 100 : -1);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return log_error(errno, "epoll_wait: %m");
                }
                for (int i = 0; i < n; i++) {
                        uint64_t tag = evs[i].data.u64;
                        if (tag == TAG_LISTEN) {
                                if (!d->stopping)
                                        accept_all(d);
                        } else if (tag == TAG_SIGNAL)
                                on_signal(d);
                        else if (tag == TAG_DONE)
                                on_done(d);
                        else if (tag == TAG_TIMER)
                                on_timer(d);
                        else if (tag == TAG_AUTH)
                                on_auth(d);
                        else {
                                conn *c = conn_lookup(d, tag);
                                if (!c)
                                        continue; /* dropped earlier in this round */
                                if (evs[i].events & EPOLLOUT) {
                                        int r = conn_flush(d, c);
                                        if (r < 0) {
                                                conn_drop(d, c, "send failed");
                                                continue;
                                        }
                                }
                                if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                                        if (!conn_wants_read(d, c)) {
                                                if (evs[i].events & (EPOLLHUP | EPOLLERR))
                                                        conn_drop(d, c, NULL);
                                                continue;
                                        }
                                        conn_read(d, c);
                                }
                        }
                }
                if (!d->paused && !d->stopping && cache_full(d))
                        set_paused(d, true);
        }
        return 0;
}

int main(int argc, char **argv)
{
        static const struct option opts[] = {
            {"config", required_argument, NULL, 'c'},
            {"verbose", no_argument, NULL, 'v'},
            {"help", no_argument, NULL, 'h'},
            {"version", no_argument, NULL, 'V'},
            {},
        };
        dbd d = {.epfd = -1, .listen_fd = -1, .signal_fd = -1, .timer_fd = -1};
        int level = LOG_LEVEL_INFO, o;
        while ((o = getopt_long(argc, argv, "c:vh", opts, NULL)) >= 0) {
                switch (o) {
                case 'c':
                        d.config_path = optarg;
                        break;
                case 'v':
                        level = LOG_LEVEL_DEBUG;
                        break;
                case 'h':
                        usage(stdout);
                        return 0;
                case 'V':
                        puts("joule-dbd " JOULE_VERSION);
                        return 0;
                default:
                        usage(stderr);
                        return 2;
                }
        }
        if (optind < argc) {
                usage(stderr);
                return 2;
        }
        log_setup("joule-dbd", level);
        /* a fixed threshold: the chunks' arrays are always mmap'd and go back to the system once stored
         * (glibc would raise it after the first free and let them fragment the heap) */
        mallopt(M_MMAP_THRESHOLD, 128 * 1024);

        char err[512];
        int r = joule_config_init(&d.cfg);
        if (r < 0)
                return log_error(r, "out of memory"), 1;
        r = joule_config_load(&d.cfg, d.config_path, err, sizeof(err));
        if (r < 0) {
                log_error(r, "configuration: %s", err);
                joule_config_free(&d.cfg);
                return 1;
        }
        if (d.cfg.node.munge_socket && !(d.munge_socket = strdup(d.cfg.node.munge_socket)))
                return log_error(ENOMEM, "out of memory"), 1;
        d.auth.socket = d.munge_socket;
        int ret = 1;
        if (resolve_users(&d, d.cfg.dbd.node_users) < 0)
                goto out_config;
        d.mem_limit = d.cfg.dbd.max_memory_mb << 20;

        /* blocked before any thread starts, so that every thread inherits the mask: signalfd gets them */
        sigset_t mask;
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGHUP);
        sigprocmask(SIG_BLOCK, &mask, NULL);
        signal(SIGPIPE, SIG_IGN);

        if (open_listen(&d) < 0)
                goto out_config;
        r = dbd_queue_init(&d.queue, (size_t)d.cfg.dbd.batch_records, d.cfg.dbd.batch_ms);
        if (r < 0) {
                log_error(r, "queue: %s", strerror(-r));
                goto out_listen;
        }
        dbd_writer_opts wo = {.url = d.cfg.database.url,
                              .aggregation_period_s = d.cfg.dbd.aggregation_period_s,
                              .queue = &d.queue};
        r = dbd_writer_start(&wo, &d.writer);
        if (r < 0) {
                log_error(r, "cannot start the writer thread: %s", strerror(-r));
                goto out_queue;
        }

        r = dbd_auth_pool_start(d.munge_socket, AUTH_THREADS, AUTH_MAX_WAITING, &d.authpool);
        if (r == 0)
                r = dbd_auth_pool_set_uids(d.authpool, d.auth.uids, d.auth.nuids);
        if (r < 0) {
                log_error(r, "cannot start the MUNGE workers: %s", strerror(-r));
                goto out_writer;
        }

        d.signal_fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
        d.timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
        d.epfd = epoll_create1(EPOLL_CLOEXEC);
        if (d.signal_fd < 0 || d.timer_fd < 0 || d.epfd < 0) {
                log_error(errno, "signalfd/timerfd/epoll: %m");
                goto out_writer;
        }
        struct itimerspec its = {.it_interval = {1, 0}, .it_value = {1, 0}};
        timerfd_settime(d.timer_fd, 0, &its, NULL);
        if (epoll_add(&d, d.listen_fd, TAG_LISTEN) < 0 || epoll_add(&d, d.signal_fd, TAG_SIGNAL) < 0 ||
            epoll_add(&d, d.queue.done_fd, TAG_DONE) < 0 || epoll_add(&d, d.timer_fd, TAG_TIMER) < 0 ||
            epoll_add(&d, dbd_auth_pool_fd(d.authpool), TAG_AUTH) < 0)
                goto out_writer;

        char url[512];
        log_notice("listening on %s; database %s; batches of %" PRIu64 " records or %" PRIu64 " ms",
                   d.listen_name, jl_store_url_redact(d.cfg.database.url, url, sizeof(url)),
                   d.cfg.dbd.batch_records, d.cfg.dbd.batch_ms);
        sd_notify(0, "READY=1\nSTATUS=Running");
        if (run(&d) == 0)
                ret = 0;

out_writer:
        dbd_auth_pool_stop(d.authpool);
        d.authpool = NULL;
        if (!d.stopping) {
                pthread_mutex_lock(&d.queue.lock);
                d.queue.stop = d.queue.abort = true;
                pthread_mutex_unlock(&d.queue.lock);
        }
        dbd_writer_join(d.writer);
        on_done(&d);
        /* the last ACKs: give slow peers a moment */
        for (int round = 0; round < 20; round++) {
                bool left = false;
                for (size_t i = 0; i < d.nslots; i++)
                        if (d.conns[i] && d.conns[i]->out_off < d.conns[i]->out_len) {
                                left = true;
                                if (conn_flush(&d, d.conns[i]) < 0)
                                        d.conns[i]->out_off = d.conns[i]->out_len = 0;
                        }
                if (!left)
                        break;
                usleep(50000);
        }
        for (size_t i = 0; i < d.nslots; i++)
                if (d.conns[i])
                        conn_free(&d, d.conns[i]);
        log_notice("stopped: %" PRIu64 " records received, %" PRIu64 " ACKs sent, %" PRIu64
                   " connections dropped",
                   d.records_in, d.acks_out, d.dropped_conns);
        if (d.epfd >= 0)
                close(d.epfd);
        if (d.timer_fd >= 0)
                close(d.timer_fd);
        if (d.signal_fd >= 0)
                close(d.signal_fd);
out_queue:
        dbd_queue_destroy(&d.queue);
out_listen:
        if (d.listen_fd >= 0)
                close(d.listen_fd);
out_config:
        for (size_t i = 0; i < d.npending; i++)
                dbd_item_clear(&d.pending[i]);
        free(d.pending);
        free(d.conns);
        free(d.by_node);
        free(d.gens);
        free(d.free_slots);
        free(d.auth.uids);
        free(d.munge_socket);
        joule_config_free(&d.cfg);
        return ret;
}
