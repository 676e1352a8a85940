//! End-to-end tests: Debian's unchanged pmcd and pminfo, with and without
//! libpcp_secure preloaded, over loopback TCP.
//!
//! Needs PCP installed (scripts/install-deps: 6.0.3 on Debian 12;
//! scripts/test-matrix also runs a selection against newer releases) and the
//! library built (cargo build). Each test makes its own certificates and
//! starts its own private pmcd on a free 127.0.0.1 / ::1 port.

use pcp_secure_test_support as support;

use std::time::Duration;

use support::*;

const LOAD: &str = "kernel.all.load";
const VERSION: &str = "pmcd.version";
const SECURE: &str = "pmcd.feature.secure";

/// Strings that must never be seen in the clear on a TLS connection: the
/// metric name pminfo looks up and the version string pmcd returns (that of
/// the installed PCP).
fn secrets() -> [&'static str; 3] {
    [LOAD, "kernel.all", pcp_version()]
}

fn our_tls_pmcd(certs: &Certs) -> Pmcd {
    Pmcd::builder()
        .preload_ours(true)
        .tls_conf(&certs.server_conf())
        .start()
}

/// pmcd.feature.secure as read by a plain stock pminfo.
fn feature_secure(pmcd: &Pmcd) -> String {
    let run = Client::new("").stock().fetch(&pmcd.host(), &[SECURE]);
    run.assert_ok();
    run.value_of(SECURE)
        .unwrap_or_else(|| panic!("no value for {SECURE}\n{}", run.describe()))
}

fn assert_version(run: &Run) {
    assert_eq!(
        run.value_of(VERSION).as_deref(),
        Some(format!("\"{}\"", pcp_version()).as_str()),
        "pmcd.version\n{}",
        run.describe()
    );
}

fn assert_no_errors(run: &Run) {
    let errors: Vec<&str> = run
        .pcp_secure_lines()
        .into_iter()
        .filter(|l| l.contains("error"))
        .collect();
    assert!(
        errors.is_empty(),
        "unexpected pcp_secure errors\n{}",
        run.describe()
    );
}

/// A pcp_secure line in `text` for which `pred` holds.
/// Asserts that a refused run printed no metric values.
fn assert_no_values(run: &Run) {
    assert!(
        !run.stdout.contains(" value "),
        "values were delivered\n{}",
        run.describe()
    );
}

fn pcp_secure_line(text: &str, pred: impl Fn(&str) -> bool) -> Option<&str> {
    text.lines()
        .map(str::trim_start)
        .find(|l| l.starts_with("pcp_secure:") && pred(l))
}

// (a) Our client and our pmcd talk TLS: values arrive, everything after the
// plaintext challenge/creds/ack is well-formed TLS records with application
// data both ways, neither the metric name nor the version string is visible
// on the wire, and pmcd reports pmcd.feature.secure = 1.
#[test]
fn ours_to_ours_over_tls() {
    ensure_deps();
    let certs = Certs::new();
    let pmcd = our_tls_pmcd(&certs);
    let rec = Recorder::start(pmcd.addr());
    let client = Client::new(&certs.client_conf()).ours().secure("enforce");

    let run = client.fetch(&rec.host(), &[LOAD, VERSION]);
    assert_load_values(&run);
    assert_version(&run);
    assert_no_errors(&run);
    let conns = rec.finished(1);
    assert_eq!(conns.len(), 1, "pminfo made {} connections", conns.len());
    conns[0].assert_tls(&secrets());

    let run = client.fetch(&pmcd.host(), &[SECURE]);
    run.assert_ok();
    assert_eq!(
        run.value_of(SECURE).as_deref(),
        Some("1"),
        "{}",
        run.describe()
    );
    assert_eq!(feature_secure(&pmcd), "1");

    // Our client trusting only another CA refuses this server: the
    // successful runs above really verified it.
    let distrust = tls_conf(&[("tls-ca-cert-file", &certs.path("other-ca.crt"))]);
    let run = Client::new(&distrust)
        .ours()
        .secure("enforce")
        .fetch(&pmcd.host(), &[LOAD]);
    run.assert_failed();
    assert_no_values(&run);
}

