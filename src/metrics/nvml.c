/* nvml.c - NVIDIA GPUs through NVML, loaded with dlopen("libnvidia-ml.so.1") at open (once per process,
 * through dlopen-util.h): no build dependency and no NVML header; the few types and entry points used are
 * declared in nvml_abi.h after the NVML ABI. Per GPU i:
 * "gpu-i" energy (the driver's total-energy counter in mJ since it loaded; where that counter is not
 * supported, the provider integrates the power readings itself, trapezoid rule, and says so in a note),
 * "gpu-i/power" (W), "gpu-i/temperature" (°C), "gpu-i/sm-clock" and "gpu-i/mem-clock" (kHz),
 * "gpu-i/utilization" and "gpu-i/mem-utilization" (0..1: the share of the driver's last sample period in
 * which a kernel ran, and in which the GPU's memory was read or written; nvmlDeviceGetUtilizationRates).
 * The energy channel also carries the GPU's identity, read once at open where the library has the entry
 * point (else unknown): UUID (nvmlDeviceGetUUID), device minor number (nvmlDeviceGetMinorNumber) and PCI bus
 * id (nvmlDeviceGetPciInfo_v3); jouled publishes them in its shared page for the runtime's GPU selection.
 *
 * The total-energy counter is preferred: on A100/H100 the power reading is sampled over only part of each
 * second, so integrating it misses energy. The provider only reads; it never changes a GPU setting (that is
 * nvml_control.c, which shares this file's dlopen of the library through nvml_abi.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dlopen-util.h"
#include "macro.h"
#include "nvml_abi.h"
#include "provider.h"
#include "timeutil.h"

#define NVML_LIBRARY JL_NVML_LIBRARY

typedef jl_nvml_return nvml_return;
typedef jl_nvml_device nvml_device;
typedef jl_nvml_api nvml_api;

typedef enum {
        CH_ENERGY,
        CH_POWER,
        CH_TEMPERATURE,
        CH_SM_CLOCK,
        CH_MEM_CLOCK,
        CH_UTIL_GPU,
        CH_UTIL_MEM,
        CH_PER_GPU, /* channels per GPU at most */
} channel_what;

typedef struct {
        nvml_device dev;
        bool integrate;  /* energy from power readings: no total-energy counter */
        bool need_power; /* a power channel or integration */
        bool has_util;   /* utilisation channels */
        /* integration state */
        double energy_uj; /* since open */
        unsigned last_mw;
        uint64_t last_ns;
        /* this read's power and utilisation readings */
        unsigned power_mw;
        int power_err;
        jl_nvml_utilization util;
        int util_err;
} nvml_gpu;

typedef struct {
        unsigned gpu;
        channel_what what;
} nvml_chan;

typedef struct {
        nvml_api api;
        bool initialised; /* nvmlInit succeeded: nvmlShutdown at close */
        unsigned n_gpus;
        nvml_gpu *gpus;
        size_t n_chans;
        nvml_chan *chans;
} nvml_state;

int jl_nvml_errno(jl_nvml_return r)
{
        switch (r) {
        case NVML_SUCCESS:
                return 0;
        case NVML_ERROR_NOT_SUPPORTED:
        case NVML_ERROR_FUNCTION_NOT_FOUND:
                return -EOPNOTSUPP;
        case NVML_ERROR_NO_PERMISSION:
                return -EACCES;
        case NVML_ERROR_NOT_FOUND:
        case NVML_ERROR_LIBRARY_NOT_FOUND:
                return -ENOENT;
        case NVML_ERROR_DRIVER_NOT_LOADED:
        case NVML_ERROR_GPU_IS_LOST:
                return -ENODEV;
        case NVML_ERROR_TIMEOUT:
                return -ETIMEDOUT;
        case NVML_ERROR_MEMORY:
                return -ENOMEM;
        case NVML_ERROR_NO_DATA:
                return -ENODATA;
        case NVML_ERROR_INVALID_ARGUMENT:
        case NVML_ERROR_UNINITIALIZED:
                return -EINVAL;
        default:
                return -EIO;
        }
}

const char *jl_nvml_strerror(const jl_nvml_api *api, jl_nvml_return r)
{
        const char *s = api->error_string ? api->error_string(r) : NULL;
        return s ? s : "unknown NVML error";
}

