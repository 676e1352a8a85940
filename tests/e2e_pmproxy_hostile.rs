//! Hostile input to unchanged pmproxy's HTTPS server with libpcp_secure
//! preloaded, where rustls serves it (src/tls/memory_server.rs behind the
//! library's `SSL_*` functions): bad input costs only its own connection.
//! Garbage after the first 0x16 byte, a truncated ClientHello, clients that
//! stall mid-handshake, oversized records and TCP resets are each followed
//! by a real `curl --cacert` HTTPS request that must be answered, and
//! pmproxy must still be running; what pmproxy sends back on a hostile
//! connection is TLS (a 0x16 handshake or 0x15 alert record first) or
//! nothing at all, never plaintext HTTP. After 1,000 hostile connections
//! pmproxy's descriptors are back to their baseline and its resident memory
//! has grown by a bounded amount.
//!
//! No pmcd is needed: `OPTIONS /pmapi/metric` is answered by pmproxy
//! itself. Needs PCP (pmproxy), curl and openssl (scripts/install-deps) and
//! the library built (`cargo build`). pmproxy listens on 127.0.0.1 only and
//! is stopped by its guard; every wait is a bounded poll for a condition.

use pcp_secure_test_support as support;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use support::pmproxy::Pmproxy;
use support::{client_hello, pseudo_random, Certs, RawClient, RAW_LIMIT};

/// The largest record length TLS allows on the wire (2^14 bytes of
/// plaintext plus 2048 of expansion); one more is an oversized record.
const MAX_RECORD: u16 = 16384 + 2048;

/// How long pmproxy may take to close a connection it must refuse, or to
/// give back its descriptors; only there to turn a hang into a failure.
const SETTLE_LIMIT: Duration = Duration::from_secs(30);

/// Descriptors pmproxy may hold beyond its baseline once every hostile
/// connection is closed. Per client there is nothing to allow for: pmproxy
/// closes a client's socket once it has seen the client's end (libuv's
/// `uv_close` completes an event-loop turn later), which the poll in
/// [`Https::assert_fds_back`] waits for. The one descriptor allowed is for
/// what pmproxy opens on its own schedule rather than per client (its
/// attempts to reach the absent Redis/valkey key server, or a log file
/// being reopened), should one be open at the moment of the count; none
/// was measured (a baseline of 14 descriptors with PCP 6.0.3, 16 with
/// 6.3.8 and 7.2.2, and the same count after every test). A leak of even one
/// descriptor per hostile connection exceeds it: every test makes at least
/// four.
const FD_SLACK: usize = 1;

/// A preloaded pmproxy serving HTTPS with server.crt (signed by ca.crt),
/// and a rustls client configuration that trusts ca.crt.
struct Https {
    certs: Certs,
    proxy: Pmproxy,
    client: Arc<rustls::ClientConfig>,
}

impl Https {
    /// Starts pmproxy with the library preloaded and checks that its HTTPS
    /// is the library's (not left to libpcp's OpenSSL) and works.
    fn start() -> Https {
        let certs = Certs::new();
        let conf = support::tls_conf(&[
            ("tls-cert-file", &certs.path("server.crt")),
            ("tls-key-file", &certs.path("server.key")),
        ]);
        let proxy = Pmproxy::builder()
            .tls_conf(&conf)
            .preload_ours(true)
            .start();
        let output = proxy.output();
        assert!(
            !output.contains("left to libpcp"),
            "pmproxy's HTTPS must be served by the library, not libpcp's OpenSSL:\n{output}"
        );
        let mut roots = rustls::RootCertStore::empty();
        let ca = CertificateDer::from_pem_file(certs.path("ca.crt")).expect("ca.crt");
        roots.add(ca).expect("ca.crt as a trust anchor");
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let client = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        let mut https = Https {
            certs,
            proxy,
            client: Arc::new(client),
        };
        https.assert_served("at start");
        https
    }

    /// pmproxy's address (127.0.0.1 and its port).
    fn addr(&self) -> SocketAddr {
        self.proxy.addr()
    }

