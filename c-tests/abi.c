/*
 * abi: include/pcp_secure.h declares the PCP 6.0.3 signatures and layout.
 *
 *   abi
 *
 * Each export is assigned to a function pointer of the exact PCP 6 type
 * (compiled with -Werror, a mismatch does not build), __pmSecureConfig must
 * be nine char pointers in libpcp's order, and every symbol must resolve
 * to the library at run time.
 */
#include "common.h"

#include <dlfcn.h>
#include <libgen.h>
#include <stddef.h>

/* the prototypes as PCP 6.0.3's <pcp/libpcp.h> and libc declare them */
typedef int (*client_handshake_t)(int, int, const char *, __pmHashCtl *);
typedef int (*server_handshake_t)(int, int, __pmHashCtl *);
typedef void *(*server_init_t)(__pmSecureConfig *);
typedef void (*server_shutdown_t)(void *, __pmSecureConfig *);
typedef int (*has_feature_t)(int);
typedef ssize_t (*send_t)(int, const void *, size_t, int);
typedef ssize_t (*recv_t)(int, void *, size_t, int);
typedef ssize_t (*read_t)(int, void *, size_t);
typedef ssize_t (*write_t)(int, const void *, size_t);
typedef void (*close_socket_t)(int);
typedef int (*socket_closed_t)(void);
typedef int (*sockets_error_t)(int);
typedef int (*select_t)(int, fd_set *, fd_set *, fd_set *, struct timeval *);
typedef const char *(*version_t)(void);
/* PCP 5 (NSS-era) signatures */
typedef int (*server_setup_t)(const char *, const char *);
typedef int (*certificate_setup_t)(const char *, const char *, const char *);
typedef int (*get_secure_config_t)(__pmSecureConfig *);
typedef int (*session_info_t)(int, char *, size_t);

#define FIELD_AT(f, i) (offsetof(__pmSecureConfig, f) == (i) * sizeof(char *))

_Static_assert(sizeof(__pmSecureConfig) == 9 * sizeof(char *), "__pmSecureConfig is nine pointers");
_Static_assert(FIELD_AT(cacertfile, 0) && FIELD_AT(cacertdir, 1) && FIELD_AT(certfile, 2) && FIELD_AT(keyfile, 3) &&
                   FIELD_AT(ciphers, 4) && FIELD_AT(ciphersuites, 5) && FIELD_AT(clientcertfile, 6) &&
                   FIELD_AT(clientkeyfile, 7) && FIELD_AT(clientverify, 8),
               "__pmSecureConfig fields in libpcp's order");

int main(int argc, char **argv)
{
    struct {
        const char *name;
        void (*fn)(void);
    } exports[] = {
#define EXPORT(type, sym) {#sym, (void (*)(void))(type)sym}
        EXPORT(client_handshake_t, __pmSecureClientHandshake),
        EXPORT(server_handshake_t, __pmSecureServerHandshake),
        EXPORT(server_init_t, __pmSecureServerInit),
        EXPORT(server_shutdown_t, __pmSecureServerShutdown),
        EXPORT(has_feature_t, __pmServerHasFeature),
        EXPORT(send_t, __pmSend),
        EXPORT(recv_t, __pmRecv),
        EXPORT(read_t, __pmRead),
        EXPORT(write_t, __pmWrite),
        EXPORT(close_socket_t, __pmCloseSocket),
        EXPORT(socket_closed_t, __pmSocketClosed),
        EXPORT(sockets_error_t, __pmSecureSocketsError),
        EXPORT(select_t, select),
        EXPORT(server_setup_t, __pmSecureServerSetup),
        EXPORT(certificate_setup_t, __pmSecureServerCertificateSetup),
        EXPORT(get_secure_config_t, __pmGetSecureConfig),
        EXPORT(version_t, pcp_secure_version),
        EXPORT(session_info_t, pcp_secure_session_info),
#undef EXPORT
    };
    /* exact-type assignments: with -Werror any mismatch fails the build */
    client_handshake_t a = __pmSecureClientHandshake;
    server_handshake_t b = __pmSecureServerHandshake;
    server_init_t c = __pmSecureServerInit;
    server_shutdown_t d = __pmSecureServerShutdown;
    send_t e = __pmSend;
    recv_t f = __pmRecv;
    select_t g = select;
    session_info_t h = pcp_secure_session_info;
    server_setup_t s5 = __pmSecureServerSetup;
    certificate_setup_t c5 = __pmSecureServerCertificateSetup;
    get_secure_config_t gc = __pmGetSecureConfig;
    size_t i;
    Dl_info info;

    (void)argc;
    t_init(basename(argv[0]));
    check(a && b && c && d && e && f && g && h && gc, "the exports have PCP 6.0.3's C types");
    check(s5 && c5, "__pmSecureServerSetup and __pmSecureServerCertificateSetup have PCP 5's C types");
    for (i = 0; i < sizeof(exports) / sizeof(exports[0]); i++) {
        int found = dladdr((void *)exports[i].fn, &info) != 0 && info.dli_fname != NULL;
        check(found && strstr(info.dli_fname, "libpcp_secure") != NULL, "%s resolves to %s", exports[i].name,
              found ? info.dli_fname : "(nothing)");
    }
    check(__pmServerHasFeature(T_FEATURE_SECURE) == 0, "__pmServerHasFeature(SECURE) = 0 without a server context");
    check(__pmSecureServerInit(NULL) == NULL, "__pmSecureServerInit(NULL) = NULL");
    /* without libpcp loaded there is no tls.conf reader to extend */
    check(__pmGetSecureConfig(NULL) == -ENOSYS, "__pmGetSecureConfig without libpcp = -ENOSYS");
    return t_summary();
}
