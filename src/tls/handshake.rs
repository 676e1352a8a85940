//! The secure upgrade of a PCP connection, both ends: the plaintext
//! secure-ack status, then a TLS handshake on the same descriptor bounded by
//! a deadline (on the server, usually only begun here and then advanced by
//! `tls::accept`), then registration of the session in the table.

use std::os::fd::RawFd;
use std::sync::atomic::Ordering;
use std::time::Duration;

use rustls::pki_types::ServerName;
use rustls::{AlertDescription, Connection, ProtocolVersion};

use crate::error::{Error, Result};
use crate::log;
use crate::metrics::{self, Event};
use crate::pcp;
use crate::tls::accept;
use crate::tls::ack;
use crate::tls::config::{self, Role};
use crate::tls::diagnose::Peer;
use crate::tls::redial::{redial, Preamble};
use crate::tls::session::{table, Session};
use crate::tls::store::{store, ClientContext};
use crate::tls::transport::{
    self, await_verdict, drive, local_host_name, peer_address, peer_port, Deadline, Failure,
};

/// Client side: read the server's status (when it sends one), verify the
/// server over TLS, and register the session. `host` is what the user typed.
pub(crate) fn client(fd: RawFd, flags: i32, host: Option<&str>) -> Result<()> {
    let name = host_for_tls(host);
    let result = client_inner(fd, flags, &name);
    if let Err(e) = &result {
        log::error!("secure connection to pmcd on host \"{name}\" failed: {e}");
        metrics::record(Event::failed(Role::Client, e));
        table().insert(fd, Session::refused(Role::Client, name));
    }
    result
}

/// HTTPS client side (PCP 7.2 push from pmlogger and pmlogpush to pmproxy):
/// a verified TLS handshake on the connected `fd` with the server `host`,
/// with no PCP exchange before it, then registration of the session so
/// that libpcp's `__pmSend`/`__pmRecv` carry the HTTP request inside TLS.
/// A failure leaves the descriptor refused: nothing can be sent on it.
pub(crate) fn https_client(fd: RawFd, host: &str) -> Result<()> {
    let name = host
        .trim()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let result = if name.is_empty() || name.starts_with('.') {
        Err(Error::Tls(format!(
            "\"{host}\" is not a host name that a certificate can be checked against"
        )))
    } else {
        let timeout = config::handshake_timeout(Role::Client);
        store().client().and_then(|ctx| {
            let conf = conf_words(&ctx);
            upgrade(
                fd,
                &ctx,
                Target {
                    name: &name,
                    port: peer_port(fd),
                    service: "pmproxy",
                    conf: &conf,
                    preamble: Preamble::None,
                },
                timeout,
                Deadline::after(timeout),
            )
        })
    };
    if let Err(e) = &result {
        log::error!("secure connection to pmproxy on host \"{name}\" failed: {e}");
        metrics::record(Event::failed(Role::Client, e));
        table().insert(fd, Session::refused(Role::Client, name));
    }
    result
}

/// "\"FILE\"" of the client's tls.conf, for advice in messages.
fn conf_words(ctx: &ClientContext) -> String {
    ctx.conf_path
        .as_ref()
        .map(|p| format!("\"{}\"", p.display()))
        .unwrap_or_else(|| "the file named by PCP_TLSCONF_PATH".to_string())
}

fn client_inner(fd: RawFd, flags: i32, name: &str) -> Result<()> {
    let timeout = config::handshake_timeout(Role::Client);
    let deadline = Deadline::after(timeout);
    let ctx = store().client()?;
    let conf = conf_words(&ctx);
    if flags & pcp::PDU_FLAG_SECURE_ACK != 0 {
        let status = ack::read(fd, deadline)?;
        if status < 0 {
            return Err(Error::ServerStatus(status));
        }
    }
    if flags & pcp::PDU_FLAG_CERT_REQD != 0 && !ctx.has_identity() {
        return Err(Error::NeedClientCert(format!(
            "pmcd on host \"{name}\" requires a client certificate; set tls-client-cert-file and tls-client-key-file in {conf}"
        )));
    }
    let target = Target {
        name,
        // Through pmproxy's relay the socket's port is pmproxy's, not pmcd's.
        port: if config::env::through_pmproxy() {
            None
        } else {
            peer_port(fd)
        },
        service: "pmcd",
        conf: &conf,
        preamble: Preamble::Pcp { flags },
    };
    upgrade(fd, &ctx, target, timeout, deadline)
}

/// The server a client handshake is for.
#[derive(Clone, Copy)]
struct Target<'a> {
    /// The host name to verify, as typed.
    name: &'a str,
    /// The server's port, when known (trust store entries are per port).
    port: Option<u16>,
    /// "pmcd" or "pmproxy", for messages.
    service: &'static str,
    /// The client's tls.conf, for advice.
    conf: &'a str,
    /// What to replay on a new connection if the server refuses resumption.
    preamble: Preamble,
}

