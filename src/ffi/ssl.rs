//! OpenSSL's `SSL_*` functions that pmproxy calls on its HTTPS clients,
//! with OpenSSL's own signatures and error conventions. An `SSL *` made by
//! our `SSL_new` from our server context (the pointer pmproxy got from
//! `__pmSecureServerInit`) is served by rustls ([`MemoryServer`]); any
//! other is libssl's own and every call on it goes to libssl unchanged, so
//! curl, python's `ssl` or pmproxy's own OpenSSL clients in the same
//! process keep working. No `BIO_*` function is defined: pmproxy's memory
//! BIOs stay libcrypto's objects.
//!
//! A NULL `SSL *` (pmproxy does not check `SSL_new`'s result) fails the
//! call instead of reaching libssl, which would dereference it.

use std::ffi::{c_int, c_void};

use crate::interpose::openssl::{self, Bio};
use crate::tls::memory_server::{MemoryServer, Status};
use crate::tls::objects::{self, objects};
use crate::tls::store::store;

/// `SSL_ERROR_SSL`, the answer for an object that cannot be used.
const SSL_ERROR_SSL: c_int = Status::Ssl as c_int;

/// Logs that libssl's `name` is needed (for an object that is not ours)
/// but not loaded.
fn missing(name: &str) {
    crate::log::error!(
        "{name} was called on an OpenSSL object but libssl's {name} is not loaded; the call fails"
    );
}

/// Our object behind `ssl`, if it is one.
fn ours(ssl: *const c_void) -> Option<std::sync::Arc<objects::Object>> {
    objects().get(ssl as usize)
}

entry! {
    /// A new TLS connection (OpenSSL's `SSL_new`). For our server context
    /// (pmproxy's, from `__pmSecureServerInit`): a rustls HTTPS server
    /// connection, requiring a client certificate when `tls-verify-clients`
    /// or the program's `-Q` asks for one; NULL after logging why when it
    /// cannot be made. Any other context is libssl's.
    ///
    /// # Safety
    /// `ctx` is our server context or what libssl's `SSL_new` accepts.
    fn SSL_new(ctx: *mut c_void) -> *mut c_void;
    on_panic: std::ptr::null_mut();
    {
        if store().is_server_handle(ctx as usize) {
            return match MemoryServer::accept() {
                Some(Ok(conn)) => objects().insert(conn) as *mut c_void,
                Some(Err(e)) => {
                    crate::log::error!("HTTPS connection refused: {e}");
                    std::ptr::null_mut()
                }
                None => {
                    crate::log::error!("HTTPS connection refused: the server's TLS context was shut down");
                    std::ptr::null_mut()
                }
            };
        }
        let Some(real) = openssl::ssl_new() else {
            missing("SSL_new");
            return std::ptr::null_mut();
        };
        // SAFETY: libssl's function of this type, with the caller's argument.
        unsafe { real(ctx) }
    }
}

entry! {
    /// Makes `ssl` the server end (OpenSSL's `SSL_set_accept_state`); ours
    /// always are.
    ///
    /// # Safety
    /// `ssl` is NULL, ours or a libssl `SSL *`.
    fn SSL_set_accept_state(ssl: *mut c_void) -> ();
    on_panic: ();
    {
        if ssl.is_null() || ours(ssl).is_some() {
            return;
        }
        match openssl::ssl_set_accept_state() {
            // SAFETY: libssl's function of this type, with its own object.
            Some(real) => unsafe { real(ssl) },
            None => missing("SSL_set_accept_state"),
        }
    }
}

entry! {
    /// Gives `ssl` the BIOs it reads the network's bytes from and writes
    /// its own to (OpenSSL's `SSL_set_bio`); the object owns them from now
    /// on and `SSL_free` frees them (once when they are the same BIO).
    ///
    /// # Safety
    /// `ssl` is NULL, ours or a libssl `SSL *`; `rbio` and `wbio` are NULL
    /// or live BIOs whose references the caller hands over.
    fn SSL_set_bio(ssl: *mut c_void, rbio: *mut c_void, wbio: *mut c_void) -> ();
    on_panic: ();
    {
        if ssl.is_null() {
            return;
        }
        if let Some(object) = ours(ssl) {
            // SAFETY: the caller hands both references over to the object.
            let (rbio, wbio) = unsafe { (Bio::adopt(rbio), Bio::adopt(wbio)) };
            objects::lock(&object).set_bios(rbio, wbio);
            return;
        }
        match openssl::ssl_set_bio() {
            // SAFETY: libssl's function of this type, with the caller's arguments.
            Some(real) => unsafe { real(ssl, rbio, wbio) },
            None => missing("SSL_set_bio"),
        }
    }
}

