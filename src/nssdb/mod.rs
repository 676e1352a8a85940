//! NSS `sql:` certificate databases (cert9.db and key4.db), read directly
//! and read-only, so that sites which made their certificates with certutil
//! and pk12util keep them: certificates by nickname, trust flags, and
//! private keys decrypted with the database password.

pub(crate) mod conf;
mod der;
mod keys;
pub mod password;
mod pbe;
mod sqlite;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use x509_parser::prelude::{FromDer, X509Certificate};
use zeroize::Zeroizing;

pub(crate) use pbe::PasswordKey;

/// PKCS#11 attribute types used here.
pub(crate) mod attr {
    /// CKA_CLASS.
    pub(crate) const CLASS: u32 = 0x0;
    /// CKA_LABEL (the nickname).
    pub(crate) const LABEL: u32 = 0x3;
    /// CKA_VALUE (certificate DER, EC private scalar).
    pub(crate) const VALUE: u32 = 0x11;
    /// CKA_ISSUER.
    pub(crate) const ISSUER: u32 = 0x81;
    /// CKA_SERIAL_NUMBER.
    pub(crate) const SERIAL: u32 = 0x82;
    /// CKA_KEY_TYPE.
    pub(crate) const KEY_TYPE: u32 = 0x100;
    /// CKA_ID (links a certificate and its key).
    pub(crate) const ID: u32 = 0x102;
    /// CKA_MODULUS.
    pub(crate) const MODULUS: u32 = 0x120;
    /// CKA_PUBLIC_EXPONENT.
    pub(crate) const PUBLIC_EXPONENT: u32 = 0x122;
    /// CKA_PRIVATE_EXPONENT.
    pub(crate) const PRIVATE_EXPONENT: u32 = 0x123;
    /// CKA_PRIME_1.
    pub(crate) const PRIME_1: u32 = 0x124;
    /// CKA_PRIME_2.
    pub(crate) const PRIME_2: u32 = 0x125;
    /// CKA_EXPONENT_1.
    pub(crate) const EXPONENT_1: u32 = 0x126;
    /// CKA_EXPONENT_2.
    pub(crate) const EXPONENT_2: u32 = 0x127;
    /// CKA_COEFFICIENT.
    pub(crate) const COEFFICIENT: u32 = 0x128;
    /// CKA_EC_PARAMS (the curve).
    pub(crate) const EC_PARAMS: u32 = 0x180;
    /// CKA_NSS_DB (an EC key's public point).
    pub(crate) const NSS_DB: u32 = 0xd5a0_db00;
    /// CKA_NSS_TRUST_SERVER_AUTH.
    pub(crate) const NSS_TRUST_SERVER: u32 = 0xce53_6358;
    /// CKA_NSS_TRUST_CLIENT_AUTH.
    pub(crate) const NSS_TRUST_CLIENT: u32 = 0xce53_6359;
    /// CKA_NSS_CERT_SHA1_HASH.
    pub(crate) const NSS_CERT_SHA1: u32 = 0xce53_63b4;
    /// CKA_TRUST_SERVER_AUTH (PKCS#11 3.2).
    pub(crate) const TRUST_SERVER: u32 = 0x62c;
    /// CKA_TRUST_CLIENT_AUTH (PKCS#11 3.2).
    pub(crate) const TRUST_CLIENT: u32 = 0x62d;
}

const CKO_CERTIFICATE: u32 = 1;
const CKO_PRIVATE_KEY: u32 = 3;
const CKO_TRUST: u32 = 0x0b;
const CKO_NSS_TRUST: u32 = 0xce53_4353;

/// What a certificate is trusted for, as certutil's trust flags say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// "P": trusted as itself (a peer).
    Peer,
    /// "C" / "T": a CA trusted to issue certificates.
    Delegator,
    /// Explicitly distrusted.
    Distrusted,
    /// No usable trust (none stored, "must verify", or an integrity code
    /// that does not match).
    None,
}

/// Which side of TLS a certificate is used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Server authentication (the SSL column's "C" and "P").
    Server,
    /// Client authentication (the SSL column's "T").
    Client,
}

