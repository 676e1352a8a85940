//! The FIPS build, end to end: the library built with the `fips` feature
//! (AWS-LC's FIPS 140-3 module, aws-lc-fips-sys) preloaded into Debian's
//! real pmcd and pminfo, with `tls-fips = true`.
//!
//! What FIPS mode approves (rustls 0.23 on aws-lc-rs 1 in FIPS mode, read
//! from their sources: `SupportedKxGroup::fips()` and
//! `Tls13AeadAlgorithm::fips()`): AES-128-GCM and AES-256-GCM (TLS 1.3 and
//! TLS 1.2 ECDHE), never ChaCha20-Poly1305; secp256r1 and secp384r1, the
//! ML-KEM groups and the hybrids whose first part is approved
//! (X25519MLKEM768: ML-KEM first; SecP256r1MLKEM768: P-256 first), never
//! X25519 alone; TLS 1.2 only with the extended master secret. The tests:
//!
//! - a FIPS pmcd serves a FIPS pminfo: both logs name the FIPS module, the
//!   wire shows only approved suites and groups offered and agreed
//!   (X25519MLKEM768, AES-GCM); stock PCP 6.0.3 (OpenSSL 3.0) and the
//!   FIPS library interoperate both ways on an approved group;
//! - the FIPS-built `pcp-secure` names the module (`--version`, `verify`);
//! - `tls-fips = true` with a setting that names a non-approved algorithm
//!   is an error naming the setting: pmcd serves no TLS, a client does not
//!   connect (never TLS without FIPS);
//! - a peer offering only ChaCha20 or only X25519 (`openssl s_client`) is
//!   refused by the FIPS pmcd.
//!
//! Built only with `--features fips` (`required-features` in Cargo.toml):
//! scripts/test builds the FIPS variant into its own target directory
//! (`CARGO_TARGET_DIR=target/fips cargo build --features fips -p pcp_secure
//! -p pcp-secure`, then `cargo test --features fips --test e2e_fips`), so
//! the library preloaded here (`support::lib_path()`, next to this test
//! binary) and the `pcp-secure` run here are that build's. Needs PCP and
//! openssl (scripts/install-deps).

use pcp_secure_test_support as support;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use support::hello::*;
use support::nss::PreambleProxy;
use support::{
    assert_load_values, lib_path, run_with_limit, tls_conf, Certs, Client, Pmcd, Recorder, Run,
    CLIENT_LIMIT,
};

/// What the FIPS build's library says of its crypto module.
const FIPS_MODULE: &str = "AWS-LC FIPS 140-3 module, FIPS mode";
/// What its version string says (`pcp_secure_version()`, the log line).
const FIPS_VERSION: &str = "FIPS 140-3 module aws-lc-fips-sys ";
/// The default groups of the FIPS build: the default list without X25519.
const FIPS_GROUPS: &str = "key exchange X25519MLKEM768:secp256r1:secp384r1, ";

// IANA codes.
const TLS13_AES_128_GCM_SHA256: u16 = 0x1301;
const TLS13_AES_256_GCM_SHA384: u16 = 0x1302;
const TLS13_CHACHA20_POLY1305_SHA256: u16 = 0x1303;
const ECDHE_RSA_CHACHA20: u16 = 0xcca8;
const ECDHE_ECDSA_CHACHA20: u16 = 0xcca9;

/// Groups FIPS mode approves (rustls' `fips()` of each aws-lc-rs group):
/// the NIST curves, ML-KEM and the hybrids led by an approved part.
fn approved_group(code: u16) -> bool {
    matches!(
        code,
        SECP256R1 | SECP384R1 | X25519MLKEM768 | SECP256R1MLKEM768 | 0x0201 | 0x0202
    )
}

/// TLS 1.3 suites FIPS mode approves: AES-GCM.
fn approved_tls13_suite(code: u16) -> bool {
    matches!(code, TLS13_AES_128_GCM_SHA256 | TLS13_AES_256_GCM_SHA384)
}

