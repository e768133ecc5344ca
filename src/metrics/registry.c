/* registry.c - the providers compiled into joule, in the order the sampler opens them. */
#include "config-joule.h"
#include "provider.h"

const jl_provider_ops *const jl_providers[] = {
        &jl_provider_rapl,
        &jl_provider_rapl_msr,
        &jl_provider_hwmon,
        &jl_provider_cpufreq,
        &jl_provider_proc,
        &jl_provider_nvml,
#if HAVE_FREEIPMI
        &jl_provider_ipmi,
#endif
        &jl_provider_estimate,
        NULL,
};
