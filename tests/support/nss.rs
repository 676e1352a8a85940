//! NSS certificate databases for the end-to-end tests, built with the real
//! NSS tools (certutil, pk12util from libnss3-tools) the way PCP's NSS-era
//! guides do; certificates made with the openssl CLI as PCP's client
//! certificate guide does; and an NSS TLS client (tstclnt) reaching pmcd
//! through a proxy that speaks PCP's plaintext preamble for it.
//!
//! Facts about the tools that the helpers rely on (NSS 3.87):
//! - certutil -S picks a time-based serial number: two certificates made by
//!   one issuer within a second collide (SEC_ERROR_REUSED_ISSUER_AND_SERIAL),
//!   so every certificate here gets an explicit, process-unique `-m`.
//! - `-8 a,b` makes DNS names only (`-8 localhost,127.0.0.1` gives
//!   DNS:127.0.0.1, not an IP address); `--extSAN dns:x,ip:1.2.3.4` makes IP
//!   entries, and `-8` and `--extSAN` may be combined.
//! - certutil -S -x without `-2` makes a v3 CA certificate with no extensions
//!   at all (no basicConstraints): NSS and webpki accept it as a trust anchor,
//!   OpenSSL does not ("invalid CA certificate").
//! - Certificates sharing a nickname must share the subject.
//! - pk12util keeps the nickname of a certificate already in the database;
//!   otherwise it uses the PKCS#12 friendlyName, else the subject's CN.
//! - `certutil -N -d dbm:DIR` still works and makes cert8.db/key3.db/secmod.db.
//! - Adding a certificate with trust (-A) to a database with a password
//!   needs the password too (-f).
//! - Of a multi-line -f password file NSS uses the last line (or one
//!   prefixed "TOKEN NAME:"), not the first.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::{
    base_env, run_with_input, tempdir, write_file, Client, RawClient, Run, CLIENT_LIMIT,
    PDU_FLAG_SECURE, PDU_FLAG_SECURE_ACK, RAW_LIMIT,
};

pub const CERTUTIL: &str = "/usr/bin/certutil";
pub const PK12UTIL: &str = "/usr/bin/pk12util";
pub const TSTCLNT: &str = "/usr/bin/tstclnt";
pub const OPENSSL: &str = "/usr/bin/openssl";

/// The nickname PCP's collector guide gives the server certificate, and the
/// default of `tls-cert-nickname`.
pub const COLLECTOR_NICK: &str = "PCP Collector certificate";
/// The nickname of the self-signed CA in PCP's collector guide.
pub const LOCAL_CA_NICK: &str = "Local CA certificate";
/// The PKCS#12 export password used for every .p12 file made here.
pub const P12_PASS: &str = "p12-export-pw";

/// Panics with advice when an NSS tool, openssl or python3's sqlite3 module
/// is missing: no test here is skipped silently.
pub fn ensure_nss_tools() {
    super::ensure_deps();
    for tool in [CERTUTIL, PK12UTIL, TSTCLNT] {
        if !Path::new(tool).exists() {
            panic!("{tool} is missing: run scripts/install-deps (package libnss3-tools)");
        }
    }
    if !Path::new(OPENSSL).exists() {
        panic!("{OPENSSL} is missing: run scripts/install-deps (package openssl)");
    }
    let py = Command::new("python3")
        .args(["-c", "import sqlite3"])
        .stdin(Stdio::null())
        .output();
    match py {
        Ok(o) if o.status.success() => {}
        _ => panic!(
            "python3 with its sqlite3 module is needed to tamper with key4.db: run scripts/install-deps (package python3)"
        ),
    }
}

static SERIAL: AtomicU32 = AtomicU32::new(0);