// (a'') A tls.conf with a byte that is not UTF-8 (a Latin-1 comment, as an
// editor may write it) means the same to our client as to libpcp and pmcd.
#[test]
fn latin1_comment_in_client_tls_conf() {
    ensure_deps();
    let certs = Certs::new();
    let pmcd = our_tls_pmcd(&certs);
    let client = Client::new("").ours().secure("enforce");
    let mut conf = b"# caf\xe9 du serveur \xb7 collector\n".to_vec();
    conf.extend_from_slice(certs.client_conf().as_bytes());
    std::fs::write(client.conf_path(), conf).unwrap();
    let run = client.fetch(&pmcd.host(), &[LOAD]);
    assert_load_values(&run);
    assert_no_errors(&run);
}

// (a3) Environment values that do not mean what they look like are named
// in a warning: PCP_SECURE_SOCKETS values that libpcp reads as "no TLS"
// (the connection that follows is indeed plain), a time-out that is not
// a number of seconds (the default is used), a PCP_SECURE_DEBUG that is
// neither 0 nor 1.
#[test]
fn environment_values_that_do_not_work_are_warned_about() {
    ensure_deps();
    let certs = Certs::new();
    let pmcd = our_tls_pmcd(&certs);
    let rec = Recorder::start(pmcd.addr());
    let run = Client::new(&certs.client_conf())
        .ours()
        .secure("ENFORCE")
        .fetch(&rec.host(), &[LOAD]);
    assert_load_values(&run);
    assert!(
        run.stderr
            .contains("PCP_SECURE_SOCKETS=\"ENFORCE\" is not a value libpcp knows"),
        "{}",
        run.describe()
    );
    rec.finished(1)[0].assert_plain(&[LOAD], &[]);

    let run = Client::new(&certs.client_conf())
        .ours()
        .secure("enforce")
        .env("PCP_SECURE_HANDSHAKE_TIMEOUT", "soon")
        .env("PCP_SECURE_DEBUG", "maybe")
        .fetch(&pmcd.host(), &[LOAD]);
    assert_load_values(&run);
    assert!(
        run.stderr
            .contains("PCP_SECURE_DEBUG=\"maybe\" is neither 0 nor 1; it is taken as 1"),
        "{}",
        run.describe()
    );
    assert!(
        run.stderr.contains(
            "PCP_SECURE_HANDSHAKE_TIMEOUT=\"soon\" is not a number of seconds (above 0, below 86400); the default is used"
        ),
        "{}",
        run.describe()
    );
}

