//! Key exchange, end to end: which group each pair of real peers agrees on,
//! read off the wire (the plaintext ClientHello and ServerHello between the
//! PCP opening and the encrypted records, through the recording proxy) and
//! from what the peers themselves report (`openssl s_client -brief`, curl
//! -v, our debug log). Ours offers and prefers the post-quantum hybrid
//! X25519MLKEM768 and falls back to X25519 without an extra round trip;
//! stock PCP on OpenSSL 3.5+ (Debian 13, sid: run in scripts/test-matrix)
//! negotiates X25519MLKEM768 with it both ways, stock PCP 6.0.3 on
//! OpenSSL 3.0 (this host) X25519. `tls-groups` restricts and orders the
//! groups; `tls-fips = true` in a build without the FIPS module turns TLS
//! off, saying why, and never runs without FIPS.
//!
//! Needs PCP, openssl, curl and python3 (scripts/install-deps) and the
//! library built (`cargo build`).

use pcp_secure_test_support as support;

use std::process::{Command, Stdio};

use support::hello::*;
use support::nss::PreambleProxy;
use support::pmproxy::Pmproxy;
use support::{assert_load_values, tls_conf, Certs, Client, Pmcd, Recorder};

/// The group stock PCP negotiates here with a peer that offers
/// X25519MLKEM768: that group where its OpenSSL has ML-KEM (3.5 and
/// later), else X25519.
fn stock_group() -> u16 {
    if openssl_has_mlkem() {
        X25519MLKEM768
    } else {
        X25519
    }
}

