//! End-to-end tests of the TLS metrics (issue 18): Debian's unchanged pmcd
//! with libpcp_secure preloaded and the real mmv PMDA, each pmcd with a
//! PCP_TMP_DIR of its own (the system's is never touched); the figures are
//! read with a stock pminfo over a plain connection (which makes no TLS
//! handshake of its own), and checked against what the test did and
//! against the certificates.

use pcp_secure_test_support as support;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use support::*;

const LOAD: &str = "kernel.all.load";
const NS: &str = "mmv.pcp_secure.pmcd";
/// `PDU_FLAG_COMPRESS`, which pmcd refuses with our library.
const PDU_FLAG_COMPRESS: u16 = 0x0002;

fn metric(name: &str) -> String {
    format!("{NS}.{name}")
}

/// A pmcd serving `conf` with our library and the mmv PMDA, and a 1 s
/// handshake time-out (for the silent client).
fn pmcd_with_metrics(conf: &str) -> Pmcd {
    Pmcd::builder()
        .preload_ours(true)
        .mmv(true)
        .tls_conf(conf)
        .env("PCP_SECURE_HANDSHAKE_TIMEOUT", "1")
        .start()
}

/// `pminfo -f` of the whole namespace.
fn figures(pmcd: &Pmcd) -> Run {
    pmcd.pminfo_plain(&["-f", NS])
}

/// The single value of `name` in `run` (strings without their quotes).
fn value(run: &Run, name: &str) -> Option<String> {
    run.value_of(&metric(name))
        .map(|v| v.trim_matches('"').to_string())
}

/// The number `name` has in `run`; panics showing the output when absent.
fn number(run: &Run, name: &str) -> i64 {
    value(run, name)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no number for {name}\n{}", run.describe()))
}

/// The values of `name`'s instances in `run`: (instance, value).
fn instances(run: &Run, name: &str) -> Vec<(String, i64)> {
    let full = metric(name);
    let mut lines = run.stdout.lines().skip_while(|l| l.trim() != full);
    lines.next();
    lines
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| {
            let l = l.trim();
            let name = l.split('"').nth(1)?;
            let v = l.rsplit("value ").next()?.trim().parse().ok()?;
            Some((name.to_string(), v))
        })
        .collect()
}