/// A certificate of the database.
#[derive(Debug, Clone)]
pub struct Cert {
    /// Its nickname (CKA_LABEL).
    pub nickname: String,
    /// The DER certificate.
    pub der: CertificateDer<'static>,
    ckaid: Vec<u8>,
    issuer: Vec<u8>,
    serial: Vec<u8>,
    subject_raw: Vec<u8>,
    issuer_raw: Vec<u8>,
}

/// key4.db's metaData rows (password check and integrity codes).
pub(crate) struct Metadata(sqlite::MetaRows);

impl Metadata {
    /// The integrity code filed for attribute `attr` of object `id`.
    fn signature(&self, prefix: &str, id: u32, attr: u32) -> Option<&[u8]> {
        [id, id | 0xc000_0000].iter().find_map(|id| {
            self.0
                .get(&format!("{prefix}_{id:08x}_{attr:08x}"))
                .map(|(item1, _)| item1.as_slice())
        })
    }

    /// Checks the integrity code of a clear attribute.
    fn verify_public(
        &self,
        prefix: &str,
        id: u32,
        attr: u32,
        value: &[u8],
        pw: &PasswordKey,
    ) -> Result<(), ()> {
        let mac = self.signature(prefix, id, attr).ok_or(())?;
        [id, id | 0xc000_0000]
            .iter()
            .any(|&object| pbe::verify_mac(mac, pw, object, attr, value).is_ok())
            .then_some(())
            .ok_or(())
    }
}

/// An NSS database, loaded whole (they are small) and never written.
pub struct Database {
    spec: String,
    certs: Vec<Cert>,
    trust: Vec<sqlite::Object>,
    keys: Vec<sqlite::Object>,
    meta: Metadata,
}

/// The certificate, chain and key chosen for a nickname.
pub struct Identity {
    /// The nickname (as stored).
    pub nickname: String,
    /// The certificate and the issuers found in the database, leaf first
    /// (the self-signed root left out, as NSS sends it).
    pub chain: Vec<CertificateDer<'static>>,
    /// Its private key.
    pub key: PrivateKeyDer<'static>,
    /// Things worth telling the administrator that do not stop it being used.
    pub warnings: Vec<String>,
}

/// Why a database cannot be opened: each names the database; the old
/// formats carry the conversion that fixes them.
#[derive(Debug)]
pub enum OpenError {
    /// A `dbm:`, `extern:`, `rdb:` or `multiaccess:` spec.
    NotSql {
        /// The spec as written.
        spec: String,
        /// The directory it names.
        dir: String,
    },
    /// A directory holding a Berkeley DB database (cert8.db, key3.db).
    BerkeleyDb {
        /// The spec as written.
        spec: String,
        /// Its directory.
        dir: String,
    },
    /// The directory does not exist.
    NoDirectory {
        /// The spec as written.
        spec: String,
    },
    /// The directory has no cert9.db.
    NoCert9 {
        /// The spec as written.
        spec: String,
        /// Its directory.
        dir: String,
    },
    /// SQLite could not read one of the files.
    Unreadable {
        /// The spec as written.
        spec: String,
        /// cert9.db or key4.db.
        file: String,
        /// What SQLite said.
        why: String,
    },
}

impl OpenError {
    /// The one-time conversion that fixes an old database, if that is the
    /// problem.
    pub fn conversion(&self) -> Option<String> {
        match self {
            OpenError::NotSql { dir, .. } | OpenError::BerkeleyDb { dir, .. } => {
                Some(upgrade_advice(dir))
            }
            _ => None,
        }
    }

    /// What is wrong, without the conversion advice.
    pub fn problem(&self) -> String {
        match self {
            OpenError::NotSql { spec, .. } => format!(
                "NSS database \"{spec}\": only sql: databases (cert9.db, key4.db) can be read"
            ),
            OpenError::BerkeleyDb { spec, .. } => format!(
                "NSS database \"{spec}\" is an old Berkeley DB database (cert8.db, key3.db), which cannot be read"
            ),
            OpenError::NoDirectory { spec } => {
                format!("NSS database \"{spec}\": no such directory")
            }
            OpenError::NoCert9 { spec, dir } => {
                format!("NSS database \"{spec}\": no cert9.db in {dir}")
            }
            OpenError::Unreadable { spec, file, why } => {
                format!("NSS database \"{spec}\": cannot read {file} ({why})")
            }
        }
    }
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.conversion() {
            Some(advice) => write!(f, "{}; {advice}", self.problem()),
            None => f.write_str(&self.problem()),
        }
    }
}

