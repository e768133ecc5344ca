/* writer.c - joule-dbd's database thread: takes chunks from the cache and stores each in one transaction
 * (nodes seen, records by the store's bulk path with duplicates by (node, seq) dropped, job steps and the
 * jobs they add up to: all through src/store/cluster.h, the writer jouled uses too), retrying with backoff
 * while the database is down or slow (a chunk is never dropped: the event loop stops reading meanwhile);
 * then recomputes the energy aggregations of the windows that chunk touched, from the table itself, so that
 * replays and several dbds sharing one database give the same exact sums. Logs what it retries and what it
 * gives up (it is part of the daemon). */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dbd.h"
#include "log.h"
#include "macro.h"
#include "cluster.h"
#include "rt-record.h"
#include "store.h"
#include "timeutil.h"

#define SEEN_INTERVAL_US (10 * 1000000LL)
/* The ended windows that batches touched are recomputed when the writer is idle, at most every second; while
 * batches keep coming (a backlog: replays, a burst) at most every AGG_BUSY_NS, since every batch of a replay
 * touches the same windows again and each recomputation reads them whole (it was half the writer's time). */
#define AGG_BUSY_NS (10 * NSEC_PER_SEC)

typedef struct {
        char *name;
        int64_t updated_us;  /* when its nodes row was last touched by this writer */
        uint64_t seq;        /* the newest seq of the node in a chunk handed to the database */
        uint64_t seq_stored; /* the newest seq written to its nodes row (last_seq) */
        uint64_t gen;        /* == dbd_writer.gen: listed at idx in the chunk at hand */
        size_t idx;
} seen_slot;

struct dbd_writer {
        pthread_t thread;
        dbd_queue *q;
        char *url;
        int64_t period_us, grace_us, lookback_us;

        jl_store *db;
        bool outage;        /* a failure was logged; log the recovery */
        jl_stmt *st_agg[4]; /* one per scope: cluster, partition, island, node */

        int64_t *dirty; /* aggregation windows to recompute (start_us), unordered, unique */
        size_t ndirty, dirty_cap;
        uint64_t last_agg_ns;

        seen_slot *seen; /* node -> when its nodes row was last updated (open addressing) */
        size_t seen_cap, seen_n;
        uint64_t gen; /* one per nodes_seen() call */
};

static int64_t now_us(void)
{
        return (int64_t)(now_ns(CLOCK_REALTIME) / NSEC_PER_USEC);
}

static bool transient(int r)
{
        return !(r == -EINVAL || r == -ERANGE || r == -EEXIST || r == -E2BIG || r == -EPROTO ||
                 r == -EOPNOTSUPP || r == -EBADMSG);
}

/* ---- statements ---- */

static void finalize_all(dbd_writer *w)
{
        jl_stmt **all[] = {&w->st_agg[0], &w->st_agg[1], &w->st_agg[2], &w->st_agg[3]};
        for (size_t i = 0; i < ARRAY_SIZE(all); i++)
                if (*all[i]) {
                        jl_stmt_finalize(*all[i]);
                        *all[i] = NULL;
                }
}

static void db_close(dbd_writer *w)
{
        finalize_all(w);
        if (w->db)
                jl_store_close(w->db);
        w->db = NULL;
}

static int db_ensure(dbd_writer *w, char *err, size_t errlen)
{
        if (w->db)
                return 0;
        jl_store *s;
        int r = jl_store_open(w->url, JL_STORE_OPEN_CREATE, &s, err, errlen);
        if (r < 0)
                return r;
        r = jl_store_migrate(s);
        if (r < 0) {
                snprintf(err, errlen, "migrations: %s", jl_store_error(s));
                jl_store_close(s);
                return r;
        }
        w->db = s;
        return 0;
}

static int prep(dbd_writer *w, jl_stmt **st, const char *sql)
{
        return *st ? jl_stmt_reset(*st) : jl_store_prepare(w->db, sql, st);
}

static int step_done(jl_stmt *st)
{
        int r = jl_stmt_step(st);
        return r < 0 ? r : 0;
}

/* ---- the seen map ---- */

static uint64_t hash_str(const char *s)
{
        uint64_t h = 1469598103934665603ull;
        for (; *s; s++)
                h = (h ^ (uint8_t)*s) * 1099511628211ull;
        return h;
}

