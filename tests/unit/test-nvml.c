/* test-nvml.c - the nvml provider against the emulated NVML (tests/emu/nvml), loaded through the ordinary
 * dlopen() path with LD_LIBRARY_PATH pointing at it; and, run without it, against no library at all.
 *
 * Usage: test-nvml emu WORKDIR   (LD_LIBRARY_PATH holds the emulator)
 *        test-nvml absent        (no libnvidia-ml.so.1 in the loader's path) */
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "provider.h"
#include "sampler.h"
#include "provider-open.h"
#include "tap.h"

static char conf[512];

static void write_conf(const char *text)
{
        FILE *f = fopen(conf, "we");
        if (!f) {
                printf("Bail out! cannot write %s: %m\n", conf);
                exit(1);
        }
        fputs(text, f);
        fclose(f);
}

static void do_open(opened *o)
{
        provider_open(&jl_provider_nvml, o);
}

static bool has_note(const opened *o, const char *subject, const char *text)
{
        for (size_t i = 0; i < o->notes.n; i++)
                if ((!subject || strcmp(o->notes.items[i].subject, subject) == 0) &&
                    strstr(o->notes.items[i].reason, text))
                        return true;
        for (size_t i = 0; i < o->notes.n; i++)
                printf("#   note %s: %s\n", o->notes.items[i].subject, o->notes.items[i].reason);
        return false;
}