impl From<OpenError> for String {
    fn from(e: OpenError) -> String {
        e.to_string()
    }
}

/// The directory a database spec names: `sql:DIR` or a bare `DIR`.
pub fn directory(spec: &str) -> Result<PathBuf, OpenError> {
    if let Some(dir) = spec.strip_prefix("sql:") {
        return Ok(PathBuf::from(dir));
    }
    for method in ["dbm:", "extern:", "rdb:", "multiaccess:"] {
        if let Some(dir) = spec.strip_prefix(method) {
            return Err(OpenError::NotSql {
                spec: spec.to_string(),
                dir: dir.to_string(),
            });
        }
    }
    Ok(PathBuf::from(spec))
}

/// How to turn a Berkeley DB database into an sql: one.
fn upgrade_advice(dir: &str) -> String {
    format!(
        "convert it once with: certutil -d sql:{dir} -N -f FILE (FILE holding its password, or an empty line); \
         NSS then writes cert9.db and key4.db beside the old files"
    )
}

/// True when `dir` holds an NSS sql: database.
pub fn exists(dir: &Path) -> bool {
    dir.join("cert9.db").is_file()
}

impl Database {
    /// Opens the database named by `spec` (`sql:/etc/pcp/nssdb` or a
    /// directory); every error names the database and the reason.
    pub fn open(spec: &str) -> Result<Database, OpenError> {
        let dir = directory(spec)?;
        let cert9 = dir.join("cert9.db");
        let key4 = dir.join("key4.db");
        if !cert9.is_file() {
            if dir.join("cert8.db").is_file() {
                return Err(OpenError::BerkeleyDb {
                    spec: spec.to_string(),
                    dir: dir.display().to_string(),
                });
            }
            if !dir.is_dir() {
                return Err(OpenError::NoDirectory {
                    spec: spec.to_string(),
                });
            }
            return Err(OpenError::NoCert9 {
                spec: spec.to_string(),
                dir: dir.display().to_string(),
            });
        }
        let fail = |file: &Path, e: rusqlite::Error| OpenError::Unreadable {
            spec: spec.to_string(),
            file: file.display().to_string(),
            why: e.to_string(),
        };
        let public = sqlite::open(&cert9).map_err(|e| fail(&cert9, e))?;
        let objects = sqlite::objects(&public, "nssPublic").map_err(|e| fail(&cert9, e))?;
        let (keys, meta) = if key4.is_file() {
            let private = sqlite::open(&key4).map_err(|e| fail(&key4, e))?;
            (
                sqlite::objects(&private, "nssPrivate").map_err(|e| fail(&key4, e))?,
                sqlite::metadata(&private).map_err(|e| fail(&key4, e))?,
            )
        } else {
            (Vec::new(), HashMap::new())
        };
        let mut certs = Vec::new();
        let mut trust = Vec::new();
        for object in objects {
            match object.ulong(attr::CLASS) {
                Some(CKO_CERTIFICATE) => {
                    if let Some(cert) = Cert::from_object(&object) {
                        certs.push(cert);
                    }
                }
                Some(CKO_NSS_TRUST | CKO_TRUST) => trust.push(object),
                _ => {}
            }
        }
        let keys = keys
            .into_iter()
            .filter(|k| k.ulong(attr::CLASS) == Some(CKO_PRIVATE_KEY))
            .collect();
        Ok(Database {
            spec: spec.to_string(),
            certs,
            trust,
            keys,
            meta: Metadata(meta),
        })
    }

    /// The spec as the administrator wrote it, for messages.
    pub fn spec(&self) -> &str {
        &self.spec
    }

    /// Every certificate, in storage order.
    pub fn certificates(&self) -> &[Cert] {
        &self.certs
    }

