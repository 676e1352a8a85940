//! The daemons' options files (`$PCP_PMCDOPTIONS_PATH`,
//! `$PCP_PMPROXYOPTIONS_PATH`): PCP 5's NSS options (`-C`, `-M`, `-P`, as
//! PCP's guides put them there), which pmcd 6 and pmproxy 6 reject
//! ("invalid option -- 'C'") so that they do not start. Their settings
//! belong in tls.conf now (pmcd and pmproxy read the same one).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use pcp_secure::api::settings::TlsConf;

use super::{is_root, Context, Report};

/// One daemon whose options file is checked.
pub(super) struct Daemon {
    /// "pmcd" or "pmproxy".
    name: &'static str,
    /// The check's name.
    check: &'static str,
    /// The command-line option naming the file.
    flag: &'static str,
    /// The environment variable and pcp.conf key naming the file.
    variable: &'static str,
    /// Where the file is when nothing names it.
    default_path: &'static str,
    /// Its short options that take a value (PCP 5 and 6; `C`, `M` and `P`
    /// only in PCP 5).
    with_value: &'static str,
    /// Its long options that take a value (PCP 5 and 6).
    long_with_value: &'static [&'static str],
}

/// pmcd (PCP 5.3's options and 6.0's).
pub(super) const PMCD: Daemon = Daemon {
    name: "pmcd",
    check: "pmcd options",
    flag: "--pmcd-options",
    variable: "PCP_PMCDOPTIONS_PATH",
    default_path: "/etc/pcp/pmcd/pmcd.options",
    with_value: "cCDHiLlMNnPpqsTtUx",
    long_with_value: &[
        "certdb",
        "certname",
        "passfile",
        "config",
        "debug",
        "hostname",
        "interface",
        "log",
        "namespace",
        "port",
        "socket",
        "trace",
        "uniqnames",
        "username",
    ],
};

/// pmproxy (PCP 5.3's options and 6.0's).
pub(super) const PMPROXY: Daemon = Daemon {
    name: "pmproxy",
    check: "pmproxy options",
    flag: "--pmproxy-options",
    variable: "PCP_PMPROXYOPTIONS_PATH",
    default_path: "/etc/pcp/pmproxy/pmproxy.options",
    with_value: "cCDhilLMpPrsTUx",
    long_with_value: &[
        "certdb",
        "certname",
        "passfile",
        "config",
        "debug",
        "interface",
        "log",
        "port",
        "socket",
        "redisport",
        "redishost",
        "username",
    ],
};

/// One PCP 5 NSS option found in the file.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Found {
    /// Its line (from 1).
    pub(super) line: usize,
    /// The option letter: 'C', 'M' or 'P'.
    pub(super) letter: char,
    /// As written ("-C sql:/etc/pcp/nssdb", "-Csql:...", "--certdb=...").
    pub(super) written: String,
    /// Its value, without surrounding quotes.
    pub(super) value: String,
    /// Whether it follows a `#` on its line (which the daemon still
    /// receives).
    pub(super) after_hash: bool,
}

/// The PCP 5 NSS options in the options text of `daemon`, read as its
/// start script does: only lines that begin with `-` (the others, comments included,
/// are dropped), words split at white space (quotes are not interpreted,
/// a `#` within a line does not end it), options as getopt takes them
/// (`-C VALUE`, `-CVALUE`, `-QC VALUE`, `--certdb=VALUE`, `--certdb VALUE`).
pub(super) fn parse(text: &str, daemon: &Daemon) -> Vec<Found> {
    let mut found = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if !line.starts_with('-') {
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        let mut after_hash = false;
        let mut i = 0;
        while i < words.len() {
            let word = words[i];
            i += 1;
            if word.starts_with('#') {
                after_hash = true;
                continue;
            }
            let mut record = |letter: char, written: String, value: &str| {
                found.push(Found {
                    line: n + 1,
                    letter,
                    written,
                    value: unquote(value).to_string(),
                    after_hash,
                });
            };
            if word == "--" {
                break;
            }
            if let Some(long) = word.strip_prefix("--") {
                let (name, inline) = match long.split_once('=') {
                    Some((name, value)) => (name, Some(value)),
                    None => (long, None),
                };
                if !daemon.long_with_value.contains(&name) {
                    continue;
                }
                let (value, written) = match inline {
                    Some(v) => (v, word.to_string()),
                    None => {
                        let v = words.get(i).copied().unwrap_or("");
                        i += 1;
                        (v, format!("{word} {v}").trim_end().to_string())
                    }
                };
                let letter = match name {
                    "certdb" => 'C',
                    "certname" => 'M',
                    "passfile" => 'P',
                    _ => continue,
                };
                record(letter, written, value);
                continue;
            }
            let Some(letters) = word.strip_prefix('-').filter(|l| !l.is_empty()) else {
                continue;
            };
            for (at, letter) in letters.char_indices() {
                if !daemon.with_value.contains(letter) {
                    continue;
                }
                let rest = &letters[at + letter.len_utf8()..];
                let (value, written) = if rest.is_empty() {
                    let v = words.get(i).copied().unwrap_or("");
                    i += 1;
                    (v, format!("-{letter} {v}").trim_end().to_string())
                } else {
                    (rest, format!("-{letter}{rest}"))
                };
                if matches!(letter, 'C' | 'M' | 'P') {
                    record(letter, written, value);
                }
                break;
            }
        }
    }
    found
}

