//! PCP 7.2 HTTPS archive push through libpcp_secure: unchanged `pmlogpush`
//! and `pmlogger --push-user` with the library preloaded push an archive to
//! an unchanged, stock pmproxy (not preloaded) that serves TLS from its
//! tls.conf and requires HTTP Basic authentication for its `/logger/*`
//! receiver. A recording relay between client and pmproxy shows that only
//! TLS records cross the wire (no HTTP text, no credentials, no archive
//! metadata in clear); a server certificate from an untrusted CA or for
//! another host name makes the push fail with nothing sent and nothing
//! stored.
//!
//! Only meaningful on PCP 7.2 or later (the push client and receiver are
//! new there): every test is ignored by default and fails, rather than
//! skips, when the installed PCP is older. The version matrix runs them in a
//! Debian sid chroot (PCP 7.2.2) with `--include-ignored`. Needs pcp,
//! openssl and sasl2-bin (saslpasswd2), and the library built (`cargo
//! build`).
//!
//! Set-up used (found with stock PCP 7.2.2 on both ends):
//! - pmproxy.conf: `[pmproxy] http.enabled = true`, `secure.enabled = true`;
//!   `[pmlogger] enabled = true`, `authenticate = true` and `auth_host =
//!   127.0.0.1:PORT`: pmproxy checks each request's Basic credentials by
//!   logging in to that pmcd with SASL, so the push user lives in a sasldb
//!   (`saslpasswd2 -a pmcd`) read by a private pmcd through
//!   `SASL_CONF_PATH`. pmproxy's certificate and key come from tls.conf.
//! - Pushed archives land in `$PCP_REMOTE_ARCHIVE_DIR/<host>/<start time>`
//!   (`/var/log/pcp/pmproxy` by default); each pmproxy here has its own.
//! - `PCP_SECURE_PUSH_TEST_STOCK=1` runs the same checks with stock libpcp
//!   as the client's TLS (no preload, no library log lines expected): the
//!   control that shows the set-up itself is sound.

use pcp_secure_test_support as support;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use support::pmproxy::{Pmproxy, PMPROXY};
use support::{
    contains, lib_path, run_with_limit, tls_records, Certs, Pmcd, Recorder, Recording, Run,
    CLIENT_LIMIT,
};
use tempfile::TempDir;

const PMLOGGER: &str = "/usr/lib/pcp/bin/pmlogger";
const PMCONFIG: &str = "/usr/lib/pcp/bin/pmconfig";
const PMLOGPUSH: &str = "/usr/bin/pmlogpush";
const PMINFO: &str = "/usr/bin/pminfo";

/// The push account (a SASL user of the authenticating pmcd; it need not
/// be a local account).
const PUSH_USER: &str = "pcp-push-tester";
const PUSH_PASSWORD: &str = "Ph7-pushed-secret";

/// Metrics in the pushed archives: their names are in the archive
/// metadata, so they must not be readable on the wire either.
const METRICS: &[&str] = &["hinv.ncpu", "kernel.all.load"];

/// True for the control run with stock libpcp as the client's TLS.
fn stock_control() -> bool {
    matches!(std::env::var("PCP_SECURE_PUSH_TEST_STOCK").as_deref(), Ok(v) if !v.is_empty() && v != "0")
}

// ---------------------------------------------------------------------------
// Prerequisites

/// Fails the test unless PCP 7.2 or later is installed; returns its version.
fn require_pcp_7_2() -> String {
    for tool in [PMPROXY, PMLOGGER, PMCONFIG, PMINFO, "/usr/bin/openssl"] {
        assert!(
            Path::new(tool).exists(),
            "{tool} is missing: these tests need PCP 7.2 or later and openssl"
        );
    }
    let out = Command::new(PMCONFIG)
        .args(["-L", "PCP_VERSION"])
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {PMCONFIG}: {e}"));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let version = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("PCP_VERSION="))
        .unwrap_or_else(|| panic!("{PMCONFIG} -L PCP_VERSION printed no version: {text:?}"))
        .trim()
        .to_string();
    assert!(
        at_least_7_2(&version),
        "installed PCP is {version}: the HTTPS push tests need PCP 7.2 or later \
         (run them in the version matrix's sid chroot)"
    );
    assert!(
        Path::new(PMLOGPUSH).exists(),
        "{PMLOGPUSH} is missing although PCP is {version}"
    );
    let saslpasswd2 = Command::new("saslpasswd2")
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    assert!(
        saslpasswd2.is_ok(),
        "saslpasswd2 is missing: install sasl2-bin and libsasl2-modules"
    );
    version
}

