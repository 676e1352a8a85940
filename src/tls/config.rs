//! Configuration: PCP's `tls.conf` (same keys and parsing rules as libpcp, so
//! a file that works with stock PCP means the same here) and the environment
//! variables the library honours. Every environment variable is read here,
//! through [`env`], with one rule: a variable set to the empty string is
//! the same as one that is not set.

#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

/// The settings of a `tls.conf` file. Each field is the raw value of the
/// key of the same name; unset keys are `None`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsConf {
    /// `tls-ca-cert-file`: PEM bundle of trusted CAs.
    pub ca_cert_file: Option<String>,
    /// `tls-ca-cert-dir`: directory of PEM files of trusted CAs.
    pub ca_cert_dir: Option<String>,
    /// `tls-cert-file`: the server's PEM certificate chain.
    pub cert_file: Option<String>,
    /// `tls-key-file`: the server's PEM private key.
    pub key_file: Option<String>,
    /// `tls-ciphers`: TLS 1.2 cipher names, colon separated.
    pub ciphers: Option<String>,
    /// `tls-ciphersuites`: TLS 1.3 suite names, colon separated.
    pub ciphersuites: Option<String>,
    /// `tls-client-cert-file`: the client's PEM certificate chain.
    pub client_cert_file: Option<String>,
    /// `tls-client-key-file`: the client's PEM private key.
    pub client_key_file: Option<String>,
    /// `tls-verify-clients`: "true" makes the server require client certificates.
    pub verify_clients: Option<String>,
    /// `tls-nssdb` (ours): an NSS `sql:` database to take certificates,
    /// trust and keys from.
    pub nssdb: Option<String>,
    /// `tls-cert-nickname` (ours): the nickname of the certificate to use
    /// from `tls-nssdb` (default "PCP Collector certificate" for servers).
    pub cert_nickname: Option<String>,
    /// `tls-nssdb-password-file` (ours): the file holding the database
    /// password (owned by the user of the process, mode 0400).
    pub nssdb_password_file: Option<String>,
    /// `tls-client-nssdb` (ours): the client's NSS database (else
    /// `$PCP_SECURE_DB_PATH` or `~/.pki/nssdb` when they hold one).
    pub client_nssdb: Option<String>,
    /// `tls-client-cert-nickname` (ours): the client certificate to present
    /// from the client's NSS database.
    pub client_cert_nickname: Option<String>,
    /// `tls-client-nssdb-password-file` (ours): the password file of the
    /// client's NSS database (owned by the user, mode 0400).
    pub client_nssdb_password_file: Option<String>,
    /// `tls-groups` (ours): the key-exchange groups, OpenSSL names in order
    /// of preference (default X25519MLKEM768:X25519:secp256r1:secp384r1).
    pub groups: Option<String>,
    /// `tls-fips` (ours): "true" requires FIPS mode (the FIPS build of the
    /// library, only FIPS-approved algorithms); refused by other builds.
    pub fips: Option<String>,
}

/// Keys of our own, which libpcp's parser ignores. They are matched
/// exactly, and their values run to the end of the line (a `#` starts a
/// comment; surrounding double quotes are removed), so that nicknames may
/// contain spaces. The server's and the client's are separate, as
/// `tls-cert-file` and `tls-client-cert-file` are, because pmcd and the
/// tools on a collector usually share one `tls.conf`.
const OWN_KEYS: [&str; 8] = [
    "tls-nssdb",
    "tls-cert-nickname",
    "tls-nssdb-password-file",
    "tls-client-nssdb",
    "tls-client-cert-nickname",
    "tls-client-nssdb-password-file",
    "tls-groups",
    "tls-fips",
];

/// The keys in the order libpcp tries them: a key written in the file matches
/// the first of these that it is a prefix of (libpcp's rule, kept on purpose).
const KEYS: [&str; 9] = [
    "tls-cert-file",
    "tls-key-file",
    "tls-ciphers",
    "tls-ciphersuites",
    "tls-ca-cert-file",
    "tls-ca-cert-dir",
    "tls-client-cert-file",
    "tls-client-key-file",
    "tls-verify-clients",
];

