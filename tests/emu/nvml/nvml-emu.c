/* nvml-emu.c - an emulated NVML (libnvidia-ml.so.1) for tests: the entry points joule's nvml provider uses,
 * for N emulated GPUs whose energy counter advances in real time at a configured power. A test points the
 * loader at this library (LD_LIBRARY_PATH) and describes the GPUs in the file named by JOULE_EMU_NVML (the
 * emulator's variable; the provider knows nothing of it), read at every nvmlInit_v2 that starts a session:
 *
 *     # comments and blank lines are ignored
 *     init_error 9                  # nvmlInit_v2 fails with this NVML error (9: driver not loaded)
 *     gpu power_w=300 temp_c=41 sm_mhz=1980 mem_mhz=2619 energy_mj=5000 name=NVIDIA H100 80GB HBM3
 *     gpu power_w=250 util_gpu=0 util_mem=0 util_file=/tmp/t/gpu1-util name=NVIDIA A100
 *
 * Per gpu line: power_w (a negative value: power NOT_SUPPORTED), energy=0 (total energy NOT_SUPPORTED),
 * temp_c, sm_mhz, mem_mhz (0: NOT_SUPPORTED), energy_mj (the counter at init), clocks_mhz=A,B,... (the
 * supported graphics clocks, default sm_mhz, 3/4 and 1/2 of it), app_clocks=0 (application clocks
 * NOT_SUPPORTED), util_gpu= and util_mem= (the utilization rates in percent that
 * nvmlDeviceGetUtilizationRates reports; without either, and without util_file, it answers NOT_SUPPORTED),
 * util_file= (a file that a running test or workload rewrites: "GPU_PCT MEM_PCT", read at every
 * nvmlDeviceGetUtilizationRates, so the utilization changes while a session runs; while it is missing or
 * holds no number, util_gpu and util_mem (default 0) hold), uuid= (nvmlDeviceGetUUID's answer, default
 * GPU-e0000000-0000-4000-8000-00000000000I for the I-th gpu line), minor= (nvmlDeviceGetMinorNumber's, the
 * N of /dev/nvidiaN, default I; a negative value: NOT_SUPPORTED), pci= (nvmlDeviceGetPciInfo_v3's busId,
 * default 00000000:I+1 in hex:00.0), mig=UUID,UUID,... (MIG enabled with these instances, at most 7:
 * nvmlDeviceGetMigMode answers enabled, nvmlDeviceGetMaxMigDeviceCount 7,
 * nvmlDeviceGetMigDeviceHandleByIndex a handle for each listed index (NOT_FOUND beyond) whose
 * nvmlDeviceGetUUID is the UUID; without mig= MIG is disabled), name= (the rest of the line).
 *
 * Application clocks: nvmlDeviceSetApplicationsClocks (root only, as the driver's default "restricted"
 * permission; the pair must be supported) and nvmlDeviceResetApplicationsClocks change the GPU's graphics
 * clock, which nvmlDeviceGetClockInfo then reports (the emulated GPU runs at its application clock). Like
 * the driver, the setting outlives NVML sessions: it is kept in the file JOULE_EMU_NVML.state, one line per
 * GPU that a test can read ("gpu 0 graphics_mhz=1410 mem_mhz=2619 sets=1 resets=0"; graphics_mhz 0: the
 * default), rewritten at each change and read back at each nvmlInit_v2 that starts a session.
 * Without JOULE_EMU_NVML, nvmlInit_v2 answers "driver not loaded". Every entry point takes one lock. */
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef int nvmlReturn_t;
typedef struct emu_gpu *nvmlDevice_t;

#define EMU_MAX_GPU 16
#define EMU_MAX_MIG 7

struct emu_gpu {
        char name[96];
        double power_w;
        bool power_ok, energy_ok;
        unsigned temp_c, sm_mhz, mem_mhz;
        unsigned long long energy0_mj;
        bool app_ok;
        unsigned n_clocks, clocks_mhz[32];
        unsigned app_gfx_mhz, app_mem_mhz; /* 0 graphics: the default (sm_mhz) */
        unsigned sets, resets;
        bool util_ok;
        unsigned util_gpu, util_mem;
        char util_file[256];
        char uuid[96], pci[32];
        int minor;
        unsigned nmig; /* MIG instances (mig=): their handles are emu.migs[this GPU][0..nmig) */
};

