//! End-to-end tests of the `pcp-secure` command's `verify`, `probe`, `run`
//! and `systemd` subcommands (issue 5): the built binary on temporary
//! directories, against private pmcd instances (stock and with
//! libpcp_secure) and Debian's unchanged pminfo.
//!
//! Every run has a clean environment: its own HOME, trust store directory
//! (PCP_SECURE_DB_PATH), tls.conf (PCP_TLSCONF_PATH) and, for `verify` and
//! `systemd`, its own root directory (--root), so that nothing of the
//! machine running the tests matters or is touched.
//!
//! The NSS database cases of `verify` build real databases with certutil
//! and pk12util (libnss3-tools), with helpers local to this file.

use pcp_secure_test_support as support;

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use pcp_secure::api::trust::TrustStore;
use support::pmproxy::{Pmproxy, PMPROXY};
use support::*;
use tempfile::TempDir;

const LOAD: &str = "kernel.all.load";

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_pcp-secure")
}

fn tempdir(prefix: &str) -> TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .expect("cannot create a temporary directory")
}

/// A user of `pcp-secure`: own HOME, trust store, tls.conf and root
/// directory for system files.
struct User {
    dir: TempDir,
    env: Vec<(String, String)>,
}

impl User {
    /// A user whose tls.conf holds `conf`.
    fn new(conf: &str) -> User {
        let dir = tempdir("pcp-secure-cli.");
        fs::write(dir.path().join("tls.conf"), conf).unwrap();
        fs::create_dir_all(dir.path().join("root")).unwrap();
        fs::create_dir_all(dir.path().join("home")).unwrap();
        User {
            dir,
            env: Vec::new(),
        }
    }

    fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.to_string(), v.to_string()));
        self
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn root(&self) -> PathBuf {
        self.path("root")
    }

    fn trust_dir(&self) -> PathBuf {
        self.path("trust")
    }

    fn conf(&self) -> PathBuf {
        self.path("tls.conf")
    }

    fn set_conf(&self, conf: &str) {
        fs::write(self.conf(), conf).unwrap();
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(bin());
        cmd.env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("LC_ALL", "C")
            .env("HOME", self.path("home"))
            .env("PCP_TLSCONF_PATH", self.conf())
            .env("PCP_SECURE_DB_PATH", self.trust_dir())
            .env("PCP_SECURE_LIB", lib_path())
            .env("PCP_CONSOLE", "none");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd.args(args);
        cmd
    }

    /// `pcp-secure ARGS...`
    fn run(&self, args: &[&str]) -> Run {
        run_with_limit(self.command(args), CLIENT_LIMIT)
    }

    /// `pcp-secure verify --root ROOT ARGS...`, for a pmcd running as the
    /// user running the tests (as the tests' pmcds do, and as their key
    /// files allow) unless ARGS name another `--service-user`; a pmcd
    /// running as pcp is tested in cli_cert_trust.rs.
    fn verify(&self, args: &[&str]) -> Run {
        let me = user_name();
        let mut all = vec![];
        if !args.contains(&"--service-user") {
            all.extend_from_slice(&["--service-user", &me]);
        }
        all.extend_from_slice(args);
        self.verify_for_default_user(&all)
    }

    /// `pcp-secure verify --root ROOT ARGS...`, pmcd's user left to verify's
    /// default (pcp, as root).
    fn verify_for_default_user(&self, args: &[&str]) -> Run {
        let root = self.root();
        let mut all = vec!["verify", "--root", root.to_str().unwrap()];
        all.extend_from_slice(args);
        self.run(&all)
    }

    /// `pcp-secure probe TARGET`
    fn probe(&self, target: &str) -> Run {
        self.run(&["probe", target])
    }
}

fn code(run: &Run) -> i32 {
    assert!(!run.timed_out, "command hung\n{}", run.describe());
    run.status
        .and_then(|s| s.code())
        .unwrap_or_else(|| panic!("no exit status\n{}", run.describe()))
}

/// The report line of check `name` ("server name \"localhost\"").
fn line<'a>(run: &'a Run, name: &str) -> &'a str {
    let found: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| {
            l.get(5..)
                .is_some_and(|rest| rest.starts_with(&format!("{name}: ")))
        })
        .collect();
    assert_eq!(
        found.len(),
        1,
        "expected one line for check {name:?}\n{}",
        run.describe()
    );
    found[0]
}

/// Asserts that check `name` has `status` ("ok", "warn", "FAIL") and that
/// its line contains every one of `texts`.
fn assert_check(run: &Run, name: &str, status: &str, texts: &[&str]) {
    let l = line(run, name);
    assert!(
        l.starts_with(&format!("{status:<4} {name}: ")),
        "check {name:?} is not {status}: {l}\n{}",
        run.describe()
    );
    for t in texts {
        assert!(
            l.contains(t),
            "check {name:?} lacks {t:?}: {l}\n{}",
            run.describe()
        );
    }
    if status == "ok" {
        assert!(!l.contains(" — fix: "), "an ok line with a fix: {l}");
    } else {
        assert!(l.contains(" — fix: "), "a {status} line without a fix: {l}");
    }
}

/// Asserts that check `name`'s line gives a number of days in `range`
/// right before `unit` ("days left"): a range, since the count depends on
/// how long ago the certificate was made.
fn assert_days(run: &Run, name: &str, unit: &str, range: std::ops::RangeInclusive<i64>) {
    let l = line(run, name);
    let days = l
        .split_once(&format!(" {unit}"))
        .and_then(|(head, _)| head.rsplit(['(', ' ']).next())
        .and_then(|n| n.parse::<i64>().ok())
        .unwrap_or_else(|| panic!("no number before {unit:?} in check {name:?}: {l}"));
    assert!(
        range.contains(&days),
        "check {name:?}: {days} {unit}, want {range:?}: {l}"
    );
}

fn fail_lines(run: &Run) -> Vec<&str> {
    run.stdout
        .lines()
        .filter(|l| l.starts_with("FAIL "))
        .collect()
}

/// A server tls.conf with these files (paths from `certs`).
fn server_conf(certs: &Certs, cert: &str, key: &str) -> String {
    tls_conf(&[
        ("tls-cert-file", &certs.path(cert)),
        ("tls-key-file", &certs.path(key)),
        ("tls-ca-cert-file", &certs.path("ca.crt")),
    ])
}

