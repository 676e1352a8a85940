//! The `tls-nssdb` settings turned into what the server and client
//! contexts need: the identity (certificate chain and key) chosen by
//! nickname, and the CAs and peer certificates the database trusts.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::sign::CertifiedKey;

use crate::certs;
use crate::config::{TlsConf, DEFAULT_NICKNAME};
use crate::error::{Error, Result};
use crate::log;
use crate::nssdb::{self, Database, Purpose};

const PASSWORD_KEY: &str = "tls-nssdb-password-file";

/// The server's identity from `tls-nssdb`, and the CAs the database trusts
/// to issue client certificates. `Ok(None)` when `tls-nssdb` is not set.
pub fn server(conf: &TlsConf) -> Result<Option<(CertifiedKey, Vec<CertificateDer<'static>>)>> {
    let Some(spec) = conf.nssdb.as_deref() else {
        return Ok(None);
    };
    if let Some(file) = &conf.cert_file {
        return Err(Error::Config(format!(
            "tls-cert-file \"{file}\" and tls-nssdb \"{spec}\" are both set; keep one"
        )));
    }
    let db = Database::open(spec).map_err(Error::Config)?;
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
            "NSS database \"{spec}\": the key of \"{nickname}\" cannot be used ({e})"
        ))
    })?;
    let (client_cas, _) = unlocked.trusted(Purpose::Client);
    Ok(Some((key, client_cas)))
}

/// What a client takes from an NSS database.
pub struct ClientNss {
    /// CAs trusted to issue server certificates ("C").
    pub cas: Vec<CertificateDer<'static>>,
    /// Server certificates trusted as themselves ("P").
    pub peers: Vec<CertificateDer<'static>>,
    /// The client certificate and key, if the database has one.
    pub identity: Option<Arc<CertifiedKey>>,
    /// The database, for messages.
    pub spec: String,
}

/// Where the client's database is: `tls-nssdb`, else `$PCP_SECURE_DB_PATH`
/// or `$HOME/.pki/nssdb` when they hold one. The flag says whether it was
/// named explicitly (then problems are errors, else warnings).
fn client_location(conf: &TlsConf) -> Option<(String, bool)> {
    if let Some(spec) = &conf.nssdb {
        return Some((spec.clone(), true));
    }
    let candidates = [
        std::env::var_os("PCP_SECURE_DB_PATH").map(PathBuf::from),
        std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".pki/nssdb")),
    ];
    candidates
        .into_iter()
        .flatten()
        .find(|dir| nssdb::exists(dir))
        .map(|dir| (format!("sql:{}", dir.display()), false))
}

/// The client's NSS database contents, if there is a database.
pub fn client(conf: &TlsConf, want_identity: bool) -> Result<Option<ClientNss>> {
    let Some((spec, explicit)) = client_location(conf) else {
        return Ok(None);
    };
    match read_client(conf, &spec, want_identity) {
        Ok(found) => Ok(Some(found)),
        Err(e) if explicit => Err(Error::Config(e)),
        Err(e) => {
            log::warning!("{e}; the database is not used");
            Ok(None)
        }
    }
}

fn read_client(
    conf: &TlsConf,
    spec: &str,
    want_identity: bool,
) -> std::result::Result<ClientNss, String> {
    let db = Database::open(spec)?;
    let unlocked = db.unlock_with(PASSWORD_KEY, conf.nssdb_password_file.as_deref())?;
    let (cas, peers) = unlocked.trusted(Purpose::Server);
    let nickname = conf.cert_nickname.as_deref();
    let has_candidate = db
        .certificates()
        .iter()
        .any(|c| db.has_key(c) && !c.is_ca());
    let identity =
        if want_identity && (nickname.is_some() || has_candidate) {
            match unlocked.identity(nickname, Purpose::Client) {
                Ok(id) => {
                    for warning in &id.warnings {
                        log::debug!("{warning}");
                    }
                    let name = id.nickname.clone();
                    Some(Arc::new(certs::certified_key(id.chain, id.key).map_err(|e| {
                    format!("NSS database \"{spec}\": the key of \"{name}\" cannot be used ({e})")
                })?))
                }
                Err(e) if nickname.is_none() => {
                    log::warning!("{e}; no client certificate will be presented");
                    None
                }
                Err(e) => return Err(e),
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
