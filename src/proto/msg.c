/* msg.c - encoders and strict decoders of joule's daemon messages (see msg.h). */
#include "msg.h"

#include "macro.h"
#include "why.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

/* Attribute numbers, per message. Never reuse a number for another meaning. */
enum {
        A_NODE = 1,
        A_SEQ = 2,
        A_START = 3,
        A_END = 4,
        A_ENERGY = 5,
        A_POWER = 6,
        A_TEMP_MAX = 7,
        A_FREQ_AVG = 8,
        A_JOB = 9,
        A_STEP = 10,
        A_DOMAIN = 11, /* nested: A_NAME, A_ENERGY */
        A_NAME = 12,
        A_CRED = 13,
        A_KIND = 14, /* job: 0 begin, 1 end */
        A_USER = 15,
        A_TIME = 16,
        A_COMPLETE = 17,
        A_ERRNO = 18,
        A_MESSAGE = 19,
        A_NEXT_SEQ = 20,
        A_OP = 21,
        A_CPUMASK = 22,
        A_KHZ = 23,
        A_GPU = 24,
        A_GPU_KHZ = 25, /* repeated */
        A_WATTS = 26,
        A_TEXT = 27,
        A_TIME_MS = 28,
        A_PARTITION = 29, /* hello */
        A_ISLAND = 30,    /* hello */
        A_GAP_US = 31,    /* record: optional (absent: 0) */
        A_RT = 32,        /* request: nested runtime record */
        A_RT_KIND = 33,   /* runtime record: JL_RT_* */
        A_RT_NAME = 34,   /* app_name, loop_key or event kind */
        A_POLICY = 35,
        A_TAG = 36,
        A_POLICY_TH = 37,
        A_TIME_S = 38,
        A_ENERGY_J = 39,
        A_PCK_POWER = 40,
        A_DRAM_POWER = 41,
        A_CPI = 42,
        A_TPI = 43,
        A_GBS = 44,
        A_GFLOPS = 45,
        A_TIME_PER_ITER = 46,
        A_VALUE = 47,
        A_ITERATIONS = 48,
        A_AVG_KHZ = 49,
        A_DEF_KHZ = 50,
        A_PID = 51, /* request: WATCH_PID */
        A_MAX = 64,
};

static const char *attr_name(uint16_t t)
{
        static const char *const names[A_MAX] = {
            [A_NODE] = "node",
            [A_SEQ] = "seq",
            [A_START] = "start",
            [A_END] = "end",
            [A_ENERGY] = "energy",
            [A_POWER] = "power",
            [A_TEMP_MAX] = "temp_max",
            [A_FREQ_AVG] = "freq_avg",
            [A_JOB] = "job",
            [A_STEP] = "step",
            [A_DOMAIN] = "domain",
            [A_NAME] = "name",
            [A_CRED] = "credential",
            [A_KIND] = "kind",
            [A_USER] = "user",
            [A_TIME] = "time",
            [A_COMPLETE] = "complete",
            [A_ERRNO] = "errno",
            [A_MESSAGE] = "message",
            [A_NEXT_SEQ] = "next_seq",
            [A_OP] = "op",
            [A_CPUMASK] = "cpumask",
            [A_KHZ] = "khz",
            [A_GPU] = "gpu",
            [A_GPU_KHZ] = "gpu_khz",
            [A_WATTS] = "watts",
            [A_TEXT] = "text",
            [A_TIME_MS] = "time_ms",
            [A_PARTITION] = "partition",
            [A_ISLAND] = "island",
            [A_GAP_US] = "gap_us",
            [A_PID] = "pid",
            [A_RT] = "rt",
            [A_RT_KIND] = "rt_kind",
            [A_RT_NAME] = "rt_name",
            [A_POLICY] = "policy",
            [A_TAG] = "tag",
            [A_POLICY_TH] = "policy_th",
            [A_TIME_S] = "time_s",
            [A_ENERGY_J] = "energy_j",
            [A_PCK_POWER] = "pck_power_w",
            [A_DRAM_POWER] = "dram_power_w",
            [A_CPI] = "cpi",
            [A_TPI] = "tpi",
            [A_GBS] = "gbs",
            [A_GFLOPS] = "gflops",
            [A_TIME_PER_ITER] = "time_per_iteration_s",
            [A_VALUE] = "value",
            [A_ITERATIONS] = "iterations",
            [A_AVG_KHZ] = "avg_cpufreq_khz",
            [A_DEF_KHZ] = "def_cpufreq_khz",
        };
        return t < A_MAX && names[t] ? names[t] : "?";
}

/* Walk the attributes of a payload: rejects overruns and duplicates of known attributes; calls fn for each
 * known one. */
typedef int (*attr_fn)(void *m, const jl_attr *a, char *why, size_t whylen);

