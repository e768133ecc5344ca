/* tap.h - a tiny TAP producer for unit tests run by `meson test` (protocol: tap). */
#pragma once

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static int tap_n, tap_failed;

#define ok(cond, ...)                                                                                        \
        ({                                                                                                   \
                bool _ok = (cond);                                                                           \
                printf("%s %d - ", _ok ? "ok" : "not ok", ++tap_n);                                          \
                printf(__VA_ARGS__);                                                                         \
                printf("\n");                                                                                \
                if (!_ok) {                                                                                  \
                        tap_failed++;                                                                        \
                        printf("#   failed at %s:%d\n", __FILE__, __LINE__);                                 \
                }                                                                                            \
                _ok;                                                                                         \
        })

#define is_int(got, want, ...)                                                                               \
        ({                                                                                                   \
                long long _g = (long long)(got), _w = (long long)(want);                                     \
                bool _r = ok(_g == _w, __VA_ARGS__);                                                         \
                if (!_r)                                                                                     \
                        printf("#   got %lld, want %lld\n", _g, _w);                                         \
                _r;                                                                                          \
        })

#define is_near(got, want, tol, ...)                                                                         \
        ({                                                                                                   \
                double _g = (double)(got), _w = (double)(want);                                              \
                bool _r = ok(fabs(_g - _w) <= (tol), __VA_ARGS__);                                           \
                if (!_r)                                                                                     \
                        printf("#   got %.9g, want %.9g (tolerance %g)\n", _g, _w, (double)(tol));          \
                _r;                                                                                          \
        })

#define is_str(got, want, ...)                                                                               \
        ({                                                                                                   \
                const char *_g = (got), *_w = (want);                                                        \
                bool _r = ok(_g && _w && strcmp(_g, _w) == 0, __VA_ARGS__);                                  \
                if (!_r)                                                                                     \
                        printf("#   got '%s', want '%s'\n", _g ? _g : "(null)", _w ? _w : "(null)");         \
                _r;                                                                                          \
        })

static inline int tap_done(void)
{
        printf("1..%d\n", tap_n);
        return tap_failed ? 1 : 0;
}
