/* bench-ingest.c - joule-dbd ingest rate beside the raw limits of the database (bench/ingest.sh runs it):
 *
 *   bench-ingest raw URL N          N rows into periodic_metrics by a bare prepared INSERT loop in one
 *                                   transaction, then N more by the store's bulk path (PostgreSQL: COPY);
 *                                   prints "prepared ROWS/S" and "bulk ROWS/S", and this process's CPU
 *                                   time per row of each ("prepared_cpu_us", "bulk_cpu_us": all of it
 *                                   on SQLite, the client's share only on PostgreSQL)
 *   bench-ingest dbd HOST:PORT C N [MUNGE_SOCKET]
 *                                   C simulated nodes, one TCP connection each (HELLO with a MUNGE
 *                                   credential), N RECORD frames in all, sent as fast as the sockets take
 *                                   them; the time runs from the first byte to the ACK of every record;
 *                                   prints "dbd ROWS/S"
 *
 * Records look like jouled's: 4 domains, a temperature, a frequency, a job id; 1 s windows. Frames are
 * encoded before the clock starts so that the client costs little CPU beside the dbd on a small machine. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "msg.h"
#include "store.h"

static double now_s(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_s(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static const uint64_t T0 = UINT64_C(1767225600000000);

static jl_msg_record make_record(const char *node, uint64_t seq)
{
        jl_msg_record m = {.seq = seq,
                           .start_us = T0 + (seq - 1) * 1000000,
                           .end_us = T0 + seq * 1000000,
                           .energy_uj = 250000000 + seq % 1000,
                           .avg_power_w = 250.0,
                           .temp_max_c = 61.5,
                           .freq_avg_khz = 2400000,
                           .step_id = 0,
                           .ndomains = 4};
        snprintf(m.node, sizeof(m.node), "%s", node);
        snprintf(m.job_id, sizeof(m.job_id), "%" PRIu64, 100000 + seq / 3600);
        static const char *const names[] = {"package-0", "package-1", "dram-0", "dram-1"};
        for (size_t i = 0; i < 4; i++) {
                snprintf(m.domains[i].name, sizeof(m.domains[i].name), "%s", names[i]);
                m.domains[i].energy_uj = m.energy_uj / 4;
        }
        return m;
}

static const char *const columns[] = {"node",         "seq",         "start_us",     "end_us",
                                      "energy_uj",    "avg_power_w", "domains_json", "max_temp_c",
                                      "avg_freq_khz", "job_id",      "step_id"};

static int bind_row(jl_stmt *st, const jl_msg_record *m)
{
        int r = 0;
        char json[256];
        snprintf(json, sizeof(json),
                 "{\"package-0\":%" PRIu64 ",\"package-1\":%" PRIu64 ",\"dram-0\":%" PRIu64
                 ",\"dram-1\":%" PRIu64 "}",
                 m->domains[0].energy_uj, m->domains[1].energy_uj, m->domains[2].energy_uj,
                 m->domains[3].energy_uj);
        r |= jl_stmt_bind_text(st, 1, m->node);
        r |= jl_stmt_bind_int64(st, 2, (int64_t)m->seq);
        r |= jl_stmt_bind_int64(st, 3, (int64_t)m->start_us);
        r |= jl_stmt_bind_int64(st, 4, (int64_t)m->end_us);
        r |= jl_stmt_bind_int64(st, 5, (int64_t)m->energy_uj);
        r |= jl_stmt_bind_double(st, 6, m->avg_power_w);
        r |= jl_stmt_bind_text(st, 7, json);
        r |= jl_stmt_bind_double(st, 8, m->temp_max_c);
        r |= jl_stmt_bind_int64(st, 9, (int64_t)m->freq_avg_khz);
        r |= jl_stmt_bind_int64(st, 10, 100000 + (int64_t)m->seq / 3600);
        r |= jl_stmt_bind_int64(st, 11, m->step_id);
        return r;
}

static int raw(const char *url, uint64_t n)
{
        jl_store *s;
        char err[512];
        if (jl_store_open(url, JL_STORE_OPEN_CREATE, &s, err, sizeof(err)) < 0) {
                fprintf(stderr, "raw: %s\n", err);
                return 1;
        }
        if (jl_store_migrate(s) < 0) {
                fprintf(stderr, "raw: %s\n", jl_store_error(s));
                return 1;
        }
        /* a bare prepared INSERT, one row at a time, one transaction */
        jl_stmt *st;
        if (jl_store_prepare(
                s,
                "INSERT INTO periodic_metrics (node, seq, start_us, end_us, energy_uj, avg_power_w, "
                "domains_json, max_temp_c, avg_freq_khz, job_id, step_id) VALUES ($1, $2, $3, $4, $5, "
                "$6, $7, $8, $9, $10, $11) ON CONFLICT DO NOTHING",
                &st) < 0) {
                fprintf(stderr, "raw: %s\n", jl_store_error(s));
                return 1;
        }
        double t = now_s(), c = cpu_s();
        int r = jl_store_begin(s);
        for (uint64_t i = 1; i <= n && r >= 0; i++) {
                jl_msg_record m = make_record("raw-prepared", i);
                r = bind_row(st, &m);
                if (r >= 0)
                        r = jl_stmt_step(st);
                if (r >= 0)
                        r = jl_stmt_reset(st);
        }
        if (r >= 0)
                r = jl_store_commit(s);
        double prepared = (double)n / (now_s() - t), prepared_cpu = (cpu_s() - c) * 1e6 / (double)n;
        jl_stmt_finalize(st);
        if (r < 0) {
                fprintf(stderr, "raw: prepared: %s\n", jl_store_error(s));
                return 1;
        }
        /* the store's bulk path (COPY on PostgreSQL), with duplicates dropped as the dbd does */
        t = now_s();
        c = cpu_s();
        jl_bulk *b;
        r = jl_store_bulk_begin(s, "periodic_metrics", columns, 11, JL_BULK_IGNORE_CONFLICTS, &b);
        for (uint64_t i = 1; i <= n && r >= 0; i++) {
                jl_msg_record m = make_record("raw-bulk", i);
                char json[256];
                snprintf(json, sizeof(json),
                         "{\"package-0\":%" PRIu64 ",\"package-1\":%" PRIu64 ",\"dram-0\":%" PRIu64
                         ",\"dram-1\":%" PRIu64 "}",
                         m.domains[0].energy_uj, m.domains[1].energy_uj, m.domains[2].energy_uj,
                         m.domains[3].energy_uj);
                r = jl_bulk_text(b, m.node);
                r |= jl_bulk_int64(b, (int64_t)m.seq);
                r |= jl_bulk_int64(b, (int64_t)m.start_us);
                r |= jl_bulk_int64(b, (int64_t)m.end_us);
                r |= jl_bulk_int64(b, (int64_t)m.energy_uj);
                r |= jl_bulk_double(b, m.avg_power_w);
                r |= jl_bulk_text(b, json);
                r |= jl_bulk_double(b, m.temp_max_c);
                r |= jl_bulk_int64(b, (int64_t)m.freq_avg_khz);
                r |= jl_bulk_int64(b, 100000 + (int64_t)m.seq / 3600);
                r |= jl_bulk_int64(b, m.step_id);
                r |= jl_bulk_row_end(b);
        }
        if (r < 0) {
                fprintf(stderr, "raw: bulk: %s\n", jl_store_error(s));
                jl_bulk_abort(b);
                return 1;
        }
        if (jl_bulk_finish(b, NULL) < 0) {
                fprintf(stderr, "raw: bulk: %s\n", jl_store_error(s));
                return 1;
        }
        double bulk = (double)n / (now_s() - t), bulk_cpu = (cpu_s() - c) * 1e6 / (double)n;
        printf("prepared %.0f\nbulk %.0f\nprepared_cpu_us %.2f\nbulk_cpu_us %.2f\n", prepared, bulk,
               prepared_cpu, bulk_cpu);
        jl_store_close(s);
        return 0;
}