/// Whether a PCP version string ("7.2.2", "6.0.3") is 7.2 or later.
fn at_least_7_2(version: &str) -> bool {
    let mut parts = version
        .split('.')
        .map(|p| p.trim().parse::<u32>().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0)) >= (7, 2)
}

fn tempdir(prefix: &str) -> TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .expect("cannot create a temporary directory")
}

fn write(path: &Path, contents: &str) {
    std::fs::write(path, contents)
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}

fn read_lossy(path: &Path) -> String {
    std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// Standard base64 of `bytes` (the form of Basic credentials on the wire).
fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// One file of the archive `base` ("DIR/20261201.19.53" + ".meta"): not
/// `Path::with_extension`, which would eat the ".53" of such names.
fn part(base: &Path, ext: &str) -> PathBuf {
    let mut s = base.as_os_str().to_os_string();
    s.push(".");
    s.push(ext);
    PathBuf::from(s)
}

/// Every file under `dir`, recursively, sorted.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

// ---------------------------------------------------------------------------
// The receiving side: a pmcd that authenticates push users, and pmproxy

/// Certificates, the SASL database and the (stock, plain) pmcd that
/// pmproxy asks to check push credentials; the pushed archives are also
/// recorded from it.
struct Site {
    certs: Certs,
    _sasl: TempDir,
    pmcd: Pmcd,
}

impl Site {
    fn new() -> Site {
        let certs = Certs::new();
        let sasl = tempdir("pcp-secure-push-sasl.");
        let db = sasl.path().join("passwd.db");
        write(
            &sasl.path().join("pmcd.conf"),
            &format!(
                "mech_list: plain scram-sha-256\nsasldb_path: {}\n",
                db.display()
            ),
        );
        let mut add = Command::new("saslpasswd2")
            .args(["-p", "-c", "-a", "pmcd", "-f"])
            .arg(&db)
            .arg(PUSH_USER)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot run saslpasswd2");
        add.stdin
            .take()
            .unwrap()
            .write_all(PUSH_PASSWORD.as_bytes())
            .unwrap();
        let out = add.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "saslpasswd2 failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let pmcd = Pmcd::builder()
            .env("SASL_CONF_PATH", sasl.path().to_str().unwrap())
            .start();
        Site {
            certs,
            _sasl: sasl,
            pmcd,
        }
    }

    /// A stock pmproxy serving `cert`.crt/.key ("server" or "wronghost").
    fn pmproxy(&self, cert: &str) -> Pmproxy {
        push_pmproxy(&self.certs, cert, self.pmcd.port(), false)
    }

    /// A pmproxy with the library preloaded (its HTTPS on rustls) serving
    /// server.crt/.key.
    fn preloaded_pmproxy(&self) -> Pmproxy {
        push_pmproxy(&self.certs, "server", self.pmcd.port(), true)
    }

    /// A finished archive recorded from the site's pmcd by stock pmlogger.
    fn archive(&self, client: &PushClient) -> PathBuf {
        let dir = client.dir.path().join("source");
        std::fs::create_dir_all(&dir).unwrap();
        let base = dir.join("local");
        let mut cmd = client.command(PMLOGGER, false);
        cmd.arg("-h")
            .arg(self.pmcd.host())
            .arg("-c")
            .arg(client.logger_config())
            .args(["-s", "3", "-l"])
            .arg(dir.join("pmlogger.log"))
            .arg(&base);
        let run = with_log(run_with_limit(cmd, CLIENT_LIMIT), &dir.join("pmlogger.log"));
        run.assert_ok();
        for ext in ["0", "index", "meta"] {
            assert!(
                part(&base, ext).is_file(),
                "pmlogger wrote no {ext} file\n{}",
                run.describe()
            );
        }
        base
    }
}

/// A private pmproxy on 127.0.0.1 (stock, or with the library preloaded)
/// with TLS and the push receiver requiring Basic authentication (checked
/// by the pmcd on `auth_port`); stopped on drop.
fn push_pmproxy(certs: &Certs, cert: &str, auth_port: u16, preload_ours: bool) -> Pmproxy {
    Pmproxy::builder()
        .preload_ours(preload_ours)
        .tls_conf(&support::tls_conf(&[
            ("tls-cert-file", &certs.path(&format!("{cert}.crt"))),
            ("tls-key-file", &certs.path(&format!("{cert}.key"))),
        ]))
        .config(&format!(
            "[pmproxy]\n\
             pcp.enabled = false\n\
             http.enabled = true\n\
             resp.enabled = false\n\
             secure.enabled = true\n\
             [keys]\n\
             enabled = false\n\
             [discover]\n\
             enabled = false\n\
             [pmsearch]\n\
             enabled = false\n\
             [pmseries]\n\
             enabled = false\n\
             [pmlogger]\n\
             enabled = true\n\
             authenticate = true\n\
             auth_host = 127.0.0.1:{auth_port}\n"
        ))
        .env_dir("PCP_REMOTE_ARCHIVE_DIR", "archives")
        .start()
}

/// Files a pmproxy has stored from pushes so far.
fn received(proxy: &Pmproxy) -> Vec<PathBuf> {
    files_under(&proxy.file("archives"))
}

// ---------------------------------------------------------------------------
// The pushing side

/// Environment for the pushing tools: their tls.conf, the password file,
/// a trust store and temporary directory of their own, the library.
struct PushClient {
    dir: TempDir,
}

impl PushClient {
    fn new(tls_conf: &str) -> PushClient {
        let dir = tempdir("pcp-secure-push-client.");
        write(&dir.path().join("tls.conf"), tls_conf);
        let pw = dir.path().join("password");
        write(&pw, &format!("{PUSH_PASSWORD}\n"));
        std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::create_dir_all(dir.path().join("tmp").join("pmlogger")).unwrap();
        write(
            &dir.path().join("pmlogger.config"),
            &format!(
                "log mandatory on every 100 msec {{\n    {}\n}}\n",
                METRICS.join("\n    ")
            ),
        );
        PushClient { dir }
    }

    fn password_file(&self) -> PathBuf {
        self.dir.path().join("password")
    }

    fn logger_config(&self) -> PathBuf {
        self.dir.path().join("pmlogger.config")
    }

    /// `program` in a clean environment; with `ours`, libpcp_secure is
    /// preloaded (unless this is the stock control run) and logs at debug
    /// level. pmlogger binds its control port to the loopback only.
    fn command(&self, program: &str, ours: bool) -> Command {
        let mut cmd = Command::new(program);
        cmd.env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("HOME", self.dir.path())
            .env("LC_ALL", "C")
            .env("PCP_TLSCONF_PATH", self.dir.path().join("tls.conf"))
            .env("PCP_TMP_DIR", self.dir.path().join("tmp"))
            .env("PMLOGGER_LOCAL", "1")
            // Never ask the person running the tests, never touch ~/.pcp.
            .env("PCP_CONSOLE", "none")
            .env("PCP_SECURE_DB_PATH", self.dir.path().join("trust"));
        if ours && !stock_control() {
            cmd.env("LD_PRELOAD", lib_path())
                .env("PCP_SECURE_DEBUG", "1");
        }
        cmd
    }

    /// `pmlogpush -S -h HOST -p PORT -U USER -P FILE ARCHIVE`.
    fn pmlogpush(&self, host: &str, port: u16, archive: &Path) -> Run {
        let mut cmd = self.command(PMLOGPUSH, true);
        cmd.args([
            "-S",
            "-h",
            host,
            "-p",
            &port.to_string(),
            "-U",
            PUSH_USER,
            "-P",
        ])
        .arg(self.password_file())
        .arg(archive);
        check_preloaded(run_with_limit(cmd, CLIENT_LIMIT))
    }

    /// `pmlogger ... --push-user USER --push-password-file FILE URL`,
    /// five samples from `pmcd`; its log is appended to stderr.
    fn pmlogger_push(&self, pmcd: &Pmcd, url: &str) -> Run {
        let log = self.dir.path().join("pmlogger-push.log");
        let _ = std::fs::remove_file(&log);
        let mut cmd = self.command(PMLOGGER, true);
        cmd.arg("-h")
            .arg(pmcd.host())
            .arg("-c")
            .arg(self.logger_config())
            .args(["-s", "5", "-l"])
            .arg(&log)
            .args(["--push-user", PUSH_USER, "--push-password-file"])
            .arg(self.password_file())
            .arg(url);
        check_preloaded(with_log(run_with_limit(cmd, CLIENT_LIMIT), &log))
    }
}

/// `run` with the contents of `log` appended to its stderr.
fn with_log(mut run: Run, log: &Path) -> Run {
    let text = read_lossy(log);
    if !text.is_empty() {
        run.stderr
            .push_str(&format!("--- {} ---\n{text}", log.display()));
    }
    run
}

fn check_preloaded(run: Run) -> Run {
    if run.stderr.contains("cannot be preloaded") {
        panic!(
            "the dynamic loader did not preload libpcp_secure\n{}",
            run.describe()
        );
    }
    run
}

// ---------------------------------------------------------------------------
// What the wire and the tools must show

/// Strings that must never cross the wire in clear: the HTTP request and
/// response, the credentials (plain and as sent in a Basic header), the
/// tools' User-Agent and the metric names in the archive metadata.
fn secrets() -> Vec<String> {
    let mut s: Vec<String> = [
        "POST",
        "GET ",
        "HTTP/1.",
        "Authorization",
        "Basic ",
        "/logger",
        "User-Agent",
        "pmlogpush/",
        "pmlogger/",
        PUSH_USER,
        PUSH_PASSWORD,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    s.push(base64(format!("{PUSH_USER}:{PUSH_PASSWORD}").as_bytes()));
    s.extend(METRICS.iter().map(|m| m.to_string()));
    s
}

fn hex_head(b: &[u8]) -> String {
    let n = b.len().min(48);
    let printable: String = b[..b.len().min(160)]
        .iter()
        .map(|&c| {
            if (0x20..0x7f).contains(&c) {
                c as char
            } else {
                '.'
            }
        })
        .collect();
    format!(
        "{} bytes, first {n}: {:02x?}\n  as text: {printable}",
        b.len(),
        &b[..n]
    )
}

/// Checks every recorded connection: each direction is nothing but TLS
/// records, the client's starts with a handshake record, and no secret is
/// readable in either direction. Returns, per connection, the bytes of
/// application-data records the client sent.
fn check_wire(recs: &[Recording]) -> Result<Vec<usize>, String> {
    let secrets = secrets();
    let mut app = Vec::new();
    for (i, rec) in recs.iter().enumerate() {
        for (dir, bytes) in [("client->pmproxy", &rec.c2s), ("pmproxy->client", &rec.s2c)] {
            for s in &secrets {
                if contains(bytes, s.as_bytes()) {
                    let at = bytes
                        .windows(s.len())
                        .position(|w| w == s.as_bytes())
                        .unwrap();
                    return Err(format!(
                        "connection {i} {dir}: {s:?} in clear at offset {at}\n  {}",
                        hex_head(&bytes[at.saturating_sub(16)..])
                    ));
                }
            }
            if bytes.is_empty() {
                continue;
            }
            let records = tls_records(bytes).map_err(|e| {
                format!(
                    "connection {i} {dir} is not TLS: {e}\n  {}",
                    hex_head(bytes)
                )
            })?;
            if dir.starts_with("client") {
                if records[0].0 != 0x16 {
                    return Err(format!(
                        "connection {i}: the client's first record is not a handshake record: {records:?}"
                    ));
                }
                app.push(records.iter().filter(|r| r.0 == 0x17).map(|r| r.1).sum());
            }
        }
        if rec.c2s.is_empty() {
            app.push(0);
        }
    }
    Ok(app)
}

/// Asserts that the wire of a push held nothing but TLS (no secret in
/// clear; see [`check_wire`]) and returns the client's application-data
/// bytes per connection. Checked before the push's own outcome, so that a
/// leak is reported as such even when it also made the push fail.
fn assert_only_tls(recs: &[Recording], what: &str, run: &Run) -> Vec<usize> {
    let app = check_wire(recs).unwrap_or_else(|e| panic!("{what}: {e}\n{}", run.describe()));
    assert!(
        recs.iter().any(|r| !r.s2c.is_empty() && r.s2c[0] == 0x16),
        "{what}: pmproxy answered no TLS handshake\n{}",
        run.describe()
    );
    app
}

/// Asserts that the client sent at least `min_app` bytes of encrypted
/// application data (the archive went inside TLS; see [`push_size`]).
fn assert_archive_inside_tls(app: &[usize], min_app: usize, what: &str) {
    assert!(
        app.iter().sum::<usize>() >= min_app,
        "{what}: the client sent less than {min_app} bytes (the archive) of TLS application \
         data (per connection: {app:?})"
    );
}

/// Asserts a refused push on the wire: only TLS, nothing in clear.
fn assert_nothing_in_clear(recs: &[Recording], what: &str, runs: &[&Run]) {
    let runs = || {
        runs.iter()
            .map(|r| r.describe())
            .collect::<Vec<_>>()
            .join("\n")
    };
    check_wire(recs).unwrap_or_else(|e| panic!("{what}: {e}\n{}", runs()));
    assert!(
        recs.iter().any(|r| !r.c2s.is_empty()),
        "{what}: the client never started a TLS handshake through the recorder\n{}",
        runs()
    );
}

/// With the library preloaded, its debug log says it made the TLS
/// connection to pmproxy for `host` (so TLS was not libpcp's own).
fn assert_library_connected(run: &Run, host: &str) {
    if stock_control() {
        return;
    }
    let want = format!("TLS with pmproxy on host \"{host}\" established");
    assert!(
        run.stderr
            .lines()
            .any(|l| l.contains("pcp_secure:") && l.contains(&want)),
        "libpcp_secure did not report the TLS connection to pmproxy ({want})\n{}",
        run.describe()
    );
}

/// With the library preloaded, it reported why the connection was refused.
fn assert_library_refused(run: &Run, host: &str, reason: &[&str]) {
    if stock_control() {
        return;
    }
    let want = format!("secure connection to pmproxy on host \"{host}\" failed");
    let line = run
        .stderr
        .lines()
        .find(|l| l.contains("pcp_secure:") && l.contains(&want))
        .unwrap_or_else(|| {
            panic!(
                "libpcp_secure did not report the refused connection ({want})\n{}",
                run.describe()
            )
        });
    assert!(
        reason.iter().any(|r| line.contains(r)),
        "the refusal does not name the reason (one of {reason:?}): {line}\n{}",
        run.describe()
    );
}

/// The stored archive (`.0`, `.index`, `.meta` sharing one base name),
/// which stock pminfo must be able to read with the logged metrics.
fn assert_archive_arrived(proxy: &Pmproxy, what: &str) -> PathBuf {
    let files = received(proxy);
    let meta: Vec<&PathBuf> = files
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "meta"))
        .collect();
    assert_eq!(
        meta.len(),
        1,
        "{what}: expected one pushed archive under {}, found {files:?}\n{}",
        proxy.file("archives").display(),
        proxy.output()
    );
    let base = PathBuf::from(
        meta[0]
            .to_str()
            .and_then(|m| m.strip_suffix(".meta"))
            .expect("UTF-8 archive path"),
    );
    for ext in ["0", "index", "meta"] {
        let f = part(&base, ext);
        let len = std::fs::metadata(&f).map(|m| m.len()).unwrap_or(0);
        assert!(
            len > 0,
            "{what}: {} is missing or empty ({files:?})",
            f.display()
        );
    }
    let mut cmd = Command::new(PMINFO);
    cmd.env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("LC_ALL", "C")
        .arg("-a")
        .arg(&base)
        .arg("-f")
        .args(METRICS);
    let run = run_with_limit(cmd, CLIENT_LIMIT);
    run.assert_ok();
    for m in METRICS {
        assert!(
            run.stdout.contains(m) && run.stdout.contains(" value "),
            "{what}: the stored archive has no values of {m}\n{}",
            run.describe()
        );
    }
    base
}

