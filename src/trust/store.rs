//! The per-user store of server certificates a person accepted ("trust on
//! first use") and of CAs the person trusts: a PEM file a person can read
//! and edit, each entry a certificate preceded by a `# host:` line (an
//! accepted server, one per host and port) or a `# ca:` line (a trusted
//! CA, by label) and a `# sha256:` line.
//!
//! Servers are keyed as ssh's known_hosts keys them: `HOST` for pmcd's
//! port 44321, `HOST:PORT` (`[ADDRESS]:PORT` for IPv6) for any other, host
//! names compared without regard to case, so two pmcds on one host do not
//! collide. Entries of earlier versions (host only, whatever the port)
//! keep working: such an entry is the default port's, and on another port
//! without an entry of its own its very certificate is still accepted.
//!
//! Location: `$PCP_SECURE_DB_PATH/trusted-servers.pem`, else
//! `$HOME/.pcp/tls/trusted-servers.pem`. The directory is created 0700 and
//! the file written 0600, atomically (temporary file and rename) under a
//! lock that other processes honour too. A file that cannot be parsed is
//! reported and never rewritten.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

use crate::error::{Error, Result};
use crate::trust::certinfo::{self, CertInfo};

/// Name of the store file inside its directory.
pub(crate) const FILE_NAME: &str = "trusted-servers.pem";

/// pmcd's well-known port: its entries are keyed by the host alone.
pub const DEFAULT_PORT: u16 = 44321;

/// The key of a server's entry: `host` (without IPv6 brackets, in lower
/// case) for port 44321 or an unknown port, else `host:port`, or
/// `[address]:port` for an IPv6 address.
pub fn server_key(host: &str, port: Option<u16>) -> String {
    let trimmed = host.trim();
    let host = trimmed
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .filter(|h| !h.is_empty())
        .unwrap_or(trimmed)
        .to_ascii_lowercase();
    match port {
        None | Some(DEFAULT_PORT) => host,
        Some(port) if host.contains(':') => format!("[{host}]:{port}"),
        Some(port) => format!("{host}:{port}"),
    }
}

/// The key of an entry's `# host:` name as written (by hand, or by an
/// earlier version): the same rule as [`server_key`], so "Collector",
/// "collector:44321" and "collector" are one key.
pub fn entry_key(name: &str) -> String {
    let (host, port) = split_host_port(name);
    server_key(host, port)
}

/// `HOST`, `HOST:PORT`, `[ADDRESS]:PORT`, `[ADDRESS]` or a bare IPv6
/// address split into host and port (a port only where it is one).
pub fn split_host_port(text: &str) -> (&str, Option<u16>) {
    let text = text.trim();
    if let Some(rest) = text.strip_prefix('[') {
        return match rest.split_once(']') {
            Some((host, after)) if !host.is_empty() => match after.strip_prefix(':') {
                Some(port) => match port.parse() {
                    Ok(port) => (host, Some(port)),
                    Err(_) => (text, None),
                },
                None if after.is_empty() => (host, None),
                None => (text, None),
            },
            _ => (text, None),
        };
    }
    match text.split_once(':') {
        Some((host, port)) if !host.is_empty() && !port.contains(':') => {
            match port.parse::<u16>() {
                Ok(port) => (host, Some(port)),
                Err(_) => (text, None),
            }
        }
        _ => (text, None),
    }
}

/// One accepted certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The server's key (see [`server_key`]: `HOST` for port 44321,
    /// `HOST:PORT` otherwise); for a CA, its label.
    pub host: String,
    /// A trusted CA (its certificates' issuer) rather than one server's own.
    pub ca: bool,
    /// The certificate.
    pub der: CertificateDer<'static>,
    /// When it was saved (`YYYY-MM-DDTHH:MM:SSZ`), kept across rewrites.
    pub saved: String,
}

/// What the store says about a host's certificate.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Nothing is saved for the host.
    Unknown,
    /// This very certificate was accepted for the host.
    Accepted,
    /// Another certificate was accepted for the host: its SHA-256.
    Changed(String),
}

/// The trust store file.
#[derive(Clone, Debug)]
pub struct TrustStore {
    dir: PathBuf,
}

/// Serialises saves within the process; `flock` does it across processes.
static SAVE_LOCK: Mutex<()> = Mutex::new(());

