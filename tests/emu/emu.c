/* emu.c - joule-emu's command line: `create` a fixture tree for a node model, `serve` it in real time,
 * and `ctl`, the client of the control channel (see tests/emu/README.md). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "emu.h"

static int usage(FILE *f)
{
        fputs("Usage:\n"
              "  joule-emu create --node MODEL --root DIR [--wrap-uj N] [--msr-esu N] [--msr-wrap-in J]\n"
              "                   [--power-scale X]\n"
              "                   [--ambient C]\n"
              "                   [--start-temp C] [--tau S]\n"
              "  joule-emu serve --root DIR [--tick-ms 10]\n"
              "  joule-emu ctl --root DIR [--wait S] CMD [ARGS...]\n"
              "  joule-emu models\n\n"
              "ctl commands: ping | truth | load L | phase L SECONDS | set-temp C | ambient C | offline CPU |\n"
              "              backwards DOMAIN [UJ] | freeze | thaw | tick | quit |\n"
              "              work [CPUS] idle|compute|mixed|memory|gpuwait [CYCLES MEM_S [ACTIVITY]] |\n"
              "              sweep [CPUS] compute|mixed|memory|gpuwait [CYCLES MEM_S [ACTIVITY]]\n",
              f);
        return f == stdout ? 0 : 2;
}

static bool parse_num(const char *s, double lo, double hi, double *ret)
{
        char *end;
        errno = 0;
        double v = s ? strtod(s, &end) : NAN;
        if (!s || errno || end == s || *end || !(v >= lo && v <= hi))
                return false;
        *ret = v;
        return true;
}

static int cmd_create(int argc, char **argv)
{
        const char *node = NULL, *root = NULL;
        model_opts o = {.esu = -1, .ambient_c = NAN, .start_c = NAN, .tau_s = NAN, .msr_wrap_in_j = NAN};
        double v;
        for (int i = 0; i < argc; i += 2) {
                const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
                bool okv = true;
                if (strcmp(a, "--node") == 0)
                        node = val;
                else if (strcmp(a, "--root") == 0)
                        root = val;
                else if (strcmp(a, "--wrap-uj") == 0)
                        okv = parse_num(val, 1000, 1e15, &v) && (o.wrap_uj = (uint64_t)v);
                else if (strcmp(a, "--msr-esu") == 0)
                        okv = parse_num(val, 0, 31, &v) && ((o.esu = (int)v), true);
                else if (strcmp(a, "--msr-wrap-in") == 0)
                        okv = parse_num(val, 0, 1e9, &o.msr_wrap_in_j);
                else if (strcmp(a, "--ambient") == 0)
                        okv = parse_num(val, -50, 150, &o.ambient_c);
                else if (strcmp(a, "--start-temp") == 0)
                        okv = parse_num(val, -50, 150, &o.start_c);
                else if (strcmp(a, "--tau") == 0)
                        okv = parse_num(val, 0.01, 3600, &o.tau_s);
                else if (strcmp(a, "--power-scale") == 0)
                        okv = parse_num(val, 0.01, 100, &o.power_scale);
                else {
                        fprintf(stderr, "joule-emu create: unknown option '%s'\n", a);
                        return usage(stderr);
                }
                if (!okv || !val) {
                        fprintf(stderr, "joule-emu create: %s: bad or missing value\n", a);
                        return 2;
                }
        }
        if (!node || !root)
                return usage(stderr);
        model m;
        if (model_get(node, &o, &m) < 0) {
                fprintf(stderr, "joule-emu create: unknown node model '%s'; models:\n", node);
                model_list();
                return 2;
        }
        int r = model_create(&m, &o, root);
        if (r < 0) {
                fprintf(stderr, "joule-emu create: %s: %s\n", root, strerror(-r));
                return 1;
        }
        return 0;
}

static int cmd_serve(int argc, char **argv)
{
        const char *root = NULL;
        double tick = 10;
        for (int i = 0; i + 1 < argc; i += 2) {
                if (strcmp(argv[i], "--root") == 0)
                        root = argv[i + 1];
                else if (strcmp(argv[i], "--tick-ms") == 0) {
                        if (!parse_num(argv[i + 1], 1, 10000, &tick))
                                return usage(stderr);
                } else
                        return usage(stderr);
        }
        if (!root || argc % 2)
                return usage(stderr);
        return serve_main(root, (unsigned)tick);
}

static int cmd_ctl(int argc, char **argv)
{
        const char *root = NULL;
        double wait_s = 5;
        int i = 0;
        for (; i + 1 < argc && strncmp(argv[i], "--", 2) == 0; i += 2) {
                if (strcmp(argv[i], "--root") == 0)
                        root = argv[i + 1];
                else if (strcmp(argv[i], "--wait") == 0) {
                        if (!parse_num(argv[i + 1], 0, 3600, &wait_s))
                                return usage(stderr);
                } else
                        return usage(stderr);
        }
        if (!root || i >= argc)
                return usage(stderr);

        char line[512];
        size_t len = 0;
        for (; i < argc && len < sizeof(line) - 2; i++)
                len += (size_t)snprintf(line + len, sizeof(line) - 2 - len, "%s%s", len ? " " : "", argv[i]);
        strcat(line, "\n");

        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/%s", root, EMU_SOCK);
        int fd = -1;
        /* Wait for the server to come up, at most --wait seconds. */
        for (int tries = 0; tries <= (int)(wait_s * 20); tries++) {
                fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
                if (fd < 0)
                        break;
                if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
                        break;
                close(fd);
                fd = -1;
                nanosleep(&(struct timespec){.tv_nsec = 50000000}, NULL);
        }
        if (fd < 0) {
                fprintf(stderr, "joule-emu ctl: %s: no emulator answers (is `joule-emu serve` running?)\n",
                        sa.sun_path);
                return 1;
        }
        size_t n = strlen(line);
        if (write(fd, line, n) != (ssize_t)n) {
                fprintf(stderr, "joule-emu ctl: write: %s\n", strerror(errno));
                close(fd);
                return 1;
        }
        shutdown(fd, SHUT_WR);
        char buf[16384];
        size_t got = 0;
        for (;;) {
                ssize_t k = read(fd, buf + got, sizeof(buf) - 1 - got);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0 || got + (size_t)k >= sizeof(buf) - 1) {
                        if (k > 0)
                                got += (size_t)k;
                        break;
                }
                got += (size_t)k;
        }
        close(fd);
        buf[got] = '\0';
        fputs(buf, stdout);
        fflush(stdout);
        if (got == 0) {
                fprintf(stderr, "joule-emu ctl: no reply\n");
                return 1;
        }
        return strncmp(buf, "error", 5) == 0 ? 1 : 0;
}

int main(int argc, char **argv)
{
        if (argc < 2)
                return usage(stderr);
        const char *verb = argv[1];
        if (strcmp(verb, "create") == 0)
                return cmd_create(argc - 2, argv + 2);
        if (strcmp(verb, "serve") == 0)
                return cmd_serve(argc - 2, argv + 2);
        if (strcmp(verb, "ctl") == 0)
                return cmd_ctl(argc - 2, argv + 2);
        if (strcmp(verb, "models") == 0) {
                model_list();
                return 0;
        }
        if (strcmp(verb, "--help") == 0 || strcmp(verb, "-h") == 0)
                return usage(stdout);
        return usage(stderr);
}
