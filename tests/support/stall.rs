//! Clients that stop in the middle of pmcd's secure upgrade, at each stage
//! of the TLS handshake, or that trickle it; a TLS client driven by hand
//! (rustls) to get as far as its Finished; pmcd's open descriptors from
//! /proc.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

use crate::{client_hello, RawClient, PDU_FLAG_SECURE, PDU_FLAG_SECURE_ACK, RAW_LIMIT};

/// Where a [`Stalled`] client stops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Credentials asking for TLS sent, secure-ack read, then nothing.
    AfterCreds,
    /// Half a ClientHello.
    PartialHello,
    /// A whole ClientHello; the server's answer is left unanswered.
    AfterHello,
    /// The client's last flight (with its Finished) all but its last bytes.
    MidFinished,
}

impl Stage {
    /// Every stage, in handshake order.
    pub const ALL: [Stage; 4] = [
        Stage::AfterCreds,
        Stage::PartialHello,
        Stage::AfterHello,
        Stage::MidFinished,
    ];
}

/// A client connection stopped at a [`Stage`].
pub struct Stalled {
    pub stream: TcpStream,
    pub stage: Stage,
}

/// A rustls client trusting the PEM CA file `ca`, for "localhost".
pub fn tls_client(ca: &Path) -> rustls::ClientConnection {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).expect("CA file") {
        roots.add(cert.expect("CA certificate")).expect("CA added");
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from("localhost".to_string()).expect("server name");
    rustls::ClientConnection::new(Arc::new(config), name).expect("client connection")
}

/// Connects to pmcd at `addr`, asks for TLS and reads the ack (which must be
/// 0), with the raw stream's time-outs at [`RAW_LIMIT`].
fn after_ack(addr: SocketAddr) -> TcpStream {
    let (c, _, ack) = RawClient::up_to_ack(addr, PDU_FLAG_SECURE | PDU_FLAG_SECURE_ACK);
    assert_eq!(ack, 0, "pmcd's secure-ack");
    c.stream
}

/// Runs the TLS client `conn` over `stream` until it has its last
/// handshake flight to send (the server's whole flight read and checked)
/// and returns what it would send after its ClientHello, unsent.
fn up_to_finished(stream: &mut TcpStream, conn: &mut rustls::ClientConnection) -> Vec<u8> {
    let mut out = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut out).expect("ClientHello");
    }
    stream.write_all(&out).expect("send ClientHello");
    let start = Instant::now();
    let mut flight = Vec::new();
    while conn.is_handshaking() {
        assert!(
            start.elapsed() < RAW_LIMIT,
            "no complete server flight after {RAW_LIMIT:?}"
        );
        let n = conn.read_tls(stream).expect("server flight");
        assert!(n > 0, "pmcd closed during its flight");
        conn.process_new_packets().expect("server flight accepted");
        while conn.wants_write() {
            conn.write_tls(&mut flight).expect("client flight");
        }
    }
    flight
}

impl Stalled {
    /// A connection to pmcd at `addr` stopped at `stage`; `ca` is the CA that
    /// issued pmcd's certificate (for [`Stage::MidFinished`]).
    pub fn open(addr: SocketAddr, stage: Stage, ca: &Path) -> Stalled {
        let mut stream = after_ack(addr);
        match stage {
            Stage::AfterCreds => {}
            Stage::PartialHello => {
                let hello = client_hello("localhost");
                stream
                    .write_all(&hello[..hello.len() / 2])
                    .expect("half a ClientHello");
            }
            Stage::AfterHello => stream
                .write_all(&client_hello("localhost"))
                .expect("ClientHello"),
            Stage::MidFinished => {
                let mut conn = tls_client(ca);
                let flight = up_to_finished(&mut stream, &mut conn);
                assert!(flight.len() > 8, "client flight of {} bytes", flight.len());
                stream
                    .write_all(&flight[..flight.len() - 8])
                    .expect("most of the client's Finished");
            }
        }
        Stalled { stream, stage }
    }

    /// True while pmcd keeps the connection open: nothing but the end of
    /// the stream counts (what pmcd sent of its handshake is read and
    /// dropped).
    pub fn still_open(&mut self) -> bool {
        !closed_now(&mut self.stream)
    }

    /// Waits until pmcd ends the connection, for at most `limit`; Err if it
    /// is still open then.
    pub fn wait_closed(&mut self, limit: Duration) -> Result<(), String> {
        let start = Instant::now();
        self.stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .expect("read time-out");
        let mut buf = [0u8; 8192];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock
                            | io::ErrorKind::TimedOut
                            | io::ErrorKind::Interrupted
                    ) => {}
                Err(_) => return Ok(()),
            }
            if start.elapsed() > limit {
                return Err(format!(
                    "{:?}: pmcd still holds the connection after {limit:?}",
                    self.stage
                ));
            }
        }
    }
}

/// Clients that each trickle a ClientHello, one byte per round; a round is
/// one call of [`Tricklers::round`].
pub struct Tricklers {
    conns: Vec<Option<TcpStream>>,
    hello: Vec<u8>,
    sent: usize,
}

impl Tricklers {
    /// `n` connections to pmcd at `addr`, each after its secure-ack.
    pub fn open(addr: SocketAddr, n: usize) -> Tricklers {
        Tricklers {
            conns: (0..n).map(|_| Some(after_ack(addr))).collect(),
            hello: client_hello("localhost"),
            sent: 0,
        }
    }

    /// Sends the next byte of the ClientHello on every connection pmcd has
    /// not ended (a failed send means it has); returns how many are open.
    /// Panics once a whole ClientHello has been sent: the test must be
    /// over by then.
    pub fn round(&mut self) -> usize {
        assert!(
            self.sent < self.hello.len(),
            "pmcd took a whole ClientHello of {} bytes one byte at a time",
            self.hello.len()
        );
        let byte = [self.hello[self.sent]];
        self.sent += 1;
        for slot in &mut self.conns {
            let gone = match slot {
                Some(s) => s.write_all(&byte).is_err() || closed_now(s),
                None => false,
            };
            if gone {
                *slot = None;
            }
        }
        self.connected()
    }

    /// How many connections pmcd has not ended (as last seen).
    pub fn connected(&self) -> usize {
        self.conns.iter().filter(|c| c.is_some()).count()
    }

    /// Bytes of the ClientHello sent on each connection so far.
    pub fn sent(&self) -> usize {
        self.sent
    }
}

/// True when the stream has reached its end (without waiting).
fn closed_now(s: &mut TcpStream) -> bool {
    s.set_nonblocking(true).expect("non-blocking");
    let mut buf = [0u8; 1024];
    let closed = loop {
        match s.read(&mut buf) {
            Ok(0) => break true,
            Ok(_) => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break false,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break true,
        }
    };
    s.set_nonblocking(false).expect("blocking");
    closed
}

/// The number of descriptors process `pid` has open.
pub fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/fd: {e}"))
        .count()
}

/// Polls until process `pid` has at most `want` descriptors open or
/// `limit` passes; returns the last count seen.
pub fn settle_fds(pid: u32, want: usize, limit: Duration) -> usize {
    let start = Instant::now();
    loop {
        let n = fd_count(pid);
        if n <= want || start.elapsed() > limit {
            return n;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
