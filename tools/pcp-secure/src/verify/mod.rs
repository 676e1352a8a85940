//! `pcp-secure verify [--json] [--host NAME...]`: checks the TLS setup of
//! this machine as collector (pmcd), HTTPS server (pmproxy) and monitor
//! (clients), one line per
//! check: `ok`, `warn` or `FAIL`, what was found, and for the last two what
//! to do. Exit status 1 when any check fails.
//!
//! Everything is judged by the library's own code: `ServerContext::build`
//! and `ClientContext::build` (exactly what pmcd and clients would do with
//! the same tls.conf), the library's webpki verifier for the chain and the
//! trust store's parser; NSS databases by the library's `nssdb` reader, as
//! the user pmcd runs as (see `verify/nss.rs`).

use std::path::PathBuf;
use std::process::ExitCode;

use pcp_secure::api::settings::TlsConf;

use crate::libpath;

mod client;
mod conf;
mod daemon_options;
mod era;
mod metrics;
mod nss;
mod pmproxy;
mod preload;
mod server;

use client::*;
use conf::*;
use preload::*;
pub(crate) use server::cert_error_text;
use server::*;

/// Certificates expiring sooner than this are warned about.
pub(super) const EXPIRY_WARNING_DAYS: i64 = 30;

/// Arguments of `pcp-secure verify`.
#[derive(clap::Args)]
#[command(after_help = "\
Checks: tls.conf; pmcd.options (PCP 5's -C, -M, -P, which pmcd 6 refuses);
the server certificate, key, chain, validity and host names (pmcd), from PEM
files or from an NSS database (tls-nssdb: the database, its password file, the
certificate named by tls-cert-nickname and its key); what the NSS-era guides
made (X.509 version 1 certificates, CAs without basicConstraints); the
client settings, a client NSS database, your trust store and its permissions;
where libpcp_secure is and whether pmcd and clients started from here load it;
pmproxy: whether its HTTPS is on (tls.conf's certificate, unless pmproxy.conf
sets secure.enabled = false), whether the installed pmproxy imports only
OpenSSL functions the library defines, its preload and the running pmproxies;
the live TLS metrics of pmcd (mmv.pcp_secure.pmcd, with --metrics-host).
Each line is `ok`, `warn` or `FAIL` with what was found, and for warn and FAIL
what to do (after \"fix:\"). Exit status: 0 without FAIL lines, else 1.
Run it as root to check files only root can read.")]
pub(crate) struct Args {
    /// Print a JSON array of {"check", "status", "detail", "fix"} instead.
    #[arg(long)]
    json: bool,
    /// A host name (or address) clients use for this machine; the server
    /// certificate must list it. Repeatable. Default: localhost and this
    /// machine's host name (only warned about when missing).
    #[arg(long = "host", value_name = "NAME")]
    hosts: Vec<String>,
    /// Look for system files (systemd drop-ins, /etc/default/pmcd,
    /// /etc/ld.so.preload) below DIR.
    #[arg(long, value_name = "DIR", default_value = "/")]
    root: PathBuf,
    /// The user pmcd runs as (its -U; a name or uid), for tls-nssdb: the
    /// database is read as this user, and the password file must belong to
    /// it. Default: pcp when run as root and that user exists, else you.
    #[arg(long, value_name = "NAME", value_parser = nss::ServiceUser::parse)]
    service_user: Option<nss::ServiceUser>,
    /// pmproxy's configuration file (its -c). Default:
    /// /etc/pcp/pmproxy/pmproxy.conf below --root.
    #[arg(long, value_name = "FILE")]
    pmproxy_conf: Option<PathBuf>,
    /// The pmproxy executable to check. Default: /usr/lib/pcp/bin/pmproxy or
    /// /usr/libexec/pcp/bin/pmproxy below --root.
    #[arg(long = "pmproxy", value_name = "FILE")]
    pmproxy_binary: Option<PathBuf>,
    /// pmcd's options file, checked for PCP 5's NSS options (-C, -M, -P),
    /// which pmcd 6 refuses. Default: $PCP_PMCDOPTIONS_PATH, else the
    /// PCP_PMCDOPTIONS_PATH of pcp.conf, else /etc/pcp/pmcd/pmcd.options
    /// (below --root).
    #[arg(long, value_name = "FILE")]
    pmcd_options: Option<PathBuf>,
    /// pmproxy's options file, checked like pmcd's (PCP 5's pmproxy took
    /// -C, -M, -P too; pmproxy 6 refuses them). Default:
    /// $PCP_PMPROXYOPTIONS_PATH, else the PCP_PMPROXYOPTIONS_PATH of
    /// pcp.conf, else /etc/pcp/pmproxy/pmproxy.options (below --root).
    #[arg(long, value_name = "FILE")]
    pmproxy_options: Option<PathBuf>,
    /// The pmcd whose live TLS metrics (mmv.pcp_secure.pmcd) are shown, as
    /// pminfo's -h takes it.
    #[arg(long, value_name = "HOST", default_value = "local:")]
    metrics_host: String,
}

/// The verdict of one check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Status {
    Ok,
    Warn,
    Fail,
}

impl Status {
    fn word(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Fail => "FAIL",
        }
    }
}

