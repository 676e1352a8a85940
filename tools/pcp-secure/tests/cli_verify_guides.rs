//! `pcp-secure verify` on what PCP's NSS-era guides make (issue 15), built
//! exactly as the guides do with the host's certutil, pk12util and openssl
//! (tests/support/nss.rs): guide 001's X.509 version 1 certificates (PEM
//! files and its NSS databases), guide 000's extension-less "Local CA
//! certificate" (its database, the CA exported for tls-ca-cert-file, and a
//! chain file sending it), and guide 001's pmcd.options (-C, -M, -P).
//!
//! Every run has its own HOME, trust store directory, tls.conf and --root,
//! so nothing of the machine running the tests matters.

use pcp_secure_test_support as support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use support::nss::*;
use support::*;
use tempfile::TempDir;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_pcp-secure")
}

/// A user of `pcp-secure verify`: own HOME, trust store, tls.conf and root
/// directory for system files.
struct User {
    dir: TempDir,
    env: Vec<(String, String)>,
}

impl User {
    fn new(conf: &str) -> User {
        let dir = tempfile::Builder::new()
            .prefix("pcp-secure-guides.")
            .tempdir()
            .unwrap();
        fs::write(dir.path().join("tls.conf"), conf).unwrap();
        for d in ["root", "home", "trust"] {
            fs::create_dir_all(dir.path().join(d)).unwrap();
        }
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

    fn conf(&self) -> PathBuf {
        self.path("tls.conf")
    }

    /// `pcp-secure verify --root ROOT --service-user ME ARGS...`
    fn verify(&self, args: &[&str]) -> Run {
        let mut cmd = Command::new(bin());
        cmd.env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("LC_ALL", "C")
            .env("HOME", self.path("home"))
            .env("PCP_TLSCONF_PATH", self.conf())
            .env("PCP_SECURE_DB_PATH", self.path("trust"))
            .env("PCP_SECURE_LIB", lib_path())
            .env("PCP_CONSOLE", "none");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let root = self.path("root");
        let me = user_name();
        cmd.args(["verify", "--root", s(&root), "--service-user", &me])
            .args(args);
        let run = run_with_limit(cmd, CLIENT_LIMIT);
        assert!(!run.timed_out, "verify hung\n{}", run.describe());
        run
    }
}

fn code(run: &Run) -> i32 {
    run.status
        .and_then(|s| s.code())
        .unwrap_or_else(|| panic!("no exit status\n{}", run.describe()))
}

/// The report lines of check `name`.
fn lines_of<'a>(run: &'a Run, name: &str) -> Vec<&'a str> {
    run.stdout
        .lines()
        .filter(|l| {
            l.get(5..)
                .is_some_and(|rest| rest.starts_with(&format!("{name}: ")))
        })
        .collect()
}

/// Asserts that check `name` has one line, with `status`, containing every
/// one of `texts`; returns it.
fn check<'a>(run: &'a Run, name: &str, status: &str, texts: &[&str]) -> &'a str {
    let found = lines_of(run, name);
    assert_eq!(
        found.len(),
        1,
        "expected one line for check {name:?}\n{}",
        run.describe()
    );
    let l = found[0];
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
    assert_eq!(
        l.contains(" — fix: "),
        status != "ok",
        "fix only on warn and FAIL lines: {l}"
    );
    l
}

/// The lines whose check name starts with `prefix`.
fn lines_starting<'a>(run: &'a Run, prefix: &str) -> Vec<&'a str> {
    run.stdout
        .lines()
        .filter(|l| l.get(5..).is_some_and(|rest| rest.starts_with(prefix)))
        .collect()
}

fn fail_lines(run: &Run) -> Vec<&str> {
    run.stdout
        .lines()
        .filter(|l| l.starts_with("FAIL "))
        .collect()
}

/// No misleading text for a version 1 certificate or an extension-less CA:
/// the refusals the library no longer makes, and Rust debug output.
fn assert_no_misleading_text(run: &Run) {
    for bad in [
        "does not fit",
        "UnsupportedCertVersion",
        "EndEntityUsedAsCa",
        "OtherError",
        "Other(",
        "lists no names",
    ] {
        assert!(
            !run.stdout.contains(bad),
            "verify says {bad:?}\n{}",
            run.describe()
        );
    }
}

