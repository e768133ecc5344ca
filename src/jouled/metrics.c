/* metrics.c - jouled's Prometheus endpoint (/metrics, libmicrohttpd with its own thread): the text format
 * with joule_ names in base units, built from a copy of the monitor's snapshot taken under the lock, so
 * that a scrape never waits on or delays the monitor. libmicrohttpd is loaded with dlopen when the endpoint
 * starts (node.metrics_listen set): Debian's links GnuTLS, whose load and initialisation cost every jouled
 * about 2.3 MiB of resident memory even with /metrics off (docs/performance.md, "jouled at 1 Hz").
 * Slow clients: libmicrohttpd's own limits (connections in all and per address, an idle timeout), and a
 * deadline of our own, which libmicrohttpd lacks: a connection that has not completed a request
 * DEADLINE_NS after it opened (or after its previous request) is shut down, however slowly it trickles. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sys/socket.h>
#include <time.h>

#include "config-joule.h"
#include "dlopen-util.h"
#include "jouled.h"
#include "log.h"
#include "macro.h"
#include "timeutil.h"

/* The entry points used, resolved once per process (only the header is a build dependency). */
static struct MHD_Response *(*sym_create_response_from_buffer)(size_t, void *, enum MHD_ResponseMemoryMode);
static enum MHD_Result (*sym_add_response_header)(struct MHD_Response *, const char *, const char *);
static enum MHD_Result (*sym_queue_response)(struct MHD_Connection *, unsigned int, struct MHD_Response *);
static void (*sym_destroy_response)(struct MHD_Response *);
static struct MHD_Daemon *(*sym_start_daemon)(unsigned int, uint16_t, MHD_AcceptPolicyCallback, void *,
                                              MHD_AccessHandlerCallback, void *, ...);
static void (*sym_stop_daemon)(struct MHD_Daemon *);
static const union MHD_ConnectionInfo *(*sym_get_connection_info)(struct MHD_Connection *,
                                                                  enum MHD_ConnectionInfoType, ...);
static const jl_dlsym mhd_syms[] = {
    {"MHD_create_response_from_buffer", &sym_create_response_from_buffer, false},
    {"MHD_add_response_header", &sym_add_response_header, false},
    {"MHD_queue_response", &sym_queue_response, false},
    {"MHD_destroy_response", &sym_destroy_response, false},
    {"MHD_start_daemon", &sym_start_daemon, false},
    {"MHD_stop_daemon", &sym_stop_daemon, false},
    {"MHD_get_connection_info", &sym_get_connection_info, false},
};
static jl_dlib mhd_lib = JL_DLIB_INIT("libmicrohttpd.so.12", mhd_syms);

#define CONN_LIMIT 256   /* connections in all */
#define CONN_PER_IP 8    /* per client address (the loopback is one): a scraper needs one or two */
#define IDLE_TIMEOUT_S 5 /* libmicrohttpd's: no byte for this long */
#define DEADLINE_NS (5 * NSEC_PER_SEC) /* ours: a request complete within this long */

typedef struct {
        struct MHD_Connection *conn;
        int fd;
        bool loopback;     /* from 127.0.0.0/8 or ::1: all of them one peer */
        uint64_t since_ns; /* opened, or its last request completed */
        bool shut;
} tracked;

struct jd_metrics {
        jouled *d;
        struct MHD_Daemon *mhd;
        pthread_t reaper;
        bool reaper_started;
        pthread_mutex_t mu; /* guards what follows */
        pthread_cond_t cv;
        bool stop;
        tracked conns[CONN_LIMIT];
        size_t nconns;
        uint64_t dropped, dropped_log_ns;
};

/* A label value with \, " and newline escaped. */
static void label(FILE *f, const char *s)
{
        fputc('"', f);
        for (; *s; s++) {
                if (*s == '\\' || *s == '"')
                        fputc('\\', f);
                if (*s == '\n') {
                        fputs("\\n", f);
                        continue;
                }
                fputc(*s, f);
        }
        fputc('"', f);
}

