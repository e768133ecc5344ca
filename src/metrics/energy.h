/* energy.h - wrap-safe unwrapping of energy counters into monotonically increasing 64-bit µJ. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

/* Largest power a single domain may plausibly draw; a larger implied power is a glitch, not energy. */
#define JL_MAX_PLAUSIBLE_W 100000.0

/* The energy between two raw readings of a counter that runs 0..wrap_uj and restarts at 0 (wrap_uj 0:
 * a 64-bit counter that never wraps). The caller samples at least four times per wrap period, so a real
 * delta is well below half the range: a counter that went backwards without a plausible wrap, a reading
 * outside the range, or a jump of more than half the range returns -ERANGE. On success sets *ret_delta
 * and *ret_wrapped. */
int jl_energy_delta(uint64_t last, uint64_t now, uint64_t wrap_uj, uint64_t *ret_delta, bool *ret_wrapped);
