/* test-reporter-feed.c - a stand-in for jouled in the dbd system tests (tests/system/test-dbd*.sh): a
 * reporter (src/jouled/reporter.c) built from the configuration file like jouled's, fed with N records of
 * exactly known values, then waits until the dbd has acknowledged them all. Restartable: records found in
 * the spool are not submitted again, so killing and restarting it is like a jouled restart.
 *
 *   test-reporter-feed -c CONFIG -n N [--job ID] [--rate PER_S] [--wait-ms MS] [--t0 US]
 *   test-reporter-feed -c CONFIG --evil CASE
 *
 * --evil connects without the reporter and sends one kind of bad input (random, wrong-version, oversized,
 * truncated, no-cred, forged-cred, before-hello, other-node, second-hello, cred-other-node; other-node
 * sends 5 good records, seq 1-5, before the bad one); it exits 0 when the dbd closed the connection.
 *
 * Record seq s (1-based) covers [t0 + (s-1) s, t0 + s s) with energy 1000000 + s µJ (package-0 80%, the
 * rest dram-0); every tenth record had 0.25 s of its energy estimated across counter wraps (gap_us). With --job, seq 1 begins job ID step 0 (user "alice") and seq N+2 ends it with the
 * records' energy. Exit 0 when everything is acknowledged, 1 on a timeout (the status says where). */
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <sys/socket.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "auth.h"
#include "reporter.h"

#define T0_DEFAULT UINT64_C(1767225600000000) /* 2026-01-01T00:00:00Z, a multiple of every window */

static uint64_t record_energy(uint64_t s)
{
        return 1000000 + s;
}

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
        int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
                close(fd);
                fd = -1;
        }
        freeaddrinfo(ai);
        struct timeval tv = {.tv_sec = 5};
        if (fd >= 0)
                setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        return fd;
}

static void send_frame(int fd, jl_wbuf *w)
{
        const uint8_t *d;
        size_t n;
        if (jl_wbuf_finish(w, &d, &n) == 0 && send(fd, d, n, MSG_NOSIGNAL) != (ssize_t)n)
                fprintf(stderr, "evil: send failed: %m\n");
        jl_wbuf_free(w);
}

static void send_hello(int fd, const joule_config *cfg, const char *node, const char *cred_for, bool forged)
{
        char *cred = NULL;
        char why[256];
        if (cred_for && jl_auth_encode(&(jl_auth_opts){.socket = cfg->node.munge_socket}, cred_for,
                                       strlen(cred_for), &cred, why, sizeof(why)) < 0)
                fprintf(stderr, "evil: no credential: %s\n", why);
        if (cred && forged) {
                size_t len = strlen(cred);
                cred[len / 2] = cred[len / 2] == 'A' ? 'B' : 'A'; /* one flipped character */
        }
        jl_msg_hello h = {.next_seq = 1, .cred = (const uint8_t *)cred, .cred_len = cred ? strlen(cred) : 0};
        snprintf(h.node, sizeof(h.node), "%s", node);
        jl_wbuf w;
        jl_msg_hello_encode(&h, 0, &w);
        send_frame(fd, &w);
        free(cred);
}

static void send_record(int fd, const char *node, uint64_t seq)
{
        jl_msg_record m = {.seq = seq,
                           .start_us = T0_DEFAULT + seq * 1000000,
                           .end_us = T0_DEFAULT + (seq + 1) * 1000000,
                           .energy_uj = 1000,
                           .avg_power_w = 0.001,
                           .temp_max_c = NAN,
                           .freq_avg_khz = NAN,
                           .step_id = -1};
        snprintf(m.node, sizeof(m.node), "%s", node);
        jl_wbuf w;
        jl_msg_record_encode(&m, 0, &w);
        send_frame(fd, &w);
}

