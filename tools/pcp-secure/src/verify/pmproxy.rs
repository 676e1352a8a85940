//! pmproxy: whether its HTTPS server would be on (PCP's own rule, from
//! tls.conf and pmproxy.conf), whether the installed pmproxy imports only
//! `SSL_*` functions the library defines (else its HTTPS stays on libpcp's
//! OpenSSL even with the library preloaded), its preload, and the running
//! pmproxies.
//!
//! The rule is `setup_secure_module` of PCP's `src/pmproxy/src/secure.c`
//! (the same in 6.0.3, 6.3.8 and 7.2.2):
//! - `secure.enabled` in `[pmproxy]` of pmproxy.conf that is a prefix of
//!   "false" (compared with `strncmp` over the value's length) turns HTTPS
//!   off;
//! - when tls.conf cannot be opened, a `secure.enabled` that is not a prefix
//!   of "true" turns it off too;
//! - the old pmproxy.conf keys `certificates`, `private_key`, `authority`,
//!   `cipher_list` and `cipher_suites` replace tls.conf's `tls-cert-file`,
//!   `tls-key-file`, `tls-ca-cert-file`, `tls-ciphers` and
//!   `tls-ciphersuites`;
//! - without a certificate file HTTPS is off; else `__pmSecureServerInit`
//!   builds the context (with the library: its rustls context, also from
//!   `tls-nssdb`), and HTTPS is off when that fails.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use pcp_secure::api::certs::ServerContext;
use pcp_secure::api::settings::TlsConf;

use super::*;

/// Where pmproxy is installed, below --root (Debian's PCP_BINADM_DIR, then
/// Red Hat's).
pub(super) const BINARY_CANDIDATES: &[&str] =
    &["usr/lib/pcp/bin/pmproxy", "usr/libexec/pcp/bin/pmproxy"];

/// pmproxy's configuration file below --root (`$PCP_SYSCONF_DIR/pmproxy/pmproxy.conf`).
pub(super) const DEFAULT_CONF: &str = "etc/pcp/pmproxy/pmproxy.conf";

/// The old pmproxy.conf TLS keys of `[pmproxy]` and the tls.conf keys they
/// replace.
const LEGACY_KEYS: &[(&str, &str)] = &[
    ("certificates", "tls-cert-file"),
    ("private_key", "tls-key-file"),
    ("authority", "tls-ca-cert-file"),
    ("cipher_list", "tls-ciphers"),
    ("cipher_suites", "tls-ciphersuites"),
];

/// What the pmproxy checks are given besides the shared [`Context`].
pub(super) struct Paths {
    /// The pmproxy executable (--pmproxy), if named.
    pub(super) binary: Option<PathBuf>,
    /// pmproxy.conf (--pmproxy-conf), if named.
    pub(super) conf: Option<PathBuf>,
}

/// The settings of an INI file as PCP reads pmproxy.conf (inih with PCP's
/// defaults: `;` and `#` comment lines, `;` inline comments after white
/// space, `=` or `:`, indented lines continuing the previous key, the last
/// value of a key winning).
#[derive(Debug, Default)]
pub(super) struct Ini {
    values: BTreeMap<(String, String), String>,
}

impl Ini {
    /// Parses `text`.
    pub(super) fn parse(text: &str) -> Ini {
        let mut ini = Ini::default();
        let mut section = String::new();
        let mut prev_name = String::new();
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        for raw in text.lines() {
            let start = raw.trim();
            if start.is_empty() || start.starts_with([';', '#']) {
                continue;
            }
            let indented = raw.starts_with(|c: char| c.is_whitespace());
            if !prev_name.is_empty() && indented {
                // A continuation: inih hands the line to the handler as the
                // key's value again, and PCP's handler keeps the last one.
                ini.values
                    .insert((section.clone(), prev_name.clone()), start.to_string());
                continue;
            }
            if let Some(rest) = start.strip_prefix('[') {
                let end = find_chars_or_comment(rest, &[']']);
                if rest[end..].starts_with(']') {
                    section = rest[..end].to_string();
                    prev_name.clear();
                }
                continue;
            }
            let end = find_chars_or_comment(start, &['=', ':']);
            if !start[end..].starts_with(['=', ':']) {
                continue;
            }
            let name = start[..end].trim_end().to_string();
            let value = &start[end + 1..];
            let value = &value[..find_chars_or_comment(value, &[])];
            prev_name.clone_from(&name);
            ini.values
                .insert((section.clone(), name), value.trim().to_string());
        }
        ini
    }

