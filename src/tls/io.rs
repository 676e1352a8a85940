//! The data path on descriptors that have a TLS session: plaintext in and
//! out through rustls, with the same return conventions as libpcp's
//! `__pmSend`/`__pmRecv` (byte count, 0 at end of stream, negative on error).

#![forbid(unsafe_code)]

use std::io::{self, Read, Write};
use std::os::fd::RawFd;

use rustls::Connection;

use crate::error::{Error, Result};
use crate::log;
use crate::tls::diagnose::Peer;
use crate::tls::session::Session;
use crate::tls::transport::{self, flush, Deadline, FdIo, Ready};

/// Encrypts and sends all of `buf`. Returns `buf.len()`. While a server
/// handshake is still in progress, the plaintext waits inside TLS until the
/// handshake completes (pmcd may answer a client's credentials with an
/// error before then).
pub(crate) fn send(fd: RawFd, session: &Session, buf: &[u8]) -> Result<usize> {
    let result = session.with(|conn, _| send_on(fd, conn, session, buf));
    ended_on_failure(fd, session, result)
}

/// After a failure on a server's session, no data may pass any more and the
/// connection ends at once: the client has had the fatal alert (if TLS has
/// one for the failure) and never gets a close_notify after it.
fn ended_on_failure<T>(fd: RawFd, session: &Session, result: Result<T>) -> Result<T> {
    match &result {
        Err(Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {}
        Err(_) if session.role == crate::tls::config::Role::Server => {
            crate::tls::accept::end(fd, session)
        }
        _ => {}
    }
    result
}

fn send_on(fd: RawFd, conn: &mut Connection, session: &Session, buf: &[u8]) -> Result<usize> {
    let deadline = Deadline::after(session.io_timeout);
    let mut done = 0;
    while done < buf.len() {
        let n = conn.writer().write(&buf[done..])?;
        done += n;
        flush(fd, conn, deadline)?;
    }
    // An empty send still flushes anything queued (alerts, key updates).
    flush(fd, conn, deadline)?;
    Ok(done)
}

/// Receives up to `buf.len()` bytes of plaintext. Blocks like `recv` on a
/// blocking socket for the first TLS bytes; once a record has started, waits
/// at most the session's time-out for the rest of it. A server handshake
/// still in progress (a reader that did not ask `select` first) is
/// completed first, up to its deadline.
pub(crate) fn recv(fd: RawFd, session: &Session, buf: &mut [u8]) -> Result<usize> {
    crate::tls::accept::finish(fd, session)?;
    let result = session.with(|conn, peer| recv_on(fd, conn, peer, session, buf));
    ended_on_failure(fd, session, result)
}

fn recv_on(
    fd: RawFd,
    conn: &mut Connection,
    peer: &Peer,
    session: &Session,
    buf: &mut [u8],
) -> Result<usize> {
    let mut deadline: Option<Deadline> = None;
    loop {
        match conn.reader().read(buf) {
            Ok(n) => {
                session.update_pending(conn);
                return Ok(n);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                unclean_end(fd, session, peer);
                session.update_pending(conn);
                return Ok(0);
            }
            Err(e) => return Err(Error::Io(e)),
        }
        if buf.is_empty() {
            return Ok(0);
        }
        match deadline {
            // The caller waited for readability (or wants to block); read.
            None => deadline = Some(Deadline::after(session.io_timeout)),
            Some(d) => transport::wait(fd, Ready::Read, d, "the rest of a TLS record")?,
        }
        match conn.read_tls(&mut FdIo(fd)) {
            Ok(0) => {
                // A close_notify would have ended the read above with Ok(0).
                unclean_end(fd, session, peer);
                session.update_pending(conn);
                return Ok(0);
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if transport::is_nonblocking(fd) {
                    return Err(Error::Io(e));
                }
                continue;
            }
            Err(e) => return Err(Error::Io(e)),
        }
        if let Err(e) = conn.process_new_packets() {
            let d = deadline.unwrap_or_else(|| Deadline::after(session.io_timeout));
            let _ = flush(fd, conn, d);
            session
                .pending
                .store(false, std::sync::atomic::Ordering::Release);
            let explained = crate::tls::diagnose::explain(&e, peer);
            log::error!("fd {fd}: {explained}");
            // libpcp passes PM_ERR_TLS up unchanged; other codes would turn
            // into "IPC protocol failure", so keep the words in the log line.
            return Err(Error::Tls(explained.to_string()));
        }
        if conn.wants_write() {
            // Post-handshake messages (key updates) need an answer.
            flush(
                fd,
                conn,
                deadline.unwrap_or_else(|| Deadline::after(session.io_timeout)),
            )?;
        }
    }
}

/// The peer closed the connection without TLS's close_notify: the stream
/// may have been cut (in the middle of a record, even). A server vanishing
/// like that is worth a warning; a client doing it is routine (programs
/// exit without closing), so only debug.
fn unclean_end(fd: RawFd, session: &Session, peer: &Peer) {
    match session.role {
        crate::tls::config::Role::Client => log::warning!(
            "fd {fd}: the connection with {} on host \"{}\" ended without a TLS close_notify (it may have been cut)",
            peer.service,
            session.peer
        ),
        crate::tls::config::Role::Server => log::debug!(
            "fd {fd}: {} closed the connection without a TLS close_notify",
            session.peer
        ),
    }
}

/// Sends close_notify, best effort and without waiting; nothing for a
/// handshake that never completed (nor for a failed session).
pub(crate) fn close(fd: RawFd, session: &Session) {
    if session.is_accepting() {
        return;
    }
    let _ = session.with(|conn, _| {
        close_on(fd, conn, session);
        Ok(())
    });
}

fn close_on(fd: RawFd, conn: &mut Connection, session: &Session) {
    conn.send_close_notify();
    if let Err(e) = flush(
        fd,
        conn,
        Deadline::after(std::time::Duration::from_millis(0)),
    ) {
        log::debug!("fd {fd}: close_notify to {} not sent: {e}", session.peer);
    }
}
