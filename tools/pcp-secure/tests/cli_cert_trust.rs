//! Tests of `pcp-secure cert` and `pcp-secure trust` (issue 5): the built
//! binary run on temporary directories. The certificates it issues are
//! checked with the openssl CLI and then used by Debian's real pmcd and
//! pminfo over TLS through libpcp_secure; the trust store is driven through
//! add, list, show and remove, and a corrupt store is reported untouched.

use pcp_secure_test_support as support;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use support::*;
use tempfile::TempDir;

const LOAD: &str = "kernel.all.load";
const STORE_FILE: &str = "trusted-servers.pem";
/// Upper bound for one run of the tool; only there to turn a hang into a failure.
const TOOL_LIMIT: Duration = Duration::from_secs(60);

fn tempdir(prefix: &str) -> TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .expect("cannot create a temporary directory")
}

/// Runs `pcp-secure ARGS` in a clean environment: PATH, LC_ALL=C, HOME in
/// `home` (so nothing of the person running the tests is read or written)
/// plus `env`.
fn tool(home: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pcp-secure"));
    cmd.env_clear()
        .env(
            "PATH",
            std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into()),
        )
        .env("LC_ALL", "C")
        .env("HOME", home)
        .current_dir(home)
        .args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    // The modes checked below are those asked for under the usual umask.
    // SAFETY: umask is async-signal-safe and touches no memory.
    unsafe {
        cmd.pre_exec(|| {
            libc::umask(0o022);
            Ok(())
        });
    }
    run_with_limit(cmd, TOOL_LIMIT)
}

