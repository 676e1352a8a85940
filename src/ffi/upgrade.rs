//! The secure upgrade of a connection, both ends, and PCP 7.2's HTTPS
//! client connect.

use std::ffi::{c_char, c_int};

use super::types::__pmHashCtl;
use super::{failure, opt_str};
use crate::interpose::next;
use crate::pcp;
use crate::tls::handshake;

entry! {
    /// Client side of the secure upgrade: reads the server's secure-ack status
    /// (with `PDU_FLAG_SECURE_ACK`), runs a verified TLS handshake on `fd`
    /// (with `PDU_FLAG_SECURE`), then hands SASL (`PDU_FLAG_AUTH`,
    /// `PDU_FLAG_CREDS_REQD`) to libpcp. Returns 0 or a negative PCP error.
    ///
    /// # Safety
    /// `hostname` is NULL or a NUL-terminated string; `attrs` is NULL or
    /// libpcp's attribute table for this connection.
    fn __pmSecureClientHandshake(
        fd: c_int,
        flags: c_int,
        hostname: *const c_char,
        attrs: *mut __pmHashCtl,
    ) -> c_int;
    on_panic: pcp::PM_ERR_TLS;
    {
        if fd < 0 {
            return -libc::EBADF;
        }
        if flags & pcp::PDU_FLAG_SECURE == 0 {
            return match next::client_handshake() {
                // SAFETY: libpcp's function of this type, with the caller's arguments.
                Some(f) => unsafe { f(fd, flags, hostname, attrs.cast()) },
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
        // SAFETY: the caller's promise about hostname.
        let host = unsafe { opt_str(hostname) };
        if let Err(e) = handshake::client(fd, flags, host.as_deref()) {
            return failure(&e);
        }
        sasl(flags, |rest| {
            // SAFETY: libpcp's function of this type, with the caller's arguments.
            next::client_handshake().map(|f| unsafe { f(fd, rest, hostname, attrs.cast()) })
        })
    }
}

entry! {
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
    fn __pmSecureClientConnect(fd: c_int, hostname: *const c_char) -> c_int;
    on_panic: pcp::PM_ERR_TLS;
    {
        if fd < 0 {
            return -libc::EBADF;
        }
        // SAFETY: the caller's promise about hostname.
        let Some(host) = (unsafe { opt_str(hostname) }) else {
            return -libc::EINVAL;
        };
        match handshake::https_client(fd, &host) {
            Ok(()) => 0,
            Err(e) => failure(&e),
        }
    }
}

entry! {
    /// Server side of the secure upgrade: validates the client's flags, sends
    /// the secure-ack status before any TLS byte (non-zero, and no TLS, when
    /// TLS cannot be done), and accepts TLS, requiring a client certificate
    /// for `pmcd -Q`, `PDU_FLAG_CERT_REQD` or `tls-verify-clients = true`.
    /// The handshake is only begun here and goes on as the client's bytes
    /// arrive, through the `select` hook, unless SASL or a container
    /// attribute follow at once: then it is waited for here (bounded), and
    /// SASL is handed to libpcp. In a program whose server TLS is libpcp's
    /// own (pmproxy), libpcp does it all.
    ///
    /// # Safety
    /// `attrs` is NULL or libpcp's attribute table for this client.
    fn __pmSecureServerHandshake(fd: c_int, flags: c_int, attrs: *mut __pmHashCtl) -> c_int;
    on_panic: pcp::PM_ERR_TLS;
    {
        if fd < 0 {
            return -libc::EBADF;
        }
        if flags & !pcp::SERVER_HANDSHAKE_FLAGS != 0 {
            crate::log::warning!("fd {fd}: client sent unknown connection flags {flags:#x}; refused");
            return pcp::PM_ERR_IPC;
        }
        if flags & pcp::PDU_FLAG_SECURE == 0 || crate::tls::store::store().server_left_to_libpcp() {
            return match next::server_handshake() {
                // SAFETY: libpcp's function of this type, with the caller's arguments.
                Some(f) => unsafe { f(fd, flags, attrs.cast()) },
                None if flags & (pcp::PDU_FLAG_AUTH | pcp::PDU_FLAG_CREDS_REQD) != 0 => {
                    -libc::EOPNOTSUPP
                }
                None => 0,
            };
        }
        // (`tls-verify-clients` is applied by the server context itself.)
        let require = flags & pcp::PDU_FLAG_CERT_REQD != 0 || handshake::program_requires_cert();
        // SASL (libpcp's, right after this call) and pmcd's container
        // attribute are read at once over TLS: only without them can the
        // handshake go on alongside pmcd's other clients.
        let defer = flags & pcp::SYNC_AFTER_TLS_FLAGS == 0;
        if let Err(e) = handshake::server(fd, flags, require, defer) {
            return failure(&e);
        }
        sasl(flags, |rest| {
            // SAFETY: libpcp's function of this type, with the caller's arguments.
            next::server_handshake().map(|f| unsafe { f(fd, rest, attrs.cast()) })
        })
    }
}

/// Hands what is left of a handshake (SASL) to libpcp once TLS is up.
fn sasl(flags: c_int, call: impl FnOnce(c_int) -> Option<c_int>) -> c_int {
    if flags & (pcp::PDU_FLAG_AUTH | pcp::PDU_FLAG_CREDS_REQD) == 0 {
        return 0;
    }
    match call(flags & !pcp::TLS_FLAGS) {
        Some(status) => status,
        None => {
            crate::log::error!(
                "SASL authentication was requested but libpcp is not loaded to perform it"
            );
            -libc::EOPNOTSUPP
        }
    }
}
