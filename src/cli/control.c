/* control.c - `joule control [--node HOST:PORT] query | set-cpufreq KHZ [--cpus LIST] | set-powercap WATTS |
 * reload`: one request to a node's control port over TCP, wrapped in a MUNGE credential (an AUTHED frame),
 * and jouled's reply printed; a refusal exits 1 with jouled's reason. */
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "auth.h"
#include "cli.h"
#include "client.h"
#include "log.h"
#include "macro.h"
#include "parse.h"
#include "timeutil.h"

#define CONTROL_TIMEOUT_MS 15000

static int usage(FILE *f)
{
        fputs("Usage: joule control [--node HOST:PORT] COMMAND\n\n"
              "Send one command to a node's jouled over its control port, authenticated with MUNGE. Only\n"
              "root and the users of node.admins may change anything; anyone may query.\n\n"
              "Commands:\n"
              "  query                      the node's status (JSON)\n"
              "  set-cpufreq KHZ [--cpus L] limit the CPUs (default: all) to KHZ kHz; 0 restores the default\n"
              "  set-powercap WATTS         set the node's power limit; 0 removes it\n"
              "  reload                     make jouled reload its configuration (as SIGHUP)\n\n"
              "Options:\n"
              "  -n, --node HOST:PORT  the node's control port (default: node.control_listen)\n"
              "      --cpus LIST       set-cpufreq: the CPUs, e.g. 0-3,8\n",
              f);
        return f == stdout ? 0 : 2;
}

/* Split HOST:PORT ([V6]:PORT) into host and port; a wildcard host means this machine. */
static int split_host_port(const char *s, char *host, size_t hostlen, char *port, size_t portlen)
{
        const char *colon;
        const char *h = s;
        size_t hl;
        if (s[0] == '[') {
                const char *close = strchr(s, ']');
                if (!close || close[1] != ':')
                        return -EINVAL;
                h = s + 1;
                hl = (size_t)(close - h);
                colon = close + 1;
        } else {
                colon = strrchr(s, ':');
                if (!colon)
                        return -EINVAL;
                hl = (size_t)(colon - s);
        }
        uint64_t p;
        if (hl == 0 || hl >= hostlen || parse_u64(colon + 1, &p) < 0 || p == 0 || p > 65535)
                return -EINVAL;
        memcpy(host, h, hl);
        host[hl] = '\0';
        if (strcmp(host, "0.0.0.0") == 0 || strcmp(host, "*") == 0)
                snprintf(host, hostlen, "127.0.0.1");
        else if (strcmp(host, "::") == 0)
                snprintf(host, hostlen, "::1");
        snprintf(port, portlen, "%u", (unsigned)p);
        return 0;
}

static int tcp_connect(const char *host, const char *port, uint64_t deadline, int *ret_fd, char *why,
                       size_t whylen)
{
        struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
        int g = getaddrinfo(host, port, &hints, &res);
        if (g != 0) {
                snprintf(why, whylen, "cannot resolve %s: %s", host, gai_strerror(g));
                return -EHOSTUNREACH;
        }
        int r = -ECONNREFUSED;
        for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
                int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
                if (fd < 0) {
                        r = negative_errno();
                        continue;
                }
                if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0 && errno != EINPROGRESS) {
                        r = negative_errno();
                        close(fd);
                        continue;
                }
                uint64_t now = mono_ns();
                struct pollfd p = {.fd = fd, .events = POLLOUT};
                int left = now < deadline ? (int)((deadline - now) / NSEC_PER_MSEC) : 0;
                int err = 0;
                socklen_t el = sizeof(err);
                if (poll(&p, 1, left) <= 0) {
                        r = -ETIMEDOUT;
                } else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0 || err) {
                        r = err ? -err : negative_errno();
                } else {
                        *ret_fd = fd;
                        freeaddrinfo(res);
                        return 0;
                }
                close(fd);
        }
        freeaddrinfo(res);
        snprintf(why, whylen, "cannot connect to %s port %s: %s", host, port, strerror(-r));
        return r;
}

