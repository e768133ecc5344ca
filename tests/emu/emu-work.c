/* emu-work.c - a workload whose progress follows joule-emu's model of time (tests/emu/README.md,
 * "Workloads"): it tells the emulator which CPUs run which kind of work (`ctl work`), so that their power
 * follows, then runs N iterations, each lasting compute cycles / f + memory time at the frequency in force
 * on its CPUs (the slowest of them), read from scaling_cur_freq at the real sysfs path (run it inside the
 * emulated node's namespace, tests/ns-run.sh) every slice, so that a frequency changed mid-run changes its
 * pace at once. Progress is continuous across iterations: sleeping late is carried, not lost. At the end it
 * sets its CPUs idle again and prints one JSON object with the emulator's time and node energy of the run
 * (both taken by the emulator at the two `work` commands) and per iteration. Kind gpuwait (the CPUs wait for
 * a GPU) also writes the GPU's utilisation into --gpu-util-file for the emulated NVML (tests/emu/nvml:
 * util_file=): --gpu-util PCT (default 95) while it runs, 0 at the end.
 *   emu-work --root DIR --kind compute|mixed|memory|gpuwait --iterations N [--cpus all|LIST]
 *            [--cycles C --mem-s S [--activity A]] [--slice-ms 10] [--gpu-util-file PATH [--gpu-util PCT]]
 */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "work-common.h"

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
        stop = sig;
}

static int usage(void)
{
        fputs("Usage: emu-work --root DIR --kind compute|mixed|memory|gpuwait --iterations N [--cpus "
              "all|LIST]\n"
              "                [--cycles C --mem-s S [--activity A]] [--slice-ms 10]\n"
              "                [--gpu-util-file PATH [--gpu-util PCT]]\n",
              stderr);
        return 2;
}

int main(int argc, char **argv)
{
        work_opts o = {.cpus_arg = "all", .slice_s = 0.010};
        const char *act = NULL;
        double iterations = 0;
        for (int i = 1; i + 1 < argc; i += 2) {
                const char *a = argv[i], *v = argv[i + 1];
                if (work_option(&o, a, v))
                        continue;
                if (strcmp(a, "--activity") == 0)
                        act = v;
                else if (strcmp(a, "--iterations") == 0)
                        iterations = strtod(v, NULL);
                else
                        return usage();
        }
        if (argc % 2 == 0 || !o.root || !o.kind || !(iterations >= 1 && iterations <= 1e9) ||
            !(o.slice_s > 0 && o.slice_s <= 1) || (!o.cycles != !o.mem_s) || (act && !o.cycles))
                return usage();

        int cpus[WORK_MAX_CPU];
        char text[16384], line[512];
        int ncpu = work_cpus("emu-work", o.cpus_arg, cpus, WORK_MAX_CPU);
        if (ncpu == -2)
                return 1;
        if (ncpu <= 0) {
                fprintf(stderr, "emu-work: bad CPU list '%s'\n", o.cpus_arg);
                return 2;
        }
        double khz;
        for (int i = 0; i < ncpu; i++)
                if (!work_read_khz(cpus[i], &khz)) {
                        fprintf(stderr,
                                "emu-work: cpu%d: no scaling_cur_freq (inside the node's namespace?)\n",
                                cpus[i]);
                        return 1;
                }

        struct sigaction sa = {.sa_handler = on_signal};
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);

        snprintf(line, sizeof(line), "work %s %s%s%s%s%s%s%s", o.cpus_arg, o.kind, o.cycles ? " " : "",
                 o.cycles ? o.cycles : "", o.mem_s ? " " : "", o.mem_s ? o.mem_s : "", act ? " " : "",
                 act ? act : "");
        if (work_ctl("emu-work", o.root, line, text, sizeof(text)) < 0)
                return 1;
        double t0 = work_json_num(text, NULL, "t_s"), e0 = work_json_num(text, "\"energy_uj\"", "node");
        double cyc = work_json_num(text, "\"work\"", "cycles"),
               mem = work_json_num(text, "\"work\"", "mem_s");
        if (isnan(t0) || isnan(e0) || isnan(cyc) || isnan(mem)) {
                fprintf(stderr, "emu-work: unexpected reply: %s", text);
                return 1;
        }

        bool gpu = strcmp(o.kind, "gpuwait") == 0;
        if (gpu && work_gpu_util("emu-work", &o, true) < 0)
                return 1;
        /* progress in iterations; d(progress)/dt = 1 / T(f), f the slowest of the CPUs, read every slice */
        double progress = 0, wall0 = work_now_s(), t = wall0, f_time = 0;
        while (progress < iterations && !stop) {
                double f = work_slowest_khz(cpus, ncpu);
                if (!isfinite(f))
                        break;
                work_advance(iterations, f, cyc, mem, o.slice_s, &progress, &t, &f_time);
        }
        double wall = work_now_s() - wall0;
        if (gpu)
                (void)work_gpu_util("emu-work", &o, false);
        snprintf(line, sizeof(line), "work %s idle", o.cpus_arg);
        if (work_ctl("emu-work", o.root, line, text, sizeof(text)) < 0)
                return 1;
        double t1 = work_json_num(text, NULL, "t_s"), e1 = work_json_num(text, "\"energy_uj\"", "node");
        double n = progress < iterations ? floor(progress) : iterations;
        printf("{\"kind\": \"%s\", \"cpus\": \"%s\", \"iterations\": %.0f, \"completed\": %s, \"freq_khz\": "
               "%.0f, "
               "\"wall_s\": %.6f, \"t_start_s\": %.6f, \"t_end_s\": %.6f, \"time_s\": %.6f, \"energy_j\": "
               "%.6f, \"time_per_iteration_s\": %.9f, "
               "\"energy_per_iteration_j\": %.9f}\n",
               o.kind, o.cpus_arg, n, progress >= iterations ? "true" : "false",
               wall > 0 ? f_time / wall : 0, wall, t0, t1, t1 - t0, (e1 - e0) / 1e6,
               n > 0 ? (t1 - t0) / n : 0, n > 0 ? (e1 - e0) / 1e6 / n : 0);
        return progress >= iterations ? 0 : 1;
}