/* Resolved once per process (dlopen-util.h); the library stays loaded. */
static nvml_api nvml_syms;
static const jl_dlsym nvml_sym_list[] = {
    {"nvmlInit_v2", &nvml_syms.init, false},
    {"nvmlShutdown", &nvml_syms.shutdown, false},
    {"nvmlDeviceGetCount_v2", &nvml_syms.get_count, false},
    {"nvmlDeviceGetHandleByIndex_v2", &nvml_syms.get_handle, false},
    {"nvmlDeviceGetName", &nvml_syms.get_name, true},
    {"nvmlDeviceGetTotalEnergyConsumption", &nvml_syms.get_energy, true},
    {"nvmlDeviceGetPowerUsage", &nvml_syms.get_power, true},
    {"nvmlDeviceGetTemperature", &nvml_syms.get_temperature, true},
    {"nvmlDeviceGetClockInfo", &nvml_syms.get_clock, true},
    {"nvmlDeviceGetUtilizationRates", &nvml_syms.get_utilization, true},
    {"nvmlErrorString", &nvml_syms.error_string, true},
    {"nvmlDeviceGetUUID", &nvml_syms.get_uuid, true},
    {"nvmlDeviceGetMinorNumber", &nvml_syms.get_minor, true},
    {"nvmlDeviceGetPciInfo_v3", &nvml_syms.get_pci, true},
    {"nvmlDeviceGetMigMode", &nvml_syms.get_mig_mode, true},
    {"nvmlDeviceGetMaxMigDeviceCount", &nvml_syms.get_max_mig, true},
    {"nvmlDeviceGetMigDeviceHandleByIndex", &nvml_syms.get_mig_handle, true},
    {"nvmlDeviceGetApplicationsClock", &nvml_syms.get_app_clock, true},
    {"nvmlDeviceGetSupportedGraphicsClocks", &nvml_syms.get_supported_graphics, true},
    {"nvmlDeviceSetApplicationsClocks", &nvml_syms.set_app_clocks, true},
    {"nvmlDeviceResetApplicationsClocks", &nvml_syms.reset_app_clocks, true},
};
static jl_dlib nvml_lib = JL_DLIB_INIT(NVML_LIBRARY, nvml_sym_list);

int jl_nvml_api_load(const jl_nvml_api **ret, char *reason, size_t reason_size)
{
        int r = jl_dlib_load(&nvml_lib, reason, reason_size);
        if (r < 0)
                return r;
        *ret = &nvml_syms;
        return 0;
}

static int load_api(nvml_api *api, jl_notes *notes)
{
        char why[256];
        const jl_nvml_api *syms = NULL;
        int r = jl_nvml_api_load(&syms, why, sizeof(why));
        if (r == -ENOSYS) {
                jl_notes_add(notes, "nvml", -ENOSYS,
                             NVML_LIBRARY
                             " lacks nvmlInit_v2/nvmlDeviceGetCount_v2: the NVIDIA driver is too "
                             "old (before R319); update it (%s)",
                             why);
                return -ENOSYS;
        }
        if (r < 0) {
                jl_notes_add(notes, "nvml", -ENOENT,
                             "no NVIDIA driver library " NVML_LIBRARY
                             ": no NVIDIA GPU driver installed on this node (or not in the loader's path)");
                return -ENOENT;
        }
        *api = *syms;
        return 0;
}

/* Each optional entry point, called through a NULL check: a missing one reads as "not supported". */
static nvml_return get_energy(const nvml_api *api, nvml_device d, unsigned long long *mj)
{
        return api->get_energy ? api->get_energy(d, mj) : NVML_ERROR_FUNCTION_NOT_FOUND;
}
static nvml_return get_power(const nvml_api *api, nvml_device d, unsigned *mw)
{
        return api->get_power ? api->get_power(d, mw) : NVML_ERROR_FUNCTION_NOT_FOUND;
}
static nvml_return get_temperature(const nvml_api *api, nvml_device d, unsigned *c)
{
        return api->get_temperature ? api->get_temperature(d, NVML_TEMPERATURE_GPU, c)
                                    : NVML_ERROR_FUNCTION_NOT_FOUND;
}
static nvml_return get_clock(const nvml_api *api, nvml_device d, int type, unsigned *mhz)
{
        return api->get_clock ? api->get_clock(d, type, mhz) : NVML_ERROR_FUNCTION_NOT_FOUND;
}

static nvml_return get_utilization(const nvml_api *api, nvml_device d, jl_nvml_utilization *u)
{
        return api->get_utilization ? api->get_utilization(d, u) : NVML_ERROR_FUNCTION_NOT_FOUND;
}

static void free_state(nvml_state *st)
{
        if (!st)
                return;
        if (st->initialised)
                st->api.shutdown();
        free(st->gpus);
        free(st->chans);
        free(st);
}

