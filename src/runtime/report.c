/* report.c - the runtime's client of jouled (report.h): one connection to the local socket, kept open and
 * made again once when jouled closed it (restarted), each request bounded by JL_RT_REPORT_TIMEOUT_MS in
 * all; a jouled that timed out is left alone for a while (a breaker), and records that could not be sent
 * wait in a bounded queue for jouled's return. Thread-safe (one mutex: a rank's requests are rare). Never
 * logs, never raises a signal (SIGPIPE is suppressed by the client's sends), never blocks the application
 * past the timeout (the connect does not wait either: a jouled that is stopped with a full backlog is
 * -EAGAIN at once). */
#include "report.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "client.h"
#include "msg.h"

static pthread_mutex_t report_lock = PTHREAD_MUTEX_INITIALIZER;
static int report_fd = -1;
/* the queue of records for a jouled that is away (see queue_locked) */
static jl_msg_request *pending;
static size_t npending, ndropped, nrefused;

static uint64_t now_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static bool all_digits(const char *s)
{
        if (!s || !*s || strlen(s) > 19)
                return false;
        for (; *s; s++)
                if (*s < '0' || *s > '9')
                        return false;
        return true;
}

int jl_rt_step_from_env(char *job, size_t size, int64_t *ret_step)
{
        const char *j = getenv("JOULE_JOB_ID"), *s = NULL;
        if (j && *j)
                s = getenv("JOULE_STEP_ID");
        else {
                j = getenv("SLURM_JOB_ID");
                s = getenv("SLURM_STEP_ID");
        }
        if (!j || !*j)
                return -ENOENT;
        if (!all_digits(j) || strlen(j) >= size)
                return -EINVAL;
        int64_t step = -1;
        if (s && *s) {
                char *end;
                errno = 0;
                long long v = strtoll(s, &end, 10);
                if (errno || *end || end == s || v < -1)
                        return -EINVAL;
                step = v;
        }
        snprintf(job, size, "%s", j);
        *ret_step = step;
        return 0;
}

/* A non-blocking connect: a unix connect waits while the listener's backlog is full (a jouled that is
 * stopped); this one fails at once with -EAGAIN instead. The client's exchange polls, so the descriptor
 * stays non-blocking. */
static int connect_locked(void)
{
        if (report_fd >= 0)
                return 0;
        const char *path = jl_client_socket_path(NULL);
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        if (strlen(path) >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        memcpy(sa.sun_path, path, strlen(path) + 1);
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return -errno;
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
                int r = -errno;
                close(fd);
                return r;
        }
        report_fd = fd;
        return 0;
}

static void disconnect_locked(void)
{
        if (report_fd >= 0)
                close(report_fd);
        report_fd = -1;
}

int jl_rt_report_connect(void)
{
        pthread_mutex_lock(&report_lock);
        int r = connect_locked();
        pthread_mutex_unlock(&report_lock);
        return r;
}

void jl_rt_report_disconnect(void)
{
        pthread_mutex_lock(&report_lock);
        disconnect_locked();
        free(pending);
        pending = NULL;
        npending = 0;
        pthread_mutex_unlock(&report_lock);
}

/* The breaker: a jouled that accepted the connection but did not answer in time (stopped, hung) is not
 * asked again until breaker_until_ms; the wait doubles from 2 s up to 30 s while it stays silent, so that
 * a hung jouled costs the program one timeout, not one per request. */
#define BREAKER_FIRST_MS 2000
#define BREAKER_MAX_MS 30000
static uint64_t breaker_until_ms;
static unsigned breaker_wait_ms;

/* Records (application, loops, events) that did not reach jouled for a reason of transport (no jouled at
 * the socket, a restart, the breaker) wait here, in order, and go first once jouled answers again. Bounded:
 * beyond JL_RT_PENDING_MAX the newest are dropped and counted. Frequencies are never queued: a late one
 * would be wrong. */

