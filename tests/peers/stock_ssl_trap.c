/*
 * stock_ssl_trap.so: preloaded after libpcp_secure.so (or alone, as the
 * control), it notes every call that reaches libssl's own server-side TLS
 * entry points: it appends "NAME\n" to the file named by $SSL_TRAP_OUT at
 * once (so nothing depends on the program exiting cleanly), then calls
 * libssl's definition.
 *
 * With libpcp_secure serving pmproxy's HTTPS the file must stay empty; with
 * stock pmproxy it must not.
 *
 * Build: cc -O2 -shared -fPIC stock_ssl_trap.c -o stock_ssl_trap.so -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void
note(const char *name)
{
    const char *path = getenv("SSL_TRAP_OUT");
    int fd;

    if (path == NULL || (fd = open(path, O_WRONLY | O_APPEND | O_CREAT, 0644)) < 0)
        return;
    if (write(fd, name, strlen(name)) < 0 || write(fd, "\n", 1) < 0) {
        /* nothing else to do: the trap is a witness, not a participant */
    }
    close(fd);
}

static void *
next_sym(const char *name)
{
    void *p = dlsym(RTLD_NEXT, name);

    if (p == NULL)
        abort();
    return p;
}

void *
SSL_new(void *ctx)
{
    note("SSL_new");
    return ((void *(*)(void *))next_sym("SSL_new"))(ctx);
}

int
SSL_read_ex(void *ssl, void *buf, size_t num, size_t *got)
{
    note("SSL_read_ex");
    return ((int (*)(void *, void *, size_t, size_t *))next_sym("SSL_read_ex"))(ssl, buf, num, got);
}

int
SSL_write(void *ssl, const void *buf, int num)
{
    note("SSL_write");
    return ((int (*)(void *, const void *, int))next_sym("SSL_write"))(ssl, buf, num);
}

int
SSL_do_handshake(void *ssl)
{
    note("SSL_do_handshake");
    return ((int (*)(void *))next_sym("SSL_do_handshake"))(ssl);
}

void *
SSL_CTX_new(const void *method)
{
    note("SSL_CTX_new");
    return ((void *(*)(const void *))next_sym("SSL_CTX_new"))(method);
}
