/* conn.c - one node connection's protocol in joule-dbd, without sockets: bytes in, frames assembled by
 * jl_framer, each frame checked (strict decoders, then the dbd's own rules: HELLO first and authenticated,
 * the node of every message equal to the HELLO's, sequence numbers strictly increasing, values that fit
 * the database) and turned into cache items; MUNGE authentication of the HELLO. */
#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <math.h>
#include <munge.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "dbd.h"
#include "json.h"
#include "macro.h"
#include "why.h"

void dbd_item_clear(dbd_item *it)
{
        if (it->kind == DBD_ITEM_RECORD) {
                free(it->rec.domains_json);
                it->rec.domains_json = NULL;
        }
        if (it->kind == DBD_ITEM_RT) {
                free(it->rt);
                it->rt = NULL;
        }
}

size_t dbd_item_bytes(const dbd_item *it)
{
        size_t n = sizeof(*it);
        if (it->kind == DBD_ITEM_RECORD && it->rec.domains_json) /* and malloc's chunk header */
                n += malloc_usable_size(it->rec.domains_json) + sizeof(size_t);
        if (it->kind == DBD_ITEM_RT && it->rt)
                n += malloc_usable_size(it->rt) + sizeof(size_t);
        return n;
}

int dbd_auth_munge(void *userdata, const uint8_t *cred, size_t cred_len, const char *node, char *why,
                   size_t whylen)
{
        const dbd_munge_auth *a = userdata;
        if (cred_len == 0)
                return jl_why(why, whylen, -EACCES, "HELLO without a MUNGE credential");
        jl_auth_opts o = {.socket = a ? a->socket : NULL};
        uid_t uid;
        gid_t gid;
        _cleanup_free_ void *payload = NULL;
        size_t plen;
        char w[256];
        int r = jl_auth_decode(&o, (const char *)cred, cred_len, &uid, &gid, &payload, &plen, w, sizeof(w));
        if (r < 0)
                return jl_why(why, whylen, r == -ECONNREFUSED ? -ECONNREFUSED : -EACCES, "%s", w);
        bool allowed = uid == 0;
        for (size_t i = 0; a && !allowed && i < a->nuids; i++)
                allowed = a->uids[i] == uid;
        if (!allowed)
                return jl_why(why, whylen, -EACCES,
                              "MUNGE credential of uid %u, which may not speak for a node", (unsigned)uid);
        if (plen != strlen(node) || memcmp(payload, node, plen) != 0)
                return jl_why(why, whylen, -EACCES, "the MUNGE credential does not name node '%s'", node);
        return 0;
}

void dbd_proto_init(dbd_conn_proto *c, uint64_t id)
{
        *c = (dbd_conn_proto){.id = id, .state = DBD_CONN_AWAIT_HELLO};
        jl_framer_init(&c->framer, DBD_MAX_FRAME);
}

void dbd_proto_free(dbd_conn_proto *c)
{
        jl_framer_free(&c->framer);
}

static const char *type_name(uint8_t t)
{
        switch (t) {
        case JL_MSG_HELLO:
                return "HELLO";
        case JL_MSG_RECORD:
                return "RECORD";
        case JL_MSG_JOB:
                return "JOB";
        case JL_MSG_RT:
                return "RT";
        case JL_MSG_ACK:
                return "ACK";
        case JL_MSG_ERROR:
                return "ERROR";
        case JL_MSG_REQUEST:
                return "REQUEST";
        case JL_MSG_REPLY:
                return "REPLY";
        case JL_MSG_AUTHED:
                return "AUTHED";
        }
        return "unknown";
}

/* Decimal digits of v at p (no terminator); their count. */
static size_t put_u64(char *p, uint64_t v)
{
        char tmp[20];
        size_t n = 0;
        do {
                tmp[n++] = (char)('0' + v % 10);
                v /= 10;
        } while (v);
        for (size_t i = 0; i < n; i++)
                p[i] = tmp[n - 1 - i];
        return n;
}

/* {"name":energy_uj,...}, written by hand: snprintf was a third of the event loop's time per record. */
static char *domains_json(const jl_msg_record *m)
{
        if (m->ndomains == 0)
                return NULL;
        /* names are validated printable without quotes or backslashes: no escaping needed */
        size_t size = 3;
        for (size_t i = 0; i < m->ndomains; i++)
                size += strlen(m->domains[i].name) + 26;
        char *s = malloc(size), *p = s;
        if (!s)
                return NULL;
        *p++ = '{';
        for (size_t i = 0; i < m->ndomains; i++) {
                size_t len = strlen(m->domains[i].name);
                if (i)
                        *p++ = ',';
                *p++ = '"';
                memcpy(p, m->domains[i].name, len);
                p += len;
                *p++ = '"';
                *p++ = ':';
                p += put_u64(p, m->domains[i].energy_uj);
        }
        *p++ = '}';
        *p = '\0';
        return s;
}