static struct {
        int refs;
        int init_error;
        unsigned n;
        struct emu_gpu gpus[EMU_MAX_GPU];
        struct emu_gpu migs[EMU_MAX_GPU][EMU_MAX_MIG]; /* MIG instance handles: only uuid is set */
        double t0;
        char state_path[600];
} emu;
static pthread_mutex_t emu_lock = PTHREAD_MUTEX_INITIALIZER;

static void unlock_emu(int *unused)
{
        (void)unused;
        pthread_mutex_unlock(&emu_lock);
}
/* The first statement of every entry point: holds the lock until it returns. */
#define LOCKED                                                                                              \
        pthread_mutex_lock(&emu_lock);                                                                      \
        __attribute__((cleanup(unlock_emu))) int locked_ = 0;                                               \
        (void)locked_

/* The exported ABI (prototypes for -Wmissing-prototypes). */
nvmlReturn_t nvmlInit_v2(void);
nvmlReturn_t nvmlShutdown(void);
nvmlReturn_t nvmlDeviceGetCount_v2(unsigned *count);
nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned index, nvmlDevice_t *device);
nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t device, char *name, unsigned length);
nvmlReturn_t nvmlDeviceGetTotalEnergyConsumption(nvmlDevice_t device, unsigned long long *energy);
nvmlReturn_t nvmlDeviceGetPowerUsage(nvmlDevice_t device, unsigned *power);
nvmlReturn_t nvmlDeviceGetTemperature(nvmlDevice_t device, int sensor, unsigned *temp);
nvmlReturn_t nvmlDeviceGetClockInfo(nvmlDevice_t device, int type, unsigned *clock);
typedef struct {
        unsigned gpu, memory;
} nvmlUtilization_t;
nvmlReturn_t nvmlDeviceGetUtilizationRates(nvmlDevice_t device, nvmlUtilization_t *utilization);
nvmlReturn_t nvmlDeviceGetApplicationsClock(nvmlDevice_t device, int type, unsigned *clock);
nvmlReturn_t nvmlDeviceGetSupportedGraphicsClocks(nvmlDevice_t device, unsigned mem, unsigned *count,
                                                  unsigned *clocks);
nvmlReturn_t nvmlDeviceSetApplicationsClocks(nvmlDevice_t device, unsigned mem, unsigned graphics);
nvmlReturn_t nvmlDeviceResetApplicationsClocks(nvmlDevice_t device);
nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t device, char *uuid, unsigned length);
nvmlReturn_t nvmlDeviceGetMigMode(nvmlDevice_t device, unsigned *current, unsigned *pending);
nvmlReturn_t nvmlDeviceGetMaxMigDeviceCount(nvmlDevice_t device, unsigned *count);
nvmlReturn_t nvmlDeviceGetMigDeviceHandleByIndex(nvmlDevice_t device, unsigned index, nvmlDevice_t *mig);
nvmlReturn_t nvmlDeviceGetMinorNumber(nvmlDevice_t device, unsigned *minor);
typedef struct {
        char busIdLegacy[16];
        unsigned domain, bus, device, pciDeviceId, pciSubSystemId;
        char busId[32];
} nvmlPciInfo_t;
nvmlReturn_t nvmlDeviceGetPciInfo_v3(nvmlDevice_t device, nvmlPciInfo_t *pci);
const char *nvmlErrorString(nvmlReturn_t r);

enum {
        OK = 0,
        UNINITIALIZED = 1,
        INVALID_ARGUMENT = 2,
        NOT_SUPPORTED = 3,
        NO_PERMISSION = 4,
        NOT_FOUND = 6,
        DRIVER_NOT_LOADED = 9,
        INSUFFICIENT_SIZE = 7,
        UNKNOWN = 999,
};

