/* daemon-spool.c - the runner's spool: every result (a run with its job's end, or a job's end alone) is
 * written to a file before it is stored and removed once it is, so that a runner killed (-9, power loss)
 * while the database is away loses nothing: the next start, and every pass, stores what is left. A file is
 * written atomically (a unique temporary name, fsync, rename, fsync of the directory) and locked (flock)
 * while its result is being stored, so that two processes never store one result at once; storing one
 * twice is harmless anyway (the transaction finds a run with the same start and does nothing). Files are
 * named m<machine id>-<hash of the database URL>-<start µs>-<pid>.result: only the runner of that machine
 * and database takes them. The format is joule's own, versioned, read back with bounds on every count and
 * length. See docs/cluster.md. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon-internal.h"

#define SPOOL_MAGIC "JLSPOOL1"
#define SPOOL_END "JLSPEND1"
#define SPOOL_SUFFIX ".result"
#define SPOOL_STR_MAX (64u * 1024 * 1024)
#define SPOOL_COUNT_MAX 100000u

static uint64_t fnv1a(const char *s)
{
        uint64_t h = 14695981039346656037ull;
        for (; *s; s++) {
                h ^= (unsigned char)*s;
                h *= 1099511628211ull;
        }
        return h;
}

static int mkdir_p(const char *path)
{
        char buf[PATH_MAX];
        int n = snprintf(buf, sizeof(buf), "%s", path);
        if (n < 0 || (size_t)n >= sizeof(buf))
                return -ENAMETOOLONG;
        for (char *p = buf + 1; *p; p++)
                if (*p == '/') {
                        *p = '\0';
                        if (mkdir(buf, 0755) < 0 && errno != EEXIST)
                                return -errno;
                        *p = '/';
                }
        if (mkdir(buf, 0700) < 0 && errno != EEXIST)
                return -errno;
        return 0;
}

int runner_spool_init(jl_runner *r)
{
        const char *dir = r->c->runner.spool_dir, *sd = getenv("STATE_DIRECTORY"),
                   *xdg = getenv("XDG_STATE_HOME"), *home = getenv("HOME");
        int n;
        if (dir && *dir)
                n = snprintf(r->spool_dir, sizeof(r->spool_dir), "%s", dir);
        else if (sd && *sd) {
                const char *colon = strchr(sd, ':'); /* systemd may list several */
                n = snprintf(r->spool_dir, sizeof(r->spool_dir), "%.*s/spool",
                             colon ? (int)(colon - sd) : (int)strlen(sd), sd);
        } else if (geteuid() == 0)
                n = snprintf(r->spool_dir, sizeof(r->spool_dir), "/var/lib/joule/spool");
        else if (xdg && *xdg)
                n = snprintf(r->spool_dir, sizeof(r->spool_dir), "%s/joule/spool", xdg);
        else
                n = snprintf(r->spool_dir, sizeof(r->spool_dir), "%s/.local/state/joule/spool",
                             home && *home ? home : "/tmp");
        if (n < 0 || (size_t)n >= sizeof(r->spool_dir) - 96)
                return -ENAMETOOLONG;
        snprintf(r->spool_prefix, sizeof(r->spool_prefix), "m%" PRId64 "-%016" PRIx64 "-", r->c->machine.id,
                 fnv1a(r->c->database.url ? r->c->database.url : ""));
        return 0;
}

/* ---- writing ---- */

static void put(FILE *f, const void *p, size_t n)
{
        if (n)
                fwrite(p, 1, n, f);
}
static void put_u64(FILE *f, uint64_t v)
{
        put(f, &v, sizeof(v));
}
static void put_i64(FILE *f, int64_t v)
{
        put(f, &v, sizeof(v));
}
static void put_f64(FILE *f, double v)
{
        put(f, &v, sizeof(v));
}
static void put_str(FILE *f, const char *s) /* NULL and "" differ */
{
        if (!s) {
                put_u64(f, UINT64_MAX);
                return;
        }
        size_t n = strlen(s);
        put_u64(f, n);
        put(f, s, n);
}