/// The "version" and "CA certificate" warnings (none for v3 certificates
/// and CAs with basicConstraints).
fn era_lines(run: &Run) -> Vec<&str> {
    let mut lines = lines_starting(run, "server certificate version");
    lines.extend(lines_starting(run, "client certificate version"));
    lines.extend(lines_starting(run, "CA certificate"));
    lines
}

fn p(path: &Path) -> String {
    s(path).to_string()
}

// ---------------------------------------------------------------------------
// Guide 001: version 1 certificates

/// Guide 001's PEM files in tls.conf: the server's, its CA and the client's.
fn guide001_pem_conf(pki: &OpensslPki) -> String {
    tls_conf(&[
        ("tls-cert-file", &p(&pki.path("pmserver.crt"))),
        ("tls-key-file", &p(&pki.path("pmserver.key"))),
        ("tls-ca-cert-file", &p(&pki.path("rootCA.crt"))),
        ("tls-client-cert-file", &p(&pki.path("pmclient.crt"))),
        ("tls-client-key-file", &p(&pki.path("pmclient.key"))),
    ])
}

// Guide 001's commands as written (version 1 server and client
// certificates) in PEM files: warnings naming each file, what is checked
// and how to re-issue; the chain judged as the library judges version 1
// (signed directly by the trusted CA), the host name from the CN; no FAIL.
#[test]
fn guide001_pem_certificates_are_warnings_not_failures() {
    let pki = OpensslPki::guide001_exact();
    let user = User::new(&guide001_pem_conf(&pki));
    let run = user.verify(&["--host", "pmserver"]);
    assert_eq!(code(&run), 0, "{}", run.describe());
    assert!(fail_lines(&run).is_empty(), "{}", run.describe());
    assert_no_misleading_text(&run);
    let server = p(&pki.path("pmserver.crt"));
    check(
        &run,
        "server certificate version",
        "warn",
        &[
            &format!("tls-cert-file \"{server}\" (subject \"CN=pmserver\")"),
            "X.509 version 1",
            "host name from its subject CN \"pmserver\"",
            "a CA they trust signed it directly",
            "`pcp-secure cert server pmserver --dir DIR`",
            "point tls-cert-file and tls-key-file in",
        ],
    );
    check(
        &run,
        "server TLS setup",
        "ok",
        &["the key fits the certificate"],
    );
    check(
        &run,
        "server certificate chain",
        "ok",
        &[&format!(
            "signed directly by CN=myCA, a CA of tls-ca-cert-file \"{}\"",
            p(&pki.path("rootCA.crt"))
        )],
    );
    check(
        &run,
        "server name \"pmserver\"",
        "ok",
        &["its subject CN \"pmserver\"", "X.509 version 1"],
    );
    let client = p(&pki.path("pmclient.crt"));
    check(
        &run,
        "client certificate version",
        "warn",
        &[
            &format!("tls-client-cert-file \"{client}\" (subject \"CN=pmclient\")"),
            "X.509 version 1",
            "accepts it only when a CA it trusts signed it directly",
            "`pcp-secure cert client pmclient --dir DIR`",
            "point tls-client-cert-file and tls-client-key-file in",
        ],
    );
    check(&run, "client TLS setup", "ok", &["client certificate"]);
    // No CA warning: guide 001's CA has basicConstraints (-extensions v3_ca).
    assert!(
        lines_starting(&run, "CA certificate").is_empty(),
        "{}",
        run.describe()
    );

    // A name that is not the CN, asked for explicitly: the CN is named, not
    // advice about a missing subjectAltName list.
    let run = user.verify(&["--host", "localhost"]);
    assert_no_misleading_text(&run);
    check(
        &run,
        "server name \"localhost\"",
        "FAIL",
        &[
            "not its subject CN \"pmserver\"",
            "the only host name an X.509 version 1 certificate has",
        ],
    );
    assert_eq!(fail_lines(&run).len(), 1, "{}", run.describe());
}

