//! End-to-end tests of the client's trust on first use (issue 3): Debian's
//! unchanged pminfo with libpcp_secure preloaded, against a private pmcd
//! (also with the library) serving certificates the client does not trust,
//! for a different host name, changed, expired or revoked ones.
//!
//! Interactive runs go through a real pseudo-terminal that is pminfo's
//! controlling terminal (tests/peers/pty_run.py); every other run is made
//! in a new session without a controlling terminal, with stdin from
//! /dev/null, so that no run can ever reach the terminal of whoever runs the
//! tests. Each test has its own HOME and its own trust store directory
//! (PCP_SECURE_DB_PATH), both in temporary directories.

use pcp_secure_test_support as support;

use std::collections::BTreeMap;
use std::io::{self, Write as _};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use support::*;
use tempfile::TempDir;

const LOAD: &str = "kernel.all.load";
const STORE_FILE: &str = "trusted-servers.pem";
const SAVE_QUESTION: &str =
    "Do you want to accept and save this certificate locally anyway (y/n)? ";
const DOMAIN_QUESTION: &str = "Do you want to accept this certificate anyway (y/n)? ";
/// What a run without a terminal prints after a question.
const NO: &str = "(no)";
/// The SAN line of every localhost certificate made by scripts/mkcerts.
const LOCAL_NAMES: &str = "Names: DNS:localhost, IP:127.0.0.1, IP:::1";
/// Upper bound for one pty session; only there to turn a hang (for example
/// a prompt nobody answers) into a failure.
const PTY_LIMIT_SECS: &str = "40";

// ---------------------------------------------------------------------------
// A user running pminfo

fn tempdir(prefix: &str) -> TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .expect("cannot create a temporary directory")
}

fn python() -> &'static str {
    if Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    }
}

fn pty_helper() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/peers/pty_run.py")
}

/// One step of a terminal session.
#[derive(Clone, Copy)]
enum Step<'a> {
    /// Wait for this text (literal) to appear after the previous match.
    Expect(&'a str),
    /// Type these keys (once the program reads single keys).
    Send(&'a str),
    /// Wait until this file (a server's log) matches this text (literal).
    WaitFile(&'a std::path::Path, &'a str),
}

/// Options of a terminal session besides its steps.
#[derive(Clone, Copy, Default)]
struct PtyOpts {
    /// stdin from /dev/null instead of the terminal.
    stdin_null: bool,
    /// stderr into a file instead of the terminal.
    stderr_to_file: bool,
    /// Run pminfo as a background job of the terminal's shell (`&` with job
    /// control), as `pminfo ... &` typed at a prompt would.
    background: bool,
}

/// A user with an own HOME, trust store directory and client tls.conf, who
/// runs `pminfo -h HOST -f kernel.all.load` with libpcp_secure preloaded and
/// PCP_SECURE_SOCKETS=enforce.
struct User {
    home: TempDir,
    scratch: TempDir,
    env: BTreeMap<String, String>,
    runs: AtomicUsize,
}

impl User {
    fn new(client_conf: &str) -> User {
        ensure_deps();
        let home = tempdir("pcp-secure-home.");
        let scratch = tempdir("pcp-secure-trust.");
        let conf = scratch.path().join("tls.conf");
        std::fs::write(&conf, client_conf).expect("write tls.conf");
        // Runs start in a directory holding a file named "none", so that
        // PCP_CONSOLE=none cannot be mistaken for a file name unnoticed.
        std::fs::create_dir(scratch.path().join("cwd")).unwrap();
        std::fs::write(scratch.path().join("cwd").join("none"), "").unwrap();
        let mut user = User {
            home,
            scratch,
            env: BTreeMap::new(),
            runs: AtomicUsize::new(0),
        };
        let store = user.store_dir();
        let home = user.home.path().to_path_buf();
        user.set("PATH", "/usr/local/bin:/usr/bin:/bin")
            .set("LC_ALL", "C")
            .set("HOME", home.to_str().unwrap())
            .set("PCP_TLSCONF_PATH", conf.to_str().unwrap())
            .set("PCP_SECURE_SOCKETS", "enforce")
            .set("PCP_SECURE_DB_PATH", store.to_str().unwrap())
            .set("LD_PRELOAD", lib_path().to_str().unwrap());
        user
    }

    /// A user trusting ca.crt only.
    fn trusting_ca(certs: &Certs) -> User {
        User::new(&certs.client_conf())
    }

    fn set(&mut self, k: &str, v: &str) -> &mut Self {
        self.env.insert(k.to_string(), v.to_string());
        self
    }

    fn unset(&mut self, k: &str) -> &mut Self {
        self.env.remove(k);
        self
    }

    /// PCP_SECURE_DB_PATH: a directory that does not exist before the first
    /// save, so that the library has to make it.
    fn store_dir(&self) -> PathBuf {
        self.scratch.path().join("db")
    }

    fn store_file(&self) -> PathBuf {
        self.store_dir().join(STORE_FILE)
    }

    /// The default store, used when PCP_SECURE_DB_PATH is unset or empty.
    fn home_store_file(&self) -> PathBuf {
        self.home.path().join(".pcp").join("tls").join(STORE_FILE)
    }

    fn store_bytes(&self) -> Option<Vec<u8>> {
        std::fs::read(self.store_file()).ok()
    }

    fn store_text(&self) -> String {
        let b = self.store_bytes().unwrap_or_else(|| {
            panic!(
                "the trust store {} does not exist",
                self.store_file().display()
            )
        });
        String::from_utf8(b).expect("the trust store is not UTF-8")
    }

    /// Writes `bytes` as the trust store (directory 0700, file 0600).
    fn write_store(&self, bytes: &[u8]) {
        let dir = self.store_dir();
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        std::fs::write(self.store_file(), bytes).unwrap();
        std::fs::set_permissions(self.store_file(), std::fs::Permissions::from_mode(0o600))
            .unwrap();
    }

    fn store_describe(&self) -> String {
        match self.store_bytes() {
            Some(b) => format!(
                "--- {} ---\n{}-----------",
                self.store_file().display(),
                String::from_utf8_lossy(&b)
            ),
            None => format!("(no {})", self.store_file().display()),
        }
    }

    /// The working directory of every run (it holds an empty file "none").
    fn cwd(&self) -> PathBuf {
        self.scratch.path().join("cwd")
    }

    fn next_run(&self) -> usize {
        self.runs.fetch_add(1, Ordering::SeqCst)
    }

    /// pminfo in a new session without a controlling terminal, stdin from
    /// /dev/null, stdout and stderr to pipes.
    fn detached(&self, host: &str) -> Run {
        let mut cmd = Command::new(PMINFO);
        cmd.env_clear()
            .envs(&self.env)
            .current_dir(self.cwd())
            .args(["-h", host, "-f", LOAD]);
        // SAFETY: the closure runs in the child between fork and exec and
        // calls only async-signal-safe functions (setsid, umask).
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() == -1 {
                    return Err(io::Error::last_os_error());
                }
                libc::umask(0o022);
                Ok(())
            });
        }
        let run = run_with_limit(cmd, CLIENT_LIMIT);
        if run.stderr.contains("cannot be preloaded") {
            panic!(
                "the dynamic loader did not preload libpcp_secure\n{}",
                run.describe()
            );
        }
        run
    }

    /// pminfo with a new pseudo-terminal as its controlling terminal, stdin,
    /// stdout and stderr, driven by `steps`.
    fn pty(&self, host: &str, steps: &[Step]) -> PtyRun {
        self.pty_with(host, steps, PtyOpts::default())
    }

    fn pty_with(&self, host: &str, steps: &[Step], opts: PtyOpts) -> PtyRun {
        let n = self.next_run();
        let transcript = self.scratch.path().join(format!("pty-{n}.out"));
        let stderr_file = self.scratch.path().join(format!("pty-{n}.err"));
        let mut cmd = Command::new(python());
        cmd.env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("LC_ALL", "C")
            .current_dir(self.cwd())
            .arg(pty_helper())
            .args(["--timeout", PTY_LIMIT_SECS, "--clear-env", "--transcript"])
            .arg(&transcript);
        for (k, v) in &self.env {
            cmd.arg("--env").arg(format!("{k}={v}"));
        }
        if opts.stdin_null {
            cmd.arg("--stdin-null");
        }
        if opts.stderr_to_file {
            cmd.arg("--stderr").arg(&stderr_file);
        }
        for s in steps {
            match s {
                Step::Expect(text) => cmd.arg("--expect").arg(re_escape(text)),
                Step::Send(keys) => cmd.arg("--send").arg(keys),
                Step::WaitFile(file, text) => cmd.arg("--wait-file").arg(file).arg(re_escape(text)),
            };
        }
        cmd.arg("--");
        if opts.background {
            cmd.args(["/bin/sh", "-c", "set -m; \"$0\" \"$@\" & wait $!"]);
        }
        cmd.arg(PMINFO).args(["-h", host, "-f", LOAD]);
        // SAFETY: the closure runs in the child between fork and exec and
        // calls only async-signal-safe functions (setsid, umask).
        unsafe {
            cmd.pre_exec(|| {
                libc::umask(0o022);
                Ok(())
            });
        }
        let helper = run_with_limit(cmd, CLIENT_LIMIT);
        assert!(
            helper.success(),
            "the pty helper failed\n{}",
            helper.describe()
        );
        let raw = std::fs::read(&transcript).unwrap_or_default();
        PtyRun {
            status: helper.stdout.trim().to_string(),
            transcript: String::from_utf8_lossy(&raw).replace("\r\n", "\n"),
            stderr: opts.stderr_to_file.then(|| {
                String::from_utf8_lossy(&std::fs::read(&stderr_file).unwrap_or_default())
                    .into_owned()
            }),
            steps: steps
                .iter()
                .map(|s| match s {
                    Step::Expect(t) => format!("expect {t:?}"),
                    Step::Send(k) => format!("send {k:?}"),
                    Step::WaitFile(f, t) => format!("wait for {t:?} in {}", f.display()),
                })
                .collect(),
            helper: helper.cmd,
        }
    }
}

