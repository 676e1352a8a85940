//! Turns rustls errors into messages that say what went wrong, with whom and
//! what to change: the host name the user typed, the trust source, the
//! setting at fault.

#![forbid(unsafe_code)]

use rustls::{AlertDescription, CertificateError};

use crate::error::Error;
use crate::metrics::Reason;
use crate::tls::config::Role;

/// Who the other end is, and what we know that helps explain a failure.
#[derive(Clone, Debug)]
pub struct Peer {
    /// Which end we are.
    pub role: Role,
    /// Client: the host name as typed. Server: "client ADDRESS".
    pub name: String,
    /// Client: what the server is ("pmcd", or "pmproxy" for HTTPS push).
    pub service: &'static str,
    /// Client: where trust comes from (CA file/dir or system store).
    /// Server: where the served certificate comes from (tls-cert-file, or
    /// the nickname and database of tls-nssdb).
    pub trust: String,
    /// The tls.conf in use, for "set X in FILE" advice.
    pub conf: String,
    /// Whether we presented a certificate of our own.
    pub sent_cert: bool,
}

/// Explains a TLS failure.
pub(crate) fn explain(err: &rustls::Error, peer: &Peer) -> Error {
    match peer.role {
        Role::Client => client(err, peer),
        Role::Server => server(err, peer),
    }
}

/// What is wrong with a certificate itself, in words (dates, revocation,
/// signature, encoding, purpose); `None` for the errors whose words depend
/// on the peer (issuer, name) and for anything else.
pub fn certificate(err: &CertificateError) -> Option<String> {
    Some(match err {
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
            "the certificate has expired".into()
        }
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            "the certificate is not valid yet (check the clocks)".into()
        }
        CertificateError::Revoked => "the certificate has been revoked (listed in a CRL)".into(),
        CertificateError::BadSignature => "the certificate's signature is invalid".into(),
        CertificateError::BadEncoding => "the certificate is malformed".into(),
        CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
            "the certificate is not issued for this use (extended key usage)".into()
        }
        _ => return None,
    })
}

fn client(err: &rustls::Error, peer: &Peer) -> Error {
    let host = &peer.name;
    let service = peer.service;
    match err {
        rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => Error::Rejected(Reason::UntrustedIssuer, format!(
            "issuer of certificate received from host \"{host}\" is not trusted (trusted CAs come from {})",
            peer.trust
        )),
        rustls::Error::InvalidCertificate(CertificateError::NotValidForNameContext { presented, .. }) => {
            Error::Rejected(Reason::NameMismatch, format!(
                "the domain name \"{host}\" does not match the name(s) on the server certificate: {}",
                if presented.is_empty() { "(none)".to_string() } else { presented.join(", ") }
            ))
        }
        rustls::Error::InvalidCertificate(CertificateError::NotValidForName) => Error::Rejected(Reason::NameMismatch, format!(
            "the domain name \"{host}\" does not match the name(s) on the server certificate"
        )),
        rustls::Error::InvalidCertificate(c) => rejected(
            certificate_reason(c),
            match certificate(c) {
                Some(why) => format!("refusing the certificate of host \"{host}\": {why}"),
                None => format!("refusing the certificate of host \"{host}\": {err}"),
            },
        ),
        rustls::Error::AlertReceived(AlertDescription::CertificateRequired) => Error::NeedClientCert(format!(
            "{service} on host \"{host}\" requires a client certificate; set tls-client-cert-file and tls-client-key-file in {}",
            peer.conf
        )),
        rustls::Error::AlertReceived(alert) if peer.sent_cert && rejects_certificate(*alert) => rejected(alert_reason(*alert), format!(
            "{service} on host \"{host}\" rejected our client certificate (TLS alert {})",
            tls_name(alert)
        )),
        rustls::Error::AlertReceived(alert) if !peer.sent_cert && rejects_certificate(*alert) => {
            Error::NeedClientCert(format!(
                "{service} on host \"{host}\" requires a client certificate (TLS alert {}); set tls-client-cert-file and tls-client-key-file in {}",
                tls_name(alert),
                peer.conf
            ))
        }
        rustls::Error::AlertReceived(AlertDescription::HandshakeFailure | AlertDescription::ProtocolVersion) => {
            Error::Rejected(Reason::ProtocolError, format!("{service} on host \"{host}\" has no TLS version or cipher suite in common with us"))
        }
        rustls::Error::AlertReceived(alert) => {
            Error::Tls(format!("{service} on host \"{host}\" ended the TLS session (TLS alert {})", tls_name(alert)))
        }
        rustls::Error::PeerIncompatible(why) => {
            Error::Rejected(Reason::ProtocolError, format!("{service} on host \"{host}\" is incompatible with our TLS settings ({})", tls_name(why)))
        }
        rustls::Error::InvalidMessage(_) | rustls::Error::PeerMisbehaved(_) => {
            Error::Rejected(Reason::ProtocolError, format!("host \"{host}\" does not speak TLS correctly ({err})"))
        }
        _ => Error::Tls(format!("TLS with host \"{host}\" failed: {err}")),
    }
}

