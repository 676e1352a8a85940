//! The NSS database checks of `pcp-secure verify`: the collector's
//! `tls-nssdb` (read as the user pmcd runs as, since pmcd reads it after
//! dropping to that user) and a client's database (`tls-nssdb`,
//! `$PCP_SECURE_DB_PATH` or `~/.pki/nssdb`, read as the user running verify).
//! The certificate found goes on to the checks the PEM files get (chain,
//! validity, host names) in `verify.rs`.

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;

use pcp_secure::api::certs::ServerContext;
use pcp_secure::api::nssdb::{self as nssdb, password, Cert, Database, Purpose, Unlocked};
use pcp_secure::api::settings::{TlsConf, DEFAULT_NICKNAME};
use pcp_secure::api::trust::CertInfo;

use x509_parser::prelude::{FromDer, X509Certificate};

use super::{
    era, server_setup, validity, validity_period, CertSource, ChainAnchors, Report, Served,
};
pub(crate) use crate::user::{as_user, ServiceUser};

/// The tls.conf key of the password file (as the library names it).
use pcp_secure::api::nssdb::{CLIENT_PASSWORD_KEY, PASSWORD_KEY};

// ---------------------------------------------------------------------------
// Shared by the server and client checks

/// Of the certificates named `nickname` (or, without a nickname, the
/// end-entity certificates with a key), the one the library would choose:
/// with a key, valid now, expiring last.
fn pick<'a>(db: &'a Database, nickname: Option<&str>) -> Option<&'a Cert> {
    let now = super::now_secs();
    db.certificates()
        .iter()
        .filter(|c| match nickname {
            Some(name) => c.nickname == name,
            None => db.has_key(c) && !c.is_ca(),
        })
        .max_by_key(|c| {
            let (from, to) = validity_period(&c.der).unwrap_or((i64::MAX, i64::MIN));
            (db.has_key(c), from <= now && now <= to, to)
        })
}

/// A `Database::open` error as detail and fix: the library's conversion
/// for old databases becomes the fix; otherwise the fix says how to create
/// or open up the database (`reader`: who must read it).
fn open_problem(
    e: &nssdb::OpenError,
    key: &str,
    spec: &str,
    conf_name: &str,
    reader: &str,
) -> (String, String) {
    if let Some(conversion) = e.conversion() {
        return (e.problem(), conversion);
    }
    let fix = match nssdb::directory(spec) {
        Ok(dir) if dir.is_dir() && nssdb::exists(&dir) => {
            let d = dir.display();
            format!("make {d}, cert9.db and key4.db readable by {reader} (e.g. chgrp -R GROUP {d} && chmod g+rX {d} {d}/cert9.db {d}/key4.db)")
        }
        Ok(dir) => {
            let d = dir.display();
            format!("correct {key} in {conf_name}, or create the database (certutil -N -d sql:{d}) and import the certificate with its key (pk12util -i FILE.p12 -d sql:{d})")
        }
        Err(_) => format!("correct {key} in {conf_name}"),
    };
    (e.problem(), fix)
}

// ---------------------------------------------------------------------------
// Server (pmcd)

