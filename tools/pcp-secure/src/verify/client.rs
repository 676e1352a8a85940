//! The monitor: the clients' settings and the per-user trust store.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use pcp_secure::api::certs;
use pcp_secure::api::certs::ClientContext;
use pcp_secure::api::settings::TlsConf;
use pcp_secure::api::trust::TrustStore;

use super::*;

// ---------------------------------------------------------------------------
// Client (pminfo, pmlogger, ...)

pub(super) fn client(r: &mut Report, conf: &TlsConf, conf_path: Option<&Path>, conf_name: &str) {
    match ClientContext::build(conf, conf_path.map(Path::to_path_buf)) {
        Ok(ctx) => {
            let identity = match (&conf.client_cert_file, ctx.has_identity()) {
                (Some(file), true) => format!("client certificate \"{file}\" with its key"),
                (None, true) => "a client certificate from the NSS database".to_string(),
                _ => "no client certificate (needed only for pmcd -Q or tls-verify-clients)".to_string(),
            };
            r.ok("client TLS setup", format!("clients trust {}; {identity}", ctx.trust_source));
            if conf.ca_cert_file.is_none() && conf.ca_cert_dir.is_none() && certs::system_roots().is_empty() {
                r.warn(
                    "client trust",
                    "no tls-ca-cert-file or tls-ca-cert-dir and the system trust store is empty: every server certificate is a first-use question",
                    format!("set tls-ca-cert-file in {conf_name} to the CA that issues your pmcd certificates"),
                );
            }
        }
        Err(e) => r.fail(
            "client TLS setup",
            e.to_string(),
            format!("correct the setting named here in {conf_name}; clients cannot connect securely until then"),
        ),
    }
    if let (Some(cert_file), Some(key_file)) = (&conf.client_cert_file, &conf.client_key_file) {
        if let Ok(chain) = certs::load_chain("tls-client-cert-file", cert_file) {
            era::client_version1(
                r,
                &chain[0],
                &format!("tls-client-cert-file \"{cert_file}\""),
                &format!("then point tls-client-cert-file and tls-client-key-file in {conf_name} at them"),
            );
            validity(
                r,
                "client certificate validity",
                &chain[0],
                &format!("issue a new certificate (`pcp-secure cert client NAME`) and point tls-client-cert-file in {conf_name} at it"),
            );
        }
        if !key_file.is_empty() {
            key_mode(r, "client key permissions", key_file, 0o077, "chmod 600");
        }
    }
    nss::client(r, conf, conf_name);
    trust_store(r);
}

pub(super) fn trust_store(r: &mut Report) {
    const NAME: &str = "trust store";
    let Some(store) = TrustStore::for_user() else {
        r.warn(
            NAME,
            "neither PCP_SECURE_DB_PATH nor HOME is set: server certificates you accept cannot be saved",
            "set HOME, or PCP_SECURE_DB_PATH to a private directory",
        );
        return;
    };
    let file = store.file();
    let unsafe_store = if file.exists() {
        store.unsafe_because()
    } else {
        None
    };
    if let Some(why) = unsafe_store {
        r.fail(
            NAME,
            why,
            "only you (or root) may own and write the trust store: chmod go-w, or chown, what the line names",
        );
    } else {
        trust_store_entries(r, &store);
    }
    trust_store_modes(r, &store);
}

/// The trust store's entries, as clients would read them.
fn trust_store_entries(r: &mut Report, store: &TrustStore) {
    const NAME: &str = "trust store";
    let file = store.file();
    match store.load() {
        Ok(entries) if entries.is_empty() && !file.exists() => r.ok(
            NAME,
            format!("\"{}\" does not exist yet (no server certificate saved)", file.display()),
        ),
        Ok(entries) => r.ok(
            NAME,
            format!("\"{}\": {} saved server certificate(s)", file.display(), entries.len()),
        ),
        Err(e) => r.fail(
            NAME,
            e.to_string(),
            format!(
                "repair or remove the entry at that line of \"{}\" (clients ignore the whole file until then)",
                file.display()
            ),
        ),
    }
}

/// The trust store's file modes: private to the user is best.
fn trust_store_modes(r: &mut Report, store: &TrustStore) {
    let file = store.file();
    let dir = file.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut problems = Vec::new();
    let mut fixes = Vec::new();
    // SAFETY: geteuid takes no arguments and cannot fail.
    let uid = unsafe { libc::geteuid() };
    for (path, chmod) in [(&dir, "700"), (&file, "600")] {
        let Ok(meta) = fs::metadata(path) else {
            continue;
        };
        let mode = meta.mode() & 0o7777;
        if mode & 0o066 != 0 {
            problems.push(format!(
                "\"{}\" is mode {mode:04o} (group or other users can read or write it)",
                path.display()
            ));
            fixes.push(format!("chmod {chmod} \"{}\"", path.display()));
        }
        if meta.uid() != uid {
            problems.push(format!(
                "\"{}\" is owned by uid {}, not by you (uid {uid})",
                path.display(),
                meta.uid()
            ));
            fixes.push(format!("chown {uid} \"{}\"", path.display()));
        }
    }
    if !problems.is_empty() {
        r.warn(
            "trust store permissions",
            problems.join("; "),
            fixes.join("; "),
        );
    } else if dir.exists() {
        r.ok(
            "trust store permissions",
            format!("\"{}\" and its file are private to you", dir.display()),
        );
    }
}
