/* daemon-claim.c - who holds a claimed job (the claimer: host, boot id, process id and the process's start
 * time) and whether that holder is provably gone, so that a runner starting beside another one never fails
 * the other's RUNNING job as stale; and the capture of a job's output (a bounded tail kept for the job,
 * everything still passed on to the runner's stdout, after the run). See docs/cluster.md ("Stale jobs"). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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

/* The commands write to an unlinked temporary file (no thread, no pipe: the measured process tree and the
 * runner's sampling see what they saw when the output went to the runner's own stdout); after the run the
 * file is copied to the runner's stdout (the journal) and its last JL_RUNNER_OUTPUT_MAX bytes are kept. */
struct runner_output {
        int fd;
};

int runner_output_start(runner_output **ret, int *ret_fd)
{
        const char *tmp = getenv("TMPDIR");
        if (!tmp || !*tmp)
                tmp = "/tmp";
        int fd = open(tmp, O_TMPFILE | O_RDWR | O_APPEND | O_CLOEXEC, 0600);
        if (fd < 0) { /* a file system without O_TMPFILE */
                char path[PATH_MAX];
                snprintf(path, sizeof(path), "%s/joule-output-XXXXXX", tmp);
                fd = mkostemp(path, O_APPEND | O_CLOEXEC);
                if (fd < 0)
                        return -errno;
                unlink(path);
        }
        runner_output *o = calloc(1, sizeof(*o));
        if (!o) {
                close(fd);
                return -ENOMEM;
        }
        o->fd = fd;
        *ret = o;
        *ret_fd = fd;
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
        struct stat st;
        off_t size = fstat(o->fd, &st) == 0 ? st.st_size : 0;
        /* everything to the runner's stdout, as when the commands wrote there themselves */
        char buf[65536];
        for (off_t off = 0; off < size;) { /* bounded by size */
                ssize_t n = pread(o->fd, buf, sizeof(buf), off);
                if (n <= 0)
                        break;
                off += n;
                for (ssize_t w = 0; w < n;) {
                        ssize_t k = write(1, buf + w, (size_t)(n - w));
                        if (k <= 0)
                                break;
                        w += k;
                }
        }
        size_t len = (size_t)MIN(size, (off_t)JL_RUNNER_OUTPUT_MAX);
        char *text = malloc(len + 1);
        if (text) {
                ssize_t n = len ? pread(o->fd, text, len, size - (off_t)len) : 0;
                len = n > 0 ? (size_t)n : 0;
                text[len] = '\0';
                /* a cut UTF-8 sequence at the start of the tail is dropped, not turned into '?' */
                size_t skip = 0;
                while (skip < 3 && skip < len && ((unsigned char)text[skip] & 0xc0) == 0x80)
                        skip++;
                memmove(text, text + skip, len - skip + 1);
                utf8_sanitize(text, len - skip);
        }
        close(o->fd);
        free(o);
        return text;
}
