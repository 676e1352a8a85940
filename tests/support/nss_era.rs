//! The NSS era's peers for the end-to-end tests (tests/e2e_nss_era.rs):
//! PCP 5.2.6 with NSS 3.61 and OpenSSL 1.1.1 from a Debian 11 (bullseye)
//! chroot that `scripts/pcp-chroot bullseye` builds, paired with this
//! host's pmcd and pminfo (PCP 6.0.3) running with libpcp_secure.
//!
//! bullseye's glibc (2.31) cannot load the library, so nothing of ours runs
//! inside: the test binary runs on the host and starts the chroot's
//! programs with `chroot ROOT /usr/bin/env -i PATH=... HOME=... CMD`, each
//! in a session of its own without a controlling terminal (so that no tool
//! can ever reach the terminal of whoever runs the tests). The chroot is
//! named by [`ROOT_ENV`]; scripts/test-matrix mounts /proc, /dev/pts and a
//! fresh tmpfs /tmp in it for the run. Chroot and host share the network
//! namespace: a pmcd in the chroot on 127.0.0.1:PORT serves host clients
//! and the other way round. Files both sides use live in temporary
//! directories below the chroot's /tmp ([`EraDir`]), known inside by their
//! chroot path and outside by the host path.
//!
//! The certificate steps of PCP's NSS-era guides ("Establishing Secure
//! Connections", called guide 000 here, and "Establishing Secure Client
//! Connections", guide 001) are run here to the letter with the chroot's
//! certutil, pk12util and openssl; only the places differ (a temporary
//! directory instead of /etc/pki/nssdb, /etc/pcp/nssdb, $HOME and
//! /tmp/empty). Their questions are answered as a person would:
//! - `certutil -S` asks for keystrokes as a random seed and then for Enter:
//!   random text and a newline on stdin;
//! - `openssl req` asks for the subject's fields: Enter (the default) for
//!   each, the common name typed, Enter for the CSR's extra attributes;
//! - `openssl pkcs12 -export` asks for the export password twice: typed on
//!   stdin (without a terminal OpenSSL reads it from there);
//! - `pk12util -i` asks for the PKCS#12 password on the terminal only
//!   (/dev/tty; with stdin it says "Error opening input terminal for
//!   read"), so it runs on a pseudo-terminal and the password is typed
//!   once the terminal stops echoing (tests/peers/pty_run.py
//!   --wait-noecho);
//! - a database with a password: the guides give certutil `-f FILE`.
//!
//! Users differ: the chroot's `pcp` is not the host's (other uid or gid),
//! so file ownership is set with the numbers of the side that reads them.

use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tempfile::TempDir;

use super::nss::P12_PASS;
pub use super::nss::{COLLECTOR_NICK, LOCAL_CA_NICK};
use super::{
    free_port, read_lossy, run_with_input, stop_child, user_ids, write_file, RawClient, Run,
    CLIENT_LIMIT, PMCD_START_LIMIT,
};

/// The environment variable naming the bullseye chroot's directory.
pub const ROOT_ENV: &str = "PCP_SECURE_BULLSEYE_ROOT";
/// The command that builds it.
pub const BUILD_COMMAND: &str = "scripts/pcp-chroot bullseye";
/// PATH inside the chroot.
pub const CHROOT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// The guide 000 CA's subject (the guide's, with its YOUR.DOMAIN.NAME
/// filled in).
pub const LOCAL_CA_SUBJECT: &str = "cn=Local PCP Installation, dc=pcp,dc=example,dc=org";
/// The guide 000 collector certificate's subject and `-8` names.
pub const COLLECTOR_SUBJECT: &str = "cn=PCP Collector";
pub const COLLECTOR_NAMES: &str = "localhost,127.0.0.1";
/// The prompt of pk12util -i.
const PK12_PROMPT: &str = "Enter password for PKCS12 file: ";
/// Upper bound for one chroot tool run; only there to turn a hang into a
/// failure.
const TOOL_LIMIT: Duration = Duration::from_secs(120);

/// The bullseye chroot.
pub struct Bullseye {
    root: PathBuf,
    version: String,
    pcp_ids: (u32, u32),
}

/// The bullseye chroot named by [`ROOT_ENV`], checked once: panics (naming
/// the variable and [`BUILD_COMMAND`]) when it is not there, lacks PCP
/// with NSS, or its /proc and /tmp are not mounted as scripts/test-matrix
/// mounts them.
pub fn bullseye() -> &'static Bullseye {
    static B: OnceLock<Bullseye> = OnceLock::new();
    B.get_or_init(Bullseye::open)
}

