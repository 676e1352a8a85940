//! A server TLS connection that reads and writes a pair of OpenSSL memory
//! BIOs instead of a socket: pmproxy's HTTPS. pmproxy writes the network
//! bytes it read into the read BIO, asks for plaintext (`SSL_read_ex`),
//! hands plaintext to encrypt (`SSL_write`) and sends whatever appears in
//! the write BIO. Here rustls does the TLS; the BIOs stay libcrypto's own
//! objects, used only through libcrypto's functions.
//!
//! What pmproxy expects of each call, and what it gets: a read returns
//! plaintext, or says "want read" (send what is in the write BIO and wait
//! for the network), "zero return" (the client sent close_notify) or
//! "SSL" (a protocol error: pmproxy closes the client); a write takes all
//! of its bytes (memory BIOs never fill, so "want write" never happens, and
//! rustls never renegotiates, so neither does pmproxy's "want read" on a
//! write). No ALPN is offered: pmproxy speaks HTTP/1.x only.

#![forbid(unsafe_code)]

use std::io::{Read, Write};

use rustls::ServerConnection;

use crate::error::Result;
use crate::interpose::openssl::Bio;
use crate::log;
use crate::metrics::{self, Event, Reason};
use crate::tls::config::Role;
use crate::tls::diagnose::{self, Peer};
use crate::tls::store::store;

/// OpenSSL's `SSL_get_error` values that pmproxy acts on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub(crate) enum Status {
    /// `SSL_ERROR_NONE`: the last call succeeded.
    None = 0,
    /// `SSL_ERROR_SSL`: a TLS protocol error; the connection is over.
    Ssl = 1,
    /// `SSL_ERROR_WANT_READ`: more network input is needed.
    WantRead = 2,
    /// `SSL_ERROR_SYSCALL`: a call that cannot succeed (OpenSSL's answer
    /// to an empty write, or to a use without BIOs).
    Syscall = 5,
    /// `SSL_ERROR_ZERO_RETURN`: the client ended the session cleanly.
    ZeroReturn = 6,
}

/// Plaintext kept for pmproxy beyond this is a client misbehaving (pmproxy
/// reads at least as much as each network read brought).
const MAX_PENDING_PLAINTEXT: usize = 1 << 20;

/// One HTTPS client's TLS state.
#[derive(Debug)]
pub(crate) struct MemoryServer {
    conn: ServerConnection,
    rbio: Option<Bio>,
    wbio: Option<Bio>,
    /// Decrypted bytes not yet handed to pmproxy, from `taken` on.
    plain: Vec<u8>,
    taken: usize,
    /// The client sent close_notify.
    closed: bool,
    /// Why the connection failed, once it has.
    failed: Option<String>,
    status: Status,
    /// How far the handshake got, for the TLS metrics.
    progress: Progress,
}

/// How far an HTTPS client's handshake got (each is counted once in the
/// TLS metrics: completed, or failed and why).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Progress {
    /// No byte from the client yet.
    Waiting,
    /// The client's first bytes arrived.
    Started,
    /// The handshake completed.
    Established,
    /// The handshake failed (or the connection ended before it completed).
    Failed,
}

impl MemoryServer {
    /// A new HTTPS client of the installed server context (looked at again
    /// first if its files changed), requiring a client certificate when
    /// the program or `tls.conf` asks for one; `None` when no server
    /// context is installed.
    pub(crate) fn accept() -> Option<Result<MemoryServer>> {
        let ctx = store().server()?;
        // `tls-verify-clients` is applied by the context itself.
        let require = crate::tls::handshake::program_requires_cert();
        Some(ctx.connection(require).map(MemoryServer::new))
    }

    /// A connection that has no BIOs yet.
    pub(crate) fn new(mut conn: ServerConnection) -> MemoryServer {
        // The write BIO is unbounded memory, and pmproxy writes only in
        // answer to a request it has read: nothing needs rustls' limit.
        conn.set_buffer_limit(None);
        MemoryServer {
            conn,
            rbio: None,
            wbio: None,
            plain: Vec::new(),
            taken: 0,
            closed: false,
            failed: None,
            status: Status::None,
            progress: Progress::Waiting,
        }
    }

    /// Counts the handshake's failure for `reason` in the TLS metrics, if
    /// it started and has not ended yet.
    fn handshake_failed(&mut self, reason: Reason) {
        if self.progress == Progress::Started {
            self.progress = Progress::Failed;
            metrics::record(Event::Failed {
                role: Role::Server,
                reason,
            });
        }
    }

    /// Takes over the network BIOs (`SSL_set_bio`); BIOs set before and not
    /// set again are freed, and one BIO given for both directions is one.
    pub(crate) fn set_bios(&mut self, rbio: Option<Bio>, wbio: Option<Bio>) {
        let kept = [rbio.as_ref(), wbio.as_ref()].map(|b| b.map(Bio::as_ptr));
        let mut freed = None;
        for old in [self.rbio.take(), self.wbio.take()].into_iter().flatten() {
            let ptr = Some(old.as_ptr());
            if !kept.contains(&ptr) && freed != ptr {
                freed = ptr;
                old.free();
            }
        }
        self.rbio = rbio;
        self.wbio = wbio;
    }

    /// What the last read or write left (`SSL_get_error`).
    pub(crate) fn status(&self) -> Status {
        self.status
    }