static bool is_transport(int r)
{
        /* not -ETIMEDOUT: the request was written and waits in jouled's socket, which a stopped jouled reads
         * when it runs again; sent again it would be stored twice */
        return r == -ENOENT || r == -ECONNREFUSED || r == -EAGAIN || r == -ECONNRESET || r == -EPIPE ||
               r == -EHOSTDOWN || r == -ENOTCONN;
}

/* One exchange on the connection, made (again) when there is none; a connection jouled closed (it
 * restarted, or dropped a malformed request) is made again once. *ret_transport tells whether a failure
 * is of the transport (the request may be sent again later) or jouled's answer (it will not change). */
static int exchange_locked(const jl_msg_request *req, uint64_t deadline, bool *ret_transport)
{
        int r = -ETIMEDOUT;
        bool transport = true;
        for (int attempt = 0; attempt < 2; attempt++) {
                uint64_t now = now_ms();
                if (now >= deadline) {
                        r = -ETIMEDOUT;
                        break;
                }
                bool fresh = report_fd < 0;
                r = connect_locked();
                if (r < 0)
                        break;
                jl_client_reply rep = {.fd = -1};
                char why[128];
                r = jl_client_exchange(report_fd, req, (int)(deadline - now), &rep, why, sizeof(why));
                if (r == 0) {
                        r = rep.err;
                        transport = false;
                        if (rep.err == -EBADMSG) /* jouled closes the connection after a malformed one */
                                disconnect_locked();
                        jl_client_reply_free(&rep);
                        break;
                }
                jl_client_reply_free(&rep);
                disconnect_locked();
                if (r == -ETIMEDOUT) { /* connected, no answer: jouled is hung or stopped */
                        breaker_wait_ms = breaker_wait_ms ? breaker_wait_ms * 2 : BREAKER_FIRST_MS;
                        if (breaker_wait_ms > BREAKER_MAX_MS)
                                breaker_wait_ms = BREAKER_MAX_MS;
                        breaker_until_ms = now_ms() + breaker_wait_ms;
                        break;
                }
                /* a connection of before (jouled restarted since): once more on a fresh one */
                if (fresh || (r != -ECONNRESET && r != -EPIPE))
                        break;
        }
        if (!transport || r == 0) {
                breaker_wait_ms = 0;
                breaker_until_ms = 0;
        }
        *ret_transport = r < 0 && transport && is_transport(r);
        return r;
}

/* Sends what waits, oldest first, by the deadline; stops at the first failure of transport. */
static int flush_locked(uint64_t deadline)
{
        size_t done = 0;
        int r = 0;
        while (done < npending) {
                bool transport;
                r = exchange_locked(&pending[done], deadline, &transport);
                if (r < 0 && transport)
                        break;
                if (r < 0)
                        nrefused++;
                r = 0;
                done++;
        }
        if (done > 0) {
                memmove(pending, pending + done, (npending - done) * sizeof(*pending));
                npending -= done;
        }
        return r;
}

static void queue_locked(const jl_msg_request *req)
{
        if (!pending) {
                pending = calloc(JL_RT_PENDING_MAX, sizeof(*pending));
                if (!pending) {
                        ndropped++;
                        return;
                }
        }
        if (npending >= JL_RT_PENDING_MAX) {
                ndropped++;
                return;
        }
        pending[npending++] = *req;
}

static bool breaker_open(void)
{
        return breaker_until_ms && now_ms() < breaker_until_ms;
}

/* One request and jouled's answer within the timeout, after what waits. A record that cannot be sent for
 * a reason of transport is queued (and the error returned). */
static int request(const jl_msg_request *req)
{
        uint64_t deadline = now_ms() + JL_RT_REPORT_TIMEOUT_MS;
        bool record = req->op == JL_OP_RT_RECORD, transport = true;
        int r;
        pthread_mutex_lock(&report_lock);
        if (breaker_open())
                r = -EHOSTDOWN;
        else {
                r = npending ? flush_locked(deadline) : 0;
                if (r == 0)
                        r = exchange_locked(req, deadline, &transport);
        }
        if (r < 0 && record && transport)
                queue_locked(req);
        pthread_mutex_unlock(&report_lock);
        return r;
}

