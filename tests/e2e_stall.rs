//! pmcd never waits for a TLS peer: with the library preloaded into the real
//! pmcd, clients that stop (or crawl) in the middle of their TLS handshake
//! do not hold up a real pminfo, and each is ended once its handshake
//! deadline passes, pmcd's descriptors returning to what they were; a
//! failed session ends with a fatal alert and never a close_notify.
//!
//! Runs against the installed PCP and, through scripts/test-matrix, against
//! PCP 6.3.8 and 7.2.2. Every server listens on loopback and is stopped by
//! the test; every wait is bounded.

use pcp_secure_test_support as support;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use support::stall::{fd_count, settle_fds, tls_client, Stage, Stalled, Tricklers};
use support::*;

const LOAD: &str = "kernel.all.load";

/// The handshake deadline of the pmcd under test, in seconds: long enough
/// for a pminfo on a loaded machine to be served while every stalled
/// handshake is still open, short enough for a test.
const DEADLINE_SECS: u64 = 15;
const DEADLINE: Duration = Duration::from_secs(DEADLINE_SECS);

/// Stalled connections per handshake stage.
const PER_STAGE: usize = 50;

fn pmcd_with_deadline(certs: &Certs) -> Pmcd {
    Pmcd::builder()
        .preload_ours(true)
        .tls_conf(&certs.server_conf())
        .env("PCP_SECURE_HANDSHAKE_TIMEOUT", &DEADLINE_SECS.to_string())
        .start()
}

fn good_client(certs: &Certs) -> Client {
    Client::new(&certs.client_conf()).ours().secure("enforce")
}

/// pmcd's descriptor count once every client it had has gone.
fn idle_fds(pmcd: &Pmcd) -> usize {
    assert!(
        pmcd.wait_until_idle(LOG_LIMIT),
        "pmcd still holds {} client connection(s) after {LOG_LIMIT:?}",
        pmcd.open_connections()
    );
    fd_count(pmcd.pid())
}

/// A TLS pminfo's connect and fetch against `pmcd`, timed.
fn timed_fetch(certs: &Certs, pmcd: &Pmcd) -> Duration {
    let start = Instant::now();
    let run = good_client(certs).fetch(&pmcd.host_named("localhost"), &[LOAD]);
    let took = start.elapsed();
    assert_load_values(&run);
    took
}