static double now_s(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void parse_gpu(char *s, unsigned index, struct emu_gpu *g)
{
        *g = (struct emu_gpu){.minor = (int)index,
                              .power_w = 100,
                              .power_ok = true,
                              .energy_ok = true,
                              .temp_c = 40,
                              .sm_mhz = 1500,
                              .mem_mhz = 1200,
                              .app_ok = true};
        snprintf(g->name, sizeof(g->name), "Emulated GPU");
        snprintf(g->uuid, sizeof(g->uuid), "GPU-e0000000-0000-4000-8000-%012x", index);
        snprintf(g->pci, sizeof(g->pci), "00000000:%02X:00.0", index + 1);
        char *tok = s;
        while (tok && *tok) {
                while (*tok == ' ' || *tok == '\t')
                        tok++;
                if (strncmp(tok, "name=", 5) == 0) {
                        snprintf(g->name, sizeof(g->name), "%s", tok + 5);
                        break;
                }
                char *end = strpbrk(tok, " \t");
                if (end)
                        *end++ = '\0';
                if (strncmp(tok, "power_w=", 8) == 0) {
                        g->power_w = atof(tok + 8);
                        g->power_ok = g->power_w >= 0;
                } else if (strncmp(tok, "energy=", 7) == 0)
                        g->energy_ok = atoi(tok + 7) != 0;
                else if (strncmp(tok, "energy_mj=", 10) == 0)
                        g->energy0_mj = strtoull(tok + 10, NULL, 10);
                else if (strncmp(tok, "temp_c=", 7) == 0)
                        g->temp_c = (unsigned)atoi(tok + 7);
                else if (strncmp(tok, "sm_mhz=", 7) == 0)
                        g->sm_mhz = (unsigned)atoi(tok + 7);
                else if (strncmp(tok, "mem_mhz=", 8) == 0)
                        g->mem_mhz = (unsigned)atoi(tok + 8);
                else if (strncmp(tok, "util_gpu=", 9) == 0) {
                        g->util_gpu = (unsigned)atoi(tok + 9);
                        g->util_ok = true;
                } else if (strncmp(tok, "util_mem=", 9) == 0) {
                        g->util_mem = (unsigned)atoi(tok + 9);
                        g->util_ok = true;
                } else if (strncmp(tok, "util_file=", 10) == 0) {
                        snprintf(g->util_file, sizeof(g->util_file), "%s", tok + 10);
                        g->util_ok = true;
                } else if (strncmp(tok, "uuid=", 5) == 0)
                        snprintf(g->uuid, sizeof(g->uuid), "%s", tok + 5);
                else if (strncmp(tok, "minor=", 6) == 0)
                        g->minor = atoi(tok + 6);
                else if (strncmp(tok, "pci=", 4) == 0)
                        snprintf(g->pci, sizeof(g->pci), "%s", tok + 4);
                else if (strncmp(tok, "mig=", 4) == 0) {
                        g->nmig = 0;
                        for (char *m = tok + 4; *m && g->nmig < EMU_MAX_MIG;) {
                                size_t len = strcspn(m, ",");
                                snprintf(emu.migs[index][g->nmig].uuid, sizeof(emu.migs[index][0].uuid),
                                         "%.*s", (int)len, m);
                                g->nmig++;
                                m += len + (m[len] == ',');
                        }
                } else if (strncmp(tok, "app_clocks=", 11) == 0)
                        g->app_ok = atoi(tok + 11) != 0;
                else if (strncmp(tok, "clocks_mhz=", 11) == 0) {
                        g->n_clocks = 0;
                        for (char *c = tok + 11; *c && g->n_clocks < 32; c += strspn(c, ","))
                                g->clocks_mhz[g->n_clocks++] = (unsigned)strtoul(c, &c, 10);
                }
                tok = end;
        }
        if (g->n_clocks == 0 && g->sm_mhz) {
                g->clocks_mhz[g->n_clocks++] = g->sm_mhz;
                g->clocks_mhz[g->n_clocks++] = g->sm_mhz * 3 / 4;
                g->clocks_mhz[g->n_clocks++] = g->sm_mhz / 2;
        }
        g->app_mem_mhz = g->mem_mhz;
}

/* The application clocks that outlive a session (as the driver's do). */
static void load_state(void)
{
        FILE *f = fopen(emu.state_path, "re");
        if (!f)
                return;
        unsigned i, gfx, mem, sets, resets;
        while (fscanf(f, "gpu %u graphics_mhz=%u mem_mhz=%u sets=%u resets=%u\n", &i, &gfx, &mem, &sets,
                      &resets) == 5)
                if (i < emu.n) {
                        emu.gpus[i].app_gfx_mhz = gfx;
                        emu.gpus[i].app_mem_mhz = mem;
                        emu.gpus[i].sets = sets;
                        emu.gpus[i].resets = resets;
                }
        fclose(f);
}

static void save_state(void)
{
        char tmp[640];
        snprintf(tmp, sizeof(tmp), "%s.tmp", emu.state_path);
        FILE *f = fopen(tmp, "we");
        if (!f)
                return;
        for (unsigned i = 0; i < emu.n; i++)
                fprintf(f, "gpu %u graphics_mhz=%u mem_mhz=%u sets=%u resets=%u\n", i,
                        emu.gpus[i].app_gfx_mhz, emu.gpus[i].app_mem_mhz, emu.gpus[i].sets,
                        emu.gpus[i].resets);
        if (fclose(f) == 0)
                rename(tmp, emu.state_path);
}

static void load_config(void)
{
        emu.n = 0;
        emu.init_error = 0;
        const char *path = getenv("JOULE_EMU_NVML");
        if (!path) {
                emu.init_error = DRIVER_NOT_LOADED;
                return;
        }
        FILE *f = fopen(path, "re");
        if (!f) {
                emu.init_error = DRIVER_NOT_LOADED;
                return;
        }
        char line[512];
        while (fgets(line, sizeof(line), f)) {
                line[strcspn(line, "#\n")] = '\0';
                if (strncmp(line, "init_error", 10) == 0)
                        emu.init_error = atoi(line + 10);
                else if (strncmp(line, "gpu", 3) == 0 && emu.n < EMU_MAX_GPU) {
                        parse_gpu(line + 3, emu.n, &emu.gpus[emu.n]);
                        emu.n++;
                }
        }
        fclose(f);
        snprintf(emu.state_path, sizeof(emu.state_path), "%s.state", path);
        load_state();
}

nvmlReturn_t nvmlInit_v2(void)
{
        LOCKED;
        if (emu.refs == 0) {
                load_config();
                if (emu.init_error)
                        return emu.init_error;
                emu.t0 = now_s();
        }
        emu.refs++;
        return OK;
}

nvmlReturn_t nvmlShutdown(void)
{
        LOCKED;
        if (emu.refs == 0)
                return UNINITIALIZED;
        emu.refs--;
        return OK;
}

nvmlReturn_t nvmlDeviceGetCount_v2(unsigned *count)
{
        LOCKED;
        if (!emu.refs)
                return UNINITIALIZED;
        if (!count)
                return INVALID_ARGUMENT;
        *count = emu.n;
        return OK;
}

nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned index, nvmlDevice_t *device)
{
        LOCKED;
        if (!emu.refs)
                return UNINITIALIZED;
        if (index >= emu.n || !device)
                return INVALID_ARGUMENT;
        *device = &emu.gpus[index];
        return OK;
}

