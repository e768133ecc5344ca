/* sink.c - where jouled's records and job messages go. Producers (the monitor, the request handlers)
 * append to an in-memory queue in sequence order and never wait; the sink's own thread delivers the queue
 * head first. Without node.dbd it writes straight into the store at database.url (single machine: SQLite,
 * created and migrated on first use): periodic_metrics, steps, jobs and this node's row in nodes through
 * the store's cluster writer (src/store/cluster.h, joule-dbd's too: the same rows), each batch in one
 * transaction, idempotent by (node, seq) and (job, step, node) so that a retried batch is harmless; a failed
 * batch stays queued and is retried with a back-off. At a stop, what the store did not take within the
 * stop's time (the database away or locked) is written to node.state_dir/pending (fsync'd) and queued
 * first at the next start, so that jouled stops at once without losing it. With node.dbd set the messages
 * go to the reporter (src/jouled/reporter.h, which spools and replays). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config-joule.h"
#include "json.h"
#include "jouled.h"
#include "log.h"
#include "macro.h"
#include "parse.h"
#include "cluster.h"
#include "store.h"
#include "timeutil.h"
#include "reporter.h"
#include "rt-record.h"
#include "wire.h"

#define QUEUE_MAX 20000 /* ~55 h of records at the default period */
#define BATCH_MAX 256
#define STORE_STOP_MS 500 /* at a stop, the store's time to take what is queued (it takes a batch in ms) */
#define PENDING_MAGIC "JLPEND1\n"
#define PENDING_MAGIC_LEN 8

typedef struct item item;
enum { ITEM_RECORD, ITEM_JOB, ITEM_RT };

struct item {
        item *next;
        uint8_t kind; /* ITEM_* */
        union {
                jl_msg_record rec;
                jl_msg_job job;
                jl_msg_rt rt;
        };
};

struct jd_sink {
        pthread_t thread;
        bool thread_started;
        pthread_mutex_t mu;
        pthread_cond_t cv;
        item *head, *tail;
        uint64_t queued, delivered, dropped;
        bool stop;
        bool thread_done;  /* the thread has left its loop */
        bool spilled;      /* the queue went to the pending file at the stop: leave that file alone */
        bool pending_file; /* the pending file of the last stop was loaded and is not all delivered yet */
        uint64_t stop_deadline_ns;
        char *pending_path; /* node.state_dir/pending */
        char err[256];
        bool dbd;
        char *url, *node, *partition, *island;
        jl_store *store;       /* sink thread only */
        jl_reporter *reporter; /* node.dbd set: the messages go there, the queue stays empty */
        bool was_connected;    /* jd_sink_log_changes() (monitor thread only) */
        char logged_err[256];
};

static int push(jd_sink *s, item *it)
{
        pthread_mutex_lock(&s->mu);
        if (s->queued >= QUEUE_MAX) {
                /* the store has been unreachable for days: keep the newest */
                item *old = s->head;
                s->head = old->next;
                if (!s->head)
                        s->tail = NULL;
                s->queued--;
                s->dropped++;
                free(old);
                snprintf(s->err, sizeof(s->err), "queue full: %" PRIu64 " oldest messages dropped",
                         s->dropped);
        }
        if (s->tail)
                s->tail->next = it;
        else
                s->head = it;
        s->tail = it;
        s->queued++;
        pthread_cond_signal(&s->cv);
        pthread_mutex_unlock(&s->mu);
        return 0;
}

int jd_sink_record(jd_sink *s, const jl_msg_record *m)
{
        if (s->reporter)
                return jl_reporter_submit_record(s->reporter, m);
        item *it = calloc(1, sizeof(*it));
        if (!it)
                return -ENOMEM;
        it->rec = *m;
        return push(s, it);
}

int jd_sink_job(jd_sink *s, const jl_msg_job *m)
{
        if (s->reporter)
                return jl_reporter_submit_job(s->reporter, m);
        item *it = calloc(1, sizeof(*it));
        if (!it)
                return -ENOMEM;
        it->kind = ITEM_JOB;
        it->job = *m;
        return push(s, it);
}

