//! Raw socket operations on a caller's file descriptor: deadline-bounded
//! waiting, exact reads and writes, and an `io::Read + io::Write` adapter for
//! rustls. Nothing here owns or closes the descriptor.

use std::io;
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// A point in time after which a blocking step gives up.
#[derive(Clone, Copy, Debug)]
pub struct Deadline(Instant);

impl Deadline {
    /// A deadline `timeout` from now.
    pub fn after(timeout: Duration) -> Deadline {
        Deadline(Instant::now() + timeout)
    }

    /// The same deadline, `extra` later.
    pub fn extended(self, extra: Duration) -> Deadline {
        Deadline(self.0 + extra)
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
pub enum Ready {
    /// Data (or end of file) to read.
    Read,
    /// Room to write.
    Write,
}

/// Waits until `fd` is ready or the deadline passes (`Error::Timeout`).
pub fn wait(fd: RawFd, ready: Ready, deadline: Deadline, what: &'static str) -> Result<()> {
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
pub fn is_nonblocking(fd: RawFd) -> bool {
    // SAFETY: F_GETFL takes no pointer argument.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    flags >= 0 && flags & libc::O_NONBLOCK != 0
}

/// One `recv` into `buf`; `Ok(0)` is end of file.
pub fn recv_some(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        // SAFETY: buf is valid for writes of buf.len() bytes.
        let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
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
pub fn send_some(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    loop {
        // SAFETY: buf is valid for reads of buf.len() bytes.
        let n = unsafe { libc::send(fd, buf.as_ptr().cast(), buf.len(), libc::MSG_NOSIGNAL) };
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
pub fn read_exact(fd: RawFd, buf: &mut [u8], deadline: Deadline, what: &'static str) -> Result<()> {
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
pub fn write_all(fd: RawFd, buf: &[u8], deadline: Deadline, what: &'static str) -> Result<()> {
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
pub struct FdIo(pub RawFd);

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
