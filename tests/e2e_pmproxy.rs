//! Unchanged pmproxy with libpcp_secure preloaded. Its HTTPS server (the
//! REST API, Grafana's data source) is served by rustls through the
//! library's `SSL_*` functions, from the same tls.conf pmcd uses, on the
//! same port as plain HTTP: TLS 1.3 and 1.2, keep-alive, resumption, large
//! replies identical to stock pmproxy's, client certificates by
//! `tls-verify-clients`, no ALPN; libssl's own server code is never
//! reached. pmproxy's own connections to pmcd go through the library's
//! verified client: a trusted pmcd is reached over TLS, an untrusted one or
//! one with the wrong name is refused without any question being asked.
//! Other OpenSSL users (curl, python's ssl) with the library preloaded are
//! untouched.
//!
//! Needs PCP (pmproxy, pmcd), curl, openssl, python3 and gcc
//! (scripts/install-deps) and the library built (`cargo build`).

use pcp_secure_test_support as support;

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

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
    let (code, body, _) = curl_run(proxy, scheme, path, extra);
    (code, body)
}

/// `curl` (verbose) to `path` on `proxy` over `scheme`; returns (HTTP
/// status, body, curl's verbose output).
fn curl_run(proxy: &Pmproxy, scheme: &str, path: &str, extra: &[&str]) -> (String, String, String) {
    let host = if scheme == "https" {
        "localhost"
    } else {
        "127.0.0.1"
    };
    let out = Command::new("curl")
        .args(["-sv", "--max-time", "30", "-o", "-", "-w", "\n%{http_code}"])
        .args(extra)
        .arg(format!("{scheme}://{host}:{}{path}", proxy.port()))
        .stdin(Stdio::null())
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    (
        code.to_string(),
        body.to_string(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
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

/// HTTPS (by rustls) and plain HTTP share pmproxy's port, and a REST
/// request reaches a trusted pmcd over the library's verified TLS.
#[test]
fn preloaded_pmproxy_serves_https_and_http_and_reaches_pmcd_over_verified_tls() {
    let certs = Certs::new();
    let pmcd = Pmcd::builder()
        .preload_ours(true)
        .tls_conf(&certs.server_conf())
        .env("PCP_SECURE_DEBUG", "1")
        .start();
    let mut proxy = preloaded_pmproxy(&proxy_conf(&certs));
    assert_served_by_rustls(&proxy);
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

/// pmproxy's log says the library serves its TLS, and nothing says it was
/// left to libpcp's OpenSSL.
fn assert_served_by_rustls(proxy: &Pmproxy) {
    let log = proxy.log();
    assert!(
        log.contains("serving TLS 1.2/1.3 with certificate") && !log.contains("left to libpcp"),
        "pmproxy's HTTPS must be the library's:\n{log}"
    );
}

/// `curl -v` to `path` on `proxy` over HTTPS.
fn curl_verbose(proxy: &Pmproxy, path: &str, extra: &[&str]) -> (String, String, String) {
    curl_run(proxy, "https", path, extra)
}

/// A request that pmproxy answers without any pmcd.
const NO_PMCD: &str = "/pmapi/context";

/// TLS 1.3 and TLS 1.2 from curl, several keep-alive requests on one
/// connection, resumption and both versions from python's ssl, and
/// `openssl s_client` offering ALPN: HTTP/1.1 only, nothing agreed.
#[test]
fn https_versions_keep_alive_resumption_and_no_alpn() {
    let certs = Certs::new();
    let pmcd = Pmcd::builder()
        .preload_ours(true)
        .tls_conf(&certs.server_conf())
        .start();
    let mut proxy = preloaded_pmproxy(&proxy_conf(&certs));
    assert_served_by_rustls(&proxy);
    let ca = certs.path("ca.crt");
    let path = metric_path(&pmcd, "hinv.ncpu");
    for (version, args) in [
        ("TLSv1.3", vec!["--tlsv1.3"]),
        ("TLSv1.2", vec!["--tlsv1.2", "--tls-max", "1.2"]),
    ] {
        let mut all = vec!["--cacert", ca.as_str()];
        all.extend(args);
        let (code, body, verbose) = curl_verbose(&proxy, &path, &all);
        assert_eq!(code, "200", "{version}: {body}\n{verbose}\n{}", proxy.log());
        assert!(body.contains("\"hinv.ncpu\""), "{version}: {body}");
        assert!(
            verbose.contains(&format!("SSL connection using {version}")),
            "curl must have negotiated {version}:\n{verbose}"
        );
        // curl offers h2 and http/1.1; pmproxy speaks HTTP/1.x only.
        assert!(
            verbose.contains("server did not agree") && !verbose.contains("ALPN: server accepted"),
            "no ALPN protocol may be agreed:\n{verbose}"
        );
    }

    // Four requests on one connection: curl connects once.
    let url = format!("https://localhost:{}{path}", proxy.port());
    let out = Command::new("curl")
        .args(["-s", "--max-time", "60", "--cacert", &ca])
        .args(["-w", "%{http_code} %{num_connects}\n"])
        .args((0..4).flat_map(|_| ["-o", "/dev/null", url.as_str()]))
        .output()
        .expect("curl runs");
    let lines = String::from_utf8_lossy(&out.stdout).into_owned();
    let got: Vec<&str> = lines.lines().collect();
    assert_eq!(
        got,
        ["200 1", "200 0", "200 0", "200 0"],
        "keep-alive: four answers on one connection\n{}",
        proxy.log()
    );

    // python's ssl: a full handshake, then resumed ones, for each version.
    let script = r#"
import socket, ssl, sys
port, ca = int(sys.argv[1]), sys.argv[2]
for version in (ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2):
    ctx = ssl.create_default_context(cafile=ca)
    ctx.minimum_version = ctx.maximum_version = version
    session = None
    for i in range(3):
        with socket.create_connection(("127.0.0.1", port), timeout=20) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost", session=session) as s:
                s.sendall(b"GET /pmapi/context HTTP/1.1\r\nHost: localhost\r\n\r\n")
                head = b""
                while b"\r\n" not in head:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    head += chunk
                print(s.version(), s.session_reused, head.split(b"\r\n")[0].decode())
                session = s.session
"#;
    let out = Command::new("/usr/bin/python3")
        .args(["-c", script, &proxy.port().to_string(), &ca])
        .output()
        .expect("python3 runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "python's ssl: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 6, "{text}");
    for (i, line) in lines.iter().enumerate() {
        let version = if i < 3 { "TLSv1.3" } else { "TLSv1.2" };
        let resumed = if i % 3 == 0 { "False" } else { "True" };
        assert!(
            line.starts_with(&format!("{version} {resumed} HTTP/1.1 ")),
            "connection {i}: want {version}, resumed {resumed}, an HTTP/1.1 answer: {text}"
        );
    }

    // openssl s_client offering h2: verified, TLS 1.3, no ALPN agreed.
    let mut s_client = Command::new("openssl");
    s_client
        .args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{}", proxy.port()),
        ])
        .args([
            "-servername",
            "localhost",
            "-verify_return_error",
            "-CAfile",
            &ca,
        ])
        .args(["-alpn", "h2,http/1.1", "-brief"]);
    let out = support::run_with_input(
        s_client,
        Some(b"GET /pmapi/context HTTP/1.1\r\nHost: localhost\r\n\r\n"),
        Duration::from_secs(30),
    );
    assert!(
        out.stderr.contains("Verification: OK") && out.stderr.contains("Protocol version: TLSv1.3"),
        "openssl s_client:\n{}",
        out.stderr
    );
    assert!(
        !out.stderr.contains("ALPN protocol"),
        "no ALPN protocol may be agreed:\n{}",
        out.stderr
    );
    proxy.assert_running();
}

/// `tls-verify-clients = true` in pmproxy's tls.conf: a client certificate
/// from the configured CA is required; none, or one from another CA, is
/// refused in the handshake and the log says why.
#[test]
fn https_client_certificates_follow_tls_verify_clients() {
    let certs = Certs::new();
    let conf = format!("{}tls-verify-clients = true\n", proxy_conf(&certs));
    let mut proxy = preloaded_pmproxy(&conf);
    assert_served_by_rustls(&proxy);
    let ca = certs.path("ca.crt");
    let (client, client_key) = (certs.path("client.crt"), certs.path("client.key"));
    let (code, body, verbose) = curl_verbose(
        &proxy,
        NO_PMCD,
        &["--cacert", &ca, "--cert", &client, "--key", &client_key],
    );
    assert_ne!(
        code,
        "000",
        "a client certificate from the CA is accepted:\n{verbose}\n{}",
        proxy.log()
    );
    assert!(
        body.contains("context") || body.contains("message"),
        "{body}"
    );

    let (code, _, verbose) = curl_verbose(&proxy, NO_PMCD, &["--cacert", &ca]);
    assert_eq!(
        code, "000",
        "no client certificate must be refused:\n{verbose}"
    );
    let (rogue, rogue_key) = (
        certs.path("rogue-client.crt"),
        certs.path("rogue-client.key"),
    );
    let (code, _, verbose) = curl_verbose(
        &proxy,
        NO_PMCD,
        &["--cacert", &ca, "--cert", &rogue, "--key", &rogue_key],
    );
    assert_eq!(
        code, "000",
        "a rogue client certificate must be refused:\n{verbose}"
    );
    let log = proxy.log();
    assert!(
        log.contains("presented no client certificate") && log.contains("issuer is not trusted"),
        "pmproxy's log must say why each was refused:\n{log}"
    );
    proxy.assert_running();
}

/// A pmcd for REST requests whose replies do not depend on the client:
/// plain TCP (pmproxy's hop to pmcd is not what is compared).
fn plain_pmcd() -> Pmcd {
    Pmcd::builder().preload_ours(false).start()
}

/// `GET path` over HTTPS with curl; the body (fails the test on any error).
fn https_body(proxy: &Pmproxy, ca: &str, path: &str) -> Vec<u8> {
    let out = Command::new("curl")
        .args(["-sS", "--fail", "--max-time", "60", "--cacert", ca])
        .arg(format!("https://localhost:{}{path}", proxy.port()))
        .output()
        .expect("curl runs");
    assert!(
        out.status.success(),
        "{path}: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        proxy.log()
    );
    out.stdout
}

/// Replaces the digits after each `"context":` (pmproxy numbers the
/// contexts it opens; nothing else in a metric listing differs).
fn without_context_numbers(body: &[u8]) -> Vec<u8> {
    let key = b"\"context\":";
    let mut out = Vec::with_capacity(body.len());
    let mut i = 0;
    while i < body.len() {
        if body[i..].starts_with(key) {
            out.extend_from_slice(key);
            i += key.len();
            while i < body.len() && body[i].is_ascii_digit() {
                i += 1;
            }
            out.push(b'N');
        } else {
            out.push(body[i]);
            i += 1;
        }
    }
    out
}

/// A reply of more than 500 KB (every metric's descriptor and help text)
/// is byte for byte what stock pmproxy sends over its own OpenSSL HTTPS.
#[test]
fn large_https_reply_is_identical_to_stock_pmproxy() {
    let certs = Certs::new();
    let pmcd = plain_pmcd();
    let ours = Pmproxy::builder()
        .tls_conf(&proxy_conf(&certs))
        .preload_ours(true)
        .start();
    assert_served_by_rustls(&ours);
    let stock = Pmproxy::builder()
        .tls_conf(&proxy_conf(&certs))
        .preload_ours(false)
        .start();
    let ca = certs.path("ca.crt");
    let path = format!("/pmapi/metric?hostspec=localhost%3A{}&prefix=", pmcd.port());
    let theirs = without_context_numbers(&https_body(&stock, &ca, &path));
    let mine = without_context_numbers(&https_body(&ours, &ca, &path));
    assert!(
        theirs.len() > 500_000,
        "the listing is only {} bytes: {}",
        theirs.len(),
        String::from_utf8_lossy(&theirs[..theirs.len().min(300)])
    );
    assert!(
        mine == theirs,
        "the reply differs from stock pmproxy's ({} against {} bytes)",
        mine.len(),
        theirs.len()
    );
}

/// The shared object built from `source` (in tests/peers), in the cargo
/// target directory: built here with cc, or, where there is no compiler
/// (the version matrix's chroots), the one scripts/test-matrix built on
/// the host before entering them.
fn shim(source: &str) -> PathBuf {
    let src = support::manifest_dir().join("tests/peers").join(source);
    let dir = support::lib_path()
        .parent()
        .expect("the library's directory")
        .join("peers");
    std::fs::create_dir_all(&dir).unwrap();
    let so = dir.join(source.replace(".c", ".so"));
    let built = Command::new("cc")
        .args(["-O2", "-Wall", "-Werror", "-shared", "-fPIC", "-o"])
        .arg(&so)
        .arg(&src)
        .arg("-ldl")
        .output();
    match built {
        Ok(out) => assert!(
            out.status.success(),
            "cannot build {}: {}",
            src.display(),
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => assert!(
            so.is_file(),
            "no C compiler here and no {} built on the host (scripts/test-matrix builds it)",
            so.display()
        ),
        Err(e) => panic!("cannot run cc: {e}"),
    }
    so
}

/// libssl's own server code is never used for pmproxy's HTTPS: a witness
/// preloaded after the library, which notes every call that reaches
/// libssl's SSL_new, SSL_read_ex, SSL_write, SSL_do_handshake or
/// SSL_CTX_new, notes none while HTTPS requests are served; the same
/// witness in stock pmproxy notes them (so it can see them).
#[test]
fn stock_openssl_never_serves_preloaded_pmproxy_https() {
    let certs = Certs::new();
    let dir = tempfile::tempdir().unwrap();
    let trap = shim("stock_ssl_trap.c");
    let trap = trap.to_str().unwrap();
    let ca = certs.path("ca.crt");
    for preload_ours in [false, true] {
        let notes = dir.path().join(format!("notes-{preload_ours}"));
        let proxy = Pmproxy::builder()
            .tls_conf(&proxy_conf(&certs))
            .preload_ours(preload_ours)
            .preload_after(trap)
            .env("SSL_TRAP_OUT", notes.to_str().unwrap())
            .start();
        for round in 0..3 {
            let (code, body) = curl(&proxy, "https", NO_PMCD, &["--cacert", &ca]);
            assert_ne!(
                code,
                "000",
                "HTTPS request {round}: {body}\n{}",
                proxy.log()
            );
        }
        let noted = std::fs::read_to_string(&notes).unwrap_or_default();
        if preload_ours {
            assert_served_by_rustls(&proxy);
            assert_eq!(
                noted, "",
                "libssl's own TLS was used with the library preloaded"
            );
        } else {
            for name in ["SSL_CTX_new", "SSL_new", "SSL_read_ex", "SSL_write"] {
                assert!(
                    noted.lines().any(|l| l == name),
                    "the witness must see stock pmproxy's {name}: {noted}"
                );
            }
        }
    }
}

/// A REST request naming a pmcd whose certificate is for another host is
/// refused (host name checked) and pmproxy's log says so.
#[test]
fn preloaded_pmproxy_refuses_a_pmcd_with_the_wrong_name() {
    let certs = Certs::new();
    let wrong = Pmcd::builder()
        .preload_ours(true)
        .tls_conf(&certs.server_conf_with("wronghost"))
        .start();
    let mut proxy = preloaded_pmproxy(&proxy_conf(&certs));
    let ca = certs.path("ca.crt");
    let (code, body) = curl(
        &proxy,
        "https",
        &metric_path(&wrong, "hinv.ncpu"),
        &["--cacert", &ca],
    );
    assert_ne!(
        code, "200",
        "a pmcd with the wrong name must be refused: {body}"
    );
    assert!(!body.contains("\"hinv.ncpu\""), "no data from it: {body}");
    let log = proxy.log();
    assert!(
        log.contains("does not match the name(s) on the server certificate"),
        "pmproxy's log must name the reason:\n{log}"
    );
    proxy.assert_running();
}

/// An `openssl s_server` on a free loopback port, stopped when dropped.
struct OpensslServer {
    child: Option<std::process::Child>,
    port: u16,
}

impl OpensslServer {
    fn start(certs: &Certs) -> OpensslServer {
        let port = support::free_port(false);
        let child = Command::new("openssl")
            .args([
                "s_server",
                "-accept",
                &format!("127.0.0.1:{port}"),
                "-www",
                "-quiet",
            ])
            .args([
                "-cert",
                &certs.path("server.crt"),
                "-key",
                &certs.path("server.key"),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("openssl s_server starts");
        let server = OpensslServer {
            child: Some(child),
            port,
        };
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "openssl s_server does not listen"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }
}

impl Drop for OpensslServer {
    fn drop(&mut self) {
        support::stop_child(&mut self.child, Duration::from_secs(5));
    }
}

/// curl and python's ssl with the library preloaded (every `SSL_*` call of
/// theirs passes through it) talk to an OpenSSL server as without it.
#[test]
fn preloaded_curl_and_python_ssl_are_untouched() {
    let certs = Certs::new();
    let server = OpensslServer::start(&certs);
    let ca = certs.path("ca.crt");
    let url = format!("https://localhost:{}/", server.port);
    let lib = support::lib_path();
    let out = Command::new("curl")
        .args(["-sS", "--fail", "--max-time", "30", "--cacert", &ca, &url])
        .env("LD_PRELOAD", &lib)
        .env("PCP_SECURE_DEBUG", "1")
        .output()
        .expect("curl runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "preloaded curl: {stderr}");
    assert!(
        stderr.contains("loaded in"),
        "the library must be loaded in curl: {stderr}"
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("s_server"),
        "curl's body"
    );

    let script = r#"
import ssl, sys, urllib.request
ctx = ssl.create_default_context(cafile=sys.argv[2])
for i in range(3):
    body = urllib.request.urlopen(sys.argv[1], context=ctx, timeout=20).read()
    print("ok" if b"s_server" in body else "bad")
"#;
    let out = Command::new("/usr/bin/python3")
        .args(["-c", script, &url, &ca])
        .env("LD_PRELOAD", &lib)
        .env("PCP_SECURE_DEBUG", "1")
        .output()
        .expect("python3 runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "preloaded python: {stderr}");
    assert!(
        stderr.contains("loaded in"),
        "the library must be loaded in python: {stderr}"
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ok\nok\nok\n");
}

/// pmproxy needs no restart for a renewed certificate: files renamed over
/// the served ones are served to the next HTTPS connection (looked at
/// again at most once a second), and the log says so.
#[test]
fn renewed_certificate_files_are_served_by_pmproxy_without_a_restart() {
    let certs = Certs::new();
    let served = tempfile::tempdir().unwrap();
    let (crt, key) = (
        served.path().join("proxy.crt"),
        served.path().join("proxy.key"),
    );
    let renew = |from: &str, to: &std::path::Path| support::renew_file(&certs.path(from), to);
    renew("server.crt", &crt);
    renew("server.key", &key);
    let mut proxy = preloaded_pmproxy(&support::tls_conf(&[
        ("tls-cert-file", crt.to_str().unwrap()),
        ("tls-key-file", key.to_str().unwrap()),
    ]));
    let (old_ca, new_ca) = (certs.path("ca.crt"), certs.path("selfsigned.crt"));
    let (code, _) = curl(&proxy, "https", NO_PMCD, &["--cacert", &old_ca]);
    assert_ne!(
        code,
        "000",
        "the first certificate is served\n{}",
        proxy.log()
    );

    renew("selfsigned.key", &key);
    renew("selfsigned.crt", &crt);
    let start = Instant::now();
    while curl(&proxy, "https", NO_PMCD, &["--cacert", &new_ca]).0 == "000" {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the renewed certificate was not served\n{}",
            proxy.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        proxy
            .log()
            .contains("the server's certificate files changed"),
        "{}",
        proxy.log()
    );
    let (code, _) = curl(&proxy, "https", NO_PMCD, &["--cacert", &old_ca]);
    assert_eq!(code, "000", "the old certificate is no longer served");
    proxy.assert_running();
}
