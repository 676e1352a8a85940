//! End-to-end tests of the certificates PCP's NSS-era guides make, on this
//! host's real pmcd and pminfo with the library preloaded:
//!
//! - X.509 version 1 certificates, as guide 001's `openssl x509 -req`
//!   makes them: served (PEM and NSS database), accepted when a trusted CA
//!   issued them (host name from the subject CN), asked about otherwise,
//!   presented and accepted as client certificates under `-Q`, each use
//!   logging one warning; and refused for each thing that is checked.
//! - Guide 000's extension-less "Local CA certificate" sent along with the
//!   server's certificate (as an NSS pmcd does): an unknown issuer, with the
//!   guide's question, `PCP_ALLOW_SERVER_SELF_CERT`, the trust store and an
//!   NSS "P" entry, and trusted when the CA is; never a broken signature.
//!
//! Needs PCP, openssl and libnss3-tools (scripts/install-deps) and the
//! library built (cargo build).

use pcp_secure_test_support as support;

use std::path::{Path, PathBuf};

use support::nss::*;
use support::*;

const LOAD: &str = "kernel.all.load";
const UNTRUSTED: &str =
    "WARNING: issuer of certificate received from host localhost is not trusted.";

fn pem_conf(cert: &Path, key: &Path, extra: &[(&str, &str)]) -> String {
    let (cert, key) = (s(cert).to_string(), s(key).to_string());
    let mut pairs = vec![
        ("tls-cert-file", cert.as_str()),
        ("tls-key-file", key.as_str()),
    ];
    pairs.extend_from_slice(extra);
    tls_conf(&pairs)
}

fn pmcd_with(conf: &str, require_cert: bool) -> Pmcd {
    ensure_nss_tools();
    Pmcd::builder()
        .preload_ours(true)
        .tls_conf(conf)
        .cert_required(require_cert)
        .start()
}

/// A client with the library, enforcing TLS, with `conf`, whose trust
/// store is `store` (kept across runs).
fn client(conf: &str, store: &Path) -> Client {
    Client::new(conf)
        .ours()
        .secure("enforce")
        .env("PCP_SECURE_DB_PATH", s(store))
}

fn assert_values_over_tls(pmcd: &Pmcd, client: &Client) -> Run {
    let rec = Recorder::start(pmcd.addr());
    let run = client.fetch(&format!("localhost:{}", rec.port()), &[LOAD]);
    assert_load_values(&run);
    let conns = rec.finished(1);
    assert_eq!(conns.len(), 1, "{}", run.describe());
    conns[0].assert_tls(&[LOAD]);
    run
}

fn assert_refused(run: &Run, needle: &str) {
    run.assert_failed();
    assert!(!run.stdout.contains(" value "), "{}", run.describe());
    assert!(
        run.stderr.contains(needle),
        "expected {needle:?}\n{}",
        run.describe()
    );
}

/// `allowed` connects to `pmcd` (saving its certificate for that host and
/// port), and then `plain`, with the same trust store, connects silently.
fn assert_saved_then_silent(pmcd: &Pmcd, allowed: &Client, plain: &Client) {
    let host = pmcd.host_named("localhost");
    assert_load_values(&allowed.fetch(&host, &[LOAD]));
    let again = plain.fetch(&host, &[LOAD]);
    assert_load_values(&again);
    assert!(!again.stderr.contains("WARNING"), "{}", again.describe());
}

/// The lines of `run` that warn about a version 1 certificate.
fn version1_warnings(run: &Run) -> Vec<String> {
    run.pcp_secure_lines()
        .into_iter()
        .filter(|l| l.contains("X.509 version 1"))
        .map(str::to_string)
        .collect()
}

