//! pmcd's options file (`$PCP_PMCDOPTIONS_PATH`): PCP 5's NSS options
//! (`-C`, `-M`, `-P`, as PCP's client certificate guide puts them there),
//! which pmcd 6 rejects ("invalid option -- 'C'") so that it does not start.
//! Their settings belong in tls.conf now.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use pcp_secure::api::settings::TlsConf;

use super::{is_root, Context, Report};

/// The check's name.
const NAME: &str = "pmcd options";

/// Where the file is when nothing names it: `$PCP_SYSCONF_DIR/pmcd/pmcd.options`.
const DEFAULT_PATH: &str = "/etc/pcp/pmcd/pmcd.options";

/// The short options of pmcd (PCP 5 and 6) that take a value; `C`, `M`
/// and `P` only in PCP 5.
const WITH_VALUE: &str = "cCDHiLlMNnPpqsTtUx";

/// The long options of pmcd (PCP 5 and 6) that take a value.
const LONG_WITH_VALUE: [&str; 14] = [
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
];

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
    /// Whether it follows a `#` on its line (which pmcd still receives).
    pub(super) after_hash: bool,
}

/// The PCP 5 NSS options in pmcd.options text, read as pmcd's start script
/// does: only lines that begin with `-` (the others, comments included,
/// are dropped), words split at white space (quotes are not interpreted,
/// a `#` within a line does not end it), options as getopt takes them
/// (`-C VALUE`, `-CVALUE`, `-QC VALUE`, `--certdb=VALUE`, `--certdb VALUE`).
pub(super) fn parse(text: &str) -> Vec<Found> {
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
                if !LONG_WITH_VALUE.contains(&name) {
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
                if !WITH_VALUE.contains(letter) {
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

/// Where pmcd's options file is, and how that was decided: `--pmcd-options`,
/// else `$PCP_PMCDOPTIONS_PATH`, else the `PCP_PMCDOPTIONS_PATH` line of
/// pcp.conf (`$PCP_CONF`, else /etc/pcp.conf below --root), else
/// /etc/pcp/pmcd/pmcd.options; paths from pcp.conf and the default are taken
/// below --root.
pub(super) fn location(explicit: Option<&Path>, root: &Path) -> (PathBuf, String) {
    if let Some(path) = explicit {
        return (path.to_path_buf(), "--pmcd-options".into());
    }
    if let Some(path) = std::env::var_os("PCP_PMCDOPTIONS_PATH").filter(|v| !v.is_empty()) {
        return (PathBuf::from(path), "PCP_PMCDOPTIONS_PATH".into());
    }
    let below = |p: &str| root.join(p.trim_start_matches('/'));
    let pcp_conf = match std::env::var_os("PCP_CONF").filter(|v| !v.is_empty()) {
        Some(p) => PathBuf::from(p),
        None => below("/etc/pcp.conf"),
    };
    let line = fs::read(&pcp_conf).ok().and_then(|bytes| {
        String::from_utf8_lossy(&bytes).lines().rev().find_map(|l| {
            l.trim()
                .strip_prefix("PCP_PMCDOPTIONS_PATH=")
                .map(str::to_string)
        })
    });
    match line.map(|v| v.trim().trim_matches('"').to_string()) {
        Some(v) if !v.is_empty() => (
            below(&v),
            format!("the PCP_PMCDOPTIONS_PATH line of {}", pcp_conf.display()),
        ),
        _ => (below(DEFAULT_PATH), "the default".into()),
    }
}

/// The "pmcd options" check.
pub(super) fn pmcd_options(r: &mut Report, c: &Context) {
    let (path, from) = location(c.pmcd_options.as_deref(), &c.root);
    let shown = format!("\"{}\"", path.display());
    let text = match fs::read(&path) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            r.ok(
                NAME,
                format!("{shown} (from {from}) does not exist: pmcd runs with its default options"),
            );
            return;
        }
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied && !is_root() => {
            r.warn(
                NAME,
                format!("{shown} (from {from}) is not readable by this user ({e})"),
                "run `pcp-secure verify` as root to check it",
            );
            return;
        }
        Err(e) => {
            r.warn(
                NAME,
                format!("{shown} (from {from}): cannot read ({e})"),
                format!("make {shown} readable (pmcd's start script reads it)"),
            );
            return;
        }
    };
    let found = parse(&text);
    if found.is_empty() {
        r.ok(
            NAME,
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
                    " (after a \"#\", which is no comment there: pmcd's start script passes the whole line)"
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
        NAME,
        format!(
            "{shown} (from {from}) holds PCP 5 NSS options, which pmcd 6 rejects (\"invalid option -- '{}'\") so that pmcd will not start: {}",
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
        parse(text)
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
        assert!(parse("-Q\n-A\n-t 10\n-i 127.0.0.1\n").is_empty());
        let f = &parse("-Csql:/db\n")[0];
        assert_eq!(f.written, "-Csql:/db");
    }
}
