/* userfile.h - the user's own copy of what the runtime learns, as EAR's --ear-user-db gives it: with
 * JOULE_REPORT=PATH the node master appends its application record, its loops and its policy's decisions
 * to PATH.<node>.csv, one line each, written whole with one write() as they happen (a program killed
 * later keeps what was written). The columns are in docs/runtime.md. Never logs. */
#pragma once

#include <stddef.h>

#include "report.h"

typedef struct {
        int fd; /* -1: closed (no JOULE_REPORT, or it failed) */
        char path[4096];
        char job_id[64];
        long long step_id; /* -1: none */
        char node[64];
} jl_rt_userfile;

/* Opens PATH.NODE.csv for appending (created 0666 & ~umask, its header written when it is empty); on failure
 * *f stays closed, why names the file and the error, and a negative errno is returned. */
int jl_rt_userfile_open(jl_rt_userfile *f, const char *path, const char *node, char *why, size_t whylen);
/* Each returns 0 or a negative errno (the file is closed after a failed write: one failure, one notice). */
int jl_rt_userfile_app(jl_rt_userfile *f, const jl_rt_app_record *a);
int jl_rt_userfile_loop(jl_rt_userfile *f, const jl_rt_loop_record *l);
int jl_rt_userfile_event(jl_rt_userfile *f, const char *kind, double value, const char *message);
void jl_rt_userfile_close(jl_rt_userfile *f);
/* One CSV field (RFC 4180 quoting when needed) appended to buf at *len; the line is cut, not overrun. */
void jl_rt_csv_str(char *buf, size_t size, size_t *len, const char *s);
