//! The C types libpcp's secure-socket functions take, laid out as libpcp
//! declares them (PCP 6.0.3 to 7.2.2 alike).

use std::ffi::c_char;

/// libpcp's parsed `tls.conf` (`__pmSecureConfig`); every field is a
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