// (a4) Renewal without a restart: new certificate files are served to new
// connections within seconds; a renewal that cannot be used is logged and
// the previous certificate keeps serving.
#[test]
fn renewed_certificate_files_are_served_without_a_restart() {
    ensure_deps();
    let certs = Certs::new();
    let served = tempfile::tempdir().unwrap();
    let (crt, key) = (
        served.path().join("pmcd.crt"),
        served.path().join("pmcd.key"),
    );
    let renew = |from: &str, to: &std::path::Path| support::renew_file(&certs.path(from), to);
    renew("server.crt", &crt);
    renew("server.key", &key);
    let pmcd = Pmcd::builder()
        .preload_ours(true)
        .tls_conf(&tls_conf(&[
            ("tls-cert-file", crt.to_str().unwrap()),
            ("tls-key-file", key.to_str().unwrap()),
            ("tls-ca-cert-file", &certs.path("ca.crt")),
        ]))
        .start();
    let trusts_old = Client::new(&certs.client_conf()).ours().secure("enforce");
    let trusts_new = Client::new(&tls_conf(&[(
        "tls-ca-cert-file",
        &certs.path("selfsigned.crt"),
    )]))
    .ours()
    .secure("enforce");
    assert_load_values(&trusts_old.fetch(&pmcd.host(), &[LOAD]));
    trusts_new.fetch(&pmcd.host(), &[LOAD]).assert_failed();

    renew("selfsigned.key", &key);
    renew("selfsigned.crt", &crt);
    let start = std::time::Instant::now();
    loop {
        let run = trusts_new.fetch(&pmcd.host(), &[LOAD]);
        if run.success() {
            assert_load_values(&run);
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the renewed certificate was not served\n{}\n{}",
            run.describe(),
            pmcd.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        pmcd.log()
            .contains("the server's certificate files changed: new connections are served with"),
        "{}",
        pmcd.log()
    );
    trusts_old.fetch(&pmcd.host(), &[LOAD]).assert_failed();

    // A broken renewal: a certificate the key does not fit.
    renew("wronghost.crt", &crt);
    assert!(
        pmcd.wait_for_log(Duration::from_secs(30), |log| {
            // Each connection makes pmcd look at the files (at most once a second).
            let _ = trusts_new.fetch(&pmcd.host(), &[LOAD]);
            log.contains("cannot be used") && log.contains("the previous certificate keeps serving")
        }),
        "{}",
        pmcd.log()
    );
    assert_load_values(&trusts_new.fetch(&pmcd.host(), &[LOAD]));
    let mut pmcd = pmcd;
    pmcd.assert_running();
}

// (a') The server name is checked against what the user typed, in all three
// loopback spellings: "localhost" and "127.0.0.1" against an IPv4 pmcd,
// "[::1]" against an IPv6 pmcd (where the machine has an IPv6 loopback); all
// are in the SANs of server.crt. A chain file (server-chain.crt) works as
// tls-cert-file.
#[test]
fn ours_to_ours_localhost_ipv4_ipv6_and_chain_file() {
    ensure_deps();
    let certs = Certs::new();
    let client = Client::new(&certs.client_conf()).ours().secure("enforce");

    let v4 = our_tls_pmcd(&certs);
    assert_load_values(&client.fetch(&v4.host_named("localhost"), &[LOAD]));
    assert_load_values(&client.fetch(&v4.host(), &[LOAD]));

    let chain_conf = tls_conf(&[
        ("tls-cert-file", &certs.path("server-chain.crt")),
        ("tls-key-file", &certs.path("server.key")),
        ("tls-ca-cert-file", &certs.path("ca.crt")),
    ]);
    let ipv6 = ipv6_available();
    if !ipv6 {
        eprintln!("NOTE: ::1 cannot be bound here; the IPv6 part runs over 127.0.0.1");
    }
    let v6 = Pmcd::builder()
        .preload_ours(true)
        .tls_conf(&chain_conf)
        .ipv6(ipv6)
        .start();
    if ipv6 {
        assert!(v6.host().starts_with("[::1]:"));
    }
    let rec = Recorder::start(v6.addr());
    let run = client.fetch(&rec.host(), &[LOAD, VERSION]);
    assert_load_values(&run);
    assert_version(&run);
    rec.finished(1)[0].assert_tls(&secrets());
}

// (b) Our client against a stock pmcd (no preload) with the same tls.conf:
// stock pmcd advertises TLS, our client verifies it and gets values over TLS,
// with and without presenting a client certificate.
#[test]
fn ours_client_to_stock_pmcd() {
    ensure_deps();
    let certs = Certs::new();
    let pmcd = Pmcd::builder()
        .preload_ours(false)
        .tls_conf(&certs.server_conf())
        .start();
    assert_eq!(
        feature_secure(&pmcd),
        "1",
        "stock pmcd with a certificate offers TLS"
    );

    let rec = Recorder::start(pmcd.addr());
    let client = Client::new(&certs.client_conf()).ours().secure("enforce");
    let run = client.fetch(&rec.host(), &[LOAD, VERSION]);
    assert_load_values(&run);
    assert_version(&run);
    assert_no_errors(&run);
    rec.finished(1)[0].assert_tls(&secrets());

    let with_cert = Client::new(&certs.client_conf_with_cert("client"))
        .ours()
        .secure("enforce");
    assert_load_values(&with_cert.fetch(&pmcd.host(), &[LOAD]));
}

// (c) A stock pminfo against our pmcd: with tls-verify-clients = true the
// stock client verifies our server certificate against ca.crt and gets values
// over TLS (with or without a client certificate); a stock client that
// trusts only another CA is refused, which shows that verification really
// happened on the successful runs.
#[test]
fn stock_client_to_ours_pmcd() {
    ensure_deps();
    let certs = Certs::new();
    let pmcd = our_tls_pmcd(&certs);
    assert_eq!(feature_secure(&pmcd), "1");

    let with_cert = tls_conf(&[
        ("tls-ca-cert-file", &certs.path("ca.crt")),
        ("tls-client-cert-file", &certs.path("client.crt")),
        ("tls-client-key-file", &certs.path("client.key")),
        ("tls-verify-clients", "true"),
    ]);
    let rec = Recorder::start(pmcd.addr());
    let run = Client::new(&with_cert)
        .stock()
        .secure("enforce")
        .fetch(&rec.host(), &[LOAD, VERSION]);
    assert_load_values(&run);
    assert_version(&run);
    rec.finished(1)[0].assert_tls(&secrets());

    let no_cert = tls_conf(&[
        ("tls-ca-cert-file", &certs.path("ca.crt")),
        ("tls-verify-clients", "true"),
    ]);
    assert_load_values(
        &Client::new(&no_cert)
            .stock()
            .secure("enforce")
            .fetch(&pmcd.host(), &[LOAD]),
    );

    let wrong_ca = tls_conf(&[
        ("tls-ca-cert-file", &certs.path("other-ca.crt")),
        ("tls-verify-clients", "true"),
    ]);
    let run = Client::new(&wrong_ca)
        .stock()
        .secure("enforce")
        .fetch(&pmcd.host(), &[LOAD]);
    run.assert_failed();
    pmcd_alive_and_serving(&certs, &pmcd);
}

// (d) Our TLS-enabled pmcd still serves plain clients (no
// PCP_SECURE_SOCKETS), stock and preloaded alike, and the recording shows
// plain PCP PDUs with the metric name and version readable on the wire.
#[test]
fn plain_clients_served_by_tls_pmcd() {
    ensure_deps();
    let certs = Certs::new();
    let mut pmcd = our_tls_pmcd(&certs);
    for ours in [false, true] {
        let rec = Recorder::start(pmcd.addr());
        let mut client = Client::new(&certs.client_conf());
        if ours {
            client = client.ours();
        }
        let run = client.fetch(&rec.host(), &[LOAD, VERSION]);
        assert_load_values(&run);
        assert_version(&run);
        assert!(
            run.pcp_secure_lines().is_empty(),
            "plain client printed pcp_secure lines\n{}",
            run.describe()
        );
        let conns = rec.finished(1);
        let opening = conns[0].assert_plain(&[LOAD], &[pcp_version()]);
        assert!(
            opening.features & PDU_FLAG_SECURE != 0,
            "pmcd should still advertise TLS"
        );
    }
    pmcd.assert_running();
}

// (e) A pmcd without a certificate does not offer TLS (feature.secure = 0):
// our client in enforce mode refuses to go on in plaintext, in relaxed mode
// it falls back to a plain connection (recorded as cleartext PDUs).
#[test]
fn server_without_tls() {
    ensure_deps();
    let certs = Certs::new();
    let pmcd = Pmcd::builder().preload_ours(true).start();
    assert_eq!(feature_secure(&pmcd), "0");

    let enforce = Client::new(&certs.client_conf())
        .ours()
        .secure("enforce")
        .fetch(&pmcd.host(), &[LOAD]);
    enforce.assert_failed();
    assert!(
        enforce.stderr.contains("Operation not supported")
            || !enforce.pcp_secure_lines().is_empty(),
        "enforce against a non-TLS pmcd should say why\n{}",
        enforce.describe()
    );
    assert!(
        !enforce.stdout.contains("value"),
        "values leaked\n{}",
        enforce.describe()
    );

    let rec = Recorder::start(pmcd.addr());
    let relaxed = Client::new(&certs.client_conf())
        .ours()
        .secure("relaxed")
        .fetch(&rec.host(), &[LOAD, VERSION]);
    assert_load_values(&relaxed);
    let opening = rec.finished(1)[0].assert_plain(&[LOAD], &[pcp_version()]);
    assert_eq!(
        opening.features & PDU_FLAG_SECURE,
        0,
        "pmcd advertised TLS without a certificate"
    );
}

// (e') A broken server configuration (tls-cert-file names a missing file) is
// reported in pmcd.log on a pcp_secure line naming the file; pmcd keeps
// running and serving plain clients, and does not claim TLS.
#[test]
fn bad_server_config_keeps_plain_service() {
    ensure_deps();
    let certs = Certs::new();
    let missing = certs.dir().join("no-such-server.crt");
    let missing = missing.to_str().unwrap();
    let conf = tls_conf(&[
        ("tls-cert-file", missing),
        ("tls-key-file", &certs.path("server.key")),
        ("tls-ca-cert-file", &certs.path("ca.crt")),
    ]);
    let mut pmcd = Pmcd::builder().preload_ours(true).tls_conf(&conf).start();
    assert!(
        pmcd.wait_for_log(LOG_LIMIT, |log| {
            pcp_secure_line(log, |l| l.contains("no-such-server.crt")).is_some()
        }),
        "no pcp_secure line naming {missing} in pmcd.log:\n{}",
        pmcd.log()
    );
    assert_eq!(feature_secure(&pmcd), "0");
    assert_load_values(&Client::new("").stock().fetch(&pmcd.host(), &[LOAD]));
    assert_load_values(&Client::new("").ours().fetch(&pmcd.host(), &[LOAD]));
    let enforce = Client::new(&certs.client_conf())
        .ours()
        .secure("enforce")
        .fetch(&pmcd.host(), &[LOAD]);
    enforce.assert_failed();
    pmcd.assert_running();
}

fn assert_needs_client_cert(run: &Run) {
    run.assert_failed();
    assert!(
        run.stderr.contains("requires a client certificate"),
        "expected \"requires a client certificate\"\n{}",
        run.describe()
    );
    assert!(
        !run.stderr.contains("IPC protocol failure"),
        "the client must not see a bare IPC protocol failure\n{}",
        run.describe()
    );
    assert_no_values(run);
}

// (f) pmcd -Q: a TLS client without a certificate is refused with the clear
// "requires a client certificate" error (not "IPC protocol failure"); the
// same client with a certificate from the trusted CA gets its values over
// TLS.
#[test]
fn pmcd_q_requires_client_certificate() {
    ensure_deps();
    let certs = Certs::new();
    let mut pmcd = Pmcd::builder()
        .preload_ours(true)
        .tls_conf(&certs.server_conf())
        .cert_required(true)
        .start();

    let run = Client::new(&certs.client_conf())
        .ours()
        .secure("enforce")
        .fetch(&pmcd.host(), &[LOAD]);
    assert_needs_client_cert(&run);

    let rec = Recorder::start(pmcd.addr());
    let good = Client::new(&certs.client_conf_with_cert("client"))
        .ours()
        .secure("enforce");
    let run = good.fetch(&rec.host(), &[LOAD, VERSION]);
    assert_load_values(&run);
    assert_version(&run);
    let opening = rec.finished(1)[0].assert_tls(&secrets());
    assert!(
        opening.features & PDU_FLAG_CERT_REQD != 0,
        "pmcd -Q did not advertise CERT_REQD"
    );
    pmcd.assert_running();
}

// (f') tls-verify-clients = true in pmcd's tls.conf (no -Q) also makes a
// client certificate mandatory, with the same clear error for a client that
// has none, while a client with a trusted certificate is served.
#[test]
fn tls_verify_clients_requires_client_certificate() {
    ensure_deps();
    let certs = Certs::new();
    let conf = format!("{}tls-verify-clients = true\n", certs.server_conf());
    let mut pmcd = Pmcd::builder().preload_ours(true).tls_conf(&conf).start();

    let run = Client::new(&certs.client_conf())
        .ours()
        .secure("enforce")
        .fetch(&pmcd.host(), &[LOAD]);
    assert_needs_client_cert(&run);

    let good = Client::new(&certs.client_conf_with_cert("client"))
        .ours()
        .secure("enforce");
    assert_load_values(&good.fetch(&pmcd.host(), &[LOAD]));
    pmcd.assert_running();
}

// (g) A client certificate issued by an unknown CA is refused by our pmcd:
// pminfo gets no values, pmcd.log has a pcp_secure line about the client
// certificate, and pmcd goes on serving good clients.
#[test]
fn client_certificate_from_unknown_ca_is_refused() {
    ensure_deps();
    let certs = Certs::new();
    let pmcd = our_tls_pmcd(&certs);

    let rogue = Client::new(&certs.client_conf_with_cert("rogue-client"))
        .ours()
        .secure("enforce");
    let run = rogue.fetch(&pmcd.host(), &[LOAD]);
    run.assert_failed();
    assert_no_values(&run);
    assert!(
        pmcd.wait_for_log(LOG_LIMIT, |log| {
            pcp_secure_line(log, |l| l.contains("client certificate")).is_some()
        }),
        "no pcp_secure line about the client certificate in pmcd.log:\n{}",
        pmcd.log()
    );
    pmcd_alive_and_serving(&certs, &pmcd);
}

// (h) A server certificate for another host name (wronghost: DNS
// other.example only) is refused by our client with a "does not match"
// message naming the host as typed, for "127.0.0.1" and "localhost".
#[test]
fn server_certificate_for_another_host_is_refused() {
    ensure_deps();
    let certs = Certs::new();
    let pmcd = Pmcd::builder()
        .preload_ours(true)
        .tls_conf(&certs.server_conf_with("wronghost"))
        .start();
    let client = Client::new(&certs.client_conf()).ours().secure("enforce");
    for (host, name) in [
        (pmcd.host(), "127.0.0.1"),
        (pmcd.host_named("localhost"), "localhost"),
    ] {
        let run = client.fetch(&host, &[LOAD]);
        run.assert_failed();
        assert_no_values(&run);
        assert!(
            pcp_secure_line(&run.stderr, |l| l.contains("does not match")
                && l.contains(name))
            .is_some(),
            "expected a pcp_secure line with \"does not match\" and {name:?}\n{}",
            run.describe()
        );
    }
}

// (h') A self-signed server certificate that is not from the configured CA
// is refused by our client: the pcp_secure line names the host and says the
// issuer is not trusted. Also against a stock pmcd, to show the check is the
// client's own.
#[test]
fn untrusted_server_certificate_is_refused() {
    ensure_deps();
    let certs = Certs::new();
    let conf = tls_conf(&[
        ("tls-cert-file", &certs.path("selfsigned.crt")),
        ("tls-key-file", &certs.path("selfsigned.key")),
        ("tls-ca-cert-file", &certs.path("ca.crt")),
    ]);
    let client = Client::new(&certs.client_conf()).ours().secure("enforce");
    for ours in [true, false] {
        let pmcd = Pmcd::builder().preload_ours(ours).tls_conf(&conf).start();
        let run = client.fetch(&pmcd.host(), &[LOAD]);
        run.assert_failed();
        assert_no_values(&run);
        assert!(
            pcp_secure_line(&run.stderr, |l| l.contains("not trusted") && l.contains("127.0.0.1")).is_some(),
            "expected a pcp_secure line naming 127.0.0.1 and saying \"not trusted\" (pmcd preloaded: {ours})\n{}",
            run.describe()
        );
    }
}

// (h'') Trust sources: tls-ca-cert-dir holding the CA is enough to verify the
// server, a directory with only an unrelated CA is not; with no CA in
// tls.conf the system roots are used: they do not include the test CA, and
// when SSL_CERT_FILE points the system store at the test CA it is trusted.
#[test]
fn trust_from_ca_dir_and_system_roots() {
    ensure_deps();
    let certs = Certs::new();
    let pmcd = our_tls_pmcd(&certs);

    let good_dir = certs.dir().join("cadir-good");
    let bad_dir = certs.dir().join("cadir-bad");
    for (dir, ca) in [(&good_dir, "ca.crt"), (&bad_dir, "other-ca.crt")] {
        std::fs::create_dir(dir).unwrap();
        std::fs::copy(certs.path(ca), dir.join(ca)).unwrap();
        let rehash = run_with_limit(
            {
                let mut c = std::process::Command::new("openssl");
                c.arg("rehash").arg(dir);
                c
            },
            Duration::from_secs(60),
        );
        rehash.assert_ok();
    }
    let good = tls_conf(&[("tls-ca-cert-dir", good_dir.to_str().unwrap())]);
    assert_load_values(
        &Client::new(&good)
            .ours()
            .secure("enforce")
            .fetch(&pmcd.host(), &[LOAD]),
    );

    let bad = tls_conf(&[("tls-ca-cert-dir", bad_dir.to_str().unwrap())]);
    let run = Client::new(&bad)
        .ours()
        .secure("enforce")
        .fetch(&pmcd.host(), &[LOAD]);
    run.assert_failed();
    assert!(
        pcp_secure_line(&run.stderr, |l| l.contains("not trusted")).is_some(),
        "expected \"not trusted\"\n{}",
        run.describe()
    );

    let run = Client::new("")
        .ours()
        .secure("enforce")
        .fetch(&pmcd.host(), &[LOAD]);
    run.assert_failed();
    assert!(
        pcp_secure_line(&run.stderr, |l| l.contains("not trusted")).is_some(),
        "system roots must not trust the test CA\n{}",
        run.describe()
    );

    // ...but they are consulted: the system store honours SSL_CERT_FILE
    // (as OpenSSL and rustls-native-certs define it), and pointing it at the
    // test CA makes the same client succeed.
    let run = Client::new("")
        .ours()
        .secure("enforce")
        .env("SSL_CERT_FILE", &certs.path("ca.crt"))
        .fetch(&pmcd.host(), &[LOAD]);
    assert_load_values(&run);
}

/// Asserts pmcd still runs and serves a well-behaved TLS client.
fn pmcd_alive_and_serving(certs: &Certs, pmcd: &Pmcd) {
    let run = Client::new(&certs.client_conf())
        .ours()
        .secure("enforce")
        .fetch(&pmcd.host(), &[LOAD]);
    assert_load_values(&run);
}

// (i) A client that asks for TLS and then stays silent costs pmcd at most its
// handshake time-out (5 s by default): a well-behaved TLS pminfo started
// meanwhile still gets its values, pmcd.log says on a pcp_secure line that
// the handshake timed out, the silent client got nothing but (at most) TLS
// alerts, and pmcd keeps serving.
#[test]
fn silent_client_does_not_block_others() {
    ensure_deps();
    let certs = Certs::new();
    let mut pmcd = our_tls_pmcd(&certs);

    let (mut silent, features, ack) =
        RawClient::up_to_ack(pmcd.addr(), PDU_FLAG_SECURE | PDU_FLAG_SECURE_ACK);
    assert!(features & PDU_FLAG_SECURE != 0, "features {features:#06x}");
    assert_eq!(ack, 0, "secure ack status");

    // pmcd is busy with the silent client for up to its 5 s handshake
    // time-out: this client waits up to 40 s for pmcd's answers (not the
    // default 10 s, whose 5 s to spare a loaded machine can eat up).
    let run = Client::new(&certs.client_conf())
        .ours()
        .secure("enforce")
        .env("PMCD_REQUEST_TIMEOUT", "40")
        .fetch(&pmcd.host(), &[LOAD]);
    assert_load_values(&run);

    assert!(
        pmcd.wait_for_log(RAW_LIMIT, |log| {
            pcp_secure_line(log, |l| {
                let l = l.to_ascii_lowercase();
                l.contains("timed out") || l.contains("timeout")
            })
            .is_some()
        }),
        "no pcp_secure line about the handshake time-out in pmcd.log:\n{}",
        pmcd.log()
    );
    // After the time-out pmcd's side is closed: the silent client reads the
    // end of the stream, and whatever came before it since the ack is TLS
    // (its ServerHello never came, so nothing at all or an alert).
    silent.stream.set_read_timeout(Some(RAW_LIMIT)).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match std::io::Read::read(&mut silent.stream, &mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => {
                panic!("the silent client's connection was not closed after the time-out: {e}")
            }
        }
    }
    if !got.is_empty() {
        let recs =
            tls_records(&got).unwrap_or_else(|e| panic!("silent client got non-TLS bytes: {e}"));
        assert!(
            recs.iter().all(|r| r.0 == 0x15),
            "only alerts expected: {recs:?}"
        );
    }
    pmcd.assert_running();
    pmcd_alive_and_serving(&certs, &pmcd);
}

