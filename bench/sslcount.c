/*
 * sslcount.so: a verification shim for bench/run (never used while timing).
 *
 * LD_PRELOADed (after libpcp_secure.so, if any) into pminfo or pmcd, it counts
 * calls to the OpenSSL entry points that carry a TLS session (SSL_new, the
 * handshake and the data path), forwards each call to the real libssl, and at
 * exit appends one line to the file named by $SSLCOUNT_OUT:
 *
 *   pid=P SSL_new=N SSL_connect=N SSL_accept=N SSL_do_handshake=N SSL_read=N SSL_write=N
 *
 * Stock libpcp must show non-zero counts (positive control); with the rustls
 * replacement doing the TLS they must all be zero.
 *
 * Build: cc -O2 -shared -fPIC bench/sslcount.c -o sslcount.so -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static unsigned long n_new, n_connect, n_accept, n_handshake, n_read, n_write;

static void *
next_sym(const char *name)
{
    void *p = dlsym(RTLD_NEXT, name);

    if (p == NULL) {
        fprintf(stderr, "sslcount: %s not found\n", name);
        abort();
    }
    return p;
}

void *
SSL_new(void *ctx)
{
    static void *(*real)(void *);

    if (real == NULL)
        real = (void *(*)(void *))next_sym("SSL_new");
    __atomic_add_fetch(&n_new, 1, __ATOMIC_RELAXED);
    return real(ctx);
}

#define COUNT1(name, counter)                                                   \
    int name(void *ssl)                                                         \
    {                                                                           \
        static int (*real)(void *);                                             \
        if (real == NULL)                                                       \
            real = (int (*)(void *))next_sym(#name);                            \
        __atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED);                      \
        return real(ssl);                                                       \
    }

COUNT1(SSL_connect, n_connect)
COUNT1(SSL_accept, n_accept)
COUNT1(SSL_do_handshake, n_handshake)

int
SSL_read(void *ssl, void *buf, int num)
{
    static int (*real)(void *, void *, int);

    if (real == NULL)
        real = (int (*)(void *, void *, int))next_sym("SSL_read");
    __atomic_add_fetch(&n_read, 1, __ATOMIC_RELAXED);
    return real(ssl, buf, num);
}

int
SSL_read_ex(void *ssl, void *buf, size_t num, size_t *got)
{
    static int (*real)(void *, void *, size_t, size_t *);

    if (real == NULL)
        real = (int (*)(void *, void *, size_t, size_t *))next_sym("SSL_read_ex");
    __atomic_add_fetch(&n_read, 1, __ATOMIC_RELAXED);
    return real(ssl, buf, num, got);
}

int
SSL_write(void *ssl, const void *buf, int num)
{
    static int (*real)(void *, const void *, int);

    if (real == NULL)
        real = (int (*)(void *, const void *, int))next_sym("SSL_write");
    __atomic_add_fetch(&n_write, 1, __ATOMIC_RELAXED);
    return real(ssl, buf, num);
}

int
SSL_write_ex(void *ssl, const void *buf, size_t num, size_t *written)
{
    static int (*real)(void *, const void *, size_t, size_t *);

    if (real == NULL)
        real = (int (*)(void *, const void *, size_t, size_t *))next_sym("SSL_write_ex");
    __atomic_add_fetch(&n_write, 1, __ATOMIC_RELAXED);
    return real(ssl, buf, num, written);
}

__attribute__((destructor)) static void
report(void)
{
    const char *path = getenv("SSLCOUNT_OUT");
    FILE *f;

    if (path == NULL || (f = fopen(path, "a")) == NULL)
        return;
    fprintf(f, "pid=%d SSL_new=%lu SSL_connect=%lu SSL_accept=%lu SSL_do_handshake=%lu SSL_read=%lu SSL_write=%lu\n",
            (int)getpid(), n_new, n_connect, n_accept, n_handshake, n_read, n_write);
    fclose(f);
}