fn python_json_check(json: &str) -> String {
    let script = "import json, sys\n\
        d = json.load(sys.stdin)\n\
        assert isinstance(d, list) and d, d\n\
        for c in d:\n\
        \x20   assert set(c) == {'check', 'status', 'detail', 'fix'}, c\n\
        \x20   assert c['status'] in ('ok', 'warn', 'FAIL'), c\n\
        \x20   assert (c['fix'] is None) == (c['status'] == 'ok'), c\n\
        print(len(d), sum(c['status'] == 'FAIL' for c in d))\n";
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(json.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "python3 rejected the JSON: {}\n{json}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

// ---------------------------------------------------------------------------
// verify

/// Asserts that `text` contains `needle`, showing `context` if not.
fn has(text: &str, needle: impl AsRef<str>, context: &str) {
    assert!(text.contains(needle.as_ref()), "{context}");
}

/// Asserts that `text` does not contain `needle`.
fn lacks(text: &str, needle: impl AsRef<str>, context: &str) {
    assert!(!text.contains(needle.as_ref()), "{context}");
}

#[test]
fn verify_passes_a_good_server_setup() {
    let certs = Certs::new();
    let user = User::new(&certs.server_conf());
    let run = user.verify(&[]);
    assert_eq!(code(&run), 0, "{}", run.describe());
    assert!(fail_lines(&run).is_empty(), "{}", run.describe());
    let conf = user.conf().display().to_string();
    assert_check(
        &run,
        "tls.conf",
        "ok",
        &[&conf, "from PCP_TLSCONF_PATH", "tls-cert-file"],
    );
    assert_check(
        &run,
        "server certificate",
        "ok",
        &["server.crt", "CN=localhost", "CN=pcp_secure test CA"],
    );
    assert_check(&run, "server key permissions", "ok", &["mode 0600"]);
    assert_check(
        &run,
        "server TLS setup",
        "ok",
        &["the key fits the certificate"],
    );
    assert_check(
        &run,
        "server certificate chain",
        "ok",
        &["chains to tls-ca-cert-file", "ca.crt"],
    );
    // scripts/mkcerts makes certificates valid for 365 days: far above the
    // 30 days under which verify warns.
    assert_check(
        &run,
        "server certificate validity",
        "ok",
        &["valid until", "days left"],
    );
    assert_days(&run, "server certificate validity", "days left", 364..=365);
    assert_check(&run, "server name \"localhost\"", "ok", &["DNS:localhost"]);
    assert_check(
        &run,
        "client TLS setup",
        "ok",
        &["clients trust tls-ca-cert-file", "no client certificate"],
    );
    assert_check(&run, "trust store", "ok", &["does not exist yet"]);
    assert_check(
        &run,
        "library",
        "ok",
        &[&lib_path().display().to_string(), "PCP_SECURE_LIB"],
    );
    assert_check(
        &run,
        "pmcd preload",
        "warn",
        &["pcp-secure systemd pmcd --install"],
    );
    assert_check(
        &run,
        "client preload",
        "warn",
        &["pcp-secure run -- pminfo"],
    );
    assert_check(
        &run,
        "client secure sockets",
        "warn",
        &["PCP_SECURE_SOCKETS is not set"],
    );

    // Every name the clients use, all listed: no warning about names.
    let run = user.verify(&[
        "--host",
        "localhost",
        "--host",
        "127.0.0.1",
        "--host",
        "[::1]",
    ]);
    assert_eq!(code(&run), 0, "{}", run.describe());
    assert_check(&run, "server name \"127.0.0.1\"", "ok", &["IP:127.0.0.1"]);
    assert_check(&run, "server name \"[::1]\"", "ok", &["IP:::1"]);
    lacks(&run.stdout, "warn server name", &run.describe());

    // JSON: the same checks, valid JSON.
    let run = user.verify(&["--json"]);
    assert_eq!(code(&run), 0, "{}", run.describe());
    let counts = python_json_check(&run.stdout);
    assert!(counts.ends_with(" 0"), "{counts}");
}

#[test]
fn verify_fails_an_expired_certificate() {
    let certs = Certs::new();
    let user = User::new(&server_conf(&certs, "expired.crt", "expired.key"));
    let run = user.verify(&[]);
    assert_eq!(code(&run), 1, "{}", run.describe());
    assert_check(
        &run,
        "server certificate validity",
        "FAIL",
        &["expired on", "days ago", "pcp-secure cert"],
    );
    // The chain itself is fine; only its dates are wrong.
    assert_check(
        &run,
        "server certificate chain",
        "ok",
        &["chains to", "dates are checked separately"],
    );
    assert_eq!(fail_lines(&run).len(), 1, "{}", run.describe());

    let user = User::new(&server_conf(&certs, "notyet.crt", "notyet.key"));
    let run = user.verify(&[]);
    assert_eq!(code(&run), 1, "{}", run.describe());
    assert_check(
        &run,
        "server certificate validity",
        "FAIL",
        &["not valid before", "clock"],
    );
}

/// A tls-cert-file that lists the CA before the server's own certificate
/// is named as a chain in the wrong order, not as a key that does not fit.
#[test]
fn verify_names_a_chain_in_the_wrong_order() {
    let certs = Certs::new();
    let reversed = certs.dir().join("reversed-chain.crt");
    let text = fs::read_to_string(certs.path("ca.crt")).unwrap()
        + &fs::read_to_string(certs.path("server.crt")).unwrap();
    fs::write(&reversed, text).unwrap();
    let user = User::new(&tls_conf(&[
        ("tls-cert-file", reversed.to_str().unwrap()),
        ("tls-key-file", &certs.path("server.key")),
    ]));
    let run = user.verify(&[]);
    assert_eq!(code(&run), 1, "{}", run.describe());
    assert_check(
        &run,
        "server TLS setup",
        "FAIL",
        &[
            "lists its certificates in the wrong order",
            "certificate 2 of it",
        ],
    );
    lacks(&run.stdout, "does not fit", &run.describe());
}

#[test]
fn verify_fails_a_key_that_does_not_fit() {
    let certs = Certs::new();
    let user = User::new(&server_conf(&certs, "server.crt", "wronghost.key"));
    let run = user.verify(&[]);
    assert_eq!(code(&run), 1, "{}", run.describe());
    let key = certs.path("wronghost.key");
    assert_check(
        &run,
        "server TLS setup",
        "FAIL",
        &[
            &format!("tls-key-file \"{key}\" does not fit tls-cert-file"),
            "pmcd would serve plain connections only",
        ],
    );
    assert_eq!(fail_lines(&run).len(), 1, "{}", run.describe());

    // No key at all.
    let user = User::new(&tls_conf(&[("tls-cert-file", &certs.path("server.crt"))]));
    let run = user.verify(&[]);
    assert_eq!(code(&run), 1, "{}", run.describe());
    assert_check(&run, "server key", "FAIL", &["tls-key-file is not set"]);
}

#[test]
fn verify_fails_a_host_name_the_certificate_does_not_list() {
    let certs = Certs::new();
    let user = User::new(&certs.server_conf());
    let run = user.verify(&["--host", "other.example", "--host", "localhost"]);
    assert_eq!(code(&run), 1, "{}", run.describe());
    assert_check(
        &run,
        "server name \"other.example\"",
        "FAIL",
        &[
            "not listed in the certificate",
            "DNS:localhost, IP:127.0.0.1, IP:::1",
            "subjectAltName includes other.example",
        ],
    );
    assert_check(&run, "server name \"localhost\"", "ok", &[]);
    assert_eq!(fail_lines(&run).len(), 1, "{}", run.describe());

    // A certificate for another host: the default names are only warned about.
    let user = User::new(&server_conf(&certs, "wronghost.crt", "wronghost.key"));
    let run = user.verify(&[]);
    assert_eq!(code(&run), 0, "{}", run.describe());
    assert_check(
        &run,
        "server name \"localhost\"",
        "warn",
        &["DNS:other.example"],
    );
}

#[test]
fn verify_fails_a_missing_or_unreadable_certificate_file() {
    let certs = Certs::new();
    let missing = certs.dir().join("missing.crt").display().to_string();
    let user = User::new(&tls_conf(&[
        ("tls-cert-file", &missing),
        ("tls-key-file", &certs.path("server.key")),
    ]));
    let run = user.verify(&[]);
    assert_eq!(code(&run), 1, "{}", run.describe());
    assert_check(
        &run,
        "server certificate",
        "FAIL",
        &[
            &format!("tls-cert-file \"{missing}\": cannot read"),
            "No such file",
        ],
    );
    // Nothing else about the server is judged without its certificate.
    lacks(&run.stdout, "server TLS setup", &run.describe());

    // A directory cannot be read as a file, even by root.
    let dir = certs.dir().display().to_string();
    user.set_conf(&tls_conf(&[
        ("tls-cert-file", &dir),
        ("tls-key-file", &certs.path("server.key")),
    ]));
    let run = user.verify(&[]);
    assert_eq!(code(&run), 1, "{}", run.describe());
    assert_check(
        &run,
        "server certificate",
        "FAIL",
        &[&format!("tls-cert-file \"{dir}\": cannot read")],
    );

    // A file without a certificate in it.
    user.set_conf(&tls_conf(&[
        ("tls-cert-file", &certs.path("server.key")),
        ("tls-key-file", &certs.path("server.key")),
    ]));
    let run = user.verify(&[]);
    assert_eq!(code(&run), 1, "{}", run.describe());
    assert_check(
        &run,
        "server certificate",
        "FAIL",
        &["no certificate (BEGIN CERTIFICATE) found"],
    );

    // And a tls.conf that does not exist at all.
    fs::remove_file(user.conf()).unwrap();
    let run = user.verify(&[]);
    assert_eq!(code(&run), 1, "{}", run.describe());
    assert_check(&run, "tls.conf", "FAIL", &["cannot read", "No such file"]);
}

#[test]
fn verify_warns_about_a_client_only_setup_and_key_modes() {
    let certs = Certs::new();
    let user = User::new(&certs.client_conf_with_cert("client"));
    // client-soon.crt ends in 9 days and a half: under verify's 30 days.
    let key = user.path("client-soon.key");
    fs::copy(certs.path("client-soon.key"), &key).unwrap();
    fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).unwrap();
    user.set_conf(&tls_conf(&[
        ("tls-ca-cert-file", &certs.path("ca.crt")),
        ("tls-client-cert-file", &certs.path("client-soon.crt")),
        ("tls-client-key-file", key.to_str().unwrap()),
    ]));
    let run = user.verify(&[]);
    assert_eq!(code(&run), 0, "{}", run.describe());
    assert_check(
        &run,
        "server certificate",
        "warn",
        &["no tls-cert-file", "pmcd serves plain connections only"],
    );
    assert_check(
        &run,
        "client TLS setup",
        "ok",
        &["client certificate", "client-soon.crt"],
    );
    assert_check(
        &run,
        "client certificate validity",
        "warn",
        &["expires on", "in 9 days"],
    );
    assert_check(
        &run,
        "client key permissions",
        "warn",
        &["mode 0644", "chmod 600"],
    );

    // A client key that does not fit its certificate.
    user.set_conf(&tls_conf(&[
        ("tls-client-cert-file", &certs.path("client.crt")),
        ("tls-client-key-file", &certs.path("rogue-client.key")),
    ]));
    let run = user.verify(&[]);
    assert_eq!(code(&run), 1, "{}", run.describe());
    assert_check(
        &run,
        "client TLS setup",
        "FAIL",
        &["does not fit tls-client-cert-file"],
    );
}

#[test]
fn verify_checks_the_trust_store() {
    let certs = Certs::new();
    let user = User::new(&certs.client_conf());
    let store = TrustStore::in_dir(user.trust_dir());
    let der = pcp_secure::api::certs::load_chain("x", &certs.path("selfsigned.crt")).unwrap();
    store.save("localhost", None, &der[0]).unwrap();
    let run = user.verify(&[]);
    assert_eq!(code(&run), 0, "{}", run.describe());
    assert_check(
        &run,
        "trust store",
        "ok",
        &["1 saved server certificate(s)"],
    );
    assert_check(&run, "trust store permissions", "ok", &["private to you"]);

    // Readable by others: a warning.
    fs::set_permissions(store.file(), fs::Permissions::from_mode(0o644)).unwrap();
    fs::set_permissions(user.trust_dir(), fs::Permissions::from_mode(0o755)).unwrap();
    let run = user.verify(&[]);
    assert_eq!(code(&run), 0, "{}", run.describe());
    assert_check(
        &run,
        "trust store permissions",
        "warn",
        &["mode 0644", "mode 0755", "chmod 600", "chmod 700"],
    );
    assert_check(
        &run,
        "trust store",
        "ok",
        &["1 saved server certificate(s)"],
    );

    // Writable by others: clients do not use it, so it fails.
    fs::set_permissions(user.trust_dir(), fs::Permissions::from_mode(0o777)).unwrap();
    let run = user.verify(&[]);
    assert_eq!(code(&run), 1, "{}", run.describe());
    assert_check(
        &run,
        "trust store",
        "FAIL",
        &[
            "writable by other users (mode 0777)",
            "not used for trust decisions",
            "chmod go-w",
        ],
    );
    assert_check(
        &run,
        "trust store permissions",
        "warn",
        &["mode 0644", "mode 0777", "chmod 600", "chmod 700"],
    );

    fs::set_permissions(user.trust_dir(), fs::Permissions::from_mode(0o700)).unwrap();
    fs::write(store.file(), "# host: h\nnot a certificate\n").unwrap();
    let run = user.verify(&[]);
    assert_eq!(code(&run), 1, "{}", run.describe());
    assert_check(
        &run,
        "trust store",
        "FAIL",
        &["line 2", "trusted-servers.pem"],
    );
}

#[test]
fn verify_finds_who_preloads_the_library() {
    let certs = Certs::new();
    let user = User::new(&certs.server_conf());
    let root = user.root();

    // LD_PRELOAD in /etc/default/pmcd never reaches pmcd.
    fs::create_dir_all(root.join("etc/default")).unwrap();
    fs::write(
        root.join("etc/default/pmcd"),
        format!("PMCD_ROOT_AGENT=1\nLD_PRELOAD={}\n", lib_path().display()),
    )
    .unwrap();
    let run = user.verify(&[]);
    assert_check(
        &run,
        "pmcd preload",
        "warn",
        &[
            "etc/default/pmcd sets LD_PRELOAD",
            "PMCD* and PCP*",
            "pcp-secure systemd pmcd --install",
        ],
    );

    // The drop-in `systemd --install` writes is found.
    let installed = user.run(&[
        "systemd",
        "pmcd",
        "--install",
        "--root",
        root.to_str().unwrap(),
    ]);
    installed.assert_ok();
    let run = user.verify(&[]);
    assert_check(
        &run,
        "pmcd preload",
        "ok",
        &[
            "/etc/systemd/system/pmcd.service.d/libpcp-secure.conf preloads",
            &lib_path().display().to_string(),
        ],
    );

    // A later drop-in naming a library that is gone: pmcd runs without it.
    fs::write(
        root.join("etc/systemd/system/pmcd.service.d/zz-old.conf"),
        "[Service]\nEnvironment=\"LD_PRELOAD=/nonexistent/libpcp_secure.so.1\"\n",
    )
    .unwrap();
    let run = user.verify(&[]);
    assert_eq!(code(&run), 1, "{}", run.describe());
    assert_check(
        &run,
        "pmcd preload",
        "FAIL",
        &[
            "zz-old.conf",
            "/nonexistent/libpcp_secure.so.1",
            "does not exist",
        ],
    );

    // Clients: `pcp-secure run` preloads it for whatever it runs, this
    // command included.
    let run = user.env("PCP_SECURE_SOCKETS", "enforce").run(&[
        "run",
        "--",
        bin(),
        "verify",
        "--root",
        root.to_str().unwrap(),
    ]);
    assert_check(
        &run,
        "client preload",
        "ok",
        &["LD_PRELOAD names", &lib_path().display().to_string()],
    );
    assert_check(
        &run,
        "client secure sockets",
        "ok",
        &["PCP_SECURE_SOCKETS=enforce"],
    );
}

#[test]
fn verify_json_escapes_and_parses() {
    let certs = Certs::new();
    // A path with a quote and a backslash ends up in several details.
    let dir = tempdir("pcp-secure-json.");
    let odd = dir.path().join("we\"ird\\name.crt");
    let user = User::new(&tls_conf(&[
        ("tls-cert-file", odd.to_str().unwrap()),
        ("tls-key-file", &certs.path("server.key")),
    ]));
    let run = user.verify(&["--json", "--host", "other.example"]);
    assert_eq!(code(&run), 1, "{}", run.describe());
    let counts = python_json_check(&run.stdout);
    assert!(
        counts.ends_with(" 1"),
        "one FAIL expected: {counts}\n{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("we\\\"ird\\\\name.crt"),
        "{}",
        run.stdout
    );
}

