//! Our own two functions (version, a descriptor's TLS session) and the
//! announcement made when the library is loaded.

use std::ffi::{c_char, c_int};

use libc::size_t;

use crate::tls::{handshake, session::table};

entry! {
    /// The library's version, the rustls version it was built with and its
    /// crypto module, for example "libpcp_secure 1.1.0 (rustls 0.23.46,
    /// aws-lc-rs 1.19.0)", or "libpcp_secure 1.1.0 (rustls 0.23.46,
    /// aws-lc-rs 1.19.0, FIPS 140-3 module aws-lc-fips-sys 0.14.4)" for the
    /// FIPS build. Never NULL.
    ///
    /// # Safety
    /// No pointers are involved; the result is a static string.
    fn pcp_secure_version() -> *const c_char;
    on_panic: c"libpcp_secure".as_ptr();
    {
        static TEXT: std::sync::OnceLock<std::ffi::CString> = std::sync::OnceLock::new();
        TEXT.get_or_init(|| std::ffi::CString::new(version_str()).unwrap_or_default())
            .as_ptr()
    }
}

entry! {
    /// Describes `fd`'s TLS session ("TLSv1_3 TLS13_AES_256_GCM_SHA384
    /// X25519MLKEM768": version, suite, key-exchange group) into
    /// `buf` (NUL-terminated, truncated to `buflen`). Returns 1 for a TLS
    /// descriptor, 0 for a plain one, `-EINVAL` for a bad buffer.
    ///
    /// # Safety
    /// `buf` is NULL (with `buflen` 0) or valid for writes of `buflen` bytes.
    fn pcp_secure_session_info(fd: c_int, buf: *mut c_char, buflen: size_t) -> c_int;
    on_panic: -libc::EINVAL;
    {
        let Some(session) = table().get(fd) else {
            return 0;
        };
        if buflen > 0 {
            if buf.is_null() {
                return -libc::EINVAL;
            }
            let Some(text) = session.with_connection(handshake::describe) else {
                return 0;
            };
            let n = text.len().min(buflen - 1);
            // SAFETY: buf is valid for buflen bytes (the caller's promise)
            // and n < buflen leaves room for the NUL.
            unsafe {
                std::ptr::copy_nonoverlapping(text.as_ptr(), buf.cast::<u8>(), n);
                *buf.add(n) = 0;
            }
        }
        1
    }
}

/// Runs when the library is loaded (preloaded, linked or dlopened): says
/// once, at debug level (`PCP_SECURE_DEBUG`), that TLS is now ours, so an
/// administrator can confirm which TLS is live, and warns when
/// `PCP_SECURE_SOCKETS` holds a value that libpcp reads as "no TLS" or
/// `PCP_SECURE_DEBUG` one that is neither 0 nor 1.
extern "C" fn announce() {
    let _ = std::panic::catch_unwind(|| {
        crate::tls::config::check_secure_sockets();
        crate::tls::config::check_debug();
        crate::log::debug!(
            "{} loaded in {}: libpcp's TLS is handled by rustls",
            version_str(),
            std::env::current_exe()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| "?".into())
        )
    });
}

#[used]
#[allow(unsafe_code)]
#[link_section = ".init_array"]
static ANNOUNCE: extern "C" fn() = announce;

/// "libpcp_secure X.Y.Z (rustls A.B.C, aws-lc-rs D.E.F)", with ", FIPS
/// 140-3 module aws-lc-fips-sys G.H.I" before the ")" in the FIPS build.
pub fn version_str() -> &'static str {
    concat!(
        "libpcp_secure ",
        env!("CARGO_PKG_VERSION"),
        " (rustls ",
        env!("PCP_SECURE_RUSTLS_VERSION"),
        ", aws-lc-rs ",
        env!("PCP_SECURE_AWS_LC_RS_VERSION"),
        env!("PCP_SECURE_FIPS_MODULE"),
        ")"
    )
}
