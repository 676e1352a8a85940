//! The C ABI: libpcp's secure-socket entry points with PCP 6 signatures,
//! libc's `select`, and two functions of our own. Every export runs its body
//! through [`entry!`], the one panic boundary: no panic or unwinding crosses
//! into C, and failures come back as libpcp's negative `PM_ERR_*` or `-errno`
//! values. Pointers from C are checked before use.

#![allow(non_snake_case, non_camel_case_types)]

use std::ffi::{c_char, c_int, c_void, CStr};
use std::sync::Arc;

use libc::{size_t, ssize_t};

use crate::config::{self, TlsConf};
use crate::error::Error;
use crate::store::{store, ServerContext};
use crate::{handshake, io, log, next, pcp, session::table};

/// Runs an export's body, turning a panic into the given failure value.
/// Every `extern "C"` function of this crate starts with it.
macro_rules! entry {
    ($on_panic:expr, $body:block) => {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| $body)) {
            Ok(value) => value,
            Err(_) => {
                crate::log::error!(
                    "internal error in {}; the call failed safely",
                    module_path!()
                );
                $on_panic
            }
        }
    };
}

/// libpcp's parsed `tls.conf` (PCP 6 `__pmSecureConfig`); every field is a
/// NUL-terminated string or NULL.
#[repr(C)]
pub struct __pmSecureConfig {
    /// `tls-ca-cert-file`
    pub cacertfile: *mut c_char,
    /// `tls-ca-cert-dir`
    pub cacertdir: *mut c_char,
    /// `tls-cert-file`
    pub certfile: *mut c_char,
    /// `tls-key-file`
    pub keyfile: *mut c_char,
    /// `tls-ciphers` (TLS 1.2)
    pub ciphers: *mut c_char,
    /// `tls-ciphersuites` (TLS 1.3)
    pub ciphersuites: *mut c_char,
    /// `tls-client-cert-file`
    pub clientcertfile: *mut c_char,
    /// `tls-client-key-file`
    pub clientkeyfile: *mut c_char,
    /// `tls-verify-clients`
    pub clientverify: *mut c_char,
}

/// libpcp's hash table of connection attributes; opaque here and passed on
/// unchanged to libpcp's SASL code.
pub struct __pmHashCtl {
    _opaque: [u8; 0],
}

/// Reads an optional C string; NULL gives `None`.
///
/// # Safety
/// `p` is NULL or points to a NUL-terminated string.
unsafe fn opt_str(p: *const c_char) -> Option<String> {
    (!p.is_null()).then(|| CStr::from_ptr(p).to_string_lossy().into_owned())
}

fn set_errno(value: c_int) {
    // SAFETY: __errno_location always returns this thread's errno slot.
    unsafe { *libc::__errno_location() = value };
}

fn failure(e: &Error) -> c_int {
    set_errno(e.errno());
    e.code()
}

/// Client side of the secure upgrade: reads the server's secure-ack status
/// (with `PDU_FLAG_SECURE_ACK`), runs a verified TLS handshake on `fd`
/// (with `PDU_FLAG_SECURE`), then hands SASL (`PDU_FLAG_AUTH`,
/// `PDU_FLAG_CREDS_REQD`) to libpcp. Returns 0 or a negative PCP error.
///
/// # Safety
/// `hostname` is NULL or a NUL-terminated string; `attrs` is NULL or
/// libpcp's attribute table for this connection.
#[no_mangle]
pub unsafe extern "C" fn __pmSecureClientHandshake(
    fd: c_int,
    flags: c_int,
    hostname: *const c_char,
    attrs: *mut __pmHashCtl,
) -> c_int {
    entry!(pcp::PM_ERR_TLS, {
        if fd < 0 {
            return -libc::EBADF;
        }
        if flags & pcp::PDU_FLAG_SECURE == 0 {
            return match next::client_handshake() {
                Some(f) => f(fd, flags, hostname, attrs.cast()),
                None if flags
                    & (pcp::PDU_FLAG_AUTH | pcp::PDU_FLAG_CREDS_REQD | pcp::PDU_FLAG_COMPRESS)
                    != 0 =>
                {
                    -libc::EOPNOTSUPP
                }
                None => 0,
            };
        }
        if flags & pcp::PDU_FLAG_COMPRESS != 0 {
            return -libc::EOPNOTSUPP;
        }
        let host = opt_str(hostname);
        if let Err(e) = handshake::client(fd, flags, host.as_deref()) {
            return failure(&e);
        }
        sasl(flags, |rest| {
            next::client_handshake().map(|f| f(fd, rest, hostname, attrs.cast()))
        })
    })
}