static bool valid(nvmlDevice_t d)
{
        return emu.refs && d >= emu.gpus && d < emu.gpus + emu.n;
}

nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t device, char *name, unsigned length)
{
        LOCKED;
        if (!valid(device) || !name)
                return INVALID_ARGUMENT;
        if (strlen(device->name) + 1 > length)
                return INSUFFICIENT_SIZE;
        memcpy(name, device->name, strlen(device->name) + 1);
        return OK;
}

static bool valid_mig(nvmlDevice_t d)
{
        if (!emu.refs || d < &emu.migs[0][0] || d >= &emu.migs[0][0] + EMU_MAX_GPU * EMU_MAX_MIG)
                return false;
        size_t k = (size_t)(d - &emu.migs[0][0]);
        return k / EMU_MAX_MIG < emu.n && k % EMU_MAX_MIG < emu.gpus[k / EMU_MAX_MIG].nmig;
}

nvmlReturn_t nvmlDeviceGetMigMode(nvmlDevice_t device, unsigned *current, unsigned *pending)
{
        LOCKED;
        if (!valid(device) || !current || !pending)
                return INVALID_ARGUMENT;
        *current = *pending = device->nmig > 0;
        return OK;
}

nvmlReturn_t nvmlDeviceGetMaxMigDeviceCount(nvmlDevice_t device, unsigned *count)
{
        LOCKED;
        if (!valid(device) || !count)
                return INVALID_ARGUMENT;
        *count = device->nmig > 0 ? EMU_MAX_MIG : 0;
        return OK;
}

