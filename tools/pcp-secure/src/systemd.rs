//! `pcp-secure systemd SERVICE [--install] [--root DIR]`: the systemd
//! drop-in that preloads libpcp_secure into a PCP service. It prints the
//! drop-in, or writes it; it never runs systemctl.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::libpath;

/// File name of the drop-in inside `SERVICE.service.d`.
pub(crate) const DROP_IN_NAME: &str = "libpcp-secure.conf";

/// The PCP services a drop-in can be made for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Service {
    /// The collector daemon (serves TLS).
    Pmcd,
    /// The primary pmlogger (a client of pmcd).
    Pmlogger,
    /// The pmloggers of a logger farm (clients of remote pmcds).
    #[value(name = "pmlogger_farm")]
    PmloggerFarm,
    /// The primary pmie (a client of pmcd).
    Pmie,
    /// The pmies of an inference farm (clients of remote pmcds).
    #[value(name = "pmie_farm")]
    PmieFarm,
    /// The REST API and PCP protocol proxy (serves HTTPS, a client of pmcd).
    Pmproxy,
}

impl Service {
    /// The unit name without `.service`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Service::Pmcd => "pmcd",
            Service::Pmlogger => "pmlogger",
            Service::PmloggerFarm => "pmlogger_farm",
            Service::Pmie => "pmie",
            Service::PmieFarm => "pmie_farm",
            Service::Pmproxy => "pmproxy",
        }
    }
}

/// Arguments of `pcp-secure systemd`.
#[derive(clap::Args)]
#[command(after_help = "\
Without --install the drop-in is printed. With --install it is written to
/etc/systemd/system/SERVICE.service.d/libpcp-secure.conf (mode 0644); then run
`systemctl daemon-reload && systemctl restart SERVICE` yourself. A drop-in of
that name that was edited (or not written by pcp-secure) is only replaced
with --force.
For pmproxy the library serves its HTTPS with rustls, from the certificate
in tls.conf that pmcd uses (`pcp-secure verify` checks pmproxy's setup).")]
pub(crate) struct Args {
    /// The service to preload libpcp_secure into.
    #[arg(value_enum)]
    service: Service,
    /// Write the drop-in instead of printing it.
    #[arg(long)]
    install: bool,
    /// With --install: replace a drop-in of that name that was edited or
    /// written by someone else.
    #[arg(long, requires = "install")]
    force: bool,
    /// Treat DIR as the root directory when installing (for images and tests).
    #[arg(long, value_name = "DIR", default_value = "/")]
    root: PathBuf,
}

/// Where the drop-in of `service` lives below `root`.
pub(crate) fn drop_in_path(root: &Path, service: Service) -> PathBuf {
    root.join("etc/systemd/system")
        .join(format!("{}.service.d", service.name()))
        .join(DROP_IN_NAME)
}

/// Runs the subcommand.
pub(crate) fn main(args: Args) -> ExitCode {
    let service = args.service;
    let lib = match libpath::find() {
        Ok(lib) => lib,
        Err(e) => {
            eprintln!("pcp-secure systemd: {e}");
            return ExitCode::FAILURE;
        }
    };
    let text = match drop_in(service, &lib) {
        Ok(text) => text,
        Err(e) => {
            eprintln!("pcp-secure systemd: {e}");
            return ExitCode::FAILURE;
        }
    };
    let lib_text = lib.to_string_lossy();
    if lib_text.contains("/target/debug/") || lib_text.contains("/target/release/") {
        eprintln!(
            "pcp-secure systemd: note: {} is inside a build directory; install the library \
             (make install) so that the service keeps finding it",
            lib.display()
        );
    }
    if !args.install {
        print!("{text}");
        eprintln!(
            "pcp-secure systemd: install it with `pcp-secure systemd {} --install` (or `systemctl edit {}`)",
            service.name(),
            service.name()
        );
        return ExitCode::SUCCESS;
    }
    let path = drop_in_path(&args.root, service);
    if let Ok(existing) = fs::read_to_string(&path) {
        if existing == text {
            println!("{} is already installed and up to date", path.display());
            return ExitCode::SUCCESS;
        }
        if !args.force && !written_by_us(&existing, &text) {
            eprintln!(
                "pcp-secure systemd: {} exists and was edited or not written by pcp-secure; it is left as it is. \
                 Merge the two lines below into it yourself (systemctl edit {}), or replace it with --force:\n[Service]\n{}",
                path.display(),
                service.name(),
                text.lines().last().unwrap_or_default()
            );
            return ExitCode::FAILURE;
        }
    }
    if let Err(e) = install(&path, &text) {
        eprintln!("pcp-secure systemd: {e}");
        return ExitCode::FAILURE;
    }
    println!("wrote {}", path.display());
    println!(
        "now run: systemctl daemon-reload && systemctl restart {}",
        service.name()
    );
    ExitCode::SUCCESS
}

/// True when `existing` is a drop-in pcp-secure wrote and nobody edited:
/// the same as `fresh` but for the version line and the library path.
fn written_by_us(existing: &str, fresh: &str) -> bool {
    let skeleton = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|l| {
                !l.starts_with("# Written by pcp-secure (")
                    && !l.starts_with("Environment=LD_PRELOAD=")
            })
            .map(str::to_string)
            .collect()
    };
    existing.contains("# Written by pcp-secure (") && skeleton(existing) == skeleton(fresh)
}

