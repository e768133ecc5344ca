/* json.c - streaming JSON writer (see json.h). */
#include "json.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>

void json_init(json_writer *w, FILE *f)
{
        *w = (json_writer){.f = f};
}

static void sep(json_writer *w)
{
        if (w->after_key) {
                w->after_key = false;
                return;
        }
        if (w->depth > 0 && w->need_comma[w->depth])
                fputc(',', w->f);
        if (w->depth > 0)
                w->need_comma[w->depth] = true;
}

static void open_(json_writer *w, char c)
{
        sep(w);
        fputc(c, w->f);
        if (w->depth + 1 < (int)(sizeof(w->need_comma) / sizeof(w->need_comma[0])))
                w->depth++;
        w->need_comma[w->depth] = false;
}

static void close_(json_writer *w, char c)
{
        fputc(c, w->f);
        if (w->depth > 0)
                w->depth--;
}

void json_object_begin(json_writer *w)
{
        open_(w, '{');
}
void json_object_end(json_writer *w)
{
        close_(w, '}');
}
void json_array_begin(json_writer *w)
{
        open_(w, '[');
}
void json_array_end(json_writer *w)
{
        close_(w, ']');
}

void json_write_escaped(FILE *f, const char *s)
{
        fputc('"', f);
        for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
                switch (*p) {
                case '"':
                        fputs("\\\"", f);
                        break;
                case '\\':
                        fputs("\\\\", f);
                        break;
                case '\n':
                        fputs("\\n", f);
                        break;
                case '\t':
                        fputs("\\t", f);
                        break;
                case '\r':
                        fputs("\\r", f);
                        break;
                default:
                        if (*p < 0x20)
                                fprintf(f, "\\u%04x", *p);
                        else
                                fputc(*p, f);
                }
        }
        fputc('"', f);
}

void json_key(json_writer *w, const char *key)
{
        sep(w);
        json_write_escaped(w->f, key);
        fputc(':', w->f);
        w->after_key = true;
}

void json_string(json_writer *w, const char *s)
{
        sep(w);
        if (s)
                json_write_escaped(w->f, s);
        else
                fputs("null", w->f);
}

void json_double(json_writer *w, double v)
{
        sep(w);
        if (!isfinite(v))
                fputs("null", w->f);
        else if (v == 0)
                fputs("0", w->f);
        else {
                /* The shortest form that reads back as the same double: energies keep every µJ. */
                char buf[32];
                for (int prec = 15; prec <= 17; prec++) {
                        snprintf(buf, sizeof(buf), "%.*g", prec, v);
                        if (strtod(buf, NULL) == v)
                                break;
                }
                fputs(buf, w->f);
        }
}

void json_int(json_writer *w, int64_t v)
{
        sep(w);
        fprintf(w->f, "%" PRId64, v);
}

void json_uint(json_writer *w, uint64_t v)
{
        sep(w);
        fprintf(w->f, "%" PRIu64, v);
}

void json_bool(json_writer *w, bool v)
{
        sep(w);
        fputs(v ? "true" : "false", w->f);
}

void json_null(json_writer *w)
{
        sep(w);
        fputs("null", w->f);
}
