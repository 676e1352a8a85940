//! A second connection in place of a caller's descriptor: used once, when a
//! server aborted the TLS handshake because it was offered a session to
//! resume (stock pmcd and pmproxy abort every resumption attempt with a fatal
//! `internal_error` alert). The descriptor is connected again to the same
//! address, the plaintext part of the PCP connection is replayed (the
//! server's greeting, our credentials with the same flags, its secure-ack
//! status), and the new socket takes the old descriptor's number, so the
//! caller (libpcp, which keeps per-descriptor state) never notices.

use std::io;
use std::os::fd::RawFd;

use crate::error::{Error, Result};
use crate::pcp;
use crate::tls::transport::{self, Deadline, Ready};

/// What precedes TLS on the connection being replaced.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Preamble {
    /// Nothing: TLS starts at once (HTTPS).
    None,
    /// The PCP exchange: greeting, credentials with these flags, secure-ack.
    Pcp {
        /// The connection flags the client sent (`PDU_FLAG_*`).
        flags: i32,
    },
}

/// Connects a new socket to `fd`'s peer, replays `preamble` on it, and puts
/// it in `fd`'s place (same number, same blocking mode and close-on-exec
/// flag, same `TCP_NODELAY` and `SO_KEEPALIVE`). On failure `fd` is left
/// as it was.
pub(crate) fn redial(fd: RawFd, preamble: Preamble, deadline: Deadline) -> Result<()> {
    let (addr, len) = transport::peer_of(fd)?;
    // SAFETY: socket() takes no pointers.
    let new = unsafe {
        libc::socket(
            i32::from(addr.ss_family),
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            0,
        )
    };
    if new < 0 {
        return Err(Error::Io(io::Error::last_os_error()));
    }
    let result = connect(new, &addr, len, deadline)
        .and_then(|()| replay(new, preamble, deadline))
        .and_then(|()| take_place(fd, new));
    // SAFETY: new is our own descriptor; fd (when it took new's place) is
    // a separate descriptor for the same socket.
    unsafe { libc::close(new) };
    result
}

fn connect(
    fd: RawFd,
    addr: &libc::sockaddr_storage,
    len: libc::socklen_t,
    deadline: Deadline,
) -> Result<()> {
    // SAFETY: addr is a valid address of len bytes (from getpeername).
    let rc = unsafe { libc::connect(fd, (addr as *const libc::sockaddr_storage).cast(), len) };
    if rc == 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    if err.raw_os_error() != Some(libc::EINPROGRESS) {
        return Err(Error::Io(err));
    }
    transport::wait(fd, Ready::Write, deadline, "connecting again")?;
    let mut so_error: libc::c_int = 0;
    let mut size = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: so_error is writable for size bytes.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            (&mut so_error as *mut libc::c_int).cast(),
            &mut size,
        )
    };
    if rc != 0 {
        return Err(Error::Io(io::Error::last_os_error()));
    }
    if so_error != 0 {
        return Err(Error::Io(io::Error::from_raw_os_error(so_error)));
    }
    Ok(())
}

/// The credentials PDU libpcp sends: one version credential carrying the
/// connection flags (see pcp-wire-protocol-and-abi.md, section 3.2).
fn creds_pdu(flags: i32) -> [u8; 20] {
    let mut pdu = [0u8; 20];
    pdu[0..4].copy_from_slice(&20i32.to_be_bytes());
    pdu[4..8].copy_from_slice(&pcp::PDU_CREDS.to_be_bytes());
    // SAFETY: getpid takes no arguments and cannot fail.
    pdu[8..12].copy_from_slice(&unsafe { libc::getpid() }.to_be_bytes());
    pdu[12..16].copy_from_slice(&1i32.to_be_bytes());
    pdu[16] = pcp::CVERSION;
    pdu[17] = pcp::PDU_VERSION;
    pdu[18..20].copy_from_slice(&(flags as u16).to_be_bytes());
    pdu
}

fn replay(fd: RawFd, preamble: Preamble, deadline: Deadline) -> Result<()> {
    let Preamble::Pcp { flags } = preamble else {
        return Ok(());
    };
    read_greeting(fd, deadline)?;
    send_creds(fd, flags, deadline)?;
    if flags & pcp::PDU_FLAG_SECURE_ACK != 0 {
        let status = crate::tls::ack::read(fd, deadline)?;
        if status < 0 {
            return Err(Error::ServerStatus(status));
        }
    }
    Ok(())
}

/// What pmcd's greeting says about the connection.
#[derive(Clone, Copy, Debug)]
pub struct Greeting {
    /// PCP protocol version.
    pub version: u8,
    /// The feature bits (`PDU_FLAG_*` values) pmcd offers.
    pub features: u16,
}

