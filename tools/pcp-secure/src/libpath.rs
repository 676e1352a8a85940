//! Where the libpcp_secure shared library is: the file that `run`, `systemd`
//! and `verify` put into (or look for in) `LD_PRELOAD`.
//!
//! `$PCP_SECURE_LIB` when set; otherwise beside this executable (a cargo
//! target directory holds `pcp-secure` and `libpcp_secure.so` together), in
//! `../lib` or `../lib/<multiarch>` of the prefix it is installed in (so the
//! Debian package's /usr/bin/pcp-secure finds its own library first), then
//! the usual system directories.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

/// The environment variable that names the library explicitly.
pub(crate) const ENV: &str = "PCP_SECURE_LIB";

/// Debian's multiarch library directory name for this machine.
/// Debian's multiarch directory name for this machine ("x86_64-linux-gnu").
fn multiarch() -> String {
    format!("{}-linux-gnu", std::env::consts::ARCH)
}

/// The places searched when `$PCP_SECURE_LIB` is not set, in order.
pub(crate) fn candidates() -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(Path::to_path_buf))
    {
        out.push(dir.join("libpcp_secure.so"));
        if let Some(prefix) = dir.parent() {
            out.push(prefix.join("lib").join("libpcp_secure.so.1"));
            out.push(
                prefix
                    .join("lib")
                    .join(multiarch())
                    .join("libpcp_secure.so.1"),
            );
        }
    }
    for dir in [
        "/usr/local/lib".to_string(),
        format!("/usr/lib/{}", multiarch()),
        "/usr/lib".to_string(),
    ] {
        out.push(Path::new(&dir).join("libpcp_secure.so.1"));
    }
    out
}

/// The library to preload, as an absolute path; the error says where it was
/// looked for and how to point at it.
pub(crate) fn find() -> Result<PathBuf, String> {
    if let Some(value) = std::env::var_os(ENV).filter(|v| !v.is_empty()) {
        let path = absolute(Path::new(&value));
        return if path.is_file() {
            Ok(path)
        } else {
            Err(format!(
                "{ENV} names \"{}\", which is not a file",
                path.display()
            ))
        };
    }
    let candidates = candidates();
    if let Some(found) = candidates.iter().find(|p| p.is_file()) {
        return Ok(found.clone());
    }
    let looked: Vec<String> = candidates
        .iter()
        .map(|p| format!("\"{}\"", p.display()))
        .collect();
    Err(format!(
        "libpcp_secure not found (looked at {}); install it (make install) or set {ENV} to its path",
        looked.join(", ")
    ))
}

/// `path` made absolute against the current directory (symbolic links are
/// kept: `libpcp_secure.so.1` must stay the name that survives upgrades).
fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Whether one `LD_PRELOAD` entry names a libpcp_secure library.
pub(crate) fn is_ours(entry: &str) -> bool {
    Path::new(entry)
        .file_name()
        .and_then(OsStr::to_str)
        .is_some_and(|name| name.starts_with("libpcp_secure.so"))
}

/// The entries of an `LD_PRELOAD` value (the loader splits on colons and
/// white space).
pub(crate) fn preload_entries(value: &str) -> impl Iterator<Item = &str> {
    value
        .split(|c: char| c == ':' || c.is_whitespace())
        .filter(|s| !s.is_empty())
}

/// Whether two paths name the same file (after resolving links).
pub(crate) fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}