impl TlsConf {
    /// Parses the text of a `tls.conf`: `key = value` or `key: value`, `#`
    /// comments, values end at white space or `#`, empty values are ignored,
    /// later lines win, and a key may be abbreviated to a prefix.
    pub fn parse(text: &str) -> TlsConf {
        let mut conf = TlsConf::default();
        for line in text.lines() {
            let Some((key, rest)) = split_line(line) else {
                continue;
            };
            if let Some(index) = KEYS.iter().position(|k| k.starts_with(key)) {
                if let Some(value) = first_word(rest) {
                    *conf.field(index) = Some(value.to_string());
                }
            } else if let Some(index) = OWN_KEYS.iter().position(|k| *k == key) {
                if let Some(value) = whole_value(rest) {
                    *conf.own_field(index) = Some(value.to_string());
                }
            }
        }
        conf
    }

    /// Reads and parses the file at `path`. Bytes that are not UTF-8 (a
    /// Latin-1 comment, say) do not make the file unreadable: libpcp reads
    /// bytes too, and every key and path that matters is ASCII.
    pub fn load(path: &Path) -> std::io::Result<TlsConf> {
        std::fs::read(path).map(|bytes| TlsConf::parse(&String::from_utf8_lossy(&bytes)))
    }

    /// True when `tls-verify-clients` asks the server to require certificates.
    /// Stock pmcd accepts only "true"; "yes" and "1" are accepted too here.
    pub fn verify_clients(&self) -> bool {
        matches!(self.verify_clients.as_deref(), Some("true" | "yes" | "1"))
    }

    /// Whether `tls-fips` asks for FIPS mode: "true", "yes", "1" or "on"
    /// (any case) is yes, "false", "no", "0" or "off" (or no setting) is no;
    /// anything else is an error naming the setting.
    pub fn fips(&self) -> crate::error::Result<bool> {
        let Some(value) = self.fips.as_deref() else {
            return Ok(false);
        };
        match value.to_ascii_lowercase().as_str() {
            "true" | "yes" | "1" | "on" => Ok(true),
            "false" | "no" | "0" | "off" => Ok(false),
            _ => Err(crate::error::Error::Config(format!(
                "tls-fips = \"{value}\": not a yes or no (use true or false)"
            ))),
        }
    }

    fn field(&mut self, index: usize) -> &mut Option<String> {
        match index {
            0 => &mut self.cert_file,
            1 => &mut self.key_file,
            2 => &mut self.ciphers,
            3 => &mut self.ciphersuites,
            4 => &mut self.ca_cert_file,
            5 => &mut self.ca_cert_dir,
            6 => &mut self.client_cert_file,
            7 => &mut self.client_key_file,
            _ => &mut self.verify_clients,
        }
    }

    fn own_field(&mut self, index: usize) -> &mut Option<String> {
        match index {
            0 => &mut self.nssdb,
            1 => &mut self.cert_nickname,
            2 => &mut self.nssdb_password_file,
            3 => &mut self.client_nssdb,
            4 => &mut self.client_cert_nickname,
            5 => &mut self.client_nssdb_password_file,
            6 => &mut self.groups,
            _ => &mut self.fips,
        }
    }
}

/// The nickname used when `tls-cert-nickname` is not set (PCP's NSS-era
/// default for the collector's certificate).
pub const DEFAULT_NICKNAME: &str = "PCP Collector certificate";

/// Splits one line into a key and the text after its separator, or `None`
/// for comments, blank lines and lines without a separator.
fn split_line(line: &str) -> Option<(&str, &str)> {
    let line = line.trim_start();
    let key_end = line.find(|c: char| c == ':' || c == '=' || c == '#' || c.is_whitespace())?;
    let key = &line[..key_end];
    let rest = &line[key_end..];
    // The separator may follow white space, but a comment ends the line first.
    let sep = rest.find([':', '=', '#'])?;
    if rest.as_bytes()[sep] == b'#' {
        return None;
    }
    Some((key, &rest[sep + 1..]))
}

/// libpcp's value: up to the first white space or `#`; `None` when empty.
fn first_word(rest: &str) -> Option<&str> {
    let value = rest.trim_start();
    let end = value
        .find(|c: char| c == '#' || c.is_whitespace())
        .unwrap_or(value.len());
    Some(&value[..end]).filter(|v| !v.is_empty())
}

/// Our keys' value: the rest of the line before any `#`, trimmed, without
/// surrounding double quotes; `None` when empty.
fn whole_value(rest: &str) -> Option<&str> {
    let value = rest.split('#').next().unwrap_or("").trim();
    let value = value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value);
    Some(value).filter(|v| !v.is_empty())
}