impl Bullseye {
    fn open() -> Bullseye {
        let how = format!(
            "these tests need the Debian 11 (bullseye) chroot with PCP 5.2.6: build it with `{BUILD_COMMAND}` and run them with scripts/test-matrix (which sets {ROOT_ENV} and mounts /proc, /dev/pts and /tmp in it)"
        );
        let root = match std::env::var_os(ROOT_ENV) {
            Some(r) if !r.is_empty() => PathBuf::from(r),
            _ => panic!("{ROOT_ENV} is not set: {how}"),
        };
        let pmcd = root.join("usr/lib/pcp/bin/pmcd");
        assert!(
            pmcd.is_file(),
            "{ROOT_ENV}={}: no {} there: {how}",
            root.display(),
            pmcd.display()
        );
        assert!(
            root.join("proc/self").exists(),
            "{ROOT_ENV}={}: /proc is not mounted in the chroot: {how}",
            root.display()
        );
        let probe = tempfile::Builder::new()
            .prefix("pcp-secure-era-probe.")
            .tempdir_in(root.join("tmp"))
            .unwrap_or_else(|e| {
                panic!(
                    "{ROOT_ENV}={}: cannot write the chroot's /tmp ({e}): {how}",
                    root.display()
                )
            });
        drop(probe);
        let pcp_ids = passwd_ids(&root.join("etc/passwd"), "pcp").unwrap_or_else(|| {
            panic!(
                "{ROOT_ENV}={}: no user pcp in the chroot's /etc/passwd: {how}",
                root.display()
            )
        });
        let mut b = Bullseye {
            root,
            version: String::new(),
            pcp_ids,
        };
        // The version of PCP there, as installed: never assumed.
        let run = b
            .tool(
                "/usr/lib/pcp/bin/pmconfig",
                &["-L", "PCP_VERSION", "secure_sockets"],
            )
            .run();
        assert!(run.success(), "pmconfig in the chroot\n{}", run.describe());
        let value = |key: &str| {
            run.stdout
                .lines()
                .find_map(|l| l.trim().strip_prefix(key)?.strip_prefix('='))
                .unwrap_or("")
                .to_string()
        };
        b.version = value("PCP_VERSION");
        assert!(
            !b.version.is_empty() && b.version.chars().all(|c| c.is_ascii_digit() || c == '.'),
            "no PCP_VERSION from pmconfig in the chroot\n{}",
            run.describe()
        );
        assert_eq!(
            value("secure_sockets"),
            "true",
            "PCP {} in the chroot has no secure sockets\n{}",
            b.version,
            run.describe()
        );
        // An NSS-era PCP: its libpcp links NSS (PCP 6 and later link OpenSSL).
        let ldd = b.tool("/usr/bin/ldd", &["/usr/bin/pminfo"]).run();
        assert!(
            ldd.success() && ldd.stdout.contains("libnss3.so") && ldd.stdout.contains("libssl3.so"),
            "pminfo in the chroot (PCP {}) does not use NSS\n{}",
            b.version,
            ldd.describe()
        );
        b
    }

    /// The chroot's directory on the host.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// PCP_VERSION of the chroot's PCP ("5.2.6"), from its pmconfig.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// uid and gid of the chroot's user pcp (its pmcd's user).
    pub fn pcp_ids(&self) -> (u32, u32) {
        self.pcp_ids
    }

    /// The host path of `inner`, a path inside the chroot.
    pub fn host_path(&self, inner: &str) -> PathBuf {
        self.root.join(inner.trim_start_matches('/'))
    }

    /// `program args` to run in the chroot.
    pub fn tool(&self, program: &str, args: &[&str]) -> Tool<'_> {
        Tool {
            chroot: self,
            program: program.to_string(),
            args: args.iter().map(|a| a.to_string()).collect(),
            env: Vec::new(),
            cwd: None,
            home: "/root".to_string(),
            user: None,
            input: None,
        }
    }

    /// A new temporary directory below the chroot's /tmp (mode 0755).
    pub fn tempdir(&self, prefix: &str) -> EraDir {
        let tmp = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir_in(self.root.join("tmp"))
            .unwrap_or_else(|e| panic!("cannot make a directory in the chroot's /tmp: {e}"));
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let name = tmp
            .path()
            .file_name()
            .unwrap()
            .to_str()
            .expect("UTF-8 temporary name")
            .to_string();
        EraDir {
            tmp,
            inner: format!("/tmp/{name}"),
        }
    }
}

/// uid and gid of `user` in the passwd file `file`.
fn passwd_ids(file: &Path, user: &str) -> Option<(u32, u32)> {
    read_lossy(file).lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() > 3 && f[0] == user).then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))?
    })
}

/// A directory below the chroot's /tmp, removed when dropped.
pub struct EraDir {
    tmp: TempDir,
    inner: String,
}

impl EraDir {
    /// Its path on the host.
    pub fn host(&self) -> &Path {
        self.tmp.path()
    }

    /// Its path inside the chroot.
    pub fn inner(&self) -> &str {
        &self.inner
    }

    /// The chroot path of `name` in it.
    pub fn inner_of(&self, name: &str) -> String {
        format!("{}/{name}", self.inner)
    }

    /// The host path of `name` in it.
    pub fn host_of(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    /// Gives it and everything in it to `ids` (uid, gid).
    pub fn chown_all(&self, ids: (u32, u32)) {
        chown_tree(self.tmp.path(), ids);
    }
}

/// chown -R.
pub fn chown_tree(path: &Path, (uid, gid): (u32, u32)) {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid))
        .unwrap_or_else(|e| panic!("chown {}: {e}", path.display()));
    if path.is_dir() && !path.is_symlink() {
        for entry in std::fs::read_dir(path).unwrap().flatten() {
            chown_tree(&entry.path(), (uid, gid));
        }
    }
}

/// One program to run in the chroot.
pub struct Tool<'a> {
    chroot: &'a Bullseye,
    program: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
    cwd: Option<String>,
    home: String,
    user: Option<(u32, u32)>,
    input: Option<Vec<u8>>,
}