/// Whether this host's openssl has ML-KEM (3.5 and later).
fn openssl_has_mlkem() -> bool {
    let out = Command::new("openssl")
        .arg("version")
        .output()
        .expect("openssl runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let version = text.split_whitespace().nth(1).unwrap_or("");
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (major, minor) >= (3, 5)
}

/// tls.conf's `tls-fips = true`.
fn fips_on() -> String {
    tls_conf(&[("tls-fips", "true")])
}

/// pmcd with the FIPS library preloaded, `conf` as its tls.conf, debug log.
fn fips_pmcd(conf: &str) -> Pmcd {
    support::ensure_deps();
    Pmcd::builder()
        .preload_ours(true)
        .tls_conf(conf)
        .env("PCP_SECURE_DEBUG", "1")
        .start()
}

/// The FIPS pmcd's "serving TLS" line names the module and the approved
/// groups, and its version string the FIPS module.
fn assert_serves_fips(pmcd: &Pmcd) {
    let lines = pmcd.pcp_secure_lines();
    assert!(
        lines.iter().any(|l| l.contains("serving TLS 1.2/1.3 with")
            && l.contains(FIPS_VERSION)
            && l.contains(FIPS_GROUPS)
            && l.ends_with(FIPS_MODULE)),
        "pmcd's log must say it serves with the FIPS module:\n{}",
        pmcd.log()
    );
}

/// `pcp-secure` of the build under test: beside the library, in the
/// target directory's profile directory.
fn pcp_secure_tool() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let tool = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps/<test>")
        .join("pcp-secure");
    assert!(
        tool.is_file(),
        "{} is missing: build it with the library (CARGO_TARGET_DIR=target/fips cargo build --features fips -p pcp_secure -p pcp-secure)",
        tool.display()
    );
    tool
}

/// Runs the FIPS-built `pcp-secure` with `conf` as its tls.conf.
fn pcp_secure(conf: &str, args: &[&str]) -> Run {
    let dir = tempfile::Builder::new()
        .prefix("pcp-secure-fips-cli.")
        .tempdir()
        .expect("a temporary directory");
    let conf_path = dir.path().join("tls.conf");
    std::fs::write(&conf_path, conf).expect("write tls.conf");
    std::fs::create_dir(dir.path().join("root")).expect("mkdir root");
    let mut cmd = Command::new(pcp_secure_tool());
    cmd.env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("LC_ALL", "C")
        .env("HOME", dir.path())
        .env("PCP_TLSCONF_PATH", &conf_path)
        .env("PCP_SECURE_DB_PATH", dir.path().join("trust"))
        .env("PCP_SECURE_LIB", lib_path())
        .env("PCP_CONSOLE", "none")
        .args(args)
        .args(if args.first() == Some(&"verify") {
            vec![
                "--root".to_string(),
                dir.path().join("root").display().to_string(),
                "--service-user".to_string(),
                support::user_name(),
            ]
        } else {
            Vec::new()
        });
    run_with_limit(cmd, CLIENT_LIMIT)
}

/// `openssl s_client -brief` through a PCP-preamble proxy to `pmcd`, with
/// `args` restricting what it offers: (connected, what it printed).
fn s_client(pmcd: &Pmcd, certs: &Certs, args: &[&str]) -> (bool, String) {
    let proxy = PreambleProxy::start(pmcd.addr());
    let mut cmd = Command::new("openssl");
    cmd.args(["s_client", "-brief", "-connect"])
        .arg(format!("127.0.0.1:{}", proxy.port()))
        .args(["-servername", "localhost", "-CAfile", &certs.path("ca.crt")])
        .args(["-verify_return_error"])
        .args(args)
        .stdin(Stdio::null());
    let run = run_with_limit(cmd, CLIENT_LIMIT);
    assert!(!run.timed_out, "{}", run.describe());
    assert!(proxy.failures().is_empty(), "{:?}", proxy.failures());
    let connected = run.success() && run.text().contains("CONNECTION ESTABLISHED");
    (connected, run.describe())
}

