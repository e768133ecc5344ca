/* nvml_control.h - setting NVIDIA GPUs' graphics clocks through NVML's application clocks (jouled's
 * SET_GPUFREQ): one session per use, sharing the nvml provider's dlopen of libnvidia-ml.so.1. A request is
 * rounded down to the nearest clock the GPU supports at its current memory clock; 0 kHz restores the
 * default application clocks. */
#pragma once

#include <stddef.h>
#include <stdint.h>

typedef struct jl_nvml_control jl_nvml_control;

/* Load NVML, initialise a session and count the GPUs. 0 and *ret; -ENOENT no NVML library; -ENOSYS a
 * library too old; -ENODEV NVML initialises but no GPU (or no driver); words in reason. */
int jl_nvml_control_open(jl_nvml_control **ret, char *reason, size_t reason_size);
unsigned jl_nvml_control_count(const jl_nvml_control *c);

/* What a request for khz on GPU gpu would set, without setting it: the nearest supported graphics clock not
 * above khz at the GPU's current application memory clock (*ret_khz) and that memory clock (*ret_mem_khz);
 * khz 0 gives 0 (the default). -ENODEV no such GPU; -EINVAL khz below the lowest supported clock;
 * -EOPNOTSUPP the GPU does not support application clocks; words in reason. */
int jl_nvml_control_resolve(jl_nvml_control *c, unsigned gpu, uint64_t khz, uint64_t *ret_khz,
                            uint64_t *ret_mem_khz, char *reason, size_t reason_size);

/* Set GPU gpu's application clocks to the resolved graphics clock (rounded as above) keeping the memory
 * clock; khz 0 resets them to the defaults. *ret_khz (may be NULL): the graphics clock set (0 after a
 * reset). -EACCES when NVML refuses (needs root, or unrestricted application clocks); words in reason. */
int jl_nvml_control_set(jl_nvml_control *c, unsigned gpu, uint64_t khz, uint64_t *ret_khz, char *reason,
                        size_t reason_size);

/* End the session. */
void jl_nvml_control_close(jl_nvml_control *c);