impl Tool<'_> {
    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.to_string(), v.to_string()));
        self
    }
    /// Working directory (a chroot path).
    pub fn cwd(mut self, dir: &str) -> Self {
        self.cwd = Some(dir.to_string());
        self
    }
    /// HOME (a chroot path; /root unless given).
    pub fn home(mut self, dir: &str) -> Self {
        self.home = dir.to_string();
        self
    }
    /// Run as this uid and gid (`chroot --userspec`).
    pub fn user(mut self, ids: (u32, u32)) -> Self {
        self.user = Some(ids);
        self
    }
    /// What is typed on stdin (else /dev/null).
    pub fn input(mut self, bytes: &[u8]) -> Self {
        self.input = Some(bytes.to_vec());
        self
    }

    /// The command line on the host: `chroot [--userspec=U:G] ROOT
    /// /usr/bin/env -i [-C DIR] PATH=... HOME=... LC_ALL=C ENV... PROGRAM
    /// ARGS...`.
    pub fn argv(&self) -> Vec<String> {
        let mut v = vec!["/usr/sbin/chroot".to_string()];
        if let Some((u, g)) = self.user {
            v.push(format!("--userspec={u}:{g}"));
        }
        v.push(
            self.chroot
                .root
                .to_str()
                .expect("UTF-8 chroot path")
                .to_string(),
        );
        v.extend(["/usr/bin/env".to_string(), "-i".to_string()]);
        if let Some(d) = &self.cwd {
            v.extend(["-C".to_string(), d.clone()]);
        }
        v.push(format!("PATH={CHROOT_PATH}"));
        v.push(format!("HOME={}", self.home));
        v.push("LC_ALL=C".to_string());
        for (k, val) in &self.env {
            v.push(format!("{k}={val}"));
        }
        v.push(self.program.clone());
        v.extend(self.args.iter().cloned());
        v
    }

    /// The command, to be run in a new session without a controlling
    /// terminal.
    pub fn command(&self) -> Command {
        let argv = self.argv();
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..]);
        cmd.env_clear().env("PATH", CHROOT_PATH).env("LC_ALL", "C");
        // SAFETY: the closure runs in the child between fork and exec and
        // calls only setsid, which is async-signal-safe.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        cmd
    }

    /// Runs it to the end (killed after two minutes).
    pub fn run(&self) -> Run {
        run_with_input(self.command(), self.input.as_deref(), TOOL_LIMIT)
    }

    /// Runs it and panics with its output unless it succeeds.
    pub fn run_ok(&self) -> Run {
        let run = self.run();
        assert!(
            run.success(),
            "{} failed in the chroot\n{}",
            self.program,
            run.describe()
        );
        run
    }

    /// Runs it on a new pseudo-terminal (its controlling terminal, stdin,
    /// stdout and stderr): waits for `prompt`, then types `answer` and
    /// Enter once the terminal stops echoing (a password prompt).
    pub fn run_typing_password(&self, prompt: &str, answer: &str) -> PtyRun {
        let steps = [
            PtyStep::Expect(prompt.to_string()),
            PtyStep::SendNoEcho(format!("{answer}\r")),
        ];
        pty_run(&self.argv(), &[], &steps)
    }
}

// ---------------------------------------------------------------------------
// Pseudo-terminal sessions (tests/peers/pty_run.py)

/// One step of a terminal session.
#[derive(Clone, Debug)]
pub enum PtyStep {
    /// Wait for this text (literal).
    Expect(String),
    /// Type these keys once the program reads single keys.
    Send(String),
    /// Type these keys once the terminal no longer echoes.
    SendNoEcho(String),
}

/// The outcome of a terminal session.
pub struct PtyRun {
    /// "exit N", "signal N" or "timeout STEP".
    pub status: String,
    /// Everything the terminal showed, LF line ends.
    pub transcript: String,
    pub describe: String,
}

impl PtyRun {
    pub fn success(&self) -> bool {
        self.status == "exit 0"
    }
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

/// Runs `argv` with a new pseudo-terminal as its controlling terminal and
/// stdio, in an environment of exactly `env`, driven by `steps`.
pub fn pty_run(argv: &[String], env: &[(String, String)], steps: &[PtyStep]) -> PtyRun {
    let scratch = tempfile::Builder::new()
        .prefix("pcp-secure-era-pty.")
        .tempdir()
        .unwrap();
    let transcript = scratch.path().join("transcript");
    let helper = super::manifest_dir().join("tests/peers/pty_run.py");
    let mut cmd = Command::new("/usr/bin/python3");
    cmd.env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("LC_ALL", "C")
        .current_dir(scratch.path())
        .arg(&helper)
        .args(["--timeout", "40", "--clear-env", "--transcript"])
        .arg(&transcript);
    for (k, v) in env {
        cmd.arg("--env").arg(format!("{k}={v}"));
    }
    for s in steps {
        match s {
            PtyStep::Expect(t) => cmd.arg("--expect").arg(re_escape(t)),
            PtyStep::Send(k) => cmd.arg("--send").arg(k),
            PtyStep::SendNoEcho(k) => cmd.arg("--wait-noecho").arg("--send").arg(k),
        };
    }
    cmd.arg("--").args(argv);
    let helper_run = run_with_input(cmd, None, CLIENT_LIMIT);
    assert!(
        helper_run.success(),
        "the pty helper failed\n{}",
        helper_run.describe()
    );
    let text = String::from_utf8_lossy(&std::fs::read(&transcript).unwrap_or_default())
        .replace("\r\n", "\n");
    let status = helper_run.stdout.trim().to_string();
    PtyRun {
        describe: format!(
            "pty session: {}\nsteps: {steps:?}\nresult: {status}\n--- terminal ---\n{text}\n--------------",
            helper_run.cmd
        ),
        status,
        transcript: text,
    }
}

// ---------------------------------------------------------------------------
// Guide 000: the collector's NSS database, made by the chroot's certutil

/// Random text for certutil's "type keys on the keyboard until this
/// progress meter is full", then Enter for "Press enter to continue".
fn keystrokes() -> Vec<u8> {
    let mut raw = vec![0u8; 3000];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut raw))
        .expect("read /dev/urandom");
    let mut keys: Vec<u8> = raw
        .iter()
        .map(|b| b"abcdefghijklmnopqrstuvwxyz0123456789"[(*b as usize) % 36])
        .collect();
    keys.push(b'\n');
    keys
}

fn unix_second() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// Waits until the wall clock's second is past `second`.
fn wait_for_second_after(second: u64) {
    while unix_second() <= second {
        thread::sleep(Duration::from_millis(20));
    }
}