typedef struct {
        int fd;
        uint8_t *out;
        size_t len, off;
        uint64_t last_seq, acked;
        jl_framer framer;
} sim;

static int dial(const char *hostport)
{
        char host[256];
        snprintf(host, sizeof(host), "%s", hostport);
        char *colon = strrchr(host, ':');
        if (!colon)
                return -1;
        *colon = '\0';
        struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai;
        if (getaddrinfo(host, colon + 1, &hints, &ai) != 0)
                return -1;
        int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) < 0 && errno != EINPROGRESS) {
                close(fd);
                fd = -1;
        }
        freeaddrinfo(ai);
        return fd;
}

static int append(sim *s, jl_wbuf *w)
{
        const uint8_t *d;
        size_t n;
        int r = jl_wbuf_finish(w, &d, &n);
        if (r < 0)
                return r;
        uint8_t *o = realloc(s->out, s->len + n);
        if (!o)
                return -ENOMEM;
        s->out = o;
        memcpy(s->out + s->len, d, n);
        s->len += n;
        jl_wbuf_free(w);
        return 0;
}

static int dbd(const char *hostport, unsigned conns, uint64_t n, const char *munge_socket)
{
        sim *sims = calloc(conns, sizeof(sim));
        struct pollfd *p = calloc(conns, sizeof(struct pollfd));
        if (!sims || !p)
                return 1;
        uint64_t per = n / conns;
        char run[32];
        snprintf(run, sizeof(run), "%ld", (long)time(NULL) % 100000);
        for (unsigned i = 0; i < conns; i++) {
                sim *s = &sims[i];
                char node[64], why[256];
                snprintf(node, sizeof(node), "sim-%s-%u", run, i);
                char *cred = NULL;
                if (jl_auth_encode(&(jl_auth_opts){.socket = munge_socket}, node, strlen(node), &cred, why,
                                   sizeof(why)) < 0) {
                        fprintf(stderr, "dbd: credential: %s\n", why);
                        return 1;
                }
                jl_msg_hello h = {.next_seq = 1, .cred = (const uint8_t *)cred, .cred_len = strlen(cred)};
                snprintf(h.node, sizeof(h.node), "%s", node);
                jl_wbuf w;
                jl_msg_hello_encode(&h, 0, &w);
                append(s, &w);
                free(cred);
                for (uint64_t q = 1; q <= per; q++) {
                        jl_msg_record m = make_record(node, q);
                        jl_msg_record_encode(&m, 0, &w);
                        if (append(s, &w) < 0)
                                return 1;
                }
                s->last_seq = per;
                jl_framer_init(&s->framer, 65536);
        }
        double t = now_s();
        for (unsigned i = 0; i < conns; i++) {
                sims[i].fd = dial(hostport);
                if (sims[i].fd < 0) {
                        fprintf(stderr, "dbd: cannot connect to %s\n", hostport);
                        return 1;
                }
        }
        unsigned done = 0;
        while (done < conns) {
                for (unsigned i = 0; i < conns; i++) {
                        p[i].fd = sims[i].acked >= sims[i].last_seq ? -1 : sims[i].fd;
                        p[i].events = POLLIN | (sims[i].off < sims[i].len ? POLLOUT : 0);
                }
                if (poll(p, conns, 60000) <= 0) {
                        fprintf(stderr, "dbd: no progress for 60 s\n");
                        return 1;
                }
                for (unsigned i = 0; i < conns; i++) {
                        sim *s = &sims[i];
                        if (p[i].fd < 0 || !p[i].revents)
                                continue;
                        if ((p[i].revents & POLLOUT) && s->off < s->len) {
                                ssize_t k = send(s->fd, s->out + s->off, s->len - s->off, MSG_NOSIGNAL);
                                if (k > 0)
                                        s->off += (size_t)k;
                        }
                        if (p[i].revents & (POLLIN | POLLHUP | POLLERR)) {
                                uint8_t buf[4096];
                                ssize_t k = recv(s->fd, buf, sizeof(buf), 0);
                                if (k == 0 || (k < 0 && errno != EAGAIN)) {
                                        fprintf(stderr, "dbd: connection %u closed by the dbd\n", i);
                                        return 1;
                                }
                                if (k > 0 && jl_framer_feed(&s->framer, buf, (size_t)k) == 0) {
                                        jl_frame_header h;
                                        const uint8_t *pl;
                                        while (jl_framer_next(&s->framer, &h, &pl) > 0) {
                                                jl_msg_ack a;
                                                if (h.type == JL_MSG_ACK &&
                                                    jl_msg_ack_decode(pl, h.length, &a, NULL, 0) == 0)
                                                        s->acked = a.seq;
                                                jl_framer_pop(&s->framer);
                                        }
                                        if (s->acked >= s->last_seq)
                                                done++;
                                }
                        }
                }
        }
        double dt = now_s() - t;
        printf("dbd %.0f\nseconds %.3f\nrecords %" PRIu64 "\n", (double)(per * conns) / dt, dt, per * conns);
        for (unsigned i = 0; i < conns; i++) {
                close(sims[i].fd);
                free(sims[i].out);
                jl_framer_free(&sims[i].framer);
        }
        free(sims);
        free(p);
        return 0;
}

int main(int argc, char **argv)
{
        if (argc >= 4 && strcmp(argv[1], "raw") == 0)
                return raw(argv[2], strtoull(argv[3], NULL, 10));
        if (argc >= 5 && strcmp(argv[1], "dbd") == 0)
                return dbd(argv[2], (unsigned)strtoul(argv[3], NULL, 10), strtoull(argv[4], NULL, 10),
                           argc >= 6 ? argv[5] : NULL);
        fprintf(stderr, "usage: bench-ingest raw URL N | dbd HOST:PORT CONNECTIONS N [MUNGE_SOCKET]\n");
        return 2;
}
