//! The definitions our exports stand in front of: libpcp's own functions
//! (SASL, feature bits, IPC-table reset on close, the data path of
//! descriptors that are not ours, its own TLS set-up for programs that use
//! it themselves) and libc's `select`, found with `dlsym(RTLD_NEXT, ...)`
//! once per process. When a program does not load libpcp (the C tests),
//! the lookups find nothing and each caller falls back to the plain
//! behaviour.

use std::ffi::{c_char, c_int, c_void, CStr};
use std::sync::OnceLock;

/// `int __pmSecureClientHandshake(int, int, const char *, __pmHashCtl *)`
pub(crate) type ClientHandshakeFn =
    unsafe extern "C" fn(c_int, c_int, *const c_char, *mut c_void) -> c_int;
/// `int __pmSecureServerHandshake(int, int, __pmHashCtl *)`
pub(crate) type ServerHandshakeFn = unsafe extern "C" fn(c_int, c_int, *mut c_void) -> c_int;
/// `int __pmServerHasFeature(__pmServerFeature)`
pub(crate) type HasFeatureFn = unsafe extern "C" fn(c_int) -> c_int;
/// `void __pmCloseSocket(int)`
pub(crate) type CloseSocketFn = unsafe extern "C" fn(c_int);
/// `void __pmFreeSecureConfig(__pmSecureConfig *)`
pub(crate) type FreeSecureConfigFn = unsafe extern "C" fn(*mut c_void);
/// `int __pmGetSecureConfig(__pmSecureConfig *)`.
pub(crate) type GetSecureConfigFn = unsafe extern "C" fn(*mut c_void) -> c_int;
/// `ssize_t __pmSend(int, const void *, size_t, int)`
pub(crate) type SendFn =
    unsafe extern "C" fn(c_int, *const c_void, libc::size_t, c_int) -> libc::ssize_t;
/// `ssize_t __pmRecv(int, void *, size_t, int)`
pub(crate) type RecvFn =
    unsafe extern "C" fn(c_int, *mut c_void, libc::size_t, c_int) -> libc::ssize_t;
/// `ssize_t __pmWrite(int, const void *, size_t)`
pub(crate) type WriteFn = unsafe extern "C" fn(c_int, *const c_void, libc::size_t) -> libc::ssize_t;
/// `ssize_t __pmRead(int, void *, size_t)`
pub(crate) type ReadFn = unsafe extern "C" fn(c_int, *mut c_void, libc::size_t) -> libc::ssize_t;
/// `void *__pmSecureServerInit(__pmSecureConfig *)`
pub(crate) type ServerInitFn = unsafe extern "C" fn(*mut c_void) -> *mut c_void;
/// `void __pmSecureServerShutdown(void *, __pmSecureConfig *)`
pub(crate) type ServerShutdownFn = unsafe extern "C" fn(*mut c_void, *mut c_void);
/// `int select(int, fd_set *, fd_set *, fd_set *, struct timeval *)`
pub(crate) type SelectFn = unsafe extern "C" fn(
    c_int,
    *mut libc::fd_set,
    *mut libc::fd_set,
    *mut libc::fd_set,
    *mut libc::timeval,
) -> c_int;

fn lookup(name: &CStr) -> Option<*mut c_void> {
    // SAFETY: name is NUL-terminated; RTLD_NEXT is a valid pseudo-handle.
    let sym = unsafe { libc::dlsym(libc::RTLD_NEXT, name.as_ptr()) };
    (!sym.is_null()).then_some(sym)
}

macro_rules! next_fns {
    ($($(#[$doc:meta])* $fn_name:ident, $ty:ty, $sym:literal;)*) => {
        $(
            $(#[$doc])*
            pub(crate) fn $fn_name() -> Option<$ty> {
                static CELL: OnceLock<Option<usize>> = OnceLock::new();
                let addr = (*CELL.get_or_init(|| lookup($sym).map(|p| p as usize)))?;
                // SAFETY: the symbol was found under this name, whose C type is $ty.
                Some(unsafe { std::mem::transmute::<usize, $ty>(addr) })
            }
        )*

        /// Every definition the library forwards to, by symbol name (for
        /// MATRIX.md and its check).
        pub const FORWARDS: &[&CStr] = &[$($sym),*];
    };
}

next_fns! {
    /// libpcp's client handshake (used for SASL after TLS is up).
    client_handshake, ClientHandshakeFn, c"__pmSecureClientHandshake";
    /// libpcp's server handshake (used for SASL after TLS is up).
    server_handshake, ServerHandshakeFn, c"__pmSecureServerHandshake";
    /// libpcp's feature query (everything but the TLS features).
    has_feature, HasFeatureFn, c"__pmServerHasFeature";
    /// libpcp's close (resets its IPC table entry, then closes).
    close_socket, CloseSocketFn, c"__pmCloseSocket";
    /// libc's `select`.
    select, SelectFn, c"select";
    /// libpcp's `tls.conf` reader.
    get_secure_config, GetSecureConfigFn, c"__pmGetSecureConfig";
    /// libpcp's release of a parsed `tls.conf` (its strings are libpcp's).
    free_secure_config, FreeSecureConfigFn, c"__pmFreeSecureConfig";
    /// libpcp's send (its own TLS, or `send(2)`), for descriptors that have
    /// no session of ours.
    send, SendFn, c"__pmSend";
    /// libpcp's receive, for descriptors that have no session of ours.
    recv, RecvFn, c"__pmRecv";
    /// libpcp's write, for descriptors that have no session of ours.
    write, WriteFn, c"__pmWrite";
    /// libpcp's read, for descriptors that have no session of ours.
    read, ReadFn, c"__pmRead";
    /// libpcp's own (OpenSSL) server TLS set-up, for programs that use the
    /// result as an OpenSSL context themselves.
    server_init, ServerInitFn, c"__pmSecureServerInit";
    /// libpcp's release of the context from its own `__pmSecureServerInit`.
    server_shutdown, ServerShutdownFn, c"__pmSecureServerShutdown";
}