/// Sends `garbage` after the secure ack and checks that pmcd either closes
/// the connection or answers with a TLS alert, and sends nothing else.
fn garbage_after_ack(pmcd: &Pmcd, garbage: &[u8]) {
    let (mut raw, _, ack) =
        RawClient::up_to_ack(pmcd.addr(), PDU_FLAG_SECURE | PDU_FLAG_SECURE_ACK);
    assert_eq!(ack, 0, "secure ack status");
    // pmcd may close before reading everything; a failed send is fine.
    let _ = raw.send(garbage);
    let (reply, _closed) = raw
        .read_until_closed_or_alert(RAW_LIMIT)
        .unwrap_or_else(|e| panic!("garbage got neither a close nor a TLS alert: {e}"));
    let recs = tls_records(&reply).unwrap();
    assert!(
        recs.iter().all(|r| r.0 == 0x15),
        "only TLS alerts expected in reply to garbage: {recs:?}"
    );
}

// (j) Garbage instead of a ClientHello (4 KiB of pseudo-random bytes, and
// 4 KiB that starts like a TLS handshake record but is not one): pmcd closes
// that connection or answers with a TLS alert (nothing else), keeps running
// and serves the next TLS and plain clients.
#[test]
fn garbage_instead_of_client_hello() {
    ensure_deps();
    let certs = Certs::new();
    let mut pmcd = our_tls_pmcd(&certs);

    let mut random = pseudo_random(4096, 0x5eed_1234_abcd_0001);
    random[0] = 0x42; // not a TLS content type
    garbage_after_ack(&pmcd, &random);
    pmcd.assert_running();

    let mut fake = pseudo_random(4096, 0x5eed_1234_abcd_0002);
    fake[..5].copy_from_slice(&[0x16, 0x03, 0x01, 0x0f, 0xfb]); // 5 + 4091 = 4096
    fake[5] = 0x01; // "ClientHello"
    garbage_after_ack(&pmcd, &fake);
    pmcd.assert_running();

    pmcd_alive_and_serving(&certs, &pmcd);
    let plain = Client::new("").stock().fetch(&pmcd.host(), &[LOAD]);
    assert_load_values(&plain);
}