/// One line of the report.
#[derive(Debug)]
pub(crate) struct Check {
    pub(crate) name: String,
    pub(crate) status: Status,
    pub(crate) detail: String,
    pub(crate) fix: Option<String>,
}

/// All checks so far.
#[derive(Default)]
pub(super) struct Report {
    checks: Vec<Check>,
}

impl Report {
    fn push(&mut self, name: &str, status: Status, detail: String, fix: Option<String>) {
        self.checks.push(Check {
            name: name.to_string(),
            status,
            detail,
            fix,
        });
    }

    fn ok(&mut self, name: &str, detail: impl Into<String>) {
        self.push(name, Status::Ok, detail.into(), None);
    }

    fn warn(&mut self, name: &str, detail: impl Into<String>, fix: impl Into<String>) {
        self.push(name, Status::Warn, detail.into(), Some(fix.into()));
    }

    fn fail(&mut self, name: &str, detail: impl Into<String>, fix: impl Into<String>) {
        self.push(name, Status::Fail, detail.into(), Some(fix.into()));
    }

    fn failed(&self) -> bool {
        self.checks.iter().any(|c| c.status == Status::Fail)
    }

    fn text(&self) -> String {
        let mut out = String::new();
        for c in &self.checks {
            out.push_str(&format!("{:<4} {}: {}", c.status.word(), c.name, c.detail));
            if let Some(fix) = &c.fix {
                out.push_str(" — fix: ");
                out.push_str(fix);
            }
            out.push('\n');
        }
        out
    }

    fn json(&self) -> String {
        let items: Vec<String> = self
            .checks
            .iter()
            .map(|c| {
                format!(
                    "  {{\"check\": {}, \"status\": {}, \"detail\": {}, \"fix\": {}}}",
                    json_string(&c.name),
                    json_string(c.status.word()),
                    json_string(&c.detail),
                    c.fix
                        .as_deref()
                        .map(json_string)
                        .unwrap_or_else(|| "null".into())
                )
            })
            .collect();
        if items.is_empty() {
            "[]\n".to_string()
        } else {
            format!("[\n{}\n]\n", items.join(",\n"))
        }
    }
}

/// A JSON string literal.
pub(super) fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{2028}' || c == '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// What every section of checks is given.
pub(super) struct Context {
    /// The tls.conf in force (empty when there is none).
    conf: TlsConf,
    /// Its path, if any.
    conf_path: Option<PathBuf>,
    /// Its name for messages ("\"/etc/pcp/tls.conf\"" or "tls.conf").
    conf_name: String,
    /// The host names clients will use for this collector.
    hosts: Vec<String>,
    /// Whether they were named with --host.
    explicit_hosts: bool,
    /// The user pmcd runs as.
    user: nss::ServiceUser,
    /// Where the installation lives (--root).
    root: PathBuf,
    /// pmproxy's executable and configuration file, when named.
    pmproxy: pmproxy::Paths,
    /// pmcd's options file, when named (--pmcd-options).
    pmcd_options: Option<PathBuf>,
    /// pmproxy's options file, when named (--pmproxy-options).
    pmproxy_options: Option<PathBuf>,
    /// The pmcd whose live TLS metrics are shown (pminfo's -h).
    metrics_host: String,
}