static seen_slot *seen_find(dbd_writer *w, const char *name)
{
        if (w->seen_n * 2 >= w->seen_cap) {
                size_t cap = w->seen_cap ? w->seen_cap * 2 : 1024;
                seen_slot *n = calloc(cap, sizeof(seen_slot));
                if (!n)
                        return NULL;
                for (size_t i = 0; i < w->seen_cap; i++)
                        if (w->seen[i].name) {
                                size_t j = hash_str(w->seen[i].name) & (cap - 1);
                                while (n[j].name)
                                        j = (j + 1) & (cap - 1);
                                n[j] = w->seen[i];
                        }
                free(w->seen);
                w->seen = n;
                w->seen_cap = cap;
        }
        size_t j = hash_str(name) & (w->seen_cap - 1);
        while (w->seen[j].name && strcmp(w->seen[j].name, name) != 0)
                j = (j + 1) & (w->seen_cap - 1);
        if (!w->seen[j].name) {
                if (!(w->seen[j].name = strdup(name)))
                        return NULL;
                w->seen[j].updated_us = INT64_MIN;
                w->seen_n++;
        }
        return &w->seen[j];
}

/* ---- one chunk ---- */

/* The records of a chunk through the shared writer (src/store/cluster.h). */
static int insert_records(dbd_writer *w, const dbd_item *items, size_t n)
{
        size_t nrec = 0;
        for (size_t i = 0; i < n; i++)
                nrec += items[i].kind == DBD_ITEM_RECORD;
        if (nrec == 0)
                return 0;
        _cleanup_free_ jl_store_record *recs = calloc(nrec, sizeof(jl_store_record));
        if (!recs)
                return -ENOMEM;
        size_t k = 0;
        for (size_t i = 0; i < n; i++) {
                const dbd_item *it = &items[i];
                if (it->kind != DBD_ITEM_RECORD)
                        continue;
                recs[k++] = (jl_store_record){.node = it->node,
                                              .seq = it->seq,
                                              .start_us = it->rec.start_us,
                                              .end_us = it->rec.end_us,
                                              .energy_uj = it->rec.energy_uj,
                                              .avg_power_w = it->rec.power_w,
                                              .max_temp_c = it->rec.temp_c,
                                              .avg_freq_khz = it->rec.freq_khz,
                                              .has_job = it->rec.has_job,
                                              .job_id = it->rec.job_id,
                                              .step_id = it->rec.step_id,
                                              .domains_json = it->rec.domains_json,
                                              .gap_us = it->rec.gap_us};
        }
        return jl_store_put_records(w->db, recs, k, NULL);
}

/* The runtime's records of a chunk (applications, loops, events: cluster.h). */
static int rt_messages(dbd_writer *w, const dbd_item *items, size_t n)
{
        size_t nrt = 0;
        for (size_t i = 0; i < n; i++)
                nrt += items[i].kind == DBD_ITEM_RT;
        if (nrt == 0)
                return 0;
        _cleanup_free_ jl_store_rt *v = calloc(nrt, sizeof(jl_store_rt));
        if (!v)
                return -ENOMEM;
        size_t k = 0;
        for (size_t i = 0; i < n; i++) {
                const dbd_item *it = &items[i];
                if (it->kind != DBD_ITEM_RT || !it->rt)
                        continue;
                jl_rt_record_to_store(it->rt, &v[k++]);
        }
        return jl_store_put_rt(w->db, v, k);
}

/* The job step begins and ends of a chunk, in order, and the jobs rows they touch (cluster.h). */
static int job_messages(dbd_writer *w, const dbd_item *items, size_t n)
{
        size_t njob = 0;
        for (size_t i = 0; i < n; i++)
                njob += items[i].kind == DBD_ITEM_JOB;
        if (njob == 0)
                return 0;
        _cleanup_free_ jl_store_job_event *ev = calloc(njob, sizeof(jl_store_job_event));
        if (!ev)
                return -ENOMEM;
        size_t k = 0;
        for (size_t i = 0; i < n; i++) {
                const dbd_item *it = &items[i];
                if (it->kind != DBD_ITEM_JOB)
                        continue;
                ev[k++] = (jl_store_job_event){.node = it->node,
                                               .end = it->job.end,
                                               .job_id = it->job.job_id,
                                               .step_id = it->job.step_id,
                                               .user = it->job.user,
                                               .time_us = it->job.time_us,
                                               .energy_uj = it->job.energy_uj,
                                               .complete = it->job.complete};
        }
        return jl_store_put_job_events(w->db, ev, k);
}