// Guide 001's NSS databases: the collector's ("Root CA" CT,,, pmserver_cert
// P,, with its key) and the monitor's (pmclient_cert P,, with its key).
// The warnings name the database and nickname; the client's own
// certificate is not counted as a server certificate nor given host-name
// advice.
#[test]
fn guide001_databases_are_warnings_naming_database_and_nickname() {
    let pki = OpensslPki::guide001_exact();
    let server_db = guide001_server_db(&pki);
    let client_db = guide001_client_db(&pki, None, true);
    let (server_spec, client_spec) = (server_db.spec(), client_db.spec());
    let user = User::new(&tls_conf(&[
        ("tls-nssdb", &server_spec),
        ("tls-cert-nickname", "pmserver_cert"),
        ("tls-client-nssdb", &client_spec),
    ]));
    let run = user.verify(&["--host", "pmserver"]);
    assert_eq!(code(&run), 0, "{}", run.describe());
    assert_no_misleading_text(&run);
    check(
        &run,
        "server certificate version",
        "warn",
        &[
            &format!("\"pmserver_cert\" in \"{server_spec}\" (subject \"CN=pmserver\")"),
            "X.509 version 1",
            "`pcp-secure cert server pmserver --dir DIR`",
            &format!("pk12util -i FILE.p12 -d {server_spec}"),
            "tls-cert-nickname = NICKNAME",
        ],
    );
    check(
        &run,
        "server certificate chain",
        "ok",
        &[&format!(
            "signed directly by CN=myCA, a CA of the CA(s) trusted in \"{server_spec}\""
        )],
    );
    check(&run, "server name \"pmserver\"", "ok", &["subject CN"]);
    check(
        &run,
        "client certificate version",
        "warn",
        &[
            &format!("\"pmclient_cert\" in \"{client_spec}\" (subject \"CN=pmclient\")"),
            "`pcp-secure cert client pmclient --dir DIR`",
            "tls-client-cert-nickname = NICKNAME",
        ],
    );
    check(
        &run,
        "client NSS certificate",
        "ok",
        &["\"pmclient_cert\": CN=pmclient, issued by CN=myCA"],
    );
    // pmclient_cert (P,, and its key) is the client's own: not a server
    // certificate, and no host-name advice for it anywhere.
    check(
        &run,
        "client NSS trust",
        "ok",
        &["trusts 1 CA(s)", "accepts 0 server certificate(s)"],
    );
    check(
        &run,
        "client TLS setup",
        "ok",
        &["(1 CA(s), 0 server certificate(s))"],
    );
    assert_eq!(
        lines_starting(&run, "server name").len(),
        1,
        "{}",
        run.describe()
    );
    for l in run.stdout.lines().filter(|l| l.contains("pmclient")) {
        for advice in [
            "host name",
            "subjectAltName includes",
            "subjectAltName =",
            "cert server",
            "-8 ",
        ] {
            assert!(
                !l.contains(advice),
                "host-name advice for a client certificate: {l}"
            );
        }
    }
    assert!(
        lines_starting(&run, "CA certificate").is_empty(),
        "{}",
        run.describe()
    );
}

// The same guide with version 3 leaves (-extfile with subjectAltName and
// clientAuth): none of these warnings, from files or databases.
#[test]
fn guide001_version3_certificates_get_no_era_warnings() {
    let pki = OpensslPki::guide001();
    let user = User::new(&guide001_pem_conf(&pki));
    let run = user.verify(&["--host", "localhost"]);
    assert_eq!(code(&run), 0, "{}", run.describe());
    assert!(era_lines(&run).is_empty(), "{}", run.describe());
    check(
        &run,
        "server certificate chain",
        "ok",
        &["chains to tls-ca-cert-file"],
    );
    check(&run, "server name \"localhost\"", "ok", &["DNS:localhost"]);

    let server_db = guide001_server_db(&pki);
    let client_db = guide001_client_db(&pki, None, true);
    let user = User::new(&tls_conf(&[
        ("tls-nssdb", &server_db.spec()),
        ("tls-cert-nickname", "pmserver_cert"),
        ("tls-client-nssdb", &client_db.spec()),
    ]));
    let run = user.verify(&["--host", "localhost"]);
    assert_eq!(code(&run), 0, "{}", run.describe());
    assert!(era_lines(&run).is_empty(), "{}", run.describe());
    check(
        &run,
        "server certificate chain",
        "ok",
        &["chains to the CA(s) trusted in"],
    );
    check(
        &run,
        "client NSS trust",
        "ok",
        &["accepts 0 server certificate(s)"],
    );
}

