//! End-to-end tests of NSS "sql:" certificate databases (cert9.db/key4.db)
//! read by libpcp_secure without NSS: databases built with the real
//! certutil/pk12util exactly as PCP's NSS-era guides do, served by Debian's
//! unchanged pmcd with the library preloaded and used by a preloaded
//! pminfo; NSS's own tstclnt and a stock (OpenSSL) pminfo as peers.
//!
//! Needs PCP (6.0.3 on Debian 12), libnss3-tools and openssl (scripts/install-deps) and the
//! library built (cargo build). The `helpers_*` tests check the database
//! building itself and pass without the library's NSS support.

use pcp_secure_test_support as support;

use std::path::Path;

use support::nss::*;
use support::*;

const LOAD: &str = "kernel.all.load";
const VERSION: &str = "pmcd.version";
const SECURE: &str = "pmcd.feature.secure";

/// Never in the clear on a TLS connection: the metric names pminfo looks up
/// and the version string pmcd returns (that of the installed PCP).
fn secrets() -> [&'static str; 3] {
    [LOAD, "kernel.all", pcp_version()]
}

/// SANs for certutil --extSAN that match both spellings tests use.
const LOOPBACK_SANS: &str = "dns:localhost,ip:127.0.0.1";

// ---------------------------------------------------------------------------
// Helpers

fn our_pmcd(conf: &str) -> Pmcd {
    ensure_nss_tools();
    Pmcd::builder().preload_ours(true).tls_conf(conf).start()
}

fn our_pmcd_q(conf: &str) -> Pmcd {
    ensure_nss_tools();
    Pmcd::builder()
        .preload_ours(true)
        .tls_conf(conf)
        .cert_required(true)
        .start()
}

/// tls.conf serving guide 001's `pmserver_cert` from `db`, plus `extra`.
fn guide001_conf(db: &NssDb, extra: &[(&str, &str)]) -> String {
    let spec = db.spec();
    let mut pairs = vec![
        ("tls-nssdb", spec.as_str()),
        ("tls-cert-nickname", "pmserver_cert"),
    ];
    pairs.extend_from_slice(extra);
    tls_conf(&pairs)
}

/// Adds to `pki` a CA the servers do not trust ("otherCA") and a client
/// certificate from it ("rogue").
fn add_rogue_ca(pki: &OpensslPki) {
    pki.ca("otherCA", "other CA");
    pki.leaf("rogue", "otherCA", "rogue", Some(CLIENT_EXT));
}

/// Puts the "rogue" client certificate and its key into `db` as
/// "rogue_cert".
fn import_rogue_cert(db: &NssDb, pki: &OpensslPki) {
    db.import_cert("rogue_cert", "P,,", &pki.path("rogue.crt"));
    db.pk12_import(&pki.path("rogue_pkcs12.key"), P12_PASS);
}

/// tls.conf with only `tls-nssdb = SPEC`.
fn nssdb_conf(db: &NssDb) -> String {
    tls_conf(&[("tls-nssdb", &db.spec())])
}

/// pmcd.feature.secure as read by a plain stock pminfo.
fn feature_secure(pmcd: &Pmcd) -> String {
    let run = Client::new("").stock().fetch(&pmcd.host(), &[SECURE]);
    run.assert_ok();
    run.value_of(SECURE)
        .unwrap_or_else(|| panic!("no value for {SECURE}\n{}", run.describe()))
}

fn assert_no_values(run: &Run) {
    assert!(
        !run.stdout.contains(" value "),
        "values were delivered\n{}",
        run.describe()
    );
}

/// tstclnt, trusting what `db` trusts, gets a PCP reply over TLS 1.3 and
/// 1.2 through `proxy`; with an empty database NSS refuses the server.
fn assert_tstclnt_verifies(proxy: &PreambleProxy, db: &NssDb) {
    tstclnt(proxy.port(), "localhost", db, "tls1.2:tls1.3", &[]).assert_pdu_over("TLS 1.3");
    tstclnt(proxy.port(), "localhost", db, "tls1.2:tls1.2", &[]).assert_pdu_over("TLS 1.2");
    let empty = NssDb::new(None);
    let run = tstclnt(proxy.port(), "localhost", &empty, "tls1.2:tls1.3", &[]);
    run.assert_refused();
    assert!(
        run.stderr.contains("SEC_ERROR_UNKNOWN_ISSUER"),
        "{}",
        run.describe()
    );
    assert!(proxy.failures().is_empty(), "{:?}", proxy.failures());
}

fn assert_refused(run: &Run) {
    run.assert_failed();
    assert_no_values(run);
}

fn assert_no_pcp_secure_errors(pmcd: &Pmcd) {
    let bad: Vec<String> = pmcd
        .pcp_secure_lines()
        .into_iter()
        .filter(|l| l.contains("error") || l.contains("warning"))
        .collect();
    assert!(
        bad.is_empty(),
        "unexpected pcp_secure errors in pmcd.log:\n{}",
        pmcd.log()
    );
}

/// `run` got its values over TLS: load values, and the client said nothing
/// about errors.
fn assert_tls_values(run: &Run) {
    assert_load_values(run);
    let errors: Vec<&str> = run
        .pcp_secure_lines()
        .into_iter()
        .filter(|l| l.contains("error"))
        .collect();
    assert!(errors.is_empty(), "client errors\n{}", run.describe());
}

/// Fetches through a recording proxy and checks the connection was TLS
/// with nothing readable on the wire.
fn assert_fetch_over_tls(pmcd: &Pmcd, client: &Client, host_name: &str) {
    let rec = Recorder::start(pmcd.addr());
    let host = format!("{host_name}:{}", rec.port());
    let run = client.fetch(&host, &[LOAD, VERSION]);
    assert_tls_values(&run);
    let conns = rec.finished(1);
    assert_eq!(conns.len(), 1, "pminfo made {} connections", conns.len());
    conns[0].assert_tls(&secrets());
}

fn assert_needs_client_cert(run: &Run) {
    assert_refused(run);
    assert!(
        run.stderr.contains("requires a client certificate"),
        "expected \"requires a client certificate\"\n{}",
        run.describe()
    );
}

/// The whole pcp_secure text of pmcd.log, once a line mentioning `first`
/// has appeared.
fn pcp_secure_text_with(pmcd: &Pmcd, first: &str) -> String {
    let found = pmcd.wait_for_log(LOG_LIMIT, |log| {
        log.lines()
            .any(|l| l.trim_start().starts_with("pcp_secure:") && l.contains(first))
    });
    assert!(
        found,
        "no pcp_secure line mentioning {first:?} in pmcd.log:\n{}",
        pmcd.log()
    );
    pmcd.pcp_secure_lines().join("\n")
}