int jd_sink_rt(jd_sink *s, const jl_msg_rt *m)
{
        if (s->reporter)
                return jl_reporter_submit_rt(s->reporter, m);
        item *it = calloc(1, sizeof(*it));
        if (!it)
                return -ENOMEM;
        it->kind = ITEM_RT;
        it->rt = *m;
        return push(s, it);
}

void jd_sink_status(jd_sink *s, uint64_t *ret_queued, uint64_t *ret_delivered, char *err, size_t errlen)
{
        if (s->reporter) {
                jl_reporter_status st;
                jl_reporter_get_status(s->reporter, &st);
                *ret_queued = st.pending;
                *ret_delivered = st.acked;
                snprintf(err, errlen, "%s", st.last_error);
                return;
        }
        pthread_mutex_lock(&s->mu);
        *ret_queued = s->queued;
        *ret_delivered = s->delivered;
        snprintf(err, errlen, "%s", s->err);
        pthread_mutex_unlock(&s->mu);
}

const char *jd_sink_kind(const jd_sink *s)
{
        return s->dbd ? "dbd" : "store";
}

/* periodic_metrics.domains_json as joule-dbd writes it (src/dbd/conn.c): {"name":µJ,...}, NULL when none. */
static int64_t now_realtime_us(void)
{
        return (int64_t)(now_ns(CLOCK_REALTIME) / NSEC_PER_USEC);
}

static int domains_json(const jl_msg_record *m, char **ret)
{
        if (m->ndomains == 0) {
                *ret = NULL;
                return 0;
        }
        char *buf = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&buf, &size);
        if (!f)
                return -ENOMEM;
        json_writer w;
        json_init(&w, f);
        json_object_begin(&w);
        for (size_t i = 0; i < m->ndomains; i++) {
                json_key(&w, m->domains[i].name);
                json_uint(&w, m->domains[i].energy_uj);
        }
        json_object_end(&w);
        if (fclose(f) != 0 || !buf) {
                free(buf);
                return -ENOMEM;
        }
        *ret = buf;
        return 0;
}

/* n items from first into the store through the shared writer (src/store/cluster.h), in the caller's
 * transaction: the records, the job step messages, this node's last seen and last seq. */
static int write_items(jd_sink *s, item *first, size_t n)
{
        _cleanup_free_ jl_store_record *recs = calloc(n, sizeof(jl_store_record));
        _cleanup_free_ jl_store_job_event *ev = calloc(n, sizeof(jl_store_job_event));
        _cleanup_free_ char **json = calloc(n, sizeof(char *));
        _cleanup_free_ jl_store_rt *rts = calloc(n, sizeof(jl_store_rt));
        if (!recs || !ev || !json || !rts)
                return -ENOMEM;
        size_t nrec = 0, nev = 0, nrt = 0;
        uint64_t last_seq = 0;
        int r = 0;
        item *it = first;
        for (size_t i = 0; i < n && r >= 0; i++, it = it->next) {
                if (it->kind == ITEM_RT) {
                        last_seq = MAX(last_seq, it->rt.seq);
                        jl_rt_record_to_store(&it->rt, &rts[nrt++]);
                        continue;
                }
                if (it->kind == ITEM_JOB) {
                        const jl_msg_job *m = &it->job;
                        int64_t job;
                        last_seq = MAX(last_seq, m->seq);
                        if (jl_msg_job_id_parse(m->job_id, &job) < 0)
                                continue; /* jouled accepts numeric job ids only; nothing else can reach here
                                           */
                        ev[nev++] = (jl_store_job_event){.node = m->node,
                                                         .end = m->end,
                                                         .job_id = job,
                                                         .step_id = m->step_id,
                                                         .user = m->user,
                                                         .time_us = (int64_t)m->time_us,
                                                         .energy_uj = (int64_t)m->energy_uj,
                                                         .complete = m->complete};
                        continue;
                }
                const jl_msg_record *m = &it->rec;
                last_seq = MAX(last_seq, m->seq);
                jl_store_record *rec = &recs[nrec];
                *rec = (jl_store_record){.node = m->node,
                                         .seq = m->seq,
                                         .start_us = (int64_t)m->start_us,
                                         .end_us = (int64_t)m->end_us,
                                         .energy_uj = (int64_t)m->energy_uj,
                                         .avg_power_w = m->avg_power_w,
                                         .max_temp_c = m->temp_max_c,
                                         .avg_freq_khz = m->freq_avg_khz,
                                         .step_id = m->step_id,
                                         .gap_us = (int64_t)m->gap_us};
                rec->has_job = m->job_id[0] && jl_msg_job_id_parse(m->job_id, &rec->job_id) == 0;
                r = domains_json(m, &json[nrec]);
                rec->domains_json = json[nrec];
                nrec++;
        }
        if (r >= 0)
                r = jl_store_put_records(s->store, recs, nrec, NULL);
        if (r >= 0)
                r = jl_store_put_job_events(s->store, ev, nev);
        if (r >= 0)
                r = jl_store_put_rt(s->store, rts, nrt);
        if (r >= 0 && last_seq > 0) {
                jl_store_node_seen seen = {.node = s->node, .time_us = now_realtime_us(), .seq = last_seq};
                r = jl_store_touch_nodes(s->store, &seen, 1);
        }
        for (size_t i = 0; i < nrec; i++)
                free(json[i]);
        return r;
}