/// `value` without one pair of surrounding double or single quotes.
fn unquote(value: &str) -> &str {
    for q in ['"', '\''] {
        if let Some(inner) = value
            .strip_prefix(q)
            .and_then(|v| v.strip_suffix(q))
            .filter(|_| value.len() >= 2)
        {
            return inner;
        }
    }
    value
}

/// The tls.conf key replacing a PCP 5 option, and what tls.conf sets it to.
fn replacement(letter: char, conf: &TlsConf) -> (&'static str, Option<&str>) {
    match letter {
        'C' => ("tls-nssdb", conf.nssdb.as_deref()),
        'M' => ("tls-cert-nickname", conf.cert_nickname.as_deref()),
        _ => (
            "tls-nssdb-password-file",
            conf.nssdb_password_file.as_deref(),
        ),
    }
}

/// Where the options file of `daemon` is, and how that was decided: its
/// command-line option, else its environment variable (e.g.
/// `$PCP_PMCDOPTIONS_PATH`), else that line of pcp.conf (`$PCP_CONF`, else
/// /etc/pcp.conf below --root), else its default path; paths from pcp.conf
/// and the default are taken below --root.
pub(super) fn location(explicit: Option<&Path>, root: &Path, daemon: &Daemon) -> (PathBuf, String) {
    if let Some(path) = explicit {
        return (path.to_path_buf(), daemon.flag.into());
    }
    if let Some(path) = std::env::var_os(daemon.variable).filter(|v| !v.is_empty()) {
        return (PathBuf::from(path), daemon.variable.into());
    }
    let below = |p: &str| root.join(p.trim_start_matches('/'));
    let pcp_conf = match std::env::var_os("PCP_CONF").filter(|v| !v.is_empty()) {
        Some(p) => PathBuf::from(p),
        None => below("/etc/pcp.conf"),
    };
    let key = format!("{}=", daemon.variable);
    let line = fs::read(&pcp_conf).ok().and_then(|bytes| {
        String::from_utf8_lossy(&bytes)
            .lines()
            .rev()
            .find_map(|l| l.trim().strip_prefix(key.as_str()).map(str::to_string))
    });
    match line.map(|v| v.trim().trim_matches('"').to_string()) {
        Some(v) if !v.is_empty() => (
            below(&v),
            format!("the {} line of {}", daemon.variable, pcp_conf.display()),
        ),
        _ => (below(daemon.default_path), "the default".into()),
    }
}

/// The "pmcd options" check.
pub(super) fn pmcd_options(r: &mut Report, c: &Context) {
    options(r, c, &PMCD, c.pmcd_options.as_deref());
}

/// The "pmproxy options" check.
pub(super) fn pmproxy_options(r: &mut Report, c: &Context) {
    options(r, c, &PMPROXY, c.pmproxy_options.as_deref());
}