/* Bad input on the dbd's port; 0 when the dbd hung up on us (after an ERROR frame or not). */
static int evil(const joule_config *cfg, const char *mode)
{
        int fd = dial(cfg->node.dbd);
        if (fd < 0) {
                fprintf(stderr, "evil: cannot connect to %s\n", cfg->node.dbd);
                return 2;
        }
        const char *node = cfg->node.name;
        uint8_t hdr[JL_WIRE_HEADER_SIZE];
        if (strcmp(mode, "random") == 0) {
                uint8_t junk[4096];
                srand(42);
                for (size_t i = 0; i < sizeof(junk); i++)
                        junk[i] = (uint8_t)rand();
                (void)!send(fd, junk, sizeof(junk), MSG_NOSIGNAL);
        } else if (strcmp(mode, "wrong-version") == 0) {
                jl_frame_header h = {.version = 1, .type = JL_MSG_HELLO, .length = 0};
                jl_frame_header_encode(&h, hdr);
                hdr[4] = 99;
                (void)!send(fd, hdr, sizeof(hdr), MSG_NOSIGNAL);
        } else if (strcmp(mode, "oversized") == 0) {
                jl_frame_header h = {.version = JL_WIRE_VERSION, .type = JL_MSG_RECORD, .length = 900000};
                jl_frame_header_encode(&h, hdr);
                (void)!send(fd, hdr, sizeof(hdr), MSG_NOSIGNAL);
        } else if (strcmp(mode, "truncated") == 0) {
                jl_frame_header h = {.version = JL_WIRE_VERSION, .type = JL_MSG_HELLO, .length = 200};
                jl_frame_header_encode(&h, hdr);
                (void)!send(fd, hdr, sizeof(hdr), MSG_NOSIGNAL);
                (void)!send(fd, "partial", 7, MSG_NOSIGNAL);
                shutdown(fd, SHUT_WR);
        } else if (strcmp(mode, "no-cred") == 0)
                send_hello(fd, cfg, node, NULL, false);
        else if (strcmp(mode, "forged-cred") == 0)
                send_hello(fd, cfg, node, node, true);
        else if (strcmp(mode, "cred-other-node") == 0)
                send_hello(fd, cfg, node, "someone-else", false);
        else if (strcmp(mode, "before-hello") == 0)
                send_record(fd, node, 1);
        else if (strcmp(mode, "second-hello") == 0) {
                send_hello(fd, cfg, node, node, false);
                send_hello(fd, cfg, node, node, false);
        } else if (strcmp(mode, "other-node") == 0) {
                send_hello(fd, cfg, node, node, false);
                for (uint64_t s = 1; s <= 5; s++)
                        send_record(fd, node, s);
                send_record(fd, "intruder", 6);
        } else {
                fprintf(stderr, "evil: unknown case %s\n", mode);
                close(fd);
                return 2;
        }
        /* the dbd answers with at most an ERROR frame and hangs up */
        uint8_t buf[4096];
        ssize_t k;
        size_t got = 0;
        while ((k = recv(fd, buf, sizeof(buf), 0)) > 0)
                got += (size_t)k;
        close(fd);
        if (k < 0) {
                fprintf(stderr, "evil %s: the dbd did not hang up (%m)\n", mode);
                return 1;
        }
        fprintf(stderr, "evil %s: dropped by the dbd (%zu bytes of reply)\n", mode, got);
        return 0;
}