static int store_connect(jd_sink *s)
{
        if (s->store)
                return 0;
        char err[512];
        int r = jl_store_open(s->url, JL_STORE_OPEN_CREATE, &s->store, err, sizeof(err));
        if (r < 0) {
                pthread_mutex_lock(&s->mu);
                jd_copy(s->err, sizeof(s->err), err);
                pthread_mutex_unlock(&s->mu);
                return r;
        }
        r = jl_store_migrate(s->store);
        if (r >= 0)
                r = jl_store_node_hello(s->store, s->node, s->partition, s->island, now_realtime_us(),
                                        JOULE_VERSION);
        if (r < 0) {
                pthread_mutex_lock(&s->mu);
                snprintf(s->err, sizeof(s->err), "preparing the database: %s", jl_store_error(s->store));
                pthread_mutex_unlock(&s->mu);
                jl_store_close(s->store);
                s->store = NULL;
                return r;
        }
        return 0;
}

/* Deliver up to BATCH_MAX items from the head (still queued) in one transaction. */
static int deliver_batch(jd_sink *s, item *first, size_t n)
{
        int r = store_connect(s);
        if (r < 0)
                return r;
        r = jl_store_begin(s->store);
        if (r == 0)
                r = write_items(s, first, n);
        if (r == 0)
                r = jl_store_commit(s->store);
        if (r < 0) {
                pthread_mutex_lock(&s->mu);
                jd_copy(s->err, sizeof(s->err), jl_store_error(s->store));
                pthread_mutex_unlock(&s->mu);
                (void)jl_store_rollback(s->store);
                jl_store_close(s->store); /* reconnect on the next try */
                s->store = NULL;
        }
        return r;
}

