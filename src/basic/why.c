/* why.c - the reason of a failure into the caller's buffer (see why.h). */
#include "why.h"

#include <stdarg.h>
#include <stdio.h>

int jl_why(char *why, size_t whylen, int r, const char *fmt, ...)
{
        if (why && whylen) {
                va_list ap;
                va_start(ap, fmt);
                vsnprintf(why, whylen, fmt, ap);
                va_end(ap);
        }
        return r;
}
