/*
 * Shared helpers of the libpcp_secure C tests: result counting, loopback
 * sockets, PDU-shaped messages carried with __pmSend/__pmRecv and select(),
 * and a client tls.conf written to a temporary file.
 *
 * Each program prints one "ok - ..." or "FAIL - ..." line per check and
 * ends with "NAME: N passed, N failed"; it exits 0 only when nothing failed.
 */
#ifndef PCP_SECURE_CTEST_COMMON_H
#define PCP_SECURE_CTEST_COMMON_H

#define _GNU_SOURCE 1
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <pcp_secure.h>

/* not every program uses every helper */
#pragma GCC diagnostic ignored "-Wunused-function"

/* PCP values the tests use (pcp/libpcp.h, pcp/pmapi.h); not in pcp_secure.h */
#define T_PDU_FLAG_SECURE 0x1
#define T_PDU_FLAG_SECURE_ACK 0x10
#define T_PDU_FLAG_CERT_REQD 0x80
#define T_PDU_ERROR 0x7000
#define T_FEATURE_SECURE 0
#define T_FEATURE_CERT_REQD 9
#define T_PM_ERR_TIMEOUT (-12353)
#define T_PM_ERR_IPC (-12366)
#define T_PM_ERR_NEEDCLIENTCERT (-12408)
#define T_PM_ERR_TLS (-12414)

/* message types of the tests' own little protocol (PDU-shaped) */
#define MSG_ECHO 0x7101  /* server sends the same message back */
#define MSG_BURST 0x7102 /* server answers with `from` small messages at once */
#define MSG_SMALL 0x7103 /* one message of a burst */
#define MSG_BYE 0x7104   /* client is done; server expects end of stream next */

#define HDR_LEN 12
#define SMALL_LEN 16
#define MAX_MSG (256 * 1024)

static const char *t_prog = "test";
static int t_passed, t_failed;

static void t_init(const char *prog)
{
    t_prog = prog;
    setvbuf(stdout, NULL, _IOLBF, 0);
    setvbuf(stderr, NULL, _IOLBF, 0);
}

static void check(int ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void check(int ok, const char *fmt, ...)
{
    va_list ap;
    if (ok)
        t_passed++;
    else
        t_failed++;
    printf("%s%s: ", ok ? "ok - " : "FAIL - ", t_prog);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
}

static void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void note(const char *fmt, ...)
{
    va_list ap;
    printf("# %s: ", t_prog);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
}

/* The closing line; returns the exit status. */
static int t_summary(void)
{
    printf("%s: %d passed, %d failed\n", t_prog, t_passed, t_failed);
    fflush(stdout);
    return t_failed == 0 && t_passed > 0 ? 0 : 1;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
    printf("FAIL - %s: %s: %s\n", t_prog, what, strerror(errno));
    printf("%s: %d passed, %d failed\n", t_prog, t_passed, t_failed + 1);
    fflush(stdout);
    _exit(1);
}

/* A listening TCP socket on 127.0.0.1 with a kernel-chosen port. */
static int listen_loopback(int *port)
{
    struct sockaddr_in sin;
    socklen_t len = sizeof(sin);
    int one = 1;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        die("socket");
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sin.sin_port = 0;
    if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0)
        die("bind 127.0.0.1:0");
    if (listen(fd, 8) < 0)
        die("listen");
    if (getsockname(fd, (struct sockaddr *)&sin, &len) < 0)
        die("getsockname");
    *port = ntohs(sin.sin_port);
    return fd;
}

static int connect_loopback(int port)
{
    struct sockaddr_in sin;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        die("socket");
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sin.sin_port = htons((uint16_t)port);
    if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0)
        die("connect to 127.0.0.1");
    return fd;
}

static int accept_one(int lfd)
{
    int fd;
    do
        fd = accept(lfd, NULL, NULL);
    while (fd < 0 && errno == EINTR);
    if (fd < 0)
        die("accept");
    return fd;
}

/* Waits with the library's select() until fd is readable: 1, 0 on time-out. */
static int wait_readable(int fd, double seconds)
{
    fd_set rfds;
    struct timeval tv;
    int n;
    do {
        FD_ZERO(&rfds);
        FD_SET(fd, &rfds);
        tv.tv_sec = (time_t)seconds;
        tv.tv_usec = (suseconds_t)((seconds - (double)tv.tv_sec) * 1e6);
        n = select(fd + 1, &rfds, NULL, NULL, &tv);
    } while (n < 0 && errno == EINTR);
    if (n < 0)
        return -1;
    return n > 0 && FD_ISSET(fd, &rfds);
}

/* Bytes waiting in the kernel's receive queue (not counting TLS buffers). */
static int kernel_pending(int fd)
{
    int n = -1;
    if (ioctl(fd, FIONREAD, &n) < 0)
        return -1;
    return n;
}

