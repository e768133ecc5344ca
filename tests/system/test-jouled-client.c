/* test-jouled-client.c - a tiny client of jouled for the system tests: sends one REQUEST over the local
 * socket, or one AUTHED request over the control port, and prints the REPLY as one JSON line; and sends
 * the bad input the daemon must survive (random bytes, truncated and oversized frames, a wrong version, a
 * forged credential, a request without one).
 *
 *   test-jouled-client (--socket PATH | --tcp HOST:PORT) OP [ARGS...]
 *     OP: energy | query | shm | reload | begin JOB STEP [USER] [CPUS] | end JOB STEP | cpufreq CPUS KHZ |
 *         gpufreq GPU KHZ | powercap WATTS | raw-random N | raw-truncated | raw-oversized | raw-version |
 *         forged | plain | replay (control port: one credential sent twice) |
 *         cycle JOB N (local socket: N begin/end pairs of steps 0..N-1 of JOB over one connection; prints
 *         {"ok": pairs that succeeded, "failed": replies with an error})
 * Exit: 0 a reply came (whatever its err), 3 the daemon closed the connection without one, 2 usage, 1 error.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "auth.h"
#include "json.h"
#include "msg.h"
#include "parse.h"
#include "shm.h"
#include "wire.h"

static int connect_to(const char *sock, const char *tcp)
{
        if (sock) {
                struct sockaddr_un sa = {.sun_family = AF_UNIX};
                snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock);
                int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
                if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
                        return -errno;
                return fd;
        }
        char host[256];
        const char *colon = strrchr(tcp, ':');
        if (!colon || (size_t)(colon - tcp) >= sizeof(host))
                return -EINVAL;
        memcpy(host, tcp, (size_t)(colon - tcp));
        host[colon - tcp] = '\0';
        struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res;
        if (getaddrinfo(host, colon + 1, &hints, &res) != 0)
                return -EINVAL;
        int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || connect(fd, res->ai_addr, res->ai_addrlen) < 0) {
                freeaddrinfo(res);
                return -errno;
        }
        freeaddrinfo(res);
        return fd;
}

static int send_all(int fd, const void *p, size_t n)
{
        const uint8_t *b = p;
        while (n > 0) {
                ssize_t k = send(fd, b, n, MSG_NOSIGNAL);
                if (k < 0)
                        return -errno;
                b += k;
                n -= (size_t)k;
        }
        return 0;
}

/* Read one frame (5 s at most); also receives a descriptor passed with it. 1: a frame, 0: closed. */
static int read_frame(int fd, jl_framer *fr, jl_frame_header *h, const uint8_t **payload, int *ret_fd)
{
        for (int rounds = 0; rounds < 1000; rounds++) {
                int r = jl_framer_next(fr, h, payload);
                if (r != 0)
                        return r;
                struct pollfd p = {.fd = fd, .events = POLLIN};
                if (poll(&p, 1, 5000) <= 0)
                        return -ETIMEDOUT;
                uint8_t buf[65536];
                union {
                        char c[CMSG_SPACE(sizeof(int))];
                        struct cmsghdr align;
                } u;
                struct iovec iov = {.iov_base = buf, .iov_len = sizeof(buf)};
                struct msghdr mh = {
                    .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.c, .msg_controllen = sizeof(u.c)};
                ssize_t n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
                if (n < 0)
                        return errno == ECONNRESET ? 0 : -errno;
                if (n == 0)
                        return 0;
                for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm))
                        if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS && ret_fd)
                                memcpy(ret_fd, CMSG_DATA(cm), sizeof(int));
                if (jl_framer_feed(fr, buf, (size_t)n) < 0)
                        return -ENOBUFS;
        }
        return -ETIMEDOUT;
}

static void cpus_to_mask(const char *list, jl_msg_request *req)
{
        uint64_t mask[16] = {0};
        if (parse_cpu_list(list, mask, 1024) < 0) {
                fprintf(stderr, "bad CPU list %s\n", list);
                exit(2);
        }
        req->cpumask_len = JL_MSG_CPUMASK_BYTES;
        for (int c = 0; c < 1024; c++)
                if (mask[c / 64] >> (c % 64) & 1)
                        req->cpumask[c / 8] |= (uint8_t)(1u << (c % 8));
}

