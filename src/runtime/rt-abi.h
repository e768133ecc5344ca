/* rt-abi.h - the interface between libjoule-loader.so and the runtime builds it dlopens
 * (libjoule-rt-ompi.so, libjoule-rt-mpich.so, libjoule-rt.so). Each build exports one function,
 * jl_rt_get_ops(), returning its table; the loader refuses a table of another ABI version or call table
 * (then the program runs unmanaged). Arguments travel as the 64-bit slots of the x86-64 calling convention
 * (docs/runtime.md): a C call's arguments by value, a Fortran call's as the pointers Fortran passes. */
#pragma once

#include <stdint.h>

#include "mpi-calls.h"

#define JL_RT_ABI_VERSION 1u
#define JL_RT_GET_OPS "jl_rt_get_ops"

/* flags of a hook call */
#define JL_RT_FORTRAN 1u /* the arguments are a Fortran binding's (all pointers, ierr last) */

enum jl_rt_flavour {
        JL_RT_NONE,  /* not an MPI program: libjoule-rt.so */
        JL_RT_OMPI,  /* Open MPI: libjoule-rt-ompi.so */
        JL_RT_MPICH, /* MPICH and its ABI (Intel MPI, MVAPICH): libjoule-rt-mpich.so */
};

struct jl_rt_ops {
        uint32_t abi_version; /* JL_RT_ABI_VERSION */
        uint32_t n_calls;     /* JL_MPI_NCALLS of the build */
        enum jl_rt_flavour flavour;
        /* Once, right after dlopen, before any hook: verbose is JOULE_VERBOSE (0-4). 0 or a negative errno
         * (then the loader leaves the program unmanaged and never calls the build again). */
        int (*init)(int verbose);
        /* Around each intercepted call made outside any other intercepted call of the same thread. */
        void (*before)(enum jl_mpi_call call, unsigned flags, const uintptr_t *args);
        void (*after)(enum jl_mpi_call call, unsigned flags, const uintptr_t *args, int ret);
        /* Once, at exit (the loader's destructor); no hook is called afterwards. */
        void (*fini)(void);
};

typedef const struct jl_rt_ops *(*jl_rt_get_ops_fn)(void);