static int walk(const uint8_t *payload, size_t len, void *m, attr_fn fn, uint64_t *seen, char *why,
                size_t whylen)
{
        jl_rbuf r;
        jl_attr a;
        int k;
        *seen = 0;
        jl_rbuf_init(&r, payload, len);
        while ((k = jl_rbuf_next(&r, &a)) > 0) {
                if (a.type == 0 || a.type >= A_MAX)
                        continue; /* unknown: a newer peer's addition */
                if (a.type != A_DOMAIN && a.type != A_GPU_KHZ) {
                        if (*seen & (UINT64_C(1) << a.type))
                                return jl_why(why, whylen, -EBADMSG, "attribute '%s' appears twice",
                                              attr_name(a.type));
                }
                *seen |= UINT64_C(1) << a.type;
                int rr = fn(m, &a, why, whylen);
                if (rr < 0)
                        return rr;
        }
        if (k < 0)
                return jl_why(why, whylen, -EBADMSG, "an attribute overruns the payload (truncated frame?)");
        return 0;
}

static int get_u64(const jl_attr *a, uint64_t *v, char *why, size_t whylen)
{
        return jl_attr_u64(a, v) < 0
                   ? jl_why(why, whylen, -EBADMSG, "'%s' is not a 64-bit integer", attr_name(a->type))
                   : 0;
}

static int get_i64(const jl_attr *a, int64_t *v, char *why, size_t whylen)
{
        return jl_attr_i64(a, v) < 0
                   ? jl_why(why, whylen, -EBADMSG, "'%s' is not a 64-bit integer", attr_name(a->type))
                   : 0;
}

static int get_double(const jl_attr *a, double *v, char *why, size_t whylen)
{
        return jl_attr_double(a, v) < 0
                   ? jl_why(why, whylen, -EBADMSG, "'%s' is not a finite number", attr_name(a->type))
                   : 0;
}

static int get_str(const jl_attr *a, char *buf, size_t size, char *why, size_t whylen)
{
        int r = jl_attr_str(a, buf, size);
        if (r == -ENAMETOOLONG)
                return jl_why(why, whylen, -EBADMSG, "'%s' is longer than %zu bytes", attr_name(a->type),
                              size - 1);
        if (r < 0)
                return jl_why(why, whylen, -EBADMSG, "'%s' holds a NUL byte", attr_name(a->type));
        return 0;
}

static int require(uint64_t seen, const int *attrs, size_t n, char *why, size_t whylen)
{
        for (size_t i = 0; i < n; i++)
                if (!(seen & (UINT64_C(1) << attrs[i])))
                        return jl_why(why, whylen, -EBADMSG, "required attribute '%s' is missing",
                                      attr_name((uint16_t)attrs[i]));
        return 0;
}

static int finish(jl_wbuf *w)
{
        const uint8_t *d;
        size_t n;
        return jl_wbuf_finish(w, &d, &n);
}

/* HELLO */

int jl_msg_hello_encode(const jl_msg_hello *m, uint32_t id, jl_wbuf *w)
{
        jl_wbuf_init(w, JL_MSG_HELLO, 0, id);
        jl_wbuf_put_str(w, A_NODE, m->node);
        jl_wbuf_put_u64(w, A_NEXT_SEQ, m->next_seq);
        if (m->partition[0])
                jl_wbuf_put_str(w, A_PARTITION, m->partition);
        if (m->island[0])
                jl_wbuf_put_str(w, A_ISLAND, m->island);
        if (m->cred_len)
                jl_wbuf_put_bytes(w, A_CRED, m->cred, m->cred_len);
        return finish(w);
}

static int hello_attr(void *p, const jl_attr *a, char *why, size_t whylen)
{
        jl_msg_hello *m = p;
        switch (a->type) {
        case A_NODE:
                return get_str(a, m->node, sizeof(m->node), why, whylen);
        case A_NEXT_SEQ:
                return get_u64(a, &m->next_seq, why, whylen);
        case A_PARTITION:
                return get_str(a, m->partition, sizeof(m->partition), why, whylen);
        case A_ISLAND:
                return get_str(a, m->island, sizeof(m->island), why, whylen);
        case A_CRED:
                m->cred = a->value;
                m->cred_len = a->len;
                return 0;
        }
        return 0;
}

int jl_msg_hello_decode(const uint8_t *payload, size_t len, jl_msg_hello *ret, char *why, size_t whylen)
{
        jl_msg_hello m = {0};
        uint64_t seen;
        int r = walk(payload, len, &m, hello_attr, &seen, why, whylen);
        if (r == 0)
                r = require(seen, (const int[]){A_NODE, A_NEXT_SEQ}, 2, why, whylen);
        if (r == 0 && m.node[0] == '\0')
                r = jl_why(why, whylen, -EBADMSG, "the node name is empty");
        if (r == 0)
                *ret = m;
        return r;
}

/* RECORD */

int jl_msg_record_encode(const jl_msg_record *m, uint32_t id, jl_wbuf *w)
{
        jl_wbuf_init(w, JL_MSG_RECORD, 0, id);
        jl_wbuf_put_str(w, A_NODE, m->node);
        jl_wbuf_put_u64(w, A_SEQ, m->seq);
        jl_wbuf_put_u64(w, A_START, m->start_us);
        jl_wbuf_put_u64(w, A_END, m->end_us);
        jl_wbuf_put_u64(w, A_ENERGY, m->energy_uj);
        jl_wbuf_put_double(w, A_POWER, m->avg_power_w);
        if (isfinite(m->temp_max_c))
                jl_wbuf_put_double(w, A_TEMP_MAX, m->temp_max_c);
        if (isfinite(m->freq_avg_khz))
                jl_wbuf_put_double(w, A_FREQ_AVG, m->freq_avg_khz);
        if (m->gap_us)
                jl_wbuf_put_u64(w, A_GAP_US, m->gap_us);
        if (m->job_id[0]) {
                jl_wbuf_put_str(w, A_JOB, m->job_id);
                jl_wbuf_put_i64(w, A_STEP, m->step_id);
        }
        if (m->ndomains > JL_MSG_DOMAINS_MAX)
                return -E2BIG;
        for (size_t i = 0; i < m->ndomains; i++) {
                jl_wbuf_nest_begin(w, A_DOMAIN);
                jl_wbuf_put_str(w, A_NAME, m->domains[i].name);
                jl_wbuf_put_u64(w, A_ENERGY, m->domains[i].energy_uj);
                jl_wbuf_nest_end(w);
        }
        return finish(w);
}