// ---------------------------------------------------------------------------
// Guide 000: the "Local CA certificate" without basicConstraints

const LOCAL_CA_SUBJECT: &str = "DC=example, CN=Local PCP Installation";

/// The advice every extension-less CA line gives.
fn assert_ca_advice(line: &str) {
    for t in [
        "without the basicConstraints extension",
        "certutil -S -x without -2",
        "only as a trust anchor",
        "OpenSSL refuse it as a CA (\"invalid CA certificate\")",
        "PCP 6/7",
        "`pcp-secure cert ca --dir DIR`",
        "-t \"CT,,\" -v 120 -2",
        "answer y to \"Is this a CA certificate [y/N]?\"",
    ] {
        assert!(line.contains(t), "lacks {t:?}: {line}");
    }
}

// Guide 000's collector database as tls-nssdb: the CA is named with the
// database and its nickname; everything else passes.
#[test]
fn guide000_database_warns_about_its_extensionless_ca() {
    let db = guide000_db(None);
    let spec = db.spec();
    let user = User::new(&tls_conf(&[("tls-nssdb", &spec)]));
    let run = user.verify(&["--host", "localhost"]);
    assert_eq!(code(&run), 0, "{}", run.describe());
    assert_no_misleading_text(&run);
    let line = check(
        &run,
        &format!("CA certificate \"{LOCAL_CA_SUBJECT}\""),
        "warn",
        &[
            &format!("\"{LOCAL_CA_NICK}\", trusted as a CA in \"{spec}\""),
            &format!("the issuer of \"{COLLECTOR_NICK}\""),
            &format!("certutil -d {spec} -S -x"),
        ],
    );
    assert_ca_advice(line);
    check(
        &run,
        "server certificate chain",
        "ok",
        &[&format!("chains to the CA(s) trusted in \"{spec}\"")],
    );
    check(&run, "server name \"localhost\"", "ok", &["DNS:localhost"]);
    assert!(
        lines_starting(&run, "server certificate version").is_empty(),
        "{}",
        run.describe()
    );
}

// The exported CA in tls-ca-cert-file (a monitor's tls.conf), and a chain
// file sending it after the collector's certificate: one line for the CA
// naming both places; the chain judged as the library's clients judge it
// (trusted as an anchor: chains; not trusted: an unknown issuer, never a
// refusal).
#[test]
fn guide000_ca_in_files_is_a_warning_naming_each_place() {
    let db = guide000_db(None);
    let (chain, key, ca) = guide000_pem(&db);
    let (chain, key, ca) = (p(&chain), p(&key), p(&ca));
    let name = format!("CA certificate \"{LOCAL_CA_SUBJECT}\"");

    // A monitor: only the CA.
    let user = User::new(&tls_conf(&[("tls-ca-cert-file", &ca)]));
    let run = user.verify(&[]);
    let line = check(
        &run,
        &name,
        "warn",
        &[&format!("in tls-ca-cert-file \"{ca}\": a CA certificate")],
    );
    assert_ca_advice(line);
    assert!(fail_lines(&run).is_empty(), "{}", run.describe());

    // A collector serving the chain, trusting the CA.
    let user = User::new(&tls_conf(&[
        ("tls-cert-file", &chain),
        ("tls-key-file", &key),
        ("tls-ca-cert-file", &ca),
    ]));
    let run = user.verify(&["--host", "localhost"]);
    assert_eq!(code(&run), 0, "{}", run.describe());
    assert_no_misleading_text(&run);
    let line = check(
        &run,
        &name,
        "warn",
        &[
            &format!("sent after the server certificate in tls-cert-file \"{chain}\""),
            &format!("in tls-ca-cert-file \"{ca}\""),
        ],
    );
    assert_ca_advice(line);
    check(
        &run,
        "server certificate chain",
        "ok",
        &[&format!("chains to tls-ca-cert-file \"{ca}\"")],
    );

    // Not trusted: an unknown issuer (a warning), not "EndEntityUsedAsCa".
    let user = User::new(&tls_conf(&[
        ("tls-cert-file", &chain),
        ("tls-key-file", &key),
    ]));
    let run = user.verify(&["--host", "localhost"]);
    assert_eq!(code(&run), 0, "{}", run.describe());
    assert_no_misleading_text(&run);
    check(
        &run,
        "server certificate chain",
        "warn",
        &["does not chain to the system trust store"],
    );
    check(
        &run,
        &name,
        "warn",
        &["sent after the server certificate in tls-cert-file"],
    );
}