/// HTTPS client connect (PCP 7.2 and later: pmlogger's and pmlogpush's
/// push to pmproxy): a verified TLS handshake with `hostname` on the
/// connected `fd`, with the same trust, host-name check, client
/// certificate and time bound as PCP connections. Afterwards `__pmSend` and
/// `__pmRecv` on `fd` go through TLS. Returns 0, `-EBADF`, `-EINVAL` (no
/// host name) or a negative PCP error after logging the host and reason;
/// a failed descriptor can carry no data.
///
/// # Safety
/// `hostname` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn __pmSecureClientConnect(fd: c_int, hostname: *const c_char) -> c_int {
    entry!(pcp::PM_ERR_TLS, {
        if fd < 0 {
            return -libc::EBADF;
        }
        let Some(host) = opt_str(hostname) else {
            return -libc::EINVAL;
        };
        match handshake::https_client(fd, &host) {
            Ok(()) => 0,
            Err(e) => failure(&e),
        }
    })
}

/// Server side of the secure upgrade: validates the client's flags, sends
/// the secure-ack status before any TLS byte (non-zero, and no TLS, when
/// TLS cannot be done), accepts TLS with a bounded handshake, requiring a
/// client certificate for `pmcd -Q`, `PDU_FLAG_CERT_REQD` or
/// `tls-verify-clients = true`, then hands SASL to libpcp.
///
/// # Safety
/// `attrs` is NULL or libpcp's attribute table for this client.
#[no_mangle]
pub unsafe extern "C" fn __pmSecureServerHandshake(
    fd: c_int,
    flags: c_int,
    attrs: *mut __pmHashCtl,
) -> c_int {
    entry!(pcp::PM_ERR_TLS, {
        if fd < 0 {
            return -libc::EBADF;
        }
        if flags & !pcp::SERVER_HANDSHAKE_FLAGS != 0 {
            log::warning!("fd {fd}: client sent unknown connection flags {flags:#x}; refused");
            return pcp::PM_ERR_IPC;
        }
        if flags & pcp::PDU_FLAG_SECURE == 0 || store().server_left_to_libpcp() {
            return match next::server_handshake() {
                Some(f) => f(fd, flags, attrs.cast()),
                None if flags & (pcp::PDU_FLAG_AUTH | pcp::PDU_FLAG_CREDS_REQD) != 0 => {
                    -libc::EOPNOTSUPP
                }
                None => 0,
            };
        }
        let require = flags & pcp::PDU_FLAG_CERT_REQD != 0 || cert_required_by_server();
        if let Err(e) = handshake::server(fd, flags, require) {
            return failure(&e);
        }
        sasl(flags, |rest| {
            next::server_handshake().map(|f| f(fd, rest, attrs.cast()))
        })
    })
}

/// Hands what is left of a handshake (SASL) to libpcp once TLS is up.
fn sasl(flags: c_int, call: impl FnOnce(c_int) -> Option<c_int>) -> c_int {
    if flags & (pcp::PDU_FLAG_AUTH | pcp::PDU_FLAG_CREDS_REQD) == 0 {
        return 0;
    }
    match call(flags & !pcp::TLS_FLAGS) {
        Some(status) => status,
        None => {
            log::error!("SASL authentication was requested but libpcp is not loaded to perform it");
            -libc::EOPNOTSUPP
        }
    }
}

/// True when pmcd was started with `-Q` (libpcp's feature bit) or
/// `tls-verify-clients = true` is configured.
fn cert_required_by_server() -> bool {
    // SAFETY: the next definition has the documented signature.
    let by_flag = next::has_feature().is_some_and(|f| unsafe { f(pcp::FEATURE_CERT_REQD) } != 0);
    by_flag || store().server().is_some_and(|s| s.verify_clients())
}

