/*
 * A stand-in for libpcp's data path, preloaded *after* libpcp_secure by
 * tests/data_path.rs: each function marks what passes through it, so the
 * test can tell that libpcp_secure handed a descriptor it has no session
 * for to "libpcp" (the next definition) instead of calling send(2) itself.
 */
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

static ssize_t marked(int fd, const char *mark, const void *buf, size_t len)
{
    char out[256];
    size_t m = strlen(mark);
    if (len > sizeof(out) - m)
        len = sizeof(out) - m;
    memcpy(out, mark, m);
    memcpy(out + m, buf, len);
    return write(fd, out, m + len) < 0 ? -1 : (ssize_t)len;
}

ssize_t __pmSend(int fd, const void *buf, size_t len, int flags)
{
    (void)flags;
    return marked(fd, "next-send:", buf, len);
}

ssize_t __pmWrite(int fd, const void *buf, size_t len)
{
    return marked(fd, "next-write:", buf, len);
}

static ssize_t filled(void *buf, size_t len, const char *text)
{
    size_t n = strlen(text) < len ? strlen(text) : len;
    memcpy(buf, text, n);
    return (ssize_t)n;
}

ssize_t __pmRecv(int fd, void *buf, size_t len, int flags)
{
    (void)fd; (void)flags;
    return filled(buf, len, "from-next-recv");
}

ssize_t __pmRead(int fd, void *buf, size_t len)
{
    (void)fd;
    return filled(buf, len, "from-next-read");
}
