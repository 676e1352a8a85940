//! The table of TLS sessions, one per file descriptor whose secure upgrade
//! began: a server handshake still in progress (pmcd's, which runs alongside
//! its other clients), an established connection, or a refused one. It is the
//! single place where per-fd TLS state lives; every data-path call looks its
//! descriptor up here, and descriptors not in the table are plain sockets.

#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::tls::config::Role;
use crate::tls::diagnose::Peer;
use crate::tls::transport::Deadline;

/// Where a descriptor's secure upgrade stands.
#[derive(Debug)]
enum State {
    /// A server handshake in progress, advanced as the client's bytes arrive
    /// (see `tls::accept`): the connection, and who is at the other end.
    Accepting {
        conn: Box<rustls::Connection>,
        peer: Peer,
    },
    /// TLS is up: the connection, and who is at the other end (for
    /// explaining a failure on the data path).
    Established {
        conn: Box<rustls::Connection>,
        peer: Peer,
    },
    /// The secure upgrade failed: the descriptor must never carry
    /// plaintext afterwards, so every read and write on it fails.
    Refused,
}

/// One descriptor's TLS state.
#[derive(Debug)]
pub(crate) struct Session {
    /// Held only while one call works on the connection.
    state: Mutex<State>,
    /// Plaintext is buffered inside the TLS layer, waiting to be read; read
    /// by the `select` hook without taking `state`.
    pub(crate) pending: AtomicBool,
    /// Which end we are.
    pub(crate) role: Role,
    /// The peer, for messages: the host name typed by the user, or "client".
    pub(crate) peer: String,
    /// Bound on waiting for the rest of a TLS record once reading started.
    pub(crate) io_timeout: Duration,
    /// The handshake is still in progress (read by the `select` hook without
    /// taking `state`).
    accepting: AtomicBool,
    /// When a handshake in progress must be done.
    pub(crate) deadline: Option<Deadline>,
}

impl Session {
    /// A session wrapping an established connection with `peer`.
    pub(crate) fn new(mut conn: rustls::Connection, peer: Peer, io_timeout: Duration) -> Session {
        let pending = plaintext_waiting(&mut conn);
        Session {
            role: peer.role,
            peer: peer.name.clone(),
            state: Mutex::new(State::Established {
                conn: Box::new(conn),
                peer,
            }),
            pending: AtomicBool::new(pending),
            io_timeout,
            accepting: AtomicBool::new(false),
            deadline: None,
        }
    }

    /// A server session whose handshake with `peer` has begun and goes on
    /// as the client's bytes arrive; it must be done by `deadline`.
    pub(crate) fn accepting(
        conn: rustls::Connection,
        peer: Peer,
        io_timeout: Duration,
        deadline: Deadline,
    ) -> Session {
        Session {
            role: peer.role,
            peer: peer.name.clone(),
            state: Mutex::new(State::Accepting {
                conn: Box::new(conn),
                peer,
            }),
            pending: AtomicBool::new(false),
            io_timeout,
            accepting: AtomicBool::new(true),
            deadline: Some(deadline),
        }
    }

    /// A descriptor whose secure upgrade failed: it stays unusable until
    /// it is closed, so that a peer that failed TLS cannot go on in plaintext.
    pub(crate) fn refused(role: Role, peer: String) -> Session {
        Session {
            state: Mutex::new(State::Refused),
            pending: AtomicBool::new(false),
            role,
            peer,
            io_timeout: Duration::ZERO,
            accepting: AtomicBool::new(false),
            deadline: None,
        }
    }

