/* ops.c - jouled's operations, shared by the local socket and the control port: who may do what (local:
 * SO_PEERCRED; remote: the MUNGE credential's uid), reading energy and status, setting CPU frequencies and
 * power limits, and job step accounting (begin/end with the node energy taken by a sample at that
 * instant). */
#include <errno.h>
#include <stdarg.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "config-joule.h"
#include "fileio.h"
#include "json.h"
#include "jouled.h"
#include "log.h"
#include "macro.h"
#include "nvml_control.h"
#include "parse.h"
#include "powercap_limit.h"
#include "timeutil.h"

#define FAIL(...)                                                                                           \
        do {                                                                                                \
                reply_err(__VA_ARGS__);                                                                     \
                return;                                                                                     \
        } while (0)

static void reply_err(jl_msg_reply *rep, int err, const char *fmt, ...) _printf_(3, 4);
static void reply_err(jl_msg_reply *rep, int err, const char *fmt, ...)
{
        va_list ap;
        rep->err = err;
        va_start(ap, fmt);
        vsnprintf(rep->message, sizeof(rep->message), fmt, ap);
        va_end(ap);
}

bool jd_user_is_admin(jouled *d, uid_t uid)
{
        if (uid == 0)
                return true;
        bool ok = false;
        pthread_mutex_lock(&d->lock);
        for (size_t i = 0; i < d->nadmins; i++)
                ok = ok || d->admin_uids[i] == uid;
        pthread_mutex_unlock(&d->lock);
        return ok;
}

/* CPU n is bit n % 8 of byte n / 8 (cpu_set_t's layout on little-endian machines). */
static void mask_from_request(const jl_msg_request *req, uint64_t *mask)
{
        memset(mask, 0, JL_CPU_MASK_WORDS * sizeof(uint64_t));
        for (size_t b = 0; b < req->cpumask_len; b++)
                for (int i = 0; i < 8; i++)
                        if (req->cpumask[b] >> i & 1) {
                                size_t c = b * 8 + (size_t)i;
                                mask[c / 64] |= UINT64_C(1) << (c % 64);
                        }
}

static int user_of_uid(uid_t uid, char *buf, size_t size)
{
        struct passwd pw, *res = NULL;
        char tmp[4096];
        if (getpwuid_r(uid, &pw, tmp, sizeof(tmp), &res) != 0 || !res) {
                snprintf(buf, size, "%u", (unsigned)uid);
                return 0;
        }
        snprintf(buf, size, "%s", pw.pw_name);
        return 0;
}

static int uid_of_user(const char *name, uid_t *ret)
{
        struct passwd pw, *res = NULL;
        char tmp[4096];
        if (getpwnam_r(name, &pw, tmp, sizeof(tmp), &res) != 0 || !res)
                return -ESRCH;
        *ret = pw.pw_uid;
        return 0;
}

static bool valid_job_id(const char *s)
{
        uint64_t v;
        return s[0] != '\0' && strlen(s) < 24 && parse_u64(s, &v) == 0 &&
               strspn(s, "0123456789") == strlen(s);
}

static int find_step(jouled *d, const char *job, int64_t step)
{
        for (size_t i = 0; i < d->nsteps; i++)
                if (strcmp(d->steps[i].job_id, job) == 0 && d->steps[i].step_id == step)
                        return (int)i;
        return -1;
}

static char *step_json(jouled *d, const jd_step *st, const char *event, uint64_t end_us, uint64_t energy_uj)
{
        char *buf = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&buf, &size);
        if (!f)
                return NULL;
        json_writer w;
        char iso[64];
        json_init(&w, f);
        json_object_begin(&w);
        json_key(&w, "event");
        json_string(&w, event);
        json_key(&w, "node");
        json_string(&w, d->cfg.node.name);
        json_key(&w, "job_id");
        json_string(&w, st->job_id);
        json_key(&w, "step_id");
        json_int(&w, st->step_id);
        json_key(&w, "user");
        json_string(&w, st->user);
        json_key(&w, "start");
        json_string(&w, format_iso8601(st->begin_us * 1000, iso, sizeof(iso)));
        if (end_us) {
                double t = end_us > st->begin_us ? (double)(end_us - st->begin_us) / 1e6 : 0;
                json_key(&w, "end");
                json_string(&w, format_iso8601(end_us * 1000, iso, sizeof(iso)));
                json_key(&w, "time_s");
                json_double(&w, t);
                json_key(&w, "energy_j");
                json_double(&w, (double)energy_uj / 1e6);
                json_key(&w, "avg_power_w");
                json_double(&w, t > 0 ? (double)energy_uj / 1e6 / t : 0);
                json_key(&w, "complete");
                json_bool(&w, st->complete);
        }
        json_object_end(&w);
        fclose(f);
        return buf;
}

/* Root and node.admins have every right, on the local socket as on the control port. */
static bool is_privileged(jouled *d, const jd_peer *peer)
{
        return jd_user_is_admin(d, peer->uid);
}

/* Steps users declared for themselves: the node's count, and one user's. Lock held. */
static void count_user_steps(jouled *d, uid_t uid, size_t *ret_all, size_t *ret_uid)
{
        size_t all = 0, mine = 0;
        for (size_t i = 0; i < d->nsteps; i++)
                if (!d->steps[i].declared) {
                        all++;
                        mine += d->steps[i].uid == uid;
                }
        *ret_all = all;
        *ret_uid = mine;
}

/* May a line about step st be logged now (lock held)? Always for the steps root and node.admins declare;
 * for the steps users open for themselves within d->step_log, so that a user beginning and ending steps in
 * a loop cannot fill the log. */
static bool step_log_ok_locked(jouled *d, const jd_step *st)
{
        return st->declared ||
               jd_log_limit_ok(&d->step_log, NULL, "job steps that users opened for themselves");
}

