//! Server set-up: the TLS context from `tls.conf` (or an NSS database),
//! libpcp's `tls.conf` reader, shutdown and the TLS feature bits.

use std::ffi::{c_char, c_int, c_void};
use std::sync::Arc;

use super::opt_str;
use super::types::__pmSecureConfig;
use crate::interpose::{next, program};
use crate::pcp;
use crate::tls::config::TlsConf;
use crate::tls::store::{self, store, ServerContext};

/// libpcp's fields as settings (pointer conversion only).
///
/// # Safety
/// The fields of `cfg` are NULL or NUL-terminated strings.
#[allow(unsafe_code)]
unsafe fn libpcp_fields(cfg: &__pmSecureConfig) -> TlsConf {
    // SAFETY: the caller's promise about every field.
    unsafe {
        TlsConf {
            ca_cert_file: opt_str(cfg.cacertfile),
            ca_cert_dir: opt_str(cfg.cacertdir),
            cert_file: opt_str(cfg.certfile),
            key_file: opt_str(cfg.keyfile),
            ciphers: opt_str(cfg.ciphers),
            ciphersuites: opt_str(cfg.ciphersuites),
            client_cert_file: opt_str(cfg.clientcertfile),
            client_key_file: opt_str(cfg.clientkeyfile),
            verify_clients: opt_str(cfg.clientverify),
            ..TlsConf::default()
        }
    }
}

entry! {
    /// Builds the server TLS context from pmcd's parsed `tls.conf`. Returns an
    /// opaque handle, or NULL after logging which setting or file is at fault;
    /// pmcd then goes on serving plain connections.
    ///
    /// A program that links libssl itself (pmproxy) uses the result as an
    /// OpenSSL `SSL_CTX` with the `SSL_*` functions of [`super::ssl`]: its
    /// HTTPS is then served by rustls. If it imports an `SSL_*` function
    /// the library does not define, it gets libpcp's own context instead,
    /// untouched, and its server TLS stays libpcp's.
    ///
    /// # Safety
    /// `tls` is NULL or a valid `__pmSecureConfig` whose fields are NULL or
    /// NUL-terminated strings.
    fn __pmSecureServerInit(tls: *mut __pmSecureConfig) -> *mut c_void;
    on_panic: std::ptr::null_mut();
    {
        if let Some(missing) = openssl_left_to_libpcp() {
            store().leave_server_to_libpcp();
            let Some(libpcp) = next::server_init() else {
                crate::log::error!("this program uses OpenSSL for its TLS server but libpcp's __pmSecureServerInit is not loaded; TLS is off");
                return std::ptr::null_mut();
            };
            crate::log::warning!(
                "{}: this program serves TLS with OpenSSL itself and calls OpenSSL functions the library does not provide ({}), so its server TLS is left to libpcp's OpenSSL; its connections to pmcd use the library's verified TLS",
                super::version_str(),
                missing.join(", ")
            );
            // SAFETY: libpcp's function of this type, with the caller's argument.
            return unsafe { libpcp(tls.cast()) };
        }
        // SAFETY: the caller's promise about tls.
        let Some(cfg) = (unsafe { tls.as_ref() }) else {
            crate::log::error!("no TLS configuration given to the server; serving plain connections only");
            return std::ptr::null_mut();
        };
        // SAFETY: the caller's promise about the fields.
        let fields = unsafe { libpcp_fields(cfg) };
        match store::install_server(fields) {
            Some(ctx) => Arc::as_ptr(&ctx) as *mut c_void,
            None => std::ptr::null_mut(),
        }
    }
}

entry! {
    /// libpcp's `tls.conf` reader, extended: when the file sets `tls-nssdb`
    /// but not `tls-cert-file`, `certfile` is set to the database (pmcd offers
    /// TLS only when `certfile` is set), so that an unchanged pmcd serves TLS
    /// from an NSS database (not in a program whose server TLS stays
    /// libpcp's, see `__pmSecureServerInit`). Returns libpcp's result, or `-ENOSYS` when
    /// libpcp is not loaded.
    ///
    /// # Safety
    /// `config` is NULL or points to a writable `__pmSecureConfig`.
    fn __pmGetSecureConfig(config: *mut __pmSecureConfig) -> c_int;
    on_panic: -libc::EINVAL;
    {
        let Some(libpcp) = next::get_secure_config() else {
            crate::log::error!("libpcp's __pmGetSecureConfig is not loaded; tls.conf is not read");
            return -libc::ENOSYS;
        };
        // SAFETY: libpcp's function of this type, with the caller's argument.
        let sts = unsafe { libpcp(config.cast()) };
        // SAFETY: the caller's promise about config.
        let Some(cfg) = (unsafe { config.as_mut() }) else {
            return sts;
        };
        // A program whose server TLS stays libpcp's must see tls.conf as
        // libpcp does (OpenSSL cannot read an NSS database).
        if sts == 0 && cfg.certfile.is_null() && openssl_left_to_libpcp().is_none() {
            if let Some(db) = store::nssdb_placeholder() {
                // libpcp frees the field with free(): allocate it with malloc.
                // SAFETY: db is a valid C string; strdup returns NULL or a copy.
                cfg.certfile = unsafe { libc::strdup(db.as_ptr()) };
            }
        }
        sts
    }
}