impl TrustStore {
    /// The store of this user (see the module documentation), or `None`
    /// when neither `PCP_SECURE_DB_PATH` nor `HOME` is set.
    pub fn for_user() -> Option<TrustStore> {
        let dir = match crate::tls::config::env::secure_db_path() {
            Some(d) => d,
            None => crate::tls::config::env::home()?.join(".pcp").join("tls"),
        };
        Some(TrustStore { dir })
    }

    /// The store in `dir`.
    pub fn in_dir(dir: impl Into<PathBuf>) -> TrustStore {
        TrustStore { dir: dir.into() }
    }

    /// The store file's path.
    pub fn file(&self) -> PathBuf {
        self.dir.join(FILE_NAME)
    }

    /// Reads every entry. A missing file is an empty store; a file that
    /// cannot be read or parsed, or that another user could have written
    /// (see [`TrustStore::unsafe_because`]), is an error naming it, the
    /// reason and the fix.
    pub fn load(&self) -> Result<Vec<Entry>> {
        let path = self.file();
        if path.exists() {
            if let Some(why) = self.unsafe_because() {
                return Err(Error::Config(why));
            }
        }
        match fs::read_to_string(&path) {
            Ok(text) => parse(&text)
                .map_err(|why| Error::Config(format!("trust store \"{}\": {why}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(Error::Config(format!(
                "trust store \"{}\": cannot read ({e})",
                path.display()
            ))),
        }
    }

    /// Why the store cannot be trusted, as ssh judges its own files: the
    /// directory or the file belongs to another user (root excepted) or
    /// is writable by its group or by anyone. `None` when it is safe.
    pub fn unsafe_because(&self) -> Option<String> {
        let file = self.file();
        crate::trust::exposure::exposure(&[&self.dir, &file])
            .map(|e| e.describe(&format!("trust store \"{}\"", file.display())))
    }