/// Polls the figures until `ready` holds for them (bounded), and returns
/// them.
fn figures_when(pmcd: &Pmcd, what: &str, ready: impl Fn(&Run) -> bool) -> Run {
    let start = Instant::now();
    loop {
        let run = figures(pmcd);
        if run.success() && ready(&run) {
            return run;
        }
        assert!(
            start.elapsed() < LOG_LIMIT,
            "{what}: not seen within {LOG_LIMIT:?}\n{}\n--- pmcd.log ---\n{}",
            run.describe(),
            pmcd.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Subject and notAfter (seconds since 1970) of the first certificate of
/// a PEM file.
fn subject_and_end(pem: &str) -> (String, i64) {
    let text = std::fs::read(pem).unwrap();
    let (_, pem) = x509_parser::pem::parse_x509_pem(&text).unwrap();
    let cert = pem.parse_x509().unwrap();
    (
        cert.subject().to_string(),
        cert.validity().not_after.timestamp(),
    )
}

/// A client that asks for TLS and then stays silent until pmcd gives up.
fn silent_client(pmcd: &Pmcd) {
    let (mut raw, _, ack) =
        RawClient::up_to_ack(pmcd.addr(), PDU_FLAG_SECURE | PDU_FLAG_SECURE_ACK);
    assert_eq!(ack, 0, "secure ack status");
    raw.read_until_closed(RAW_LIMIT)
        .expect("pmcd closes the silent client after its time-out");
}

/// A client that sends garbage instead of a ClientHello.
fn garbage_client(pmcd: &Pmcd) {
    let (mut raw, _, ack) =
        RawClient::up_to_ack(pmcd.addr(), PDU_FLAG_SECURE | PDU_FLAG_SECURE_ACK);
    assert_eq!(ack, 0, "secure ack status");
    let mut garbage = pseudo_random(2048, 0x18_18_18);
    garbage[0] = 0x42;
    let _ = raw.send(&garbage);
    let _ = raw.read_until_closed_or_alert(RAW_LIMIT);
}

/// A client that asks for TLS with compression, which pmcd refuses before
/// TLS starts.
fn compression_client(pmcd: &Pmcd) {
    let mut raw = RawClient::connect(pmcd.addr());
    raw.read_challenge().unwrap();
    raw.send_creds(PDU_FLAG_SECURE | PDU_FLAG_SECURE_ACK | PDU_FLAG_COMPRESS)
        .unwrap();
    let status = raw.read_ack().unwrap();
    assert!(status < 0, "compression was accepted (status {status})");
}

// After N good and M failed handshakes of known kinds, pminfo shows exactly
// those counts: completed, failed, each reason (the others stay 0), the
// TLS version, no session left open; and the served certificate's subject
// and seconds left match the certificate (and its CA's, from
// tls-ca-cert-file).
#[test]
fn handshakes_are_counted_by_outcome_and_reason() {
    ensure_deps();
    let certs = Certs::new();
    let pmcd = pmcd_with_metrics(&certs.server_conf());
    let start = figures_when(&pmcd, "the TLS metrics", |r| {
        value(r, "handshakes.completed").is_some()
    });
    assert_eq!(number(&start, "handshakes.completed"), 0);
    assert_eq!(number(&start, "handshakes.failed"), 0);

    let good = Client::new(&certs.client_conf()).ours().secure("enforce");
    const N: i64 = 3;
    for _ in 0..N {
        assert_load_values(&good.fetch(&pmcd.host(), &[LOAD]));
    }
    // Our client, trusting another CA, refuses pmcd's certificate
    // (unknown_ca); one presenting a certificate of an unknown CA is
    // refused by pmcd: both untrusted issuers.
    let distrustful = Client::ours_trusting(&certs.path("selfsigned.crt"));
    distrustful.fetch(&pmcd.host(), &[LOAD]).assert_failed();
    let rogue = Client::new(&certs.client_conf_with_cert("rogue-client"))
        .ours()
        .secure("enforce");
    rogue.fetch(&pmcd.host(), &[LOAD]).assert_failed();
    garbage_client(&pmcd);
    garbage_client(&pmcd);
    silent_client(&pmcd);
    compression_client(&pmcd);
    const M: i64 = 6;
    assert!(
        pmcd.wait_until_idle(LOG_LIMIT),
        "pmcd kept connections open"
    );

    let run = figures_when(&pmcd, "all handshakes counted", |r| {
        number(r, "handshakes.failed") + number(r, "handshakes.completed") >= N + M
    });
    assert_eq!(number(&run, "handshakes.completed"), N, "{}", run.stdout);
    assert_eq!(number(&run, "handshakes.failed"), M, "{}", run.stdout);
    assert_eq!(number(&run, "handshakes.resumed"), 0, "{}", run.stdout);
    assert_eq!(number(&run, "sessions.open"), 0, "{}", run.stdout);
    let expected = [
        ("untrusted_issuer", 2),
        ("name_mismatch", 0),
        ("expired", 0),
        ("no_client_cert", 0),
        ("timeout", 1),
        ("protocol_error", 2),
        ("refused_upgrade", 1),
        ("other", 0),
    ];
    let failures = instances(&run, "handshakes.failures");
    assert_eq!(
        failures,
        expected
            .iter()
            .map(|(n, v)| (n.to_string(), *v))
            .collect::<Vec<_>>(),
        "{}\n{}",
        run.stdout,
        pmcd.log()
    );
    assert_eq!(
        instances(&run, "handshakes.protocol"),
        vec![("TLSv1.2".to_string(), 0), ("TLSv1.3".to_string(), N)],
        "{}",
        run.stdout
    );

    // The served certificate and its CA (tls-ca-cert-file).
    let (subject, end) = subject_and_end(&certs.path("server.crt"));
    let (ca_subject, ca_end) = subject_and_end(&certs.path("ca.crt"));
    let taken = now();
    assert_eq!(value(&run, "certificate.subject"), Some(subject));
    assert_eq!(number(&run, "certificate.not_after"), end);
    let left = number(&run, "certificate.expires_in");
    assert!(
        (left - (end - taken)).abs() <= 3,
        "expires_in {left}, the certificate ends in {} s",
        end - taken
    );
    assert_eq!(value(&run, "certificate.ca_subject"), Some(ca_subject));
    let ca_left = number(&run, "certificate.ca_expires_in");
    assert!(
        (ca_left - (ca_end - taken)).abs() <= 3,
        "ca_expires_in {ca_left}"
    );
    assert_eq!(number(&run, "certificate.reloads"), 1);

    // Help text for each; counters are counters.
    let help = pmcd.pminfo_plain(&["-t", NS]);
    help.assert_ok();
    let names = figures(&pmcd).stdout;
    let leaves = names.lines().filter(|l| l.starts_with(NS)).count();
    let helped = help
        .stdout
        .lines()
        .filter(|l| {
            l.starts_with(NS)
                && l.contains(" [")
                && !l.contains("[<no one-line help text specified>]")
        })
        .count();
    assert_eq!(helped, leaves, "{}", help.stdout);
    let desc = pmcd.pminfo_plain(&[
        "-d",
        &metric("handshakes.failed"),
        &metric("certificate.expires_in"),
    ]);
    assert!(
        desc.stdout.contains("Semantics: counter") && desc.stdout.contains("Units: sec"),
        "{}",
        desc.describe()
    );
    let mut pmcd = pmcd;
    pmcd.assert_running();
}

// After a renewal (files renamed over the served ones) the reload time,
// the number of loads and the subject change; the CA is no longer known
// (the self-signed certificate is not from tls-ca-cert-file).
#[test]
fn a_renewal_changes_the_certificate_figures() {
    ensure_deps();
    let certs = Certs::new();
    let served = tempfile::tempdir().unwrap();
    let (crt, key) = (
        served.path().join("pmcd.crt"),
        served.path().join("pmcd.key"),
    );
    renew_file(&certs.path("server.crt"), &crt);
    renew_file(&certs.path("server.key"), &key);
    let before_start = now();
    let pmcd = pmcd_with_metrics(&tls_conf(&[
        ("tls-cert-file", crt.to_str().unwrap()),
        ("tls-key-file", key.to_str().unwrap()),
        ("tls-ca-cert-file", &certs.path("ca.crt")),
    ]));
    let first = figures_when(&pmcd, "the TLS metrics", |r| {
        value(r, "certificate.reloads").is_some()
    });
    let (old_subject, _) = subject_and_end(&certs.path("server.crt"));
    assert_eq!(
        value(&first, "certificate.subject"),
        Some(old_subject.clone())
    );
    assert_eq!(number(&first, "certificate.reloads"), 1);
    let loaded = number(&first, "certificate.reloaded");
    assert!(
        (before_start..=now()).contains(&loaded),
        "reloaded {loaded}, pmcd started at {before_start}"
    );

    // The renewal: a certificate with a subject of its own (mkcerts'
    // server certificates all name CN=localhost), written beside and
    // renamed over the served files.
    let renewed = served.path().join("renewed");
    let made = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ])
        .args([
            "-days",
            "200",
            "-subj",
            "/O=pcp_secure tests/CN=renewed.example",
        ])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        .arg("-keyout")
        .arg(renewed.with_extension("key"))
        .arg("-out")
        .arg(renewed.with_extension("crt"))
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let new_crt = renewed.with_extension("crt").to_str().unwrap().to_string();
    renew_file(renewed.with_extension("key").to_str().unwrap(), &key);
    renew_file(&new_crt, &crt);
    // pmcd looks at the files when a client connects.
    let trusts_new = Client::ours_trusting(&new_crt);
    let start = Instant::now();
    while !trusts_new.fetch(&pmcd.host(), &[LOAD]).success() {
        assert!(
            start.elapsed() < LOG_LIMIT,
            "the renewed certificate was not served\n{}",
            pmcd.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let after = figures(&pmcd);
    let (new_subject, new_end) = subject_and_end(&new_crt);
    assert_ne!(new_subject, old_subject, "the test needs two subjects");
    assert_eq!(value(&after, "certificate.subject"), Some(new_subject));
    assert_eq!(number(&after, "certificate.not_after"), new_end);
    assert_eq!(number(&after, "certificate.reloads"), 2);
    let reloaded = number(&after, "certificate.reloaded");
    assert!(
        reloaded > loaded && reloaded <= now(),
        "reloaded {reloaded}, first load {loaded}"
    );
    assert_eq!(value(&after, "certificate.ca_subject"), Some(String::new()));
    assert_eq!(number(&after, "certificate.ca_expires_in"), 0);
}

/// Runs pmie with the shipped rules against `pmcd` for a few samples a
/// second apart; its output.
fn pmie(pmcd: &Pmcd, verbose: bool) -> Run {
    let rules = manifest_dir().join("packaging").join("pcp-secure.pmie");
    let scratch = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(scratch.path().join("pmie")).unwrap();
    let mut cmd = std::process::Command::new("/usr/bin/pmie");
    cmd.env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("LC_ALL", "C")
        .env("HOME", scratch.path())
        .env("PCP_TMP_DIR", scratch.path())
        .args(["-f", "-t", "1sec", "-T", "4sec", "-h", &pmcd.host()]);
    if verbose {
        // Each rule's truth at each sample.
        cmd.arg("-v");
    }
    cmd.arg("-c").arg(&rules);
    run_with_limit(cmd, CLIENT_LIMIT)
}

// The shipped pmie rules fire against a short-lived certificate (soon.crt,
// 9 days and a half) and when handshakes fail; against a certificate good
// for a year with no failures they say nothing.
#[test]
fn the_pmie_rules_warn_about_expiry_and_failures() {
    ensure_deps();
    let certs = Certs::new();
    let soon = pmcd_with_metrics(&certs.server_conf_with("soon"));
    figures_when(&soon, "the TLS metrics", |r| {
        value(r, "certificate.expires_in").is_some()
    });
    // Failures while pmie watches: garbage every few hundred milliseconds.
    let done = std::sync::atomic::AtomicBool::new(false);
    let run = std::thread::scope(|s| {
        s.spawn(|| {
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                garbage_client(&soon);
                std::thread::sleep(Duration::from_millis(300));
            }
        });
        let run = pmie(&soon, false);
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        run
    });
    assert!(!run.timed_out, "{}", run.describe());
    assert!(
        run.stdout.contains("pmcd on")
            && run.stdout.contains("expires in")
            && run.stdout.contains("under 30 days"),
        "the expiry rule did not fire\n{}",
        run.describe()
    );
    assert!(
        run.stdout.contains("TLS handshakes with pmcd on") && run.stdout.contains("are failing"),
        "the failure rule did not fire\n{}",
        run.describe()
    );

    let fine = pmcd_with_metrics(&certs.server_conf());
    figures_when(&fine, "the TLS metrics", |r| {
        value(r, "certificate.expires_in").is_some()
    });
    let quiet = pmie(&fine, true);
    assert!(
        !quiet.stdout.contains("pcp_secure:"),
        "a rule fired for a certificate good for a year without failures\n{}",
        quiet.describe()
    );
    // Both rules were evaluated, and found false.
    for rule in [
        "pcp_secure_certificate_expires",
        "pcp_secure_handshakes_failing",
    ] {
        assert!(
            quiet
                .stdout
                .lines()
                .any(|l| l.starts_with(rule) && l.trim_end().ends_with("false")),
            "{rule} was not evaluated
{}",
            quiet.describe()
        );
    }
    assert!(!quiet.stderr.contains("error"), "{}", quiet.describe());
}

// Publishing is optional: where the MMV directory cannot be written pmcd
// serves TLS as before and says so once at debug level; with
// PCP_SECURE_METRICS=0 nothing is published at all.
#[test]
fn without_a_writable_mmv_directory_pmcd_works_and_says_so_once() {
    ensure_deps();
    let certs = Certs::new();
    let pmcd = Pmcd::builder()
        .preload_ours(true)
        .mmv(true)
        .tls_conf(&certs.server_conf())
        .env("PCP_SECURE_DEBUG", "1")
        .env("PCP_TMP_DIR", "/nonexistent/pcp-secure-tmp")
        .start();
    let good = Client::new(&certs.client_conf()).ours().secure("enforce");
    assert_load_values(&good.fetch(&pmcd.host(), &[LOAD]));
    assert_load_values(&good.fetch(&pmcd.host(), &[LOAD]));
    let said: Vec<String> = pmcd
        .pcp_secure_lines()
        .into_iter()
        .filter(|l| l.contains("TLS metrics are not published"))
        .collect();
    assert_eq!(said.len(), 1, "{}", pmcd.log());
    assert!(
        said[0].contains("debug") && said[0].contains("/nonexistent/pcp-secure-tmp/mmv"),
        "{}",
        said[0]
    );

    let off = Pmcd::builder()
        .preload_ours(true)
        .mmv(true)
        .tls_conf(&certs.server_conf())
        .env("PCP_SECURE_METRICS", "0")
        .start();
    assert_load_values(&good.fetch(&off.host(), &[LOAD]));
    let listing: Vec<_> = std::fs::read_dir(off.mmv_dir()).unwrap().collect();
    assert!(listing.is_empty(), "{listing:?}");
    let run = off.pminfo_plain(&["-f", NS]);
    assert!(!run.stdout.contains("handshakes"), "{}", run.describe());
}

/// pmproxy with the library preloaded publishes its HTTPS handshakes under
/// `mmv.pcp_secure.pmproxy` (its MMV file in the PCP_TMP_DIR of a pmcd
/// running the mmv PMDA): after two good HTTPS requests and one client
/// that sends a TLS record header followed by garbage, exactly 2 completed
/// and 1 failed (protocol error). (A client refusing pmproxy's certificate
/// is no fixed count: newer curl checks the chain after the handshake.)
#[test]
fn pmproxy_publishes_its_https_handshakes() {
    ensure_deps();
    let certs = Certs::new();
    let pmcd = pmcd_with_metrics(&certs.server_conf());
    let tmp = pmcd.mmv_dir().parent().unwrap().to_path_buf();
    let mut proxy = support::pmproxy::Pmproxy::builder()
        .tls_conf(&certs.server_conf())
        .preload_ours(true)
        .env("PCP_TMP_DIR", tmp.to_str().unwrap())
        .start();
    let ns = "mmv.pcp_secure.pmproxy";
    let read = |name: &str| -> (Option<i64>, Run) {
        let run = pmcd.pminfo_plain(&["-f", ns]);
        let v = run
            .value_of(&format!("{ns}.{name}"))
            .and_then(|v| v.parse().ok());
        (v, run)
    };
    let curl = |extra: &[&str]| {
        std::process::Command::new("curl")
            .args([
                "-s",
                "--max-time",
                "30",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
            ])
            .args(extra)
            .arg(format!("https://localhost:{}/pmapi/context", proxy.port()))
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .expect("curl runs")
    };
    let ca = certs.path("ca.crt");
    assert_ne!(curl(&["--cacert", &ca]), "000", "{}", proxy.log());
    assert_ne!(curl(&["--cacert", &ca]), "000", "{}", proxy.log());
    {
        use std::io::{Read, Write};
        let mut raw = std::net::TcpStream::connect(proxy.addr()).unwrap();
        raw.set_read_timeout(Some(LOG_LIMIT)).unwrap();
        let mut garbage = pseudo_random(2048, 0x18_18_18);
        garbage[..5].copy_from_slice(&[0x16, 0x03, 0x01, 0x07, 0xfb]);
        let _ = raw.write_all(&garbage);
        let mut sink = Vec::new();
        let _ = raw.read_to_end(&mut sink);
        assert!(
            !String::from_utf8_lossy(&sink).contains("HTTP/"),
            "no plaintext answer to garbage"
        );
    }
    let start = Instant::now();
    loop {
        let (completed, run) = read("handshakes.completed");
        let (failed, _) = read("handshakes.failed");
        if completed == Some(2) && failed == Some(1) {
            let full = format!("{ns}.handshakes.failures");
            let mut lines = run.stdout.lines().skip_while(|l| l.trim() != full);
            lines.next();
            let line = lines
                .take_while(|l| !l.trim().is_empty())
                .find(|l| l.contains("\"protocol_error\""))
                .unwrap_or_else(|| panic!("no protocol_error instance\n{}", run.describe()));
            assert!(
                line.trim_end().ends_with("value 1"),
                "{line}\n{}",
                run.describe()
            );
            break;
        }
        assert!(
            start.elapsed() < LOG_LIMIT,
            "pmproxy's figures: completed {completed:?}, failed {failed:?}\n{}\n{}",
            run.describe(),
            proxy.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    proxy.assert_running();
}
