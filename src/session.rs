//! The table of TLS sessions, one per file descriptor that completed a
//! handshake. It is the single place where per-fd TLS state lives; every
//! data-path call looks its descriptor up here, and descriptors not in the
//! table are plain sockets.

use std::collections::HashMap;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::config::Role;

/// One descriptor's TLS state.
#[derive(Debug)]
pub struct Session {
    /// The rustls connection; held only while one call works on it. `None`
    /// marks a descriptor whose secure upgrade failed: it must never carry
    /// plaintext afterwards, so every read and write on it fails.
    conn: Mutex<Option<rustls::Connection>>,
    /// Plaintext is buffered inside the TLS layer, waiting to be read; read
    /// by the `select` hook without taking `conn`.
    pub pending: AtomicBool,
    /// Which end we are.
    pub role: Role,
    /// The peer, for messages: the host name typed by the user, or "client".
    pub peer: String,
    /// Bound on waiting for the rest of a TLS record once reading started.
    pub io_timeout: Duration,
}

impl Session {
    /// A session wrapping an established connection.
    pub fn new(
        mut conn: rustls::Connection,
        role: Role,
        peer: String,
        io_timeout: Duration,
    ) -> Session {
        let pending = plaintext_waiting(&mut conn);
        Session {
            conn: Mutex::new(Some(conn)),
            pending: AtomicBool::new(pending),
            role,
            peer,
            io_timeout,
        }
    }

    /// A descriptor whose secure upgrade failed: it stays unusable until
    /// it is closed, so that a peer that failed TLS cannot go on in plaintext.
    pub fn refused(role: Role, peer: String) -> Session {
        Session {
            conn: Mutex::new(None),
            pending: AtomicBool::new(false),
            role,
            peer,
            io_timeout: Duration::ZERO,
        }
    }

    /// Locks the connection (a poisoned lock is still usable: rustls state
    /// is consistent between calls). `None` inside: a refused descriptor.
    pub fn lock(&self) -> MutexGuard<'_, Option<rustls::Connection>> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records whether plaintext is waiting, after a call used `conn`.
    pub fn update_pending(&self, conn: &mut rustls::Connection) {
        self.pending
            .store(plaintext_waiting(conn), Ordering::Release);
    }
}

/// True when the connection holds decrypted data not yet read, or a pending
/// error that the next read should report.
fn plaintext_waiting(conn: &mut rustls::Connection) -> bool {
    conn.process_new_packets()
        .map(|state| state.plaintext_bytes_to_read() > 0)
        .unwrap_or(true)
}

/// The table itself.
pub struct Table {
    map: Mutex<HashMap<RawFd, Arc<Session>>>,
}

static TABLE: std::sync::LazyLock<Table> = std::sync::LazyLock::new(|| Table {
    map: Mutex::new(HashMap::new()),
});

/// The process-wide session table.
pub fn table() -> &'static Table {
    &TABLE
}

impl Table {
    fn map(&self) -> MutexGuard<'_, HashMap<RawFd, Arc<Session>>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers `fd`'s session. PCP closes its sockets through
    /// `__pmCloseSocket`, which removes the entry; an entry still present
    /// for a new handshake on the same number is replaced.
    pub fn insert(&self, fd: RawFd, session: Session) {
        if let Some(old) = self.map().insert(fd, Arc::new(session)) {
            crate::log::debug!(
                "fd {fd}: replaced a session with {} that was never closed",
                old.peer
            );
        }
    }

    /// The session of `fd`, if it is a TLS descriptor.
    pub fn get(&self, fd: RawFd) -> Option<Arc<Session>> {
        self.map().get(&fd).cloned()
    }

    /// Removes and returns `fd`'s session.
    pub fn remove(&self, fd: RawFd) -> Option<Arc<Session>> {
        self.map().remove(&fd)
    }

    /// Calls `f` for each descriptor below `nfds` whose session holds
    /// undelivered plaintext.
    pub fn for_each_pending(&self, nfds: RawFd, mut f: impl FnMut(RawFd)) {
        let map = self.map();
        for (&fd, session) in map.iter() {
            if fd < nfds && session.pending.load(Ordering::Acquire) {
                f(fd);
            }
        }
    }

    /// True when no descriptor uses TLS (lets the `select` hook skip work).
    pub fn is_empty(&self) -> bool {
        self.map().is_empty()
    }
}
