//! The library's error type and its mapping onto libpcp's conventions
//! (negative `PM_ERR_*` values or `-errno`).

#![forbid(unsafe_code)]

use std::fmt;
use std::io;

use crate::metrics::Reason;
use crate::pcp;

/// Everything that can go wrong below the C boundary.
#[derive(Debug)]
pub enum Error {
    /// A system call failed.
    Io(io::Error),
    /// The peer did not complete a step before the deadline.
    Timeout(&'static str),
    /// The peer closed the connection before the step completed.
    Closed(&'static str),
    /// The peer broke the PCP protocol (wrong PDU type, bad length, flags).
    Protocol(String),
    /// TLS failed; the text says why, in words an administrator can act on.
    Tls(String),
    /// TLS failed for a reason the TLS metrics count by name (an untrusted
    /// issuer, a name mismatch, an expired certificate, a protocol error);
    /// the text says why, as for [`Error::Tls`].
    Rejected(Reason, String),
    /// The server requires a client certificate and we have none (or it
    /// refused ours for that reason).
    NeedClientCert(String),
    /// The server answered the secure request with this (negative) status.
    ServerStatus(i32),
    /// The request cannot be honoured here (no TLS configured, compression).
    NotSupported(String),
    /// A configuration file or setting is unusable.
    Config(String),
}

impl Error {
    /// The libpcp status code for this error.
    pub(crate) fn code(&self) -> i32 {
        match self {
            Error::Io(e) => -e.raw_os_error().unwrap_or(libc::EIO),
            Error::Timeout(_) => pcp::PM_ERR_TIMEOUT,
            Error::Closed(_) => pcp::PM_ERR_TLS,
            Error::Protocol(_) => pcp::PM_ERR_IPC,
            Error::Tls(_) | Error::Rejected(..) => pcp::PM_ERR_TLS,
            Error::NeedClientCert(_) => pcp::PM_ERR_NEEDCLIENTCERT,
            Error::ServerStatus(code) => *code,
            Error::NotSupported(_) => -libc::EOPNOTSUPP,
            Error::Config(_) => pcp::PM_ERR_NOTCONN,
        }
    }

    /// The errno to leave behind for callers that inspect `oserror()`.
    pub(crate) fn errno(&self) -> i32 {
        match self {
            Error::Io(e) => e.raw_os_error().unwrap_or(libc::EIO),
            Error::Timeout(_) => libc::ETIMEDOUT,
            Error::Closed(_) => libc::ECONNRESET,
            _ => libc::EPROTO,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io(e) => write!(f, "{e}"),
            Error::Timeout(what) => write!(f, "timed out waiting for {what}"),
            Error::Closed(what) => write!(f, "connection closed by peer during {what}"),
            Error::Protocol(what) => write!(f, "protocol error: {what}"),
            Error::Tls(what) | Error::Rejected(_, what) => f.write_str(what),
            Error::NeedClientCert(what) => f.write_str(what),
            Error::ServerStatus(code) => {
                write!(f, "server refused the secure connection (status {code})")
            }
            Error::NotSupported(what) => f.write_str(what),
            Error::Config(what) => f.write_str(what),
        }
    }
}

impl std::error::Error for Error {}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::Io(e)
    }
}

/// Result alias used throughout the crate.
pub type Result<T> = std::result::Result<T, Error>;