/// Escapes `text` for a Python regular expression.
/// Asserts that `text` contains `needle`; on failure says `what` and shows
/// `context` (a run's description).
fn has(text: &str, needle: impl AsRef<str>, what: &str, context: &str) {
    assert!(text.contains(needle.as_ref()), "{what}\n{context}");
}

/// Asserts that `text` does not contain `needle`.
fn lacks(text: &str, needle: impl AsRef<str>, what: &str, context: &str) {
    assert!(!text.contains(needle.as_ref()), "{what}\n{context}");
}

fn re_escape(text: &str) -> String {
    let mut s = String::new();
    for c in text.chars() {
        if "\\.^$*+?{}[]|()".contains(c) {
            s.push('\\');
        }
        s.push(c);
    }
    s
}

/// The outcome of a terminal session.
struct PtyRun {
    /// The helper's verdict: "exit N", "signal N" or "timeout STEP".
    status: String,
    /// Everything the terminal showed, with LF line ends.
    transcript: String,
    /// What went to stderr, when it was sent to a file.
    stderr: Option<String>,
    steps: Vec<String>,
    helper: String,
}

impl PtyRun {
    fn exit_code(&self) -> Option<i32> {
        self.status.strip_prefix("exit ")?.parse().ok()
    }

    fn describe(&self) -> String {
        format!(
            "pty session: {}\nsteps: {:?}\nresult: {}\n--- terminal ---\n{}\n{}--------------",
            self.helper,
            self.steps,
            self.status,
            self.transcript,
            match &self.stderr {
                Some(e) => format!("--- stderr (file) ---\n{e}"),
                None => String::new(),
            }
        )
    }

    fn assert_ok(&self) -> &Self {
        assert_eq!(
            self.exit_code(),
            Some(0),
            "expected success\n{}",
            self.describe()
        );
        self
    }

    /// Ended by itself (no step timed out) with a failure status.
    fn assert_failed(&self) -> &Self {
        match self.exit_code() {
            Some(c) if c != 0 => self,
            _ => panic!("expected a failure exit\n{}", self.describe()),
        }
    }
}

// ---------------------------------------------------------------------------
// Certificates and the trust store

/// The first PEM certificate block in `text`, one line per line, no CRs.
fn pem_block(text: &str) -> Option<String> {
    let start = text.find("-----BEGIN CERTIFICATE-----")?;
    let end_marker = "-----END CERTIFICATE-----";
    let end = text[start..].find(end_marker)? + start + end_marker.len();
    Some(
        text[start..end]
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join("\n"),
    )
}

/// The PEM of certificate `name` made by mkcerts.
fn cert_pem(certs: &Certs, name: &str) -> String {
    let text = std::fs::read_to_string(certs.path(&format!("{name}.crt"))).unwrap();
    pem_block(&text).unwrap_or_else(|| panic!("{name}.crt holds no PEM certificate"))
}

/// `openssl x509 -noout -fingerprint -ALG` of a PEM certificate: uppercase
/// hex bytes separated by colons.
fn openssl_fingerprint(pem: &str, alg: &str) -> String {
    let mut child = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", &format!("-{alg}")])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot run openssl");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{pem}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "openssl x509 -fingerprint failed: {}{}",
        text,
        String::from_utf8_lossy(&out.stderr)
    );
    let fp = text
        .trim()
        .split_once('=')
        .unwrap_or_else(|| panic!("unexpected openssl output {text:?}"))
        .1
        .trim()
        .to_string();
    assert!(
        fp.len() == if alg == "sha256" { 95 } else { 59 },
        "unexpected {alg} fingerprint {fp:?}"
    );
    fp
}

fn cert_fingerprint(certs: &Certs, name: &str, alg: &str) -> String {
    openssl_fingerprint(&cert_pem(certs, name), alg)
}

/// One entry of a trust store.
#[derive(Debug)]
struct Entry {
    /// `# key: value` lines before the certificate.
    fields: BTreeMap<String, String>,
    pem: String,
}

impl Entry {
    fn field(&self, k: &str) -> &str {
        self.fields.get(k).map(String::as_str).unwrap_or("")
    }
}

