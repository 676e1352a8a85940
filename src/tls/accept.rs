//! Server handshakes that run alongside pmcd's other clients. pmcd serves
//! every client from one thread, so after the secure-ack the handshake is not
//! waited for: the session is registered as accepting, and each time the
//! `select` hook sees the client's bytes arrive it advances the handshake
//! without waiting ([`advance`]). pmcd is told the descriptor is readable only
//! when plaintext is there or when the connection has ended. Handshakes not
//! done by their deadline are ended by the hook too ([`tend`]), whoever else
//! pmcd is serving. A program that reads such a descriptor without asking
//! `select` first waits for the handshake, up to its deadline ([`finish`]).
//!
//! A failed handshake leaves the descriptor refused (no plaintext may pass):
//! the peer gets the fatal alert rustls chose, never a close_notify, and the
//! connection is shut down at once.

#![forbid(unsafe_code)]

use std::io;
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

use rustls::Connection;

use crate::error::Error;
use crate::log;
use crate::tls::diagnose::Peer;
use crate::tls::handshake::describe;
use crate::tls::session::{table, Session};
use crate::tls::transport::{self, drive, flush_now, Deadline, Failure, NoWait};

/// What is waited for in a handshake, for messages.
const WHAT: &str = "the TLS handshake";

/// How soon to try again to send handshake data the socket did not take.
const RETRY_WRITE: Duration = Duration::from_millis(50);

/// Registers the server handshake of `conn` with `peer` on `fd`; it goes on
/// as the client's bytes arrive and must be done by `deadline`.
pub(crate) fn start(
    fd: RawFd,
    conn: Connection,
    peer: Peer,
    io_timeout: Duration,
    deadline: Deadline,
) {
    table().insert(fd, Session::accepting(conn, peer, io_timeout, deadline));
}

/// Advances the handshake of `session` on `fd` with whatever has arrived,
/// without waiting. True when the caller should now see the descriptor as
/// readable: the handshake completed and plaintext came with it, or the
/// handshake failed (the descriptor is then refused and shut down, so the
/// reader finds the end).
pub(crate) fn advance(fd: RawFd, session: &Session) -> bool {
    let Some(step) = session.while_accepting(|conn, peer| step(fd, conn, peer)) else {
        // Done meanwhile (or refused): let the reader find out.
        return true;
    };
    match step {
        Ok(false) => false,
        Ok(true) => {
            session.establish();
            session.pending.load(std::sync::atomic::Ordering::Acquire)
        }
        Err(e) => {
            fail(fd, session, &e);
            true
        }
    }
}

/// One step without waiting: reads what is there, lets rustls process it,
/// sends what it answers. `Ok(true)` once the handshake is complete.
fn step(fd: RawFd, conn: &mut Connection, peer: &Peer) -> Result<bool, Error> {
    while conn.is_handshaking() {
        match conn.read_tls(&mut NoWait(fd)) {
            Ok(0) => return Err(Error::Closed(WHAT)),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if matches!(e.raw_os_error(), Some(libc::ECONNRESET | libc::EPIPE)) => {
                return Err(Error::Closed(WHAT))
            }
            Err(e) => return Err(Error::Io(e)),
        }
        if let Err(e) = conn.process_new_packets() {
            // Tell the peer why: the fatal alert rustls queued.
            let _ = flush_now(fd, conn);
            return Err(Failure::Tls(e).explain(peer));
        }
        flush_now(fd, conn)?;
    }
    flush_now(fd, conn)?;
    if conn.is_handshaking() {
        return Ok(false);
    }
    log::debug!(
        "fd {fd}: TLS with {} established ({})",
        peer.name,
        describe(conn)
    );
    Ok(true)
}

/// Ends the handshakes whose deadline has passed, and sends what the
/// others could not send earlier. Returns when the caller's wait must end
/// at the latest for the next of these duties, if any handshake is left.
pub(crate) fn tend() -> Option<Instant> {
    let mut next: Option<Instant> = None;
    for (fd, session) in table().accepting(RawFd::MAX) {
        let Some(deadline) = session.deadline else {
            continue;
        };
        if deadline.passed() {
            fail(fd, &session, &Error::Timeout(WHAT));
            continue;
        }
        let mut wake = deadline.instant();
        let sent = session.while_accepting(|conn, _| flush_now(fd, conn));
        match sent {
            Some(Ok(false)) => wake = wake.min(Instant::now() + RETRY_WRITE),
            Some(Err(e)) => {
                fail(fd, &session, &e);
                continue;
            }
            _ => {}
        }
        next = Some(next.map_or(wake, |n| n.min(wake)));
    }
    next
}

/// Completes the handshake of `session` on `fd` (if it is still in
/// progress), waiting for the client up to the handshake's deadline: for a
/// read that did not wait in `select` first.
pub(crate) fn finish(fd: RawFd, session: &Session) -> crate::error::Result<()> {
    let deadline = session
        .deadline
        .unwrap_or_else(|| Deadline::after(Duration::ZERO));
    let Some(result) = session.while_accepting(|conn, peer| {
        drive(fd, conn, deadline, &Duration::default)
            .map(|()| {
                log::debug!(
                    "fd {fd}: TLS with {} established ({})",
                    peer.name,
                    describe(conn)
                )
            })
            .map_err(|f| f.explain(peer))
    }) else {
        return Ok(());
    };
    match result {
        Ok(()) => {
            session.establish();
            Ok(())
        }
        Err(e) => {
            fail(fd, session, &e);
            Err(e)
        }
    }
}

/// Ends a session that failed: logged, refused (no plaintext, no
/// close_notify later), and the connection shut down at once so that the
/// peer sees the end and the reader of `fd` finds it.
pub(crate) fn fail(fd: RawFd, session: &Session, e: &Error) {
    log::error!(
        "secure connection from {} (fd {fd}) refused: {e}",
        session.peer
    );
    end(fd, session);
}

/// Ends a session without a word: refused, and the connection shut down.
pub(crate) fn end(fd: RawFd, session: &Session) {
    session.refuse();
    transport::shutdown(fd);
}
