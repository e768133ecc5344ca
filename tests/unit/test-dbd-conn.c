/* test-dbd-conn.c - joule-dbd's connection state machine (src/dbd/conn.c) with a credential check that
 * answers later, as the MUNGE workers do: nothing of a connection is emitted while its HELLO waits, the
 * frames sent after the HELLO are kept and processed once it is accepted, a refusal ends the connection
 * with the check's words, a second HELLO among the kept frames is refused; the domains JSON of a record. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "dbd.h"
#include "tap.h"

static int pending_auth(void *ud, const uint8_t *cred, size_t len, const char *node, char *why,
                        size_t whylen)
{
        int *calls = ud;
        (*calls)++;
        return DBD_AUTH_PENDING;
}

typedef struct {
        dbd_item items[16];
        size_t n;
} sink;

static int emit(void *ud, dbd_item *it)
{
        sink *s = ud;
        if (s->n == 16)
                return -ENOBUFS;
        s->items[s->n++] = *it;
        return 0;
}

static void sink_clear(sink *s)
{
        for (size_t i = 0; i < s->n; i++)
                dbd_item_clear(&s->items[i]);
        s->n = 0;
}

static void append(uint8_t **buf, size_t *len, jl_wbuf *w)
{
        const uint8_t *d;
        size_t n;
        if (jl_wbuf_finish(w, &d, &n) < 0)
                abort();
        *buf = realloc(*buf, *len + n);
        memcpy(*buf + *len, d, n);
        *len += n;
        jl_wbuf_free(w);
}

static void hello(uint8_t **buf, size_t *len, const char *node)
{
        jl_msg_hello h = {.next_seq = 1, .cred = (const uint8_t *)"cred", .cred_len = 4};
        snprintf(h.node, sizeof(h.node), "%s", node);
        snprintf(h.partition, sizeof(h.partition), "p1");
        jl_wbuf w = {0};
        if (jl_msg_hello_encode(&h, 0, &w) < 0)
                abort();
        append(buf, len, &w);
}

static void record(uint8_t **buf, size_t *len, const char *node, uint64_t seq)
{
        jl_msg_record m = {.seq = seq,
                           .start_us = 1000000 * seq,
                           .end_us = 1000000 * (seq + 1),
                           .energy_uj = 7 * seq,
                           .avg_power_w = 1.0,
                           .temp_max_c = 50,
                           .freq_avg_khz = 1e6,
                           .ndomains = 2};
        snprintf(m.node, sizeof(m.node), "%s", node);
        snprintf(m.domains[0].name, sizeof(m.domains[0].name), "package-0");
        m.domains[0].energy_uj = 9223372036854775807ull;
        snprintf(m.domains[1].name, sizeof(m.domains[1].name), "dram-0");
        m.domains[1].energy_uj = 0;
        jl_wbuf w = {0};
        if (jl_msg_record_encode(&m, 0, &w) < 0)
                abort();
        append(buf, len, &w);
}

int main(void)
{
        char why[512];
        int calls = 0;
        sink s = {0};

        /* HELLO and two records in one read: held until the answer */
        uint8_t *buf = NULL;
        size_t len = 0;
        hello(&buf, &len, "n1");
        record(&buf, &len, "n1", 1);
        record(&buf, &len, "n1", 2);
        dbd_conn_proto c;
        dbd_proto_init(&c, 42);
        is_int(dbd_proto_feed(&c, buf, len, 5, pending_auth, &calls, emit, &s, why, sizeof(why)), 0,
               "a HELLO whose check is pending is no error");
        is_int(calls, 1, "the check was asked once");
        is_int(c.state, DBD_CONN_AUTHENTICATING, "the connection waits for the answer");
        is_int(s.n, 0, "nothing is emitted before the answer");
        is_int(dbd_proto_auth_done(&c, 0, NULL, 9, emit, &s, why, sizeof(why)), 0, "accepted");
        is_int(c.state, DBD_CONN_READY, "the connection is ready");
        is_int(s.n, 3, "the HELLO and both records kept meanwhile are emitted");
        if (s.n == 3) {
                is_int(s.items[0].kind, DBD_ITEM_HELLO, "the HELLO first");
                is_int(s.items[0].hello.time_us, 9, "its time is the acceptance's");
                is_str(s.items[0].hello.partition, "p1", "with its partition");
                is_int(s.items[2].seq, 2, "then the records in order");
                is_str(s.items[1].rec.domains_json, "{\"package-0\":9223372036854775807,\"dram-0\":0}",
                       "the domains' JSON");
        }
        sink_clear(&s);
        free(buf);
        buf = NULL;
        len = 0;
        record(&buf, &len, "n1", 3);
        is_int(dbd_proto_feed(&c, buf, len, 10, pending_auth, &calls, emit, &s, why, sizeof(why)), 0,
               "later records flow");
        is_int(s.n, 1, "one more record");
        sink_clear(&s);
        dbd_proto_free(&c);
        free(buf);

        /* refused: the check's words */
        buf = NULL;
        len = 0;
        hello(&buf, &len, "n2");
        dbd_proto_init(&c, 43);
        dbd_proto_feed(&c, buf, len, 5, pending_auth, &calls, emit, &s, why, sizeof(why));
        is_int(dbd_proto_auth_done(&c, -EACCES, "forged", 6, emit, &s, why, sizeof(why)), -EACCES,
               "refused");
        ok(strstr(why, "HELLO from node 'n2' refused: forged") != NULL, "with the reason: %s", why);
        is_int(s.n, 0, "nothing emitted");
        dbd_proto_free(&c);

        /* a second HELLO among the frames kept while the first was checked */
        hello(&buf, &len, "n2");
        dbd_proto_init(&c, 44);
        dbd_proto_feed(&c, buf, len, 5, pending_auth, &calls, emit, &s, why, sizeof(why));
        is_int(dbd_proto_auth_done(&c, 0, NULL, 6, emit, &s, why, sizeof(why)), -EPROTO,
               "a second HELLO kept meanwhile is refused");
        ok(strstr(why, "a second HELLO") != NULL, "with the reason: %s", why);
        sink_clear(&s);
        dbd_proto_free(&c);
        free(buf);

        /* an answer without a pending HELLO */
        dbd_proto_init(&c, 45);
        is_int(dbd_proto_auth_done(&c, 0, NULL, 6, emit, &s, why, sizeof(why)), -EPROTO,
               "an answer without a HELLO is refused");
        dbd_proto_free(&c);
        return tap_done();
}
