/* why.h - how a library says why it failed without logging: the reason goes into the caller's buffer and
 * the negative errno comes back, so `return jl_why(why, whylen, -EINVAL, "…", …);` is one line. */
#pragma once

#include <stddef.h>

#include "macro.h"

/* Formats the reason into why (when why is not NULL and whylen > 0, truncated to whylen) and returns r. */
int jl_why(char *why, size_t whylen, int r, const char *fmt, ...) _printf_(4, 5);
