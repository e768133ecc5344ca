/* fuzz-perfev.c - libFuzzer entry point for the parsers of the kernel's perf PMU descriptions
 * (src/runtime/perfev.h): format bits, event terms and their encoding, scale, unit, cpumask, cpuinfo. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "perfev.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        static jl_pe_pmu pmu = {.name = "cpu", .type = 4};
        if (pmu.nformats == 0) {
                static const char *const f[][2] = {{"event", "config:0-7,32-35"},
                                                   {"umask", "config:8-15"},
                                                   {"edge", "config:18"},
                                                   {"offcore_rsp", "config1:0-63"},
                                                   {"ldlat", "config2:0-15"}};
                for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
                        jl_pe_format *x = &pmu.formats[pmu.nformats++];
                        strcpy(x->name, f[i][0]);
                        if (jl_pe_format_parse(f[i][1], &x->field, &x->mask) < 0)
                                abort();
                }
        }
        char *s = malloc(size + 1);
        if (!s)
                return 0;
        memcpy(s, data, size);
        s[size] = '\0';
        unsigned field;
        uint64_t mask, cfg[3];
        double d;
        char unit[16];
        int cpus[JL_PE_CPUS_MAX];
        jl_pe_cpuid id;
        jl_pe_format_parse(s, &field, &mask);
        jl_pe_encode(&pmu, s, cfg);
        jl_pe_scale_parse(s, &d);
        jl_pe_unit_parse(s, unit, sizeof(unit));
        jl_pe_cpumask_parse(s, cpus, JL_PE_CPUS_MAX);
        jl_pe_cpuinfo_parse(s, &id);
        free(s);
        return 0;
}