static void *sink_thread(void *userdata)
{
        jd_sink *s = userdata;
        unsigned backoff_ms = 0;
        bool logged = false;
        for (;;) {
                pthread_mutex_lock(&s->mu);
                while (!s->head && !s->stop)
                        pthread_cond_wait(&s->cv, &s->mu);
                if (backoff_ms && !(s->stop && mono_ns() >= s->stop_deadline_ns)) {
                        struct timespec ts;
                        clock_gettime(CLOCK_MONOTONIC, &ts);
                        uint64_t until = (uint64_t)ts.tv_sec * NSEC_PER_SEC + (uint64_t)ts.tv_nsec +
                                         backoff_ms * NSEC_PER_MSEC;
                        if (s->stop && until > s->stop_deadline_ns)
                                until = s->stop_deadline_ns;
                        ts = ns_to_timespec(until);
                        pthread_cond_timedwait(&s->cv, &s->mu, &ts);
                }
                if (!s->head || (s->stop && mono_ns() >= s->stop_deadline_ns)) {
                        bool done = s->stop;
                        pthread_mutex_unlock(&s->mu);
                        if (done)
                                break;
                        continue;
                }
                item *first = s->head;
                size_t n = 0;
                for (item *it = first; it && n < BATCH_MAX; it = it->next)
                        n++;
                pthread_mutex_unlock(&s->mu);

                int r = s->dbd ? -EOPNOTSUPP : deliver_batch(s, first, n);
                if (r < 0) {
                        char err[256];
                        pthread_mutex_lock(&s->mu);
                        if (s->dbd)
                                snprintf(s->err, sizeof(s->err),
                                         "node.dbd is set but this jouled has no reporter");
                        jd_copy(err, sizeof(err), s->err);
                        pthread_mutex_unlock(&s->mu);
                        if (!logged)
                                log_error(r, "records not stored yet (%s); kept in memory and retried", err);
                        logged = true;
                        backoff_ms = backoff_ms ? MIN(backoff_ms * 2, 10000u) : 250;
                        continue;
                }
                if (logged)
                        log_notice("records are stored again");
                logged = false;
                backoff_ms = 0;
                pthread_mutex_lock(&s->mu);
                for (size_t i = 0; i < n && s->head; i++) {
                        item *it = s->head;
                        s->head = it->next;
                        free(it);
                        s->queued--;
                        s->delivered++;
                }
                if (!s->head) {
                        s->tail = NULL;
                        if (s->pending_file && !s->spilled) {
                                /* everything of the last stop is stored now */
                                (void)unlink(s->pending_path);
                                s->pending_file = false;
                        }
                }
                s->err[0] = '\0';
                pthread_mutex_unlock(&s->mu);
        }
        pthread_mutex_lock(&s->mu);
        s->thread_done = true;
        pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&s->mu);
        return NULL;
}

/* The queue into the pending file (temporary file, fsync, rename, fsync of the directory): the frames as on
 * the wire after a magic line. Lock held. */
