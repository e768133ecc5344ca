/* daemon-claim.c - who holds a claimed job (the claimer: host, boot id, process id and the process's start
 * time) and whether that holder is provably gone, so that a runner starting beside another one never fails
 * the other's RUNNING job as stale; and the capture of a job's output (a bounded tail kept for the job,
 * everything still passed on to the runner's stdout). See docs/cluster.md ("Stale jobs"). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "daemon-internal.h"
#include "parse.h"

/* The start time of process `pid` (clock ticks after boot: field 22 of /proc/PID/stat). */
static int pid_start_time(int64_t pid, int64_t *ret)
{
        char path[64], buf[1024];
        snprintf(path, sizeof(path), "/proc/%" PRId64 "/stat", pid);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        ssize_t n = read(fd, buf, sizeof(buf) - 1);
        int e = errno;
        close(fd);
        if (n < 0)
                return -e;
        buf[n] = '\0';
        char *p = strrchr(buf, ')'); /* the command name may hold spaces and parentheses */
        if (!p)
                return -EIO;
        p++;
        /* fields 3 … 22 follow, separated by one space each */
        for (int field = 3; field < 22; field++) {
                p = strchr(p + 1, ' ');
                if (!p)
                        return -EIO;
        }
        char num[32];
        size_t len = strcspn(p + 1, " \n");
        if (len == 0 || len >= sizeof(num))
                return -EIO;
        memcpy(num, p + 1, len);
        num[len] = '\0';
        return parse_i64(num, ret);
}

int runner_claimer_self(jl_claimer *ret)
{
        jl_claimer c = {.pid = getpid(), .pid_start = -1};
        if (gethostname(c.host, sizeof(c.host) - 1) < 0)
                snprintf(c.host, sizeof(c.host), "unknown");
        int fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
                ssize_t n = read(fd, c.boot_id, sizeof(c.boot_id) - 1);
                close(fd);
                if (n > 0) {
                        c.boot_id[n] = '\0';
                        c.boot_id[strcspn(c.boot_id, "\n")] = '\0';
                } else
                        c.boot_id[0] = '\0';
        }
        int64_t st;
        if (pid_start_time(c.pid, &st) >= 0)
                c.pid_start = st;
        *ret = c;
        return 0;
}

int runner_claimer_gone(const jl_claimer *self, const jl_claimer *holder, char *why, size_t whylen)
{
        if (!holder->host[0]) {
                snprintf(why, whylen, "claimed by a runner that did not record itself (an older joule)");
                return 1;
        }
        if (strcmp(holder->host, self->host) != 0) {
                snprintf(why, whylen,
                         "claimed by pid %" PRId64 " on host %s: another host, not provably gone",
                         holder->pid, holder->host);
                return 0;
        }
        if (!self->boot_id[0] || !holder->boot_id[0]) {
                snprintf(why, whylen, "claimed by pid %" PRId64 " on this host, boot unknown", holder->pid);
                return 0;
        }
        if (strcmp(holder->boot_id, self->boot_id) != 0) {
                snprintf(why, whylen, "claimed by pid %" PRId64 " before this host rebooted", holder->pid);
                return 1;
        }
        if (holder->pid == self->pid && holder->pid_start == self->pid_start) {
                snprintf(why, whylen, "claimed by this process");
                return 0;
        }
        if (holder->pid <= 0 || kill((pid_t)holder->pid, 0) < 0) {
                if (holder->pid > 0 && errno == EPERM) {
                        /* alive, another user's: only its start time can tell */
                } else {
                        snprintf(why, whylen, "its runner (pid %" PRId64 ") is gone", holder->pid);
                        return 1;
                }
        }
        int64_t st;
        int k = pid_start_time(holder->pid, &st);
        if (k == -ENOENT) {
                snprintf(why, whylen, "its runner (pid %" PRId64 ") is gone", holder->pid);
                return 1;
        }
        if (k >= 0 && holder->pid_start >= 0 && st != holder->pid_start) {
                snprintf(why, whylen,
                         "its runner (pid %" PRId64 ") is gone (the pid is another process's now)",
                         holder->pid);
                return 1;
        }
        if (k >= 0 && holder->pid_start < 0) {
                /* no start time recorded: the process's name must be joule's */
                char path[64], comm[64] = "";
                snprintf(path, sizeof(path), "/proc/%" PRId64 "/comm", holder->pid);
                int fd = open(path, O_RDONLY | O_CLOEXEC);
                if (fd >= 0) {
                        ssize_t n = read(fd, comm, sizeof(comm) - 1);
                        close(fd);
                        comm[n > 0 ? n : 0] = '\0';
                        comm[strcspn(comm, "\n")] = '\0';
                        if (strcmp(comm, "joule-runner") != 0 && strcmp(comm, "joule") != 0) {
                                snprintf(why, whylen,
                                         "its runner (pid %" PRId64 ") is gone (the pid is %s's now)",
                                         holder->pid, comm);
                                return 1;
                        }
                }
        }
        snprintf(why, whylen, "claimed by pid %" PRId64 " on this host, which is running", holder->pid);
        return 0;
}

/* ---- a job's output ---- */

struct runner_output {
        int rfd, wfd, stop_fd;
        pthread_t thread;
        bool started;
        char *ring; /* the last JL_RUNNER_OUTPUT_MAX bytes */
        size_t start, len;
};

