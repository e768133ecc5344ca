/* state.c - jouled's persistent state under node.state_dir: the record sequence number (reserved in blocks,
 * each reservation written and fsync'd before any number of it is used, so that numbers never repeat
 * across restarts or power loss) and the open job steps (rewritten atomically at each begin, end and
 * period, so that a step begun before a crash is still closed, marked incomplete, when its end arrives). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "jouled.h"
#include "log.h"
#include "macro.h"
#include "parse.h"

#define SEQ_BLOCK 1024

static int mkdir_p(const char *path, mode_t mode)
{
        char buf[4096];
        if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
                return -ENAMETOOLONG;
        for (char *p = buf + 1; *p; p++)
                if (*p == '/') {
                        *p = '\0';
                        if (mkdir(buf, mode) < 0 && errno != EEXIST)
                                return negative_errno();
                        *p = '/';
                }
        if (mkdir(buf, mode) < 0 && errno != EEXIST)
                return negative_errno();
        return 0;
}

/* Write a file atomically: a temporary file of a unique name (.NAME.XXXXXX: two writers never share one),
 * (fsync), rename over NAME, (fsync the directory). */
static int write_atomic(const char *dir, const char *name, const char *data, size_t len, bool sync)
{
        char path[4096], tmp[4096];
        if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path) ||
            snprintf(tmp, sizeof(tmp), "%s/.%s.XXXXXX", dir, name) >= (int)sizeof(tmp))
                return -ENAMETOOLONG;
        _cleanup_close_ int fd = mkostemp(tmp, O_CLOEXEC);
        if (fd < 0)
                return negative_errno();
        if (fchmod(fd, 0644) < 0) {
                int r = negative_errno();
                unlink(tmp);
                return r;
        }
        size_t off = 0;
        while (off < len) {
                ssize_t n = write(fd, data + off, len - off);
                if (n < 0) {
                        int r = negative_errno();
                        unlink(tmp);
                        return r;
                }
                off += (size_t)n;
        }
        if (sync && fsync(fd) < 0) {
                int r = negative_errno();
                unlink(tmp);
                return r;
        }
        if (rename(tmp, path) < 0) {
                int r = negative_errno();
                unlink(tmp);
                return r;
        }
        if (sync) {
                _cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                if (dfd >= 0)
                        (void)fsync(dfd);
        }
        return 0;
}

static int reserve_seq(jouled *d)
{
        char text[32];
        uint64_t upto = d->next_seq + SEQ_BLOCK;
        int n = snprintf(text, sizeof(text), "%" PRIu64 "\n", upto);
        int r = write_atomic(d->cfg.node.state_dir, "seq", text, (size_t)n, true);
        if (r < 0)
                return r;
        d->seq_reserved = upto;
        return 0;
}

int jd_state_next_seq(jouled *d, uint64_t *ret_seq)
{
        if (d->next_seq >= d->seq_reserved) {
                int r = reserve_seq(d);
                if (r < 0)
                        return r;
        }
        *ret_seq = d->next_seq++;
        return 0;
}

/* A CPU mask as a list "0-3,8"; "" for an empty mask. */
static void format_cpu_list(const uint64_t *mask, char *buf, size_t size)
{
        size_t len = 0;
        buf[0] = '\0';
        for (int c = 0; c < JL_CPU_MAX; c++) {
                if (!jl_cpu_mask_test(mask, c))
                        continue;
                int e = c;
                while (e + 1 < JL_CPU_MAX && jl_cpu_mask_test(mask, e + 1))
                        e++;
                int n = e > c ? snprintf(buf + len, size - len, "%s%d-%d", len ? "," : "", c, e)
                              : snprintf(buf + len, size - len, "%s%d", len ? "," : "", c);
                if (n < 0 || (size_t)n >= size - len)
                        break;
                len += (size_t)n;
                c = e;
        }
}

