//! Shared harness for the end-to-end tests: runs Debian's real pmcd and
//! pminfo (optionally with libpcp_secure preloaded), makes certificates with
//! scripts/mkcerts, records connections through a loopback proxy and speaks
//! the first steps of the PCP handshake by hand.
//!
//! Every server started here listens on 127.0.0.1 or ::1 only and is stopped
//! when its guard is dropped.

#![allow(dead_code, clippy::new_without_default)]

use std::collections::HashSet;
use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use tempfile::TempDir;

pub mod hello;
pub mod nss;
pub mod nss_era;
pub mod pmproxy;
pub mod stall;

pub const PMCD: &str = "/usr/lib/pcp/bin/pmcd";
pub const PMINFO: &str = "/usr/bin/pminfo";
pub const PMNSMERGE: &str = "/usr/lib/pcp/bin/pmnsmerge";
pub const PMCONFIG: &str = "/usr/lib/pcp/bin/pmconfig";

/// How long pmcd may take to come up before the test gives up (polled: a
/// pmcd that is ready sooner is used at once; generous for a loaded machine).
pub const PMCD_START_LIMIT: Duration = Duration::from_secs(60);
/// How long to poll pmcd.log for a line, or pmcd for the end of its client
/// connections; only there to turn a wait that never ends into a failure.
pub const LOG_LIMIT: Duration = Duration::from_secs(30);
/// Upper bound for any client run; only there to turn a hang into a failure.
pub const CLIENT_LIMIT: Duration = Duration::from_secs(60);
/// Upper bound for a raw socket read; only there to detect hangs.
pub const RAW_LIMIT: Duration = Duration::from_secs(30);

// PDU types and flags (see the wire-protocol reference).
pub const PDU_ERROR: u32 = 0x7000;
pub const PDU_CREDS: u32 = 0x700c;
pub const PDU_FLAG_SECURE: u16 = 0x0001;
pub const PDU_FLAG_AUTH: u16 = 0x0004;
pub const PDU_FLAG_SECURE_ACK: u16 = 0x0010;
pub const PDU_FLAG_CERT_REQD: u16 = 0x0080;

// ---------------------------------------------------------------------------
// Locations and prerequisites

/// The cdylib under test: target/<profile>/libpcp_secure.so, found from this
/// test binary's location (target/<profile>/deps/<test>).
pub fn lib_path() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .unwrap_or_else(|| panic!("unexpected test binary location {}", exe.display()));
    // `cargo test` refreshes deps/libpcp_secure.so; `cargo build` also copies
    // it up to the profile directory. Take the newer of the two.
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let candidates = [
        profile_dir.join("libpcp_secure.so"),
        profile_dir.join("deps").join("libpcp_secure.so"),
    ];
    candidates
        .into_iter()
        .filter_map(|p| modified(&p).map(|t| (t, p)))
        .max_by_key(|(t, _)| *t)
        .map(|(_, p)| p)
        .unwrap_or_else(|| {
            panic!(
                "{}/libpcp_secure.so is missing: build the library first (cargo build, or cargo build --release for a release test run)",
                profile_dir.display()
            )
        })
}

/// The version of the installed PCP ("6.0.3" on Debian 12, "6.3.8" on 13,
/// "7.2.2" on sid), from `pmconfig -L PCP_VERSION`, read once. pmcd reports
/// it as pmcd.version, so it is also a string a TLS connection must never
/// carry in the clear.
pub fn pcp_version() -> &'static str {
    static VERSION: OnceLock<String> = OnceLock::new();
    VERSION.get_or_init(|| {
        let out = Command::new(PMCONFIG)
            .args(["-L", "PCP_VERSION"])
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run {PMCONFIG}: {e}: run scripts/install-deps (as root or with sudo)"
                )
            });
        let text = String::from_utf8_lossy(&out.stdout);
        let version = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("PCP_VERSION="))
            .map(str::to_string)
            .unwrap_or_default();
        assert!(
            out.status.success()
                && !version.is_empty()
                && version.chars().all(|c| c.is_ascii_digit() || c == '.'),
            "{PMCONFIG} -L PCP_VERSION printed no version ({}):\n{text}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        version
    })
}

/// Values of `keys` in the installed pcp.conf ($PCP_CONF, else
/// /etc/pcp.conf), in that order, for the keys that are set.
fn pcp_conf_dirs(keys: &[&str]) -> Vec<PathBuf> {
    let conf = std::env::var_os("PCP_CONF").unwrap_or_else(|| "/etc/pcp.conf".into());
    let text = read_lossy(Path::new(&conf));
    keys.iter()
        .filter_map(|k| {
            text.lines().find_map(|l| {
                let v = l.trim().strip_prefix(k)?.strip_prefix('=')?;
                let v = v.trim().trim_matches('"');
                (!v.is_empty()).then(|| PathBuf::from(v))
            })
        })
        .collect()
}

/// The first of `rel` under `dirs` that exists; panics naming every place
/// looked at.
fn first_existing(what: &str, dirs: &[PathBuf], rel: &str) -> String {
    let tried: Vec<PathBuf> = dirs.iter().map(|d| d.join(rel)).collect();
    tried
        .iter()
        .find(|p| p.exists())
        .map(|p| p.to_str().expect("UTF-8 PCP path").to_string())
        .unwrap_or_else(|| {
            panic!(
                "{what} not found (looked for {}): run scripts/install-deps (as root or with sudo)",
                tried
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
}

/// The DSO of PMDA `name` ("pmcd", "linux"): PMDA objects are not in the
/// same place in every PCP release and distribution, so pcp.conf's
/// PCP_PMDAS_DIR and PCP_PMDASADM_DIR are searched, then the usual places.
pub fn pmda_dso(name: &str) -> String {
    let mut dirs = pcp_conf_dirs(&["PCP_PMDAS_DIR", "PCP_PMDASADM_DIR"]);
    dirs.extend(
        [
            "/var/lib/pcp/pmdas",
            "/usr/lib/pcp/pmdas",
            "/usr/libexec/pcp/pmdas",
        ]
        .map(PathBuf::from),
    );
    first_existing(
        &format!("the {name} PMDA"),
        &dirs,
        &format!("{name}/pmda_{name}.so"),
    )
}

/// pmcd's own PMDA (pmda_pmcd.so).
pub fn pmda_pmcd() -> &'static str {
    static P: OnceLock<String> = OnceLock::new();
    P.get_or_init(|| pmda_dso("pmcd"))
}

/// The mmv PMDA (pmda_mmv.so), which serves the files of MMV
/// instrumentation (libpcp_secure's TLS metrics among them).
pub fn pmda_mmv() -> &'static str {
    static P: OnceLock<String> = OnceLock::new();
    P.get_or_init(|| pmda_dso("mmv"))
}

/// The linux PMDA (pmda_linux.so).
pub fn pmda_linux() -> &'static str {
    static P: OnceLock<String> = OnceLock::new();
    P.get_or_init(|| pmda_dso("linux"))
}

/// The PMNS fragment `root_NAME` that PCP ships for a PMDA ("pmcd",
/// "linux"), for pmnsmerge.
pub fn pmns_root(name: &str) -> String {
    let mut dirs: Vec<PathBuf> = ["/usr/lib/pcp/pmns", "/var/lib/pcp/pmns"]
        .map(PathBuf::from)
        .into();
    dirs.extend(
        pcp_conf_dirs(&["PCP_VAR_DIR"])
            .into_iter()
            .map(|d| d.join("pmns")),
    );
    first_existing(
        &format!("the PMNS of {name}"),
        &dirs,
        &format!("root_{name}"),
    )
}

