/* reporter.c - jouled's spool-and-forward link to joule-dbd (see reporter.h): a queue of encoded frames
 * shared with the callers under one mutex, and one thread that owns the spool file and the TCP
 * connection (poll loop: wake-up eventfd, socket, timers for fsync, reconnect backoff and ACK timeout). */
#include "reporter.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "macro.h"
#include "timeutil.h"
#include "why.h"
#include "wire.h"

#define SPOOL_MAGIC "JLSPOOL1"
#define SPOOL_MAGIC_LEN 8
#define ENTRY_HEAD 8            /* u32 length, u32 crc32c */
#define MAX_FRAME (64u * 1024u) /* a RECORD is below 4 KiB */
#define OUT_HIGH (256u * 1024u) /* bytes queued on the socket buffer side before we wait */
#define CONNECT_TIMEOUT_MS 5000
#define COMPACT_MIN_BYTES (64u * 1024u)

typedef struct {
        uint64_t seq;
        uint8_t *frame;
        uint32_t len;
} entry;

struct jl_reporter {
        /* options (immutable after new) */
        char node[JL_MSG_NAME_MAX];
        char partition[JL_MSG_NAME_MAX];
        char island[JL_MSG_NAME_MAX];
        char *host, *port, *spool_path, *munge_socket;
        jl_auth_opts auth;
        unsigned fsync_ms, backoff_min_ms, backoff_max_ms, ack_timeout_ms;
        uint64_t max_pending_bytes;

        pthread_t thread;
        bool thread_started;
        int wake_fd;

        pthread_mutex_t lock; /* guards everything below */
        pthread_cond_t cond;  /* broadcast on every ACK and when the thread ends */
        entry *q;             /* q[head..n) unacknowledged, oldest first */
        size_t head, n, cap;
        size_t disk; /* q[..disk) are written to the spool file */
        uint64_t pending_bytes;
        uint64_t last_seq;
        bool stopping, thread_done;
        jl_reporter_status st;

        /* the thread's own (no lock) */
        int spool_fd;
        uint64_t file_bytes;  /* current size of the spool file */
        uint64_t acked_bytes; /* bytes of acknowledged entries still in the file */
        bool dirty;           /* written since the last fsync */
        uint64_t last_fsync_ns;
        int sock;
        bool connecting, connected;
        uint64_t connect_started_ns;
        uint64_t next_connect_ns;
        unsigned backoff_ms;
        size_t sent; /* q[head..sent) are in out or on the wire (absolute index, like head) */
        uint8_t *out;
        size_t out_len, out_off, out_cap;
        jl_framer framer;
        uint64_t last_progress_ns; /* last ACK, or connection time */
};

/* ---- CRC-32C (Castagnoli), table driven ---- */

static uint32_t crc_table[256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void)
{
        for (uint32_t i = 0; i < 256; i++) {
                uint32_t c = i;
                for (int k = 0; k < 8; k++)
                        c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
                crc_table[i] = c;
        }
}

static uint32_t crc32c(const uint8_t *p, size_t n)
{
        pthread_once(&crc_once, crc_init);
        uint32_t c = ~0u;
        while (n--)
                c = crc_table[(c ^ *p++) & 0xff] ^ (c >> 8);
        return ~c;
}

static void put_u32(uint8_t *p, uint32_t v)
{
        p[0] = (uint8_t)(v >> 24);
        p[1] = (uint8_t)(v >> 16);
        p[2] = (uint8_t)(v >> 8);
        p[3] = (uint8_t)v;
}