/// Builds the server TLS context from pmcd's parsed `tls.conf`. Returns an
/// opaque handle, or NULL after logging which setting or file is at fault;
/// pmcd then goes on serving plain connections.
///
/// A program that links libssl itself (pmproxy) uses the result as an
/// OpenSSL `SSL_CTX`: it gets libpcp's own context instead, untouched, and
/// its server TLS stays libpcp's (see [`crate::program`]).
///
/// # Safety
/// `tls` is NULL or a valid `__pmSecureConfig` whose fields are NULL or
/// NUL-terminated strings.
#[no_mangle]
pub unsafe extern "C" fn __pmSecureServerInit(tls: *mut __pmSecureConfig) -> *mut c_void {
    entry!(std::ptr::null_mut(), {
        if crate::program::links_openssl() {
            store().leave_server_to_libpcp();
            let Some(libpcp) = next::server_init() else {
                log::error!("this program uses OpenSSL for its TLS server but libpcp's __pmSecureServerInit is not loaded; TLS is off");
                return std::ptr::null_mut();
            };
            log::info!(
                "{}: this program serves TLS with OpenSSL itself (pmproxy's HTTPS), so its server TLS is left to libpcp; its connections to pmcd use the library's verified TLS",
                version_str()
            );
            return libpcp(tls.cast());
        }
        let Some(cfg) = tls.as_ref() else {
            log::error!("no TLS configuration given to the server; serving plain connections only");
            return std::ptr::null_mut();
        };
        let conf = server_conf(cfg);
        match ServerContext::build(&conf) {
            Ok(ctx) => {
                let ctx = store().set_server(ctx);
                log::info!(
                    "{} serving TLS 1.2/1.3 with {}",
                    version_str(),
                    identity_source(&conf)
                );
                Arc::as_ptr(&ctx) as *mut c_void
            }
            Err(e) => {
                log::error!("{e}; TLS is off, serving plain connections only");
                std::ptr::null_mut()
            }
        }
    })
}

/// The server settings: pmcd's parsed `tls.conf` plus our own keys from the
/// same file (which libpcp's parser skips). A `tls-cert-file` that is only
/// the placeholder [`__pmGetSecureConfig`] put there for `tls-nssdb` is
/// dropped again.
///
/// # Safety
/// The fields of `cfg` are NULL or NUL-terminated strings.
unsafe fn server_conf(cfg: &__pmSecureConfig) -> TlsConf {
    let own = own_settings();
    let mut cert_file = opt_str(cfg.certfile);
    if own.nssdb.is_some() && cert_file == own.nssdb {
        cert_file = None;
    }
    TlsConf {
        ca_cert_file: opt_str(cfg.cacertfile),
        ca_cert_dir: opt_str(cfg.cacertdir),
        cert_file,
        key_file: opt_str(cfg.keyfile),
        ciphers: opt_str(cfg.ciphers),
        ciphersuites: opt_str(cfg.ciphersuites),
        client_cert_file: opt_str(cfg.clientcertfile),
        client_key_file: opt_str(cfg.clientkeyfile),
        verify_clients: opt_str(cfg.clientverify),
        ..own
    }
}

/// This process's `tls.conf` as we parse it (all keys, ours included);
/// empty when there is none.
fn own_settings() -> TlsConf {
    config::tls_conf_path()
        .and_then(|p| TlsConf::load(&p).ok())
        .unwrap_or_default()
}

/// Where the server's certificate comes from, for the log.
fn identity_source(conf: &TlsConf) -> String {
    match (&conf.nssdb, &conf.cert_file) {
        (Some(db), _) => format!(
            "certificate \"{}\" of NSS database \"{db}\"",
            conf.cert_nickname
                .as_deref()
                .unwrap_or(config::DEFAULT_NICKNAME)
        ),
        (None, Some(file)) => format!("certificate \"{file}\""),
        (None, None) => "no certificate".into(),
    }
}

