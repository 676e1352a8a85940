//! The library and who loads it: the installed library, pmcd's preload (environment, systemd drop-ins), the clients' preload and PCP_SECURE_SOCKETS; the same preload checks serve pmproxy (`verify/pmproxy.rs`).

use std::fs;
use std::path::{Path, PathBuf};

use super::*;

// ---------------------------------------------------------------------------
// The library and who loads it

pub(super) fn library(r: &mut Report, root: &Path) {
    let lib = match libpath::find() {
        Ok(lib) => {
            let from = if std::env::var_os(libpath::ENV).is_some_and(|v| !v.is_empty()) {
                format!(" (from {})", libpath::ENV)
            } else {
                String::new()
            };
            r.ok("library", format!("{}{from}", lib.display()));
            Some(lib)
        }
        Err(e) => {
            r.fail(
                "library",
                e,
                "build it (cargo build --release) and install it (make install PREFIX=/usr/local), or set PCP_SECURE_LIB",
            );
            None
        }
    };
    pmcd_preload(r, root, lib.as_deref());
    if root == Path::new("/") {
        running_pmcd(r);
    }
    client_preload(r, lib.as_deref());
    secure_sockets(r);
}

/// One line per running pmcd: whether the library is loaded into it (its
/// memory maps say), so that a preload set up but not yet applied by a
/// restart is seen.
fn running_pmcd(r: &mut Report) {
    running(
        r,
        "pmcd",
        "it uses libpcp's OpenSSL TLS",
        &running_pids("pmcd"),
    );
}

/// The pids of the running processes whose command name is `comm`, in order.
pub(super) fn running_pids(comm: &str) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pids: Vec<u32> = entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|pid: &u32| {
            fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim_end() == comm)
        })
        .collect();
    pids.sort_unstable();
    pids
}

/// One "running SERVICE" line per pid in `pids` (processes of `service`):
/// whether the library is mapped into it. `without` says what the process
/// uses instead.
pub(super) fn running(r: &mut Report, service: &str, without: &str, pids: &[u32]) {
    let name = format!("running {service}");
    for &pid in pids {
        let Ok(maps) = fs::read_to_string(format!("/proc/{pid}/maps")) else {
            r.warn(
                &name,
                format!("{service} (pid {pid}) runs, but its memory maps cannot be read here"),
                "run pcp-secure verify as root to see whether it uses libpcp_secure",
            );
            continue;
        };
        match maps
            .lines()
            .filter_map(|l| l.split_whitespace().nth(5))
            .find(|p| p.contains("libpcp_secure"))
        {
            Some(lib) => r.ok(
                &name,
                format!("{service} (pid {pid}) runs with {lib} loaded"),
            ),
            None => r.warn(
                &name,
                format!("{service} (pid {pid}) runs without libpcp_secure: {without}"),
                format!(
                    "restart {service} after setting up the preload (systemctl restart {service})"
                ),
            ),
        }
    }
}

/// "PATH (the library found above)" or "PATH (pcp-secure found X)".
pub(super) fn compare(entry: &str, lib: Option<&Path>) -> String {
    match lib {
        Some(lib) if !libpath::same_file(Path::new(entry), lib) => {
            format!(" (not the library found above, {})", lib.display())
        }
        _ => String::new(),
    }
}

pub(super) fn pmcd_preload(r: &mut Report, root: &Path, lib: Option<&Path>) {
    service_preload(
        r,
        root,
        lib,
        &Preloaded {
            service: "pmcd",
            without: "pmcd uses libpcp's OpenSSL TLS",
            stock: "pmcd runs with stock TLS",
            passed: "the PMCD* and PCP* settings",
        },
    );
}

/// What [`service_preload`] says about one service.
pub(super) struct Preloaded<'a> {
    /// The unit name without `.service` ("pmcd").
    pub(super) service: &'a str,
    /// What the service does without the library.
    pub(super) without: &'a str,
    /// What it does when the preloaded file is missing.
    pub(super) stock: &'a str,
    /// Which settings of /etc/default/SERVICE its start script passes on.
    pub(super) passed: &'a str,
}