/// A FIPS pmcd and a FIPS pminfo (`tls-fips = true` on both): the fetch
/// works; pmcd's log and the client's debug log name the FIPS module; the
/// client offers only approved suites and groups (no ChaCha20, no X25519,
/// no X25519 key share), and they agree on X25519MLKEM768 with AES-GCM
/// without a retry; both debug logs name what was agreed.
#[test]
fn fips_pmcd_serves_fips_pminfo_with_approved_algorithms_only() {
    let certs = Certs::new();
    let pmcd = fips_pmcd(&format!("{}{}", certs.server_conf(), fips_on()));
    assert_serves_fips(&pmcd);
    let rec = Recorder::start(pmcd.addr());
    let run = Client::new(&format!("{}{}", certs.client_conf(), fips_on()))
        .ours()
        .secure("enforce")
        .env("PCP_SECURE_DEBUG", "1")
        .fetch(&rec.host(), &["kernel.all.load"]);
    assert_load_values(&run);
    assert!(
        run.stderr
            .lines()
            .any(|l| l.contains("client TLS context built")
                && l.contains(FIPS_GROUPS)
                && l.ends_with(FIPS_MODULE)),
        "the client's debug log must name the FIPS module:\n{}",
        run.describe()
    );
    let agreed = |l: &str| {
        l.contains("established (TLSv1_3 TLS13_AES_")
            && l.contains("_GCM_SHA")
            && l.contains(" X25519MLKEM768")
    };
    assert!(
        run.stderr.lines().any(agreed),
        "the client's debug log must name the suite and group:\n{}",
        run.describe()
    );
    assert!(
        pmcd.wait_for_log(Duration::from_secs(10), |log| log.lines().any(agreed)),
        "pmcd's debug log must name the suite and group:\n{}",
        pmcd.log()
    );

    let h = pcp_hellos(&rec.finished(1)[0]);
    assert_eq!(
        h.offered,
        vec![X25519MLKEM768, SECP256R1, SECP384R1],
        "{h:?}"
    );
    assert_eq!(h.shares, vec![X25519MLKEM768], "no X25519 share: {h:?}");
    for code in [
        TLS13_CHACHA20_POLY1305_SHA256,
        ECDHE_RSA_CHACHA20,
        ECDHE_ECDSA_CHACHA20,
    ] {
        assert!(!h.suites.contains(&code), "{code:#06x} offered: {h:?}");
    }
    assert!(h.suites.iter().any(|s| approved_tls13_suite(*s)), "{h:?}");
    assert!(!h.retry, "{h:?}");
    assert_eq!(h.group(), X25519MLKEM768, "{h:?}");
    assert!(approved_tls13_suite(h.suite()), "{h:?}");
}

/// Stock PCP 6.0.3 (OpenSSL 3.0, which sends an X25519 key share first)
/// and the FIPS library interoperate both ways on an approved group: the
/// FIPS pmcd asks stock pminfo for another share and agrees on secp256r1
/// (X25519MLKEM768 with OpenSSL 3.5+); the FIPS pminfo gets the same from
/// a stock pmcd, never X25519.
#[test]
fn stock_pcp_and_the_fips_library_agree_on_an_approved_group() {
    let certs = Certs::new();
    let want = if openssl_has_mlkem() {
        X25519MLKEM768
    } else {
        SECP256R1
    };

    let pmcd = fips_pmcd(&format!("{}{}", certs.server_conf(), fips_on()));
    let rec = Recorder::start(pmcd.addr());
    let stock = Client::new(&certs.client_conf())
        .stock()
        .secure("enforce")
        .fetch(&rec.host(), &["kernel.all.load"]);
    assert_load_values(&stock);
    let h = pcp_hellos(&rec.finished(1)[0]);
    assert_eq!(h.group(), want, "stock client to FIPS pmcd: {h:?}");
    assert!(approved_tls13_suite(h.suite()), "{h:?}");

    support::ensure_deps();
    let stock_pmcd = Pmcd::builder()
        .preload_ours(false)
        .tls_conf(&certs.server_conf())
        .start();
    let rec = Recorder::start(stock_pmcd.addr());
    let ours = Client::new(&format!("{}{}", certs.client_conf(), fips_on()))
        .ours()
        .secure("enforce")
        .fetch(&rec.host(), &["kernel.all.load"]);
    assert_load_values(&ours);
    let h = pcp_hellos(&rec.finished(1)[0]);
    assert!(!h.offered.contains(&X25519), "{h:?}");
    assert_eq!(h.group(), want, "FIPS client to stock pmcd: {h:?}");
    assert!(
        approved_group(h.group()) && approved_tls13_suite(h.suite()),
        "{h:?}"
    );
}