/// A bad NSS configuration: pmcd.log has a pcp_secure error mentioning
/// each of `needles` (the first one on the same line as "error"), pmcd keeps
/// running, does not claim TLS, serves plain clients, and a client that
/// insists on TLS (and would trust the server via `client`'s database)
/// fails.
fn assert_error_and_plain_service(pmcd: &mut Pmcd, needles: &[&str], client_db: &NssDb) {
    let first = needles[0];
    let text = pcp_secure_text_with(pmcd, first);
    assert!(
        text.lines()
            .any(|l| l.contains(first) && l.to_lowercase().contains("error")),
        "no pcp_secure error line naming {first:?}:\n{}",
        pmcd.log()
    );
    for n in needles {
        assert!(
            text.contains(n),
            "pmcd.log's pcp_secure lines do not mention {n:?}:\n{}",
            pmcd.log()
        );
    }
    pmcd.assert_running();
    assert_eq!(feature_secure(pmcd), "0", "pmcd must not claim TLS");
    assert_load_values(&Client::new("").stock().fetch(&pmcd.host(), &[LOAD]));
    assert_load_values(&Client::new("").ours().fetch(&pmcd.host(), &[LOAD]));
    let enforce = nss_client("", client_db).fetch(&pmcd.host_named("localhost"), &[LOAD]);
    assert_refused(&enforce);
    pmcd.assert_running();
}

/// The collector certificate of `db` as seen by openssl.
fn assert_cert_text_has(db: &NssDb, nick: &str, needles: &[&str]) {
    let text = db.cert_text(nick);
    for n in needles {
        assert!(text.contains(n), "{nick:?} lacks {n:?}:\n{text}");
    }
}

/// A collector database with a CA (CT,,) and `spec` issued by it.
fn db_with_collector(password: Option<&str>, collector: CertSpec) -> NssDb {
    let db = NssDb::new(password);
    db.self_signed_ca(
        LOCAL_CA_NICK,
        "cn=Local PCP Installation,dc=example",
        "CT,,",
    );
    db.issue(&collector.issuer(LOCAL_CA_NICK));
    db
}

fn collector_spec() -> CertSpec {
    CertSpec::new(COLLECTOR_NICK, "cn=PCP Collector")
        .ext_san(LOOPBACK_SANS)
        .trust("P,,")
}

// ---------------------------------------------------------------------------
// The database builders themselves (pass without NSS support in the library)

// Guide 000 as the helpers build it: trust flags, the SAN -8 makes (DNS
// names only), RSA 2048 keys, SHA-256 signatures, the CA exported as ASCII
// and imported "CT,," into a monitor database, and the EC, SHA-1, RSA 1024
// and --extSAN variants the error tests use.
#[test]
fn helpers_build_guide000_databases() {
    ensure_nss_tools();
    let db = guide000_db(None);
    assert!(db.dir().join("cert9.db").is_file() && db.dir().join("key4.db").is_file());
    assert_eq!(
        db.trust_of(LOCAL_CA_NICK),
        Some(vec!["CTu,u,u".to_string()])
    );
    assert_eq!(
        db.trust_of(COLLECTOR_NICK),
        Some(vec!["Pu,u,u".to_string()])
    );
    assert_cert_text_has(
        &db,
        COLLECTOR_NICK,
        &[
            "DNS:localhost, DNS:127.0.0.1",
            "sha256WithRSAEncryption",
            "Public-Key: (2048 bit)",
            "Issuer: DC = example, CN = Local PCP Installation",
        ],
    );
    let keys = db.keys();
    assert_eq!(keys.matches("rsa").count(), 2, "{keys}");
    assert!(
        keys.contains(&format!("NSS Certificate DB:{COLLECTOR_NICK}")),
        "{keys}"
    );

    let client = client_db_trusting(&db, LOCAL_CA_NICK);
    assert_eq!(
        client.trust_of(LOCAL_CA_NICK),
        Some(vec!["CT,,".to_string()])
    );
    assert_eq!(client.trust_of(COLLECTOR_NICK), None);

    let ec = db_with_collector(None, collector_spec().key(KeyType::Ec("secp256r1")));
    assert!(ec.keys().contains("> ec "), "{}", ec.keys());
    assert_cert_text_has(
        &ec,
        COLLECTOR_NICK,
        &[
            "id-ecPublicKey",
            "prime256v1",
            "DNS:localhost, IP Address:127.0.0.1",
        ],
    );
    let sha1 = db_with_collector(None, collector_spec().hash("SHA1"));
    assert_cert_text_has(&sha1, COLLECTOR_NICK, &["sha1WithRSAEncryption"]);
    let small = db_with_collector(None, collector_spec().key(KeyType::Rsa(1024)));
    assert_cert_text_has(&small, COLLECTOR_NICK, &["Public-Key: (1024 bit)"]);
    // certutil -f takes the password with its inner spaces from a one-line
    // file (newline or CRLF optional); of several lines NSS uses the last.
    let spaced = NssDb::new(Some("Pass with space"));
    spaced.self_signed_ca("CA", "cn=Spaced", "CT,,");
    let probe = |content: &str| {
        let f = spaced.aux_dir().join("probe.pw");
        write_secret(&f, content, 0o600);
        spaced
            .certutil_with_input(&["-K", "-f", s(&f)], None)
            .success()
    };
    assert!(probe("Pass with space\n"));
    assert!(probe("Pass with space"));
    assert!(probe("Pass with space\r\n"));
    assert!(!probe("Pass with space\nsecond line\n"));
    assert!(probe("first line\nPass with space\n"));
    assert!(!probe("Pass\n"));
    let ca2 = NssDb::new(None);
    ca2.issue(
        &CertSpec::new("CA", "cn=Constrained CA")
            .trust("CT,,")
            .ca_constraints(),
    );
    assert_cert_text_has(&ca2, "CA", &["CA:TRUE"]);
}