    /// The value of `key` in `[section]`.
    pub(super) fn get(&self, section: &str, key: &str) -> Option<&str> {
        self.values
            .get(&(section.to_string(), key.to_string()))
            .map(String::as_str)
    }
}

/// inih's `find_chars_or_comment`: the index of the first of `chars`, or of
/// a `;` after white space, or the end.
fn find_chars_or_comment(s: &str, chars: &[char]) -> usize {
    let mut was_space = false;
    for (i, c) in s.char_indices() {
        if chars.contains(&c) || (was_space && c == ';') {
            return i;
        }
        was_space = c.is_whitespace();
    }
    s.len()
}

/// Whether `value` is a prefix of `word`, as `strncmp(value, word,
/// strlen(value)) == 0` says (an empty value is a prefix of everything).
fn prefix_of(value: &str, word: &str) -> bool {
    word.starts_with(value)
}

/// Who would serve the HTTPS of a pmproxy executable with the library
/// preloaded: what the library itself concludes from the same file.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Imports {
    /// It does not link libssl: it has no HTTPS server.
    NotLinked,
    /// It imports only these `SSL_*` functions, all defined by the library:
    /// rustls serves its HTTPS.
    Ours(Vec<String>),
    /// It imports these `SSL_*` functions the library does not define: its
    /// HTTPS stays on libpcp's OpenSSL.
    Missing(Vec<String>),
}

/// The verdict for the ELF64 executable `data`; `None` when it is not one.
pub(super) fn imports(data: &[u8]) -> Option<Imports> {
    let ssl = match pcp_secure::api::ssl_use(data)? {
        pcp_secure::api::SslUse::NotLinked => return Some(Imports::NotLinked),
        pcp_secure::api::SslUse::Imports(ssl) => ssl,
    };
    let missing: Vec<String> = ssl
        .iter()
        .filter(|n| {
            !pcp_secure::api::OPENSSL_EXPORTS
                .iter()
                .any(|e| e.name == n.as_str())
        })
        .cloned()
        .collect();
    Some(if missing.is_empty() {
        Imports::Ours(ssl)
    } else {
        Imports::Missing(missing)
    })
}

/// The "pmproxy ..." checks. Nothing but one line when pmproxy is not
/// installed (and not named with --pmproxy).
pub(super) fn pmproxy(r: &mut Report, c: &Context) {
    let binary = match &c.pmproxy.binary {
        Some(path) => path.clone(),
        None => {
            let candidates: Vec<PathBuf> =
                BINARY_CANDIDATES.iter().map(|p| c.root.join(p)).collect();
            match candidates.iter().find(|p| p.exists()) {
                Some(found) => found.clone(),
                None => {
                    let looked: Vec<String> = candidates
                        .iter()
                        .map(|p| format!("\"{}\"", p.display()))
                        .collect();
                    r.ok(
                        "pmproxy",
                        format!(
                            "not installed (no {}): nothing to check",
                            looked.join(" or ")
                        ),
                    );
                    return;
                }
            }
        }
    };
    let imports = binary_check(r, &binary);
    let conf_path = c
        .pmproxy
        .conf
        .clone()
        .unwrap_or_else(|| c.root.join(DEFAULT_CONF));
    if let Some(ini) = conf_check(r, c, &conf_path) {
        https(r, c, &conf_path, &ini, imports.as_ref(), &binary);
    }
    let lib = libpath::find().ok();
    service_preload(
        r,
        &c.root,
        lib.as_deref(),
        &Preloaded {
            service: "pmproxy",
            without: "pmproxy's HTTPS uses libpcp's OpenSSL",
            stock: "pmproxy's HTTPS uses libpcp's OpenSSL",
            passed: "the PMPROXY* settings",
        },
    );
    if c.root == Path::new("/") {
        running(
            r,
            "pmproxy",
            "its HTTPS uses libpcp's OpenSSL",
            &running_pids("pmproxy"),
        );
    }
}