/// The "SERVICE preload" line: whether the service's systemd unit (or
/// /etc/ld.so.preload) preloads the library.
pub(super) fn service_preload(r: &mut Report, root: &Path, lib: Option<&Path>, p: &Preloaded<'_>) {
    let service = p.service;
    let name = format!("{service} preload");
    let name = name.as_str();
    let install = format!("`pcp-secure systemd {service} --install`, then systemctl daemon-reload && systemctl restart {service}");
    if let Some((value, origin)) = systemd_ld_preload(root, service) {
        let ours: Vec<&str> = libpath::preload_entries(&value)
            .filter(|e| libpath::is_ours(e))
            .collect();
        match ours.first() {
            Some(entry)
                if root.join(entry.trim_start_matches('/')).is_file()
                    || Path::new(entry).is_file() =>
            {
                r.ok(
                    name,
                    format!(
                        "{origin} preloads {entry} into {service}{}",
                        compare(entry, lib)
                    ),
                )
            }
            Some(entry) => r.fail(
                name,
                format!(
                    "{origin} preloads {entry}, which does not exist: {}",
                    p.stock
                ),
                install,
            ),
            None => r.warn(
                name,
                format!(
                    "{origin} sets LD_PRELOAD={value}, without libpcp_secure: {}",
                    p.without
                ),
                install,
            ),
        }
        return;
    }
    let ld_so_preload = root.join("etc/ld.so.preload");
    if let Ok(text) = fs::read_to_string(&ld_so_preload) {
        let text: String = text
            .lines()
            .map(|l| l.split('#').next().unwrap_or(""))
            .collect::<Vec<_>>()
            .join("\n");
        let found = libpath::preload_entries(&text).find(|e| libpath::is_ours(e));
        if let Some(entry) = found {
            r.ok(
                name,
                format!(
                    "{} preloads {entry} into every program, {service} included{}",
                    ld_so_preload.display(),
                    compare(entry, lib)
                ),
            );
            return;
        }
    }
    for defaults in [
        format!("etc/default/{service}"),
        format!("etc/sysconfig/{service}"),
    ] {
        let path = root.join(defaults);
        let Ok(text) = fs::read_to_string(&path) else {
            continue;
        };
        if text.lines().any(|l| {
            let l = l.trim_start();
            let l = l.strip_prefix("export ").unwrap_or(l).trim_start();
            l.starts_with("LD_PRELOAD=")
        }) {
            r.warn(
                name,
                format!(
                    "{} sets LD_PRELOAD, but PCP's {service} start script passes only {} of that file to {service}",
                    path.display(),
                    p.passed
                ),
                format!("remove it there and run {install}"),
            );
            return;
        }
    }
    r.warn(
        name,
        format!(
            "no systemd drop-in for {service}.service sets LD_PRELOAD to libpcp_secure: {}",
            p.without
        ),
        install,
    );
}