static double mono_s(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_two_gpus(void)
{
        write_conf(
            "# an H100 with the energy counter, an older GPU without\n"
            "gpu power_w=300 temp_c=41 sm_mhz=1980 mem_mhz=2619 energy_mj=123456789 name=NVIDIA H100\n"
            "gpu power_w=250 energy=0 temp_c=55 sm_mhz=1410 mem_mhz=1215 name=Tesla V100\n");
        opened o;
        do_open(&o);
        is_int(o.r, 0, "two GPUs: opens");
        static const char *const names[] = {
            "gpu-0", "gpu-0/power", "gpu-0/temperature", "gpu-0/sm-clock", "gpu-0/mem-clock",
            "gpu-1", "gpu-1/power", "gpu-1/temperature", "gpu-1/sm-clock", "gpu-1/mem-clock"};
        static const jl_kind kinds[] = {JL_KIND_ENERGY, JL_KIND_POWER, JL_KIND_TEMPERATURE,
                                        JL_KIND_FREQUENCY, JL_KIND_FREQUENCY};
        if (!is_int(o.ch.n, 10, "two GPUs: ten channels"))
                return;
        for (size_t i = 0; i < 10; i++) {
                is_str(o.ch.items[i].name, names[i], "channel %zu is %s", i, names[i]);
                is_int(o.ch.items[i].kind, kinds[i % 5], "%s kind", names[i]);
                is_int(o.ch.items[i].scope, i % 5 == 0 ? JL_SCOPE_GPU : JL_SCOPE_OTHER, "%s scope",
                       names[i]);
                is_str(o.ch.items[i].provider, "nvml", "%s provider", names[i]);
        }
        ok(o.ch.items[0].wrap_uj == 0 && o.ch.items[5].wrap_uj == 0, "GPU energy never wraps");
        ok(has_note(&o, "nvml/gpu-1", "integrated from power"), "gpu-1: the fallback is noted");
        bool gpu0_note = false;
        for (size_t i = 0; i < o.notes.n; i++)
                gpu0_note |= strcmp(o.notes.items[i].subject, "nvml/gpu-0") == 0 &&
                             !strstr(o.notes.items[i].reason, "utilization: Not Supported");
        ok(!gpu0_note, "gpu-0: its energy counter is used, nothing to note (but its missing utilization)");

        jl_value a[10] = {0}, b[10] = {0};
        double t1 = mono_s();
        is_int(jl_provider_nvml.read(o.state, a), 0, "first read");
        usleep(400000);
        is_int(jl_provider_nvml.read(o.state, b), 0, "second read");
        double dt = mono_s() - t1;
        for (int i = 0; i < 10; i++)
                is_int(b[i].err, 0, "%s readable", names[i]);
        ok(a[0].counter >= UINT64_C(123456789000), "gpu-0: counter in µJ from the driver's mJ");
        is_near((double)(b[0].counter - a[0].counter) / 1e6, 300 * dt, 300 * dt * 0.05 + 0.01,
                "gpu-0: energy = 300 W × %.3f s", dt);
        is_near((double)(b[5].counter - a[5].counter) / 1e6, 250 * dt, 250 * dt * 0.05 + 0.01,
                "gpu-1: integrated energy = 250 W × %.3f s", dt);
        is_near(b[1].gauge, 300.0, 1e-9, "gpu-0: 300 W");
        is_near(b[6].gauge, 250.0, 1e-9, "gpu-1: 250 W");
        is_near(b[2].gauge, 41.0, 1e-9, "gpu-0: 41 °C");
        is_near(b[3].gauge, 1980000.0, 1e-9, "gpu-0: SM clock 1980 MHz in kHz");
        is_near(b[4].gauge, 2619000.0, 1e-9, "gpu-0: memory clock 2619 MHz in kHz");
        is_near(b[8].gauge, 1410000.0, 1e-9, "gpu-1: SM clock in kHz");
        provider_close(&o);

        /* Through the sampler: energy ≈ power × the sampled duration */
        jl_provider_config cfg;
        jl_provider_config_default(&cfg);
        jl_sampler *s = NULL;
        is_int(jl_sampler_open(&cfg, (const char *[]){"nvml", NULL}, &s), 0, "sampler opens nvml");
        if (!s)
                return;
        for (int k = 0; k < 4; k++) {
                jl_sampler_sample(s);
                usleep(100000);
        }
        jl_sampler_sample(s);
        double d = jl_sampler_duration_s(s);
        is_near((double)s->tracks[0].energy_uj / 1e6, 300 * d, 300 * d * 0.05, "sampler: gpu-0 %.3f s", d);
        is_near((double)s->tracks[5].energy_uj / 1e6, 250 * d, 250 * d * 0.05, "sampler: gpu-1 %.3f s", d);
        jl_total_source src;
        is_near(jl_sampler_total_energy_j(s, &src), 550 * d, 550 * d * 0.05, "sampler: GPUs summed");
        is_int(src, JL_TOTAL_DOMAINS, "GPUs are summed domains");
        jl_sampler_free(s);
}

static void test_unavailable(void)
{
        opened o;
        write_conf("init_error 9\n");
        do_open(&o);
        is_int(o.r, -ENODEV, "driver not loaded: unavailable");
        is_int(o.ch.n, 0, "driver not loaded: no channel");
        ok(has_note(&o, "nvml", "Driver Not Loaded"), "driver not loaded: note gives NVML's reason");
        ok(has_note(&o, "nvml", "modprobe nvidia"), "driver not loaded: note says what to do");
        provider_close(&o);

        write_conf("# a driver with no GPU\n");
        do_open(&o);
        is_int(o.r, -ENODEV, "no GPU: unavailable");
        ok(has_note(&o, "nvml", "sees no GPU"), "no GPU: note");
        provider_close(&o);

        /* A GPU with neither energy nor power: listed without energy, the rest still read */
        write_conf("gpu power_w=-1 energy=0 temp_c=30 sm_mhz=0 mem_mhz=0 name=Old GPU\n");
        do_open(&o);
        is_int(o.r, 0, "GPU without energy or power: opens");
        if (is_int(o.ch.n, 1, "only its temperature"))
                is_str(o.ch.items[0].name, "gpu-0/temperature", "gpu-0/temperature");
        ok(has_note(&o, "nvml/gpu-0", "no GPU energy"), "no energy: note");
        ok(has_note(&o, "nvml/gpu-0", "sm-clock"), "no SM clock: note");
        provider_close(&o);

        /* Reopening after a close starts a new session (nvmlShutdown + dlclose worked) */
        write_conf("gpu power_w=100 name=Again\n");
        do_open(&o);
        is_int(o.r, 0, "reopen: opens");
        is_int(o.ch.n, 5, "reopen: five channels");
        provider_close(&o);
}

static void write_file(const char *path, const char *text)
{
        FILE *f = fopen(path, "we");
        if (!f) {
                printf("Bail out! cannot write %s: %m\n", path);
                exit(1);
        }
        fputs(text, f);
        fclose(f);
}

/* GPU utilisation: fixed rates on one GPU, a file the test rewrites on the other (read at every read, so
 * the rates change within a session), and NOT_SUPPORTED noted where the GPU has none. */
static void test_utilization(const char *dir)
{
        char util[600], text[1024];
        snprintf(util, sizeof(util), "%s/nvml-emu-util", dir);
        unlink(util);
        snprintf(text, sizeof(text),
                 "gpu power_w=300 util_gpu=37 util_mem=12 name=Fixed\n"
                 "gpu power_w=200 util_file=%s name=Filed\n"
                 "gpu power_w=100 name=No utilization\n",
                 util);
        write_conf(text);
        opened o;
        do_open(&o);
        is_int(o.r, 0, "utilization: opens");
        static const char *const names[] = {"gpu-0/utilization", "gpu-0/mem-utilization",
                                            "gpu-1/utilization", "gpu-1/mem-utilization"};
        size_t idx[4] = {SIZE_MAX, SIZE_MAX, SIZE_MAX, SIZE_MAX};
        bool gpu2 = false;
        for (size_t i = 0; i < o.ch.n; i++) {
                for (size_t k = 0; k < 4; k++)
                        if (strcmp(o.ch.items[i].name, names[k]) == 0)
                                idx[k] = i;
                gpu2 |= strstr(o.ch.items[i].name, "gpu-2/") && strstr(o.ch.items[i].name, "utilization");
        }
        for (size_t k = 0; k < 4; k++)
                if (!ok(idx[k] != SIZE_MAX, "channel %s", names[k])) {
                        provider_close(&o);
                        return;
                }
        is_int(o.ch.items[idx[0]].kind, JL_KIND_UTILIZATION, "gpu-0/utilization is a utilization (0..1)");
        is_int(o.ch.items[idx[0]].scope, JL_SCOPE_OTHER, "gpu-0/utilization is not an energy domain");
        ok(!gpu2, "gpu-2: no utilization channel");
        ok(has_note(&o, "nvml/gpu-2", "utilization: Not Supported"), "gpu-2: its missing utilization noted");

        jl_value v[32] = {0};
        if (!ok(o.ch.n <= 32, "at most 32 channels"))
                return;
        is_int(jl_provider_nvml.read(o.state, v), 0, "read");
        is_int(v[idx[0]].err, 0, "gpu-0 utilization readable");
        is_near(v[idx[0]].gauge, 0.37, 1e-9, "gpu-0: 37 %% busy");
        is_near(v[idx[1]].gauge, 0.12, 1e-9, "gpu-0: memory 12 %% busy");
        is_near(v[idx[2]].gauge, 0.0, 1e-9, "gpu-1: no file yet: 0 %%");

        write_file(util, "95 40\n");
        is_int(jl_provider_nvml.read(o.state, v), 0, "read after the file changed");
        is_near(v[idx[2]].gauge, 0.95, 1e-9, "gpu-1: 95 %% busy, from the file, in the same session");
        is_near(v[idx[3]].gauge, 0.40, 1e-9, "gpu-1: memory 40 %% busy");
        is_near(v[idx[0]].gauge, 0.37, 1e-9, "gpu-0: unchanged");

        write_file(util, "0 0\n");
        is_int(jl_provider_nvml.read(o.state, v), 0, "read after the file went back to idle");
        is_near(v[idx[2]].gauge, 0.0, 1e-9, "gpu-1: idle again");

        write_file(util, "150 0\n");
        is_int(jl_provider_nvml.read(o.state, v), 0, "read of an impossible rate");
        is_int(v[idx[2]].err, -ERANGE, "gpu-1: 150 %% is refused (-ERANGE), not published");
        is_int(v[idx[3]].err, 0, "gpu-1: its memory rate still reads");
        provider_close(&o);

        /* through the sampler: the time-weighted mean of the readings */
        write_file(util, "80 10\n");
        jl_provider_config cfg;
        jl_provider_config_default(&cfg);
        jl_sampler *s = NULL;
        is_int(jl_sampler_open(&cfg, (const char *[]){"nvml", NULL}, &s), 0, "sampler opens nvml");
        if (!s)
                return;
        for (int k = 0; k < 3; k++) {
                jl_sampler_sample(s);
                usleep(50000);
        }
        jl_sampler_sample(s);
        is_near(jl_track_mean(&s->tracks[idx[2]]), 0.80, 1e-9, "sampler: gpu-1 mean utilization 0.80");
        jl_sampler_free(s);
        unlink(util);
}

/* Each GPU's identity (UUID, minor number, PCI bus id, MIG instances) on its energy channel, as jouled
 * publishes it in its shared page: given, by the emulator's defaults, and a minor number the driver does not
 * report. */
static void test_identity(void)
{
        write_conf(
            "gpu uuid=GPU-8f6c2a1e-0b7d-4c1e-9a53-1d2e3f4a5b6c minor=3 pci=00000000:3B:00.0 name=A\n"
            "gpu mig=MIG-11111111-2222-4333-8444-555555555555,MIG-66666666-2222-4333-8444-555555555555 "
            "name=B\n"
            "gpu minor=-1 util_gpu=0 name=C\n");
        opened o;
        do_open(&o);
        is_int(o.r, 0, "three GPUs: opens");
        const jl_channel *e[3] = {0};
        for (size_t i = 0; i < o.ch.n; i++) {
                const jl_channel *c = &o.ch.items[i];
                unsigned g;
                char rest;
                if (c->kind == JL_KIND_ENERGY && sscanf(c->name, "gpu-%u%c", &g, &rest) == 1 && g < 3)
                        e[g] = c;
                else if (c->gpu_uuid[0] || c->gpu_pci[0] || c->gpu_minor_known)
                        ok(false, "%s: not an energy channel, carries no identity", c->name);
        }
        if (!ok(e[0] && e[1] && e[2], "an energy channel per GPU")) {
                provider_close(&o);
                return;
        }
        is_str(e[0]->gpu_uuid, "GPU-8f6c2a1e-0b7d-4c1e-9a53-1d2e3f4a5b6c", "gpu-0: nvmlDeviceGetUUID");
        ok(e[0]->gpu_minor_known && e[0]->gpu_minor == 3,
           "gpu-0: nvmlDeviceGetMinorNumber 3 (not its index)");
        is_str(e[0]->gpu_pci, "00000000:3B:00.0", "gpu-0: nvmlDeviceGetPciInfo_v3's busId");
        is_str(e[1]->gpu_uuid, "GPU-e0000000-0000-4000-8000-000000000001", "gpu-1: the emulator's UUID");
        ok(e[1]->gpu_minor_known && e[1]->gpu_minor == 1, "gpu-1: minor 1 by default");
        is_str(e[1]->gpu_pci, "00000000:02:00.0", "gpu-1: the emulator's bus id");
        ok(!e[2]->gpu_minor_known, "gpu-2: a minor number the driver does not report is unknown");
        is_str(e[2]->gpu_uuid, "GPU-e0000000-0000-4000-8000-000000000002", "gpu-2: its UUID all the same");
        is_str(e[1]->gpu_mig,
               "MIG-11111111-2222-4333-8444-555555555555,MIG-66666666-2222-4333-8444-555555555555",
               "gpu-1, MIG enabled: its instances' UUIDs (nvmlDeviceGetMigDeviceHandleByIndex, GetUUID)");
        is_str(e[0]->gpu_mig, "", "gpu-0, MIG disabled: no instance");
        provider_close(&o);
}

static void test_absent(void)
{
        void *lib = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
        if (lib) {
                dlclose(lib);
                printf("1..0 # SKIP a real libnvidia-ml.so.1 is installed here\n");
                exit(0);
        }
        opened o;
        do_open(&o);
        is_int(o.r, -ENOENT, "no library: unavailable (-ENOENT)");
        is_int(o.ch.n, 0, "no library: no channel");
        ok(has_note(&o, "nvml", "no NVIDIA driver library libnvidia-ml.so.1"), "no library: note says so");
        provider_close(&o);
}

int main(int argc, char **argv)
{
        if (argc == 2 && strcmp(argv[1], "absent") == 0) {
                test_absent();
                return tap_done();
        }
        if (argc != 3 || strcmp(argv[1], "emu") != 0) {
                printf("Bail out! usage: %s emu WORKDIR | %s absent\n", argv[0], argv[0]);
                return 1;
        }
        snprintf(conf, sizeof(conf), "%s/nvml-emu.conf", argv[2]);
        setenv("JOULE_EMU_NVML", conf, 1);
        test_two_gpus();
        test_unavailable();
        test_utilization(argv[2]);
        test_identity();
        unlink(conf);
        return tap_done();
}
