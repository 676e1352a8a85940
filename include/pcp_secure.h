/*
 * libpcp_secure: a rustls-based replacement for the TLS layer of
 * Performance Co-Pilot's libpcp (PCP 6 and 7 ABI).
 *
 * Link with `pkg-config --cflags --libs libpcp_secure`.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#ifndef PCP_SECURE_H
#define PCP_SECURE_H

/*
 * Generated from the library's list of exports (src/ffi/abi.rs); do not
 * edit. Regenerate with `make header`.
 */

#include <stddef.h>
#include <sys/types.h>
#include <sys/select.h>
#include <sys/time.h>

/**
 * libpcp's hash table of connection attributes; opaque here and passed on
 * unchanged to libpcp's SASL code.
 */
typedef struct __pmHashCtl __pmHashCtl;

/**
 * libpcp's parsed `tls.conf` (`__pmSecureConfig`); every field is a
 * NUL-terminated string or NULL.
 */
typedef struct __pmSecureConfig {
    char *cacertfile;     /* tls-ca-cert-file */
    char *cacertdir;      /* tls-ca-cert-dir */
    char *certfile;       /* tls-cert-file */
    char *keyfile;        /* tls-key-file */
    char *ciphers;        /* tls-ciphers (TLS 1.2) */
    char *ciphersuites;   /* tls-ciphersuites (TLS 1.3) */
    char *clientcertfile; /* tls-client-cert-file */
    char *clientkeyfile;  /* tls-client-key-file */
    char *clientverify;   /* tls-verify-clients */
} __pmSecureConfig;