/// Guide 001's CA and a version 1 server certificate for CN=`cn`, plus a
/// version 1 client certificate, and a second CA ("otherCA") with a
/// version 1 server certificate of its own ("rogue", CN=localhost).
fn version1_pki(cn: &str) -> OpensslPki {
    let pki = OpensslPki::new();
    pki.ca("rootCA", "myCA");
    pki.leaf("pmserver", "rootCA", cn, None);
    pki.leaf("pmclient", "rootCA", "pmclient", None);
    pki.ca("otherCA", "other CA");
    pki.leaf("rogue", "otherCA", "localhost", None);
    for leaf in ["pmserver.crt", "pmclient.crt", "rogue.crt"] {
        let text = run_tool(
            OPENSSL,
            &["x509", "-noout", "-text", "-in", s(&pki.path(leaf))],
            None,
            None,
        );
        assert!(
            text.stdout.contains("Version: 1 (0x0)"),
            "{leaf}: {}",
            text.describe()
        );
    }
    pki
}

fn ca_conf(pki: &OpensslPki, ca: &str) -> String {
    tls_conf(&[("tls-ca-cert-file", s(&pki.path(&format!("{ca}.crt"))))])
}

// A version 1 server certificate issued by the CA the client trusts, with
// the host name in its CN: served from PEM files and from guide 001's NSS
// database, accepted over TLS; pmcd and the client each log the warning
// naming the certificate and how to re-issue it.
#[test]
fn version1_server_certificate_from_a_trusted_ca_is_served_and_accepted() {
    let pki = version1_pki("localhost");
    let store = tempfile::tempdir().unwrap();
    let conf = pem_conf(&pki.path("pmserver.crt"), &pki.path("pmserver.key"), &[]);
    let pmcd = pmcd_with(&conf, false);
    let served = pmcd.pcp_secure_lines().join("\n");
    assert!(
        served.contains("X.509 version 1") && served.contains("pcp-secure cert server localhost"),
        "pmcd must warn about the version 1 certificate it serves:\n{}",
        pmcd.log()
    );
    let run = assert_values_over_tls(&pmcd, &client(&ca_conf(&pki, "rootCA"), store.path()));
    let warnings = version1_warnings(&run);
    assert_eq!(warnings.len(), 1, "one warning per use\n{}", run.describe());
    assert!(warnings[0].contains("CN=localhost"), "{}", warnings[0]);
    assert!(!run.stderr.contains("not trusted"), "{}", run.describe());

    // The same certificate from guide 001's collector database.
    let db = guide001_server_db(&pki);
    let conf = tls_conf(&[
        ("tls-nssdb", &db.spec()),
        ("tls-cert-nickname", "NSS Certificate DB:pmserver_cert"),
    ]);
    let pmcd = pmcd_with(&conf, false);
    let log = pmcd.pcp_secure_lines().join("\n");
    assert!(
        log.contains("pmserver_cert") && log.contains("X.509 version 1"),
        "{}",
        pmcd.log()
    );
    assert!(!log.contains("error"), "{}", pmcd.log());
    assert_values_over_tls(&pmcd, &client(&ca_conf(&pki, "rootCA"), store.path()));
}

// Host names of version 1 certificates are their subject CN: CN=pmserver
// is not localhost (refused, or accepted with PCP_ALLOW_BAD_CERT_DOMAIN).
#[test]
fn version1_server_certificate_name_is_its_cn() {
    let pki = version1_pki("pmserver");
    let store = tempfile::tempdir().unwrap();
    let conf = pem_conf(&pki.path("pmserver.crt"), &pki.path("pmserver.key"), &[]);
    let pmcd = pmcd_with(&conf, false);
    let trusting = client(&ca_conf(&pki, "rootCA"), store.path());
    let run = trusting.fetch(&pmcd.host_named("localhost"), &[LOAD]);
    assert_refused(&run, "does not match");
    let allowed = trusting.env("PCP_ALLOW_BAD_CERT_DOMAIN", "1");
    assert_values_over_tls(&pmcd, &allowed);
}

// A version 1 server certificate from a CA the client does not trust is
// an unknown issuer like any other: the guide's warning without a
// terminal, accepted and saved with PCP_ALLOW_SERVER_SELF_CERT, then
// accepted silently from the trust store.
#[test]
fn version1_server_certificate_from_an_untrusted_ca_is_asked_about_and_saved() {
    let pki = version1_pki("localhost");
    let store = tempfile::tempdir().unwrap();
    let conf = pem_conf(&pki.path("rogue.crt"), &pki.path("rogue.key"), &[]);
    let pmcd = pmcd_with(&conf, false);
    let trusting_root = client(&ca_conf(&pki, "rootCA"), store.path());
    let run = trusting_root.fetch(&pmcd.host_named("localhost"), &[LOAD]);
    assert_refused(&run, UNTRUSTED);
    let allowed =
        client(&ca_conf(&pki, "rootCA"), store.path()).env("PCP_ALLOW_SERVER_SELF_CERT", "1");
    assert_values_over_tls(&pmcd, &allowed);
    assert_saved_then_silent(&pmcd, &allowed, &trusting_root);
}