/// Runs the openssl CLI; returns the run (not asserted).
fn openssl(args: &[&str]) -> Run {
    let mut cmd = Command::new("/usr/bin/openssl");
    cmd.env_clear().env("LC_ALL", "C").args(args);
    run_with_limit(cmd, TOOL_LIMIT)
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// The mode `cert server` gives a server key: 0640 (group pcp, for pmcd
/// running as pcp) when run as root on a machine with user pcp, else 0600.
fn server_key_mode() -> u32 {
    if is_root() && user_ids("pcp").is_some() {
        0o640
    } else {
        0o600
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn s(path: &Path) -> &str {
    path.to_str().expect("UTF-8 temporary path")
}

/// The `tls-...= value` lines the tool printed, as (key, value) pairs.
fn tls_lines(run: &Run) -> Vec<(String, String)> {
    run.stdout
        .lines()
        .filter(|l| l.starts_with("tls-"))
        .filter_map(|l| l.split_once(" = "))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn conf_from(pairs: &[(String, String)]) -> String {
    let pairs: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    tls_conf(&pairs)
}

/// A CA, a server certificate for `hosts` and a client certificate
/// "monitor" made by the tool in a fresh directory.
struct Pki {
    home: TempDir,
    server_run: Run,
    client_run: Run,
}

impl Pki {
    fn new(hosts: &[&str]) -> Pki {
        ensure_deps();
        let home = tempdir("pcp-secure-cli-cert.");
        let dir = home.path().join("pki");
        tool(
            home.path(),
            &["cert", "ca", "--dir", s(&dir), "--name", "cli test CA"],
            &[],
        )
        .assert_ok();
        let mut args = vec!["cert", "server"];
        args.extend_from_slice(hosts);
        args.extend_from_slice(&["--dir", s(&dir)]);
        let server_run = tool(home.path(), &args, &[]);
        server_run.assert_ok();
        let client_run = tool(
            home.path(),
            &["cert", "client", "monitor", "--dir", s(&dir)],
            &[],
        );
        client_run.assert_ok();
        Pki {
            home,
            server_run,
            client_run,
        }
    }

    fn dir(&self) -> PathBuf {
        self.home.path().join("pki")
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir().join(name)
    }
}

/// The text of one openssl x509 extension of `cert`.
fn extension(cert: &Path, name: &str) -> String {
    let run = openssl(&["x509", "-in", s(cert), "-noout", "-ext", name]);
    run.assert_ok();
    run.stdout
}

// ---------------------------------------------------------------------------
// cert

#[test]
fn cert_makes_a_ca_server_and_client_openssl_accepts() {
    let pki = Pki::new(&["localhost", "127.0.0.1", "::1", "collector.example.com"]);
    for (name, want) in [
        ("ca.crt", 0o644),
        ("ca.key", 0o600),
        ("server.crt", 0o644),
        ("server.key", server_key_mode()),
        ("monitor.crt", 0o644),
        ("monitor.key", 0o600),
    ] {
        assert_eq!(mode(&pki.file(name)), want, "mode of {name}");
    }

    // The CA.
    let ca = pki.file("ca.crt");
    let subject = openssl(&[
        "x509",
        "-in",
        s(&ca),
        "-noout",
        "-subject",
        "-nameopt",
        "oneline",
    ]);
    assert!(
        subject.stdout.contains("CN = cli test CA"),
        "{}",
        subject.describe()
    );
    let bc = extension(&ca, "basicConstraints");
    assert!(bc.contains("critical") && bc.contains("CA:TRUE"), "{bc}");
    let ku = extension(&ca, "keyUsage");
    assert!(
        ku.contains("Certificate Sign") && ku.contains("CRL Sign"),
        "{ku}"
    );

    // The leaves verify against the CA (openssl reads the first certificate
    // of each file: the leaf).
    for leaf in ["server.crt", "monitor.crt"] {
        let run = openssl(&["verify", "-CAfile", s(&ca), s(&pki.file(leaf))]);
        run.assert_ok();
        assert!(run.stdout.contains(": OK"), "{}", run.describe());
    }
    // server.crt is a chain: the leaf, then the CA certificate itself.
    let chain = fs::read_to_string(pki.file("server.crt")).unwrap();
    assert_eq!(
        chain.matches("-----BEGIN CERTIFICATE-----").count(),
        2,
        "{chain}"
    );
    assert!(
        chain.ends_with(&fs::read_to_string(&ca).unwrap()),
        "{chain}"
    );

    let server = pki.file("server.crt");
    let san = extension(&server, "subjectAltName");
    for want in [
        "DNS:localhost",
        "IP Address:127.0.0.1",
        "IP Address:0:0:0:0:0:0:0:1",
        "DNS:collector.example.com",
    ] {
        assert!(san.contains(want), "no {want} in\n{san}");
    }
    let subject = openssl(&[
        "x509",
        "-in",
        s(&server),
        "-noout",
        "-subject",
        "-nameopt",
        "oneline",
    ]);
    assert!(
        subject.stdout.contains("CN = localhost"),
        "{}",
        subject.describe()
    );
    let eku = extension(&server, "extendedKeyUsage");
    assert!(
        eku.contains("TLS Web Server Authentication")
            && eku.contains("TLS Web Client Authentication"),
        "{eku}"
    );
    assert!(extension(&server, "basicConstraints").contains("CA:FALSE"));
    let purpose = openssl(&[
        "verify",
        "-CAfile",
        s(&ca),
        "-purpose",
        "sslserver",
        s(&server),
    ]);
    purpose.assert_ok();

    let client = pki.file("monitor.crt");
    let eku = extension(&client, "extendedKeyUsage");
    assert!(eku.contains("TLS Web Client Authentication"), "{eku}");
    assert!(!eku.contains("Server"), "{eku}");
    let subject = openssl(&[
        "x509",
        "-in",
        s(&client),
        "-noout",
        "-subject",
        "-nameopt",
        "oneline",
    ]);
    assert!(
        subject.stdout.contains("CN = monitor"),
        "{}",
        subject.describe()
    );
    let purpose = openssl(&[
        "verify",
        "-CAfile",
        s(&ca),
        "-purpose",
        "sslclient",
        s(&client),
    ]);
    purpose.assert_ok();

    // The keys belong to the certificates.
    for name in ["ca", "server", "monitor"] {
        let from_cert = openssl(&[
            "x509",
            "-in",
            s(&pki.file(&format!("{name}.crt"))),
            "-noout",
            "-pubkey",
        ]);
        let from_key = openssl(&[
            "pkey",
            "-in",
            s(&pki.file(&format!("{name}.key"))),
            "-pubout",
        ]);
        from_cert.assert_ok();
        from_key.assert_ok();
        assert_eq!(from_cert.stdout, from_key.stdout, "key of {name}");
    }

    // What to put in tls.conf, with absolute paths.
    let dir = fs::canonicalize(pki.dir()).unwrap();
    let at = |n: &str| dir.join(n).to_str().unwrap().to_string();
    assert_eq!(
        tls_lines(&pki.server_run),
        vec![
            ("tls-cert-file".to_string(), at("server.crt")),
            ("tls-key-file".to_string(), at("server.key")),
            ("tls-ca-cert-file".to_string(), at("ca.crt")),
        ],
        "{}",
        pki.server_run.describe()
    );
    assert_eq!(
        tls_lines(&pki.client_run),
        vec![
            ("tls-ca-cert-file".to_string(), at("ca.crt")),
            ("tls-client-cert-file".to_string(), at("monitor.crt")),
            ("tls-client-key-file".to_string(), at("monitor.key")),
        ],
        "{}",
        pki.client_run.describe()
    );
}

#[test]
fn cert_never_overwrites_without_force() {
    let pki = Pki::new(&["localhost"]);
    let home = pki.home.path();
    let dir = pki.dir();
    let before: Vec<(String, Vec<u8>)> = [
        "ca.crt",
        "ca.key",
        "server.crt",
        "server.key",
        "monitor.crt",
        "monitor.key",
    ]
    .iter()
    .map(|n| (n.to_string(), fs::read(dir.join(n)).unwrap()))
    .collect();
    for args in [
        vec!["cert", "ca", "--dir", s(&dir)],
        vec!["cert", "server", "localhost", "--dir", s(&dir)],
        vec!["cert", "client", "monitor", "--dir", s(&dir)],
    ] {
        let run = tool(home, &args, &[]);
        run.assert_failed();
        assert!(
            run.stderr.contains("already exists") && run.stderr.contains("--force"),
            "{}",
            run.describe()
        );
        assert!(
            run.stderr.contains(".crt") || run.stderr.contains(".key"),
            "the error must name the file\n{}",
            run.describe()
        );
    }
    for (name, bytes) in &before {
        assert_eq!(
            &fs::read(dir.join(name)).unwrap(),
            bytes,
            "{name} was changed"
        );
    }

    // Only the key exists: nothing is written either (no half-made pair).
    fs::remove_file(dir.join("monitor.crt")).unwrap();
    let run = tool(home, &["cert", "client", "monitor", "--dir", s(&dir)], &[]);
    run.assert_failed();
    assert!(run.stderr.contains("monitor.key"), "{}", run.describe());
    assert!(!dir.join("monitor.crt").exists());

    // With --force the files are replaced, with the right modes even where
    // the old file had another one.
    fs::set_permissions(dir.join("server.key"), fs::Permissions::from_mode(0o644)).unwrap();
    tool(
        home,
        &[
            "cert",
            "server",
            "localhost",
            "other.example",
            "--dir",
            s(&dir),
            "--force",
        ],
        &[],
    )
    .assert_ok();
    assert_ne!(fs::read(dir.join("server.crt")).unwrap(), before[2].1);
    assert_eq!(mode(&dir.join("server.key")), server_key_mode());
    assert_eq!(mode(&dir.join("server.crt")), 0o644);
    assert!(extension(&dir.join("server.crt"), "subjectAltName").contains("DNS:other.example"));
    let run = openssl(&[
        "verify",
        "-CAfile",
        s(&dir.join("ca.crt")),
        s(&dir.join("server.crt")),
    ]);
    run.assert_ok();
    let leftovers: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // Replacing the CA says what it breaks: the certificates it issued
    // (named: server.crt; monitor.crt was removed above), and every client
    // and pmcd trusting it.
    let old_ca = openssl_sha256(&dir.join("ca.crt"));
    let run = tool(home, &["cert", "ca", "--dir", s(&dir), "--force"], &[]);
    run.assert_ok();
    for words in [
        "warning: replacing the CA",
        old_ca.as_str(),
        "breaks every certificate it issued",
        "server.crt",
        "every client and pmcd that trusts the old CA",
    ] {
        assert!(
            run.stderr.contains(words),
            "no {words:?}\n{}",
            run.describe()
        );
    }
    assert_ne!(openssl_sha256(&dir.join("ca.crt")), old_ca);
    // A new CA, where there was none, has nothing to warn about.
    let fresh = tempdir("pcp-secure-cli-ca.");
    let run = tool(
        home,
        &["cert", "ca", "--dir", s(fresh.path()), "--force"],
        &[],
    );
    run.assert_ok();
    assert!(!run.stderr.contains("warning"), "{}", run.describe());
}

#[test]
fn cert_explains_a_missing_ca_and_bad_hosts() {
    let home = tempdir("pcp-secure-cli-cert.");
    let dir = home.path().join("empty");
    let run = tool(
        home.path(),
        &["cert", "server", "localhost", "--dir", s(&dir)],
        &[],
    );
    run.assert_failed();
    assert!(
        run.stderr.contains("ca.crt") && run.stderr.contains("pcp-secure cert ca"),
        "{}",
        run.describe()
    );
    tool(home.path(), &["cert", "ca", "--dir", s(&dir)], &[]).assert_ok();
    let run = tool(
        home.path(),
        &["cert", "server", "collector:44321", "--dir", s(&dir)],
        &[],
    );
    run.assert_failed();
    assert!(
        run.stderr.contains("collector:44321") && run.stderr.contains("port"),
        "{}",
        run.describe()
    );
    assert!(!dir.join("server.crt").exists() && !dir.join("server.key").exists());
    let help = tool(home.path(), &["cert", "ca", "--help"], &[]);
    help.assert_ok();
    assert!(
        help.stdout.contains("ECDSA") && help.stdout.contains("RSA"),
        "{}",
        help.describe()
    );
}

/// The issued certificates used by Debian's pmcd (-Q: client certificates
/// required) and pminfo, both with libpcp_secure preloaded: the client
/// verifies the server against the CA and presents its own certificate.
#[test]
fn issued_certificates_work_with_real_pmcd_and_pminfo() {
    let pki = Pki::new(&["localhost", "127.0.0.1", "::1"]);
    let server_conf = conf_from(&tls_lines(&pki.server_run));
    let client_conf = conf_from(&tls_lines(&pki.client_run));
    let mut pmcd = Pmcd::builder()
        .preload_ours(true)
        .tls_conf(&server_conf)
        .cert_required(true)
        .start();
    let served = format!(
        "serving TLS 1.2/1.3 with certificate \"{}\"",
        s(&fs::canonicalize(pki.file("server.crt")).unwrap())
    );
    assert!(
        pmcd.wait_for_log(LOG_LIMIT, |log| log.contains(&served)),
        "pmcd does not serve the issued certificate ({served})\n{}",
        pmcd.log()
    );

    let good = Client::new(&client_conf).ours().secure("enforce");
    for host in [pmcd.host_named("localhost"), pmcd.host_named("127.0.0.1")] {
        let run = good.fetch(&host, &[LOAD]);
        assert_load_values(&run);
        assert!(run.pcp_secure_lines().is_empty(), "{}", run.describe());
    }

    // Without a client certificate, pmcd -Q refuses the client.
    let ca_only = tls_conf(&[("tls-ca-cert-file", s(&pki.file("ca.crt")))]);
    let run = Client::new(&ca_only)
        .ours()
        .secure("enforce")
        .fetch(&pmcd.host_named("localhost"), &[LOAD]);
    run.assert_failed();
    assert!(
        run.stderr.contains("requires a client certificate"),
        "{}",
        run.describe()
    );

    // The client really verifies the server: trusting another CA made by
    // the tool (and with no terminal to ask), it refuses the server.
    let other = tempdir("pcp-secure-cli-other.");
    tool(
        other.path(),
        &["cert", "ca", "--dir", s(other.path()), "--name", "other CA"],
        &[],
    )
    .assert_ok();
    let wrong_ca: Vec<(String, String)> = tls_lines(&pki.client_run)
        .into_iter()
        .map(|(k, v)| match k.as_str() {
            "tls-ca-cert-file" => (k, s(&other.path().join("ca.crt")).to_string()),
            _ => (k, v),
        })
        .collect();
    let wrong_ca = conf_from(&wrong_ca);
    let run = Client::new(&wrong_ca)
        .ours()
        .secure("enforce")
        .fetch(&pmcd.host_named("localhost"), &[LOAD]);
    run.assert_failed();
    assert!(
        run.pcp_secure_lines()
            .iter()
            .any(|l| l.contains("not trusted")),
        "{}",
        run.describe()
    );
    assert!(!run.stdout.contains(" value "), "{}", run.describe());
    pmcd.assert_running();
}

/// Issue 16, point 1: `cert server` run as root issues a key that the user
/// pmcd runs as can read (owner root, group pcp, 0640, nothing for others),
/// and pmcd running as pcp serves TLS with it; `verify` (as root) says the
/// files are readable by pcp. The same key made root-only again (0600):
/// pmcd running as pcp says in its log that TLS is configured but off,
/// naming the key, its user and the fix; pmcd.feature.secure is 0, a
/// client enforcing TLS is refused, and `verify` says FAIL naming the key.
#[test]
fn server_key_issued_by_root_serves_pmcd_running_as_pcp() {
    assert!(
        is_root(),
        "this test gives files to user pcp and must run as root"
    );
    let (pcp_uid, pcp_gid) = user_ids("pcp").expect("user pcp exists (Debian's pcp package)");
    let pki = Pki::new(&["localhost", "127.0.0.1"]);
    // The temporary home is root's 0700: let pmcd's user reach the files.
    fs::set_permissions(pki.home.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let key = pki.file("server.key");
    let meta = fs::metadata(&key).unwrap();
    assert_eq!(
        (meta.uid(), meta.gid(), meta.mode() & 0o777),
        (0, pcp_gid, 0o640),
        "server.key must be root:pcp 0640\n{}",
        pki.server_run.describe()
    );
    assert!(
        pki.server_run.stdout.contains("readable by user pcp"),
        "{}",
        pki.server_run.describe()
    );
    let server_conf = conf_from(&tls_lines(&pki.server_run));
    let client = Client::new(&tls_conf(&[("tls-ca-cert-file", s(&pki.file("ca.crt")))]))
        .ours()
        .secure("enforce");
    let secure = |pmcd: &Pmcd| {
        let run = Client::new("")
            .stock()
            .fetch(&pmcd.host(), &["pmcd.feature.secure"]);
        run.value_of("pmcd.feature.secure")
            .unwrap_or_else(|| panic!("no pmcd.feature.secure\n{}", run.describe()))
    };
    let verify = |pmcd: &Pmcd| {
        tool(
            pki.home.path(),
            &["verify", "--host", "localhost"],
            &[("PCP_TLSCONF_PATH", s(&pmcd.dir().join("tls.conf")))],
        )
    };

    let pmcd = Pmcd::builder()
        .preload_ours(true)
        .tls_conf(&server_conf)
        .run_as("pcp")
        .start();
    let status = fs::read_to_string(format!("/proc/{}/status", pmcd.pid())).unwrap();
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("Uid:")
                && l.split_whitespace().nth(2) == Some(&pcp_uid.to_string())),
        "pmcd does not run as pcp:\n{status}"
    );
    assert_eq!(secure(&pmcd), "1", "{}", pmcd.log());
    assert_load_values(&client.fetch(&pmcd.host_named("localhost"), &[LOAD]));
    let run = verify(&pmcd);
    for line in [
        format!(
            "ok   tls-key-file readable by pcp: tls-key-file \"{}\" is readable by pcp",
            s(&key)
        ),
        "ok   server TLS setup".to_string(),
    ] {
        assert!(
            run.stdout.contains(&line),
            "no {line:?}\n{}",
            run.describe()
        );
    }
    drop(pmcd);

    // Root-only, as `cert server` wrote keys before.
    std::os::unix::fs::chown(&key, Some(0), Some(0)).unwrap();
    fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).unwrap();
    let pmcd = Pmcd::builder()
        .preload_ours(true)
        .tls_conf(&server_conf)
        .run_as("pcp")
        .start();
    let told = format!(
        "pmcd runs as user \"pcp\", which cannot read tls-key-file \"{}\"",
        s(&key)
    );
    assert!(
        pmcd.wait_for_log(LOG_LIMIT, |log| log.lines().any(|l| l
            .starts_with("pcp_secure: error:")
            && l.contains(&told)
            && l.contains("chgrp pcp")
            && l.contains(
                "TLS is configured but OFF: pmcd serves plain connections only"
            ))),
        "pmcd.log does not say that TLS is off and why:\n{}",
        pmcd.log()
    );
    assert_eq!(secure(&pmcd), "0", "{}", pmcd.log());
    let refused = client.fetch(&pmcd.host_named("localhost"), &[LOAD]);
    refused.assert_failed();
    assert!(
        !refused.stdout.contains(" value "),
        "{}",
        refused.describe()
    );
    let run = verify(&pmcd);
    run.assert_failed();
    for line in [
        format!("FAIL tls-key-file readable by pcp: tls-key-file \"{}\" is not readable by pcp (uid {pcp_uid}), the user pmcd runs as", s(&key)),
        "FAIL server TLS setup: pmcd, running as user pcp, cannot read the files named above".to_string(),
    ] {
        assert!(run.stdout.contains(&line), "no {line:?}\n{}", run.describe());
    }
    assert!(
        run.stdout
            .contains(&format!("chgrp pcp \"{}\" && chmod 0640", s(&key))),
        "{}",
        run.describe()
    );
}

// ---------------------------------------------------------------------------
// trust

/// A user with a temporary HOME and PCP_SECURE_DB_PATH.
struct User {
    home: TempDir,
}

impl User {
    fn new() -> User {
        User {
            home: tempdir("pcp-secure-cli-trust."),
        }
    }

    fn db(&self) -> PathBuf {
        self.home.path().join("db")
    }

    fn store(&self) -> PathBuf {
        self.db().join(STORE_FILE)
    }

    fn trust(&self, args: &[&str]) -> Run {
        let mut all = vec!["trust"];
        all.extend_from_slice(args);
        tool(
            self.home.path(),
            &all,
            &[("PCP_SECURE_DB_PATH", s(&self.db()))],
        )
    }
}

fn openssl_sha256(cert: &Path) -> String {
    let run = openssl(&["x509", "-in", s(cert), "-noout", "-fingerprint", "-sha256"]);
    run.assert_ok();
    run.stdout
        .trim()
        .rsplit_once('=')
        .map(|(_, fp)| fp.to_string())
        .unwrap_or_else(|| panic!("no fingerprint in {}", run.describe()))
}

#[test]
fn trust_add_list_show_remove_round_trip() {
    let pki = Pki::new(&["localhost", "127.0.0.1"]);
    let user = User::new();
    let server = pki.file("server.crt");
    let fingerprint = openssl_sha256(&server);

    let run = user.trust(&["list"]);
    run.assert_ok();
    assert_eq!(
        run.stdout.trim(),
        format!("(no trusted servers in {})", s(&user.store())),
        "{}",
        run.describe()
    );

    let run = user.trust(&["add", "localhost", s(&server)]);
    run.assert_ok();
    assert!(run.stdout.contains(&fingerprint), "{}", run.describe());
    assert_eq!(mode(&user.store()), 0o600);
    assert_eq!(mode(&user.db()), 0o700);
    // The library's own reader accepts what the tool wrote.
    let entries = pcp_secure::api::trust::TrustStore::in_dir(user.db())
        .load()
        .unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].host, "localhost");

    let run = user.trust(&["list"]);
    run.assert_ok();
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{}", run.describe());
    assert!(lines[0].starts_with("localhost "), "{}", run.describe());
    assert!(lines[0].contains(&fingerprint), "{}", run.describe());
    assert!(lines[0].contains("CN=localhost"), "{}", run.describe());
    let end = openssl(&["x509", "-in", s(&server), "-noout", "-enddate"]);
    let year = end
        .stdout
        .trim()
        .rsplit(' ')
        .nth(1)
        .unwrap_or_default()
        .to_string();
    assert!(
        !year.is_empty() && lines[0].contains(&year),
        "no end year {year}\n{}",
        run.describe()
    );

    let run = user.trust(&["show", "localhost"]);
    run.assert_ok();
    assert!(
        run.stdout
            .contains(&format!("SHA256 fingerprint is {fingerprint}")),
        "{}",
        run.describe()
    );
    for want in [
        "SHA1 fingerprint is ",
        "Subject: CN=localhost",
        "Issuer: CN=cli test CA",
        "Valid from ",
        "Names: DNS:localhost, IP:127.0.0.1",
    ] {
        assert!(run.stdout.contains(want), "no {want:?}\n{}", run.describe());
    }

    let run = user.trust(&["show", "elsewhere.example"]);
    run.assert_failed();
    assert!(
        run.stderr.contains("elsewhere.example"),
        "{}",
        run.describe()
    );

    // --db overrides the environment.
    let other = user.home.path().join("other-db");
    let run = tool(
        user.home.path(),
        &["trust", "--db", s(&other), "add", "127.0.0.1", s(&server)],
        &[("PCP_SECURE_DB_PATH", s(&user.db()))],
    );
    run.assert_ok();
    assert!(other.join(STORE_FILE).is_file());
    assert_eq!(user.trust(&["list"]).stdout.lines().count(), 1);

    let run = user.trust(&["remove", "localhost"]);
    run.assert_ok();
    assert!(run.stdout.contains("localhost"), "{}", run.describe());
    let run = user.trust(&["list"]);
    run.assert_ok();
    assert!(
        run.stdout.starts_with("(no trusted servers in "),
        "{}",
        run.describe()
    );
    let run = user.trust(&["remove", "localhost"]);
    run.assert_failed();
    assert!(run.stderr.contains("localhost"), "{}", run.describe());

    // Without PCP_SECURE_DB_PATH the store is under HOME, as for the library.
    let run = tool(
        user.home.path(),
        &["trust", "add", "localhost", s(&server)],
        &[],
    );
    run.assert_ok();
    assert!(
        user.home.path().join(".pcp/tls").join(STORE_FILE).is_file(),
        "{}",
        run.describe()
    );
}