/* last_seen_us and last_seq of the nodes in a chunk: at most every SEEN_INTERVAL_US per node, and always
 * when the node's connection ended in this chunk (a BYE: every connection at shutdown) with a newer seq than
 * its row holds, so that last_seq is exact once a node is disconnected. Names in *ret_due (stable pointers
 * into the map) and their seqs in *ret_seqs, for the caller to note once the transaction commits. */
static int nodes_seen(dbd_writer *w, const dbd_item *items, size_t n, int64_t now, char ***ret_due,
                      uint64_t **ret_seqs, size_t *ret_ndue)
{
        _cleanup_free_ char **names = NULL; /* the nodes of this chunk, each once */
        _cleanup_free_ uint64_t *maxseq = NULL;
        _cleanup_free_ bool *bye = NULL;
        size_t nnames = 0, cap = 0;
        w->gen++;
        const char *last = NULL;
        size_t k = 0;
        for (size_t i = 0; i < n; i++) {
                const dbd_item *it = &items[i];
                if (it->kind != DBD_ITEM_RECORD && it->kind != DBD_ITEM_JOB && it->kind != DBD_ITEM_BYE &&
                    it->kind != DBD_ITEM_RT)
                        continue;
                if (!last || strcmp(last, it->node) != 0) { /* runs of one node's messages: no hashing */
                        seen_slot *s = seen_find(w, it->node);
                        if (!s)
                                return -ENOMEM;
                        if (s->gen != w->gen) {
                                if (nnames == cap) {
                                        cap = cap ? cap * 2 : 64;
                                        char **nn = realloc(names, cap * sizeof(char *));
                                        if (nn)
                                                names = nn;
                                        uint64_t *nq = nn ? realloc(maxseq, cap * sizeof(uint64_t)) : NULL;
                                        if (nq)
                                                maxseq = nq;
                                        bool *nb = nq ? realloc(bye, cap * sizeof(bool)) : NULL;
                                        if (!nb)
                                                return -ENOMEM;
                                        bye = nb;
                                }
                                s->gen = w->gen;
                                s->idx = nnames;
                                names[nnames] = s->name;
                                maxseq[nnames] = 0;
                                bye[nnames++] = false;
                        }
                        k = s->idx;
                        last = s->name;
                }
                if (it->kind == DBD_ITEM_BYE)
                        bye[k] = true;
                else if (it->seq > maxseq[k])
                        maxseq[k] = it->seq;
        }
        _cleanup_free_ char **due = NULL;
        _cleanup_free_ uint64_t *seqs = NULL;
        _cleanup_free_ jl_store_node_seen *v = NULL;
        size_t ndue = 0;
        if (nnames > 0) {
                due = malloc(nnames * sizeof(char *));
                seqs = malloc(nnames * sizeof(uint64_t));
                v = malloc(nnames * sizeof(jl_store_node_seen));
                if (!due || !seqs || !v)
                        return -ENOMEM;
        }
        for (size_t j = 0; j < nnames; j++) {
                seen_slot *s = seen_find(w, names[j]);
                if (!s)
                        return -ENOMEM;
                if (maxseq[j] > s->seq)
                        s->seq = maxseq[j];
                if (s->seq == 0)
                        continue; /* a BYE only: jl_store_node_bye did the rest */
                bool interval = s->updated_us == INT64_MIN || now - s->updated_us >= SEEN_INTERVAL_US;
                if (!interval && !(bye[j] && s->seq > s->seq_stored))
                        continue;
                v[ndue] = (jl_store_node_seen){.node = s->name, .time_us = now, .seq = s->seq};
                due[ndue] = s->name;
                seqs[ndue++] = s->seq;
        }
        int r = ndue > 0 ? jl_store_touch_nodes(w->db, v, ndue) : 0;
        if (r < 0)
                return r;
        *ret_due = TAKE_PTR(due);
        *ret_seqs = TAKE_PTR(seqs);
        *ret_ndue = ndue;
        return 0;
}