fn assert_nothing_arrived(proxy: &Pmproxy, what: &str) {
    let files = received(proxy);
    assert!(
        files.is_empty(),
        "{what}: pmproxy stored {files:?} from a push that must have been refused"
    );
}

/// A lower bound of what a push of the archive `base` sends: the label
/// once, then every metadata and volume record, so at least the size of
/// the larger of the .meta and .0 files (each is a label plus records).
fn push_size(base: &Path) -> usize {
    ["0", "meta"]
        .iter()
        .map(|e| std::fs::metadata(part(base, e)).unwrap().len() as usize)
        .max()
        .unwrap()
}

/// pmlogpush (of `source`) and pmlogger, both through a recorder to
/// `proxy`, must fail: the library names `reason`, the recorded wire holds
/// only TLS handshake bytes (nothing in clear), pmproxy stores nothing and
/// keeps running.
fn assert_push_refused(
    site: &Site,
    proxy: &mut Pmproxy,
    client: &PushClient,
    source: &Path,
    reason: &str,
) {
    let recorder = Recorder::start(proxy.addr());
    let push = client.pmlogpush("localhost", recorder.port(), source);
    let url = format!("https://localhost:{}", recorder.port());
    let logger = client.pmlogger_push(&site.pmcd, &url);
    assert_nothing_in_clear(&recorder.finished(2), reason, &[&push, &logger]);
    for run in [&push, &logger] {
        run.assert_failed();
        assert_library_refused(run, "localhost", &[reason]);
    }
    assert_nothing_arrived(proxy, reason);
    proxy.assert_running();
}

