/* test-dbd-peer.c - one simulated node for joule-dbd's system tests (test-dbd-auth.sh, test-dbd-memory.sh):
 * its MUNGE credential is made first (so that munged may be stopped afterwards), then it connects, sends
 * HELLO and RECORD frames written here (no reporter, no spool), and reports what the dbd answers.
 *
 *   test-dbd-peer HOST:PORT NODE [-n N] [-s SEQ] [-g FILE] [-G FILE -m M -T SECONDS] [-c SECONDS] [-t
 * SECONDS]
 *
 *   -n N        records sent right after the HELLO (seq SEQ..), all ACKed within -t SECONDS (default 60)
 *   -s SEQ      the first seq (default 1)
 *   -g FILE     print "ready" once the credential is made, connect only once FILE exists (60 s at most)
 *   -G FILE     then wait for FILE, send M more records (-m), and require their ACK within -T SECONDS
 *   -c SECONDS  at the end, require the dbd to close the connection within SECONDS
 *
 * Prints "acked SEQ" after each phase, "closed" when the dbd closes the connection; exits 1 on any
 * failure (with the reason on stderr). Environment: JOULE_MUNGE_SOCKET. */
#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "msg.h"

static double now_s(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
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
        return fd;
}

static int wait_file(const char *path)
{
        for (int i = 0; i < 6000; i++) {
                struct stat st;
                if (stat(path, &st) == 0)
                        return 0;
                usleep(10000);
        }
        fprintf(stderr, "%s did not appear within 60 s\n", path);
        return -1;
}

/* Frames of records seq..seq+n-1 appended to *buf. */
static int records(const char *node, uint64_t seq, uint64_t n, uint8_t **buf, size_t *len)
{
        size_t cap = *len;
        for (uint64_t q = seq; q < seq + n; q++) {
                jl_msg_record m = {.seq = q,
                                   .start_us = UINT64_C(1767225600000000) + (q - 1) * 1000000,
                                   .end_us = UINT64_C(1767225600000000) + q * 1000000,
                                   .energy_uj = 1000000 + q,
                                   .avg_power_w = 1.0,
                                   .temp_max_c = 50.0,
                                   .freq_avg_khz = 2000000,
                                   .ndomains = 4};
                snprintf(m.node, sizeof(m.node), "%s", node);
                static const char *const names[] = {"package-0", "package-1", "dram-0", "dram-1"};
                for (size_t i = 0; i < 4; i++) {
                        snprintf(m.domains[i].name, sizeof(m.domains[i].name), "%s", names[i]);
                        m.domains[i].energy_uj = m.energy_uj / 4;
                }
                jl_wbuf w = {0};
                const uint8_t *d;
                size_t k;
                if (jl_msg_record_encode(&m, 0, &w) < 0 || jl_wbuf_finish(&w, &d, &k) < 0)
                        return -EINVAL;
                if (*len + k > cap) {
                        cap = (*len + k) * 2;
                        uint8_t *b = realloc(*buf, cap);
                        if (!b)
                                return -ENOMEM;
                        *buf = b;
                }
                memcpy(*buf + *len, d, k);
                *len += k;
                jl_wbuf_free(&w);
        }
        return 0;
}

static int send_all(int fd, const uint8_t *b, size_t n)
{
        while (n > 0) {
                ssize_t k = send(fd, b, n, MSG_NOSIGNAL);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -1;
                }
                b += k;
                n -= (size_t)k;
        }
        return 0;
}

/* Wait until seq is ACKed (1), the dbd closes the connection (0), or the time is up (-1). */
static int wait_ack(int fd, jl_framer *f, uint64_t seq, double seconds, uint64_t *acked)
{
        double end = now_s() + seconds;
        while (*acked < seq) {
                int left = (int)((end - now_s()) * 1000);
                if (left <= 0)
                        return -1;
                struct pollfd p = {.fd = fd, .events = POLLIN};
                if (poll(&p, 1, left) <= 0)
                        continue;
                uint8_t buf[4096];
                ssize_t k = recv(fd, buf, sizeof(buf), 0);
                if (k <= 0)
                        return 0;
                if (jl_framer_feed(f, buf, (size_t)k) < 0)
                        return 0;
                jl_frame_header h;
                const uint8_t *pl;
                while (jl_framer_next(f, &h, &pl) > 0) {
                        jl_msg_ack a;
                        jl_msg_error e;
                        if (h.type == JL_MSG_ACK && jl_msg_ack_decode(pl, h.length, &a, NULL, 0) == 0)
                                *acked = a.seq;
                        else if (h.type == JL_MSG_ERROR &&
                                 jl_msg_error_decode(pl, h.length, &e, NULL, 0) == 0)
                                fprintf(stderr, "ERROR from the dbd: %s\n", e.message);
                        jl_framer_pop(f);
                }
        }
        return 1;
}