static void write_result(FILE *f, const jl_run_result *res)
{
        put_u64(f, res->start_ns);
        put_u64(f, res->end_ns);
        put_i64(f, res->realtime_offset_ns);
        put_u64(f, res->points_truncated);
        put_u64(f, res->checks.n);
        for (size_t i = 0; i < res->checks.n; i++) {
                put_str(f, res->checks.items[i].name);
                put_str(f, res->checks.items[i].observed);
                put_str(f, res->checks.items[i].expected);
                put_u64(f, (uint64_t)res->checks.items[i].status);
        }
        put_u64(f, res->n_phases);
        for (size_t i = 0; i < res->n_phases; i++) {
                const jl_run_phase *p = &res->phases[i];
                put_str(f, p->name);
                put_u64(f, p->start_ns);
                put_u64(f, p->end_ns);
                put_f64(f, p->duration_s);
                put_f64(f, p->energy_j);
                put_f64(f, p->power_avg_w);
                put_f64(f, p->power_max_w);
                put_f64(f, p->temp_max_c);
                put_f64(f, p->cpu_utilization);
                put_u64(f, p->n_domains);
                for (size_t d = 0; d < p->n_domains; d++) {
                        put_str(f, p->domains[d].name);
                        put_f64(f, p->domains[d].energy_j);
                }
        }
        put_u64(f, res->n_metrics);
        for (size_t i = 0; i < res->n_metrics; i++) {
                put_str(f, res->metrics[i].name);
                put_u64(f, (uint64_t)res->metrics[i].kind);
        }
        put_u64(f, res->n_points);
        for (size_t i = 0; i < res->n_points; i++) {
                put_u64(f, res->points[i].t_ns);
                put_u64(f, ((uint64_t)res->points[i].metric << 32) | res->points[i].phase);
                put_f64(f, res->points[i].value);
        }
        put_u64(f, res->n_notes);
        for (size_t i = 0; i < res->n_notes; i++)
                put_str(f, res->notes[i]);
}

static int write_file(int fd, const jl_runner *r, const store_args *a)
{
        int dfd = dup(fd);
        if (dfd < 0)
                return -errno;
        FILE *f = fdopen(dfd, "w");
        if (!f) {
                close(dfd);
                return -ENOMEM;
        }
        put(f, SPOOL_MAGIC, 8);
        put_i64(f, r->c->machine.id);
        put_i64(f, a->job_id);
        put_str(f, a->kind);
        put_u64(f, a->finished);
        put_str(f, a->message);
        put_str(f, a->run_error);
        put_u64(f, a->control);
        put_str(f, a->deviation);
        put_str(f, a->output);
        put_f64(f, a->sampling_rate_ms);
        put_str(f, a->config_json);
        put_u64(f, a->res != NULL);
        if (a->res)
                write_result(f, a->res);
        put(f, SPOOL_END, 8);
        int e = ferror(f) ? -EIO : 0;
        if (fclose(f) != 0 && e == 0)
                e = -errno;
        if (e == 0 && fsync(fd) < 0)
                e = -errno;
        return e;
}