/// Parses a trust store as the contract describes it: entries made of
/// comment lines then a PEM certificate, blank lines between entries.
fn parse_store(text: &str) -> Result<Vec<Entry>, String> {
    let mut entries = Vec::new();
    let mut fields = BTreeMap::new();
    let mut pem: Option<Vec<&str>> = None;
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        if let Some(p) = pem.as_mut() {
            p.push(line.trim());
            if line.trim() == "-----END CERTIFICATE-----" {
                entries.push(Entry {
                    fields: std::mem::take(&mut fields),
                    pem: pem.take().unwrap().join("\n"),
                });
            }
            continue;
        }
        let t = line.trim();
        if t.is_empty() {
            continue;
        }
        if let Some(c) = t.strip_prefix('#') {
            if let Some((k, v)) = c.split_once(':') {
                let k = k.trim();
                if matches!(k, "host" | "sha256" | "subject" | "saved")
                    && fields.insert(k.to_string(), v.trim().to_string()).is_some()
                {
                    return Err(format!("line {n}: a second `# {k}:` line in one entry"));
                }
            }
            continue;
        }
        if t == "-----BEGIN CERTIFICATE-----" {
            pem = Some(vec![t]);
            continue;
        }
        return Err(format!(
            "line {n} is neither a comment nor a certificate: {line:?}"
        ));
    }
    if pem.is_some() {
        return Err("the last certificate has no END line".into());
    }
    if !fields.is_empty() {
        return Err(format!(
            "comment lines {fields:?} after the last certificate"
        ));
    }
    for e in &entries {
        for k in ["host", "sha256", "subject", "saved"] {
            if e.field(k).is_empty() {
                return Err(format!("an entry has no `# {k}:` line: {e:?}"));
            }
        }
    }
    Ok(entries)
}

/// Parses the store of `user` and checks every entry against openssl: its
/// `# sha256:` line is the SHA-256 fingerprint of its own certificate, and
/// its `# saved:` line is a UTC time stamp. Returns the entries by host.
fn checked_store(user: &User) -> BTreeMap<String, Entry> {
    let text = user.store_text();
    let entries = parse_store(&text).unwrap_or_else(|e| {
        panic!(
            "the trust store does not parse: {e}\n{}",
            user.store_describe()
        )
    });
    let mut by_host = BTreeMap::new();
    for e in entries {
        let fp = openssl_fingerprint(&e.pem, "sha256");
        assert_eq!(
            e.field("sha256"),
            fp,
            "the sha256 line of host {} is not the fingerprint of its certificate\n{}",
            e.field("host"),
            user.store_describe()
        );
        assert!(
            is_utc_stamp(e.field("saved")),
            "`# saved: {}` is not of the form 2026-11-23T20:41:00Z\n{}",
            e.field("saved"),
            user.store_describe()
        );
        let host = e.field("host").to_string();
        if by_host.insert(host.clone(), e).is_some() {
            panic!("two entries for host {host}\n{}", user.store_describe());
        }
    }
    by_host
}

/// The trust store key of `host` on `pmcd`'s port (entries are per host
/// and port, and the tests' pmcds never listen on 44321).
fn key(pmcd: &Pmcd, host: &str) -> String {
    format!("{host}:{}", pmcd.port())
}

/// YYYY-MM-DDTHH:MM:SSZ
fn is_utc_stamp(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 20
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'Z',
            _ => c.is_ascii_digit(),
        })
}

/// A hand-written store entry, in the documented format.
fn entry_text(host: &str, sha256: &str, pem: &str) -> String {
    format!(
        "# host: {host}\n# sha256: {sha256}\n# subject: O=pcp_secure tests, CN=localhost\n# saved: 2026-11-23T20:41:00Z\n{pem}\n"
    )
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o7777
}

// ---------------------------------------------------------------------------
// Output checks

fn pmcd_serving(certs: &Certs, name: &str) -> Pmcd {
    Pmcd::builder()
        .preload_ours(true)
        .tls_conf(&certs.server_conf_with(name))
        .start()
}

/// The three load averages in `text` (pminfo -f output).
fn has_load_values(text: &str) -> bool {
    ["1 minute", "5 minute", "15 minute"].iter().all(|inst| {
        text.lines()
            .any(|l| l.contains(&format!("\"{inst}\"]")) && l.contains(" value "))
    })
}

fn assert_values_on_terminal(run: &PtyRun) {
    run.assert_ok();
    assert!(
        has_load_values(&run.transcript),
        "no load values on the terminal\n{}",
        run.describe()
    );
}

/// A refused pminfo: failure status, no values, and a `pcp_secure: error:`
/// line naming `host` and containing `reason`.
fn assert_refused(run: &Run, host: &str, reason: &str) {
    run.assert_failed();
    lacks(
        &run.stdout,
        " value ",
        "values were delivered",
        &run.describe(),
    );
    assert!(
        error_line(&run.stderr, host, reason).is_some(),
        "no `pcp_secure: error:` line naming {host} and saying {reason:?}\n{}",
        run.describe()
    );
}

fn assert_refused_on_terminal(run: &PtyRun, host: &str, reason: &str) {
    run.assert_failed();
    assert!(
        !has_load_values(&run.transcript) && !run.transcript.contains(" value "),
        "values were delivered\n{}",
        run.describe()
    );
    let errors = run.stderr.as_deref().unwrap_or(&run.transcript);
    assert!(
        error_line(errors, host, reason).is_some(),
        "no `pcp_secure: error:` line naming {host} and saying {reason:?}\n{}",
        run.describe()
    );
}

fn error_line<'a>(text: &'a str, host: &str, reason: &str) -> Option<&'a str> {
    text.lines()
        .map(str::trim)
        .find(|l| l.starts_with("pcp_secure: error:") && l.contains(host) && l.contains(reason))
}

fn count(text: &str, needle: &str) -> usize {
    text.matches(needle).count()
}

/// A test on one line of output.
type LinePred<'a> = Box<dyn Fn(&str) -> bool + 'a>;

/// Checks the untrusted-issuer block for `host` and certificate `name` in
/// `text`: the WARNING line, the SHA-256 and SHA-1 fingerprints (as openssl
/// computes them), subject, issuer, validity and names, in this order, then
/// `question_tail` (the question, and "(no)" where there is no terminal).
fn check_untrusted_block(
    text: &str,
    host: &str,
    certs: &Certs,
    name: &str,
    question_tail: &str,
) -> Result<(), String> {
    let warning =
        format!("WARNING: issuer of certificate received from host {host} is not trusted.");
    let lines: Vec<&str> = text.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.trim_end() == warning)
        .ok_or_else(|| format!("no line {warning:?}"))?;
    let sha256 = format!(
        "SHA256 fingerprint is {}",
        cert_fingerprint(certs, name, "sha256")
    );
    let sha1 = format!(
        "SHA1 fingerprint is {}",
        cert_fingerprint(certs, name, "sha1")
    );
    let expected: [(&str, LinePred); 7] = [
        (
            "the SHA-256 line",
            Box::new(|l: &str| l.trim_end() == sha256),
        ),
        ("the SHA-1 line", Box::new(|l: &str| l.trim_end() == sha1)),
        (
            "Subject: ...CN=localhost...",
            Box::new(|l: &str| l.starts_with("Subject: ") && l.contains("CN=localhost")),
        ),
        (
            "Issuer: ...CN=localhost...",
            Box::new(|l: &str| l.starts_with("Issuer: ") && l.contains("CN=localhost")),
        ),
        (
            "Valid from ... to ...",
            Box::new(|l: &str| l.starts_with("Valid from ") && l.contains(" to ")),
        ),
        (LOCAL_NAMES, Box::new(|l: &str| l.trim_end() == LOCAL_NAMES)),
        (
            question_tail,
            Box::new(|l: &str| l.starts_with(question_tail)),
        ),
    ];
    let mut i = at + 1;
    for (what, pred) in expected.iter() {
        match lines[i..].iter().position(|l| pred(l)) {
            Some(p) => i += p + 1,
            None => {
                return Err(format!(
                    "{what:?} does not follow in the block after line {}: expected {sha256:?} / {sha1:?}",
                    at + 1
                ))
            }
        }
    }
    Ok(())
}