/// A certificate serial number never handed out before in this process.
fn next_serial() -> String {
    // Start from a per-process value so that serials from different test
    // binaries rarely meet; uniqueness within a process is what matters.
    let _ = SERIAL.compare_exchange(
        0,
        1000 + (std::process::id() % 100_000) * 1000,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    SERIAL.fetch_add(1, Ordering::SeqCst).to_string()
}

/// Output of one tool run.
pub type ToolRun = Run;

/// Runs `program args` with `input` on stdin (or /dev/null) in the tests'
/// clean environment, killed after 120 s.
pub fn run_tool(program: &str, args: &[&str], input: Option<&[u8]>, cwd: Option<&Path>) -> ToolRun {
    let mut cmd = Command::new(program);
    base_env(&mut cmd);
    cmd.args(args);
    if let Some(d) = cwd {
        cmd.current_dir(d);
    }
    run_with_input(cmd, input, Duration::from_secs(120))
}

/// Writes `contents` to `path` with permission bits `mode` (e.g. 0o400).
pub fn write_secret(path: &Path, contents: &str, mode: u32) {
    let _ = std::fs::remove_file(path);
    write_file(path, contents);
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {mode:o} {}: {e}", path.display()));
}

/// The path as a &str (temporary paths are UTF-8 here).
pub fn s(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

// ---------------------------------------------------------------------------
// Certificates made by certutil

/// Key of a certificate made by certutil -S.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyType {
    /// RSA with this many bits (`-g`; 2048 is certutil's default).
    Rsa(u32),
    /// EC on this curve (`-k ec -q secp256r1`).
    Ec(&'static str),
}

/// What `certutil -S` makes.
#[derive(Clone, Debug)]
pub struct CertSpec {
    pub nick: String,
    pub subject: String,
    /// Nickname of the issuing CA (`-c`); `None` makes a self-signed
    /// certificate (`-x`).
    pub issuer: Option<String>,
    /// `-8` DNS names, comma-separated, as in PCP's guide.
    pub dns: Option<String>,
    /// `--extSAN` items ("dns:localhost,ip:127.0.0.1").
    pub ext_san: Option<String>,
    pub key: KeyType,
    /// `-Z` hash of the issuer's signature ("SHA1").
    pub hash: Option<String>,
    /// `-t` trust flags ("CT,,", "P,,", ",,").
    pub trust: String,
    /// `-v` months valid.
    pub months: i32,
    /// `-w` months to move the validity period (negative: into the past).
    pub warp: i32,
    /// `-2`: a basicConstraints CA:TRUE extension (answers certutil's three
    /// questions on stdin).
    pub ca_constraints: bool,
}

impl CertSpec {
    pub fn new(nick: &str, subject: &str) -> CertSpec {
        CertSpec {
            nick: nick.to_string(),
            subject: subject.to_string(),
            issuer: None,
            dns: None,
            ext_san: None,
            key: KeyType::Rsa(2048),
            hash: None,
            trust: ",,".to_string(),
            months: 120,
            warp: 0,
            ca_constraints: false,
        }
    }
    pub fn issuer(mut self, ca_nick: &str) -> Self {
        self.issuer = Some(ca_nick.to_string());
        self
    }
    pub fn dns(mut self, names: &str) -> Self {
        self.dns = Some(names.to_string());
        self
    }
    pub fn ext_san(mut self, items: &str) -> Self {
        self.ext_san = Some(items.to_string());
        self
    }
    pub fn key(mut self, key: KeyType) -> Self {
        self.key = key;
        self
    }
    pub fn hash(mut self, hash: &str) -> Self {
        self.hash = Some(hash.to_string());
        self
    }
    pub fn trust(mut self, trust: &str) -> Self {
        self.trust = trust.to_string();
        self
    }
    pub fn months(mut self, months: i32) -> Self {
        self.months = months;
        self
    }
    pub fn warp(mut self, months: i32) -> Self {
        self.warp = months;
        self
    }
    pub fn ca_constraints(mut self) -> Self {
        self.ca_constraints = true;
        self
    }
}

/// A certificate database made by certutil in its own temporary directory
/// (or in a directory given by the test), with the password file certutil
/// and pk12util are given and a noise file so that certutil never waits for
/// keyboard input.
pub struct NssDb {
    aux: TempDir,
    dir: PathBuf,
    scheme: &'static str,
    password: Option<String>,
}

impl NssDb {
    /// `certutil -d sql:DIR -N -f PWFILE`: an empty password as in the
    /// guides (`echo > /tmp/empty`) for `None`, else this password.
    pub fn new(password: Option<&str>) -> NssDb {
        let aux = tempdir("pcp-secure-nssdb.");
        let dir = aux.path().join("nssdb");
        NssDb::create(aux, dir, "sql", password)
    }

    /// The same with a Berkeley DB database (`dbm:`: cert8.db, key3.db).
    pub fn new_dbm(password: Option<&str>) -> NssDb {
        let aux = tempdir("pcp-secure-nssdb-dbm.");
        let dir = aux.path().join("nssdb");
        NssDb::create(aux, dir, "dbm", password)
    }

    /// An sql: database in `dir` (created 0755 as the guides do), e.g.
    /// `$HOME/.pki/nssdb`.
    pub fn new_in(dir: &Path, password: Option<&str>) -> NssDb {
        NssDb::create(
            tempdir("pcp-secure-nssdb-aux."),
            dir.to_path_buf(),
            "sql",
            password,
        )
    }

    fn create(aux: TempDir, dir: PathBuf, scheme: &'static str, password: Option<&str>) -> NssDb {
        ensure_nss_tools();
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let db = NssDb {
            aux,
            dir,
            scheme,
            password: password.map(str::to_string),
        };
        db.write_aux_files();
        db.certutil(&["-N", "-f", s(&db.password_file())]);
        let expect: &[&str] = if scheme == "sql" {
            &["cert9.db", "key4.db"]
        } else {
            &["cert8.db", "key3.db"]
        };
        for f in expect {
            assert!(
                db.dir.join(f).is_file(),
                "certutil -N -d {} did not make {f}",
                db.spec()
            );
        }
        db
    }

    fn write_aux_files(&self) {
        let pw = format!("{}\n", self.password.as_deref().unwrap_or(""));
        write_secret(&self.password_file(), &pw, 0o600);
        let mut noise = vec![0u8; 2048];
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut noise))
            .expect("read /dev/urandom");
        std::fs::write(self.aux.path().join("noise"), noise).expect("write noise file");
    }

    /// A copy of the database files in a new temporary directory, with the
    /// same password.
    pub fn copy(&self) -> NssDb {
        let aux = tempdir("pcp-secure-nssdb-copy.");
        let dir = aux.path().join("nssdb");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        for entry in std::fs::read_dir(&self.dir).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name();
            let n = name.to_string_lossy();
            if n.ends_with(".db") || n == "pkcs11.txt" {
                std::fs::copy(entry.path(), dir.join(&name)).unwrap();
            }
        }
        let db = NssDb {
            aux,
            dir,
            scheme: self.scheme,
            password: self.password.clone(),
        };
        db.write_aux_files();
        db
    }

    /// The database directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn dir_str(&self) -> &str {
        s(&self.dir)
    }

    /// "sql:/path" (or "dbm:/path"), as written after certutil -d.
    pub fn spec(&self) -> String {
        format!("{}:{}", self.scheme, self.dir.display())
    }

    /// The file certutil -f / pk12util -k reads the password from:
    /// "PASSWORD\n", or "\n" for an empty password.
    pub fn password_file(&self) -> PathBuf {
        self.aux.path().join("certutil-password")
    }

    /// A scratch directory next to the database (not inside it).
    pub fn aux_dir(&self) -> &Path {
        self.aux.path()
    }

    fn noise_file(&self) -> PathBuf {
        self.aux.path().join("noise")
    }

    /// Runs certutil -d SPEC ARGS, panicking with its output on failure.
    pub fn certutil(&self, args: &[&str]) -> String {
        self.certutil_with_input(args, None).assert_ok().text()
    }

    /// Runs certutil -d SPEC ARGS with `input` on stdin; returns the run.
    pub fn certutil_with_input(&self, args: &[&str], input: Option<&[u8]>) -> ToolRun {
        let spec = self.spec();
        let mut all = vec!["-d", spec.as_str()];
        all.extend_from_slice(args);
        run_tool(CERTUTIL, &all, input, Some(self.aux.path()))
    }

    /// Makes a certificate and its key with certutil -S.
    pub fn issue(&self, spec: &CertSpec) {
        let serial = next_serial();
        let months = spec.months.to_string();
        let warp = spec.warp.to_string();
        let noise = self.noise_file();
        let pw = self.password_file();
        let mut args: Vec<String> = vec!["-S".into()];
        match &spec.issuer {
            None => args.push("-x".into()),
            Some(ca) => args.extend(["-c".into(), ca.clone()]),
        }
        args.extend([
            "-n".into(),
            spec.nick.clone(),
            "-s".into(),
            spec.subject.clone(),
            "-t".into(),
            spec.trust.clone(),
            "-v".into(),
            months,
            "-m".into(),
            serial,
            "-z".into(),
            s(&noise).into(),
            "-f".into(),
            s(&pw).into(),
        ]);
        match spec.key {
            KeyType::Rsa(2048) => {}
            KeyType::Rsa(bits) => {
                args.extend(["-k".into(), "rsa".into(), "-g".into(), bits.to_string()])
            }
            KeyType::Ec(curve) => {
                args.extend(["-k".into(), "ec".into(), "-q".into(), curve.into()])
            }
        }
        if let Some(h) = &spec.hash {
            args.extend(["-Z".into(), h.clone()]);
        }
        if let Some(d) = &spec.dns {
            args.extend(["-8".into(), d.clone()]);
        }
        if let Some(x) = &spec.ext_san {
            args.extend(["--extSAN".into(), x.clone()]);
        }
        if spec.warp != 0 {
            args.extend(["-w".into(), warp]);
        }
        let input: Option<&[u8]> = if spec.ca_constraints {
            args.push("-2".into());
            // Is this a CA certificate? y; path length: none; critical? y
            Some(b"y\n\ny\n")
        } else {
            None
        };
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let run = self.certutil_with_input(&refs, input);
        assert!(run.success(), "certutil -S failed\n{}", run.describe());
        assert!(
            self.trust_of(&spec.nick).is_some(),
            "certutil -S did not add {:?}\n{}\n{}",
            spec.nick,
            run.describe(),
            self.list()
        );
    }

    /// PCP's collector guide, first command: a self-signed CA.
    pub fn self_signed_ca(&self, nick: &str, subject: &str, trust: &str) {
        self.issue(&CertSpec::new(nick, subject).trust(trust));
    }

    /// A certificate `nick` for `subject` issued by `ca` whose private key
    /// is NOT in this database: the key is made in a scratch database
    /// (certutil -R), the CA here signs the request (certutil -C) and the
    /// certificate is imported (certutil -A).
    pub fn issue_keyless(&self, nick: &str, subject: &str, ca: &str, ext_san: &str, trust: &str) {
        let scratch = NssDb::new(None);
        let req = self.aux.path().join(format!("req-{}.der", next_serial()));
        let crt = self
            .aux
            .path()
            .join(format!("keyless-{}.der", next_serial()));
        scratch.certutil(&[
            "-R",
            "-s",
            subject,
            "-o",
            s(&req),
            "-z",
            s(&scratch.noise_file()),
            "-f",
            s(&scratch.password_file()),
        ]);
        let serial = next_serial();
        self.certutil(&[
            "-C",
            "-c",
            ca,
            "-i",
            s(&req),
            "-o",
            s(&crt),
            "-m",
            &serial,
            "-v",
            "120",
            "--extSAN",
            ext_san,
            "-f",
            s(&self.password_file()),
        ]);
        self.certutil(&[
            "-A",
            "-n",
            nick,
            "-t",
            trust,
            "-i",
            s(&crt),
            "-f",
            s(&self.password_file()),
        ]);
    }

    /// `certutil -L -n NICK -a`: the PEM text of every certificate with
    /// this nickname.
    pub fn export_pem(&self, nick: &str) -> String {
        let pem = self.certutil_with_input(&["-L", "-n", nick, "-a"], None);
        assert!(
            pem.success(),
            "export of {nick:?} failed\n{}",
            pem.describe()
        );
        assert!(
            pem.stdout.contains("-----BEGIN CERTIFICATE-----"),
            "no PEM for {nick:?}\n{}",
            pem.describe()
        );
        pem.stdout
    }

    /// Writes the PEM of `nick` to a file in the scratch directory and
    /// returns its path (the guide's /tmp/ca-certificate.asc).
    pub fn export_pem_file(&self, nick: &str) -> PathBuf {
        let path = self
            .aux
            .path()
            .join(format!("{}.asc", nick.replace([' ', '/'], "_")));
        write_file(&path, &self.export_pem(nick));
        path
    }

    /// Guide 000, monitor step 3: `certutil -A -n NICK -t TRUST -a -i FILE`.
    pub fn import_pem(&self, nick: &str, trust: &str, pem: &Path) {
        let pw = self.password_file();
        self.certutil(&[
            "-A",
            "-n",
            nick,
            "-t",
            trust,
            "-a",
            "-i",
            s(pem),
            "-f",
            s(&pw),
        ]);
    }

    /// Guide 001: `certutil -A -t TRUST -n NICK -i FILE` (PEM or DER).
    pub fn import_cert(&self, nick: &str, trust: &str, file: &Path) {
        let pw = self.password_file();
        self.certutil(&["-A", "-t", trust, "-n", nick, "-i", s(file), "-f", s(&pw)]);
    }

    /// Exports `nick` from `from` and imports it here with `trust`.
    pub fn import_from(&self, from: &NssDb, nick: &str, trust: &str) {
        let pem = from.export_pem_file(nick);
        self.import_pem(nick, trust, &pem);
    }

    /// `pk12util -i FILE -d SPEC -W PASS -k PWFILE`; returns its output
    /// (which says which nickname it used when it had to choose one).
    pub fn pk12_import(&self, p12: &Path, pass: &str) -> String {
        let spec = self.spec();
        let pw = self.password_file();
        run_tool(
            PK12UTIL,
            &["-i", s(p12), "-d", &spec, "-W", pass, "-k", s(&pw)],
            None,
            Some(self.aux.path()),
        )
        .assert_ok()
        .text()
    }

    /// `pk12util -o FILE -n NICK`: exports a certificate with its key.
    pub fn pk12_export(&self, nick: &str, out: &Path, pass: &str) -> ToolRun {
        let spec = self.spec();
        let pw = self.password_file();
        run_tool(
            PK12UTIL,
            &[
                "-o",
                s(out),
                "-n",
                nick,
                "-d",
                &spec,
                "-W",
                pass,
                "-k",
                s(&pw),
            ],
            None,
            Some(self.aux.path()),
        )
    }

    /// `certutil -L`.
    pub fn list(&self) -> String {
        self.certutil(&["-L"])
    }

    /// `certutil -K` (private keys).
    pub fn keys(&self) -> String {
        self.certutil(&["-K", "-f", s(&self.password_file())])
    }

    /// Trust column of every `certutil -L` row named `nick` (e.g.
    /// ["CTu,u,u"]), or None when there is none.
    pub fn trust_of(&self, nick: &str) -> Option<Vec<String>> {
        let list = self.certutil_with_input(&["-L"], None);
        if !list.success() {
            return None;
        }
        let rows: Vec<String> = list
            .stdout
            .lines()
            .filter_map(|l| {
                let l = l.trim_end();
                let trust = l.split_whitespace().last()?;
                let name = l[..l.len() - trust.len()].trim_end();
                (name == nick).then(|| trust.to_string())
            })
            .collect();
        (!rows.is_empty()).then_some(rows)
    }

    /// The `openssl x509 -text` of the first certificate named `nick`, names
    /// printed as "DC = example, CN = x" (`-nameopt oneline`: OpenSSL 3.0
    /// prints that by default, 3.2 and later "DC=example, CN=x").
    pub fn cert_text(&self, nick: &str) -> String {
        let pem = self.export_pem_file(nick);
        run_tool(
            OPENSSL,
            &[
                "x509",
                "-noout",
                "-text",
                "-nameopt",
                "oneline",
                "-in",
                s(&pem),
            ],
            None,
            None,
        )
        .assert_ok()
        .stdout
        .clone()
    }

    /// Flips one bit of the integrity MAC (metaData row
    /// `sig_key_<key id>_<attribute>`) of the secret part of the private key
    /// of every certificate named `nick`: CKA_PRIVATE_EXPONENT (0x123) for
    /// RSA, CKA_VALUE (0x11) for EC. Returns the rows changed.
    pub fn tamper_key_integrity(&self, nick: &str) -> Vec<String> {
        assert_eq!(
            self.scheme, "sql",
            "only sql: databases have integrity rows"
        );
        const SCRIPT: &str = r#"
import sqlite3, sys
d, nick = sys.argv[1], sys.argv[2].encode()
pub = sqlite3.connect("file:%s/cert9.db?mode=ro" % d, uri=True)
ids = [r[0] for r in pub.execute(
    "SELECT a102 FROM nssPublic WHERE a0 = ? AND a3 = ?", (b"\0\0\0\1", nick))]
if not ids:
    sys.exit("no certificate named %r in cert9.db" % nick)
key = sqlite3.connect("%s/key4.db" % d)
done = []
for cka_id in ids:
    for (obj, ktype) in key.execute(
            "SELECT id, a100 FROM nssPrivate WHERE a0 = ? AND a102 = ?",
            (b"\0\0\0\3", cka_id)):
        attr = {0: 0x123, 3: 0x11}[int.from_bytes(ktype, "big")]
        row = "sig_key_%08x_%08x" % (obj, attr)
        got = key.execute("SELECT item1 FROM metaData WHERE id = ?", (row,)).fetchone()
        if got is None:
            sys.exit("no integrity row %s" % row)
        mac = bytearray(got[0])
        mac[-1] ^= 0x01
        key.execute("UPDATE metaData SET item1 = ? WHERE id = ?", (bytes(mac), row))
        done.append(row)
key.commit()
if not done:
    sys.exit("no private key for %r in key4.db" % nick)
print("\n".join(done))
"#;
        let run = run_tool("python3", &["-c", SCRIPT, self.dir_str(), nick], None, None);
        assert!(run.success(), "tampering failed\n{}", run.describe());
        run.stdout.lines().map(str::to_string).collect()
    }
}

