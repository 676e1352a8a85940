//! `pcp-secure trust`: the per-user store of server certificates accepted
//! on first use (`trusted-servers.pem`), listed, shown, added to and
//! removed from through the library's own `TrustStore`, so the tool and
//! the clients agree on the file, its format and its locking.
//!
//! CAs are not kept there: a client trusts a CA through `tls-ca-cert-file`
//! or `tls-ca-cert-dir` in its tls.conf.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use pcp_secure::api::trust::CertInfo;
use pcp_secure::api::trust::{Entry, TrustStore};
use rustls::pki_types::{CertificateDer, ServerName};

/// Arguments of `pcp-secure trust`.
#[derive(clap::Args)]
#[command(after_help = "\
The store is $PCP_SECURE_DB_PATH/trusted-servers.pem, else
~/.pcp/tls/trusted-servers.pem, the file the clients (pminfo, pmval, ...)
read and write when you accept a server's certificate. It holds one
certificate per host name, as typed after -h (without port), consulted for
certificates whose issuer is not trusted, and the CAs you trust for every
server (`add --ca LABEL FILE`), added to those of tls.conf (or the system's).")]
pub(crate) struct Args {
    /// Directory of the trust store [default: $PCP_SECURE_DB_PATH, else ~/.pcp/tls].
    #[arg(long, value_name = "DIR", global = true)]
    db: Option<PathBuf>,
    #[command(subcommand)]
    what: What,
}

#[derive(Subcommand)]
enum What {
    /// One line per entry: host (or "CA label"), SHA-256 fingerprint, subject, end of validity.
    List,
    /// Fingerprints, subject, issuer, validity and names of HOST's certificate.
    Show {
        /// The host name, as typed after -h.
        host: String,
    },
    /// Trust the (first) certificate in FILE for HOST (or, with --ca, as a CA for all servers).
    Add {
        /// Trust FILE's certificate as a CA that issues server certificates; HOST is then its label.
        #[arg(long)]
        ca: bool,
        /// The host name, as clients type it after -h (without port); with --ca, a label.
        host: String,
        /// A PEM file; its first certificate is saved (the server's own, not its CA's).
        file: PathBuf,
    },
    /// Forget HOST's certificate, or the CA of that label (exits 1 when there is none).
    Remove {
        /// The host name.
        host: String,
    },
}

/// Runs the subcommand.
pub(crate) fn main(args: Args) -> ExitCode {
    let store = match args.db {
        Some(dir) => TrustStore::in_dir(dir),
        None => {
            match TrustStore::for_user() {
                Some(store) => store,
                None => {
                    eprintln!("pcp-secure trust: neither PCP_SECURE_DB_PATH nor HOME is set: give --db DIR");
                    return ExitCode::FAILURE;
                }
            }
        }
    };
    let result = match args.what {
        What::List => list(&store),
        What::Show { host } => show(&store, &host),
        What::Add {
            ca: true,
            host,
            file,
        } => add_ca(&store, &host, &file),
        What::Add {
            ca: false,
            host,
            file,
        } => add(&store, &host, &file),
        What::Remove { host } => remove(&store, &host),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(why) => {
            eprintln!("pcp-secure trust: {why}");
            ExitCode::FAILURE
        }
    }
}

type Result<T> = std::result::Result<T, String>;

fn load(store: &TrustStore) -> Result<Vec<Entry>> {
    store.load().map_err(|e| e.to_string())
}

fn list(store: &TrustStore) -> Result<()> {
    let entries = load(store)?;
    if entries.is_empty() {
        println!("(no trusted servers in {})", store.file().display());
        return Ok(());
    }
    let label = |e: &Entry| {
        if e.ca {
            format!("CA {}", e.host)
        } else {
            e.host.clone()
        }
    };
    let width = entries.iter().map(|e| label(e).len()).max().unwrap_or(0);
    for (index, entry) in entries.iter().enumerate() {
        let info = CertInfo::of(&entry.der);
        let shadowed = entries[index + 1..]
            .iter()
            .any(|e| e.host == entry.host && e.ca == entry.ca);
        println!(
            "{:<width$}  {}  {}  {} {}{}",
            label(entry),
            info.sha256,
            info.subject,
            if pcp_secure::api::trust::out_of_date(&entry.der) {
                "EXPIRED"
            } else {
                "until"
            },
            info.not_after,
            if shadowed {
                "  (ignored: a later entry for this host wins)"
            } else {
                ""
            },
        );
    }
    Ok(())
}

fn show(store: &TrustStore, host: &str) -> Result<()> {
    let host = host_key(host)?;
    let entries = load(store)?;
    let Some(entry) = entries.iter().rev().find(|e| e.host == host) else {
        return Err(format!(
            "no certificate is trusted for host {host} in {}",
            store.file().display()
        ));
    };
    if entry.ca {
        println!("CA: {host} (trusted to issue server certificates)");
    } else {
        println!("Host: {host}");
    }
    for line in CertInfo::of(&entry.der).lines() {
        println!("{line}");
    }
    if pcp_secure::api::trust::out_of_date(&entry.der) {
        println!("(this certificate is not valid now: clients refuse it)");
    }
    Ok(())
}

fn add(store: &TrustStore, host: &str, file: &std::path::Path) -> Result<()> {
    let host = host_key(host)?;
    let path = file
        .to_str()
        .ok_or_else(|| format!("\"{}\": the path is not valid UTF-8", file.display()))?;
    let cert: CertificateDer<'static> =
        pcp_secure::api::certs::load_chain("certificate file", path)
            .map_err(|e| e.to_string())?
            .remove(0);
    let earlier = load(store)?
        .into_iter()
        .rev()
        .find(|e| e.host == host)
        .map(|e| CertInfo::of(&e.der).sha256);
    store.save(&host, &cert).map_err(|e| e.to_string())?;
    let info = CertInfo::of(&cert);
    println!("trusted for host {host} in {}:", store.file().display());
    println!("SHA256 fingerprint is {}", info.sha256);
    println!("Subject: {}", info.subject);
    match earlier {
        Some(old) if old != info.sha256 => {
            println!("(replaced the certificate saved before, SHA256 {old})")
        }
        Some(_) => println!("(it was already trusted for {host})"),
        None => {}
    }
    if !names_host(&cert, &host) {
        println!(
            "note: the certificate does not name {host} (its names: {}); clients will still ask about the name, or accept it with PCP_ALLOW_BAD_CERT_DOMAIN set",
            if info.names.is_empty() { "none".to_string() } else { info.names.join(", ") }
        );
    }
    if pcp_secure::api::trust::out_of_date(&cert) {
        println!(
            "note: the certificate is not valid now: clients refuse it whatever the store says"
        );
    }
    Ok(())
}

fn add_ca(store: &TrustStore, label: &str, file: &std::path::Path) -> Result<()> {
    let path = file
        .to_str()
        .ok_or_else(|| format!("\"{}\": the path is not valid UTF-8", file.display()))?;
    let cert: CertificateDer<'static> =
        pcp_secure::api::certs::load_chain("CA certificate file", path)
            .map_err(|e| e.to_string())?
            .remove(0);
    // Refuse what rustls could not use as a trust anchor, now rather than
    // at every connection.
    rustls::RootCertStore::empty()
        .add(cert.clone())
        .map_err(|e| format!("\"{path}\": not usable as a CA certificate ({e})"))?;
    store.save_ca(label, &cert).map_err(|e| e.to_string())?;
    let info = CertInfo::of(&cert);
    println!("trusted as CA \"{label}\" in {}:", store.file().display());
    println!("SHA256 fingerprint is {}", info.sha256);
    println!("Subject: {}", info.subject);
    if pcp_secure::api::trust::out_of_date(&cert) {
        println!("note: the certificate is not valid now: certificates it issued will be refused");
    }
    Ok(())
}

fn remove(store: &TrustStore, host: &str) -> Result<()> {
    let host = host_key(host)?;
    if store.remove(&host).map_err(|e| e.to_string())? {
        println!("removed host {host} from {}", store.file().display());
        Ok(())
    } else {
        Err(format!(
            "no certificate is trusted for host {host} in {}",
            store.file().display()
        ))
    }
}

/// The host as the store keys it: as typed, without IPv6 brackets, never
/// with a port.
fn host_key(host: &str) -> Result<String> {
    let trimmed = host.trim();
    let key = trimmed
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(trimmed);
    if key.is_empty() || key.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("\"{host}\" is not a host name"));
    }
    if let Some((_, port)) = key.split_once(':') {
        // One colon (an IPv6 address has several) followed by digits: a port.
        if !port.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!(
                "\"{host}\": give the host name without the port (entries are kept per host)"
            ));
        }
    }
    Ok(key.to_string())
}

/// Whether the certificate lists `host` (a DNS name or an IP address).
fn names_host(cert: &CertificateDer<'_>, host: &str) -> bool {
    let Ok(name) = ServerName::try_from(host) else {
        return false;
    };
    pcp_secure::api::trust::name_check(cert, &name).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_keys_drop_brackets_and_refuse_ports() {
        assert_eq!(host_key("localhost").unwrap(), "localhost");
        assert_eq!(host_key("[::1]").unwrap(), "::1");
        assert_eq!(host_key("::1").unwrap(), "::1");
        assert!(host_key("collector:44321").unwrap_err().contains("port"));
        assert!(host_key("").is_err());
        assert!(host_key("a b").is_err());
        assert!(host_key("a\nb").is_err());
    }
}