static void print_shm(int shm_fd)
{
        jl_shm_page *p = mmap(NULL, sizeof(jl_shm_page), PROT_READ, MAP_SHARED, shm_fd, 0);
        if (p == MAP_FAILED) {
                printf("{\"error\": \"mmap: %s\"}\n", strerror(errno));
                exit(1);
        }
        void *w = mmap(NULL, sizeof(jl_shm_page), PROT_READ | PROT_WRITE, MAP_SHARED, shm_fd, 0);
        bool writable = w != MAP_FAILED;
        jl_shm_page copy;
        if (!jl_shm_read(p, &copy)) {
                printf("{\"error\": \"inconsistent page\"}\n");
                exit(1);
        }
        json_writer jw;
        json_init(&jw, stdout);
        json_object_begin(&jw);
        json_key(&jw, "node");
        json_string(&jw, copy.node);
        json_key(&jw, "node_energy_uj");
        json_uint(&jw, copy.node_energy_uj);
        json_key(&jw, "time_ms");
        json_uint(&jw, copy.time_ms);
        json_key(&jw, "samples");
        json_uint(&jw, copy.samples);
        json_key(&jw, "power_w");
        json_double(&jw, copy.power_w);
        json_key(&jw, "job_id");
        json_string(&jw, copy.job_id);
        json_key(&jw, "writable");
        json_bool(&jw, writable);
        json_key(&jw, "domains");
        json_object_begin(&jw);
        for (uint32_t i = 0; i < copy.ndomains && i < JL_SHM_DOMAINS_MAX; i++) {
                json_key(&jw, copy.domains[i].name);
                json_uint(&jw, copy.domains[i].energy_uj);
        }
        json_object_end(&jw);
        json_key(&jw, "gpus"); /* the GPU domains' identity (shm.h, versions 3 and 4) */
        json_object_begin(&jw);
        for (uint32_t i = 0; i < copy.ndomains && i < JL_SHM_DOMAINS_MAX; i++) {
                const jl_shm_domain *d = &copy.domains[i];
                if (strncmp(d->name, "gpu-", 4) != 0)
                        continue;
                json_key(&jw, d->name);
                json_object_begin(&jw);
                json_key(&jw, "uuid");
                json_string(&jw, d->gpu_uuid);
                json_key(&jw, "minor");
                json_int(&jw, d->gpu_minor);
                json_key(&jw, "pci");
                json_string(&jw, d->gpu_pci);
                if (d->gpu_mig[0]) { /* version 4 */
                        json_key(&jw, "mig");
                        json_string(&jw, d->gpu_mig);
                }
                json_object_end(&jw);
        }
        json_object_end(&jw);
        json_object_end(&jw);
        putchar('\n');
        munmap(p, sizeof(jl_shm_page));
        if (writable)
                munmap(w, sizeof(jl_shm_page));
}