/// PCP's collector guide (000): an empty-password (or `password`) database
/// with the self-signed "Local CA certificate" (CT,,) and the "PCP
/// Collector certificate" (P,,) it issues, with `-8 localhost,127.0.0.1`
/// exactly as the guide writes host names (so 127.0.0.1 is a DNS name).
pub fn guide000_db(password: Option<&str>) -> NssDb {
    let db = NssDb::new(password);
    db.self_signed_ca(
        LOCAL_CA_NICK,
        "cn=Local PCP Installation,dc=example",
        "CT,,",
    );
    db.issue(
        &CertSpec::new(COLLECTOR_NICK, "cn=PCP Collector")
            .issuer(LOCAL_CA_NICK)
            .dns("localhost,127.0.0.1")
            .trust("P,,"),
    );
    db
}

/// Guide 000's collector certificate as PEM files, as an NSS pmcd serves
/// it: (a chain file holding the "PCP Collector certificate" then the
/// extension-less "Local CA certificate", the collector's key unencrypted,
/// the CA alone as the guide's monitor step 2 exports it).
pub fn guide000_pem(db: &NssDb) -> (PathBuf, PathBuf, PathBuf) {
    let dir = db.aux_dir().to_path_buf();
    let p12 = dir.join("collector.p12");
    let export = db.pk12_export(COLLECTOR_NICK, &p12, P12_PASS);
    assert!(export.success(), "{}", export.describe());
    let key = dir.join("collector.key");
    let pass = format!("pass:{P12_PASS}");
    let args = [
        "pkcs12",
        "-in",
        s(&p12),
        "-nocerts",
        "-nodes",
        "-passin",
        &pass,
        "-out",
        s(&key),
    ];
    let run = run_tool(OPENSSL, &args, None, None);
    assert!(run.success(), "{}", run.describe());
    let chain = dir.join("chain.pem");
    write_file(
        &chain,
        &format!(
            "{}{}",
            db.export_pem(COLLECTOR_NICK),
            db.export_pem(LOCAL_CA_NICK)
        ),
    );
    (chain, key, db.export_pem_file(LOCAL_CA_NICK))
}

