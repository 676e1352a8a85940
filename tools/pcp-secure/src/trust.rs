//! `pcp-secure trust`: the per-user store of server certificates accepted
//! on first use (`trusted-servers.pem`) and of trusted CAs, listed, shown,
//! added to and removed from through the library's own `TrustStore`, so
//! the tool and the clients agree on the file, its format, its keys (host,
//! or host:port off pmcd's port 44321) and its locking.
//!
//! `add HOST[:PORT]` fetches a live pmcd's certificate the way `probe`
//! does (one PCP exchange, `probe::exchange`), shows its fingerprints and
//! asks, like ssh-keyscan and known_hosts; `--user NAME` (root only) works
//! on another user's store, as that user, so its files are that user's.

use std::io::{BufRead, IsTerminal, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Subcommand;
use pcp_secure::api::trust::{entry_key, server_key, split_host_port, CertInfo};
use pcp_secure::api::trust::{Entry, TrustStore};
use rustls::pki_types::{CertificateDer, ServerName};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::probe::{self, Upgrade};
use crate::user::{self, ServiceUser};

/// Arguments of `pcp-secure trust`.
#[derive(clap::Args)]
#[command(after_help = "\
The store is $PCP_SECURE_DB_PATH/trusted-servers.pem, else
~/.pcp/tls/trusted-servers.pem, the file the clients (pminfo, pmval, ...)
read and write when you accept a server's certificate. It holds one
certificate per server: HOST for pmcd's port 44321, HOST:PORT for another
(host names compared without regard to case), consulted for certificates
whose issuer is not trusted; and the CAs you trust for every server
(`add --ca LABEL FILE`), added to those of tls.conf (or the system's).
As root, --user NAME works on the store of user NAME (~NAME/.pcp/tls, or
--db), as that user: for daemons such as pmlogger and pmie running as pcp.")]
pub(crate) struct Args {
    /// Directory of the trust store [default: $PCP_SECURE_DB_PATH, else ~/.pcp/tls;
    /// with --user, that user's ~/.pcp/tls].
    #[arg(long, value_name = "DIR", global = true)]
    db: Option<PathBuf>,
    /// Work on the trust store of user NAME (root only), as that user.
    #[arg(long, value_name = "NAME", global = true, value_parser = ServiceUser::parse)]
    user: Option<ServiceUser>,
    #[command(subcommand)]
    what: What,
}

#[derive(Subcommand)]
enum What {
    /// One line per entry: server (HOST or HOST:PORT) or "CA label", SHA-256 fingerprint, subject, end of validity.
    List,
    /// Fingerprints, subject, issuer, validity and names of a server's certificate, or of a CA.
    Show {
        /// Show the CA of this label (else a server, then a CA of that label).
        #[arg(long)]
        ca: bool,
        /// HOST or HOST:PORT as clients type it after -h; with --ca, the CA's label.
        name: String,
    },
    /// Trust a server's certificate: fetched from the live server (shown, then asked
    /// about, or --yes), or the first certificate of FILE; with --ca, FILE's CA for all servers.
    Add {
        /// Trust FILE's certificate as a CA that issues server certificates; NAME is then its label.
        #[arg(long)]
        ca: bool,
        /// Save without asking (the fingerprints are still printed).
        #[arg(long)]
        yes: bool,
        /// Seconds to wait for the server, and again for the handshakes.
        #[arg(long, value_name = "SECONDS", default_value_t = 10.0, value_parser = probe::parse_seconds)]
        timeout: f64,
        /// HOST or HOST:PORT (port 44321 if not given), as clients type it after -h; with --ca, a label.
        name: String,
        /// A PEM file whose first certificate is saved (the server's own, or with --ca the CA's);
        /// without it the server's certificate is fetched.
        file: Option<PathBuf>,
    },
    /// Forget a server's certificate, or the CA of that label (exits 1 when there is none).
    Remove {
        /// Remove the CA of this label (else a server, then a CA of that label).
        #[arg(long)]
        ca: bool,
        /// HOST or HOST:PORT; with --ca, the CA's label.
        name: String,
    },
}

/// Runs the subcommand.
pub(crate) fn main(args: Args) -> ExitCode {
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(why) => {
            eprintln!("pcp-secure trust: {why}");
            ExitCode::FAILURE
        }
    }
}

type Result<T> = std::result::Result<T, String>;

/// Whose store, where.
struct Owner {
    store: TrustStore,
    /// Another user, acted as for every read and write.
    user: Option<ServiceUser>,
}

impl Owner {
    fn new(db: Option<PathBuf>, user: Option<ServiceUser>) -> Result<Owner> {
        let user = match user {
            Some(u) if u.uid == user::euid() => None,
            Some(u) if user::euid() != 0 => {
                return Err(format!(
                    "--user {}: only root can change another user's trust store (you are {}); run it as root, or as {} without --user",
                    u.name,
                    ServiceUser::current().name,
                    u.name
                ))
            }
            other => other,
        };
        let store = match (db, &user) {
            (Some(dir), _) => TrustStore::in_dir(dir),
            (None, Some(u)) if u.home.as_os_str().is_empty() => {
                return Err(format!(
                    "--user {}: the user has no home directory: give --db DIR",
                    u.name
                ))
            }
            (None, Some(u)) => TrustStore::in_dir(u.home.join(".pcp").join("tls")),
            (None, None) => TrustStore::for_user()
                .ok_or("neither PCP_SECURE_DB_PATH nor HOME is set: give --db DIR".to_string())?,
        };
        Ok(Owner { store, user })
    }

    /// Runs `f` on the store as its owner.
    fn with<T>(&self, f: impl FnOnce(&TrustStore) -> Result<T>) -> Result<T> {
        match &self.user {
            None => f(&self.store),
            Some(u) => user::as_user(u, || f(&self.store))?,
        }
    }

    /// Before a write for another user: creates the store's missing
    /// directories, owned by that user, mode 0700 (a home such as
    /// /var/lib/pcp is often not the user's to write in).
    fn prepare(&self) -> Result<()> {
        let Some(u) = &self.user else {
            return Ok(());
        };
        let file = self.store.file();
        let dir = file.parent().unwrap_or(Path::new("/"));
        let missing: Vec<&Path> = dir.ancestors().take_while(|d| !d.exists()).collect();
        for path in missing.into_iter().rev() {
            std::fs::DirBuilder::new()
                .mode(0o700)
                .create(path)
                .and_then(|()| std::os::unix::fs::chown(path, Some(u.uid), Some(u.gid)))
                .map_err(|e| {
                    format!(
                        "trust store directory \"{}\": cannot create it for user {} ({e})",
                        path.display(),
                        u.name
                    )
                })?;
        }
        Ok(())
    }

    /// "", or " of user NAME" for messages.
    fn whose(&self) -> String {
        self.user
            .as_ref()
            .map(|u| format!(" of user {}", u.name))
            .unwrap_or_default()
    }
}

fn run(args: Args) -> Result<()> {
    let owner = Owner::new(args.db, args.user)?;
    match args.what {
        What::List => list(&owner),
        What::Show { ca, name } => show(&owner, &name, ca),
        What::Add {
            ca: true,
            name,
            file: Some(file),
            ..
        } => add_ca(&owner, &name, &file),
        What::Add { ca: true, .. } => Err(
            "add --ca LABEL FILE: give the PEM file of the CA certificate (a CA is never fetched from a server)".into(),
        ),
        What::Add {
            name,
            file: Some(file),
            ..
        } => {
            let (host, port) = server_name(&name)?;
            let cert = first_certificate("certificate file", &file)?;
            add(&owner, &host, port, &cert)
        }
        What::Add {
            name, yes, timeout, ..
        } => fetch_and_add(&owner, &name, yes, Duration::from_secs_f64(timeout)),
        What::Remove { ca, name } => remove(&owner, &name, ca),
    }
}

fn load(owner: &Owner) -> Result<Vec<Entry>> {
    owner.with(|store| store.load().map_err(|e| e.to_string()))
}

fn list(owner: &Owner) -> Result<()> {
    let entries = load(owner)?;
    if entries.is_empty() {
        println!("(no trusted servers in {})", owner.store.file().display());
        return Ok(());
    }
    let label = |e: &Entry| {
        if e.ca {
            format!("CA {}", e.host)
        } else {
            entry_key(&e.host)
        }
    };
    let width = entries.iter().map(|e| label(e).len()).max().unwrap_or(0);
    for (index, entry) in entries.iter().enumerate() {
        let info = CertInfo::of(&entry.der);
        let shadowed = entries[index + 1..].iter().any(|e| {
            e.ca == entry.ca
                && if e.ca {
                    e.host == entry.host
                } else {
                    entry_key(&e.host) == entry_key(&entry.host)
                }
        });
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
                "  (ignored: a later entry for this name wins)"
            } else {
                ""
            },
        );
    }
    Ok(())
}