// ---------------------------------------------------------------------------
// Tests

/// pmlogpush with the library pushes a finished archive over verified TLS
/// to stock pmproxy with Basic authentication: exit status 0, the archive
/// stored byte for byte, only TLS on the recorded wire.
#[test]
#[ignore = "needs PCP 7.2 (run by the version matrix in the sid chroot)"]
fn pmlogpush_pushes_an_archive_over_tls_to_stock_pmproxy() {
    let version = require_pcp_7_2();
    let site = Site::new();
    let mut proxy = site.pmproxy("server");
    let client = PushClient::new(&site.certs.client_conf());
    let source = site.archive(&client);
    let recorder = Recorder::start(proxy.addr());

    let run = client.pmlogpush("localhost", recorder.port(), &source);
    let app = assert_only_tls(&recorder.finished(1), "pmlogpush", &run);
    run.assert_ok();
    assert_library_connected(&run, "localhost");
    assert_archive_inside_tls(&app, push_size(&source), "pmlogpush");

    let stored = assert_archive_arrived(&proxy, "pmlogpush");
    for ext in ["0", "index", "meta"] {
        let sent = std::fs::read(part(&source, ext)).unwrap();
        let got = std::fs::read(part(&stored, ext)).unwrap();
        assert!(
            sent == got,
            "pushed .{ext} differs from the source ({} vs {} bytes)",
            got.len(),
            sent.len()
        );
    }
    proxy.assert_running();
    eprintln!("PCP {version}: pmlogpush stored {}", stored.display());
}

