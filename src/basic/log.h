/* log.h - logging for programs (never called from libraries): stderr, or the journal when under systemd. */
#pragma once

#include <stdarg.h>

#include "macro.h"

enum { LOG_LEVEL_ERROR = 3, LOG_LEVEL_WARNING = 4, LOG_LEVEL_NOTICE = 5, LOG_LEVEL_INFO = 6, LOG_LEVEL_DEBUG = 7 };

void log_setup(const char *program_name, int max_level);
int log_get_max_level(void);
/* Logs and returns -abs(err) (or -EIO for err == 0), so that callers can `return log_error(r, ...)`. */
int log_full(int level, int err, const char *fmt, ...) _printf_(3, 4);

#define log_error(err, ...) log_full(LOG_LEVEL_ERROR, (err), __VA_ARGS__)
#define log_warning(err, ...) log_full(LOG_LEVEL_WARNING, (err), __VA_ARGS__)
#define log_notice(...) log_full(LOG_LEVEL_NOTICE, 0, __VA_ARGS__)
#define log_info(...) log_full(LOG_LEVEL_INFO, 0, __VA_ARGS__)
#define log_debug(...) log_full(LOG_LEVEL_DEBUG, 0, __VA_ARGS__)