// Guide 001 as the helpers build it, and the nicknames pk12util ends up with:
// the guide's order (certutil -A first) keeps "pmserver_cert"; a PKCS#12
// without a friendlyName imported into an empty database gets the CN.
#[test]
fn helpers_build_guide001_databases_and_pk12_nicknames() {
    ensure_nss_tools();
    let pki = OpensslPki::guide001();
    let db = guide001_server_db(&pki);
    assert_eq!(db.trust_of("Root CA"), Some(vec!["CT,,".to_string()]));
    assert_eq!(
        db.trust_of("pmserver_cert"),
        Some(vec!["Pu,u,u".to_string()])
    );
    assert!(db.keys().contains("pmserver_cert"), "{}", db.keys());
    assert_cert_text_has(
        &db,
        "pmserver_cert",
        &[
            "DNS:localhost, IP Address:127.0.0.1",
            "sha256WithRSAEncryption",
        ],
    );

    let bare = NssDb::new(None);
    let out = bare.pk12_import(&pki.path("pmserver_pkcs12.key"), P12_PASS);
    assert!(out.contains("using nickname: pmserver"), "{out}");
    assert_eq!(bare.trust_of("pmserver"), Some(vec!["u,u,u".to_string()]));
    assert_eq!(bare.trust_of("myCA"), Some(vec![",,".to_string()]));

    let exact = OpensslPki::guide001_exact();
    for leaf in ["pmserver.crt", "pmclient.crt"] {
        let text = run_tool(
            OPENSSL,
            &["x509", "-noout", "-text", "-in", s(&exact.path(leaf))],
            None,
            None,
        )
        .assert_ok()
        .stdout
        .clone();
        assert!(text.contains("Version: 1 (0x0)"), "{leaf}:\n{text}");
    }

    let client = guide001_client_db(&pki, Some("client-pw"), true);
    assert_eq!(
        client.trust_of("pmclient_cert"),
        Some(vec!["Pu,u,u".to_string()])
    );
    assert!(client.keys().contains("pmclient_cert"));
    let wrong = NssDb::new(None);
    std::fs::copy(client.dir().join("cert9.db"), wrong.dir().join("cert9.db")).unwrap();
    std::fs::copy(client.dir().join("key4.db"), wrong.dir().join("key4.db")).unwrap();
    let run = wrong.certutil_with_input(&["-K", "-f", s(&wrong.password_file())], None);
    assert!(
        !run.success() && run.text().contains("SEC_ERROR_BAD_PASSWORD"),
        "an empty password must not open the client database\n{}",
        run.describe()
    );
}

// The broken databases are broken for NSS itself: NSS refuses to export the
// key whose integrity MAC was changed (the untouched original exports);
// certutil -N -d dbm: makes a Berkeley DB database without cert9.db.
#[test]
fn helpers_broken_databases_are_broken_for_nss_too() {
    ensure_nss_tools();
    let good = guide000_db(Some("s3cret"));
    let bad = good.copy();
    let rows = bad.tamper_key_integrity(COLLECTOR_NICK);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert!(rows[0].starts_with("sig_key_") && rows[0].ends_with("_00000123"));
    let out = good.aux_dir().join("ok.p12");
    let run = good.pk12_export(COLLECTOR_NICK, &out, P12_PASS);
    assert!(run.success(), "{}", run.describe());
    let out = bad.aux_dir().join("bad.p12");
    let run = bad.pk12_export(COLLECTOR_NICK, &out, P12_PASS);
    assert!(
        !run.success() && run.text().contains("UNABLE_TO_EXPORT_KEY"),
        "NSS should refuse the tampered key\n{}",
        run.describe()
    );

    let dbm = NssDb::new_dbm(None);
    dbm.self_signed_ca(
        LOCAL_CA_NICK,
        "cn=Local PCP Installation,dc=example",
        "CT,,",
    );
    dbm.issue(&collector_spec().issuer(LOCAL_CA_NICK));
    assert!(dbm.dir().join("cert8.db").is_file());
    assert!(!dbm.dir().join("cert9.db").exists());
    assert_eq!(
        dbm.trust_of(COLLECTOR_NICK),
        Some(vec!["Pu,u,u".to_string()])
    );
}

// The tstclnt harness works against a pmcd that serves PEM files (no NSS
// database involved on the server): through the preamble proxy tstclnt
// completes TLS 1.3 and TLS 1.2 handshakes, verifying the server with the
// CA imported "CT,," into its database, and gets a PCP reply; without the
// CA it refuses the server.
#[test]
fn helpers_tstclnt_through_preamble_proxy_against_pem_pmcd() {
    ensure_nss_tools();
    let certs = Certs::new();
    let pmcd = our_pmcd(&certs.server_conf());
    let proxy = PreambleProxy::start(pmcd.addr());
    let trusting = NssDb::new(None);
    trusting.import_cert("test CA", "CT,,", Path::new(&certs.path("ca.crt")));
    assert_tstclnt_verifies(&proxy, &trusting);
}

// ---------------------------------------------------------------------------
// Guide 000: the collector certificate from a certutil-made database

// pmcd's tls.conf names only the database: pmcd serves TLS with the "PCP
// Collector certificate" (pmcd.feature.secure = 1, only TLS records on the
// wire), a monitor whose database holds the CA with "CT,," gets values, one
// whose database holds the collector certificate itself with "P,," too; a
// database without the CA, or with the certificate but no trust, is
// refused. A stock pmcd with the same tls.conf offers no TLS (the TLS above
// is the library's).
#[test]
fn guide000_collector_database_serves_tls() {
    let db = guide000_db(None);
    let mut pmcd = our_pmcd(&nssdb_conf(&db));
    assert_eq!(feature_secure(&pmcd), "1", "{}", pmcd.log());
    assert_no_pcp_secure_errors(&pmcd);

    let with_ca = client_db_trusting(&db, LOCAL_CA_NICK);
    assert_fetch_over_tls(&pmcd, &nss_client("", &with_ca), "localhost");

    let with_peer = NssDb::new(None);
    with_peer.import_from(&db, COLLECTOR_NICK, "P,,");
    assert_fetch_over_tls(&pmcd, &nss_client("", &with_peer), "localhost");

    let empty = NssDb::new(None);
    let run = nss_client("", &empty).fetch(&pmcd.host_named("localhost"), &[LOAD]);
    assert_refused(&run);
    assert!(run.stderr.contains("not trusted"), "{}", run.describe());

    let untrusted = NssDb::new(None);
    untrusted.import_from(&db, COLLECTOR_NICK, ",,");
    assert_refused(&nss_client("", &untrusted).fetch(&pmcd.host_named("localhost"), &[LOAD]));
    pmcd.assert_running();

    let stock = Pmcd::builder()
        .preload_ours(false)
        .tls_conf(&nssdb_conf(&db))
        .start();
    assert_eq!(
        feature_secure(&stock),
        "0",
        "stock pmcd cannot read NSS databases"
    );
}