/// The drop-in text for `service` preloading `lib`.
fn drop_in(service: Service, lib: &Path) -> Result<String, String> {
    let lib_text = lib
        .to_str()
        .ok_or_else(|| format!("library path \"{}\" is not UTF-8", lib.display()))?;
    if lib_text
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '"' | '\'' | '\\' | ':'))
    {
        return Err(format!(
            "library path \"{lib_text}\" cannot be preloaded (LD_PRELOAD splits at white space and colons): install it under a plain path"
        ));
    }
    let name = service.name();
    let mut text = format!(
        "# /etc/systemd/system/{name}.service.d/{DROP_IN_NAME}\n\
         # Makes {name} use libpcp_secure (rustls) for TLS instead of libpcp's OpenSSL code.\n\
         # Written by pcp-secure ({version}).\n\
         # To go back, remove this file and run:\n\
         #   systemctl daemon-reload && systemctl restart {name}\n",
        version = pcp_secure::api::version_str(),
    );
    if service == Service::Pmproxy {
        text.push_str(
            "# pmproxy serves HTTPS with rustls when tls.conf names a certificate\n\
             # (unless pmproxy.conf sets secure.enabled = false); its connections\n\
             # to pmcd are made secure when asked for (pcps://, PCP_SECURE_SOCKETS).\n",
        );
    } else if service != Service::Pmcd {
        text.push_str(
            "# Connections are made secure when asked for: pcps:// host specifications\n\
             # or PCP_SECURE_SOCKETS in the service's environment.\n",
        );
    }
    // '%' starts a systemd specifier; "%%" is a literal percent sign.
    text.push_str(&format!(
        "[Service]\nEnvironment=LD_PRELOAD={}\n",
        lib_text.replace('%', "%%")
    ));
    Ok(text)
}

/// Writes the drop-in (directories 0755, file 0644), replacing any earlier
/// one atomically.
fn install(path: &Path, text: &str) -> Result<(), String> {
    let dir = path.parent().expect("drop-in path has a directory");
    let hint = |e: &std::io::Error| {
        if e.kind() == std::io::ErrorKind::PermissionDenied {
            " (run it as root)"
        } else {
            ""
        }
    };
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dir)
        .map_err(|e| format!("cannot create \"{}\": {e}{}", dir.display(), hint(&e)))?;
    let tmp = dir.join(format!(".{DROP_IN_NAME}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .open(&tmp)?;
        // The umask may have taken bits away: set the mode exactly.
        file.set_permissions(fs::Permissions::from_mode(0o644))?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, path)
    })();
    result.map_err(|e| {
        let _ = fs::remove_file(&tmp);
        format!("cannot write \"{}\": {e}{}", path.display(), hint(&e))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drop_in_preloads_the_library_and_escapes_percent() {
        let text = drop_in(
            Service::Pmcd,
            Path::new("/usr/local/lib/libpcp_secure.so.1"),
        )
        .unwrap();
        assert!(
            text.ends_with("[Service]\nEnvironment=LD_PRELOAD=/usr/local/lib/libpcp_secure.so.1\n")
        );
        assert!(text.starts_with("# /etc/systemd/system/pmcd.service.d/libpcp-secure.conf\n"));
        let text = drop_in(Service::Pmie, Path::new("/x%y/libpcp_secure.so.1")).unwrap();
        assert!(text.contains("LD_PRELOAD=/x%%y/"));
        assert!(drop_in(Service::Pmcd, Path::new("/a b/libpcp_secure.so.1")).is_err());
    }

    #[test]
    fn pmproxy_gets_a_drop_in_like_pmcd() {
        let text = drop_in(
            Service::Pmproxy,
            Path::new("/usr/local/lib/libpcp_secure.so.1"),
        )
        .unwrap();
        assert!(text.starts_with("# /etc/systemd/system/pmproxy.service.d/libpcp-secure.conf\n"));
        assert!(text.contains("serves HTTPS with rustls"));
        assert!(
            text.ends_with("[Service]\nEnvironment=LD_PRELOAD=/usr/local/lib/libpcp_secure.so.1\n")
        );
    }
}