static void op_job_begin(jouled *d, const jd_peer *peer, const jl_msg_request *req, jl_msg_reply *rep,
                         char **ret_text)
{
        bool privileged = is_privileged(d, peer);
        if (peer->remote && !privileged)
                FAIL(rep, -EPERM, "only root and node.admins may begin job steps through the control port");
        if (!valid_job_id(req->job_id))
                FAIL(rep, -EINVAL, "job id '%s' is not a number (as Slurm's job ids are)", req->job_id);
        if (req->step_id < -1)
                FAIL(rep, -EINVAL, "step id %" PRId64 " is negative", req->step_id);
        jd_step st = {.step_id = req->step_id, .complete = true};
        jd_copy(st.job_id, sizeof(st.job_id), req->job_id);
        if (req->user[0]) {
                if (uid_of_user(req->user, &st.uid) < 0)
                        FAIL(rep, -ESRCH, "unknown user '%s'", req->user);
                jd_copy(st.user, sizeof(st.user), req->user);
        } else {
                st.uid = peer->uid;
                user_of_uid(peer->uid, st.user, sizeof(st.user));
        }
        if (strpbrk(st.user, " \t\n"))
                FAIL(rep, -EINVAL, "user name '%s' has white space", st.user);
        if (!privileged && peer->uid != st.uid)
                FAIL(rep, -EPERM, "only root or user '%s' may begin this job's steps", st.user);
        /* A step root or an admin declares carries its owner's frequency rights (on its CPUs when it names
         * them); a step users declare for themselves is for accounting only. */
        st.declared = privileged;
        mask_from_request(req, st.cpumask);
        for (size_t w = 0; w < JL_CPU_MASK_WORDS; w++)
                st.has_cpus = st.has_cpus || st.cpumask[w] != 0;
        if (!st.has_cpus) /* no CPU named: the step covers the node (for its accounting) */
                memset(st.cpumask, 0xff, sizeof(st.cpumask));

        jl_msg_job msg = {.end = false, .step_id = st.step_id};
        pthread_mutex_lock(&d->lock);
        if (find_step(d, st.job_id, st.step_id) >= 0) {
                pthread_mutex_unlock(&d->lock);
                FAIL(rep, -EEXIST, "job %s step %" PRId64 " is already running on this node", st.job_id,
                     st.step_id);
        }
        if (d->nsteps >= JD_STEPS_MAX) {
                pthread_mutex_unlock(&d->lock);
                FAIL(rep, -ENOSPC, "%d job steps are open on this node already", JD_STEPS_MAX);
        }
        if (!st.declared) {
                size_t all, mine;
                uint64_t per_user = d->cfg.node.user_steps_max;
                count_user_steps(d, st.uid, &all, &mine);
                if (mine >= per_user) {
                        pthread_mutex_unlock(&d->lock);
                        FAIL(rep, -EUSERS,
                             "user '%s' has %zu job steps of their own open on this node "
                             "(node.user_steps_max "
                             "%" PRIu64 ")",
                             st.user, mine, per_user);
                }
                if (all >= JD_USER_STEPS_MAX) {
                        pthread_mutex_unlock(&d->lock);
                        FAIL(rep, -ENOSPC, "%d job steps that users opened for themselves are open already",
                             JD_USER_STEPS_MAX);
                }
        }
        int r = jd_state_next_seq(d, &msg.seq);
        if (r < 0) {
                pthread_mutex_unlock(&d->lock);
                log_error(r, "job begin: cannot persist the next sequence number: %s", strerror(-r));
                FAIL(rep, r, "jouled cannot write its state directory");
        }
        jd_sample_locked(d);
        st.begin_us = jd_realtime_us(d, d->snap.t_ns);
        st.begin_energy_uj = d->snap.node_energy_uj;
        d->steps[d->nsteps++] = st;
        if (st.declared && !peer->remote) /* share.c: the process that began it leads its process tree */
                jd_share_begin(d, &d->steps[d->nsteps - 1], peer->pid);
        (void)jd_state_save_steps(d);
        rep->energy_uj = d->snap.node_energy_uj;
        rep->time_ms = d->snap.t_ns / NSEC_PER_MSEC;
        jd_copy(msg.node, sizeof(msg.node), d->cfg.node.name);
        jd_copy(msg.job_id, sizeof(msg.job_id), st.job_id);
        jd_copy(msg.user, sizeof(msg.user), st.user);
        msg.time_us = st.begin_us;
        msg.complete = true;
        r = jd_sink_job(d->sink, &msg); /* under the lock: the sink sees sequence numbers in order */
        bool log_it = step_log_ok_locked(d, &st);
        pthread_mutex_unlock(&d->lock);
        if (r < 0)
                log_error(r, "job %s step %" PRId64 ": begin not queued for the database: %s", st.job_id,
                          st.step_id, strerror(-r));
        if (log_it)
                log_info("job %s step %" PRId64 " of %s began (%s)", st.job_id, st.step_id, st.user,
                         peer->desc);
        *ret_text = step_json(d, &st, "begin", 0, 0);
}

/* Put back what the step's frequency changes replaced (lock held): the governor, the limits, the userspace
 * governor's speed, CPU by CPU, as saved before the step's first change of each. */