// The same version 1 certificates served by stock pmcd (this release's
// libpcp and OpenSSL, no library): our client accepts the one a trusted CA
// issued (one warning) and asks about, then remembers, the other.
#[test]
fn version1_server_certificates_from_stock_pmcd_are_accepted_or_pinned() {
    let pki = version1_pki("localhost");
    let store = tempfile::tempdir().unwrap();
    let stock = |name: &str| {
        let conf = pem_conf(
            &pki.path(&format!("{name}.crt")),
            &pki.path(&format!("{name}.key")),
            &[],
        );
        Pmcd::builder().preload_ours(false).tls_conf(&conf).start()
    };
    let pmcd = stock("pmserver");
    let trusting_root = client(&ca_conf(&pki, "rootCA"), store.path());
    let run = assert_values_over_tls(&pmcd, &trusting_root);
    assert_eq!(version1_warnings(&run).len(), 1, "{}", run.describe());
    let pmcd = stock("rogue");
    let run = trusting_root.fetch(&pmcd.host_named("localhost"), &[LOAD]);
    assert_refused(&run, UNTRUSTED);
    let allowed =
        client(&ca_conf(&pki, "rootCA"), store.path()).env("PCP_ALLOW_SERVER_SELF_CERT", "1");
    assert_saved_then_silent(&pmcd, &allowed, &trusting_root);
}

// Version 1 client certificates under -Q: presented from PEM files and
// from guide 001's monitor database, accepted when the CA pmcd trusts
// issued them (pmcd logs the warning once), refused when another CA did.
#[test]
fn version1_client_certificates_under_q() {
    let pki = version1_pki("localhost");
    let store = tempfile::tempdir().unwrap();
    let conf = pem_conf(
        &pki.path("pmserver.crt"),
        &pki.path("pmserver.key"),
        &[("tls-ca-cert-file", s(&pki.path("rootCA.crt")))],
    );
    let pmcd = pmcd_with(&conf, true);
    let with_cert = |name: &str| {
        client(
            &tls_conf(&[
                ("tls-ca-cert-file", s(&pki.path("rootCA.crt"))),
                ("tls-client-cert-file", s(&pki.path(&format!("{name}.crt")))),
                ("tls-client-key-file", s(&pki.path(&format!("{name}.key")))),
            ]),
            store.path(),
        )
    };
    let run = assert_values_over_tls(&pmcd, &with_cert("pmclient"));
    assert!(!run.stderr.contains("does not fit"), "{}", run.describe());
    assert!(
        version1_warnings(&run)
            .iter()
            .any(|l| l.contains("tls-client-cert-file")
                && l.contains("pcp-secure cert client pmclient")),
        "the client must warn about presenting a version 1 certificate\n{}",
        run.describe()
    );
    assert_values_over_tls(&pmcd, &with_cert("pmclient"));
    let client_warnings = pmcd
        .pcp_secure_lines()
        .into_iter()
        .filter(|l| l.contains("client certificate") && l.contains("X.509 version 1"))
        .count();
    assert_eq!(client_warnings, 1, "once per certificate:\n{}", pmcd.log());
    let rogue = with_cert("rogue").fetch(&pmcd.host_named("localhost"), &[LOAD]);
    rogue.assert_failed();
    assert!(!rogue.stdout.contains(" value "), "{}", rogue.describe());

    // Guide 001's monitor database holding the version 1 client certificate.
    let client_db = guide001_client_db(&pki, None, true);
    let nss = nss_client(&ca_conf(&pki, "rootCA"), &client_db);
    assert_values_over_tls(&pmcd, &nss);
}