/// The "pmproxy binary" line: which `SSL_*` functions the executable
/// imports, against the ones the library defines.
fn binary_check(r: &mut Report, binary: &Path) -> Option<Imports> {
    const NAME: &str = "pmproxy binary";
    let shown = binary.display();
    let data = match fs::read(binary) {
        Ok(data) => data,
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied && !is_root() => {
            r.warn(
                NAME,
                format!("\"{shown}\" is not readable by this user ({e})"),
                "run `pcp-secure verify` as root to check it",
            );
            return None;
        }
        Err(e) => {
            r.fail(
                NAME,
                format!("\"{shown}\": cannot read ({e})"),
                "name the installed pmproxy executable with --pmproxy",
            );
            return None;
        }
    };
    let Some(verdict) = imports(&data) else {
        r.fail(
            NAME,
            format!("\"{shown}\" is not an ELF64 executable"),
            "name the installed pmproxy executable with --pmproxy",
        );
        return None;
    };
    match &verdict {
        Imports::Ours(names) => r.ok(
            NAME,
            format!(
                "\"{shown}\" imports only OpenSSL functions libpcp_secure defines ({}): with the library preloaded, rustls serves its HTTPS",
                names.join(", ")
            ),
        ),
        Imports::Missing(missing) => r.fail(
            NAME,
            format!(
                "\"{shown}\" imports {}, which libpcp_secure does not define: with the library preloaded, pmproxy's HTTPS stays on libpcp's OpenSSL",
                missing.join(", ")
            ),
            format!(
                "use the pmproxy of a PCP release the library supports (6.0.3, 6.3.8, 7.2.2; see MATRIX.md), or a libpcp_secure that defines {}",
                missing.join(", ")
            ),
        ),
        Imports::NotLinked => r.warn(
            NAME,
            format!("\"{shown}\" does not link libssl: this pmproxy was built without OpenSSL and serves no HTTPS"),
            "install a pmproxy built with OpenSSL (your distribution's pcp package)",
        ),
    }
    Some(verdict)
}

/// The "pmproxy.conf" line: whether it can be read, its `secure.enabled`
/// and any of the old TLS keys. `None` when it cannot be read here.
fn conf_check(r: &mut Report, c: &Context, path: &Path) -> Option<Ini> {
    const NAME: &str = "pmproxy.conf";
    let shown = path.display();
    let text = match fs::read(path) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) if e.kind() == io::ErrorKind::NotFound && c.pmproxy.conf.is_none() => {
            r.ok(
                NAME,
                format!("no \"{shown}\": pmproxy uses its defaults (HTTPS when tls.conf names a certificate)"),
            );
            return Some(Ini::default());
        }
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied && !is_root() => {
            r.warn(
                NAME,
                format!("\"{shown}\" is not readable by this user ({e})"),
                "run `pcp-secure verify` as root to check pmproxy's HTTPS settings",
            );
            return None;
        }
        Err(e) => {
            r.warn(
                NAME,
                format!("\"{shown}\" (--pmproxy-conf): cannot read ({e})"),
                "name pmproxy's configuration file (its -c, default /etc/pcp/pmproxy/pmproxy.conf) with --pmproxy-conf",
            );
            return None;
        }
    };
    let ini = Ini::parse(&text);
    let secure = match ini.get("pmproxy", "secure.enabled") {
        Some(v) => format!("sets secure.enabled = {v}"),
        None => "does not set secure.enabled".to_string(),
    };
    let legacy: Vec<(&str, &str)> = LEGACY_KEYS
        .iter()
        .copied()
        .filter(|(old, _)| ini.get("pmproxy", old).is_some())
        .collect();
    if legacy.is_empty() {
        r.ok(NAME, format!("\"{shown}\" {secure}"));
    } else {
        let olds: Vec<&str> = legacy.iter().map(|(old, _)| *old).collect();
        let moves: Vec<String> = legacy
            .iter()
            .map(|(old, new)| format!("{old} → {new}"))
            .collect();
        r.warn(
            NAME,
            format!(
                "\"{shown}\" {secure} and sets {} in [pmproxy]: pmproxy uses them instead of {}'s settings (and logs \"TLS configured in pmproxy.conf\")",
                olds.join(", "),
                c.conf_name
            ),
            format!(
                "move them to {} ({}) and remove them from \"{shown}\"",
                c.conf_name,
                moves.join(", ")
            ),
        );
    }
    Some(ini)
}