    /// Asserts that pmproxy runs and answers a real HTTPS request from curl
    /// (which verifies server.crt against ca.crt) with an HTTP status.
    fn assert_served(&mut self, after: &str) {
        self.proxy.assert_running();
        let port = self.proxy.port();
        let out = Command::new("curl")
            .args(["-sS", "--max-time", "30", "-X", "OPTIONS"])
            .args(["-o", "/dev/null", "-w", "%{http_code}"])
            .arg("--cacert")
            .arg(self.certs.path("ca.crt"))
            .arg("--resolve")
            .arg(format!("localhost:{port}:127.0.0.1"))
            .arg(format!("https://localhost:{port}/pmapi/metric"))
            .stdin(Stdio::null())
            .output()
            .expect("curl runs");
        let code = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success() && is_http_status(&code),
            "{after}: curl's HTTPS request was not answered (status {}, HTTP code {code:?}): {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            self.proxy.output()
        );
        self.proxy.assert_running();
    }

    /// A raw TCP connection to pmproxy.
    fn raw(&self) -> RawClient {
        RawClient::connect(self.addr())
    }

    /// A TLS connection of our own (rustls, trusting ca.crt) whose
    /// handshake with pmproxy is complete.
    fn handshake(&self) -> Tls {
        let mut sock = self.raw().stream;
        let name = ServerName::try_from("localhost").expect("server name");
        let mut conn =
            rustls::ClientConnection::new(self.client.clone(), name).expect("client connection");
        while conn.is_handshaking() {
            if let Err(e) = conn.complete_io(&mut sock) {
                panic!("TLS handshake with pmproxy: {e}\n{}", self.proxy.output());
            }
        }
        Tls { sock, conn }
    }

    /// pmproxy's descriptor count with no client connected: polls until
    /// pmproxy has closed every client connection it had (a condition, not
    /// a pause), then counts.
    fn idle_fds(&self) -> usize {
        let start = Instant::now();
        while self.proxy.open_connections() > 0 {
            assert!(
                start.elapsed() < SETTLE_LIMIT,
                "pmproxy still holds {} client connection(s) after {SETTLE_LIMIT:?}:\n{}",
                self.proxy.open_connections(),
                self.proxy.fd_listing()
            );
            thread::sleep(Duration::from_millis(20));
        }
        self.proxy.fd_count()
    }

    /// Polls until pmproxy holds at most `baseline` + [`FD_SLACK`]
    /// descriptors, and fails with both listings if it does not within
    /// [`SETTLE_LIMIT`]; returns the count reached.
    fn assert_fds_back(&self, baseline: usize, listing: &str, after: &str) -> usize {
        let start = Instant::now();
        loop {
            let n = self.proxy.fd_count();
            if n <= baseline + FD_SLACK {
                return n;
            }
            assert!(
                start.elapsed() < SETTLE_LIMIT,
                "{after}: pmproxy holds {n} descriptors, {baseline} before\nbefore:\n{listing}now:\n{}",
                self.proxy.fd_listing()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// pmproxy's output must show that the library refused hostile
    /// connections itself (its warning), proof that rustls served them.
    fn assert_library_refused(&self) {
        let output = self.proxy.output();
        assert!(
            output.contains("HTTPS connection refused"),
            "the library logged no refused HTTPS connection:\n{output}"
        );
        assert!(!output.contains("panic"), "a panic was logged:\n{output}");
    }
}

/// Whether curl's `%{http_code}` is an HTTP status (it prints 000 when no
/// HTTP response came).
fn is_http_status(code: &str) -> bool {
    code.len() == 3
        && code.bytes().all(|b| b.is_ascii_digit())
        && (b'1'..=b'5').contains(&code.as_bytes()[0])
}

/// Asserts that `status` is an HTTP/1.1 status line.
fn assert_status_line(status: &str, what: &str) {
    assert!(
        status.starts_with("HTTP/1.1 ") && status.get(9..12).is_some_and(is_http_status),
        "{what}: pmproxy's answer is not an HTTP status line: {status:?}"
    );
}

/// A TLS connection of our own to pmproxy, its handshake done.
struct Tls {
    sock: TcpStream,
    conn: rustls::ClientConnection,
}

impl Tls {
    /// Encrypts and sends `plain`.
    fn send(&mut self, plain: &[u8]) {
        self.conn
            .writer()
            .write_all(plain)
            .expect("plaintext taken");
        while self.conn.wants_write() {
            self.conn
                .write_tls(&mut self.sock)
                .expect("sent to pmproxy");
        }
    }

    /// Sends an `OPTIONS /pmapi/metric` request and returns the status line
    /// of pmproxy's answer.
    fn request(&mut self) -> String {
        self.send(b"OPTIONS /pmapi/metric HTTP/1.1\r\nHost: localhost\r\n\r\n");
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        let mut stream = rustls::Stream::new(&mut self.conn, &mut self.sock);
        while !got.windows(2).any(|w| w == b"\r\n") {
            match stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) => panic!("reading pmproxy's answer: {e}; got {got:?}"),
            }
        }
        let text = String::from_utf8_lossy(&got);
        text.lines().next().unwrap_or_default().to_string()
    }

    /// Decrypts `raw` (what pmproxy sent after the handshake) and returns
    /// its plaintext; fails unless it is TLS records only.
    fn plaintext_of(&mut self, raw: &[u8]) -> Vec<u8> {
        records_of(raw).unwrap_or_else(|e| panic!("{e}"));
        let mut input = raw;
        let mut plain = Vec::new();
        while !input.is_empty() {
            match self.conn.read_tls(&mut input) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            if self.conn.process_new_packets().is_err() {
                break;
            }
            let mut buf = [0u8; 4096];
            loop {
                match self.conn.reader().read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => plain.extend_from_slice(&buf[..n]),
                    Err(_) => break,
                }
            }
        }
        plain
    }

    /// The raw connection, for hostile bytes of our own.
    fn raw(self) -> RawClient {
        RawClient { stream: self.sock }
    }
}