int main(int argc, char **argv)
{
        const char *config = NULL, *job = NULL, *evil_mode = NULL;
        uint64_t n = 0, t0 = T0_DEFAULT;
        double rate = 0;
        unsigned wait_ms = 30000;
        static const struct option opts[] = {
            {"job", required_argument, NULL, 'j'},     {"rate", required_argument, NULL, 'r'},
            {"wait-ms", required_argument, NULL, 'w'}, {"t0", required_argument, NULL, 't'},
            {"evil", required_argument, NULL, 'e'},    {}};
        int o;
        while ((o = getopt_long(argc, argv, "c:n:", opts, NULL)) >= 0) {
                switch (o) {
                case 'c':
                        config = optarg;
                        break;
                case 'n':
                        n = strtoull(optarg, NULL, 10);
                        break;
                case 'j':
                        job = optarg;
                        break;
                case 'r':
                        rate = strtod(optarg, NULL);
                        break;
                case 'w':
                        wait_ms = (unsigned)strtoul(optarg, NULL, 10);
                        break;
                case 't':
                        t0 = strtoull(optarg, NULL, 10);
                        break;
                case 'e':
                        evil_mode = optarg;
                        break;
                default:
                        return 2;
                }
        }
        joule_config cfg;
        char err[512];
        if (joule_config_init(&cfg) < 0 || joule_config_load(&cfg, config, err, sizeof(err)) < 0) {
                fprintf(stderr, "feed: configuration: %s\n", err);
                return 2;
        }
        if (evil_mode) {
                int e = evil(&cfg, evil_mode);
                joule_config_free(&cfg);
                return e;
        }
        jl_reporter_opts ro = {.node = cfg.node.name,
                               .dbd = cfg.node.dbd,
                               .spool = cfg.node.spool,
                               .partition = cfg.node.partition,
                               .island = cfg.node.island,
                               .auth = {.socket = cfg.node.munge_socket},
                               .backoff_max_ms = 500,
                               .ack_timeout_ms = 20000};
        jl_reporter *r;
        int k = jl_reporter_new(&ro, &r, err, sizeof(err));
        if (k < 0) {
                fprintf(stderr, "feed: reporter: %s\n", err);
                return 2;
        }
        jl_reporter_status st;
        jl_reporter_get_status(r, &st);
        uint64_t last = n + (job ? 2 : 0), first = st.last_seq + 1;
        fprintf(stderr,
                "feed: node %s: %" PRIu64 " messages in the spool, submitting %" PRIu64 "..%" PRIu64 "\n",
                cfg.node.name, st.pending, first, last);
        uint64_t energy_total = 0;
        for (uint64_t s = 1; s <= n; s++)
                energy_total += record_energy(s);
        for (uint64_t seq = first; seq <= last; seq++) {
                if (job && (seq == 1 || seq == last)) {
                        jl_msg_job m = {.seq = seq,
                                        .end = seq == last,
                                        .step_id = 0,
                                        .complete = true,
                                        .time_us = seq == 1 ? t0 : t0 + n * 1000000,
                                        .energy_uj = seq == 1 ? 0 : energy_total};
                        snprintf(m.node, sizeof(m.node), "%s", cfg.node.name);
                        snprintf(m.job_id, sizeof(m.job_id), "%s", job);
                        snprintf(m.user, sizeof(m.user), "alice");
                        k = jl_reporter_submit_job(r, &m);
                } else {
                        uint64_t s = job ? seq - 1 : seq;
                        jl_msg_record m = {.seq = seq,
                                           .start_us = t0 + (s - 1) * 1000000,
                                           .end_us = t0 + s * 1000000,
                                           .energy_uj = record_energy(s),
                                           .gap_us = s % 10 == 0 ? 250000 : 0,
                                           .temp_max_c = 50,
                                           .freq_avg_khz = 2000000,
                                           .step_id = -1,
                                           .ndomains = 2};
                        m.avg_power_w = (double)m.energy_uj / 1e6;
                        snprintf(m.node, sizeof(m.node), "%s", cfg.node.name);
                        if (job) {
                                snprintf(m.job_id, sizeof(m.job_id), "%s", job);
                                m.step_id = 0;
                        }
                        strcpy(m.domains[0].name, "package-0");
                        m.domains[0].energy_uj = m.energy_uj / 5 * 4;
                        strcpy(m.domains[1].name, "dram-0");
                        m.domains[1].energy_uj = m.energy_uj - m.domains[0].energy_uj;
                        k = jl_reporter_submit_record(r, &m);
                }
                if (k < 0) {
                        fprintf(stderr, "feed: submit %" PRIu64 ": %s\n", seq, strerror(-k));
                        jl_reporter_free(r, 0);
                        return 1;
                }
                if (rate > 0)
                        usleep((useconds_t)(1e6 / rate));
        }
        k = jl_reporter_wait_acked(r, last, wait_ms);
        jl_reporter_get_status(r, &st);
        fprintf(stderr,
                "feed: %s: acked_seq %" PRIu64 ", pending %" PRIu64 ", connects %" PRIu64 ", spool %" PRIu64
                " bytes, last error: %s\n",
                k == 0 ? "done" : "timed out", st.acked_seq, st.pending, st.connects, st.spool_bytes,
                st.last_error[0] ? st.last_error : "none");
        jl_reporter_free(r, 0);
        joule_config_free(&cfg);
        return k == 0 ? 0 : 1;
}
