/* fileio.h - reading small sysfs/procfs files: whole-file reads at offset 0 and strict numeric reads. */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* Open read-only with O_CLOEXEC; returns the fd or a negative errno. */
int open_ro(const char *path);

/* pread() the whole file from offset 0 into buf (NUL-terminated). Returns the length, -ENODATA when the
 * file is empty, -EFBIG when it does not fit, or the negative errno of the read. */
int read_text_fd(int fd, char *buf, size_t size);
int read_text_path(const char *path, char *buf, size_t size);

/* As above, then parse strictly (see parse.h). -ENODATA for an empty file, -EINVAL for garbage, -ERANGE
 * for overflow or a negative number where none is valid. */
int read_u64_fd(int fd, uint64_t *ret);
int read_u64_path(const char *path, uint64_t *ret);
int read_i64_path(const char *path, int64_t *ret);

/* Read a one-line text file with trailing whitespace stripped. */
int read_line_path(const char *path, char *buf, size_t size);

/* Write a string to a sysfs-style file (open, write whole, close). */
int write_text_path(const char *path, const char *text);
