/* learnfit.h - the least-squares fits of a learning run (`joule learn`, docs/policies.md): a node's power
 * curve (static power and voltage shape, over every code and frequency measured) and EAR's counter
 * coefficients A..F of one (from, to) frequency pair over the codes. Pure functions, no I/O. */
#pragma once

#include <stddef.h>

#include "model.h"

/* Least squares: beta (p values) minimising |X beta − y|² for X of n rows and p columns (row-major), by
 * Householder QR. Returns 0, or -EINVAL when n < p, a value is not finite or X's columns are (nearly)
 * dependent. */
int jl_learn_lsq(const double *x, const double *y, size_t n, size_t p, double *ret_beta);

/* The power curve over n samples (khz[i], power_w[i]) of the codes code[i] < ncodes: code 0 is the node at
 * rest, P = static; a code k >= 1 draws P = static + d_k + b_k × s(f; vmin_ratio) (d_k: what it adds that
 * does not scale with the clock, e.g. DRAM; b_k: its dynamic power at f_max). static and the shape are the
 * node's; the shape's vmin_ratio in [0.2, 1] by a search of the residual, the rest by linear least squares
 * for each. The curve spans fmin_khz..fmax_khz. ret_b (may be NULL) gets the ncodes b's (b_0 = 0).
 * Returns 0, or -EINVAL (no idle sample, a code without two frequencies, values not finite, a dependent
 * system, a negative static power). */
int jl_learn_fit_curve(const double *khz, const double *power_w, const size_t *code, size_t n, size_t ncodes,
                       double fmin_khz, double fmax_khz, jl_rt_power_curve *ret, double *ret_b);

/* EAR's coefficients of one pair from n codes measured at both frequencies: power P_to = A P_from + B
 * TPI_from + C and CPI_to = D CPI_from + E TPI_from + F. Returns 0, or -EINVAL (fewer than 3 codes, a value
 * not finite, CPI not positive, the codes' (P, TPI) or (CPI, TPI) not spanning a plane). */
int jl_learn_fit_pair(const double *p_from, const double *cpi_from, const double *tpi_from,
                      const double *p_to, const double *cpi_to, size_t n, jl_rt_coeffs *ret);