static int domain_attr(void *p, const jl_attr *a, char *why, size_t whylen)
{
        jl_msg_record *m = p;
        size_t i = m->ndomains;
        switch (a->type) {
        case A_NAME:
                return get_str(a, m->domains[i].name, sizeof(m->domains[i].name), why, whylen);
        case A_ENERGY:
                return get_u64(a, &m->domains[i].energy_uj, why, whylen);
        }
        return 0;
}

static int record_attr(void *p, const jl_attr *a, char *why, size_t whylen)
{
        jl_msg_record *m = p;
        switch (a->type) {
        case A_NODE:
                return get_str(a, m->node, sizeof(m->node), why, whylen);
        case A_SEQ:
                return get_u64(a, &m->seq, why, whylen);
        case A_START:
                return get_u64(a, &m->start_us, why, whylen);
        case A_END:
                return get_u64(a, &m->end_us, why, whylen);
        case A_ENERGY:
                return get_u64(a, &m->energy_uj, why, whylen);
        case A_POWER:
                return get_double(a, &m->avg_power_w, why, whylen);
        case A_TEMP_MAX:
                return get_double(a, &m->temp_max_c, why, whylen);
        case A_FREQ_AVG:
                return get_double(a, &m->freq_avg_khz, why, whylen);
        case A_GAP_US:
                return get_u64(a, &m->gap_us, why, whylen);
        case A_JOB:
                return get_str(a, m->job_id, sizeof(m->job_id), why, whylen);
        case A_STEP:
                return get_i64(a, &m->step_id, why, whylen);
        case A_DOMAIN: {
                if (m->ndomains == JL_MSG_DOMAINS_MAX)
                        return jl_why(why, whylen, -EBADMSG, "more than %d domains", JL_MSG_DOMAINS_MAX);
                jl_rbuf r;
                jl_attr_nested(a, &r);
                uint64_t seen;
                int rr = walk(r.p, r.left, m, domain_attr, &seen, why, whylen);
                if (rr == 0)
                        rr = require(seen, (const int[]){A_NAME, A_ENERGY}, 2, why, whylen);
                if (rr < 0)
                        return rr;
                m->ndomains++;
                return 0;
        }
        }
        return 0;
}

int jl_msg_record_decode(const uint8_t *payload, size_t len, jl_msg_record *ret, char *why, size_t whylen)
{
        jl_msg_record m = {.temp_max_c = NAN, .freq_avg_khz = NAN, .step_id = -1};
        uint64_t seen;
        int r = walk(payload, len, &m, record_attr, &seen, why, whylen);
        if (r == 0)
                r = require(seen, (const int[]){A_NODE, A_SEQ, A_START, A_END, A_ENERGY, A_POWER}, 6, why,
                            whylen);
        if (r == 0 && m.node[0] == '\0')
                r = jl_why(why, whylen, -EBADMSG, "the node name is empty");
        if (r == 0 && m.end_us < m.start_us)
                r = jl_why(why, whylen, -EBADMSG, "the window ends before it starts");
        if (r == 0 && (m.avg_power_w < 0 || m.avg_power_w > 1e7))
                r = jl_why(why, whylen, -EBADMSG, "average power %g W is absurd", m.avg_power_w);
        if (r == 0)
                *ret = m;
        return r;
}

/* JOB */

int jl_msg_job_encode(const jl_msg_job *m, uint32_t id, jl_wbuf *w)
{
        jl_wbuf_init(w, JL_MSG_JOB, 0, id);
        jl_wbuf_put_str(w, A_NODE, m->node);
        jl_wbuf_put_u64(w, A_SEQ, m->seq);
        jl_wbuf_put_u64(w, A_KIND, m->end ? 1 : 0);
        jl_wbuf_put_str(w, A_JOB, m->job_id);
        jl_wbuf_put_i64(w, A_STEP, m->step_id);
        jl_wbuf_put_str(w, A_USER, m->user);
        jl_wbuf_put_u64(w, A_TIME, m->time_us);
        jl_wbuf_put_u64(w, A_ENERGY, m->energy_uj);
        jl_wbuf_put_u64(w, A_COMPLETE, m->complete ? 1 : 0);
        return finish(w);
}