// Guide 000 writes the IP address with -8, which makes it a DNS name: the
// host name check still applies, so "127.0.0.1" does not match (refused),
// unless PCP_ALLOW_BAD_CERT_DOMAIN is set.
#[test]
fn guide000_ip_given_to_dash8_is_not_an_ip_san() {
    let db = guide000_db(None);
    let pmcd = our_pmcd(&nssdb_conf(&db));
    let client_db = client_db_trusting(&db, LOCAL_CA_NICK);
    let run = nss_client("", &client_db).fetch(&pmcd.host(), &[LOAD]);
    assert_refused(&run);
    assert!(run.stderr.contains("127.0.0.1"), "{}", run.describe());
    let allowed = nss_client("", &client_db).env("PCP_ALLOW_BAD_CERT_DOMAIN", "1");
    assert_tls_values(&allowed.fetch(&pmcd.host(), &[LOAD]));
}

// tls-nssdb may be a bare directory; tls-cert-nickname's value runs to the
// end of the line, a '#' starts a comment and surrounding double quotes
// are stripped; an --extSAN IP entry matches "127.0.0.1".
#[test]
fn bare_directory_and_quoted_nickname_with_comment() {
    let db = db_with_collector(None, collector_spec());
    let conf = format!(
        "tls-nssdb = {}\ntls-cert-nickname = \"{COLLECTOR_NICK}\"   # the collector guide's nickname\n",
        db.dir_str()
    );
    let pmcd = our_pmcd(&conf);
    assert_eq!(feature_secure(&pmcd), "1", "{}", pmcd.log());
    assert_no_pcp_secure_errors(&pmcd);
    let client_db = client_db_trusting(&db, LOCAL_CA_NICK);
    assert_fetch_over_tls(&pmcd, &nss_client("", &client_db), "127.0.0.1");

    let unquoted = format!(
        "tls-nssdb = sql:{}\ntls-cert-nickname = {COLLECTOR_NICK}\n",
        db.dir_str()
    );
    let pmcd = our_pmcd(&unquoted);
    assert_eq!(feature_secure(&pmcd), "1", "{}", pmcd.log());
    assert_fetch_over_tls(&pmcd, &nss_client("", &client_db), "localhost");
}

// The monitor's database is found at $PCP_SECURE_DB_PATH when that holds
// cert9.db, else at $HOME/.pki/nssdb (guide 000's monitor step 1), or where
// the client's tls.conf says (tls-client-nssdb). A PCP_SECURE_DB_PATH database
// without the CA wins over a HOME one with it (refused).
#[test]
fn monitor_database_locations() {
    let db = guide000_db(None);
    let pmcd = our_pmcd(&nssdb_conf(&db));
    let host = pmcd.host_named("localhost");

    let home = tempfile::tempdir().unwrap();
    let home_db = NssDb::new_in(&home.path().join(".pki").join("nssdb"), None);
    home_db.import_from(&db, LOCAL_CA_NICK, "CT,,");
    let home_str = home.path().to_str().unwrap();
    let run = Client::new("")
        .ours()
        .secure("enforce")
        .env("HOME", home_str)
        .fetch(&host, &[LOAD]);
    assert_tls_values(&run);

    let empty = NssDb::new(None);
    let run = nss_client("", &empty)
        .env("HOME", home_str)
        .fetch(&host, &[LOAD]);
    assert_refused(&run);

    let elsewhere = client_db_trusting(&db, LOCAL_CA_NICK);
    let conf = tls_conf(&[("tls-client-nssdb", &elsewhere.spec())]);
    let run = Client::new(&conf)
        .ours()
        .secure("enforce")
        .fetch(&host, &[LOAD]);
    assert_tls_values(&run);

    // Without any of them the server is not trusted.
    let nowhere = tempfile::tempdir().unwrap();
    let run = Client::new("")
        .ours()
        .secure("enforce")
        .env("HOME", nowhere.path().to_str().unwrap())
        .fetch(&host, &[LOAD]);
    assert_refused(&run);
}

// Among certificates sharing the nickname, the one valid now, chaining to a
// trusted CA and having its key is served, whatever their order in the
// database: here an expired one comes first, then the good one, then one
// from a CA without trust, then one whose key is elsewhere.
#[test]
fn the_usable_certificate_among_namesakes_is_served() {
    let db = NssDb::new(None);
    db.self_signed_ca(
        LOCAL_CA_NICK,
        "cn=Local PCP Installation,dc=example",
        "CT,,",
    );
    db.self_signed_ca("Untrusted CA", "cn=Untrusted CA", ",,");
    let base = || collector_spec().trust(",,");
    db.issue(&base().issuer(LOCAL_CA_NICK).months(12).warp(-13));
    db.issue(&base().issuer(LOCAL_CA_NICK));
    db.issue(&base().issuer("Untrusted CA"));
    db.issue_keyless(
        COLLECTOR_NICK,
        "cn=PCP Collector",
        LOCAL_CA_NICK,
        LOOPBACK_SANS,
        ",,",
    );
    let rows = db.trust_of(COLLECTOR_NICK).unwrap();
    assert_eq!(rows.len(), 4, "{}", db.list());

    let pmcd = our_pmcd(&nssdb_conf(&db));
    assert_eq!(feature_secure(&pmcd), "1", "{}", pmcd.log());
    let client_db = client_db_trusting(&db, LOCAL_CA_NICK);
    for _ in 0..3 {
        assert_fetch_over_tls(&pmcd, &nss_client("", &client_db), "127.0.0.1");
    }
}

// ---------------------------------------------------------------------------
// Guide 001: openssl-made certificates imported with pk12util, pmcd -Q

// The collector database of guide 001 with tls-cert-nickname = pmserver_cert
// and pmcd -Q: a monitor whose database has the CA but no certificate gets
// "requires a client certificate"; with the guide's client certificate
// (pk12util-imported) it gets values over TLS; the server verified that
// certificate against the database's "CT,," CA: one from another CA is
// refused.
#[test]
fn guide001_pmcd_q_with_client_certificates_from_nss_databases() {
    let pki = OpensslPki::guide001();
    add_rogue_ca(&pki);
    let db = guide001_server_db(&pki);
    let conf = guide001_conf(&db, &[]);
    let mut pmcd = our_pmcd_q(&conf);

    let no_cert = guide001_client_db(&pki, None, false);
    assert_needs_client_cert(&nss_client("", &no_cert).fetch(&pmcd.host(), &[LOAD]));

    let with_cert = guide001_client_db(&pki, None, true);
    assert_fetch_over_tls(&pmcd, &nss_client("", &with_cert), "127.0.0.1");
    assert_fetch_over_tls(&pmcd, &nss_client("", &with_cert), "localhost");

    let rogue = guide001_client_db(&pki, None, false);
    import_rogue_cert(&rogue, &pki);
    assert_refused(&nss_client("", &rogue).fetch(&pmcd.host(), &[LOAD]));
    pmcd.assert_running();
}