static void ring_add(runner_output *o, const char *buf, size_t n)
{
        const size_t cap = JL_RUNNER_OUTPUT_MAX;
        while (n > 0) { /* bounded by n: at least one byte per round */
                size_t pos = (o->start + o->len) % cap;
                size_t chunk = MIN(n, cap - pos);
                memcpy(o->ring + pos, buf, chunk);
                buf += chunk;
                n -= chunk;
                size_t grow = MIN(chunk, cap - o->len);
                o->len += grow;
                o->start = (o->start + (chunk - grow)) % cap; /* what was overwritten is dropped */
        }
}

static void *output_thread(void *arg)
{
        runner_output *o = arg;
        bool stopping = false;
        for (;;) { /* until the pipe's end, or the stop and nothing more to read */
                struct pollfd p[2] = {{.fd = o->rfd, .events = POLLIN},
                                      {.fd = o->stop_fd, .events = POLLIN}};
                int k = poll(p, stopping ? 1 : 2, stopping ? 0 : -1);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        break;
                if (!stopping && (p[1].revents & POLLIN))
                        stopping = true;
                if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
                        char buf[8192];
                        ssize_t n = read(o->rfd, buf, sizeof(buf));
                        if (n < 0 && errno == EINTR)
                                continue;
                        if (n <= 0)
                                break;
                        size_t off = 0;
                        while (off < (size_t)n) { /* pass it on to the runner's own stdout (the journal) */
                                ssize_t w = write(1, buf + off, (size_t)n - off);
                                if (w <= 0)
                                        break;
                                off += (size_t)w;
                        }
                        ring_add(o, buf, (size_t)n);
                        continue;
                }
                if (stopping)
                        break;
        }
        return NULL;
}

int runner_output_start(runner_output **ret, int *ret_fd)
{
        runner_output *o = calloc(1, sizeof(*o));
        if (!o)
                return -ENOMEM;
        o->rfd = o->wfd = o->stop_fd = -1;
        int p[2];
        if (!(o->ring = malloc(JL_RUNNER_OUTPUT_MAX)) || pipe2(p, O_CLOEXEC) < 0) {
                free(o->ring);
                free(o);
                return -ENOMEM;
        }
        o->rfd = p[0];
        o->wfd = p[1];
        o->stop_fd = eventfd(0, EFD_CLOEXEC);
        /* the thread takes no signal: the runner reads them through its signalfd, jl_run_scenario through
         * its own */
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        int k = o->stop_fd < 0 ? EMFILE : pthread_create(&o->thread, NULL, output_thread, o);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (k != 0) {
                close(o->rfd);
                close(o->wfd);
                if (o->stop_fd >= 0)
                        close(o->stop_fd);
                free(o->ring);
                free(o);
                return -k;
        }
        o->started = true;
        *ret = o;
        *ret_fd = o->wfd;
        return 0;
}

/* Make text valid UTF-8 without NUL bytes (PostgreSQL's TEXT takes nothing else): every byte that is not
 * part of a valid sequence becomes '?'. In place. */
static void utf8_sanitize(char *s, size_t n)
{
        size_t i = 0;
        while (i < n) { /* bounded by n */
                unsigned char c = (unsigned char)s[i];
                size_t len = c < 0x80             ? 1
                             : (c & 0xe0) == 0xc0 ? 2
                             : (c & 0xf0) == 0xe0 ? 3
                             : (c & 0xf8) == 0xf0 ? 4
                                                  : 0;
                bool ok = len > 0 && i + len <= n && c != 0;
                if (ok && len == 2 && c < 0xc2)
                        ok = false;
                for (size_t j = 1; ok && j < len; j++)
                        ok = ((unsigned char)s[i + j] & 0xc0) == 0x80;
                if (ok && len == 3) {
                        unsigned cp = ((c & 0x0fu) << 12) | (((unsigned char)s[i + 1] & 0x3fu) << 6);
                        ok = cp >= 0x800 && (cp < 0xd800 || cp > 0xdfff);
                }
                if (ok && len == 4) {
                        unsigned cp = ((c & 0x07u) << 18) | (((unsigned char)s[i + 1] & 0x3fu) << 12);
                        ok = cp >= 0x10000 && cp <= 0x10ffff;
                }
                if (!ok) {
                        s[i++] = '?';
                        continue;
                }
                i += len;
        }
}

char *runner_output_finish(runner_output *o)
{
        if (!o)
                return NULL;
        close(o->wfd); /* the thread ends once every child has closed its copy, or at the stop below */
        uint64_t one = 1;
        (void)!write(o->stop_fd, &one, sizeof(one));
        if (o->started)
                pthread_join(o->thread, NULL);
        close(o->rfd);
        close(o->stop_fd);
        char *text = malloc(o->len + 1);
        if (text) {
                size_t first = MIN(o->len, JL_RUNNER_OUTPUT_MAX - o->start);
                memcpy(text, o->ring + o->start, first);
                memcpy(text + first, o->ring, o->len - first);
                text[o->len] = '\0';
                /* a cut UTF-8 sequence at the start of the tail is dropped, not turned into '?' */
                size_t skip = 0;
                while (skip < 3 && skip < o->len && ((unsigned char)text[skip] & 0xc0) == 0x80)
                        skip++;
                memmove(text, text + skip, o->len - skip + 1);
                utf8_sanitize(text, o->len - skip);
        }
        free(o->ring);
        free(o);
        return text;
}