static int job_attr(void *p, const jl_attr *a, char *why, size_t whylen)
{
        jl_msg_job *m = p;
        uint64_t v;
        int r;
        switch (a->type) {
        case A_NODE:
                return get_str(a, m->node, sizeof(m->node), why, whylen);
        case A_SEQ:
                return get_u64(a, &m->seq, why, whylen);
        case A_KIND:
        case A_COMPLETE:
                r = get_u64(a, &v, why, whylen);
                if (r == 0 && v > 1)
                        return jl_why(why, whylen, -EBADMSG, "'%s' must be 0 or 1", attr_name(a->type));
                if (a->type == A_KIND)
                        m->end = v == 1;
                else
                        m->complete = v == 1;
                return r;
        case A_JOB:
                return get_str(a, m->job_id, sizeof(m->job_id), why, whylen);
        case A_STEP:
                return get_i64(a, &m->step_id, why, whylen);
        case A_USER:
                return get_str(a, m->user, sizeof(m->user), why, whylen);
        case A_TIME:
                return get_u64(a, &m->time_us, why, whylen);
        case A_ENERGY:
                return get_u64(a, &m->energy_uj, why, whylen);
        }
        return 0;
}

int jl_msg_job_decode(const uint8_t *payload, size_t len, jl_msg_job *ret, char *why, size_t whylen)
{
        jl_msg_job m = {0};
        uint64_t seen;
        int r = walk(payload, len, &m, job_attr, &seen, why, whylen);
        if (r == 0)
                r = require(seen, (const int[]){A_NODE, A_SEQ, A_KIND, A_JOB, A_STEP, A_TIME}, 6, why,
                            whylen);
        if (r == 0 && (m.node[0] == '\0' || m.job_id[0] == '\0'))
                r = jl_why(why, whylen, -EBADMSG, "the node name or job id is empty");
        if (r == 0)
                *ret = m;
        return r;
}

/* ACK, ERROR */

int jl_msg_ack_encode(const jl_msg_ack *m, uint32_t id, jl_wbuf *w)
{
        jl_wbuf_init(w, JL_MSG_ACK, 0, id);
        jl_wbuf_put_u64(w, A_SEQ, m->seq);
        return finish(w);
}

static int ack_attr(void *p, const jl_attr *a, char *why, size_t whylen)
{
        jl_msg_ack *m = p;
        return a->type == A_SEQ ? get_u64(a, &m->seq, why, whylen) : 0;
}

int jl_msg_ack_decode(const uint8_t *payload, size_t len, jl_msg_ack *ret, char *why, size_t whylen)
{
        jl_msg_ack m = {0};
        uint64_t seen;
        int r = walk(payload, len, &m, ack_attr, &seen, why, whylen);
        if (r == 0)
                r = require(seen, (const int[]){A_SEQ}, 1, why, whylen);
        if (r == 0)
                *ret = m;
        return r;
}

int jl_msg_error_encode(const jl_msg_error *m, uint32_t id, jl_wbuf *w)
{
        jl_wbuf_init(w, JL_MSG_ERROR, 0, id);
        jl_wbuf_put_i64(w, A_ERRNO, m->err);
        jl_wbuf_put_str(w, A_MESSAGE, m->message);
        return finish(w);
}

static int error_attr(void *p, const jl_attr *a, char *why, size_t whylen)
{
        jl_msg_error *m = p;
        int64_t e;
        switch (a->type) {
        case A_ERRNO:
                if (get_i64(a, &e, why, whylen) < 0 || e > 0 || e < -4095)
                        return jl_why(why, whylen, -EBADMSG, "'errno' is not a negative errno");
                m->err = (int32_t)e;
                return 0;
        case A_MESSAGE:
                return get_str(a, m->message, sizeof(m->message), why, whylen);
        }
        return 0;
}

int jl_msg_error_decode(const uint8_t *payload, size_t len, jl_msg_error *ret, char *why, size_t whylen)
{
        jl_msg_error m = {0};
        uint64_t seen;
        int r = walk(payload, len, &m, error_attr, &seen, why, whylen);
        if (r == 0)
                r = require(seen, (const int[]){A_ERRNO}, 1, why, whylen);
        if (r == 0)
                *ret = m;
        return r;
}

/* RT: the runtime's records (in a REQUEST nested under A_RT, or a frame of its own to the dbd) */

static void add_cpu(jl_msg_request *req, size_t cpu)
{
        req->cpumask[cpu / 8] |= (uint8_t)(1u << (cpu % 8));
        if (req->cpumask_len < cpu / 8 + 1)
                req->cpumask_len = cpu / 8 + 1;
}

void jl_msg_request_add_cpuset(jl_msg_request *req, const cpu_set_t *set)
{
        for (size_t cpu = 0; cpu < JL_MSG_CPUMASK_BYTES * 8 && cpu < CPU_SETSIZE; cpu++)
                if (CPU_ISSET(cpu, set))
                        add_cpu(req, cpu);
}

void jl_msg_request_add_cpumask(jl_msg_request *req, const uint64_t *mask, size_t nbits)
{
        for (size_t cpu = 0; cpu < JL_MSG_CPUMASK_BYTES * 8 && cpu < nbits; cpu++)
                if (mask[cpu / 64] & (UINT64_C(1) << (cpu % 64)))
                        add_cpu(req, cpu);
}

void jl_msg_rt_init(jl_msg_rt *m, uint8_t kind)
{
        *m = (jl_msg_rt){.kind = kind, .step_id = -1};
        m->policy_th = m->time_s = m->energy_j = m->avg_power_w = m->pck_power_w = m->dram_power_w = NAN;
        m->cpi = m->tpi = m->gbs = m->gflops = m->time_per_iteration_s = m->value = NAN;
}