static void restore_freqs_locked(jouled *d, const char *job_id, int64_t step_id)
{
        size_t k = 0, n = 0, failed = 0;
        for (size_t i = 0; i < d->nsaved; i++) {
                jd_saved_freq *f = &d->saved[i];
                if (strcmp(f->job_id, job_id) != 0 || f->step_id != step_id) {
                        d->saved[k++] = *f;
                        continue;
                }
                int r = 0;
                if (f->governor[0])
                        r = jl_cpufreq_set_governor(f->cpu, f->governor);
                if (r >= 0 && f->min_khz && f->max_khz)
                        r = jl_cpufreq_set_limits(f->cpu, f->min_khz, f->max_khz);
                if (r >= 0 && f->setspeed_khz && strcmp(f->governor, "userspace") == 0)
                        r = jl_cpufreq_set_speed(f->cpu, f->setspeed_khz);
                if (r < 0 && failed++ == 0)
                        log_warning(r, "job %s step %" PRId64 ": cpu%d: restoring its cpufreq settings: %s",
                                    job_id, step_id, f->cpu, strerror(-r));
                n++;
        }
        if (n == 0)
                return;
        d->nsaved = k;
        (void)jd_state_save_freqs(d);
        log_info("job %s step %" PRId64 ": cpufreq settings of %zu CPUs restored%s", job_id, step_id,
                 n - failed, failed ? " (some failed)" : "");
}

static void close_watches(jd_step *st)
{
        for (size_t w = 0; w < st->nwatch; w++)
                if (st->watch[w].fd > 0) {
                        close(st->watch[w].fd); /* leaves the epoll set with it */
                        st->watch[w].fd = -1;
                }
}

/* End open step i (lock held): a sample now, the step's energy, its frequencies restored, the end message
 * queued. *ret_st, *ret_end_us, *ret_energy: what ended. */
static int end_step_locked(jouled *d, size_t i, jd_step *ret_st, uint64_t *ret_end_us, uint64_t *ret_energy)
{
        jd_step st = d->steps[i];
        jl_msg_job msg = {.end = true, .step_id = st.step_id};
        int r = jd_state_next_seq(d, &msg.seq);
        if (r < 0) {
                log_error(r, "job end: cannot persist the next sequence number: %s", strerror(-r));
                return r;
        }
        jd_sample_locked(d);
        uint64_t end_us = jd_realtime_us(d, d->snap.t_ns);
        uint64_t energy = st.carried_uj + (d->snap.node_energy_uj - st.begin_energy_uj);
        if (d->steps[i].share_leader > 0 && kill(d->steps[i].share_leader, 0) == 0)
                energy = d->steps[i].share_uj; /* share.c: its share, updated by the sample just taken */
        close_watches(&d->steps[i]);
        memmove(&d->steps[i], &d->steps[i + 1], (d->nsteps - i - 1) * sizeof(jd_step));
        d->nsteps--;
        (void)jd_state_save_steps(d);
        restore_freqs_locked(d, st.job_id, st.step_id);
        jd_copy(msg.node, sizeof(msg.node), d->cfg.node.name);
        jd_copy(msg.job_id, sizeof(msg.job_id), st.job_id);
        jd_copy(msg.user, sizeof(msg.user), st.user);
        msg.time_us = end_us;
        msg.energy_uj = energy;
        msg.complete = st.complete;
        r = jd_sink_job(d->sink, &msg); /* under the lock: in sequence order */
        if (r < 0)
                log_error(r, "job %s step %" PRId64 ": end not queued for the database: %s", st.job_id,
                          st.step_id, strerror(-r));
        *ret_st = st;
        *ret_end_us = end_us;
        *ret_energy = energy;
        return 0;
}

static void op_job_end(jouled *d, const jd_peer *peer, const jl_msg_request *req, jl_msg_reply *rep,
                       char **ret_text)
{
        bool privileged = is_privileged(d, peer);
        if (peer->remote && !privileged)
                FAIL(rep, -EPERM, "only root and node.admins may end job steps through the control port");
        pthread_mutex_lock(&d->lock);
        int i = find_step(d, req->job_id, req->step_id);
        if (i < 0) {
                pthread_mutex_unlock(&d->lock);
                FAIL(rep, -ENOENT, "job %s step %" PRId64 " is not running on this node", req->job_id,
                     req->step_id);
        }
        jd_step st = d->steps[i];
        if (!privileged && peer->uid != st.uid) {
                pthread_mutex_unlock(&d->lock);
                FAIL(rep, -EPERM, "only root or user '%s' may end this step", st.user);
        }
        if (!privileged && st.declared) {
                /* its user ending it early would cut its accounting short (and the plugin's end would
                 * find nothing) */
                pthread_mutex_unlock(&d->lock);
                FAIL(rep, -EPERM,
                     "job %s step %" PRId64 " was begun by root or an admin: only they may end it",
                     st.job_id, st.step_id);
        }
        uint64_t end_us, energy;
        int r = end_step_locked(d, (size_t)i, &st, &end_us, &energy);
        bool log_it = r >= 0 && step_log_ok_locked(d, &st);
        pthread_mutex_unlock(&d->lock);
        if (r < 0)
                FAIL(rep, r, "jouled cannot write its state directory");
        rep->energy_uj = energy;
        rep->time_ms = end_us > st.begin_us ? (end_us - st.begin_us) / 1000 : 0;
        if (log_it)
                log_info("job %s step %" PRId64 " ended: %.3f J in %.3f s%s (%s)", st.job_id, st.step_id,
                         (double)energy / 1e6, (double)rep->time_ms / 1e3, st.complete ? "" : ", incomplete",
                         peer->desc);
        *ret_text = step_json(d, &st, "end", end_us, energy);
}

/* ---- watched processes ---- */

static int pidfd_open_(pid_t pid)
{
        return (int)syscall(SYS_pidfd_open, pid, 0);
}

/* Field 22 of /proc/PID/stat (the process's start time in clock ticks since boot) and its real uid. */
static int proc_identity(pid_t pid, uint64_t *ret_start, uid_t *ret_uid)
{
        char path[64], buf[1024];
        snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
        int r = read_text_path(path, buf, sizeof(buf));
        if (r < 0)
                return r;
        char *p = strrchr(buf, ')');
        if (!p)
                return -EINVAL;
        p++;
        /* fields after the name: state(3) ... starttime(22) */
        char *save = NULL, *tok = strtok_r(p, " ", &save);
        for (int f = 3; tok && f < 22; f++)
                tok = strtok_r(NULL, " ", &save);
        uint64_t start;
        if (!tok || parse_u64(tok, &start) < 0)
                return -EINVAL;
        snprintf(path, sizeof(path), "/proc/%d", (int)pid);
        struct stat stt;
        if (stat(path, &stt) < 0)
                return negative_errno();
        *ret_start = start;
        *ret_uid = stt.st_uid;
        return 0;
}