    /// The entry saved for the server `host` on `port` (`None`: the port
    /// is not known, as through pmproxy's relay), the latest if several.
    pub fn find<'a>(entries: &'a [Entry], host: &str, port: Option<u16>) -> Option<&'a Entry> {
        let key = server_key(host, port);
        entries
            .iter()
            .rev()
            .find(|e| !e.ca && entry_key(&e.host) == key)
    }

    /// What the saved server entries say about `cert` for `host` on
    /// `port`. A server without an entry of its own on a port other than
    /// 44321 is accepted when the host's default-port entry (what earlier
    /// versions saved for any port) holds this very certificate; another
    /// certificate there is not "changed", only unknown: it may well be
    /// another pmcd's.
    pub(crate) fn verdict(
        entries: &[Entry],
        host: &str,
        port: Option<u16>,
        cert: &CertificateDer<'_>,
    ) -> Verdict {
        match Self::find(entries, host, port) {
            Some(e) if e.der.as_ref() == cert.as_ref() => Verdict::Accepted,
            Some(e) => Verdict::Changed(certinfo::sha256(&e.der)),
            None => match Self::find(entries, host, None) {
                Some(e) if e.der.as_ref() == cert.as_ref() => Verdict::Accepted,
                _ => Verdict::Unknown,
            },
        }
    }

    /// Saves `cert` as the accepted certificate of the server `host` on
    /// `port`, replacing any earlier one for it. Never rewrites a file it
    /// cannot parse.
    pub fn save(&self, host: &str, port: Option<u16>, cert: &CertificateDer<'_>) -> Result<()> {
        let key = server_key(host, port);
        self.save_entry(&key, cert, false)
    }

    /// Saves `cert` as a trusted CA labelled `label`, replacing any earlier
    /// CA of that label.
    pub fn save_ca(&self, label: &str, cert: &CertificateDer<'_>) -> Result<()> {
        self.save_entry(label, cert, true)
    }

    fn save_entry(&self, name: &str, cert: &CertificateDer<'_>, ca: bool) -> Result<()> {
        if name.is_empty() || name.chars().any(char::is_control) {
            return Err(Error::Config(format!(
                "trust store \"{}\": refusing the name {:?} (empty or with control characters)",
                self.file().display(),
                name
            )));
        }
        self.create_dir()?;
        self.update(|entries| {
            entries.retain(|e| {
                e.ca != ca
                    || if ca {
                        e.host != name
                    } else {
                        entry_key(&e.host) != name
                    }
            });
            entries.push(Entry {
                host: name.to_string(),
                ca,
                der: cert.clone().into_owned(),
                saved: utc_now(),
            });
            true
        })
        .map(|_| ())
    }

    /// Removes the entries of the server `host` on `port`; says whether
    /// there was one. A missing store is left missing; a file it cannot
    /// parse is never rewritten.
    pub fn remove(&self, host: &str, port: Option<u16>) -> Result<bool> {
        let key = server_key(host, port);
        self.remove_where(|e| !e.ca && entry_key(&e.host) == key)
    }

    /// Removes the CA labelled `label`; says whether there was one.
    pub fn remove_ca(&self, label: &str) -> Result<bool> {
        self.remove_where(|e| e.ca && e.host == label)
    }

    fn remove_where(&self, doomed: impl Fn(&Entry) -> bool) -> Result<bool> {
        if !self.dir.is_dir() {
            return Ok(false);
        }
        self.update(|entries| {
            let before = entries.len();
            entries.retain(|e| !doomed(e));
            entries.len() != before
        })
    }

    fn create_dir(&self) -> Result<()> {
        if self.dir.is_dir() {
            return Ok(());
        }
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(|e| {
                Error::Config(format!(
                    "trust store directory \"{}\": cannot create ({e})",
                    self.dir.display()
                ))
            })
    }

    /// Read-modify-write under both locks: loads the entries, lets `change`
    /// edit them and rewrites the file atomically when it returns true (it
    /// says whether it changed anything); returns what `change` returned.
    fn update(&self, change: impl FnOnce(&mut Vec<Entry>) -> bool) -> Result<bool> {
        let _in_process = SAVE_LOCK.lock().unwrap_or_else(|p| p.into_inner());
        let _across_processes = FileLock::acquire(&self.dir.join(".trusted-servers.lock"))?;
        let mut entries = self.load()?;
        if !change(&mut entries) {
            return Ok(false);
        }
        let text: String = entries.iter().map(render).collect::<Vec<_>>().join("\n");
        self.replace_file(text.as_bytes()).map(|()| true)
    }

    fn replace_file(&self, bytes: &[u8]) -> Result<()> {
        let path = self.file();
        let fail = |what: &str, e: std::io::Error| {
            Error::Config(format!("trust store \"{}\": {what} ({e})", path.display()))
        };
        let tmp = self
            .dir
            .join(format!(".{FILE_NAME}.{}.tmp", std::process::id()));
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| fail("cannot create a temporary file", e))?;
        let written = file.write_all(bytes).and_then(|()| file.sync_all());
        drop(file);
        if let Err(e) = written.and_then(|()| fs::rename(&tmp, &path)) {
            let _ = fs::remove_file(&tmp);
            return Err(fail("cannot write", e));
        }
        if let Ok(dir) = File::open(&self.dir) {
            let _ = dir.sync_all();
        }
        Ok(())
    }
}

/// An exclusive `flock` held until dropped, waited for at most a few seconds.
struct FileLock(File);