static int add_dirty(dbd_writer *w, int64_t start)
{
        for (size_t i = 0; i < w->ndirty; i++)
                if (w->dirty[i] == start)
                        return 0;
        if (w->ndirty == w->dirty_cap) {
                size_t cap = w->dirty_cap ? w->dirty_cap * 2 : 16;
                int64_t *d = realloc(w->dirty, cap * sizeof(int64_t));
                if (!d)
                        return -ENOMEM;
                w->dirty = d;
                w->dirty_cap = cap;
        }
        w->dirty[w->ndirty++] = start;
        return 0;
}

static int64_t floor_div(int64_t a, int64_t b)
{
        int64_t q = a / b;
        return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

static int write_items(dbd_writer *w, const dbd_item *items, size_t n)
{
        int64_t now = now_us();
        _cleanup_free_ char **due = NULL;
        _cleanup_free_ uint64_t *seqs = NULL;
        size_t ndue = 0;
        int r = jl_store_begin_immediate(w->db);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n && r >= 0; i++) {
                const dbd_item *it = &items[i];
                if (it->kind == DBD_ITEM_HELLO)
                        r = jl_store_node_hello(w->db, it->node, it->hello.partition, it->hello.island,
                                                it->hello.time_us, NULL);
                else if (it->kind == DBD_ITEM_BYE)
                        r = jl_store_node_bye(w->db, it->node, it->hello.time_us);
        }
        if (r >= 0)
                r = insert_records(w, items, n);
        if (r >= 0)
                r = job_messages(w, items, n);
        if (r >= 0)
                r = rt_messages(w, items, n);
        if (r >= 0)
                r = nodes_seen(w, items, n, now, &due, &seqs, &ndue);
        if (r >= 0)
                r = jl_store_commit(w->db);
        if (r < 0) {
                char saved[512];
                snprintf(saved, sizeof(saved), "%s", jl_store_error(w->db));
                (void)jl_store_rollback(w->db);
                /* keep the first error's words for the log */
                (void)saved;
                return r;
        }
        for (size_t j = 0; j < ndue; j++) {
                seen_slot *s = seen_find(w, due[j]);
                if (s) {
                        s->updated_us = now;
                        s->seq_stored = MAX(s->seq_stored, seqs[j]);
                }
        }
        /* the aggregation windows these records fall into */
        for (size_t i = 0; i < n; i++) {
                const dbd_item *it = &items[i];
                if (it->kind != DBD_ITEM_RECORD)
                        continue;
                int64_t len = it->rec.end_us - it->rec.start_us;
                if (len > w->lookback_us)
                        w->lookback_us = len;
                int64_t a = floor_div(it->rec.start_us, w->period_us);
                int64_t b = len > 0 ? floor_div(it->rec.end_us - 1, w->period_us) : a;
                for (int64_t k = a; k <= b && k - a < 1000; k++)
                        (void)add_dirty(w, k * w->period_us);
        }
        return 0;
}

/* ---- aggregations ---- */

/* A record's share of a quantity (energy_uj, gap_us) inside the window [$1, $2): in proportion to its time
 * there. */
#define AGG_SHARE(col)                                                                                      \
        "CASE WHEN m.end_us <= m.start_us THEN CAST(" col " AS DOUBLE PRECISION) "                          \
        "ELSE CAST(" col " AS DOUBLE PRECISION) * ((CASE WHEN m.end_us < $2 THEN m.end_us ELSE $2 "         \
        "END) - "                                                                                           \
        "(CASE WHEN m.start_us > $1 THEN m.start_us ELSE $1 END)) / (m.end_us - m.start_us) END"
#define AGG_ENERGY AGG_SHARE("m.energy_uj")
#define AGG_GAP AGG_SHARE("COALESCE(m.gap_us, 0)")
#define AGG_WHERE                                                                                           \
        " m.start_us < $2 AND m.start_us >= $4 AND (m.end_us > $1 OR (m.end_us = m.start_us AND "           \
        "m.start_us >= $1))"
