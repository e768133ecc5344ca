/* fuzz-coeffs.c - libFuzzer entry point for the coefficient file's parser (src/runtime/coeffs.h): whatever
 * it accepts must format and parse again to the same frequencies, curve and pairs. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "coeffs.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        jl_coeffs c, c2;
        char why[256];
        if (jl_coeffs_parse((const char *)data, size, NULL, &c, why, sizeof(why)) < 0)
                return 0;
        char *text = NULL;
        if (jl_coeffs_format(&c, &text) == 0) {
                if (jl_coeffs_parse(text, strlen(text), c.node, &c2, why, sizeof(why)) < 0 ||
                    c2.nfreqs != c.nfreqs || c2.npairs != c.npairs ||
                    memcmp(c2.freqs, c.freqs, c.nfreqs * sizeof(c.freqs[0])) != 0)
                        abort();
                jl_coeffs_free(&c2);
                free(text);
        }
        jl_coeffs_free(&c);
        return 0;
}