impl FileLock {
    fn acquire(path: &Path) -> Result<FileLock> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(|e| {
                Error::Config(format!(
                    "trust store lock \"{}\": cannot open ({e})",
                    path.display()
                ))
            })?;
        let start = Instant::now();
        loop {
            // SAFETY: flock takes no pointers; the descriptor is open.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
                return Ok(FileLock(file));
            }
            if start.elapsed() > Duration::from_secs(10) {
                return Err(Error::Config(format!(
                    "trust store lock \"{}\": still held by another process after 10 s",
                    path.display()
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        // SAFETY: flock takes no pointers; the descriptor is open.
        unsafe { libc::flock(self.0.as_raw_fd(), libc::LOCK_UN) };
    }
}

/// Parses the store text; the error says which line is wrong and why.
pub fn parse(text: &str) -> std::result::Result<Vec<Entry>, String> {
    let mut entries = Vec::new();
    let mut host: Option<(String, bool)> = None;
    let mut sha256: Option<String> = None;
    let mut saved: Option<String> = None;
    let mut pem: Option<(usize, String)> = None;
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        let trimmed = line.trim();
        if let Some((start, block)) = pem.as_mut() {
            block.push_str(trimmed);
            block.push('\n');
            if trimmed == "-----END CERTIFICATE-----" {
                let der = CertificateDer::from_pem_slice(block.as_bytes()).map_err(|e| {
                    format!(
                        "line {start}: broken PEM certificate ({})",
                        crate::tls::certs::pem_problem(&e)
                    )
                })?;
                let (host, ca) = host.take().ok_or_else(|| {
                    format!("line {start}: certificate without a \"# host:\" or \"# ca:\" line")
                })?;
                if let Some(expected) = sha256.take() {
                    let actual = certinfo::sha256(&der);
                    if !expected.eq_ignore_ascii_case(&actual) {
                        return Err(format!(
                            "line {start}: the sha256 line of host {host} ({expected}) does not match its certificate ({actual})"
                        ));
                    }
                }
                let saved = saved.take().unwrap_or_default();
                entries.push(Entry {
                    host,
                    ca,
                    der,
                    saved,
                });
                pem = None;
            }
            continue;
        }
        if trimmed.is_empty() {
            continue;
        }
        if let Some(comment) = trimmed.strip_prefix('#') {
            let comment = comment.trim();
            let named = if let Some(v) = comment.strip_prefix("host:") {
                Some((v.trim().to_string(), false))
            } else {
                comment
                    .strip_prefix("ca:")
                    .map(|v| (v.trim().to_string(), true))
            };
            if let Some(named) = named {
                if named.0.is_empty() || named.0.chars().any(char::is_control) {
                    return Err(format!(
                        "line {number}: an empty name or one with control characters"
                    ));
                }
                if host.is_some() {
                    return Err(format!(
                        "line {number}: a second \"# host:\" or \"# ca:\" line before the certificate"
                    ));
                }
                host = Some(named);
            } else if let Some(v) = comment.strip_prefix("sha256:") {
                sha256 = Some(v.trim().to_string());
            } else if let Some(v) = comment.strip_prefix("saved:") {
                saved = Some(v.trim().to_string());
            }
            continue;
        }
        if trimmed == "-----BEGIN CERTIFICATE-----" {
            pem = Some((number, format!("{trimmed}\n")));
            continue;
        }
        return Err(format!(
            "line {number}: unexpected text (expected \"# ...\" lines and PEM certificates)"
        ));
    }
    if let Some((start, _)) = pem {
        return Err(format!(
            "line {start}: PEM certificate without its END line"
        ));
    }
    Ok(entries)
}

/// One entry as text.
fn render(entry: &Entry) -> String {
    let info = CertInfo::of(&entry.der);
    let mut out = format!(
        "# {}: {}\n# sha256: {}\n# subject: {}\n# saved: {}\n-----BEGIN CERTIFICATE-----\n",
        if entry.ca { "ca" } else { "host" },
        entry.host,
        info.sha256,
        info.subject,
        if entry.saved.is_empty() {
            "unknown"
        } else {
            &entry.saved
        }
    );
    for chunk in base64(&entry.der).as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

fn base64(data: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(data)
}

/// The current time as `YYYY-MM-DDTHH:MM:SSZ`.
fn utc_now() -> String {
    utc_stamp(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    )
}

/// `secs` seconds after 1970-01-01T00:00:00Z as `YYYY-MM-DDTHH:MM:SSZ`
/// (a time past year 9999 is written as 9999-12-31T23:59:59Z).
fn utc_stamp(secs: u64) -> String {
    let t = i64::try_from(secs)
        .ok()
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .filter(|t| t.year() <= 9999)
        .unwrap_or(time::macros::datetime!(9999-12-31 23:59:59 UTC));
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn cert(bytes: &[u8]) -> CertificateDer<'static> {
        CertificateDer::from(bytes.to_vec())
    }

    #[test]
    fn base64_matches_the_standard() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn date_is_iso8601_utc() {
        // Fixed instants, so the check means the same in any year: the
        // epoch, leap days (2000 is a leap year, 2100 is not), the ends of
        // years and of 32-bit time, 9999's last second.
        for (secs, want) in [
            (0, "1970-01-01T00:00:00Z"),
            (951_782_400, "2000-02-29T00:00:00Z"),
            (1_709_164_799, "2024-02-28T23:59:59Z"),
            (1_709_251_199, "2024-02-29T23:59:59Z"),
            (1_798_761_599, "2026-12-31T23:59:59Z"),
            (2_147_483_648, "2038-01-19T03:14:08Z"),
            (4_107_456_000, "2100-02-28T00:00:00Z"),
            (4_107_542_400, "2100-03-01T00:00:00Z"),
            (253_402_300_799, "9999-12-31T23:59:59Z"),
        ] {
            assert_eq!(utc_stamp(secs), want, "{secs}");
        }
        // Now, whatever the date: the shape only.
        let now = utc_now();
        let b = now.as_bytes();
        assert_eq!(b.len(), 20, "{now}");
        for (i, c) in b.iter().enumerate() {
            let ok = match i {
                4 | 7 => *c == b'-',
                10 => *c == b'T',
                13 | 16 => *c == b':',
                19 => *c == b'Z',
                _ => c.is_ascii_digit(),
            };
            assert!(ok, "{now}");
        }
    }

    #[test]
    fn save_then_load_round_trips_with_modes_and_replaces_per_host() {
        let dir = tempfile::tempdir().unwrap();
        let store = TrustStore::in_dir(dir.path().join("sub"));
        store.save("a.example", None, &cert(b"first")).unwrap();
        store.save("b.example", None, &cert(b"second")).unwrap();
        store.save("a.example", None, &cert(b"third")).unwrap();
        let entries = store.load().unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(
            TrustStore::verdict(&entries, "a.example", None, &cert(b"third")),
            Verdict::Accepted
        );
        assert!(matches!(
            TrustStore::verdict(&entries, "a.example", None, &cert(b"first")),
            Verdict::Changed(_)
        ));
        assert_eq!(
            TrustStore::verdict(&entries, "c.example", None, &cert(b"first")),
            Verdict::Unknown
        );
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&store.file()), 0o600);
        assert_eq!(mode(&dir.path().join("sub")), 0o700);
        let text = fs::read_to_string(store.file()).unwrap();
        assert!(text.contains("# host: b.example\n# sha256: "), "{text}");
        // A rewrite keeps each entry's saved time.
        let edited = text.replacen(&entries[0].saved, "2001-02-03T04:05:06Z", 1);
        fs::write(store.file(), edited).unwrap();
        store.save("c.example", None, &cert(b"fourth")).unwrap();
        assert!(fs::read_to_string(store.file())
            .unwrap()
            .contains("# saved: 2001-02-03T04:05:06Z"));
    }

