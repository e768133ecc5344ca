/* ipmi.c - whole-node power from the BMC by DCMI (Get Power Reading, system power statistics mode) through
 * FreeIPMI, in band over the OpenIPMI driver (/dev/ipmi0). Channels: "node-ipmi/power" (W, the BMC's current
 * reading) and "node-ipmi" (µJ since open, integrated here from the readings with the trapezoid rule; the
 * BMC has no energy counter).
 *
 * DCMI reads are slow (a round trip to the BMC, tens of milliseconds and more) and BMCs refresh the reading
 * about once a second: the BMC is asked at most once per second, and reads in between reuse its last answer.
 * Only the OpenIPMI device is used: FreeIPMI's auto-probing of KCS/SSIF pokes I/O ports and can stall for
 * seconds on a node without a BMC, so no device means unavailable, at once. libfreeipmi itself is loaded
 * with dlopen only once such a device exists. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <freeipmi/freeipmi.h>

#include "dlopen-util.h"
#include "macro.h"
#include "provider.h"
#include "timeutil.h"

/* libfreeipmi is loaded on demand (dlopen-util.h), once a /dev/ipmi* device has been found: a node without a
 * BMC device, the common case, never maps it (its relocations alone are about 2 MiB of RSS). The header
 * gives the types and prototypes; the entry points used, and the one template (data), are resolved into sym_
 * pointers and the macros below send the calls of this file through them. */
#define FREEIPMI_LIBRARY "libfreeipmi.so.17"

#define IPMI_SYMBOLS(X)                                                                                     \
        X(FIID_OBJ_GET)                                                                                     \
        X(fiid_obj_create)                                                                                  \
        X(fiid_obj_destroy)                                                                                 \
        X(ipmi_cmd_dcmi_get_power_reading)                                                                  \
        X(ipmi_ctx_close)                                                                                   \
        X(ipmi_ctx_create)                                                                                  \
        X(ipmi_ctx_destroy)                                                                                 \
        X(ipmi_ctx_errnum)                                                                                  \
        X(ipmi_ctx_errormsg)                                                                                \
        X(ipmi_ctx_open_inband)

#define IPMI_DECLARE(f) static __typeof__(f) *sym_##f;
IPMI_SYMBOLS(IPMI_DECLARE)
static fiid_field_t *sym_tmpl_cmd_dcmi_get_power_reading_rs;
#define IPMI_ENTRY(f) {#f, &sym_##f, false},
/* the template (data) first, then the functions */
static const jl_dlsym ipmi_syms[] = {
    {"tmpl_cmd_dcmi_get_power_reading_rs", &sym_tmpl_cmd_dcmi_get_power_reading_rs, false},
    IPMI_SYMBOLS(IPMI_ENTRY)};
static jl_dlib ipmi_lib = JL_DLIB_INIT(FREEIPMI_LIBRARY, ipmi_syms);

#define FIID_OBJ_GET sym_FIID_OBJ_GET
#define fiid_obj_create sym_fiid_obj_create
#define fiid_obj_destroy sym_fiid_obj_destroy
#define ipmi_cmd_dcmi_get_power_reading sym_ipmi_cmd_dcmi_get_power_reading
#define ipmi_ctx_close sym_ipmi_ctx_close
#define ipmi_ctx_create sym_ipmi_ctx_create
#define ipmi_ctx_destroy sym_ipmi_ctx_destroy
#define ipmi_ctx_errnum sym_ipmi_ctx_errnum
#define ipmi_ctx_errormsg sym_ipmi_ctx_errormsg
#define ipmi_ctx_open_inband sym_ipmi_ctx_open_inband
#define tmpl_cmd_dcmi_get_power_reading_rs sym_tmpl_cmd_dcmi_get_power_reading_rs

#define BMC_MIN_INTERVAL_NS NSEC_PER_SEC

