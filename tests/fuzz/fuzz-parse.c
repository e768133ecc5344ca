/* fuzz-parse.c - libFuzzer entry point for the strict number, duration and CPU-list parsers. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "parse.h"
#include "timeutil.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        char *s = malloc(size + 1);
        if (!s)
                return 0;
        memcpy(s, data, size);
        s[size] = '\0';
        uint64_t u;
        int64_t i;
        double d;
        bool b;
        uint64_t mask[16] = {0};
        parse_u64(s, &u);
        parse_i64(s, &i);
        parse_double(s, &d);
        parse_bool(s, &b);
        parse_duration_ns(s, 1000000, &u);
        parse_cpu_list(s, mask, 1024);
        parse_iso8601(s, &u);
        free(s);
        return 0;
}