/// Runs the verified client handshake. A server that aborts it because a
/// session was offered for resumption (stock pmcd and pmproxy do, with a
/// fatal `internal_error`) is never offered one again, and the connection
/// is made once more with a full handshake in the same descriptor.
fn upgrade(
    fd: RawFd,
    ctx: &ClientContext,
    target: Target<'_>,
    timeout: Duration,
    deadline: Deadline,
) -> Result<()> {
    match tls_client(fd, ctx, target, timeout, deadline) {
        Err(Attempt::ResumptionRefused) => {
            ctx.stop_resuming(target.name, target.port);
            log::debug!(
                "{} on host \"{}\" refused to resume a TLS session (stock PCP does); connecting again with a full handshake, and sessions with it are no longer resumed",
                target.service,
                target.name
            );
            let deadline = Deadline::after(timeout);
            redial(fd, target.preamble, deadline)?;
            tls_client(fd, ctx, target, timeout, deadline).map_err(|a| match a {
                Attempt::Failed(e) => e,
                Attempt::ResumptionRefused => Error::Tls(format!(
                    "{} on host \"{}\" refused the TLS handshake with an internal error",
                    target.service, target.name
                )),
            })
        }
        Err(Attempt::Failed(e)) => Err(e),
        Ok(()) => Ok(()),
    }
}

/// True for the errors of a server that gave up on us: it closed, timed
/// out, or its end of the socket is gone (a write after it closed).
fn peer_went_away(e: &Error) -> bool {
    match e {
        Error::Closed(_) | Error::Timeout(_) => true,
        Error::Io(io) => matches!(io.raw_os_error(), Some(libc::EPIPE | libc::ECONNRESET)),
        _ => false,
    }
}

/// How one handshake attempt failed.
enum Attempt {
    /// For a reason to report.
    Failed(Error),
    /// The server aborted because we offered to resume a session.
    ResumptionRefused,
}

impl From<Error> for Attempt {
    fn from(e: Error) -> Self {
        Attempt::Failed(e)
    }
}

fn tls_client(
    fd: RawFd,
    ctx: &ClientContext,
    target: Target<'_>,
    timeout: Duration,
    deadline: Deadline,
) -> std::result::Result<(), Attempt> {
    let name = target.name;
    let server_name = ServerName::try_from(name.to_string()).map_err(|e| {
        Error::Tls(format!(
            "host name \"{name}\" cannot be checked against a certificate ({e})"
        ))
    })?;
    let (conn, scope) = ctx.connection(server_name, name, target.port)?;
    let mut conn = Connection::Client(conn);
    let mut peer = Peer {
        role: Role::Client,
        name: name.to_string(),
        service: target.service,
        trust: ctx.trust_source.clone(),
        conf: target.conf.to_string(),
        sent_cert: false,
    };
    // Time spent waiting for the user to answer a trust question does not
    // count against the handshake time-out.
    let prompt_time = || Duration::from_millis(scope.prompt_ms.load(Ordering::Relaxed));
    let result = drive(fd, &mut conn, deadline, &prompt_time);
    let asked = scope.asked.load(Ordering::Relaxed);
    peer.sent_cert = asked && ctx.has_identity();
    if matches!(
        result,
        Err(Failure::Tls(rustls::Error::AlertReceived(
            AlertDescription::InternalError
        )))
    ) && scope.offered_resumption.load(Ordering::Relaxed)
    {
        return Err(Attempt::ResumptionRefused);
    }
    result.map_err(|f| match f {
        Failure::Other(e) if scope.saved.load(Ordering::Relaxed) && peer_went_away(&e) => Error::Tls(format!(
            "{} on host \"{name}\" gave up while the question was being answered; the certificate was saved, so connect again",
            target.service
        )),
        f => f.explain(&peer),
    })?;
    if asked && conn.protocol_version() == Some(ProtocolVersion::TLSv1_3) {
        // In TLS 1.3 the server judges our certificate (or its absence) after
        // our handshake is done: wait for its verdict, its first records.
        await_verdict(fd, &mut conn, deadline.extended(prompt_time()))
            .map_err(|f| f.explain(&peer))?;
    }
    log::debug!(
        "fd {fd}: TLS with {} on host \"{name}\" established ({}, {} handshake)",
        target.service,
        describe(&conn),
        match conn.handshake_kind() {
            Some(rustls::HandshakeKind::Resumed) => "resumed",
            _ => "full",
        }
    );
    metrics::record(Event::established(Role::Client, &conn));
    table().insert(fd, Session::new(conn, peer, timeout));
    Ok(())
}

/// True when the program itself asks for client certificates (`pmcd -Q`,
/// `pmproxy -Q`: libpcp's CERT_REQD feature bit). `tls-verify-clients` is
/// the server context's own rule, which [`ServerContext::connection`]
/// applies to every connection.
///
/// [`ServerContext::connection`]: crate::tls::store::ServerContext::connection
pub(crate) fn program_requires_cert() -> bool {
    crate::interpose::next::has_feature()
        // SAFETY: libpcp's function of this type; no pointers.
        .is_some_and(|f| unsafe { f(pcp::FEATURE_CERT_REQD) } != 0)
}