/// libpcp's `tls.conf` reader, extended: when the file sets `tls-nssdb`
/// but not `tls-cert-file`, `certfile` is set to the database (pmcd offers
/// TLS only when `certfile` is set), so that an unchanged pmcd serves TLS
/// from an NSS database (not in a program that links libssl itself, whose
/// server TLS stays libpcp's). Returns libpcp's result, or `-ENOSYS` when libpcp
/// is not loaded.
///
/// # Safety
/// `config` is NULL or points to a writable `__pmSecureConfig`.
#[no_mangle]
pub unsafe extern "C" fn __pmGetSecureConfig(config: *mut __pmSecureConfig) -> c_int {
    entry!(-libc::EINVAL, {
        let Some(libpcp) = next::get_secure_config() else {
            log::error!("libpcp's __pmGetSecureConfig is not loaded; tls.conf is not read");
            return -libc::ENOSYS;
        };
        let sts = libpcp(config.cast());
        let Some(cfg) = config.as_mut() else {
            return sts;
        };
        // A program whose server TLS stays libpcp's must see tls.conf as
        // libpcp does (OpenSSL cannot read an NSS database).
        if sts == 0 && cfg.certfile.is_null() && !crate::program::links_openssl() {
            if let Some(db) = own_settings().nssdb {
                if let Ok(db) = std::ffi::CString::new(db) {
                    // libpcp frees the field with free(): allocate it with malloc.
                    cfg.certfile = libc::strdup(db.as_ptr());
                }
            }
        }
        sts
    })
}

/// NSS-era server setup (PCP 5 signature): serve TLS with the certificate
/// "PCP Collector certificate" of NSS database `db` (NULL:
/// `sql:/etc/pki/nssdb`), unlocked with the password in `passwd_file`
/// (NULL: none). Returns 0, or a negative PCP error after logging why.
///
/// # Safety
/// `db` and `passwd_file` are NULL or NUL-terminated strings.
#[no_mangle]
pub unsafe extern "C" fn __pmSecureServerSetup(
    db: *const c_char,
    passwd_file: *const c_char,
) -> c_int {
    entry!(pcp::PM_ERR_TLS, {
        setup_from_nssdb(opt_str(db), opt_str(passwd_file), None)
    })
}

/// NSS-era server setup (PCP 5 signature): like `__pmSecureServerSetup`,
/// with the certificate named by `nickname` (NULL: "PCP Collector
/// certificate").
///
/// # Safety
/// `db`, `passwd_file` and `nickname` are NULL or NUL-terminated strings.
#[no_mangle]
pub unsafe extern "C" fn __pmSecureServerCertificateSetup(
    db: *const c_char,
    passwd_file: *const c_char,
    nickname: *const c_char,
) -> c_int {
    entry!(pcp::PM_ERR_TLS, {
        setup_from_nssdb(opt_str(db), opt_str(passwd_file), opt_str(nickname))
    })
}

/// Builds and installs the server context from an NSS database, with the
/// other settings (CAs, ciphers, client verification) of `tls.conf`.
fn setup_from_nssdb(
    db: Option<String>,
    passwd_file: Option<String>,
    nickname: Option<String>,
) -> c_int {
    let conf = TlsConf {
        cert_file: None,
        key_file: None,
        nssdb: Some(db.unwrap_or_else(|| "sql:/etc/pki/nssdb".into())),
        nssdb_password_file: passwd_file,
        cert_nickname: nickname,
        ..own_settings()
    };
    match ServerContext::build(&conf) {
        Ok(ctx) => {
            store().set_server(ctx);
            log::info!(
                "{} serving TLS 1.2/1.3 with {}",
                version_str(),
                identity_source(&conf)
            );
            0
        }
        Err(e) => {
            let now = if store().server().is_some() {
                "the server's TLS settings are unchanged"
            } else {
                "TLS is off"
            };
            log::error!("{e}; {now}");
            e.code()
        }
    }
}

/// Drops the server TLS context `ctx` (a handle from
/// `__pmSecureServerInit`; NULL or a foreign pointer is ignored) and, as
/// libpcp does, releases the strings of `tls` through libpcp's
/// `__pmFreeSecureConfig` (only when libpcp is loaded: it allocated them).
///
/// # Safety
/// `ctx` is compared, never dereferenced; `tls` is NULL or a configuration
/// filled by libpcp's `__pmGetSecureConfig`.
#[no_mangle]
pub unsafe extern "C" fn __pmSecureServerShutdown(ctx: *mut c_void, tls: *mut __pmSecureConfig) {
    entry!((), {
        if store().server_left_to_libpcp() {
            if let Some(libpcp) = next::server_shutdown() {
                libpcp(ctx, tls.cast());
            }
            return;
        }
        if !ctx.is_null() {
            store().clear_server(ctx as *const ServerContext);
        }
        if !tls.is_null() {
            if let Some(free) = next::free_secure_config() {
                free(tls.cast());
            }
        }
    })
}