// (k) Peers that drop mid-handshake: half of a real ClientHello then close;
// close right after the ack; creds then a TCP reset before the ack is read;
// half a ClientHello then a reset. pmcd survives all of them and serves the
// next TLS client.
#[test]
fn peer_drops_mid_handshake() {
    ensure_deps();
    let certs = Certs::new();
    let mut pmcd = our_tls_pmcd(&certs);
    let hello = client_hello("localhost");
    let flags = PDU_FLAG_SECURE | PDU_FLAG_SECURE_ACK;

    let (mut raw, _, ack) = RawClient::up_to_ack(pmcd.addr(), flags);
    assert_eq!(ack, 0);
    raw.send(&hello[..hello.len() / 2]).unwrap();
    drop(raw);

    let (raw, _, ack) = RawClient::up_to_ack(pmcd.addr(), flags);
    assert_eq!(ack, 0);
    drop(raw);

    let mut raw = RawClient::connect(pmcd.addr());
    raw.read_challenge().unwrap();
    raw.send_creds(flags).unwrap();
    raw.reset();

    let (mut raw, _, ack) = RawClient::up_to_ack(pmcd.addr(), flags);
    assert_eq!(ack, 0);
    raw.send(&hello[..hello.len() / 2]).unwrap();
    raw.reset();

    pmcd_alive_and_serving(&certs, &pmcd);
    pmcd.assert_running();
}

