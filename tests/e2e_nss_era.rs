//! End-to-end tests against the NSS era (issue 15): PCP 5.2.6 with NSS
//! 3.61 (Debian 11, bullseye, in a chroot that `scripts/pcp-chroot
//! bullseye` builds) paired with this host's pmcd and pminfo (PCP 6.0.3)
//! running with libpcp_secure preloaded, every certificate made inside the
//! chroot by its own certutil, pk12util and openssl exactly as PCP's
//! NSS-era guides say (000: "Establishing Secure Connections", 001:
//! "Establishing Secure Client Connections"; see
//! tests/support/nss_era.rs for how their questions are answered).
//!
//! The cells:
//! 1. our client -> 5.2.6 pmcd serving guide 000's database (which sends
//!    the extension-less "Local CA certificate" with its certificate):
//!    untrusted without a terminal, the prompt answered y on a terminal,
//!    PCP_ALLOW_SERVER_SELF_CERT, the CA in tls-ca-cert-file, NSS user
//!    databases trusting the CA (CT,,) or the server certificate (P,,);
//! 2. our client -> 5.2.6 pmcd with guide 001 (-C, -M, -Q; version 1
//!    certificates): with the monitor database, without a client
//!    certificate, a server certificate for another name;
//! 3. 5.2.6 client -> our pmcd serving a copy of guide 000's database
//!    (also with a password);
//! 4. 5.2.6 client -> our pmcd -Q serving guide 001's database, with and
//!    without the guide's version 1 client certificate;
//! 5. SASL PLAIN inside TLS both ways;
//! 6. only TLS records after the secure ack, both ways;
//! 7. the group agreed with NSS 3.61 (no ML-KEM): X25519, both ways.
//!
//! Every test is ignored by default: scripts/test-matrix builds the chroot,
//! mounts /proc, /dev/pts and a fresh /tmp in it and runs this (host)
//! binary with PCP_SECURE_BULLSEYE_ROOT naming it. Run without it, a test
//! fails and says so. The peer's PCP version is read from the chroot.

use pcp_secure_test_support as support;

use std::path::Path;
use std::process::{Command, Stdio};

use support::hello::{pcp_hellos, X25519, X25519MLKEM768};
use support::nss::write_secret;
use support::nss_era::*;
use support::*;

const LOAD: &str = "kernel.all.load";
const VERSION: &str = "pmcd.version";
/// The first line of the guide's dialogue (and of 5.2.6's).
const UNTRUSTED: &str =
    "WARNING: issuer of certificate received from host localhost is not trusted.";
/// The guide's question, as our client asks it on a terminal.
const SAVE_QUESTION: &str =
    "Do you want to accept and save this certificate locally anyway (y/n)? ";
/// The SASL password of the tests' user "pcp".
const SASL_PW: &str = "s3cret-era-pw";

// ---------------------------------------------------------------------------
// Helpers

/// Our client: libpcp_secure preloaded, PCP_SECURE_SOCKETS=enforce, this
/// tls.conf, no terminal (PCP_CONSOLE=none), a trust store of its own and
/// a HOME without any NSS database (its tls.conf's directory; tests that
/// give one set HOME again).
fn ours(conf: &str) -> Client {
    let client = Client::new(conf).ours().secure("enforce");
    let home = client
        .conf_path()
        .parent()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    client.env("HOME", &home)
}

fn assert_no_values(run: &Run) {
    assert!(
        !run.stdout.contains(" value "),
        "values were delivered\n{}",
        run.describe()
    );
}

fn assert_refused(run: &Run) {
    run.assert_failed();
    assert_no_values(run);
}

/// Load values and not a word of warning or error from the library, and
/// no NSS-era dialogue.
fn assert_silent_values(run: &Run) {
    assert_load_values(run);
    let noisy: Vec<&str> = run
        .pcp_secure_lines()
        .into_iter()
        .filter(|l| l.contains("warning") || l.contains("error"))
        .collect();
    assert!(
        noisy.is_empty(),
        "the client complained\n{}",
        run.describe()
    );
    assert!(!run.stderr.contains("WARNING"), "{}", run.describe());
}

/// The chroot's pmcd serving guide 000's database with its default
/// nickname ("PCP Collector certificate"): `pmcd -C sql:DIR`. pmcd reads
/// the database as pcp (the chroot's), the user it switches to.
fn nss_pmcd_guide000(b: &Bullseye, g: &Guide000) -> NssPmcd {
    g.chown_all(b.pcp_ids());
    NssPmcd::builder().args(&["-C", &g.spec()]).start(b)
}