/// Runs one `certutil -S` of the guide (with the keystrokes it asks for).
/// certutil takes serial numbers from the clock, so two certificates made
/// within one second can collide (SEC_ERROR_REUSED_ISSUER_AND_SERIAL): the
/// next certificate is made only once the clock's second has moved past
/// the one in which the last ended, and a collision all the same is tried
/// again after the next tick.
fn certutil_s(b: &Bullseye, cwd: &str, args: &[&str], last_end: &mut u64) -> Run {
    for _ in 0..5 {
        wait_for_second_after(*last_end);
        let run = b
            .tool("/usr/bin/certutil", args)
            .cwd(cwd)
            .input(&keystrokes())
            .run();
        *last_end = unix_second();
        if run.success() {
            return run;
        }
        if !run.text().contains("SEC_ERROR_REUSED_ISSUER_AND_SERIAL") {
            panic!("certutil -S failed in the chroot\n{}", run.describe());
        }
    }
    panic!("certutil -S kept colliding with serial numbers (SEC_ERROR_REUSED_ISSUER_AND_SERIAL)");
}

/// A collector database made as guide 000 says, by the chroot's certutil,
/// in a temporary directory below the chroot's /tmp:
///
/// ```text
/// mkdir -p -m 0755 DIR/nssdb
/// echo > DIR/empty                       # or the password
/// certutil -d sql:DIR/nssdb -N -f DIR/empty
/// chmod 644 DIR/nssdb/*
/// certutil -d sql:DIR/nssdb -S -x -n "Local CA certificate" \
///     -s "cn=Local PCP Installation, dc=pcp,dc=example,dc=org" -t "CT,," -v 120
/// certutil -d sql:DIR/nssdb -S -c "Local CA certificate" \
///     -n "PCP Collector certificate" -s "cn=PCP Collector" -8 "localhost,127.0.0.1" \
///     -t "P,," -v 120
/// ```
///
/// With a password, `-f DIR/empty` (holding it) is given to the `-S`
/// commands too.
pub struct Guide000 {
    dir: EraDir,
    password: Option<String>,
}

impl Guide000 {
    pub fn new(b: &Bullseye, password: Option<&str>) -> Guide000 {
        let dir = b.tempdir("pcp-secure-era-g000.");
        let db = dir.host_of("nssdb");
        std::fs::create_dir_all(&db).unwrap();
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o755)).unwrap();
        write_file(
            &dir.host_of("empty"),
            &format!("{}\n", password.unwrap_or("")),
        );
        let g = Guide000 {
            dir,
            password: password.map(str::to_string),
        };
        let spec = g.spec();
        let empty = g.dir.inner_of("empty");
        b.tool("/usr/bin/certutil", &["-d", &spec, "-N", "-f", &empty])
            .run_ok();
        for entry in std::fs::read_dir(&db).unwrap().flatten() {
            std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        let pw: Vec<&str> = if password.is_some() {
            vec!["-f", &empty]
        } else {
            vec![]
        };
        let mut last = 0;
        let mut ca = vec![
            "-d",
            &spec,
            "-S",
            "-x",
            "-n",
            LOCAL_CA_NICK,
            "-s",
            LOCAL_CA_SUBJECT,
            "-t",
            "CT,,",
            "-v",
            "120",
        ];
        ca.extend_from_slice(&pw);
        certutil_s(b, g.dir.inner(), &ca, &mut last);
        let mut collector = vec![
            "-d",
            &spec,
            "-S",
            "-c",
            LOCAL_CA_NICK,
            "-n",
            COLLECTOR_NICK,
            "-s",
            COLLECTOR_SUBJECT,
            "-8",
            COLLECTOR_NAMES,
            "-t",
            "P,,",
            "-v",
            "120",
        ];
        collector.extend_from_slice(&pw);
        certutil_s(b, g.dir.inner(), &collector, &mut last);
        let list = g.list(b);
        for nick in [LOCAL_CA_NICK, COLLECTOR_NICK] {
            assert!(
                list.contains(nick),
                "{nick} is not in the database:\n{list}"
            );
        }
        g
    }

    /// "sql:DIR/nssdb" as the chroot sees it.
    pub fn spec(&self) -> String {
        format!("sql:{}", self.dir.inner_of("nssdb"))
    }

    /// The database directory on the host.
    pub fn db_host(&self) -> PathBuf {
        self.dir.host_of("nssdb")
    }

    pub fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }

    /// `certutil -d sql:DIR -L`.
    pub fn list(&self, b: &Bullseye) -> String {
        b.tool("/usr/bin/certutil", &["-d", &self.spec(), "-L"])
            .run_ok()
            .stdout
    }

    /// Monitor setup, step 2: `certutil -d sql:DIR -L -n NICK -a >
    /// DIR/FILE` (the guide's /tmp/ca-certificate.asc); returns FILE's
    /// chroot path.
    pub fn export_ascii(&self, b: &Bullseye, nick: &str, file: &str) -> String {
        let run = b
            .tool(
                "/usr/bin/certutil",
                &["-d", &self.spec(), "-L", "-n", nick, "-a"],
            )
            .run_ok();
        assert!(
            run.stdout.contains("-----BEGIN CERTIFICATE-----"),
            "no PEM for {nick}\n{}",
            run.describe()
        );
        write_file(&self.dir.host_of(file), &run.stdout);
        self.dir.inner_of(file)
    }

    /// The guide's `/tmp/ca-certificate.asc`: the CA exported as ASCII.
    pub fn export_ca(&self, b: &Bullseye) -> String {
        self.export_ascii(b, LOCAL_CA_NICK, "ca-certificate.asc")
    }

    /// The collector certificate exported as ASCII.
    pub fn export_collector(&self, b: &Bullseye) -> String {
        self.export_ascii(b, COLLECTOR_NICK, "collector-certificate.asc")
    }

    /// The host path of a file made in the database's directory.
    pub fn host_of(&self, name: &str) -> PathBuf {
        self.dir.host_of(name)
    }

    /// Gives the directory and database to `ids` (e.g. the chroot's pcp).
    pub fn chown_all(&self, ids: (u32, u32)) {
        self.dir.chown_all(ids);
    }
}

