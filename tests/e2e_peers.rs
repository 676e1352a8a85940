//! End-to-end checks of our pmcd against an independent TLS implementation
//! (Python's ssl module, i.e. OpenSSL, speaking PCP's connection handshake
//! from tests/peers/openssl_client.py), of the TLS settings in pmcd's
//! tls.conf, of SASL authentication carried over our TLS, and of a
//! long-lived client reconnecting to a stock pmcd.

use pcp_secure_test_support as support;

use std::path::PathBuf;
use std::process::{Command, Stdio};

use support::{assert_load_values, tls_conf, Certs, Client, Pmcd, Recorder};

fn peer(port: u16, ca: &str, extra: &[&str]) -> (bool, String) {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/peers/openssl_client.py");
    let out = Command::new("python3")
        .arg("-W")
        .arg("ignore::DeprecationWarning")
        .arg(&script)
        .arg(port.to_string())
        .arg(ca)
        .args(extra)
        .stdin(Stdio::null())
        .output()
        .expect("python3 runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn our_pmcd(conf: &str) -> Pmcd {
    support::ensure_deps();
    Pmcd::builder().preload_ours(true).tls_conf(conf).start()
}

/// Our server completes TLS 1.3 and TLS 1.2 handshakes with OpenSSL as the
/// client, answers a PDU over the encrypted channel, and refuses TLS 1.1.
#[test]
fn openssl_client_gets_tls13_and_tls12_but_not_tls11() {
    let certs = Certs::new();
    let pmcd = our_pmcd(&certs.server_conf());
    let ca = certs.path("ca.crt");
    let (ok, out) = peer(pmcd.port(), &ca, &["--tls", "1.3"]);
    assert!(ok && out.contains("OK TLSv1.3"), "TLS 1.3: {out}");
    let (ok, out) = peer(pmcd.port(), &ca, &["--tls", "1.2"]);
    assert!(ok && out.contains("OK TLSv1.2 ECDHE-"), "TLS 1.2: {out}");
    let (ok, out) = peer(pmcd.port(), &ca, &["--tls", "1.1"]);
    assert!(!ok, "TLS 1.1 must be refused: {out}");
    assert!(
        out.contains("alert"),
        "the refusal must come from the server as a TLS alert: {out}"
    );
    // The server kept serving.
    let (ok, out) = peer(pmcd.port(), &ca, &[]);
    assert!(ok, "after the refusal: {out}");
}

/// OpenSSL verifies our server's certificate and host name like any client:
/// the name on the certificate is what it checks.
#[test]
fn openssl_client_checks_our_certificate_name() {
    let certs = Certs::new();
    let pmcd = our_pmcd(&certs.server_conf());
    let (ok, out) = peer(
        pmcd.port(),
        &certs.path("ca.crt"),
        &["--host", "other.example"],
    );
    assert!(!ok && out.contains("other.example"), "{out}");
    let (ok, out) = peer(pmcd.port(), &certs.path("other-ca.crt"), &[]);
    assert!(!ok && out.contains("CERTIFICATE_VERIFY_FAILED"), "{out}");
}

/// tls-ciphersuites and tls-ciphers in pmcd's tls.conf decide what is
/// negotiated.
#[test]
fn configured_cipher_suites_are_the_ones_negotiated() {
    let certs = Certs::new();
    let conf = format!(
        "{}{}",
        certs.server_conf(),
        tls_conf(&[
            ("tls-ciphersuites", "TLS_CHACHA20_POLY1305_SHA256"),
            ("tls-ciphers", "ECDHE-RSA-AES128-GCM-SHA256"),
        ])
    );
    let pmcd = our_pmcd(&conf);
    let ca = certs.path("ca.crt");
    let (ok, out) = peer(pmcd.port(), &ca, &["--tls", "1.3"]);
    assert!(ok && out.contains("TLS_CHACHA20_POLY1305_SHA256"), "{out}");
    let (ok, out) = peer(pmcd.port(), &ca, &["--tls", "1.2"]);
    assert!(ok && out.contains("ECDHE-RSA-AES128-GCM-SHA256"), "{out}");
}

/// An unknown cipher name is a configuration error that names the cipher;
/// pmcd keeps running and serves plain connections.
#[test]
fn unknown_cipher_name_is_reported_and_pmcd_serves_plain() {
    let certs = Certs::new();
    let conf = format!(
        "{}{}",
        certs.server_conf(),
        tls_conf(&[("tls-ciphersuites", "TLS_NO_SUCH_SUITE")])
    );
    let pmcd = our_pmcd(&conf);
    let log = pmcd.log();
    assert!(
        log.lines().any(|l| l.starts_with("pcp_secure:")
            && l.contains("\"TLS_NO_SUCH_SUITE\"")
            && l.contains("tls-ciphersuites")),
        "pmcd.log must name the bad cipher:\n{log}"
    );
    let plain = Client::new("")
        .ours()
        .fetch(&pmcd.host(), &["kernel.all.load", "pmcd.feature.secure"]);
    assert_load_values(&plain);
    assert_eq!(
        plain.value_of("pmcd.feature.secure").as_deref(),
        Some("0"),
        "{}",
        plain.describe()
    );
}

/// SASL authentication (PDU_FLAG_AUTH) runs inside our TLS session and is
/// done by libpcp's own code: PLAIN and SCRAM-SHA-256 succeed with the right
/// password, a wrong one is refused by SASL.
#[test]
fn sasl_authentication_runs_over_tls() {
    support::ensure_deps();
    if Command::new("saslpasswd2")
        .arg("-v")
        .stderr(Stdio::null())
        .status()
        .is_err()
    {
        panic!("saslpasswd2 is missing: run scripts/install-deps (sasl2-bin, libsasl2-modules)");
    }
    let certs = Certs::new();
    let sasl = tempfile::tempdir().unwrap();
    let db = sasl.path().join("passwd.db");
    std::fs::write(
        sasl.path().join("pmcd.conf"),
        format!(
            "mech_list: plain scram-sha-256\nsasldb_path: {}\n",
            db.display()
        ),
    )
    .unwrap();
    // pmcd maps the authenticated name to a local account: use "pcp",
    // which Debian's pcp package creates.
    let mut add = Command::new("saslpasswd2")
        .args(["-p", "-c", "-a", "pmcd", "-f"])
        .arg(&db)
        .arg("pcp")
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    add.stdin.take().unwrap().write_all(b"s3cret-pw").unwrap();
    assert!(add.wait().unwrap().success(), "saslpasswd2 failed");

    let pmcd = Pmcd::builder()
        .preload_ours(true)
        .tls_conf(&certs.server_conf())
        .env("SASL_CONF_PATH", sasl.path().to_str().unwrap())
        .start();
    let client = Client::new(&certs.client_conf()).ours().secure("enforce");
    for method in ["plain", "scram-sha-256"] {
        let spec = format!(
            "pcp://localhost:{}?username=pcp&password=s3cret-pw&method={method}",
            pmcd.port()
        );
        assert_load_values(&client.fetch(&spec, &["kernel.all.load"]));
    }
    let spec = format!(
        "pcp://localhost:{}?username=pcp&password=wrong&method=plain",
        pmcd.port()
    );
    let run = client.fetch(&spec, &["kernel.all.load"]);
    assert!(
        run.stderr.contains("authentication failure")
            || run.stdout.contains("authentication failure"),
        "a wrong password must fail SASL:\n{}",
        run.describe()
    );
}

/// A client that asks for TLS although this pmcd has none (a hostile or
/// confused client: real ones only ask when TLS is advertised) gets a
/// non-zero secure-ack status in plaintext, no TLS, and the connection is
/// closed rather than continued in plaintext.
#[test]
fn secure_request_to_server_without_tls_gets_a_refusing_status() {
    support::ensure_deps();
    let pmcd = Pmcd::builder().preload_ours(true).start();
    let (mut raw, features, ack) = support::RawClient::up_to_ack(pmcd.addr(), 0x11);
    assert_eq!(
        features & 0x1,
        0,
        "no TLS may be advertised (features {features:#06x})"
    );
    assert_eq!(ack, -libc::EOPNOTSUPP, "status of the secure request");
    let (reply, closed) = raw
        .read_until_closed_or_alert(std::time::Duration::from_secs(30))
        .expect("close");
    assert!(
        reply.is_empty() && closed,
        "nothing may follow the refusing status: {reply:?}"
    );
    assert!(
        pmcd.log()
            .lines()
            .any(|l| l.starts_with("pcp_secure:") && l.contains("no usable TLS configuration")),
        "pmcd.log must say why:\n{}",
        pmcd.log()
    );
}

/// The library says once, at load and only at debug level, that it took
/// over TLS, with its version and the rustls version; without
/// PCP_SECURE_DEBUG it is silent.
#[test]
fn library_announces_itself_at_debug_level_only() {
    support::ensure_deps();
    let debug = support::pminfo(&["--version"], &[("PCP_SECURE_DEBUG", "1")], true);
    debug.assert_ok();
    let lines: Vec<_> = debug
        .stderr
        .lines()
        .filter(|l| l.contains("libpcp's TLS is handled by rustls"))
        .collect();
    assert_eq!(lines.len(), 1, "{}", debug.describe());
    assert!(
        lines[0].starts_with("pcp_secure: debug: libpcp_secure 1.")
            && lines[0].contains("(rustls 0."),
        "{}",
        lines[0]
    );
    let quiet = support::pminfo(&["--version"], &[], true);
    quiet.assert_ok();
    assert!(!quiet.stderr.contains("pcp_secure"), "{}", quiet.describe());
}

/// TLS secrets are written only when PCP_TLS_KEYLOG names a file, then in
/// the NSS key log format to a 0600 file, with a warning; otherwise
/// nothing anywhere (and never in pmcd's log).
#[test]
fn key_log_only_when_asked_for_and_with_a_warning() {
    use std::os::unix::fs::PermissionsExt;
    let certs = Certs::new();
    let pmcd = our_pmcd(&certs.server_conf());
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys.log");
    let client = Client::new(&certs.client_conf()).ours().secure("enforce");

    let quiet = client.fetch(&pmcd.host_named("localhost"), &["kernel.all.load"]);
    assert_load_values(&quiet);
    assert!(
        !quiet.stderr.contains("PCP_TLS_KEYLOG") && !keys.exists(),
        "{}",
        quiet.describe()
    );

    let logged = Client::new(&certs.client_conf())
        .ours()
        .secure("enforce")
        .env("PCP_TLS_KEYLOG", keys.to_str().unwrap())
        .fetch(&pmcd.host_named("localhost"), &["kernel.all.load"]);
    assert_load_values(&logged);
    assert!(
        logged
            .stderr
            .lines()
            .any(|l| l.starts_with("pcp_secure: warning: PCP_TLS_KEYLOG is set")),
        "{}",
        logged.describe()
    );
    let text = std::fs::read_to_string(&keys).unwrap();
    assert!(
        text.lines()
            .any(|l| l.starts_with("CLIENT_TRAFFIC_SECRET_0 ")),
        "{text}"
    );
    assert_eq!(
        std::fs::metadata(&keys).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(!pmcd.log().contains("SECRET"), "{}", pmcd.log());
}

/// One long-lived client process, the library preloaded, reconnects ten
/// times to a STOCK pmcd (OpenSSL TLS, no library in pmcd): python's PMAPI
/// (tests/peers/pmapi_reconnect.py) opens a context, fetches
/// kernel.all.load and destroys the context, ten times, with
/// PCP_SECURE_SOCKETS=enforce and a tls.conf trusting the server's CA.
/// Every one of the ten must succeed, and each must be a TLS connection
/// (through the recording proxy: TLS records only after the ack, the metric
/// name never in the clear).
///
/// Monitoring tools reconnect like this all the time. A TLS client that
/// offers stock pmcd a session ticket from the previous connection gets a
/// fatal internal_error alert instead of a handshake (stock pmcd sets
/// SSL_VERIFY_PEER without a session-id context, so OpenSSL refuses every
/// resumption), so a client that resumes fails every other reconnect.
#[test]
fn python_client_reconnects_ten_times_to_stock_pmcd() {
    const CONNECTIONS: usize = 10;
    support::ensure_deps();
    let certs = Certs::new();
    let pmcd = Pmcd::builder()
        .preload_ours(false)
        .tls_conf(&certs.server_conf())
        .start();
    let rec = Recorder::start(pmcd.addr());
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/peers/pmapi_reconnect.py");
    let run = Client::new(&certs.client_conf())
        .ours()
        .secure("enforce")
        // Says per connection whether the handshake was full or resumed.
        .env("PCP_SECURE_DEBUG", "1")
        .run(
            "/usr/bin/python3",
            &[
                script.to_str().unwrap(),
                &rec.host(),
                &CONNECTIONS.to_string(),
                "kernel.all.load",
            ],
        );
    let failed: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| l.contains("FAILED"))
        .collect();
    assert!(
        run.success()
            && failed.is_empty()
            && run.stdout.contains(&format!(
                "{CONNECTIONS} of {CONNECTIONS} connections succeeded"
            )),
        "{} of {CONNECTIONS} reconnections to stock pmcd failed: {failed:?}\n{}",
        failed.len(),
        run.describe()
    );
    // The library offers the second connection a session to resume; stock
    // pmcd aborts it, and the library connects once more with a full
    // handshake and never offers that pmcd a session again: one extra
    // (aborted) connection at most, never a failed context.
    let retries = run
        .stderr
        .matches("refused to resume a TLS session")
        .count();
    assert!(
        retries <= 1,
        "the library must stop offering resumption after the first refusal\n{}",
        run.describe()
    );
    let conns = rec.finished(CONNECTIONS + retries);
    assert_eq!(
        conns.len(),
        CONNECTIONS + retries,
        "one connection per context (plus the refused resumption) expected\n{}",
        run.describe()
    );
    let mut refused = 0;
    for (i, c) in conns.iter().enumerate() {
        match c.check_tls(&["kernel.all.load", "kernel.all"]) {
            Ok(_) => {}
            Err(e) if refused < retries && is_refused_resumption(c) => {
                eprintln!("connection {}: the refused resumption ({e})", i + 1);
                refused += 1;
            }
            Err(e) => panic!("connection {}: not a proper TLS connection: {e}", i + 1),
        }
    }
    assert_eq!(
        refused, retries,
        "the refused resumption attempt is on the wire"
    );
}

/// A connection that went as far as our ClientHello and ended there: the
/// PCP opening, one handshake record from the client and nothing else
/// (no application data: nothing can have been sent), and a fatal alert
/// from the server.
fn is_refused_resumption(c: &support::Recording) -> bool {
    let Ok(o) = support::parse_opening(c) else {
        return false;
    };
    let client = support::tls_records(&c.c2s[o.c2s_rest..]);
    let server = support::tls_records(&c.s2c[o.s2c_rest..]);
    matches!(client.as_deref(), Ok([(22, _)]))
        && matches!(server.as_deref(), Ok(records) if records.iter().all(|r| r.0 == 21) && !records.is_empty())
}