    #[test]
    fn ca_entries_round_trip_and_are_not_server_pins() {
        let dir = tempfile::tempdir().unwrap();
        let store = TrustStore::in_dir(dir.path());
        store.save_ca("site", &cert(b"ca")).unwrap();
        store.save("site", None, &cert(b"server")).unwrap();
        let entries = store.load().unwrap();
        assert_eq!(entries.len(), 2, "a CA and a host may share a name");
        assert!(entries.iter().any(|e| e.ca && e.der.as_ref() == b"ca"));
        assert_eq!(
            TrustStore::verdict(&entries, "site", None, &cert(b"server")),
            Verdict::Accepted
        );
        assert_eq!(
            TrustStore::verdict(&entries, "site", None, &cert(b"ca")),
            Verdict::Changed(certinfo::sha256(b"server")),
            "a CA entry is no server's"
        );
        assert!(fs::read_to_string(store.file())
            .unwrap()
            .contains("# ca: site\n"));
        assert!(store.remove("site", None).unwrap());
        assert_eq!(store.load().unwrap().len(), 1, "the CA stays");
        assert!(!store.remove_ca("other").unwrap());
        assert!(store.remove_ca("site").unwrap());
        assert!(store.load().unwrap().is_empty());
    }

    #[test]
    fn servers_are_keyed_by_host_and_port_without_regard_to_case() {
        assert_eq!(
            server_key("Collector.Example", Some(44321)),
            "collector.example"
        );
        assert_eq!(server_key("collector", Some(44322)), "collector:44322");
        assert_eq!(server_key("[::1]", Some(44322)), "[::1]:44322");
        assert_eq!(server_key("::1", None), "::1");
        assert_eq!(entry_key("COLLECTOR:44321"), "collector");
        assert_eq!(entry_key("[::1]:44321"), "::1");
        assert_eq!(entry_key("[::1]"), "::1");
        assert_eq!(entry_key("fe80::1"), "fe80::1");
        assert_eq!(entry_key("h:x"), "h:x");

        let dir = tempfile::tempdir().unwrap();
        let store = TrustStore::in_dir(dir.path());
        // Two pmcds on one host: neither replaces the other's entry.
        store
            .save("Collector", Some(44321), &cert(b"first"))
            .unwrap();
        store
            .save("collector", Some(44322), &cert(b"second"))
            .unwrap();
        let entries = store.load().unwrap();
        assert_eq!(entries.len(), 2);
        let verdict = |host, port, c: &[u8]| TrustStore::verdict(&entries, host, port, &cert(c));
        assert_eq!(
            verdict("COLLECTOR", Some(44321), b"first"),
            Verdict::Accepted
        );
        assert_eq!(
            verdict("collector", Some(44322), b"second"),
            Verdict::Accepted
        );
        assert!(matches!(
            verdict("collector", Some(44322), b"first"),
            Verdict::Changed(_)
        ));
        assert!(matches!(
            verdict("collector", Some(44321), b"second"),
            Verdict::Changed(_)
        ));
        // A third port: the default port's very certificate (an entry an
        // earlier version saved for any port) is accepted, another unknown.
        assert_eq!(
            verdict("collector", Some(5000), b"first"),
            Verdict::Accepted
        );
        assert_eq!(
            verdict("collector", Some(5000), b"second"),
            Verdict::Unknown
        );
        assert!(store.remove("collector", Some(44322)).unwrap());
        assert_eq!(store.load().unwrap().len(), 1);
        // Written by hand or by an earlier version, in another case.
        fs::write(
            store.file(),
            fs::read_to_string(store.file())
                .unwrap()
                .replace("# host: collector\n", "# host: COLLECTOR\n"),
        )
        .unwrap();
        store.save("collector", None, &cert(b"third")).unwrap();
        let entries = store.load().unwrap();
        assert_eq!(entries.len(), 1, "{entries:?}");
        assert_eq!(entries[0].host, "collector");
    }