/// Issue 16, point 5: `trust add HOST:PORT` fetches a live pmcd's
/// certificate (the PCP exchange and a TLS handshake), shows its
/// fingerprints and saves it only when told (`--yes`; without a terminal
/// nobody is asked). Two pmcds on one host with different self-signed
/// certificates get one entry each, and a client trusts each on its own
/// port without a question, whatever the case of the host name. A removed
/// entry makes the client refuse again, saying to run `trust add
/// HOST:PORT`. `--user pcp` (as root) writes a store owned by pcp, which
/// pminfo running as pcp then uses.
#[test]
fn trust_add_fetches_live_servers_per_port_and_for_another_user() {
    let certs = Certs::new();
    let one = Pmcd::builder()
        .preload_ours(true)
        .tls_conf(&certs.server_conf_with("selfsigned"))
        .start();
    let two = Pmcd::builder()
        .preload_ours(true)
        .tls_conf(&certs.server_conf_with("selfsigned2"))
        .start();
    let (first, second) = (
        openssl_sha256(Path::new(&certs.path("selfsigned.crt"))),
        openssl_sha256(Path::new(&certs.path("selfsigned2.crt"))),
    );
    assert_ne!(first, second);
    let user = User::new();
    let key_one = format!("localhost:{}", one.port());
    let key_two = format!("localhost:{}", two.port());

    // No terminal, no --yes: shown, not saved.
    let run = user.trust(&["add", &key_one]);
    run.assert_failed();
    assert!(
        run.stdout
            .contains(&format!("SHA256 fingerprint is {first}")),
        "{}",
        run.describe()
    );
    assert!(run.stderr.contains("--yes"), "{}", run.describe());
    assert!(!user.store().exists(), "{}", run.describe());

    let run = user.trust(&["add", &key_one, "--yes"]);
    run.assert_ok();
    assert!(
        run.stdout
            .contains(&format!("SHA256 fingerprint is {first}")),
        "{}",
        run.describe()
    );
    assert!(
        run.stdout.contains(&format!("trusted for {key_one} in ")),
        "{}",
        run.describe()
    );
    let upper = format!("LOCALHOST:{}", two.port());
    user.trust(&["add", &upper, "--yes"]).assert_ok();
    let entries = pcp_secure::api::trust::TrustStore::in_dir(user.db())
        .load()
        .unwrap();
    let hosts: Vec<&str> = entries.iter().map(|e| e.host.as_str()).collect();
    assert_eq!(hosts, [key_one.as_str(), key_two.as_str()]);
    let run = user.trust(&["show", &key_two]);
    run.assert_ok();
    assert!(run.stdout.contains(&second), "{}", run.describe());

    let client = Client::new("")
        .ours()
        .secure("enforce")
        .env("PCP_SECURE_DB_PATH", s(&user.db()));
    for host in [
        key_one.clone(),
        key_two.clone(),
        format!("LocalHost:{}", one.port()),
    ] {
        let run = client.fetch(&host, &[LOAD]);
        assert_load_values(&run);
        assert!(run.pcp_secure_lines().is_empty(), "{}", run.describe());
    }

    user.trust(&["remove", &key_two]).assert_ok();
    let run = client.fetch(&key_two, &[LOAD]);
    run.assert_failed();
    assert!(
        run.stderr
            .contains(&format!("pcp-secure trust add {key_two}`")),
        "the refusal must say how to trust the server\n{}",
        run.describe()
    );
    assert_load_values(&client.fetch(&key_one, &[LOAD]));

    // Nothing to fetch: a clear error naming the server.
    let closed = format!("127.0.0.1:{}", free_port(false));
    let run = user.trust(&["add", &closed, "--yes"]);
    run.assert_failed();
    assert!(
        run.stderr.contains("cannot connect to 127.0.0.1:"),
        "{}",
        run.describe()
    );

    // For user pcp, as root: the store and its directory are pcp's.
    assert!(
        is_root(),
        "this part writes a store for user pcp and must run as root"
    );
    let (pcp_uid, _) = user_ids("pcp").expect("user pcp exists");
    let shared = tempdir("pcp-secure-cli-pcp.");
    fs::set_permissions(shared.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let pcp_db = shared.path().join("pcp-tls");
    let run = user.trust(&[
        "--user",
        "pcp",
        "--db",
        s(&pcp_db),
        "add",
        &key_one,
        "--yes",
    ]);
    run.assert_ok();
    assert!(run.stdout.contains("of user pcp"), "{}", run.describe());
    for path in [pcp_db.clone(), pcp_db.join(STORE_FILE)] {
        let meta = fs::metadata(&path).unwrap();
        assert_eq!(meta.uid(), pcp_uid, "{} must belong to pcp", path.display());
        assert_eq!(
            meta.mode() & 0o077,
            0,
            "{} is open to others",
            path.display()
        );
    }
    let conf = shared.path().join("tls.conf");
    fs::write(&conf, "").unwrap();
    let as_pcp = pcp_client(
        "/usr/bin/setpriv",
        &[
            "--reuid",
            "pcp",
            "--regid",
            "pcp",
            "--init-groups",
            "--",
            PMINFO,
            "-h",
            &key_one,
            "-f",
            LOAD,
        ],
        &[
            ("PCP_TLSCONF_PATH", s(&conf)),
            ("PCP_SECURE_DB_PATH", s(&pcp_db)),
            ("PCP_SECURE_SOCKETS", "enforce"),
        ],
        true,
    );
    assert_load_values(&as_pcp);
    let run = user.trust(&["--user", "pcp", "--db", s(&pcp_db), "list"]);
    run.assert_ok();
    assert!(
        run.stdout.starts_with(&format!("{key_one} ")),
        "{}",
        run.describe()
    );
}

/// At a terminal, `trust add HOST:PORT` asks after showing the
/// certificate: "n" saves nothing, "y" saves it (a pty: tests/peers/pty_run.py).
#[test]
fn trust_add_asks_at_a_terminal() {
    let certs = Certs::new();
    let pmcd = Pmcd::builder()
        .preload_ours(true)
        .tls_conf(&certs.server_conf_with("selfsigned"))
        .start();
    let user = User::new();
    let key = format!("localhost:{}", pmcd.port());
    let at_terminal = |answer: &str| {
        let transcript = user.home.path().join("transcript");
        let mut cmd = Command::new("python3");
        cmd.arg(manifest_dir().join("tests/peers/pty_run.py"))
            .args(["--timeout", "60", "--no-wait-raw", "--transcript"])
            .arg(&transcript)
            .args(["--env", &format!("PCP_SECURE_DB_PATH={}", s(&user.db()))])
            .args([
                "--expect",
                "Trust this certificate for localhost:[0-9]+ in .*\\(y/n\\)\\? ",
            ])
            .args([
                "--send",
                answer,
                "--",
                env!("CARGO_BIN_EXE_pcp-secure"),
                "trust",
                "add",
                &key,
            ]);
        let run = run_with_limit(cmd, TOOL_LIMIT);
        let shown = fs::read_to_string(&transcript).unwrap_or_default();
        (run, shown)
    };
    let fingerprint = openssl_sha256(Path::new(&certs.path("selfsigned.crt")));
    let (run, shown) = at_terminal("n\n");
    assert_eq!(run.stdout.trim(), "exit 1", "{}\n{shown}", run.describe());
    assert!(
        shown.contains(&format!("SHA256 fingerprint is {fingerprint}")),
        "{shown}"
    );
    assert!(shown.contains("not trusted: nothing saved"), "{shown}");
    assert!(!user.store().exists(), "{shown}");
    let (run, shown) = at_terminal("y\n");
    assert_eq!(run.stdout.trim(), "exit 0", "{}\n{shown}", run.describe());
    assert!(shown.contains(&format!("trusted for {key} in ")), "{shown}");
    let entries = pcp_secure::api::trust::TrustStore::in_dir(user.db())
        .load()
        .unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].host, key);
}

