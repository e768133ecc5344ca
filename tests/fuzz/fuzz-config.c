/* fuzz-config.c - libFuzzer entry point for the YAML configuration loader. */
#include <stddef.h>
#include <stdint.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        joule_config c;
        char err[256];
        if (joule_config_init(&c) < 0)
                return 0;
        joule_config_load_string(&c, "fuzz", (const char *)data, size, err, sizeof(err));
        joule_config_free(&c);
        return 0;
}
