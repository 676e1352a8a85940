//! `pcp-secure`: set up, check and run secure PCP in a few commands.
//!
//! Subcommands: `verify` (check this installation), `cert` (make a CA,
//! server and client certificates), `trust` (the per-user trust store),
//! `run` (run a PCP command with the library preloaded), `systemd` (a
//! drop-in that preloads it into a service) and `probe` (what a pmcd
//! offers and whether we trust it).

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cert;
mod libpath;
mod probe;
mod run;
mod systemd;
mod trust;
mod user;
mod verify;

/// Set up, check and run secure PCP (TLS through libpcp_secure).
#[derive(Parser)]
#[command(name = "pcp-secure", version = pcp_secure::api::version_str(), about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check the local collector and monitor TLS setup (like `pcp verify --secure`).
    Verify(verify::Args),
    /// Create a local CA, server and client certificates (PEM).
    Cert(cert::Args),
    /// List, show, add and remove the servers you trust (your trust store).
    Trust(trust::Args),
    /// Run a PCP command with libpcp_secure preloaded.
    Run(run::Args),
    /// Print (or install) a systemd drop-in that preloads libpcp_secure into a PCP service.
    Systemd(systemd::Args),
    /// Connect to a pmcd and report its TLS offer, certificate and our trust in it.
    Probe(probe::Args),
    /// Print the library's exports and the libpcp definitions it forwards
    /// to, one "export NAME" or "forward NAME" a line (for scripts/matrix).
    #[command(hide = true)]
    Abi,
}

fn main() -> ExitCode {
    // Like every command-line tool: a reader that goes away (`| head -1`)
    // ends us quietly, instead of a failed write to stdout.
    // SAFETY: signal() with SIG_DFL takes no pointers and installs no handler.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    let cli = Cli::parse();
    match cli.command {
        Command::Verify(args) => verify::main(args),
        Command::Cert(args) => cert::main(args),
        Command::Trust(args) => trust::main(args),
        Command::Run(args) => run::main(args),
        Command::Systemd(args) => systemd::main(args),
        Command::Probe(args) => probe::main(args),
        Command::Abi => {
            for export in pcp_secure::api::EXPORTS {
                println!("export {}", export.name);
            }
            for forward in pcp_secure::api::FORWARDS {
                println!("forward {}", forward.to_string_lossy());
            }
            for export in pcp_secure::api::OPENSSL_EXPORTS {
                println!("openssl-export {}", export.name);
            }
            for forward in pcp_secure::api::OPENSSL_FORWARDS {
                println!("openssl-forward {}", forward.to_string_lossy());
            }
            ExitCode::SUCCESS
        }
    }
}
