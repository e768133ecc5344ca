/* fuzz-frame.c - libFuzzer entry point for the frame decoder and every message decoder. */
#include <stddef.h>
#include <stdint.h>

#include "msg.h"
#include "wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        jl_framer f;
        jl_frame_header h;
        const uint8_t *payload;
        char why[128];
        jl_framer_init(&f, 65536);
        /* Feed in two pieces to exercise reassembly. */
        size_t half = size / 2;
        if (jl_framer_feed(&f, data, half) == 0 && jl_framer_feed(&f, data + half, size - half) == 0) {
                for (int i = 0; i < 64 && jl_framer_next(&f, &h, &payload) == 1; i++) {
                        union {
                                jl_msg_hello hello;
                                jl_msg_record record;
                                jl_msg_job job;
                                jl_msg_ack ack;
                                jl_msg_error error;
                                jl_msg_request request;
                                jl_msg_reply reply;
                                jl_msg_rt rt;
                        } m;
                        jl_msg_hello_decode(payload, h.length, &m.hello, why, sizeof(why));
                        jl_msg_record_decode(payload, h.length, &m.record, why, sizeof(why));
                        jl_msg_job_decode(payload, h.length, &m.job, why, sizeof(why));
                        jl_msg_ack_decode(payload, h.length, &m.ack, why, sizeof(why));
                        jl_msg_error_decode(payload, h.length, &m.error, why, sizeof(why));
                        jl_msg_request_decode(payload, h.length, &m.request, why, sizeof(why));
                        jl_msg_reply_decode(payload, h.length, &m.reply, why, sizeof(why));
                        if (jl_msg_rt_decode(payload, h.length, &m.rt, why, sizeof(why)) == 0)
                                jl_msg_rt_validate(&m.rt, true, why, sizeof(why));
                        if (jl_msg_request_decode(payload, h.length, &m.request, why, sizeof(why)) == 0 &&
                            m.request.has_rt)
                                jl_msg_rt_validate(&m.request.rt, false, why, sizeof(why));
                        jl_framer_pop(&f);
                }
        }
        jl_framer_free(&f);
        /* And the payload decoders on raw bytes. */
        jl_msg_record rec;
        jl_msg_record_decode(data, size, &rec, why, sizeof(why));
        return 0;
}
