//! The fd transport, used by the handshakes, the data path and the tool:
//! deadline-bounded waiting, exact reads and writes, an `io::Read +
//! io::Write` adapter for rustls, driving a rustls connection over the
//! descriptor (flush, one read step, a whole handshake, the server's
//! verdict), and the socket's addresses. Nothing here owns or closes the
//! descriptor.

use std::io;
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

use rustls::Connection;

use crate::error::{Error, Result};
use crate::tls::diagnose::{self, Peer};

/// A point in time after which a blocking step gives up.
#[derive(Clone, Copy, Debug)]
pub struct Deadline(Instant);

impl Deadline {
    /// A deadline `timeout` from now.
    pub fn after(timeout: Duration) -> Deadline {
        Deadline(Instant::now() + timeout)
    }

    /// The same deadline, `extra` later.
    pub(crate) fn extended(self, extra: Duration) -> Deadline {
        Deadline(self.0 + extra)
    }

    /// True once the deadline is reached.
    pub(crate) fn passed(&self) -> bool {
        Instant::now() >= self.0
    }

    /// The moment itself.
    pub(crate) fn instant(&self) -> Instant {
        self.0
    }

    fn remaining_ms(&self) -> i32 {
        let left = self.0.saturating_duration_since(Instant::now());
        // Round up so that a few microseconds left still means one more wait.
        i32::try_from(left.as_millis() + u128::from(left.subsec_nanos() % 1_000_000 != 0))
            .unwrap_or(i32::MAX)
    }
}

/// What to wait for on a descriptor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ready {
    /// Data (or end of file) to read.
    Read,
    /// Room to write.
    Write,
}

/// Waits until `fd` is ready or the deadline passes (`Error::Timeout`).
pub(crate) fn wait(fd: RawFd, ready: Ready, deadline: Deadline, what: &'static str) -> Result<()> {
    let events = match ready {
        Ready::Read => libc::POLLIN,
        Ready::Write => libc::POLLOUT,
    };
    loop {
        let ms = deadline.remaining_ms();
        if ms == 0 {
            return Err(Error::Timeout(what));
        }
        let mut pfd = libc::pollfd {
            fd,
            events,
            revents: 0,
        };
        // SAFETY: pfd is a valid pollfd for the duration of the call.
        let n = unsafe { libc::poll(&mut pfd, 1, ms) };
        if n > 0 {
            if pfd.revents & libc::POLLNVAL != 0 {
                return Err(Error::Io(io::Error::from_raw_os_error(libc::EBADF)));
            }
            return Ok(());
        }
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(Error::Io(err));
            }
        }
    }
}

/// True when the descriptor has `O_NONBLOCK` set.
pub(crate) fn is_nonblocking(fd: RawFd) -> bool {
    // SAFETY: F_GETFL takes no pointer argument.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    flags >= 0 && flags & libc::O_NONBLOCK != 0
}

/// One `recv` into `buf`; `Ok(0)` is end of file.
pub(crate) fn recv_some(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    recv_flags(fd, buf, 0)
}

/// One `recv` into `buf` with `flags`.
fn recv_flags(fd: RawFd, buf: &mut [u8], flags: libc::c_int) -> io::Result<usize> {
    loop {
        // SAFETY: buf is valid for writes of buf.len() bytes.
        let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), flags) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// One `send` from `buf`, never raising SIGPIPE.
pub(crate) fn send_some(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    send_flags(fd, buf, 0)
}