fn assert_untrusted_block(
    text: &str,
    host: &str,
    certs: &Certs,
    name: &str,
    question_tail: &str,
    describe: &str,
) {
    if let Err(e) = check_untrusted_block(text, host, certs, name, question_tail) {
        panic!("untrusted-issuer dialogue for host {host}: {e}\n{describe}");
    }
}

/// The question with "(no)", as printed where there is no terminal.
fn answered_no(question: &str) -> String {
    format!("{question}{NO}")
}

// ---------------------------------------------------------------------------
// 0a. Nobody to ask: daemons and background jobs

/// Without a terminal (a daemon such as pmlogger, pmie or pmproxy), the
/// question is never asked: the refusal says how to trust the server for
/// the user the program runs as, and where that user's trust store is.
#[test]
fn without_a_terminal_the_refusal_says_how_to_trust_the_server() {
    let certs = Certs::new();
    let pmcd = pmcd_serving(&certs, "selfsigned");
    let user = User::trusting_ca(&certs);
    let host = pmcd.host_named("localhost");
    let run = user.detached(&host);
    run.assert_failed();
    let me = support::user_name();
    for needle in [
        "nobody could be asked about the server \"localhost\"",
        &format!(
            "run `pcp-secure trust add localhost:{}` as user \"{me}\"",
            pmcd.port()
        ),
        &format!(
            "`pcp-secure trust add --user {me} localhost:{}`",
            pmcd.port()
        ),
        &format!("trust store \"{}\"", user.store_file().display()),
    ] {
        assert!(run.stderr.contains(needle), "{needle}\n{}", run.describe());
    }
    assert!(!user.store_file().exists(), "nothing may be saved");
}

/// A job in the background of its terminal (`pminfo ... &`) is never
/// stopped by the question: it is not asked, and ends at once.
#[test]
fn a_background_job_is_not_stopped_by_the_question() {
    let certs = Certs::new();
    let pmcd = pmcd_serving(&certs, "selfsigned");
    let user = User::trusting_ca(&certs);
    let host = pmcd.host_named("localhost");
    let run = user.pty_with(
        &host,
        &[],
        PtyOpts {
            background: true,
            ..PtyOpts::default()
        },
    );
    run.assert_failed();
    assert!(
        run.transcript.contains(&answered_no(SAVE_QUESTION)),
        "{}",
        run.describe()
    );
    assert!(!user.store_file().exists(), "nothing may be saved");
}

/// Ctrl-C at the question interrupts pminfo, as anywhere else.
#[test]
fn ctrl_c_at_the_question_interrupts() {
    let certs = Certs::new();
    let pmcd = pmcd_serving(&certs, "selfsigned");
    let user = User::trusting_ca(&certs);
    let host = pmcd.host_named("localhost");
    let run = user.pty(&host, &[Step::Expect(SAVE_QUESTION), Step::Send("\u{3}")]);
    assert_eq!(
        run.status,
        format!("signal {}", libc::SIGINT),
        "{}",
        run.describe()
    );
    assert!(!user.store_file().exists(), "nothing may be saved");
}

// ---------------------------------------------------------------------------
// 0. The question answered after pmcd gave up on the handshake

/// pmcd bounds the handshake (here 1 s); a person answering later still
/// gets the certificate saved, and a message that says to connect again
/// (never an errno such as "Broken pipe"); the next connection is silent.
#[test]
fn prompt_answered_after_pmcd_gave_up_saves_and_says_connect_again() {
    let certs = Certs::new();
    let pmcd = Pmcd::builder()
        .preload_ours(true)
        .tls_conf(&certs.server_conf_with("selfsigned"))
        .env("PCP_SECURE_HANDSHAKE_TIMEOUT", "1")
        .start();
    let user = User::trusting_ca(&certs);
    let host = pmcd.host_named("localhost");
    let log = pmcd.dir().join("pmcd.log");
    let run = user.pty(
        &host,
        &[
            Step::Expect(SAVE_QUESTION),
            // pmcd's log says it refused the silent client: now answer.
            Step::WaitFile(&log, "refused"),
            Step::Send("y"),
        ],
    );
    run.assert_failed();
    assert!(
        run.transcript
            .contains("the certificate was saved, so connect again"),
        "{}",
        run.describe()
    );
    assert!(!run.transcript.contains("os error"), "{}", run.describe());
    let again = user.detached(&host);
    assert_load_values(&again);
    assert!(!again.stderr.contains("WARNING"), "{}", again.describe());
}

// ---------------------------------------------------------------------------
// 1. y at the prompt: handshake completes, certificate saved, next run silent

#[test]
fn prompt_yes_saves_and_next_connection_is_silent() {
    let certs = Certs::new();
    let pmcd = pmcd_serving(&certs, "selfsigned");
    let user = User::trusting_ca(&certs);
    let host = pmcd.host_named("localhost");

    let run = user.pty(&host, &[Step::Expect(SAVE_QUESTION), Step::Send("y")]);
    assert_values_on_terminal(&run);
    assert_untrusted_block(
        &run.transcript,
        "localhost",
        &certs,
        "selfsigned",
        SAVE_QUESTION,
        &run.describe(),
    );
    assert_eq!(
        count(&run.transcript, SAVE_QUESTION),
        1,
        "asked more than once\n{}",
        run.describe()
    );

    // The store: directory 0700, file 0600, one entry for "localhost" holding
    // exactly selfsigned.crt with its fingerprint.
    assert_eq!(
        mode(&user.store_dir()),
        0o700,
        "store directory mode\n{}",
        user.store_describe()
    );
    assert_eq!(
        mode(&user.store_file()),
        0o600,
        "store file mode\n{}",
        user.store_describe()
    );
    let text = user.store_text();
    assert!(
        text.lines()
            .any(|l| l == format!("# host: {}", key(&pmcd, "localhost"))),
        "{}",
        user.store_describe()
    );
    let fp = cert_fingerprint(&certs, "selfsigned", "sha256");
    assert!(
        text.lines().any(|l| l == format!("# sha256: {fp}")),
        "no `# sha256: {fp}` line\n{}",
        user.store_describe()
    );
    let store = checked_store(&user);
    assert_eq!(store.len(), 1, "{}", user.store_describe());
    let e = &store[&key(&pmcd, "localhost")];
    assert_eq!(
        e.pem,
        cert_pem(&certs, "selfsigned"),
        "saved PEM\n{}",
        user.store_describe()
    );
    assert!(
        e.field("subject").contains("CN=localhost"),
        "{}",
        user.store_describe()
    );
    assert!(
        !user.home_store_file().exists(),
        "PCP_SECURE_DB_PATH was not used"
    );

    // Next connection to the same host, without any terminal: silent.
    let again = user.detached(&host);
    assert_load_values(&again);
    lacks(&again.stderr, "WARNING", "warned again", &again.describe());
    lacks(
        &again.stderr,
        "Do you want",
        "asked again",
        &again.describe(),
    );

    // Entries are per host as typed: 127.0.0.1 is another host, not trusted.
    let other = user.detached(&pmcd.host());
    assert_refused(&other, "127.0.0.1", "not trusted");
    assert_untrusted_block(
        &other.stderr,
        "127.0.0.1",
        &certs,
        "selfsigned",
        &answered_no(SAVE_QUESTION),
        &other.describe(),
    );
    assert_eq!(checked_store(&user).len(), 1, "{}", user.store_describe());
}