static uint32_t get_u32(const uint8_t *p)
{
        return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void set_error(jl_reporter *r, const char *fmt, ...) _printf_(2, 3);
static void set_error(jl_reporter *r, const char *fmt, ...)
{
        char buf[sizeof(r->st.last_error)];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(buf, sizeof(buf), fmt, ap);
        va_end(ap);
        pthread_mutex_lock(&r->lock);
        memcpy(r->st.last_error, buf, sizeof(buf));
        pthread_mutex_unlock(&r->lock);
}

static void wake(jl_reporter *r)
{
        uint64_t one = 1;
        ssize_t k = write(r->wake_fd, &one, sizeof(one));
        (void)k; /* EAGAIN: already awake */
}

/* ---- the queue (callers hold r->lock) ---- */

static int queue_push(jl_reporter *r, uint64_t seq, uint8_t *frame, uint32_t len)
{
        if (r->n == r->cap) {
                /* drop the acknowledged prefix first when it is large */
                if (r->head > 0 && r->head >= r->n / 2) {
                        memmove(r->q, r->q + r->head, (r->n - r->head) * sizeof(entry));
                        r->n -= r->head;
                        r->disk -= r->head;
                        r->sent = r->sent >= r->head ? r->sent - r->head : 0;
                        r->head = 0;
                } else {
                        size_t cap = r->cap ? r->cap * 2 : 256;
                        entry *q = realloc(r->q, cap * sizeof(entry));
                        if (!q)
                                return -ENOMEM;
                        r->q = q;
                        r->cap = cap;
                }
        }
        r->q[r->n++] = (entry){.seq = seq, .frame = frame, .len = len};
        r->pending_bytes += len;
        r->st.pending++;
        if (seq > r->last_seq)
                r->last_seq = seq;
        return 0;
}

static int submit_frame(jl_reporter *r, uint64_t seq, jl_wbuf *w)
{
        const uint8_t *data;
        size_t len;
        int k = jl_wbuf_finish(w, &data, &len);
        if (k < 0)
                return k;
        if (len > MAX_FRAME)
                return -EMSGSIZE;
        uint8_t *copy = malloc(len);
        if (!copy)
                return -ENOMEM;
        memcpy(copy, data, len);
        pthread_mutex_lock(&r->lock);
        if (r->stopping)
                k = -ESHUTDOWN;
        else if (seq == 0 || seq <= r->last_seq)
                k = -EINVAL;
        else if (r->pending_bytes + len > r->max_pending_bytes)
                k = -ENOBUFS;
        else
                k = queue_push(r, seq, copy, (uint32_t)len);
        if (k == 0)
                r->st.submitted++;
        pthread_mutex_unlock(&r->lock);
        if (k < 0) {
                free(copy);
                return k;
        }
        wake(r);
        return 0;
}

int jl_reporter_submit_record(jl_reporter *r, const jl_msg_record *m)
{
        if (!r || !m)
                return -EINVAL;
        if (strcmp(m->node, r->node) != 0 || jl_msg_record_validate(m, NULL, 0) < 0 ||
            m->end_us < m->start_us || !(m->avg_power_w >= 0 && m->avg_power_w <= 1e7))
                return -EINVAL;
        _cleanup_(jl_wbuf_free) jl_wbuf w = {0};
        int k = jl_msg_record_encode(m, 0, &w);
        if (k < 0)
                return k;
        return submit_frame(r, m->seq, &w);
}

int jl_reporter_submit_job(jl_reporter *r, const jl_msg_job *m)
{
        if (!r || !m)
                return -EINVAL;
        if (strcmp(m->node, r->node) != 0 || jl_msg_job_validate(m, NULL, 0) < 0)
                return -EINVAL;
        _cleanup_(jl_wbuf_free) jl_wbuf w = {0};
        int k = jl_msg_job_encode(m, 0, &w);
        if (k < 0)
                return k;
        return submit_frame(r, m->seq, &w);
}

int jl_reporter_submit_rt(jl_reporter *r, const jl_msg_rt *m)
{
        if (!r || !m)
                return -EINVAL;
        if (strcmp(m->node, r->node) != 0 || jl_msg_rt_validate(m, true, NULL, 0) < 0)
                return -EINVAL;
        _cleanup_(jl_wbuf_free) jl_wbuf w = {0};
        int k = jl_msg_rt_encode(m, 0, &w);
        if (k < 0)
                return k;
        return submit_frame(r, m->seq, &w);
}

void jl_reporter_get_status(jl_reporter *r, jl_reporter_status *ret)
{
        pthread_mutex_lock(&r->lock);
        *ret = r->st;
        ret->last_seq = r->last_seq;
        pthread_mutex_unlock(&r->lock);
}

int jl_reporter_wait_acked(jl_reporter *r, uint64_t seq, unsigned timeout_ms)
{
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        uint64_t ns = (uint64_t)until.tv_nsec + (uint64_t)timeout_ms * NSEC_PER_MSEC;
        until.tv_sec += (time_t)(ns / NSEC_PER_SEC);
        until.tv_nsec = (long)(ns % NSEC_PER_SEC);
        int k = 0;
        pthread_mutex_lock(&r->lock);
        while (r->st.acked_seq < seq && !(r->n == r->head && r->last_seq < seq)) {
                if (r->thread_done || pthread_cond_timedwait(&r->cond, &r->lock, &until) == ETIMEDOUT) {
                        k = -ETIMEDOUT;
                        break;
                }
        }
        pthread_mutex_unlock(&r->lock);
        return k;
}

/* ---- the spool file (thread, or new() before the thread starts) ---- */

static int write_all(int fd, const void *p, size_t n)
{
        const uint8_t *b = p;
        while (n > 0) {
                ssize_t k = write(fd, b, n);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                b += k;
                n -= (size_t)k;
        }
        return 0;
}

static int mkdir_parents(const char *path)
{
        _cleanup_free_ char *dir = strdup(path);
        if (!dir)
                return -ENOMEM;
        char *slash = strrchr(dir, '/');
        if (!slash || slash == dir)
                return 0;
        *slash = '\0';
        for (char *p = dir + 1; *p; p++) {
                if (*p != '/')
                        continue;
                *p = '\0';
                if (mkdir(dir, 0755) < 0 && errno != EEXIST)
                        return negative_errno();
                *p = '/';
        }
        if (mkdir(dir, 0700) < 0 && errno != EEXIST)
                return negative_errno();
        return 0;
}

/* Read the spool: every valid entry into the queue, the rest cut off. */
static int spool_load(jl_reporter *r, char *err, size_t errlen)
{
        int k = mkdir_parents(r->spool_path);
        if (k < 0)
                return jl_why(err, errlen, k, "spool %s: cannot create its directory: %s", r->spool_path,
                              strerror(-k));
        r->spool_fd = open(r->spool_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (r->spool_fd < 0)
                return jl_why(err, errlen, negative_errno(), "spool %s: %m", r->spool_path);
        struct stat sb;
        if (fstat(r->spool_fd, &sb) < 0)
                return jl_why(err, errlen, negative_errno(), "spool %s: %m", r->spool_path);
        if (!S_ISREG(sb.st_mode))
                return jl_why(err, errlen, -EINVAL, "spool %s: not a regular file", r->spool_path);
        size_t size = (size_t)sb.st_size;
        _cleanup_free_ uint8_t *buf = malloc(size ? size : 1);
        if (!buf)
                return -ENOMEM;
        size_t got = 0;
        while (got < size) {
                ssize_t n = pread(r->spool_fd, buf + got, size - got, (off_t)got);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return jl_why(err, errlen, negative_errno(), "spool %s: read: %m", r->spool_path);
                if (n == 0)
                        break;
                got += (size_t)n;
        }
        size = got;
        if (size < SPOOL_MAGIC_LEN) {
                /* new, or torn while the header was written */
                if (ftruncate(r->spool_fd, 0) < 0 ||
                    pwrite(r->spool_fd, SPOOL_MAGIC, SPOOL_MAGIC_LEN, 0) != SPOOL_MAGIC_LEN ||
                    fdatasync(r->spool_fd) < 0)
                        return jl_why(err, errlen, negative_errno(), "spool %s: write: %m", r->spool_path);
                r->file_bytes = SPOOL_MAGIC_LEN;
                r->st.spool_dropped_bytes = size;
        } else if (memcmp(buf, SPOOL_MAGIC, SPOOL_MAGIC_LEN) != 0) {
                return jl_why(err, errlen, -EINVAL,
                              "spool %s: not a joule spool file (wrong magic); move it away", r->spool_path);
        } else {
                size_t off = SPOOL_MAGIC_LEN;
                uint64_t foreign = 0;
                while (off + ENTRY_HEAD <= size) {
                        uint32_t len = get_u32(buf + off), crc = get_u32(buf + off + 4);
                        if (len < JL_WIRE_HEADER_SIZE || len > MAX_FRAME || off + ENTRY_HEAD + len > size)
                                break;
                        const uint8_t *f = buf + off + ENTRY_HEAD;
                        if (crc32c(f, len) != crc)
                                break;
                        jl_frame_header h;
                        if (jl_frame_header_decode(f, MAX_FRAME, &h) < 0 ||
                            h.length != len - JL_WIRE_HEADER_SIZE)
                                break;
                        uint64_t seq;
                        char node[JL_MSG_NAME_MAX];
                        if (h.type == JL_MSG_RECORD) {
                                jl_msg_record m;
                                if (jl_msg_record_decode(f + JL_WIRE_HEADER_SIZE, h.length, &m, NULL, 0) < 0)
                                        break;
                                seq = m.seq;
                                memcpy(node, m.node, sizeof(node));
                        } else if (h.type == JL_MSG_JOB) {
                                jl_msg_job m;
                                if (jl_msg_job_decode(f + JL_WIRE_HEADER_SIZE, h.length, &m, NULL, 0) < 0)
                                        break;
                                seq = m.seq;
                                memcpy(node, m.node, sizeof(node));
                        } else if (h.type == JL_MSG_RT) {
                                jl_msg_rt m;
                                if (jl_msg_rt_decode(f + JL_WIRE_HEADER_SIZE, h.length, &m, NULL, 0) < 0)
                                        break;
                                seq = m.seq;
                                memcpy(node, m.node, sizeof(node));
                        } else
                                break;
                        if (r->last_seq && seq <= r->last_seq)
                                break; /* out of order: corrupt from here */
                        off += ENTRY_HEAD + len;
                        if (strcmp(node, r->node) != 0) {
                                foreign++; /* another node name (node.name changed): the dbd would refuse it
                                            */
                                continue;
                        }
                        uint8_t *copy = malloc(len);
                        if (!copy)
                                return -ENOMEM;
                        memcpy(copy, f, len);
                        if ((k = queue_push(r, seq, copy, len)) < 0) {
                                free(copy);
                                return k;
                        }
                }
                if (off < size) {
                        r->st.spool_dropped_bytes = size - off;
                        if (ftruncate(r->spool_fd, (off_t)off) < 0)
                                return jl_why(err, errlen, negative_errno(), "spool %s: truncate: %m",
                                              r->spool_path);
                }
                if (foreign)
                        snprintf(r->st.last_error, sizeof(r->st.last_error),
                                 "spool %s: %" PRIu64 " messages of another node name dropped",
                                 r->spool_path, foreign);
                r->file_bytes = off;
        }
        r->disk = r->n;
        if (lseek(r->spool_fd, (off_t)r->file_bytes, SEEK_SET) < 0)
                return negative_errno();
        return 0;
}

/* Append the entries not yet on disk. Called with the lock held (the frames never move). */
static int spool_append_locked(jl_reporter *r)
{
        while (r->disk < r->n) {
                struct iovec iov[128];
                uint8_t heads[64][ENTRY_HEAD];
                int niov = 0;
                size_t bytes = 0, first = r->disk;
                while (r->disk < r->n && niov < 128) {
                        entry *e = &r->q[r->disk];
                        uint8_t *h = heads[niov / 2];
                        put_u32(h, e->len);
                        put_u32(h + 4, crc32c(e->frame, e->len));
                        iov[niov++] = (struct iovec){.iov_base = h, .iov_len = ENTRY_HEAD};
                        iov[niov++] = (struct iovec){.iov_base = e->frame, .iov_len = e->len};
                        bytes += ENTRY_HEAD + e->len;
                        r->disk++;
                }
                ssize_t k = writev(r->spool_fd, iov, niov);
                if (k != (ssize_t)bytes) {
                        int e = k < 0 ? negative_errno() : -EIO;
                        /* put the file back to the last whole entry; retry later */
                        if (ftruncate(r->spool_fd, (off_t)r->file_bytes) == 0)
                                (void)lseek(r->spool_fd, (off_t)r->file_bytes, SEEK_SET);
                        r->disk = first;
                        return e;
                }
                r->file_bytes += bytes;
                r->dirty = true;
        }
        r->st.spool_bytes = r->file_bytes;
        return 0;
}

/* Rewrite the spool with the unacknowledged entries only. Lock held. */
static int spool_compact_locked(jl_reporter *r)
{
        _cleanup_free_ char *tmp = NULL;
        if (asprintf(&tmp, "%s.tmp", r->spool_path) < 0)
                return -ENOMEM;
        _cleanup_close_ int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0)
                return negative_errno();
        int k = write_all(fd, SPOOL_MAGIC, SPOOL_MAGIC_LEN);
        uint64_t bytes = SPOOL_MAGIC_LEN;
        for (size_t i = r->head; k == 0 && i < r->disk; i++) {
                uint8_t h[ENTRY_HEAD];
                put_u32(h, r->q[i].len);
                put_u32(h + 4, crc32c(r->q[i].frame, r->q[i].len));
                k = write_all(fd, h, ENTRY_HEAD);
                if (k == 0)
                        k = write_all(fd, r->q[i].frame, r->q[i].len);
                bytes += ENTRY_HEAD + r->q[i].len;
        }
        if (k == 0 && fdatasync(fd) < 0)
                k = negative_errno();
        if (k == 0 && rename(tmp, r->spool_path) < 0)
                k = negative_errno();
        if (k < 0) {
                (void)unlink(tmp);
                return k;
        }
        /* the directory entry */
        _cleanup_free_ char *dir = strdup(r->spool_path);
        if (dir) {
                char *slash = strrchr(dir, '/');
                if (slash)
                        *(slash == dir ? slash + 1 : slash) = '\0';
                _cleanup_close_ int dfd = open(slash ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                if (dfd >= 0)
                        (void)fsync(dfd);
        }
        close(r->spool_fd);
        r->spool_fd = TAKE_FD(fd);
        if (lseek(r->spool_fd, 0, SEEK_END) < 0)
                return negative_errno();
        r->file_bytes = bytes;
        r->acked_bytes = 0;
        r->dirty = false;
        r->st.spool_bytes = bytes;
        return 0;
}

/* ---- the connection (thread) ---- */

static void conn_close(jl_reporter *r, bool backoff)
{
        if (r->sock >= 0)
                close(r->sock);
        r->sock = -1;
        r->connecting = r->connected = false;
        r->out_len = r->out_off = 0;
        jl_framer_free(&r->framer);
        jl_framer_init(&r->framer, MAX_FRAME);
        pthread_mutex_lock(&r->lock);
        r->st.connected = false;
        r->sent = r->head;
        pthread_cond_broadcast(
            &r->cond); /* jl_reporter_free() waits for acknowledgements only while connected */
        pthread_mutex_unlock(&r->lock);
        uint64_t now = mono_ns();
        if (backoff) {
                r->next_connect_ns = now + (uint64_t)r->backoff_ms * NSEC_PER_MSEC;
                r->backoff_ms = MIN(r->backoff_ms * 2, r->backoff_max_ms);
        } else
                r->next_connect_ns = now;
}

static int out_append(jl_reporter *r, const uint8_t *p, size_t n)
{
        if (r->out_off > 0 && r->out_off == r->out_len)
                r->out_off = r->out_len = 0;
        if (r->out_len + n > r->out_cap) {
                if (r->out_off > 0) {
                        memmove(r->out, r->out + r->out_off, r->out_len - r->out_off);
                        r->out_len -= r->out_off;
                        r->out_off = 0;
                }
                if (r->out_len + n > r->out_cap) {
                        size_t cap = MAX(r->out_cap * 2, r->out_len + n);
                        uint8_t *o = realloc(r->out, cap);
                        if (!o)
                                return -ENOMEM;
                        r->out = o;
                        r->out_cap = cap;
                }
        }
        memcpy(r->out + r->out_len, p, n);
        r->out_len += n;
        return 0;
}

static void conn_start(jl_reporter *r)
{
        struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai = NULL;
        int k = getaddrinfo(r->host, r->port, &hints, &ai);
        if (k != 0) {
                set_error(r, "dbd %s:%s: cannot resolve: %s", r->host, r->port, gai_strerror(k));
                conn_close(r, true);
                return;
        }
        int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
                set_error(r, "dbd: socket: %m");
                freeaddrinfo(ai);
                conn_close(r, true);
                return;
        }
        int one = 1;
        (void)setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        r->sock = fd;
        k = connect(fd, ai->ai_addr, ai->ai_addrlen);
        freeaddrinfo(ai);
        if (k < 0 && errno != EINPROGRESS) {
                set_error(r, "dbd %s:%s: connect: %m", r->host, r->port);
                conn_close(r, true);
                return;
        }
        r->connecting = true;
        r->connect_started_ns = mono_ns();
}

/* Connected: HELLO with a fresh credential, then the queue from its first unacknowledged entry. */
static void conn_established(jl_reporter *r)
{
        _cleanup_free_ char *cred = NULL;
        char why[256];
        int k = jl_auth_encode(&r->auth, r->node, strlen(r->node), &cred, why, sizeof(why));
        if (k < 0) {
                set_error(r, "dbd: no MUNGE credential for HELLO: %s", why);
                conn_close(r, true);
                return;
        }
        jl_msg_hello h = {.cred = (const uint8_t *)cred, .cred_len = strlen(cred)};
        memcpy(h.node, r->node, sizeof(h.node));
        memcpy(h.partition, r->partition, sizeof(h.partition));
        memcpy(h.island, r->island, sizeof(h.island));
        pthread_mutex_lock(&r->lock);
        h.next_seq = r->head < r->n ? r->q[r->head].seq : r->last_seq + 1;
        r->sent = r->head;
        pthread_mutex_unlock(&r->lock);
        _cleanup_(jl_wbuf_free) jl_wbuf w = {0};
        const uint8_t *data;
        size_t len;
        if (jl_msg_hello_encode(&h, 0, &w) < 0 || jl_wbuf_finish(&w, &data, &len) < 0 ||
            out_append(r, data, len) < 0) {
                set_error(r, "dbd: cannot encode HELLO");
                conn_close(r, true);
                return;
        }
        r->connecting = false;
        r->connected = true;
        r->last_progress_ns = mono_ns();
        pthread_mutex_lock(&r->lock);
        r->st.connected = true;
        r->st.connects++;
        pthread_mutex_unlock(&r->lock);
}

/* Move queued frames into the output buffer, up to OUT_HIGH bytes. */
static void fill_out(jl_reporter *r)
{
        pthread_mutex_lock(&r->lock);
        if (r->sent < r->head)
                r->sent = r->head;
        while (r->sent < r->n && r->out_len - r->out_off < OUT_HIGH) {
                if (out_append(r, r->q[r->sent].frame, r->q[r->sent].len) < 0)
                        break;
                r->sent++;
        }
        pthread_mutex_unlock(&r->lock);
}

static int flush_out(jl_reporter *r)
{
        while (r->out_off < r->out_len) {
                ssize_t k = send(r->sock, r->out + r->out_off, r->out_len - r->out_off, MSG_NOSIGNAL);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN)
                                return 0;
                        return negative_errno();
                }
                r->out_off += (size_t)k;
        }
        r->out_off = r->out_len = 0;
        return 0;
}