/// The "pmproxy HTTPS" line: PCP's `setup_secure_module` rule, and the
/// server context pmproxy would get.
fn https(
    r: &mut Report,
    c: &Context,
    conf_path: &Path,
    ini: &Ini,
    imports: Option<&Imports>,
    binary: &Path,
) {
    const NAME: &str = "pmproxy HTTPS";
    let shown = conf_path.display();
    let restart = "then systemctl restart pmproxy";
    let secure = ini.get("pmproxy", "secure.enabled");
    if let Some(v) = secure.filter(|v| prefix_of(v, "false")) {
        r.warn(
            NAME,
            format!("\"{shown}\" sets secure.enabled = {v} in [pmproxy]: pmproxy serves HTTP only (no HTTPS)"),
            format!("remove that line from \"{shown}\" (or set secure.enabled = true) for HTTPS; {restart}"),
        );
        return;
    }
    if imports == Some(&Imports::NotLinked) {
        r.warn(
            NAME,
            format!(
                "\"{}\" is built without OpenSSL: pmproxy serves HTTP only",
                binary.display()
            ),
            "install a pmproxy built with OpenSSL (your distribution's pcp package)",
        );
        return;
    }
    // libpcp's __pmGetSecureConfig answers -ENOENT when tls.conf cannot be
    // opened: pmproxy's "compat" mode.
    let tls_conf_missing = match c.conf_path.as_deref() {
        None => true,
        Some(p) => fs::metadata(p).is_err_and(|e| e.kind() == io::ErrorKind::NotFound),
    };
    if tls_conf_missing {
        if let Some(v) = secure.filter(|v| !prefix_of(v, "true")) {
            r.warn(
                NAME,
                format!("{} does not exist and \"{shown}\" sets secure.enabled = {v} (not true): pmproxy serves HTTP only", c.conf_name),
                format!("create {} with tls-cert-file and tls-key-file (the files pmcd uses); {restart}", c.conf_name),
            );
            return;
        }
    }
    let mut effective: TlsConf = c.conf.clone();
    let mut legacy = Vec::new();
    for (old, _) in LEGACY_KEYS {
        let Some(v) = ini.get("pmproxy", old) else {
            continue;
        };
        let field = match *old {
            "certificates" => &mut effective.cert_file,
            "private_key" => &mut effective.key_file,
            "authority" => &mut effective.ca_cert_file,
            "cipher_list" => &mut effective.ciphers,
            _ => &mut effective.ciphersuites,
        };
        *field = Some(v.to_string());
        legacy.push(*old);
    }
    let on_openssl = matches!(imports, Some(Imports::Missing(_)));
    let source = match (&effective.cert_file, &effective.nssdb) {
        (Some(file), _) if legacy.contains(&"certificates") => {
            format!("certificates \"{file}\" of \"{shown}\"")
        }
        (Some(file), _) => format!(
            "tls-cert-file \"{file}\" of {} (the certificate pmcd serves)",
            c.conf_name
        ),
        (None, Some(spec)) if !tls_conf_missing && !on_openssl => format!(
            "tls-nssdb \"{spec}\" of {} (the database pmcd serves from)",
            c.conf_name
        ),
        (None, Some(spec)) if !tls_conf_missing => {
            r.warn(
                NAME,
                format!(
                    "{} names only tls-nssdb \"{spec}\", no tls-cert-file: this pmproxy's HTTPS stays on libpcp's OpenSSL (see pmproxy binary), which cannot read an NSS database: pmproxy serves HTTP only",
                    c.conf_name
                ),
                format!("set tls-cert-file and tls-key-file in {} (PEM files), or use a pmproxy whose OpenSSL functions the library defines", c.conf_name),
            );
            return;
        }
        _ => {
            r.warn(
                NAME,
                format!(
                    "no tls-cert-file or tls-nssdb in {}: pmproxy serves HTTP only",
                    c.conf_name
                ),
                format!(
                    "set tls-cert-file and tls-key-file in {} (the certificate pmcd serves; `pcp-secure cert server HOST` makes them); {restart}",
                    c.conf_name
                ),
            );
            return;
        }
    };
    let where_fix = if legacy.is_empty() {
        c.conf_name.clone()
    } else {
        format!("{} (or the [pmproxy] TLS keys of \"{shown}\")", c.conf_name)
    };
    let built = if effective.cert_file.is_some() {
        let unreadable = [&effective.cert_file, &effective.key_file]
            .into_iter()
            .flatten()
            .find(|f| {
                fs::File::open(f).is_err_and(|e| e.kind() == io::ErrorKind::PermissionDenied)
            });
        match unreadable {
            Some(file) if !is_root() => {
                r.warn(
                    NAME,
                    format!("cannot tell: \"{file}\" is not readable by this user"),
                    "run `pcp-secure verify` as root to check pmproxy's HTTPS",
                );
                return;
            }
            // As the user pmproxy runs as (it drops to it, as pmcd does).
            _ => nss::as_user(&c.user, || ServerContext::build(&effective).map(drop))
                .unwrap_or_else(|_| ServerContext::build(&effective).map(drop)),
        }
    } else {
        match nss::as_user(&c.user, || ServerContext::build(&effective).map(drop)) {
            Ok(built) => built,
            Err(why) => {
                r.warn(
                    NAME,
                    format!(
                        "cannot tell: the NSS database is read as user {}, and {why}",
                        c.user.name
                    ),
                    "run `pcp-secure verify` as root (or as that user) to check pmproxy's HTTPS",
                );
                return;
            }
        }
    };
    match built {
        Ok(()) => {
            let served_by = if on_openssl {
                "libpcp's OpenSSL serves it, also with libpcp_secure preloaded (see pmproxy binary)"
            } else {
                "with libpcp_secure preloaded, rustls serves it"
            };
            r.ok(
                NAME,
                format!("pmproxy serves HTTPS (and HTTP) on its port with {source}; {served_by}"),
            );
        }
        Err(e) => r.fail(
            NAME,
            format!(
                "{e}{}: pmproxy would log this and serve HTTP only",
                if legacy.is_empty() {
                    String::new()
                } else {
                    let replaced: Vec<String> = LEGACY_KEYS
                        .iter()
                        .filter(|(old, _)| legacy.contains(old))
                        .map(|(old, new)| format!("{old} for {new}"))
                        .collect();
                    format!(" (with {} of \"{shown}\")", replaced.join(", "))
                }
            ),
            format!("correct the setting named here in {where_fix}; {restart}"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ini_reads_like_inih() {
        let ini = Ini::parse(
            "\u{feff}# comment\n[pmproxy]\n; other comment\nsecure.enabled = false ; inline\n\
             certificates: /a;b\nprivate_key = /k\n   /continued\n[redis]\nsecure.enabled = true\n\
             [pmproxy]\nmaxpending = 5\n",
        );
        assert_eq!(ini.get("pmproxy", "secure.enabled"), Some("false"));
        assert_eq!(ini.get("pmproxy", "certificates"), Some("/a;b"));
        assert_eq!(ini.get("pmproxy", "private_key"), Some("/continued"));
        assert_eq!(ini.get("redis", "secure.enabled"), Some("true"));
        assert_eq!(ini.get("pmproxy", "maxpending"), Some("5"));
        assert_eq!(ini.get("pmproxy", "nothing"), None);
        assert_eq!(
            Ini::parse("[pmproxy]\nsecure.enabled =\n").get("pmproxy", "secure.enabled"),
            Some("")
        );
    }

    #[test]
    fn prefixes_follow_strncmp() {
        assert!(prefix_of("false", "false"));
        assert!(prefix_of("f", "false"));
        assert!(prefix_of("", "false"));
        assert!(!prefix_of("no", "false"));
        assert!(!prefix_of("falsehood", "false"));
        assert!(!prefix_of("yes", "true"));
    }

    #[test]
    fn a_rust_executable_does_not_link_libssl() {
        let exe = fs::read(std::env::current_exe().unwrap()).unwrap();
        assert_eq!(imports(&exe), Some(Imports::NotLinked));
        assert_eq!(imports(b"not an executable"), None);
    }
}