// ---------------------------------------------------------------------------
// 2. n at the prompt: refused, nothing saved

#[test]
fn prompt_no_refuses_and_saves_nothing() {
    let certs = Certs::new();
    let pmcd = pmcd_serving(&certs, "selfsigned");
    let user = User::trusting_ca(&certs);
    let host = pmcd.host_named("localhost");

    // stderr goes to a file: the dialogue must still be on the terminal, the
    // refusal in stderr.
    let opts = PtyOpts {
        stderr_to_file: true,
        ..Default::default()
    };
    let run = user.pty_with(&host, &[Step::Expect(SAVE_QUESTION), Step::Send("n")], opts);
    assert_refused_on_terminal(&run, "localhost", "not trusted");
    assert_untrusted_block(
        &run.transcript,
        "localhost",
        &certs,
        "selfsigned",
        SAVE_QUESTION,
        &run.describe(),
    );
    assert_eq!(
        count(&run.transcript, SAVE_QUESTION),
        1,
        "asked more than once\n{}",
        run.describe()
    );
    assert!(
        user.store_bytes().is_none(),
        "saved after n\n{}",
        user.store_describe()
    );
    assert!(!user.home_store_file().exists());

    // Still untrusted on the next run: asked again; N (upper case) is no too.
    let run = user.pty(&host, &[Step::Expect(SAVE_QUESTION), Step::Send("N")]);
    assert_refused_on_terminal(&run, "localhost", "not trusted");
    assert!(
        user.store_bytes().is_none(),
        "saved after N\n{}",
        user.store_describe()
    );
}

// ---------------------------------------------------------------------------
// 3. Three keys that are neither y nor n: no

#[test]
fn invalid_keys_three_times_means_no() {
    let certs = Certs::new();
    let pmcd = pmcd_serving(&certs, "selfsigned");
    let user = User::trusting_ca(&certs);
    let host = pmcd.host_named("localhost");

    let steps = [
        Step::Expect(SAVE_QUESTION),
        Step::Send("x"),
        Step::Expect(SAVE_QUESTION),
        Step::Send("q"),
        Step::Expect(SAVE_QUESTION),
        Step::Send("z"),
    ];
    let run = user.pty(&host, &steps);
    assert_refused_on_terminal(&run, "localhost", "not trusted");
    assert_eq!(
        count(&run.transcript, SAVE_QUESTION),
        3,
        "expected exactly three questions\n{}",
        run.describe()
    );
    assert!(
        user.store_bytes().is_none(),
        "saved\n{}",
        user.store_describe()
    );

    // An invalid key and then Y: asked twice, accepted, saved. The answer
    // comes from the controlling terminal, not from stdin (/dev/null here)
    // or stderr (a file here).
    let opts = PtyOpts {
        stdin_null: true,
        stderr_to_file: true,
        ..PtyOpts::default()
    };
    let steps = [
        Step::Expect(SAVE_QUESTION),
        Step::Send("?"),
        Step::Expect(SAVE_QUESTION),
        Step::Send("Y"),
    ];
    let run = user.pty_with(&host, &steps, opts);
    assert_values_on_terminal(&run);
    assert_eq!(
        count(&run.transcript, SAVE_QUESTION),
        2,
        "{}",
        run.describe()
    );
    let store = checked_store(&user);
    assert_eq!(store.len(), 1, "{}", user.store_describe());
    assert_eq!(
        store[&key(&pmcd, "localhost")].pem,
        cert_pem(&certs, "selfsigned")
    );
}

// ---------------------------------------------------------------------------
// 4. No controlling terminal: the dialogue on stderr, answered "(no)"

#[test]
fn no_terminal_answers_no() {
    let certs = Certs::new();
    let pmcd = pmcd_serving(&certs, "selfsigned");
    let user = User::trusting_ca(&certs);
    let host = pmcd.host_named("localhost");

    let run = user.detached(&host);
    assert_refused(&run, "localhost", "not trusted");
    assert_untrusted_block(
        &run.stderr,
        "localhost",
        &certs,
        "selfsigned",
        &answered_no(SAVE_QUESTION),
        &run.describe(),
    );
    assert!(
        run.stderr
            .lines()
            .any(|l| l.trim_end() == answered_no(SAVE_QUESTION).trim_end()),
        "no line exactly {:?}\n{}",
        answered_no(SAVE_QUESTION),
        run.describe()
    );
    assert!(
        user.store_bytes().is_none(),
        "saved\n{}",
        user.store_describe()
    );
    assert!(!user.home_store_file().exists());
}

// ---------------------------------------------------------------------------
// 5. PCP_CONSOLE=none: no prompt even with a terminal

#[test]
fn pcp_console_none_answers_no() {
    let certs = Certs::new();
    let pmcd = pmcd_serving(&certs, "selfsigned");
    let mut user = User::trusting_ca(&certs);
    user.set("PCP_CONSOLE", "none");
    let host = pmcd.host_named("localhost");

    // No steps: a prompt would wait for a key until the helper's limit.
    let opts = PtyOpts {
        stderr_to_file: true,
        ..Default::default()
    };
    let run = user.pty_with(&host, &[], opts);
    assert_refused_on_terminal(&run, "localhost", "not trusted");
    let stderr = run.stderr.clone().unwrap();
    assert_untrusted_block(
        &stderr,
        "localhost",
        &certs,
        "selfsigned",
        &answered_no(SAVE_QUESTION),
        &run.describe(),
    );
    lacks(
        &run.transcript,
        "Do you want",
        "asked on the terminal although PCP_CONSOLE=none",
        &run.describe(),
    );
    let console_file = std::fs::read(user.cwd().join("none")).unwrap();
    assert!(
        console_file.is_empty(),
        "PCP_CONSOLE=none was taken for a file name: ./none holds {:?}",
        String::from_utf8_lossy(&console_file)
    );
    assert!(
        user.store_bytes().is_none(),
        "saved\n{}",
        user.store_describe()
    );
}

// ---------------------------------------------------------------------------
// 6. PCP_ALLOW_SERVER_SELF_CERT: accepted and saved without a question

/// A trust store another user can write is never used to trust a server
/// (anyone could have pinned their own certificate in it): the saved entry
/// is ignored, the connection is refused, and the warning names the store
/// and the fix; once fixed, the entry counts again.
#[test]
fn trust_store_writable_by_others_is_not_used() {
    use std::os::unix::fs::PermissionsExt;
    let certs = Certs::new();
    let pmcd = pmcd_serving(&certs, "selfsigned");
    let mut user = User::trusting_ca(&certs);
    let host = pmcd.host_named("localhost");
    user.set("PCP_ALLOW_SERVER_SELF_CERT", "1");
    assert_load_values(&user.detached(&host));
    user.unset("PCP_ALLOW_SERVER_SELF_CERT");

    let dir = user.store_dir();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let run = user.detached(&host);
    run.assert_failed();
    assert!(
        run.stderr
            .contains("is writable by other users (mode 0777)")
            && run
                .stderr
                .contains(&format!("chmod go-w {}", dir.display())),
        "{}",
        run.describe()
    );

    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let file = user.store_file();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o666)).unwrap();
    let run = user.detached(&host);
    run.assert_failed();
    assert!(run.stderr.contains("(mode 0666)"), "{}", run.describe());

    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_load_values(&user.detached(&host));
}