nvmlReturn_t nvmlDeviceGetMigDeviceHandleByIndex(nvmlDevice_t device, unsigned index, nvmlDevice_t *mig)
{
        LOCKED;
        if (!valid(device) || !mig || index >= EMU_MAX_MIG)
                return INVALID_ARGUMENT;
        if (index >= device->nmig)
                return NOT_FOUND;
        *mig = &emu.migs[device - emu.gpus][index];
        return OK;
}

nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t device, char *uuid, unsigned length)
{
        LOCKED;
        if ((!valid(device) && !valid_mig(device)) || !uuid)
                return INVALID_ARGUMENT;
        if (strlen(device->uuid) + 1 > length)
                return INSUFFICIENT_SIZE;
        memcpy(uuid, device->uuid, strlen(device->uuid) + 1);
        return OK;
}

nvmlReturn_t nvmlDeviceGetMinorNumber(nvmlDevice_t device, unsigned *minor)
{
        LOCKED;
        if (!valid(device) || !minor)
                return INVALID_ARGUMENT;
        if (device->minor < 0)
                return NOT_SUPPORTED;
        *minor = (unsigned)device->minor;
        return OK;
}

nvmlReturn_t nvmlDeviceGetPciInfo_v3(nvmlDevice_t device, nvmlPciInfo_t *pci)
{
        LOCKED;
        if (!valid(device) || !pci)
                return INVALID_ARGUMENT;
        *pci = (nvmlPciInfo_t){0};
        snprintf(pci->busId, sizeof(pci->busId), "%s", device->pci);
        unsigned dom = 0, bus = 0, dev = 0;
        if (sscanf(device->pci, "%x:%x:%x", &dom, &bus, &dev) == 3) {
                pci->domain = dom;
                pci->bus = bus;
                pci->device = dev;
        }
        snprintf(pci->busIdLegacy, sizeof(pci->busIdLegacy), "%04x:%02x:%02x.0", dom & 0xffff, bus, dev);
        return OK;
}

nvmlReturn_t nvmlDeviceGetTotalEnergyConsumption(nvmlDevice_t device, unsigned long long *energy)
{
        LOCKED;
        if (!valid(device) || !energy)
                return INVALID_ARGUMENT;
        if (!device->energy_ok)
                return NOT_SUPPORTED;
        double p = device->power_ok ? device->power_w : 0;
        *energy = device->energy0_mj + (unsigned long long)(p * (now_s() - emu.t0) * 1000.0);
        return OK;
}

nvmlReturn_t nvmlDeviceGetPowerUsage(nvmlDevice_t device, unsigned *power)
{
        LOCKED;
        if (!valid(device) || !power)
                return INVALID_ARGUMENT;
        if (!device->power_ok)
                return NOT_SUPPORTED;
        *power = (unsigned)(device->power_w * 1000.0 + 0.5);
        return OK;
}

nvmlReturn_t nvmlDeviceGetTemperature(nvmlDevice_t device, int sensor, unsigned *temp)
{
        LOCKED;
        if (!valid(device) || !temp || sensor != 0)
                return INVALID_ARGUMENT;
        if (!device->temp_c)
                return NOT_SUPPORTED;
        *temp = device->temp_c;
        return OK;
}

nvmlReturn_t nvmlDeviceGetClockInfo(nvmlDevice_t device, int type, unsigned *clock)
{
        LOCKED;
        if (!valid(device) || !clock || type < 0 || type > 3)
                return INVALID_ARGUMENT;
        unsigned v = type == 2             ? device->mem_mhz
                     : device->app_gfx_mhz ? device->app_gfx_mhz
                                           : device->sm_mhz;
        if (!v)
                return NOT_SUPPORTED;
        *clock = v;
        return OK;
}