/// Reads pmcd's greeting (a 20-byte error PDU with status 0 and its
/// connection information).
pub fn read_greeting(fd: RawFd, deadline: Deadline) -> Result<Greeting> {
    let what = "pmcd's greeting";
    let mut greeting = [0u8; pcp::PDU_XERROR_LEN];
    transport::read_exact(fd, &mut greeting, deadline, what)?;
    let len = i32::from_be_bytes([greeting[0], greeting[1], greeting[2], greeting[3]]);
    let kind = i32::from_be_bytes([greeting[4], greeting[5], greeting[6], greeting[7]]);
    if len != pcp::PDU_XERROR_LEN as i32 || kind != pcp::PDU_ERROR {
        return Err(Error::Protocol(format!(
            "the connection did not start with pmcd's greeting (type {kind:#x}, length {len})"
        )));
    }
    // The greeting is an error PDU too, decoded as the secure-ack is.
    let status = crate::tls::ack::status(&greeting[pcp::PDU_HEADER_LEN..]);
    if status != 0 {
        return Err(Error::ServerStatus(status));
    }
    Ok(Greeting {
        version: greeting[16] & 0x7f,
        features: u16::from_be_bytes([greeting[18], greeting[19]]),
    })
}

/// Sends our credentials: PCP's version with the connection `flags`.
pub fn send_creds(fd: RawFd, flags: i32, deadline: Deadline) -> Result<()> {
    transport::write_all(fd, &creds_pdu(flags), deadline, "sending the credentials")
}

fn int_option(fd: RawFd, level: libc::c_int, name: libc::c_int) -> Option<libc::c_int> {
    let mut value: libc::c_int = 0;
    let mut size = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: value is writable for size bytes.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            level,
            name,
            (&mut value as *mut libc::c_int).cast(),
            &mut size,
        )
    };
    (rc == 0).then_some(value)
}

/// Gives `new` the old descriptor's options, then its number.
fn take_place(fd: RawFd, new: RawFd) -> Result<()> {
    for (level, name) in [
        (libc::IPPROTO_TCP, libc::TCP_NODELAY),
        (libc::SOL_SOCKET, libc::SO_KEEPALIVE),
    ] {
        if let Some(value) = int_option(fd, level, name) {
            // SAFETY: value is readable for its size; failure is harmless
            // (a unix socket has no TCP_NODELAY).
            unsafe {
                libc::setsockopt(
                    new,
                    level,
                    name,
                    (&value as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
        }
    }
    // SAFETY: fcntl with F_GETFL/F_GETFD takes no pointer.
    let (status, fd_flags) = unsafe {
        (
            libc::fcntl(fd, libc::F_GETFL),
            libc::fcntl(fd, libc::F_GETFD),
        )
    };
    if status < 0 || fd_flags < 0 {
        return Err(Error::Io(io::Error::last_os_error()));
    }
    // SAFETY: as above; F_SETFL takes an int.
    if unsafe { libc::fcntl(new, libc::F_SETFL, status & libc::O_NONBLOCK) } < 0 {
        return Err(Error::Io(io::Error::last_os_error()));
    }
    // SAFETY: both are open descriptors; dup2 closes the old socket at fd.
    if unsafe { libc::dup2(new, fd) } < 0 {
        return Err(Error::Io(io::Error::last_os_error()));
    }
    // SAFETY: F_SETFD takes an int; dup2 cleared FD_CLOEXEC on fd.
    unsafe { libc::fcntl(fd, libc::F_SETFD, fd_flags) };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_match_the_documented_bytes() {
        let pdu = creds_pdu(pcp::PDU_FLAG_SECURE | pcp::PDU_FLAG_SECURE_ACK);
        assert_eq!(&pdu[0..8], &[0, 0, 0, 0x14, 0, 0, 0x70, 0x0c]);
        assert_eq!(&pdu[12..20], &[0, 0, 0, 1, 1, 2, 0, 0x11]);
    }

    #[test]
    fn redial_replaces_the_descriptor_with_a_new_connection() {
        use std::io::{Read, Write};
        use std::os::fd::AsRawFd;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let first = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut old_peer, _) = listener.accept().unwrap();
        redial(
            first.as_raw_fd(),
            Preamble::None,
            Deadline::after(std::time::Duration::from_secs(30)),
        )
        .unwrap();
        let (mut new_peer, _) = listener.accept().unwrap();
        // The old connection is gone: its peer reads the end of the stream.
        let mut buf = [0u8; 4];
        assert_eq!(old_peer.read(&mut buf).unwrap(), 0);
        // The descriptor now talks to the new peer.
        (&first).write_all(b"ping").unwrap();
        new_peer.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"ping");
    }
}