/// A TLS name in words as the standards spell it: rustls' `InternalError`
/// alert is TLS's `internal_error`, `Tls12NotOffered` reads
/// `tls12_not_offered`. Never Rust's own debug text.
fn tls_name(value: &impl std::fmt::Debug) -> String {
    let debug = format!("{value:?}");
    let name = debug.split('(').next().unwrap_or(&debug);
    let mut out = String::with_capacity(name.len() + 4);
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else if c.is_ascii_alphanumeric() {
            out.push(c);
        }
    }
    out
}

/// The error for a failure of kind `reason`: counted by name, or (for
/// [`Reason::Other`]) plain TLS.
fn rejected(reason: Reason, text: String) -> Error {
    match reason {
        Reason::Other => Error::Tls(text),
        reason => Error::Rejected(reason, text),
    }
}

/// The kind of a certificate's own fault.
fn certificate_reason(err: &CertificateError) -> Reason {
    match err {
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => Reason::Expired,
        CertificateError::UnknownIssuer => Reason::UntrustedIssuer,
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            Reason::NameMismatch
        }
        _ => Reason::Other,
    }
}

/// The kind of failure a peer's alert about our certificate reports, as
/// rustls (and most TLS stacks) choose their alerts: `unknown_ca` for an
/// untrusted issuer, `certificate_expired`, and `bad_certificate` for a
/// name that is not on it.
fn alert_reason(alert: AlertDescription) -> Reason {
    match alert {
        AlertDescription::UnknownCA => Reason::UntrustedIssuer,
        AlertDescription::CertificateExpired => Reason::Expired,
        AlertDescription::BadCertificate => Reason::NameMismatch,
        _ => Reason::Other,
    }
}

fn rejects_certificate(alert: AlertDescription) -> bool {
    matches!(
        alert,
        AlertDescription::BadCertificate
            | AlertDescription::UnknownCA
            | AlertDescription::CertificateUnknown
            | AlertDescription::UnsupportedCertificate
            | AlertDescription::CertificateExpired
            | AlertDescription::CertificateRevoked
            | AlertDescription::AccessDenied
    )
}

