/* coeffs.c - the coefficient file's parser and writer (coeffs.h). */
#include "coeffs.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parse.h"
#include "timeutil.h"
#include "why.h"

#define LINE_MAX_LEN 4096
#define WORDS_MAX (JL_COEFFS_FREQS_MAX + 2)

int jl_coeffs_node_valid(const char *name)
{
        size_t n = name ? strlen(name) : 0;
        if (n == 0 || n > 63)
                return 0;
        for (size_t i = 0; i < n; i++) {
                char c = name[i];
                if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '.' || c == '_' || c == '-'))
                        return 0;
        }
        return 1;
}

static int khz_word(const char *w, unsigned long *ret)
{
        uint64_t u;
        if (parse_u64(w, &u) < 0 || u == 0 || u > 100000000u)
                return -EINVAL;
        *ret = (unsigned long)u;
        return 0;
}

static bool in_freqs(const jl_coeffs *c, unsigned long khz)
{
        for (size_t i = 0; i < c->nfreqs; i++)
                if (c->freqs[i] == khz)
                        return true;
        return false;
}

int jl_coeffs_parse(const char *text, size_t len, const char *node, jl_coeffs *ret, char *why, size_t whylen)
{
        if (!text || !ret)
                return jl_why(why, whylen, -EINVAL, "no text");
        jl_coeffs c = {0};
        enum { WANT_VERSION, BODY, DONE } st = WANT_VERSION;
        bool have_node = false, have_date = false, have_freqs = false, have_curve = false;
        size_t cap = 0, lineno = 0, pos = 0;
        char line[LINE_MAX_LEN];
        int r = 0;
        while (pos < len && r == 0) {
                size_t e = pos;
                while (e < len && text[e] != '\n')
                        e++;
                lineno++;
                if (e - pos >= sizeof(line)) {
                        r = jl_why(why, whylen, -EINVAL, "line %zu: longer than %zu bytes", lineno,
                                   sizeof(line) - 1);
                        break;
                }
                if (e == len && st != DONE) {
                        /* the last line lacks its newline: a truncated file */
                        r = jl_why(why, whylen, -EINVAL, "line %zu: truncated (no newline at the end)",
                                   lineno);
                        break;
                }
                if (memchr(text + pos, '\0', e - pos)) {
                        r = jl_why(why, whylen, -EINVAL, "line %zu: a NUL byte", lineno);
                        break;
                }
                memcpy(line, text + pos, e - pos);
                line[e - pos] = '\0';
                pos = e + 1;
                char *words[WORDS_MAX];
                size_t nw = 0;
                bool too_many = false;
                for (char *save = NULL, *w = strtok_r(line, " \t\r", &save); w;
                     w = strtok_r(NULL, " \t\r", &save)) {
                        if (nw == WORDS_MAX) {
                                too_many = true;
                                break;
                        }
                        words[nw++] = w;
                }
                if (nw == 0 || words[0][0] == '#')
                        continue;
                if (too_many) {
                        r = jl_why(why, whylen, -EINVAL, "line %zu: too many values", lineno);
                        break;
                }
                const char *kw = words[0];
                if (st == DONE) {
                        r = jl_why(why, whylen, -EINVAL, "line %zu: '%s' after end", lineno, kw);
                        break;
                }
                if (st == WANT_VERSION) {
                        uint64_t v;
                        if (strcmp(kw, "joule-coeffs") != 0 || nw != 2) {
                                r = jl_why(
                                    why, whylen, -EINVAL,
                                    "line %zu: not a coefficient file (no 'joule-coeffs N' line first)",
                                    lineno);
                                break;
                        }
                        if (parse_u64(words[1], &v) < 0 || v != JL_COEFFS_VERSION) {
                                r = jl_why(why, whylen, -EPROTONOSUPPORT,
                                           "line %zu: version '%s' (this joule reads version %d)", lineno,
                                           words[1], JL_COEFFS_VERSION);
                                break;
                        }
                        st = BODY;
                        continue;
                }
                if (strcmp(kw, "node") == 0) {
                        if (nw != 2 || have_node || !jl_coeffs_node_valid(words[1])) {
                                r = jl_why(why, whylen, -EINVAL,
                                           "line %zu: node: one name of [A-Za-z0-9._-] expected, once",
                                           lineno);
                                break;
                        }
                        snprintf(c.node, sizeof(c.node), "%s", words[1]);
                        have_node = true;
                } else if (strcmp(kw, "date") == 0) {
                        uint64_t ns;
                        if (nw != 2 || have_date || strlen(words[1]) >= sizeof(c.date) ||
                            parse_iso8601(words[1], &ns) < 0) {
                                r = jl_why(why, whylen, -EINVAL,
                                           "line %zu: date: one ISO 8601 time expected, once", lineno);
                                break;
                        }
                        snprintf(c.date, sizeof(c.date), "%s", words[1]);
                        have_date = true;
                } else if (strcmp(kw, "freqs") == 0) {
                        if (have_freqs || nw < 3 || nw - 1 > JL_COEFFS_FREQS_MAX) {
                                r = jl_why(why, whylen, -EINVAL,
                                           "line %zu: freqs: 2 to %d frequencies in kHz expected, once",
                                           lineno, JL_COEFFS_FREQS_MAX);
                                break;
                        }
                        for (size_t i = 1; i < nw && r == 0; i++) {
                                unsigned long f;
                                if (khz_word(words[i], &f) < 0 || (i > 1 && f <= c.freqs[i - 2]))
                                        r = jl_why(
                                            why, whylen, -EINVAL,
                                            "line %zu: freqs: '%s' is not a frequency in kHz above the "
                                            "one before",
                                            lineno, words[i]);
                                else
                                        c.freqs[c.nfreqs++] = f;
                        }
                        have_freqs = true;
                } else if (strcmp(kw, "curve") == 0) {
                        double v[3];
                        unsigned long lo, hi;
                        if (have_curve || nw != 6) {
                                r = jl_why(why, whylen, -EINVAL,
                                           "line %zu: curve: STATIC_W VMIN_RATIO FMIN_KHZ FMAX_KHZ RMS_W "
                                           "expected, once",
                                           lineno);
                                break;
                        }
                        const char *num[3] = {words[1], words[2], words[5]};
                        for (size_t i = 0; i < 3 && r == 0; i++)
                                if (parse_double(num[i], &v[i]) < 0 || v[i] < 0)
                                        r = jl_why(why, whylen, -EINVAL,
                                                   "line %zu: curve: '%s' is not a number >= 0", lineno,
                                                   num[i]);
                        if (r < 0)
                                break;
                        if (khz_word(words[3], &lo) < 0 || khz_word(words[4], &hi) < 0 || hi <= lo) {
                                r = jl_why(
                                    why, whylen, -EINVAL,
                                    "line %zu: curve: '%s' '%s' are not two ascending frequencies in kHz",
                                    lineno, words[3], words[4]);
                                break;
                        }
                        if (!(v[1] > 0 && v[1] <= 1)) {
                                r = jl_why(why, whylen, -EINVAL,
                                           "line %zu: curve: vmin_ratio %s is not in (0, 1]", lineno,
                                           words[2]);
                                break;
                        }
                        c.curve = (jl_rt_power_curve){.static_w = v[0],
                                                      .vmin_ratio = v[1],
                                                      .fmin_khz = (double)lo,
                                                      .fmax_khz = (double)hi,
                                                      .rms_w = v[2]};
                        have_curve = true;
                } else if (strcmp(kw, "pair") == 0) {
                        unsigned long from, to;
                        double k[6];
                        if (!have_freqs || nw != 9 || khz_word(words[1], &from) < 0 ||
                            khz_word(words[2], &to) < 0 || from == to || !in_freqs(&c, from) ||
                            !in_freqs(&c, to)) {
                                r = jl_why(
                                    why, whylen, -EINVAL,
                                    "line %zu: pair: FROM_KHZ TO_KHZ (two of freqs, after them) A B C "
                                    "D E F expected",
                                    lineno);
                                break;
                        }
                        for (size_t i = 0; i < 6 && r == 0; i++)
                                if (parse_double(words[i + 3], &k[i]) < 0)
                                        r = jl_why(why, whylen, -EINVAL,
                                                   "line %zu: pair: '%s' is not a number", lineno,
                                                   words[i + 3]);
                        if (r < 0)
                                break;
                        if (jl_coeffs_pair_find(&c, from, to)) {
                                r = jl_why(why, whylen, -EINVAL, "line %zu: pair %lu %lu given twice",
                                           lineno, from, to);
                                break;
                        }
                        if (c.npairs == cap) {
                                size_t ncap = cap ? cap * 2 : 64;
                                if (ncap > (size_t)JL_COEFFS_FREQS_MAX * JL_COEFFS_FREQS_MAX) {
                                        r = jl_why(why, whylen, -EINVAL, "line %zu: too many pairs", lineno);
                                        break;
                                }
                                jl_coeffs_pair *n = realloc(c.pairs, ncap * sizeof(*n));
                                if (!n) {
                                        r = jl_why(why, whylen, -ENOMEM, "out of memory");
                                        break;
                                }
                                c.pairs = n;
                                cap = ncap;
                        }
                        c.pairs[c.npairs++] = (jl_coeffs_pair){
                            .from_khz = from,
                            .to_khz = to,
                            .k = {.A = k[0], .B = k[1], .C = k[2], .D = k[3], .E = k[4], .F = k[5]}};
                } else if (strcmp(kw, "end") == 0 && nw == 1) {
                        st = DONE;
                } else {
                        r = jl_why(why, whylen, -EINVAL, "line %zu: unknown line '%s'", lineno, kw);
                }
        }
        if (r == 0 && st != DONE)
                r = jl_why(why, whylen, -EINVAL,
                           st == WANT_VERSION ? "empty: no 'joule-coeffs N' line"
                                              : "truncated: no 'end' line");
        if (r == 0 && (!have_node || !have_date || !have_freqs || !have_curve))
                r = jl_why(why, whylen, -EINVAL, "incomplete: %s missing",
                           !have_node    ? "node"
                           : !have_date  ? "date"
                           : !have_freqs ? "freqs"
                                         : "curve");
        if (r == 0 && node && strcmp(node, c.node) != 0)
                r = jl_why(why, whylen, -ENODEV, "the file is node %s's, not %s's", c.node, node);
        if (r < 0) {
                free(c.pairs);
                return r;
        }
        *ret = c;
        return 0;
}