/* Open a pidfd on a watched process that is still the one registered; -ESRCH when it is gone. */
static int watch_open(jouled *d, pid_t pid, uint64_t start)
{
        int fd = pidfd_open_(pid);
        if (fd < 0)
                return negative_errno();
        uint64_t now_start;
        uid_t uid;
        if (proc_identity(pid, &now_start, &uid) < 0 || now_start != start) {
                close(fd);
                return -ESRCH;
        }
        struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
        if (d->watch_epfd > 0 && epoll_ctl(d->watch_epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
                int r = negative_errno();
                close(fd);
                return r;
        }
        return fd;
}

static void end_watched_locked(jouled *d, size_t i, const char *why)
{
        jd_step st;
        uint64_t end_us, energy;
        if (end_step_locked(d, i, &st, &end_us, &energy) == 0 && step_log_ok_locked(d, &st))
                log_info("job %s step %" PRId64 " ended: %s; %.3f J in %.3f s%s", st.job_id, st.step_id, why,
                         (double)energy / 1e6,
                         end_us > st.begin_us ? (double)(end_us - st.begin_us) / 1e6 : 0,
                         st.complete ? "" : ", incomplete");
}

void jd_watch_start(jouled *d, int epfd)
{
        pthread_mutex_lock(&d->lock);
        d->watch_epfd = epfd;
        for (size_t i = 0; i < d->nsteps;) {
                jd_step *st = &d->steps[i];
                bool gone = false;
                for (size_t w = 0; w < st->nwatch; w++) {
                        int fd = watch_open(d, st->watch[w].pid, st->watch[w].start_ticks);
                        st->watch[w].fd = fd < 0 ? -1 : fd;
                        gone = gone || fd < 0;
                }
                if (gone) {
                        end_watched_locked(d, i, "its watched process ended while jouled was down");
                        continue;
                }
                i++;
        }
        /* saved settings of steps that are not open (ended while their restore was pending) */
        for (size_t i = 0; i < d->nsaved;) {
                jd_saved_freq *f = &d->saved[i];
                if (find_step(d, f->job_id, f->step_id) >= 0) {
                        i++;
                        continue;
                }
                char job[JL_MSG_NAME_MAX];
                jd_copy(job, sizeof(job), f->job_id);
                restore_freqs_locked(d, job, f->step_id); /* removes them: i now names the next one */
        }
        pthread_mutex_unlock(&d->lock);
}

void jd_watch_reap(jouled *d)
{
        struct epoll_event ev[16];
        int n = epoll_wait(d->watch_epfd, ev, 16, 0);
        pthread_mutex_lock(&d->lock);
        for (int e = 0; e < n; e++) {
                int fd = ev[e].data.fd;
                bool found = false;
                for (size_t i = 0; i < d->nsteps && !found; i++)
                        for (size_t w = 0; w < d->steps[i].nwatch && !found; w++)
                                if (d->steps[i].watch[w].fd == fd) {
                                        char why[64];
                                        snprintf(why, sizeof(why), "process %d ended",
                                                 (int)d->steps[i].watch[w].pid);
                                        end_watched_locked(d, i, why);
                                        found = true;
                                }
                if (!found) { /* closed with its step already: cannot happen, but never spin */
                        epoll_ctl(d->watch_epfd, EPOLL_CTL_DEL, fd, NULL);
                }
        }
        pthread_mutex_unlock(&d->lock);
}

static void op_watch_pid(jouled *d, const jd_peer *peer, const jl_msg_request *req, jl_msg_reply *rep)
{
        if (peer->remote)
                FAIL(rep, -EOPNOTSUPP, "watching a process is for local clients only");
        bool privileged = is_privileged(d, peer);
        pid_t pid = (pid_t)req->pid;
        uint64_t start;
        uid_t uid;
        if (proc_identity(pid, &start, &uid) < 0)
                FAIL(rep, -ESRCH, "no process %d", (int)pid);
        if (!privileged && uid != peer->uid)
                FAIL(rep, -EPERM, "process %d is not yours", (int)pid);
        pthread_mutex_lock(&d->lock);
        int i = find_step(d, req->job_id, req->step_id);
        if (i < 0) {
                pthread_mutex_unlock(&d->lock);
                FAIL(rep, -ENOENT, "job %s step %" PRId64 " is not running on this node", req->job_id,
                     req->step_id);
        }
        jd_step *st = &d->steps[i];
        if (!privileged && st->uid != peer->uid) {
                pthread_mutex_unlock(&d->lock);
                FAIL(rep, -EPERM, "only root or user '%s' may tie this step to a process", st->user);
        }
        if (st->nwatch >= JD_WATCH_MAX) {
                pthread_mutex_unlock(&d->lock);
                FAIL(rep, -ENOSPC, "the step watches %d processes already", JD_WATCH_MAX);
        }
        int fd = watch_open(d, pid, start);
        if (fd < 0) {
                pthread_mutex_unlock(&d->lock);
                FAIL(rep, fd, "cannot watch process %d: %s", (int)pid, strerror(-fd));
        }
        st->watch[st->nwatch].pid = pid;
        st->watch[st->nwatch].start_ticks = start;
        st->watch[st->nwatch].fd = fd;
        st->nwatch++;
        (void)jd_state_save_steps(d);
        bool log_it = step_log_ok_locked(d, st);
        pthread_mutex_unlock(&d->lock);
        if (log_it)
                log_info("job %s step %" PRId64 " ends with process %d (%s)", req->job_id, req->step_id,
                         (int)pid, peer->desc);
        snprintf(rep->message, sizeof(rep->message), "watching process %d", (int)pid);
}

/* ---- the runtime's records ---- */

static void op_rt_record(jouled *d, const jd_peer *peer, const jl_msg_request *req, jl_msg_reply *rep)
{
        if (peer->remote)
                FAIL(rep, -EOPNOTSUPP, "runtime records are for local clients only");
        jl_msg_rt m = req->rt;
        jd_copy(m.job_id, sizeof(m.job_id), req->job_id);
        m.step_id = req->step_id;
        char why[200];
        if (jl_msg_rt_validate(&m, false, why, sizeof(why)) < 0)
                FAIL(rep, -EINVAL, "runtime record refused: %s", why);
        pthread_mutex_lock(&d->lock);
        int i = find_step(d, m.job_id, m.step_id);
        if (i < 0) {
                pthread_mutex_unlock(&d->lock);
                FAIL(rep, -ENOENT, "job %s step %" PRId64 " is not running on this node", m.job_id,
                     m.step_id);
        }
        if (peer->uid != 0 && peer->uid != d->steps[i].uid) {
                char user[JL_MSG_NAME_MAX];
                jd_copy(user, sizeof(user), d->steps[i].user);
                pthread_mutex_unlock(&d->lock);
                FAIL(rep, -EPERM, "only root or user '%s' may send records for job %s step %" PRId64, user,
                     m.job_id, m.step_id);
        }
        if (peer->uid != 0) {
                jd_step *st = &d->steps[i];
                uint64_t now = mono_ns();
                double add =
                    st->rt_refill_ns ? (double)(now - st->rt_refill_ns) / 1e9 * JD_RT_RATE : JD_RT_BURST;
                st->rt_tokens = MIN(JD_RT_BURST, st->rt_tokens + add);
                st->rt_refill_ns = now;
                if (st->rt_tokens < 1) {
                        pthread_mutex_unlock(&d->lock);
                        FAIL(rep, -EBUSY,
                             "too many records for job %s step %" PRId64
                             ": at most %.0f a second (bursts of %.0f)",
                             m.job_id, m.step_id, JD_RT_RATE, JD_RT_BURST);
                }
                st->rt_tokens -= 1;
        }
        int r = jd_state_next_seq(d, &m.seq);
        if (r < 0) {
                pthread_mutex_unlock(&d->lock);
                FAIL(rep, r, "jouled cannot write its state directory");
        }
        jd_copy(m.node, sizeof(m.node), d->cfg.node.name);
        m.time_us = jd_realtime_us(d, mono_ns());
        r = jd_sink_rt(d->sink, &m); /* under the lock: in sequence order */
        pthread_mutex_unlock(&d->lock);
        if (r < 0)
                FAIL(rep, r, "record not queued for the database: %s", strerror(-r));
        snprintf(rep->message, sizeof(rep->message), "record %" PRIu64 " queued", m.seq);
}

/* Every CPU of mask must belong to a step of uid that root or an admin declared with its CPUs (a step users
 * declare for themselves gives no rights over CPUs that other users' jobs may run on). Lock held. */
static bool owns_cpus(jouled *d, uid_t uid, const uint64_t *mask)
{
        for (int c = 0; c < JL_CPU_MAX; c++) {
                if (!jl_cpu_mask_test(mask, c))
                        continue;
                bool owned = false;
                for (size_t i = 0; i < d->nsteps && !owned; i++)
                        owned = d->steps[i].uid == uid && d->steps[i].declared && d->steps[i].has_cpus &&
                                jl_cpu_mask_test(d->steps[i].cpumask, c);
                if (!owned)
                        return false;
        }
        return true;
}

/* The step whose frequency change of CPU c this is (lock held): the named one, else the caller's declared
 * step with its CPUs that holds c; -1 when none (root or an admin setting a CPU outside any step). */
static int step_of_cpu(jouled *d, int named, uid_t uid, int c)
{
        if (named >= 0)
                return named;
        for (size_t i = 0; i < d->nsteps; i++)
                if (d->steps[i].uid == uid && d->steps[i].declared && d->steps[i].has_cpus &&
                    jl_cpu_mask_test(d->steps[i].cpumask, c))
                        return (int)i;
        return -1;
}

/* Before a step's first change of a CPU: remember what is in force (lock held). A CPU another open step
 * changed first keeps that step's saved settings (the node's own, from before either). */
static int save_freq_locked(jouled *d, const jd_step *st, const jl_cpu *c)
{
        for (size_t i = 0; i < d->nsaved; i++)
                if (d->saved[i].cpu == c->cpu)
                        return 0;
        if (d->nsaved == d->saved_cap) {
                size_t cap = d->saved_cap ? d->saved_cap * 2 : 64;
                jd_saved_freq *n = realloc(d->saved, cap * sizeof(*n));
                if (!n)
                        return -ENOMEM;
                d->saved = n;
                d->saved_cap = cap;
        }
        jd_saved_freq *f = &d->saved[d->nsaved];
        *f = (jd_saved_freq){
            .step_id = st->step_id, .cpu = c->cpu, .min_khz = c->min_khz, .max_khz = c->max_khz};
        jd_copy(f->job_id, sizeof(f->job_id), st->job_id);
        jd_copy(f->governor, sizeof(f->governor), c->governor);
        if (strcmp(c->governor, "userspace") == 0) {
                char path[128];
                snprintf(path, sizeof(path), "/sys/devices/system/cpu/cpu%d/cpufreq/scaling_setspeed",
                         c->cpu);
                uint64_t v;
                if (read_u64_path(path, &v) == 0)
                        f->setspeed_khz = v;
        }
        d->nsaved++;
        return 1;
}

static void op_set_cpufreq(jouled *d, const jd_peer *peer, const jl_msg_request *req, jl_msg_reply *rep)
{
        uint64_t mask[JL_CPU_MASK_WORDS];
        mask_from_request(req, mask);
        bool privileged = is_privileged(d, peer);
        bool allowed = privileged;
        pthread_mutex_lock(&d->lock);
        int named = -1;
        if (req->job_id[0] && !peer->remote) {
                /* a frequency for a step (the runtime's): the step must be open; its owner needs the step
                 * declared by root or an admin with CPUs that hold every CPU asked */
                named = find_step(d, req->job_id, req->step_id);
                if (named < 0) {
                        pthread_mutex_unlock(&d->lock);
                        FAIL(rep, -ENOENT, "job %s step %" PRId64 " is not running on this node",
                             req->job_id, req->step_id);
                }
                const jd_step *st = &d->steps[named];
                if (!allowed && st->uid == peer->uid && st->declared && st->has_cpus) {
                        allowed = true;
                        for (int c = 0; c < JL_CPU_MAX && allowed; c++)
                                allowed = !jl_cpu_mask_test(mask, c) || jl_cpu_mask_test(st->cpumask, c);
                }
        } else if (!allowed && !peer->remote)
                allowed = owns_cpus(d, peer->uid, mask);
        if (!allowed) {
                pthread_mutex_unlock(&d->lock);
                FAIL(rep, -EPERM,
                     peer->remote ? "only root and node.admins may set CPU frequencies"
                                  : "only root, node.admins and the owner of the job step that root "
                                    "declared on these CPUs may set their frequency");
        }
        _cleanup_free_ jl_cpu_info *info = malloc(sizeof(*info));
        if (!info) {
                pthread_mutex_unlock(&d->lock);
                FAIL(rep, -ENOMEM, "out of memory");
        }
        int r = jl_cpu_info_read(info);
        if (r < 0) {
                pthread_mutex_unlock(&d->lock);
                FAIL(rep, r, "cannot read the CPUs' cpufreq state: %s", strerror(-r));
        }
        /* check every CPU before any changes */
        for (size_t i = 0; i < info->n_cpus; i++) {
                const jl_cpu *c = &info->cpus[i];
                if (!jl_cpu_mask_test(mask, c->cpu))
                        continue;
                uint64_t lo = c->cpuinfo_min_khz, hi = c->cpuinfo_max_khz;
                if (req->khz > 0 && ((lo && req->khz < lo) || (hi && req->khz > hi))) {
                        pthread_mutex_unlock(&d->lock);
                        FAIL(rep, -EINVAL,
                             "%" PRIu64 " kHz is outside cpu%d's range %" PRIu64 "..%" PRIu64 " kHz",
                             req->khz, c->cpu, lo, hi);
                }
                if (req->khz == 0 && (!lo || !hi)) {
                        pthread_mutex_unlock(&d->lock);
                        FAIL(rep, -ENOENT, "cpu%d does not tell its frequency range", c->cpu);
                }
        }
        unsigned n = 0;
        bool saved = false;
        for (size_t i = 0; i < info->n_cpus; i++) {
                const jl_cpu *c = &info->cpus[i];
                if (!jl_cpu_mask_test(mask, c->cpu))
                        continue;
                int si = step_of_cpu(d, named, peer->uid, c->cpu);
                if (si >= 0) {
                        r = save_freq_locked(d, &d->steps[si], c);
                        if (r < 0) {
                                pthread_mutex_unlock(&d->lock);
                                FAIL(rep, r, "cannot remember cpu%d's settings: %s", c->cpu, strerror(-r));
                        }
                        saved = saved || r > 0;
                }
                uint64_t lo = c->cpuinfo_min_khz, hi = c->cpuinfo_max_khz;
                if (req->khz > 0)
                        lo = hi = req->khz;
                r = jl_cpufreq_set_limits(c->cpu, lo, hi);
                if (r < 0) {
                        if (saved)
                                (void)jd_state_save_freqs(d);
                        pthread_mutex_unlock(&d->lock);
                        FAIL(rep, r, "cpu%d: setting %" PRIu64 "..%" PRIu64 " kHz: %s (%u CPUs set before)",
                             c->cpu, lo, hi, strerror(-r), n);
                }
                if (req->khz > 0 && strcmp(c->governor, "userspace") == 0)
                        (void)jl_cpufreq_set_speed(c->cpu, req->khz);
                n++;
        }
        if (saved)
                (void)jd_state_save_freqs(d);
        pthread_mutex_unlock(&d->lock);
        if (n == 0)
                FAIL(rep, -ENODEV, "no online CPU in the mask (offline CPUs are skipped)");
        log_info("CPU frequency of %u CPUs set to %s%" PRIu64 " kHz (%s)", n,
                 req->khz ? "" : "the default range, ", req->khz, peer->desc);
        snprintf(rep->message, sizeof(rep->message), "%u CPUs set", n);
}

/* The node's GPUs are not assigned to steps: a user owns them when every step that root or an admin declared
 * on the node is theirs (and one is; steps users declare for themselves count for nothing). Lock held. */
static bool owns_gpus(jouled *d, uid_t uid)
{
        bool any = false;
        for (size_t i = 0; i < d->nsteps; i++) {
                if (!d->steps[i].declared)
                        continue;
                if (d->steps[i].uid != uid)
                        return false;
                any = true;
        }
        return any;
}

/* SET_GPUFREQ (one GPU) and SET_GPUFREQ_LIST (GPU i at gpu_khz[i]) through NVML's application clocks. Every
 * request is checked before any GPU changes; each is rounded down to a supported clock; 0 restores the
 * default. A session of its own per request (GPU changes are rare; the provider's stays open). */
static void op_set_gpufreq(jouled *d, const jd_peer *peer, const jl_msg_request *req, jl_msg_reply *rep)
{
        bool allowed = is_privileged(d, peer);
        if (!allowed && !peer->remote) {
                pthread_mutex_lock(&d->lock);
                allowed = owns_gpus(d, peer->uid);
                pthread_mutex_unlock(&d->lock);
        }
        if (!allowed)
                FAIL(rep, -EPERM,
                     peer->remote
                         ? "only root and node.admins may set GPU clocks"
                         : "only root and the owner of the job running on this node may set its GPU "
                           "clocks");
        size_t n = req->op == JL_OP_SET_GPUFREQ_LIST ? req->ngpus : 1;
        if (n == 0 || n > JL_MSG_GPUS_MAX || (req->op == JL_OP_SET_GPUFREQ && req->gpu < 0))
                FAIL(rep, -EINVAL, "no GPU named in the request");
        char why[200];
        jl_nvml_control *ctl = NULL;
        int r = jl_nvml_control_open(&ctl, why, sizeof(why));
        if (r < 0)
                FAIL(rep, -EOPNOTSUPP, "GPU clock control is not available on this node: %s", why);
        unsigned first = req->op == JL_OP_SET_GPUFREQ ? (unsigned)MIN(req->gpu, (int64_t)UINT_MAX) : 0;
        uint64_t khz[JL_MSG_GPUS_MAX], set[JL_MSG_GPUS_MAX], mem;
        for (size_t i = 0; i < n; i++) {
                khz[i] = req->op == JL_OP_SET_GPUFREQ ? req->khz : req->gpu_khz[i];
                r = jl_nvml_control_resolve(ctl, first + (unsigned)i, khz[i], &set[i], &mem, why,
                                            sizeof(why));
                if (r < 0) {
                        jl_nvml_control_close(ctl);
                        FAIL(rep, r, "%s", why);
                }
        }
        char done[200] = "";
        size_t len = 0;
        for (size_t i = 0; i < n; i++) {
                r = jl_nvml_control_set(ctl, first + (unsigned)i, khz[i], &set[i], why, sizeof(why));
                if (r < 0) {
                        jl_nvml_control_close(ctl);
                        FAIL(rep, r, "%s (%zu GPUs set before)", why, i);
                }
                if (len >= sizeof(done))
                        continue;
                if (set[i])
                        len += (size_t)snprintf(done + len, sizeof(done) - len, "%sgpu %u %" PRIu64 " MHz",
                                                i ? ", " : "", first + (unsigned)i, set[i] / 1000);
                else
                        len += (size_t)snprintf(done + len, sizeof(done) - len, "%sgpu %u default",
                                                i ? ", " : "", first + (unsigned)i);
        }
        jl_nvml_control_close(ctl);
        log_info("GPU clocks set: %s (%s)", done, peer->desc);
        snprintf(rep->message, sizeof(rep->message), "%s", done);
}

static void op_set_powercap(jouled *d, const jd_peer *peer, const jl_msg_request *req, jl_msg_reply *rep)
{
        if (!is_privileged(d, peer))
                FAIL(rep, -EPERM, "only root and node.admins may set a power limit");
        int r = jl_powercap_set_node_limit(req->watts);
        if (r == -ENODEV)
                FAIL(rep, r, "this node has no RAPL package zone with a power limit");
        if (r == -ERANGE)
                FAIL(rep, r, "%g W is above the packages' maximum", req->watts);
        if (r < 0)
                FAIL(rep, r, "setting the power limit: %s", strerror(-r));
        log_notice("power limit %s%g W over %d packages (%s)", req->watts > 0 ? "" : "removed, was ",
                   req->watts, r, peer->desc);
        snprintf(rep->message, sizeof(rep->message), "%d packages set", r);
}

void jd_handle_request(jouled *d, const jd_peer *peer, const jl_msg_request *req, jl_msg_reply *rep,
                       char **ret_text, int *ret_send_fd)
{
        *rep = (jl_msg_reply){0};
        *ret_text = NULL;
        *ret_send_fd = -1;
        bool privileged = is_privileged(d, peer);
        switch (req->op) {
        case JL_OP_GET_SHM:
                if (peer->remote)
                        FAIL(rep, -EOPNOTSUPP, "the shared-memory page is only for local clients");
                *ret_send_fd = d->shm_ro_fd;
                pthread_mutex_lock(&d->lock);
                rep->energy_uj = d->snap.node_energy_uj;
                rep->time_ms = d->snap.t_ns / NSEC_PER_MSEC;
                pthread_mutex_unlock(&d->lock);
                return;
        case JL_OP_ENERGY:
                pthread_mutex_lock(&d->lock);
                rep->energy_uj = d->snap.node_energy_uj;
                rep->time_ms = d->snap.t_ns / NSEC_PER_MSEC;
                pthread_mutex_unlock(&d->lock);
                return;
        case JL_OP_QUERY:
                *ret_text = jd_query_json(d);
                if (!*ret_text)
                        reply_err(rep, -ENOMEM, "out of memory");
                return;
        case JL_OP_SET_CPUFREQ: {
                op_set_cpufreq(d, peer, req, rep);
                return;
        }
        case JL_OP_SET_GPUFREQ:
        case JL_OP_SET_GPUFREQ_LIST:
                op_set_gpufreq(d, peer, req, rep);
                return;
        case JL_OP_JOB_BEGIN: {
                op_job_begin(d, peer, req, rep, ret_text);
                return;
        }
        case JL_OP_JOB_END: {
                op_job_end(d, peer, req, rep, ret_text);
                return;
        }
        case JL_OP_SET_POWERCAP: {
                op_set_powercap(d, peer, req, rep);
                return;
        }
        case JL_OP_RT_RECORD:
                op_rt_record(d, peer, req, rep);
                return;
        case JL_OP_WATCH_PID:
                op_watch_pid(d, peer, req, rep);
                return;
        case JL_OP_RELOAD:
                if (!privileged)
                        FAIL(rep, -EPERM, "only root and node.admins may reload jouled");
                log_notice("reload requested (%s)", peer->desc);
                kill(getpid(), SIGHUP);
                snprintf(rep->message, sizeof(rep->message), "reloading");
                return;
        default:
                FAIL(rep, -EOPNOTSUPP, "operation %u is not known", req->op);
        }
}

char *jd_query_json(jouled *d)
{
        _cleanup_free_ jd_snapshot *s = malloc(sizeof(*s));
        if (!s)
                return NULL;
        jd_step steps[JD_STEPS_MAX];
        size_t nsteps;
        pthread_mutex_lock(&d->lock);
        *s = d->snap;
        nsteps = d->nsteps;
        memcpy(steps, d->steps, nsteps * sizeof(jd_step));
        uint64_t next_seq = d->next_seq, records = d->records_sent;
        double period_s = (double)d->period_ns / 1e9, sample_ms = (double)d->sample_ns / 1e6;
        pthread_mutex_unlock(&d->lock);

        uint64_t queued = 0, delivered = 0;
        char sink_err[256];
        jd_sink_status(d->sink, &queued, &delivered, sink_err, sizeof(sink_err));

        char *buf = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&buf, &size);
        if (!f)
                return NULL;
        json_writer w;
        char iso[64];
        json_init(&w, f);
        json_object_begin(&w);
        json_key(&w, "node");
        json_string(&w, d->cfg.node.name);
        json_key(&w, "version");
        json_string(&w, JOULE_VERSION);
        json_key(&w, "pid");
        json_int(&w, getpid());
        json_key(&w, "time");
        json_string(&w, format_iso8601((uint64_t)((int64_t)mono_ns() + d->rt_offset_ns), iso, sizeof(iso)));
        json_key(&w, "uptime_s");
        json_double(&w, (double)(mono_ns() - d->start_mono_ns) / 1e9);
        json_key(&w, "period_s");
        json_double(&w, period_s);
        json_key(&w, "sample_ms");
        json_double(&w, sample_ms);
        json_key(&w, "samples");
        json_uint(&w, s->samples);
        json_key(&w, "energy_j");
        json_double(&w, (double)s->node_energy_uj / 1e6);
        json_key(&w, "power_w");
        json_double(&w, s->node_power_w);
        json_key(&w, "energy_source");
        json_string(&w, s->node_source ? s->node_source : "none");
        json_key(&w, "estimated");
        json_bool(&w, s->node_estimated);
        json_key(&w, "gaps");
        json_uint(&w, s->node_gaps);
        json_key(&w, "gap_s");
        json_double(&w, (double)s->node_gap_ns / 1e9);
        json_key(&w, "domains");
        json_array_begin(&w);
        for (size_t i = 0; i < s->ndomains; i++) {
                const jd_domain *dom = &s->domains[i];
                json_object_begin(&w);
                json_key(&w, "name");
                json_string(&w, dom->name);
                json_key(&w, "provider");
                json_string(&w, dom->provider);
                json_key(&w, "scope");
                json_string(&w, jl_scope_name(dom->scope));
                json_key(&w, "energy_j");
                json_double(&w, (double)dom->energy_uj / 1e6);
                json_key(&w, "power_w");
                json_double(&w, dom->power_w);
                json_key(&w, "estimated");
                json_bool(&w, dom->estimated);
                json_key(&w, "counted");
                json_bool(&w, dom->counted);
                json_object_end(&w);
        }
        json_array_end(&w);
        double tmax = NAN, fsum = 0;
        for (size_t i = 0; i < s->ntemps; i++)
                tmax = isnan(tmax) || s->temps[i].c > tmax ? s->temps[i].c : tmax;
        for (size_t i = 0; i < s->nfreqs; i++)
                fsum += s->freqs[i].khz;
        json_key(&w, "temperature_c");
        json_object_begin(&w);
        json_key(&w, "max");
        json_double(&w, tmax);
        json_object_end(&w);
        json_key(&w, "frequency_khz");
        json_object_begin(&w);
        json_key(&w, "avg");
        json_double(&w, s->nfreqs ? fsum / (double)s->nfreqs : NAN);
        json_object_end(&w);
        json_key(&w, "jobs");
        json_array_begin(&w);
        for (size_t i = 0; i < nsteps; i++) {
                json_object_begin(&w);
                json_key(&w, "job_id");
                json_string(&w, steps[i].job_id);
                json_key(&w, "step_id");
                json_int(&w, steps[i].step_id);
                json_key(&w, "user");
                json_string(&w, steps[i].user);
                json_key(&w, "start");
                json_string(&w, format_iso8601(steps[i].begin_us * 1000, iso, sizeof(iso)));
                json_key(&w, "energy_j");
                json_double(&w,
                            (double)(steps[i].carried_uj + (s->node_energy_uj - steps[i].begin_energy_uj)) /
                                1e6);
                json_key(&w, "complete");
                json_bool(&w, steps[i].complete);
                json_object_end(&w);
        }
        json_array_end(&w);
        json_key(&w, "records");
        json_object_begin(&w);
        json_key(&w, "sent");
        json_uint(&w, records);
        json_key(&w, "next_seq");
        json_uint(&w, next_seq);
        json_key(&w, "sink");
        json_string(&w, jd_sink_kind(d->sink));
        json_key(&w, "queued");
        json_uint(&w, queued);
        json_key(&w, "delivered");
        json_uint(&w, delivered);
        json_key(&w, "last_error");
        json_string(&w, sink_err);
        json_object_end(&w);
        json_object_end(&w);
        fclose(f);
        return buf;
}