fn server(err: &rustls::Error, peer: &Peer) -> Error {
    let who = &peer.name;
    match err {
        rustls::Error::NoCertificatesPresented => Error::NeedClientCert(format!(
            "{who} presented no client certificate, but one is required (pmcd -Q, the client's request, or tls-verify-clients = true)"
        )),
        rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => Error::Rejected(Reason::UntrustedIssuer, format!(
            "{who} presented a client certificate whose issuer is not trusted (check tls-ca-cert-file / tls-ca-cert-dir)"
        )),
        rustls::Error::InvalidCertificate(c) => rejected(
            certificate_reason(c),
            match certificate(c) {
                Some(why) => format!("{who} presented an unacceptable client certificate: {why}"),
                None => format!("{who} presented an unacceptable client certificate: {err}"),
            },
        ),
        rustls::Error::InvalidMessage(_) | rustls::Error::PeerMisbehaved(_) => {
            Error::Rejected(Reason::ProtocolError, format!("{who} does not speak TLS correctly ({err})"))
        }
        rustls::Error::PeerIncompatible(why) => {
            Error::Rejected(Reason::ProtocolError, format!("{who} has no TLS version or cipher suite in common with us ({})", tls_name(why)))
        }
        rustls::Error::AlertReceived(alert) if rejects_certificate(*alert) => rejected(alert_reason(*alert), format!(
            "{who} does not accept this server's certificate (TLS alert {}); it must trust the CA that issued the {} and connect with a host name the certificate lists",
            tls_name(alert),
            if peer.trust.is_empty() { "served certificate" } else { &peer.trust }
        )),
        _ => Error::Tls(format!("TLS with {who} failed: {err}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_names_read_as_the_standards_spell_them() {
        assert_eq!(tls_name(&AlertDescription::InternalError), "internal_error");
        assert_eq!(
            tls_name(&AlertDescription::CertificateRequired),
            "certificate_required"
        );
        assert_eq!(
            tls_name(&rustls::PeerIncompatible::Tls12NotOffered),
            "tls12_not_offered"
        );
    }

    fn peer(role: Role, sent_cert: bool) -> Peer {
        Peer {
            role,
            name: "pcp.example".into(),
            service: "pmcd",
            trust: "tls-ca-cert-file \"/ca\"".into(),
            conf: "/tls.conf".into(),
            sent_cert,
        }
    }

    #[test]
    fn untrusted_issuer_names_host_and_trust() {
        let e = explain(
            &rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer),
            &peer(Role::Client, false),
        );
        let text = e.to_string();
        assert!(
            text.contains("\"pcp.example\"")
                && text.contains("not trusted")
                && text.contains("/ca"),
            "{text}"
        );
    }

    #[test]
    fn certificate_required_alert_is_need_client_cert() {
        let e = explain(
            &rustls::Error::AlertReceived(AlertDescription::CertificateRequired),
            &peer(Role::Client, false),
        );
        assert_eq!(e.code(), crate::pcp::PM_ERR_NEEDCLIENTCERT);
        assert!(e.to_string().contains("/tls.conf"));
    }

    #[test]
    fn rejected_certificate_when_one_was_sent() {
        let e = explain(
            &rustls::Error::AlertReceived(AlertDescription::UnknownCA),
            &peer(Role::Client, true),
        );
        assert_eq!(e.code(), crate::pcp::PM_ERR_TLS);
        assert!(e.to_string().contains("rejected our client certificate"));
    }

    #[test]
    fn failures_carry_the_kind_the_metrics_count() {
        let kind = |err: rustls::Error, role, sent_cert| {
            Reason::of(&explain(&err, &peer(role, sent_cert)), role)
        };
        use rustls::Error::{
            AlertReceived, InvalidCertificate, InvalidMessage, NoCertificatesPresented,
        };
        let (client, server) = (Role::Client, Role::Server);
        assert_eq!(
            kind(
                InvalidCertificate(CertificateError::UnknownIssuer),
                client,
                false
            ),
            Reason::UntrustedIssuer
        );
        assert_eq!(
            kind(
                InvalidCertificate(CertificateError::NotValidForName),
                client,
                false
            ),
            Reason::NameMismatch
        );
        assert_eq!(
            kind(InvalidCertificate(CertificateError::Expired), client, false),
            Reason::Expired
        );
        assert_eq!(
            kind(InvalidCertificate(CertificateError::Revoked), client, false),
            Reason::Other
        );
        assert_eq!(
            kind(
                AlertReceived(AlertDescription::CertificateRequired),
                client,
                false
            ),
            Reason::NoClientCert
        );
        assert_eq!(
            kind(
                InvalidMessage(rustls::InvalidMessage::InvalidContentType),
                client,
                false
            ),
            Reason::ProtocolError
        );
        assert_eq!(
            kind(
                AlertReceived(AlertDescription::ProtocolVersion),
                client,
                false
            ),
            Reason::ProtocolError
        );
        assert_eq!(
            kind(NoCertificatesPresented, server, false),
            Reason::NoClientCert
        );
        assert_eq!(
            kind(
                InvalidCertificate(CertificateError::UnknownIssuer),
                server,
                true
            ),
            Reason::UntrustedIssuer
        );
        assert_eq!(
            kind(InvalidCertificate(CertificateError::Expired), server, true),
            Reason::Expired
        );
        assert_eq!(
            kind(AlertReceived(AlertDescription::UnknownCA), server, true),
            Reason::UntrustedIssuer
        );
        assert_eq!(
            kind(
                AlertReceived(AlertDescription::BadCertificate),
                server,
                true
            ),
            Reason::NameMismatch
        );
        assert_eq!(
            kind(
                AlertReceived(AlertDescription::CertificateExpired),
                server,
                true
            ),
            Reason::Expired
        );
        assert_eq!(
            kind(AlertReceived(AlertDescription::AccessDenied), server, true),
            Reason::Other
        );
        assert_eq!(
            kind(
                InvalidMessage(rustls::InvalidMessage::InvalidContentType),
                server,
                true
            ),
            Reason::ProtocolError
        );
        assert_eq!(
            kind(AlertReceived(AlertDescription::DecodeError), server, true),
            Reason::Other
        );
    }

    #[test]
    fn server_side_missing_certificate() {
        let e = explain(
            &rustls::Error::NoCertificatesPresented,
            &peer(Role::Server, false),
        );
        assert_eq!(e.code(), crate::pcp::PM_ERR_NEEDCLIENTCERT);
    }
}