int main(int argc, char **argv)
{
        const char *sock = NULL, *tcp = NULL;
        int i = 1;
        for (; i + 1 < argc; i += 2) {
                if (strcmp(argv[i], "--socket") == 0)
                        sock = argv[i + 1];
                else if (strcmp(argv[i], "--tcp") == 0)
                        tcp = argv[i + 1];
                else
                        break;
        }
        if ((!sock && !tcp) || i >= argc) {
                fputs("usage: test-jouled-client (--socket PATH | --tcp HOST:PORT) OP [ARGS...]\n", stderr);
                return 2;
        }
        const char *op = argv[i++];
        int nargs = argc - i;
        char **a = argv + i;
        int fd = connect_to(sock, tcp);
        if (fd < 0) {
                fprintf(stderr, "connect: %s\n", strerror(-fd));
                return 1;
        }
        jl_auth_opts auth = {.socket = getenv("JOULE_MUNGE_SOCKET")};
        char why[256] = "";

        if (strcmp(op, "cycle") == 0 && sock && nargs == 2) {
                long n = atol(a[1]), okn = 0, failed = 0;
                jl_framer fr;
                jl_framer_init(&fr, 1u << 20);
                for (long k = 0; k < 2 * n; k++) {
                        jl_msg_request req = {.op = k % 2 ? JL_OP_JOB_END : JL_OP_JOB_BEGIN,
                                              .step_id = k / 2};
                        snprintf(req.job_id, sizeof(req.job_id), "%s", a[0]);
                        jl_wbuf w;
                        const uint8_t *data, *payload;
                        size_t len;
                        jl_frame_header h;
                        jl_msg_reply rep;
                        if (jl_msg_request_encode(&req, (uint32_t)k + 1, &w) < 0 ||
                            jl_wbuf_finish(&w, &data, &len) < 0 || send_all(fd, data, len) < 0)
                                return 1;
                        jl_wbuf_free(&w);
                        if (read_frame(fd, &fr, &h, &payload, NULL) != 1 || h.type != JL_MSG_REPLY ||
                            jl_msg_reply_decode(payload, h.length, &rep, why, sizeof(why)) < 0) {
                                printf("{\"ok\": %ld, \"failed\": %ld, \"closed\": true}\n", okn, failed);
                                return 1;
                        }
                        if (rep.err != 0)
                                failed++;
                        else if (k % 2)
                                okn++;
                }
                jl_framer_free(&fr);
                printf("{\"ok\": %ld, \"failed\": %ld}\n", okn, failed);
                close(fd);
                return 0;
        }

        /* bad input */
        if (strcmp(op, "replay") == 0 && tcp) {
                /* the same credential twice: the second must be refused */
                jl_msg_request req = {.op = JL_OP_QUERY, .step_id = -1, .gpu = -1};
                jl_wbuf w, aw;
                const uint8_t *data, *adata;
                size_t len, alen;
                if (jl_msg_request_encode(&req, 7, &w) < 0 || jl_wbuf_finish(&w, &data, &len) < 0 ||
                    jl_auth_wrap_frame(&auth, data, len, 7, &aw, why, sizeof(why)) < 0 ||
                    jl_wbuf_finish(&aw, &adata, &alen) < 0)
                        return 1;
                for (int k = 0; k < 2; k++) {
                        int cfd = k == 0 ? fd : connect_to(NULL, tcp);
                        if (cfd < 0)
                                return 1;
                        send_all(cfd, adata, alen);
                        jl_framer fr;
                        jl_framer_init(&fr, 1u << 20);
                        jl_frame_header h;
                        const uint8_t *payload;
                        int r = read_frame(cfd, &fr, &h, &payload, NULL);
                        jl_msg_reply rep;
                        if (r == 1 && jl_msg_reply_decode(payload, h.length, &rep, why, sizeof(why)) == 0)
                                printf("{\"try\": %d, \"err\": %d}\n", k, rep.err);
                        else
                                printf("{\"try\": %d, \"closed\": true}\n", k);
                        jl_framer_free(&fr);
                        close(cfd);
                }
                jl_wbuf_free(&w);
                jl_wbuf_free(&aw);
                return 0;
        }
        if (strcmp(op, "raw-random") == 0) {
                uint8_t junk[4096];
                size_t n = nargs > 0 ? (size_t)atoi(a[0]) : 100;
                FILE *ur = fopen("/dev/urandom", "re");
                if (!ur || fread(junk, 1, n > sizeof(junk) ? sizeof(junk) : n, ur) == 0)
                        return 1;
                fclose(ur);
                send_all(fd, junk, n > sizeof(junk) ? sizeof(junk) : n);
        } else if (strcmp(op, "raw-truncated") == 0 || strcmp(op, "raw-oversized") == 0 ||
                   strcmp(op, "raw-version") == 0 || strcmp(op, "plain") == 0) {
                jl_msg_request req = {.op = JL_OP_QUERY};
                jl_wbuf w;
                const uint8_t *data;
                size_t len;
                if (jl_msg_request_encode(&req, 1, &w) < 0 || jl_wbuf_finish(&w, &data, &len) < 0)
                        return 1;
                uint8_t frame[256];
                memcpy(frame, data, len);
                if (strcmp(op, "raw-truncated") == 0)
                        len -= 3; /* then close: the frame never completes */
                else if (strcmp(op, "raw-oversized") == 0) {
                        uint32_t big = htonl(64u << 20);
                        memcpy(frame + 8, &big, 4);
                } else if (strcmp(op, "raw-version") == 0)
                        frame[4] = JL_WIRE_VERSION + 7;
                send_all(fd, frame, len);
                jl_wbuf_free(&w);
                if (strcmp(op, "raw-truncated") == 0) {
                        shutdown(fd, SHUT_WR);
                }
        } else if (strcmp(op, "forged") == 0) {
                jl_wbuf w;
                jl_wbuf_init(&w, JL_MSG_AUTHED, 0, 1);
                jl_wbuf_put_str(&w, 13 /* the credential attribute of auth.c */,
                                "MUNGE:AwQFAAD9YnNvbWVvbmVmb3JnZWR0aGlzY3JlZGVudGlhbDo=:");
                const uint8_t *data;
                size_t len;
                if (jl_wbuf_finish(&w, &data, &len) < 0)
                        return 1;
                send_all(fd, data, len);
                jl_wbuf_free(&w);
        } else {
                jl_msg_request req = {.op = 0, .step_id = -1};
                if (strcmp(op, "energy") == 0)
                        req.op = JL_OP_ENERGY;
                else if (strcmp(op, "query") == 0)
                        req.op = JL_OP_QUERY;
                else if (strcmp(op, "shm") == 0)
                        req.op = JL_OP_GET_SHM;
                else if (strcmp(op, "reload") == 0)
                        req.op = JL_OP_RELOAD;
                else if ((strcmp(op, "begin") == 0 || strcmp(op, "end") == 0) && nargs >= 2) {
                        req.op = op[0] == 'b' ? JL_OP_JOB_BEGIN : JL_OP_JOB_END;
                        snprintf(req.job_id, sizeof(req.job_id), "%s", a[0]);
                        req.step_id = atoll(a[1]);
                        if (nargs >= 3 && strcmp(a[2], "-") != 0)
                                snprintf(req.user, sizeof(req.user), "%s", a[2]);
                        if (nargs >= 4)
                                cpus_to_mask(a[3], &req);
                } else if (strcmp(op, "cpufreq") == 0 && nargs == 2) {
                        req.op = JL_OP_SET_CPUFREQ;
                        cpus_to_mask(a[0], &req);
                        req.khz = strtoull(a[1], NULL, 10);
                } else if (strcmp(op, "gpufreq") == 0 && nargs == 2) {
                        req.op = JL_OP_SET_GPUFREQ;
                        req.gpu = atoi(a[0]);
                        req.khz = strtoull(a[1], NULL, 10);
                } else if (strcmp(op, "powercap") == 0 && nargs == 1) {
                        req.op = JL_OP_SET_POWERCAP;
                        req.watts = strtod(a[0], NULL);
                } else {
                        fprintf(stderr, "unknown operation %s\n", op);
                        return 2;
                }
                jl_wbuf w, aw;
                const uint8_t *data;
                size_t len;
                if (jl_msg_request_encode(&req, 42, &w) < 0 || jl_wbuf_finish(&w, &data, &len) < 0)
                        return 1;
                if (tcp) {
                        if (jl_auth_wrap_frame(&auth, data, len, 42, &aw, why, sizeof(why)) < 0) {
                                fprintf(stderr, "munge: %s\n", why);
                                return 1;
                        }
                        const uint8_t *adata;
                        size_t alen;
                        if (jl_wbuf_finish(&aw, &adata, &alen) < 0)
                                return 1;
                        send_all(fd, adata, alen);
                        jl_wbuf_free(&aw);
                } else
                        send_all(fd, data, len);
                jl_wbuf_free(&w);
        }

        jl_framer fr;
        jl_framer_init(&fr, 1u << 20);
        jl_frame_header h;
        const uint8_t *payload;
        int shm_fd = -1;
        int r = read_frame(fd, &fr, &h, &payload, &shm_fd);
        if (r <= 0) {
                printf("{\"closed\": true}\n");
                jl_framer_free(&fr);
                return r == 0 ? 3 : 1;
        }
        jl_msg_reply rep;
        if (h.type != JL_MSG_REPLY || jl_msg_reply_decode(payload, h.length, &rep, why, sizeof(why)) < 0) {
                fprintf(stderr, "bad reply: %s\n", why);
                jl_framer_free(&fr);
                return 1;
        }
        if (strcmp(op, "shm") == 0 && rep.err == 0) {
                if (shm_fd < 0) {
                        fprintf(stderr, "no descriptor came with the reply\n");
                        return 1;
                }
                print_shm(shm_fd);
                close(shm_fd);
                jl_framer_free(&fr);
                close(fd);
                return 0;
        }
        json_writer jw;
        json_init(&jw, stdout);
        json_object_begin(&jw);
        json_key(&jw, "err");
        json_int(&jw, rep.err);
        json_key(&jw, "message");
        json_string(&jw, rep.message);
        json_key(&jw, "energy_uj");
        json_uint(&jw, rep.energy_uj);
        json_key(&jw, "time_ms");
        json_uint(&jw, rep.time_ms);
        char *text = strndup(rep.text ? rep.text : "", rep.text_len);
        json_key(&jw, "text");
        json_string(&jw, text ? text : "");
        json_object_end(&jw);
        putchar('\n');
        free(text);
        jl_framer_free(&fr);
        close(fd);
        return 0;
}