/// The server entry for `name` (HOST or HOST:PORT), unless `ca`; else (or
/// failing that) the CA labelled `name`.
fn lookup<'a>(entries: &'a [Entry], name: &str, ca: bool) -> Option<&'a Entry> {
    let server = || {
        let (host, port) = split_host_port(name);
        TrustStore::find(entries, host, port)
    };
    let labelled = || entries.iter().rev().find(|e| e.ca && e.host == name);
    if ca {
        labelled()
    } else {
        server().or_else(labelled)
    }
}

fn show(owner: &Owner, name: &str, ca: bool) -> Result<()> {
    let entries = load(owner)?;
    let Some(entry) = lookup(&entries, name, ca) else {
        return Err(nothing_for(owner, name, ca));
    };
    if entry.ca {
        println!("CA: {} (trusted to issue server certificates)", entry.host);
    } else {
        println!("Server: {}", entry_key(&entry.host));
    }
    for line in CertInfo::of(&entry.der).lines() {
        println!("{line}");
    }
    if !entry.saved.is_empty() {
        println!("Saved: {}", entry.saved);
    }
    if pcp_secure::api::trust::out_of_date(&entry.der) {
        println!("(this certificate is not valid now: clients refuse it)");
    }
    Ok(())
}

fn nothing_for(owner: &Owner, name: &str, ca: bool) -> String {
    format!(
        "no {} {name} in {}{}",
        if ca {
            "CA labelled"
        } else {
            "certificate is trusted for"
        },
        owner.store.file().display(),
        owner.whose()
    )
}