/* The GPU's identity into its energy channel; what the library cannot tell stays unknown. */
static void read_identity(const nvml_api *api, nvml_device dev, jl_channel *ch)
{
        char uuid[NVML_DEVICE_UUID_V2_BUFFER_SIZE] = "";
        if (api->get_uuid && api->get_uuid(dev, uuid, sizeof(uuid)) == NVML_SUCCESS) {
                uuid[sizeof(uuid) - 1] = '\0';
                snprintf(ch->gpu_uuid, sizeof(ch->gpu_uuid), "%s", uuid);
        }
        unsigned minor;
        if (api->get_minor && api->get_minor(dev, &minor) == NVML_SUCCESS) {
                ch->gpu_minor_known = true;
                ch->gpu_minor = minor;
        }
        jl_nvml_pci_info pci = {0};
        if (api->get_pci && api->get_pci(dev, &pci) == NVML_SUCCESS) {
                pci.bus_id[sizeof(pci.bus_id) - 1] = '\0';
                snprintf(ch->gpu_pci, sizeof(ch->gpu_pci), "%s", pci.bus_id);
        }
        /* MIG enabled: the UUIDs of its instances ("MIG-…", what CUDA_VISIBLE_DEVICES names since R470),
         * comma-separated; one that does not fit is left out */
        unsigned cur = 0, pend = 0, max = 0;
        if (!api->get_mig_mode || !api->get_max_mig || !api->get_mig_handle || !api->get_uuid ||
            api->get_mig_mode(dev, &cur, &pend) != NVML_SUCCESS || cur != NVML_DEVICE_MIG_ENABLE ||
            api->get_max_mig(dev, &max) != NVML_SUCCESS)
                return;
        size_t used = 0;
        for (unsigned i = 0; i < max && i < 64; i++) {
                jl_nvml_device mig;
                char u[NVML_DEVICE_UUID_V2_BUFFER_SIZE] = "";
                if (api->get_mig_handle(dev, i, &mig) != NVML_SUCCESS ||
                    api->get_uuid(mig, u, sizeof(u)) != NVML_SUCCESS)
                        continue;
                u[sizeof(u) - 1] = '\0';
                size_t len = strlen(u);
                if (len == 0 || strchr(u, ',') || used + (used > 0) + len + 1 > sizeof(ch->gpu_mig))
                        continue;
                if (used > 0)
                        ch->gpu_mig[used++] = ',';
                memcpy(ch->gpu_mig + used, u, len + 1);
                used += len;
        }
}

static int add_chan(nvml_state *st, jl_channels *channels, unsigned gpu, channel_what what,
                    const char *suffix, jl_kind kind, jl_scope scope)
{
        jl_channel ch = {.provider = "nvml", .kind = kind, .scope = scope};
        snprintf(ch.name, sizeof(ch.name), "gpu-%u%s", gpu, suffix);
        if (what == CH_ENERGY)
                read_identity(&st->api, st->gpus[gpu].dev, &ch);
        int r = jl_channels_add(channels, &ch);
        if (r < 0)
                return r;
        st->chans[st->n_chans++] = (nvml_chan){.gpu = gpu, .what = what};
        return 0;
}