/// Panics with advice when PCP is not installed.
pub fn ensure_deps() {
    for tool in [PMCD, PMINFO, PMNSMERGE, PMCONFIG, pmda_pmcd(), pmda_linux()] {
        if !Path::new(tool).exists() {
            panic!("{tool} is missing: run scripts/install-deps (as root or with sudo)");
        }
    }
    if !Path::new("/usr/bin/openssl").exists() {
        panic!("/usr/bin/openssl is missing: run scripts/install-deps");
    }
}

/// The repository's top directory (this crate lives in tests/support).
pub fn manifest_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

fn tempdir(prefix: &str) -> TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .expect("cannot create a temporary directory")
}

fn write_file(path: &Path, contents: &str) {
    std::fs::write(path, contents)
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}

/// Ends a child process: SIGTERM, then SIGKILL after `grace`; reaps it.
pub fn stop_child(child: &mut Option<Child>, grace: Duration) {
    let Some(mut child) = child.take() else {
        return;
    };
    if let Ok(None) = child.try_wait() {
        // SAFETY: kill takes no pointers; the pid is our own child's.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        let start = Instant::now();
        loop {
            match child.try_wait() {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) if start.elapsed() > grace => {
                    let _ = child.kill();
                    break;
                }
                Ok(None) => thread::sleep(Duration::from_millis(20)),
            }
        }
    }
    let _ = child.wait();
}

/// The uid and primary gid of user `name`.
pub fn user_ids(name: &str) -> Option<(u32, u32)> {
    let out = Command::new("getent")
        .args(["passwd", name])
        .output()
        .ok()?;
    let line = String::from_utf8_lossy(&out.stdout).to_string();
    let fields: Vec<&str> = line.trim().split(':').collect();
    Some((fields.get(2)?.parse().ok()?, fields.get(3)?.parse().ok()?))
}

/// The name of the user the tests run as.
pub fn user_name() -> String {
    let out = Command::new("id").arg("-un").output().expect("id runs");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn read_lossy(path: &Path) -> String {
    match std::fs::read(path) {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(_) => String::new(),
    }
}

/// A minimal environment for the PCP tools: PATH, HOME and the C locale.
fn base_env(cmd: &mut Command) {
    cmd.env_clear();
    for key in ["PATH", "HOME"] {
        if let Some(v) = std::env::var_os(key) {
            cmd.env(key, v);
        }
    }
    if std::env::var_os("PATH").is_none() {
        cmd.env("PATH", "/usr/local/bin:/usr/bin:/bin");
    }
    cmd.env("LC_ALL", "C");
}

/// Connections to the local `port` that its server has not closed yet
/// (ESTABLISHED, SYN_RECV and CLOSE_WAIT sockets whose local port it is,
/// from /proc/net/tcp and tcp6).
pub fn open_connections_on(port: u16) -> usize {
    let port = format!(":{port:04X}");
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|f| std::fs::read_to_string(f).ok())
        .map(|table| {
            table
                .lines()
                .skip(1)
                .filter(|l| {
                    let w: Vec<&str> = l.split_whitespace().collect();
                    w.len() > 3 && w[1].ends_with(&port) && matches!(w[3], "01" | "03" | "08")
                })
                .count()
        })
        .sum()
}

// ---------------------------------------------------------------------------
// Certificates

/// A fresh PKI made by scripts/mkcerts in its own temporary directory.
pub struct Certs {
    dir: TempDir,
}

impl Certs {
    pub fn new() -> Certs {
        Certs::with_sans(&[])
    }