/// One `send` from `buf` with `flags`, never raising SIGPIPE.
fn send_flags(fd: RawFd, buf: &[u8], flags: libc::c_int) -> io::Result<usize> {
    loop {
        // SAFETY: buf is valid for reads of buf.len() bytes.
        let n = unsafe {
            libc::send(
                fd,
                buf.as_ptr().cast(),
                buf.len(),
                flags | libc::MSG_NOSIGNAL,
            )
        };
        if n >= 0 {
            return Ok(n as usize);
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// Reads exactly `buf.len()` bytes before the deadline.
pub(crate) fn read_exact(
    fd: RawFd,
    buf: &mut [u8],
    deadline: Deadline,
    what: &'static str,
) -> Result<()> {
    let mut have = 0;
    while have < buf.len() {
        wait(fd, Ready::Read, deadline, what)?;
        match recv_some(fd, &mut buf[have..]) {
            Ok(0) => return Err(Error::Closed(what)),
            Ok(n) => have += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(Error::Io(e)),
        }
    }
    Ok(())
}

/// Writes all of `buf` before the deadline.
pub(crate) fn write_all(
    fd: RawFd,
    buf: &[u8],
    deadline: Deadline,
    what: &'static str,
) -> Result<()> {
    let mut done = 0;
    while done < buf.len() {
        wait(fd, Ready::Write, deadline, what)?;
        match send_some(fd, &buf[done..]) {
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(Error::Io(e)),
        }
    }
    Ok(())
}

/// Adapter that lets rustls read and write TLS records on the descriptor.
pub(crate) struct FdIo(pub RawFd);

impl io::Read for FdIo {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        recv_some(self.0, buf)
    }
}

impl io::Write for FdIo {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        send_some(self.0, buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Like [`FdIo`], but never waits, whatever the descriptor's mode: a read
/// or write that would block fails with `WouldBlock`.
pub(crate) struct NoWait(pub RawFd);

impl io::Read for NoWait {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        recv_flags(self.0, buf, libc::MSG_DONTWAIT)
    }
}

impl io::Write for NoWait {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        send_flags(self.0, buf, libc::MSG_DONTWAIT)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Writes what rustls has queued as far as the socket takes it now;
/// `Ok(true)` when nothing is left.
pub(crate) fn flush_now(fd: RawFd, conn: &mut Connection) -> Result<bool> {
    while conn.wants_write() {
        match conn.write_tls(&mut NoWait(fd)) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) => return Err(Error::Io(e)),
        }
    }
    Ok(true)
}

/// Ends both directions of the connection at once (the peer sees the end
/// after anything already sent); the descriptor stays open for its owner.
pub(crate) fn shutdown(fd: RawFd) {
    // SAFETY: shutdown takes no pointers; a bad fd only returns an error.
    unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
}

/// Why a handshake step failed: a TLS error still to be explained with the
/// peer's details, or an error that already says it all.
pub enum Failure {
    /// rustls refused something.
    Tls(rustls::Error),
    /// Anything else (time-out, closed, I/O).
    Other(Error),
}

impl Failure {
    /// The error to report, in words for an administrator.
    pub fn explain(self, peer: &Peer) -> Error {
        match self {
            Failure::Tls(e) => diagnose::explain(&e, peer),
            Failure::Other(e) => e,
        }
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Other(e)
    }
}

/// Writes everything rustls has queued, waiting for room until the deadline.
pub fn flush(fd: RawFd, conn: &mut Connection, deadline: Deadline) -> Result<()> {
    while conn.wants_write() {
        match conn.write_tls(&mut FdIo(fd)) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                wait(fd, Ready::Write, deadline, "room to send TLS data")?
            }
            Err(e) => return Err(Error::Io(e)),
        }
    }
    Ok(())
}

/// Reads once from the descriptor into rustls (waiting until the deadline)
/// and processes what arrived. A TLS error is answered with its alert.
pub fn read_step(
    fd: RawFd,
    conn: &mut Connection,
    deadline: Deadline,
    what: &'static str,
) -> std::result::Result<(), Failure> {
    wait(fd, Ready::Read, deadline, what)?;
    match conn.read_tls(&mut FdIo(fd)) {
        Ok(0) => return Err(Error::Closed(what).into()),
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
        Err(e) if matches!(e.raw_os_error(), Some(libc::ECONNRESET | libc::EPIPE)) => {
            return Err(Error::Closed(what).into())
        }
        Err(e) => return Err(Error::Io(e).into()),
    }
    if let Err(e) = conn.process_new_packets() {
        // Let the peer know why (the alert rustls queued), best effort.
        let _ = flush(fd, conn, deadline);
        return Err(Failure::Tls(e));
    }
    Ok(())
}