/// Answers the TLS features (secure: a server context exists; compress:
/// never; cert-required: `pmcd -Q` or `tls-verify-clients = true`) and
/// forwards every other feature to libpcp (all of them in a program whose
/// server TLS is libpcp's).
///
/// # Safety
/// No pointers are involved.
#[no_mangle]
pub unsafe extern "C" fn __pmServerHasFeature(query: c_int) -> c_int {
    entry!(0, {
        if store().server_left_to_libpcp() {
            return next::has_feature().map_or(0, |f| f(query));
        }
        match query {
            pcp::FEATURE_SECURE => c_int::from(store().server().is_some()),
            pcp::FEATURE_COMPRESS => 0,
            pcp::FEATURE_CERT_REQD => c_int::from(cert_required_by_server()),
            _ => next::has_feature().map_or(0, |f| f(query)),
        }
    })
}

/// Checks the buffer pointer of a data-path call: NULL with a non-zero
/// length fails with EFAULT, as the system call would.
fn bad_buffer<T>(ptr: *const T, len: size_t) -> bool {
    if ptr.is_null() && len > 0 {
        set_errno(libc::EFAULT);
        return true;
    }
    false
}

/// Turns a data-path result into a byte count or libpcp's error value.
fn data_result(result: crate::error::Result<usize>) -> ssize_t {
    match result {
        Ok(n) => n as ssize_t,
        Err(Error::Io(e)) => {
            set_errno(e.raw_os_error().unwrap_or(libc::EIO));
            -1
        }
        Err(e) => failure(&e) as ssize_t,
    }
}

/// The common part of the four data-path exports: checks the descriptor
/// and buffer, then runs `tls` for a descriptor with a session of ours, or
/// `other` (libpcp's own definition, which knows its own TLS descriptors,
/// else the plain system call) for every other descriptor.
fn data_path(
    fd: c_int,
    buffer: *const c_void,
    length: size_t,
    tls: impl FnOnce(&crate::session::Session) -> crate::error::Result<usize>,
    other: impl FnOnce() -> ssize_t,
) -> ssize_t {
    if fd < 0 {
        return -libc::EBADF as ssize_t;
    }
    if bad_buffer(buffer, length) {
        return -1;
    }
    match table().get(fd) {
        Some(session) => data_result(tls(&session)),
        None => other(),
    }
}

/// Sends `length` bytes: through our TLS on a descriptor of ours, else
/// through libpcp's `__pmSend` (its own TLS or `send(2)`), else `send(2)`.
///
/// # Safety
/// `buffer` is valid for reads of `length` bytes (or NULL with length 0).
#[no_mangle]
pub unsafe extern "C" fn __pmSend(
    fd: c_int,
    buffer: *const c_void,
    length: size_t,
    flags: c_int,
) -> ssize_t {
    entry!(pcp::PM_ERR_TLS as ssize_t, {
        data_path(
            fd,
            buffer,
            length,
            |s| io::send(fd, s, slice(buffer, length)),
            || match next::send() {
                Some(f) => f(fd, buffer, length, flags),
                None => libc::send(fd, buffer, length, flags),
            },
        )
    })
}

/// Receives up to `length` bytes: from our TLS on a descriptor of ours,
/// else through libpcp's `__pmRecv`, else `recv(2)`. Returns 0 at end of
/// stream.
///
/// # Safety
/// `buffer` is valid for writes of `length` bytes (or NULL with length 0).
#[no_mangle]
pub unsafe extern "C" fn __pmRecv(
    fd: c_int,
    buffer: *mut c_void,
    length: size_t,
    flags: c_int,
) -> ssize_t {
    entry!(pcp::PM_ERR_TLS as ssize_t, {
        data_path(
            fd,
            buffer,
            length,
            |s| io::recv(fd, s, slice_mut(buffer, length)),
            || match next::recv() {
                Some(f) => f(fd, buffer, length, flags),
                None => libc::recv(fd, buffer, length, flags),
            },
        )
    })
}