    /// The distinct nicknames, sorted and quoted, for messages ("no
    /// certificates" when there are none).
    pub fn nicknames(&self) -> String {
        let mut names: Vec<&str> = self.certs.iter().map(|c| c.nickname.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        if names.is_empty() {
            return "no certificates".into();
        }
        let quoted: Vec<String> = names.iter().map(|n| format!("\"{n}\"")).collect();
        quoted.join(", ")
    }

    /// True when a private key is stored for `cert`.
    pub fn has_key(&self, cert: &Cert) -> bool {
        !cert.ckaid.is_empty()
            && self
                .keys
                .iter()
                .any(|k| k.get(attr::ID) == Some(&cert.ckaid[..]))
    }

    /// Unlocks the database with the first of `passwords` that passes its
    /// password check.
    pub fn unlock(&self, passwords: &[Zeroizing<Vec<u8>>]) -> Option<Unlocked<'_>> {
        let (salt, check) = self.meta.0.get("password")?;
        passwords.iter().find_map(|pw| {
            let key = PasswordKey::new(salt, pw);
            let plain = pbe::decrypt(check, &key).ok()?;
            (plain.as_slice() == b"password-check").then(|| Unlocked::new(self, key))
        })
    }

    /// Unlocks a database made without a password: the empty password, or
    /// the single newline that PCP's NSS-era clients used.
    pub fn unlock_default(&self) -> Option<Unlocked<'_>> {
        self.unlock(&[Zeroizing::new(Vec::new()), Zeroizing::new(b"\n".to_vec())])
    }

    /// Unlocks with the passwords of `password_file` (setting `key`) if one
    /// is given, else with the default ones; the error says what to do.
    pub fn unlock_with(
        &self,
        key: &str,
        password_file: Option<&str>,
    ) -> Result<Unlocked<'_>, String> {
        if !self.meta.0.contains_key("password") {
            return Err(format!(
                "NSS database \"{}\": key4.db is missing or has no password entry",
                self.spec
            ));
        }
        match password_file {
            Some(file) => {
                let passwords = password::read(key, file)?;
                self.unlock(&passwords).ok_or_else(|| {
                    format!(
                        "NSS database \"{}\": the password in {key} \"{file}\" is wrong (the database's password check fails)",
                        self.spec
                    )
                })
            }
            None => self.unlock_default().ok_or_else(|| {
                format!(
                    "NSS database \"{}\" has a password; put it in a file (mode 0400) and name that file with {key}",
                    self.spec
                )
            }),
        }
    }
}

impl Cert {
    fn from_object(object: &sqlite::Object) -> Option<Cert> {
        let der = object.get(attr::VALUE)?.to_vec();
        let (subject_raw, issuer_raw) = {
            let (_, parsed) = X509Certificate::from_der(&der).ok()?;
            (
                parsed.tbs_certificate.subject.as_raw().to_vec(),
                parsed.tbs_certificate.issuer.as_raw().to_vec(),
            )
        };
        Some(Cert {
            nickname: object
                .get(attr::LABEL)
                .map(|l| String::from_utf8_lossy(l).into_owned())
                .unwrap_or_default(),
            ckaid: object.get(attr::ID).unwrap_or_default().to_vec(),
            issuer: object.get(attr::ISSUER).unwrap_or_default().to_vec(),
            serial: object.get(attr::SERIAL).unwrap_or_default().to_vec(),
            der: CertificateDer::from(der),
            subject_raw,
            issuer_raw,
        })
    }

    fn parsed(&self) -> Option<X509Certificate<'_>> {
        X509Certificate::from_der(&self.der).ok().map(|(_, c)| c)
    }

    /// True for a CA certificate (basicConstraints CA).
    pub fn is_ca(&self) -> bool {
        self.parsed().is_some_and(|p| p.is_ca())
    }

    fn self_signed(&self) -> bool {
        self.subject_raw == self.issuer_raw
    }

    fn valid_now(&self) -> bool {
        self.parsed().is_some_and(|c| c.validity().is_valid())
    }
}