/* Reads exactly len bytes the way libpcp's pduread() does: select(), then
 * __pmRecv() until the bytes are there. Returns len, 0 at end of stream
 * before any byte, or a negative error (-errno for system errors). */
static ssize_t recv_full(int fd, void *buf, size_t len, double timeout)
{
    size_t have = 0;
    while (have < len) {
        ssize_t n;
        int r = wait_readable(fd, timeout);
        if (r < 0)
            return -errno;
        if (r == 0)
            return T_PM_ERR_TIMEOUT;
        n = __pmRecv(fd, (char *)buf + have, len - have, 0);
        if (n < 0)
            return n == -1 ? -errno : n;
        if (n == 0)
            return have == 0 ? 0 : -EPIPE;
        have += (size_t)n;
    }
    return (ssize_t)len;
}

static ssize_t send_full(int fd, const void *buf, size_t len)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = __pmSend(fd, (const char *)buf + done, len - done, 0);
        if (n < 0)
            return n == -1 ? -errno : n;
        if (n == 0)
            return -EIO;
        done += (size_t)n;
    }
    return (ssize_t)len;
}

static void put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static uint32_t get32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* A PDU-shaped message: len, type, from (big-endian) and a payload whose
 * bytes are derived from `seed`, so that any corruption is visible. */
static void make_msg(unsigned char *buf, size_t len, uint32_t type, uint32_t from, unsigned seed)
{
    size_t i;
    put32(buf, (uint32_t)len);
    put32(buf + 4, type);
    put32(buf + 8, from);
    for (i = HDR_LEN; i < len; i++)
        buf[i] = (unsigned char)((i * 131u + seed * 7u + (i >> 8)) & 0xff);
}

/* Checks a message built by make_msg; returns 1 when it matches. */
static int msg_ok(const unsigned char *buf, size_t len, uint32_t type, uint32_t from, unsigned seed)
{
    unsigned char *want = malloc(len);
    int ok;
    if (want == NULL)
        return 0;
    make_msg(want, len, type, from, seed);
    ok = memcmp(want, buf, len) == 0;
    free(want);
    return ok;
}

/* Receives one message into buf (at least MAX_MSG bytes); returns its length
 * or <= 0 as recv_full does, or T_PM_ERR_IPC for a bad length. */
static ssize_t recv_msg(int fd, unsigned char *buf, double timeout)
{
    ssize_t n = recv_full(fd, buf, HDR_LEN, timeout);
    uint32_t len;
    if (n <= 0)
        return n;
    len = get32(buf);
    if (len < HDR_LEN || len > MAX_MSG)
        return T_PM_ERR_IPC;
    if (len > HDR_LEN) {
        n = recv_full(fd, buf + HDR_LEN, len - HDR_LEN, timeout);
        if (n <= 0)
            return n < 0 ? n : -EPIPE;
    }
    return (ssize_t)len;
}

/* Writes a client tls.conf trusting `ca` (and optionally presenting a
 * client certificate) and points PCP_TLSCONF_PATH at it. The returned path
 * is to be unlinked by the caller. */
static char *client_tlsconf(const char *ca, const char *cert, const char *key)
{
    static char path[64];
    FILE *f;
    int fd;
    strcpy(path, "/tmp/pcp_secure_ctest_XXXXXX");
    fd = mkstemp(path);
    if (fd < 0 || (f = fdopen(fd, "w")) == NULL)
        die("mkstemp tls.conf");
    fprintf(f, "# client tls.conf written by the libpcp_secure C tests\n");
    fprintf(f, "tls-ca-cert-file = %s\n", ca);
    if (cert != NULL && key != NULL) {
        fprintf(f, "tls-client-cert-file = %s\n", cert);
        fprintf(f, "tls-client-key-file = %s\n", key);
    }
    fclose(f);
    if (setenv("PCP_TLSCONF_PATH", path, 1) < 0)
        die("setenv");
    return path;
}

/* A server configuration naming the given files (others NULL). */
static __pmSecureConfig server_config(const char *cert, const char *key, const char *ca)
{
    __pmSecureConfig tls;
    memset(&tls, 0, sizeof(tls));
    tls.certfile = (char *)cert;
    tls.keyfile = (char *)key;
    tls.cacertfile = (char *)ca;
    return tls;
}

/* Waits for a child; returns its exit status, or 128+signal. */
static int wait_child(pid_t pid)
{
    int status;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR)
            return -1;
    }
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return -1;
}

static int fd_is_open(int fd)
{
    return fcntl(fd, F_GETFD) != -1 || errno != EBADF;
}

#endif /* PCP_SECURE_CTEST_COMMON_H */