/// The checks of the collector's `tls-nssdb`. Returns the certificate for
/// the shared checks, or `None` when there is none to check.
pub(super) fn server(
    r: &mut Report,
    conf: &TlsConf,
    conf_name: &str,
    spec: &str,
    user: &ServiceUser,
) -> Option<Served> {
    const DB: &str = "server NSS database";
    let who = format!("{} (uid {})", user.name, user.uid);
    // The database, as pmcd's user reads it; as this user if we cannot
    // act as that one (and then only warn when that is not allowed).
    let db = match as_user(user, || Database::open(spec)) {
        Ok(Ok(db)) => {
            r.ok(
                DB,
                format!(
                    "\"{spec}\" (tls-nssdb): readable by {who}, the user pmcd runs as; {} certificate(s)",
                    db.certificates().len()
                ),
            );
            db
        }
        Ok(Err(e)) => {
            let (detail, fix) = open_problem(&e, "tls-nssdb", spec, conf_name, &user.name);
            r.fail(
                DB,
                format!("{detail} (read as {who}, the user pmcd runs as)"),
                fix,
            );
            return None;
        }
        Err(why) => match Database::open(spec) {
            Ok(db) => {
                r.ok(
                    DB,
                    format!(
                        "\"{spec}\" (tls-nssdb): readable by you; {} certificate(s) (not checked as {who}: {why})",
                        db.certificates().len()
                    ),
                );
                db
            }
            Err(e) if cannot_read(spec) => {
                r.warn(
                    DB,
                    format!("{e} (read as you: {why})"),
                    format!(
                        "run `pcp-secure verify` as root (or as {}) to check it",
                        user.name
                    ),
                );
                return None;
            }
            Err(e) => {
                let (detail, fix) = open_problem(&e, "tls-nssdb", spec, conf_name, &user.name);
                r.fail(DB, detail, fix);
                return None;
            }
        },
    };

    // The password file: the guide's rule, for pmcd's user.
    let password_ok = match conf.nssdb_password_file.as_deref() {
        None => true,
        Some(file) => match password_file(PASSWORD_KEY, file, user, "the user pmcd runs as") {
            Ok(detail) => {
                r.ok("server NSS password file", detail);
                true
            }
            Err((detail, fix)) => {
                r.fail("server NSS password file", detail, fix);
                false
            }
        },
    };

    // Unlocking: needs the password file read as pmcd's user.
    const UNLOCK: &str = "server NSS database password";
    let unlocked: Option<Unlocked<'_>> = if !password_ok {
        None
    } else {
        let pw = conf.nssdb_password_file.as_deref();
        let tried = match pw {
            Some(_) => as_user(user, || db.unlock_with(PASSWORD_KEY, pw)),
            // No file to read: the same whoever asks.
            None => Ok(db.unlock_with(PASSWORD_KEY, None)),
        };
        match tried {
            Ok(Ok(unlocked)) => {
                r.ok(
                    UNLOCK,
                    match pw {
                        Some(file) => {
                            format!("the database unlocks with {PASSWORD_KEY} \"{file}\"")
                        }
                        None => "the database has no password (no tls-nssdb-password-file needed)"
                            .into(),
                    },
                );
                Some(unlocked)
            }
            Ok(Err(e)) => {
                let fix = match pw {
                    Some(file) => format!(
                        "put the database password (the one given to certutil -N / -W) into \"{file}\", alone on its line"
                    ),
                    None => format!(
                        "put the database password into a file owned by {}, mode 0400, and name it with {PASSWORD_KEY} in {conf_name}",
                        user.name
                    ),
                };
                r.fail(UNLOCK, e, fix);
                None
            }
            Err(why) => {
                r.warn(
                    UNLOCK,
                    format!("not checked: {why}"),
                    format!(
                        "run `pcp-secure verify` as root (or as {}) to check it",
                        user.name
                    ),
                );
                None
            }
        }
    };

    // The certificate by nickname, and its key.
    let nickname = conf.cert_nickname.as_deref().unwrap_or(DEFAULT_NICKNAME);
    let named = if conf.cert_nickname.is_some() {
        "tls-cert-nickname"
    } else {
        "the default tls-cert-nickname"
    };
    let Some(cert) = pick(&db, Some(nickname)) else {
        r.fail(
            "server certificate",
            format!(
                "no certificate \"{nickname}\" ({named}) in \"{spec}\"; it has {}",
                db.nicknames()
            ),
            format!(
                "set tls-cert-nickname in {conf_name} to the server certificate's nickname (certutil -L -d {spec} lists them), or import it with its key (pk12util -i FILE.p12 -d {spec})"
            ),
        );
        return None;
    };
    let info = CertInfo::of(&cert.der);
    r.ok(
        "server certificate",
        format!(
            "\"{nickname}\" ({named}) in \"{spec}\": {}, issued by {}",
            info.subject, info.issuer
        ),
    );
    let has_key = db.has_key(cert);
    if has_key {
        r.ok(
            "server key",
            format!("key4.db holds the private key of \"{nickname}\""),
        );
    } else {
        r.fail(
            "server key",
            format!("\"{nickname}\" has no private key in key4.db of \"{spec}\""),
            format!("import the certificate together with its key: pk12util -i FILE.p12 -d {spec} (export it where it was made with pk12util -o FILE.p12 -n \"{nickname}\")"),
        );
    }

    // What pmcd would build: decrypts the key, checks it fits.
    if let (Some(_), true) = (&unlocked, has_key) {
        // (Unlocked means that pmcd's user could be acted as, or that no
        // password file needs reading: then any user builds the same.)
        let built = as_user(user, || ServerContext::build(conf).map(drop))
            .unwrap_or_else(|_| ServerContext::build(conf).map(drop));
        server_setup(r, built, conf_name);
    }

    // For the shared checks: the certificate, and the database's CA
    // certificates from which pmcd completes the chain it sends.
    let chain = std::iter::once(cert.der.clone())
        .chain(
            db.certificates()
                .iter()
                .filter(|c| c.is_ca() && c.der != cert.der)
                .map(|c| c.der.clone()),
        )
        .collect();
    let (anchors, db_client_cas) = match &unlocked {
        Some(u) => (
            ChainAnchors::Database(u.trusted(Purpose::Server).0, spec.to_string()),
            Some(u.trusted(Purpose::Client).0.len()),
        ),
        None => (ChainAnchors::Unknown, None),
    };
    // The CAs of the database: those it trusts (for servers or clients),
    // and the served certificate's issuer, which an NSS pmcd sends with it.
    let trusted: Vec<_> = match &unlocked {
        Some(u) => {
            let mut cas = u.trusted(Purpose::Server).0;
            cas.extend(u.trusted(Purpose::Client).0);
            cas
        }
        None => Vec::new(),
    };
    let mut ca_uses = Vec::new();
    for c in db.certificates() {
        if c.der == cert.der || !era::lacks_basic_constraints(&c.der) {
            continue;
        }
        let is_trusted = trusted.contains(&c.der) && era::ca_lacking_basic_constraints(&c.der);
        let is_issuer = issued(&cert.der, &c.der);
        let place = match (is_trusted, is_issuer) {
            (true, true) => format!("\"{}\", trusted as a CA in \"{spec}\" and the issuer of \"{nickname}\" (an NSS pmcd sends it along)", c.nickname),
            (true, false) => format!("\"{}\", trusted as a CA in \"{spec}\"", c.nickname),
            (false, true) => format!("\"{}\" in \"{spec}\", the issuer of \"{nickname}\" (an NSS pmcd sends it along)", c.nickname),
            (false, false) => continue,
        };
        ca_uses.push(era::CaUse {
            cert: c.der.clone(),
            place,
            database: Some(spec.to_string()),
        });
    }
    Some(Served {
        ca_uses,
        chain,
        source: CertSource::Nss {
            spec: spec.to_string(),
            nickname: nickname.to_string(),
        },
        anchors,
        db_client_cas,
    })
}