static void put_double_known(jl_wbuf *w, uint16_t attr, double v)
{
        if (isfinite(v))
                jl_wbuf_put_double(w, attr, v);
}

/* The record's own fields (not node, seq, time, job, step). */
static void rt_put_fields(jl_wbuf *w, const jl_msg_rt *m)
{
        jl_wbuf_put_u64(w, A_RT_KIND, m->kind);
        jl_wbuf_put_str(w, A_RT_NAME, m->name);
        if (m->policy[0])
                jl_wbuf_put_str(w, A_POLICY, m->policy);
        if (m->tag[0])
                jl_wbuf_put_str(w, A_TAG, m->tag);
        if (m->message[0])
                jl_wbuf_put_str(w, A_MESSAGE, m->message);
        put_double_known(w, A_POLICY_TH, m->policy_th);
        put_double_known(w, A_TIME_S, m->time_s);
        put_double_known(w, A_ENERGY_J, m->energy_j);
        put_double_known(w, A_POWER, m->avg_power_w);
        put_double_known(w, A_PCK_POWER, m->pck_power_w);
        put_double_known(w, A_DRAM_POWER, m->dram_power_w);
        put_double_known(w, A_CPI, m->cpi);
        put_double_known(w, A_TPI, m->tpi);
        put_double_known(w, A_GBS, m->gbs);
        put_double_known(w, A_GFLOPS, m->gflops);
        put_double_known(w, A_TIME_PER_ITER, m->time_per_iteration_s);
        put_double_known(w, A_VALUE, m->value);
        if (m->kind == JL_RT_LOOP)
                jl_wbuf_put_u64(w, A_ITERATIONS, m->iterations);
        if (m->avg_cpufreq_khz)
                jl_wbuf_put_u64(w, A_AVG_KHZ, m->avg_cpufreq_khz);
        if (m->def_cpufreq_khz)
                jl_wbuf_put_u64(w, A_DEF_KHZ, m->def_cpufreq_khz);
}

int jl_msg_rt_encode(const jl_msg_rt *m, uint32_t id, jl_wbuf *w)
{
        jl_wbuf_init(w, JL_MSG_RT, 0, id);
        jl_wbuf_put_str(w, A_NODE, m->node);
        jl_wbuf_put_u64(w, A_SEQ, m->seq);
        jl_wbuf_put_u64(w, A_TIME, m->time_us);
        jl_wbuf_put_str(w, A_JOB, m->job_id);
        jl_wbuf_put_i64(w, A_STEP, m->step_id);
        rt_put_fields(w, m);
        return finish(w);
}

static int rt_attr(void *p, const jl_attr *a, char *why, size_t whylen)
{
        jl_msg_rt *m = p;
        uint64_t v;
        int r;
        switch (a->type) {
        case A_NODE:
                return get_str(a, m->node, sizeof(m->node), why, whylen);
        case A_SEQ:
                return get_u64(a, &m->seq, why, whylen);
        case A_TIME:
                return get_u64(a, &m->time_us, why, whylen);
        case A_JOB:
                return get_str(a, m->job_id, sizeof(m->job_id), why, whylen);
        case A_STEP:
                return get_i64(a, &m->step_id, why, whylen);
        case A_RT_KIND:
                r = get_u64(a, &v, why, whylen);
                if (r == 0 && (v < JL_RT_APP || v > JL_RT_EVENT))
                        return jl_why(why, whylen, -EBADMSG, "unknown runtime record kind %llu",
                                      (unsigned long long)v);
                m->kind = (uint8_t)v;
                return r;
        case A_RT_NAME:
                return get_str(a, m->name, sizeof(m->name), why, whylen);
        case A_POLICY:
                return get_str(a, m->policy, sizeof(m->policy), why, whylen);
        case A_TAG:
                return get_str(a, m->tag, sizeof(m->tag), why, whylen);
        case A_MESSAGE:
                return get_str(a, m->message, sizeof(m->message), why, whylen);
        case A_POLICY_TH:
                return get_double(a, &m->policy_th, why, whylen);
        case A_TIME_S:
                return get_double(a, &m->time_s, why, whylen);
        case A_ENERGY_J:
                return get_double(a, &m->energy_j, why, whylen);
        case A_POWER:
                return get_double(a, &m->avg_power_w, why, whylen);
        case A_PCK_POWER:
                return get_double(a, &m->pck_power_w, why, whylen);
        case A_DRAM_POWER:
                return get_double(a, &m->dram_power_w, why, whylen);
        case A_CPI:
                return get_double(a, &m->cpi, why, whylen);
        case A_TPI:
                return get_double(a, &m->tpi, why, whylen);
        case A_GBS:
                return get_double(a, &m->gbs, why, whylen);
        case A_GFLOPS:
                return get_double(a, &m->gflops, why, whylen);
        case A_TIME_PER_ITER:
                return get_double(a, &m->time_per_iteration_s, why, whylen);
        case A_VALUE:
                return get_double(a, &m->value, why, whylen);
        case A_ITERATIONS:
                return get_u64(a, &m->iterations, why, whylen);
        case A_AVG_KHZ:
                return get_u64(a, &m->avg_cpufreq_khz, why, whylen);
        case A_DEF_KHZ:
                return get_u64(a, &m->def_cpufreq_khz, why, whylen);
        }
        return 0;
}