static char *render(jouled *d, size_t *ret_len)
{
        _cleanup_free_ jd_snapshot *s = malloc(sizeof(*s));
        if (!s)
                return NULL;
        jd_step steps[JD_STEPS_MAX];
        pthread_mutex_lock(&d->lock);
        *s = d->snap;
        size_t nsteps = d->nsteps;
        memcpy(steps, d->steps, nsteps * sizeof(jd_step));
        uint64_t records = d->records_sent;
        pthread_mutex_unlock(&d->lock);
        const char *node = d->cfg.node.name;

        char *buf = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&buf, &size);
        if (!f)
                return NULL;
        fputs("# HELP joule_energy_joules_total Energy since jouled started, per domain; domain=\"node\" is "
              "the "
              "node's energy (a whole-node domain, else packages+DRAM+GPUs).\n"
              "# TYPE joule_energy_joules_total counter\n",
              f);
        fputs("joule_energy_joules_total{node=", f);
        label(f, node);
        fprintf(f, ",domain=\"node\"} %.6f\n", (double)s->node_energy_uj / 1e6);
        for (size_t i = 0; i < s->ndomains; i++) {
                fputs("joule_energy_joules_total{node=", f);
                label(f, node);
                fputs(",domain=", f);
                label(f, s->domains[i].name);
                fprintf(f, "} %.6f\n", (double)s->domains[i].energy_uj / 1e6);
        }
        fputs("# HELP joule_energy_gap_seconds_total Time whose energy was estimated across counter wraps "
              "that could not be resolved for certain (docs/metrics.md, \"Gaps\"), per domain; "
              "domain=\"node\" is that of the domains in the node energy.\n"
              "# TYPE joule_energy_gap_seconds_total counter\n",
              f);
        fputs("joule_energy_gap_seconds_total{node=", f);
        label(f, node);
        fprintf(f, ",domain=\"node\"} %.6f\n", (double)s->node_gap_ns / 1e9);
        for (size_t i = 0; i < s->ndomains; i++) {
                fputs("joule_energy_gap_seconds_total{node=", f);
                label(f, node);
                fputs(",domain=", f);
                label(f, s->domains[i].name);
                fprintf(f, "} %.6f\n", (double)s->domains[i].gap_ns / 1e9);
        }
        fputs("# HELP joule_power_watts Power over the latest sampling interval, per domain.\n"
              "# TYPE joule_power_watts gauge\n",
              f);
        fputs("joule_power_watts{node=", f);
        label(f, node);
        fprintf(f, ",domain=\"node\"} %.3f\n", s->node_power_w);
        for (size_t i = 0; i < s->ndomains; i++) {
                fputs("joule_power_watts{node=", f);
                label(f, node);
                fputs(",domain=", f);
                label(f, s->domains[i].name);
                fprintf(f, "} %.3f\n", s->domains[i].power_w);
        }
        if (s->ntemps) {
                fputs("# HELP joule_temperature_celsius Temperature per sensor (chip/feature).\n"
                      "# TYPE joule_temperature_celsius gauge\n",
                      f);
                for (size_t i = 0; i < s->ntemps; i++) {
                        fputs("joule_temperature_celsius{node=", f);
                        label(f, node);
                        fputs(",sensor=", f);
                        label(f, s->temps[i].name);
                        fprintf(f, "} %.3f\n", s->temps[i].c);
                }
        }
        if (s->nfreqs) {
                fputs("# HELP joule_cpu_frequency_hertz Current frequency per CPU (cpufreq).\n"
                      "# TYPE joule_cpu_frequency_hertz gauge\n",
                      f);
                for (size_t i = 0; i < s->nfreqs; i++) {
                        fputs("joule_cpu_frequency_hertz{node=", f);
                        label(f, node);
                        fputs(",cpu=", f);
                        label(f, s->freqs[i].cpu);
                        fprintf(f, "} %.0f\n", s->freqs[i].khz * 1e3);
                }
        }
        bool any_util = false;
        for (size_t i = 0; i < s->ndomains; i++)
                any_util |= s->domains[i].has_util;
        if (any_util) {
                fputs("# HELP joule_gpu_utilization_ratio Share of NVML's last sample period in which a "
                      "kernel "
                      "ran, per GPU (0..1).\n"
                      "# TYPE joule_gpu_utilization_ratio gauge\n",
                      f);
                for (size_t i = 0; i < s->ndomains; i++)
                        if (s->domains[i].has_util) {
                                fputs("joule_gpu_utilization_ratio{node=", f);
                                label(f, node);
                                fputs(",domain=", f);
                                label(f, s->domains[i].name);
                                fprintf(f, "} %.3f\n", s->domains[i].util_gpu);
                        }
                fputs("# HELP joule_gpu_memory_utilization_ratio Share of NVML's last sample period in "
                      "which the "
                      "GPU's memory was read or written, per GPU (0..1).\n"
                      "# TYPE joule_gpu_memory_utilization_ratio gauge\n",
                      f);
                for (size_t i = 0; i < s->ndomains; i++)
                        if (s->domains[i].has_util && isfinite(s->domains[i].util_mem)) {
                                fputs("joule_gpu_memory_utilization_ratio{node=", f);
                                label(f, node);
                                fputs(",domain=", f);
                                label(f, s->domains[i].name);
                                fprintf(f, "} %.3f\n", s->domains[i].util_mem);
                        }
        }
        fputs("# HELP joule_job_info Job steps running on this node.\n# TYPE joule_job_info gauge\n", f);
        for (size_t i = 0; i < nsteps; i++) {
                fputs("joule_job_info{node=", f);
                label(f, node);
                fputs(",job=", f);
                label(f, steps[i].job_id);
                fprintf(f, ",step=\"%" PRId64 "\",user=", steps[i].step_id);
                label(f, steps[i].user);
                fputs("} 1\n", f);
        }
        fputs("# HELP joule_job_energy_joules_total Node energy since the step began.\n"
              "# TYPE joule_job_energy_joules_total counter\n",
              f);
        for (size_t i = 0; i < nsteps; i++) {
                fputs("joule_job_energy_joules_total{node=", f);
                label(f, node);
                fputs(",job=", f);
                label(f, steps[i].job_id);
                fprintf(f, ",step=\"%" PRId64 "\"} %.6f\n", steps[i].step_id,
                        (double)(steps[i].carried_uj + (s->node_energy_uj - steps[i].begin_energy_uj)) /
                            1e6);
        }
        fputs(
            "# HELP joule_samples_total Samples taken by the monitor.\n# TYPE joule_samples_total counter\n",
            f);
        fputs("joule_samples_total{node=", f);
        label(f, node);
        fprintf(f, "} %" PRIu64 "\n", s->samples);
        fputs("# HELP joule_records_total Periodic records emitted.\n# TYPE joule_records_total counter\n",
              f);
        fputs("joule_records_total{node=", f);
        label(f, node);
        fprintf(f, "} %" PRIu64 "\n", records);
        fputs("# HELP joule_energy_estimated Whether the node energy is a model's estimate (1) or measured "
              "(0).\n"
              "# TYPE joule_energy_estimated gauge\n",
              f);
        fputs("joule_energy_estimated{node=", f);
        label(f, node);
        fprintf(f, "} %d\n", s->node_estimated ? 1 : 0);
        if (fclose(f) != 0) {
                free(buf);
                return NULL;
        }
        *ret_len = size;
        return buf;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                              const char *version, const char *upload_data, size_t *upload_data_size,
                              void **con_cls)
{
        jd_metrics *m = cls;
        struct MHD_Response *resp;
        unsigned status = MHD_HTTP_OK;
        if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
                static const char msg[] = "only GET\n";
                resp = sym_create_response_from_buffer(sizeof(msg) - 1, (void *)msg, MHD_RESPMEM_PERSISTENT);
                status = MHD_HTTP_METHOD_NOT_ALLOWED;
        } else if (strcmp(url, "/metrics") != 0) {
                static const char msg[] = "jouled: see /metrics\n";
                resp = sym_create_response_from_buffer(sizeof(msg) - 1, (void *)msg, MHD_RESPMEM_PERSISTENT);
                status = MHD_HTTP_NOT_FOUND;
        } else {
                size_t len = 0;
                char *text = render(m->d, &len);
                if (!text)
                        return MHD_NO;
                resp = sym_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
                if (resp)
                        sym_add_response_header(resp, "Content-Type",
                                                "text/plain; version=0.0.4; charset=utf-8");
        }
        if (!resp)
                return MHD_NO;
        enum MHD_Result ret = sym_queue_response(conn, status, resp);
        sym_destroy_response(resp);
        return ret;
}