#ifdef __cplusplus
extern "C" {
#endif

/**
 * Client side of the secure upgrade: reads the server's secure-ack status
 * (with `PDU_FLAG_SECURE_ACK`), runs a verified TLS handshake on `fd`
 * (with `PDU_FLAG_SECURE`), then hands SASL (`PDU_FLAG_AUTH`,
 * `PDU_FLAG_CREDS_REQD`) to libpcp. Returns 0 or a negative PCP error.
 *
 * # Safety
 * `hostname` is NULL or a NUL-terminated string; `attrs` is NULL or
 * libpcp's attribute table for this connection.
 */
int __pmSecureClientHandshake(int fd, int flags, const char *hostname, __pmHashCtl *attrs);

/**
 * HTTPS client connect (PCP 7.2 and later: pmlogger's and pmlogpush's
 * push to pmproxy): a verified TLS handshake with `hostname` on the
 * connected `fd`, with the same trust, host-name check, client
 * certificate and time bound as PCP connections. Afterwards `__pmSend` and
 * `__pmRecv` on `fd` go through TLS. Returns 0, `-EBADF`, `-EINVAL` (no
 * host name) or a negative PCP error after logging the host and reason;
 * a failed descriptor can carry no data.
 *
 * # Safety
 * `hostname` is NULL or a NUL-terminated string.
 */
int __pmSecureClientConnect(int fd, const char *hostname);

/**
 * Server side of the secure upgrade: validates the client's flags, sends
 * the secure-ack status before any TLS byte (non-zero, and no TLS, when
 * TLS cannot be done), and accepts TLS, requiring a client certificate
 * for `pmcd -Q`, `PDU_FLAG_CERT_REQD` or `tls-verify-clients = true`.
 * The handshake is only begun here and goes on as the client's bytes
 * arrive, through the `select` hook, unless SASL or a container
 * attribute follow at once: then it is waited for here (bounded), and
 * SASL is handed to libpcp. In a program whose server TLS is libpcp's
 * own (pmproxy), libpcp does it all.
 *
 * # Safety
 * `attrs` is NULL or libpcp's attribute table for this client.
 */
int __pmSecureServerHandshake(int fd, int flags, __pmHashCtl *attrs);

/**
 * Builds the server TLS context from pmcd's parsed `tls.conf`. Returns an
 * opaque handle, or NULL after logging which setting or file is at fault;
 * pmcd then goes on serving plain connections.
 *
 * A program that links libssl itself (pmproxy) uses the result as an
 * OpenSSL `SSL_CTX` with the `SSL_*` functions of [`super::ssl`]: its
 * HTTPS is then served by rustls. If it imports an `SSL_*` function
 * the library does not define, it gets libpcp's own context instead,
 * untouched, and its server TLS stays libpcp's.
 *
 * # Safety
 * `tls` is NULL or a valid `__pmSecureConfig` whose fields are NULL or
 * NUL-terminated strings.
 */
void *__pmSecureServerInit(__pmSecureConfig *tls);

/**
 * libpcp's `tls.conf` reader, extended: when the file sets `tls-nssdb`
 * but not `tls-cert-file`, `certfile` is set to the database (pmcd offers
 * TLS only when `certfile` is set), so that an unchanged pmcd serves TLS
 * from an NSS database (not in a program whose server TLS stays
 * libpcp's, see `__pmSecureServerInit`). Returns libpcp's result, or `-ENOSYS` when
 * libpcp is not loaded.
 *
 * # Safety
 * `config` is NULL or points to a writable `__pmSecureConfig`.
 */
int __pmGetSecureConfig(__pmSecureConfig *config);

/**
 * NSS-era server setup (PCP 5 signature): serve TLS with the certificate
 * "PCP Collector certificate" of NSS database `db` (NULL:
 * `sql:/etc/pki/nssdb`), unlocked with the password in `passwd_file`
 * (NULL: none). Returns 0, or a negative PCP error after logging why.
 *
 * # Safety
 * `db` and `passwd_file` are NULL or NUL-terminated strings.
 */
int __pmSecureServerSetup(const char *db, const char *passwd_file);

/**
 * NSS-era server setup (PCP 5 signature): like `__pmSecureServerSetup`,
 * with the certificate named by `nickname` (NULL: "PCP Collector
 * certificate").
 *
 * # Safety
 * `db`, `passwd_file` and `nickname` are NULL or NUL-terminated strings.
 */
int __pmSecureServerCertificateSetup(const char *db, const char *passwd_file, const char *nickname);

/**
 * Drops the server TLS context `ctx` (a handle from
 * `__pmSecureServerInit`; NULL or a foreign pointer is ignored) and, as
 * libpcp does, releases the strings of `tls` through libpcp's
 * `__pmFreeSecureConfig` (only when libpcp is loaded: it allocated them).
 * Where the server TLS is libpcp's, libpcp's own shutdown does it all.
 *
 * # Safety
 * `ctx` is compared, never dereferenced; `tls` is NULL or a configuration
 * filled by libpcp's `__pmGetSecureConfig`.
 */
void __pmSecureServerShutdown(void *ctx, __pmSecureConfig *tls);

/**
 * Answers the TLS features (secure: a server context exists; compress:
 * never; cert-required: `pmcd -Q` or `tls-verify-clients = true`) and
 * forwards every other feature to libpcp (all of them in a program whose
 * server TLS is libpcp's).
 *
 * # Safety
 * No pointers are involved.
 */
int __pmServerHasFeature(int query);

/**
 * Sends `length` bytes: through our TLS on a descriptor of ours, else
 * through libpcp's `__pmSend` (its own TLS or `send(2)`), else `send(2)`.
 *
 * # Safety
 * `buffer` is valid for reads of `length` bytes (or NULL with length 0).
 */
ssize_t __pmSend(int fd, const void *buffer, size_t length, int flags);

/**
 * Receives up to `length` bytes: from our TLS on a descriptor of ours,
 * else through libpcp's `__pmRecv`, else `recv(2)`. Returns 0 at end of
 * stream.
 *
 * # Safety
 * `buffer` is valid for writes of `length` bytes (or NULL with length 0).
 */
ssize_t __pmRecv(int fd, void *buffer, size_t length, int flags);

/**
 * Like `__pmRecv` without flags; other descriptors (pipes too) go to
 * libpcp's `__pmRead`, else `read(2)`.
 *
 * # Safety
 * `buffer` is valid for writes of `length` bytes (or NULL with length 0).
 */
ssize_t __pmRead(int fd, void *buffer, size_t length);

/**
 * Like `__pmSend` without flags; other descriptors (pipes too) go to
 * libpcp's `__pmWrite`, else `write(2)`.
 *
 * # Safety
 * `buffer` is valid for reads of `length` bytes (or NULL with length 0).
 */
ssize_t __pmWrite(int fd, const void *buffer, size_t length);

/**
 * Ends the descriptor's TLS session (close_notify, best effort), then lets
 * libpcp reset its IPC entry and close the descriptor (plain `close` when
 * libpcp is not loaded).
 *
 * # Safety
 * No pointers are involved.
 */
void __pmCloseSocket(int fd);

/**
 * True (1) when the last error (`errno`, or an errno that
 * `__pmSecureSocketsError(-errno)` shifted below `PM_ERR_NYI`) means the
 * peer or the network went away.
 *
 * # Safety
 * No pointers are involved.
 */
int __pmSocketClosed(void);

/**
 * Encodes a security-library error `code` below `PM_ERR_NYI`, leaves its
 * magnitude in `errno` and returns it.
 *
 * # Safety
 * No pointers are involved.
 */
int __pmSecureSocketsError(int code);

/**
 * libc's `select`, except that descriptors whose TLS session holds
 * decrypted but unread data are reported readable at once. After an
 * internal error it is libc's `select`, unchanged.
 *
 * # Safety
 * Same contract as `select(2)`.
 */
int select(int nfds, fd_set *readfds, fd_set *writefds, fd_set *exceptfds, struct timeval *timeout);

/**
 * The library's version, the rustls version it was built with and its
 * crypto module, for example "libpcp_secure 1.1.0 (rustls 0.23.46,
 * aws-lc-rs 1.19.0)", or "libpcp_secure 1.1.0 (rustls 0.23.46,
 * aws-lc-rs 1.19.0, FIPS 140-3 module aws-lc-fips-sys 0.14.4)" for the
 * FIPS build. Never NULL.
 *
 * # Safety
 * No pointers are involved; the result is a static string.
 */
const char *pcp_secure_version(void);

/**
 * Describes `fd`'s TLS session ("TLSv1_3 TLS13_AES_256_GCM_SHA384
 * X25519MLKEM768": version, suite, key-exchange group) into
 * `buf` (NUL-terminated, truncated to `buflen`). Returns 1 for a TLS
 * descriptor, 0 for a plain one, `-EINVAL` for a bad buffer.
 *
 * # Safety
 * `buf` is NULL (with `buflen` 0) or valid for writes of `buflen` bytes.
 */
int pcp_secure_session_info(int fd, char *buf, size_t buflen);

#ifdef __cplusplus
}  /* extern "C" */
#endif

#endif  /* PCP_SECURE_H */