// A CA made with basicConstraints (certutil -S -x ... -2) gives no CA
// warning, in a database or exported into tls-ca-cert-file.
#[test]
fn a_ca_with_basic_constraints_gets_no_warning() {
    let db = NssDb::new(None);
    db.issue(
        &CertSpec::new(LOCAL_CA_NICK, "cn=Local PCP Installation,dc=example")
            .trust("CT,,")
            .ca_constraints(),
    );
    db.issue(
        &CertSpec::new(COLLECTOR_NICK, "cn=PCP Collector")
            .issuer(LOCAL_CA_NICK)
            .dns("localhost")
            .trust("P,,"),
    );
    assert!(db.cert_text(LOCAL_CA_NICK).contains("Basic Constraints"));
    let ca = p(&db.export_pem_file(LOCAL_CA_NICK));
    let user = User::new(&tls_conf(&[
        ("tls-nssdb", &db.spec()),
        ("tls-ca-cert-file", &ca),
    ]));
    let run = user.verify(&["--host", "localhost"]);
    assert_eq!(code(&run), 0, "{}", run.describe());
    assert!(era_lines(&run).is_empty(), "{}", run.describe());
    check(
        &run,
        "server certificate chain",
        "ok",
        &["chains to tls-ca-cert-file"],
    );
}

// ---------------------------------------------------------------------------
// Guide 001's pmcd.options

// The guide's -C and -M (and a -P, as guide 000 says for a password), in
// the forms getopt takes: a FAIL naming each option and its line, the
// tls.conf line replacing it and what to remove; comments and indented
// lines are not read (pmcd's start script drops them).
#[test]
fn pmcd_options_with_nss_options_fail_naming_their_tls_conf_lines() {
    let user = User::new(&tls_conf(&[("tls-nssdb", "sql:/etc/pcp/nssdb")]));
    let options = user.path("pmcd.options");
    fs::write(
        &options,
        "# command-line options to pmcd\n# -C sql:/commented/out\n-C sql:/etc/pcp/nssdb\n-Mpmserver_cert\n  -P /indented/is/dropped\n-Q\n-A -P /etc/pcp/nssdb.pass\n",
    )
    .unwrap();
    let file = p(&options);
    let run = user.verify(&["--pmcd-options", &file]);
    assert_eq!(code(&run), 1, "{}", run.describe());
    let line = check(
        &run,
        "pmcd options",
        "FAIL",
        &[
            &format!("\"{file}\" (from --pmcd-options)"),
            "pmcd 6 rejects (\"invalid option -- 'C'\")",
            "pmcd will not start",
            "line 3 \"-C sql:/etc/pcp/nssdb\"",
            "line 4 \"-Mpmserver_cert\"",
            "line 7 \"-P /etc/pcp/nssdb.pass\"",
            "tls-nssdb = sql:/etc/pcp/nssdb (already there)",
            "tls-cert-nickname = pmserver_cert",
            "tls-nssdb-password-file = /etc/pcp/nssdb.pass",
            &format!("remove -C, -M, -P from \"{file}\" (lines 3, 4, 7"),
            "-Q stay",
        ],
    );
    for dropped in ["commented", "indented"] {
        assert!(!line.contains(dropped), "{line}");
    }
    // Only this check fails (nothing else in this tls.conf is checked as
    // failing here but the database, which does not exist).
    for l in fail_lines(&run) {
        assert!(
            l.contains("pmcd options") || l.contains("/etc/pcp/nssdb"),
            "{l}"
        );
    }
}