int jl_msg_rt_decode(const uint8_t *payload, size_t len, jl_msg_rt *ret, char *why, size_t whylen)
{
        jl_msg_rt m;
        jl_msg_rt_init(&m, 0);
        uint64_t seen;
        int r = walk(payload, len, &m, rt_attr, &seen, why, whylen);
        if (r == 0)
                r = require(seen, (const int[]){A_NODE, A_SEQ, A_TIME, A_JOB, A_STEP, A_RT_KIND, A_RT_NAME},
                            7, why, whylen);
        if (r == 0)
                *ret = m;
        return r;
}

/* REQUEST, REPLY */

int jl_msg_request_encode(const jl_msg_request *m, uint32_t id, jl_wbuf *w)
{
        jl_wbuf_init(w, JL_MSG_REQUEST, 0, id);
        jl_wbuf_put_u64(w, A_OP, m->op);
        if (m->job_id[0]) {
                jl_wbuf_put_str(w, A_JOB, m->job_id);
                jl_wbuf_put_i64(w, A_STEP, m->step_id);
        }
        if (m->user[0])
                jl_wbuf_put_str(w, A_USER, m->user);
        if (m->cpumask_len)
                jl_wbuf_put_bytes(w, A_CPUMASK, m->cpumask, MIN(m->cpumask_len, sizeof(m->cpumask)));
        if (m->khz)
                jl_wbuf_put_u64(w, A_KHZ, m->khz);
        if (m->op == JL_OP_SET_GPUFREQ)
                jl_wbuf_put_i64(w, A_GPU, m->gpu);
        for (size_t i = 0; i < m->ngpus && i < JL_MSG_GPUS_MAX; i++)
                jl_wbuf_put_u64(w, A_GPU_KHZ, m->gpu_khz[i]);
        if (m->op == JL_OP_SET_POWERCAP)
                jl_wbuf_put_double(w, A_WATTS, m->watts);
        if (m->op == JL_OP_WATCH_PID)
                jl_wbuf_put_i64(w, A_PID, m->pid);
        if (m->has_rt) {
                jl_wbuf_nest_begin(w, A_RT);
                rt_put_fields(w, &m->rt);
                jl_wbuf_nest_end(w);
        }
        return finish(w);
}

static int request_attr(void *p, const jl_attr *a, char *why, size_t whylen)
{
        jl_msg_request *m = p;
        uint64_t v;
        int r;
        switch (a->type) {
        case A_OP:
                r = get_u64(a, &v, why, whylen);
                if (r == 0 && (v == 0 || v >= _JL_OP_MAX))
                        return jl_why(why, whylen, -EBADMSG, "unknown operation %llu",
                                      (unsigned long long)v);
                m->op = (uint8_t)v;
                return r;
        case A_JOB:
                return get_str(a, m->job_id, sizeof(m->job_id), why, whylen);
        case A_STEP:
                return get_i64(a, &m->step_id, why, whylen);
        case A_USER:
                return get_str(a, m->user, sizeof(m->user), why, whylen);
        case A_CPUMASK:
                if (a->len == 0 || a->len > sizeof(m->cpumask))
                        return jl_why(why, whylen, -EBADMSG,
                                      "the CPU mask is empty or longer than %zu bytes", sizeof(m->cpumask));
                memcpy(m->cpumask, a->value, a->len);
                m->cpumask_len = a->len;
                return 0;
        case A_KHZ:
                r = get_u64(a, &m->khz, why, whylen);
                if (r == 0 && m->khz > 100000000)
                        return jl_why(why, whylen, -EBADMSG, "frequency %llu kHz is absurd",
                                      (unsigned long long)m->khz);
                return r;
        case A_GPU:
                r = get_i64(a, &m->gpu, why, whylen);
                if (r == 0 && (m->gpu < 0 || m->gpu >= 1024))
                        return jl_why(why, whylen, -EBADMSG, "GPU index %lld is out of range",
                                      (long long)m->gpu);
                return r;
        case A_GPU_KHZ:
                if (m->ngpus == JL_MSG_GPUS_MAX)
                        return jl_why(why, whylen, -EBADMSG, "more than %d GPU frequencies",
                                      JL_MSG_GPUS_MAX);
                r = get_u64(a, &m->gpu_khz[m->ngpus], why, whylen);
                if (r == 0 && m->gpu_khz[m->ngpus] > 100000000)
                        return jl_why(why, whylen, -EBADMSG, "GPU frequency is absurd");
                m->ngpus += r == 0;
                return r;
        case A_WATTS:
                r = get_double(a, &m->watts, why, whylen);
                if (r == 0 && (m->watts < 0 || m->watts > 1e7))
                        return jl_why(why, whylen, -EBADMSG, "power limit %g W is absurd", m->watts);
                return r;
        case A_PID:
                r = get_i64(a, &m->pid, why, whylen);
                if (r == 0 && (m->pid <= 0 || m->pid > INT32_MAX))
                        return jl_why(why, whylen, -EBADMSG, "pid %lld is out of range", (long long)m->pid);
                return r;
        case A_RT: {
                jl_rbuf rb;
                jl_attr_nested(a, &rb);
                uint64_t seen;
                int rr = walk(rb.p, rb.left, &m->rt, rt_attr, &seen, why, whylen);
                if (rr == 0)
                        rr = require(seen, (const int[]){A_RT_KIND, A_RT_NAME}, 2, why, whylen);
                m->has_rt = rr == 0;
                return rr;
        }
        }
        return 0;
}