/* libmicrohttpd's thread: a connection opened or closed. Closed comes before its descriptor is closed, so
 * the reaper never shuts down a descriptor that was reused. */
static void notify_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                              enum MHD_ConnectionNotificationCode toe)
{
        jd_metrics *m = cls;
        pthread_mutex_lock(&m->mu);
        if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
                const union MHD_ConnectionInfo *ci =
                    sym_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
                const union MHD_ConnectionInfo *ai =
                    sym_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
                if (ci && m->nconns < CONN_LIMIT) {
                        m->conns[m->nconns++] = (tracked){.conn = conn,
                                                          .fd = ci->connect_fd,
                                                          .loopback = ai && ai->client_addr &&
                                                                      jd_addr_is_loopback(ai->client_addr),
                                                          .since_ns = mono_ns()};
                        pthread_cond_signal(&m->cv);
                }
        } else {
                for (size_t i = 0; i < m->nconns; i++)
                        if (m->conns[i].conn == conn) {
                                m->conns[i] = m->conns[--m->nconns];
                                break;
                        }
        }
        pthread_mutex_unlock(&m->mu);
}

/* libmicrohttpd's thread, before a connection is accepted: libmicrohttpd limits each address, but any local
 * user may connect from any of 127.0.0.0/8, so the loopback is one peer here. */
static enum MHD_Result accept_policy(void *cls, const struct sockaddr *addr, socklen_t addrlen)
{
        jd_metrics *m = cls;
        if (!addr || !jd_addr_is_loopback(addr))
                return MHD_YES;
        size_t n = 0;
        pthread_mutex_lock(&m->mu);
        for (size_t i = 0; i < m->nconns; i++)
                n += m->conns[i].loopback;
        pthread_mutex_unlock(&m->mu);
        return n < CONN_PER_IP ? MHD_YES : MHD_NO;
}