    /// Decrypts what the read BIO holds and hands out up to `out.len()`
    /// bytes of plaintext (`SSL_read_ex`); `None` with [`Self::status`]
    /// saying why when there is none.
    pub(crate) fn read(&mut self, out: &mut [u8]) -> Option<usize> {
        if self.rbio.is_none() || self.wbio.is_none() {
            self.status = Status::Syscall;
            return None;
        }
        self.pull();
        let pending = &self.plain[self.taken..];
        if !pending.is_empty() && !out.is_empty() {
            let n = pending.len().min(out.len());
            out[..n].copy_from_slice(&pending[..n]);
            self.taken += n;
            if self.taken == self.plain.len() {
                self.plain.clear();
                self.taken = 0;
            }
            self.status = Status::None;
            return Some(n);
        }
        self.status = if self.failed.is_some() {
            Status::Ssl
        } else if self.closed {
            Status::ZeroReturn
        } else {
            Status::WantRead
        };
        None
    }

    /// Encrypts all of `data` into the write BIO (`SSL_write`); `None` with
    /// [`Self::status`] saying why when it cannot.
    pub(crate) fn write(&mut self, data: &[u8]) -> Option<usize> {
        if self.failed.is_some() {
            self.status = Status::Ssl;
            return None;
        }
        if data.is_empty() || self.wbio.is_none() {
            self.status = Status::Syscall;
            return None;
        }
        if let Err(e) = self.conn.writer().write_all(data) {
            self.fail(format!("cannot encrypt the reply: {e}"));
            self.status = Status::Ssl;
            return None;
        }
        if !self.flush() {
            self.status = Status::Ssl;
            return None;
        }
        self.status = Status::None;
        Some(data.len())
    }

    /// The client's certificate (leaf first), if it presented one that was
    /// verified.
    pub(crate) fn peer_certificate(&self) -> Option<&[u8]> {
        self.conn
            .peer_certificates()
            .and_then(|chain| chain.first())
            .map(|c| c.as_ref())
    }

    /// Frees both BIOs (once, also when they are one) and ends the
    /// connection (`SSL_free`).
    pub(crate) fn release(&mut self) {
        if self.progress == Progress::Established {
            metrics::record(Event::Closed);
        }
        // pmproxy gave up on (or the client left) an unfinished handshake.
        self.handshake_failed(Reason::Other);
        self.progress = Progress::Failed;
        self.set_bios(None, None);
        self.failed.get_or_insert_with(|| "freed".into());
    }

    /// Feeds everything in the read BIO to rustls, keeps the plaintext and
    /// queues rustls' answers (handshake, tickets, alerts) in the write BIO.
    fn pull(&mut self) {
        let mut chunk = [0u8; 16 * 1024];
        loop {
            let n = match &self.rbio {
                Some(rbio) => rbio.read(&mut chunk),
                None => 0,
            };
            if n == 0 {
                break;
            }
            if self.failed.is_none() {
                self.feed(&chunk[..n]);
            }
            // After a failure the input is drained and dropped.
        }
        self.flush();
    }

    /// Hands `data` (network bytes) to rustls.
    fn feed(&mut self, mut data: &[u8]) {
        if self.progress == Progress::Waiting && !data.is_empty() {
            self.progress = Progress::Started;
        }
        while !data.is_empty() && self.failed.is_none() {
            match self.conn.read_tls(&mut data) {
                Ok(0) => return, // after close_notify, input is ignored
                Ok(_) => {}
                Err(e) => return self.fail(format!("cannot take the client's data: {e}")),
            }
            let state = match self.conn.process_new_packets() {
                Ok(state) => state,
                Err(e) => {
                    let err = diagnose::explain(&e, &client_peer());
                    self.handshake_failed(Reason::of(&err, Role::Server));
                    return self.fail(err.to_string());
                }
            };
            if self.progress == Progress::Started && !self.conn.is_handshaking() {
                self.progress = Progress::Established;
                metrics::record(Event::established(Role::Server, &self.conn));
            }
            let available = state.plaintext_bytes_to_read();
            if available > 0 {
                let start = self.plain.len();
                self.plain.resize(start + available, 0);
                if let Err(e) = self.conn.reader().read_exact(&mut self.plain[start..]) {
                    self.plain.truncate(start);
                    return self.fail(format!("cannot decrypt the client's data: {e}"));
                }
                if self.plain.len() - self.taken > MAX_PENDING_PLAINTEXT {
                    return self.fail(format!(
                        "the client sent more than {} KiB that pmproxy did not read",
                        MAX_PENDING_PLAINTEXT / 1024
                    ));
                }
            }
            if state.peer_has_closed() {
                self.closed = true;
            }
        }
    }

    /// Moves what rustls has to send into the write BIO; false when the
    /// BIO refuses it.
    fn flush(&mut self) -> bool {
        let Some(wbio) = &self.wbio else { return false };
        let mut out = Vec::new();
        while self.conn.wants_write() {
            out.clear();
            if self.conn.write_tls(&mut out).is_err() {
                break;
            }
            if !wbio.write_all(&out) {
                self.fail("the reply cannot be queued (pmproxy's write buffer refused it)".into());
                return false;
            }
        }
        true
    }

    /// Records the connection's failure (rustls has queued the fatal alert
    /// where TLS defines one) and logs it once.
    fn fail(&mut self, why: String) {
        self.handshake_failed(Reason::Other);
        if self.failed.is_none() {
            log::warning!("HTTPS connection refused: {why}");
            self.failed = Some(why);
        }
    }
}

/// Who the other end is, for explaining a failure.
fn client_peer() -> Peer {
    Peer {
        role: Role::Server,
        name: "an HTTPS client".into(),
        service: "pmproxy",
        trust: String::new(),
        conf: String::new(),
        sent_cert: true,
    }
}