// tls-ca-cert-file, when set, is what client certificates are verified
// against instead of the database's CAs: with it naming another CA (and
// tls-verify-clients = true) the guide's client is refused and a client
// with a certificate from that other CA is served.
#[test]
fn server_tls_ca_cert_file_takes_precedence_over_database_cas() {
    let pki = OpensslPki::guide001();
    add_rogue_ca(&pki);
    let db = guide001_server_db(&pki);
    let other_ca = pki.path("otherCA.crt");
    let conf = guide001_conf(
        &db,
        &[
            ("tls-ca-cert-file", s(&other_ca)),
            ("tls-verify-clients", "true"),
        ],
    );
    let pmcd = our_pmcd(&conf);
    let guide_client = guide001_client_db(&pki, None, true);
    assert_refused(&nss_client("", &guide_client).fetch(&pmcd.host(), &[LOAD]));
    let rogue = guide001_client_db(&pki, None, false);
    import_rogue_cert(&rogue, &pki);
    assert_fetch_over_tls(&pmcd, &nss_client("", &rogue), "localhost");
}

// The client's tls-client-cert-nickname chooses among the certificates in its
// database: the guide's certificate is served by pmcd -Q, the one from an
// unknown CA is refused.
#[test]
fn client_nickname_selects_the_client_certificate() {
    let pki = OpensslPki::guide001();
    add_rogue_ca(&pki);
    let db = guide001_server_db(&pki);
    let conf = guide001_conf(&db, &[]);
    let pmcd = our_pmcd_q(&conf);
    let both = guide001_client_db(&pki, None, true);
    import_rogue_cert(&both, &pki);
    let pick = |nick: &str| tls_conf(&[("tls-client-cert-nickname", nick)]);
    assert_fetch_over_tls(
        &pmcd,
        &nss_client(&pick("pmclient_cert"), &both),
        "localhost",
    );
    assert_refused(&nss_client(&pick("rogue_cert"), &both).fetch(&pmcd.host(), &[LOAD]));
}

// A monitor database with a real password: with tls-client-nssdb-password-file in
// the client's tls.conf the client key is used against pmcd -Q; without the
// password file the client cannot use its key (refused, and it says why
// with "password").
#[test]
fn client_database_with_password() {
    let pki = OpensslPki::guide001();
    let db = guide001_server_db(&pki);
    let conf = guide001_conf(&db, &[]);
    let pmcd = our_pmcd_q(&conf);
    let client_db = guide001_client_db(&pki, Some("m0nitor-pw"), true);
    let pw = client_db.aux_dir().join("client.pw");
    write_secret(&pw, "m0nitor-pw\n", 0o400);
    let with_pw = tls_conf(&[("tls-client-nssdb-password-file", s(&pw))]);
    assert_fetch_over_tls(&pmcd, &nss_client(&with_pw, &client_db), "localhost");
    let run = nss_client("", &client_db).fetch(&pmcd.host(), &[LOAD]);
    assert_refused(&run);
    assert!(run.stderr.contains("password"), "{}", run.describe());
}

// A server certificate without subjectAltName (the name only in
// CN=pmserver, as guide 001 makes it): the host name check refuses it; the
// guide's PCP_ALLOW_BAD_CERT_DOMAIN=1 lets the client through (the CA is
// trusted through the database).
#[test]
fn server_certificate_without_san_needs_allow_bad_cert_domain() {
    let pki = OpensslPki::guide001_with(Some("extendedKeyUsage = serverAuth"), Some(CLIENT_EXT));
    let db = guide001_server_db(&pki);
    let conf = guide001_conf(&db, &[]);
    let pmcd = our_pmcd(&conf);
    assert_eq!(feature_secure(&pmcd), "1", "{}", pmcd.log());
    let client_db = guide001_client_db(&pki, None, false);
    assert_refused(&nss_client("", &client_db).fetch(&pmcd.host_named("localhost"), &[LOAD]));
    let allowed = nss_client("", &client_db).env("PCP_ALLOW_BAD_CERT_DOMAIN", "1");
    assert_fetch_over_tls(&pmcd, &allowed, "localhost");
}

// Guide 001's commands (openssl x509 -req without -extfile) make X.509
// version 1 certificates with the OpenSSL of its time and Debian 12's 3.0
// (the fixture makes them on newer OpenSSL too). pmcd serves a version 1
// server certificate from the database, with one warning naming the
// database, the nickname and "version 1"; a client trusting the database's
// CA accepts it when its subject CN is the host name (here it is
// "pmserver", so only with PCP_ALLOW_BAD_CERT_DOMAIN, as the guide sets).
#[test]
fn guide001_version1_server_certificate_is_served_with_a_warning() {
    let pki = OpensslPki::guide001_exact();
    let db = guide001_server_db(&pki);
    let conf = guide001_conf(&db, &[]);
    let pmcd = our_pmcd(&conf);
    let text = pcp_secure_text_with(&pmcd, "version 1");
    assert!(
        text.lines().any(|l| l.contains("warning")
            && l.contains(&db.spec())
            && l.contains("pmserver_cert")
            && l.contains("version 1")),
        "{}",
        pmcd.log()
    );
    assert!(!text.contains("error"), "{}", pmcd.log());
    assert_eq!(feature_secure(&pmcd), "1", "{}", pmcd.log());
    let client_db = guide001_client_db(&pki, None, false);
    let run = nss_client("", &client_db).fetch(&pmcd.host_named("localhost"), &[LOAD]);
    assert_refused(&run);
    assert!(run.stderr.contains("does not match"), "{}", run.describe());
    // pmcd's side of the refusal names the database, not tls-cert-file.
    let refusal = pcp_secure_text_with(&pmcd, "does not accept this server's certificate");
    assert!(
        refusal.lines().any(|l| l.contains("does not accept")
            && l.contains("\"pmserver_cert\" of NSS database")
            && l.contains("(tls-nssdb)")
            && !l.contains("tls-cert-file")),
        "{}",
        pmcd.log()
    );
    let allowed = nss_client("", &client_db).env("PCP_ALLOW_BAD_CERT_DOMAIN", "1");
    assert_fetch_over_tls(&pmcd, &allowed, "localhost");
}