/// `add --ca` refuses a certificate that is not a CA; a CA is shown and
/// removed by its label (`--ca`), apart from a server of the same name.
#[test]
fn trust_ca_entries_by_label() {
    let certs = Certs::new();
    let user = User::new();
    let run = user.trust(&["add", "--ca", "site", &certs.path("server.crt")]);
    run.assert_failed();
    assert!(
        run.stderr.contains("is not a CA certificate") && run.stderr.contains("server.crt"),
        "{}",
        run.describe()
    );
    assert!(!user.store().exists());
    user.trust(&["add", "--ca", "Site CA", &certs.path("ca.crt")])
        .assert_ok();
    user.trust(&["add", "site", &certs.path("selfsigned.crt")])
        .assert_ok();
    let run = user.trust(&["show", "--ca", "Site CA"]);
    run.assert_ok();
    assert!(run.stdout.starts_with("CA: Site CA"), "{}", run.describe());
    let run = user.trust(&["show", "--ca", "site"]);
    run.assert_failed();
    assert!(
        run.stderr.contains("no CA labelled site"),
        "{}",
        run.describe()
    );
    let run = user.trust(&["remove", "--ca", "Site CA"]);
    run.assert_ok();
    assert!(
        run.stdout.contains("removed CA \"Site CA\""),
        "{}",
        run.describe()
    );
    let run = user.trust(&["list"]);
    assert_eq!(run.stdout.lines().count(), 1, "{}", run.describe());
    assert!(
        run.stdout.starts_with("site "),
        "the server entry stays\n{}",
        run.describe()
    );
}