/// Guide 000's monitor side: a fresh empty-password database holding the
/// collector's CA exported as ASCII and imported with "CT,,".
pub fn client_db_trusting(server: &NssDb, ca_nick: &str) -> NssDb {
    let client = NssDb::new(None);
    client.import_from(server, ca_nick, "CT,,");
    client
}

/// A preloaded pminfo in enforce mode whose NSS database is `db`
/// (PCP_SECURE_DB_PATH = the database directory) and whose tls.conf is
/// `conf`.
pub fn nss_client(conf: &str, db: &NssDb) -> Client {
    Client::new(conf)
        .ours()
        .secure("enforce")
        .env("PCP_SECURE_DB_PATH", db.dir_str())
}

// ---------------------------------------------------------------------------
// Certificates made by openssl, as in PCP's client certificate guide (001)

/// A directory of keys and certificates made with the openssl CLI.
pub struct OpensslPki {
    dir: TempDir,
}

impl OpensslPki {
    pub fn new() -> OpensslPki {
        ensure_nss_tools();
        OpensslPki {
            dir: tempdir("pcp-secure-openssl-pki."),
        }
    }

    fn openssl(&self, args: &[&str]) {
        let run = run_tool(OPENSSL, args, None, Some(self.dir.path()));
        assert!(run.success(), "openssl failed\n{}", run.describe());
    }