/// pmlogger with the library pushes the archive it is writing
/// (`--push-user`, `--push-password-file`, an https:// URL) to stock
/// pmproxy: exit status 0, the archive stored and readable, only TLS on the
/// recorded wire.
#[test]
#[ignore = "needs PCP 7.2 (run by the version matrix in the sid chroot)"]
fn pmlogger_pushes_over_tls_to_stock_pmproxy() {
    require_pcp_7_2();
    let site = Site::new();
    let mut proxy = site.pmproxy("server");
    let client = PushClient::new(&site.certs.client_conf());
    let recorder = Recorder::start(proxy.addr());

    let url = format!("https://localhost:{}", recorder.port());
    let run = client.pmlogger_push(&site.pmcd, &url);
    let app = assert_only_tls(&recorder.finished(1), "pmlogger", &run);
    run.assert_ok();
    assert_library_connected(&run, "localhost");
    let stored = assert_archive_arrived(&proxy, "pmlogger");
    assert_archive_inside_tls(&app, push_size(&stored), "pmlogger");
    proxy.assert_running();
}

/// Both ends on rustls: pmlogpush and pmlogger with the library push to a
/// pmproxy with the library preloaded (its HTTPS receiver served by
/// rustls, Basic authentication checked): both archives arrive, and only
/// TLS crossed the wire.
#[test]
#[ignore = "needs PCP 7.2 (run by the version matrix in the sid chroot)"]
fn pmlogpush_and_pmlogger_push_over_tls_to_preloaded_pmproxy() {
    require_pcp_7_2();
    let site = Site::new();
    let mut proxy = site.preloaded_pmproxy();
    let log = proxy.log();
    assert!(
        log.contains("serving TLS 1.2/1.3 with certificate") && !log.contains("left to libpcp"),
        "the receiving pmproxy's HTTPS must be the library's:\n{log}"
    );
    let client = PushClient::new(&site.certs.client_conf());
    let source = site.archive(&client);

    let recorder = Recorder::start(proxy.addr());
    let run = client.pmlogpush("localhost", recorder.port(), &source);
    let app = assert_only_tls(&recorder.finished(1), "pmlogpush", &run);
    run.assert_ok();
    assert_library_connected(&run, "localhost");
    assert_archive_inside_tls(&app, push_size(&source), "pmlogpush");
    let stored = assert_archive_arrived(&proxy, "pmlogpush to the preloaded pmproxy");
    for ext in ["0", "index", "meta"] {
        let sent = std::fs::read(part(&source, ext)).unwrap();
        let got = std::fs::read(part(&stored, ext)).unwrap();
        assert!(sent == got, "pushed .{ext} differs from the source");
    }
    for f in received(&proxy) {
        std::fs::remove_file(f).unwrap();
    }

    let recorder = Recorder::start(proxy.addr());
    let url = format!("https://localhost:{}", recorder.port());
    let run = client.pmlogger_push(&site.pmcd, &url);
    let app = assert_only_tls(&recorder.finished(1), "pmlogger", &run);
    run.assert_ok();
    assert_library_connected(&run, "localhost");
    let stored = assert_archive_arrived(&proxy, "pmlogger to the preloaded pmproxy");
    assert_archive_inside_tls(&app, push_size(&stored), "pmlogger");
    proxy.assert_running();
}