static void handle_ack(jl_reporter *r, uint64_t seq)
{
        pthread_mutex_lock(&r->lock);
        bool progress = false;
        while (r->head < r->n && r->head < r->sent && r->q[r->head].seq <= seq) {
                entry *e = &r->q[r->head];
                if (r->head < r->disk)
                        r->acked_bytes += ENTRY_HEAD + e->len;
                else
                        r->disk++; /* acknowledged before it reached the file: it need not */
                r->pending_bytes -= e->len;
                free(e->frame);
                e->frame = NULL;
                r->head++;
                r->st.pending--;
                r->st.acked++;
                progress = true;
        }
        if (seq > r->st.acked_seq)
                r->st.acked_seq = seq;
        if (r->head == r->n) {
                r->head = r->n = r->disk = r->sent = 0;
        }
        if (r->acked_bytes >= COMPACT_MIN_BYTES && r->acked_bytes * 2 >= r->file_bytes) {
                int k = spool_compact_locked(r);
                if (k < 0)
                        snprintf(r->st.last_error, sizeof(r->st.last_error), "spool %s: compaction: %s",
                                 r->spool_path, strerror(-k));
        }
        pthread_cond_broadcast(&r->cond);
        pthread_mutex_unlock(&r->lock);
        if (progress) {
                r->backoff_ms = r->backoff_min_ms;
                r->last_progress_ns = mono_ns();
        }
}