/// HOST or HOST:PORT as the store keys servers.
fn server_name(name: &str) -> Result<(String, Option<u16>)> {
    let target = probe::parse_target(name).map_err(|why| format!("\"{name}\": {why}"))?;
    if target
        .host
        .chars()
        .any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(format!("\"{name}\" is not a host name"));
    }
    Ok((target.host, Some(target.port)))
}

/// The first certificate of a PEM file.
fn first_certificate(what: &str, file: &Path) -> Result<CertificateDer<'static>> {
    let path = file
        .to_str()
        .ok_or_else(|| format!("\"{}\": the path is not valid UTF-8", file.display()))?;
    Ok(pcp_secure::api::certs::load_chain(what, path)
        .map_err(|e| e.to_string())?
        .remove(0))
}

/// Saves `cert` for the server `host` on `port` and says what was done.
fn add(owner: &Owner, host: &str, port: Option<u16>, cert: &CertificateDer<'static>) -> Result<()> {
    let key = server_key(host, port);
    owner.prepare()?;
    let earlier = owner.with(|store| {
        let earlier = TrustStore::find(&store.load().map_err(|e| e.to_string())?, host, port)
            .map(|e| CertInfo::of(&e.der).sha256);
        store.save(host, port, cert).map_err(|e| e.to_string())?;
        Ok(earlier)
    })?;
    let info = CertInfo::of(cert);
    println!(
        "trusted for {key} in {}{}:",
        owner.store.file().display(),
        owner.whose()
    );
    println!("SHA256 fingerprint is {}", info.sha256);
    println!("Subject: {}", info.subject);
    match earlier {
        Some(old) if old != info.sha256 => {
            println!("(replaced the certificate saved before, SHA256 {old})")
        }
        Some(_) => println!("(it was already trusted for {key})"),
        None => {}
    }
    if !names_host(cert, host) {
        println!(
            "note: the certificate does not name {host} (its names: {}); clients will still ask about the name, or accept it with PCP_ALLOW_BAD_CERT_DOMAIN set",
            if info.names.is_empty() { "none".to_string() } else { info.names.join(", ") }
        );
    }
    if pcp_secure::api::trust::out_of_date(cert) {
        println!(
            "note: the certificate is not valid now: clients refuse it whatever the store says"
        );
    }
    Ok(())
}