/// The options check of `daemon`, whose file `explicit` names.
fn options(r: &mut Report, c: &Context, daemon: &Daemon, explicit: Option<&Path>) {
    let name = daemon.check;
    let d = daemon.name;
    let (path, from) = location(explicit, &c.root, daemon);
    let shown = format!("\"{}\"", path.display());
    let text = match fs::read(&path) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            r.ok(
                name,
                format!("{shown} (from {from}) does not exist: {d} runs with its default options"),
            );
            return;
        }
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied && !is_root() => {
            r.warn(
                name,
                format!("{shown} (from {from}) is not readable by this user ({e})"),
                "run `pcp-secure verify` as root to check it",
            );
            return;
        }
        Err(e) => {
            r.warn(
                name,
                format!("{shown} (from {from}): cannot read ({e})"),
                format!("make {shown} readable ({d}'s start script reads it)"),
            );
            return;
        }
    };
    let found = parse(&text, daemon);
    if found.is_empty() {
        r.ok(
            name,
            format!("{shown} (from {from}) has no PCP 5 NSS options (-C, -M, -P)"),
        );
        return;
    }
    let options: Vec<String> = found
        .iter()
        .map(|f| {
            format!(
                "line {} \"{}\"{}",
                f.line,
                f.written,
                if f.after_hash {
                    " (after a \"#\", which is no comment there: the start script passes the whole line)"
                } else {
                    ""
                }
            )
        })
        .collect();
    let settings: Vec<String> = found
        .iter()
        .map(|f| {
            let (key, set) = replacement(f.letter, &c.conf);
            let line = format!("{key} = {}", f.value);
            match set {
                Some(v) if v == f.value => format!("{line} (already there)"),
                Some(v) => format!("{line} (it now sets {key} = {v}: keep the one you mean)"),
                None => line,
            }
        })
        .collect();
    let mut letters: Vec<String> = Vec::new();
    for f in &found {
        let l = format!("-{}", f.letter);
        if !letters.contains(&l) {
            letters.push(l);
        }
    }
    let mut lines: Vec<String> = found.iter().map(|f| f.line.to_string()).collect();
    lines.dedup();
    let conf = c
        .conf_path
        .as_ref()
        .map(|p| format!("\"{}\"", p.display()))
        .unwrap_or_else(|| "tls.conf".into());
    r.fail(
        name,
        format!(
            "{shown} (from {from}) holds PCP 5 NSS options, which {d} 6 rejects (\"invalid option -- '{}'\") so that {d} will not start: {}",
            found[0].letter,
            options.join(", ")
        ),
        format!(
            "put their settings into {conf} (libpcp_secure reads them): {}; then remove {} from {shown} ({} {}; other options such as -Q stay)",
            settings.join(", "),
            letters.join(", "),
            if lines.len() == 1 { "line" } else { "lines" },
            lines.join(", ")
        ),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn letters(text: &str) -> Vec<(usize, char, String, bool)> {
        parse(text, &PMCD)
            .into_iter()
            .map(|f| (f.line, f.letter, f.value, f.after_hash))
            .collect()
    }

    #[test]
    fn finds_the_nss_options_as_pmcd_receives_them() {
        let text = "# -C commented out\n-C sql:/etc/pcp/nssdb\n-Mpmserver_cert\n-Q\n  -P indented is dropped\n-A -P \"/etc/pcp/pass\"\n-fQC dir\n--certdb=sql:/x --certname nick\n-t 10 # -M after a hash\n-l -C\n";
        assert_eq!(
            letters(text),
            vec![
                (2, 'C', "sql:/etc/pcp/nssdb".into(), false),
                (3, 'M', "pmserver_cert".into(), false),
                (6, 'P', "/etc/pcp/pass".into(), false),
                (7, 'C', "dir".into(), false),
                (8, 'C', "sql:/x".into(), false),
                (8, 'M', "nick".into(), false),
                (9, 'M', "after".into(), true),
            ]
        );
        // -l takes "-C" as its value; -Q, -A, -f, -t 10 are not NSS options.
        assert!(parse("-Q\n-A\n-t 10\n-i 127.0.0.1\n", &PMCD).is_empty());
        let f = &parse("-Csql:/db\n", &PMCD)[0];
        assert_eq!(f.written, "-Csql:/db");
        // pmproxy: -h takes a value (the Redis host), -t does not.
        assert_eq!(
            parse("-h -C\n-t -P /pw\n", &PMPROXY)
                .into_iter()
                .map(|f| (f.line, f.letter))
                .collect::<Vec<_>>(),
            vec![(2, 'P')]
        );
    }
}
