/* fileio.c - small-file reads for sysfs and procfs (see fileio.h). */
#include "fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "macro.h"
#include "parse.h"

int open_ro(const char *path)
{
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        return fd < 0 ? negative_errno() : fd;
}

int read_text_fd(int fd, char *buf, size_t size)
{
        if (size < 2)
                return -EINVAL;
        ssize_t n;
        do
                n = pread(fd, buf, size, 0);
        while (n < 0 && errno == EINTR);
        if (n < 0)
                return negative_errno();
        if (n == 0)
                return -ENODATA;
        if ((size_t)n >= size)
                return -EFBIG;
        buf[n] = '\0';
        if (memchr(buf, '\0', (size_t)n))
                return -EINVAL; /* binary garbage */
        return (int)n;
}

int read_text_path(const char *path, char *buf, size_t size)
{
        _cleanup_close_ int fd = open_ro(path);
        if (fd < 0)
                return fd;
        return read_text_fd(fd, buf, size);
}

int read_u64_fd(int fd, uint64_t *ret)
{
        char buf[64];
        int r = read_text_fd(fd, buf, sizeof(buf));
        if (r < 0)
                return r == -EFBIG ? -EINVAL : r;
        if (strchr(buf, '-'))
                return -ERANGE; /* negative where none is valid */
        return parse_u64(buf, ret);
}

int read_u64_path(const char *path, uint64_t *ret)
{
        _cleanup_close_ int fd = open_ro(path);
        if (fd < 0)
                return fd;
        return read_u64_fd(fd, ret);
}

int read_i64_path(const char *path, int64_t *ret)
{
        char buf[64];
        int r = read_text_path(path, buf, sizeof(buf));
        if (r < 0)
                return r == -EFBIG ? -EINVAL : r;
        return parse_i64(buf, ret);
}

int read_line_path(const char *path, char *buf, size_t size)
{
        int r = read_text_path(path, buf, size);
        if (r < 0)
                return r;
        char *nl = strchr(buf, '\n');
        if (nl)
                *nl = '\0';
        strip_trailing(buf);
        return (int)strlen(buf);
}

int write_text_path(const char *path, const char *text)
{
        _cleanup_close_ int fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
        if (fd < 0)
                return negative_errno();
        size_t len = strlen(text);
        ssize_t n = write(fd, text, len);
        if (n < 0)
                return negative_errno();
        return (size_t)n == len ? 0 : -EIO;
}