/// `add HOST[:PORT]`: the live server's certificate, shown, asked about
/// (unless `yes`), then saved.
fn fetch_and_add(owner: &Owner, name: &str, yes: bool, timeout: Duration) -> Result<()> {
    let target = probe::parse_target(name).map_err(|why| format!("\"{name}\": {why}"))?;
    let stream = probe::connect(&target, timeout)?;
    let peer = stream
        .peer_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|_| "?".into());
    let client = probe::ClientSettings::load();
    let offer = probe::exchange(stream.as_raw_fd(), &target, timeout, &client)?;
    let result = match offer.upgrade {
        Upgrade::NotOffered => {
            return Err(format!(
                "pmcd {target} ({peer}) does not offer TLS: there is no certificate to trust"
            ))
        }
        Upgrade::Refused(status) => {
            return Err(format!(
                "pmcd {target} ({peer}) refused to start TLS: {}; nothing saved",
                probe::status_text(status)
            ))
        }
        Upgrade::Done(result) => result,
    };
    if let Err(why) = &result.outcome {
        return Err(format!(
            "the TLS handshake with pmcd {target} ({peer}) failed: {why}; nothing saved"
        ));
    }
    let chain = result.chain.lock().map(|c| c.clone()).unwrap_or_default();
    let Some(cert) = chain.first() else {
        return Err(format!(
            "pmcd {target} ({peer}) sent no certificate; nothing saved"
        ));
    };
    let key = server_key(&target.host, Some(target.port));
    println!("pmcd {target} ({peer}) presents this certificate:");
    for line in CertInfo::of(cert).lines() {
        println!("  {line}");
    }
    for (i, other) in chain.iter().enumerate().skip(1) {
        println!("  chain[{i}]: {}", CertInfo::of(other).subject);
    }
    if !yes {
        let question = format!(
            "Trust this certificate for {key} in {}{} (y/n)? ",
            owner.store.file().display(),
            owner.whose()
        );
        if !ask(&question)? {
            return Err(format!("not trusted: nothing saved for {key}"));
        }
    }
    add(owner, &target.host, Some(target.port), cert)
}

/// Asks on the terminal; an error without one (then --yes is the way).
fn ask(question: &str) -> Result<bool> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(
            "the input is not a terminal, so nobody can be asked: compare the fingerprints above with the server's (pcp-secure probe on it, or openssl x509 -fingerprint -sha256 on its certificate) and give --yes to save it".into(),
        );
    }
    for _ in 0..3 {
        eprint!("{question}");
        let _ = std::io::stderr().flush();
        let mut line = String::new();
        match stdin.lock().read_line(&mut line) {
            Ok(0) | Err(_) => return Ok(false),
            Ok(_) => {}
        }
        match line.trim().to_ascii_lowercase().as_str() {
            "y" | "yes" => return Ok(true),
            "n" | "no" => return Ok(false),
            _ => {}
        }
    }
    Ok(false)
}