static int spill_locked(jd_sink *s)
{
        _cleanup_free_ char *tmp = NULL;
        if (asprintf(&tmp, "%s.XXXXXX", s->pending_path) < 0)
                return -ENOMEM;
        _cleanup_close_ int fd = mkostemp(tmp, O_CLOEXEC);
        if (fd < 0)
                return negative_errno();
        _cleanup_fclose_ FILE *f = fdopen(fd, "w");
        if (!f) {
                int r = negative_errno();
                unlink(tmp);
                return r;
        }
        int dupfd = TAKE_FD(fd); /* f owns it now */
        int r = fputs(PENDING_MAGIC, f) < 0 ? -EIO : 0;
        for (item *it = s->head; it && r == 0; it = it->next) {
                jl_wbuf w;
                const uint8_t *data;
                size_t len;
                r = it->kind == ITEM_JOB  ? jl_msg_job_encode(&it->job, 0, &w)
                    : it->kind == ITEM_RT ? jl_msg_rt_encode(&it->rt, 0, &w)
                                          : jl_msg_record_encode(&it->rec, 0, &w);
                if (r == 0) {
                        r = jl_wbuf_finish(&w, &data, &len);
                        if (r == 0 && fwrite(data, 1, len, f) != len)
                                r = -EIO;
                        jl_wbuf_free(&w);
                }
        }
        if (r == 0 && (fflush(f) != 0 || fsync(dupfd) < 0))
                r = negative_errno();
        if (r == 0 && rename(tmp, s->pending_path) < 0)
                r = negative_errno();
        if (r < 0) {
                unlink(tmp);
                return r;
        }
        _cleanup_free_ char *dir = strdup(s->pending_path);
        char *slash = dir ? strrchr(dir, '/') : NULL;
        if (slash) {
                *slash = '\0';
                _cleanup_close_ int dfd = open(*dir ? dir : "/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                if (dfd >= 0)
                        (void)fsync(dfd);
        }
        return 0;
}

/* The pending file of the last stop, queued first. A file that does not decode is moved aside (logged). */
static int load_pending(jd_sink *s)
{
        _cleanup_fclose_ FILE *f = fopen(s->pending_path, "re");
        if (!f)
                return errno == ENOENT ? 0 : negative_errno();
        char magic[PENDING_MAGIC_LEN];
        size_t n = 0, bad = 0;
        if (fread(magic, 1, sizeof(magic), f) != sizeof(magic) ||
            memcmp(magic, PENDING_MAGIC, sizeof(magic)))
                bad++;
        while (!bad) {
                uint8_t hdr[JL_WIRE_HEADER_SIZE];
                size_t got = fread(hdr, 1, sizeof(hdr), f);
                if (got == 0)
                        break;
                jl_frame_header h;
                if (got != sizeof(hdr) || jl_frame_header_decode(hdr, JL_WIRE_MAX_PAYLOAD, &h) < 0 ||
                    (h.type != JL_MSG_RECORD && h.type != JL_MSG_JOB && h.type != JL_MSG_RT)) {
                        bad++;
                        break;
                }
                _cleanup_free_ uint8_t *payload = malloc(h.length ? h.length : 1);
                item *it = calloc(1, sizeof(*it));
                char why[256];
                if (!payload || !it) {
                        free(it);
                        return -ENOMEM;
                }
                it->kind = h.type == JL_MSG_JOB ? ITEM_JOB : h.type == JL_MSG_RT ? ITEM_RT : ITEM_RECORD;
                if (fread(payload, 1, h.length, f) != h.length ||
                    (it->kind == ITEM_JOB ? jl_msg_job_decode(payload, h.length, &it->job, why, sizeof(why))
                     : it->kind == ITEM_RT
                         ? jl_msg_rt_decode(payload, h.length, &it->rt, why, sizeof(why))
                         : jl_msg_record_decode(payload, h.length, &it->rec, why, sizeof(why))) < 0) {
                        free(it);
                        bad++;
                        break;
                }
                (void)push(s, it);
                n++;
        }
        if (bad) {
                char aside[4200];
                snprintf(aside, sizeof(aside), "%s.bad", s->pending_path);
                (void)rename(s->pending_path, aside);
                log_warning(0, "%s: not a pending file of jouled after %zu messages; moved to %s",
                            s->pending_path, n, aside);
                return 0;
        }
        if (n > 0) {
                s->pending_file = true;
                log_notice("%zu records and job messages of the last stop queued again from %s", n,
                           s->pending_path);
        } else
                (void)unlink(s->pending_path);
        return 0;
}

int jd_sink_open(const joule_config *cfg, jd_sink **ret, char *err, size_t errlen)
{
        jd_sink *s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        pthread_mutex_init(&s->mu, NULL);
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&s->cv, &ca);
        pthread_condattr_destroy(&ca);
        s->dbd = cfg->node.dbd != NULL;
        s->url = strdup(cfg->database.url);
        s->node = strdup(cfg->node.name);
        s->partition = cfg->node.partition ? strdup(cfg->node.partition) : NULL;
        s->island = cfg->node.island ? strdup(cfg->node.island) : NULL;
        if (!s->url || !s->node) {
                jd_sink_close(s, 0);
                return -ENOMEM;
        }
        if (s->dbd) {
                jl_reporter_opts o = {.node = cfg->node.name,
                                      .dbd = cfg->node.dbd,
                                      .spool = cfg->node.spool,
                                      .partition = cfg->node.partition,
                                      .island = cfg->node.island,
                                      .auth = {.socket = cfg->node.munge_socket}};
                int r = jl_reporter_new(&o, &s->reporter, err, errlen);
                if (r < 0) {
                        jd_sink_close(s, 0);
                        return r;
                }
                char pending[4200];
                snprintf(pending, sizeof(pending), "%s/pending", cfg->node.state_dir);
                if (access(pending, F_OK) == 0)
                        log_warning(0,
                                    "%s holds what the store had not taken when jouled last stopped without "
                                    "node.dbd; it is kept for a start without node.dbd",
                                    pending);
                *ret = s;
                return 0; /* no thread of ours: the reporter has its own */
        }
        if (asprintf(&s->pending_path, "%s/pending", cfg->node.state_dir) < 0) {
                s->pending_path = NULL;
                jd_sink_close(s, 0);
                return -ENOMEM;
        }
        int k = load_pending(s);
        if (k < 0) {
                snprintf(err, errlen, "%s: %s", s->pending_path, strerror(-k));
                jd_sink_close(s, 0);
                return k;
        }
        if (!s->dbd) {
                /* open now, so that a wrong database.url is reported at start */
                int r = store_connect(s);
                if (r < 0) {
                        char red[512];
                        snprintf(err, errlen, "database %s: %s",
                                 jl_store_url_redact(s->url, red, sizeof(red)), s->err);
                        jd_sink_close(s, 0);
                        return r;
                }
        }
        int r = pthread_create(&s->thread, NULL, sink_thread, s);
        if (r != 0) {
                snprintf(err, errlen, "starting the sink thread: %s", strerror(r));
                jd_sink_close(s, 0);
                return -r;
        }
        s->thread_started = true;
        *ret = s;
        return 0;
}