    /// Extra subjectAltName items for server.crt ("DNS:x", "IP:y").
    pub fn with_sans(extra: &[&str]) -> Certs {
        let dir = tempdir("pcp-secure-certs.");
        let script = manifest_dir().join("scripts").join("mkcerts");
        let out = Command::new(&script)
            .arg(dir.path())
            .args(extra)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
        assert!(
            out.status.success(),
            "{} failed ({}):\n{}{}",
            script.display(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let certs = Certs { dir };
        for f in [
            "ca.crt",
            "ca.key",
            "server.crt",
            "server.key",
            "client.crt",
            "client.key",
            "other-ca.crt",
            "rogue-client.crt",
            "rogue-client.key",
            "wronghost.crt",
            "wronghost.key",
            "selfsigned.crt",
            "selfsigned.key",
            "server-chain.crt",
            "soon.crt",
            "soon.key",
            "client-soon.crt",
            "client-soon.key",
        ] {
            assert!(
                certs.dir.path().join(f).is_file(),
                "mkcerts did not make {f}"
            );
        }
        certs
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Path of one file made by mkcerts, as a string for tls.conf.
    pub fn path(&self, name: &str) -> String {
        let p = self.dir.path().join(name);
        assert!(p.is_file(), "{} does not exist", p.display());
        p.to_str().expect("UTF-8 temp path").to_string()
    }

    /// pmcd tls.conf serving `cert`/`key` (e.g. "server") and trusting ca.crt
    /// for client certificates.
    pub fn server_conf_with(&self, name: &str) -> String {
        tls_conf(&[
            ("tls-cert-file", &self.path(&format!("{name}.crt"))),
            ("tls-key-file", &self.path(&format!("{name}.key"))),
            ("tls-ca-cert-file", &self.path("ca.crt")),
        ])
    }

    /// pmcd tls.conf with server.crt/server.key and ca.crt.
    pub fn server_conf(&self) -> String {
        self.server_conf_with("server")
    }

    /// Client tls.conf that trusts ca.crt and has no certificate of its own.
    pub fn client_conf(&self) -> String {
        tls_conf(&[("tls-ca-cert-file", &self.path("ca.crt"))])
    }

    /// Client tls.conf that trusts ca.crt and presents `name`.crt/.key
    /// ("client" or "rogue-client").
    pub fn client_conf_with_cert(&self, name: &str) -> String {
        tls_conf(&[
            ("tls-ca-cert-file", &self.path("ca.crt")),
            ("tls-client-cert-file", &self.path(&format!("{name}.crt"))),
            ("tls-client-key-file", &self.path(&format!("{name}.key"))),
        ])
    }
}

/// Replaces `to` with a copy of `from` as certbot and friends do: written
/// beside it, then renamed over it (a reader never sees half a file).
pub fn renew_file(from: &str, to: &Path) {
    let tmp = to.with_extension("new");
    std::fs::copy(from, &tmp).unwrap_or_else(|e| panic!("cannot copy {from}: {e}"));
    std::fs::rename(&tmp, to)
        .unwrap_or_else(|e| panic!("cannot rename over {}: {e}", to.display()));
}

/// Builds tls.conf text from key/value pairs.
pub fn tls_conf(pairs: &[(&str, &str)]) -> String {
    let mut s = String::from("# written by the pcp_secure end-to-end tests\n");
    for (k, v) in pairs {
        let _ = writeln!(s, "{k} = {v}");
    }
    s
}

// ---------------------------------------------------------------------------
// Running commands with an upper time bound

/// Result of a finished (or killed) command.
pub struct Run {
    pub cmd: String,
    pub status: Option<ExitStatus>,
    pub stdout: String,
    pub stderr: String,
    pub timed_out: bool,
}

impl Run {
    /// stdout and stderr together.
    pub fn text(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }

    pub fn success(&self) -> bool {
        !self.timed_out && self.status.map(|s| s.success()).unwrap_or(false)
    }

    pub fn describe(&self) -> String {
        format!(
            "command: {}\nstatus: {}{}\n--- stdout ---\n{}--- stderr ---\n{}--------------",
            self.cmd,
            match self.status {
                Some(s) => s.to_string(),
                None => "none".into(),
            },
            if self.timed_out {
                " (KILLED: no exit within the time limit)"
            } else {
                ""
            },
            self.stdout,
            self.stderr
        )
    }

    /// Asserts a zero exit status.
    pub fn assert_ok(&self) -> &Self {
        assert!(self.success(), "expected success\n{}", self.describe());
        self
    }

    /// Asserts that the command ended by itself with a failure status.
    pub fn assert_failed(&self) -> &Self {
        assert!(!self.timed_out, "command hung\n{}", self.describe());
        assert!(!self.success(), "expected failure\n{}", self.describe());
        self
    }

    /// Lines of stderr that libpcp_secure wrote.
    pub fn pcp_secure_lines(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter(|l| l.trim_start().starts_with("pcp_secure:"))
            .collect()
    }

    /// The value line of `metric` in `pminfo -f` output ("1", "\"6.0.3\"").
    pub fn value_of(&self, metric: &str) -> Option<String> {
        metric_value(&self.stdout, metric)
    }
}

/// Finds the single "value X" line under `metric` in pminfo -f output.
pub fn metric_value(stdout: &str, metric: &str) -> Option<String> {
    let mut lines = stdout.lines();
    while let Some(l) = lines.next() {
        if l.trim() == metric {
            for v in lines.by_ref() {
                let t = v.trim();
                if let Some(rest) = t.strip_prefix("value ") {
                    return Some(rest.trim().to_string());
                }
                if t.is_empty() {
                    break;
                }
            }
            return None;
        }
    }
    None
}

fn describe_cmd(cmd: &Command) -> String {
    let mut s = String::new();
    for (k, v) in cmd.get_envs() {
        if let Some(v) = v {
            let _ = write!(s, "{}={} ", k.to_string_lossy(), v.to_string_lossy());
        }
    }
    s.push_str(&cmd.get_program().to_string_lossy());
    for a in cmd.get_args() {
        let _ = write!(s, " {}", a.to_string_lossy());
    }
    s
}

/// Runs `cmd` with stdin from /dev/null, killing it after `limit`.
pub fn run_with_limit(cmd: Command, limit: Duration) -> Run {
    run_with_input(cmd, None, limit)
}

/// Runs `cmd` with `input` on stdin (or /dev/null), killing it after
/// `limit` (so that a tool waiting for the keyboard fails the test instead
/// of hanging it).
pub fn run_with_input(mut cmd: Command, input: Option<&[u8]>, limit: Duration) -> Run {
    let desc = describe_cmd(&cmd);
    cmd.stdin(if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {desc}: {e}"));
    if let Some(bytes) = input {
        let mut stdin = child.stdin.take().unwrap();
        let bytes = bytes.to_vec();
        thread::spawn(move || {
            let _ = std::io::Write::write_all(&mut stdin, &bytes);
        });
    }
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let t_out = thread::spawn(move || {
        let mut b = Vec::new();
        let _ = out.read_to_end(&mut b);
        b
    });
    let t_err = thread::spawn(move || {
        let mut b = Vec::new();
        let _ = err.read_to_end(&mut b);
        b
    });
    let start = Instant::now();
    let mut timed_out = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) if start.elapsed() > limit => {
                timed_out = true;
                let _ = child.kill();
                break child.wait().ok();
            }
            Ok(None) => thread::sleep(Duration::from_millis(20)),
            Err(e) => panic!("waiting for {desc}: {e}"),
        }
    };
    let stdout = String::from_utf8_lossy(&t_out.join().unwrap_or_default()).into_owned();
    let stderr = String::from_utf8_lossy(&t_err.join().unwrap_or_default()).into_owned();
    Run {
        cmd: desc,
        status,
        stdout,
        stderr,
        timed_out,
    }
}

/// Runs /usr/bin/pminfo with `args` in a clean environment (PATH, HOME,
/// LC_ALL=C plus `env`), stdin from /dev/null, killed after 60 s. Unless
/// `env` sets PCP_TLSCONF_PATH, an empty client tls.conf is used so that
/// /etc/pcp/tls.conf never matters. With `preload_ours`, libpcp_secure is
/// LD_PRELOADed.
pub fn pminfo(args: &[&str], env: &[(&str, &str)], preload_ours: bool) -> Run {
    pcp_client(PMINFO, args, env, preload_ours)
}

/// Runs `program` (a libpcp client: pminfo, or python3 with the PMAPI)
/// with `args` as [`pminfo`] runs pminfo: clean environment, `env` added,
/// an empty tls.conf unless `env` names one, no questions, a trust store of
/// its own, libpcp_secure preloaded with `preload_ours`, killed after 60 s.
pub fn pcp_client(program: &str, args: &[&str], env: &[(&str, &str)], preload_ours: bool) -> Run {
    let scratch = tempdir("pcp-secure-pminfo.");
    let mut cmd = Command::new(program);
    base_env(&mut cmd);
    if !env.iter().any(|(k, _)| *k == "PCP_TLSCONF_PATH") {
        let conf = scratch.path().join("tls.conf");
        write_file(&conf, "");
        cmd.env("PCP_TLSCONF_PATH", &conf);
    }
    // Never ask the person running the tests, never touch their ~/.pcp:
    // tests about the trust prompt and store set these themselves.
    cmd.env("PCP_CONSOLE", "none");
    cmd.env("PCP_SECURE_DB_PATH", scratch.path().join("trust"));
    for (k, v) in env {
        cmd.env(k, v);
    }
    if preload_ours {
        cmd.env("LD_PRELOAD", lib_path());
    }
    cmd.args(args);
    let run = run_with_limit(cmd, CLIENT_LIMIT);
    if preload_ours && run.stderr.contains("cannot be preloaded") {
        panic!(
            "the dynamic loader did not preload libpcp_secure\n{}",
            run.describe()
        );
    }
    drop(scratch);
    run
}

/// A pminfo client with its own tls.conf.
pub struct Client {
    dir: TempDir,
    preload_ours: bool,
    secure: Option<String>,
    env: Vec<(String, String)>,
}

impl Client {
    /// A client whose tls.conf holds `conf` (use "" for an empty one).
    pub fn new(conf: &str) -> Client {
        let dir = tempdir("pcp-secure-client.");
        write_file(&dir.path().join("tls.conf"), conf);
        Client {
            dir,
            preload_ours: false,
            secure: None,
            env: Vec::new(),
        }
    }

    /// A client with libpcp_secure and PCP_SECURE_SOCKETS=enforce whose
    /// tls.conf trusts only the CA (or self-signed certificate) in `ca`.
    pub fn ours_trusting(ca: &str) -> Client {
        Client::new(&tls_conf(&[("tls-ca-cert-file", ca)]))
            .ours()
            .secure("enforce")
    }

    /// LD_PRELOAD libpcp_secure into pminfo.
    pub fn ours(mut self) -> Self {
        self.preload_ours = true;
        self
    }

    /// Stock libpcp only.
    pub fn stock(mut self) -> Self {
        self.preload_ours = false;
        self
    }

    /// PCP_SECURE_SOCKETS value ("enforce", "relaxed").
    pub fn secure(mut self, mode: &str) -> Self {
        self.secure = Some(mode.to_string());
        self
    }

    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.to_string(), v.to_string()));
        self
    }

    pub fn conf_path(&self) -> PathBuf {
        self.dir.path().join("tls.conf")
    }

    /// `pminfo -h HOST -f METRICS...`
    pub fn fetch(&self, host: &str, metrics: &[&str]) -> Run {
        let mut args = vec!["-h", host, "-f"];
        args.extend_from_slice(metrics);
        self.pminfo(&args)
    }

    pub fn pminfo(&self, args: &[&str]) -> Run {
        self.run(PMINFO, args)
    }

    /// Runs another libpcp client `program` with this client's tls.conf,
    /// PCP_SECURE_SOCKETS, environment and preload.
    pub fn run(&self, program: &str, args: &[&str]) -> Run {
        let conf = self.conf_path();
        let conf = conf.to_str().unwrap().to_string();
        let mut env: Vec<(&str, &str)> = vec![("PCP_TLSCONF_PATH", conf.as_str())];
        if let Some(s) = &self.secure {
            env.push(("PCP_SECURE_SOCKETS", s.as_str()));
        }
        for (k, v) in &self.env {
            env.push((k.as_str(), v.as_str()));
        }
        pcp_client(program, args, &env, self.preload_ours)
    }
}