#[test]
fn allow_server_self_cert_env_accepts_and_saves() {
    let certs = Certs::new();
    let pmcd = pmcd_serving(&certs, "selfsigned");
    let mut user = User::trusting_ca(&certs);
    let host = pmcd.host_named("localhost");

    user.set("PCP_ALLOW_SERVER_SELF_CERT", "1");
    let run = user.detached(&host);
    assert_load_values(&run);
    lacks(&run.stderr, "Do you want", "asked", &run.describe());
    assert_eq!(mode(&user.store_dir()), 0o700);
    assert_eq!(mode(&user.store_file()), 0o600);
    let store = checked_store(&user);
    assert_eq!(store.len(), 1, "{}", user.store_describe());
    let localhost = key(&pmcd, "localhost");
    assert_eq!(store[&localhost].pem, cert_pem(&certs, "selfsigned"));
    assert_eq!(
        store[&localhost].field("sha256"),
        cert_fingerprint(&certs, "selfsigned", "sha256")
    );

    // Saved for good: without the variable, still no question.
    user.unset("PCP_ALLOW_SERVER_SELF_CERT");
    let run = user.detached(&host);
    assert_load_values(&run);
    lacks(&run.stderr, "WARNING", "warned", &run.describe());

    // A second host is added by writing a new file and renaming it over the
    // old one (atomic replacement): the inode changes, both entries remain.
    let inode = std::fs::metadata(user.store_file()).unwrap().ino();
    user.set("PCP_ALLOW_SERVER_SELF_CERT", "1");
    let run = user.detached(&pmcd.host());
    assert_load_values(&run);
    let store = checked_store(&user);
    assert_eq!(
        store.keys().cloned().collect::<Vec<_>>(),
        [key(&pmcd, "127.0.0.1"), localhost.clone()],
        "{}",
        user.store_describe()
    );
    assert_ne!(
        std::fs::metadata(user.store_file()).unwrap().ino(),
        inode,
        "the store was rewritten in place, not replaced by a renamed file"
    );
    assert_eq!(mode(&user.store_file()), 0o600);

    // Without PCP_SECURE_DB_PATH the store is $HOME/.pcp/tls.
    user.unset("PCP_SECURE_DB_PATH");
    let run = user.detached(&host);
    assert_load_values(&run);
    let home_store = user.home_store_file();
    let text = std::fs::read_to_string(&home_store)
        .unwrap_or_else(|e| panic!("{}: {e}\n{}", home_store.display(), run.describe()));
    assert!(
        text.lines().any(|l| l == format!("# host: {localhost}")),
        "{text}"
    );
    assert_eq!(
        mode(home_store.parent().unwrap()),
        0o700,
        "{}",
        home_store.parent().unwrap().display()
    );
    assert_eq!(mode(&home_store), 0o600);

    // An empty PCP_SECURE_DB_PATH means the same: the HOME store trusts
    // localhost, so no question and no variable are needed.
    user.unset("PCP_ALLOW_SERVER_SELF_CERT")
        .set("PCP_SECURE_DB_PATH", "");
    let run = user.detached(&host);
    assert_load_values(&run);
    assert!(!run.stderr.contains("WARNING"), "{}", run.describe());
}

// ---------------------------------------------------------------------------
// 7. Host-name mismatch on a CA-signed certificate

#[test]
fn name_mismatch_prompt() {
    let certs = Certs::new();
    let pmcd = pmcd_serving(&certs, "wronghost");
    let mut user = User::trusting_ca(&certs);
    let host = pmcd.host_named("localhost");
    let warning = "WARNING: The domain name localhost does not match the DNS name(s) on the server certificate:\n  other.example\n";

    // y: goes through, not saved.
    let run = user.pty(&host, &[Step::Expect(DOMAIN_QUESTION), Step::Send("y")]);
    assert_values_on_terminal(&run);
    assert!(
        run.transcript
            .contains(&format!("{warning}{DOMAIN_QUESTION}")),
        "expected on the terminal:\n{warning}{DOMAIN_QUESTION}\n{}",
        run.describe()
    );
    lacks(
        &run.transcript,
        "is not trusted",
        "the CA-signed certificate was called untrusted",
        &run.describe(),
    );
    assert!(
        user.store_bytes().is_none(),
        "a name mismatch was saved\n{}",
        user.store_describe()
    );

    // Asked again next time; n refuses.
    let run = user.pty(&host, &[Step::Expect(DOMAIN_QUESTION), Step::Send("n")]);
    assert_refused_on_terminal(&run, "localhost", "does not match");
    assert!(user.store_bytes().is_none(), "{}", user.store_describe());

    // No terminal: refused with "(no)".
    let run = user.detached(&host);
    assert_refused(&run, "localhost", "does not match");
    assert!(
        run.stderr
            .contains(&format!("{warning}{}", answered_no(DOMAIN_QUESTION))),
        "expected on stderr:\n{warning}{}\n{}",
        answered_no(DOMAIN_QUESTION),
        run.describe()
    );

    // PCP_ALLOW_BAD_CERT_DOMAIN: accepted without a question, not saved.
    user.set("PCP_ALLOW_BAD_CERT_DOMAIN", "1");
    let run = user.detached(&host);
    assert_load_values(&run);
    lacks(&run.stderr, "Do you want", "asked", &run.describe());
    assert!(user.store_bytes().is_none(), "{}", user.store_describe());
}

// ---------------------------------------------------------------------------
// 8. A saved certificate that changes is refused loudly

#[test]
fn changed_certificate_is_refused_loudly() {
    let certs = Certs::new();
    let mut user = User::trusting_ca(&certs);
    user.set("PCP_ALLOW_SERVER_SELF_CERT", "1");
    {
        let first = pmcd_serving(&certs, "selfsigned");
        assert_load_values(&user.detached(&first.host_named("localhost")));
    }
    let saved = user
        .store_bytes()
        .expect("the first certificate was not saved");
    let store = checked_store(&user);
    assert_eq!(store.len(), 1, "{}", user.store_describe());
    let (first_key, first_entry) = store.iter().next().unwrap();
    assert!(first_key.starts_with("localhost:"), "{first_key}");
    assert_eq!(first_entry.pem, cert_pem(&certs, "selfsigned"));

    // The same server (host and port) with a new certificate: the entry is
    // moved to the new pmcd's port, as if that one had served the first.
    let pmcd = pmcd_serving(&certs, "selfsigned2");
    let host = pmcd.host_named("localhost");
    let moved = String::from_utf8(saved)
        .unwrap()
        .replace(
            &format!("# host: {first_key}\n"),
            &format!("# host: {}\n", key(&pmcd, "localhost")),
        )
        .into_bytes();
    std::fs::write(user.store_file(), &moved).unwrap();
    let saved = moved;

    // Even with PCP_ALLOW_SERVER_SELF_CERT: refused, no question.
    let run = user.detached(&host);
    assert_refused(&run, "localhost", "changed");
    has(
        &run.stderr,
        "HAS CHANGED",
        "no loud warning",
        &run.describe(),
    );
    lacks(&run.stderr, "Do you want", "asked", &run.describe());
    assert_eq!(
        user.store_bytes().as_ref(),
        Some(&saved),
        "the store changed\n{}",
        user.store_describe()
    );

    // At a terminal: the warning there too, and no prompt (none is answered
    // here; a prompt would hang until the helper's limit).
    user.unset("PCP_ALLOW_SERVER_SELF_CERT");
    let run = user.pty(&host, &[]);
    assert_refused_on_terminal(&run, "localhost", "changed");
    has(
        &run.transcript,
        "HAS CHANGED",
        "no loud warning",
        &run.describe(),
    );
    lacks(&run.transcript, "Do you want", "asked", &run.describe());
    assert_eq!(
        user.store_bytes().as_ref(),
        Some(&saved),
        "the store changed\n{}",
        user.store_describe()
    );

    // The entry is per host: 127.0.0.1 has none, so it can be accepted.
    user.set("PCP_ALLOW_SERVER_SELF_CERT", "1");
    let run = user.detached(&pmcd.host());
    assert_load_values(&run);
    let store = checked_store(&user);
    assert_eq!(
        store[&key(&pmcd, "localhost")].pem,
        cert_pem(&certs, "selfsigned")
    );
    assert_eq!(
        store[&key(&pmcd, "127.0.0.1")].pem,
        cert_pem(&certs, "selfsigned2")
    );
}