// A version 1 client certificate (guide 001's exactly) in the monitor's
// database: presented to pmcd -Q, which accepts it (its CA is trusted in
// pmcd's database); the client's warning names the database and
// "version 1"; no "server certificate" is counted for the client's own.
#[test]
fn guide001_version1_client_certificate_is_presented_with_a_warning() {
    let pki = OpensslPki::guide001_with(Some(SERVER_EXT), None);
    let db = guide001_server_db(&pki);
    let conf = guide001_conf(&db, &[]);
    let pmcd = our_pmcd_q(&conf);
    let client_db = guide001_client_db(&pki, None, true);
    let rec = Recorder::start(pmcd.addr());
    let run = nss_client("", &client_db).fetch(&format!("localhost:{}", rec.port()), &[LOAD]);
    assert_tls_values(&run);
    rec.finished(1)[0].assert_tls(&secrets());
    assert!(
        run.pcp_secure_lines()
            .iter()
            .any(|l| l.contains(&client_db.spec()) && l.contains("version 1")),
        "no pcp_secure line naming the database and \"version 1\"\n{}",
        run.describe()
    );
    assert!(
        !run.stderr.contains("not trusted"),
        "the database's CA must still be trusted\n{}",
        run.describe()
    );
    let text = pcp_secure_text_with(&pmcd, "client certificate");
    assert!(text.contains("version 1"), "{}", pmcd.log());
}

// ---------------------------------------------------------------------------
// Key types

// EC collector keys made by certutil -k ec: P-256 under the RSA CA, and a
// P-384 CA issuing a P-384 collector certificate.
#[test]
fn ec_collector_certificates() {
    let p256 = db_with_collector(None, collector_spec().key(KeyType::Ec("secp256r1")));
    let pmcd = our_pmcd(&nssdb_conf(&p256));
    assert_eq!(feature_secure(&pmcd), "1", "{}", pmcd.log());
    assert_fetch_over_tls(
        &pmcd,
        &nss_client("", &client_db_trusting(&p256, LOCAL_CA_NICK)),
        "127.0.0.1",
    );

    let p384 = NssDb::new(None);
    p384.issue(
        &CertSpec::new("EC CA", "cn=EC CA")
            .trust("CT,,")
            .key(KeyType::Ec("secp384r1")),
    );
    p384.issue(
        &collector_spec()
            .issuer("EC CA")
            .key(KeyType::Ec("secp384r1")),
    );
    let pmcd = our_pmcd(&nssdb_conf(&p384));
    assert_eq!(feature_secure(&pmcd), "1", "{}", pmcd.log());
    assert_fetch_over_tls(
        &pmcd,
        &nss_client("", &client_db_trusting(&p384, "EC CA")),
        "127.0.0.1",
    );
}

// ---------------------------------------------------------------------------
// Password-protected collector databases

// A collector database with a password: a 0400 password file owned by the
// user pmcd runs as works, also with CRLF line ends and with more lines
// after the password (the first line is then used); mode 0644 is refused
// with an error naming the file and "0400"; a wrong password, or no
// password file at all, is refused with "password". Refusals leave pmcd
// serving plain connections.
#[test]
fn password_protected_collector_database() {
    const PW: &str = "Collector-pw 42";
    let db = guide000_db(Some(PW));
    let client_db = client_db_trusting(&db, LOCAL_CA_NICK);
    let dir = tempfile::tempdir().unwrap();
    let conf_with = |file: &Path| {
        tls_conf(&[
            ("tls-nssdb", &db.spec()),
            ("tls-nssdb-password-file", s(file)),
        ])
    };

    for (name, content) in [
        ("plain", format!("{PW}\n")),
        ("crlf", format!("{PW}\r\n")),
        ("no-newline", PW.to_string()),
        ("two-lines", format!("{PW}\nsomething else\n")),
    ] {
        let file = dir.path().join(format!("{name}.pw"));
        write_secret(&file, &content, 0o400);
        let pmcd = our_pmcd(&conf_with(&file));
        assert_eq!(
            feature_secure(&pmcd),
            "1",
            "password file {name:?}:\n{}",
            pmcd.log()
        );
        assert_no_pcp_secure_errors(&pmcd);
        assert_fetch_over_tls(&pmcd, &nss_client("", &client_db), "localhost");
    }

    let loose = dir.path().join("loose.pw");
    write_secret(&loose, &format!("{PW}\n"), 0o644);
    let mut pmcd = our_pmcd(&conf_with(&loose));
    assert_error_and_plain_service(&mut pmcd, &[s(&loose), "0400"], &client_db);

    let wrong = dir.path().join("wrong.pw");
    write_secret(&wrong, "not the password\n", 0o400);
    let mut pmcd = our_pmcd(&conf_with(&wrong));
    assert_error_and_plain_service(&mut pmcd, &[&db.spec(), "password"], &client_db);

    let mut pmcd = our_pmcd(&nssdb_conf(&db));
    assert_error_and_plain_service(&mut pmcd, &[&db.spec(), "password"], &client_db);
}

// The password file must be owned by the user pmcd runs as (root here): a
// 0400 file owned by "pcp" is refused with an error naming the file.
#[test]
fn password_file_owned_by_another_user_is_refused() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "this test changes a file's owner and must run as root (pmcd then runs as root too)"
    );
    const PW: &str = "Collector-pw 43";
    let db = guide000_db(Some(PW));
    let client_db = client_db_trusting(&db, LOCAL_CA_NICK);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pcp-owned.pw");
    write_secret(&file, &format!("{PW}\n"), 0o400);
    let chown = std::process::Command::new("chown")
        .arg("pcp")
        .arg(&file)
        .status()
        .expect("run chown");
    assert!(
        chown.success(),
        "chown pcp {} failed (is the pcp user there?)",
        file.display()
    );
    let conf = tls_conf(&[
        ("tls-nssdb", &db.spec()),
        ("tls-nssdb-password-file", s(&file)),
    ]);
    let mut pmcd = our_pmcd(&conf);
    assert_error_and_plain_service(&mut pmcd, &[s(&file)], &client_db);
}

// ---------------------------------------------------------------------------
// Errors: each is logged with the database and the reason, and pmcd keeps
// serving plain connections

// A nickname that is not in the database (set explicitly, or the default
// "PCP Collector certificate" in a database without it).
#[test]
fn missing_nickname_is_reported() {
    let db = guide000_db(None);
    let client_db = client_db_trusting(&db, LOCAL_CA_NICK);
    let conf = tls_conf(&[
        ("tls-nssdb", &db.spec()),
        ("tls-cert-nickname", "No Such Collector"),
    ]);
    let mut pmcd = our_pmcd(&conf);
    assert_error_and_plain_service(
        &mut pmcd,
        &[&db.spec(), "No Such Collector", "not found"],
        &client_db,
    );

    let ca_only = NssDb::new(None);
    ca_only.self_signed_ca(
        LOCAL_CA_NICK,
        "cn=Local PCP Installation,dc=example",
        "CT,,",
    );
    let mut pmcd = our_pmcd(&nssdb_conf(&ca_only));
    assert_error_and_plain_service(
        &mut pmcd,
        &[&ca_only.spec(), COLLECTOR_NICK, "not found"],
        &client_db,
    );
}

