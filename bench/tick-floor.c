/* tick-floor.c - the least a periodic sampler can cost on this machine: a timerfd tick every INTERVAL_MS
 * for SECONDS, waited for with poll() as `joule measure` waits (a timerfd and a signalfd), and at each tick
 * one pread() of every RAPL energy_uj file (descriptors opened once) with a minimal parse. Nothing else:
 * no statistics, no other provider. bench/run.sh runs it under proc-cost beside `joule measure` to show
 * how much of joule's per-tick CPU time is the wake-up itself.
 *   tick-floor INTERVAL_MS SECONDS */
#include <fcntl.h>
#include <glob.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#define MAX_ZONES 64

int main(int argc, char **argv)
{
        long interval_ms = argc > 1 ? strtol(argv[1], NULL, 10) : 0;
        long seconds = argc > 2 ? strtol(argv[2], NULL, 10) : 0;
        if (argc != 3 || interval_ms < 1 || interval_ms > 60000 || seconds < 1 || seconds > 3600) {
                fprintf(stderr, "usage: tick-floor INTERVAL_MS SECONDS\n");
                return 2;
        }
        glob_t g;
        int fds[MAX_ZONES];
        size_t nfd = 0;
        if (glob("/sys/class/powercap/intel-rapl:*/energy_uj", 0, NULL, &g) == 0) {
                for (size_t i = 0; i < g.gl_pathc && nfd < MAX_ZONES; i++) {
                        int fd = open(g.gl_pathv[i], O_RDONLY | O_CLOEXEC);
                        if (fd >= 0)
                                fds[nfd++] = fd;
                }
                globfree(&g);
        }

        sigset_t mask;
        sigemptyset(&mask);
        sigaddset(&mask, SIGCHLD);
        sigprocmask(SIG_BLOCK, &mask, NULL);
        int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
        int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
        if (sfd < 0 || tfd < 0) {
                perror("tick-floor");
                return 1;
        }
        struct timespec iv = {.tv_sec = interval_ms / 1000, .tv_nsec = (interval_ms % 1000) * 1000000};
        struct itimerspec its = {.it_interval = iv, .it_value = iv};
        timerfd_settime(tfd, 0, &its, NULL);

        uint64_t ticks = 0, sum = 0, want = (uint64_t)seconds * 1000 / (uint64_t)interval_ms;
        while (ticks < want) {
                struct pollfd pfd[2] = {{.fd = tfd, .events = POLLIN}, {.fd = sfd, .events = POLLIN}};
                if (poll(pfd, 2, -1) < 0)
                        continue;
                uint64_t exp;
                if (!(pfd[0].revents & POLLIN) || read(tfd, &exp, sizeof(exp)) <= 0)
                        continue;
                ticks += exp;
                for (size_t i = 0; i < nfd; i++) {
                        char buf[32];
                        ssize_t k = pread(fds[i], buf, sizeof(buf), 0);
                        uint64_t v = 0;
                        for (ssize_t j = 0; j < k && buf[j] >= '0' && buf[j] <= '9'; j++)
                                v = v * 10 + (uint64_t)(buf[j] - '0');
                        sum += v;
                }
        }
        printf("ticks=%llu files=%zu checksum=%llu\n", (unsigned long long)ticks, nfd,
               (unsigned long long)(sum & 0xffff));
        return 0;
}
