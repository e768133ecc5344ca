/* event.h - the event id of an MPI call, the symbol that loop detection (DynAIS) sees: the call type, the
 * peer or root and the message's size class. Not the buffer's address, so that a program that allocates
 * its buffers anew every iteration still shows the same events every iteration.
 *
 *   bits 31..24  the call (enum jl_mpi_call)
 *   bits 23..8   the peer or root + 1; 0 for none, 0xffff for a negative one (MPI_ANY_SOURCE,
 *                MPI_PROC_NULL, MPI_ROOT); ranks above 0xfffd share values modulo 0xfffd
 *   bits  7..0   the size class: 0 for no data, else 1 + floor(log2(bytes)) (1 byte: 1, 2-3: 2, 4-7: 3, ...)
 */
#pragma once

#include <stdint.h>

#include "mpi-calls.h"

#define JL_EVENT_NO_PEER INT64_MIN

static inline unsigned jl_event_size_class(uint64_t bytes)
{
        return bytes ? 64u - (unsigned)__builtin_clzll(bytes) : 0u;
}

static inline uint32_t jl_event_peer_bits(int64_t peer)
{
        if (peer == JL_EVENT_NO_PEER)
                return 0;
        if (peer < 0)
                return 0xffff;
        return (uint32_t)(peer % 0xfffd) + 1u;
}

static inline uint32_t jl_event_id(enum jl_mpi_call call, int64_t peer, uint64_t bytes)
{
        return ((uint32_t)call & 0xffu) << 24 | jl_event_peer_bits(peer) << 8 | jl_event_size_class(bytes);
}

static inline enum jl_mpi_call jl_event_call(uint32_t event_id)
{
        return (enum jl_mpi_call)(event_id >> 24);
}