/// Like `__pmRecv` without flags; other descriptors (pipes too) go to
/// libpcp's `__pmRead`, else `read(2)`.
///
/// # Safety
/// `buffer` is valid for writes of `length` bytes (or NULL with length 0).
#[no_mangle]
pub unsafe extern "C" fn __pmRead(fd: c_int, buffer: *mut c_void, length: size_t) -> ssize_t {
    entry!(pcp::PM_ERR_TLS as ssize_t, {
        data_path(
            fd,
            buffer,
            length,
            |s| io::recv(fd, s, slice_mut(buffer, length)),
            || match next::read() {
                Some(f) => f(fd, buffer, length),
                None => libc::read(fd, buffer, length),
            },
        )
    })
}

/// Like `__pmSend` without flags; other descriptors (pipes too) go to
/// libpcp's `__pmWrite`, else `write(2)`.
///
/// # Safety
/// `buffer` is valid for reads of `length` bytes (or NULL with length 0).
#[no_mangle]
pub unsafe extern "C" fn __pmWrite(fd: c_int, buffer: *const c_void, length: size_t) -> ssize_t {
    entry!(pcp::PM_ERR_TLS as ssize_t, {
        data_path(
            fd,
            buffer,
            length,
            |s| io::send(fd, s, slice(buffer, length)),
            || match next::write() {
                Some(f) => f(fd, buffer, length),
                None => libc::write(fd, buffer, length),
            },
        )
    })
}

/// # Safety
/// `ptr` is valid for reads of `len` bytes or `len` is 0.
unsafe fn slice<'a>(ptr: *const c_void, len: size_t) -> &'a [u8] {
    if len == 0 {
        &[]
    } else {
        std::slice::from_raw_parts(ptr.cast(), len)
    }
}

/// # Safety
/// `ptr` is valid for writes of `len` bytes or `len` is 0.
unsafe fn slice_mut<'a>(ptr: *mut c_void, len: size_t) -> &'a mut [u8] {
    if len == 0 {
        &mut []
    } else {
        std::slice::from_raw_parts_mut(ptr.cast(), len)
    }
}

/// Ends the descriptor's TLS session (close_notify, best effort), then lets
/// libpcp reset its IPC entry and close the descriptor (plain `close` when
/// libpcp is not loaded).
///
/// # Safety
/// No pointers are involved.
#[no_mangle]
pub unsafe extern "C" fn __pmCloseSocket(fd: c_int) {
    entry!((), {
        if let Some(session) = table().remove(fd) {
            io::close(fd, &session);
        }
        match next::close_socket() {
            Some(f) => f(fd),
            None if fd >= 0 => {
                libc::close(fd);
            }
            None => {}
        }
    })
}

/// True (1) when the last error (`errno`, or an errno that
/// `__pmSecureSocketsError(-errno)` shifted below `PM_ERR_NYI`) means the
/// peer or the network went away.
///
/// # Safety
/// No pointers are involved.
#[no_mangle]
pub unsafe extern "C" fn __pmSocketClosed() -> c_int {
    entry!(0, { c_int::from(peer_gone(*libc::__errno_location())) })
}

/// Whether `errno` (possibly shifted by `__pmSecureSocketsError`) means
/// the connection is gone.
fn peer_gone(errno: c_int) -> bool {
    // __pmSecureSocketsError(-e) leaves -PM_ERR_NYI + e in errno.
    let err = if errno > -pcp::PM_ERR_NYI {
        errno + pcp::PM_ERR_NYI
    } else {
        errno
    };
    matches!(
        err,
        libc::ECONNRESET
            | libc::EPIPE
            | libc::ETIMEDOUT
            | libc::ENETDOWN
            | libc::ENETUNREACH
            | libc::EHOSTDOWN
            | libc::EHOSTUNREACH
            | libc::ECONNREFUSED
    )
}

/// Encodes a security-library error `code` below `PM_ERR_NYI`, leaves its
/// magnitude in `errno` and returns it.
///
/// # Safety
/// No pointers are involved.
#[no_mangle]
pub unsafe extern "C" fn __pmSecureSocketsError(code: c_int) -> c_int {
    entry!(pcp::PM_ERR_NYI, {
        let status = pcp::PM_ERR_NYI.saturating_add(code);
        set_errno(status.saturating_neg());
        status
    })
}

/// libc's `select`, except that descriptors whose TLS session holds
/// decrypted but unread data are reported readable at once.
///
/// # Safety
/// Same contract as `select(2)`.
#[no_mangle]
pub unsafe extern "C" fn select(
    nfds: c_int,
    readfds: *mut libc::fd_set,
    writefds: *mut libc::fd_set,
    exceptfds: *mut libc::fd_set,
    timeout: *mut libc::timeval,
) -> c_int {
    entry!(
        crate::select::plain(nfds, readfds, writefds, exceptfds, timeout),
        { crate::select::select(nfds, readfds, writefds, exceptfds, timeout) }
    )
}