    fn lock(&self) -> Result<MutexGuard<'_, State>> {
        self.state.lock().map_err(|_| {
            Error::Tls(format!(
                "the secure connection with {} broke in an internal error; no data may pass",
                self.peer
            ))
        })
    }

    /// True while the server handshake is still in progress.
    pub(crate) fn is_accepting(&self) -> bool {
        self.accepting.load(Ordering::Acquire)
    }

    /// Runs `f` on the connection of a handshake in progress; `None` when
    /// the handshake is over (or the lock was poisoned).
    pub(crate) fn while_accepting<R>(
        &self,
        f: impl FnOnce(&mut rustls::Connection, &Peer) -> R,
    ) -> Option<R> {
        let mut guard = self.lock().ok()?;
        match &mut *guard {
            State::Accepting { conn, peer } => Some(f(conn, peer)),
            _ => None,
        }
    }

    /// The handshake in progress completed: the session is established
    /// (plaintext that came with the client's last flight is noted as
    /// pending).
    pub(crate) fn establish(&self) {
        let Ok(mut guard) = self.lock() else {
            return;
        };
        if let State::Accepting { .. } = &*guard {
            if let State::Accepting { mut conn, peer } =
                std::mem::replace(&mut *guard, State::Refused)
            {
                self.update_pending(&mut conn);
                *guard = State::Established { conn, peer };
            }
        }
        self.accepting.store(false, Ordering::Release);
    }

    /// The upgrade (or the session) failed: from now on no data may pass.
    pub(crate) fn refuse(&self) {
        if let Ok(mut guard) = self.lock() {
            *guard = State::Refused;
        }
        self.pending.store(false, Ordering::Release);
        self.accepting.store(false, Ordering::Release);
    }

    /// Runs `f` on the connection: established, or with its handshake still
    /// in progress (what is sent then waits inside TLS for the handshake to
    /// end). A refused descriptor fails, and so does one whose lock a panic
    /// poisoned (its TLS state is then unknown: fail closed, never guess).
    pub(crate) fn with<R>(
        &self,
        f: impl FnOnce(&mut rustls::Connection, &Peer) -> Result<R>,
    ) -> Result<R> {
        let mut guard = self.lock()?;
        match &mut *guard {
            State::Established { conn, peer } | State::Accepting { conn, peer } => f(conn, peer),
            State::Refused => Err(Error::Tls(format!(
                "the secure connection with {} failed earlier; no data may pass",
                self.peer
            ))),
        }
    }

    /// `f` of the established connection, if there is one.
    pub(crate) fn with_connection<R>(&self, f: impl FnOnce(&rustls::Connection) -> R) -> Option<R> {
        self.with(|conn, _| Ok(f(conn))).ok()
    }

    /// Records whether plaintext is waiting, after a call used the
    /// connection.
    pub(crate) fn update_pending(&self, conn: &mut rustls::Connection) {
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
pub(crate) struct Table {
    map: Mutex<HashMap<RawFd, Arc<Session>>>,
}

static TABLE: std::sync::LazyLock<Table> = std::sync::LazyLock::new(|| Table {
    map: Mutex::new(HashMap::new()),
});

/// The process-wide session table.
pub(crate) fn table() -> &'static Table {
    &TABLE
}

impl Table {
    fn map(&self) -> MutexGuard<'_, HashMap<RawFd, Arc<Session>>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers `fd`'s session. PCP closes its sockets through
    /// `__pmCloseSocket`, which removes the entry; an entry still present
    /// for a new handshake on the same number is replaced.
    pub(crate) fn insert(&self, fd: RawFd, session: Session) {
        if let Some(old) = self.map().insert(fd, Arc::new(session)) {
            crate::log::debug!(
                "fd {fd}: replaced a session with {} that was never closed",
                old.peer
            );
        }
    }

    /// The session of `fd`, if it is a TLS descriptor.
    pub(crate) fn get(&self, fd: RawFd) -> Option<Arc<Session>> {
        self.map().get(&fd).cloned()
    }

    /// Removes and returns `fd`'s session.
    pub(crate) fn remove(&self, fd: RawFd) -> Option<Arc<Session>> {
        self.map().remove(&fd)
    }

    /// Calls `f` for each descriptor below `nfds` whose session holds
    /// undelivered plaintext.
    pub(crate) fn for_each_pending(&self, nfds: RawFd, mut f: impl FnMut(RawFd)) {
        let map = self.map();
        for (&fd, session) in map.iter() {
            if fd < nfds && session.pending.load(Ordering::Acquire) {
                f(fd);
            }
        }
    }

    /// The sessions below `nfds` whose server handshake is in progress.
    pub(crate) fn accepting(&self, nfds: RawFd) -> Vec<(RawFd, Arc<Session>)> {
        self.map()
            .iter()
            .filter(|(&fd, s)| fd < nfds && s.is_accepting())
            .map(|(&fd, s)| (fd, Arc::clone(s)))
            .collect()
    }

    /// True when some server handshake is in progress.
    pub(crate) fn any_accepting(&self) -> bool {
        self.map().values().any(|s| s.is_accepting())
    }

    /// True when no descriptor uses TLS (lets the `select` hook skip work).
    pub(crate) fn is_empty(&self) -> bool {
        self.map().is_empty()
    }
}