nvmlReturn_t nvmlDeviceGetUtilizationRates(nvmlDevice_t device, nvmlUtilization_t *utilization)
{
        LOCKED;
        if (!valid(device) || !utilization)
                return INVALID_ARGUMENT;
        if (!device->util_ok)
                return NOT_SUPPORTED;
        unsigned gpu = device->util_gpu, mem = device->util_mem;
        FILE *f = device->util_file[0] ? fopen(device->util_file, "re") : NULL;
        if (f) {
                unsigned a, b;
                int n = fscanf(f, "%u %u", &a, &b);
                if (n >= 1)
                        gpu = a;
                if (n == 2)
                        mem = b;
                fclose(f);
        }
        utilization->gpu = gpu; /* as written: a test may show a reading out of range */
        utilization->memory = mem;
        return OK;
}

nvmlReturn_t nvmlDeviceGetApplicationsClock(nvmlDevice_t device, int type, unsigned *clock)
{
        LOCKED;
        if (!valid(device) || !clock || type < 0 || type > 3)
                return INVALID_ARGUMENT;
        if (!device->app_ok)
                return NOT_SUPPORTED;
        *clock = type == 2             ? device->app_mem_mhz
                 : device->app_gfx_mhz ? device->app_gfx_mhz
                                       : device->sm_mhz;
        return OK;
}

nvmlReturn_t nvmlDeviceGetSupportedGraphicsClocks(nvmlDevice_t device, unsigned mem, unsigned *count,
                                                  unsigned *clocks)
{
        LOCKED;
        if (!valid(device) || !count)
                return INVALID_ARGUMENT;
        if (!device->app_ok)
                return NOT_SUPPORTED;
        if (mem != device->mem_mhz)
                return NOT_FOUND;
        if (*count < device->n_clocks) {
                *count = device->n_clocks;
                return INSUFFICIENT_SIZE;
        }
        if (!clocks)
                return INVALID_ARGUMENT;
        memcpy(clocks, device->clocks_mhz, device->n_clocks * sizeof(unsigned));
        *count = device->n_clocks;
        return OK;
}

nvmlReturn_t nvmlDeviceSetApplicationsClocks(nvmlDevice_t device, unsigned mem, unsigned graphics)
{
        LOCKED;
        if (!valid(device))
                return INVALID_ARGUMENT;
        if (!device->app_ok)
                return NOT_SUPPORTED;
        if (geteuid() != 0)
                return NO_PERMISSION;
        bool ok = mem == device->mem_mhz;
        bool listed = false;
        for (unsigned i = 0; i < device->n_clocks; i++)
                listed = listed || device->clocks_mhz[i] == graphics;
        if (!ok || !listed)
                return INVALID_ARGUMENT;
        device->app_mem_mhz = mem;
        device->app_gfx_mhz = graphics;
        device->sets++;
        save_state();
        return OK;
}

nvmlReturn_t nvmlDeviceResetApplicationsClocks(nvmlDevice_t device)
{
        LOCKED;
        if (!valid(device))
                return INVALID_ARGUMENT;
        if (!device->app_ok)
                return NOT_SUPPORTED;
        if (geteuid() != 0)
                return NO_PERMISSION;
        device->app_mem_mhz = device->mem_mhz;
        device->app_gfx_mhz = 0;
        device->resets++;
        save_state();
        return OK;
}

const char *nvmlErrorString(nvmlReturn_t r)
{
        switch (r) {
        case OK:
                return "Success";
        case UNINITIALIZED:
                return "Uninitialized";
        case INVALID_ARGUMENT:
                return "Invalid Argument";
        case NOT_SUPPORTED:
                return "Not Supported";
        case NO_PERMISSION:
                return "Insufficient Permissions";
        case NOT_FOUND:
                return "Not Found";
        case INSUFFICIENT_SIZE:
                return "Insufficient Size";
        case DRIVER_NOT_LOADED:
                return "Driver Not Loaded";
        default:
                return "Unknown Error";
        }
}