/* Probe GPU i and add the channels that answer; a note for each that does not. */
static int open_gpu(nvml_state *st, unsigned i, jl_channels *channels, jl_notes *notes)
{
        const nvml_api *api = &st->api;
        nvml_gpu *g = &st->gpus[i];
        char subject[JL_NAME_MAX];
        snprintf(subject, sizeof(subject), "nvml/gpu-%u", i);

        nvml_return nr = api->get_handle(i, &g->dev);
        if (nr != NVML_SUCCESS) {
                jl_notes_add(notes, subject, jl_nvml_errno(nr), "cannot get GPU %u: %s%s", i,
                             jl_nvml_strerror(api, nr),
                             nr == NVML_ERROR_NO_PERMISSION ? " (no permission on /dev/nvidia*)" : "");
                return 0;
        }
        char name[NVML_DEVICE_NAME_BUFFER_SIZE] = "";
        if (!api->get_name || api->get_name(g->dev, name, sizeof(name)) != NVML_SUCCESS)
                snprintf(name, sizeof(name), "unknown model");
        name[sizeof(name) - 1] = '\0';

        unsigned long long mj;
        unsigned v;
        nvml_return er = get_energy(api, g->dev, &mj);
        nvml_return pr = get_power(api, g->dev, &v);
        int r;
        if (er == NVML_SUCCESS || pr == NVML_SUCCESS) {
                g->integrate = er != NVML_SUCCESS;
                if (g->integrate) {
                        jl_notes_add(
                            notes, subject, jl_nvml_errno(er),
                            "%s has no total-energy counter (%s): its energy is integrated from power "
                            "readings (trapezoid rule), which can miss short peaks",
                            name, jl_nvml_strerror(api, er));
                        g->last_mw = v;
                        g->last_ns = mono_ns();
                }
                r = add_chan(st, channels, i, CH_ENERGY, "", JL_KIND_ENERGY, JL_SCOPE_GPU);
                if (r < 0)
                        return r;
        } else
                jl_notes_add(notes, subject, jl_nvml_errno(er),
                             "%s reports neither a total-energy counter (%s) nor power (%s): no GPU energy",
                             name, jl_nvml_strerror(api, er), jl_nvml_strerror(api, pr));

        if (pr == NVML_SUCCESS) {
                r = add_chan(st, channels, i, CH_POWER, "/power", JL_KIND_POWER, JL_SCOPE_OTHER);
                if (r < 0)
                        return r;
        } else if (er == NVML_SUCCESS)
                jl_notes_add(notes, subject, jl_nvml_errno(pr), "%s: power reading: %s", name,
                             jl_nvml_strerror(api, pr));
        g->need_power = pr == NVML_SUCCESS;

        nr = get_temperature(api, g->dev, &v);
        if (nr == NVML_SUCCESS)
                r = add_chan(st, channels, i, CH_TEMPERATURE, "/temperature", JL_KIND_TEMPERATURE,
                             JL_SCOPE_OTHER);
        else
                r = jl_notes_add(notes, subject, jl_nvml_errno(nr), "%s: temperature: %s", name,
                                 jl_nvml_strerror(api, nr));
        if (r < 0)
                return r;

        static const struct {
                int type;
                channel_what what;
                const char *suffix;
        } clocks[] = {{NVML_CLOCK_SM, CH_SM_CLOCK, "/sm-clock"},
                      {NVML_CLOCK_MEM, CH_MEM_CLOCK, "/mem-clock"}};
        for (size_t k = 0; k < ARRAY_SIZE(clocks); k++) {
                nr = get_clock(api, g->dev, clocks[k].type, &v);
                if (nr == NVML_SUCCESS)
                        r = add_chan(st, channels, i, clocks[k].what, clocks[k].suffix, JL_KIND_FREQUENCY,
                                     JL_SCOPE_OTHER);
                else
                        r = jl_notes_add(notes, subject, jl_nvml_errno(nr), "%s: %s: %s", name,
                                         clocks[k].suffix + 1, jl_nvml_strerror(api, nr));
                if (r < 0)
                        return r;
        }

        jl_nvml_utilization u;
        nr = get_utilization(api, g->dev, &u);
        g->has_util = nr == NVML_SUCCESS;
        if (nr == NVML_SUCCESS) {
                r = add_chan(st, channels, i, CH_UTIL_GPU, "/utilization", JL_KIND_UTILIZATION,
                             JL_SCOPE_OTHER);
                if (r == 0)
                        r = add_chan(st, channels, i, CH_UTIL_MEM, "/mem-utilization", JL_KIND_UTILIZATION,
                                     JL_SCOPE_OTHER);
        } else
                r = jl_notes_add(notes, subject, jl_nvml_errno(nr), "%s: utilization: %s", name,
                                 jl_nvml_strerror(api, nr));
        return r < 0 ? r : 0;
}