void runner_spool_write(jl_runner *r, const store_args *a, runner_spool *sp)
{
        sp->fd = -1;
        char tmp[PATH_MAX + 320];
        int k = mkdir_p(r->spool_dir);
        if (k >= 0) {
                snprintf(tmp, sizeof(tmp), "%s/.%sXXXXXX", r->spool_dir, r->spool_prefix);
                int fd = mkostemp(tmp, O_CLOEXEC);
                if (fd < 0)
                        k = -errno;
                else {
                        int64_t start = a->res
                                            ? (a->res->realtime_offset_ns + (int64_t)a->res->start_ns) / 1000
                                            : runner_now_us();
                        snprintf(sp->path, sizeof(sp->path), "%s/%s%" PRId64 "-%d" SPOOL_SUFFIX,
                                 r->spool_dir, r->spool_prefix, start, (int)getpid());
                        if (flock(fd, LOCK_EX) < 0 || (k = write_file(fd, r, a)) < 0 ||
                            rename(tmp, sp->path) < 0) {
                                if (k >= 0)
                                        k = -errno;
                                unlink(tmp);
                                close(fd);
                        } else {
                                int dfd = open(r->spool_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                                if (dfd >= 0) {
                                        fsync(dfd);
                                        close(dfd);
                                }
                                sp->fd = fd;
                        }
                }
        }
        if (k < 0 && !r->spool_failing) {
                runner_say(r, LOG_LEVEL_WARNING, k,
                           "cannot spool the result in %s (%s): it is kept in memory only until stored",
                           r->spool_dir, strerror(-k));
                r->spool_failing = true;
        } else if (k >= 0)
                r->spool_failing = false;
}

void runner_spool_done(runner_spool *sp)
{
        if (sp->fd < 0)
                return;
        unlink(sp->path);
        close(sp->fd);
        sp->fd = -1;
}

/* ---- reading ---- */

typedef struct {
        const unsigned char *p, *end;
        bool bad;
} reader;

static void get(reader *rd, void *out, size_t n)
{
        if (rd->bad || (size_t)(rd->end - rd->p) < n) {
                rd->bad = true;
                memset(out, 0, n);
                return;
        }
        memcpy(out, rd->p, n);
        rd->p += n;
}
static uint64_t get_u64(reader *rd)
{
        uint64_t v;
        get(rd, &v, sizeof(v));
        return v;
}
static int64_t get_i64(reader *rd)
{
        int64_t v;
        get(rd, &v, sizeof(v));
        return v;
}
static double get_f64(reader *rd)
{
        double v;
        get(rd, &v, sizeof(v));
        return v;
}
static uint64_t get_count(reader *rd, uint64_t max)
{
        uint64_t n = get_u64(rd);
        if (n > max)
                rd->bad = true;
        return rd->bad ? 0 : n;
}
/* A string, malloc'd (NULL for a NULL string; on error NULL and rd->bad). */
static char *get_str(reader *rd)
{
        uint64_t n = get_u64(rd);
        if (rd->bad || n == UINT64_MAX)
                return NULL;
        if (n > SPOOL_STR_MAX || (uint64_t)(rd->end - rd->p) < n || memchr(rd->p, 0, n)) {
                rd->bad = true;
                return NULL;
        }
        char *s = malloc(n + 1);
        if (!s) {
                rd->bad = true;
                return NULL;
        }
        memcpy(s, rd->p, n);
        s[n] = '\0';
        rd->p += n;
        return s;
}
static void get_fixed(reader *rd, char *buf, size_t size)
{
        _cleanup_free_ char *s = get_str(rd);
        snprintf(buf, size, "%s", s ? s : "");
}

typedef struct {
        store_args a;
        int64_t machine_id;
        char *kind, *message, *run_error, *deviation, *output, *config_json;
        jl_run_result *res;
} spooled;

static void spooled_free(spooled *s)
{
        free(s->kind);
        free(s->message);
        free(s->run_error);
        free(s->deviation);
        free(s->output);
        free(s->config_json);
        jl_run_result_free(s->res);
}

static jl_run_result *read_result(reader *rd)
{
        jl_run_result *res = calloc(1, sizeof(*res));
        if (!res)
                return NULL;
        res->state = JL_RUN_FINISHED; /* only the stored columns matter here */
        res->start_ns = get_u64(rd);
        res->end_ns = get_u64(rd);
        res->realtime_offset_ns = get_i64(rd);
        res->points_truncated = get_u64(rd) != 0;
        res->checks.n = get_count(rd, JL_SYSCHECK_MAX);
        for (size_t i = 0; i < res->checks.n; i++) {
                jl_syscheck *c = &res->checks.items[i];
                get_fixed(rd, c->name, sizeof(c->name));
                get_fixed(rd, c->observed, sizeof(c->observed));
                get_fixed(rd, c->expected, sizeof(c->expected));
                uint64_t st = get_u64(rd);
                c->status = st == JL_CHECK_FAIL   ? JL_CHECK_FAIL
                            : st == JL_CHECK_WARN ? JL_CHECK_WARN
                                                  : JL_CHECK_OK;
        }
        size_t np = get_count(rd, SPOOL_COUNT_MAX);
        if (np && !(res->phases = calloc(np, sizeof(*res->phases))))
                rd->bad = true;
        for (size_t i = 0; !rd->bad && i < np; i++) {
                jl_run_phase *p = &res->phases[i];
                res->n_phases = i + 1;
                p->name = get_str(rd);
                if (!p->name)
                        rd->bad = true;
                p->complete = true;
                p->start_ns = get_u64(rd);
                p->end_ns = get_u64(rd);
                p->duration_s = get_f64(rd);
                p->energy_j = get_f64(rd);
                p->power_avg_w = get_f64(rd);
                p->power_max_w = get_f64(rd);
                p->temp_max_c = get_f64(rd);
                p->cpu_utilization = get_f64(rd);
                size_t nd = get_count(rd, 4096);
                if (nd && !(p->domains = calloc(nd, sizeof(*p->domains))))
                        rd->bad = true;
                for (size_t d = 0; !rd->bad && d < nd; d++) {
                        get_fixed(rd, p->domains[d].name, sizeof(p->domains[d].name));
                        p->domains[d].energy_j = get_f64(rd);
                        p->n_domains = d + 1;
                }
        }
        size_t nm = get_count(rd, SPOOL_COUNT_MAX);
        if (nm && !(res->metrics = calloc(nm, sizeof(*res->metrics))))
                rd->bad = true;
        for (size_t i = 0; !rd->bad && i < nm; i++) {
                get_fixed(rd, res->metrics[i].name, sizeof(res->metrics[i].name));
                res->metrics[i].kind = (jl_kind)get_count(rd, 255);
                res->n_metrics = i + 1;
        }
        size_t npt = get_count(rd, JL_RUN_MAX_POINTS);
        if (npt && !rd->bad && (size_t)(rd->end - rd->p) / 24 < npt)
                rd->bad = true; /* no allocation beyond what the file holds */
        if (npt && !rd->bad && !(res->points = calloc(npt, sizeof(*res->points))))
                rd->bad = true;
        for (size_t i = 0; !rd->bad && i < npt; i++) {
                res->points[i].t_ns = get_u64(rd);
                uint64_t mp = get_u64(rd);
                res->points[i].metric = (uint32_t)(mp >> 32);
                res->points[i].phase = (uint32_t)mp;
                res->points[i].value = get_f64(rd);
                res->n_points = i + 1;
        }
        size_t nn = get_count(rd, SPOOL_COUNT_MAX);
        if (nn && !rd->bad && !(res->notes = calloc(nn, sizeof(char *))))
                rd->bad = true;
        for (size_t i = 0; !rd->bad && i < nn; i++) {
                res->notes[i] = get_str(rd);
                res->n_notes = i + 1;
                if (!res->notes[i])
                        rd->bad = true;
        }
        return res;
}

static int read_spooled(int fd, spooled *ret)
{
        struct stat st;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (st.st_size < 16 || (uint64_t)st.st_size > (uint64_t)4 << 30)
                return -EBADMSG;
        size_t size = (size_t)st.st_size;
        _cleanup_free_ unsigned char *buf = malloc(size);
        if (!buf)
                return -ENOMEM;
        size_t got = 0;
        while (got < size) { /* bounded by size */
                ssize_t n = pread(fd, buf + got, size - got, (off_t)got);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        return n < 0 ? -errno : -EBADMSG;
                got += (size_t)n;
        }
        reader rd = {.p = buf, .end = buf + size};
        char magic[8];
        get(&rd, magic, 8);
        if (memcmp(magic, SPOOL_MAGIC, 8) != 0)
                return -EBADMSG;
        spooled s = {0};
        s.machine_id = get_i64(&rd);
        s.a.job_id = get_i64(&rd);
        s.kind = get_str(&rd);
        s.a.finished = get_u64(&rd) != 0;
        s.message = get_str(&rd);
        s.run_error = get_str(&rd);
        s.a.control = get_u64(&rd) != 0;
        s.deviation = get_str(&rd);
        s.output = get_str(&rd);
        s.a.sampling_rate_ms = get_f64(&rd);
        s.config_json = get_str(&rd);
        if (get_u64(&rd) && !rd.bad && !(s.res = read_result(&rd)))
                rd.bad = true;
        get(&rd, magic, 8);
        if (rd.bad || rd.p != rd.end || memcmp(magic, SPOOL_END, 8) != 0 || !s.kind ||
            (strcmp(s.kind, "job") != 0 && strcmp(s.kind, "control") != 0)) {
                spooled_free(&s);
                return -EBADMSG;
        }
        s.a.kind = s.kind;
        s.a.message = s.message;
        s.a.run_error = s.run_error;
        s.a.deviation = s.deviation;
        s.a.output = s.output;
        s.a.config_json = s.config_json;
        s.a.res = s.res;
        *ret = s;
        return 0;
}

int runner_spool_replay(jl_runner *r)
{
        DIR *d = opendir(r->spool_dir);
        if (!d)
                return errno == ENOENT ? 0 : -errno;
        size_t plen = strlen(r->spool_prefix), slen = strlen(SPOOL_SUFFIX);
        int stored = 0, ret = 0;
        struct dirent *de;
        while ((de = readdir(d))) { /* bounded by the directory */
                size_t n = strlen(de->d_name);
                if (n <= plen + slen || strncmp(de->d_name, r->spool_prefix, plen) != 0 ||
                    strcmp(de->d_name + n - slen, SPOOL_SUFFIX) != 0)
                        continue;
                runner_spool sp = {.fd = -1};
                snprintf(sp.path, sizeof(sp.path), "%s/%s", r->spool_dir, de->d_name);
                int fd = open(sp.path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
                if (fd < 0)
                        continue;
                struct stat st;
                if (flock(fd, LOCK_EX | LOCK_NB) < 0 || fstat(fd, &st) < 0 || st.st_nlink == 0) {
                        close(fd); /* being stored by its runner now, or stored and removed */
                        continue;
                }
                sp.fd = fd;
                spooled s;
                int k = read_spooled(fd, &s);
                if (k >= 0 && s.machine_id != r->c->machine.id)
                        k = -EBADMSG;
                if (k < 0) {
                        char bad[PATH_MAX + 330];
                        snprintf(bad, sizeof(bad), "%s.bad", sp.path);
                        runner_say(r, LOG_LEVEL_ERROR, k,
                                   "spooled result %s cannot be read (%s): kept as %s", sp.path,
                                   strerror(-k), bad);
                        if (k == -EBADMSG)
                                rename(sp.path, bad);
                        close(fd);
                        continue;
                }
                runner_say(r, LOG_LEVEL_NOTICE, 0, "storing the spooled result %s (%s%s%" PRId64 ")",
                           sp.path, s.a.kind, s.a.job_id > 0 ? " of job " : "",
                           s.a.job_id > 0 ? s.a.job_id : (int64_t)0);
                k = runner_store_spooled(r, &s.a);
                spooled_free(&s);
                if (k == -EINTR) {
                        close(fd);
                        ret = k;
                        break;
                }
                if (k < 0) { /* logged; not retried at every pass */
                        char bad[PATH_MAX + 330];
                        snprintf(bad, sizeof(bad), "%s.bad", sp.path);
                        rename(sp.path, bad);
                        close(fd);
                        continue;
                }
                runner_spool_done(&sp);
                stored++;
        }
        closedir(d);
        return ret < 0 ? ret : stored;
}