// ---------------------------------------------------------------------------
// 9. Expired and not-yet-valid certificates: refused, never asked

#[test]
fn expired_certificate_refused_without_prompt() {
    let certs = Certs::new();

    for (name, reason) in [("expired", "expired"), ("notyet", "not valid yet")] {
        let pmcd = pmcd_serving(&certs, name);
        let host = pmcd.host_named("localhost");
        let mut user = User::trusting_ca(&certs);
        let run = user.detached(&host);
        assert_refused(&run, "localhost", reason);
        lacks(&run.stderr, "Do you want", "asked", &run.describe());

        user.set("PCP_ALLOW_SERVER_SELF_CERT", "1")
            .set("PCP_ALLOW_BAD_CERT_DOMAIN", "1");
        let run = user.detached(&host);
        assert_refused(&run, "localhost", reason);
        lacks(&run.stderr, "Do you want", "asked", &run.describe());

        user.unset("PCP_ALLOW_SERVER_SELF_CERT")
            .unset("PCP_ALLOW_BAD_CERT_DOMAIN");
        let run = user.pty(&host, &[]);
        assert_refused_on_terminal(&run, "localhost", reason);
        lacks(&run.transcript, "Do you want", "asked", &run.describe());
        assert!(user.store_bytes().is_none(), "{}", user.store_describe());
    }

    // Untrusted and expired: the expiry decides, no question, nothing saved.
    let pmcd = pmcd_serving(&certs, "expired-selfsigned");
    let host = pmcd.host_named("localhost");
    let mut user = User::trusting_ca(&certs);
    user.set("PCP_ALLOW_SERVER_SELF_CERT", "1");
    let run = user.detached(&host);
    assert_refused(&run, "localhost", "expired");
    lacks(&run.stderr, "Do you want", "asked", &run.describe());
    assert!(
        user.store_bytes().is_none(),
        "saved\n{}",
        user.store_describe()
    );

    user.unset("PCP_ALLOW_SERVER_SELF_CERT");
    let run = user.pty(&host, &[]);
    assert_refused_on_terminal(&run, "localhost", "expired");
    lacks(&run.transcript, "Do you want", "asked", &run.describe());
    assert!(
        user.store_bytes().is_none(),
        "saved\n{}",
        user.store_describe()
    );
}

// ---------------------------------------------------------------------------
// 10. A certificate revoked by a CRL next to the CA: refused

#[test]
fn revoked_certificate_refused() {
    let certs = Certs::new();
    let revoked = pmcd_serving(&certs, "revoked");
    let good = pmcd_serving(&certs, "server");

    // Without the CRL, revoked.crt is an ordinary valid certificate: the
    // refusals below come from the CRL.
    let user = User::trusting_ca(&certs);
    assert_load_values(&user.detached(&revoked.host_named("localhost")));

    let crl_dir = tempdir("pcp-secure-crl.");
    std::fs::copy(certs.path("ca.crt"), crl_dir.path().join("ca.pem")).unwrap();
    std::fs::copy(certs.path("ca.crl"), crl_dir.path().join("ca-crl.pem")).unwrap();
    let confs = [
        (
            "CRL in tls-ca-cert-file",
            tls_conf(&[("tls-ca-cert-file", &certs.path("ca-with-crl.pem"))]),
        ),
        (
            "CRL in tls-ca-cert-dir",
            tls_conf(&[("tls-ca-cert-dir", crl_dir.path().to_str().unwrap())]),
        ),
    ];
    for (what, conf) in confs {
        let mut user = User::new(&conf);
        let run = user.detached(&revoked.host_named("localhost"));
        assert_refused(&run, "localhost", "revoked");
        lacks(&run.stderr, "Do you want", "{what}: asked", &run.describe());

        user.set("PCP_ALLOW_SERVER_SELF_CERT", "1")
            .set("PCP_ALLOW_BAD_CERT_DOMAIN", "1");
        let run = user.detached(&revoked.host_named("localhost"));
        assert_refused(&run, "localhost", "revoked");
        lacks(&run.stderr, "Do you want", "{what}: asked", &run.describe());
        assert!(
            user.store_bytes().is_none(),
            "{what}: saved\n{}",
            user.store_describe()
        );

        user.unset("PCP_ALLOW_SERVER_SELF_CERT")
            .unset("PCP_ALLOW_BAD_CERT_DOMAIN");
        let run = user.pty(&revoked.host_named("localhost"), &[]);
        assert_refused_on_terminal(&run, "localhost", "revoked");
        lacks(
            &run.transcript,
            "Do you want",
            "{what}: asked",
            &run.describe(),
        );

        // The same CA and CRL accept the certificate that is not revoked.
        let run = user.detached(&good.host_named("localhost"));
        assert_load_values(&run);
        lacks(&run.stderr, "WARNING", "{what}", &run.describe());
    }
}

// ---------------------------------------------------------------------------
// 11. A store that does not parse: warning, never rewritten