/// The environment variables the library honours, each read by one
/// function below.
pub(crate) mod env {
    use std::ffi::OsString;
    use std::path::PathBuf;

    /// The one rule: unset or empty is `None`.
    fn var(name: &str) -> Option<OsString> {
        std::env::var_os(name).filter(|v| !v.is_empty())
    }

    /// `PCP_TLSCONF_PATH`: the tls.conf to use instead of pcp.conf's.
    pub(crate) fn tls_conf_path() -> Option<PathBuf> {
        var("PCP_TLSCONF_PATH").map(PathBuf::from)
    }
    /// `PCP_CONF`: where pcp.conf is (default `/etc/pcp.conf`).
    pub(crate) fn pcp_conf() -> PathBuf {
        var("PCP_CONF").map_or_else(|| "/etc/pcp.conf".into(), PathBuf::from)
    }
    /// `PCP_SECURE_HANDSHAKE_TIMEOUT`, `PMCD_REQUEST_TIMEOUT`: seconds.
    pub(crate) fn seconds(name: &str) -> Option<String> {
        var(name).map(|v| v.to_string_lossy().into_owned())
    }
    /// `PCP_SECURE_DEBUG`: debug messages, unless "0".
    pub(crate) fn debug() -> bool {
        var("PCP_SECURE_DEBUG").is_some_and(|v| v != "0")
    }
    /// `PCP_SECURE_DEBUG` as set (to warn about values other than 0 and 1).
    pub(crate) fn debug_value() -> Option<String> {
        var("PCP_SECURE_DEBUG").map(|v| v.to_string_lossy().into_owned())
    }
    /// `PCP_TLS_KEYLOG`: the file to append TLS secrets to (tests only).
    pub(crate) fn keylog() -> Option<PathBuf> {
        var("PCP_TLS_KEYLOG").map(PathBuf::from)
    }
    /// `PCP_SECURE_DB_PATH`: the user's trust-store and NSS directory.
    pub(crate) fn secure_db_path() -> Option<PathBuf> {
        var("PCP_SECURE_DB_PATH").map(PathBuf::from)
    }
    /// `HOME`.
    pub(crate) fn home() -> Option<PathBuf> {
        var("HOME").map(PathBuf::from)
    }
    /// `PCP_CONSOLE`: the terminal to ask on, or "none".
    pub(crate) fn console() -> Option<OsString> {
        var("PCP_CONSOLE")
    }
    /// `PCP_ALLOW_SERVER_SELF_CERT`, `PCP_ALLOW_BAD_CERT_DOMAIN`: set (to
    /// anything but the empty string) means yes.
    pub(crate) fn allowed(name: &str) -> bool {
        var(name).is_some()
    }
    /// `PCP_SECURE_SOCKETS` (libpcp's own; read here only to warn about
    /// values libpcp ignores).
    pub(crate) fn secure_sockets() -> Option<String> {
        var("PCP_SECURE_SOCKETS").map(|v| v.to_string_lossy().into_owned())
    }
    /// `PMPROXY_HOST`: connections go through pmproxy's relay.
    pub(crate) fn through_pmproxy() -> bool {
        var("PMPROXY_HOST").is_some()
    }
    /// `PCP_SECURE_METRICS`: "0" publishes no TLS metrics, "1" publishes
    /// them in every program (not only in those that serve TLS).
    pub(crate) fn metrics() -> Option<String> {
        var("PCP_SECURE_METRICS").map(|v| v.to_string_lossy().into_owned())
    }
}

/// Which programs publish TLS metrics (`PCP_SECURE_METRICS`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MetricsSetting {
    /// None ("0").
    Off,
    /// Those that serve TLS (unset: the default).
    Servers,
    /// Every program ("1").
    Everywhere,
}

/// The `PCP_SECURE_METRICS` setting; another value than "0" or "1" is
/// warned about once and means the default.
pub(crate) fn metrics_setting() -> MetricsSetting {
    match env::metrics().as_deref() {
        None => MetricsSetting::Servers,
        Some("0") => MetricsSetting::Off,
        Some("1") => MetricsSetting::Everywhere,
        Some(other) => {
            once("PCP_SECURE_METRICS", || {
                crate::log::warning!("PCP_SECURE_METRICS=\"{other}\" is neither 0 (no TLS metrics) nor 1 (TLS metrics in every program); the default (programs that serve TLS publish them) is used")
            });
            MetricsSetting::Servers
        }
    }
}