/* libmicrohttpd's thread: a request was answered; a kept-alive connection's next request has its own
 * deadline. */
static void request_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                              enum MHD_RequestTerminationCode toe)
{
        jd_metrics *m = cls;
        pthread_mutex_lock(&m->mu);
        for (size_t i = 0; i < m->nconns; i++)
                if (m->conns[i].conn == conn)
                        m->conns[i].since_ns = mono_ns();
        pthread_mutex_unlock(&m->mu);
}

/* Shut down connections past the deadline; libmicrohttpd sees the end and closes them. */
static void *reaper_thread(void *userdata)
{
        jd_metrics *m = userdata;
        pthread_mutex_lock(&m->mu);
        while (!m->stop) {
                uint64_t now = mono_ns(), next = UINT64_MAX;
                for (size_t i = 0; i < m->nconns; i++) {
                        tracked *t = &m->conns[i];
                        if (t->shut)
                                continue;
                        if (now - t->since_ns >= DEADLINE_NS) {
                                (void)shutdown(t->fd, SHUT_RDWR);
                                t->shut = true;
                                m->dropped++;
                        } else
                                next = MIN(next, t->since_ns + DEADLINE_NS);
                }
                if (m->dropped && (!m->dropped_log_ns || now - m->dropped_log_ns >= 10 * NSEC_PER_SEC)) {
                        log_warning(0,
                                    "/metrics: %" PRIu64 " connection%s dropped: no request within %llu s",
                                    m->dropped, m->dropped == 1 ? "" : "s",
                                    (unsigned long long)(DEADLINE_NS / NSEC_PER_SEC));
                        m->dropped = 0;
                        m->dropped_log_ns = now;
                }
                if (next == UINT64_MAX)
                        pthread_cond_wait(&m->cv, &m->mu);
                else {
                        struct timespec ts = ns_to_timespec(next);
                        pthread_cond_timedwait(&m->cv, &m->mu, &ts);
                }
        }
        pthread_mutex_unlock(&m->mu);
        return NULL;
}

static void metrics_free(jd_metrics *m)
{
        if (m->reaper_started) {
                pthread_mutex_lock(&m->mu);
                m->stop = true;
                pthread_cond_signal(&m->cv);
                pthread_mutex_unlock(&m->mu);
                pthread_join(m->reaper, NULL);
        }
        pthread_cond_destroy(&m->cv);
        pthread_mutex_destroy(&m->mu);
        free(m);
}

int jd_metrics_start(jouled *d, const char *listen_addr, jd_metrics **ret, char *err, size_t errlen)
{
        struct sockaddr_storage ss;
        unsigned len;
        int r = jd_parse_listen(listen_addr, &ss, &len, err, errlen);
        if (r < 0)
                return r;
        char why[256];
        r = jl_dlib_load(&mhd_lib, why, sizeof(why));
        if (r < 0) {
                snprintf(err, errlen, "node.metrics_listen: cannot load libmicrohttpd.so.12 (%s)", why);
                return r;
        }
        jd_metrics *m = calloc(1, sizeof(*m));
        if (!m)
                return -ENOMEM;
        m->d = d;
        pthread_mutex_init(&m->mu, NULL);
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&m->cv, &ca);
        pthread_condattr_destroy(&ca);
        r = pthread_create(&m->reaper, NULL, reaper_thread, m);
        if (r != 0) {
                snprintf(err, errlen, "/metrics: starting a thread: %s", strerror(r));
                metrics_free(m);
                return -r;
        }
        m->reaper_started = true;
        unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL;
        if (ss.ss_family == AF_INET6)
                flags |= MHD_USE_IPv6;
        m->mhd = sym_start_daemon(flags, 0, accept_policy, m, handle, m, MHD_OPTION_SOCK_ADDR,
                                  (struct sockaddr *)&ss, MHD_OPTION_CONNECTION_LIMIT, (unsigned)CONN_LIMIT,
                                  MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)CONN_PER_IP,
                                  MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)IDLE_TIMEOUT_S,
                                  MHD_OPTION_NOTIFY_CONNECTION, notify_connection, m,
                                  MHD_OPTION_NOTIFY_COMPLETED, request_completed, m, MHD_OPTION_END);
        if (!m->mhd) {
                snprintf(err, errlen, "node.metrics_listen %s: cannot listen (address in use or not local?)",
                         listen_addr);
                metrics_free(m);
                return -EADDRNOTAVAIL;
        }
        *ret = m;
        return 0;
}

void jd_metrics_stop(jd_metrics *m)
{
        if (!m)
                return;
        sym_stop_daemon(m->mhd); /* every connection is closed (and notified) before it returns */
        metrics_free(m);
}
