/* energy-loop.c - the user API's example (as EAR's): the node's energy, the time and the average power
 * around a loop that sleeps. Build it against the installed library:
 *
 *     cc energy-loop.c $(pkg-config --cflags --libs joule) -o energy-loop
 *     ./energy-loop [SECONDS]        (default 5, as in EAR's example)
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <joule.h>

int main(int argc, char **argv)
{
        unsigned seconds = argc > 1 ? (unsigned)strtoul(argv[1], NULL, 10) : 5;
        uint64_t e0, t0, e1, t1, energy_mj, time_ms;
        int r;

        r = joule_connect();
        if (r < 0) {
                fprintf(stderr, "energy-loop: joule_connect: %s\n", joule_strerror(r));
                return 1;
        }
        r = joule_energy(&e0, &t0);
        if (r < 0) {
                fprintf(stderr, "energy-loop: joule_energy: %s\n", joule_strerror(r));
                joule_disconnect();
                return 1;
        }

        for (unsigned i = 0; i < 1; i++) /* the application's work */
                sleep(seconds);

        r = joule_energy(&e1, &t1);
        if (r < 0) {
                fprintf(stderr, "energy-loop: joule_energy: %s\n", joule_strerror(r));
                joule_disconnect();
                return 1;
        }
        joule_energy_diff(e0, e1, &energy_mj, t0, t1, &time_ms);
        printf("energy %" PRIu64 " mJ, time %" PRIu64 " ms, average power %.3f W\n", energy_mj, time_ms,
               time_ms ? (double)energy_mj / (double)time_ms : 0.0);
        joule_disconnect();
        return 0;
}
