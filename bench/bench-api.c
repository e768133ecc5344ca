/* bench-api.c - joule_energy() latency (shared memory under the seqlock) against a unix-socket round trip to
 * the same jouled (JL_OP_ENERGY on one persistent connection), measured in the same run. Each call is timed
 * alone with CLOCK_MONOTONIC; the clock's own cost (an empty timed interval) is reported beside them.
 * Usage: JOULE_SOCKET=/run/joule/jouled.sock bench-api [N_SHM] [N_SOCKET] */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "client.h"
#include "joule.h"

static inline uint64_t ns(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp(const void *a, const void *b)
{
        uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
        return x < y ? -1 : x > y;
}

static void report(const char *what, uint64_t *lat, size_t n)
{
        qsort(lat, n, sizeof(*lat), cmp);
        printf("%-38s n=%-8zu median %8.1f ns   p99 %9.1f ns   max %10.1f ns\n", what, n, (double)lat[n / 2],
               (double)lat[(size_t)((double)n * 0.99)], (double)lat[n - 1]);
}

int main(int argc, char **argv)
{
        size_t n_shm = argc > 1 ? strtoul(argv[1], NULL, 10) : 1000000;
        size_t n_sock = argc > 2 ? strtoul(argv[2], NULL, 10) : 20000;
        if (n_shm < 100 || n_sock < 100) {
                fprintf(stderr, "bench-api: at least 100 iterations each\n");
                return 2;
        }
        uint64_t *lat = calloc(n_shm > n_sock ? n_shm : n_sock, sizeof(uint64_t));
        if (!lat)
                return 1;
        int r = joule_connect();
        if (r < 0) {
                fprintf(stderr, "bench-api: joule_connect: %s\n", joule_strerror(r));
                return 1;
        }
        uint64_t e, t, sink = 0;

        for (size_t i = 0; i < n_shm; i++) { /* the clock alone */
                uint64_t t0 = ns();
                lat[i] = ns() - t0;
        }
        report("clock_gettime pair (overhead)", lat, n_shm);

        for (size_t i = 0; i < 10000; i++) /* warm up */
                joule_energy(&e, &t);
        size_t errors = 0;
        for (size_t i = 0; i < n_shm; i++) {
                uint64_t t0 = ns();
                errors += joule_energy(&e, &t) != 0;
                lat[i] = ns() - t0;
                sink += e;
        }
        report("joule_energy() (shared memory)", lat, n_shm);
        if (errors)
                printf("  (%zu calls returned an error)\n", errors);

        const char *path = jl_client_socket_path(NULL);
        int fd;
        r = jl_client_connect(path, &fd);
        if (r < 0) {
                fprintf(stderr, "bench-api: %s: %s\n", path, strerror(-r));
                return 1;
        }
        jl_msg_request req = {.op = JL_OP_ENERGY, .step_id = -1, .gpu = -1};
        errors = 0;
        for (size_t i = 0; i < n_sock + 200; i++) {
                jl_client_reply rep = {.fd = -1};
                char why[128];
                uint64_t t0 = ns();
                r = jl_client_exchange(fd, &req, 5000, &rep, why, sizeof(why));
                uint64_t dt = ns() - t0;
                if (r < 0 || rep.err < 0) {
                        errors++;
                        if (r < 0)
                                break;
                }
                sink += rep.energy_uj;
                jl_client_reply_free(&rep);
                if (i >= 200) /* the first 200 warm up */
                        lat[i - 200] = dt;
        }
        close(fd);
        if (errors) {
                fprintf(stderr, "bench-api: %zu round trips failed\n", errors);
                return 1;
        }
        report("JL_OP_ENERGY (unix-socket round trip)", lat, n_sock);
        joule_disconnect();
        return sink == 42 ? 3 : 0; /* keep the reads */
}