#[test]
fn trust_reports_a_corrupt_store_and_leaves_it_alone() {
    let pki = Pki::new(&["localhost"]);
    let user = User::new();
    fs::create_dir_all(user.db()).unwrap();
    let garbage = b"# host: localhost\nthis is not a certificate\n".to_vec();
    fs::write(user.store(), &garbage).unwrap();
    for args in [
        vec!["list"],
        vec!["show", "localhost"],
        vec!["add", "localhost", s(&pki.file("server.crt"))],
        vec!["remove", "localhost"],
    ] {
        let run = user.trust(&args);
        run.assert_failed();
        assert!(
            run.stderr.contains(s(&user.store())) && run.stderr.contains("line 2"),
            "the error must name the file and the line\n{}",
            run.describe()
        );
        assert_eq!(
            fs::read(user.store()).unwrap(),
            garbage,
            "trust {args:?} changed the store"
        );
    }
}

/// A CA added with `trust add --ca` is trusted by clients for every server
/// it issued, with no tls-ca-cert-file in tls.conf: a real pminfo through
/// the library verifies a real pmcd with it, and fails again once the CA
/// is removed. `list` and `show` say it is a CA.
#[test]
fn trusted_ca_from_the_store_verifies_servers() {
    let certs = Certs::new();
    let pmcd = Pmcd::builder()
        .preload_ours(true)
        .tls_conf(&certs.server_conf())
        .start();
    let home = tempdir("pcp-secure-cli-home.");
    let db = home.path().join("db");
    let db_env = [("PCP_SECURE_DB_PATH", s(&db))];
    let client = Client::new("")
        .ours()
        .secure("enforce")
        .env("PCP_SECURE_DB_PATH", s(&db));
    let host = pmcd.host_named("localhost");

    let before = client.fetch(&host, &["kernel.all.load"]);
    before.assert_failed();
    assert!(
        before.stderr.contains("not trusted"),
        "{}",
        before.describe()
    );

    let run = tool(
        home.path(),
        &["trust", "add", "--ca", "site", &certs.path("ca.crt")],
        &db_env,
    );
    run.assert_ok();
    let run = tool(home.path(), &["trust", "list"], &db_env);
    run.assert_ok();
    assert!(run.stdout.contains("CA site"), "{}", run.describe());
    let run = tool(home.path(), &["trust", "show", "site"], &db_env);
    run.assert_ok();
    assert!(run.stdout.starts_with("CA: site"), "{}", run.describe());

    assert_load_values(&client.fetch(&host, &["kernel.all.load"]));
    // A server certificate from that CA for another name is still refused.
    let other = Pmcd::builder()
        .preload_ours(true)
        .tls_conf(&certs.server_conf_with("wronghost"))
        .start();
    let wrong = client.fetch(&other.host_named("localhost"), &["kernel.all.load"]);
    wrong.assert_failed();
    assert!(
        wrong.stderr.contains("does not match"),
        "{}",
        wrong.describe()
    );

    let run = tool(home.path(), &["trust", "remove", "site"], &db_env);
    run.assert_ok();
    let after = client.fetch(&host, &["kernel.all.load"]);
    after.assert_failed();
    assert!(after.stderr.contains("not trusted"), "{}", after.describe());
}