/// Where the `tls.conf` of this process is: `$PCP_TLSCONF_PATH`, else the
/// `PCP_TLSCONF_PATH` line of `$PCP_CONF` (default `/etc/pcp.conf`), as libpcp
/// finds it. `None` when neither names a file.
pub fn tls_conf_path() -> Option<PathBuf> {
    if let Some(path) = env::tls_conf_path() {
        return Some(path);
    }
    let pcp_conf = env::pcp_conf();
    let bytes = std::fs::read(pcp_conf).ok()?;
    String::from_utf8_lossy(&bytes)
        .lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("PCP_TLSCONF_PATH="))
        .map(|v| PathBuf::from(v.trim().trim_matches('"')))
}

/// This process's `tls.conf` as we parse it (all keys, ours included);
/// empty when there is none.
pub(crate) fn own_settings() -> TlsConf {
    tls_conf_path()
        .and_then(|p| TlsConf::load(&p).ok())
        .unwrap_or_default()
}

/// The server's settings: pmcd's parsed `tls.conf` (`from_libpcp`, the nine
/// keys libpcp reads) plus our own keys of the same file, which libpcp's
/// parser skips. A `tls-cert-file` that is only the placeholder put there
/// for `tls-nssdb` (so that pmcd sets TLS up) is dropped again.
pub(crate) fn server_settings(from_libpcp: TlsConf) -> TlsConf {
    let own = own_settings();
    let mut cert_file = from_libpcp.cert_file;
    if own.nssdb.is_some() && cert_file == own.nssdb {
        cert_file = None;
    }
    TlsConf {
        ca_cert_file: from_libpcp.ca_cert_file,
        ca_cert_dir: from_libpcp.ca_cert_dir,
        cert_file,
        key_file: from_libpcp.key_file,
        ciphers: from_libpcp.ciphers,
        ciphersuites: from_libpcp.ciphersuites,
        client_cert_file: from_libpcp.client_cert_file,
        client_key_file: from_libpcp.client_key_file,
        verify_clients: from_libpcp.verify_clients,
        ..own
    }
}

/// Which end of a connection we are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// A monitoring tool connecting to pmcd.
    Client,
    /// pmcd (or another server) accepting a client.
    Server,
}

/// How long a TLS handshake that its caller waits for (and any single
/// record read once a PDU has started) may take:
/// `$PCP_SECURE_HANDSHAKE_TIMEOUT` seconds, else 5 s for a server (pmcd's
/// own PDU time-out) and `$PMCD_REQUEST_TIMEOUT` or 10 s for a client
/// (libpcp's request timeout).
pub(crate) fn handshake_timeout(role: Role) -> Duration {
    timeout_var("PCP_SECURE_HANDSHAKE_TIMEOUT").unwrap_or_else(|| match role {
        Role::Server => Duration::from_secs(5),
        Role::Client => timeout_var("PMCD_REQUEST_TIMEOUT").unwrap_or(Duration::from_secs(10)),
    })
}

/// How long pmcd gives a client, from the secure-ack on, to finish a TLS
/// handshake that runs alongside pmcd's other clients (see `tls::accept`):
/// `$PCP_SECURE_HANDSHAKE_TIMEOUT` seconds, else [`ACCEPT_DEFAULT`].
pub(crate) fn accept_timeout() -> Duration {
    timeout_var("PCP_SECURE_HANDSHAKE_TIMEOUT").unwrap_or(ACCEPT_DEFAULT)
}

/// The default of [`accept_timeout`]: twice what an NSS-era client waited
/// for its handshake (10 s, in which a person may have had to answer its
/// trust question). A handshake in progress costs pmcd a descriptor and
/// some memory, never its attention, so a generous bound is cheap.
pub(crate) const ACCEPT_DEFAULT: Duration = Duration::from_secs(20);

/// The time-out in the environment variable `name`, if it is set to one. A
/// value that is not a number of seconds is logged as an error (once per
/// process) naming the variable, and the default applies.
fn timeout_var(name: &'static str) -> Option<Duration> {
    let text = env::seconds(name)?;
    let seconds = seconds(&text);
    if seconds.is_none() {
        once(name, || {
            crate::log::error!(
                "{name}=\"{text}\" is not a number of seconds (above 0, below 86400); the default is used"
            )
        });
    }
    seconds
}

