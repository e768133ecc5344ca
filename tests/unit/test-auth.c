/* test-auth.c - MUNGE credentials against a real munged (tests/with-munge.sh): round trip, forged,
 * replayed, no daemon, and AUTHED frames. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth.h"
#include "msg.h"
#include "tap.h"

int main(void)
{
        jl_auth_opts o = {.socket = getenv("JOULE_MUNGE_SOCKET")};
        char why[256] = "";
        char *cred = NULL;
        uid_t uid;
        gid_t gid;
        void *payload;
        size_t len;

        if (!ok(o.socket != NULL, "JOULE_MUNGE_SOCKET is set (run under tests/with-munge.sh)"))
                return tap_done();
        is_int(jl_auth_encode(&o, "node-7", 6, &cred, why, sizeof(why)), 0, "encode: %s", why);
        is_int(jl_auth_decode(&o, cred, strlen(cred), &uid, &gid, &payload, &len, why, sizeof(why)), 0,
               "decode: %s", why);
        ok(uid == getuid() && gid == getgid(), "uid/gid are the sender's");
        ok(len == 6 && memcmp(payload, "node-7", 6) == 0, "payload intact");
        free(payload);
        is_int(jl_auth_decode(&o, cred, strlen(cred), &uid, &gid, &payload, &len, why, sizeof(why)), -EALREADY,
               "replay rejected");
        ok(strstr(why, "MUNGE") != NULL, "reason: %s", why);

        /* Forge: flip a character in the middle of the credential. */
        char *forged = NULL;
        jl_auth_encode(&o, "x", 1, &forged, why, sizeof(why));
        size_t mid = strlen(forged) / 2;
        forged[mid] = forged[mid] == 'A' ? 'B' : 'A';
        is_int(jl_auth_decode(&o, forged, strlen(forged), &uid, &gid, &payload, &len, why, sizeof(why)), -EBADMSG,
               "forged credential rejected");
        is_int(jl_auth_decode(&o, "garbage", 7, &uid, &gid, &payload, &len, why, sizeof(why)), -EBADMSG,
               "garbage rejected");
        is_int(jl_auth_decode(&o, "", 0, &uid, &gid, &payload, &len, why, sizeof(why)), -EBADMSG,
               "empty credential rejected");
        free(forged);
        free(cred);

        jl_auth_opts none = {.socket = "/nonexistent/munge.sock"};
        is_int(jl_auth_encode(&none, "x", 1, &cred, why, sizeof(why)), -ECONNREFUSED, "no munged: clear error");

        /* AUTHED frames */
        jl_msg_request req = {.op = JL_OP_SET_POWERCAP, .watts = 250};
        jl_wbuf inner, outer;
        const uint8_t *d;
        size_t n;
        jl_msg_request_encode(&req, 3, &inner);
        jl_wbuf_finish(&inner, &d, &n);
        is_int(jl_auth_wrap_frame(&o, d, n, 3, &outer, why, sizeof(why)), 0, "wrap: %s", why);
        const uint8_t *od;
        size_t on;
        jl_wbuf_finish(&outer, &od, &on);
        jl_frame_header h;
        jl_frame_header_decode(od, JL_WIRE_MAX_PAYLOAD, &h);
        is_int(h.type, JL_MSG_AUTHED, "outer frame is AUTHED");
        uint8_t *frame;
        size_t flen;
        is_int(jl_auth_unwrap_frame(&o, od + 16, h.length, 65536, &uid, &gid, &frame, &flen, why, sizeof(why)), 0,
               "unwrap: %s", why);
        jl_frame_header ih;
        jl_msg_request got;
        jl_frame_header_decode(frame, 65536, &ih);
        is_int(jl_msg_request_decode(frame + 16, ih.length, &got, why, sizeof(why)), 0, "inner request decodes");
        ok(got.op == JL_OP_SET_POWERCAP && got.watts == 250, "inner request intact");
        free(frame);
        is_int(jl_auth_unwrap_frame(&o, od + 16, h.length, 65536, &uid, &gid, &frame, &flen, why, sizeof(why)),
               -EALREADY, "replayed AUTHED frame rejected");
        jl_wbuf_free(&inner);
        jl_wbuf_free(&outer);

        /* A frame without a credential */
        jl_wbuf_init(&outer, JL_MSG_AUTHED, 0, 1);
        jl_wbuf_finish(&outer, &od, &on);
        is_int(jl_auth_unwrap_frame(&o, od + 16, on - 16, 65536, &uid, &gid, &frame, &flen, why, sizeof(why)),
               -EBADMSG, "missing credential rejected");
        ok(strstr(why, "no MUNGE credential") != NULL, "reason: %s", why);
        jl_wbuf_free(&outer);
        return tap_done();
}