static int nvml_open(const jl_provider_config *cfg, jl_channels *channels, jl_notes *notes, void **ret_state)
{
        (void)cfg;
        nvml_state *st = calloc(1, sizeof(*st));
        if (!st)
                return -ENOMEM;
        int r = load_api(&st->api, notes);
        if (r < 0) {
                free(st);
                return r;
        }
        nvml_return nr = st->api.init();
        if (nr != NVML_SUCCESS) {
                jl_notes_add(notes, "nvml", -ENODEV, "nvmlInit failed: %s%s", jl_nvml_strerror(&st->api, nr),
                             nr == NVML_ERROR_DRIVER_NOT_LOADED
                                 ? " (the NVIDIA kernel driver is not loaded: "
                                   "no GPU, or modprobe nvidia)"
                             : nr == NVML_ERROR_LIB_RM_VERSION_MISMATCH
                                 ? " (the driver library and kernel module differ: reboot or reload "
                                   "the module after a driver update)"
                             : nr == NVML_ERROR_NO_PERMISSION ? " (no permission on /dev/nvidia*)"
                                                              : "");
                free(st);
                return -ENODEV;
        }
        st->initialised = true;
        nr = st->api.get_count(&st->n_gpus);
        if (nr != NVML_SUCCESS || st->n_gpus == 0) {
                if (nr != NVML_SUCCESS)
                        jl_notes_add(notes, "nvml", jl_nvml_errno(nr), "cannot count the GPUs: %s",
                                     jl_nvml_strerror(&st->api, nr));
                else
                        jl_notes_add(notes, "nvml", -ENODEV, "the NVIDIA driver is loaded but sees no GPU");
                free_state(st);
                return -ENODEV;
        }
        st->gpus = calloc(st->n_gpus, sizeof(*st->gpus));
        st->chans = calloc((size_t)st->n_gpus * CH_PER_GPU, sizeof(*st->chans));
        if (!st->gpus || !st->chans) {
                free_state(st);
                return -ENOMEM;
        }
        size_t before = channels->n;
        for (unsigned i = 0; i < st->n_gpus; i++) {
                r = open_gpu(st, i, channels, notes);
                if (r < 0) {
                        channels->n = before;
                        free_state(st);
                        return r;
                }
        }
        if (st->n_chans == 0) {
                jl_notes_add(notes, "nvml", -ENODEV, "no GPU answered (see the notes above)");
                free_state(st);
                return -ENODEV;
        }
        *ret_state = st;
        return 0;
}

static int nvml_read(void *state, jl_value *values)
{
        nvml_state *st = state;
        const nvml_api *api = &st->api;
        uint64_t t = mono_ns();
        for (unsigned i = 0; i < st->n_gpus; i++) {
                nvml_gpu *g = &st->gpus[i];
                /* one utilisation reading per GPU serves both of its channels */
                if (g->has_util)
                        g->util_err = jl_nvml_errno(get_utilization(api, g->dev, &g->util));
                if (!g->need_power && !g->integrate)
                        continue;
                nvml_return nr = get_power(api, g->dev, &g->power_mw);
                g->power_err = jl_nvml_errno(nr);
                if (g->integrate && nr == NVML_SUCCESS) {
                        /* trapezoid: mean of the two readings × the interval; mW × s × 1000 = µJ */
                        double dt_s = (double)(t - g->last_ns) / 1e9;
                        g->energy_uj += ((double)g->last_mw + (double)g->power_mw) / 2.0 * dt_s * 1000.0;
                        g->last_mw = g->power_mw;
                        g->last_ns = t;
                }
        }
        for (size_t k = 0; k < st->n_chans; k++) {
                const nvml_chan *c = &st->chans[k];
                nvml_gpu *g = &st->gpus[c->gpu];
                jl_value *v = &values[k];
                unsigned x = 0;
                nvml_return nr;
                switch (c->what) {
                case CH_ENERGY:
                        if (g->integrate) {
                                v->err = g->power_err;
                                v->counter = (uint64_t)g->energy_uj;
                        } else {
                                unsigned long long mj = 0;
                                nr = get_energy(api, g->dev, &mj);
                                v->err = jl_nvml_errno(nr);
                                v->counter = (uint64_t)mj * 1000;
                        }
                        break;
                case CH_POWER:
                        v->err = g->power_err;
                        v->gauge = g->power_mw / 1000.0;
                        break;
                case CH_TEMPERATURE:
                        nr = get_temperature(api, g->dev, &x);
                        v->err = jl_nvml_errno(nr);
                        v->gauge = x;
                        break;
                case CH_SM_CLOCK:
                case CH_MEM_CLOCK:
                        nr = get_clock(api, g->dev, c->what == CH_SM_CLOCK ? NVML_CLOCK_SM : NVML_CLOCK_MEM,
                                       &x);
                        v->err = jl_nvml_errno(nr);
                        v->gauge = x * 1000.0; /* MHz -> kHz */
                        break;
                case CH_UTIL_GPU:
                case CH_UTIL_MEM:
                        x = c->what == CH_UTIL_GPU ? g->util.gpu : g->util.memory;
                        v->err = g->util_err < 0 ? g->util_err : x > 100 ? -ERANGE : 0;
                        v->gauge = x / 100.0;
                        break;
                case CH_PER_GPU:
                        break;
                }
        }
        return 0;
}

static void nvml_close(void *state)
{
        free_state(state);
}

const jl_provider_ops jl_provider_nvml = {
    .name = "nvml",
    .description =
        "NVIDIA GPU energy, power, temperature, clocks and utilization through NVML (loaded at run time)",
    .open = nvml_open,
    .read = nvml_read,
    .close = nvml_close,
};