/// A pmproxy certificate from a CA the client does not trust: pmlogpush
/// and pmlogger both fail, the library says why, nothing is stored and
/// nothing but TLS handshake bytes crossed the wire.
#[test]
#[ignore = "needs PCP 7.2 (run by the version matrix in the sid chroot)"]
fn push_is_refused_when_the_pmproxy_certificate_is_untrusted() {
    require_pcp_7_2();
    let site = Site::new();
    let mut proxy = site.pmproxy("server");
    let owner = PushClient::new(&site.certs.client_conf());
    let source = site.archive(&owner);
    let client = PushClient::new(&support::tls_conf(&[(
        "tls-ca-cert-file",
        &site.certs.path("other-ca.crt"),
    )]));
    assert_push_refused(&site, &mut proxy, &client, &source, "is not trusted");
}

/// A pmproxy certificate from the trusted CA but for another host name
/// (other.example) while the client connects to "localhost": both tools
/// fail, the library names the mismatch, nothing is stored, nothing in
/// clear on the wire.
#[test]
#[ignore = "needs PCP 7.2 (run by the version matrix in the sid chroot)"]
fn push_is_refused_when_the_host_name_does_not_match() {
    require_pcp_7_2();
    let site = Site::new();
    let mut proxy = site.pmproxy("wronghost");
    let client = PushClient::new(&site.certs.client_conf());
    let source = site.archive(&client);
    assert_push_refused(&site, &mut proxy, &client, &source, "does not match");
}

/// The test's own helpers (run everywhere): the Basic-credential encoding
/// the wire check looks for, and the version gate.
#[test]
fn helpers_encode_basic_credentials_and_gate_on_pcp_7_2() {
    assert_eq!(
        base64(b"pushuser7:push-pw-Q7"),
        "cHVzaHVzZXI3OnB1c2gtcHctUTc="
    );
    assert_eq!(base64(b"ab"), "YWI=");
    assert_eq!(base64(b"a"), "YQ==");
    assert_eq!(base64(b"abc"), "YWJj");
    for (v, ok) in [
        ("7.2.2", true),
        ("7.2.0", true),
        ("7.10.1", true),
        ("8.0", true),
        ("7.1.9", false),
        ("6.3.8", false),
        ("6.0.3", false),
        ("", false),
    ] {
        assert_eq!(at_least_7_2(v), ok, "{v}");
    }
}
