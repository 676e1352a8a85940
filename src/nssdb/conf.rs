//! The `tls-nssdb` settings turned into what the server and client
//! contexts need: the identity (certificate chain and key) chosen by
//! nickname, and the CAs and peer certificates the database trusts.

#![forbid(unsafe_code)]

use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::sign::CertifiedKey;

use crate::error::{Error, Result};
use crate::log;
use crate::nssdb::{self, Database, Purpose};
use crate::tls::certs;
use crate::tls::config::{env, TlsConf, DEFAULT_NICKNAME};

/// The setting naming the server's password file.
pub const PASSWORD_KEY: &str = "tls-nssdb-password-file";
/// The setting naming the client's password file.
pub const CLIENT_PASSWORD_KEY: &str = "tls-client-nssdb-password-file";

/// The server's identity from `tls-nssdb`, and the CAs the database trusts
/// to issue client certificates. `Ok(None)` when `tls-nssdb` is not set.
pub(crate) fn server(
    conf: &TlsConf,
) -> Result<Option<(CertifiedKey, Vec<CertificateDer<'static>>)>> {
    let Some(spec) = conf.nssdb.as_deref() else {
        return Ok(None);
    };
    if let Some(file) = &conf.cert_file {
        return Err(Error::Config(format!(
            "tls-cert-file \"{file}\" and tls-nssdb \"{spec}\" are both set; keep one"
        )));
    }
    let db = Database::open(spec).map_err(|e| Error::Config(e.to_string()))?;
    let unlocked = db
        .unlock_with(PASSWORD_KEY, conf.nssdb_password_file.as_deref())
        .map_err(Error::Config)?;
    let nickname = conf.cert_nickname.as_deref().unwrap_or(DEFAULT_NICKNAME);
    let identity = unlocked
        .identity(Some(nickname), Purpose::Server)
        .map_err(Error::Config)?;
    for warning in &identity.warnings {
        log::warning!("{warning}");
    }
    let key = certs::certified_key(identity.chain, identity.key).map_err(|e| {
        Error::Config(format!(
            "NSS database \"{spec}\": the certificate \"{nickname}\" and its key cannot be used ({e})"
        ))
    })?;
    let (client_cas, _) = unlocked.trusted(Purpose::Client);
    Ok(Some((key, client_cas)))
}

/// What a client takes from an NSS database.
pub(crate) struct ClientNss {
    /// CAs trusted to issue server certificates ("C").
    pub cas: Vec<CertificateDer<'static>>,
    /// Server certificates trusted as themselves ("P").
    pub peers: Vec<CertificateDer<'static>>,
    /// The client certificate and key, if the database has one.
    pub identity: Option<Arc<CertifiedKey>>,
    /// The database, for messages.
    pub spec: String,
}

/// Where the client's database is: `tls-client-nssdb`, else
/// `$PCP_SECURE_DB_PATH` or `$HOME/.pki/nssdb` when they hold one. The flag
/// says whether it was named explicitly (then problems are errors, else
/// warnings).
pub fn client_location(conf: &TlsConf) -> Option<(String, bool)> {
    if let Some(spec) = &conf.client_nssdb {
        return Some((spec.clone(), true));
    }
    let candidates = [
        env::secure_db_path(),
        env::home().map(|h| h.join(".pki/nssdb")),
    ];
    candidates
        .into_iter()
        .flatten()
        .find(|dir| nssdb::exists(dir))
        .map(|dir| (format!("sql:{}", dir.display()), false))
}

/// The client's NSS database contents, if there is a database. Problems
/// with a database or nickname named in `tls.conf` are errors; with one
/// found in its usual place they are warnings and it is left out. A
/// client certificate that cannot be used only costs the certificate
/// (unless its nickname was asked for), not the database's trust.
pub(crate) fn client(conf: &TlsConf, want_identity: bool) -> Result<Option<ClientNss>> {
    let Some((spec, explicit)) = client_location(conf) else {
        return Ok(None);
    };
    if let Some(why) = exposed(&spec) {
        if explicit {
            return Err(Error::Config(why));
        }
        log::warning!("{why}");
        return Ok(None);
    }
    match read_client(conf, &spec, want_identity) {
        Ok(found) => Ok(Some(found)),
        Err(e) if explicit || conf.client_cert_nickname.is_some() => Err(Error::Config(e)),
        Err(e) => {
            log::warning!("{e}; the database is not used");
            Ok(None)
        }
    }
}

/// Why the client database `spec` cannot be trusted (its directory, its
/// certificate and trust file or its key file could have been changed by
/// another user), or `None`.
fn exposed(spec: &str) -> Option<String> {
    let dir = nssdb::directory(spec).ok()?;
    let (cert9, key4) = (dir.join("cert9.db"), dir.join("key4.db"));
    crate::trust::exposure::exposure(&[&dir, &cert9, &key4])
        .map(|e| e.describe(&format!("NSS database \"{spec}\"")))
}

fn read_client(
    conf: &TlsConf,
    spec: &str,
    want_identity: bool,
) -> std::result::Result<ClientNss, String> {
    let db = Database::open(spec)?;
    let unlocked = db.unlock_with(
        CLIENT_PASSWORD_KEY,
        conf.client_nssdb_password_file.as_deref(),
    )?;
    let (cas, peers) = unlocked.trusted(Purpose::Server);
    let nickname = conf.client_cert_nickname.as_deref();
    let has_candidate = db
        .certificates()
        .iter()
        .any(|c| db.has_key(c) && !c.is_ca());
    let identity = if want_identity && (nickname.is_some() || has_candidate) {
        let found = unlocked
            .identity(nickname, Purpose::Client)
            .and_then(|id| {
                for warning in &id.warnings {
                    log::debug!("{warning}");
                }
                let name = id.nickname.clone();
                certs::certified_key(id.chain, id.key).map_err(|e| {
                    format!("NSS database \"{spec}\": the certificate \"{name}\" and its key cannot be used ({e})")
                })
            });
        match found {
            Ok(key) => Some(Arc::new(key)),
            Err(e) if nickname.is_some() => return Err(e),
            Err(e) => {
                log::warning!("{e}; no client certificate will be presented");
                None
            }
        }
    } else {
        None
    };
    Ok(ClientNss {
        cas,
        peers,
        identity,
        spec: spec.to_string(),
    })
}