int jl_msg_request_decode(const uint8_t *payload, size_t len, jl_msg_request *ret, char *why, size_t whylen)
{
        jl_msg_request m = {.step_id = -1, .gpu = -1};
        jl_msg_rt_init(&m.rt, 0);
        uint64_t seen;
        int r = walk(payload, len, &m, request_attr, &seen, why, whylen);
        if (r == 0)
                r = require(seen, (const int[]){A_OP}, 1, why, whylen);
        if (r == 0 && (m.op == JL_OP_JOB_BEGIN || m.op == JL_OP_JOB_END) && m.job_id[0] == '\0')
                r = jl_why(why, whylen, -EBADMSG, "a job operation needs a job id");
        if (r == 0 && m.op == JL_OP_SET_CPUFREQ && m.cpumask_len == 0)
                r = jl_why(why, whylen, -EBADMSG, "setting a CPU frequency needs a CPU mask");
        if (r == 0 && m.op == JL_OP_SET_GPUFREQ && m.gpu < 0)
                r = jl_why(why, whylen, -EBADMSG, "setting a GPU frequency needs a GPU index");
        if (r == 0 && m.op == JL_OP_SET_GPUFREQ_LIST && m.ngpus == 0)
                r = jl_why(why, whylen, -EBADMSG, "a GPU frequency list is empty");
        if (r == 0 && (m.op == JL_OP_RT_RECORD || m.op == JL_OP_WATCH_PID) && m.job_id[0] == '\0')
                r = jl_why(why, whylen, -EBADMSG, "a runtime record or a watched process needs a job id");
        if (r == 0 && m.op == JL_OP_RT_RECORD && !m.has_rt)
                r = jl_why(why, whylen, -EBADMSG, "a runtime record request carries no record");
        if (r == 0 && m.op == JL_OP_WATCH_PID && m.pid <= 0)
                r = jl_why(why, whylen, -EBADMSG, "watching a process needs its pid");
        if (r == 0)
                *ret = m;
        return r;
}

int jl_msg_reply_encode(const jl_msg_reply *m, uint32_t id, jl_wbuf *w)
{
        jl_wbuf_init(w, JL_MSG_REPLY, 0, id);
        jl_wbuf_put_i64(w, A_ERRNO, m->err);
        if (m->message[0])
                jl_wbuf_put_str(w, A_MESSAGE, m->message);
        jl_wbuf_put_u64(w, A_ENERGY, m->energy_uj);
        jl_wbuf_put_u64(w, A_TIME_MS, m->time_ms);
        if (m->text_len)
                jl_wbuf_put_bytes(w, A_TEXT, m->text, m->text_len);
        return finish(w);
}

static int reply_attr(void *p, const jl_attr *a, char *why, size_t whylen)
{
        jl_msg_reply *m = p;
        int64_t e;
        switch (a->type) {
        case A_ERRNO:
                if (get_i64(a, &e, why, whylen) < 0 || e > 0 || e < -4095)
                        return jl_why(why, whylen, -EBADMSG, "'errno' is not 0 or a negative errno");
                m->err = (int32_t)e;
                return 0;
        case A_MESSAGE:
                return get_str(a, m->message, sizeof(m->message), why, whylen);
        case A_ENERGY:
                return get_u64(a, &m->energy_uj, why, whylen);
        case A_TIME_MS:
                return get_u64(a, &m->time_ms, why, whylen);
        case A_TEXT:
                m->text = (const char *)a->value;
                m->text_len = a->len;
                return 0;
        }
        return 0;
}

int jl_msg_reply_decode(const uint8_t *payload, size_t len, jl_msg_reply *ret, char *why, size_t whylen)
{
        jl_msg_reply m = {0};
        uint64_t seen;
        int r = walk(payload, len, &m, reply_attr, &seen, why, whylen);
        if (r == 0)
                r = require(seen, (const int[]){A_ERRNO}, 1, why, whylen);
        if (r == 0)
                *ret = m;
        return r;
}

/* Semantic checks shared by the reporter and joule-dbd */

bool jl_msg_name_valid(const char *s)
{
        if (!s || !*s)
                return false;
        for (const unsigned char *p = (const unsigned char *)s; *p; p++)
                if (*p <= ' ' || *p >= 0x7f || *p == '"' || *p == '\'' || *p == '\\' || *p == ',')
                        return false;
        return true;
}

int jl_msg_job_id_parse(const char *s, int64_t *ret)
{
        uint64_t v = 0;
        if (!s || !*s || strlen(s) > 19)
                return -EINVAL;
        for (const char *p = s; *p; p++) {
                if (*p < '0' || *p > '9')
                        return -EINVAL;
                v = v * 10 + (uint64_t)(*p - '0');
        }
        if (v > INT64_MAX)
                return -EINVAL;
        if (ret)
                *ret = (int64_t)v;
        return 0;
}

