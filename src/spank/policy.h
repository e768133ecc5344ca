/* policy.h - what spank_joule.so decides without Slurm: its options' values (strictly parsed), and the
 * rights of the `policies` configuration section applied to one user's request, giving the JOULE_*
 * environment of the step. Pure functions (no Slurm, no I/O), unit-tested in tests/unit/test-spank-policy.c.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

#define JL_SPANK_TAG_MAX 64
#define JL_SPANK_VERBOSE_MAX 4
#define JL_SPANK_LEARNING_MAX 64

/* One step's requests, as the options gave them. */
typedef struct {
        int enabled; /* --joule: -1 not given, 0 off, 1 on */
        bool policy_set, th_set, cpufreq_set, verbose_set, tag_set, learning_set;
        char policy[32];
        double th;
        uint64_t cpufreq_khz;
        unsigned verbose;
        char tag[JL_SPANK_TAG_MAX];
        unsigned learning;
} jl_spank_opts;

/* What the step runs with. */
typedef struct {
        bool enabled;
        char policy[32];
        double th;            /* NAN: none (monitoring) */
        uint64_t cpufreq_khz; /* 0: none given (the runtime's default) */
        unsigned verbose;
        char tag[JL_SPANK_TAG_MAX]; /* "" none */
        int learning;               /* -1 none */
} jl_spank_env;

/* Parse one option's value into o. name is the option's name without dashes ("joule", "joule-policy",
 * "joule-policy-th", "joule-cpufreq", "joule-verbose", "joule-tag", "joule-learning"); value may be NULL
 * for --joule alone (on). -EINVAL with words in why (naming the option) when the value is not valid;
 * -ENOENT for a name that is not joule's. */
int jl_spank_parse_option(jl_spank_opts *o, const char *name, const char *value, char *why, size_t whylen);

/* Whether user may make every request: root and policies.authorized_users may set anything. */
bool jl_spank_user_authorized(const joule_config *c, const char *user);

/* Apply the policies section to user's requests. The result is always usable: a request the user may not
 * make is refused as a whole (the policy, threshold, frequency and learning run fall back to the defaults;
 * verbosity and tag are kept), and refusal gets one line saying what and why (empty when nothing was
 * refused). default_on: the plugin's default=on. Returns 1 when something was refused, else 0. */
int jl_spank_resolve(const jl_spank_opts *o, const joule_config *c, bool default_on, const char *user,
                     jl_spank_env *ret, char *refusal, size_t refusallen);

/* One online CPU's place: topology/physical_package_id and topology/core_id (-1: unknown). */
typedef struct {
        int cpu, package, core;
} jl_spank_cpu_topo;

/* Slurm's abstract core ids of a step ("0-3,8", S_STEP_ALLOC_CORES) to the CPUs (hardware threads) of those
 * cores, bits in ret_mask (nbits wide, zeroed first). Slurm numbers a node's cores socket by socket in the
 * order of physical_package_id and, within a socket, in the order of core_id; each core's CPUs are all the
 * threads with its (package, core): so on a node with two threads per core core 0 is CPUs 0 and 48 (say),
 * and on a node whose CPUs alternate between sockets core 1 is CPU 2. topo: the online CPUs, any order.
 * Returns the number of CPUs set; -EINVAL for a list that is not one or a core beyond the node's; -ENOENT
 * when a CPU's place is unknown (the caller then takes core ids as CPU numbers). */
int jl_spank_cores_to_cpus(const char *cores, const jl_spank_cpu_topo *topo, size_t n, uint64_t *ret_mask,
                           size_t nbits);