/// After the deadline every stalled client is ended and pmcd's
/// descriptors are back to `fds_before`; pmcd logged each time-out and
/// serves clients as before.
fn assert_all_ended(pmcd: &mut Pmcd, certs: &Certs, stalled: &mut [Stalled], fds_before: usize) {
    for s in stalled.iter_mut() {
        s.wait_closed(DEADLINE + LOG_LIMIT)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let pid = pmcd.pid();
    let fds_after = settle_fds(pid, fds_before, LOG_LIMIT);
    assert_eq!(
        fds_after, fds_before,
        "pmcd's descriptors after the stalled handshakes ended"
    );
    pmcd.assert_running();
    timed_fetch(certs, pmcd);
}

// 50 connections stopped at each stage of the handshake (after the
// credentials, in the middle of the ClientHello, after the ClientHello,
// in the middle of the client's Finished), all open at once: a TLS pminfo
// is served while every one of them is still open (pmcd did not wait for
// any of them), and once the deadline passes pmcd ends them all, logs why,
// and its descriptors return to the count before.
#[test]
fn stalled_handshakes_do_not_hold_pmcd_and_end_at_their_deadline() {
    ensure_deps();
    let certs = Certs::new();
    let mut pmcd = pmcd_with_deadline(&certs);
    let normal = timed_fetch(&certs, &pmcd);
    let fds_before = idle_fds(&pmcd);
    let ca = std::path::PathBuf::from(certs.path("ca.crt"));

    let opened = Instant::now();
    let mut stalled: Vec<Stalled> = Stage::ALL
        .iter()
        .flat_map(|&stage| (0..PER_STAGE).map(move |_| stage))
        .map(|stage| Stalled::open(pmcd.addr(), stage, &ca))
        .collect();
    let with_stalls = timed_fetch(&certs, &pmcd);
    let plain = Client::new("").stock().fetch(&pmcd.host(), &[LOAD]);
    assert_load_values(&plain);
    let served_after = opened.elapsed();
    eprintln!(
        "pminfo: {normal:?} alone, {with_stalls:?} with {} stalled handshakes open (all open after {served_after:?})",
        stalled.len()
    );
    let closed: Vec<Stage> = stalled
        .iter_mut()
        .filter_map(|s| (!s.still_open()).then_some(s.stage))
        .collect();
    assert!(
        closed.is_empty(),
        "pmcd ended stalled handshakes before their {DEADLINE:?} deadline (pminfo was served {served_after:?} after they began): {closed:?}"
    );
    assert!(
        fd_count(pmcd.pid()) >= fds_before + stalled.len(),
        "pmcd does not hold the stalled connections"
    );

    assert_all_ended(&mut pmcd, &certs, &mut stalled, fds_before);
    assert!(
        opened.elapsed() >= DEADLINE,
        "the stalled handshakes ended before their deadline"
    );
    let timeouts = pmcd
        .pcp_secure_lines()
        .iter()
        .filter(|l| l.contains("refused: timed out waiting for the TLS handshake"))
        .count();
    assert_eq!(
        timeouts,
        stalled.len(),
        "pmcd.log does not give the time-out of each stalled handshake:\n{}",
        pmcd.log()
    );
}

// 50 clients trickle their ClientHello, one byte on each every 200 ms (a
// whole one would take about a minute): a TLS pminfo is served while all
// of them are still connected, and all are ended at the deadline (their
// handshake is bounded as a whole, not per read), pmcd's descriptors
// returning to the count before.
#[test]
fn trickled_handshakes_do_not_hold_pmcd_and_end_at_their_deadline() {
    ensure_deps();
    let certs = Certs::new();
    let mut pmcd = pmcd_with_deadline(&certs);
    let fds_before = idle_fds(&pmcd);
    let opened = Instant::now();
    let mut tricklers = Tricklers::open(pmcd.addr(), PER_STAGE);
    let (served, all_ended_after) = std::thread::scope(|s| {
        let fetch = s.spawn(|| {
            let run = good_client(&certs).fetch(&pmcd.host_named("localhost"), &[LOAD]);
            (run, opened.elapsed())
        });
        let mut fetch = Some(fetch);
        let mut served = None;
        loop {
            let open = tricklers.round();
            if fetch.as_ref().is_some_and(|f| f.is_finished()) {
                let done = fetch.take().expect("pminfo thread").join();
                served = Some((open, done.expect("pminfo thread")));
            }
            if open == 0 {
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let served = match (served, fetch) {
            (Some(s), _) => s,
            (None, Some(f)) => (0, f.join().expect("pminfo thread")),
            (None, None) => unreachable!("pminfo joined without a result"),
        };
        (served, opened.elapsed())
    });
    let (open_when_served, (run, served_after)) = served;
    assert_load_values(&run);
    eprintln!(
        "trickling: pminfo served after {served_after:?} with {open_when_served} tricklers connected; all ended after {all_ended_after:?} ({} bytes each)",
        tricklers.sent()
    );
    assert_eq!(
        open_when_served, PER_STAGE,
        "pmcd ended trickling handshakes before pminfo was served ({served_after:?})"
    );
    assert!(
        all_ended_after >= DEADLINE,
        "the trickling handshakes ended before their deadline"
    );
    let fds_after = settle_fds(pmcd.pid(), fds_before, LOG_LIMIT);
    assert_eq!(fds_after, fds_before, "pmcd's descriptors after trickling");
    pmcd.assert_running();
    timed_fetch(&certs, &pmcd);
}

/// Completes a TLS handshake with `pmcd` by hand and returns the stream
/// and the connection.
fn handshake_by_hand(
    pmcd: &Pmcd,
    certs: &Certs,
) -> (std::net::TcpStream, rustls::ClientConnection) {
    let (c, _, ack) = RawClient::up_to_ack(pmcd.addr(), PDU_FLAG_SECURE | PDU_FLAG_SECURE_ACK);
    assert_eq!(ack, 0);
    let mut stream = c.stream;
    let mut conn = tls_client(std::path::Path::new(&certs.path("ca.crt")));
    let start = Instant::now();
    while conn.is_handshaking() {
        assert!(start.elapsed() < RAW_LIMIT, "handshake not done");
        conn.complete_io(&mut stream)
            .expect("TLS handshake with pmcd");
    }
    conn.complete_io(&mut stream).expect("client Finished sent");
    (stream, conn)
}

/// Reads what pmcd sends until it ends the connection (bounded).
fn read_to_end(stream: &mut std::net::TcpStream) -> Vec<u8> {
    stream.set_read_timeout(Some(RAW_LIMIT)).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return got,
            Err(e) => panic!("reading from pmcd: {e} after {} bytes", got.len()),
        }
    }
}

/// Reads what pmcd sends until it ends the connection and feeds it to the
/// client one record at a time: pmcd must never send a close_notify, and
/// an alert, if any, must be its last record. Returns that alert.
fn last_words(
    stream: &mut std::net::TcpStream,
    conn: &mut rustls::ClientConnection,
) -> Option<rustls::AlertDescription> {
    let got = read_to_end(stream);
    let records = tls_records(&got).unwrap_or_else(|e| panic!("pmcd's answer: {e}"));
    let mut offset = 0;
    let mut alert = None;
    for (i, &(_, len)) in records.iter().enumerate() {
        let mut one = &got[offset..offset + 5 + len];
        offset += 5 + len;
        conn.read_tls(&mut one).expect("record into rustls");
        match conn.process_new_packets() {
            Ok(state) => assert!(
                !state.peer_has_closed(),
                "pmcd sent a close_notify (record {i} of {})",
                records.len()
            ),
            Err(rustls::Error::AlertReceived(a)) => {
                assert_eq!(i + 1, records.len(), "records after pmcd's alert {a:?}");
                alert = Some(a);
            }
            Err(e) => panic!("record {i} from pmcd: {e}"),
        }
    }
    alert
}

// A client that sends a corrupt record after a completed handshake gets a
// fatal alert as pmcd's last record and then the end of the connection:
// never a close_notify after it.
#[test]
fn corrupt_record_is_answered_with_a_fatal_alert_and_the_end() {
    ensure_deps();
    let certs = Certs::new();
    let mut pmcd = pmcd_with_deadline(&certs);
    let (mut stream, mut conn) = handshake_by_hand(&pmcd, &certs);
    // An application-data record of the right shape whose contents do not
    // decrypt.
    let mut record = vec![0x17, 0x03, 0x03, 0x00, 0x40];
    record.extend(pseudo_random(0x40, 0x5eed));
    stream.write_all(&record).expect("corrupt record");
    let alert = last_words(&mut stream, &mut conn);
    let alert = alert.expect("no fatal alert from pmcd before it closed");
    assert_ne!(alert, rustls::AlertDescription::CloseNotify);
    eprintln!("corrupt record: pmcd answered with alert {alert:?}, then closed");
    pmcd.assert_running();
    timed_fetch(&certs, &pmcd);
}

// A client that starts a record after a completed handshake and never
// sends the rest: pmcd gives up on it after its record time-out and ends
// the connection at once, without a close_notify (there is no alert for a
// time-out).
#[test]
fn cut_record_is_answered_with_the_end_and_no_close_notify() {
    ensure_deps();
    let certs = Certs::new();
    let mut pmcd = Pmcd::builder()
        .preload_ours(true)
        .tls_conf(&certs.server_conf())
        .env("PCP_SECURE_HANDSHAKE_TIMEOUT", "2")
        .start();
    let (mut stream, mut conn) = handshake_by_hand(&pmcd, &certs);
    stream
        .write_all(&[0x17, 0x03, 0x03, 0x00, 0x40, 1, 2, 3])
        .expect("the start of a record");
    let alert = last_words(&mut stream, &mut conn);
    assert_eq!(alert, None, "pmcd's alert for a time-out");
    pmcd.assert_running();
    timed_fetch(&certs, &pmcd);
}