#define AGG_UPSERT                                                                                          \
        " ON CONFLICT (scope, scope_key, start_us) DO UPDATE SET end_us = excluded.end_us, "                \
        "energy_uj = excluded.energy_uj, avg_power_w = excluded.avg_power_w, node_count = "                 \
        "excluded.node_count, records = excluded.records, covered_us = excluded.covered_us, "               \
        "gap_us = excluded.gap_us"
#define AGG_INSERT                                                                                          \
        "INSERT INTO periodic_aggregations (start_us, end_us, scope, scope_key, energy_uj, avg_power_w, "   \
        "node_count, records, covered_us, gap_us) "
/* One scope's rows of the window [$1, $2) ($3 its length, $4 the lookback of the scan): per key the
 * energy, the nodes, the records and the time the records cover inside the window (covered_us: the union
 * of their clipped spans; each record adds what lies beyond the latest end of those that start before
 * it, pm), so that `joule report` gives the power over the time a key reported, not over the window; and
 * the time whose energy was estimated across counter wraps (gap_us, the records' gap_us clipped as their
 * energy is). */
#define AGG_SCOPE(scope, key, join, where)                                                                  \
        AGG_INSERT "SELECT CAST($1 AS BIGINT), CAST($2 AS BIGINT), '" scope "', y.k, "                      \
                   "CAST(ROUND(SUM(y.e)) AS BIGINT), SUM(y.e) / CAST($3 AS DOUBLE PRECISION), "             \
                   "COUNT(DISTINCT y.node), COUNT(*), CAST(SUM(CASE WHEN y.pm IS NULL OR y.s >= y.pm THEN " \
                   "y.t - y.s WHEN y.t > y.pm THEN y.t - y.pm ELSE 0 END) AS BIGINT), "                     \
                   "CAST(ROUND(SUM(y.g)) AS BIGINT) FROM (SELECT x.k, x.node, x.e, x.g, x.s, x.t, "         \
                   "MAX(x.t) OVER (PARTITION BY x.k ORDER BY x.s, x.t ROWS BETWEEN "                        \
                   "UNBOUNDED PRECEDING AND 1 PRECEDING) AS pm FROM (SELECT " key                           \
                   " AS k, m.node AS node, " AGG_ENERGY " AS e, " AGG_GAP                                   \
                   " AS g, CASE WHEN m.start_us > $1 THEN m.start_us ELSE $1 END AS s, CASE "               \
                   "WHEN m.end_us < $2 THEN m.end_us ELSE $2 END AS t FROM periodic_metrics m" join         \
                   " WHERE" AGG_WHERE where ") x) y GROUP BY y.k HAVING COUNT(*) > 0" AGG_UPSERT

static const char *const agg_sql[4] = {
    AGG_SCOPE("cluster", "CAST('cluster' AS TEXT)", "", ""),
    AGG_SCOPE("partition", "n.partition_name", " JOIN nodes n ON n.name = m.node",
              " AND n.partition_name IS NOT NULL"),
    AGG_SCOPE("island", "n.island", " JOIN nodes n ON n.name = m.node", " AND n.island IS NOT NULL"),
    /* per node too, so that `joule report --by node` reads summaries, not every record */
    AGG_SCOPE("node", "m.node", "", ""),
};

static int aggregate_window(dbd_writer *w, int64_t start)
{
        int r = jl_store_begin_immediate(w->db);
        if (r < 0)
                return r;
        r = jl_store_cluster_lock(w->db);
        for (size_t i = 0; i < ARRAY_SIZE(agg_sql) && r >= 0; i++) {
                r = prep(w, &w->st_agg[i], agg_sql[i]);
                jl_stmt *st = w->st_agg[i];
                if (r >= 0 && (r = jl_stmt_bind_int64(st, 1, start)) >= 0 &&
                    (r = jl_stmt_bind_int64(st, 2, start + w->period_us)) >= 0 &&
                    (r = jl_stmt_bind_int64(st, 3, w->period_us)) >= 0 &&
                    (r = jl_stmt_bind_int64(st, 4, start - w->lookback_us)) >= 0)
                        r = step_done(st);
        }
        if (r >= 0)
                r = jl_store_commit(w->db);
        if (r < 0)
                (void)jl_store_rollback(w->db);
        return r;
}