static int read_in(jl_reporter *r)
{
        uint8_t buf[16384];
        for (;;) {
                ssize_t k = recv(r->sock, buf, sizeof(buf), 0);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN)
                                return 0;
                        return negative_errno();
                }
                if (k == 0)
                        return -ECONNRESET;
                int e = jl_framer_feed(&r->framer, buf, (size_t)k);
                if (e < 0)
                        return e;
                jl_frame_header h;
                const uint8_t *payload;
                while ((e = jl_framer_next(&r->framer, &h, &payload)) > 0) {
                        char why[256];
                        if (h.type == JL_MSG_ACK) {
                                jl_msg_ack a;
                                if (jl_msg_ack_decode(payload, h.length, &a, why, sizeof(why)) < 0) {
                                        set_error(r, "dbd sent a bad ACK: %s", why);
                                        return -EBADMSG;
                                }
                                handle_ack(r, a.seq);
                        } else if (h.type == JL_MSG_ERROR) {
                                jl_msg_error m;
                                if (jl_msg_error_decode(payload, h.length, &m, why, sizeof(why)) == 0)
                                        set_error(r, "dbd refused us: %s", m.message);
                                else
                                        set_error(r, "dbd sent a bad ERROR: %s", why);
                                return -EPROTO;
                        }
                        /* other types: ignored (a newer dbd) */
                        jl_framer_pop(&r->framer);
                }
                if (e < 0) {
                        set_error(r, "dbd sent a malformed frame: %s", strerror(-e));
                        return e;
                }
        }
}

