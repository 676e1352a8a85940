//! The NSS database reader on databases made by certutil: trust flags as
//! NSS stores them (and as PKCS#11 3.2 trust objects), trust whose
//! integrity code fails, the legacy 3DES password check of a database
//! upgraded from Berkeley DB, and wrong passwords.
//!
//! Needs certutil (libnss3-tools) and python3 (scripts/install-deps).

use pcp_secure_test_support as support;

use std::process::Command;

use pcp_secure::api::nssdb::{Database, Level, Purpose};
use support::nss::*;
use zeroize::Zeroizing;

fn cert<'a>(db: &'a Database, nick: &str) -> &'a pcp_secure::api::nssdb::Cert {
    db.certificates()
        .iter()
        .find(|c| c.nickname == nick)
        .unwrap_or_else(|| panic!("no certificate \"{nick}\" in {}", db.spec()))
}

/// The DER INTEGER of a certificate's serial number, in hex.
fn serial_hex(der: &[u8]) -> String {
    let (_, parsed) = x509_parser::parse_x509_certificate(der).expect("certificate");
    let raw = parsed.tbs_certificate.raw_serial();
    let mut out = format!("02{:02x}", raw.len());
    for b in raw {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

fn edit_trust(db: &NssDb, der: &[u8], args: &[&str]) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/nss_trust_edit.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(db.dir_str())
        .arg(serial_hex(der))
        .args(args)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "nss_trust_edit.py {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn trust_flags_of_the_guide_database() {
    ensure_nss_tools();
    let nss = guide000_db(None);
    let db = Database::open(&nss.spec()).expect("open");
    let unlocked = db.unlock_default().expect("empty password");
    let ca = cert(&db, LOCAL_CA_NICK);
    let collector = cert(&db, COLLECTOR_NICK);
    // "CT,,": a CA for servers and for clients; "P,,": a trusted peer.
    assert_eq!(unlocked.trust(ca, Purpose::Server), Level::Delegator);
    assert_eq!(unlocked.trust(ca, Purpose::Client), Level::Delegator);
    assert_eq!(unlocked.trust(collector, Purpose::Server), Level::Peer);
    // The collector's certificate has its key here: it is this side's own,
    // so it is not counted among the peers (servers) the database trusts.
    let (cas, peers) = unlocked.trusted(Purpose::Server);
    assert_eq!((cas.len(), peers.len()), (1, 0));
    assert!(db.has_key(collector));
    // Imported without its key (as a monitor would), it is a trusted peer.
    let monitor = NssDb::new(None);
    monitor.import_from(&nss, COLLECTOR_NICK, "P,,");
    let mdb = Database::open(&monitor.spec()).expect("open monitor db");
    let (cas, peers) = mdb
        .unlock_default()
        .expect("empty password")
        .trusted(Purpose::Server);
    assert_eq!((cas.len(), peers.len()), (0, 1));
    // A client database with only the CA imported "CT,,": no key, no peer.
    let client = client_db_trusting(&nss, LOCAL_CA_NICK);
    let cdb = Database::open(&client.spec()).expect("open client db");
    let cu = cdb.unlock_default().expect("empty password");
    assert_eq!(
        cu.trust(cert(&cdb, LOCAL_CA_NICK), Purpose::Server),
        Level::Delegator
    );
    assert!(!cdb.has_key(cert(&cdb, LOCAL_CA_NICK)));
}

#[test]
fn trust_whose_integrity_code_fails_is_no_trust() {
    ensure_nss_tools();
    let nss = guide000_db(None);
    let ca_der = {
        let db = Database::open(&nss.spec()).unwrap();
        cert(&db, LOCAL_CA_NICK).der.to_vec()
    };
    edit_trust(&nss, &ca_der, &["break-server-mac"]);
    let db = Database::open(&nss.spec()).unwrap();
    let unlocked = db.unlock_default().unwrap();
    let ca = cert(&db, LOCAL_CA_NICK);
    assert_eq!(unlocked.trust(ca, Purpose::Server), Level::None);
    // Only the attribute whose code was broken is ignored.
    assert_eq!(unlocked.trust(ca, Purpose::Client), Level::Delegator);
    assert_eq!(unlocked.trusted(Purpose::Server).0.len(), 0);
}

#[test]
fn pkcs11_v32_trust_objects_are_read() {
    ensure_nss_tools();
    let nss = guide000_db(None);
    let ca_der = {
        let db = Database::open(&nss.spec()).unwrap();
        cert(&db, LOCAL_CA_NICK).der.to_vec()
    };
    // CKT_TRUST_ANCHOR for server auth, CKT_NOT_TRUSTED for client auth.
    edit_trust(&nss, &ca_der, &["pkcs11v32", "2", "3"]);
    let db = Database::open(&nss.spec()).unwrap();
    let unlocked = db.unlock_default().unwrap();
    let ca = cert(&db, LOCAL_CA_NICK);
    assert_eq!(unlocked.trust(ca, Purpose::Server), Level::Delegator);
    assert_eq!(unlocked.trust(ca, Purpose::Client), Level::Distrusted);
    // CKT_TRUSTED (1) is a peer; CKT_TRUST_MUST_VERIFY_TRUST (4) is nothing.
    let collector_der = cert(&db, COLLECTOR_NICK).der.to_vec();
    edit_trust(&nss, &collector_der, &["pkcs11v32", "1", "4"]);
    let db = Database::open(&nss.spec()).unwrap();
    let unlocked = db.unlock_default().unwrap();
    let collector = cert(&db, COLLECTOR_NICK);
    assert_eq!(unlocked.trust(collector, Purpose::Server), Level::Peer);
    assert_eq!(unlocked.trust(collector, Purpose::Client), Level::None);
}

#[test]
fn upgraded_berkeley_database_has_a_3des_password_check() {
    ensure_nss_tools();
    let nss = NssDb::new_dbm(None);
    nss.self_signed_ca(LOCAL_CA_NICK, "cn=Old CA", "CT,,");
    let dir = nss.dir_str().to_string();
    // Refused while it is Berkeley DB only, with the way out named.
    let e = Database::open(&format!("sql:{dir}"))
        .err()
        .expect("cert8.db refused")
        .to_string();
    assert!(
        e.contains("cert8.db") && e.contains("certutil -d sql:"),
        "{e}"
    );
    let e = Database::open(&format!("dbm:{dir}"))
        .err()
        .expect("dbm: refused")
        .to_string();
    assert!(e.contains("only sql:"), "{e}");
    // An upgrade-merge writes key4.db with NSS's legacy PBE-SHA1-3DES
    // password check (no certificates are merged from the same directory).
    let out = Command::new("certutil")
        .args([
            "--upgrade-merge",
            "--source-dir",
            &dir,
            "--upgrade-id",
            "1",
            "-d",
        ])
        .arg(format!("sql:{dir}"))
        .arg("-f")
        .arg(nss.password_file())
        .output()
        .expect("certutil");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key4 = std::fs::read(format!("{dir}/key4.db")).unwrap();
    let pbe_sha1_3des = [
        0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x0c, 0x05, 0x01, 0x03,
    ];
    assert!(
        key4.windows(pbe_sha1_3des.len())
            .any(|w| w == pbe_sha1_3des),
        "key4.db has no PBE-SHA1-3DES value; the test no longer covers the legacy scheme"
    );
    let db = Database::open(&format!("sql:{dir}")).expect("open upgraded");
    assert!(
        db.unlock_default().is_some(),
        "3DES password check with the empty password"
    );
    assert!(db.unlock(&[Zeroizing::new(b"wrong".to_vec())]).is_none());
}

#[test]
fn wrong_password_and_password_file_rules() {
    ensure_nss_tools();
    let nss = guide000_db(Some("right one"));
    let db = Database::open(&nss.spec()).unwrap();
    assert!(db.unlock_default().is_none());
    assert!(db
        .unlock(&[Zeroizing::new(b"right one".to_vec())])
        .is_some());
    let e = db
        .unlock_with("tls-nssdb-password-file", None)
        .err()
        .unwrap();
    assert!(
        e.contains("has a password") && e.contains("tls-nssdb-password-file"),
        "{e}"
    );
    let dir = tempfile::tempdir().unwrap();
    let wrong = dir.path().join("wrong");
    write_secret(&wrong, "not it\n", 0o400);
    let e = db
        .unlock_with("tls-nssdb-password-file", Some(wrong.to_str().unwrap()))
        .err()
        .unwrap();
    assert!(
        e.contains("wrong") && e.contains(wrong.to_str().unwrap()),
        "{e}"
    );
    let loose = dir.path().join("loose");
    write_secret(&loose, "right one\n", 0o640);
    let e = db
        .unlock_with("tls-nssdb-password-file", Some(loose.to_str().unwrap()))
        .err()
        .unwrap();
    assert!(e.contains("0640") && e.contains("0400"), "{e}");
    let good = dir.path().join("good");
    write_secret(&good, "right one\n", 0o400);
    let unlocked = db
        .unlock_with("tls-nssdb-password-file", Some(good.to_str().unwrap()))
        .expect("unlock");
    let id = unlocked
        .identity(Some(COLLECTOR_NICK), Purpose::Server)
        .expect("identity");
    assert_eq!(id.nickname, COLLECTOR_NICK);
    assert!(pcp_secure::api::certs::certified_key(id.chain, id.key).is_ok());
}