/// The chroot's pmcd as guide 001 configures it: `-C sql:/etc/pcp/nssdb
/// -M pmserver_cert -Q` (its database made first, as pcp).
fn nss_pmcd_guide001(b: &Bullseye, g: &Guide001) -> NssPmcd {
    let spec = g.collector_db(b);
    NssPmcd::builder()
        .args(&["-C", &spec, "-M", "pmserver_cert", "-Q"])
        .start(b)
}

/// Our pmcd (host pmcd, libpcp_secure preloaded) run as the host's pcp,
/// serving a copy of the NSS database `db` given to pcp: tls.conf
/// `tls-nssdb = sql:COPY` plus `extra`; `-Q` when `q`.
fn our_pmcd_nssdb(db: &Path, extra: &[(&str, &str)], q: bool) -> (tempfile::TempDir, Pmcd) {
    let (keep, copy) = host_copy_for(db, "pcp");
    let spec = format!("sql:{}", copy.display());
    let mut pairs = vec![("tls-nssdb", spec.as_str())];
    pairs.extend_from_slice(extra);
    let pmcd = Pmcd::builder()
        .preload_ours(true)
        .run_as("pcp")
        .tls_conf(&tls_conf(&pairs))
        .cert_required(q)
        .env("PCP_SECURE_DEBUG", "1")
        .start();
    let features = challenge_features(&pmcd);
    assert!(
        features & PDU_FLAG_SECURE != 0,
        "our pmcd must serve TLS (features {features:#06x})\n{}",
        pmcd.log()
    );
    assert_eq!(
        features & PDU_FLAG_CERT_REQD != 0,
        q,
        "our pmcd must advertise -Q exactly when given (features {features:#06x})\n{}",
        pmcd.log()
    );
    (keep, pmcd)
}

/// The feature bits of pmcd's challenge (pmcd.feature.secure cannot be
/// read by a plain client from a pmcd that requires certificates).
fn challenge_features(pmcd: &Pmcd) -> u16 {
    let mut raw = RawClient::connect(pmcd.addr());
    raw.read_challenge()
        .unwrap_or_else(|e| panic!("{e}\n{}", pmcd.log()))
}

/// The chroot's pminfo (5.2.6, enforce) for user `m` (HOME with its NSS
/// database), no terminal: `pminfo -h HOST -f METRICS`.
fn nss_fetch(b: &Bullseye, m: &MonitorDb, host: &str, metrics: &[&str]) -> Run {
    let mut args = vec!["-h", host, "-f"];
    args.extend_from_slice(metrics);
    nss_pminfo(b, m.home_inner(), &[], &args)
}

/// A guide-000 monitor database in the chroot trusting the collector's
/// CA (steps 1 to 3).
fn monitor_trusting_ca(b: &Bullseye, g: &Guide000) -> MonitorDb {
    let asc = g.export_ca(b);
    let m = MonitorDb::new(b);
    m.import_ascii(b, LOCAL_CA_NICK, "CT,,", &asc);
    m
}

/// pcp_secure warning lines of `text` that contain every one of `needles`.
fn warnings_with<'a>(text: &'a str, needles: &[&str]) -> Vec<&'a str> {
    text.lines()
        .map(str::trim)
        .filter(|l| l.starts_with("pcp_secure: warning:") && needles.iter().all(|n| l.contains(n)))
        .collect()
}

/// Asserts exactly one warning about a version 1 certificate `name` in
/// `text`, pointing at `pcp-secure cert`.
fn assert_one_version1_warning(text: &str, name: &str, context: &str) {
    let found: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| {
            l.starts_with("pcp_secure: warning:") && l.contains("version 1") && l.contains(name)
        })
        .collect();
    assert_eq!(
        found.len(),
        1,
        "expected one pcp_secure warning naming {name:?} and \"version 1\", got {found:?}\n{context}"
    );
    assert!(
        found[0].contains("pcp-secure cert"),
        "the version 1 warning must point at `pcp-secure cert`: {}\n{context}",
        found[0]
    );
}

/// A SASL configuration for the service "pmcd" in the directory
/// `dir_host` (its path as pmcd sees it: `dir_seen`): PLAIN only, a sasldb
/// with user pcp and [`SASL_PW`], made by the `saslpasswd2` command given.
fn sasl_conf(dir_host: &Path, dir_seen: &str, saslpasswd2: Command) {
    std::fs::write(
        dir_host.join("pmcd.conf"),
        format!("mech_list: plain\nsasldb_path: {dir_seen}/passwd.db\n"),
    )
    .unwrap();
    let mut cmd = saslpasswd2;
    cmd.stdin(Stdio::piped()).stdout(Stdio::null());
    let mut child = cmd.spawn().expect("saslpasswd2 runs");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(SASL_PW.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success(), "saslpasswd2 failed");
    assert!(dir_host.join("passwd.db").is_file(), "no sasldb made");
}