static void spool_sync(jl_reporter *r, bool force)
{
        uint64_t now = mono_ns();
        pthread_mutex_lock(&r->lock);
        int k = spool_append_locked(r);
        if (k < 0)
                snprintf(r->st.last_error, sizeof(r->st.last_error), "spool %s: write: %s", r->spool_path,
                         strerror(-k));
        pthread_mutex_unlock(&r->lock);
        if (r->dirty && (force || now - r->last_fsync_ns >= (uint64_t)r->fsync_ms * NSEC_PER_MSEC)) {
                if (fdatasync(r->spool_fd) < 0)
                        set_error(r, "spool %s: fdatasync: %m", r->spool_path);
                r->dirty = false;
                r->last_fsync_ns = now;
        }
}

static void *thread_main(void *arg)
{
        jl_reporter *r = arg;
        r->next_connect_ns = mono_ns();
        for (;;) {
                pthread_mutex_lock(&r->lock);
                bool stop = r->stopping;
                pthread_mutex_unlock(&r->lock);
                if (stop)
                        break;

                spool_sync(r, false);
                uint64_t now = mono_ns();
                if (!r->connected && !r->connecting && now >= r->next_connect_ns)
                        conn_start(r);
                if (r->connecting && now > r->connect_started_ns &&
                    now - r->connect_started_ns > (uint64_t)CONNECT_TIMEOUT_MS * NSEC_PER_MSEC) {
                        set_error(r, "dbd %s:%s: connect: timed out", r->host, r->port);
                        conn_close(r, true);
                }
                if (r->connected) {
                        fill_out(r);
                        pthread_mutex_lock(&r->lock);
                        bool outstanding = r->head < r->sent;
                        pthread_mutex_unlock(&r->lock);
                        if (!outstanding || now < r->last_progress_ns)
                                r->last_progress_ns = MAX(now, r->last_progress_ns);
                        else if (now - r->last_progress_ns > (uint64_t)r->ack_timeout_ms * NSEC_PER_MSEC) {
                                set_error(r, "dbd %s:%s: no acknowledgement for %u ms: reconnecting",
                                          r->host, r->port, r->ack_timeout_ms);
                                conn_close(r, true);
                        } else if (flush_out(r) < 0) {
                                set_error(r, "dbd %s:%s: send: %m", r->host, r->port);
                                conn_close(r, true);
                        }
                }

                struct pollfd p[2] = {{.fd = r->wake_fd, .events = POLLIN}, {.fd = -1}};
                if (r->sock >= 0) {
                        p[1].fd = r->sock;
                        p[1].events =
                            r->connecting ? POLLOUT : POLLIN | (r->out_off < r->out_len ? POLLOUT : 0);
                }
                int64_t timeout = 1000;
                if (r->dirty)
                        timeout = MIN(timeout, (int64_t)r->fsync_ms);
                if (!r->connected && !r->connecting) {
                        int64_t until = (int64_t)((r->next_connect_ns > now ? r->next_connect_ns - now : 0) /
                                                  NSEC_PER_MSEC) +
                                        1;
                        timeout = MIN(timeout, until);
                }
                int k = poll(p, 2, (int)timeout);
                if (k < 0 && errno != EINTR)
                        break;
                if (k <= 0)
                        continue;
                if (p[0].revents & POLLIN) {
                        uint64_t v;
                        ssize_t n = read(r->wake_fd, &v, sizeof(v));
                        (void)n;
                }
                if (p[1].fd >= 0 && p[1].revents) {
                        if (r->connecting) {
                                int soerr = 0;
                                socklen_t sl = sizeof(soerr);
                                if (getsockopt(r->sock, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
                                        soerr = errno;
                                if (soerr) {
                                        set_error(r, "dbd %s:%s: connect: %s", r->host, r->port,
                                                  strerror(soerr));
                                        conn_close(r, true);
                                } else
                                        conn_established(r);
                                continue;
                        }
                        if (p[1].revents & (POLLIN | POLLHUP | POLLERR)) {
                                int e = read_in(r);
                                if (e < 0) {
                                        if (e == -ECONNRESET || e == -EPIPE)
                                                set_error(r, "dbd %s:%s: connection closed", r->host,
                                                          r->port);
                                        conn_close(r, true);
                                        continue;
                                }
                        }
                        if (r->connected && (p[1].revents & POLLOUT) && flush_out(r) < 0) {
                                set_error(r, "dbd %s:%s: send: %m", r->host, r->port);
                                conn_close(r, true);
                        }
                }
        }
        /* stopping: everything onto the disk */
        if (r->sock >= 0)
                conn_close(r, false);
        spool_sync(r, true);
        pthread_mutex_lock(&r->lock);
        if (r->head == r->n && r->file_bytes > SPOOL_MAGIC_LEN)
                (void)spool_compact_locked(r); /* all delivered: an empty spool */
        r->thread_done = true;
        pthread_cond_broadcast(&r->cond);
        pthread_mutex_unlock(&r->lock);
        return NULL;
}

/* ---- life cycle ---- */

static int split_host_port(const char *s, char **ret_host, char **ret_port)
{
        const char *colon;
        _cleanup_free_ char *host = NULL;
        if (s[0] == '[') {
                const char *end = strchr(s, ']');
                if (!end || end[1] != ':')
                        return -EINVAL;
                host = strndup(s + 1, (size_t)(end - s - 1));
                colon = end + 1;
        } else {
                colon = strrchr(s, ':');
                if (!colon)
                        return -EINVAL;
                host = strndup(s, (size_t)(colon - s));
        }
        if (!host)
                return -ENOMEM;
        char *end;
        errno = 0;
        long port = strtol(colon + 1, &end, 10);
        if (!host[0] || errno || *end || port < 1 || port > 65535 || colon[1] == '\0')
                return -EINVAL;
        char *p = strdup(colon + 1);
        if (!p)
                return -ENOMEM;
        *ret_host = TAKE_PTR(host);
        *ret_port = p;
        return 0;
}

static void reporter_destroy(jl_reporter *r)
{
        for (size_t i = r->head; i < r->n; i++)
                free(r->q[i].frame);
        free(r->q);
        if (r->wake_fd >= 0)
                close(r->wake_fd);
        if (r->spool_fd >= 0)
                close(r->spool_fd);
        if (r->sock >= 0)
                close(r->sock);
        jl_framer_free(&r->framer);
        free(r->out);
        free(r->host);
        free(r->port);
        free(r->spool_path);
        free(r->munge_socket);
        pthread_cond_destroy(&r->cond);
        pthread_mutex_destroy(&r->lock);
        free(r);
}

int jl_reporter_new(const jl_reporter_opts *o, jl_reporter **ret, char *err, size_t errlen)
{
        if (!o || !ret)
                return -EINVAL;
        if (!o->node || !jl_msg_name_valid(o->node) || strlen(o->node) >= JL_MSG_NAME_MAX)
                return jl_why(err, errlen, -EINVAL,
                              "node name '%s' is not usable (printable, no spaces, < %d bytes)",
                              o->node ? o->node : "", JL_MSG_NAME_MAX);
        if (!o->spool || !*o->spool)
                return jl_why(err, errlen, -EINVAL, "no spool file (node.spool)");
        if (!o->dbd)
                return jl_why(err, errlen, -EINVAL, "no dbd address (node.dbd)");
        jl_reporter *r = calloc(1, sizeof(*r));
        if (!r)
                return -ENOMEM;
        r->wake_fd = r->spool_fd = r->sock = -1;
        pthread_mutex_init(&r->lock, NULL);
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_cond_init(&r->cond, &ca);
        pthread_condattr_destroy(&ca);
        jl_framer_init(&r->framer, MAX_FRAME);
        int k;
        if (split_host_port(o->dbd, &r->host, &r->port) < 0) {
                k = jl_why(err, errlen, -EINVAL, "node.dbd '%s' is not host:port", o->dbd);
                goto fail;
        }
        snprintf(r->node, sizeof(r->node), "%s", o->node);
        if (o->partition && *o->partition) {
                if (!jl_msg_name_valid(o->partition) || strlen(o->partition) >= JL_MSG_NAME_MAX) {
                        k = jl_why(err, errlen, -EINVAL, "partition '%s' is not usable", o->partition);
                        goto fail;
                }
                snprintf(r->partition, sizeof(r->partition), "%s", o->partition);
        }
        if (o->island && *o->island) {
                if (!jl_msg_name_valid(o->island) || strlen(o->island) >= JL_MSG_NAME_MAX) {
                        k = jl_why(err, errlen, -EINVAL, "island '%s' is not usable", o->island);
                        goto fail;
                }
                snprintf(r->island, sizeof(r->island), "%s", o->island);
        }
        r->spool_path = strdup(o->spool);
        if (o->auth.socket)
                r->munge_socket = strdup(o->auth.socket);
        if (!r->spool_path || (o->auth.socket && !r->munge_socket)) {
                k = -ENOMEM;
                goto fail;
        }
        r->auth = (jl_auth_opts){.socket = r->munge_socket, .ttl_s = o->auth.ttl_s};
        r->fsync_ms = o->fsync_ms ? o->fsync_ms : 200;
        r->backoff_min_ms = o->backoff_min_ms ? o->backoff_min_ms : 100;
        r->backoff_max_ms = MAX(o->backoff_max_ms ? o->backoff_max_ms : 5000, r->backoff_min_ms);
        r->backoff_ms = r->backoff_min_ms;
        r->ack_timeout_ms = o->ack_timeout_ms ? o->ack_timeout_ms : 60000;
        r->max_pending_bytes = (uint64_t)(o->max_pending_mb ? o->max_pending_mb : 256) << 20;
        r->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (r->wake_fd < 0) {
                k = negative_errno();
                goto fail;
        }
        k = spool_load(r, err, errlen);
        if (k < 0)
                goto fail;
        r->st.spool_bytes = r->file_bytes;
        r->last_fsync_ns = mono_ns();
        k = -pthread_create(&r->thread, NULL, thread_main, r);
        if (k < 0) {
                jl_why(err, errlen, k, "cannot start the reporter thread: %s", strerror(-k));
                goto fail;
        }
        r->thread_started = true;
        *ret = r;
        return 0;
fail:
        reporter_destroy(r);
        return k;
}

/* As jl_reporter_wait_acked, but only while connected and acknowledgements keep coming (one within every
 * STOP_STALL_MS): without a dbd that answers, what is outstanding is safe in the spool (written and fsync'd
 * when the thread stops) and waiting would only delay the stop. */
#define STOP_STALL_MS 1000
static void wait_acked_connected(jl_reporter *r, uint64_t seq, unsigned timeout_ms)
{
        uint64_t now = mono_ns(), end = now + (uint64_t)timeout_ms * NSEC_PER_MSEC;
        pthread_mutex_lock(&r->lock);
        uint64_t acked = r->st.acked, progress_ns = now;
        while (r->st.connected && r->st.acked_seq < seq && !(r->n == r->head && r->last_seq < seq) &&
               !r->thread_done) {
                now = mono_ns();
                if (r->st.acked != acked) {
                        acked = r->st.acked;
                        progress_ns = now;
                }
                uint64_t until = MIN(end, progress_ns + (uint64_t)STOP_STALL_MS * NSEC_PER_MSEC);
                if (now >= until)
                        break;
                /* the condition variable runs on CLOCK_REALTIME: wait for the same span on it */
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                uint64_t ns = (uint64_t)ts.tv_nsec + (until - now);
                ts.tv_sec += (time_t)(ns / NSEC_PER_SEC);
                ts.tv_nsec = (long)(ns % NSEC_PER_SEC);
                pthread_cond_timedwait(&r->cond, &r->lock, &ts);
        }
        pthread_mutex_unlock(&r->lock);
}

void jl_reporter_free(jl_reporter *r, unsigned timeout_ms)
{
        if (!r)
                return;
        if (r->thread_started) {
                pthread_mutex_lock(&r->lock);
                uint64_t last = r->last_seq;
                bool any = r->head < r->n;
                pthread_mutex_unlock(&r->lock);
                if (any && timeout_ms > 0)
                        wait_acked_connected(r, last, timeout_ms);
                pthread_mutex_lock(&r->lock);
                r->stopping = true;
                pthread_mutex_unlock(&r->lock);
                wake(r);
                pthread_join(r->thread, NULL);
        }
        reporter_destroy(r);
}