#[test]
fn corrupt_store_warns_and_is_never_truncated() {
    let certs = Certs::new();
    let pmcd = pmcd_serving(&certs, "selfsigned");
    let host = pmcd.host_named("localhost");
    let pem = cert_pem(&certs, "selfsigned");
    let fp = cert_fingerprint(&certs, "selfsigned", "sha256");
    let pem2 = cert_pem(&certs, "selfsigned2");
    let fp2 = cert_fingerprint(&certs, "selfsigned2", "sha256");

    // Control: a hand-written store in the documented format is read (the
    // corrupt variants below differ from it only by their defect).
    let user = User::trusting_ca(&certs);
    user.write_store(entry_text("localhost", &fp, &pem).as_bytes());
    let run = user.detached(&host);
    assert_load_values(&run);
    for needle in ["WARNING", "pcp_secure: warning:"] {
        lacks(
            &run.stderr,
            needle,
            "a hand-written store was not accepted",
            &run.describe(),
        );
    }

    let mut broken_pem = pem.clone();
    let cut = broken_pem.find('\n').unwrap() + 1;
    broken_pem.replace_range(cut..cut + 12, "");
    let mut garbage = b"this is not a trust store\n\x00\x01\xfe\xff garbage \n".to_vec();
    garbage.extend(pseudo_random(300, 11));
    let variants: Vec<(&str, Vec<u8>)> = vec![
        ("binary garbage", garbage),
        (
            "garbage between entries",
            format!(
                "{}this line is garbage\n{}",
                entry_text("127.0.0.1", &fp2, &pem2),
                entry_text("other.example", &fp, &pem)
            )
            .into_bytes(),
        ),
        (
            "a broken PEM",
            entry_text("127.0.0.1", &fp2, &broken_pem).into_bytes(),
        ),
        (
            "a sha256 line that does not match its certificate",
            entry_text("127.0.0.1", &fp, &pem2).into_bytes(),
        ),
    ];
    for (what, bytes) in variants {
        let mut user = User::trusting_ca(&certs);
        user.set("PCP_ALLOW_SERVER_SELF_CERT", "1");
        user.write_store(&bytes);
        let file = user.store_file();
        let file_name = file.to_str().unwrap();
        for attempt in 1..=2 {
            let run = user.detached(&host);
            assert!(!run.timed_out, "{what}: hung\n{}", run.describe());
            let warned = run
                .stderr
                .lines()
                .map(str::trim_start)
                .any(|l| l.starts_with("pcp_secure: warning:") && l.contains(file_name));
            assert!(
                warned,
                "{what} (run {attempt}): no `pcp_secure: warning:` line naming {file_name}\n{}",
                run.describe()
            );
            assert_eq!(
                user.store_bytes().as_deref(),
                Some(&bytes[..]),
                "{what} (run {attempt}): the corrupt store was rewritten\n{}",
                run.describe()
            );
            assert_eq!(mode(&file), 0o600, "{what}");
        }
    }
}

// ---------------------------------------------------------------------------
// 12. Two clients saving into one store at the same time

#[test]
fn two_clients_saving_at_once() {
    let certs = Certs::new();
    let one = pmcd_serving(&certs, "selfsigned");
    let two = pmcd_serving(&certs, "selfsigned2");
    let fp1 = cert_fingerprint(&certs, "selfsigned", "sha256");
    let fp2 = cert_fingerprint(&certs, "selfsigned2", "sha256");

    for round in 1..=5 {
        let mut user = User::trusting_ca(&certs);
        user.set("PCP_ALLOW_SERVER_SELF_CERT", "yes");
        let (a, b) = std::thread::scope(|s| {
            let a = s.spawn(|| user.detached(&one.host_named("localhost")));
            let b = s.spawn(|| user.detached(&two.host()));
            (a.join().unwrap(), b.join().unwrap())
        });
        assert_load_values(&a);
        assert_load_values(&b);
        let store = checked_store(&user);
        assert_eq!(
            store.keys().cloned().collect::<Vec<_>>(),
            [key(&two, "127.0.0.1"), key(&one, "localhost")],
            "round {round}: an entry was lost\n{}\n{}\n{}",
            user.store_describe(),
            a.describe(),
            b.describe()
        );
        let (a, b) = (
            &store[&key(&one, "localhost")],
            &store[&key(&two, "127.0.0.1")],
        );
        assert_eq!(a.field("sha256"), fp1, "round {round}");
        assert_eq!(b.field("sha256"), fp2, "round {round}");
        assert_eq!(a.pem, cert_pem(&certs, "selfsigned"));
        assert_eq!(b.pem, cert_pem(&certs, "selfsigned2"));
        assert_eq!(mode(&user.store_file()), 0o600, "round {round}");
    }
}

// ---------------------------------------------------------------------------
// 13. A certificate from an issuer that is neither trusted nor sent, for
// another host name: both questions apply. PCP_ALLOW_SERVER_SELF_CERT alone
// does not also excuse the wrong name; with PCP_ALLOW_BAD_CERT_DOMAIN too it
// goes through and is saved for the host as typed.

#[test]
fn untrusted_issuer_and_wrong_name_need_both_permissions() {
    let certs = Certs::new();
    let pmcd = pmcd_serving(&certs, "wronghost");
    let mut user = User::new(&tls_conf(&[(
        "tls-ca-cert-file",
        &certs.path("other-ca.crt"),
    )]));
    let host = pmcd.host_named("localhost");

    user.set("PCP_ALLOW_SERVER_SELF_CERT", "1");
    let run = user.detached(&host);
    assert_refused(&run, "localhost", "does not match");
    assert!(
        run.stderr
            .contains("WARNING: The domain name localhost does not match")
            && run.stderr.contains("  other.example")
            && run.stderr.contains(&answered_no(DOMAIN_QUESTION)),
        "the name question must be asked (and answered no without a terminal)\n{}",
        run.describe()
    );
    assert!(
        !user.store_file().exists(),
        "nothing may be saved\n{}",
        user.store_describe()
    );

    user.set("PCP_ALLOW_BAD_CERT_DOMAIN", "1");
    let run = user.detached(&host);
    assert_load_values(&run);
    let store = checked_store(&user);
    assert_eq!(
        store[&key(&pmcd, "localhost")].pem,
        cert_pem(&certs, "wronghost")
    );
}

// ---------------------------------------------------------------------------
// 14. No answer or variable overrides a bad signature: a self-signed
// certificate whose signature was altered (pmcd still holds the key, so the
// TLS handshake itself is sound) is refused without a question, even with
// PCP_ALLOW_SERVER_SELF_CERT, and nothing is saved.

#[test]
fn tampered_signature_is_refused_without_a_question() {
    let certs = Certs::new();
    let dir = tempdir("pcp-secure-tampered.");
    let der_path = dir.path().join("selfsigned.der");
    let ok = Command::new("openssl")
        .args([
            "x509",
            "-in",
            &certs.path("selfsigned.crt"),
            "-outform",
            "DER",
            "-out",
        ])
        .arg(&der_path)
        .status()
        .unwrap()
        .success();
    assert!(ok, "openssl x509 -outform DER");
    let mut der = std::fs::read(&der_path).unwrap();
    // The signature value ends the certificate: change its last byte.
    let last = der.len() - 1;
    der[last] ^= 0x5a;
    std::fs::write(&der_path, &der).unwrap();
    let tampered = dir.path().join("tampered.crt");
    let ok = Command::new("openssl")
        .args(["x509", "-inform", "DER", "-in"])
        .arg(&der_path)
        .arg("-out")
        .arg(&tampered)
        .status()
        .unwrap()
        .success();
    assert!(ok, "openssl x509 -inform DER");

    let conf = tls_conf(&[
        ("tls-cert-file", tampered.to_str().unwrap()),
        ("tls-key-file", &certs.path("selfsigned.key")),
    ]);
    let pmcd = Pmcd::builder().preload_ours(true).tls_conf(&conf).start();
    let mut user = User::trusting_ca(&certs);
    user.set("PCP_ALLOW_SERVER_SELF_CERT", "1");
    let run = user.detached(&pmcd.host_named("localhost"));
    assert_refused(&run, "localhost", "signature");
    lacks(&run.stderr, "Do you want", "asked", &run.describe());
    assert!(
        !user.store_file().exists(),
        "saved\n{}",
        user.store_describe()
    );
}
