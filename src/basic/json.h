/* json.h - a minimal streaming JSON writer to a FILE (escaping, finite numbers, commas handled). */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

typedef struct {
        FILE *f;
        int depth;
        bool need_comma[32];
        bool after_key;
} json_writer;

void json_init(json_writer *w, FILE *f);
void json_object_begin(json_writer *w);
void json_object_end(json_writer *w);
void json_array_begin(json_writer *w);
void json_array_end(json_writer *w);
void json_key(json_writer *w, const char *key);
void json_string(json_writer *w, const char *s);
void json_double(json_writer *w, double v); /* non-finite -> null */
void json_int(json_writer *w, int64_t v);
void json_uint(json_writer *w, uint64_t v);
void json_bool(json_writer *w, bool v);
void json_null(json_writer *w);
/* Write s as a JSON string literal (with quotes) to f. */
void json_write_escaped(FILE *f, const char *s);