static int hello_accepted(dbd_conn_proto *c, int64_t now_us, dbd_emit_fn emit, void *emit_data)
{
        dbd_item it = {.conn_id = c->id, .kind = DBD_ITEM_HELLO, .seq = c->hello_next_seq};
        c->last_seq = 0;
        c->state = DBD_CONN_READY;
        memcpy(it.node, c->node, sizeof(it.node));
        it.hello.time_us = now_us;
        memcpy(it.hello.partition, c->partition, sizeof(it.hello.partition));
        memcpy(it.hello.island, c->island, sizeof(it.hello.island));
        return emit(emit_data, &it);
}

static int on_frame(dbd_conn_proto *c, const jl_frame_header *h, const uint8_t *payload, int64_t now_us,
                    dbd_auth_fn auth, void *auth_data, dbd_emit_fn emit, void *emit_data, char *why,
                    size_t whylen)
{
        char w[256] = "";
        dbd_item it = {.conn_id = c->id};

        if (c->state == DBD_CONN_AWAIT_HELLO) {
                if (h->type != JL_MSG_HELLO)
                        return jl_why(why, whylen, -EPROTO, "%s frame before HELLO", type_name(h->type));
                jl_msg_hello m;
                if (jl_msg_hello_decode(payload, h->length, &m, w, sizeof(w)) < 0)
                        return jl_why(why, whylen, -EBADMSG, "bad HELLO: %s", w);
                if (!jl_msg_name_valid(m.node))
                        return jl_why(why, whylen, -EBADMSG, "bad HELLO: node name is not printable ASCII");
                if ((m.partition[0] && !jl_msg_name_valid(m.partition)) ||
                    (m.island[0] && !jl_msg_name_valid(m.island)))
                        return jl_why(why, whylen, -EBADMSG,
                                      "bad HELLO: partition or island is not printable");
                memcpy(c->node, m.node, sizeof(c->node));
                memcpy(c->partition, m.partition, sizeof(c->partition));
                memcpy(c->island, m.island, sizeof(c->island));
                c->hello_next_seq = m.next_seq;
                int r = auth(auth_data, m.cred, m.cred_len, m.node, w, sizeof(w));
                if (r == DBD_AUTH_PENDING) {
                        c->state = DBD_CONN_AUTHENTICATING;
                        return 0;
                }
                if (r < 0)
                        return jl_why(why, whylen, r, "HELLO from node '%s' refused: %s", m.node, w);
                return hello_accepted(c, now_us, emit, emit_data);
        }

        switch (h->type) {
        case JL_MSG_RECORD: {
                jl_msg_record m;
                if (jl_msg_record_decode(payload, h->length, &m, w, sizeof(w)) < 0)
                        return jl_why(why, whylen, -EBADMSG, "bad RECORD: %s", w);
                if (strcmp(m.node, c->node) != 0)
                        return jl_why(why, whylen, -EPERM,
                                      "RECORD of node '%s' on the connection of node '%s'", m.node, c->node);
                if (jl_msg_record_validate(&m, w, sizeof(w)) < 0)
                        return jl_why(why, whylen, -EBADMSG, "bad RECORD: %s", w);
                if (m.seq <= c->last_seq)
                        return jl_why(why, whylen, -EBADMSG, "RECORD seq %" PRIu64 " after seq %" PRIu64,
                                      m.seq, c->last_seq);
                c->last_seq = m.seq;
                it.kind = DBD_ITEM_RECORD;
                memcpy(it.node, m.node, sizeof(it.node));
                it.seq = m.seq;
                it.rec.start_us = (int64_t)m.start_us;
                it.rec.end_us = (int64_t)m.end_us;
                it.rec.energy_uj = (int64_t)m.energy_uj;
                it.rec.power_w = m.avg_power_w;
                it.rec.temp_c = m.temp_max_c;
                it.rec.freq_khz = m.freq_avg_khz;
                it.rec.step_id = m.step_id;
                it.rec.gap_us = (int64_t)m.gap_us;
                it.rec.has_job = m.job_id[0] && jl_msg_job_id_parse(m.job_id, &it.rec.job_id) == 0;
                if (m.ndomains > 0 && !(it.rec.domains_json = domains_json(&m)))
                        return jl_why(why, whylen, -ENOMEM, "out of memory");
                int r = emit(emit_data, &it);
                if (r < 0)
                        dbd_item_clear(&it);
                return r;
        }
        case JL_MSG_JOB: {
                jl_msg_job m;
                if (jl_msg_job_decode(payload, h->length, &m, w, sizeof(w)) < 0)
                        return jl_why(why, whylen, -EBADMSG, "bad JOB: %s", w);
                if (strcmp(m.node, c->node) != 0)
                        return jl_why(why, whylen, -EPERM, "JOB of node '%s' on the connection of node '%s'",
                                      m.node, c->node);
                if (jl_msg_job_validate(&m, w, sizeof(w)) < 0)
                        return jl_why(why, whylen, -EBADMSG, "bad JOB: %s", w);
                if (m.seq <= c->last_seq)
                        return jl_why(why, whylen, -EBADMSG, "JOB seq %" PRIu64 " after seq %" PRIu64, m.seq,
                                      c->last_seq);
                c->last_seq = m.seq;
                it.kind = DBD_ITEM_JOB;
                memcpy(it.node, m.node, sizeof(it.node));
                it.seq = m.seq;
                it.job.end = m.end;
                it.job.complete = m.complete;
                (void)jl_msg_job_id_parse(m.job_id, &it.job.job_id);
                it.job.step_id = m.step_id;
                it.job.time_us = (int64_t)m.time_us;
                it.job.energy_uj = (int64_t)m.energy_uj;
                memcpy(it.job.user, m.user, sizeof(it.job.user));
                return emit(emit_data, &it);
        }
        case JL_MSG_RT: {
                jl_msg_rt *m = malloc(sizeof(*m));
                if (!m)
                        return jl_why(why, whylen, -ENOMEM, "out of memory");
                if (jl_msg_rt_decode(payload, h->length, m, w, sizeof(w)) < 0) {
                        free(m);
                        return jl_why(why, whylen, -EBADMSG, "bad RT: %s", w);
                }
                if (strcmp(m->node, c->node) != 0) {
                        free(m);
                        return jl_why(why, whylen, -EPERM, "RT of node '%s' on the connection of node '%s'",
                                      m->node, c->node);
                }
                if (jl_msg_rt_validate(m, true, w, sizeof(w)) < 0) {
                        free(m);
                        return jl_why(why, whylen, -EBADMSG, "bad RT: %s", w);
                }
                if (m->seq <= c->last_seq) {
                        uint64_t seq = m->seq;
                        free(m);
                        return jl_why(why, whylen, -EBADMSG, "RT seq %" PRIu64 " after seq %" PRIu64, seq,
                                      c->last_seq);
                }
                c->last_seq = m->seq;
                it.kind = DBD_ITEM_RT;
                memcpy(it.node, m->node, sizeof(it.node));
                it.seq = m->seq;
                it.rt = m;
                int r = emit(emit_data, &it);
                if (r < 0)
                        dbd_item_clear(&it);
                return r;
        }
        case JL_MSG_HELLO:
                return jl_why(why, whylen, -EPROTO, "a second HELLO");
        default:
                return jl_why(why, whylen, -EPROTO, "unexpected %s frame (type %u) from a node",
                              type_name(h->type), h->type);
        }
}