int jd_state_save_steps(jouled *d)
{
        char *buf = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&buf, &size);
        if (!f)
                return -ENOMEM;
        fputs(
            "# jouled open job steps: job step uid begin_us energy_so_far_uj complete cpus user rights "
            "[watch]\n"
            "# rights: cpus (root or an admin declared it with its CPUs), node (declared without CPUs), own "
            "(the user's own step: accounting only)\n"
            "# watch: pid:starttime,... of the processes whose end ends the step\n",
            f);
        for (size_t i = 0; i < d->nsteps; i++) {
                const jd_step *st = &d->steps[i];
                char cpus[4096];
                format_cpu_list(st->cpumask, cpus, sizeof(cpus));
                uint64_t so_far = st->carried_uj + (d->snap.node_energy_uj - st->begin_energy_uj);
                fprintf(f, "%s %" PRId64 " %u %" PRIu64 " %" PRIu64 " %d %s %s %s", st->job_id, st->step_id,
                        (unsigned)st->uid, st->begin_us, so_far, st->complete ? 1 : 0,
                        *cpus && st->has_cpus ? cpus : "-", st->user,
                        !st->declared  ? "own"
                        : st->has_cpus ? "cpus"
                                       : "node");
                for (size_t w = 0; w < st->nwatch; w++)
                        fprintf(f, "%s%d:%" PRIu64, w ? "," : " ", (int)st->watch[w].pid,
                                st->watch[w].start_ticks);
                fputc('\n', f);
        }
        if (fclose(f) != 0) {
                free(buf);
                return -ENOMEM;
        }
        int r = write_atomic(d->cfg.node.state_dir, "steps", buf, size, false);
        free(buf);
        if (r < 0)
                log_warning(r, "cannot save the open job steps in %s: %s", d->cfg.node.state_dir,
                            strerror(-r));
        return r;
}

static int parse_step_line(char *line, jd_step *st)
{
        char *save = NULL, *tok[11];
        for (int i = 0; i < 11; i++) {
                tok[i] = strtok_r(i ? NULL : line, " \t\n", &save);
                if (!tok[i] && i < 8)
                        return -EINVAL;
                if (!tok[i])
                        break;
        }
        /* the rights column is new: a line of an older jouled has none (its steps are accounting only) */
        const char *rights = tok[8] ? tok[8] : "own";
        if (tok[8] && tok[9] && tok[10])
                return -EINVAL;
        if (strcmp(rights, "own") != 0 && strcmp(rights, "node") != 0 && strcmp(rights, "cpus") != 0)
                return -EINVAL;
        uint64_t uid, begin, so_far, complete, job;
        int64_t step;
        *st = (jd_step){0};
        if (parse_u64(tok[0], &job) < 0 || strlen(tok[0]) >= sizeof(st->job_id) ||
            parse_i64(tok[1], &step) < 0 || parse_u64(tok[2], &uid) < 0 || uid > UINT32_MAX - 1 ||
            parse_u64(tok[3], &begin) < 0 || parse_u64(tok[4], &so_far) < 0 ||
            parse_u64(tok[5], &complete) < 0 || complete > 1 || strlen(tok[7]) >= sizeof(st->user))
                return -EINVAL;
        st->declared = strcmp(rights, "own") != 0;
        st->has_cpus = strcmp(rights, "cpus") == 0;
        if (st->has_cpus &&
            (strcmp(tok[6], "-") == 0 || parse_cpu_list(tok[6], st->cpumask, JL_CPU_MAX) < 0))
                return -EINVAL;
        if (!st->has_cpus)
                memset(st->cpumask, 0xff, sizeof(st->cpumask));
        jd_copy(st->job_id, sizeof(st->job_id), tok[0]);
        st->step_id = step;
        st->uid = (uid_t)uid;
        st->begin_us = begin;
        st->carried_uj = so_far;
        st->begin_energy_uj = 0; /* this instance's energy starts at 0 at its first sample */
        st->complete = false;    /* the time between the crash and this start was not measured */
        jd_copy(st->user, sizeof(st->user), tok[7]);
        /* the watched processes (a newer column): pid:starttime,... */
        if (tok[8] && tok[9]) {
                char *wsave = NULL;
                for (char *item = strtok_r(tok[9], ",", &wsave); item; item = strtok_r(NULL, ",", &wsave)) {
                        char *colon = strchr(item, ':');
                        uint64_t pid, start;
                        if (!colon || st->nwatch >= JD_WATCH_MAX)
                                return -EINVAL;
                        *colon = '\0';
                        if (parse_u64(item, &pid) < 0 || pid == 0 || pid > INT32_MAX ||
                            parse_u64(colon + 1, &start) < 0)
                                return -EINVAL;
                        st->watch[st->nwatch].pid = (pid_t)pid;
                        st->watch[st->nwatch].start_ticks = start;
                        st->watch[st->nwatch].fd = -1;
                        st->nwatch++;
                }
        }
        return 0;
}

