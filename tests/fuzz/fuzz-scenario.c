/* fuzz-scenario.c - libFuzzer entry point for the scenario loader (src/runner/scenario.c). */
#include <stddef.h>
#include <stdint.h>

#include "scenario.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        jl_scenario *s = NULL;
        char err[512];
        if (jl_scenario_load_string("fuzz", (const char *)data, size, &s, err, sizeof(err)) == 0) {
                /* walk what was loaded so that a bad pointer shows */
                for (size_t i = 0; i < s->n_flow; i++)
                        (void)jl_scenario_getenv(s, &s->flow[i], "PATH");
                jl_scenario_free(s);
        }
        return 0;
}