    pub fn path(&self, name: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        assert!(p.is_file(), "{} was not made", p.display());
        p
    }

    /// `openssl genrsa -out NAME.key 2048` and
    /// `openssl req -new -x509 -extensions v3_ca -key NAME.key -out NAME.crt -days 3650`.
    pub fn ca(&self, name: &str, cn: &str) {
        let key = format!("{name}.key");
        let crt = format!("{name}.crt");
        self.openssl(&["genrsa", "-out", &key, "2048"]);
        self.openssl(&[
            "req",
            "-new",
            "-x509",
            "-extensions",
            "v3_ca",
            "-key",
            &key,
            "-out",
            &crt,
            "-days",
            "3650",
            "-subj",
            &format!("/CN={cn}"),
        ]);
    }

    /// The guide's leaf: genrsa 2048, a CSR for CN=`cn`, signed by `ca` with
    /// `-days 500 -sha256`, then `openssl pkcs12 -export -out
    /// NAME_pkcs12.key -inkey NAME.key -in NAME.crt -certfile CA.crt` with
    /// [`P12_PASS`]. `ext` is the text of an `-extfile` (e.g.
    /// "subjectAltName = DNS:localhost") for `openssl x509 -req`.
    ///
    /// Without `ext` the leaf is an X.509 version 1 certificate, as the
    /// guide's `openssl x509 -req` makes them with OpenSSL up to 3.1
    /// (Debian 12's 3.0). From 3.2 on (Debian 13's 3.5) the same command
    /// makes version 3 certificates, so the version 1 leaf is signed with
    /// `openssl req -x509 -x509v1 -CA` under a configuration without
    /// extensions instead, which makes version 1 with 3.0 and with 3.5.
    pub fn leaf(&self, name: &str, ca: &str, cn: &str, ext: Option<&str>) {
        let key = format!("{name}.key");
        let csr = format!("{name}.csr");
        let crt = format!("{name}.crt");
        self.openssl(&["genrsa", "-out", &key, "2048"]);
        self.openssl(&[
            "req",
            "-new",
            "-key",
            &key,
            "-out",
            &csr,
            "-subj",
            &format!("/CN={cn}"),
        ]);
        let ca_crt = format!("{ca}.crt");
        let ca_key = format!("{ca}.key");
        let ext_file = format!("{name}.ext");
        if let Some(ext) = ext {
            write_file(&self.dir.path().join(&ext_file), &format!("{ext}\n"));
            self.openssl(&[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                &ca_crt,
                "-CAkey",
                &ca_key,
                "-CAcreateserial",
                "-out",
                &crt,
                "-days",
                "500",
                "-sha256",
                "-extfile",
                &ext_file,
            ]);
        } else {
            let conf = format!("{name}.v1.cnf");
            write_file(
                &self.dir.path().join(&conf),
                "[req]\ndistinguished_name = dn\n[dn]\n",
            );
            self.openssl(&[
                "req", "-config", &conf, "-x509", "-x509v1", "-in", &csr, "-CA", &ca_crt, "-CAkey",
                &ca_key, "-out", &crt, "-days", "500", "-sha256",
            ]);
        }
        let p12 = format!("{name}_pkcs12.key");
        let pass = format!("pass:{P12_PASS}");
        self.openssl(&[
            "pkcs12",
            "-export",
            "-out",
            &p12,
            "-inkey",
            &key,
            "-in",
            &crt,
            "-certfile",
            &ca_crt,
            "-passout",
            &pass,
        ]);
    }