int jl_msg_record_validate(const jl_msg_record *m, char *why, size_t whylen)
{
        if (!jl_msg_name_valid(m->node))
                return jl_why(why, whylen, -EINVAL, "node name '%s' is not printable ASCII without spaces",
                              m->node);
        if (m->seq > INT64_MAX || m->start_us > INT64_MAX || m->end_us > INT64_MAX ||
            m->energy_uj > INT64_MAX || m->gap_us > INT64_MAX)
                return jl_why(why, whylen, -EINVAL, "record %" PRIu64 ": a value is beyond 2^63", m->seq);
        if (m->job_id[0] && jl_msg_job_id_parse(m->job_id, NULL) < 0)
                return jl_why(why, whylen, -EINVAL,
                              "record %" PRIu64 ": job id '%s' is not a decimal number", m->seq, m->job_id);
        if (m->ndomains > JL_MSG_DOMAINS_MAX)
                return jl_why(why, whylen, -EINVAL, "record %" PRIu64 ": too many domains", m->seq);
        for (size_t i = 0; i < m->ndomains; i++) {
                if (!jl_msg_name_valid(m->domains[i].name))
                        return jl_why(why, whylen, -EINVAL,
                                      "record %" PRIu64 ": domain name '%s' is not printable", m->seq,
                                      m->domains[i].name);
                if (m->domains[i].energy_uj > INT64_MAX)
                        return jl_why(why, whylen, -EINVAL, "record %" PRIu64 ": domain energy beyond 2^63",
                                      m->seq);
        }
        return 0;
}

int jl_msg_job_validate(const jl_msg_job *m, char *why, size_t whylen)
{
        if (!jl_msg_name_valid(m->node))
                return jl_why(why, whylen, -EINVAL, "node name '%s' is not printable ASCII without spaces",
                              m->node);
        if (m->seq > INT64_MAX || m->time_us > INT64_MAX || m->energy_uj > INT64_MAX)
                return jl_why(why, whylen, -EINVAL, "job message %" PRIu64 ": a value is beyond 2^63",
                              m->seq);
        if (jl_msg_job_id_parse(m->job_id, NULL) < 0)
                return jl_why(why, whylen, -EINVAL,
                              "job message %" PRIu64 ": job id '%s' is not a decimal number", m->seq,
                              m->job_id);
        if (m->user[0] && !jl_msg_name_valid(m->user))
                return jl_why(why, whylen, -EINVAL,
                              "job message %" PRIu64 ": user name '%s' is not printable", m->seq, m->user);
        return 0;
}

static bool text_printable(const char *s, bool spaces)
{
        for (const unsigned char *p = (const unsigned char *)s; *p; p++)
                if (*p < ' ' || *p == 0x7f || (!spaces && (*p == ' ' || *p == '"' || *p == '\\')))
                        return false;
        return true;
}

static bool nonneg_or_nan(double v)
{
        return isnan(v) || (isfinite(v) && v >= 0);
}

int jl_msg_rt_validate(const jl_msg_rt *m, bool check_node, char *why, size_t whylen)
{
        if (check_node && !jl_msg_name_valid(m->node))
                return jl_why(why, whylen, -EINVAL, "node name '%s' is not printable ASCII without spaces",
                              m->node);
        if (m->kind < JL_RT_APP || m->kind > JL_RT_EVENT)
                return jl_why(why, whylen, -EINVAL, "unknown runtime record kind %u", m->kind);
        if (m->seq > INT64_MAX || m->time_us > INT64_MAX || m->iterations > INT64_MAX ||
            m->avg_cpufreq_khz > 100000000 || m->def_cpufreq_khz > 100000000)
                return jl_why(why, whylen, -EINVAL, "a value is out of range");
        if (jl_msg_job_id_parse(m->job_id, NULL) < 0)
                return jl_why(why, whylen, -EINVAL, "job id '%s' is not a decimal number", m->job_id);
        if (m->step_id < -1)
                return jl_why(why, whylen, -EINVAL, "step id %lld is negative", (long long)m->step_id);
        if (!m->name[0] || !text_printable(m->name, false))
                return jl_why(why, whylen, -EINVAL,
                              "the %s is empty or has spaces, quotes or control characters",
                              m->kind == JL_RT_APP    ? "application name"
                              : m->kind == JL_RT_LOOP ? "loop key"
                                                      : "event kind");
        if (!text_printable(m->policy, false) || !text_printable(m->tag, false))
                return jl_why(why, whylen, -EINVAL,
                              "the policy or tag has spaces, quotes or control characters");
        if (!text_printable(m->message, true))
                return jl_why(why, whylen, -EINVAL, "the message has control characters");
        const double v[] = {m->policy_th,           m->time_s, m->energy_j, m->avg_power_w, m->pck_power_w,
                            m->dram_power_w,        m->cpi,    m->tpi,      m->gbs,         m->gflops,
                            m->time_per_iteration_s};
        for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
                if (!nonneg_or_nan(v[i]) || (!isnan(v[i]) && v[i] > 1e15))
                        return jl_why(why, whylen, -EINVAL, "a number is negative, infinite or absurd");
        if (!isnan(m->value) && !isfinite(m->value))
                return jl_why(why, whylen, -EINVAL, "the event's value is not finite");
        return 0;
}