/// The TLS record types in `bytes`, which must be whole TLS records but
/// for the last, which may be cut short (a reset can cut what arrives).
fn records_of(bytes: &[u8]) -> Result<Vec<u8>, String> {
    let mut types = Vec::new();
    let mut i = 0;
    while i + 5 <= bytes.len() {
        let h = &bytes[i..i + 5];
        let len = usize::from(u16::from_be_bytes([h[3], h[4]]));
        if !(0x14..=0x17).contains(&h[0]) || h[1] != 3 || len > usize::from(MAX_RECORD) {
            return Err(format!(
                "pmproxy sent something that is not a TLS record at offset {i}: {:02x?} ({:?})",
                &bytes[i..bytes.len().min(i + 32)],
                String::from_utf8_lossy(&bytes[i..bytes.len().min(i + 64)])
            ));
        }
        types.push(h[0]);
        i += 5 + len;
    }
    Ok(types)
}

/// Asserts that `got`, what pmproxy sent on a connection whose handshake
/// did not complete, is nothing, or TLS records starting with a handshake
/// (0x16) or alert (0x15) record: never plaintext HTTP.
fn assert_tls_or_nothing(got: &[u8], what: &str) {
    if got.is_empty() {
        return;
    }
    assert!(
        matches!(got[0], 0x15 | 0x16),
        "{what}: pmproxy's answer starts with {:#04x}, not a TLS handshake or alert: {:?}",
        got[0],
        String::from_utf8_lossy(&got[..got.len().min(64)])
    );
    assert!(
        !got.windows(5).any(|w| w == b"HTTP/"),
        "{what}: pmproxy answered in plaintext HTTP: {:?}",
        String::from_utf8_lossy(got)
    );
    records_of(got).unwrap_or_else(|e| panic!("{what}: {e}"));
}

/// Reads until pmproxy closes the connection, which it must do by itself
/// (the client keeps its end open), and returns what it sent.
fn closed_by_pmproxy(c: &mut RawClient, what: &str) -> Vec<u8> {
    c.read_until_closed(SETTLE_LIMIT)
        .unwrap_or_else(|e| panic!("{what}: pmproxy did not close the connection: {e}"))
}

/// Whether the peer still has `s` open with nothing more sent on it.
fn still_open_and_quiet(s: &TcpStream) -> bool {
    s.set_nonblocking(true).expect("non-blocking");
    let mut b = [0u8; 1];
    let quiet = matches!(s.peek(&mut b), Err(e) if e.kind() == ErrorKind::WouldBlock);
    s.set_nonblocking(false).expect("blocking");
    quiet
}

/// Reads pmproxy's first flight of handshake records (its answer to a
/// whole ClientHello), which must begin with a complete handshake record.
fn read_server_flight(c: &mut RawClient, what: &str) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    c.stream.set_read_timeout(Some(RAW_LIMIT)).unwrap();
    loop {
        if got.len() >= 5 && got.len() >= 5 + usize::from(u16::from_be_bytes([got[3], got[4]])) {
            break;
        }
        match c.stream.read(&mut buf) {
            Ok(0) => panic!("{what}: pmproxy closed instead of answering the ClientHello"),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => panic!("{what}: no answer to the ClientHello: {e}"),
        }
    }
    assert_eq!(
        got[0], 0x16,
        "{what}: pmproxy's answer to a ClientHello: {got:02x?}"
    );
    assert_tls_or_nothing(&got, what);
    got
}