int verb_control(cli_context *ctx, int argc, char **argv)
{
        static const struct option opts[] = {
                {"node", required_argument, NULL, 'n'},
                {"cpus", required_argument, NULL, 'C'},
                {"help", no_argument, NULL, 'h'},
                {0},
        };
        const char *node = ctx->config.node.control_listen, *cpus = NULL;
        int c;
        /* options may follow the command (set-cpufreq 2000000 --cpus 0-3) */
        while ((c = getopt_long(argc, argv, "n:h", opts, NULL)) >= 0) {
                switch (c) {
                case 'n':
                        node = optarg;
                        break;
                case 'C':
                        cpus = optarg;
                        break;
                case 'h':
                        return usage(stdout);
                default:
                        return usage(stderr);
                }
        }
        if (optind >= argc) {
                log_error(EINVAL, "control: which command? (query, set-cpufreq, set-powercap, reload)");
                return usage(stderr);
        }
        const char *cmd = argv[optind];
        int nargs = argc - optind - 1;
        char **args = argv + optind + 1;
        jl_msg_request req = {.step_id = -1, .gpu = -1};
        if (strcmp(cmd, "query") == 0 && nargs == 0) {
                req.op = JL_OP_QUERY;
        } else if (strcmp(cmd, "reload") == 0 && nargs == 0) {
                req.op = JL_OP_RELOAD;
        } else if (strcmp(cmd, "set-cpufreq") == 0 && nargs == 1) {
                req.op = JL_OP_SET_CPUFREQ;
                if (parse_u64(args[0], &req.khz) < 0 || req.khz > 100000000) {
                        log_error(EINVAL, "control: '%s' is not a frequency in kHz (0 restores the default)",
                                  args[0]);
                        return 2;
                }
                if (cli_cpus_to_mask(cpus ? cpus : "0-1023", &req) < 0) {
                        log_error(EINVAL, "control: '%s' is not a CPU list (e.g. 0-3,8)", cpus);
                        return 2;
                }
        } else if (strcmp(cmd, "set-powercap") == 0 && nargs == 1) {
                req.op = JL_OP_SET_POWERCAP;
                if (parse_double(args[0], &req.watts) < 0 || !(req.watts >= 0 && req.watts <= 1e7)) {
                        log_error(EINVAL, "control: '%s' is not a power in watts (0 removes the limit)", args[0]);
                        return 2;
                }
        } else {
                log_error(EINVAL, "control: '%s' with %d argument(s) is not a command", cmd, nargs);
                return usage(stderr);
        }
        if (cpus && req.op != JL_OP_SET_CPUFREQ) {
                log_error(EINVAL, "control: --cpus belongs to set-cpufreq");
                return 2;
        }
        if (!node) {
                log_error(EINVAL, "control: no --node HOST:PORT and node.control_listen is not configured");
                return 2;
        }
        char host[256], port[8];
        if (split_host_port(node, host, sizeof(host), port, sizeof(port)) < 0) {
                log_error(EINVAL, "control: '%s' is not HOST:PORT", node);
                return 2;
        }

        /* the request, wrapped in a credential */
        uint64_t deadline = mono_ns() + CONTROL_TIMEOUT_MS * NSEC_PER_MSEC;
        char why[512] = "";
        jl_wbuf inner, outer = {0};
        const uint8_t *data;
        size_t len;
        jl_auth_opts ao = {.socket = ctx->config.node.munge_socket};
        int r = jl_msg_request_encode(&req, 1, &inner);
        if (r == 0)
                r = jl_wbuf_finish(&inner, &data, &len);
        if (r == 0) {
                r = jl_auth_wrap_frame(&ao, data, len, 1, &outer, why, sizeof(why));
                if (r < 0)
                        log_error(r, "control: cannot get a MUNGE credential: %s", why[0] ? why : strerror(-r));
        }
        if (r == 0)
                r = jl_wbuf_finish(&outer, &data, &len);
        jl_wbuf_free(&inner);
        if (r < 0) {
                jl_wbuf_free(&outer);
                if (!why[0])
                        log_error(r, "control: cannot encode the request: %s", strerror(-r));
                return 1;
        }

        _cleanup_close_ int fd = -1;
        r = tcp_connect(host, port, deadline, &fd, why, sizeof(why));
        if (r == 0)
                r = jl_client_write_all(fd, data, len, deadline);
        jl_wbuf_free(&outer);
        _cleanup_free_ uint8_t *frame = NULL;
        if (r == 0)
                r = jl_client_read_frame(fd, deadline, &frame, &len, NULL, why, sizeof(why));
        jl_client_reply rep = {.fd = -1};
        if (r == 0)
                r = jl_client_parse_reply(frame, len, &rep, why, sizeof(why));
        if (r < 0) {
                if (r == -ECONNRESET)
                        snprintf(why, sizeof(why), "%s closed the connection without a reply", node);
                log_error(r, "control: %s: %s", node, why[0] ? why : strerror(-r));
                return 1;
        }
        if (rep.err < 0) {
                log_error(rep.err, "control: %s refused %s: %s (%s)", node, cmd,
                          rep.message[0] ? rep.message : strerror(-rep.err), strerror(-rep.err));
                jl_client_reply_free(&rep);
                return 1;
        }
        if (rep.text) {
                fputs(rep.text, stdout);
                if (rep.text[0] && rep.text[strlen(rep.text) - 1] != '\n')
                        putchar('\n');
        } else {
                printf("%s: %s\n", node, rep.message[0] ? rep.message : "ok");
        }
        jl_client_reply_free(&rep);
        return 0;
}