int jl_rt_report_flush(void)
{
        uint64_t deadline = now_ms() + JL_RT_REPORT_TIMEOUT_MS;
        pthread_mutex_lock(&report_lock);
        int r = breaker_open() ? -EHOSTDOWN : flush_locked(deadline);
        pthread_mutex_unlock(&report_lock);
        return r;
}

void jl_rt_report_stats(size_t *ret_pending, size_t *ret_dropped, size_t *ret_refused)
{
        pthread_mutex_lock(&report_lock);
        *ret_pending = npending;
        *ret_dropped = ndropped;
        *ret_refused = nrefused;
        pthread_mutex_unlock(&report_lock);
}

static int request_for_step(jl_msg_request *req, bool need_step)
{
        int64_t step;
        int r = jl_rt_step_from_env(req->job_id, sizeof(req->job_id), &step);
        if (r == 0)
                req->step_id = step;
        else if (need_step || r != -ENOENT)
                return r;
        return request(req);
}

int jl_rt_set_cpufreq(const cpu_set_t *cpus, unsigned long khz)
{
        if (!cpus)
                return -EINVAL;
        jl_msg_request req = {.op = JL_OP_SET_CPUFREQ, .step_id = -1, .khz = khz};
        jl_msg_request_add_cpuset(&req, cpus);
        if (req.cpumask_len == 0)
                return -EINVAL;
        return request_for_step(&req, false);
}

static void copy_str(char *dst, size_t size, const char *src)
{
        snprintf(dst, size, "%s", src ? src : "");
}

int jl_rt_report_app(const jl_rt_app_record *a)
{
        if (!a)
                return -EINVAL;
        jl_msg_request req = {.op = JL_OP_RT_RECORD, .step_id = -1, .has_rt = true};
        jl_msg_rt_init(&req.rt, JL_RT_APP);
        jl_msg_rt *m = &req.rt;
        copy_str(m->name, sizeof(m->name), a->app_name);
        copy_str(m->policy, sizeof(m->policy), a->policy);
        copy_str(m->tag, sizeof(m->tag), a->tag);
        m->policy_th = a->policy_th;
        m->time_s = a->time_s;
        m->energy_j = a->energy_j;
        m->avg_power_w = a->avg_power_w;
        m->pck_power_w = a->pck_power_w;
        m->dram_power_w = a->dram_power_w;
        m->avg_cpufreq_khz = a->avg_cpufreq_khz;
        m->def_cpufreq_khz = a->def_cpufreq_khz;
        m->cpi = a->cpi;
        m->tpi = a->tpi;
        m->gbs = a->gbs;
        m->gflops = a->gflops;
        return request_for_step(&req, true);
}

int jl_rt_report_loop(const jl_rt_loop_record *l)
{
        if (!l)
                return -EINVAL;
        jl_msg_request req = {.op = JL_OP_RT_RECORD, .step_id = -1, .has_rt = true};
        jl_msg_rt_init(&req.rt, JL_RT_LOOP);
        jl_msg_rt *m = &req.rt;
        copy_str(m->name, sizeof(m->name), l->loop_key);
        m->iterations = l->iterations;
        m->time_per_iteration_s = l->time_per_iteration_s;
        m->avg_power_w = l->avg_power_w;
        m->avg_cpufreq_khz = l->avg_cpufreq_khz;
        m->cpi = l->cpi;
        m->tpi = l->tpi;
        m->gbs = l->gbs;
        m->gflops = l->gflops;
        return request_for_step(&req, true);
}

int jl_rt_report_event(const char *kind, double value, const char *message)
{
        if (!kind || !*kind)
                return -EINVAL;
        jl_msg_request req = {.op = JL_OP_RT_RECORD, .step_id = -1, .has_rt = true};
        jl_msg_rt_init(&req.rt, JL_RT_EVENT);
        copy_str(req.rt.name, sizeof(req.rt.name), kind);
        copy_str(req.rt.message, sizeof(req.rt.message), message);
        req.rt.value = value;
        return request_for_step(&req, true);
}