/// The FIPS-built `pcp-secure`: `--version` names the FIPS module;
/// `verify`'s crypto line says FIPS mode and the approved groups, and
/// fails a `tls-groups` naming X25519 under `tls-fips = true`, naming the
/// setting.
#[test]
fn pcp_secure_tool_reports_the_fips_module() {
    let version = pcp_secure("", &["--version"]);
    version.assert_ok();
    assert!(
        version.stdout.starts_with("pcp-secure libpcp_secure ")
            && version.stdout.contains(FIPS_VERSION),
        "{}",
        version.describe()
    );

    let certs = Certs::new();
    let conf = format!("{}{}", certs.server_conf(), fips_on());
    let verify = pcp_secure(&conf, &["verify"]);
    let crypto: Vec<&str> = verify
        .stdout
        .lines()
        .filter(|l| l.contains(" crypto: "))
        .collect();
    assert!(
        crypto.len() == 1
            && crypto[0].starts_with("ok ")
            && crypto[0].contains(FIPS_VERSION)
            && crypto[0].contains(FIPS_GROUPS)
            && crypto[0].ends_with(FIPS_MODULE),
        "{}",
        verify.describe()
    );

    let bad = format!("{conf}{}", tls_conf(&[("tls-groups", "X25519")]));
    let verify = pcp_secure(&bad, &["verify"]);
    assert!(!verify.success(), "{}", verify.describe());
    assert!(
        verify.stdout.lines().any(|l| l.starts_with("FAIL crypto: ")
            && l.contains("tls-groups: key-exchange group \"X25519\" is not FIPS-approved")),
        "{}",
        verify.describe()
    );
}

/// `tls-fips = true` with a setting that names a non-approved algorithm
/// (ChaCha20 for TLS 1.3 or 1.2, X25519): pmcd logs an error naming the
/// setting and serves no TLS (`pmcd.feature.secure` 0, a client that
/// enforces TLS is refused) but keeps serving; a client so configured does
/// not connect to a good FIPS pmcd and says why, and no TLS is made.
#[test]
fn a_fips_request_that_cannot_be_met_turns_tls_off() {
    let certs = Certs::new();
    let good = fips_pmcd(&format!("{}{}", certs.server_conf(), fips_on()));
    for (key, value, what) in [
        (
            "tls-ciphersuites",
            "TLS13_CHACHA20_POLY1305_SHA256",
            "cipher \"TLS13_CHACHA20_POLY1305_SHA256\" is not FIPS-approved",
        ),
        (
            "tls-ciphers",
            "ECDHE-RSA-CHACHA20-POLY1305",
            "cipher \"ECDHE-RSA-CHACHA20-POLY1305\" is not FIPS-approved",
        ),
        (
            "tls-groups",
            "X25519",
            "key-exchange group \"X25519\" is not FIPS-approved",
        ),
    ] {
        let setting = tls_conf(&[(key, value)]);
        let mut pmcd = fips_pmcd(&format!("{}{}{setting}", certs.server_conf(), fips_on()));
        let log = pmcd.log();
        assert!(
            log.lines().any(
                |l| l.starts_with(&format!("pcp_secure: error: {key}: {what}"))
                    && l.contains("TLS is configured but OFF")
            ),
            "{key} = {value}: pmcd must say why it serves no TLS:\n{log}"
        );
        assert!(!log.contains("serving TLS"), "{key} = {value}:\n{log}");
        let plain = Client::new("")
            .ours()
            .fetch(&pmcd.host(), &["pmcd.feature.secure"]);
        assert_eq!(
            plain.value_of("pmcd.feature.secure").as_deref(),
            Some("0"),
            "{key} = {value}: {}",
            plain.describe()
        );
        let secure = Client::new(&certs.client_conf())
            .ours()
            .secure("enforce")
            .fetch(&pmcd.host(), &["kernel.all.load"]);
        assert!(!secure.success(), "{key} = {value}: {}", secure.describe());
        pmcd.assert_running();

        let client = Client::new(&format!("{}{}{setting}", certs.client_conf(), fips_on()))
            .ours()
            .secure("enforce")
            .fetch(&good.host(), &["kernel.all.load"]);
        assert!(
            !client.success() && client.stderr.contains(&format!("{key}: {what}")),
            "{key} = {value}: the client must refuse and say why: {}",
            client.describe()
        );
    }
    assert!(
        !good.log().contains("established"),
        "no TLS may have been made:\n{}",
        good.log()
    );
}