// A Berkeley DB database (cert8.db/key3.db, made by certutil -d dbm:) with
// a perfectly good collector certificate is named as such. The conversion
// the message suggests (certutil -d sql:DIR -N -f FILE, which makes NSS
// write cert9.db/key4.db beside the old files) then lets pmcd serve TLS.
#[test]
fn berkeley_db_database_is_reported() {
    let dbm = NssDb::new_dbm(None);
    dbm.self_signed_ca(
        LOCAL_CA_NICK,
        "cn=Local PCP Installation,dc=example",
        "CT,,",
    );
    dbm.issue(&collector_spec().issuer(LOCAL_CA_NICK));
    let client_db = client_db_trusting(&dbm, LOCAL_CA_NICK);
    let spec = format!("sql:{}", dbm.dir_str());
    let conf = tls_conf(&[("tls-nssdb", &spec)]);
    let mut pmcd = our_pmcd(&conf);
    assert_error_and_plain_service(&mut pmcd, &[&spec, "cert8.db"], &client_db);
    drop(pmcd);

    run_tool(
        CERTUTIL,
        &["-d", &spec, "-N", "-f", s(&dbm.password_file())],
        None,
        None,
    )
    .assert_ok();
    assert!(
        dbm.dir().join("cert9.db").is_file(),
        "certutil did not convert"
    );
    let pmcd = our_pmcd(&conf);
    assert_eq!(feature_secure(&pmcd), "1", "{}", pmcd.log());
    assert_fetch_over_tls(&pmcd, &nss_client("", &client_db), "127.0.0.1");
}

// A collector certificate signed with SHA-1 (certutil -Z SHA1).
#[test]
fn sha1_signed_collector_certificate_is_reported() {
    let db = db_with_collector(None, collector_spec().hash("SHA1"));
    let client_db = client_db_trusting(&db, LOCAL_CA_NICK);
    let mut pmcd = our_pmcd(&nssdb_conf(&db));
    assert_error_and_plain_service(
        &mut pmcd,
        &[&db.spec(), COLLECTOR_NICK, "SHA-1"],
        &client_db,
    );
}

// A collector key of RSA 1024 bits (certutil -g 1024).
#[test]
fn rsa_1024_collector_key_is_reported() {
    let db = db_with_collector(None, collector_spec().key(KeyType::Rsa(1024)));
    let client_db = client_db_trusting(&db, LOCAL_CA_NICK);
    let mut pmcd = our_pmcd(&nssdb_conf(&db));
    assert_error_and_plain_service(&mut pmcd, &[&db.spec(), COLLECTOR_NICK, "1024"], &client_db);
}

// One bit of the collector key's integrity MAC in key4.db changed (on a
// copy; the original still serves TLS), with an empty and with a real
// password.
#[test]
fn tampered_key_integrity_is_reported() {
    for password in [None, Some("Integrity-pw")] {
        let good = guide000_db(password);
        let client_db = client_db_trusting(&good, LOCAL_CA_NICK);
        let pwfile = good.aux_dir().join("pmcd.pw");
        write_secret(&pwfile, &format!("{}\n", password.unwrap_or("")), 0o400);
        let conf = |db: &NssDb| {
            let mut pairs = vec![("tls-nssdb", db.spec())];
            if password.is_some() {
                pairs.push(("tls-nssdb-password-file", s(&pwfile).to_string()));
            }
            let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
            tls_conf(&pairs)
        };
        let pmcd = our_pmcd(&conf(&good));
        assert_eq!(feature_secure(&pmcd), "1", "{}", pmcd.log());
        assert_fetch_over_tls(&pmcd, &nss_client("", &client_db), "localhost");
        drop(pmcd);

        let bad = good.copy();
        bad.tamper_key_integrity(COLLECTOR_NICK);
        let mut pmcd = our_pmcd(&conf(&bad));
        assert_error_and_plain_service(
            &mut pmcd,
            &[&bad.spec(), COLLECTOR_NICK, "integrity"],
            &client_db,
        );
    }
}

// tls-cert-file and tls-nssdb together are a configuration error naming
// both settings.
#[test]
fn cert_file_and_nssdb_together_is_a_configuration_error() {
    let certs = Certs::new();
    let db = guide000_db(None);
    let client_db = client_db_trusting(&db, LOCAL_CA_NICK);
    let conf = format!("{}tls-nssdb = {}\n", certs.server_conf(), db.spec());
    let mut pmcd = our_pmcd(&conf);
    assert_error_and_plain_service(&mut pmcd, &["tls-nssdb", "tls-cert-file"], &client_db);
}

// ---------------------------------------------------------------------------
// Independent peers

// NSS's own TLS client (tstclnt, behind a proxy doing PCP's plaintext
// opening) against pmcd serving guide 000's database: TLS 1.3 and TLS 1.2
// handshakes verified by NSS with the CA from its database, a PCP reply
// over TLS; without the CA NSS refuses the server.
#[test]
fn tstclnt_talks_to_pmcd_serving_an_nss_database() {
    let db = guide000_db(None);
    let pmcd = our_pmcd(&nssdb_conf(&db));
    let proxy = PreambleProxy::start(pmcd.addr());
    let client_db = client_db_trusting(&db, LOCAL_CA_NICK);
    assert_tstclnt_verifies(&proxy, &client_db);
}

// tstclnt presents the guide 001 client certificate from its (password
// protected) database to a pmcd with tls-verify-clients = true and gets a
// reply; without -n it presents none and gets no reply.
#[test]
fn tstclnt_presents_its_client_certificate() {
    let pki = OpensslPki::guide001();
    let db = guide001_server_db(&pki);
    let conf = guide001_conf(&db, &[("tls-verify-clients", "true")]);
    let pmcd = our_pmcd(&conf);
    let proxy = PreambleProxy::start(pmcd.addr());
    let client_db = guide001_client_db(&pki, Some("tst-pw"), true);
    let pw = client_db.password_file();
    tstclnt(
        proxy.port(),
        "localhost",
        &client_db,
        "tls1.2:tls1.3",
        &["-n", "pmclient_cert", "-W", s(&pw)],
    )
    .assert_pdu_over("TLS 1.3");
    tstclnt(
        proxy.port(),
        "localhost",
        &client_db,
        "tls1.2:tls1.2",
        &["-n", "pmclient_cert", "-W", s(&pw)],
    )
    .assert_pdu_over("TLS 1.2");
    let run = tstclnt(proxy.port(), "localhost", &client_db, "tls1.2:tls1.3", &[]);
    assert!(
        !run.got_pdu,
        "served without a client certificate\n{}",
        run.describe()
    );
}

