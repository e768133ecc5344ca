/* test-nvml-control.c - GPU clock control (nvml_control.h) against the emulated NVML (tests/emu/nvml), and
 * against no library at all: rounding down to a supported clock, the memory clock kept, refusals with
 * words, a reset, the new clock seen by the nvml provider's nvmlDeviceGetClockInfo reading.
 *
 * Usage: test-nvml-control emu WORKDIR   (LD_LIBRARY_PATH holds the emulator)
 *        test-nvml-control absent        (no libnvidia-ml.so.1 in the loader's path) */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nvml_control.h"
#include "provider.h"
#include "tap.h"

static char conf[512];

static void write_conf(const char *text)
{
        FILE *f = fopen(conf, "we");
        if (!f) {
                printf("Bail out! cannot write %s\n", conf);
                exit(1);
        }
        fputs(text, f);
        fclose(f);
}

/* The provider's sm-clock reading of GPU 0 in kHz (channel 3), or -1. */
static double provider_sm_khz(void)
{
        jl_channels ch = {0};
        jl_notes notes = {0};
        jl_provider_config cfg;
        jl_provider_config_default(&cfg);
        void *state = NULL;
        double khz = -1;
        if (jl_provider_nvml.open(&cfg, &ch, &notes, &state) == 0) {
                jl_value v[16] = {0};
                if (ch.n >= 4 && ch.n <= 16 && strcmp(ch.items[3].name, "gpu-0/sm-clock") == 0 &&
                    jl_provider_nvml.read(state, v) == 0 && v[3].err == 0)
                        khz = v[3].gauge;
                jl_provider_nvml.close(state);
        }
        jl_channels_free(&ch);
        jl_notes_free(&notes);
        return khz;
}

static void test_emu(const char *dir)
{
        snprintf(conf, sizeof(conf), "%s/test-nvml-control.conf", dir);
        char state[600];
        snprintf(state, sizeof(state), "%s.state", conf);
        unlink(state);
        setenv("JOULE_EMU_NVML", conf, 1);
        write_conf("gpu sm_mhz=1980 mem_mhz=2619 clocks_mhz=1980,1410,900 name=H100\n"
                   "gpu sm_mhz=1500 mem_mhz=1200 app_clocks=0 name=old\n");
        char why[256] = "";
        jl_nvml_control *c = NULL;
        if (!is_int(jl_nvml_control_open(&c, why, sizeof(why)), 0, "opens (%s)", why))
                return;
        is_int(jl_nvml_control_count(c), 2, "two GPUs");
        uint64_t khz = 1, mem = 1;
        is_int(jl_nvml_control_resolve(c, 0, 1500000, &khz, &mem, why, sizeof(why)), 0, "resolve 1.5 GHz");
        ok(khz == 1410000 && mem == 2619000, "rounded down to 1410 MHz at memory 2619 MHz (%llu, %llu)",
           (unsigned long long)khz, (unsigned long long)mem);
        is_int(jl_nvml_control_resolve(c, 0, 5000000, &khz, &mem, why, sizeof(why)), 0, "resolve 5 GHz");
        is_int(khz, 1980000, "above the highest: the highest");
        khz = 7;
        is_int(jl_nvml_control_resolve(c, 0, 899999, &khz, &mem, why, sizeof(why)), -EINVAL,
               "below the lowest: -EINVAL");
        ok(strstr(why, "lowest supported graphics clock (900 MHz)") != NULL, "with words: %s", why);
        is_int(khz, 7, "ret_khz untouched on failure");
        is_int(jl_nvml_control_set(c, 2, 900000, NULL, why, sizeof(why)), -ENODEV, "no GPU 2: -ENODEV");
        is_int(jl_nvml_control_set(c, 1, 900000, NULL, why, sizeof(why)), -EOPNOTSUPP,
               "no application clocks: -EOPNOTSUPP (%s)", why);
        uint64_t set = 0;
        int r = jl_nvml_control_set(c, 0, 1500000, &set, why, sizeof(why));
        if (geteuid() == 0) {
                is_int(r, 0, "set GPU 0 (%s)", why);
                is_int(set, 1410000, "to 1410 MHz");
                is_near(provider_sm_khz(), 1410000.0, 1e-9, "the provider reads the new clock");
                is_int(jl_nvml_control_set(c, 0, 0, &set, why, sizeof(why)), 0, "reset GPU 0");
                is_int(set, 0, "reset: 0");
                is_near(provider_sm_khz(), 1980000.0, 1e-9, "the provider reads the default clock again");
        } else {
                is_int(r, -EACCES, "not root: NVML's permission error as -EACCES");
                ok(strstr(why, "needs root") != NULL, "with words: %s", why);
        }
        jl_nvml_control_close(c);

        write_conf("init_error 9\n");
        c = NULL;
        is_int(jl_nvml_control_open(&c, why, sizeof(why)), -ENODEV, "driver not loaded: -ENODEV");
        ok(strstr(why, "Driver Not Loaded") != NULL, "with words: %s", why);
        write_conf("# no GPU\n");
        is_int(jl_nvml_control_open(&c, why, sizeof(why)), -ENODEV, "no GPU: -ENODEV (%s)", why);
        ok(c == NULL, "ret untouched");
}

int main(int argc, char **argv)
{
        if (argc == 3 && strcmp(argv[1], "emu") == 0)
                test_emu(argv[2]);
        else if (argc == 2 && strcmp(argv[1], "absent") == 0) {
                char why[256] = "";
                jl_nvml_control *c = NULL;
                is_int(jl_nvml_control_open(&c, why, sizeof(why)), -ENOENT, "no library: -ENOENT");
                ok(strstr(why, "libnvidia-ml.so.1") != NULL, "with words: %s", why);
        } else {
                printf("Bail out! usage: test-nvml-control emu DIR | absent\n");
                return 2;
        }
        return tap_done();
}
