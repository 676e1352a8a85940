//! Unchanged pmproxy with libpcp_secure preloaded: nothing crashes. pmproxy
//! uses the server context from `__pmSecureServerInit` as an OpenSSL
//! `SSL_CTX` for its HTTPS server, so that context stays libpcp's own
//! (stock OpenSSL serves HTTPS, exactly as without the library), plain HTTP
//! on the same port keeps working, and pmproxy's own connections to pmcd go
//! through the library's verified client: a trusted pmcd is reached over
//! TLS, an untrusted one is refused without any question being asked.
//!
//! Needs PCP (pmproxy, pmcd), curl and openssl (scripts/install-deps) and the
//! library built (`cargo build`).

use pcp_secure_test_support as support;

use std::process::{Command, Stdio};
use std::time::Duration;

use support::pmproxy::Pmproxy;
use support::{Certs, Pmcd};

/// A private pmproxy with the library preloaded, serving `tls_conf`, its
/// libpcp connections to pmcd required to be TLS.
fn preloaded_pmproxy(tls_conf: &str) -> Pmproxy {
    Pmproxy::builder()
        .tls_conf(tls_conf)
        .preload_ours(true)
        .env("PCP_SECURE_SOCKETS", "enforce")
        .start()
}

/// `curl` to `path` on `proxy` over `scheme`; returns (HTTP status, body).
fn curl(proxy: &Pmproxy, scheme: &str, path: &str, extra: &[&str]) -> (String, String) {
    let host = if scheme == "https" {
        "localhost"
    } else {
        "127.0.0.1"
    };
    let out = Command::new("curl")
        .args(["-s", "--max-time", "30", "-o", "-", "-w", "\n%{http_code}"])
        .args(extra)
        .arg(format!("{scheme}://{host}:{}{path}", proxy.port()))
        .stdin(Stdio::null())
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    (code.to_string(), body.to_string())
}

/// pmproxy's tls.conf: serve HTTPS with server.crt, trust ca.crt for pmcd.
fn proxy_conf(certs: &Certs) -> String {
    support::tls_conf(&[
        ("tls-cert-file", &certs.path("server.crt")),
        ("tls-key-file", &certs.path("server.key")),
        ("tls-ca-cert-file", &certs.path("ca.crt")),
    ])
}

fn metric_path(pmcd: &Pmcd, name: &str) -> String {
    format!(
        "/pmapi/metric?hostspec=localhost%3A{}&name={name}",
        pmcd.port()
    )
}

/// HTTPS (by libpcp's own OpenSSL, as without the library) and plain HTTP
/// share pmproxy's port, and a REST request reaches a trusted pmcd over the
/// library's verified TLS.
#[test]
fn preloaded_pmproxy_serves_https_and_http_and_reaches_pmcd_over_verified_tls() {
    let certs = Certs::new();
    let pmcd = Pmcd::builder()
        .preload_ours(true)
        .tls_conf(&certs.server_conf())
        .env("PCP_SECURE_DEBUG", "1")
        .start();
    let mut proxy = preloaded_pmproxy(&proxy_conf(&certs));
    assert!(
        proxy.log().contains("its server TLS is left to libpcp"),
        "pmproxy's log must say who serves its HTTPS:\n{}",
        proxy.log()
    );
    let ca = certs.path("ca.crt");
    let path = metric_path(&pmcd, "hinv.ncpu");
    for round in 0..3 {
        let (code, body) = curl(&proxy, "https", &path, &["--cacert", &ca]);
        assert_eq!(
            code,
            "200",
            "HTTPS request {round}: {body}\n{}",
            proxy.log()
        );
        assert!(body.contains("\"hinv.ncpu\""), "HTTPS body: {body}");
    }
    let (code, body) = curl(&proxy, "http", &path, &[]);
    assert_eq!(code, "200", "plain HTTP: {body}\n{}", proxy.log());
    assert!(body.contains("\"hinv.ncpu\""), "HTTP body: {body}");
    // The HTTPS server is really TLS, with the certificate from tls.conf.
    let (code, _) = curl(&proxy, "https", "/pmapi/context", &[]);
    assert_eq!(
        code, "000",
        "curl must refuse a certificate it cannot verify"
    );
    // pmproxy's connections to pmcd were TLS, through the library.
    assert!(
        pmcd.wait_for_log(Duration::from_secs(10), |l| l.contains("TLS with client")
            && l.contains("established")),
        "pmcd saw no TLS client:\n{}",
        pmcd.log()
    );
    proxy.assert_running();
}

/// pmproxy asks nobody about a pmcd whose certificate it cannot trust: the
/// request fails, the log says why and how to trust it, and pmproxy keeps
/// serving.
#[test]
fn preloaded_pmproxy_refuses_an_untrusted_pmcd_without_a_question() {
    let certs = Certs::new();
    let untrusted = Pmcd::builder()
        .preload_ours(true)
        .tls_conf(&certs.server_conf_with("selfsigned"))
        .start();
    let good = Pmcd::builder()
        .preload_ours(true)
        .tls_conf(&certs.server_conf())
        .start();
    let mut proxy = preloaded_pmproxy(&proxy_conf(&certs));
    let ca = certs.path("ca.crt");
    let (code, body) = curl(
        &proxy,
        "https",
        &metric_path(&untrusted, "hinv.ncpu"),
        &["--cacert", &ca],
    );
    assert_ne!(code, "200", "an untrusted pmcd must be refused: {body}");
    assert!(!body.contains("\"hinv.ncpu\""), "no data from it: {body}");
    let log = proxy.log();
    assert!(
        log.contains("is not trusted"),
        "pmproxy's log must name the reason:\n{log}"
    );
    let (code, body) = curl(
        &proxy,
        "https",
        &metric_path(&good, "hinv.ncpu"),
        &["--cacert", &ca],
    );
    assert_eq!(
        code,
        "200",
        "the trusted pmcd still works: {body}\n{}",
        proxy.log()
    );
    proxy.assert_running();
}

/// The PCP-protocol relay through a preloaded pmproxy carries TLS end to
/// end: our client verifies pmcd itself, and the hop between pmproxy and
/// pmcd (recorded) holds nothing but the plaintext opening and TLS records.
#[test]
fn relay_through_preloaded_pmproxy_carries_tls_end_to_end() {
    let certs = Certs::new();
    let pmcd = Pmcd::builder()
        .preload_ours(true)
        .tls_conf(&certs.server_conf())
        .start();
    let recorder = support::Recorder::start(pmcd.addr());
    let mut proxy = preloaded_pmproxy(&proxy_conf(&certs));
    let run = support::Client::new(&certs.client_conf())
        .ours()
        .secure("enforce")
        .env("PMPROXY_HOST", "127.0.0.1")
        .env("PMPROXY_PORT", &proxy.port().to_string())
        .fetch(&recorder.host(), &["kernel.all.load"]);
    support::assert_load_values(&run);
    proxy.assert_running();
    // pmproxy keeps its hop to pmcd open for a while after the client has
    // gone: stop it, which ends the hop.
    drop(proxy);
    let hops = recorder.finished(1);
    hops[0]
        .check_tls(&["kernel.all.load", "kernel.all"])
        .unwrap_or_else(|e| panic!("pmproxy to pmcd is not TLS end to end: {e}"));
}