/* Recompute the dirty windows that have ended (all of them when all is set). */
static int aggregate(dbd_writer *w, bool all)
{
        if (w->ndirty == 0)
                return 0;
        char err[512];
        int r = db_ensure(w, err, sizeof(err));
        if (r < 0)
                return r;
        int64_t now = now_us();
        for (size_t i = 0; i < w->ndirty;) {
                int64_t start = w->dirty[i];
                if (!all && start + w->period_us + w->grace_us > now) {
                        i++;
                        continue;
                }
                r = aggregate_window(w, start);
                if (r < 0) {
                        log_warning(r, "aggregation of the window at %" PRId64 " µs: %s (will retry)", start,
                                    jl_store_error(w->db));
                        if (r == -ECONNRESET)
                                db_close(w);
                        return r;
                }
                w->dirty[i] = w->dirty[--w->ndirty];
        }
        return 0;
}

/* ---- the thread ---- */

static void sleep_interruptible(dbd_writer *w, unsigned ms)
{
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        uint64_t ns = (uint64_t)until.tv_nsec + (uint64_t)ms * NSEC_PER_MSEC;
        until.tv_sec += (time_t)(ns / NSEC_PER_SEC);
        until.tv_nsec = (long)(ns % NSEC_PER_SEC);
        pthread_mutex_lock(&w->q->lock);
        if (!w->q->abort)
                pthread_cond_timedwait(&w->q->cond, &w->q->lock, &until);
        pthread_mutex_unlock(&w->q->lock);
}

static bool aborted(dbd_writer *w)
{
        pthread_mutex_lock(&w->q->lock);
        bool a = w->q->abort;
        pthread_mutex_unlock(&w->q->lock);
        return a;
}

static void set_db_ok(dbd_writer *w, bool ok)
{
        pthread_mutex_lock(&w->q->lock);
        w->q->db_ok = ok;
        pthread_mutex_unlock(&w->q->lock);
}

/* A chunk that fails for a reason other than the database's availability: item by item, each in its own
 * transaction; what still fails is logged (and kept in events where possible), so that one bad item cannot
 * hold up the others forever. */
static void isolate(dbd_writer *w, dbd_chunk *c)
{
        for (size_t i = 0; i < c->n; i++) {
                char err[512];
                int r = db_ensure(w, err, sizeof(err));
                if (r == 0)
                        r = write_items(w, &c->items[i], 1);
                if (r == 0)
                        continue;
                const dbd_item *it = &c->items[i];
                log_error(r, "node %s: message seq %" PRIu64 " cannot be stored and is dropped: %s",
                          it->node, it->seq, w->db ? jl_store_error(w->db) : err);
                if (!w->db)
                        continue;
                _cleanup_stmt_ jl_stmt *st = NULL;
                char msg[600];
                snprintf(msg, sizeof(msg), "joule-dbd could not store message seq %" PRIu64 ": %s", it->seq,
                         jl_store_error(w->db));
                if (jl_store_prepare(w->db,
                                     "INSERT INTO events (time_us, node, kind, message) VALUES ($1, $2, "
                                     "'dbd_dropped', $3)",
                                     &st) == 0 &&
                    jl_stmt_bind_int64(st, 1, now_us()) == 0 && jl_stmt_bind_text(st, 2, it->node) == 0 &&
                    jl_stmt_bind_text(st, 3, msg) == 0)
                        (void)jl_stmt_step(st);
        }
}

static void write_chunk(dbd_writer *w, dbd_chunk *c)
{
        unsigned backoff = 100, hard = 0;
        for (;;) {
                char err[512] = "";
                int r = db_ensure(w, err, sizeof(err));
                if (r == 0) {
                        r = write_items(w, c->items, c->n);
                        if (r < 0)
                                snprintf(err, sizeof(err), "%s", jl_store_error(w->db));
                }
                if (r == 0) {
                        if (w->outage)
                                log_notice("database reachable again: storing the cached records");
                        w->outage = false;
                        set_db_ok(w, true);
                        c->stored = true;
                        return;
                }
                if (!transient(r) && ++hard >= 3) {
                        log_error(r, "a batch of %zu messages fails: %s; storing it message by message",
                                  c->n, err);
                        isolate(w, c);
                        c->stored = true;
                        return;
                }
                if (!w->outage)
                        log_warning(r,
                                    "cannot store a batch of %zu messages: %s; retrying (the nodes keep "
                                    "their records meanwhile)",
                                    c->n, err);
                else
                        log_debug("still cannot store: %s", err);
                w->outage = true;
                set_db_ok(w, false);
                if (r == -ECONNRESET || r == -ECONNREFUSED || r == -ETIMEDOUT || !w->db)
                        db_close(w);
                if (aborted(w))
                        return;
                sleep_interruptible(w, backoff);
                backoff = MIN(backoff * 2, 5000u);
        }
}