    /// Guide 001's PKI: rootCA (CN=myCA), pmserver (CN=pmserver) and
    /// pmclient (CN=pmclient), each exported to NAME_pkcs12.key; the leaves
    /// get `server_ext` / `client_ext` as -extfile (None: version 1
    /// certificates, as the guide's commands make them with OpenSSL 3.0).
    pub fn guide001_with(server_ext: Option<&str>, client_ext: Option<&str>) -> OpensslPki {
        let pki = OpensslPki::new();
        pki.ca("rootCA", "myCA");
        pki.leaf("pmserver", "rootCA", "pmserver", server_ext);
        pki.leaf("pmclient", "rootCA", "pmclient", client_ext);
        pki
    }

    /// Guide 001's PKI with version 3 leaves: the server certificate names
    /// localhost and 127.0.0.1, the client certificate is for client auth.
    pub fn guide001() -> OpensslPki {
        OpensslPki::guide001_with(Some(SERVER_EXT), Some(CLIENT_EXT))
    }

    /// Guide 001's PKI as its commands make it with OpenSSL 3.0: version 1
    /// leaves, no subjectAltName (on every OpenSSL version, see
    /// [`OpensslPki::leaf`]).
    pub fn guide001_exact() -> OpensslPki {
        OpensslPki::guide001_with(None, None)
    }
}

