/* energy.c - counter unwrapping (see energy.h). */
#include "energy.h"

#include <errno.h>

int jl_energy_delta(uint64_t last, uint64_t now, uint64_t wrap_uj, uint64_t *ret_delta, bool *ret_wrapped)
{
        uint64_t delta;
        bool wrapped = false;

        if (wrap_uj > 0 && (now > wrap_uj || last > wrap_uj))
                return -ERANGE;
        if (now >= last)
                delta = now - last;
        else if (wrap_uj > 0) {
                delta = now + (wrap_uj - last);
                wrapped = true;
        } else
                return -ERANGE; /* a 64-bit counter went backwards: reset or garbage */
        if (wrap_uj > 0 && delta > wrap_uj / 2)
                return -ERANGE;
        *ret_delta = delta;
        *ret_wrapped = wrapped;
        return 0;
}