// ---------------------------------------------------------------------------
// Monitor databases ($HOME/.pki/nssdb), made by the chroot's certutil

/// A monitor user's home below the chroot's /tmp with the guides' user
/// database, step 1 of guide 000's monitor setup (guide 001's is the same):
///
/// ```text
/// mkdir -p -m 0755 $HOME/.pki/nssdb
/// test -f /tmp/empty || echo > /tmp/empty       # HOME/empty here
/// certutil -d sql:$HOME/.pki/nssdb -N -f /tmp/empty
/// ```
pub struct MonitorDb {
    home: EraDir,
}

impl MonitorDb {
    pub fn new(b: &Bullseye) -> MonitorDb {
        let home = b.tempdir("pcp-secure-era-home.");
        let db = home.host_of(".pki/nssdb");
        std::fs::create_dir_all(&db).unwrap();
        for d in [home.host_of(".pki"), db.clone()] {
            std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        if !home.host_of("empty").exists() {
            write_file(&home.host_of("empty"), "\n");
        }
        let m = MonitorDb { home };
        let empty = m.home.inner_of("empty");
        b.tool("/usr/bin/certutil", &["-d", &m.spec(), "-N", "-f", &empty])
            .home(m.home.inner())
            .run_ok();
        m
    }

    /// "sql:$HOME/.pki/nssdb" as the chroot sees it.
    pub fn spec(&self) -> String {
        format!("sql:{}", self.home.inner_of(".pki/nssdb"))
    }

    /// HOME inside the chroot.
    pub fn home_inner(&self) -> &str {
        self.home.inner()
    }

    /// HOME on the host.
    pub fn home_host(&self) -> &Path {
        self.home.host()
    }

    /// $HOME/.pki/nssdb on the host.
    pub fn db_host(&self) -> PathBuf {
        self.home.host_of(".pki/nssdb")
    }

    /// Guide 000, monitor step 3: `certutil -d sql:$HOME/.pki/nssdb -A -n
    /// NICK -t TRUST -a -i FILE` (FILE a chroot path).
    pub fn import_ascii(&self, b: &Bullseye, nick: &str, trust: &str, file: &str) {
        b.tool(
            "/usr/bin/certutil",
            &[
                "-d",
                &self.spec(),
                "-A",
                "-n",
                nick,
                "-t",
                trust,
                "-a",
                "-i",
                file,
            ],
        )
        .home(self.home.inner())
        .run_ok();
    }

    /// Guide 001: `certutil -d sql:$HOME/.pki/nssdb -A -t TRUST -n NICK -i
    /// FILE`, run in `cwd`.
    pub fn import_cert(&self, b: &Bullseye, cwd: &str, nick: &str, trust: &str, file: &str) {
        b.tool(
            "/usr/bin/certutil",
            &[
                "-d",
                &self.spec(),
                "-A",
                "-t",
                trust,
                "-n",
                nick,
                "-i",
                file,
            ],
        )
        .home(self.home.inner())
        .cwd(cwd)
        .run_ok();
    }

    /// Guide 001: `pk12util -i FILE -d sql:$HOME/.pki/nssdb`, run in `cwd`,
    /// the PKCS#12 password typed at its prompt.
    pub fn pk12_import(&self, b: &Bullseye, cwd: &str, file: &str) {
        let run = b
            .tool("/usr/bin/pk12util", &["-i", file, "-d", &self.spec()])
            .home(self.home.inner())
            .cwd(cwd)
            .run_typing_password(PK12_PROMPT, P12_PASS);
        assert!(
            run.success() && run.transcript.contains("PKCS12 IMPORT SUCCESSFUL"),
            "pk12util -i {file}\n{}",
            run.describe
        );
    }

    /// `certutil -d sql:$HOME/.pki/nssdb -L`.
    pub fn list(&self, b: &Bullseye) -> String {
        b.tool("/usr/bin/certutil", &["-d", &self.spec(), "-L"])
            .home(self.home.inner())
            .run_ok()
            .stdout
    }
}

// ---------------------------------------------------------------------------
// Guide 001: a CA, server and client certificates made by the chroot's
// openssl (1.1.1), and the collector's database

/// Guide 001's files, made in a temporary directory below the chroot's
/// /tmp by its openssl, its commands to the letter (the questions answered
/// on stdin, see the module's notes):
///
/// ```text
/// openssl genrsa -out rootCA.key 2048
/// openssl req -new -x509 -extensions v3_ca -key rootCA.key -out rootCA.crt -days 3650   # CN myCA
/// openssl genrsa -out pmclient.key 2048
/// openssl req -new -key pmclient.key -out pmclient.csr                                 # CN pmclient
/// openssl x509 -req -in pmclient.csr -CA rootCA.crt -CAkey rootCA.key -CAcreateserial -out pmclient.crt -days 500 -sha256
/// openssl pkcs12 -export -out pmclient_pkcs12.key -inkey pmclient.key  -in pmclient.crt -certfile rootCA.crt
/// (the same for pmserver, CN = the server's host name)
/// ```
///
/// OpenSSL 1.1.1's `x509 -req` without `-extfile` makes X.509 version 1
/// certificates: the server and client certificates are checked to be
/// version 1.
pub struct Guide001 {
    dir: EraDir,
}

impl Guide001 {
    /// The guide's PKI with the server certificate for CN=`server_cn`
    /// ("localhost" to match the host name the tests connect to, or the
    /// guide's "pmserver").
    pub fn new(b: &Bullseye, server_cn: &str) -> Guide001 {
        let dir = b.tempdir("pcp-secure-era-g001.");
        let g = Guide001 { dir };
        let w = g.dir.inner().to_string();
        let openssl = |args: &[&str], input: Option<&[u8]>| {
            let mut t = b.tool("/usr/bin/openssl", args).cwd(&w);
            if let Some(i) = input {
                t = t.input(i);
            }
            t.run_ok()
        };
        openssl(&["genrsa", "-out", "rootCA.key", "2048"], None);
        // Country, state, locality, organization, unit: Enter (defaults);
        // the common name; e-mail: Enter.
        openssl(
            &[
                "req",
                "-new",
                "-x509",
                "-extensions",
                "v3_ca",
                "-key",
                "rootCA.key",
                "-out",
                "rootCA.crt",
                "-days",
                "3650",
            ],
            Some(b"\n\n\n\n\nmyCA\n\n"),
        );
        for (name, cn) in [("pmclient", "pmclient"), ("pmserver", server_cn)] {
            let key = format!("{name}.key");
            let csr = format!("{name}.csr");
            let crt = format!("{name}.crt");
            let p12 = format!("{name}_pkcs12.key");
            openssl(&["genrsa", "-out", &key, "2048"], None);
            // The subject as above, then the challenge password and the
            // optional company name: Enter.
            let answers = format!("\n\n\n\n\n{cn}\n\n\n\n");
            openssl(
                &["req", "-new", "-key", &key, "-out", &csr],
                Some(answers.as_bytes()),
            );
            openssl(
                &[
                    "x509",
                    "-req",
                    "-in",
                    &csr,
                    "-CA",
                    "rootCA.crt",
                    "-CAkey",
                    "rootCA.key",
                    "-CAcreateserial",
                    "-out",
                    &crt,
                    "-days",
                    "500",
                    "-sha256",
                ],
                None,
            );
            // "Enter Export Password:" and "Verifying - Enter Export Password:".
            let pw = format!("{P12_PASS}\n{P12_PASS}\n");
            openssl(
                &[
                    "pkcs12",
                    "-export",
                    "-out",
                    &p12,
                    "-inkey",
                    &key,
                    "-in",
                    &crt,
                    "-certfile",
                    "rootCA.crt",
                ],
                Some(pw.as_bytes()),
            );
            let text = openssl(&["x509", "-in", &crt, "-noout", "-text"], None).stdout;
            assert!(
                text.contains("Version: 1 (0x0)"),
                "the guide's {crt} is not an X.509 version 1 certificate with this openssl:\n{text}"
            );
            assert!(
                text.contains(&format!("CN = {cn}")),
                "{crt} is not for CN={cn}:\n{text}"
            );
        }
        g
    }