/// A number of seconds in a time-out variable, if it is one.
fn seconds(text: &str) -> Option<Duration> {
    text.trim()
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s > 0.0 && *s < 86_400.0)
        .map(Duration::from_secs_f64)
}

/// Runs `log` (which logs a problem with the environment variable `name`)
/// the first time it is called for `name` in this process.
fn once(name: &'static str, log: impl FnOnce()) {
    static LOGGED: std::sync::Mutex<Vec<&'static str>> = std::sync::Mutex::new(Vec::new());
    let mut logged = LOGGED.lock().unwrap_or_else(|p| p.into_inner());
    if !logged.contains(&name) {
        logged.push(name);
        log();
    }
}

/// Warns, once, when libpcp's `PCP_SECURE_SOCKETS` holds a value libpcp
/// reads as "no TLS" although it looks meant otherwise (libpcp knows only
/// "enforce", "1", "relaxed" and the empty string, case-sensitive).
pub(crate) fn check_secure_sockets() {
    let Some(value) = env::secure_sockets() else {
        return;
    };
    if let Some(text) = secure_sockets_problem(&value) {
        once("PCP_SECURE_SOCKETS", || crate::log::warning!("{text}"));
    }
}

/// Warns, once, when `PCP_SECURE_DEBUG` is neither "0" nor "1" (it is
/// then taken as on, as documented: anything but "" or "0").
pub(crate) fn check_debug() {
    let Some(value) = env::debug_value() else {
        return;
    };
    if let Some(text) = debug_problem(&value) {
        once("PCP_SECURE_DEBUG", || crate::log::warning!("{text}"));
    }
}

/// What is wrong with a `PCP_SECURE_DEBUG` value, if anything.
fn debug_problem(value: &str) -> Option<String> {
    match value {
        "0" | "1" => None,
        other => Some(format!(
            "PCP_SECURE_DEBUG=\"{other}\" is neither 0 nor 1; it is taken as 1 (debug messages on)"
        )),
    }
}

