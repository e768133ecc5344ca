/* fuzz-dbd-conn.c - libFuzzer entry point for joule-dbd's per-connection state machine (src/dbd/conn.c):
 * arbitrary bytes, fed in pieces whose sizes come from the input, through framing, HELLO, the decoders
 * and the dbd's own checks. The credential check is a stand-in that accepts a credential equal to the node
 * name (the MUNGE one needs munged); every emitted item is freed. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "dbd.h"

static int auth(void *ud, const uint8_t *cred, size_t len, const char *node, char *why, size_t whylen)
{
        return len == strlen(node) && memcmp(cred, node, len) == 0 ? 0 : -13;
}

static int emit(void *ud, dbd_item *it)
{
        dbd_item_clear(it);
        return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        dbd_conn_proto c;
        dbd_proto_init(&c, 1);
        char why[512];
        size_t off = 0;
        while (off < size) {
                size_t n = 1 + data[off] % 64;
                off++;
                n = n < size - off ? n : size - off;
                if (dbd_proto_feed(&c, data + off, n, 0, auth, NULL, emit, NULL, why, sizeof(why)) < 0)
                        break;
                off += n;
        }
        dbd_proto_free(&c);
        return 0;
}