entry! {
    /// Reads plaintext (OpenSSL's `SSL_read_ex`): 1 with up to `num` bytes
    /// in `buf` and their count in `*readbytes`, or 0 and `SSL_get_error`
    /// says why (want read, zero return, SSL).
    ///
    /// # Safety
    /// `ssl` is NULL, ours or a libssl `SSL *`; `buf` is writable for
    /// `num` bytes; `readbytes` is NULL or writable.
    fn SSL_read_ex(
        ssl: *mut c_void,
        buf: *mut c_void,
        num: libc::size_t,
        readbytes: *mut libc::size_t,
    ) -> c_int;
    on_panic: 0;
    {
        if ssl.is_null() {
            return 0;
        }
        if let Some(object) = ours(ssl) {
            let mut state = objects::lock(&object);
            let out: &mut [u8] = if buf.is_null() || num == 0 {
                &mut []
            } else {
                // SAFETY: the caller's promise: buf is writable for num bytes.
                unsafe { std::slice::from_raw_parts_mut(buf.cast::<u8>(), num) }
            };
            let got = state.read(out);
            if !readbytes.is_null() {
                // SAFETY: checked non-NULL; the caller's promise that it is writable.
                unsafe { *readbytes = got.unwrap_or(0) };
            }
            return c_int::from(got.is_some());
        }
        let Some(real) = openssl::ssl_read_ex() else {
            missing("SSL_read_ex");
            return 0;
        };
        // SAFETY: libssl's function of this type, with the caller's arguments.
        unsafe { real(ssl, buf, num, readbytes) }
    }
}

entry! {
    /// Writes plaintext (OpenSSL's `SSL_write`): all `num` bytes are taken
    /// and `num` is returned, or <= 0 and `SSL_get_error` says why.
    ///
    /// # Safety
    /// `ssl` is NULL, ours or a libssl `SSL *`; `buf` is readable for
    /// `num` bytes.
    fn SSL_write(ssl: *mut c_void, buf: *const c_void, num: c_int) -> c_int;
    on_panic: -1;
    {
        if ssl.is_null() {
            return -1;
        }
        if let Some(object) = ours(ssl) {
            let mut state = objects::lock(&object);
            let Ok(len) = usize::try_from(num) else {
                return -1;
            };
            let data: &[u8] = if buf.is_null() || len == 0 {
                &[]
            } else {
                // SAFETY: the caller's promise: buf is readable for num bytes.
                unsafe { std::slice::from_raw_parts(buf.cast::<u8>(), len) }
            };
            return match state.write(data) {
                Some(n) => c_int::try_from(n).unwrap_or(num),
                None if state.status() == Status::Syscall => 0,
                None => -1,
            };
        }
        let Some(real) = openssl::ssl_write() else {
            missing("SSL_write");
            return -1;
        };
        // SAFETY: libssl's function of this type, with the caller's arguments.
        unsafe { real(ssl, buf, num) }
    }
}

entry! {
    /// Why the last call on `ssl` returned `ret` (OpenSSL's
    /// `SSL_get_error`): for ours, `SSL_ERROR_NONE` (0), `_SSL` (1),
    /// `_WANT_READ` (2), `_SYSCALL` (5) or `_ZERO_RETURN` (6); never
    /// `_WANT_WRITE`.
    ///
    /// # Safety
    /// `ssl` is NULL, ours or a libssl `SSL *`.
    fn SSL_get_error(ssl: *const c_void, ret: c_int) -> c_int;
    on_panic: SSL_ERROR_SSL;
    {
        if ssl.is_null() {
            return SSL_ERROR_SSL;
        }
        if let Some(object) = ours(ssl) {
            if ret > 0 {
                return Status::None as c_int;
            }
            return objects::lock(&object).status() as c_int;
        }
        let Some(real) = openssl::ssl_get_error() else {
            missing("SSL_get_error");
            return SSL_ERROR_SSL;
        };
        // SAFETY: libssl's function of this type, with the caller's arguments.
        unsafe { real(ssl, ret) }
    }
}

entry! {
    /// The client's verified certificate as a new OpenSSL `X509` that the
    /// caller frees with `X509_free` (OpenSSL's
    /// `SSL_get1_peer_certificate`), or NULL when it presented none.
    ///
    /// # Safety
    /// `ssl` is NULL, ours or a libssl `SSL *`.
    fn SSL_get1_peer_certificate(ssl: *const c_void) -> *mut c_void;
    on_panic: std::ptr::null_mut();
    {
        if ssl.is_null() {
            return std::ptr::null_mut();
        }
        if let Some(object) = ours(ssl) {
            let state = objects::lock(&object);
            return state
                .peer_certificate()
                .map_or(std::ptr::null_mut(), openssl::x509_from_der);
        }
        let Some(real) = openssl::ssl_get1_peer_certificate() else {
            missing("SSL_get1_peer_certificate");
            return std::ptr::null_mut();
        };
        // SAFETY: libssl's function of this type, with the caller's argument.
        unsafe { real(ssl) }
    }
}

entry! {
    /// Frees `ssl` and the BIOs it owns (OpenSSL's `SSL_free`); NULL is
    /// ignored. No close_notify is sent (pmproxy never asks for one).
    ///
    /// # Safety
    /// `ssl` is NULL, ours or a libssl `SSL *`, not used afterwards.
    fn SSL_free(ssl: *mut c_void) -> ();
    on_panic: ();
    {
        if ssl.is_null() {
            return;
        }
        if let Some(object) = objects().remove(ssl as usize) {
            objects::lock(&object).release();
            return;
        }
        match openssl::ssl_free() {
            // SAFETY: libssl's function of this type, with its own object.
            Some(real) => unsafe { real(ssl) },
            None => missing("SSL_free"),
        }
    }
}