/// -extfile text for server certificates made by [`OpensslPki`].
pub const SERVER_EXT: &str = "subjectAltName = DNS:localhost,IP:127.0.0.1";
/// -extfile text for client certificates made by [`OpensslPki`].
pub const CLIENT_EXT: &str = "extendedKeyUsage = clientAuth";

impl Default for OpensslPki {
    fn default() -> Self {
        OpensslPki::new()
    }
}

/// Guide 001's collector database: empty password, "Root CA" CT,,, the
/// server certificate as "pmserver_cert" P,, and then its PKCS#12 (key).
pub fn guide001_server_db(pki: &OpensslPki) -> NssDb {
    let db = NssDb::new(None);
    db.import_cert("Root CA", "CT,,", &pki.path("rootCA.crt"));
    db.import_cert("pmserver_cert", "P,,", &pki.path("pmserver.crt"));
    db.pk12_import(&pki.path("pmserver_pkcs12.key"), P12_PASS);
    db
}

/// Guide 001's monitor database: "Root CA" CT,, and, when `with_cert`, the
/// client certificate as "pmclient_cert" P,, followed by its PKCS#12.
pub fn guide001_client_db(pki: &OpensslPki, password: Option<&str>, with_cert: bool) -> NssDb {
    let db = NssDb::new(password);
    db.import_cert("Root CA", "CT,,", &pki.path("rootCA.crt"));
    if with_cert {
        db.import_cert("pmclient_cert", "P,,", &pki.path("pmclient.crt"));
        db.pk12_import(&pki.path("pmclient_pkcs12.key"), P12_PASS);
    }
    db
}

// ---------------------------------------------------------------------------
// NSS's tstclnt behind a PCP preamble proxy

/// A loopback proxy that, for every connection, does PCP's plaintext
/// opening with pmcd itself (reads the challenge, which must offer TLS,
/// sends a version credential with SECURE|SECURE_ACK, reads the secure ack,
/// which must be 0) and then pipes raw bytes both ways, so that a plain TLS
/// client such as tstclnt handshakes with pmcd's TLS layer.
pub struct PreambleProxy {
    port: u16,
    stop: Arc<AtomicBool>,
    sockets: Arc<Mutex<Vec<TcpStream>>>,
    failures: Arc<Mutex<Vec<String>>>,
    thread: Option<JoinHandle<()>>,
}

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = vec![0u8; 65536];
    loop {
        match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

impl PreambleProxy {
    pub fn start(target: SocketAddr) -> PreambleProxy {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("proxy bind");
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let sockets: Arc<Mutex<Vec<TcpStream>>> = Arc::new(Mutex::new(Vec::new()));
        let failures: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(Vec::new()));
        let thread = {
            let (stop, sockets, failures) = (stop.clone(), sockets.clone(), failures.clone());
            thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let client = match listener.accept() {
                        Ok((c, _)) => c,
                        Err(_) => {
                            thread::sleep(Duration::from_millis(10));
                            continue;
                        }
                    };
                    client.set_nonblocking(false).unwrap();
                    let mut raw = match RawClient::connect_timeout(target, RAW_LIMIT) {
                        Ok(r) => r,
                        Err(e) => {
                            failures
                                .lock()
                                .unwrap()
                                .push(format!("connect to pmcd: {e}"));
                            continue;
                        }
                    };
                    let opened = raw.read_challenge().and_then(|features| {
                        if features & PDU_FLAG_SECURE == 0 {
                            return Err(format!("pmcd offers no TLS (features {features:#06x})"));
                        }
                        raw.send_creds(PDU_FLAG_SECURE | PDU_FLAG_SECURE_ACK)?;
                        match raw.read_ack()? {
                            0 => Ok(()),
                            st => Err(format!("secure ack status {st}")),
                        }
                    });
                    if let Err(e) = opened {
                        failures.lock().unwrap().push(e);
                        let _ = client.shutdown(Shutdown::Both);
                        continue;
                    }
                    let server = raw.stream;
                    server.set_read_timeout(None).unwrap();
                    server.set_write_timeout(None).unwrap();
                    {
                        let mut all = sockets.lock().unwrap();
                        all.push(client.try_clone().unwrap());
                        all.push(server.try_clone().unwrap());
                    }
                    let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                    thread::spawn(move || pipe(c2, s2));
                    thread::spawn(move || pipe(server, client));
                }
            })
        };
        PreambleProxy {
            port,
            stop,
            sockets,
            failures,
            thread: Some(thread),
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// What went wrong in PCP's opening on any connection so far.
    pub fn failures(&self) -> Vec<String> {
        self.failures.lock().unwrap().clone()
    }
}

impl Drop for PreambleProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        for s in self.sockets.lock().unwrap().iter() {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

/// Result of one tstclnt run.
pub struct TstRun {
    pub cmd: String,
    pub status: Option<ExitStatus>,
    /// What tstclnt wrote on stdout: the server's decrypted reply.
    pub reply: Vec<u8>,
    pub stderr: String,
    /// True when a complete PCP PDU arrived (tstclnt is then stopped: it
    /// would otherwise wait for the server to close).
    pub got_pdu: bool,
    pub timed_out: bool,
}

impl TstRun {
    pub fn describe(&self) -> String {
        format!(
            "command: {}\nstatus: {:?}{}\nreply ({} bytes): {:02x?}\n--- stderr ---\n{}--------------",
            self.cmd,
            self.status,
            if self.timed_out {
                " (KILLED: no reply within the time limit)"
            } else {
                ""
            },
            self.reply.len(),
            &self.reply[..self.reply.len().min(64)],
            self.stderr
        )
    }