/// True when every client must present a certificate: the program asks
/// for it ([`program_requires_cert`]) or `tls-verify-clients = true` is
/// configured (the CERT_REQD feature pmcd advertises).
pub(crate) fn server_requires_cert() -> bool {
    program_requires_cert() || store().server().is_some_and(|s| s.verify_clients())
}

/// Server side: tell the client whether TLS can go ahead, then accept its
/// TLS handshake (requiring a certificate when asked to). When nothing
/// follows the handshake inside this call (`defer`), the handshake is only
/// begun here and goes on alongside the server's other clients
/// (`tls::accept`); otherwise (SASL or a container attribute follow, which
/// libpcp and pmcd read at once) it is waited for here, up to the blocking
/// bound. Either way the session is registered.
pub(crate) fn server(fd: RawFd, flags: i32, require_cert: bool, defer: bool) -> Result<()> {
    let who = format!("client {}", peer_address(fd));
    let result = server_inner(fd, flags, require_cert, defer, &who);
    if let Err(e) = &result {
        log::error!("secure connection from {who} (fd {fd}) refused: {e}");
        metrics::record(Event::failed(Role::Server, e));
        // pmcd keeps the client open after a failed upgrade: make sure it
        // cannot carry on in plaintext, and end the connection (anything
        // already sent, such as the refusing status or alert, still arrives)
        // so that the peer sees a close and pmcd's next read sees the end.
        table().insert(fd, Session::refused(Role::Server, who));
        transport::shutdown(fd);
    }
    result
}

fn server_inner(fd: RawFd, flags: i32, require_cert: bool, defer: bool, who: &str) -> Result<()> {
    let timeout = config::handshake_timeout(Role::Server);
    let deadline = Deadline::after(if defer {
        config::accept_timeout()
    } else {
        timeout
    });
    let send_ack = flags & pcp::PDU_FLAG_SECURE_ACK != 0;
    let refuse = |err: Error| -> Result<()> {
        if send_ack {
            // Tell the client why, in plaintext, so it never starts TLS.
            let _ = ack::send(fd, err.code(), deadline);
        }
        Err(err)
    };
    if flags & pcp::PDU_FLAG_COMPRESS != 0 {
        return refuse(Error::NotSupported(
            "the client asked for compression, which is not supported".into(),
        ));
    }
    let Some(ctx) = store().server() else {
        return refuse(Error::NotSupported(
            "the client asked for TLS but this server has no usable TLS configuration (tls-cert-file and tls-key-file, or tls-nssdb)".into(),
        ));
    };
    let conn = match ctx.connection(require_cert) {
        Ok(c) => c,
        Err(e) => return refuse(e),
    };
    if send_ack {
        // Sixteen bytes into the socket of a client that has sent one PDU
        // and waits for this one: the send buffer always has room for them.
        ack::send(fd, 0, deadline)?;
    }
    let mut conn = Connection::Server(conn);
    let peer = Peer {
        role: Role::Server,
        name: who.to_string(),
        service: "pmcd",
        trust: ctx.served().to_string(),
        conf: String::new(),
        sent_cert: true,
    };
    if defer {
        accept::start(fd, conn, peer, timeout, deadline);
        return Ok(());
    }
    drive(fd, &mut conn, deadline, &Duration::default).map_err(|f| f.explain(&peer))?;
    log::debug!("fd {fd}: TLS with {who} established ({})", describe(&conn));
    metrics::record(Event::established(Role::Server, &conn));
    table().insert(fd, Session::new(conn, peer, timeout));
    Ok(())
}

/// The name to verify the server against: the host as typed, without IPv6
/// brackets; this machine's name for local (unix socket) connections.
fn host_for_tls(host: Option<&str>) -> String {
    match host.map(str::trim) {
        Some(h)
            if !h.is_empty()
                && !h.starts_with('/')
                && !h.starts_with("local:")
                && !h.starts_with("unix:") =>
        {
            h.trim_start_matches('[').trim_end_matches(']').to_string()
        }
        _ => local_host_name(),
    }
}

/// "TLSv1_3 TLS13_AES_256_GCM_SHA384 X25519MLKEM768" for a connection:
/// version, cipher suite and key-exchange group (OpenSSL's name; the
/// group is left out when rustls does not know it, as after a TLS 1.2
/// resumption).
pub fn describe(conn: &Connection) -> String {
    let version = conn
        .protocol_version()
        .map(|v| format!("{v:?}"))
        .unwrap_or_else(|| "?".into());
    let suite = conn
        .negotiated_cipher_suite()
        .map(|s| format!("{:?}", s.suite()))
        .unwrap_or_else(|| "?".into());
    match conn.negotiated_key_exchange_group() {
        Some(group) => format!(
            "{version} {suite} {}",
            crate::tls::groups::name(group.name())
        ),
        None => format!("{version} {suite}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_for_verification() {
        assert_eq!(host_for_tls(Some("localhost")), "localhost");
        assert_eq!(host_for_tls(Some("[::1]")), "::1");
        assert_eq!(host_for_tls(Some("pcp.example")), "pcp.example");
        assert_eq!(
            host_for_tls(Some("/run/pcp/pmcd.socket")),
            local_host_name()
        );
        assert_eq!(host_for_tls(None), local_host_name());
    }
}