/// What is wrong with a `PCP_SECURE_SOCKETS` value, if anything.
fn secure_sockets_problem(value: &str) -> Option<String> {
    match value {
        "enforce" | "1" | "relaxed" | "0" | "off" | "no" | "false" | "none" => None,
        other => Some(format!(
            "PCP_SECURE_SOCKETS=\"{other}\" is not a value libpcp knows, so this process's connections will not use TLS; use \"enforce\" (or \"1\") for TLS, or \"relaxed\" for TLS where pmcd offers it (the values are case-sensitive)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_values_other_than_0_and_1_are_named() {
        assert_eq!(debug_problem("0"), None);
        assert_eq!(debug_problem("1"), None);
        for odd in ["yes", "2", "true", "on"] {
            let text = debug_problem(odd).expect(odd);
            assert!(
                text.contains(&format!("\"{odd}\"")) && text.contains("taken as 1"),
                "{text}"
            );
        }
    }

    #[test]
    fn secure_sockets_values_libpcp_reads_as_off_are_named() {
        for fine in ["enforce", "1", "relaxed", "0", "off"] {
            assert_eq!(secure_sockets_problem(fine), None, "{fine}");
        }
        for meant_on in ["ENFORCE", "yes", "true", "Relaxed", "on"] {
            let text = secure_sockets_problem(meant_on).expect(meant_on);
            assert!(
                text.contains(meant_on) && text.contains("will not use TLS"),
                "{text}"
            );
        }
    }

    #[test]
    fn time_out_values_are_seconds() {
        assert_eq!(seconds(" 2.5 "), Some(Duration::from_millis(2500)));
        for bad in ["NaN", "inf", "0", "-1", "soon", "100000"] {
            assert_eq!(seconds(bad), None, "{bad}");
        }
    }

    #[test]
    fn parses_both_separators_comments_and_blank_values() {
        let conf = TlsConf::parse(
            "# comment\n\
             tls-cert-file = /a/cert.pem # trailing\n\
             \ttls-key-file: /a/key.pem\n\
             tls-ca-cert-file =\n\
             #tls-ciphers = X\n\
             tls-verify-clients = true\n",
        );
        assert_eq!(conf.cert_file.as_deref(), Some("/a/cert.pem"));
        assert_eq!(conf.key_file.as_deref(), Some("/a/key.pem"));
        assert_eq!(conf.ca_cert_file, None);
        assert_eq!(conf.ciphers, None);
        assert!(conf.verify_clients());
    }

    #[test]
    fn keys_may_be_prefixes_and_later_lines_win() {
        let conf = TlsConf::parse(
            "tls-ca = /first\ntls-ciphersuites = S\ntls-ca-cert-f = /second\ntls-ciphers = C\n",
        );
        // "tls-ca" is a prefix of tls-ca-cert-file, the first key it matches.
        assert_eq!(conf.ca_cert_file.as_deref(), Some("/second"));
        assert_eq!(conf.ciphersuites.as_deref(), Some("S"));
        assert_eq!(conf.ciphers.as_deref(), Some("C"));
    }

    #[test]
    fn lines_without_separator_or_with_unknown_keys_are_ignored() {
        let conf = TlsConf::parse("tls-cert-file /x\ntls-nss = sql:/etc/pcp/nssdb\nbogus = 1\n");
        assert_eq!(conf, TlsConf::default());
    }

    #[test]
    fn own_keys_are_exact_and_take_the_whole_line() {
        let conf = TlsConf::parse(
            "tls-nssdb = sql:/etc/pcp/nssdb\n\
             tls-cert-nickname = PCP Collector certificate # the guide's\n\
             tls-nssdb-password-file: \"/etc/pcp/nss pw\"\n",
        );
        assert_eq!(conf.nssdb.as_deref(), Some("sql:/etc/pcp/nssdb"));
        assert_eq!(
            conf.cert_nickname.as_deref(),
            Some("PCP Collector certificate")
        );
        assert_eq!(conf.nssdb_password_file.as_deref(), Some("/etc/pcp/nss pw"));
        assert_eq!(conf.client_nssdb, None);
        let client = TlsConf::parse(
            "tls-client-nssdb = sql:/home/me/.pki/nssdb\ntls-client-cert-nickname = me\ntls-client-nssdb-password-file = /p\n",
        );
        assert_eq!(
            client.client_nssdb.as_deref(),
            Some("sql:/home/me/.pki/nssdb")
        );
        assert_eq!(client.client_cert_nickname.as_deref(), Some("me"));
        assert_eq!(client.client_nssdb_password_file.as_deref(), Some("/p"));
        assert_eq!((client.nssdb, client.cert_nickname), (None, None));
        // Our keys do not disturb libpcp's prefix rule, nor it ours.
        assert_eq!(conf.cert_file, None);
        assert_eq!(
            TlsConf::parse("tls-cert = /c\n").cert_file.as_deref(),
            Some("/c")
        );
    }

    #[test]
    fn a_latin1_comment_does_not_make_the_file_unreadable() {
        let dir = std::env::temp_dir().join(format!("pcp-secure-conf-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("tls.conf");
        std::fs::write(
            &path,
            b"# caf\xe9 server\ntls-ca-cert-file = /etc/pcp/tls/ca.crt\n",
        )
        .unwrap();
        let conf = TlsConf::load(&path).unwrap();
        assert_eq!(conf.ca_cert_file.as_deref(), Some("/etc/pcp/tls/ca.crt"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn groups_and_fips_are_own_keys() {
        let conf =
            TlsConf::parse("tls-groups = X25519MLKEM768:P-256 # pq first\ntls-fips = TRUE\n");
        assert_eq!(conf.groups.as_deref(), Some("X25519MLKEM768:P-256"));
        assert!(conf.fips().unwrap());
        assert!(!TlsConf::parse("tls-fips = off").fips().unwrap());
        assert!(!TlsConf::default().fips().unwrap());
        let err = TlsConf::parse("tls-fips = maybe")
            .fips()
            .unwrap_err()
            .to_string();
        assert!(err.contains("tls-fips = \"maybe\""), "{err}");
        // Our keys are exact: no prefixes.
        assert_eq!(TlsConf::parse("tls-group = X25519").groups, None);
    }

    #[test]
    fn value_stops_at_white_space() {
        let conf = TlsConf::parse("tls-client-cert-file = /c d\n");
        assert_eq!(conf.client_cert_file.as_deref(), Some("/c"));
    }

    #[test]
    fn verify_clients_only_for_true_words() {
        assert!(!TlsConf::parse("tls-verify-clients = false").verify_clients());
        assert!(TlsConf::parse("tls-verify-clients = yes").verify_clients());
    }
}
