/* test-api-probe.c - a client of libjoule-api for tests/system/test-api.sh, one operation per run, results
 * on stdout as "rc WORDS" or numbers:
 *   test-api-probe connect                     connect; print "RC WORDS"
 *   test-api-probe window SECONDS              energy and time around a sleep: "DE_MJ DT_MS"
 *   test-api-probe setcpu LIST KHZ             joule_set_cpufreq on CPUs LIST ("0,1"): "RC WORDS"
 *   test-api-probe setgpu GPU KHZ              joule_set_gpufreq: "RC WORDS"
 *   test-api-probe setgpus KHZ,KHZ...          joule_set_gpufreq_list (GPU i at the i-th): "RC WORDS"
 *   test-api-probe watch SECONDS               read energy every 50 ms for up to SECONDS; print the first
 *                                              error as "RC WORDS" (or "0 ok") */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "joule.h"

static int say(int r)
{
        printf("%d %s\n", r, joule_strerror(r));
        return r < 0 ? 1 : 0;
}

int main(int argc, char **argv)
{
        if (argc < 2)
                return 2;
        const char *op = argv[1];
        int r = joule_connect();
        if (strcmp(op, "connect") == 0 || r < 0)
                return say(r);
        if (strcmp(op, "window") == 0 && argc == 3) {
                uint64_t e0, t0, e1, t1, de, dt;
                double s = atof(argv[2]);
                if ((r = joule_energy(&e0, &t0)) < 0)
                        return say(r);
                struct timespec ts = {.tv_sec = (time_t)s, .tv_nsec = (long)((s - (double)(time_t)s) * 1e9)};
                nanosleep(&ts, NULL);
                if ((r = joule_energy(&e1, &t1)) < 0)
                        return say(r);
                joule_energy_diff(e0, e1, &de, t0, t1, &dt);
                printf("%llu %llu\n", (unsigned long long)de, (unsigned long long)dt);
                return 0;
        }
        if (strcmp(op, "setcpu") == 0 && argc == 4) {
                cpu_set_t set;
                CPU_ZERO(&set);
                char *list = strdup(argv[2]);
                for (char *save = NULL, *tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
                        CPU_SET(atoi(tok), &set);
                free(list);
                return say(joule_set_cpufreq(&set, strtoul(argv[3], NULL, 10)));
        }
        if (strcmp(op, "setgpu") == 0 && argc == 4)
                return say(joule_set_gpufreq(atoi(argv[2]), strtoul(argv[3], NULL, 10)));
        if (strcmp(op, "setgpus") == 0 && argc == 3) {
                unsigned long khz[16];
                int n = 0;
                char *list = strdup(argv[2]);
                for (char *save = NULL, *tok = strtok_r(list, ",", &save); tok && n < 16;
                     tok = strtok_r(NULL, ",", &save))
                        khz[n++] = strtoul(tok, NULL, 10);
                free(list);
                return say(joule_set_gpufreq_list(n, khz));
        }
        if (strcmp(op, "watch") == 0 && argc == 3) {
                int n = (int)(atof(argv[2]) * 20);
                for (int i = 0; i < n; i++) {
                        if ((r = joule_energy(NULL, NULL)) < 0)
                                return say(r);
                        usleep(50000);
                }
                return say(0);
        }
        return 2;
}