void jd_sink_log_changes(jd_sink *s)
{
        if (!s->reporter)
                return;
        jl_reporter_status st;
        jl_reporter_get_status(s->reporter, &st);
        if (st.connected != s->was_connected ||
            (!st.connected && strcmp(st.last_error, s->logged_err) != 0)) {
                if (st.connected)
                        log_notice("joule-dbd: connected; %" PRIu64 " messages pending", st.pending);
                else
                        log_warning(0,
                                    "joule-dbd: not connected (%s); messages are kept in the spool (%" PRIu64
                                    " pending)",
                                    st.last_error[0] ? st.last_error : "connecting", st.pending);
                s->was_connected = st.connected;
                jd_copy(s->logged_err, sizeof(s->logged_err), st.last_error);
        }
}

uint64_t jd_sink_last_seq(jd_sink *s)
{
        if (s->reporter) {
                jl_reporter_status st;
                jl_reporter_get_status(s->reporter, &st);
                return st.last_seq;
        }
        return 0;
}

void jd_sink_close(jd_sink *s, unsigned timeout_ms)
{
        if (!s)
                return;
        jl_reporter_free(s->reporter, timeout_ms);
        s->reporter = NULL;
        if (s->thread_started) {
                pthread_mutex_lock(&s->mu);
                s->stop = true;
                /* a store that failed its last batch gets no more time: the pending file is as safe */
                s->stop_deadline_ns =
                    mono_ns() + (s->err[0] ? 0 : MIN(timeout_ms, STORE_STOP_MS) * NSEC_PER_MSEC);
                pthread_cond_broadcast(&s->cv);
                /* the thread leaves its loop at the deadline, unless a store call holds it (SQLite waiting
                 * on a lock, a PostgreSQL server that does not answer): then what it holds goes to disk
                 * below and the thread is left to the exit */
                struct timespec ts = ns_to_timespec(s->stop_deadline_ns);
                while (!s->thread_done)
                        if (pthread_cond_timedwait(&s->cv, &s->mu, &ts) == ETIMEDOUT)
                                break;
                bool done = s->thread_done;
                if (s->queued) {
                        int r = spill_locked(s);
                        if (r < 0)
                                log_error(r,
                                          "%" PRIu64
                                          " records and job messages were not stored before exit, "
                                          "and cannot be written to %s: %s",
                                          s->queued, s->pending_path, strerror(-r));
                        else
                                log_notice("%" PRIu64
                                           " records and job messages not stored yet are kept in %s "
                                           "for the next start (%s)",
                                           s->queued, s->pending_path,
                                           s->err[0] ? s->err : "the stop's time ran out");
                        s->spilled = true;
                }
                pthread_mutex_unlock(&s->mu);
                if (!done) {
                        log_warning(0,
                                    "the store did not answer within the stop's %u ms; not waiting for it",
                                    timeout_ms);
                        pthread_detach(s->thread);
                        return; /* the thread still uses s: it ends with the process */
                }
                pthread_join(s->thread, NULL);
        } else if (s->queued)
                log_warning(0, "%" PRIu64 " records and job messages were not stored before exit",
                            s->queued);
        while (s->head) {
                item *it = s->head;
                s->head = it->next;
                free(it);
        }
        if (s->store) {
                if (!s->spilled) /* the store took everything: it answers */
                        (void)jl_store_node_bye(s->store, s->node, now_realtime_us());
                jl_store_close(s->store);
        }
        pthread_cond_destroy(&s->cv);
        pthread_mutex_destroy(&s->mu);
        free(s->url);
        free(s->node);
        free(s->partition);
        free(s->island);
        free(s->pending_path);
        free(s);
}