int jd_state_save_freqs(jouled *d)
{
        char *buf = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&buf, &size);
        if (!f)
                return -ENOMEM;
        fputs("# jouled: cpufreq settings to restore when each step ends: job step cpu governor min_khz "
              "max_khz "
              "setspeed_khz\n",
              f);
        for (size_t i = 0; i < d->nsaved; i++) {
                const jd_saved_freq *s = &d->saved[i];
                fprintf(f, "%s %" PRId64 " %d %s %" PRIu64 " %" PRIu64 " %" PRIu64 "\n", s->job_id,
                        s->step_id, s->cpu, s->governor[0] ? s->governor : "-", s->min_khz, s->max_khz,
                        s->setspeed_khz);
        }
        if (fclose(f) != 0) {
                free(buf);
                return -ENOMEM;
        }
        int r = write_atomic(d->cfg.node.state_dir, "cpufreq", buf, size, true);
        free(buf);
        if (r < 0)
                log_warning(r, "cannot save the CPUs' settings to restore in %s: %s", d->cfg.node.state_dir,
                            strerror(-r));
        return r;
}

static void load_freqs(jouled *d)
{
        char path[4200];
        snprintf(path, sizeof(path), "%s/cpufreq", d->cfg.node.state_dir);
        _cleanup_fclose_ FILE *f = fopen(path, "re");
        if (!f)
                return;
        char line[512];
        unsigned lineno = 0;
        while (fgets(line, sizeof(line), f)) {
                lineno++;
                if (line[0] == '#' || line[0] == '\n')
                        continue;
                char *save = NULL, *tok[8];
                for (int i = 0; i < 8; i++)
                        tok[i] = strtok_r(i ? NULL : line, " \t\n", &save);
                jd_saved_freq s = {0};
                uint64_t job, cpu;
                int64_t step;
                if (!tok[6] || tok[7] || parse_u64(tok[0], &job) < 0 || strlen(tok[0]) >= sizeof(s.job_id) ||
                    parse_i64(tok[1], &step) < 0 || parse_u64(tok[2], &cpu) < 0 || cpu >= JL_CPU_MAX ||
                    strlen(tok[3]) >= sizeof(s.governor) || parse_u64(tok[4], &s.min_khz) < 0 ||
                    parse_u64(tok[5], &s.max_khz) < 0 || parse_u64(tok[6], &s.setspeed_khz) < 0) {
                        log_warning(0, "%s:%u: not a saved cpufreq setting, ignored", path, lineno);
                        continue;
                }
                jd_copy(s.job_id, sizeof(s.job_id), tok[0]);
                s.step_id = step;
                s.cpu = (int)cpu;
                if (strcmp(tok[3], "-") != 0)
                        jd_copy(s.governor, sizeof(s.governor), tok[3]);
                if (d->nsaved == d->saved_cap) {
                        size_t cap = d->saved_cap ? d->saved_cap * 2 : 64;
                        jd_saved_freq *n = realloc(d->saved, cap * sizeof(*n));
                        if (!n)
                                return;
                        d->saved = n;
                        d->saved_cap = cap;
                }
                d->saved[d->nsaved++] = s;
        }
        if (d->nsaved)
                log_notice(
                    "%zu CPUs' settings from before job steps are to be restored when those steps end",
                    d->nsaved);
}

