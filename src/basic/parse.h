/* parse.h - strict parsers for numbers read from sysfs, procfs, config files and the command line. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Each accepts optional leading/trailing ASCII whitespace (sysfs values end in '\n') and nothing else:
 * empty input, a sign where none is allowed, trailing garbage and overflow return -EINVAL or -ERANGE.
 * *ret is written only on success. */
int parse_u64(const char *s, uint64_t *ret);
int parse_i64(const char *s, int64_t *ret);
int parse_double(const char *s, double *ret);
int parse_bool(const char *s, bool *ret); /* 1/0, yes/no, true/false, on/off */

/* A duration with an optional unit suffix: "100" (default unit), "100ms", "2s", "1.5min", "500us".
 * default_unit_ns is the unit of a bare number. */
int parse_duration_ns(const char *s, uint64_t default_unit_ns, uint64_t *ret);

/* Parse a CPU list as in /sys/devices/system/cpu/online ("0-3,5,7-8"). Sets bits in mask (nbits bits);
 * returns the number of CPUs set, -EINVAL on garbage, -ERANGE when a CPU is >= nbits. */
int parse_cpu_list(const char *s, uint64_t *mask, size_t nbits);

/* Trim trailing whitespace in place; returns s. */
char *strip_trailing(char *s);