fn openssl_has_mlkem() -> bool {
    let out = Command::new("openssl")
        .arg("version")
        .output()
        .expect("openssl runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let version = text.split_whitespace().nth(1).unwrap_or("");
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    assert!(major >= 3, "unexpected `openssl version`: {text}");
    (major, minor) >= (3, 5)
}

fn our_pmcd(conf: &str) -> Pmcd {
    support::ensure_deps();
    Pmcd::builder()
        .preload_ours(true)
        .tls_conf(conf)
        .env("PCP_SECURE_DEBUG", "1")
        .start()
}

/// Our client offers the hybrid first, with key shares for it and for
/// X25519 (so that a peer without ML-KEM answers without a retry).
fn assert_our_client_hello(h: &Hellos) {
    assert_eq!(
        h.offered,
        vec![X25519MLKEM768, X25519, SECP256R1, SECP384R1],
        "{h:?}"
    );
    assert_eq!(h.shares, vec![X25519MLKEM768, X25519], "{h:?}");
}

/// Ours to ours: X25519MLKEM768 on the wire, no retry, and both ends'
/// debug logs name it.
#[test]
fn ours_to_ours_negotiates_x25519mlkem768() {
    let certs = Certs::new();
    let pmcd = our_pmcd(&certs.server_conf());
    let rec = Recorder::start(pmcd.addr());
    let run = Client::new(&certs.client_conf())
        .ours()
        .secure("enforce")
        .env("PCP_SECURE_DEBUG", "1")
        .fetch(&rec.host(), &["kernel.all.load"]);
    assert_load_values(&run);
    let h = pcp_hellos(&rec.finished(1)[0]);
    assert_our_client_hello(&h);
    assert!(!h.retry, "{h:?}");
    assert_eq!(group_name(h.group()), "X25519MLKEM768", "{h:?}");
    assert!(
        run.stderr
            .lines()
            .any(|l| l.contains("established (TLSv1_3 ") && l.contains(" X25519MLKEM768")),
        "the client's debug log must name the group:\n{}",
        run.describe()
    );
    assert!(
        pmcd.wait_for_log(std::time::Duration::from_secs(10), |log| log.lines().any(
            |l| l.contains("established (TLSv1_3 ") && l.ends_with(" X25519MLKEM768)")
        )),
        "pmcd's debug log must name the group:\n{}",
        pmcd.log()
    );
    assert!(
        pmcd.log()
            .lines()
            .any(|l| l.contains("serving TLS 1.2/1.3 with")
                && l.contains("key exchange X25519MLKEM768:X25519:secp256r1:secp384r1")
                && l.contains("AWS-LC")),
        "pmcd's log must say which groups it serves with:\n{}",
        pmcd.log()
    );
}

/// Our client and a stock pmcd (this release's OpenSSL): X25519MLKEM768
/// with OpenSSL 3.5+, X25519 with OpenSSL 3.0 (PCP 6.0.3), no retry.
#[test]
fn ours_client_to_stock_pmcd_negotiates_the_best_common_group() {
    support::ensure_deps();
    let certs = Certs::new();
    let pmcd = Pmcd::builder()
        .preload_ours(false)
        .tls_conf(&certs.server_conf())
        .start();
    let rec = Recorder::start(pmcd.addr());
    let run = Client::new(&certs.client_conf())
        .ours()
        .secure("enforce")
        .fetch(&rec.host(), &["kernel.all.load"]);
    assert_load_values(&run);
    let h = pcp_hellos(&rec.finished(1)[0]);
    assert_our_client_hello(&h);
    assert!(!h.retry, "the fallback must need no retry: {h:?}");
    assert_eq!(group_name(h.group()), group_name(stock_group()), "{h:?}");
}

/// A stock client (this release's OpenSSL) and our pmcd: the same group
/// as stock to stock.
#[test]
fn stock_client_to_ours_pmcd_negotiates_the_best_common_group() {
    let certs = Certs::new();
    let pmcd = our_pmcd(&certs.server_conf());
    let rec = Recorder::start(pmcd.addr());
    let run = Client::new(&certs.client_conf())
        .stock()
        .secure("enforce")
        .fetch(&rec.host(), &["kernel.all.load"]);
    assert_load_values(&run);
    let h = pcp_hellos(&rec.finished(1)[0]);
    assert!(!h.retry, "{h:?}");
    assert_eq!(group_name(h.group()), group_name(stock_group()), "{h:?}");
    if openssl_has_mlkem() {
        assert_eq!(h.offered.first(), Some(&X25519MLKEM768), "{h:?}");
    } else {
        assert!(!h.offered.contains(&X25519MLKEM768), "{h:?}");
    }
}

/// The control: stock to stock negotiates what the tests above expect of
/// ours, so ours is at least as strong as stock on this release.
#[test]
fn stock_to_stock_control_group() {
    support::ensure_deps();
    let certs = Certs::new();
    let pmcd = Pmcd::builder()
        .preload_ours(false)
        .tls_conf(&certs.server_conf())
        .start();
    let rec = Recorder::start(pmcd.addr());
    let run = Client::new(&certs.client_conf())
        .stock()
        .secure("enforce")
        .fetch(&rec.host(), &["kernel.all.load"]);
    assert_load_values(&run);
    let h = pcp_hellos(&rec.finished(1)[0]);
    assert_eq!(group_name(h.group()), group_name(stock_group()), "{h:?}");
}

/// `openssl s_client -brief` (this release's) through a PCP-preamble
/// proxy reports the group our pmcd agreed to: "Negotiated TLS1.3 group:
/// X25519MLKEM768" on OpenSSL 3.5+, "Server Temp Key: X25519" on 3.0.
#[test]
fn openssl_s_client_reports_the_group_of_our_pmcd() {
    let certs = Certs::new();
    let pmcd = our_pmcd(&certs.server_conf());
    let proxy = PreambleProxy::start(pmcd.addr());
    let out = Command::new("openssl")
        .args(["s_client", "-brief", "-connect"])
        .arg(format!("127.0.0.1:{}", proxy.port()))
        .args(["-servername", "localhost", "-CAfile", &certs.path("ca.crt")])
        .stdin(Stdio::null())
        .output()
        .expect("openssl s_client runs");
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(proxy.failures().is_empty(), "{:?}", proxy.failures());
    let want = if openssl_has_mlkem() {
        "Negotiated TLS1.3 group: X25519MLKEM768"
    } else {
        "Server Temp Key: X25519"
    };
    assert!(
        text.contains("Protocol version: TLSv1.3") && text.contains(want),
        "want \"{want}\":\n{text}"
    );
}

/// `tls-groups` on either side decides: a pmcd restricted to secp256r1
/// makes our client (whose key shares are for X25519MLKEM768 and X25519)
/// retry with secp256r1; a client restricted to X25519 gets X25519 from
/// our default pmcd; a client ordering secp384r1 first gets it.
#[test]
fn tls_groups_restricts_and_orders_the_groups() {
    let certs = Certs::new();
    let restricted = our_pmcd(&format!(
        "{}{}",
        certs.server_conf(),
        tls_conf(&[("tls-groups", "P-256")])
    ));
    let rec = Recorder::start(restricted.addr());
    let ours = Client::new(&certs.client_conf()).ours().secure("enforce");
    assert_load_values(&ours.fetch(&rec.host(), &["kernel.all.load"]));
    let h = pcp_hellos(&rec.finished(1)[0]);
    assert!(h.retry, "{h:?}");
    assert_eq!(group_name(h.group()), "secp256r1", "{h:?}");

    let pmcd = our_pmcd(&certs.server_conf());
    for (setting, offered, want) in [
        ("X25519", vec![X25519], X25519),
        (
            "secp384r1:X25519MLKEM768",
            vec![SECP384R1, X25519MLKEM768],
            SECP384R1,
        ),
    ] {
        let rec = Recorder::start(pmcd.addr());
        let client = Client::new(&format!(
            "{}{}",
            certs.client_conf(),
            tls_conf(&[("tls-groups", setting)])
        ))
        .ours()
        .secure("enforce");
        assert_load_values(&client.fetch(&rec.host(), &["kernel.all.load"]));
        let h = pcp_hellos(&rec.finished(1)[0]);
        assert_eq!(h.offered, offered, "{setting}: {h:?}");
        assert!(!h.retry, "{setting}: {h:?}");
        assert_eq!(group_name(h.group()), group_name(want), "{setting}: {h:?}");
    }
}

/// A group name the library does not know is a configuration error that
/// names the setting, the name and the choices; pmcd then serves plain
/// connections only, and a client so configured refuses to connect.
#[test]
fn unknown_group_name_is_an_error_naming_the_setting() {
    let certs = Certs::new();
    let pmcd = our_pmcd(&format!(
        "{}{}",
        certs.server_conf(),
        tls_conf(&[("tls-groups", "X25519:ffdhe2048")])
    ));
    let log = pmcd.log();
    assert!(
        log.lines()
            .any(|l| l.starts_with("pcp_secure: error: tls-groups: ")
                && l.contains("\"ffdhe2048\"")
                && l.contains("X25519MLKEM768:")
                && l.contains("TLS is configured but OFF")),
        "{log}"
    );
    let plain = Client::new("")
        .ours()
        .fetch(&pmcd.host(), &["pmcd.feature.secure"]);
    assert_eq!(plain.value_of("pmcd.feature.secure").as_deref(), Some("0"));

    let good = our_pmcd(&certs.server_conf());
    let run = Client::new(&format!(
        "{}{}",
        certs.client_conf(),
        tls_conf(&[("tls-groups", "X448")])
    ))
    .ours()
    .secure("enforce")
    .fetch(&good.host(), &["kernel.all.load"]);
    assert!(
        !run.success() && run.stderr.contains("tls-groups: ") && run.stderr.contains("\"X448\""),
        "{}",
        run.describe()
    );
}

/// `tls-fips = true` in a build without the FIPS module: pmcd logs why and
/// serves no TLS at all (never TLS without FIPS); a client so configured
/// does not connect. (The FIPS build has its own unit tests.)
#[cfg(not(feature = "fips"))]
#[test]
fn tls_fips_is_refused_by_a_build_without_the_fips_module() {
    let certs = Certs::new();
    let fips = tls_conf(&[("tls-fips", "true")]);
    let pmcd = our_pmcd(&format!("{}{fips}", certs.server_conf()));
    let log = pmcd.log();
    assert!(
        log.lines()
            .any(|l| l.starts_with("pcp_secure: error: tls-fips = true")
                && l.contains("without the FIPS 140-3 module")
                && l.contains("TLS is configured but OFF")),
        "{log}"
    );
    let secure = Client::new(&certs.client_conf())
        .ours()
        .secure("enforce")
        .fetch(&pmcd.host(), &["kernel.all.load"]);
    assert!(!secure.success(), "{}", secure.describe());

    let good = our_pmcd(&certs.server_conf());
    let run = Client::new(&format!("{}{fips}", certs.client_conf()))
        .ours()
        .secure("enforce")
        .fetch(&good.host(), &["kernel.all.load"]);
    assert!(
        !run.success() && run.stderr.contains("tls-fips = true"),
        "{}",
        run.describe()
    );
    assert!(
        !good.log().contains("established"),
        "no TLS may have been made:\n{}",
        good.log()
    );
}

/// curl and python's ssl (this release's OpenSSL) against the HTTPS of a
/// pmproxy with the library preloaded: curl -v names the group (curl 8
/// with OpenSSL 3.5+), and the wire shows the same group as for pmcd.
#[test]
fn curl_and_python_get_the_best_common_group_from_preloaded_pmproxy() {
    support::ensure_deps();
    let certs = Certs::new();
    let proxy = Pmproxy::builder()
        .tls_conf(&support::tls_conf(&[
            ("tls-cert-file", &certs.path("server.crt")),
            ("tls-key-file", &certs.path("server.key")),
            ("tls-ca-cert-file", &certs.path("ca.crt")),
        ]))
        .preload_ours(true)
        .start();
    let rec = Recorder::start(proxy.addr());
    let url = format!("https://localhost:{}/pmapi/context", rec.port());
    let ca = certs.path("ca.crt");
    let out = Command::new("curl")
        .args([
            "-sS",
            "-v",
            "-o",
            "/dev/null",
            "--max-time",
            "30",
            "--cacert",
            &ca,
        ])
        .arg(&url)
        .stdin(Stdio::null())
        .output()
        .expect("curl runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "curl: {stderr}");
    // A verified handshake is all the key exchange needs.
    let script = r#"
import socket, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[2])
with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=20) as s:
    with ctx.wrap_socket(s, server_hostname="localhost") as t:
        print(t.version())
"#;
    let py = Command::new("/usr/bin/python3")
        .args(["-c", script, &rec.port().to_string(), &ca])
        .stdin(Stdio::null())
        .output()
        .expect("python3 runs");
    assert_eq!(
        String::from_utf8_lossy(&py.stdout),
        "TLSv1.3\n",
        "{}",
        String::from_utf8_lossy(&py.stderr)
    );
    let recs = rec.finished(2);
    for (who, r) in ["curl", "python"].iter().zip(&recs) {
        let h = hellos(&r.c2s, &r.s2c);
        assert!(!h.retry, "{who}: {h:?}");
        assert_eq!(
            group_name(h.group()),
            group_name(stock_group()),
            "{who}: {h:?}"
        );
    }
    if openssl_has_mlkem() {
        assert!(
            stderr.contains("/ X25519MLKEM768 /"),
            "curl -v must name the group: {stderr}"
        );
    }
}