/// Asserts that a `pminfo -f kernel.all.load` run printed the three load
/// averages.
pub fn assert_load_values(run: &Run) {
    run.assert_ok();
    let out = &run.stdout;
    assert!(
        out.contains("kernel.all.load"),
        "no kernel.all.load in output\n{}",
        run.describe()
    );
    for inst in ["1 minute", "5 minute", "15 minute"] {
        let found = out
            .lines()
            .any(|l| l.contains(&format!("\"{inst}\"]")) && l.contains(" value "));
        assert!(found, "no value for instance {inst}\n{}", run.describe());
    }
}

// ---------------------------------------------------------------------------
// Private pmcd

/// Whether ::1 can be bound here (some containers have no IPv6 loopback).
pub fn ipv6_available() -> bool {
    TcpListener::bind((Ipv6Addr::LOCALHOST, 0)).is_ok()
}

fn ports_in_use() -> &'static Mutex<HashSet<u16>> {
    static USED: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    USED.get_or_init(|| Mutex::new(HashSet::new()))
}

/// A port that was free a moment ago and was not handed out before in this
/// process. pmcd may still lose a race for it; `Pmcd::start` then retries.
pub fn free_port(ipv6: bool) -> u16 {
    loop {
        let listener = if ipv6 {
            TcpListener::bind((Ipv6Addr::LOCALHOST, 0))
        } else {
            TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        }
        .expect("cannot bind an ephemeral loopback port");
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        if ports_in_use().lock().unwrap().insert(port) {
            return port;
        }
    }
}

/// How to start a private pmcd.
#[derive(Clone, Default)]
pub struct PmcdBuilder {
    preload_ours: bool,
    tls_conf: Option<String>,
    cert_required: bool,
    extra_env: Vec<(String, String)>,
    ipv6: bool,
    mmv: bool,
    user: Option<String>,
}

impl PmcdBuilder {
    /// Also run the mmv PMDA, serving the MMV files of pmcd's private
    /// PCP_TMP_DIR (libpcp_secure's TLS metrics: `mmv.pcp_secure.pmcd`).
    pub fn mmv(mut self, yes: bool) -> Self {
        self.mmv = yes;
        self
    }
    /// Run pmcd as `user` (through `setpriv`, from the start, as a pmcd
    /// started by root is once it dropped to its -U user): its directory
    /// is given to that user; the tests must run as root.
    pub fn run_as(mut self, user: &str) -> Self {
        self.user = Some(user.to_string());
        self
    }
    /// LD_PRELOAD libpcp_secure into pmcd.
    pub fn preload_ours(mut self, yes: bool) -> Self {
        self.preload_ours = yes;
        self
    }
    /// Contents of pmcd's tls.conf (an empty file when not given).
    pub fn tls_conf(mut self, conf: &str) -> Self {
        self.tls_conf = Some(conf.to_string());
        self
    }
    /// pmcd -Q.
    pub fn cert_required(mut self, yes: bool) -> Self {
        self.cert_required = yes;
        self
    }
    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.extra_env.push((k.to_string(), v.to_string()));
        self
    }
    /// Listen on ::1 instead of 127.0.0.1.
    pub fn ipv6(mut self, yes: bool) -> Self {
        self.ipv6 = yes;
        self
    }
    pub fn start(self) -> Pmcd {
        Pmcd::start(self)
    }
}

/// A running private pmcd; dropping it stops it (SIGTERM, then SIGKILL).
pub struct Pmcd {
    child: Option<Child>,
    dir: TempDir,
    port: u16,
    opts: PmcdBuilder,
}

enum Startup {
    Ready,
    PortTaken(String),
    Failed(String),
}

impl Pmcd {
    pub fn builder() -> PmcdBuilder {
        PmcdBuilder::default()
    }

    fn start(opts: PmcdBuilder) -> Pmcd {
        ensure_deps();
        let dir = tempdir("pcp-secure-pmcd.");
        let root = dir.path().join("root");
        let mut merge = Command::new(PMNSMERGE);
        merge
            .arg("-a")
            .arg(pmns_root("pmcd"))
            .arg(pmns_root("linux"));
        if opts.mmv {
            merge.arg(pmns_root("mmv"));
        }
        let merge = merge
            .arg(&root)
            .stdin(Stdio::null())
            .output()
            .expect("cannot run pmnsmerge");
        assert!(
            merge.status.success(),
            "pmnsmerge failed: {}{}",
            String::from_utf8_lossy(&merge.stdout),
            String::from_utf8_lossy(&merge.stderr)
        );
        let mut pmdas = format!(
            "pmcd 2 dso pmcd_init {}\nlinux 60 dso linux_init {}\n",
            pmda_pmcd(),
            pmda_linux()
        );
        if opts.mmv {
            pmdas.push_str(&format!("mmv 70 dso mmv_init {}\n", pmda_mmv()));
        }
        write_file(&dir.path().join("pmcd.conf"), &pmdas);
        // A PCP_TMP_DIR of its own, so that MMV files (libpcp_secure's TLS
        // metrics) never go to the system's.
        std::fs::create_dir_all(dir.path().join("tmp").join("mmv")).unwrap();
        write_file(
            &dir.path().join("tls.conf"),
            opts.tls_conf.as_deref().unwrap_or(""),
        );
        if let Some(user) = &opts.user {
            let (uid, gid) =
                user_ids(user).unwrap_or_else(|| panic!("no user \"{user}\" to run pmcd as"));
            for entry in std::fs::read_dir(dir.path()).unwrap().flatten() {
                std::os::unix::fs::chown(entry.path(), Some(uid), Some(gid)).unwrap();
            }
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).unwrap();
            // Its PCP_TMP_DIR's mmv directory, where the TLS metrics go.
            std::os::unix::fs::chown(dir.path().join("tmp").join("mmv"), Some(uid), Some(gid))
                .unwrap();
        }

        let mut pmcd = Pmcd {
            child: None,
            dir,
            port: 0,
            opts,
        };
        let mut attempts = Vec::new();
        for _ in 0..6 {
            pmcd.port = free_port(pmcd.opts.ipv6);
            pmcd.spawn();
            match pmcd.wait_ready() {
                Startup::Ready => {
                    pmcd.check_preload();
                    return pmcd;
                }
                Startup::PortTaken(log) => {
                    attempts.push(format!("port {} was taken:\n{log}", pmcd.port));
                    pmcd.stop();
                }
                Startup::Failed(why) => {
                    pmcd.stop();
                    panic!("pmcd did not start: {why}");
                }
            }
        }
        panic!(
            "pmcd did not start after several ports:\n{}",
            attempts.join("\n")
        );
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn spawn(&mut self) {
        for f in ["pmcd.log", "pmcd.stdout", "pmcd.stderr", "pmcd.socket"] {
            let _ = std::fs::remove_file(self.file(f));
        }
        let mut cmd = match &self.opts.user {
            Some(user) => {
                let mut cmd = Command::new("/usr/bin/setpriv");
                cmd.args([
                    "--reuid",
                    user,
                    "--regid",
                    user,
                    "--init-groups",
                    "--",
                    PMCD,
                ]);
                cmd
            }
            None => Command::new(PMCD),
        };
        base_env(&mut cmd);
        cmd.env("PCP_TLSCONF_PATH", self.file("tls.conf"));
        cmd.env("PCP_TMP_DIR", self.file("tmp"));
        if self.opts.preload_ours {
            cmd.env("LD_PRELOAD", lib_path());
        }
        for (k, v) in &self.opts.extra_env {
            cmd.env(k, v);
        }
        cmd.args(["-f", "-A", "-p", &self.port.to_string(), "-i"])
            .arg(if self.opts.ipv6 { "::1" } else { "127.0.0.1" })
            .arg("-c")
            .arg(self.file("pmcd.conf"))
            .arg("-n")
            .arg(self.file("root"))
            .arg("-s")
            .arg(self.file("pmcd.socket"))
            .arg("-l")
            .arg(self.file("pmcd.log"))
            .arg("-x")
            .arg(self.file("pmcd.fatal"));
        if self.opts.cert_required {
            cmd.arg("-Q");
        }
        let stdout = std::fs::File::create(self.file("pmcd.stdout")).unwrap();
        let stderr = std::fs::File::create(self.file("pmcd.stderr")).unwrap();
        cmd.stdin(Stdio::null()).stdout(stdout).stderr(stderr);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {PMCD}: {e}"));
        self.child = Some(child);
    }