/// The `LD_PRELOAD` that `SERVICE.service` would get from its unit file and
/// drop-ins below `root` (later settings win, as in systemd), with the file
/// that set it.
pub(super) fn systemd_ld_preload(root: &Path, service: &str) -> Option<(String, String)> {
    // Unit directories, most important first.
    let dirs = [
        "etc/systemd/system",
        "run/systemd/system",
        "usr/lib/systemd/system",
        "lib/systemd/system",
    ];
    let unit = format!("{service}.service");
    let mut files: Vec<PathBuf> = Vec::new();
    if let Some(main) = dirs
        .iter()
        .map(|d| root.join(d).join(&unit))
        .find(|p| p.is_file())
    {
        files.push(main);
    }
    // Drop-ins: by file name across all directories; a name in a more
    // important directory hides the same name in the others.
    let mut drop_ins: std::collections::BTreeMap<std::ffi::OsString, PathBuf> = Default::default();
    for dir in dirs.iter().rev() {
        let Ok(entries) = fs::read_dir(root.join(dir).join(format!("{unit}.d"))) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "conf") {
                drop_ins.insert(entry.file_name(), path);
            }
        }
    }
    files.extend(drop_ins.into_values());

    let mut value: Option<(String, String)> = None;
    let mut from_files: Option<(String, String)> = None;
    for file in &files {
        let Ok(text) = fs::read_to_string(file) else {
            continue;
        };
        let origin = file
            .strip_prefix(root)
            .map(|p| format!("/{}", p.display()))
            .unwrap_or_else(|_| file.display().to_string());
        let mut in_service = false;
        for line in text.lines() {
            let line = line.trim();
            if line.starts_with('[') {
                in_service = line == "[Service]";
                continue;
            }
            if !in_service || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            let Some((key, rest)) = line.split_once('=') else {
                continue;
            };
            match key.trim() {
                "Environment" if rest.trim().is_empty() => value = None,
                "Environment" => {
                    for word in systemd_words(rest) {
                        if let Some(v) = word.strip_prefix("LD_PRELOAD=") {
                            value = Some((v.to_string(), origin.clone()));
                        }
                    }
                }
                "UnsetEnvironment"
                    if systemd_words(rest)
                        .iter()
                        .any(|w| w == "LD_PRELOAD" || w.starts_with("LD_PRELOAD=")) =>
                {
                    value = None;
                    from_files = None;
                }
                "EnvironmentFile" => {
                    let name = rest.trim().trim_start_matches('-');
                    let env_file = root.join(name.trim_start_matches('/'));
                    if let Ok(env) = fs::read_to_string(&env_file) {
                        for l in env.lines() {
                            let l = l.trim();
                            let l = l.strip_prefix("export ").unwrap_or(l);
                            if let Some(v) = l.strip_prefix("LD_PRELOAD=") {
                                let v = v.trim().trim_matches('"').trim_matches('\'');
                                from_files = Some((
                                    v.to_string(),
                                    format!("{name} (EnvironmentFile of {origin})"),
                                ));
                            }
                        }
                    }
                }
                _ => {}
            }
        }
    }
    // Variables from environment files override Environment= lines.
    from_files.or(value)
}

/// The words of a systemd `Environment=` value: separated by white space,
/// with double or single quotes and backslash escapes.
pub(super) fn systemd_words(value: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (_, '\\') => {
                if let Some(n) = chars.next() {
                    word.push(n);
                }
                in_word = true;
            }
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            (None, c) => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

pub(super) fn client_preload(r: &mut Report, lib: Option<&Path>) {
    const NAME: &str = "client preload";
    let run = "run clients as `pcp-secure run -- pminfo ...`, or export LD_PRELOAD=".to_string()
        + &lib
            .map(|l| l.display().to_string())
            .unwrap_or_else(|| "/path/to/libpcp_secure.so.1".into());
    let value = std::env::var("LD_PRELOAD").unwrap_or_default();
    let found = libpath::preload_entries(&value).find(|e| libpath::is_ours(e));
    match found {
        Some(entry) if Path::new(entry).is_file() => r.ok(
            NAME,
            format!("LD_PRELOAD names {entry}: PCP clients started from this environment use libpcp_secure{}", compare(entry, lib)),
        ),
        Some(entry) => r.warn(
            NAME,
            format!("LD_PRELOAD names {entry}, which does not exist"),
            run,
        ),
        None => r.warn(
            NAME,
            "LD_PRELOAD does not name libpcp_secure: PCP clients started from this environment use libpcp's own TLS",
            run,
        ),
    }
}

pub(super) fn secure_sockets(r: &mut Report) {
    const NAME: &str = "client secure sockets";
    let fix = "export PCP_SECURE_SOCKETS=enforce (or use pcps:// host names)";
    match std::env::var("PCP_SECURE_SOCKETS") {
        Err(_) => r.warn(
            NAME,
            "PCP_SECURE_SOCKETS is not set: clients use TLS only for pcps:// hosts",
            fix,
        ),
        Ok(v) if v.is_empty() || v == "1" || v == "enforce" => {
            r.ok(NAME, format!("PCP_SECURE_SOCKETS={v}: clients require TLS"))
        }
        Ok(v) if v == "relaxed" => r.warn(
            NAME,
            "PCP_SECURE_SOCKETS=relaxed: clients fall back to plain connections where pmcd offers no TLS",
            fix,
        ),
        Ok(v) => r.warn(
            NAME,
            format!("PCP_SECURE_SOCKETS={v} is not a value libpcp knows: clients use TLS only for pcps:// hosts"),
            fix,
        ),
    }
}