typedef struct {
        ipmi_ctx_t ctx;
        fiid_obj_t rs;
        /* the BMC's latest answer */
        uint64_t bmc_ns; /* when it was asked (0: never) */
        double bmc_w;
        int bmc_err;
        /* integration */
        double energy_uj;
        double last_w;
        uint64_t last_ns;
} ipmi_state;

static int ipmi_errno(int errnum)
{
        switch (errnum) {
        case IPMI_ERR_PERMISSION:
        case IPMI_ERR_PRIVILEGE_LEVEL_INSUFFICIENT:
        case IPMI_ERR_PRIVILEGE_LEVEL_CANNOT_BE_OBTAINED:
                return -EACCES;
        case IPMI_ERR_DEVICE_NOT_FOUND:
        case IPMI_ERR_NOT_FOUND:
                return -ENOENT;
        case IPMI_ERR_DEVICE_NOT_SUPPORTED:
                return -ENODEV;
        case IPMI_ERR_COMMAND_INVALID_OR_UNSUPPORTED:
        case IPMI_ERR_COMMAND_INVALID_FOR_SELECTED_INTERFACE:
        case IPMI_ERR_BAD_COMPLETION_CODE:
                return -EOPNOTSUPP;
        case IPMI_ERR_DRIVER_BUSY:
        case IPMI_ERR_BMC_BUSY:
                return -EBUSY;
        case IPMI_ERR_DRIVER_TIMEOUT:
        case IPMI_ERR_MESSAGE_TIMEOUT:
        case IPMI_ERR_SESSION_TIMEOUT:
        case IPMI_ERR_CONNECTION_TIMEOUT:
                return -ETIMEDOUT;
        case IPMI_ERR_OUT_OF_MEMORY:
                return -ENOMEM;
        default:
                return -EIO;
        }
}

/* One DCMI power reading. Returns 0 and the power, -ENODATA when the BMC says its power measurement is not
 * active, or the negative errno of the failure. */
static int dcmi_power(ipmi_state *st, double *ret_w)
{
        if (ipmi_cmd_dcmi_get_power_reading(st->ctx, IPMI_DCMI_POWER_READING_MODE_SYSTEM_POWER_STATISTICS, 0,
                                            st->rs) < 0)
                return ipmi_errno(ipmi_ctx_errnum(st->ctx));
        uint64_t active, watts;
        if (FIID_OBJ_GET(st->rs, "power_reading_state.power_measurement", &active) < 0 ||
            FIID_OBJ_GET(st->rs, "current_power", &watts) < 0)
                return -EIO;
        if (!active)
                return -ENODATA;
        *ret_w = (double)watts;
        return 0;
}

static void free_state(ipmi_state *st)
{
        if (!st)
                return;
        if (st->rs)
                fiid_obj_destroy(st->rs);
        if (st->ctx) {
                ipmi_ctx_close(st->ctx);
                ipmi_ctx_destroy(st->ctx);
        }
        free(st);
}