fn assert_sasl_refused(run: &Run) {
    assert_refused(run);
    assert!(
        run.text().contains("authentication failure"),
        "a wrong password must fail SASL\n{}",
        run.describe()
    );
}

// ---------------------------------------------------------------------------
// The guides themselves, run in the chroot

/// What the guides' commands make with bullseye's tools: guide 000's CA
/// without any extension (no basicConstraints), the collector certificate
/// with `-8`'s names as DNS names, the trust flags the guide lists; guide
/// 001's leaves X.509 version 1 (checked when they are made) and its two
/// databases. The chroot's PCP is NSS-based with secure sockets (checked
/// when the chroot is opened).
#[test]
#[ignore = "needs the bullseye chroot: run by scripts/test-matrix"]
fn guides_run_in_the_chroot_make_what_they_say() {
    let b = bullseye();
    assert!(!b.version().is_empty());
    let g = Guide000::new(b, None);
    let list = g.list(b);
    let row = |nick: &str| {
        list.lines()
            .find(|l| l.starts_with(nick))
            .map(|l| l[nick.len()..].trim().to_string())
            .unwrap_or_else(|| panic!("no {nick} in\n{list}"))
    };
    // -t "CT,," and "P,,"; certutil adds u (a key) to both.
    assert_eq!(row(LOCAL_CA_NICK), "CTu,u,u", "{list}");
    assert_eq!(row(COLLECTOR_NICK), "Pu,u,u", "{list}");
    let text_of = |file: &str| {
        b.tool(
            "/usr/bin/openssl",
            &["x509", "-noout", "-text", "-in", file],
        )
        .run_ok()
        .stdout
    };
    let ca = text_of(&g.export_ca(b));
    assert!(ca.contains("Version: 3"), "{ca}");
    assert!(
        !ca.contains("X509v3"),
        "guide 000's CA has no extensions at all:\n{ca}"
    );
    let collector = text_of(&g.export_collector(b));
    assert!(
        collector.contains("DNS:localhost, DNS:127.0.0.1"),
        "-8 makes DNS names only:\n{collector}"
    );

    let g1 = Guide001::new(b, "localhost");
    g1.collector_db(b);
    let m = g1.monitor_db(b, true);
    let list = m.list(b);
    assert!(
        list.contains("Root CA") && list.contains("pmclient_cert"),
        "{list}"
    );
    let ca = text_of(&g1.inner_of("rootCA.crt"));
    assert!(
        ca.contains("CA:TRUE"),
        "-extensions v3_ca makes a CA:\n{ca}"
    );
}

// ---------------------------------------------------------------------------
// 1. Our client -> 5.2.6 pmcd serving guide 000's database

/// 1a. Nothing trusts the collector and nobody can be asked: refused, with
/// the guide's warning and the library's word that nobody could be asked.
#[test]
#[ignore = "needs the bullseye chroot: run by scripts/test-matrix"]
fn ours_to_nss_pmcd_guide000_untrusted_without_a_terminal_is_refused_with_the_guides_warning() {
    let b = bullseye();
    let g = Guide000::new(b, None);
    let pmcd = nss_pmcd_guide000(b, &g);
    let run = ours("").fetch(&pmcd.host_named("localhost"), &[LOAD]);
    assert_refused(&run);
    assert!(
        run.stderr.lines().any(|l| l.trim_end() == UNTRUSTED),
        "no line {UNTRUSTED:?}\n{}",
        run.describe()
    );
    assert!(
        run.stderr.contains("nobody could be asked"),
        "{}",
        run.describe()
    );
}