/// `len` pseudo-random bytes that start with 0x16 and whose next byte is
/// not 3 (no TLS version): rustls refuses them at the record header.
fn garbage_after_0x16(len: usize, seed: u64) -> Vec<u8> {
    let mut g = pseudo_random(len, seed);
    g[0] = 0x16;
    if g[1] == 3 {
        g[1] = 0x42;
    }
    g
}

/// A well-formed handshake record carrying a ClientHello of `len`
/// pseudo-random bytes: the record layer takes it, the ClientHello does
/// not parse.
fn garbage_client_hello(len: u16, seed: u64) -> Vec<u8> {
    let body = pseudo_random(usize::from(len), seed);
    let mut msg = vec![0x01, 0, (len >> 8) as u8, len as u8];
    msg.extend_from_slice(&body);
    let mut rec = vec![0x16, 3, 1];
    rec.extend_from_slice(&(msg.len() as u16).to_be_bytes());
    rec.extend_from_slice(&msg);
    rec
}

/// A record header of type `typ` claiming `len` bytes, and 1 KiB of them.
fn oversized_record(typ: u8, len: u16) -> Vec<u8> {
    assert!(len > MAX_RECORD);
    let mut rec = vec![typ, 3, 3];
    rec.extend_from_slice(&len.to_be_bytes());
    rec.extend_from_slice(&pseudo_random(1024, u64::from(len)));
    rec
}

// ---------------------------------------------------------------------------
// 1. Garbage after the first 0x16

/// Garbage after a first byte of 0x16 (which makes pmproxy take the
/// connection for TLS): a bad record header, a ClientHello that does not
/// parse, an empty handshake record, and garbage after a real ClientHello.
/// pmproxy closes each by itself, having sent nothing but TLS, and serves
/// curl after each.
#[test]
fn garbage_after_the_first_0x16_costs_only_its_connection() {
    let mut h = Https::start();
    let baseline = h.idle_fds();
    let listing = h.proxy.fd_listing();
    let mut hello_then_garbage = client_hello("localhost");
    hello_then_garbage.extend_from_slice(&pseudo_random(2048, 7));
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("0x16 then 4 KiB of garbage", garbage_after_0x16(4096, 1)),
        ("0x16 then 5 bytes of garbage", garbage_after_0x16(6, 2)),
        (
            "a ClientHello that does not parse",
            garbage_client_hello(200, 3),
        ),
        ("an empty handshake record", vec![0x16, 3, 1, 0, 0]),
        ("a ClientHello, then garbage", hello_then_garbage),
    ];
    for (what, bytes) in &cases {
        let mut c = h.raw();
        // The 0x16 alone first: pmproxy judges the protocol by it.
        c.send(&bytes[..1]).expect("first byte sent");
        c.send(&bytes[1..]).expect("garbage sent");
        let got = closed_by_pmproxy(&mut c, what);
        assert_tls_or_nothing(&got, what);
        h.assert_served(&format!("after {what}"));
    }
    h.assert_library_refused();
    h.assert_fds_back(baseline, &listing, "after the garbage");
}

// ---------------------------------------------------------------------------
// 2. A truncated ClientHello, then the end of the stream

/// A ClientHello cut after its first byte, its record header, half of it
/// and all but its last byte, then the client's end of the stream (a
/// half-close, so that what pmproxy sends back can still be read; then
/// also a full close): pmproxy answers nothing (there is nothing to answer
/// yet) and closes, and serves curl after each.
#[test]
fn truncated_client_hello_then_close_costs_only_its_connection() {
    let mut h = Https::start();
    let baseline = h.idle_fds();
    let listing = h.proxy.fd_listing();
    let hello = client_hello("localhost");
    for cut in [1, 5, hello.len() / 2, hello.len() - 1] {
        let what = format!(
            "{cut} of the ClientHello's {} bytes, then a half-close",
            hello.len()
        );
        let mut c = h.raw();
        c.send(&hello[..cut]).expect("sent");
        c.stream.shutdown(Shutdown::Write).expect("half-close");
        let got = closed_by_pmproxy(&mut c, &what);
        assert!(
            got.is_empty(),
            "{what}: pmproxy answered an incomplete ClientHello: {got:02x?}"
        );
        h.assert_served(&format!("after {what}"));

        let mut c = h.raw();
        c.send(&hello[..cut]).expect("sent");
        drop(c);
        h.assert_served(&format!("after {cut} bytes of a ClientHello and a close"));
    }
    h.assert_fds_back(baseline, &listing, "after the truncated ClientHellos");
}