    /// The chroot path of one of its files ("rootCA.crt").
    pub fn inner_of(&self, name: &str) -> String {
        self.dir.inner_of(name)
    }

    /// The host path of one of its files.
    pub fn host_of(&self, name: &str) -> PathBuf {
        self.dir.host_of(name)
    }

    /// The directory (chroot path).
    pub fn inner(&self) -> &str {
        self.dir.inner()
    }

    /// Collector setup, "as the PCP user" (the chroot's pcp), DIR/nssdb for
    /// the guide's /etc/pcp/nssdb:
    ///
    /// ```text
    /// echo > /tmp/empty                                  # DIR/empty
    /// certutil -d sql:/etc/pcp/nssdb  -N -f /tmp/empty
    /// certutil -d sql:/etc/pcp/nssdb -A -t "CT,," -n "Root CA" -i rootCA.crt
    /// certutil -d sql:/etc/pcp/nssdb -A -t "P,," -n "pmserver_cert" -i pmserver.crt
    /// pk12util -i pmserver_pkcs12.key -d sql:/etc/pcp/nssdb
    /// certutil -d sql:/etc/pcp/nssdb -L
    /// ```
    ///
    /// Returns "sql:DIR/nssdb" (chroot path); the directory then belongs to
    /// the chroot's pcp.
    pub fn collector_db(&self, b: &Bullseye) -> String {
        let pcp = b.pcp_ids();
        let db = self.dir.host_of("nssdb");
        std::fs::create_dir_all(&db).unwrap();
        write_file(&self.dir.host_of("empty"), "\n");
        self.dir.chown_all(pcp);
        let spec = format!("sql:{}", self.dir.inner_of("nssdb"));
        let w = self.dir.inner();
        let home = "/var/lib/pcp";
        let certutil = |args: &[&str]| {
            b.tool("/usr/bin/certutil", args)
                .cwd(w)
                .home(home)
                .user(pcp)
                .run_ok()
        };
        let empty = self.dir.inner_of("empty");
        certutil(&["-d", &spec, "-N", "-f", &empty]);
        certutil(&[
            "-d",
            &spec,
            "-A",
            "-t",
            "CT,,",
            "-n",
            "Root CA",
            "-i",
            "rootCA.crt",
        ]);
        certutil(&[
            "-d",
            &spec,
            "-A",
            "-t",
            "P,,",
            "-n",
            "pmserver_cert",
            "-i",
            "pmserver.crt",
        ]);
        let run = b
            .tool(
                "/usr/bin/pk12util",
                &["-i", "pmserver_pkcs12.key", "-d", &spec],
            )
            .cwd(w)
            .home(home)
            .user(pcp)
            .run_typing_password(PK12_PROMPT, P12_PASS);
        assert!(
            run.success() && run.transcript.contains("PKCS12 IMPORT SUCCESSFUL"),
            "pk12util -i pmserver_pkcs12.key\n{}",
            run.describe
        );
        let list = certutil(&["-d", &spec, "-L"]).stdout;
        for nick in ["Root CA", "pmserver_cert"] {
            assert!(list.contains(nick), "{nick} missing:\n{list}");
        }
        spec
    }