    /// "TLS 1.3" / "TLS 1.2" from tstclnt's -v report ("SSL version 3.4").
    pub fn tls_version(&self) -> Option<&'static str> {
        if self.stderr.contains("SSL version 3.4") {
            Some("TLS 1.3")
        } else if self.stderr.contains("SSL version 3.3") {
            Some("TLS 1.2")
        } else {
            None
        }
    }

    /// Asserts that the handshake completed with `version` and a PCP PDU
    /// came back over TLS.
    pub fn assert_pdu_over(&self, version: &str) {
        assert!(self.got_pdu, "no PCP reply over TLS\n{}", self.describe());
        assert_eq!(self.tls_version(), Some(version), "{}", self.describe());
    }

    /// Asserts that no reply came back and tstclnt ended by itself with a
    /// failure status.
    pub fn assert_refused(&self) {
        assert!(!self.got_pdu, "a reply came back\n{}", self.describe());
        assert!(!self.timed_out, "tstclnt hung\n{}", self.describe());
        assert!(
            !self.status.map(|s| s.success()).unwrap_or(false),
            "tstclnt succeeded\n{}",
            self.describe()
        );
    }
}

/// A PDU_PMNS_CHILD request for "pmcd" (the same request
/// tests/peers/openssl_client.py sends); any well-formed PDU answers it.
fn pcp_request() -> Vec<u8> {
    let name = b"pmcd";
    let mut p = Vec::new();
    p.extend_from_slice(&24u32.to_be_bytes());
    p.extend_from_slice(&0x7009u32.to_be_bytes());
    p.extend_from_slice(&std::process::id().to_be_bytes());
    p.extend_from_slice(&1u32.to_be_bytes());
    p.extend_from_slice(&(name.len() as u32).to_be_bytes());
    p.extend_from_slice(name);
    p
}

fn complete_pdu(b: &[u8]) -> bool {
    if b.len() < 12 {
        return false;
    }
    let len = u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
    let ty = u32::from_be_bytes([b[4], b[5], b[6], b[7]]);
    (12..=1 << 20).contains(&len) && (0x7000..=0x7020).contains(&ty) && b.len() >= len
}

/// Runs `tstclnt -4 -h HOST -p PORT -d SPEC -V VERSIONS -v -A REQUEST
/// EXTRA...` (PORT is a [`PreambleProxy`]); the request is one PCP PDU.
/// tstclnt verifies the server with the database's trust unless `-o` is
/// given; `-n NICK` presents a client certificate (`-W FILE` for the
/// database password).
pub fn tstclnt(port: u16, host: &str, db: &NssDb, versions: &str, extra: &[&str]) -> TstRun {
    let req = db
        .aux_dir()
        .join(format!("pcp-request-{}.bin", next_serial()));
    std::fs::write(&req, pcp_request()).unwrap();
    let spec = db.spec();
    let port_s = port.to_string();
    let mut args = vec![
        "-4", "-h", host, "-p", &port_s, "-d", &spec, "-V", versions, "-v", "-A",
    ];
    args.push(s(&req));
    args.extend_from_slice(extra);
    let desc = format!("{TSTCLNT} {}", args.join(" "));
    let mut cmd = Command::new(TSTCLNT);
    base_env(&mut cmd);
    cmd.args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {desc}: {e}"));
    let reply = Arc::new(Mutex::new(Vec::new()));
    let mut out = child.stdout.take().unwrap();
    let t_out = {
        let reply = reply.clone();
        thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = out.read(&mut buf) {
                if n == 0 {
                    break;
                }
                reply.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        })
    };
    let mut err = child.stderr.take().unwrap();
    let t_err = thread::spawn(move || {
        let mut b = Vec::new();
        let _ = err.read_to_end(&mut b);
        b
    });
    let start = Instant::now();
    let mut timed_out = false;
    let mut got_pdu = false;
    let status = loop {
        if complete_pdu(&reply.lock().unwrap()) {
            got_pdu = true;
            let _ = child.kill();
            break child.wait().ok();
        }
        match child.try_wait() {
            Ok(Some(st)) => break Some(st),
            Ok(None) if start.elapsed() > CLIENT_LIMIT => {
                timed_out = true;
                let _ = child.kill();
                break child.wait().ok();
            }
            Ok(None) => thread::sleep(Duration::from_millis(20)),
            Err(e) => panic!("waiting for {desc}: {e}"),
        }
    };
    let _ = t_out.join();
    let stderr = String::from_utf8_lossy(&t_err.join().unwrap_or_default()).into_owned();
    let reply = reply.lock().unwrap().clone();
    if !got_pdu {
        got_pdu = complete_pdu(&reply);
    }
    TstRun {
        cmd: desc,
        status,
        reply,
        stderr,
        got_pdu,
        timed_out,
    }
}