/// A database whose password is known: trust and keys can be read.
pub struct Unlocked<'a> {
    db: &'a Database,
    key: PasswordKey,
    /// The trust of each certificate (same order as the database's), for
    /// servers and for clients, read and checked once.
    levels: Vec<[Level; 2]>,
}

/// The trust of `cert` for `purpose` as stored. Trust whose integrity code
/// is missing or wrong counts as none (as NSS does).
fn read_trust(db: &Database, key: &PasswordKey, cert: &Cert, purpose: Purpose) -> Level {
    let mut level = Level::None;
    for object in &db.trust {
        if object.get(attr::ISSUER) != Some(&cert.issuer[..])
            || object.get(attr::SERIAL) != Some(&cert.serial[..])
        {
            continue;
        }
        let nss = object.ulong(attr::CLASS) == Some(CKO_NSS_TRUST);
        if nss {
            if let Some(hash) = object.get(attr::NSS_CERT_SHA1) {
                if hash
                    != aws_lc_rs::digest::digest(
                        &aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY,
                        &cert.der,
                    )
                    .as_ref()
                {
                    continue;
                }
            }
        }
        let a = match (nss, purpose) {
            (true, Purpose::Server) => attr::NSS_TRUST_SERVER,
            (true, Purpose::Client) => attr::NSS_TRUST_CLIENT,
            (false, Purpose::Server) => attr::TRUST_SERVER,
            (false, Purpose::Client) => attr::TRUST_CLIENT,
        };
        let Some(value) = object.get(a) else { continue };
        if db
            .meta
            .verify_public("sig_cert", object.id, a, value, key)
            .is_err()
        {
            crate::log::warning!(
                "NSS database \"{}\": the trust flags of \"{}\" fail their integrity check; ignored",
                db.spec,
                cert.nickname
            );
            continue;
        }
        let Ok(bytes) = <[u8; 4]>::try_from(value) else {
            continue;
        };
        level = match (nss, u32::from_be_bytes(bytes)) {
            (true, 0xce53_4351) | (false, 1) => Level::Peer,
            (true, 0xce53_4352) | (false, 2) => Level::Delegator,
            (true, 0xce53_435a) | (false, 3) => Level::Distrusted,
            _ => Level::None,
        };
    }
    level
}

impl<'a> Unlocked<'a> {
    fn new(db: &'a Database, key: PasswordKey) -> Unlocked<'a> {
        let levels = db
            .certs
            .iter()
            .map(|c| [Purpose::Server, Purpose::Client].map(|p| read_trust(db, &key, c, p)))
            .collect();
        Unlocked { db, key, levels }
    }
}

impl Unlocked<'_> {
    /// The trust of `cert` for `purpose`. Trust whose integrity code is
    /// missing or wrong counts as none (as NSS does).
    pub fn trust(&self, cert: &Cert, purpose: Purpose) -> Level {
        let column = match purpose {
            Purpose::Server => 0,
            Purpose::Client => 1,
        };
        match self.db.certs.iter().position(|c| std::ptr::eq(c, cert)) {
            Some(index) => self.levels[index][column],
            None => read_trust(self.db, &self.key, cert, purpose),
        }
    }

    /// The CA certificates trusted to issue `purpose` certificates, and the
    /// certificates trusted as themselves.
    pub fn trusted(
        &self,
        purpose: Purpose,
    ) -> (Vec<CertificateDer<'static>>, Vec<CertificateDer<'static>>) {
        let mut cas = Vec::new();
        let mut peers = Vec::new();
        for cert in &self.db.certs {
            match self.trust(cert, purpose) {
                Level::Delegator => cas.push(cert.der.clone()),
                // A certificate with its key here is this side's own, not
                // a peer's, whatever its trust flags say.
                Level::Peer if !self.db.has_key(cert) => peers.push(cert.der.clone()),
                _ => {}
            }
        }
        (cas, peers)
    }