static void *writer_main(void *arg)
{
        dbd_writer *w = arg;
        dbd_queue *q = w->q;
        pthread_mutex_lock(&q->lock);
        for (;;) {
                if (q->abort)
                        break;
                dbd_chunk *c = q->head;
                uint64_t now = mono_ns();
                bool ready = c && (c->n >= q->batch_records || q->flush_all ||
                                   now - c->first_ns >= q->batch_ms * NSEC_PER_MSEC);
                if (ready && w->ndirty > 0 && now - w->last_agg_ns >= AGG_BUSY_NS) {
                        pthread_mutex_unlock(&q->lock);
                        (void)aggregate(w, false);
                        w->last_agg_ns = mono_ns();
                        pthread_mutex_lock(&q->lock);
                        continue;
                }
                if (ready) {
                        q->head = c->next;
                        if (!q->head)
                                q->tail = NULL;
                        c->next = NULL;
                        pthread_mutex_unlock(&q->lock);
                        write_chunk(w, c);
                        pthread_mutex_lock(&q->lock);
                        c->next = q->done;
                        q->done = c;
                        uint64_t one = 1;
                        ssize_t k = write(q->done_fd, &one, sizeof(one));
                        (void)k;
                        continue;
                }
                if (q->stop && !c)
                        break;
                /* idle: the aggregation of ended windows, then wait for a chunk to be due */
                if (now - w->last_agg_ns >= NSEC_PER_SEC && w->ndirty > 0) {
                        pthread_mutex_unlock(&q->lock);
                        (void)aggregate(w, false);
                        w->last_agg_ns = mono_ns();
                        pthread_mutex_lock(&q->lock);
                        continue;
                }
                uint64_t wait_ns = c ? c->first_ns + q->batch_ms * NSEC_PER_MSEC : now + NSEC_PER_SEC;
                struct timespec until = ns_to_timespec(wait_ns);
                pthread_cond_timedwait(&q->cond, &q->lock, &until);
        }
        bool abort = q->abort;
        pthread_mutex_unlock(&q->lock);
        if (!abort && aggregate(w, true) < 0)
                log_warning(0,
                            "%zu aggregation windows were not recomputed (the next run or another dbd will)",
                            w->ndirty);
        return NULL;
}

int dbd_writer_start(const dbd_writer_opts *o, dbd_writer **ret)
{
        dbd_writer *w = calloc(1, sizeof(*w));
        if (!w)
                return -ENOMEM;
        w->q = o->queue;
        w->url = strdup(o->url);
        if (!w->url) {
                free(w);
                return -ENOMEM;
        }
        w->period_us = (int64_t)llround(o->aggregation_period_s * 1e6);
        if (w->period_us < 1000000)
                w->period_us = 1000000;
        w->grace_us = MIN(w->period_us, 5 * 1000000LL);
        w->lookback_us = w->period_us;
        w->last_agg_ns = mono_ns();
        int r = -pthread_create(&w->thread, NULL, writer_main, w);
        if (r < 0) {
                free(w->url);
                free(w);
                return r;
        }
        *ret = w;
        return 0;
}

void dbd_writer_join(dbd_writer *w)
{
        if (!w)
                return;
        pthread_mutex_lock(&w->q->lock);
        pthread_cond_broadcast(&w->q->cond);
        pthread_mutex_unlock(&w->q->lock);
        pthread_join(w->thread, NULL);
        db_close(w);
        for (size_t i = 0; i < w->seen_cap; i++)
                free(w->seen[i].name);
        free(w->seen);
        free(w->dirty);
        free(w->url);
        free(w);
}
