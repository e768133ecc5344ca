/* coeffs.h - a node's coefficient file, what a learning run (`joule learn`) learnt and the runtime uses
 * (docs/policies.md, "The coefficient file"): a versioned line-oriented text,
 *
 *     joule-coeffs 1
 *     node NAME
 *     date 2026-12-03T10:50:00Z
 *     freqs KHZ KHZ ...                            (ascending, 2..128)
 *     curve STATIC_W VMIN_RATIO FMIN_KHZ FMAX_KHZ RMS_W
 *     pair FROM_KHZ TO_KHZ A B C D E F              (0 or more; only with counters)
 *     end
 *
 * '#' lines and blank lines are comments. Parsing is strict (parse.h's numbers, no NaN, no negative
 * where none is valid, every frequency of a pair among freqs, `end` last: a truncated file is refused).
 * Pure functions, no I/O. */
#pragma once

#include <stddef.h>

#include "model.h"

#define JL_COEFFS_VERSION 1
#define JL_COEFFS_FREQS_MAX 128
/* runtime.coefficients_dir's default (src/shared/config.c has the same) */
#define JL_COEFFS_DIR_DEFAULT "/var/lib/joule/coeffs"

typedef struct {
        unsigned long from_khz, to_khz;
        jl_rt_coeffs k;
} jl_coeffs_pair;

typedef struct {
        char node[64];
        char date[32];
        unsigned long freqs[JL_COEFFS_FREQS_MAX];
        size_t nfreqs;
        jl_rt_power_curve curve;
        jl_coeffs_pair *pairs; /* malloc'd */
        size_t npairs;
} jl_coeffs;

/* Parses text (len bytes, need not be NUL-terminated). node: the node the file must be for (NULL: any).
 * Returns 0, or -EINVAL (bad input), -EPROTONOSUPPORT (another version), -ENODEV (another node's file),
 * -ENOMEM, with words in why ("line 4: curve: vmin_ratio 1.7 is not in (0, 1]"). */
int jl_coeffs_parse(const char *text, size_t len, const char *node, jl_coeffs *ret, char *why,
                    size_t whylen);
/* The file's text (malloc'd, NUL-terminated) in *ret_text. Returns 0, -EINVAL or -ENOMEM. */
int jl_coeffs_format(const jl_coeffs *c, char **ret_text);
void jl_coeffs_free(jl_coeffs *c);
/* The coefficients of the pair (from, to), or NULL. */
const jl_rt_coeffs *jl_coeffs_pair_find(const jl_coeffs *c, unsigned long from_khz, unsigned long to_khz);
/* Whether name is a node name a file may carry: 1..63 of [A-Za-z0-9._-]. */
int jl_coeffs_node_valid(const char *name);
