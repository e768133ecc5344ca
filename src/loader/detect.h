/* detect.h - what the loader decides before it loads anything: whether to stay out of a program (shells,
 * MPI launchers and their daemons), and which runtime build an MPI library's version string calls for. */
#pragma once

#include <stdbool.h>

#include "rt-abi.h"

/* true for programs the loader leaves alone: name is the program's base name (argv[0]'s or the
 * executable's). */
bool jl_loader_stays_out(const char *name);

/* The MPI behind a version string (MPI_Get_library_version's): 0 and *ret_flavour, *ret_label ("Open MPI",
 * "MPICH", "Intel MPI", "MVAPICH"), or -ENOENT for an MPI joule has no build for. */
int jl_loader_classify_mpi(const char *version, enum jl_rt_flavour *ret_flavour, const char **ret_label);

/* "libjoule-rt-ompi.so", "libjoule-rt-mpich.so", "libjoule-rt.so" */
const char *jl_loader_build_name(enum jl_rt_flavour flavour);
