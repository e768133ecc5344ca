/* hwmon.h - the hwmon provider (jl_provider_hwmon, through libsensors) and a one-shot temperature read by
 * lm-sensors chip name and feature label, for the measurement-cluster runner's temperature gating. */
#pragma once

#include "provider.h"

/* Read one temperature (°C): the first chip that matches chip_pattern (an lm-sensors chip name as
 * sensors_parse_chip_name() takes it, wildcards allowed: "coretemp-isa-0000", "coretemp-*", "nvme-pci-*")
 * with a temperature feature whose label (as `sensors` prints it) is exactly feature_label
 * ("Package id 0", "Composite"). Returns 0, -EINVAL for a chip name libsensors cannot parse, -ENOENT when
 * no such chip or feature exists, -ERANGE for a non-finite value or one outside -100..300 °C, the negative
 * errno of the read, or -EIO when libsensors cannot initialise.
 *
 * libsensors keeps its state in globals. joule shares one sensors_init() between this function and every
 * open hwmon provider with a reference count under a mutex: the first user initialises, the last cleans
 * up. So it may be called at any time, also while a hwmon provider is open in the same process (it then
 * sees the chips found when the provider opened). No other code in the process may call sensors_init() or
 * sensors_cleanup() itself. */
int jl_hwmon_read_temp(const char *chip_pattern, const char *feature_label, double *ret_c);