static int ipmi_open(const jl_provider_config *cfg, jl_channels *channels, jl_notes *notes, void **ret_state)
{
        (void)cfg;
        static const char *const devices[] = {"/dev/ipmi0", "/dev/ipmi/0", "/dev/ipmidev/0"};
        const char *dev = NULL;
        for (size_t i = 0; i < ARRAY_SIZE(devices) && !dev; i++)
                if (access(devices[i], F_OK) == 0)
                        dev = devices[i];
        if (!dev) {
                jl_notes_add(
                    notes, "ipmi", -ENOENT,
                    "no IPMI device (/dev/ipmi0): modprobe ipmi_si ipmi_devintf, or the node has no BMC");
                return -ENOENT;
        }

        char why[256];
        int r = jl_dlib_load(&ipmi_lib, why, sizeof(why));
        if (r < 0) {
                jl_notes_add(notes, "ipmi", r,
                             r == -ENOSYS ? "%s exists, but " FREEIPMI_LIBRARY
                                            " is not the FreeIPMI joule was "
                                            "built for: %s"
                                          : "%s exists, but the FreeIPMI library " FREEIPMI_LIBRARY
                                            " is not found (apt-get install libfreeipmi17): %s",
                             dev, why);
                return r;
        }

        ipmi_state *st = calloc(1, sizeof(*st));
        if (!st)
                return -ENOMEM;
        st->ctx = ipmi_ctx_create();
        st->rs = fiid_obj_create(tmpl_cmd_dcmi_get_power_reading_rs);
        if (!st->ctx || !st->rs) {
                free_state(st);
                return -ENOMEM;
        }
        if (ipmi_ctx_open_inband(st->ctx, IPMI_DEVICE_OPENIPMI, 0, 0, 0, dev, 0, IPMI_FLAGS_DEFAULT) < 0) {
                r = ipmi_errno(ipmi_ctx_errnum(st->ctx));
                if (r == -EACCES)
                        jl_notes_add(notes, "ipmi", r,
                                     "%s: permission denied: talking to the BMC needs root", dev);
                else
                        jl_notes_add(notes, "ipmi", r, "%s: cannot open the IPMI device: %s", dev,
                                     ipmi_ctx_errormsg(st->ctx));
                ipmi_ctx_destroy(st->ctx);
                st->ctx = NULL;
                free_state(st);
                return r;
        }

        double w;
        r = dcmi_power(st, &w);
        if (r < 0) {
                if (r == -EOPNOTSUPP)
                        jl_notes_add(
                            notes, "ipmi", r,
                            "the BMC does not support DCMI power readings (%s): no node power from IPMI",
                            ipmi_ctx_errormsg(st->ctx));
                else if (r == -ENODATA)
                        jl_notes_add(notes, "ipmi", r,
                                     "the BMC supports DCMI but its power measurement is not active");
                else
                        jl_notes_add(notes, "ipmi", r, "DCMI Get Power Reading failed: %s",
                                     ipmi_ctx_errormsg(st->ctx));
                free_state(st);
                return r == -ENODATA ? -ENODEV : r;
        }
        uint64_t now = mono_ns();
        st->bmc_ns = st->last_ns = now;
        st->bmc_w = st->last_w = w;

        size_t before = channels->n;
        jl_channel e = {
            .name = "node-ipmi", .provider = "ipmi", .kind = JL_KIND_ENERGY, .scope = JL_SCOPE_NODE};
        jl_channel p = {
            .name = "node-ipmi/power", .provider = "ipmi", .kind = JL_KIND_POWER, .scope = JL_SCOPE_OTHER};
        r = jl_channels_add(channels, &e);
        if (r >= 0)
                r = jl_channels_add(channels, &p);
        if (r < 0) {
                channels->n = before;
                free_state(st);
                return r;
        }
        *ret_state = st;
        return 0;
}

static int ipmi_read(void *state, jl_value *values)
{
        ipmi_state *st = state;
        uint64_t now = mono_ns();
        if (now - st->bmc_ns >= BMC_MIN_INTERVAL_NS) {
                double w;
                st->bmc_err = dcmi_power(st, &w);
                st->bmc_ns = now;
                if (st->bmc_err == 0)
                        st->bmc_w = w;
        }
        if (st->bmc_err < 0) {
                /* Keep last_ns: the next good reading bridges the gap. */
                values[0].err = values[1].err = st->bmc_err;
                return 0;
        }
        double dt_s = (double)(now - st->last_ns) / 1e9;
        st->energy_uj += (st->last_w + st->bmc_w) / 2.0 * dt_s * 1e6;
        st->last_w = st->bmc_w;
        st->last_ns = now;
        values[0].counter = (uint64_t)st->energy_uj;
        values[1].gauge = st->bmc_w;
        return 0;
}

static void ipmi_close(void *state)
{
        free_state(state);
}

const jl_provider_ops jl_provider_ipmi = {
    .name = "ipmi",
    .description = "node power from the BMC by IPMI DCMI (FreeIPMI, in band)",
    .open = ipmi_open,
    .read = ipmi_read,
    .close = ipmi_close,
};