    /// The issuers of `cert` in the database, nearest first (not the
    /// certificate itself), stopping at a self-signed one.
    fn issuers<'c>(&'c self, cert: &'c Cert) -> Vec<&'c Cert> {
        let mut out: Vec<&Cert> = Vec::new();
        let mut current = cert;
        while !current.self_signed() && out.len() < 8 {
            let candidates: Vec<&Cert> = self
                .db
                .certs
                .iter()
                .filter(|c| c.subject_raw == current.issuer_raw)
                .collect();
            let Some(next) = candidates
                .iter()
                .find(|c| c.valid_now())
                .or(candidates.first())
                .copied()
            else {
                break;
            };
            if out.iter().any(|c| c.der == next.der) || next.der == cert.der {
                break;
            }
            out.push(next);
            current = next;
        }
        out
    }

    fn chains_to_trusted(&self, cert: &Cert, purpose: Purpose) -> bool {
        match self.trust(cert, purpose) {
            Level::Peer | Level::Delegator => return true,
            Level::Distrusted => return false,
            Level::None => {}
        }
        self.issuers(cert)
            .iter()
            .any(|c| self.trust(c, purpose) == Level::Delegator)
    }

    /// The certificate and key for `nickname` (or, without one, the best
    /// end-entity certificate that has a key), by NSS's rule: valid now,
    /// chaining to a trusted CA and with a key.
    pub fn identity(&self, nickname: Option<&str>, purpose: Purpose) -> Result<Identity, String> {
        let spec = &self.db.spec;
        let candidates: Vec<&Cert> = match nickname {
            Some(name) => {
                // PCP 5 (NSS) also took the nickname with the token's name
                // in front.
                let name = name.strip_prefix(TOKEN_PREFIX).unwrap_or(name);
                let found: Vec<&Cert> = self
                    .db
                    .certs
                    .iter()
                    .filter(|c| c.nickname == name)
                    .collect();
                if found.is_empty() {
                    return Err(format!(
                        "NSS database \"{spec}\": certificate \"{name}\" not found (it has: {})",
                        self.db.nicknames()
                    ));
                }
                found
            }
            None => self
                .db
                .certs
                .iter()
                .filter(|c| self.db.has_key(c) && !c.is_ca())
                .collect(),
        };
        let Some(best) = candidates.iter().copied().max_by_key(|c| {
            let not_after = c
                .parsed()
                .map(|p| p.validity().not_after.timestamp())
                .unwrap_or(i64::MIN);
            (
                self.db.has_key(c),
                c.valid_now(),
                self.chains_to_trusted(c, purpose),
                not_after,
            )
        }) else {
            return Err(format!(
                "NSS database \"{spec}\": no certificate with a private key"
            ));
        };
        let name = &best.nickname;
        if !self.db.has_key(best) {
            return Err(format!(
                "NSS database \"{spec}\": certificate \"{name}\" has no private key in key4.db (import it with its key: pk12util -i FILE.p12 -d {spec})"
            ));
        }
        let parsed = best.parsed().ok_or_else(|| {
            format!("NSS database \"{spec}\": certificate \"{name}\" cannot be parsed")
        })?;
        if !best.valid_now() {
            let v = parsed.validity();
            return Err(format!(
                "NSS database \"{spec}\": certificate \"{name}\" is not valid now (valid from {} to {})",
                v.not_before, v.not_after
            ));
        }
        if let Some(alg) = weak_signature(&parsed) {
            return Err(format!(
                "NSS database \"{spec}\": certificate \"{name}\" is signed with {alg}, which TLS peers refuse; reissue it with SHA-256 (certutil -Z SHA256)"
            ));
        }
        let mut warnings = Vec::new();
        let role = match purpose {
            Purpose::Server => crate::trust::version1::Role::Server,
            Purpose::Client => crate::trust::version1::Role::Client,
        };
        if let Some(warning) = crate::trust::version1::warning(
            &best.der,
            &format!("NSS database \"{spec}\": certificate \"{name}\""),
            role,
        ) {
            warnings.push(warning);
        } else if purpose == Purpose::Server && !has_san(&parsed) && !parsed.is_ca() {
            // Host names matter only for a server's certificate.
            warnings.push(format!(
                "NSS database \"{spec}\": certificate \"{name}\" names its host only in the subject CN (no subjectAltName); clients that check host names will refuse it; reissue it with certutil -8 HOST,..."
            ));
        }
        if !self.chains_to_trusted(best, purpose) {
            warnings.push(format!(
                "NSS database \"{spec}\": certificate \"{name}\" does not chain to a CA trusted in the database; peers must trust it some other way"
            ));
        }
        let key_object = self
            .db
            .keys
            .iter()
            .find(|k| k.get(attr::ID) == Some(&best.ckaid[..]))
            .ok_or_else(|| {
                format!("NSS database \"{spec}\": certificate \"{name}\" has no private key")
            })?;
        let key = keys::pkcs8(key_object, &self.db.meta, &self.key).map_err(|e| {
            format!("NSS database \"{spec}\": the private key of \"{name}\" cannot be used: {e}")
        })?;
        let mut chain = vec![best.der.clone()];
        chain.extend(
            self.issuers(best)
                .into_iter()
                .filter(|c| !c.self_signed())
                .map(|c| c.der.clone()),
        );
        Ok(Identity {
            nickname: name.clone(),
            chain,
            key,
            warnings,
        })
    }
}