fn add_ca(owner: &Owner, label: &str, file: &Path) -> Result<()> {
    if label.trim().is_empty() || label.chars().any(char::is_control) {
        return Err(format!("\"{label}\" is not a usable CA label"));
    }
    let cert = first_certificate("CA certificate file", file)?;
    is_a_ca(&cert).map_err(|why| format!("\"{}\": {why}; not added", file.display()))?;
    // Refuse what rustls could not use as a trust anchor, now rather than
    // at every connection.
    rustls::RootCertStore::empty()
        .add(cert.clone())
        .map_err(|e| {
            format!(
                "\"{}\": not usable as a CA certificate ({e})",
                file.display()
            )
        })?;
    owner.prepare()?;
    owner.with(|store| store.save_ca(label, &cert).map_err(|e| e.to_string()))?;
    let info = CertInfo::of(&cert);
    println!(
        "trusted as CA \"{label}\" in {}{}:",
        owner.store.file().display(),
        owner.whose()
    );
    println!("SHA256 fingerprint is {}", info.sha256);
    println!("Subject: {}", info.subject);
    if pcp_secure::api::trust::out_of_date(&cert) {
        println!("note: the certificate is not valid now: certificates it issued will be refused");
    }
    Ok(())
}

/// A CA certificate: basicConstraints CA:TRUE, and keyCertSign where a key
/// usage is given (X.509 version 1 certificates, which have no extensions,
/// count as CAs when self-signed, as OpenSSL counts them).
fn is_a_ca(cert: &CertificateDer<'_>) -> std::result::Result<(), String> {
    let (_, x509) = X509Certificate::from_der(cert)
        .map_err(|_| "the certificate cannot be decoded".to_string())?;
    let subject = x509.subject().to_string();
    if x509.version().0 == 0 {
        return if x509.subject() == x509.issuer() {
            Ok(())
        } else {
            Err(format!(
                "\"{subject}\" is an X.509 version 1 certificate issued by another, not a CA"
            ))
        };
    }
    match x509.basic_constraints() {
        Ok(Some(bc)) if bc.value.ca => {}
        _ => {
            return Err(format!(
                "\"{subject}\" is not a CA certificate (no basicConstraints CA:TRUE): to trust one server's own certificate, use `pcp-secure trust add HOST[:PORT] FILE`"
            ))
        }
    }
    match x509.key_usage() {
        Ok(Some(ku)) if !ku.value.key_cert_sign() => Err(format!(
            "\"{subject}\" may not sign certificates (its key usage lacks keyCertSign)"
        )),
        _ => Ok(()),
    }
}

fn remove(owner: &Owner, name: &str, ca: bool) -> Result<()> {
    let (host, port) = split_host_port(name);
    let removed = owner.with(|store| {
        let server = !ca && store.remove(host, port).map_err(|e| e.to_string())?;
        if server {
            return Ok(Some(format!("server {}", server_key(host, port))));
        }
        if store.remove_ca(name).map_err(|e| e.to_string())? {
            return Ok(Some(format!("CA \"{name}\"")));
        }
        Ok(None)
    })?;
    match removed {
        Some(what) => {
            println!(
                "removed {what} from {}{}",
                owner.store.file().display(),
                owner.whose()
            );
            Ok(())
        }
        None => Err(nothing_for(owner, name, ca)),
    }
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
    fn server_names_take_ports_and_brackets() {
        assert_eq!(
            server_name("localhost").unwrap(),
            ("localhost".into(), Some(44321))
        );
        assert_eq!(server_name("[::1]:5").unwrap(), ("::1".into(), Some(5)));
        assert_eq!(server_name("::1").unwrap(), ("::1".into(), Some(44321)));
        assert_eq!(server_name("c:44322").unwrap(), ("c".into(), Some(44322)));
        assert!(server_name("").is_err());
        assert!(server_name("a b").is_err());
        assert!(server_name("a\nb").is_err());
        assert!(server_name("c:x").is_err());
    }
}