/// Runs when the library is loaded (preloaded, linked or dlopened): says
/// once, at debug level (`PCP_SECURE_DEBUG`), that TLS is now ours, so an
/// administrator can confirm which TLS is live.
extern "C" fn announce() {
    let _ = std::panic::catch_unwind(|| {
        log::debug!(
            "{} loaded in {}: libpcp's TLS is handled by rustls",
            version_str(),
            std::env::current_exe()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| "?".into())
        )
    });
}

#[used]
#[link_section = ".init_array"]
static ANNOUNCE: extern "C" fn() = announce;

/// "libpcp_secure X.Y.Z (rustls A.B.C)".
pub fn version_str() -> &'static str {
    concat!(
        "libpcp_secure ",
        env!("CARGO_PKG_VERSION"),
        " (rustls ",
        env!("PCP_SECURE_RUSTLS_VERSION"),
        ")"
    )
}

/// The library's version and the rustls version it was built with, for
/// example "libpcp_secure 1.0.0 (rustls 0.23.46)". Never NULL.
///
/// # Safety
/// No pointers are involved; the result is a static string.
#[no_mangle]
pub unsafe extern "C" fn pcp_secure_version() -> *const c_char {
    entry!(c"libpcp_secure".as_ptr(), {
        static TEXT: std::sync::OnceLock<std::ffi::CString> = std::sync::OnceLock::new();
        TEXT.get_or_init(|| std::ffi::CString::new(version_str()).unwrap_or_default())
            .as_ptr()
    })
}

/// Describes `fd`'s TLS session ("TLSv1_3 TLS13_AES_256_GCM_SHA384") into
/// `buf` (NUL-terminated, truncated to `buflen`). Returns 1 for a TLS
/// descriptor, 0 for a plain one, `-EINVAL` for a bad buffer.
///
/// # Safety
/// `buf` is NULL (with `buflen` 0) or valid for writes of `buflen` bytes.
#[no_mangle]
pub unsafe extern "C" fn pcp_secure_session_info(
    fd: c_int,
    buf: *mut c_char,
    buflen: size_t,
) -> c_int {
    entry!(-libc::EINVAL, {
        let Some(session) = table().get(fd) else {
            return 0;
        };
        if buflen > 0 {
            if buf.is_null() {
                return -libc::EINVAL;
            }
            let guard = session.lock();
            let Some(conn) = guard.as_ref() else { return 0 };
            let text = handshake::describe(conn);
            let n = text.len().min(buflen - 1);
            std::ptr::copy_nonoverlapping(text.as_ptr(), buf.cast::<u8>(), n);
            *buf.add(n) = 0;
        }
        1
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_closed_understands_plain_and_shifted_errnos() {
        assert!(peer_gone(libc::ECONNRESET));
        assert!(!peer_gone(libc::EINTR));
        // SAFETY: no pointers involved.
        let status = unsafe { __pmSecureSocketsError(-libc::EPIPE) };
        assert_eq!(status, pcp::PM_ERR_NYI - libc::EPIPE);
        // SAFETY: no pointers involved.
        assert_eq!(unsafe { __pmSocketClosed() }, 1);
        // SAFETY: no pointers involved.
        unsafe { __pmSecureSocketsError(-libc::EACCES) };
        // SAFETY: no pointers involved.
        assert_eq!(unsafe { __pmSocketClosed() }, 0);
    }

    /// Every export goes through the one panic boundary.
    #[test]
    fn every_export_starts_with_the_panic_boundary() {
        let source = include_str!("ffi.rs");
        let mut exports = 0;
        for chunk in source.split("pub unsafe extern \"C\" fn ").skip(1) {
            let body_start = chunk.find('{').expect("function body");
            let body = chunk[body_start + 1..].trim_start();
            let name = chunk.split('(').next().unwrap_or("?");
            assert!(
                body.starts_with("entry!("),
                "export {name} does not start with entry!"
            );
            exports += 1;
        }
        assert!(exports >= 15, "found only {exports} exports");
    }
}
