/* fuzz-dynais.c - libFuzzer entry point for loop detection: the first two bytes choose the window and the
 * levels, the rest is the event stream (one byte per event, so that loops are likely, or four bytes per
 * event when the first byte's top bit is set). Checks the invariants every push must keep. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dynais.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        if (size < 2)
                return 0;
        uint32_t window = 1 + (data[0] & 0x7f) * 3, levels = 1 + data[1] % JL_DYNAIS_LEVELS_MAX;
        bool wide = data[0] & 0x80;
        jl_dynais *d = NULL;
        if (jl_dynais_new(window, levels, &d) < 0)
                abort();
        for (int pass = 0; pass < 2; pass++) {
                for (size_t i = 2; i < size;) {
                        uint32_t e = data[i++];
                        if (wide && i + 3 <= size) {
                                e |= (uint32_t)data[i] << 8 | (uint32_t)data[i + 1] << 16 |
                                     (uint32_t)data[i + 2] << 24;
                                i += 3;
                        }
                        jl_dynais_loop l;
                        jl_dynais_state st = jl_dynais_push(d, e, &l);
                        if (st != l.state || l.level >= levels || st > JL_DYNAIS_END_NEW_LOOP)
                                abort();
                        if (st == JL_DYNAIS_NO_LOOP && (l.size || l.level))
                                abort();
                        if (st != JL_DYNAIS_NO_LOOP && (l.size < 1 || l.size > window || l.iterations < 1))
                                abort();
                        if (l.level == 0 && st != JL_DYNAIS_NO_LOOP && l.iter_events != l.size)
                                abort();
                }
                jl_dynais_reset(d);
        }
        jl_dynais_free(d);
        return 0;
}