/// Whether `issuer`'s subject is `cert`'s issuer (by name).
fn issued(cert: &[u8], issuer: &[u8]) -> bool {
    match (
        X509Certificate::from_der(cert),
        X509Certificate::from_der(issuer),
    ) {
        (Ok((_, c)), Ok((_, i))) => c.issuer().as_raw() == i.subject().as_raw(),
        _ => false,
    }
}

/// True when the database's files exist but this user may not read them.
fn cannot_read(spec: &str) -> bool {
    let Ok(dir) = nssdb::directory(spec) else {
        return false;
    };
    ["cert9.db", "key4.db"].iter().any(|f| {
        fs::File::open(dir.join(f)).is_err_and(|e| e.kind() == io::ErrorKind::PermissionDenied)
    })
}

/// The password file rule (owned by the user that reads it, mode 0400), by
/// the library's own check; `whose` says who that user is. The ok line's
/// detail, or the problem's detail and fix.
fn password_file(
    key: &str,
    file: &str,
    user: &ServiceUser,
    whose: &str,
) -> Result<String, (String, String)> {
    let meta = fs::metadata(file).map_err(|e| {
        (
            format!("{key} \"{file}\": cannot read ({e})"),
            format!(
                "create \"{file}\" holding the database password, owned by {}, mode 0400 (or correct {key})",
                user.name
            ),
        )
    })?;
    password::check_owner_and_mode(key, file, &meta, user.uid).map_err(|e| {
        let mut fixes = Vec::new();
        if meta.uid() != user.uid {
            fixes.push(format!("chown {} \"{file}\"", user.name));
        }
        if meta.mode() & 0o7777 != 0o400 {
            fixes.push(format!("chmod 0400 \"{file}\""));
        }
        if fixes.is_empty() {
            fixes.push(format!(
                "chown {} \"{file}\" && chmod 0400 \"{file}\"",
                user.name
            ));
        }
        let detail = if meta.uid() != user.uid && user.uid != crate::user::euid() {
            format!("{e}; {} is {whose} (--service-user)", user.name)
        } else {
            e
        };
        (detail, fixes.join(" && "))
    })?;
    Ok(format!(
        "{key} \"{file}\": owned by {} ({whose}), mode 0400",
        user.name
    ))
}

