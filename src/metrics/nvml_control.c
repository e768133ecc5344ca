/* nvml_control.c - NVIDIA GPU graphics clocks through NVML's application clocks: the request is checked
 * against nvmlDeviceGetSupportedGraphicsClocks at the current application memory clock
 * (nvmlDeviceGetApplicationsClock(NVML_CLOCK_MEM)) and set with nvmlDeviceSetApplicationsClocks(memory,
 * graphics); 0 is nvmlDeviceResetApplicationsClocks. The library is the nvml provider's (nvml_abi.h): one
 * dlopen per process; each control session is its own nvmlInit/nvmlShutdown (NVML counts them). */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "macro.h"
#include "nvml_abi.h"
#include "nvml_control.h"
#include "why.h"

#define CLOCKS_MAX 512 /* supported graphics clocks per memory clock (real GPUs list up to ~200) */

struct jl_nvml_control {
        const jl_nvml_api *api;
        unsigned n_gpus;
};

int jl_nvml_control_open(jl_nvml_control **ret, char *reason, size_t reason_size)
{
        const jl_nvml_api *api = NULL;
        char why[256] = "";
        int r = jl_nvml_api_load(&api, why, sizeof(why));
        if (r == -ENOSYS)
                return jl_why(reason, reason_size, r, JL_NVML_LIBRARY " is too old (%s)", why);
        if (r < 0)
                return jl_why(reason, reason_size, -ENOENT, "no NVIDIA driver library " JL_NVML_LIBRARY);
        jl_nvml_return nr = api->init();
        if (nr != NVML_SUCCESS)
                return jl_why(reason, reason_size, -ENODEV, "nvmlInit failed: %s",
                              jl_nvml_strerror(api, nr));
        unsigned n = 0;
        nr = api->get_count(&n);
        if (nr != NVML_SUCCESS || n == 0) {
                api->shutdown();
                return nr != NVML_SUCCESS ? jl_why(reason, reason_size, jl_nvml_errno(nr),
                                                   "cannot count the GPUs: %s", jl_nvml_strerror(api, nr))
                                          : jl_why(reason, reason_size, -ENODEV, "NVML sees no GPU");
        }
        jl_nvml_control *c = calloc(1, sizeof(*c));
        if (!c) {
                api->shutdown();
                return -ENOMEM;
        }
        c->api = api;
        c->n_gpus = n;
        *ret = c;
        return 0;
}

unsigned jl_nvml_control_count(const jl_nvml_control *c)
{
        return c->n_gpus;
}

static int device(jl_nvml_control *c, unsigned gpu, jl_nvml_device *ret, char *reason, size_t size)
{
        if (gpu >= c->n_gpus)
                return jl_why(reason, size, -ENODEV, "no GPU %u (this node has %u)", gpu, c->n_gpus);
        jl_nvml_return nr = c->api->get_handle(gpu, ret);
        if (nr != NVML_SUCCESS)
                return jl_why(reason, size, jl_nvml_errno(nr), "GPU %u: %s", gpu,
                              jl_nvml_strerror(c->api, nr));
        return 0;
}

int jl_nvml_control_resolve(jl_nvml_control *c, unsigned gpu, uint64_t khz, uint64_t *ret_khz,
                            uint64_t *ret_mem_khz, char *reason, size_t reason_size)
{
        const jl_nvml_api *api = c->api;
        jl_nvml_device dev;
        int r = device(c, gpu, &dev, reason, reason_size);
        if (r < 0)
                return r;
        if (!api->get_app_clock || !api->get_supported_graphics || !api->set_app_clocks ||
            !api->reset_app_clocks)
                return jl_why(reason, reason_size, -EOPNOTSUPP,
                              JL_NVML_LIBRARY " lacks the application clock entry points");
        unsigned mem = 0;
        jl_nvml_return nr = api->get_app_clock(dev, NVML_CLOCK_MEM, &mem);
        if (nr != NVML_SUCCESS)
                return jl_why(reason, reason_size, jl_nvml_errno(nr),
                              "GPU %u: no application memory clock: %s", gpu, jl_nvml_strerror(api, nr));
        if (khz == 0) {
                *ret_khz = 0;
                *ret_mem_khz = (uint64_t)mem * 1000;
                return 0;
        }
        unsigned clocks[CLOCKS_MAX], n = CLOCKS_MAX;
        nr = api->get_supported_graphics(dev, mem, &n, clocks);
        if (nr != NVML_SUCCESS || n == 0)
                return jl_why(reason, reason_size, nr == NVML_SUCCESS ? -EOPNOTSUPP : jl_nvml_errno(nr),
                              "GPU %u: no supported graphics clocks at memory clock %u MHz: %s", gpu, mem,
                              nr == NVML_SUCCESS ? "none listed" : jl_nvml_strerror(api, nr));
        if (n > CLOCKS_MAX)
                n = CLOCKS_MAX;
        uint64_t want_mhz = khz / 1000, best = 0, lowest = UINT64_MAX;
        bool found = false;
        for (unsigned i = 0; i < n; i++) {
                if (clocks[i] < lowest)
                        lowest = clocks[i];
                if (clocks[i] <= want_mhz && (!found || clocks[i] > best)) {
                        best = clocks[i];
                        found = true;
                }
        }
        if (!found)
                return jl_why(reason, reason_size, -EINVAL,
                              "%llu kHz is below GPU %u's lowest supported graphics clock (%llu MHz)",
                              (unsigned long long)khz, gpu, (unsigned long long)lowest);
        *ret_khz = best * 1000;
        *ret_mem_khz = (uint64_t)mem * 1000;
        return 0;
}

int jl_nvml_control_set(jl_nvml_control *c, unsigned gpu, uint64_t khz, uint64_t *ret_khz, char *reason,
                        size_t reason_size)
{
        uint64_t gfx_khz, mem_khz;
        int r = jl_nvml_control_resolve(c, gpu, khz, &gfx_khz, &mem_khz, reason, reason_size);
        if (r < 0)
                return r;
        jl_nvml_device dev;
        r = device(c, gpu, &dev, reason, reason_size);
        if (r < 0)
                return r;
        jl_nvml_return nr =
            khz == 0 ? c->api->reset_app_clocks(dev)
                     : c->api->set_app_clocks(dev, (unsigned)(mem_khz / 1000), (unsigned)(gfx_khz / 1000));
        if (nr != NVML_SUCCESS)
                return jl_why(
                    reason, reason_size, jl_nvml_errno(nr), "GPU %u: %s application clocks: %s%s", gpu,
                    khz == 0 ? "resetting the" : "setting the", jl_nvml_strerror(c->api, nr),
                    nr == NVML_ERROR_NO_PERMISSION ? " (needs root, or nvidia-smi -acp UNRESTRICTED)" : "");
        if (ret_khz)
                *ret_khz = gfx_khz;
        return 0;
}

void jl_nvml_control_close(jl_nvml_control *c)
{
        if (!c)
                return;
        c->api->shutdown();
        free(c);
}