// Guide 000 tells sites to give pmproxy the database password with -P in
// $PCP_PMPROXYOPTIONS_PATH too (PCP 5's pmproxy also took -C and -M):
// pmproxy 6 refuses them, so that file is checked the same way, through
// its environment variable as well; -h (the Redis host) takes a value there.
#[test]
fn pmproxy_options_with_nss_options_fail_naming_their_tls_conf_lines() {
    let user = User::new(&tls_conf(&[("tls-nssdb", "sql:/etc/pcp/nssdb")]));
    let options = user.path("pmproxy.options");
    fs::write(
        &options,
        "# pmproxy options
-h -C
-t -P /etc/pcp/nssdb.pass
",
    )
    .unwrap();
    let file = p(&options);
    let run = user.verify(&["--pmproxy-options", &file]);
    assert_eq!(code(&run), 1, "{}", run.describe());
    check(
        &run,
        "pmproxy options",
        "FAIL",
        &[
            &format!("\"{file}\" (from --pmproxy-options)"),
            "pmproxy 6 rejects (\"invalid option -- 'P'\")",
            "pmproxy will not start",
            "line 3 \"-P /etc/pcp/nssdb.pass\"",
            "tls-nssdb-password-file = /etc/pcp/nssdb.pass",
            &format!("remove -P from \"{file}\" (line 3"),
        ],
    );
    let user = user.env("PCP_PMPROXYOPTIONS_PATH", &file);
    let run = user.verify(&[]);
    check(
        &run,
        "pmproxy options",
        "FAIL",
        &[&format!("\"{file}\" (from PCP_PMPROXYOPTIONS_PATH)")],
    );
    fs::write(&options, "-t\n-h redis.example\n").unwrap();
    let run = user.verify(&[]);
    check(&run, "pmproxy options", "ok", &["has no PCP 5 NSS options"]);
}

// Found where pmcd's start script finds it: the PCP_PMCDOPTIONS_PATH line
// of pcp.conf (below --root), or $PCP_PMCDOPTIONS_PATH.
#[test]
fn pmcd_options_are_found_through_pcp_conf_and_the_environment() {
    let user = User::new("");
    let root = user.path("root");
    fs::create_dir_all(root.join("etc/pcp/pmcd")).unwrap();
    fs::write(
        root.join("etc/pcp.conf"),
        "PCP_PMCDOPTIONS_PATH=/etc/pcp/pmcd/pmcd.options\n",
    )
    .unwrap();
    let options = root.join("etc/pcp/pmcd/pmcd.options");
    fs::write(&options, "-C sql:/etc/pcp/nssdb\n-M \"pmserver_cert\"\n").unwrap();
    let run = user.verify(&[]);
    check(
        &run,
        "pmcd options",
        "FAIL",
        &[
            &format!("\"{}\" (from the PCP_PMCDOPTIONS_PATH line of", p(&options)),
            "invalid option -- 'C'",
            "tls-nssdb = sql:/etc/pcp/nssdb, tls-cert-nickname = pmserver_cert;",
        ],
    );

    let other = user.path("other.options");
    fs::write(&other, "-P /etc/pcp/pass\n").unwrap();
    let user = user.env("PCP_PMCDOPTIONS_PATH", s(&other));
    let run = user.verify(&[]);
    check(
        &run,
        "pmcd options",
        "FAIL",
        &[
            &format!("\"{}\" (from PCP_PMCDOPTIONS_PATH)", p(&other)),
            "invalid option -- 'P'",
            "tls-nssdb-password-file = /etc/pcp/pass",
            "(line 1;",
        ],
    );
}

// Options pmcd 6 takes (-Q among them), comments naming the old ones: no
// FAIL; no file at all: nothing to check.
#[test]
fn pmcd_options_without_nss_options_pass() {
    let user = User::new("");
    let options = user.path("pmcd.options");
    fs::write(
        &options,
        "# -C sql:/etc/pcp/nssdb\n# -M pmserver_cert\n-A\n-Q\n-t 10\n-l /var/log/pcp/pmcd/pmcd.log\n",
    )
    .unwrap();
    let run = user.verify(&["--pmcd-options", s(&options)]);
    check(
        &run,
        "pmcd options",
        "ok",
        &["has no PCP 5 NSS options (-C, -M, -P)"],
    );
    assert!(fail_lines(&run).is_empty(), "{}", run.describe());

    let run = user.verify(&[]);
    check(&run, "pmcd options", "ok", &["does not exist"]);
}
