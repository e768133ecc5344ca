/* joule.h - joule's public C API (libjoule-api.so): read the node's energy from the shared-memory page
 * that jouled publishes, without a round trip, and ask jouled to set CPU and GPU frequencies.
 *
 * Link with `pkg-config --cflags --libs joule`. Every function that can fail returns 0 or a negative
 * errno (-ENOENT, -EPERM, ...); joule_strerror() turns one into words. Documentation: docs/api.md and
 * one page per function in docs/api/. */
#ifndef JOULE_H
#define JOULE_H

#include <sched.h> /* cpu_set_t (CPU_SET() and friends need _GNU_SOURCE) */
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define JOULE_API_VERSION_MAJOR 1
#define JOULE_API_VERSION_MINOR 0

/* Connect to the node's jouled: the socket is $JOULE_SOCKET, else node.socket of the configuration
 * ($JOULE_CONFIG, else /etc/joule/joule.yml; default /run/joule/jouled.sock). Maps jouled's shared energy
 * page read-only. Calling it again while connected returns 0. */
int joule_connect(void);

/* The node's energy in millijoules since jouled started, and the CLOCK_MONOTONIC time in milliseconds of
 * the sample it comes from. Reads shared memory: no system call, no round trip. Either pointer may be
 * NULL. -ENOTCONN before joule_connect(); -ESTALE when jouled stopped updating the page. */
int joule_energy(uint64_t *energy_mj, uint64_t *time_ms);

/* eend - ebegin and tend - tbegin, correct across a uint64 wrap (modular differences). Output pointers
 * may be NULL. */
void joule_energy_diff(uint64_t ebegin, uint64_t eend, uint64_t *ediff, uint64_t tbegin, uint64_t tend,
                       uint64_t *tdiff);

/* Ask jouled to set the CPUs of mask to khz (0: back to the node's default). Allowed to root and to the
 * owner of the job running on those CPUs. */
int joule_set_cpufreq(const cpu_set_t *mask, unsigned long khz);

/* Ask jouled to set GPU gpu to khz (0: back to the default). */
int joule_set_gpufreq(int gpu, unsigned long khz);

/* Ask jouled to set GPUs 0 .. n-1 to khz[0] .. khz[n-1] (1 <= n <= 16). */
int joule_set_gpufreq_list(int n, const unsigned long *khz);

/* Unmap the page; joule_energy() returns -ENOTCONN afterwards. Safe to call when not connected. */
void joule_disconnect(void);

/* Words for a value returned by this API (negative or positive errno). The text is the calling thread's
 * and valid until its next joule_strerror() call; it names the socket and repeats jouled's reason where
 * the error came from the last call of this thread. */
const char *joule_strerror(int err);

#ifdef __cplusplus
}
#endif

#endif /* JOULE_H */