static int process(dbd_conn_proto *c, int64_t now_us, dbd_auth_fn auth, void *auth_data, dbd_emit_fn emit,
                   void *emit_data, char *why, size_t whylen)
{
        int r;
        while (c->state != DBD_CONN_AUTHENTICATING) {
                jl_frame_header h;
                const uint8_t *payload;
                r = jl_framer_next(&c->framer, &h, &payload);
                if (r == 0)
                        return 0;
                if (r < 0) {
                        switch (r) {
                        case -EPROTONOSUPPORT:
                                return jl_why(why, whylen, r, "wrong protocol version (this dbd speaks %d)",
                                              JL_WIRE_VERSION);
                        case -EMSGSIZE:
                                return jl_why(why, whylen, r, "oversized frame (more than %u bytes)",
                                              DBD_MAX_FRAME);
                        default:
                                return jl_why(why, whylen, r, "not a joule frame (bad magic): %s",
                                              strerror(-r));
                        }
                }
                c->frames++;
                r = on_frame(c, &h, payload, now_us, auth, auth_data, emit, emit_data, why, whylen);
                jl_framer_pop(&c->framer);
                if (r < 0)
                        return r;
        }
        return 0; /* the rest waits in the framer for the credential's answer */
}

int dbd_proto_feed(dbd_conn_proto *c, const void *data, size_t n, int64_t now_us, dbd_auth_fn auth,
                   void *auth_data, dbd_emit_fn emit, void *emit_data, char *why, size_t whylen)
{
        int r = jl_framer_feed(&c->framer, data, n);
        if (r < 0)
                return jl_why(why, whylen, r, "cannot buffer the stream: %s", strerror(-r));
        return process(c, now_us, auth, auth_data, emit, emit_data, why, whylen);
}

int dbd_proto_auth_done(dbd_conn_proto *c, int auth_r, const char *auth_why, int64_t now_us,
                        dbd_emit_fn emit, void *emit_data, char *why, size_t whylen)
{
        if (c->state != DBD_CONN_AUTHENTICATING)
                return jl_why(why, whylen, -EPROTO, "a credential's answer without a HELLO");
        if (auth_r < 0)
                return jl_why(why, whylen, auth_r, "HELLO from node '%s' refused: %s", c->node, auth_why);
        int r = hello_accepted(c, now_us, emit, emit_data);
        if (r < 0)
                return jl_why(why, whylen, r, "out of memory");
        /* a second HELLO among the buffered frames is refused by on_frame: the check is never called */
        return process(c, now_us, NULL, NULL, emit, emit_data, why, whylen);
}