// ---------------------------------------------------------------------------
// 3. Clients that stall mid-handshake

/// Clients that stall mid-handshake, 8 after half a ClientHello, 8 after a
/// whole one and 2 after one trickled byte by byte (each answered with
/// pmproxy's handshake flight), all open
/// and holding a descriptor in pmproxy meanwhile: curl and a client of our
/// own are served all the same. Once they close, pmproxy's descriptors are
/// back to what they were.
#[test]
fn clients_stalled_mid_handshake_do_not_stop_others() {
    let mut h = Https::start();
    let baseline = h.idle_fds();
    let listing = h.proxy.fd_listing();
    let hello = client_hello("localhost");
    let mut stalled = Vec::new();
    // A ClientHello trickled a byte at a time (one network read each, as
    // far as TCP keeps them apart) is still answered, and then stalls.
    for i in 0..2 {
        let mut c = h.raw();
        for b in &hello {
            c.send(std::slice::from_ref(b)).expect("sent");
        }
        read_server_flight(&mut c, "a trickled ClientHello");
        stalled.push((format!("stalled client {i} (a trickled ClientHello)"), c));
    }
    for i in 0..8 {
        let mut c = h.raw();
        c.send(&hello[..hello.len() / 2]).expect("sent");
        stalled.push((format!("stalled client {i} (half a ClientHello)"), c));
        let mut c = h.raw();
        c.send(&hello).expect("sent");
        read_server_flight(&mut c, "a whole ClientHello");
        stalled.push((format!("stalled client {i} (a whole ClientHello)"), c));
    }
    // pmproxy holds every stalled connection (a condition: the accepts are
    // pmproxy's to make in its own time).
    let start = Instant::now();
    while h.proxy.open_connections() < stalled.len() {
        assert!(
            start.elapsed() < SETTLE_LIMIT,
            "pmproxy holds {} of the {} stalled connections",
            h.proxy.open_connections(),
            stalled.len()
        );
        thread::sleep(Duration::from_millis(20));
    }
    assert!(h.proxy.fd_count() >= baseline + stalled.len());
    for round in 0..3 {
        h.assert_served(&format!(
            "with {} clients stalled, round {round}",
            stalled.len()
        ));
        let status = h.handshake().request();
        assert_status_line(&status, "our client with others stalled");
    }
    for (what, c) in &stalled {
        assert!(
            still_open_and_quiet(&c.stream),
            "{what}: pmproxy closed it or sent more (the stall did not last)"
        );
    }
    drop(stalled);
    h.assert_fds_back(baseline, &listing, "after the stalled clients left");
    h.assert_served("after the stalled clients left");
}

// ---------------------------------------------------------------------------
// 4. Oversized records

/// Records whose length field exceeds 16384 + 2048: as the first record, after
/// a whole ClientHello, and as an application-data record after a complete
/// handshake. pmproxy closes each by itself, having sent only TLS (after
/// the handshake: nothing that decrypts to plaintext), and serves curl.
#[test]
fn oversized_records_cost_only_their_connection() {
    let mut h = Https::start();
    let baseline = h.idle_fds();
    let listing = h.proxy.fd_listing();
    for len in [MAX_RECORD + 1, u16::MAX] {
        let what = format!("a first record claiming {len} bytes");
        let mut c = h.raw();
        c.send(&oversized_record(0x16, len)).expect("sent");
        let got = closed_by_pmproxy(&mut c, &what);
        assert_tls_or_nothing(&got, &what);
        h.assert_served(&format!("after {what}"));

        let what = format!("a ClientHello, then a record claiming {len} bytes");
        let mut c = h.raw();
        let mut bytes = client_hello("localhost");
        bytes.extend_from_slice(&oversized_record(0x16, len));
        c.send(&bytes).expect("sent");
        let got = closed_by_pmproxy(&mut c, &what);
        assert_tls_or_nothing(&got, &what);
        h.assert_served(&format!("after {what}"));

        let what = format!("a handshake, then an application-data record claiming {len} bytes");
        let mut tls = h.handshake();
        tls.sock
            .write_all(&oversized_record(0x17, len))
            .expect("sent");
        let mut tls_raw = RawClient {
            stream: tls.sock.try_clone().expect("socket"),
        };
        let got = closed_by_pmproxy(&mut tls_raw, &what);
        let plain = tls.plaintext_of(&got);
        assert!(
            plain.is_empty(),
            "{what}: pmproxy answered with data: {:?}",
            String::from_utf8_lossy(&plain)
        );
        h.assert_served(&format!("after {what}"));
    }
    h.assert_library_refused();
    h.assert_fds_back(baseline, &listing, "after the oversized records");
}