int jd_lock_take(const char *path, const char *what, int *ret_fd, char *err, size_t errlen)
{
        char dir[4096];
        if (snprintf(dir, sizeof(dir), "%s", path) >= (int)sizeof(dir))
                return -ENAMETOOLONG;
        char *slash = strrchr(dir, '/');
        if (slash && slash != dir) {
                *slash = '\0';
                int r = mkdir_p(dir, 0755);
                if (r < 0) {
                        snprintf(err, errlen, "%s: cannot create the directory of %s: %s", what, path,
                                 strerror(-r));
                        return r;
                }
        }
        _cleanup_close_ int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
        if (fd < 0) {
                int r = negative_errno();
                snprintf(err, errlen, "%s: %s: %s", what, path, strerror(-r));
                return r;
        }
        /* a POSIX record lock: the kernel releases it when jouled dies, and names its holder's pid */
        struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
        if (fcntl(fd, F_SETLK, &fl) < 0) {
                int r = negative_errno();
                if (r != -EAGAIN && r != -EACCES) {
                        snprintf(err, errlen, "%s: locking %s: %s", what, path, strerror(-r));
                        return r;
                }
                struct flock who = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
                if (fcntl(fd, F_GETLK, &who) == 0 && who.l_type != F_UNLCK && who.l_pid > 0)
                        snprintf(err, errlen,
                                 "%s is in use by another jouled (pid %d, lock %s); refusing to start", what,
                                 (int)who.l_pid, path);
                else
                        snprintf(err, errlen, "%s is in use by another jouled (lock %s); refusing to start",
                                 what, path);
                return -EBUSY;
        }
        char text[32];
        int n = snprintf(text, sizeof(text), "%d\n", (int)getpid());
        if (ftruncate(fd, 0) < 0 || pwrite(fd, text, (size_t)n, 0) != n) {
                int r = negative_errno();
                snprintf(err, errlen, "%s: writing %s: %s", what, path, strerror(-r));
                return r;
        }
        *ret_fd = TAKE_FD(fd);
        return 0;
}

int jd_state_load(jouled *d, char *err, size_t errlen)
{
        const char *dir = d->cfg.node.state_dir;
        int r = mkdir_p(dir, 0755);
        if (r < 0) {
                snprintf(err, errlen, "state directory %s: %s", dir, strerror(-r));
                return r;
        }
        char path[4096], text[64];
        /* one jouled per state directory: two would hand out the same sequence numbers */
        if (snprintf(path, sizeof(path), "%s/lock", dir) >= (int)sizeof(path))
                return -ENAMETOOLONG;
        char what[4200];
        snprintf(what, sizeof(what), "state directory %s", dir);
        r = jd_lock_take(path, what, &d->state_lock_fd, err, errlen);
        if (r < 0)
                return r;
        snprintf(path, sizeof(path), "%s/seq", dir);
        _cleanup_fclose_ FILE *f = fopen(path, "re");
        d->next_seq = 1;
        if (f) {
                uint64_t v;
                if (!fgets(text, sizeof(text), f) || parse_u64(text, &v) < 0 || v == 0) {
                        snprintf(err, errlen,
                                 "%s: not a sequence number; remove it only if this node's records "
                                 "in the database may be overwritten",
                                 path);
                        return -EINVAL;
                }
                d->next_seq = v;
        } else if (errno != ENOENT) {
                r = negative_errno();
                snprintf(err, errlen, "%s: %s", path, strerror(-r));
                return r;
        }
        r = reserve_seq(d);
        if (r < 0) {
                snprintf(err, errlen, "%s/seq: cannot write: %s", dir, strerror(-r));
                return r;
        }

        load_freqs(d);
        snprintf(path, sizeof(path), "%s/steps", dir);
        _cleanup_fclose_ FILE *sf = fopen(path, "re");
        if (!sf)
                return 0;
        char line[8192];
        unsigned lineno = 0;
        while (fgets(line, sizeof(line), sf)) {
                lineno++;
                if (line[0] == '#' || line[0] == '\n')
                        continue;
                jd_step st;
                if (parse_step_line(line, &st) < 0) {
                        log_warning(0, "%s:%u: not an open job step, ignored", path, lineno);
                        continue;
                }
                if (d->nsteps >= JD_STEPS_MAX) {
                        log_warning(0, "%s:%u: more than %d open steps, the rest is ignored", path, lineno,
                                    JD_STEPS_MAX);
                        break;
                }
                d->steps[d->nsteps++] = st;
                log_notice("job %s step %" PRId64
                           " was open when jouled stopped: it will be closed as incomplete",
                           st.job_id, st.step_id);
        }
        return 0;
}