    /// The collector database's directory on the host (after
    /// [`Guide001::collector_db`]).
    pub fn collector_db_host(&self) -> PathBuf {
        self.dir.host_of("nssdb")
    }

    /// Monitor setup, "as local user":
    ///
    /// ```text
    /// echo > /tmp/empty
    /// mkdir -p -m 0755 $HOME/.pki/nssdb
    /// certutil -d sql:$HOME/.pki/nssdb -N -f /tmp/empty
    /// certutil -d sql:$HOME/.pki/nssdb -A -t "CT,," -n "Root CA" -i ./rootCA.crt
    /// certutil -d sql:$HOME/.pki/nssdb -A -t "P,," -n "pmclient_cert" -i pmclient.crt
    /// pk12util -i pmclient_pkcs12.key -d sql:$HOME/.pki/nssdb
    /// ```
    ///
    /// The last two only `with_cert`.
    pub fn monitor_db(&self, b: &Bullseye, with_cert: bool) -> MonitorDb {
        let m = MonitorDb::new(b);
        let w = self.dir.inner();
        m.import_cert(b, w, "Root CA", "CT,,", "./rootCA.crt");
        if with_cert {
            m.import_cert(b, w, "pmclient_cert", "P,,", "pmclient.crt");
            m.pk12_import(b, w, "pmclient_pkcs12.key");
        }
        m
    }
}

// ---------------------------------------------------------------------------
// The chroot's pmcd (PCP 5.2.6)

/// A running pmcd of the chroot on 127.0.0.1 with a configuration of its
/// own (pmcd and linux PMDAs, PMNS, PCP_RUN_DIR, PCP_LOG_DIR and
/// PCP_TMP_DIR in a temporary directory below the chroot's /tmp, given to
/// the chroot's pcp, the user pmcd switches to); stopped when dropped.
pub struct NssPmcd {
    child: Option<Child>,
    dir: EraDir,
    port: u16,
    args: Vec<String>,
    env: Vec<(String, String)>,
}

/// How to start a chroot pmcd.
#[derive(Default)]
pub struct NssPmcdBuilder {
    args: Vec<String>,
    env: Vec<(String, String)>,
}

impl NssPmcdBuilder {
    /// Extra pmcd options ("-C", "sql:...", "-M", "nick", "-Q").
    pub fn args(mut self, args: &[&str]) -> Self {
        self.args.extend(args.iter().map(|a| a.to_string()));
        self
    }
    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.to_string(), v.to_string()));
        self
    }
    pub fn start(self, b: &Bullseye) -> NssPmcd {
        NssPmcd::start(b, self)
    }
}

impl NssPmcd {
    pub fn builder() -> NssPmcdBuilder {
        NssPmcdBuilder::default()
    }

    fn start(b: &Bullseye, opts: NssPmcdBuilder) -> NssPmcd {
        let dir = b.tempdir("pcp-secure-era-pmcd.");
        for d in ["run", "log", "tmp"] {
            std::fs::create_dir_all(dir.host_of(d)).unwrap();
        }
        let pmdas = "/var/lib/pcp/pmdas";
        write_file(
            &dir.host_of("pmcd.conf"),
            &format!(
                "pmcd 2 dso pmcd_init {pmdas}/pmcd/pmda_pmcd.so\nlinux 60 dso linux_init {pmdas}/linux/pmda_linux.so\n"
            ),
        );
        let root = dir.inner_of("root");
        b.tool(
            "/usr/lib/pcp/bin/pmnsmerge",
            &[
                "-a",
                "/var/lib/pcp/pmns/root_pmcd",
                "/var/lib/pcp/pmns/root_linux",
                &root,
            ],
        )
        .run_ok();
        dir.chown_all(b.pcp_ids());
        let mut pmcd = NssPmcd {
            child: None,
            dir,
            port: 0,
            args: opts.args,
            env: opts.env,
        };
        let mut attempts = Vec::new();
        for _ in 0..6 {
            pmcd.port = free_port(false);
            pmcd.spawn(b);
            match pmcd.wait_ready() {
                Ok(()) => return pmcd,
                Err((true, log)) => {
                    attempts.push(format!("port {} was taken:\n{log}", pmcd.port));
                    pmcd.stop();
                }
                Err((false, why)) => {
                    pmcd.stop();
                    panic!("the chroot's pmcd did not start: {why}");
                }
            }
        }
        panic!(
            "the chroot's pmcd did not start after several ports:\n{}",
            attempts.join("\n")
        );
    }

    fn spawn(&mut self, b: &Bullseye) {
        for f in ["pmcd.log", "pmcd.out", "pmcd.fatal", "pmcd.socket"] {
            let _ = std::fs::remove_file(self.dir.host_of(f));
        }
        let port = self.port.to_string();
        let (conf, root, sock, log, fatal) = (
            self.dir.inner_of("pmcd.conf"),
            self.dir.inner_of("root"),
            self.dir.inner_of("pmcd.socket"),
            self.dir.inner_of("pmcd.log"),
            self.dir.inner_of("pmcd.fatal"),
        );
        let mut args: Vec<&str> = vec![
            "-f",
            "-A",
            "-p",
            &port,
            "-i",
            "127.0.0.1",
            "-c",
            &conf,
            "-n",
            &root,
            "-s",
            &sock,
            "-l",
            &log,
            "-x",
            &fatal,
        ];
        args.extend(self.args.iter().map(String::as_str));
        let mut tool = b
            .tool("/usr/lib/pcp/bin/pmcd", &args)
            .home("/var/lib/pcp")
            .env("PCP_RUN_DIR", &self.dir.inner_of("run"))
            .env("PCP_LOG_DIR", &self.dir.inner_of("log"))
            .env("PCP_TMP_DIR", &self.dir.inner_of("tmp"));
        for (k, v) in &self.env {
            tool = tool.env(k, v);
        }
        let out = std::fs::File::create(self.dir.host_of("pmcd.out")).unwrap();
        let err = out.try_clone().unwrap();
        let mut cmd = tool.command();
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        // chroot and env exec one another: the child's pid is pmcd's.
        self.child = Some(
            cmd.spawn()
                .unwrap_or_else(|e| panic!("cannot start the chroot's pmcd: {e}")),
        );
    }