    /// The row for our port in pmcd's "request port(s)" table, if printed.
    fn port_row(&self, log: &str) -> Option<bool> {
        let family = if self.opts.ipv6 { "ipv6" } else { "inet" };
        let port = self.port.to_string();
        let table = log.split("pmcd request port(s):").nth(1)?;
        for line in table.lines() {
            let w: Vec<&str> = line.split_whitespace().collect();
            if w.len() >= 4 && w[2] == port && w[3] == family {
                return Some(w[0] == "ok");
            }
        }
        None
    }

    fn wait_ready(&mut self) -> Startup {
        let start = Instant::now();
        while start.elapsed() < PMCD_START_LIMIT {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                let log = self.all_output();
                if log.contains("Address already in use") {
                    return Startup::PortTaken(log);
                }
                return Startup::Failed(format!("pmcd exited with {status}\n{log}"));
            }
            let log = self.log();
            match self.port_row(&log) {
                Some(false) => {
                    let log = self.all_output();
                    if log.contains("Address already in use") {
                        return Startup::PortTaken(log);
                    }
                    return Startup::Failed(format!(
                        "pmcd could not listen on port {}\n{log}",
                        self.port
                    ));
                }
                Some(true) => {
                    // Listening; a challenge PDU proves the main loop runs.
                    if let Ok(mut raw) =
                        RawClient::connect_timeout(self.addr(), Duration::from_secs(10))
                    {
                        if raw.read_challenge().is_ok() {
                            return Startup::Ready;
                        }
                    }
                }
                None => {}
            }
            thread::sleep(Duration::from_millis(50));
        }
        Startup::Failed(format!(
            "pmcd was not ready after {:?}\n{}",
            PMCD_START_LIMIT,
            self.all_output()
        ))
    }

    fn all_output(&self) -> String {
        format!(
            "--- pmcd.log ---\n{}--- pmcd stdout ---\n{}--- pmcd stderr ---\n{}--- pmcd.fatal ---\n{}----------------",
            self.log(),
            read_lossy(&self.file("pmcd.stdout")),
            read_lossy(&self.file("pmcd.stderr")),
            read_lossy(&self.file("pmcd.fatal")),
        )
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn addr(&self) -> SocketAddr {
        if self.opts.ipv6 {
            SocketAddr::from((Ipv6Addr::LOCALHOST, self.port))
        } else {
            SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
        }
    }

    /// Host spec for pminfo -h: "127.0.0.1:PORT" or "[::1]:PORT".
    pub fn host(&self) -> String {
        if self.opts.ipv6 {
            format!("[::1]:{}", self.port)
        } else {
            format!("127.0.0.1:{}", self.port)
        }
    }

    /// Host spec with another name for the same address ("localhost:PORT").
    pub fn host_named(&self, name: &str) -> String {
        format!("{name}:{}", self.port)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// pmcd's private PCP_TMP_DIR/mmv, where MMV files are made.
    pub fn mmv_dir(&self) -> PathBuf {
        self.file("tmp").join("mmv")
    }

    /// `pminfo -f`, `-t` and the like of `names` (e.g.
    /// "mmv.pcp_secure.pmcd") from this pmcd, by a stock pminfo over a plain
    /// connection (so that reading the TLS metrics makes no TLS handshake).
    pub fn pminfo_plain(&self, args: &[&str]) -> Run {
        let host = self.host();
        let mut all = vec!["-h", host.as_str()];
        all.extend_from_slice(args);
        pminfo(&all, &[], false)
    }

    /// pmcd.log so far.
    pub fn log(&self) -> String {
        read_lossy(&self.file("pmcd.log"))
    }

    /// Lines of pmcd.log written by libpcp_secure.
    pub fn pcp_secure_lines(&self) -> Vec<String> {
        self.log()
            .lines()
            .filter(|l| l.trim_start().starts_with("pcp_secure:"))
            .map(str::to_string)
            .collect()
    }

    /// Polls pmcd.log until `pred` holds for it or `limit` passes.
    pub fn wait_for_log(&self, limit: Duration, pred: impl Fn(&str) -> bool) -> bool {
        let start = Instant::now();
        loop {
            if pred(&self.log()) {
                return true;
            }
            if start.elapsed() > limit {
                return false;
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// Connections to pmcd's port that pmcd has not closed yet: those it is
    /// serving or has still to accept (ESTABLISHED, SYN_RECV) and those whose
    /// client has left while pmcd still holds them (CLOSE_WAIT), from
    /// /proc/net/tcp and tcp6 (sockets whose local port is pmcd's).
    pub fn open_connections(&self) -> usize {
        open_connections_on(self.port)
    }

    /// Polls until pmcd has closed every client connection (its side of
    /// each is gone: it has seen each client's end and dealt with it, so
    /// whatever it logs about one is in pmcd.log), or `limit` passes.
    pub fn wait_until_idle(&self, limit: Duration) -> bool {
        let start = Instant::now();
        loop {
            if self.open_connections() == 0 {
                return true;
            }
            if start.elapsed() > limit {
                return false;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// The running pmcd's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("pmcd not running").id()
    }

    /// Whether libpcp_secure.so is mapped into the running pmcd.
    pub fn has_our_library(&self) -> bool {
        let pid = self.child.as_ref().expect("pmcd not running").id();
        let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap_or_default();
        maps.lines().any(|l| l.ends_with("/libpcp_secure.so"))
    }

    /// Makes sure LD_PRELOAD took effect exactly when asked for: the
    /// dynamic loader only warns when it cannot preload a library.
    fn check_preload(&self) {
        let loaded = self.has_our_library();
        if loaded != self.opts.preload_ours {
            panic!(
                "libpcp_secure.so is {} pmcd although preload_ours = {}\n{}",
                if loaded {
                    "mapped into"
                } else {
                    "not mapped into"
                },
                self.opts.preload_ours,
                self.all_output()
            );
        }
    }

    /// True while the pmcd process has not exited.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Asserts that pmcd is still running, showing its log otherwise.
    pub fn assert_running(&mut self) {
        if !self.is_running() {
            panic!("pmcd is no longer running\n{}", self.all_output());
        }
    }

    fn stop(&mut self) {
        stop_child(&mut self.child, Duration::from_secs(5));
    }
}

impl Drop for Pmcd {
    fn drop(&mut self) {
        self.stop();
        if thread::panicking() {
            eprintln!(
                "pmcd on port {} (dir {}):\n{}",
                self.port,
                self.dir.path().display(),
                self.all_output()
            );
        }
    }
}

// ---------------------------------------------------------------------------
// Recording proxy

/// Bytes seen on one proxied connection.
#[derive(Clone, Debug, Default)]
pub struct Recording {
    /// Client to server.
    pub c2s: Vec<u8>,
    /// Server to client.
    pub s2c: Vec<u8>,
}

struct ConnState {
    c2s: Mutex<Vec<u8>>,
    s2c: Mutex<Vec<u8>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    sockets: Vec<TcpStream>,
}

/// A loopback TCP proxy to a pmcd that records both directions of every
/// connection made through it.
pub struct Recorder {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<Arc<ConnState>>>>,
    acceptor: Option<JoinHandle<()>>,
}

fn pump(mut from: TcpStream, mut to: TcpStream, log: Arc<ConnState>, c2s: bool) {
    let mut buf = vec![0u8; 65536];
    let mut forward = true;
    loop {
        match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                let rec = if c2s { &log.c2s } else { &log.s2c };
                rec.lock().unwrap().extend_from_slice(&buf[..n]);
                if forward && to.write_all(&buf[..n]).is_err() {
                    forward = false;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

impl Recorder {
    /// Starts a proxy on the loopback address of the same family as `target`.
    pub fn start(target: SocketAddr) -> Recorder {
        let listener = if target.is_ipv6() {
            TcpListener::bind((Ipv6Addr::LOCALHOST, 0))
        } else {
            TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        }
        .expect("recorder bind");
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let conns: Arc<Mutex<Vec<Arc<ConnState>>>> = Arc::new(Mutex::new(Vec::new()));
        let acceptor = {
            let stop = stop.clone();
            let conns = conns.clone();
            thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((client, _)) => {
                            client.set_nonblocking(false).unwrap();
                            let server = match TcpStream::connect(target) {
                                Ok(s) => s,
                                Err(_) => continue, // client sees EOF
                            };
                            let state = Arc::new(ConnState {
                                c2s: Mutex::new(Vec::new()),
                                s2c: Mutex::new(Vec::new()),
                                threads: Mutex::new(Vec::new()),
                                sockets: vec![
                                    client.try_clone().unwrap(),
                                    server.try_clone().unwrap(),
                                ],
                            });
                            let a = {
                                let (c, s, st) = (
                                    client.try_clone().unwrap(),
                                    server.try_clone().unwrap(),
                                    state.clone(),
                                );
                                thread::spawn(move || pump(c, s, st, true))
                            };
                            let b = {
                                let st = state.clone();
                                thread::spawn(move || pump(server, client, st, false))
                            };
                            state.threads.lock().unwrap().extend([a, b]);
                            conns.lock().unwrap().push(state);
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            thread::sleep(Duration::from_millis(10))
                        }
                        Err(_) => thread::sleep(Duration::from_millis(10)),
                    }
                }
            })
        };
        Recorder {
            addr,
            stop,
            conns,
            acceptor: Some(acceptor),
        }
    }

    /// Host spec for pminfo -h pointing at the proxy.
    pub fn host(&self) -> String {
        match self.addr {
            SocketAddr::V4(a) => format!("127.0.0.1:{}", a.port()),
            SocketAddr::V6(a) => format!("[::1]:{}", a.port()),
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Waits until `n` connections have been made and all of them are
    /// closed in both directions, then returns their recordings.
    pub fn finished(&self, n: usize) -> Vec<Recording> {
        let start = Instant::now();
        loop {
            let done = {
                let conns = self.conns.lock().unwrap();
                conns.len() >= n
                    && conns
                        .iter()
                        .all(|c| c.threads.lock().unwrap().iter().all(|t| t.is_finished()))
            };
            if done {
                break;
            }
            if start.elapsed() > RAW_LIMIT {
                panic!(
                    "recorder: expected {n} finished connection(s), have {} after {:?}",
                    self.conns.lock().unwrap().len(),
                    RAW_LIMIT
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
        self.conns
            .lock()
            .unwrap()
            .iter()
            .map(|c| Recording {
                c2s: c.c2s.lock().unwrap().clone(),
                s2c: c.s2c.lock().unwrap().clone(),
            })
            .collect()
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.acceptor.take() {
            let _ = t.join();
        }
        // A test that failed while holding a lock poisoned it: clean up all
        // the same (a second panic here would abort the whole test binary
        // and leave its servers running).
        let conns = std::mem::take(&mut *self.conns.lock().unwrap_or_else(|p| p.into_inner()));
        for c in conns {
            for s in &c.sockets {
                let _ = s.shutdown(Shutdown::Both);
            }
            for t in c
                .threads
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .drain(..)
            {
                let _ = t.join();
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Analysis of recorded streams

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

/// The plaintext start of a connection: challenge, creds and (for TLS) ack.
#[derive(Debug)]
pub struct Opening {
    /// Feature bits pmcd advertised in its challenge.
    pub features: u16,
    /// Flags the client sent in its CVERSION credential.
    pub flags: u16,
    /// Status in pmcd's secure ack, when the client asked for TLS.
    pub ack: Option<i32>,
    /// Offsets where the rest of each direction starts.
    pub c2s_rest: usize,
    pub s2c_rest: usize,
}

/// Checks the 20-byte challenge, the 20-byte creds PDU and, when the client
/// asked for SECURE|SECURE_ACK, the 16-byte ack.
pub fn parse_opening(rec: &Recording) -> Result<Opening, String> {
    let (c, s) = (&rec.c2s, &rec.s2c);
    if s.len() < 20 {
        return Err(format!("server sent only {} bytes, no challenge", s.len()));
    }
    if be32(&s[0..]) != 20 || be32(&s[4..]) != PDU_ERROR {
        return Err(format!(
            "first server PDU is not a 20-byte PDU_ERROR challenge: {:02x?}",
            &s[..20]
        ));
    }
    let features = u16::from_be_bytes([s[18], s[19]]);
    if c.len() < 20 {
        return Err(format!("client sent only {} bytes, no creds", c.len()));
    }
    if be32(&c[0..]) != 20 || be32(&c[4..]) != PDU_CREDS || be32(&c[12..]) != 1 || c[16] != 1 {
        return Err(format!(
            "first client PDU is not a one-credential PDU_CREDS: {:02x?}",
            &c[..20]
        ));
    }
    let flags = u16::from_be_bytes([c[18], c[19]]);
    let secure = flags & PDU_FLAG_SECURE != 0 && flags & PDU_FLAG_SECURE_ACK != 0;
    let (ack, s2c_rest) = if secure {
        if s.len() < 36 {
            return Err(format!(
                "server sent {} bytes, no 16-byte secure ack after the challenge",
                s.len()
            ));
        }
        let a = &s[20..36];
        if be32(a) != 16 || be32(&a[4..]) != PDU_ERROR {
            return Err(format!(
                "server PDU after the challenge is not a 16-byte ack: {a:02x?}"
            ));
        }
        (Some(be32(&a[12..]) as i32), 36)
    } else {
        (None, 20)
    };
    Ok(Opening {
        features,
        flags,
        ack,
        c2s_rest: 20,
        s2c_rest,
    })
}

/// Splits `bytes` into TLS records: (content type, length). Fails unless
/// every header is plausible and the records tile the stream exactly.
pub fn tls_records(bytes: &[u8]) -> Result<Vec<(u8, usize)>, String> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes.len() - i < 5 {
            return Err(format!(
                "{} trailing bytes at offset {i} do not form a record header",
                bytes.len() - i
            ));
        }
        let h = &bytes[i..i + 5];
        let len = u16::from_be_bytes([h[3], h[4]]) as usize;
        if !(0x14..=0x17).contains(&h[0]) {
            return Err(format!(
                "record at offset {i}: content type {:#04x} is not TLS ({h:02x?})",
                h[0]
            ));
        }
        if h[1] != 3 || !(1..=3).contains(&h[2]) {
            return Err(format!(
                "record at offset {i}: version {:02x} {:02x} is not TLS",
                h[1], h[2]
            ));
        }
        if len > 16384 + 2048 {
            return Err(format!("record at offset {i}: length {len} is too large"));
        }
        if i + 5 + len > bytes.len() {
            return Err(format!(
                "record at offset {i} claims {len} bytes but only {} follow",
                bytes.len() - i - 5
            ));
        }
        out.push((h[0], len));
        i += 5 + len;
    }
    Ok(out)
}

/// Splits `bytes` into PCP PDUs: (type, length). Fails unless every header
/// is plausible and the PDUs tile the stream exactly.
pub fn pcp_pdus(bytes: &[u8]) -> Result<Vec<(u32, usize)>, String> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes.len() - i < 12 {
            return Err(format!(
                "{} trailing bytes at offset {i} do not form a PDU header",
                bytes.len() - i
            ));
        }
        let len = be32(&bytes[i..]) as usize;
        let ty = be32(&bytes[i + 4..]);
        if !(12..=1 << 20).contains(&len) {
            return Err(format!("PDU at offset {i}: implausible length {len}"));
        }
        if !(0x7000..=0x7020).contains(&ty) {
            return Err(format!("PDU at offset {i}: type {ty:#x} is not a PCP PDU"));
        }
        if i + len > bytes.len() {
            return Err(format!(
                "PDU at offset {i} claims {len} bytes but only {} follow",
                bytes.len() - i
            ));
        }
        out.push((ty, len));
        i += len;
    }
    Ok(out)
}

fn hex_head(b: &[u8]) -> String {
    let n = b.len().min(64);
    format!("{} bytes, first {n}: {:02x?}", b.len(), &b[..n])
}

impl Recording {
    /// Checks a TLS-upgraded connection: challenge with SECURE, creds with
    /// SECURE|SECURE_ACK, ack 0, then only TLS records (handshake first,
    /// application data both ways) and none of `secrets` in the clear.
    pub fn check_tls(&self, secrets: &[&str]) -> Result<Opening, String> {
        let o = parse_opening(self).map_err(|e| format!("bad PCP opening: {e}"))?;
        if o.features & PDU_FLAG_SECURE == 0 {
            return Err(format!(
                "pmcd did not advertise SECURE: features {:#06x}",
                o.features
            ));
        }
        if o.flags & (PDU_FLAG_SECURE | PDU_FLAG_SECURE_ACK)
            != PDU_FLAG_SECURE | PDU_FLAG_SECURE_ACK
        {
            return Err(format!(
                "client did not ask for TLS with an ack: flags {:#06x}",
                o.flags
            ));
        }
        if o.ack != Some(0) {
            return Err(format!("secure ack status {:?}, expected 0", o.ack));
        }
        for (dir, bytes) in [
            ("client->server", &self.c2s[o.c2s_rest..]),
            ("server->client", &self.s2c[o.s2c_rest..]),
        ] {
            let recs = tls_records(bytes).map_err(|e| {
                format!(
                    "{dir} after the ack is not a TLS record stream: {e}\n{}",
                    hex_head(bytes)
                )
            })?;
            if recs.is_empty() {
                return Err(format!("{dir}: no TLS records at all"));
            }
            if recs[0].0 != 0x16 {
                return Err(format!(
                    "{dir}: first record is not a handshake record: {recs:?}"
                ));
            }
            if !recs.iter().any(|r| r.0 == 0x17) {
                return Err(format!(
                    "{dir}: no application-data record, so no PDU went over TLS: {recs:?}"
                ));
            }
        }
        for s in secrets {
            for (dir, bytes) in [("client->server", &self.c2s), ("server->client", &self.s2c)] {
                if contains(bytes, s.as_bytes()) {
                    return Err(format!("{s:?} appears in cleartext ({dir})"));
                }
            }
        }
        Ok(o)
    }

    /// Panicking form of [`Recording::check_tls`].
    pub fn assert_tls(&self, secrets: &[&str]) -> Opening {
        self.check_tls(secrets)
            .unwrap_or_else(|e| panic!("not a proper TLS connection: {e}"))
    }

    /// Checks a plain connection: no TLS requested, only PCP PDUs after the
    /// creds, and each of `c2s_text` / `s2c_text` readable in the clear.
    pub fn check_plain(&self, c2s_text: &[&str], s2c_text: &[&str]) -> Result<Opening, String> {
        let o = parse_opening(self).map_err(|e| format!("bad PCP opening: {e}"))?;
        if o.flags & PDU_FLAG_SECURE != 0 {
            return Err(format!("client asked for TLS: flags {:#06x}", o.flags));
        }
        for (dir, bytes) in [
            ("client->server", &self.c2s[o.c2s_rest..]),
            ("server->client", &self.s2c[o.s2c_rest..]),
        ] {
            let pdus = pcp_pdus(bytes).map_err(|e| {
                format!(
                    "{dir} after the creds is not a PDU stream: {e}\n{}",
                    hex_head(bytes)
                )
            })?;
            if pdus.is_empty() {
                return Err(format!("{dir}: no PDUs after the opening"));
            }
        }
        for t in c2s_text {
            if !contains(&self.c2s, t.as_bytes()) {
                return Err(format!("{t:?} not in cleartext client->server"));
            }
        }
        for t in s2c_text {
            if !contains(&self.s2c, t.as_bytes()) {
                return Err(format!("{t:?} not in cleartext server->client"));
            }
        }
        Ok(o)
    }

    /// Panicking form of [`Recording::check_plain`].
    pub fn assert_plain(&self, c2s_text: &[&str], s2c_text: &[&str]) -> Opening {
        self.check_plain(c2s_text, s2c_text)
            .unwrap_or_else(|e| panic!("not a proper plain connection: {e}"))
    }
}

// ---------------------------------------------------------------------------
// Raw PCP handshake

/// A hand-driven TCP connection to pmcd.
pub struct RawClient {
    pub stream: TcpStream,
}

fn io_err(what: &str, e: io::Error) -> String {
    format!("{what}: {e} ({:?})", e.kind())
}

impl RawClient {
    pub fn connect(addr: SocketAddr) -> RawClient {
        RawClient::connect_timeout(addr, RAW_LIMIT)
            .unwrap_or_else(|e| panic!("connect {addr}: {e}"))
    }

    pub fn connect_timeout(addr: SocketAddr, limit: Duration) -> io::Result<RawClient> {
        let stream = TcpStream::connect_timeout(&addr, limit)?;
        stream.set_read_timeout(Some(limit))?;
        stream.set_write_timeout(Some(limit))?;
        stream.set_nodelay(true)?;
        Ok(RawClient { stream })
    }

    /// Reads pmcd's 20-byte challenge and returns its feature bits.
    pub fn read_challenge(&mut self) -> Result<u16, String> {
        let mut b = [0u8; 20];
        self.stream
            .read_exact(&mut b)
            .map_err(|e| io_err("reading the challenge", e))?;
        if be32(&b) != 20 || be32(&b[4..]) != PDU_ERROR {
            return Err(format!("not a PCP challenge: {b:02x?}"));
        }
        Ok(u16::from_be_bytes([b[18], b[19]]))
    }

    /// Sends a PDU_CREDS with one CVERSION credential carrying `flags`.
    pub fn send_creds(&mut self, flags: u16) -> Result<(), String> {
        let mut p = Vec::with_capacity(20);
        p.extend_from_slice(&20u32.to_be_bytes());
        p.extend_from_slice(&PDU_CREDS.to_be_bytes());
        p.extend_from_slice(&std::process::id().to_be_bytes());
        p.extend_from_slice(&1u32.to_be_bytes());
        p.extend_from_slice(&[1, 2]);
        p.extend_from_slice(&flags.to_be_bytes());
        self.stream
            .write_all(&p)
            .map_err(|e| io_err("sending creds", e))
    }

    /// Reads the 16-byte secure ack and returns its status code.
    pub fn read_ack(&mut self) -> Result<i32, String> {
        let mut b = [0u8; 16];
        self.stream
            .read_exact(&mut b)
            .map_err(|e| io_err("reading the secure ack", e))?;
        if be32(&b) != 16 || be32(&b[4..]) != PDU_ERROR {
            return Err(format!("not a 16-byte ack PDU: {b:02x?}"));
        }
        Ok(be32(&b[12..]) as i32)
    }

    /// Connects, reads the challenge, sends creds with `flags` and reads
    /// the ack: returns the client, the advertised features and the ack.
    pub fn up_to_ack(addr: SocketAddr, flags: u16) -> (RawClient, u16, i32) {
        let mut c = RawClient::connect(addr);
        let features = c.read_challenge().unwrap_or_else(|e| panic!("{e}"));
        c.send_creds(flags).unwrap_or_else(|e| panic!("{e}"));
        let ack = c.read_ack().unwrap_or_else(|e| panic!("{e}"));
        (c, features, ack)
    }

    pub fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Closes with a TCP reset (SO_LINGER 0) instead of an orderly FIN.
    pub fn reset(self) {
        use std::os::fd::AsRawFd;
        let linger = libc::linger {
            l_onoff: 1,
            l_linger: 0,
        };
        let rc = unsafe {
            libc::setsockopt(
                self.stream.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                &linger as *const libc::linger as *const libc::c_void,
                std::mem::size_of::<libc::linger>() as libc::socklen_t,
            )
        };
        assert_eq!(
            rc,
            0,
            "setsockopt(SO_LINGER): {}",
            io::Error::last_os_error()
        );
        drop(self.stream);
    }

    /// Reads until pmcd closes the connection (EOF or reset) and returns
    /// what arrived; Err if it is still open after `limit`.
    pub fn read_until_closed(&mut self, limit: Duration) -> Result<Vec<u8>, String> {
        self.read_until(limit, |_| false).map(|(got, _)| got)
    }

    /// Reads until pmcd closes the connection or a complete TLS alert record
    /// has arrived. Returns the bytes and whether the connection was closed;
    /// Err if neither happened within `limit` or non-TLS bytes arrived.
    pub fn read_until_closed_or_alert(
        &mut self,
        limit: Duration,
    ) -> Result<(Vec<u8>, bool), String> {
        let has_alert = |got: &[u8]| match tls_records(got) {
            Ok(recs) => recs.iter().any(|r| r.0 == 0x15),
            Err(_) => false,
        };
        let (got, closed) = self.read_until(limit, has_alert)?;
        if !got.is_empty() {
            tls_records(&got).map_err(|e| {
                format!(
                    "received bytes that are not TLS records: {e}\n{}",
                    hex_head(&got)
                )
            })?;
        }
        Ok((got, closed))
    }

    fn read_until(
        &mut self,
        limit: Duration,
        done: impl Fn(&[u8]) -> bool,
    ) -> Result<(Vec<u8>, bool), String> {
        let start = Instant::now();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        self.stream
            .set_read_timeout(Some(Duration::from_millis(250)))
            .unwrap();
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => return Ok((got, true)),
                Ok(n) => {
                    got.extend_from_slice(&buf[..n]);
                    if done(&got) {
                        return Ok((got, false));
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    if start.elapsed() > limit {
                        return Err(format!(
                            "connection still open after {limit:?}; received {}",
                            hex_head(&got)
                        ));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted
                    ) =>
                {
                    return Ok((got, true))
                }
                Err(e) => return Err(io_err("reading", e)),
            }
        }
    }
}

/// A real TLS ClientHello for `server_name`, as rustls writes it.
pub fn client_hello(server_name: &str) -> Vec<u8> {
    use rustls::pki_types::ServerName;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    let name = ServerName::try_from(server_name.to_string()).expect("server name");
    let mut conn =
        rustls::ClientConnection::new(Arc::new(config), name).expect("client connection");
    let mut out = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut out).expect("write ClientHello");
    }
    assert!(
        out.len() > 50 && out[0] == 0x16,
        "unexpected ClientHello: {}",
        hex_head(&out)
    );
    out
}

/// Deterministic pseudo-random bytes (xorshift64*), for garbage input.
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        let v = x.wrapping_mul(0x2545_F491_4F6C_DD1D);
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.truncate(len);
    out
}

// ---------------------------------------------------------------------------
// Hostile server

/// What a [`HostilePmcd`] does after its plaintext secure ack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hostility {
    /// Says nothing more (holds the connection open).
    Silent,
    /// Sends 4 KiB of pseudo-random bytes instead of a ServerHello.
    Garbage,
}

/// A fake pmcd on 127.0.0.1 that speaks the plaintext part of the PCP
/// handshake correctly (challenge advertising SECURE|SECURE_ACK, reads the
/// creds, sends ack 0) and then misbehaves, to test a client's defences.
/// Dropping it closes every connection and joins its thread.
pub struct HostilePmcd {
    port: u16,
    stop: Arc<AtomicBool>,
    accepted: Arc<Mutex<Vec<TcpStream>>>,
    thread: Option<JoinHandle<()>>,
}

impl HostilePmcd {
    pub fn start(how: Hostility) -> HostilePmcd {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let accepted: Arc<Mutex<Vec<TcpStream>>> = Arc::new(Mutex::new(Vec::new()));
        let thread = {
            let (stop, accepted) = (stop.clone(), accepted.clone());
            thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let mut s = match listener.accept() {
                        Ok((s, _)) => s,
                        Err(_) => {
                            thread::sleep(Duration::from_millis(10));
                            continue;
                        }
                    };
                    s.set_nonblocking(false).unwrap();
                    s.set_read_timeout(Some(RAW_LIMIT)).unwrap();
                    accepted.lock().unwrap().push(s.try_clone().unwrap());
                    // Challenge: PDU_ERROR, len 20, code 0, datum = version 2,
                    // licensed 1, features DESCS|LABELS|HIGHRES|SECURE_ACK|SECURE.
                    let features: u16 = 0x0E00 | PDU_FLAG_SECURE_ACK | PDU_FLAG_SECURE;
                    let mut ch = Vec::new();
                    ch.extend_from_slice(&20u32.to_be_bytes());
                    ch.extend_from_slice(&PDU_ERROR.to_be_bytes());
                    ch.extend_from_slice(&[0; 8]);
                    ch.extend_from_slice(&[2, 1]);
                    ch.extend_from_slice(&features.to_be_bytes());
                    if s.write_all(&ch).is_err() {
                        continue;
                    }
                    let mut creds = [0u8; 20];
                    if s.read_exact(&mut creds).is_err() {
                        continue;
                    }
                    let mut ack = Vec::new();
                    ack.extend_from_slice(&16u32.to_be_bytes());
                    ack.extend_from_slice(&PDU_ERROR.to_be_bytes());
                    ack.extend_from_slice(&[0; 8]);
                    if s.write_all(&ack).is_err() {
                        continue;
                    }
                    if how == Hostility::Garbage {
                        let mut g = pseudo_random(4096, 0x0bad_5eed_0000_0003);
                        g[0] = 0x42;
                        let _ = s.write_all(&g);
                    }
                    // Keep the connection; the client has to give up by itself.
                }
            })
        };
        HostilePmcd {
            port,
            stop,
            accepted,
            thread: Some(thread),
        }
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// How many connections it has accepted so far.
    pub fn connections(&self) -> usize {
        self.accepted.lock().unwrap().len()
    }
}

impl Drop for HostilePmcd {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for s in self.accepted.lock().unwrap().iter() {
            let _ = s.shutdown(Shutdown::Both);
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