// ---------------------------------------------------------------------------
// Client (pminfo, pmlogger, ...)

/// Where a client's database is, exactly as the library finds it, with
/// where it was found (for the report) and whether it was named explicitly
/// (then problems stop clients; else the library ignores the database
/// with a warning).
fn client_location(conf: &TlsConf, conf_name: &str) -> Option<(String, String, bool)> {
    let (spec, explicit) = pcp_secure::api::nssdb::client_location(conf)?;
    let from = if explicit {
        format!("tls-client-nssdb in {conf_name}")
    } else {
        let dir = nssdb::directory(&spec).ok()?;
        let from_env = std::env::var_os("PCP_SECURE_DB_PATH").is_some_and(|d| d == dir.as_os_str());
        if from_env {
            "PCP_SECURE_DB_PATH"
        } else {
            "$HOME/.pki/nssdb"
        }
        .to_string()
    };
    Some((spec, from, explicit))
}

/// The checks of a client's NSS database, if clients run from here use one.
pub(super) fn client(r: &mut Report, conf: &TlsConf, conf_name: &str) {
    let Some((spec, from, explicit)) = client_location(conf, conf_name) else {
        return;
    };
    // A problem: FAIL when the database or a nickname is named in
    // tls.conf (clients refuse to connect securely), else warn (clients
    // ignore the database), as `nssconf::client` decides.
    let strict = explicit || conf.client_cert_nickname.is_some();
    let problem = |r: &mut Report, name: &str, detail: String, fix: String| {
        if strict {
            r.fail(name, detail, fix);
        } else {
            r.warn(
                name,
                format!("{detail}; clients ignore the database"),
                format!("{fix}; or move the database away"),
            );
        }
    };
    const DB: &str = "client NSS database";
    let db = match Database::open(&spec) {
        Ok(db) => {
            r.ok(
                DB,
                format!(
                    "\"{spec}\" (from {from}): {} certificate(s)",
                    db.certificates().len()
                ),
            );
            db
        }
        Err(e) => {
            let (detail, fix) = open_problem(&e, "tls-client-nssdb", &spec, conf_name, "you");
            problem(r, DB, detail, fix);
            return;
        }
    };
    let pw = conf.client_nssdb_password_file.as_deref();
    if let Some(file) = pw {
        const NAME: &str = "client NSS password file";
        match password_file(CLIENT_PASSWORD_KEY, file, &ServiceUser::current(), "you") {
            Ok(detail) => r.ok(NAME, detail),
            Err((detail, fix)) => {
                problem(r, NAME, detail, fix);
                return;
            }
        }
    }
    const UNLOCK: &str = "client NSS database password";
    let unlocked = match db.unlock_with(CLIENT_PASSWORD_KEY, pw) {
        Ok(u) => {
            r.ok(
                UNLOCK,
                match pw {
                    Some(file) => {
                        format!("the database unlocks with {CLIENT_PASSWORD_KEY} \"{file}\"")
                    }
                    None => "the database has no password".into(),
                },
            );
            u
        }
        Err(e) => {
            let fix = match pw {
                Some(file) => format!("put the database password (the one given to certutil -N / -W) into \"{file}\", alone on its line"),
                None => format!("put the database password into a file owned by you, mode 0400, and name it with {CLIENT_PASSWORD_KEY} in {conf_name}"),
            };
            problem(r, UNLOCK, e, fix);
            return;
        }
    };
    let (cas, peers) = unlocked.trusted(Purpose::Server);
    r.ok(
        "client NSS trust",
        format!(
            "\"{spec}\" trusts {} CA(s) to issue server certificates (trust C) and accepts {} server certificate(s) as themselves (trust P)",
            cas.len(),
            peers.len()
        ),
    );

    // The client certificate: only when tls.conf names no PEM one.
    const CERT: &str = "client NSS certificate";
    if conf.client_cert_file.is_some() || conf.client_key_file.is_some() {
        return;
    }
    let nickname = conf.client_cert_nickname.as_deref();
    let Some(cert) = pick(&db, nickname) else {
        match nickname {
            Some(name) => problem(
                r,
                CERT,
                format!("no certificate \"{name}\" (tls-client-cert-nickname) in \"{spec}\"; it has {}", db.nicknames()),
                format!("correct tls-client-cert-nickname in {conf_name} (certutil -L -d {spec} lists the nicknames)"),
            ),
            None => r.ok(
                CERT,
                "none (needed only for pmcd -Q or tls-verify-clients)",
            ),
        }
        return;
    };
    let renew = format!(
        "issue a new client certificate and import it with its key (pk12util -i FILE.p12 -d {spec}), or use `pcp-secure cert client NAME` and tls-client-cert-file"
    );
    match unlocked.identity(nickname, Purpose::Client) {
        Ok(id) => {
            let info = CertInfo::of(&id.chain[0]);
            r.ok(
                CERT,
                format!(
                    "\"{}\": {}, issued by {} (presented when pmcd asks for one)",
                    id.nickname, info.subject, info.issuer
                ),
            );
            era::client_version1(
                r,
                &id.chain[0],
                &format!("\"{}\" in \"{spec}\"", id.nickname),
                &format!("then name them with tls-client-cert-file and tls-client-key-file in {conf_name}, or import them into the database (openssl pkcs12 -export -in DIR/NAME.crt -inkey DIR/NAME.key -name NICKNAME -out FILE.p12, then pk12util -i FILE.p12 -d {spec}) and set tls-client-cert-nickname = NICKNAME"),
            );
            validity(r, "client certificate validity", &id.chain[0], &renew);
        }
        // Outside its dates: the validity check says so and what to do.
        Err(_) if pcp_secure::api::trust::out_of_date(&cert.der) => {
            validity(r, "client certificate validity", &cert.der, &renew);
        }
        Err(e) if nickname.is_some() => problem(
            r,
            CERT,
            e,
            format!("import \"{}\" with its key (pk12util -i FILE.p12 -d {spec}), or correct tls-cert-nickname in {conf_name}", cert.nickname),
        ),
        Err(e) => r.warn(
            CERT,
            format!("{e}: clients present no client certificate"),
            format!("import a client certificate with its key (pk12util -i FILE.p12 -d {spec}), or name one with tls-cert-nickname in {conf_name}"),
        ),
    }
}