/// One named group of checks.
type Section = (&'static str, fn(&mut Report, &Context));

/// The report's sections, in order (`tls.conf` itself is checked first,
/// while reading it).
const SECTIONS: &[Section] = &[
    ("pmcd options", daemon_options::pmcd_options),
    ("collector (pmcd)", |r, c| {
        server(
            r,
            &c.conf,
            &c.conf_name,
            &c.hosts,
            c.explicit_hosts,
            &c.user,
        )
    }),
    ("monitor (clients)", |r, c| {
        client(r, &c.conf, c.conf_path.as_deref(), &c.conf_name)
    }),
    ("library and preload", |r, c| library(r, &c.root)),
    ("HTTPS server (pmproxy)", |r, c| {
        daemon_options::pmproxy_options(r, c);
        pmproxy::pmproxy(r, c)
    }),
    ("live TLS metrics", metrics::metrics),
];

/// Runs the subcommand.
pub(super) fn main(args: Args) -> ExitCode {
    let mut report = Report::default();
    let (conf, conf_path) = tls_conf(&mut report);
    crypto(&mut report, &conf);
    let conf_name = conf_path
        .as_ref()
        .map(|p| format!("\"{}\"", p.display()))
        .unwrap_or_else(|| "tls.conf".to_string());
    let (hosts, explicit_hosts) = if args.hosts.is_empty() {
        let mut hosts = vec!["localhost".to_string()];
        let own = pcp_secure::api::connection::local_host_name();
        if !own.is_empty() && own != "localhost" {
            hosts.push(own);
        }
        (hosts, false)
    } else {
        (args.hosts.clone(), true)
    };
    let context = Context {
        conf,
        conf_path,
        conf_name,
        hosts,
        explicit_hosts,
        user: args
            .service_user
            .unwrap_or_else(nss::ServiceUser::default_for_pmcd),
        root: args.root.clone(),
        pmproxy: pmproxy::Paths {
            binary: args.pmproxy_binary.clone(),
            conf: args.pmproxy_conf.clone(),
        },
        pmcd_options: args.pmcd_options.clone(),
        pmproxy_options: args.pmproxy_options.clone(),
        metrics_host: args.metrics_host.clone(),
    };
    for (_section, checks) in SECTIONS {
        checks(&mut report, &context);
    }
    if args.json {
        print!("{}", report.json());
    } else {
        print!("{}", report.text());
    }
    if report.failed() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

// ---------------------------------------------------------------------------
// Small helpers

pub(super) fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn json_strings_are_escaped() {
        assert_eq!(json_string("a\"b\\c\nd\u{1}"), "\"a\\\"b\\\\c\\nd\\u0001\"");
        assert_eq!(json_string("— ok"), "\"— ok\"");
    }

    #[test]
    fn systemd_words_honour_quotes() {
        assert_eq!(
            systemd_words(r#"A=1 "LD_PRELOAD=/x y.so" 'B=2 3' C=\"q"#),
            vec!["A=1", "LD_PRELOAD=/x y.so", "B=2 3", "C=\"q"]
        );
    }

    #[test]
    fn drop_ins_override_and_reset() {
        let root = tempfile::tempdir().unwrap();
        let d = root.path().join("etc/systemd/system/pmcd.service.d");
        fs::create_dir_all(&d).unwrap();
        fs::write(
            d.join("a.conf"),
            "[Service]\nEnvironment=LD_PRELOAD=/a/libpcp_secure.so.1\n",
        )
        .unwrap();
        assert_eq!(
            systemd_ld_preload(root.path(), "pmcd").unwrap().0,
            "/a/libpcp_secure.so.1"
        );
        fs::write(d.join("b.conf"), "[Service]\nEnvironment=\n").unwrap();
        assert!(systemd_ld_preload(root.path(), "pmcd").is_none());
        fs::write(d.join("c.conf"), "[Unit]\nEnvironment=LD_PRELOAD=/u.so\n[Service]\nEnvironment=\"LD_PRELOAD=/c/libpcp_secure.so.1\" X=1\n").unwrap();
        let (value, origin) = systemd_ld_preload(root.path(), "pmcd").unwrap();
        assert_eq!(value, "/c/libpcp_secure.so.1");
        assert_eq!(origin, "/etc/systemd/system/pmcd.service.d/c.conf");
    }
}