/// Guide 000's collector database, with the collector's key and
/// certificate, and the CA, exported as PEM: (database, chain file holding
/// the collector's certificate then the extension-less CA, key file).
fn guide000_chain() -> (NssDb, PathBuf, PathBuf) {
    let db = guide000_db(None);
    let (chain, key, _) = guide000_pem(&db);
    let ca_text = db.cert_text(LOCAL_CA_NICK);
    assert!(
        !ca_text.contains("Basic Constraints"),
        "guide 000's CA has no extensions:\n{ca_text}"
    );
    (db, chain, key)
}

// A pmcd sending guide 000's extension-less CA along with its certificate
// (our pmcd from a PEM chain file, and stock pmcd from the same file):
// to a client that does not trust the CA it is an unknown issuer (the
// guide's warning, never "EndEntityUsedAsCa"), accepted and saved with
// PCP_ALLOW_SERVER_SELF_CERT and then silently; trusted outright with
// the CA in tls-ca-cert-file or an NSS database with the collector's
// certificate "P,,".
#[test]
fn extensionless_ca_in_the_chain_is_an_unknown_issuer() {
    let (db, chain, key) = guide000_chain();
    for ours in [true, false] {
        let store = tempfile::tempdir().unwrap();
        let conf = pem_conf(&chain, &key, &[]);
        let pmcd = Pmcd::builder().preload_ours(ours).tls_conf(&conf).start();
        let run = client("", store.path()).fetch(&pmcd.host_named("localhost"), &[LOAD]);
        assert_refused(&run, UNTRUSTED);
        assert!(
            !run.stderr.contains("EndEntityUsedAsCa"),
            "{}",
            run.describe()
        );
        let allowed = client("", store.path()).env("PCP_ALLOW_SERVER_SELF_CERT", "1");
        assert_values_over_tls(&pmcd, &allowed);
        assert_saved_then_silent(&pmcd, &allowed, &client("", store.path()));

        let fresh = tempfile::tempdir().unwrap();
        let ca = db.export_pem_file(LOCAL_CA_NICK);
        let run = assert_values_over_tls(
            &pmcd,
            &client(&tls_conf(&[("tls-ca-cert-file", s(&ca))]), fresh.path()),
        );
        assert!(!run.stderr.contains("WARNING"), "{}", run.describe());

        let peer_db = NssDb::new(None);
        peer_db.import_from(&db, COLLECTOR_NICK, "P,,");
        let fresh = tempfile::tempdir().unwrap();
        let run = assert_values_over_tls(
            &pmcd,
            &client("", fresh.path()).env("PCP_SECURE_DB_PATH", peer_db.dir_str()),
        );
        assert!(!run.stderr.contains("WARNING"), "{}", run.describe());
    }
}

// Signatures are still checked: a chain whose extension-less CA did not
// sign the certificate (another guide 000 database's CA, same name) is
// refused even with PCP_ALLOW_SERVER_SELF_CERT.
#[test]
fn extensionless_ca_that_did_not_sign_is_refused_whatever_the_answer() {
    let (_db, chain, key) = guide000_chain();
    let (other, _other_chain, _other_key) = guide000_chain();
    let text = std::fs::read_to_string(&chain).unwrap();
    let leaf_end =
        text.find("-----END CERTIFICATE-----").unwrap() + "-----END CERTIFICATE-----\n".len();
    let forged = chain.with_file_name("forged.pem");
    std::fs::write(
        &forged,
        format!("{}{}", &text[..leaf_end], other.export_pem(LOCAL_CA_NICK)),
    )
    .unwrap();
    let store = tempfile::tempdir().unwrap();
    let pmcd = pmcd_with(&pem_conf(&forged, &key, &[]), false);
    let allowed = client("", store.path()).env("PCP_ALLOW_SERVER_SELF_CERT", "1");
    let run = allowed.fetch(&pmcd.host_named("localhost"), &[LOAD]);
    run.assert_failed();
    assert!(!run.stdout.contains(" value "), "{}", run.describe());
    assert!(
        !run.stderr.contains(UNTRUSTED),
        "never asked about:\n{}",
        run.describe()
    );
}
