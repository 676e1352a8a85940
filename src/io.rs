//! The data path on descriptors that have a TLS session: plaintext in and
//! out through rustls, with the same return conventions as libpcp's
//! `__pmSend`/`__pmRecv` (byte count, 0 at end of stream, negative on error).

use std::io::{self, Read, Write};
use std::os::fd::RawFd;

use crate::diagnose::Peer;
use crate::error::{Error, Result};
use crate::handshake::flush;
use crate::log;
use crate::session::Session;
use crate::sock::{self, Deadline, FdIo, Ready};

/// Encrypts and sends all of `buf`. Returns `buf.len()`.
pub fn send(fd: RawFd, session: &Session, buf: &[u8]) -> Result<usize> {
    let mut guard = session.lock();
    let conn = usable(&mut guard, session)?;
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
/// at most the session's time-out for the rest of it.
pub fn recv(fd: RawFd, session: &Session, buf: &mut [u8]) -> Result<usize> {
    let mut guard = session.lock();
    let conn = usable(&mut guard, session)?;
    let mut deadline: Option<Deadline> = None;
    loop {
        match conn.reader().read(buf) {
            Ok(n) => {
                session.update_pending(conn);
                return Ok(n);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                unclean_end(fd, session);
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
            Some(d) => sock::wait(fd, Ready::Read, d, "the rest of a TLS record")?,
        }
        match conn.read_tls(&mut FdIo(fd)) {
            Ok(0) => {
                // A close_notify would have ended the read above with Ok(0).
                unclean_end(fd, session);
                session.update_pending(conn);
                return Ok(0);
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if sock::is_nonblocking(fd) {
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
            let peer = Peer {
                role: session.role,
                name: session.peer.clone(),
                service: "pmcd",
                trust: String::new(),
                conf: "the file named by PCP_TLSCONF_PATH".into(),
                sent_cert: true,
            };
            let explained = crate::diagnose::explain(&e, &peer);
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
fn unclean_end(fd: RawFd, session: &Session) {
    match session.role {
        crate::config::Role::Client => log::warning!(
            "fd {fd}: the connection with pmcd on host \"{}\" ended without a TLS close_notify (it may have been cut)",
            session.peer
        ),
        crate::config::Role::Server => log::debug!(
            "fd {fd}: {} closed the connection without a TLS close_notify",
            session.peer
        ),
    }
}

/// The connection of a session, or the error for a refused descriptor.
fn usable<'a>(
    guard: &'a mut Option<rustls::Connection>,
    session: &Session,
) -> Result<&'a mut rustls::Connection> {
    guard.as_mut().ok_or_else(|| {
        Error::Tls(format!(
            "the secure connection with {} failed earlier; no data may pass",
            session.peer
        ))
    })
}

/// Sends close_notify, best effort and without waiting.
pub fn close(fd: RawFd, session: &Session) {
    let mut guard = session.lock();
    let Some(conn) = guard.as_mut() else { return };
    conn.send_close_notify();
    if let Err(e) = flush(
        fd,
        conn,
        Deadline::after(std::time::Duration::from_millis(0)),
    ) {
        log::debug!("fd {fd}: close_notify to {} not sent: {e}", session.peer);
    }
}
