/* test-rt-client.c - a stand-in for the runtime's policies in the system tests: it links
 * src/runtime/report.c (the runtime's real client of jouled) and calls it as the runtime does.
 *   test-rt-client setfreq CPULIST KHZ            jl_rt_set_cpufreq
 *   test-rt-client hold CPULIST KHZ SECONDS       set, print "set", then sleep (a program to kill)
 *   test-rt-client app NAME [TAG]                 an application signature (pck/dram power, gflops unknown;
 *                                                 a NAME starting with nc: no counters, no frequency)
 *   test-rt-client loop KEY ITERATIONS            a loop signature
 *   test-rt-client event KIND VALUE MESSAGE       a policy decision
 *   test-rt-client badapp                         a record jouled must refuse (negative time, a spaced name)
 *   test-rt-client bench N                        N events on one connection: the mean time of a call
 *   test-rt-client burst N GAP_MS WAIT_S          N events ("burst", value i) GAP_MS apart, then flushes
 * what waits every 100 ms for up to WAIT_S s; prints "sent N in MS ms, W waiting, D dropped, R refused"
 * Prints "ok" or "err N TEXT"; exits 0 on success, 1 on a refusal, 2 on bad usage. */
#include <errno.h>
#include <math.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "report.h"

static int parse_cpus(const char *s, cpu_set_t *set)
{
        CPU_ZERO(set);
        char *copy = strdup(s), *save = NULL;
        for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
                int a, b;
                if (sscanf(tok, "%d-%d", &a, &b) == 2) {
                        for (int c = a; c <= b; c++)
                                CPU_SET(c, set);
                } else if (sscanf(tok, "%d", &a) == 1)
                        CPU_SET(a, set);
                else {
                        free(copy);
                        return -1;
                }
        }
        free(copy);
        return 0;
}

static int done(int r)
{
        if (r == 0) {
                printf("ok\n");
                return 0;
        }
        printf("err %d %s\n", r, strerror(-r));
        return 1;
}

int main(int argc, char **argv)
{
        if (argc < 2)
                return 2;
        const char *cmd = argv[1];
        cpu_set_t set;
        if ((strcmp(cmd, "setfreq") == 0 || strcmp(cmd, "hold") == 0) && argc >= 4) {
                if (parse_cpus(argv[2], &set) < 0)
                        return 2;
                int r = jl_rt_set_cpufreq(&set, strtoul(argv[3], NULL, 10));
                if (strcmp(cmd, "hold") != 0 || r < 0)
                        return done(r);
                printf("set\n");
                fflush(stdout);
                sleep(argc >= 5 ? (unsigned)atoi(argv[4]) : 60);
                return 0;
        }
        if (strcmp(cmd, "app") == 0 && argc >= 3) {
                jl_rt_app_record a = {.policy_th = 0.05,
                                      .time_s = 12.5,
                                      .energy_j = 2500.25,
                                      .avg_power_w = 200.02,
                                      .pck_power_w = NAN,
                                      .dram_power_w = NAN,
                                      .avg_cpufreq_khz = 2100000,
                                      .def_cpufreq_khz = 2400000,
                                      .cpi = 0.75,
                                      .tpi = 0.01,
                                      .gbs = 12.5,
                                      .gflops = NAN};
                snprintf(a.app_name, sizeof(a.app_name), "%s", argv[2]);
                snprintf(a.policy, sizeof(a.policy), "min_energy");
                if (argc >= 4)
                        snprintf(a.tag, sizeof(a.tag), "%s", argv[3]);
                if (strncmp(argv[2], "nc", 2) == 0) { /* no counters, no frequency known */
                        a.cpi = a.tpi = a.gbs = NAN;
                        a.avg_cpufreq_khz = 0;
                }
                return done(jl_rt_report_app(&a));
        }
        if (strcmp(cmd, "loop") == 0 && argc >= 4) {
                jl_rt_loop_record l = {.iterations = strtoull(argv[3], NULL, 10),
                                       .time_per_iteration_s = 0.125,
                                       .avg_power_w = 190.5,
                                       .avg_cpufreq_khz = 2000000,
                                       .cpi = 0.8,
                                       .tpi = NAN,
                                       .gbs = 10.25,
                                       .gflops = NAN};
                snprintf(l.loop_key, sizeof(l.loop_key), "%s", argv[2]);
                return done(jl_rt_report_loop(&l));
        }
        if (strcmp(cmd, "event") == 0 && argc >= 5)
                return done(jl_rt_report_event(argv[2], strtod(argv[3], NULL), argv[4]));
        if (strcmp(cmd, "bench") == 0 && argc >= 3) {
                int n = atoi(argv[2]);
                struct timespec a, b;
                clock_gettime(CLOCK_MONOTONIC, &a);
                for (int i = 0; i < n; i++) {
                        int r = jl_rt_report_event("bench", i, "a policy decision");
                        if (r < 0)
                                return done(r);
                }
                clock_gettime(CLOCK_MONOTONIC, &b);
                double us = ((double)(b.tv_sec - a.tv_sec) * 1e9 + (double)(b.tv_nsec - a.tv_nsec)) / 1e3;
                printf("%d events in %.0f us: %.1f us per call\n", n, us, n > 0 ? us / n : 0);
                return 0;
        }
        if (strcmp(cmd, "burst") == 0 && argc >= 5) {
                int n = atoi(argv[2]), gap = atoi(argv[3]), wait_s = atoi(argv[4]);
                struct timespec a, b;
                clock_gettime(CLOCK_MONOTONIC, &a);
                for (int i = 0; i < n; i++) {
                        char m[64];
                        snprintf(m, sizeof(m), "record %d of %d", i, n);
                        (void)jl_rt_report_event("burst", i, m);
                        if (gap > 0 && i + 1 < n)
                                usleep((useconds_t)gap * 1000);
                }
                clock_gettime(CLOCK_MONOTONIC, &b);
                double ms = ((double)(b.tv_sec - a.tv_sec) * 1e9 + (double)(b.tv_nsec - a.tv_nsec)) / 1e6;
                size_t w, d, rf;
                for (int i = 0; i < wait_s * 10; i++) {
                        jl_rt_report_stats(&w, &d, &rf);
                        if (w == 0 || jl_rt_report_flush() == 0)
                                break;
                        usleep(100000);
                }
                jl_rt_report_stats(&w, &d, &rf);
                printf("sent %d in %.0f ms, %zu waiting, %zu dropped, %zu refused\n", n, ms, w, d, rf);
                jl_rt_report_disconnect();
                return w == 0 && d == 0 && rf == 0 ? 0 : 1;
        }
        if (strcmp(cmd, "badapp") == 0) {
                jl_rt_app_record a = {.time_s = -1,
                                      .pck_power_w = NAN,
                                      .dram_power_w = NAN,
                                      .cpi = NAN,
                                      .tpi = NAN,
                                      .gbs = NAN,
                                      .gflops = NAN};
                snprintf(a.app_name, sizeof(a.app_name), "bad");
                int r1 = jl_rt_report_app(&a);
                a.time_s = 1;
                snprintf(a.app_name, sizeof(a.app_name), "has space");
                int r2 = jl_rt_report_app(&a);
                printf("%d %d\n", r1, r2);
                return r1 == -EINVAL && r2 == -EINVAL ? 0 : 1;
        }
        return 2;
}