// Control for the harness itself: stock pminfo and stock pmcd (no preload at
// all) over TLS pass the same recording checks, and the recording checks do
// fail when given the other kind of connection (a plain recording is not
// TLS, a TLS recording is not plain), so the TLS assertions above can fail.
#[test]
fn harness_control_stock_to_stock() {
    ensure_deps();
    let certs = Certs::new();
    let pmcd = Pmcd::builder()
        .preload_ours(false)
        .tls_conf(&certs.server_conf())
        .start();
    let conf = tls_conf(&[
        ("tls-ca-cert-file", &certs.path("ca.crt")),
        ("tls-client-cert-file", &certs.path("client.crt")),
        ("tls-client-key-file", &certs.path("client.key")),
        ("tls-verify-clients", "true"),
    ]);

    let rec = Recorder::start(pmcd.addr());
    let run = Client::new(&conf)
        .stock()
        .secure("enforce")
        .fetch(&rec.host(), &[LOAD, VERSION]);
    assert_load_values(&run);
    let tls = rec.finished(1).remove(0);
    tls.assert_tls(&secrets());

    let rec = Recorder::start(pmcd.addr());
    let run = Client::new("").stock().fetch(&rec.host(), &[LOAD, VERSION]);
    assert_load_values(&run);
    let plain = rec.finished(1).remove(0);
    plain.assert_plain(&[LOAD], &[pcp_version()]);

    assert!(
        plain.check_tls(&[]).is_err(),
        "check_tls accepted a plain connection"
    );
    assert!(
        tls.check_plain(&[], &[]).is_err(),
        "check_plain accepted a TLS connection"
    );
    assert!(tls.check_tls(&[LOAD]).is_ok());
    assert!(plain.check_plain(&[LOAD], &[]).is_ok());
    assert!(tls_records(&plain.c2s[20..]).is_err());
    assert!(pcp_pdus(&tls.c2s[20..]).is_err());
}

