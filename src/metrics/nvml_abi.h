/* nvml_abi.h - the few NVML types, constants and entry points joule uses, declared after the NVML ABI (no
 * NVML header, no build dependency), and the one per-process dlopen of libnvidia-ml.so.1 that the nvml
 * provider (nvml.c, reading) and the GPU clock control (nvml_control.c, jouled's writes) share. Internal
 * to src/metrics. */
#pragma once

#include <stddef.h>

#define JL_NVML_LIBRARY "libnvidia-ml.so.1"

/* nvmlReturn_t is an int-sized enum, nvmlDevice_t an opaque pointer. */
typedef int jl_nvml_return;
typedef struct jl_nvml_device_st *jl_nvml_device;

enum {
        NVML_SUCCESS = 0,
        NVML_ERROR_UNINITIALIZED = 1,
        NVML_ERROR_INVALID_ARGUMENT = 2,
        NVML_ERROR_NOT_SUPPORTED = 3,
        NVML_ERROR_NO_PERMISSION = 4,
        NVML_ERROR_NOT_FOUND = 6,
        NVML_ERROR_INSUFFICIENT_SIZE = 7,
        NVML_ERROR_INSUFFICIENT_POWER = 8,
        NVML_ERROR_DRIVER_NOT_LOADED = 9,
        NVML_ERROR_TIMEOUT = 10,
        NVML_ERROR_LIBRARY_NOT_FOUND = 12,
        NVML_ERROR_FUNCTION_NOT_FOUND = 13,
        NVML_ERROR_GPU_IS_LOST = 15,
        NVML_ERROR_LIB_RM_VERSION_MISMATCH = 18,
        NVML_ERROR_MEMORY = 20,
        NVML_ERROR_NO_DATA = 21,
};
enum { NVML_TEMPERATURE_GPU = 0 };
enum { NVML_CLOCK_GRAPHICS = 0, NVML_CLOCK_SM = 1, NVML_CLOCK_MEM = 2 };
#define NVML_DEVICE_NAME_BUFFER_SIZE 96
#define NVML_DEVICE_UUID_V2_BUFFER_SIZE 96
#define NVML_DEVICE_PCI_BUS_ID_BUFFER_SIZE 32
#define NVML_DEVICE_MIG_ENABLE 1

/* nvmlPciInfo_t as nvmlDeviceGetPciInfo_v3 fills it; busId: "DDDDDDDD:BB:DD.F" (hex). */
typedef struct {
        char bus_id_legacy[16];
        unsigned domain, bus, device, pci_device_id, pci_subsystem_id;
        char bus_id[NVML_DEVICE_PCI_BUS_ID_BUFFER_SIZE];
} jl_nvml_pci_info;

/* nvmlUtilization_t: percent of the driver's last sample period (1/6 s to 1 s by product) during which a
 * kernel ran on the GPU, and during which its memory was read or written. */
typedef struct {
        unsigned gpu;
        unsigned memory;
} jl_nvml_utilization;

/* Every pointer after get_handle is optional (NULL when the library lacks it). */
typedef struct {
        jl_nvml_return (*init)(void);
        jl_nvml_return (*shutdown)(void);
        jl_nvml_return (*get_count)(unsigned *count);
        jl_nvml_return (*get_handle)(unsigned index, jl_nvml_device *device);
        jl_nvml_return (*get_name)(jl_nvml_device device, char *name, unsigned length);
        jl_nvml_return (*get_energy)(jl_nvml_device device, unsigned long long *energy_mj);
        jl_nvml_return (*get_power)(jl_nvml_device device, unsigned *power_mw);
        jl_nvml_return (*get_temperature)(jl_nvml_device device, int sensor, unsigned *temp_c);
        jl_nvml_return (*get_clock)(jl_nvml_device device, int type, unsigned *clock_mhz);
        jl_nvml_return (*get_utilization)(jl_nvml_device device, jl_nvml_utilization *util);
        const char *(*error_string)(jl_nvml_return r);
        /* the GPU's identity (read once at open) */
        jl_nvml_return (*get_uuid)(jl_nvml_device device, char *uuid, unsigned length);
        jl_nvml_return (*get_minor)(jl_nvml_device device, unsigned *minor);
        jl_nvml_return (*get_pci)(jl_nvml_device device, jl_nvml_pci_info *pci);
        /* its MIG instances (R470 and later; read once at open): the mode (current, pending: 1 enabled),
         * how many instances it can hold, and the handle of the index-th (NOT_FOUND: no instance there) */
        jl_nvml_return (*get_mig_mode)(jl_nvml_device device, unsigned *current, unsigned *pending);
        jl_nvml_return (*get_max_mig)(jl_nvml_device device, unsigned *count);
        jl_nvml_return (*get_mig_handle)(jl_nvml_device device, unsigned index, jl_nvml_device *mig);
        /* clock control (nvml_control.c) */
        jl_nvml_return (*get_app_clock)(jl_nvml_device device, int type, unsigned *clock_mhz);
        jl_nvml_return (*get_supported_graphics)(jl_nvml_device device, unsigned mem_mhz, unsigned *count,
                                                 unsigned *clocks_mhz);
        jl_nvml_return (*set_app_clocks)(jl_nvml_device device, unsigned mem_mhz, unsigned graphics_mhz);
        jl_nvml_return (*reset_app_clocks)(jl_nvml_device device);
} jl_nvml_api;

/* Load libnvidia-ml.so.1 once per process and resolve the entry points. 0 and *ret; -ENOENT no library;
 * -ENOSYS a library too old (no nvmlInit_v2); the loader's words in reason. */
int jl_nvml_api_load(const jl_nvml_api **ret, char *reason, size_t reason_size);
/* An NVML return as a negative errno (0 for NVML_SUCCESS). */
int jl_nvml_errno(jl_nvml_return r);
/* NVML's words for r (never NULL). */
const char *jl_nvml_strerror(const jl_nvml_api *api, jl_nvml_return r);