/// The name NSS gives its certificate database token, which PCP 5 accepted
/// in front of a nickname ("NSS Certificate DB:PCP Collector certificate").
pub(crate) const TOKEN_PREFIX: &str = "NSS Certificate DB:";

/// The name of a signature algorithm TLS peers refuse, if `cert` uses one.
fn weak_signature(cert: &X509Certificate<'_>) -> Option<&'static str> {
    match cert.signature_algorithm.algorithm.to_id_string().as_str() {
        "1.2.840.113549.1.1.5" => Some("SHA-1 (sha1WithRSAEncryption)"),
        "1.2.840.10045.4.1" => Some("SHA-1 (ecdsa-with-SHA1)"),
        "1.2.840.10040.4.3" => Some("SHA-1 (dsa-with-sha1)"),
        "1.2.840.113549.1.1.4" => Some("MD5 (md5WithRSAEncryption)"),
        _ => None,
    }
}

fn has_san(cert: &X509Certificate<'_>) -> bool {
    cert.subject_alternative_name().ok().flatten().is_some()
}

/// Entry point for fuzzing (`fuzz/`, target `nss_pbe`): the DER and PBE
/// parsers and the PKCS#8 rebuild on any input, with the empty password and
/// the global salt `salt` (20 bytes: SHA-1 password key, 48: SHA-384).
///
/// `value` is taken as the encrypted private value (CKA_VALUE) of an EC key
/// (P-256, or P-384 with a 48-byte salt, with a fixed public point) and
/// `mac` as its integrity entry, and the key goes through the same
/// [`keys::pkcs8`] as a stored one: decrypted, checked against `mac` over the
/// plaintext, rebuilt. `mac` is also checked over `value` as a clear
/// attribute. Returns (decrypted, rebuilt): whether `value` decrypted, and
/// whether a PKCS#8 key came out (which needs `mac` to be its valid code).
/// Never panics.
pub fn fuzz_decrypt(salt: &[u8], value: &[u8], mac: &[u8]) -> (bool, bool) {
    let key = PasswordKey::new(salt, b"");
    let _ = pbe::verify_mac(mac, &key, 1, attr::MODULUS, value);
    let (curve, size): (&[u8], usize) = if salt.len() == 48 {
        (&[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22], 48)
    } else {
        (
            &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07],
            32,
        )
    };
    let mut point = vec![0x5a; 2 * size + 1];
    point[0] = 4;
    let object = sqlite::Object {
        id: 1,
        attrs: HashMap::from([
            (attr::KEY_TYPE, 3u32.to_be_bytes().to_vec()), // CKK_EC
            (attr::EC_PARAMS, curve.to_vec()),
            (attr::NSS_DB, point),
            (attr::VALUE, value.to_vec()),
        ]),
    };
    let meta = Metadata(HashMap::from([(
        format!("sig_key_{:08x}_{:08x}", object.id, attr::VALUE),
        (mac.to_vec(), Vec::new()),
    )]));
    match keys::pkcs8(&object, &meta, &key) {
        Ok(_) => (true, true),
        Err(keys::KeyError::Decrypt(..)) => (false, false),
        Err(_) => (true, false),
    }
}