// The client's defences: against a server that acknowledges the TLS request
// and then says nothing, our pminfo gives up by itself (client handshake
// time-out, 10 s by default) with a pcp_secure line about the time-out
// instead of hanging; against a server that sends garbage instead of a
// ServerHello it fails with a pcp_secure line. (Stock pminfo would block in
// SSL_connect forever on the first.)
#[test]
fn client_gives_up_on_hostile_server() {
    ensure_deps();
    let certs = Certs::new();
    let client = Client::new(&certs.client_conf()).ours().secure("enforce");

    let silent = HostilePmcd::start(Hostility::Silent);
    let run = client.fetch(&silent.host(), &[LOAD]);
    run.assert_failed();
    assert!(silent.connections() >= 1, "pminfo never connected");
    assert!(
        pcp_secure_line(&run.stderr, |l| {
            let l = l.to_ascii_lowercase();
            l.contains("timed out") || l.contains("timeout")
        })
        .is_some(),
        "expected a pcp_secure line about the handshake time-out\n{}",
        run.describe()
    );

    let garbage = HostilePmcd::start(Hostility::Garbage);
    let run = client.fetch(&garbage.host(), &[LOAD]);
    run.assert_failed();
    assert!(
        !run.pcp_secure_lines().is_empty(),
        "expected a pcp_secure line explaining the failure\n{}",
        run.describe()
    );
}