entry! {
    /// NSS-era server setup (PCP 5 signature): serve TLS with the certificate
    /// "PCP Collector certificate" of NSS database `db` (NULL:
    /// `sql:/etc/pki/nssdb`), unlocked with the password in `passwd_file`
    /// (NULL: none). Returns 0, or a negative PCP error after logging why.
    ///
    /// # Safety
    /// `db` and `passwd_file` are NULL or NUL-terminated strings.
    fn __pmSecureServerSetup(db: *const c_char, passwd_file: *const c_char) -> c_int;
    on_panic: pcp::PM_ERR_TLS;
    {
        // SAFETY: the caller's promise about both strings.
        let (db, passwd_file) = unsafe { (opt_str(db), opt_str(passwd_file)) };
        status(store::install_server_from_nssdb(db, passwd_file, None))
    }
}

entry! {
    /// NSS-era server setup (PCP 5 signature): like `__pmSecureServerSetup`,
    /// with the certificate named by `nickname` (NULL: "PCP Collector
    /// certificate").
    ///
    /// # Safety
    /// `db`, `passwd_file` and `nickname` are NULL or NUL-terminated strings.
    fn __pmSecureServerCertificateSetup(
        db: *const c_char,
        passwd_file: *const c_char,
        nickname: *const c_char,
    ) -> c_int;
    on_panic: pcp::PM_ERR_TLS;
    {
        // SAFETY: the caller's promise about the three strings.
        let (db, passwd_file, nickname) =
            unsafe { (opt_str(db), opt_str(passwd_file), opt_str(nickname)) };
        status(store::install_server_from_nssdb(db, passwd_file, nickname))
    }
}

/// The `SSL_*` functions this program imports that the library does not
/// define, when it links libssl and there is at least one: its server TLS
/// is then left to libpcp's OpenSSL.
fn openssl_left_to_libpcp() -> Option<Vec<String>> {
    let defined: Vec<&str> = super::abi::OPENSSL_EXPORTS.iter().map(|e| e.name).collect();
    match program::openssl_server(&defined) {
        program::OpensslServer::Libpcp(missing) => Some(missing),
        program::OpensslServer::NotLinked | program::OpensslServer::Ours => None,
    }
}

/// 0, or the error's (negative) PCP status.
fn status(result: crate::error::Result<()>) -> c_int {
    match result {
        Ok(()) => 0,
        Err(e) => e.code(),
    }
}

entry! {
    /// Drops the server TLS context `ctx` (a handle from
    /// `__pmSecureServerInit`; NULL or a foreign pointer is ignored) and, as
    /// libpcp does, releases the strings of `tls` through libpcp's
    /// `__pmFreeSecureConfig` (only when libpcp is loaded: it allocated them).
    /// Where the server TLS is libpcp's, libpcp's own shutdown does it all.
    ///
    /// # Safety
    /// `ctx` is compared, never dereferenced; `tls` is NULL or a configuration
    /// filled by libpcp's `__pmGetSecureConfig`.
    fn __pmSecureServerShutdown(ctx: *mut c_void, tls: *mut __pmSecureConfig) -> ();
    on_panic: ();
    {
        if store().server_left_to_libpcp() {
            if let Some(libpcp) = next::server_shutdown() {
                // SAFETY: libpcp's function of this type, with the caller's arguments.
                unsafe { libpcp(ctx, tls.cast()) };
            }
            return;
        }
        if !ctx.is_null() {
            store().clear_server(ctx as *const ServerContext);
        }
        if !tls.is_null() {
            if let Some(free) = next::free_secure_config() {
                // SAFETY: libpcp's function of this type; tls came from libpcp.
                unsafe { free(tls.cast()) };
            }
        }
    }
}

entry! {
    /// Answers the TLS features (secure: a server context exists; compress:
    /// never; cert-required: `pmcd -Q` or `tls-verify-clients = true`) and
    /// forwards every other feature to libpcp (all of them in a program whose
    /// server TLS is libpcp's).
    ///
    /// # Safety
    /// No pointers are involved.
    fn __pmServerHasFeature(query: c_int) -> c_int;
    on_panic: 0;
    {
        let libpcp = |query| {
            // SAFETY: libpcp's function of this type.
            next::has_feature().map_or(0, |f| unsafe { f(query) })
        };
        if store().server_left_to_libpcp() {
            return libpcp(query);
        }
        match query {
            pcp::FEATURE_SECURE => c_int::from(store().server().is_some()),
            pcp::FEATURE_COMPRESS => 0,
            pcp::FEATURE_CERT_REQD => c_int::from(crate::tls::handshake::server_requires_cert()),
            _ => libpcp(query),
        }
    }
}