// ---------------------------------------------------------------------------
// 5. TCP resets

/// TCP resets (SO_LINGER 0) mid-handshake (after half a ClientHello, after
/// pmproxy's answer to a whole one) and after the handshake (mid-request,
/// and with a whole request sent and its answer unread): pmproxy serves
/// curl after each and gives the descriptors back.
#[test]
fn resets_mid_handshake_and_mid_request_cost_only_their_connection() {
    let mut h = Https::start();
    let baseline = h.idle_fds();
    let listing = h.proxy.fd_listing();
    let hello = client_hello("localhost");
    for round in 0..3 {
        let mut c = h.raw();
        c.send(&hello[..hello.len() / 2]).expect("sent");
        c.reset();
        h.assert_served(&format!(
            "round {round}: after a reset after half a ClientHello"
        ));

        let mut c = h.raw();
        c.send(&hello).expect("sent");
        read_server_flight(&mut c, "a whole ClientHello");
        c.reset();
        h.assert_served(&format!(
            "round {round}: after a reset after pmproxy's handshake flight"
        ));

        let mut tls = h.handshake();
        tls.send(b"OPTIONS /pmapi/metric HTTP/1.1\r\nHo");
        tls.raw().reset();
        h.assert_served(&format!("round {round}: after a reset mid-request"));

        let mut tls = h.handshake();
        tls.send(b"OPTIONS /pmapi/metric HTTP/1.1\r\nHost: localhost\r\n\r\n");
        tls.raw().reset();
        h.assert_served(&format!(
            "round {round}: after a reset with the answer unread"
        ));
    }
    h.assert_fds_back(baseline, &listing, "after the resets");
}

// ---------------------------------------------------------------------------
// 6. 1,000 hostile connections

/// The kinds of hostile connection in the loop of
/// [`thousand_hostile_connections_leak_no_fds_and_bounded_memory`].
const KINDS: usize = 10;

/// Hostile connection number `i` (kind `i % KINDS`), ended by the client
/// (a close, or a reset); checks what pmproxy sent on it where the kind
/// lets the client read it.
fn hostile(h: &Https, hello: &[u8], i: usize) {
    let seed = 0x5eed_0000 + i as u64;
    let what = format!("hostile connection {i} (kind {})", i % KINDS);
    match i % KINDS {
        0 => {
            let mut c = h.raw();
            c.send(&garbage_after_0x16(512, seed)).expect("sent");
            assert_tls_or_nothing(&closed_by_pmproxy(&mut c, &what), &what);
        }
        1 => {
            let mut c = h.raw();
            c.send(&garbage_client_hello(120, seed)).expect("sent");
            assert_tls_or_nothing(&closed_by_pmproxy(&mut c, &what), &what);
        }
        2 => {
            // Half a ClientHello, then the client's end of the stream:
            // pmproxy answers nothing and closes.
            let mut c = h.raw();
            c.send(&hello[..hello.len() / 2]).expect("sent");
            c.stream.shutdown(Shutdown::Write).expect("half-close");
            let got = closed_by_pmproxy(&mut c, &what);
            assert!(got.is_empty(), "{what}: answered: {got:02x?}");
        }
        3 => {
            // Half a ClientHello, then a reset.
            let mut c = h.raw();
            c.send(&hello[..hello.len() / 2]).expect("sent");
            c.reset();
        }
        4 => {
            let mut c = h.raw();
            c.send(&oversized_record(0x16, MAX_RECORD + 1 + (i % 7) as u16))
                .expect("sent");
            assert_tls_or_nothing(&closed_by_pmproxy(&mut c, &what), &what);
        }
        5 => {
            // A whole ClientHello, pmproxy's answer, then a close.
            let mut c = h.raw();
            c.send(hello).expect("sent");
            read_server_flight(&mut c, &what);
        }
        6 => {
            // A whole ClientHello, pmproxy's answer, then a reset.
            let mut c = h.raw();
            c.send(hello).expect("sent");
            read_server_flight(&mut c, &what);
            c.reset();
        }
        7 => {
            // A handshake, half a request, then a reset.
            let mut tls = h.handshake();
            tls.send(b"OPTIONS /pmapi/metric HTTP/1.1\r\nHo");
            tls.raw().reset();
        }
        8 => {
            // A handshake, then an oversized application-data record.
            let mut tls = h.handshake();
            tls.sock
                .write_all(&oversized_record(0x17, u16::MAX))
                .expect("sent");
            let mut raw = RawClient {
                stream: tls.sock.try_clone().expect("socket"),
            };
            let got = closed_by_pmproxy(&mut raw, &what);
            assert!(tls.plaintext_of(&got).is_empty(), "{what}: data came back");
        }
        _ => {
            // The 0x16 alone (pmproxy sets up its TLS state for the
            // client), then a close.
            let mut c = h.raw();
            c.send(&[0x16]).expect("sent");
        }
    }
}