/// 1b. The guide's dialogue on a terminal, answered y: connects and saves;
/// the next run (no terminal) is silent and succeeds.
#[test]
#[ignore = "needs the bullseye chroot: run by scripts/test-matrix"]
fn ours_to_nss_pmcd_guide000_prompt_yes_connects_saves_and_next_run_is_silent() {
    let b = bullseye();
    let g = Guide000::new(b, None);
    let pmcd = nss_pmcd_guide000(b, &g);
    let host = pmcd.host_named("localhost");
    let user = tempfile::Builder::new()
        .prefix("pcp-secure-era-user.")
        .tempdir()
        .unwrap();
    let conf = user.path().join("tls.conf");
    std::fs::write(&conf, "").unwrap();
    let store = user.path().join("trust");
    let home = user.path().join("home");
    std::fs::create_dir(&home).unwrap();
    let env: Vec<(String, String)> = [
        ("PATH", "/usr/local/bin:/usr/bin:/bin"),
        ("LC_ALL", "C"),
        ("HOME", home.to_str().unwrap()),
        ("PCP_TLSCONF_PATH", conf.to_str().unwrap()),
        ("PCP_SECURE_SOCKETS", "enforce"),
        ("PCP_SECURE_DB_PATH", store.to_str().unwrap()),
        ("LD_PRELOAD", lib_path().to_str().unwrap()),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let argv: Vec<String> = [PMINFO, "-h", &host, "-f", LOAD]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let run = pty_run(
        &argv,
        &env,
        &[
            PtyStep::Expect(SAVE_QUESTION.to_string()),
            PtyStep::Send("y".to_string()),
        ],
    );
    assert!(run.success(), "{}", run.describe);
    assert!(
        run.transcript.lines().any(|l| l.trim_end() == UNTRUSTED),
        "{}",
        run.describe
    );
    assert!(
        run.transcript.contains("SHA1 fingerprint is "),
        "{}",
        run.describe
    );
    assert!(
        run.transcript.contains("\"1 minute\"]") && run.transcript.contains(" value "),
        "no load values on the terminal\n{}",
        run.describe
    );
    assert!(
        store.join("trusted-servers.pem").is_file(),
        "nothing saved in {}\n{}",
        store.display(),
        run.describe
    );

    let again = ours("")
        .env("HOME", home.to_str().unwrap())
        .env("PCP_SECURE_DB_PATH", store.to_str().unwrap())
        .fetch(&host, &[LOAD]);
    assert_silent_values(&again);
}

/// 1c. PCP_ALLOW_SERVER_SELF_CERT: connects without a question.
#[test]
#[ignore = "needs the bullseye chroot: run by scripts/test-matrix"]
fn ours_to_nss_pmcd_guide000_allow_server_self_cert_connects() {
    let b = bullseye();
    let g = Guide000::new(b, None);
    let pmcd = nss_pmcd_guide000(b, &g);
    let run = ours("")
        .env("PCP_ALLOW_SERVER_SELF_CERT", "1")
        .fetch(&pmcd.host_named("localhost"), &[LOAD]);
    assert_load_values(&run);
    assert!(!run.stderr.contains("Do you want"), "{}", run.describe());
}

/// 1d. The CA exported as the guide says (`certutil -L -n "Local CA
/// certificate" -a`) in tls-ca-cert-file: connects silently.
#[test]
#[ignore = "needs the bullseye chroot: run by scripts/test-matrix"]
fn ours_to_nss_pmcd_guide000_ca_exported_into_tls_ca_cert_file_connects_silently() {
    let b = bullseye();
    let g = Guide000::new(b, None);
    g.export_ca(b);
    let ca = g.host_of("ca-certificate.asc");
    let pmcd = nss_pmcd_guide000(b, &g);
    let run = ours(&tls_conf(&[("tls-ca-cert-file", ca.to_str().unwrap())]))
        .fetch(&pmcd.host_named("localhost"), &[LOAD]);
    assert_silent_values(&run);
}

/// 1e. A monitor database made by the guide's steps ($HOME/.pki/nssdb,
/// NSS 3.61's certutil) trusting the CA (CT,,): silent, found through HOME
/// and through PCP_SECURE_DB_PATH.
#[test]
#[ignore = "needs the bullseye chroot: run by scripts/test-matrix"]
fn ours_to_nss_pmcd_guide000_nss_user_database_trusting_the_ca_is_silent() {
    let b = bullseye();
    let g = Guide000::new(b, None);
    let m = monitor_trusting_ca(b, &g);
    let pmcd = nss_pmcd_guide000(b, &g);
    let host = pmcd.host_named("localhost");
    let run = ours("")
        .env("HOME", m.home_host().to_str().unwrap())
        .fetch(&host, &[LOAD]);
    assert_silent_values(&run);
    let run = ours("")
        .env("PCP_SECURE_DB_PATH", m.db_host().to_str().unwrap())
        .fetch(&host, &[LOAD]);
    assert_silent_values(&run);
}

/// 1e. A monitor database holding only the collector's certificate,
/// accepted as itself (the guide's manual approach with the collector
/// certificate, trust P,,): silent.
#[test]
#[ignore = "needs the bullseye chroot: run by scripts/test-matrix"]
fn ours_to_nss_pmcd_guide000_nss_user_database_with_the_server_certificate_p_is_silent() {
    let b = bullseye();
    let g = Guide000::new(b, None);
    let asc = g.export_collector(b);
    let m = MonitorDb::new(b);
    m.import_ascii(b, COLLECTOR_NICK, "P,,", &asc);
    let pmcd = nss_pmcd_guide000(b, &g);
    let run = ours("")
        .env("HOME", m.home_host().to_str().unwrap())
        .fetch(&pmcd.host_named("localhost"), &[LOAD]);
    assert_silent_values(&run);
}

// ---------------------------------------------------------------------------
// 2. Our client -> 5.2.6 pmcd configured by guide 001 (-C, -M, -Q)

/// 2a. The guide's monitor database (Root CA CT,,, pmclient_cert with its
/// key): the version 1 server certificate for CN=localhost is accepted
/// because its issuer is trusted, the version 1 client certificate is
/// presented and accepted; one warning about each.
#[test]
#[ignore = "needs the bullseye chroot: run by scripts/test-matrix"]
fn ours_to_nss_pmcd_guide001_monitor_database_connects_with_version1_certificates() {
    let b = bullseye();
    let g = Guide001::new(b, "localhost");
    let pmcd = nss_pmcd_guide001(b, &g);
    let m = g.monitor_db(b, true);
    let run = ours("")
        .env("HOME", m.home_host().to_str().unwrap())
        .fetch(&pmcd.host_named("localhost"), &[LOAD]);
    assert_load_values(&run);
    assert!(!run.stderr.contains("WARNING"), "{}", run.describe());
    let server: Vec<&str> = warnings_with(&run.stderr, &["version 1"])
        .into_iter()
        .filter(|l| !l.contains("pmclient"))
        .collect();
    assert_eq!(
        server.len(),
        1,
        "one warning about the version 1 server certificate\n{}",
        run.describe()
    );
    assert!(
        server[0].contains("localhost") && server[0].contains("pcp-secure cert"),
        "{}",
        run.describe()
    );
    assert_one_version1_warning(&run.stderr, "pmclient", &run.describe());
}

/// 2b. Only the CA, no client certificate: pmcd -Q refuses.
#[test]
#[ignore = "needs the bullseye chroot: run by scripts/test-matrix"]
fn ours_to_nss_pmcd_guide001_without_a_client_certificate_is_refused() {
    let b = bullseye();
    let g = Guide001::new(b, "localhost");
    let mut pmcd = nss_pmcd_guide001(b, &g);
    let m = g.monitor_db(b, false);
    let run = ours("")
        .env("HOME", m.home_host().to_str().unwrap())
        .fetch(&pmcd.host_named("localhost"), &[LOAD]);
    assert_refused(&run);
    assert!(
        run.stderr.contains("requires a client certificate"),
        "{}",
        run.describe()
    );
    pmcd.assert_running();
}

/// 2c. The guide's server certificate for CN=pmserver, reached as
/// localhost: refused (the name does not match), unless
/// PCP_ALLOW_BAD_CERT_DOMAIN is set.
#[test]
#[ignore = "needs the bullseye chroot: run by scripts/test-matrix"]
fn ours_to_nss_pmcd_guide001_server_cn_pmserver_needs_allow_bad_cert_domain() {
    let b = bullseye();
    let g = Guide001::new(b, "pmserver");
    let pmcd = nss_pmcd_guide001(b, &g);
    let m = g.monitor_db(b, true);
    let home = m.home_host().to_str().unwrap();
    let host = pmcd.host_named("localhost");
    let run = ours("").env("HOME", home).fetch(&host, &[LOAD]);
    assert_refused(&run);
    assert!(
        run.stderr
            .contains("WARNING: The domain name localhost does not match"),
        "{}",
        run.describe()
    );
    let run = ours("")
        .env("HOME", home)
        .env("PCP_ALLOW_BAD_CERT_DOMAIN", "1")
        .fetch(&host, &[LOAD]);
    assert_load_values(&run);
}

// ---------------------------------------------------------------------------
// 3. 5.2.6 client -> our pmcd serving a copy of guide 000's database

/// 3a. The 5.2.6 client without the CA refuses our pmcd (its own
/// question, answered "(no)" without a terminal).
#[test]
#[ignore = "needs the bullseye chroot: run by scripts/test-matrix"]
fn nss_client_to_our_pmcd_guide000_without_the_ca_refuses() {
    let b = bullseye();
    let g = Guide000::new(b, None);
    let (_keep, pmcd) = our_pmcd_nssdb(&g.db_host(), &[], false);
    let m = MonitorDb::new(b);
    let run = nss_fetch(b, &m, &pmcd.host_named("localhost"), &[LOAD]);
    assert_refused(&run);
    let text = run.text();
    assert!(
        text.contains(UNTRUSTED) || text.contains("Peer's Certificate issuer is not recognized"),
        "{}",
        run.describe()
    );
}

/// 3b. With the CA imported (CT,,) into its user database, the 5.2.6
/// client connects to our pmcd.
#[test]
#[ignore = "needs the bullseye chroot: run by scripts/test-matrix"]
fn nss_client_to_our_pmcd_guide000_with_the_ca_connects() {
    let b = bullseye();
    let g = Guide000::new(b, None);
    let m = monitor_trusting_ca(b, &g);
    let (_keep, pmcd) = our_pmcd_nssdb(&g.db_host(), &[], false);
    let run = nss_fetch(b, &m, &pmcd.host_named("localhost"), &[LOAD]);
    assert_load_values(&run);
    assert!(!run.text().contains("WARNING"), "{}", run.describe());
}

/// 3c. A password-protected collector database (the guide's non-default
/// option): tls-nssdb-password-file, mode 0400, owned by the user pmcd
/// runs as; the 5.2.6 client with the CA connects.
#[test]
#[ignore = "needs the bullseye chroot: run by scripts/test-matrix"]
fn nss_client_to_our_pmcd_password_protected_guide000_database_connects() {
    const PW: &str = "Collector-era-pw 15";
    let b = bullseye();
    let g = Guide000::new(b, Some(PW));
    let m = monitor_trusting_ca(b, &g);
    let secret = tempfile::Builder::new()
        .prefix("pcp-secure-era-pw.")
        .tempdir()
        .unwrap();
    let file = secret.path().join("nssdb.pass");
    write_secret(&file, &format!("{PW}\n"), 0o400);
    let pcp = user_ids("pcp").expect("host user pcp");
    chown_tree(secret.path(), pcp);
    let (_keep, pmcd) = our_pmcd_nssdb(
        &g.db_host(),
        &[("tls-nssdb-password-file", file.to_str().unwrap())],
        false,
    );
    let bad: Vec<String> = pmcd
        .pcp_secure_lines()
        .into_iter()
        .filter(|l| l.contains("error") || l.contains("warning"))
        .collect();
    assert!(bad.is_empty(), "{}", pmcd.log());
    let run = nss_fetch(b, &m, &pmcd.host_named("localhost"), &[LOAD]);
    assert_load_values(&run);
}

// ---------------------------------------------------------------------------
// 4. 5.2.6 client -> our pmcd -Q serving guide 001's database

/// 4a. Our pmcd serves guide 001's version 1 server certificate (CN =
/// localhost) from the collector database and, under -Q, accepts the
/// guide's version 1 client certificate that the 5.2.6 client presents;
/// one warning about each in pmcd's log.
#[test]
#[ignore = "needs the bullseye chroot: run by scripts/test-matrix"]
fn nss_client_with_version1_client_certificate_connects_to_our_pmcd_q_guide001() {
    let b = bullseye();
    let g = Guide001::new(b, "localhost");
    g.collector_db(b);
    let m = g.monitor_db(b, true);
    let (_keep, pmcd) = our_pmcd_nssdb(
        &g.collector_db_host(),
        &[("tls-cert-nickname", "pmserver_cert")],
        true,
    );
    assert_one_version1_warning(&pmcd.log(), "pmserver_cert", &pmcd.log());
    let run = nss_fetch(b, &m, &pmcd.host_named("localhost"), &[LOAD]);
    assert_load_values(&run);
    assert!(
        pmcd.wait_for_log(LOG_LIMIT, |log| log
            .lines()
            .any(|l| l.contains("pcp_secure: warning:")
                && l.contains("version 1")
                && l.contains("pmclient"))),
        "no warning about the version 1 client certificate\n{}",
        pmcd.log()
    );
    assert_one_version1_warning(&pmcd.log(), "pmclient", &pmcd.log());
}

/// 4b. The same without a client certificate: refused (the 5.2.6 client
/// then reports "IPC protocol failure"; our pmcd logs that the client
/// presented no certificate).
#[test]
#[ignore = "needs the bullseye chroot: run by scripts/test-matrix"]
fn nss_client_without_client_certificate_is_refused_by_our_pmcd_q_guide001() {
    let b = bullseye();
    let g = Guide001::new(b, "localhost");
    g.collector_db(b);
    let m = g.monitor_db(b, false);
    let (_keep, mut pmcd) = our_pmcd_nssdb(
        &g.collector_db_host(),
        &[("tls-cert-nickname", "pmserver_cert")],
        true,
    );
    let run = nss_fetch(b, &m, &pmcd.host_named("localhost"), &[LOAD]);
    assert_refused(&run);
    assert!(
        pmcd.wait_for_log(LOG_LIMIT, |log| log
            .lines()
            .any(|l| l.contains("presented no client certificate"))),
        "pmcd must say the client presented no certificate\n{}",
        pmcd.log()
    );
    pmcd.assert_running();
}

// ---------------------------------------------------------------------------
// 5. SASL PLAIN inside TLS, both ways

/// 5a. Our client authenticates with SASL PLAIN to the 5.2.6 pmcd, inside
/// TLS: the password never appears on the wire; a wrong one is refused.
#[test]
#[ignore = "needs the bullseye chroot: run by scripts/test-matrix"]
fn sasl_plain_inside_tls_ours_to_nss_pmcd() {
    let b = bullseye();
    let g = Guide000::new(b, None);
    g.export_ca(b);
    let sasl = b.tempdir("pcp-secure-era-sasl.");
    let db = sasl.inner_of("passwd.db");
    let saslpasswd2 = b
        .tool(
            "/usr/sbin/saslpasswd2",
            &["-p", "-c", "-a", "pmcd", "-f", &db, "pcp"],
        )
        .command();
    sasl_conf(sasl.host(), sasl.inner(), saslpasswd2);
    sasl.chown_all(b.pcp_ids());
    g.chown_all(b.pcp_ids());
    let pmcd = NssPmcd::builder()
        .args(&["-C", &g.spec()])
        .env("SASL_CONF_PATH", sasl.inner())
        .start(b);
    let rec = Recorder::start(pmcd.addr());
    let ca = g.host_of("ca-certificate.asc");
    let client = ours(&tls_conf(&[("tls-ca-cert-file", ca.to_str().unwrap())]));
    let spec = format!(
        "pcp://localhost:{}?username=pcp&password={SASL_PW}&method=plain",
        rec.port()
    );
    assert_load_values(&client.fetch(&spec, &[LOAD]));
    rec.finished(1)[0].assert_tls(&[SASL_PW, LOAD]);
    let wrong = format!(
        "pcp://localhost:{}?username=pcp&password=wrong&method=plain",
        pmcd.port()
    );
    assert_sasl_refused(&client.fetch(&wrong, &[LOAD]));
}

/// 5b. The 5.2.6 client authenticates with SASL PLAIN to our pmcd
/// (`pcps://...?username=...&password=...&method=plain`), inside TLS.
#[test]
#[ignore = "needs the bullseye chroot: run by scripts/test-matrix"]
fn sasl_plain_inside_tls_nss_client_to_our_pmcd() {
    let b = bullseye();
    if Command::new("saslpasswd2")
        .arg("-v")
        .stderr(Stdio::null())
        .status()
        .is_err()
    {
        panic!("saslpasswd2 is missing: run scripts/install-deps (sasl2-bin, libsasl2-modules)");
    }
    let g = Guide000::new(b, None);
    let m = monitor_trusting_ca(b, &g);
    let sasl = tempfile::Builder::new()
        .prefix("pcp-secure-era-sasl.")
        .tempdir()
        .unwrap();
    let dir = sasl.path().to_str().unwrap().to_string();
    let mut add = Command::new("saslpasswd2");
    add.args(["-p", "-c", "-a", "pmcd", "-f"])
        .arg(sasl.path().join("passwd.db"))
        .arg("pcp");
    sasl_conf(sasl.path(), &dir, add);
    chown_tree(sasl.path(), user_ids("pcp").expect("host user pcp"));
    let (keep, copy) = host_copy_for(&g.db_host(), "pcp");
    let pmcd = Pmcd::builder()
        .preload_ours(true)
        .run_as("pcp")
        .tls_conf(&tls_conf(&[(
            "tls-nssdb",
            &format!("sql:{}", copy.display()),
        )]))
        .env("SASL_CONF_PATH", &dir)
        .start();
    let rec = Recorder::start(pmcd.addr());
    let spec = format!(
        "pcps://localhost:{}?username=pcp&password={SASL_PW}&method=plain",
        rec.port()
    );
    let run = nss_fetch(b, &m, &spec, &[LOAD]);
    assert_load_values(&run);
    rec.finished(1)[0].assert_tls(&[SASL_PW, LOAD]);
    let wrong = format!(
        "pcps://localhost:{}?username=pcp&password=wrong&method=plain",
        pmcd.port()
    );
    assert_sasl_refused(&nss_fetch(b, &m, &wrong, &[LOAD]));
    drop(keep);
}

// ---------------------------------------------------------------------------
// 6. The wire: only TLS records after the secure ack

/// 6a. Our client and the 5.2.6 pmcd: after the secure ack only TLS
/// records, and neither the metric names nor pmcd's version in the clear.
#[test]
#[ignore = "needs the bullseye chroot: run by scripts/test-matrix"]
fn wire_ours_to_nss_pmcd_is_only_tls_after_the_ack() {
    let b = bullseye();
    let g = Guide000::new(b, None);
    g.export_ca(b);
    let ca = g.host_of("ca-certificate.asc");
    let pmcd = nss_pmcd_guide000(b, &g);
    let rec = Recorder::start(pmcd.addr());
    let run = ours(&tls_conf(&[("tls-ca-cert-file", ca.to_str().unwrap())]))
        .fetch(&format!("localhost:{}", rec.port()), &[LOAD, VERSION]);
    assert_load_values(&run);
    assert_eq!(
        run.value_of(VERSION).as_deref(),
        Some(format!("\"{}\"", b.version()).as_str()),
        "{}",
        run.describe()
    );
    let conns = rec.finished(1);
    assert_eq!(conns.len(), 1);
    conns[0].assert_tls(&[LOAD, "kernel.all", b.version()]);
}

/// 6b. The 5.2.6 client and our pmcd: the same.
#[test]
#[ignore = "needs the bullseye chroot: run by scripts/test-matrix"]
fn wire_nss_client_to_our_pmcd_is_only_tls_after_the_ack() {
    let b = bullseye();
    let g = Guide000::new(b, None);
    let m = monitor_trusting_ca(b, &g);
    let (_keep, pmcd) = our_pmcd_nssdb(&g.db_host(), &[], false);
    let rec = Recorder::start(pmcd.addr());
    let run = nss_fetch(
        b,
        &m,
        &format!("localhost:{}", rec.port()),
        &[LOAD, VERSION],
    );
    assert_load_values(&run);
    assert_eq!(
        run.value_of(VERSION).as_deref(),
        Some(format!("\"{}\"", pcp_version()).as_str()),
        "{}",
        run.describe()
    );
    let conns = rec.finished(1);
    assert_eq!(conns.len(), 1);
    conns[0].assert_tls(&[LOAD, "kernel.all", pcp_version()]);
}

// ---------------------------------------------------------------------------
// 7. Key exchange with NSS 3.61 (no ML-KEM): X25519

/// 7a. Our client offers X25519MLKEM768 and X25519 shares; the 5.2.6 pmcd
/// (NSS 3.61) picks X25519 without a retry; our debug log names it.
#[test]
#[ignore = "needs the bullseye chroot: run by scripts/test-matrix"]
fn key_exchange_ours_to_nss_pmcd_is_x25519() {
    let b = bullseye();
    let g = Guide000::new(b, None);
    g.export_ca(b);
    let ca = g.host_of("ca-certificate.asc");
    let pmcd = nss_pmcd_guide000(b, &g);
    let rec = Recorder::start(pmcd.addr());
    let run = ours(&tls_conf(&[("tls-ca-cert-file", ca.to_str().unwrap())]))
        .env("PCP_SECURE_DEBUG", "1")
        .fetch(&format!("localhost:{}", rec.port()), &[LOAD]);
    assert_load_values(&run);
    let kx = pcp_hellos(&rec.finished(1)[0]);
    assert_eq!(kx.chosen, Some(X25519), "{kx:?}");
    assert!(!kx.retry, "X25519 needs no retry: {kx:?}");
    assert!(kx.shares.contains(&X25519), "{kx:?}");
    assert!(
        run.stderr
            .lines()
            .any(|l| l.contains("established (TLSv1_3 ")
                && l.contains(" X25519")
                && !l.contains("MLKEM")),
        "the client's debug log must name X25519:\n{}",
        run.describe()
    );
}

/// 7b. The 5.2.6 client (NSS 3.61) offers no ML-KEM group; our pmcd agrees
/// on X25519 without a retry and its debug log names it.
#[test]
#[ignore = "needs the bullseye chroot: run by scripts/test-matrix"]
fn key_exchange_nss_client_to_our_pmcd_is_x25519() {
    let b = bullseye();
    let g = Guide000::new(b, None);
    let m = monitor_trusting_ca(b, &g);
    let (_keep, pmcd) = our_pmcd_nssdb(&g.db_host(), &[], false);
    let rec = Recorder::start(pmcd.addr());
    let run = nss_fetch(b, &m, &format!("localhost:{}", rec.port()), &[LOAD]);
    assert_load_values(&run);
    let kx = pcp_hellos(&rec.finished(1)[0]);
    assert!(!kx.offered.contains(&X25519MLKEM768), "{kx:?}");
    assert!(kx.offered.contains(&X25519), "{kx:?}");
    assert_eq!(kx.chosen, Some(X25519), "{kx:?}");
    assert!(!kx.retry, "{kx:?}");
    assert!(
        pmcd.wait_for_log(LOG_LIMIT, |log| log
            .lines()
            .any(|l| l.contains("established (TLSv1_3 ") && l.ends_with(" X25519)"))),
        "pmcd's debug log must name X25519:\n{}",
        pmcd.log()
    );
}