int main(int argc, char **argv)
{
        if (argc < 3) {
                fprintf(stderr,
                        "usage: test-dbd-peer HOST:PORT NODE [-n N] [-s SEQ] [-g FILE] [-G FILE -m M "
                        "-T SECONDS] [-c SECONDS] [-t SECONDS]\n");
                return 2;
        }
        const char *hostport = argv[1], *node = argv[2], *go = NULL, *go2 = NULL;
        uint64_t n = 0, seq = 1, m = 0;
        double t = 60, t2 = 60, close_s = -1;
        int o;
        optind = 3;
        while ((o = getopt(argc, argv, "n:s:g:G:m:T:c:t:")) >= 0) {
                switch (o) {
                case 'n':
                        n = strtoull(optarg, NULL, 10);
                        break;
                case 's':
                        seq = strtoull(optarg, NULL, 10);
                        break;
                case 'g':
                        go = optarg;
                        break;
                case 'G':
                        go2 = optarg;
                        break;
                case 'm':
                        m = strtoull(optarg, NULL, 10);
                        break;
                case 'T':
                        t2 = strtod(optarg, NULL);
                        break;
                case 'c':
                        close_s = strtod(optarg, NULL);
                        break;
                case 't':
                        t = strtod(optarg, NULL);
                        break;
                default:
                        return 2;
                }
        }
        char why[256], *cred = NULL;
        jl_auth_opts ao = {.socket = getenv("JOULE_MUNGE_SOCKET")};
        if (jl_auth_encode(&ao, node, strlen(node), &cred, why, sizeof(why)) < 0) {
                fprintf(stderr, "credential: %s\n", why);
                return 1;
        }
        jl_msg_hello hello = {.next_seq = seq, .cred = (const uint8_t *)cred, .cred_len = strlen(cred)};
        snprintf(hello.node, sizeof(hello.node), "%s", node);
        jl_wbuf w = {0};
        const uint8_t *d;
        size_t k;
        uint8_t *out = NULL, *out2 = NULL;
        size_t len = 0, len2 = 0;
        if (jl_msg_hello_encode(&hello, 0, &w) < 0 || jl_wbuf_finish(&w, &d, &k) < 0 || !(out = malloc(k)))
                return 1;
        memcpy(out, d, k);
        len = k;
        jl_wbuf_free(&w);
        free(cred);
        if (records(node, seq, n, &out, &len) < 0 || records(node, seq + n, m, &out2, &len2) < 0)
                return 1;
        if (go) {
                printf("ready\n");
                fflush(stdout);
                if (wait_file(go) < 0)
                        return 1;
        }
        int fd = dial(hostport);
        if (fd < 0) {
                fprintf(stderr, "cannot connect to %s\n", hostport);
                return 1;
        }
        jl_framer f;
        jl_framer_init(&f, 65536);
        uint64_t acked = 0;
        int ret = 1;
        if (send_all(fd, out, len) < 0) {
                fprintf(stderr, "send: %s\n", strerror(errno));
                goto out;
        }
        if (n > 0) {
                if (wait_ack(fd, &f, seq + n - 1, t, &acked) <= 0) {
                        fprintf(stderr, "records %" PRIu64 "..%" PRIu64 " not acknowledged within %.1f s\n",
                                seq, seq + n - 1, t);
                        goto out;
                }
                printf("acked %" PRIu64 "\n", acked);
                fflush(stdout);
        }
        if (go2) {
                if (wait_file(go2) < 0)
                        goto out;
                double t0 = now_s();
                if (send_all(fd, out2, len2) < 0 || wait_ack(fd, &f, seq + n + m - 1, t2, &acked) <= 0) {
                        fprintf(stderr, "the second records not acknowledged within %.1f s\n", t2);
                        goto out;
                }
                printf("acked %" PRIu64 " in %.3f s\n", acked, now_s() - t0);
                fflush(stdout);
        }
        if (close_s >= 0) {
                if (wait_ack(fd, &f, UINT64_MAX, close_s, &acked) != 0) {
                        fprintf(stderr, "the dbd did not close the connection within %.1f s\n", close_s);
                        goto out;
                }
                printf("closed\n");
        }
        ret = 0;
out:
        close(fd);
        jl_framer_free(&f);
        free(out);
        free(out2);
        return ret;
}
