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

mod support;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::{Certs, Pmcd};

const PMPROXY: &str = "/usr/lib/pcp/bin/pmproxy";

/// A private pmproxy on 127.0.0.1 with the library preloaded; stopped on drop.
struct Pmproxy {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
}

impl Pmproxy {
    fn start(tls_conf: &str) -> Pmproxy {
        support::ensure_deps();
        let dir = tempfile::Builder::new()
            .prefix("pcp-secure-pmproxy.")
            .tempdir()
            .unwrap();
        std::fs::write(dir.path().join("tls.conf"), tls_conf).unwrap();
        let user = String::from_utf8(
            Command::new("id")
                .arg("-un")
                .output()
                .expect("id runs")
                .stdout,
        )
        .unwrap();
        let port = support::free_port(false);
        let child = Command::new(PMPROXY)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("HOME", dir.path())
            .env("LC_ALL", "C")
            .env("LD_PRELOAD", support::lib_path())
            .env("PCP_TLSCONF_PATH", dir.path().join("tls.conf"))
            .env("PCP_SECURE_SOCKETS", "enforce")
            .args(["-f", "-A", "-U", user.trim(), "-p", &port.to_string()])
            .args(["-i", "127.0.0.1", "-s"])
            .arg(dir.path().join("pmproxy.socket"))
            .arg("-l")
            .arg(dir.path().join("pmproxy.log"))
            .arg("-x")
            .arg(dir.path().join("pmproxy.fatal"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start pmproxy");
        let mut proxy = Pmproxy { child, dir, port };
        proxy.wait_ready();
        proxy
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("pmproxy.log")).unwrap_or_default()
    }

    /// Listening, and answering plain HTTP.
    fn wait_ready(&mut self) {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(30) {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("pmproxy exited with {status}:\n{}", self.log());
            }
            if self.log().contains("pmproxy request port(s)")
                && self.curl("http", "/pmapi/context", &[]).0 != "000"
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("pmproxy did not start:\n{}", self.log());
    }

    /// `curl` to `path` over `scheme`; returns (HTTP status, body).
    fn curl(&self, scheme: &str, path: &str, extra: &[&str]) -> (String, String) {
        let host = if scheme == "https" {
            "localhost"
        } else {
            "127.0.0.1"
        };
        let out = Command::new("curl")
            .args(["-s", "--max-time", "30", "-o", "-", "-w", "\n%{http_code}"])
            .args(extra)
            .arg(format!("{scheme}://{host}:{}{path}", self.port))
            .stdin(Stdio::null())
            .output()
            .expect("curl runs");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
        (code.to_string(), body.to_string())
    }

    fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("pmproxy exited with {status}:\n{}", self.log());
        }
    }
}

impl Drop for Pmproxy {
    fn drop(&mut self) {
        // SAFETY: kill takes no pointers; the pid is our child's.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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
    let mut proxy = Pmproxy::start(&proxy_conf(&certs));
    assert!(
        proxy.log().contains("its server TLS is left to libpcp"),
        "pmproxy's log must say who serves its HTTPS:\n{}",
        proxy.log()
    );
    let ca = certs.path("ca.crt");
    let path = metric_path(&pmcd, "hinv.ncpu");
    for round in 0..3 {
        let (code, body) = proxy.curl("https", &path, &["--cacert", &ca]);
        assert_eq!(
            code,
            "200",
            "HTTPS request {round}: {body}\n{}",
            proxy.log()
        );
        assert!(body.contains("\"hinv.ncpu\""), "HTTPS body: {body}");
    }
    let (code, body) = proxy.curl("http", &path, &[]);
    assert_eq!(code, "200", "plain HTTP: {body}\n{}", proxy.log());
    assert!(body.contains("\"hinv.ncpu\""), "HTTP body: {body}");
    // The HTTPS server is really TLS, with the certificate from tls.conf.
    let (code, _) = proxy.curl("https", "/pmapi/context", &[]);
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
    let mut proxy = Pmproxy::start(&proxy_conf(&certs));
    let ca = certs.path("ca.crt");
    let (code, body) = proxy.curl(
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
    let (code, body) = proxy.curl(
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
