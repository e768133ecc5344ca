/* powercap_limit.h - RAPL power limits through the powercap sysfs (/sys/class/powercap/intel-rapl:N/
 * constraint_K_{name,power_limit_uw,max_power_uw}): list the package zones' limits and set a node power
 * limit spread over the packages. Not a provider: jouled's SET_POWERCAP uses it. Root only for writes. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#define JL_POWERCAP_SYSFS "/sys/class/powercap"
#define JL_POWERCAP_ZONES_MAX 16
#define JL_POWERCAP_CONSTRAINTS_MAX 4

typedef struct {
        char name[32];     /* constraint_K_name: "long_term", "short_term"; "" when unnamed */
        uint64_t limit_uw; /* constraint_K_power_limit_uw */
        uint64_t max_uw;   /* constraint_K_max_power_uw; 0: unknown */
} jl_powercap_constraint;

typedef struct {
        int index;     /* N of intel-rapl:N */
        char name[32]; /* the zone's name: "package-0", "psys" */
        size_t nconstraints;
        jl_powercap_constraint constraints[JL_POWERCAP_CONSTRAINTS_MAX];
} jl_powercap_zone;

/* The top-level RAPL zones (intel-rapl:N, not their sub-zones) with their constraints, in index order.
 * Returns the number of zones (0: none, which is not an error), or a negative errno. */
int jl_powercap_zones_read(jl_powercap_zone *ret_zones, size_t max);

/* Set constraint `constraint` of zone intel-rapl:N to uw. -EINVAL for uw above the constraint's maximum
 * (when known), -ENOENT when the zone or constraint does not exist, or the write's errno. */
int jl_powercap_zone_set_limit(int zone, int constraint, uint64_t uw);

/* A node power limit: watts spread evenly over the package zones' long-term constraint (constraint 0);
 * watts == 0 removes the limit (each package back to its constraint's maximum). Returns the number of
 * packages set, -ENODEV when there is no package zone, -ERANGE when the share of a package exceeds its
 * maximum, or the first write's errno (earlier packages keep their new limit). */
int jl_powercap_set_node_limit(double watts);