// A stock pminfo (libpcp with OpenSSL, no preload) verifies our pmcd's
// NSS-database certificate with the CA exported from the database as PEM
// (it only verifies with tls-verify-clients = true): values over TLS; with
// another CA it fails. OpenSSL refuses CA certificates without
// basicConstraints, which is what guide 000's certutil -S -x makes, so this
// CA is made with certutil -2.
#[test]
fn stock_client_verifies_with_the_ca_exported_from_the_database() {
    let db = NssDb::new(None);
    db.issue(
        &CertSpec::new(LOCAL_CA_NICK, "cn=Local PCP Installation,dc=example")
            .trust("CT,,")
            .ca_constraints(),
    );
    db.issue(&collector_spec().issuer(LOCAL_CA_NICK));
    let pmcd = our_pmcd(&nssdb_conf(&db));
    assert_eq!(feature_secure(&pmcd), "1", "{}", pmcd.log());
    let ca_pem = db.export_pem_file(LOCAL_CA_NICK);
    let conf = tls_conf(&[
        ("tls-ca-cert-file", s(&ca_pem)),
        ("tls-verify-clients", "true"),
    ]);
    let stock = Client::new(&conf).stock().secure("enforce");
    let rec = Recorder::start(pmcd.addr());
    let run = stock.fetch(&rec.host(), &[LOAD, VERSION]);
    assert_load_values(&run);
    rec.finished(1)[0].assert_tls(&secrets());

    let certs = Certs::new();
    let wrong = tls_conf(&[
        ("tls-ca-cert-file", &certs.path("other-ca.crt")),
        ("tls-verify-clients", "true"),
    ]);
    assert_refused(
        &Client::new(&wrong)
            .stock()
            .secure("enforce")
            .fetch(&pmcd.host(), &[LOAD]),
    );
}

// pmcd and the tools on a collector usually share one tls.conf. The
// server's tls-nssdb, tls-cert-nickname and tls-nssdb-password-file (the
// latter readable by pmcd's user only, as the guide asks) are not the
// client's: a client run with the very same tls.conf connects with its own
// database and touches neither the server's database nor its password file
// (which is removed once pmcd has read it, so that any client use of it
// would fail).
#[test]
fn server_nss_settings_are_not_the_clients() {
    let db = guide000_db(Some("collector-pw"));
    let pw = db.aux_dir().join("server.pw");
    write_secret(&pw, "collector-pw\n", 0o400);
    let conf = tls_conf(&[
        ("tls-nssdb", &db.spec()),
        ("tls-cert-nickname", COLLECTOR_NICK),
        ("tls-nssdb-password-file", s(&pw)),
    ]);
    let pmcd = our_pmcd(&conf);
    assert_eq!(feature_secure(&pmcd), "1", "{}", pmcd.log());
    std::fs::remove_file(&pw).unwrap();
    let client_db = client_db_trusting(&db, LOCAL_CA_NICK);
    let client = nss_client(&conf, &client_db);
    let run = client.fetch(&pmcd.host_named("localhost"), &[LOAD]);
    assert!(
        !run.stderr.contains("server.pw") && !run.stderr.contains(&db.spec()),
        "the client looked at the server's NSS settings\n{}",
        run.describe()
    );
    assert_fetch_over_tls(&pmcd, &client, "localhost");
}

// A user NSS database that another user can write is not used for trust
// decisions: the CA it trusts no longer makes the server trusted, and the
// client says which file is at fault and how to fix it. Named explicitly
// (tls-client-nssdb), it is an error.
#[test]
fn nss_database_writable_by_others_is_not_used_for_trust() {
    use std::os::unix::fs::PermissionsExt;
    let db = guide000_db(None);
    let pmcd = our_pmcd(&nssdb_conf(&db));
    let host = pmcd.host_named("localhost");
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join(".pki").join("nssdb");
    let home_db = NssDb::new_in(&dir, None);
    home_db.import_from(&db, LOCAL_CA_NICK, "CT,,");
    let home_str = home.path().to_str().unwrap();
    let client = Client::new("")
        .ours()
        .secure("enforce")
        .env("HOME", home_str);
    assert_tls_values(&client.fetch(&host, &[LOAD]));

    let cert9 = dir.join("cert9.db");
    std::fs::set_permissions(&cert9, std::fs::Permissions::from_mode(0o666)).unwrap();
    let run = client.fetch(&host, &[LOAD]);
    assert_refused(&run);
    let text = run.text();
    assert!(
        text.contains(&format!(
            "{} is writable by other users (mode 0666)",
            cert9.display()
        )) && text.contains("chmod go-w"),
        "the client must name the file and the fix:\n{}",
        run.describe()
    );

    let conf = tls_conf(&[("tls-client-nssdb", &format!("sql:{}", dir.display()))]);
    let run = Client::new(&conf)
        .ours()
        .secure("enforce")
        .fetch(&host, &[LOAD]);
    assert_refused(&run);
    assert!(
        run.text().contains("is writable by other users"),
        "{}",
        run.describe()
    );
}

// pmproxy with the library preloaded serves HTTPS from the same NSS
// database tls.conf names for pmcd (no PEM files): curl trusting the
// database's CA (exported as PEM) gets an answer, and pmproxy's log names
// the certificate and the database. (The CA has basicConstraints: curl's
// OpenSSL refuses guide 000's extension-less CA, a matter of the NSS-era
// migration.)
#[test]
fn preloaded_pmproxy_serves_https_from_the_collector_database() {
    ensure_nss_tools();
    let db = NssDb::new(None);
    db.issue(
        &CertSpec::new(LOCAL_CA_NICK, "cn=Local PCP Installation,dc=example")
            .ca_constraints()
            .trust("CT,,"),
    );
    db.issue(&collector_spec().issuer(LOCAL_CA_NICK));
    let mut proxy = support::pmproxy::Pmproxy::builder()
        .tls_conf(&nssdb_conf(&db))
        .preload_ours(true)
        .start();
    let log = proxy.log();
    assert!(
        log.contains(&format!(
            "serving TLS 1.2/1.3 with certificate \"{COLLECTOR_NICK}\" of NSS database"
        )) && !log.contains("left to libpcp"),
        "pmproxy must serve HTTPS from the database:\n{log}"
    );
    let ca = db.export_pem_file(LOCAL_CA_NICK);
    let out = std::process::Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "30",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
        ])
        .arg("--cacert")
        .arg(&ca)
        .arg(format!("https://localhost:{}/pmapi/context", proxy.port()))
        .output()
        .expect("curl runs");
    let code = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_ne!(
        code,
        "000",
        "HTTPS from the NSS database failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        proxy.log()
    );
    proxy.assert_running();
}