int jl_coeffs_format(const jl_coeffs *c, char **ret_text)
{
        if (!c || !ret_text || !jl_coeffs_node_valid(c->node) || c->nfreqs < 2 ||
            c->nfreqs > JL_COEFFS_FREQS_MAX)
                return -EINVAL;
        char *buf = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&buf, &size);
        if (!f)
                return -ENOMEM;
        fprintf(f,
                "# joule's coefficient file: what `joule learn` learnt on this node (docs/policies.md)\n"
                "joule-coeffs %d\nnode %s\ndate %s\nfreqs",
                JL_COEFFS_VERSION, c->node, c->date);
        for (size_t i = 0; i < c->nfreqs; i++)
                fprintf(f, " %lu", c->freqs[i]);
        fprintf(
            f,
            "\n# curve STATIC_W VMIN_RATIO FMIN_KHZ FMAX_KHZ RMS_W: P(f) = static + b s(f), V linear from "
            "vmin_ratio x V_max\ncurve %.9g %.9g %lu %lu %.9g\n",
            c->curve.static_w, c->curve.vmin_ratio, (unsigned long)c->curve.fmin_khz,
            (unsigned long)c->curve.fmax_khz, c->curve.rms_w);
        if (c->npairs)
                fprintf(
                    f,
                    "# pair FROM_KHZ TO_KHZ A B C D E F: P' = A P + B TPI + C, CPI' = D CPI + E TPI + F\n");
        for (size_t i = 0; i < c->npairs; i++) {
                const jl_coeffs_pair *p = &c->pairs[i];
                fprintf(f, "pair %lu %lu %.9g %.9g %.9g %.9g %.9g %.9g\n", p->from_khz, p->to_khz, p->k.A,
                        p->k.B, p->k.C, p->k.D, p->k.E, p->k.F);
        }
        fprintf(f, "end\n");
        if (fclose(f) != 0) {
                free(buf);
                return -ENOMEM;
        }
        *ret_text = buf;
        return 0;
}

void jl_coeffs_free(jl_coeffs *c)
{
        if (!c)
                return;
        free(c->pairs);
        c->pairs = NULL;
        c->npairs = 0;
}

const jl_rt_coeffs *jl_coeffs_pair_find(const jl_coeffs *c, unsigned long from_khz, unsigned long to_khz)
{
        if (!c)
                return NULL;
        for (size_t i = 0; i < c->npairs; i++)
                if (c->pairs[i].from_khz == from_khz && c->pairs[i].to_khz == to_khz)
                        return &c->pairs[i].k;
        return NULL;
}