    /// The row for our port and inet in pmcd's "request port(s)" table.
    fn port_row(&self, log: &str) -> Option<bool> {
        let port = self.port.to_string();
        let table = log.split("pmcd request port(s):").nth(1)?;
        table.lines().find_map(|line| {
            let w: Vec<&str> = line.split_whitespace().collect();
            (w.len() >= 4 && w[2] == port && w[3] == "inet").then(|| w[0] == "ok")
        })
    }

    /// Ok once pmcd listens and its main loop answers with a challenge;
    /// Err((port taken, output)) otherwise.
    fn wait_ready(&mut self) -> Result<(), (bool, String)> {
        let start = Instant::now();
        while start.elapsed() < PMCD_START_LIMIT {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                let out = self.all_output();
                return Err((
                    out.contains("Address already in use"),
                    format!("pmcd exited with {status}\n{out}"),
                ));
            }
            match self.port_row(&self.log()) {
                Some(false) => {
                    let out = self.all_output();
                    return Err((
                        out.contains("Address already in use"),
                        format!("pmcd could not listen on port {}\n{out}", self.port),
                    ));
                }
                Some(true) => {
                    if let Ok(mut raw) =
                        RawClient::connect_timeout(self.addr(), Duration::from_secs(10))
                    {
                        if raw.read_challenge().is_ok() {
                            return Ok(());
                        }
                    }
                }
                None => {}
            }
            thread::sleep(Duration::from_millis(50));
        }
        Err((
            false,
            format!(
                "not ready after {PMCD_START_LIMIT:?}\n{}",
                self.all_output()
            ),
        ))
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// "NAME:PORT".
    pub fn host_named(&self, name: &str) -> String {
        format!("{name}:{}", self.port)
    }

    /// pmcd.log so far.
    pub fn log(&self) -> String {
        read_lossy(&self.dir.host_of("pmcd.log"))
    }

    /// The log, stdout/stderr and fatal file, for failure messages.
    pub fn all_output(&self) -> String {
        format!(
            "--- 5.x pmcd.log ---\n{}--- 5.x pmcd stdout/stderr ---\n{}--- 5.x pmcd.fatal ---\n{}----------------",
            self.log(),
            read_lossy(&self.dir.host_of("pmcd.out")),
            read_lossy(&self.dir.host_of("pmcd.fatal")),
        )
    }

    pub fn assert_running(&mut self) {
        let running = matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)));
        assert!(
            running,
            "the chroot's pmcd is no longer running\n{}",
            self.all_output()
        );
    }

    fn stop(&mut self) {
        stop_child(&mut self.child, Duration::from_secs(5));
    }
}

impl Drop for NssPmcd {
    fn drop(&mut self) {
        self.stop();
        if thread::panicking() {
            eprintln!("chroot pmcd on port {}:\n{}", self.port, self.all_output());
        }
    }
}

// ---------------------------------------------------------------------------
// The chroot's pminfo (PCP 5.2.6 with NSS)

/// Runs the chroot's pminfo with `args`, HOME `home` (its NSS database is
/// HOME/.pki/nssdb), PCP_SECURE_SOCKETS=enforce plus `env`, in a session
/// without a terminal and stdin from /dev/null (so its question about an
/// untrusted certificate is answered "(no)").
pub fn nss_pminfo(b: &Bullseye, home: &str, env: &[(&str, &str)], args: &[&str]) -> Run {
    let mut t = b
        .tool("/usr/bin/pminfo", args)
        .home(home)
        .env("PCP_SECURE_SOCKETS", "enforce");
    for (k, v) in env {
        t = t.env(k, v);
    }
    run_with_input(t.command(), None, CLIENT_LIMIT)
}

// ---------------------------------------------------------------------------
// Host side helpers

/// A copy of the NSS database files in `db` (cert9.db, key4.db,
/// pkcs11.txt) in a new host temporary directory, all of it given to the
/// host's user `user` (the user our pmcd runs as), directories 0700 and
/// files 0600. Returns the directory holding it and the database path.
pub fn host_copy_for(db: &Path, user: &str) -> (TempDir, PathBuf) {
    let ids = user_ids(user).unwrap_or_else(|| panic!("no host user {user}"));
    let tmp = tempfile::Builder::new()
        .prefix("pcp-secure-era-copy.")
        .tempdir()
        .unwrap();
    let to = tmp.path().join("nssdb");
    std::fs::create_dir(&to).unwrap();
    for entry in std::fs::read_dir(db).unwrap().flatten() {
        let name = entry.file_name();
        let n = name.to_string_lossy();
        if n.ends_with(".db") || n == "pkcs11.txt" {
            std::fs::copy(entry.path(), to.join(&name)).unwrap();
            std::fs::set_permissions(to.join(&name), std::fs::Permissions::from_mode(0o600))
                .unwrap();
        }
    }
    assert!(
        to.join("cert9.db").is_file(),
        "no cert9.db in {}",
        db.display()
    );
    std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o700)).unwrap();
    chown_tree(tmp.path(), ids);
    (tmp, to)
}