// ---------------------------------------------------------------------------
// verify with NSS databases (tls-nssdb)

const CERTUTIL: &str = "/usr/bin/certutil";
const PK12UTIL: &str = "/usr/bin/pk12util";
const COLLECTOR: &str = "PCP Collector certificate";

/// Runs an NSS tool or openssl, panicking with its output when it fails.
fn tool(program: &str, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program} (libnss3-tools, openssl): {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A serial number no other certificate of this test process has (certutil
/// refuses a second issuer/serial pair: SEC_ERROR_REUSED_ISSUER_AND_SERIAL).
fn serial() -> String {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1000);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        .to_string()
}

/// An NSS sql: database made with certutil, in `DIR/db`, with its password
/// in `DIR/password` (mode 0400; an empty line for no password).
struct NssDb {
    dir: TempDir,
}

impl NssDb {
    fn new(password: &str) -> NssDb {
        let dir = tempdir("pcp-secure-nssdb.");
        let db = NssDb { dir };
        fs::create_dir(db.db_dir()).unwrap();
        fs::write(db.path("password"), format!("{password}\n")).unwrap();
        fs::set_permissions(db.path("password"), fs::Permissions::from_mode(0o400)).unwrap();
        let noise: Vec<u8> = (0..64u8).map(|i| i.wrapping_mul(37) ^ 0x5a).collect();
        fs::write(db.path("noise"), noise).unwrap();
        db.certutil(&["-N"]);
        db
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_str().unwrap().to_string()
    }

    fn db_dir(&self) -> PathBuf {
        self.dir.path().join("db")
    }

    fn spec(&self) -> String {
        format!("sql:{}", self.db_dir().display())
    }

    fn password_file(&self) -> String {
        self.path("password")
    }

    /// certutil ARGS -d sql:DIR -f PASSWORD
    fn certutil(&self, args: &[&str]) {
        let (spec, pw) = (self.spec(), self.password_file());
        let mut all = args.to_vec();
        all.extend_from_slice(&["-d", &spec, "-f", &pw]);
        tool(CERTUTIL, &all);
    }

    /// A self-signed CA trusted for servers and clients ("CT,,").
    fn ca(&self, nick: &str) -> &Self {
        let (serial, noise) = (serial(), self.path("noise"));
        let subject = format!("CN={nick}");
        self.certutil(&[
            "-S", "-x", "-n", nick, "-s", &subject, "-t", "CT,,", "-m", &serial, "-v", "120", "-k",
            "ec", "-q", "nistp256", "-z", &noise,
        ]);
        self
    }

    /// A certificate for `sans` (DNS names) issued by `ca`, with its key,
    /// valid from `warp` months from now for `months` months.
    fn issue(&self, nick: &str, cn: &str, ca: &str, sans: &str, warp: i32, months: u32) -> &Self {
        let (serial, noise) = (serial(), self.path("noise"));
        let (subject, warp, months) = (format!("CN={cn}"), warp.to_string(), months.to_string());
        self.certutil(&[
            "-S", "-n", nick, "-s", &subject, "-c", ca, "-t", ",,", "-8", sans, "-m", &serial,
            "-w", &warp, "-v", &months, "-k", "ec", "-q", "nistp256", "-z", &noise,
        ]);
        self
    }

    /// Imports a PEM certificate and key (as `nick`) and their CA (trusted
    /// "CT,,"), the way certificates made with openssl get into NSS.
    fn import_pem(&self, nick: &str, cert: &str, key: &str, ca: &str) -> &Self {
        self.certutil(&["-A", "-n", "PEM test CA", "-t", "CT,,", "-i", ca]);
        let p12 = self.path("import.p12");
        tool(
            "openssl",
            &[
                "pkcs12",
                "-export",
                "-in",
                cert,
                "-inkey",
                key,
                "-name",
                nick,
                "-out",
                &p12,
                "-passout",
                "pass:p12-pw",
            ],
        );
        let (spec, pw) = (self.spec(), self.password_file());
        tool(
            PK12UTIL,
            &["-i", &p12, "-d", &spec, "-k", &pw, "-W", "p12-pw"],
        );
        self
    }

    /// The password file's contents and mode.
    fn set_password_file(&self, text: &str, mode: u32) {
        let pw = self.password_file();
        fs::set_permissions(&pw, fs::Permissions::from_mode(0o600)).unwrap();
        fs::write(&pw, text).unwrap();
        fs::set_permissions(&pw, fs::Permissions::from_mode(mode)).unwrap();
    }

    /// tls.conf lines using this database (and its password file unless
    /// the password is empty), plus `more`.
    fn conf(&self, with_password_file: bool, more: &[(&str, &str)]) -> String {
        let (spec, pw) = (self.spec(), self.password_file());
        let mut pairs = vec![("tls-nssdb", spec.as_str())];
        if with_password_file {
            pairs.push(("tls-nssdb-password-file", pw.as_str()));
        }
        pairs.extend_from_slice(more);
        tls_conf(&pairs)
    }
}

/// A database with the password "nss-secret", a CA and the collector's
/// certificate for localhost (valid ten years).
fn collector_db() -> NssDb {
    let db = NssDb::new("nss-secret");
    db.ca("PCP test CA")
        .issue(COLLECTOR, "localhost", "PCP test CA", "localhost", 0, 120);
    db
}

/// The user running the tests, as `--service-user` takes it.
fn me() -> (String, String) {
    // SAFETY: geteuid has no preconditions.
    let uid = unsafe { libc::geteuid() };
    (
        uid.to_string(),
        pcp_secure::api::nssdb::password::user_name(uid),
    )
}

#[test]
fn verify_passes_a_good_nss_collector() {
    let db = collector_db();
    let user = User::new(&db.conf(true, &[]));
    let (uid, name) = me();
    let run = user.verify(&["--service-user", &uid, "--host", "localhost"]);
    assert_eq!(code(&run), 0, "{}", run.describe());
    assert!(fail_lines(&run).is_empty(), "{}", run.describe());
    let (spec, pw) = (db.spec(), db.password_file());
    assert_check(
        &run,
        "tls.conf",
        "ok",
        &["tls-nssdb, tls-nssdb-password-file"],
    );
    assert_check(
        &run,
        "server NSS database",
        "ok",
        &[
            &format!("\"{spec}\" (tls-nssdb)"),
            &format!("readable by {name}"),
            "2 certificate(s)",
        ],
    );
    assert_check(
        &run,
        "server NSS password file",
        "ok",
        &[
            &format!("tls-nssdb-password-file \"{pw}\": owned by {name}"),
            "mode 0400",
        ],
    );
    assert_check(
        &run,
        "server NSS database password",
        "ok",
        &[&format!(
            "the database unlocks with tls-nssdb-password-file \"{pw}\""
        )],
    );
    assert_check(
        &run,
        "server certificate",
        "ok",
        &[
            "\"PCP Collector certificate\" (the default tls-cert-nickname)",
            "CN=localhost, issued by CN=PCP test CA",
        ],
    );
    assert_check(
        &run,
        "server key",
        "ok",
        &["key4.db holds the private key of \"PCP Collector certificate\""],
    );
    assert_check(
        &run,
        "server TLS setup",
        "ok",
        &["the key fits the certificate"],
    );
    assert_check(
        &run,
        "server certificate chain",
        "ok",
        &[&format!("chains to the CA(s) trusted in \"{spec}\" (1)")],
    );
    assert_check(
        &run,
        "server certificate validity",
        "ok",
        &["valid until", "days left"],
    );
    assert_check(&run, "server name \"localhost\"", "ok", &["DNS:localhost"]);
    // The server's NSS settings are not the clients' (pmcd and the tools
    // usually share one tls.conf): no client NSS lines, and the client setup
    // presents no certificate from the server's database.
    lacks(&run.stdout, "client NSS", &run.describe());
    assert_check(&run, "client TLS setup", "ok", &["no client certificate"]);
    // Named with the client's own keys, the same database is the clients'.
    user.set_conf(&format!(
        "{}tls-client-nssdb = {spec}\ntls-client-nssdb-password-file = {}\n",
        db.conf(true, &[]),
        db.password_file()
    ));
    let run = user.verify(&["--service-user", &uid, "--host", "localhost"]);
    assert_check(
        &run,
        "client NSS database",
        "ok",
        &[
            &format!("\"{spec}\" (from tls-client-nssdb in"),
            "2 certificate(s)",
        ],
    );
    assert_check(&run, "client NSS password file", "ok", &["mode 0400"]);
    assert_check(
        &run,
        "client NSS trust",
        "ok",
        &["trusts 1 CA(s)", "accepts 0 server certificate(s)"],
    );
    assert_check(
        &run,
        "client TLS setup",
        "ok",
        &["1 CA(s)", "a client certificate from the NSS database"],
    );

    // A nickname of our own, and the JSON form.
    db.issue(
        "collector2",
        "localhost",
        "PCP test CA",
        "localhost",
        0,
        120,
    );
    user.set_conf(&db.conf(true, &[("tls-cert-nickname", "collector2")]));
    let run = user.verify(&["--service-user", &uid, "--json"]);
    assert_eq!(code(&run), 0, "{}", run.describe());
    let counts = python_json_check(&run.stdout);
    assert!(counts.ends_with(" 0"), "{counts}\n{}", run.stdout);
    has(
        &run.stdout,
        "\"\\\"collector2\\\" (tls-cert-nickname) in",
        &run.describe(),
    );
}

#[test]
fn verify_fails_an_nss_password_file_others_can_read() {
    let db = collector_db();
    let pw = db.password_file();
    fs::set_permissions(&pw, fs::Permissions::from_mode(0o644)).unwrap();
    let user = User::new(&db.conf(true, &[]));
    let (uid, _) = me();
    let run = user.verify(&["--service-user", &uid]);
    assert_eq!(code(&run), 1, "{}", run.describe());
    assert_check(
        &run,
        "server NSS password file",
        "FAIL",
        &[
            &format!("tls-nssdb-password-file \"{pw}\": mode 0644"),
            "must be 0400",
            &format!("chmod 0400 \"{pw}\""),
        ],
    );
    // Not unlocked with a file that breaks the rule; what needs no
    // password is still checked.
    lacks(&run.stdout, "server NSS database password", &run.describe());
    lacks(&run.stdout, "server TLS setup", &run.describe());
    assert_check(
        &run,
        "server certificate",
        "ok",
        &["PCP Collector certificate"],
    );
    assert_check(&run, "server certificate validity", "ok", &["valid until"]);
    // Every FAIL (pmcd's and the clients') is about that file.
    for l in fail_lines(&run) {
        assert!(
            l.contains(&pw),
            "a FAIL not about {pw}: {l}\n{}",
            run.describe()
        );
    }

    // Owned by someone else than the user pmcd runs as (nobody here).
    fs::set_permissions(&pw, fs::Permissions::from_mode(0o400)).unwrap();
    if user_exists("nobody") {
        // nobody must be able to read the database itself.
        fs::set_permissions(db.dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        fs::set_permissions(db.db_dir(), fs::Permissions::from_mode(0o755)).unwrap();
        for f in ["cert9.db", "key4.db"] {
            fs::set_permissions(db.db_dir().join(f), fs::Permissions::from_mode(0o644)).unwrap();
        }
        let run = user.verify(&["--service-user", "nobody"]);
        assert_eq!(code(&run), 1, "{}", run.describe());
        assert_check(
            &run,
            "server NSS password file",
            "FAIL",
            &[
                &pw,
                "but it is read as nobody",
                &format!("chown nobody \"{pw}\""),
            ],
        );
    }
}

fn user_exists(name: &str) -> bool {
    Command::new("getent")
        .args(["passwd", name])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn verify_fails_a_wrong_nss_password_and_a_missing_nickname() {
    let db = collector_db();
    let pw = db.password_file();
    let user = User::new(&db.conf(true, &[]));
    let (uid, _) = me();

    db.set_password_file("not-the-password\n", 0o400);
    let run = user.verify(&["--service-user", &uid]);
    assert_eq!(code(&run), 1, "{}", run.describe());
    assert_check(
        &run,
        "server NSS database password",
        "FAIL",
        &[
            &format!("the password in tls-nssdb-password-file \"{pw}\" is wrong"),
            "certutil -N",
        ],
    );
    assert_check(&run, "server NSS password file", "ok", &["mode 0400"]);
    lacks(&run.stdout, "server TLS setup", &run.describe());

    // The right password, a nickname the database does not have.
    db.set_password_file("nss-secret\n", 0o400);
    user.set_conf(&db.conf(true, &[("tls-cert-nickname", "No Such Certificate")]));
    let run = user.verify(&["--service-user", &uid]);
    assert_eq!(code(&run), 1, "{}", run.describe());
    assert_check(&run, "server NSS database password", "ok", &[]);
    assert_check(
        &run,
        "server certificate",
        "FAIL",
        &[
            "no certificate \"No Such Certificate\" (tls-cert-nickname)",
            "\"PCP Collector certificate\", \"PCP test CA\"",
            "set tls-cert-nickname",
        ],
    );
    lacks(&run.stdout, "server certificate validity", &run.describe());

    // A database without a password needs no password file; one with a
    // password does.
    user.set_conf(&db.conf(false, &[]));
    let run = user.verify(&["--service-user", &uid]);
    assert_eq!(code(&run), 1, "{}", run.describe());
    assert_check(
        &run,
        "server NSS database password",
        "FAIL",
        &["has a password", "tls-nssdb-password-file"],
    );
}

#[test]
fn verify_warns_about_an_nss_certificate_expiring_soon() {
    // scripts/mkcerts' soon.crt ends in 9 days and a half (under verify's
    // 30 days): imported with pk12util as PEM users would.
    let certs = Certs::new();
    let db = NssDb::new("");
    db.import_pem(
        COLLECTOR,
        &certs.path("soon.crt"),
        &certs.path("soon.key"),
        &certs.path("ca.crt"),
    );
    let user = User::new(&db.conf(false, &[]));
    let (uid, _) = me();
    let run = user.verify(&["--service-user", &uid]);
    assert_eq!(code(&run), 0, "{}", run.describe());
    assert_check(
        &run,
        "server NSS database password",
        "ok",
        &["the database has no password"],
    );
    assert_check(
        &run,
        "server certificate",
        "ok",
        &[
            "CN=localhost",
            "issued by O=pcp_secure tests, CN=pcp_secure test CA",
        ],
    );
    assert_check(&run, "server TLS setup", "ok", &[]);
    assert_check(
        &run,
        "server certificate chain",
        "ok",
        &["chains to the CA(s) trusted in"],
    );
    assert_check(
        &run,
        "server certificate validity",
        "warn",
        &["expires on", "in 9 days", &db.spec(), "pk12util -i"],
    );
    assert_check(
        &run,
        "server name \"localhost\"",
        "ok",
        &["DNS:localhost, IP:127.0.0.1, IP:::1"],
    );

    // Expired (valid one month, a year ago): pmcd refuses it altogether.
    db.ca("NSS CA")
        .issue("old", "localhost", "NSS CA", "localhost", -12, 1);
    user.set_conf(&db.conf(false, &[("tls-cert-nickname", "old")]));
    let run = user.verify(&["--service-user", &uid]);
    assert_eq!(code(&run), 1, "{}", run.describe());
    assert_check(
        &run,
        "server certificate validity",
        "FAIL",
        &["expired on", "days ago"],
    );
    assert_check(
        &run,
        "server TLS setup",
        "FAIL",
        &["\"old\" is not valid now"],
    );
}

#[test]
fn verify_fails_conflicting_or_old_nss_settings() {
    let certs = Certs::new();
    let db = collector_db();
    let user = User::new(&db.conf(true, &[("tls-cert-file", &certs.path("server.crt"))]));
    let (uid, _) = me();
    let run = user.verify(&["--service-user", &uid]);
    assert_eq!(code(&run), 1, "{}", run.describe());
    assert_check(
        &run,
        "server certificate",
        "FAIL",
        &["tls-cert-file", "and tls-nssdb", "are both set", "keep one"],
    );
    lacks(&run.stdout, "server NSS database:", &run.describe());

    // An old Berkeley DB database (cert8.db): the library's advice.
    let old = tempdir("pcp-secure-cert8.");
    fs::write(old.path().join("cert8.db"), b"").unwrap();
    fs::write(old.path().join("key3.db"), b"").unwrap();
    let dir = old.path().display().to_string();
    user.set_conf(&tls_conf(&[("tls-nssdb", &format!("sql:{dir}"))]));
    let run = user.verify(&["--service-user", &uid]);
    assert_eq!(code(&run), 1, "{}", run.describe());
    assert_check(
        &run,
        "server NSS database",
        "FAIL",
        &[
            "old Berkeley DB database (cert8.db, key3.db)",
            &format!("fix: convert it once with: certutil -d sql:{dir} -N -f FILE"),
        ],
    );
    // Nothing more to say about the server.
    lacks(&run.stdout, "server certificate:", &run.describe());
}

#[test]
fn verify_reports_a_client_nss_database() {
    // The trust store directory (PCP_SECURE_DB_PATH) holds an NSS
    // database: a CA, an accepted self-signed server, a client certificate.
    let certs = Certs::new();
    let user = User::new(&certs.client_conf());
    fs::create_dir_all(user.trust_dir()).unwrap();
    let scratch = NssDb::new("");
    scratch.ca("peer-server");
    let peer_pem = scratch.path("peer.pem");
    let out = Command::new(CERTUTIL)
        .args(["-L", "-n", "peer-server", "-a", "-d", &scratch.spec()])
        .output()
        .unwrap();
    assert!(out.status.success());
    fs::write(&peer_pem, &out.stdout).unwrap();

    let client = NssDb::new("");
    client
        .ca("Monitor CA")
        .issue("monitor1", "monitor1", "Monitor CA", "monitor1", 0, 120)
        .certutil(&["-A", "-n", "peer-server", "-t", "P,,", "-i", &peer_pem]);
    for f in ["cert9.db", "key4.db"] {
        fs::copy(client.db_dir().join(f), user.trust_dir().join(f)).unwrap();
    }
    let spec = format!("sql:{}", user.trust_dir().display());
    let run = user.verify(&[]);
    assert_eq!(code(&run), 0, "{}", run.describe());
    assert_check(
        &run,
        "client NSS database",
        "ok",
        &[
            &format!("\"{spec}\" (from PCP_SECURE_DB_PATH)"),
            "3 certificate(s)",
        ],
    );
    assert_check(&run, "client NSS database password", "ok", &["no password"]);
    assert_check(
        &run,
        "client NSS trust",
        "ok",
        &["trusts 1 CA(s)", "accepts 1 server certificate(s)"],
    );
    assert_check(
        &run,
        "client NSS certificate",
        "ok",
        &["\"monitor1\": CN=monitor1, issued by CN=Monitor CA"],
    );
    assert_check(&run, "client certificate validity", "ok", &["valid until"]);
    assert_check(
        &run,
        "client TLS setup",
        "ok",
        &[&format!(
            "NSS database \"{spec}\" (1 CA(s), 1 server certificate(s))"
        )],
    );
    lacks(&run.stdout, "server NSS", &run.describe());

    // ~/.pki/nssdb with a password but no password file: clients ignore
    // it (a warning, not a failure).
    for f in ["cert9.db", "key4.db"] {
        fs::remove_file(user.trust_dir().join(f)).unwrap();
    }
    let locked = collector_db();
    let home_db = user.path("home").join(".pki/nssdb");
    fs::create_dir_all(&home_db).unwrap();
    for f in ["cert9.db", "key4.db"] {
        fs::copy(locked.db_dir().join(f), home_db.join(f)).unwrap();
    }
    let run = user.verify(&[]);
    assert_eq!(code(&run), 0, "{}", run.describe());
    assert_check(
        &run,
        "client NSS database",
        "ok",
        &["(from $HOME/.pki/nssdb)"],
    );
    assert_check(
        &run,
        "client NSS database password",
        "warn",
        &["has a password", "clients ignore the database"],
    );
}

#[test]
fn verify_reads_the_collector_database_as_pcp() {
    // Only root can act as pmcd's user (pcp, the default when verify runs
    // as root).
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 || !user_exists("pcp") {
        eprintln!("skipped: needs root and a pcp user");
        return;
    }
    let db = collector_db();
    let pw = db.password_file();
    let pcp = pcp_secure::api::nssdb::password::user_name(uid_of("pcp"));
    assert_eq!(pcp, "pcp");
    let chown = |path: &Path, name: &str| {
        std::os::unix::fs::chown(path, Some(uid_of(name)), None).unwrap();
    };
    fs::set_permissions(db.dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    for f in ["", "cert9.db", "key4.db"] {
        chown(&db.db_dir().join(f), "pcp");
    }
    chown(Path::new(&pw), "pcp");
    let user = User::new(&db.conf(true, &[]));
    let run = user.verify_for_default_user(&[]);
    assert_check(
        &run,
        "server NSS database",
        "ok",
        &["readable by pcp", "the user pmcd runs as"],
    );
    assert_check(
        &run,
        "server NSS password file",
        "ok",
        &["owned by pcp (the user pmcd runs as"],
    );
    assert_check(&run, "server NSS database password", "ok", &[]);
    assert_check(&run, "server TLS setup", "ok", &[]);

    // A password file of root's: pcp may not use it.
    chown(Path::new(&pw), "root");
    let run = user.verify_for_default_user(&[]);
    assert_eq!(code(&run), 1, "{}", run.describe());
    assert_check(
        &run,
        "server NSS password file",
        "FAIL",
        &[
            "owned by root (uid 0), but it is read as pcp",
            &format!("chown pcp \"{pw}\""),
        ],
    );

    // A database only root can read: pmcd (as pcp) cannot.
    chown(Path::new(&pw), "pcp");
    for f in ["cert9.db", "key4.db"] {
        chown(&db.db_dir().join(f), "root");
    }
    let run = user.verify_for_default_user(&[]);
    assert_eq!(code(&run), 1, "{}", run.describe());
    assert_check(
        &run,
        "server NSS database",
        "FAIL",
        &["cannot read", "read as pcp", "readable by pcp"],
    );
}

fn uid_of(name: &str) -> u32 {
    let out = Command::new("id").args(["-u", name]).output().unwrap();
    assert!(out.status.success(), "no user {name}");
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

// ---------------------------------------------------------------------------
// probe

/// The "trust: ..." line of a probe.
fn trust_line(run: &Run) -> &str {
    run.stdout
        .lines()
        .find(|l| l.starts_with("trust: "))
        .unwrap_or_else(|| panic!("no trust line\n{}", run.describe()))
}

#[test]
fn probe_our_pmcd_reports_tls_and_trust() {
    let certs = Certs::new();
    let pmcd = Pmcd::builder()
        .preload_ours(true)
        .tls_conf(&certs.server_conf())
        .start();
    let user = User::new(&certs.client_conf());
    let run = user.probe(&pmcd.host_named("localhost"));
    assert_eq!(code(&run), 0, "{}", run.describe());
    let out = &run.stdout;
    assert!(out.contains("features: SECURE "), "{}", run.describe());
    assert!(out.contains("SECURE_ACK"), "{}", run.describe());
    assert!(out.contains("TLS: TLSv1_3 TLS13_"), "{}", run.describe());
    has(
        out,
        "Subject: O=pcp_secure tests, CN=localhost",
        &run.describe(),
    );
    has(
        out,
        "Names: DNS:localhost, IP:127.0.0.1, IP:::1",
        &run.describe(),
    );
    assert_eq!(
        trust_line(&run),
        format!(
            "trust: trusted (chains to tls-ca-cert-file \"{}\")",
            certs.path("ca.crt")
        )
    );
    // Also by address, and with the system store only (no CA configured):
    // then the private CA is not trusted.
    let run = user.probe(&pmcd.host());
    assert_eq!(code(&run), 0, "{}", run.describe());
    user.set_conf("");
    let run = user.probe(&pmcd.host_named("localhost"));
    assert_eq!(code(&run), 3, "{}", run.describe());
    assert!(trust_line(&run).starts_with("trust: NOT trusted: issuer of the certificate is not trusted (trusted CAs come from the system trust store"), "{}", run.describe());
    // Once pmcd has closed every probe's connection it has logged anything
    // it had to say about them.
    assert!(
        pmcd.wait_until_idle(LOG_LIMIT),
        "pmcd still holds {} connection(s) after the probes ended\n{}",
        pmcd.open_connections(),
        pmcd.log()
    );
    assert!(
        !pmcd.log().contains("pcp_secure: error"),
        "pmcd logged an error for a probe:\n{}",
        pmcd.log()
    );
}

#[test]
fn probe_stock_pmcd_reports_tls_and_trust() {
    let certs = Certs::new();
    let pmcd = Pmcd::builder()
        .preload_ours(false)
        .tls_conf(&certs.server_conf())
        .start();
    let user = User::new(&certs.client_conf());
    let run = user.probe(&pmcd.host_named("localhost"));
    assert_eq!(code(&run), 0, "{}", run.describe());
    has(&run.stdout, "TLS: TLSv1_3 TLS13_", &run.describe());
    has(
        &run.stdout,
        "Subject: O=pcp_secure tests, CN=localhost",
        &run.describe(),
    );
    assert!(
        trust_line(&run).starts_with("trust: trusted (chains to tls-ca-cert-file"),
        "{}",
        run.describe()
    );
}

#[test]
fn probe_says_when_pmcd_offers_no_tls() {
    let pmcd = Pmcd::builder().preload_ours(true).start();
    let user = User::new("");
    let run = user.probe(&pmcd.host_named("localhost"));
    assert_eq!(code(&run), 2, "{}", run.describe());
    has(&run.stdout, "does not offer TLS", &run.describe());
    lacks(&run.stdout, "features: SECURE", &run.describe());
    assert!(!run.stdout.contains("trust:"), "{}", run.describe());

    // Nobody listening: a connection error, not "no TLS".
    let port = free_port(false);
    let run = user.probe(&format!("127.0.0.1:{port}"));
    assert_eq!(code(&run), 1, "{}", run.describe());
    assert!(run.stdout.contains("cannot connect"), "{}", run.describe());
}

#[test]
fn probe_self_signed_untrusted_then_saved_then_changed() {
    let certs = Certs::new();
    let pmcd = Pmcd::builder()
        .preload_ours(true)
        .tls_conf(&certs.server_conf_with("selfsigned"))
        .start();
    let host = pmcd.host_named("localhost");
    // Even with PCP_ALLOW_SERVER_SELF_CERT set, a probe saves nothing.
    let user = User::new(&certs.client_conf()).env("PCP_ALLOW_SERVER_SELF_CERT", "1");
    let store = TrustStore::in_dir(user.trust_dir());
    let run = user.probe(&host);
    assert_eq!(code(&run), 3, "{}", run.describe());
    let trust = trust_line(&run);
    assert!(
        trust.starts_with("trust: NOT trusted: issuer of the certificate is not trusted"),
        "{}",
        run.describe()
    );
    assert!(
        trust.contains("pminfo would ask whether to accept and save it"),
        "{trust}"
    );
    assert!(
        trust.contains("PCP_ALLOW_SERVER_SELF_CERT is set"),
        "{trust}"
    );
    assert!(!store.file().exists(), "probe wrote the trust store");

    // Saved for localhost without a port, as earlier versions saved
    // every entry: still trusted on this port, being this very certificate.
    let der = pcp_secure::api::certs::load_chain("x", &certs.path("selfsigned.crt")).unwrap();
    store.save("localhost", None, &der[0]).unwrap();
    let run = user.probe(&host);
    assert_eq!(code(&run), 0, "{}", run.describe());
    assert_eq!(
        trust_line(&run),
        format!(
            "trust: trusted (saved in {} for localhost, whose entry holds this very certificate)",
            store.file().display()
        )
    );
    // Saved for localhost on this port (what answering yes in pminfo does).
    assert!(store.remove("localhost", None).unwrap());
    store.save("localhost", Some(pmcd.port()), &der[0]).unwrap();
    let run = user.probe(&host);
    assert_eq!(code(&run), 0, "{}", run.describe());
    assert_eq!(
        trust_line(&run),
        format!(
            "trust: trusted (saved in {} for localhost:{})",
            store.file().display(),
            pmcd.port()
        )
    );
    // Saved for one name only.
    let run = user.probe(&pmcd.host());
    assert_eq!(code(&run), 3, "{}", run.describe());
    assert!(
        trust_line(&run).contains("NOT trusted"),
        "{}",
        run.describe()
    );

    // Another certificate saved for the host: changed.
    let other = pcp_secure::api::certs::load_chain("x", &certs.path("selfsigned2.crt")).unwrap();
    store
        .save("localhost", Some(pmcd.port()), &other[0])
        .unwrap();
    let run = user.probe(&host);
    assert_eq!(code(&run), 3, "{}", run.describe());
    let trust = trust_line(&run);
    assert!(
        trust.starts_with(&format!(
            "trust: CHANGED since saved in {}",
            store.file().display()
        )),
        "{}",
        run.describe()
    );
}

#[test]
fn probe_explains_a_wrong_host_name_and_a_required_client_certificate() {
    let certs = Certs::new();
    let pmcd = Pmcd::builder()
        .preload_ours(true)
        .tls_conf(&certs.server_conf_with("wronghost"))
        .start();
    let user = User::new(&certs.client_conf());
    let run = user.probe(&pmcd.host_named("localhost"));
    assert_eq!(code(&run), 3, "{}", run.describe());
    assert!(
        trust_line(&run).starts_with("trust: NOT trusted: the domain name \"localhost\" does not match the name(s) on the certificate: DNS:other.example"),
        "{}",
        run.describe()
    );
    drop(pmcd);

    let pmcd = Pmcd::builder()
        .preload_ours(true)
        .tls_conf(&certs.server_conf())
        .cert_required(true)
        .start();
    // Without a client certificate: the server's certificate is still shown.
    let run = user.probe(&pmcd.host_named("localhost"));
    assert_eq!(code(&run), 1, "{}", run.describe());
    assert!(run.stdout.contains("CERT_REQD"), "{}", run.describe());
    assert!(
        run.stdout.contains(
            "TLS: handshake failed: pmcd on host \"localhost\" requires a client certificate"
        ),
        "{}",
        run.describe()
    );
    has(
        &run.stdout,
        "Subject: O=pcp_secure tests, CN=localhost",
        &run.describe(),
    );
    // With one.
    user.set_conf(&certs.client_conf_with_cert("client"));
    let run = user.probe(&pmcd.host_named("localhost"));
    assert_eq!(code(&run), 0, "{}", run.describe());
    has(
        &run.stdout,
        "pmcd asked for a client certificate; we presented tls-client-cert-file",
        &run.describe(),
    );
    assert!(
        trust_line(&run).starts_with("trust: trusted"),
        "{}",
        run.describe()
    );
}

// ---------------------------------------------------------------------------
// run

#[test]
fn run_preloads_the_library_into_pminfo() {
    let certs = Certs::new();
    let pmcd = Pmcd::builder()
        .preload_ours(true)
        .tls_conf(&certs.server_conf())
        .start();
    let user = User::new(&certs.client_conf())
        .env("PCP_SECURE_SOCKETS", "enforce")
        .env("PCP_SECURE_DEBUG", "1");
    let host = pmcd.host_named("localhost");
    let run = user.run(&["run", "--", PMINFO, "-h", &host, "-f", LOAD]);
    assert_load_values(&run);
    assert!(
        run.stderr.contains("pcp_secure: debug: ")
            && run
                .stderr
                .contains("TLS with pmcd on host \"localhost\" established (TLSv1_3"),
        "{}",
        run.describe()
    );
}

#[test]
fn run_sets_ld_preload_and_passes_the_exit_status() {
    let user = User::new("");
    let lib = lib_path().display().to_string();
    let run = user.run(&["run", "--", "sh", "-c", "echo \"$LD_PRELOAD\"; exit 7"]);
    assert_eq!(code(&run), 7, "{}", run.describe());
    assert_eq!(run.stdout.trim(), lib);

    // Prepended to an existing LD_PRELOAD, never twice.
    let user = User::new("").env("LD_PRELOAD", &lib);
    let run = user.run(&["run", "--", "sh", "-c", "echo \"$LD_PRELOAD\""]);
    run.assert_ok();
    assert_eq!(run.stdout.trim(), lib);

    // Options after `--` belong to the command.
    let run = User::new("").run(&["run", "--", "sh", "-c", "echo \"$1\"", "sh", "--help"]);
    run.assert_ok();
    assert_eq!(run.stdout.trim(), "--help");

    // Without PCP_SECURE_LIB it is found beside the executable.
    let mut cmd = User::new("").command(&["run", "--", "sh", "-c", "echo \"$LD_PRELOAD\""]);
    cmd.env_remove("PCP_SECURE_LIB");
    let run = run_with_limit(cmd, CLIENT_LIMIT);
    run.assert_ok();
    let beside = Path::new(bin()).parent().unwrap().join("libpcp_secure.so");
    assert_eq!(run.stdout.trim(), beside.display().to_string());

    // Errors: the library or the command missing.
    let run = User::new("")
        .env("PCP_SECURE_LIB", "/nonexistent/libpcp_secure.so.1")
        .run(&["run", "--", "true"]);
    assert_eq!(code(&run), 125, "{}", run.describe());
    has(
        &run.stderr,
        "PCP_SECURE_LIB names \"/nonexistent/libpcp_secure.so.1\"",
        &run.describe(),
    );
    let run = User::new("").run(&["run", "--", "/nonexistent/command"]);
    assert_eq!(code(&run), 127, "{}", run.describe());
}

// ---------------------------------------------------------------------------
// systemd

#[test]
fn systemd_prints_and_installs_a_drop_in() {
    let user = User::new("");
    let lib = lib_path().display().to_string();
    let printed = user.run(&["systemd", "pmcd"]);
    printed.assert_ok();
    assert!(
        printed
            .stdout
            .ends_with(&format!("[Service]\nEnvironment=LD_PRELOAD={lib}\n")),
        "{}",
        printed.describe()
    );
    assert!(printed
        .stdout
        .starts_with("# /etc/systemd/system/pmcd.service.d/libpcp-secure.conf\n"));

    let root = user.root();
    let run = user.run(&[
        "systemd",
        "pmcd",
        "--install",
        "--root",
        root.to_str().unwrap(),
    ]);
    run.assert_ok();
    let path = root.join("etc/systemd/system/pmcd.service.d/libpcp-secure.conf");
    has(
        &run.stdout,
        format!("wrote {}", path.display()),
        &run.describe(),
    );
    has(
        &run.stdout,
        "systemctl daemon-reload && systemctl restart pmcd",
        &run.describe(),
    );
    assert_eq!(fs::read_to_string(&path).unwrap(), printed.stdout);
    let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o644);

    let run = user.run(&[
        "systemd",
        "pmlogger",
        "--install",
        "--root",
        root.to_str().unwrap(),
    ]);
    run.assert_ok();
    let text =
        fs::read_to_string(root.join("etc/systemd/system/pmlogger.service.d/libpcp-secure.conf"))
            .unwrap();
    assert!(
        text.contains(&format!("Environment=LD_PRELOAD={lib}\n")),
        "{text}"
    );
}

/// verify reports, for each running pmcd, whether the library is loaded
/// into it (a preload that only a restart would apply is seen).
#[test]
fn verify_reports_whether_running_pmcds_have_the_library() {
    let certs = Certs::new();
    let ours = Pmcd::builder()
        .preload_ours(true)
        .tls_conf(&certs.server_conf())
        .start();
    let stock = Pmcd::builder()
        .preload_ours(false)
        .tls_conf(&certs.server_conf())
        .start();
    let user = User::new("");
    let run = user.run(&["verify"]);
    let line = |pid: u32| {
        run.stdout
            .lines()
            .find(|l| l.contains(&format!("running pmcd: pmcd (pid {pid})")))
            .unwrap_or_else(|| panic!("no line for pmcd {pid}\n{}", run.describe()))
            .to_string()
    };
    let with = line(ours.pid());
    assert!(
        with.starts_with("ok") && with.contains("libpcp_secure"),
        "{with}"
    );
    let without = line(stock.pid());
    assert!(
        without.starts_with("warn") && without.contains("runs without libpcp_secure"),
        "{without}"
    );
}

/// `systemd --install` replaces its own unedited drop-in (a newer library
/// path or version), never one the administrator edited, unless --force.
#[test]
fn systemd_install_keeps_an_edited_drop_in_unless_forced() {
    install_keeps_an_edited_drop_in_unless_forced("pmcd", "Environment=PMCD_MAXPENDING=64");
}

/// The --install and --force rules for `service`'s drop-in; `edit` is the
/// line the administrator adds.
fn install_keeps_an_edited_drop_in_unless_forced(service: &str, edit: &str) {
    let user = User::new("");
    let root = user.root();
    let root_arg = root.to_str().unwrap();
    let path = root.join(format!(
        "etc/systemd/system/{service}.service.d/libpcp-secure.conf"
    ));
    user.run(&["systemd", service, "--install", "--root", root_arg])
        .assert_ok();
    let ours = fs::read_to_string(&path).unwrap();
    let run = user.run(&["systemd", service, "--install", "--root", root_arg]);
    run.assert_ok();
    has(
        &run.stdout,
        "already installed and up to date",
        &run.describe(),
    );

    // Written by an older pcp-secure for another library path: replaced.
    let older = ours
        .lines()
        .map(|l| {
            if l.starts_with("Environment=LD_PRELOAD=") {
                "Environment=LD_PRELOAD=/opt/old/libpcp_secure.so.1".to_string()
            } else if l.starts_with("# Written by pcp-secure (") {
                "# Written by pcp-secure (libpcp_secure 0.9.0 (rustls 0.23.0)).".to_string()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n";
    fs::write(&path, &older).unwrap();
    user.run(&["systemd", service, "--install", "--root", root_arg])
        .assert_ok();
    assert_eq!(fs::read_to_string(&path).unwrap(), ours);

    // Edited by the administrator: kept, and the refusal says how to go on.
    let edited = format!("{ours}{edit}\n");
    fs::write(&path, &edited).unwrap();
    let run = user.run(&["systemd", service, "--install", "--root", root_arg]);
    assert!(!run.success(), "{}", run.describe());
    has(
        &run.stderr,
        "was edited or not written by pcp-secure",
        &run.describe(),
    );
    has(&run.stderr, "--force", &run.describe());
    assert_eq!(fs::read_to_string(&path).unwrap(), edited);
    let run = user.run(&[
        "systemd",
        service,
        "--install",
        "--force",
        "--root",
        root_arg,
    ]);
    run.assert_ok();
    assert_eq!(fs::read_to_string(&path).unwrap(), ours);
}

/// `systemd pmproxy` prints and writes pmproxy's drop-in as for pmcd, with
/// the same --install and --force rules; an unknown service is a usage error.
#[test]
fn systemd_writes_a_pmproxy_drop_in() {
    let user = User::new("");
    let lib = lib_path().display().to_string();
    let printed = user.run(&["systemd", "pmproxy"]);
    printed.assert_ok();
    assert!(printed
        .stdout
        .starts_with("# /etc/systemd/system/pmproxy.service.d/libpcp-secure.conf\n"));
    assert!(
        printed
            .stdout
            .ends_with(&format!("[Service]\nEnvironment=LD_PRELOAD={lib}\n")),
        "{}",
        printed.describe()
    );
    has(
        &printed.stdout,
        "serves HTTPS with rustls",
        &printed.describe(),
    );
    lacks(&printed.stderr, "refusing", &printed.describe());

    let root = user.root();
    let run = user.run(&[
        "systemd",
        "pmproxy",
        "--install",
        "--root",
        root.to_str().unwrap(),
    ]);
    run.assert_ok();
    let path = root.join("etc/systemd/system/pmproxy.service.d/libpcp-secure.conf");
    has(
        &run.stdout,
        format!("wrote {}", path.display()),
        &run.describe(),
    );
    has(
        &run.stdout,
        "systemctl daemon-reload && systemctl restart pmproxy",
        &run.describe(),
    );
    assert_eq!(fs::read_to_string(&path).unwrap(), printed.stdout);
    let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o644);

    // verify sees the drop-in it wrote.
    let run = user.verify(&["--pmproxy", PMPROXY]);
    assert_check(
        &run,
        "pmproxy preload",
        "ok",
        &[
            "/etc/systemd/system/pmproxy.service.d/libpcp-secure.conf",
            "into pmproxy",
        ],
    );

    install_keeps_an_edited_drop_in_unless_forced("pmproxy", "Environment=PMPROXY_MAXPENDING=64");

    let run = user.run(&["systemd", "pmfoo"]);
    assert_eq!(code(&run), 2, "{}", run.describe());
}

// ---------------------------------------------------------------------------
// pmproxy

/// Writes `text` as pmproxy.conf below the user's root directory (where
/// verify looks by default).
fn write_pmproxy_conf(user: &User, text: &str) -> PathBuf {
    let path = user.root().join("etc/pcp/pmproxy/pmproxy.conf");
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(&path, text).unwrap();
    path
}

/// verify judges pmproxy's HTTPS as pmproxy itself would (PCP's
/// setup_secure_module): on with tls.conf's certificate, off with
/// secure.enabled = false in [pmproxy] or without a certificate, the old
/// pmproxy.conf TLS keys replacing tls.conf's; and Debian's pmproxy imports
/// only OpenSSL functions the library defines.
#[test]
fn verify_reports_pmproxys_https_setup() {
    let certs = Certs::new();
    let user = User::new(&certs.server_conf());
    let cert = certs.path("server.crt");

    // No pmproxy.conf: pmproxy's defaults, HTTPS from tls.conf.
    let run = user.verify(&["--pmproxy", PMPROXY]);
    assert_eq!(code(&run), 0, "{}", run.describe());
    assert_check(
        &run,
        "pmproxy binary",
        "ok",
        &[
            &format!("\"{PMPROXY}\""),
            "SSL_new",
            "SSL_read_ex",
            "rustls serves its HTTPS",
        ],
    );
    assert_check(&run, "pmproxy.conf", "ok", &["uses its defaults"]);
    assert_check(
        &run,
        "pmproxy HTTPS",
        "ok",
        &[
            "pmproxy serves HTTPS",
            &format!("tls-cert-file \"{cert}\""),
            "the certificate pmcd serves",
            "rustls serves it",
        ],
    );
    assert_check(
        &run,
        "pmproxy preload",
        "warn",
        &["pcp-secure systemd pmproxy --install"],
    );

    // Debian's shipped settings (secure.enabled = true, and the same key in
    // another section, which pmproxy does not read for this).
    let conf = write_pmproxy_conf(
        &user,
        "[pmproxy]\n# support SSL/TLS protocol wrapping\nsecure.enabled = true\n\
         [pmsearch]\nsecure.enabled = false\n",
    );
    let shown = conf.display().to_string();
    let run = user.verify(&["--pmproxy", PMPROXY]);
    assert_eq!(code(&run), 0, "{}", run.describe());
    assert_check(
        &run,
        "pmproxy.conf",
        "ok",
        &[&shown, "sets secure.enabled = true"],
    );
    assert_check(&run, "pmproxy HTTPS", "ok", &["pmproxy serves HTTPS"]);

    // secure.enabled = false: HTTP only (a warning, not a failure).
    write_pmproxy_conf(&user, "[pmproxy]\nsecure.enabled = false   ; no TLS here\n");
    let run = user.verify(&["--pmproxy", PMPROXY]);
    assert_eq!(code(&run), 0, "{}", run.describe());
    assert_check(&run, "pmproxy.conf", "ok", &["sets secure.enabled = false"]);
    assert_check(
        &run,
        "pmproxy HTTPS",
        "warn",
        &[&shown, "secure.enabled = false", "serves HTTP only"],
    );
    lacks(&run.stdout, "pmproxy serves HTTPS", &run.describe());

    // --pmproxy-conf names another file: the old TLS keys of pmproxy.conf
    // replace tls.conf's, and a missing file is named.
    let other = user.path("elsewhere.conf");
    fs::write(
        &other,
        "[pmproxy]\ncertificates = /nonexistent/pmproxy.crt\n",
    )
    .unwrap();
    let other_arg = other.to_str().unwrap();
    let run = user.verify(&["--pmproxy", PMPROXY, "--pmproxy-conf", other_arg]);
    assert_eq!(code(&run), 1, "{}", run.describe());
    assert_check(
        &run,
        "pmproxy.conf",
        "warn",
        &[other_arg, "certificates", "certificates → tls-cert-file"],
    );
    assert_check(
        &run,
        "pmproxy HTTPS",
        "FAIL",
        &["/nonexistent/pmproxy.crt", "serve HTTP only", other_arg],
    );
    let l = line(&run, "pmproxy HTTPS");
    assert!(
        !l.contains("Os {") && !l.contains("kind:"),
        "Debug text: {l}"
    );

    // No certificate in tls.conf: HTTP only.
    fs::remove_file(&conf).unwrap();
    user.set_conf(&certs.client_conf());
    let run = user.verify(&["--pmproxy", PMPROXY]);
    assert_check(
        &run,
        "pmproxy HTTPS",
        "warn",
        &["no tls-cert-file or tls-nssdb", "serves HTTP only"],
    );

    // No pmproxy below --root (and none named): one line, nothing else.
    let run = user.verify(&[]);
    assert_check(
        &run,
        "pmproxy",
        "ok",
        &["not installed", "nothing to check"],
    );
    lacks(&run.stdout, "pmproxy HTTPS", &run.describe());
}

/// Compiles a C program that imports `SSL_new` (ours) and `function` (not
/// ours) from libssl.
fn ssl_program(dir: &Path, function: &str) -> PathBuf {
    assert!(
        Path::new("/usr/include/openssl/ssl.h").exists(),
        "/usr/include/openssl/ssl.h is missing: run scripts/install-deps (it installs libssl-dev)"
    );
    let src = dir.join("imports.c");
    fs::write(
        &src,
        format!(
            "#include <openssl/ssl.h>\n\
             int main(int argc, char **argv) {{\n\
             \x20   (void)argv;\n\
             \x20   if (argc > 99) {{ SSL *s = SSL_new(NULL); {function}(s); }}\n\
             \x20   return 0;\n\
             }}\n"
        ),
    )
    .unwrap();
    let exe = dir.join("imports");
    let out = Command::new("gcc")
        .arg("-o")
        .arg(&exe)
        .arg(&src)
        .args(["-lssl", "-lcrypto"])
        .output()
        .expect("cannot run gcc (scripts/install-deps installs it)");
    assert!(
        out.status.success(),
        "gcc failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    exe
}

/// A pmproxy-like executable importing an `SSL_*` function the library does
/// not define fails the binary check, naming the function; its HTTPS stays
/// on libpcp's OpenSSL. An executable without libssl serves no HTTPS.
#[test]
fn verify_fails_a_pmproxy_importing_an_ssl_function_we_do_not_define() {
    let certs = Certs::new();
    let user = User::new(&certs.server_conf());
    let exe = ssl_program(user.dir.path(), "SSL_shutdown");
    let exe_arg = exe.to_str().unwrap();
    let run = user.verify(&["--pmproxy", exe_arg]);
    assert_eq!(code(&run), 1, "{}", run.describe());
    assert_check(
        &run,
        "pmproxy binary",
        "FAIL",
        &[
            &format!("\"{exe_arg}\" imports SSL_shutdown, which libpcp_secure does not define"),
            "stays on libpcp's OpenSSL",
            "defines SSL_shutdown",
        ],
    );
    lacks(line(&run, "pmproxy binary"), "SSL_new", &run.describe());
    assert_check(
        &run,
        "pmproxy HTTPS",
        "ok",
        &["pmproxy serves HTTPS", "libpcp's OpenSSL serves it"],
    );
    assert_eq!(fail_lines(&run).len(), 1, "{}", run.describe());

    // Such a pmproxy cannot serve HTTPS from an NSS database.
    user.set_conf("tls-nssdb = sql:/nonexistent/nssdb\n");
    let run = user.verify(&["--pmproxy", exe_arg]);
    assert_check(
        &run,
        "pmproxy HTTPS",
        "warn",
        &[
            "only tls-nssdb",
            "cannot read an NSS database",
            "serves HTTP only",
        ],
    );

    // Without libssl: no HTTPS server at all.
    let run = user.verify(&["--pmproxy", "/bin/true"]);
    assert_check(&run, "pmproxy binary", "warn", &["does not link libssl"]);
    assert_check(
        &run,
        "pmproxy HTTPS",
        "warn",
        &["built without OpenSSL", "serves HTTP only"],
    );

    // Not an executable.
    let text = user.conf();
    let run = user.verify(&["--pmproxy", text.to_str().unwrap()]);
    assert_check(
        &run,
        "pmproxy binary",
        "FAIL",
        &["is not an ELF64 executable"],
    );
}

/// The pid of a private pmproxy (the process given its socket path).
fn pmproxy_pid(proxy: &Pmproxy) -> u32 {
    let socket = proxy.file("pmproxy.socket");
    let socket = socket.to_str().unwrap();
    fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .find(|pid| {
            fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| c.split(|b| *b == 0).any(|arg| arg == socket.as_bytes()))
        })
        .unwrap_or_else(|| panic!("no process runs with {socket}\n{}", proxy.output()))
}

/// verify reports, for each running pmproxy, whether the library is loaded
/// into it.
#[test]
fn verify_reports_whether_running_pmproxies_have_the_library() {
    let certs = Certs::new();
    let ours = Pmproxy::builder()
        .preload_ours(true)
        .tls_conf(&certs.server_conf())
        .start();
    let stock = Pmproxy::builder()
        .preload_ours(false)
        .tls_conf(&certs.server_conf())
        .start();
    let user = User::new("");
    let run = user.run(&["verify"]);
    let line = |pid: u32| {
        run.stdout
            .lines()
            .find(|l| l.contains(&format!("running pmproxy: pmproxy (pid {pid})")))
            .unwrap_or_else(|| panic!("no line for pmproxy {pid}\n{}", run.describe()))
            .to_string()
    };
    let with = line(pmproxy_pid(&ours));
    assert!(
        with.starts_with("ok") && with.contains("libpcp_secure"),
        "{with}"
    );
    let without = line(pmproxy_pid(&stock));
    assert!(
        without.starts_with("warn")
            && without.contains("runs without libpcp_secure")
            && without.contains("libpcp's OpenSSL")
            && without.contains("systemctl restart pmproxy"),
        "{without}"
    );
}