/// 1,000 hostile connections of ten kinds (every kind of the tests above,
/// in turn), from 4 threads at once, each ended by the client (a close or
/// a reset; input pmproxy must refuse is first read until pmproxy closes),
/// with a request of our own served every 100: afterwards pmproxy runs, serves
/// curl, holds as many descriptors as before (within [`FD_SLACK`]) and its
/// resident memory has grown by less than [`RSS_GROWTH_LIMIT_KB`].
#[test]
fn thousand_hostile_connections_leak_no_fds_and_bounded_memory() {
    let mut h = Https::start();
    let hello = client_hello("localhost");
    // Warm-up: every kind a few times and good requests, so that what
    // pmproxy, libuv, rustls and malloc set up once (arenas, the session
    // cache's first entries, the log file's buffers) is in the baseline.
    for i in 0..(3 * KINDS) {
        hostile(&h, &hello, i);
    }
    for _ in 0..3 {
        h.assert_served("warm-up");
    }
    let baseline = h.idle_fds();
    let listing = h.proxy.fd_listing();
    let rss_before = h.proxy.vm_rss_kb();
    let start = Instant::now();
    const TOTAL: usize = 1000;
    thread::scope(|s| {
        for t in 0..4 {
            let (h, hello) = (&h, &hello);
            s.spawn(move || {
                for i in (t..TOTAL).step_by(4) {
                    hostile(h, hello, i);
                    if i % 100 == 0 {
                        let status = h.handshake().request();
                        assert_status_line(&status, &format!("after {i} hostile connections"));
                    }
                }
            });
        }
    });
    let took = start.elapsed();
    h.assert_served("after 1,000 hostile connections");
    let fds = h.assert_fds_back(baseline, &listing, "after 1,000 hostile connections");
    let idle = h.idle_fds();
    let rss_after = h.proxy.vm_rss_kb();
    eprintln!(
        "pmproxy after {TOTAL} hostile connections ({took:?}): descriptors {baseline} -> {fds} (idle {idle}), VmRSS {rss_before} kB -> {rss_after} kB ({:+} kB)",
        rss_after as i64 - rss_before as i64
    );
    assert!(
        rss_after < rss_before + RSS_GROWTH_LIMIT_KB,
        "pmproxy's VmRSS grew from {rss_before} kB to {rss_after} kB over {TOTAL} hostile connections"
    );
    h.assert_library_refused();
}

/// How much pmproxy's VmRSS may grow over the 1,000 hostile connections.
/// Measured after the warm-up: +40 to +96 kB over 1,000 hostile
/// connections with PCP 6.0.3 (also with the machine's two cores busy
/// with other work), +72 kB with 6.3.8, +56 kB with 7.2.2; with a library
/// made to leak each connection's state (`SSL_free` not freeing it),
/// +8.3 MB with 6.0.3. So the 8 MB
/// one might guess would barely catch a leak of everything; 2 MB catches a
/// leak of a quarter of the connections and leaves 25 times the measured
/// growth for the allocator's whims.
const RSS_GROWTH_LIMIT_KB: u64 = 2 * 1024;