/// Runs the TLS handshake to completion or the deadline, which moves later
/// by `paused` (time spent waiting for a person).
pub fn drive(
    fd: RawFd,
    conn: &mut Connection,
    deadline: Deadline,
    paused: &dyn Fn() -> Duration,
) -> std::result::Result<(), Failure> {
    loop {
        let deadline = deadline.extended(paused());
        flush(fd, conn, deadline)?;
        if !conn.is_handshaking() {
            return Ok(());
        }
        read_step(fd, conn, deadline, "the TLS handshake")?;
    }
}

/// After a TLS 1.3 client handshake in which the server asked for our
/// certificate: wait for the server's first records (session tickets when it
/// accepted us, an alert when not). A server that sends nothing costs only
/// the wait; it is not an error.
pub fn await_verdict(
    fd: RawFd,
    conn: &mut Connection,
    deadline: Deadline,
) -> std::result::Result<(), Failure> {
    match read_step(
        fd,
        conn,
        deadline,
        "the server's verdict on our certificate",
    ) {
        Err(Failure::Other(Error::Timeout(_))) => Ok(()),
        Err(Failure::Other(Error::Closed(_))) => Err(Failure::Tls(rustls::Error::AlertReceived(
            rustls::AlertDescription::CertificateRequired,
        ))),
        other => other,
    }
}

/// This machine's name as `gethostname()` gives it ("localhost" if that
/// fails).
pub fn local_host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: buf is writable for its length; gethostname NUL-terminates on success.
    if unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len() - 1) } != 0 {
        return "localhost".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// The peer's socket address and its length (`getpeername`).
pub(crate) fn peer_of(fd: RawFd) -> Result<(libc::sockaddr_storage, libc::socklen_t)> {
    // SAFETY: an all-zero sockaddr_storage is a valid value.
    let mut addr: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: addr is writable for len bytes, as getpeername is told.
    let rc = unsafe {
        libc::getpeername(
            fd,
            (&mut addr as *mut libc::sockaddr_storage).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(Error::Io(io::Error::last_os_error()));
    }
    Ok((addr, len))
}

/// The peer's TCP port; `None` for a unix socket or when unknown.
pub(crate) fn peer_port(fd: RawFd) -> Option<u16> {
    let (storage, _) = peer_of(fd).ok()?;
    match storage.ss_family as i32 {
        libc::AF_INET => {
            // SAFETY: the family says this is a sockaddr_in.
            let sin = unsafe {
                &*(&storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>()
            };
            Some(u16::from_be(sin.sin_port))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says this is a sockaddr_in6.
            let sin6 = unsafe {
                &*(&storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>()
            };
            Some(u16::from_be(sin6.sin6_port))
        }
        _ => None,
    }
}

/// "ADDRESS:PORT" of the peer, or "fd N" when unknown.
pub(crate) fn peer_address(fd: RawFd) -> String {
    let Ok((storage, _)) = peer_of(fd) else {
        return format!("on fd {fd}");
    };
    match storage.ss_family as i32 {
        libc::AF_INET => {
            // SAFETY: the family says this is a sockaddr_in.
            let sin = unsafe {
                &*(&storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>()
            };
            let ip = std::net::Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
            format!("{ip}:{}", u16::from_be(sin.sin_port))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says this is a sockaddr_in6.
            let sin6 = unsafe {
                &*(&storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>()
            };
            let ip = std::net::Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            format!("[{ip}]:{}", u16::from_be(sin6.sin6_port))
        }
        libc::AF_UNIX => "on a unix socket".into(),
        _ => format!("on fd {fd}"),
    }
}
