/* log.c - stderr logging with a program prefix and "<N>" syslog level prefixes when stderr is the journal. */
#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *prog = "joule";
static int max_level = LOG_LEVEL_NOTICE;
static int journal = -1;

void log_setup(const char *program_name, int level)
{
        prog = program_name;
        max_level = level;
        const char *e = getenv("JOULE_LOG_LEVEL");
        if (e && *e >= '0' && *e <= '7' && e[1] == '\0')
                max_level = *e - '0';
}

int log_get_max_level(void)
{
        return max_level;
}

int log_full(int level, int err, const char *fmt, ...)
{
        int ret = err == 0 ? -EIO : (err < 0 ? err : -err);
        if (level > max_level)
                return ret;
        if (journal < 0)
                journal = getenv("JOURNAL_STREAM") != NULL;
        char msg[2048];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        if (journal)
                fprintf(stderr, "<%d>%s\n", level, msg);
        else
                fprintf(stderr, "%s: %s\n", prog, msg);
        return ret;
}
