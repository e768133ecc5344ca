/* loader.h - what the loader's wrappers (wrappers.c) and its start-up (loader.c) share. */
#pragma once

#include "rt-abi.h"

/* The table of the runtime build in use, or NULL while none is (no build yet, unmanaged, after exit). */
extern const struct jl_rt_ops *jl_loader_ops;
