//! Why a handshake failed, in the kinds the metrics count: each failed
//! handshake is counted once, under exactly one of these.

#![forbid(unsafe_code)]

use crate::error::Error;
use crate::tls::config::Role;

/// The kind of a handshake failure. The order is that of the instances of
/// `handshakes.failures` (the discriminant is the instance number).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// The peer's certificate was issued by a CA that is not trusted (or
    /// the peer said so of ours: TLS alert `unknown_ca`).
    UntrustedIssuer = 0,
    /// The server's certificate does not list the name the client used
    /// (or the client said so of ours: TLS alert `bad_certificate`, what
    /// rustls clients send for a name mismatch).
    NameMismatch = 1,
    /// A certificate has expired (or the peer said so of ours: TLS alert
    /// `certificate_expired`).
    Expired = 2,
    /// A client certificate was required and none was presented.
    NoClientCert = 3,
    /// The handshake did not finish in time.
    Timeout = 4,
    /// The peer does not speak TLS correctly, or has no version or cipher
    /// suite in common with us.
    ProtocolError = 5,
    /// The secure upgrade was refused before TLS started (the server has
    /// no TLS set up, or the client asked for compression).
    RefusedUpgrade = 6,
    /// Anything else: the peer went away, an I/O error, another
    /// certificate problem.
    Other = 7,
}

impl Reason {
    /// Every kind, in instance order.
    pub const ALL: [Reason; 8] = [
        Reason::UntrustedIssuer,
        Reason::NameMismatch,
        Reason::Expired,
        Reason::NoClientCert,
        Reason::Timeout,
        Reason::ProtocolError,
        Reason::RefusedUpgrade,
        Reason::Other,
    ];

    /// The instance name under `handshakes.failures`.
    pub fn name(self) -> &'static str {
        match self {
            Reason::UntrustedIssuer => "untrusted_issuer",
            Reason::NameMismatch => "name_mismatch",
            Reason::Expired => "expired",
            Reason::NoClientCert => "no_client_cert",
            Reason::Timeout => "timeout",
            Reason::ProtocolError => "protocol_error",
            Reason::RefusedUpgrade => "refused_upgrade",
            Reason::Other => "other",
        }
    }

    /// The kind of the failure `err` of a handshake at our end `role`.
    pub(crate) fn of(err: &Error, role: Role) -> Reason {
        match err {
            Error::Rejected(reason, _) => *reason,
            Error::NeedClientCert(_) => Reason::NoClientCert,
            Error::Timeout(_) => Reason::Timeout,
            Error::Protocol(_) => Reason::ProtocolError,
            // The server answered the secure request with an error status.
            Error::ServerStatus(_) => Reason::RefusedUpgrade,
            // A server refusing the upgrade (compression, no usable TLS
            // settings); a client's own settings being unusable is "other".
            Error::NotSupported(_) | Error::Config(_) if role == Role::Server => {
                Reason::RefusedUpgrade
            }
            Error::NotSupported(_)
            | Error::Config(_)
            | Error::Tls(_)
            | Error::Closed(_)
            | Error::Io(_) => Reason::Other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_numbers_follow_the_order() {
        for (i, r) in Reason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i, "{r:?}");
        }
        let names: std::collections::HashSet<_> = Reason::ALL.iter().map(|r| r.name()).collect();
        assert_eq!(names.len(), Reason::ALL.len());
    }

    #[test]
    fn errors_without_a_tls_cause_have_their_kind() {
        let server = Role::Server;
        assert_eq!(
            Reason::of(&Error::Timeout("the TLS handshake"), server),
            Reason::Timeout
        );
        assert_eq!(
            Reason::of(&Error::NeedClientCert("x".into()), server),
            Reason::NoClientCert
        );
        assert_eq!(
            Reason::of(&Error::NotSupported("compression".into()), server),
            Reason::RefusedUpgrade
        );
        assert_eq!(
            Reason::of(&Error::NotSupported("compression".into()), Role::Client),
            Reason::Other
        );
        assert_eq!(
            Reason::of(&Error::ServerStatus(-12345), Role::Client),
            Reason::RefusedUpgrade
        );
        assert_eq!(
            Reason::of(&Error::Closed("the TLS handshake"), server),
            Reason::Other
        );
    }
}
