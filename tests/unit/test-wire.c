/* test-wire.c - frames, TLV attributes and daemon messages: round trips and every kind of bad input. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "msg.h"
#include "tap.h"
#include "wire.h"

static jl_msg_record sample_record(void)
{
        jl_msg_record m = {.seq = 42,
                           .start_us = 1000000,
                           .end_us = 11000000,
                           .energy_uj = 1234567890,
                           .avg_power_w = 123.4567,
                           .temp_max_c = 71.5,
                           .freq_avg_khz = NAN,
                           .step_id = 3,
                           .ndomains = 2};
        strcpy(m.node, "n001");
        strcpy(m.job_id, "98765");
        strcpy(m.domains[0].name, "package-0");
        m.domains[0].energy_uj = 1000;
        strcpy(m.domains[1].name, "dram-0");
        m.domains[1].energy_uj = 200;
        return m;
}

int main(void)
{
        jl_wbuf w;
        const uint8_t *data;
        size_t len;
        char why[256];
        jl_frame_header h;

        /* Header */
        uint8_t hb[JL_WIRE_HEADER_SIZE];
        jl_frame_header_encode(
            &(jl_frame_header){.version = 1, .type = 2, .flags = 7, .length = 10, .id = 9}, hb);
        is_int(jl_frame_header_decode(hb, 100, &h), 0, "header round trip");
        ok(h.type == 2 && h.flags == 7 && h.length == 10 && h.id == 9, "header fields");
        is_int(jl_frame_header_decode(hb, 5, &h), -EMSGSIZE, "oversized payload rejected");
        hb[0] ^= 1;
        is_int(jl_frame_header_decode(hb, 100, &h), -EBADMSG, "wrong magic");
        hb[0] ^= 1;
        hb[4] = 2;
        is_int(jl_frame_header_decode(hb, 100, &h), -EPROTONOSUPPORT, "wrong protocol version");

        /* Record round trip */
        jl_msg_record m = sample_record(), d;
        is_int(jl_msg_record_encode(&m, 5, &w), 0, "record encodes");
        jl_wbuf_finish(&w, &data, &len);
        is_int(jl_frame_header_decode(data, JL_WIRE_MAX_PAYLOAD, &h), 0, "record header");
        is_int(h.length, len - JL_WIRE_HEADER_SIZE, "length covers the payload");
        is_int(jl_msg_record_decode(data + JL_WIRE_HEADER_SIZE, h.length, &d, why, sizeof(why)), 0,
               "record decodes");
        is_str(d.node, "n001", "node");
        is_int(d.seq, 42, "seq");
        is_int(d.energy_uj, 1234567890, "energy");
        is_near(d.avg_power_w, 123.4567, 0, "power exact");
        is_near(d.temp_max_c, 71.5, 0, "temperature");
        ok(isnan(d.freq_avg_khz), "absent frequency stays NaN");
        is_str(d.job_id, "98765", "job");
        is_int(d.step_id, 3, "step");
        is_int(d.gap_us, 0, "no gap attribute: no gap");
        jl_wbuf_free(&w);
        m.gap_us = 23000; /* 23 ms of the window unwrapped by a guess (docs/metrics.md, "Gaps") */
        jl_msg_record_encode(&m, 5, &w);
        jl_wbuf_finish(&w, &data, &len);
        is_int(jl_msg_record_decode(data + JL_WIRE_HEADER_SIZE, len - JL_WIRE_HEADER_SIZE, &d, why,
                                    sizeof(why)),
               0, "record with a gap decodes");
        is_int(d.gap_us, 23000, "gap_us round trip");
        jl_wbuf_free(&w);
        m.gap_us = 0;
        jl_msg_record_encode(&m, 5, &w);
        jl_wbuf_finish(&w, &data, &len);
        is_int(d.ndomains, 2, "two domains");
        is_str(d.domains[1].name, "dram-0", "domain name");
        is_int(d.domains[1].energy_uj, 200, "domain energy");

        /* Every truncation of the payload is rejected, except at the boundary of a trailing domain, where
         * it decodes as a record with fewer domains (the frame header's length is what detects those). */
        size_t consistent = 0;
        for (size_t cut = 0; cut < h.length; cut++)
                consistent +=
                    jl_msg_record_decode(data + JL_WIRE_HEADER_SIZE, cut, &d, why, sizeof(why)) < 0 ||
                    d.ndomains < 2;
        is_int(consistent, h.length, "every truncated payload is rejected or lacks a trailing domain");

        /* Flipping each byte never crashes. */
        uint8_t *copy = malloc(len);
        for (size_t i = JL_WIRE_HEADER_SIZE; i < len; i++) {
                memcpy(copy, data, len);
                copy[i] ^= 0xff;
                jl_msg_record_decode(copy + JL_WIRE_HEADER_SIZE, h.length, &d, why, sizeof(why));
        }
        ok(1, "byte flips survived");
        free(copy);
        jl_wbuf_free(&w);

        /* Missing required attribute */
        jl_wbuf_init(&w, JL_MSG_RECORD, 0, 1);
        jl_wbuf_put_str(&w, 1, "n1");
        jl_wbuf_finish(&w, &data, &len);
        is_int(jl_msg_record_decode(data + 16, len - 16, &d, why, sizeof(why)), -EBADMSG, "missing seq");
        ok(strstr(why, "'seq' is missing") != NULL, "reason names the attribute: %s", why);
        jl_wbuf_free(&w);

        /* Duplicate attribute, wrong size, NUL in a string, unknown attribute ignored */
        jl_msg_record base = sample_record();
        jl_msg_record_encode(&base, 1, &w);
        jl_wbuf_put_u64(&w, 2, 43); /* seq twice */
        jl_wbuf_finish(&w, &data, &len);
        is_int(jl_msg_record_decode(data + 16, len - 16, &d, why, sizeof(why)), -EBADMSG, "duplicate seq");
        ok(strstr(why, "twice") != NULL, "reason: %s", why);
        jl_wbuf_free(&w);

        jl_msg_record_encode(&base, 1, &w);
        jl_wbuf_put_bytes(&w, 30, "future", 6); /* unknown attribute */
        jl_wbuf_finish(&w, &data, &len);
        is_int(jl_msg_record_decode(data + 16, len - 16, &d, why, sizeof(why)), 0,
               "unknown attribute ignored");
        jl_wbuf_free(&w);

        jl_wbuf_init(&w, JL_MSG_ACK, 0, 1);
        jl_wbuf_put_bytes(&w, 2, "abc", 3); /* seq of 3 bytes */
        jl_wbuf_finish(&w, &data, &len);
        jl_msg_ack ack;
        is_int(jl_msg_ack_decode(data + 16, len - 16, &ack, why, sizeof(why)), -EBADMSG,
               "wrong-size integer");
        jl_wbuf_free(&w);

        {
                /* HELLO with partition and island (joule-dbd's aggregations), and without */
                jl_msg_hello hl = {.next_seq = 77, .cred = (const uint8_t *)"cred", .cred_len = 4}, hd;
                strcpy(hl.node, "n017");
                strcpy(hl.partition, "gpu");
                strcpy(hl.island, "island-2");
                is_int(jl_msg_hello_encode(&hl, 1, &w), 0, "hello with partition encodes");
                jl_wbuf_finish(&w, &data, &len);
                is_int(jl_msg_hello_decode(data + 16, len - 16, &hd, why, sizeof(why)), 0, "hello decodes");
                ok(strcmp(hd.node, "n017") == 0 && hd.next_seq == 77 && strcmp(hd.partition, "gpu") == 0 &&
                       strcmp(hd.island, "island-2") == 0 && hd.cred_len == 4 &&
                       memcmp(hd.cred, "cred", 4) == 0,
                   "hello round trip: node, next_seq, partition, island, credential");
                jl_wbuf_free(&w);
                hl.partition[0] = hl.island[0] = '\0';
                jl_msg_hello_encode(&hl, 1, &w);
                jl_wbuf_finish(&w, &data, &len);
                is_int(jl_msg_hello_decode(data + 16, len - 16, &hd, why, sizeof(why)), 0,
                       "hello without partition");
                ok(hd.partition[0] == '\0' && hd.island[0] == '\0', "no partition, no island");
                jl_wbuf_free(&w);
        }

        jl_wbuf_init(&w, JL_MSG_HELLO, 0, 1);
        jl_wbuf_put_bytes(&w, 1, "n\0de", 4);
        jl_wbuf_put_u64(&w, 20, 1);
        jl_wbuf_finish(&w, &data, &len);
        jl_msg_hello hello;
        is_int(jl_msg_hello_decode(data + 16, len - 16, &hello, why, sizeof(why)), -EBADMSG,
               "NUL in a string");
        jl_wbuf_free(&w);

        jl_wbuf_init(&w, JL_MSG_RECORD, 0, 1);
        char big[JL_WIRE_MAX_STRING + 2];
        memset(big, 'x', sizeof(big) - 1);
        big[sizeof(big) - 1] = '\0';
        jl_wbuf_put_str(&w, 1, big);
        is_int(jl_wbuf_finish(&w, &data, &len), -ENAMETOOLONG, "oversized string refused by the writer");
        jl_wbuf_free(&w);

        /* A string beyond any bound is refused as too long, not as holding a NUL byte (issue 7: a 5,000-byte
         * job id was refused as "holds a NUL byte") */
        {
                static char huge[5000];
                memset(huge, '7', sizeof(huge));
                jl_wbuf_init(&w, JL_MSG_REQUEST, 0, 1);
                jl_wbuf_put_u64(&w, 21 /* op */, JL_OP_JOB_BEGIN);
                jl_wbuf_put_bytes(&w, 9 /* job */, huge, sizeof(huge));
                jl_wbuf_finish(&w, &data, &len);
                jl_msg_request rq5;
                is_int(jl_msg_request_decode(data + 16, len - 16, &rq5, why, sizeof(why)), -EBADMSG,
                       "a 5,000-byte job id is refused");
                ok(strstr(why, "longer than") != NULL && strstr(why, "NUL") == NULL, "as too long: %s", why);
                jl_wbuf_free(&w);
                jl_wbuf_init(&w, JL_MSG_REQUEST, 0, 1);
                jl_wbuf_put_u64(&w, 21 /* op */, JL_OP_JOB_BEGIN);
                jl_wbuf_put_bytes(&w, 9 /* job */, "12\0", 3);
                jl_wbuf_finish(&w, &data, &len);
                is_int(jl_msg_request_decode(data + 16, len - 16, &rq5, why, sizeof(why)), -EBADMSG,
                       "a job id with a NUL byte is refused");
                ok(strstr(why, "NUL") != NULL, "as holding a NUL byte: %s", why);
                jl_wbuf_free(&w);
        }

        /* A negative/absurd power and a window that ends before it starts */
        base.avg_power_w = -5;
        jl_msg_record_encode(&base, 1, &w);
        jl_wbuf_finish(&w, &data, &len);
        is_int(jl_msg_record_decode(data + 16, len - 16, &d, why, sizeof(why)), -EBADMSG, "negative power");
        jl_wbuf_free(&w);
        base = sample_record();
        base.end_us = 5;
        jl_msg_record_encode(&base, 1, &w);
        jl_wbuf_finish(&w, &data, &len);
        is_int(jl_msg_record_decode(data + 16, len - 16, &d, why, sizeof(why)), -EBADMSG, "inverted window");
        jl_wbuf_free(&w);

        /* Job and error round trips */
        jl_msg_job j = {
            .seq = 7, .end = true, .step_id = 0, .time_us = 99, .energy_uj = 5, .complete = false};
        strcpy(j.node, "n2");
        strcpy(j.job_id, "12");
        strcpy(j.user, "alice");
        jl_msg_job jd;
        jl_msg_job_encode(&j, 1, &w);
        jl_wbuf_finish(&w, &data, &len);
        is_int(jl_msg_job_decode(data + 16, len - 16, &jd, why, sizeof(why)), 0, "job decodes");
        ok(jd.end && !jd.complete && !strcmp(jd.user, "alice") && jd.energy_uj == 5, "job fields");
        jl_wbuf_free(&w);
        jl_msg_error e = {.err = -EACCES}, ed;
        strcpy(e.message, "not allowed");
        jl_msg_error_encode(&e, 1, &w);
        jl_wbuf_finish(&w, &data, &len);
        is_int(jl_msg_error_decode(data + 16, len - 16, &ed, why, sizeof(why)), 0, "error decodes");
        ok(ed.err == -EACCES && !strcmp(ed.message, "not allowed"), "error fields");
        jl_wbuf_free(&w);

        /* Runtime records: round trip (NAN not sent, read back as NAN), in a request, and bad input */
        {
                jl_msg_rt rt, rd;
                jl_msg_rt_init(&rt, JL_RT_APP);
                strcpy(rt.node, "n001");
                strcpy(rt.job_id, "77");
                rt.step_id = 2;
                rt.seq = 9;
                rt.time_us = 1700000000000000;
                strcpy(rt.name, "lulesh");
                strcpy(rt.policy, "min_energy");
                strcpy(rt.tag, "t1");
                rt.policy_th = 0.05;
                rt.energy_j = 12.5;
                rt.avg_cpufreq_khz = 2100000;
                is_int(jl_msg_rt_encode(&rt, 3, &w), 0, "rt record encodes");
                jl_wbuf_finish(&w, &data, &len);
                is_int(jl_msg_rt_decode(data + JL_WIRE_HEADER_SIZE, len - JL_WIRE_HEADER_SIZE, &rd, why,
                                        sizeof(why)),
                       0, "rt record decodes");
                ok(rd.kind == JL_RT_APP && strcmp(rd.name, "lulesh") == 0 &&
                       strcmp(rd.policy, "min_energy") == 0 && rd.policy_th == 0.05 && rd.energy_j == 12.5 &&
                       isnan(rd.cpi) && isnan(rd.time_s) && rd.avg_cpufreq_khz == 2100000 &&
                       rd.def_cpufreq_khz == 0 && rd.seq == 9 && rd.step_id == 2,
                   "rt record fields, NAN where unknown");
                is_int(jl_msg_rt_validate(&rd, true, why, sizeof(why)), 0, "rt record is valid");
                jl_wbuf_free(&w);

                jl_msg_request rr = {.op = JL_OP_RT_RECORD, .step_id = 2, .has_rt = true, .rt = rt}, rrd;
                strcpy(rr.job_id, "77");
                jl_msg_request_encode(&rr, 4, &w);
                jl_wbuf_finish(&w, &data, &len);
                is_int(jl_msg_request_decode(data + 16, len - 16, &rrd, why, sizeof(why)), 0,
                       "rt request decodes");
                ok(rrd.has_rt && rrd.rt.kind == JL_RT_APP && strcmp(rrd.rt.name, "lulesh") == 0 &&
                       isnan(rrd.rt.gbs),
                   "rt request carries the record");
                jl_wbuf_free(&w);
                jl_msg_request nr = {.op = JL_OP_RT_RECORD, .step_id = 0};
                strcpy(nr.job_id, "77");
                jl_msg_request_encode(&nr, 4, &w);
                jl_wbuf_finish(&w, &data, &len);
                is_int(jl_msg_request_decode(data + 16, len - 16, &rrd, why, sizeof(why)), -EBADMSG,
                       "rt request without a record: %s", why);
                jl_wbuf_free(&w);
                jl_msg_request wp = {.op = JL_OP_WATCH_PID, .step_id = 0, .pid = 0};
                strcpy(wp.job_id, "77");
                jl_msg_request_encode(&wp, 4, &w);
                jl_wbuf_finish(&w, &data, &len);
                is_int(jl_msg_request_decode(data + 16, len - 16, &rrd, why, sizeof(why)), -EBADMSG,
                       "watch without a pid: %s", why);
                jl_wbuf_free(&w);

                jl_msg_rt b = rd;
                b.time_s = -1;
                is_int(jl_msg_rt_validate(&b, true, why, sizeof(why)), -EINVAL, "negative time: %s", why);
                b = rd;
                b.cpi = INFINITY;
                is_int(jl_msg_rt_validate(&b, true, why, sizeof(why)), -EINVAL, "infinite cpi: %s", why);
                b = rd;
                strcpy(b.name, "two words");
                is_int(jl_msg_rt_validate(&b, true, why, sizeof(why)), -EINVAL, "a name with a space: %s",
                       why);
                b = rd;
                b.name[0] = '\0';
                is_int(jl_msg_rt_validate(&b, true, why, sizeof(why)), -EINVAL, "an empty name: %s", why);
                b = rd;
                strcpy(b.message, "line\nbreak");
                is_int(jl_msg_rt_validate(&b, true, why, sizeof(why)), -EINVAL, "a control character: %s",
                       why);
                b = rd;
                strcpy(b.job_id, "12a");
                is_int(jl_msg_rt_validate(&b, true, why, sizeof(why)), -EINVAL, "a job id not a number: %s",
                       why);
                b = rd;
                b.kind = 9;
                is_int(jl_msg_rt_validate(&b, true, why, sizeof(why)), -EINVAL, "an unknown kind: %s", why);
                b = rd;
                b.node[0] = '\0';
                is_int(jl_msg_rt_validate(&b, true, why, sizeof(why)), -EINVAL, "no node: %s", why);
                is_int(jl_msg_rt_validate(&b, false, why, sizeof(why)), 0,
                       "no node is fine before jouled names it");
                /* an infinite double on the wire is a malformed frame */
                jl_wbuf_init(&w, JL_MSG_RT, 0, 1);
                jl_wbuf_put_str(&w, 1, "n001");
                jl_wbuf_put_u64(&w, 2, 1);
                jl_wbuf_put_u64(&w, 16, 1);
                jl_wbuf_put_str(&w, 9, "5");
                jl_wbuf_put_i64(&w, 10, 0);
                jl_wbuf_put_u64(&w, 33, 3);
                jl_wbuf_put_str(&w, 34, "policy");
                jl_wbuf_put_double(&w, 47, INFINITY);
                jl_wbuf_finish(&w, &data, &len);
                is_int(jl_msg_rt_decode(data + JL_WIRE_HEADER_SIZE, len - JL_WIRE_HEADER_SIZE, &rd, why,
                                        sizeof(why)),
                       -EBADMSG, "an infinite value on the wire: %s", why);
                jl_wbuf_free(&w);
        }

        /* Request and reply round trips, and requests that make no sense */
        jl_msg_request rq = {
            .op = JL_OP_SET_CPUFREQ, .khz = 2100000, .cpumask_len = 2, .cpumask = {0x0f, 0x01}};
        jl_msg_request rqd;
        jl_msg_request_encode(&rq, 4, &w);
        jl_wbuf_finish(&w, &data, &len);
        is_int(jl_msg_request_decode(data + 16, len - 16, &rqd, why, sizeof(why)), 0, "request decodes");
        ok(rqd.op == JL_OP_SET_CPUFREQ && rqd.khz == 2100000 && rqd.cpumask_len == 2 && rqd.cpumask[1] == 1,
           "request fields");
        jl_wbuf_free(&w);
        jl_msg_request gl = {.op = JL_OP_SET_GPUFREQ_LIST, .ngpus = 2, .gpu_khz = {1410000, 1200000}};
        jl_msg_request_encode(&gl, 4, &w);
        jl_wbuf_finish(&w, &data, &len);
        is_int(jl_msg_request_decode(data + 16, len - 16, &rqd, why, sizeof(why)), 0, "gpu list decodes");
        ok(rqd.ngpus == 2 && rqd.gpu_khz[1] == 1200000, "gpu list fields");
        jl_wbuf_free(&w);
        jl_msg_request nomask = {.op = JL_OP_SET_CPUFREQ, .khz = 1000};
        jl_msg_request_encode(&nomask, 4, &w);
        jl_wbuf_finish(&w, &data, &len);
        is_int(jl_msg_request_decode(data + 16, len - 16, &rqd, why, sizeof(why)), -EBADMSG,
               "cpufreq without mask");
        jl_wbuf_free(&w);
        jl_wbuf_init(&w, JL_MSG_REQUEST, 0, 1);
        jl_wbuf_put_u64(&w, 21, 200);
        jl_wbuf_finish(&w, &data, &len);
        is_int(jl_msg_request_decode(data + 16, len - 16, &rqd, why, sizeof(why)), -EBADMSG,
               "unknown operation");
        jl_wbuf_free(&w);
        jl_msg_reply rp = {.err = -EPERM, .energy_uj = 5, .time_ms = 6, .text = "{}", .text_len = 2}, rpd;
        strcpy(rp.message, "not your job");
        jl_msg_reply_encode(&rp, 4, &w);
        jl_wbuf_finish(&w, &data, &len);
        is_int(jl_msg_reply_decode(data + 16, len - 16, &rpd, why, sizeof(why)), 0, "reply decodes");
        ok(rpd.err == -EPERM && rpd.text_len == 2 && !memcmp(rpd.text, "{}", 2) &&
               !strcmp(rpd.message, "not your job"),
           "reply fields");
        jl_wbuf_free(&w);

        /* Framer: frames split across feeds, two frames in one feed, garbage stream */
        jl_framer f;
        jl_framer_init(&f, 4096);
        jl_msg_ack a1 = {.seq = 1}, a2 = {.seq = 2};
        jl_wbuf w1, w2;
        const uint8_t *d1, *d2;
        size_t l1, l2;
        jl_msg_ack_encode(&a1, 1, &w1);
        jl_wbuf_finish(&w1, &d1, &l1);
        jl_msg_ack_encode(&a2, 2, &w2);
        jl_wbuf_finish(&w2, &d2, &l2);
        const uint8_t *payload;
        jl_framer_feed(&f, d1, 5);
        is_int(jl_framer_next(&f, &h, &payload), 0, "partial header: need more");
        jl_framer_feed(&f, d1 + 5, l1 - 5);
        jl_framer_feed(&f, d2, l2);
        is_int(jl_framer_next(&f, &h, &payload), 1, "first frame");
        is_int(h.id, 1, "first id");
        jl_framer_pop(&f);
        is_int(jl_framer_next(&f, &h, &payload), 1, "second frame");
        is_int(jl_msg_ack_decode(payload, h.length, &ack, why, sizeof(why)), 0, "second decodes");
        is_int(ack.seq, 2, "second seq");
        jl_framer_pop(&f);
        is_int(jl_framer_next(&f, &h, &payload), 0, "empty");
        jl_framer_feed(&f, "GET / HTTP/1.1\r\n\r\n", 18);
        is_int(jl_framer_next(&f, &h, &payload), -EBADMSG, "HTTP on the port is a bad stream");
        jl_framer_free(&f);
        jl_wbuf_free(&w1);
        jl_wbuf_free(&w2);
        return tap_done();
}