/// Peers that offer only what FIPS mode does not approve are refused by
/// the FIPS pmcd: `openssl s_client` offering only ChaCha20-Poly1305 (TLS
/// 1.3 and 1.2) or only X25519 fails the handshake and pmcd logs the
/// refusal; the same client with its defaults connects (TLS 1.3, AES-GCM),
/// and so does TLS 1.2 (AES-GCM, with the extended master secret).
#[test]
fn the_fips_pmcd_refuses_peers_offering_only_unapproved_algorithms() {
    let certs = Certs::new();
    let mut pmcd = fips_pmcd(&format!("{}{}", certs.server_conf(), fips_on()));
    assert_serves_fips(&pmcd);
    let chacha = [
        "-ciphersuites",
        "TLS_CHACHA20_POLY1305_SHA256",
        "-cipher",
        "ECDHE-RSA-CHACHA20-POLY1305:ECDHE-ECDSA-CHACHA20-POLY1305",
    ];
    let x25519 = ["-groups", "X25519"];
    for (what, args, why) in [
        ("only ChaCha20", &chacha[..], "(no_cipher_suites_in_common)"),
        ("only X25519", &x25519[..], "(no_kx_groups_in_common)"),
    ] {
        let (connected, out) = s_client(&pmcd, &certs, args);
        assert!(
            !connected && out.contains("alert handshake failure"),
            "{what}: the FIPS pmcd must refuse the handshake:\n{out}"
        );
        assert!(
            pmcd.wait_for_log(Duration::from_secs(10), |log| log.lines().any(|l| l
                .starts_with("pcp_secure: error: secure connection from ")
                && l.contains(") refused: ")
                && l.ends_with(why))),
            "{what}: pmcd must log the refusal {why}:\n{}",
            pmcd.log()
        );
    }

    // OpenSSL 3.0 has no ML-KEM: secp256r1 (after a retry, its first key
    // share being X25519); 3.5 and later agree on X25519MLKEM768.
    let group = if openssl_has_mlkem() {
        "Negotiated TLS1.3 group: X25519MLKEM768"
    } else {
        "Server Temp Key: ECDH, prime256v1"
    };
    let (connected, out) = s_client(&pmcd, &certs, &[]);
    assert!(
        connected
            && out.contains("Protocol version: TLSv1.3")
            && (out.contains("Ciphersuite: TLS_AES_256_GCM_SHA384")
                || out.contains("Ciphersuite: TLS_AES_128_GCM_SHA256"))
            && out.contains(group),
        "defaults, want {group}:\n{out}"
    );
    let (connected, out) = s_client(&pmcd, &certs, &["-tls1_2"]);
    assert!(
        connected
            && out.contains("Protocol version: TLSv1.2")
            && out.contains("Ciphersuite: ECDHE-RSA-AES")
            && out.contains("GCM-SHA")
            && out.contains("Server Temp Key: ECDH, prime256v1"),
        "TLS 1.2:\n{out}"
    );
    pmcd.assert_running();
}