    #[test]
    fn corrupt_store_is_an_error_and_is_never_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let store = TrustStore::in_dir(dir.path());
        fs::write(store.file(), "this is not a trust store\n").unwrap();
        let err = store.load().unwrap_err().to_string();
        assert!(err.contains("line 1") && err.contains(FILE_NAME), "{err}");
        assert!(store.save("h", None, &cert(b"x")).is_err());
        assert_eq!(
            fs::read_to_string(store.file()).unwrap(),
            "this is not a trust store\n"
        );
    }

    #[test]
    fn a_wrong_fingerprint_line_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let store = TrustStore::in_dir(dir.path());
        store.save("h", None, &cert(b"x")).unwrap();
        let text = fs::read_to_string(store.file()).unwrap();
        let tampered = text.replace(&certinfo::sha256(b"x"), &certinfo::sha256(b"y"));
        let err = parse(&tampered).unwrap_err();
        assert!(err.contains("does not match"), "{err}");
        assert!(parse("# host: h\n-----BEGIN CERTIFICATE-----\nAAAA\n")
            .unwrap_err()
            .contains("END"));
    }

    #[test]
    fn remove_drops_only_that_host_and_never_touches_a_corrupt_store() {
        let dir = tempfile::tempdir().unwrap();
        let missing = TrustStore::in_dir(dir.path().join("none"));
        assert!(!missing.remove("h", None).unwrap());
        assert!(!dir.path().join("none").exists());

        let store = TrustStore::in_dir(dir.path());
        store.save("a.example", None, &cert(b"first")).unwrap();
        store.save("b.example", None, &cert(b"second")).unwrap();
        assert!(store.remove("a.example", None).unwrap());
        assert!(!store.remove("a.example", None).unwrap());
        let entries = store.load().unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].host, "b.example");
        let mode = fs::metadata(store.file()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(store.remove("b.example", None).unwrap());
        assert!(store.load().unwrap().is_empty());

        fs::write(store.file(), "this is not a trust store\n").unwrap();
        let err = store.remove("b.example", None).unwrap_err().to_string();
        assert!(err.contains("line 1") && err.contains(FILE_NAME), "{err}");
        assert_eq!(
            fs::read_to_string(store.file()).unwrap(),
            "this is not a trust store\n"
        );
    }

    #[test]
    fn concurrent_saves_keep_every_host() {
        let dir = tempfile::tempdir().unwrap();
        let store = TrustStore::in_dir(dir.path());
        let threads: Vec<_> = (0..8)
            .map(|i| {
                let store = store.clone();
                std::thread::spawn(move || {
                    store
                        .save(&format!("h{i}"), None, &cert(format!("c{i}").as_bytes()))
                        .unwrap()
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(store.load().unwrap().len(), 8);
    }
}
