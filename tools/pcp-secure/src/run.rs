//! `pcp-secure run -- COMMAND [ARGS...]`: runs a command (pminfo, pmval,
//! pmlogger, pmcd, ...) with libpcp_secure preloaded.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitCode};

use crate::libpath;

/// Arguments of `pcp-secure run`.
#[derive(clap::Args)]
#[command(after_help = "\
The library is put first in LD_PRELOAD (entries already there are kept).
The command replaces pcp-secure, so its exit status is the command's.
Exit status 125: libpcp_secure not found; 126: the command cannot be run;
127: the command was not found.

Example: pcp-secure run -- pminfo -h collector.example.com -f kernel.all.load")]
pub(crate) struct Args {
    /// The command and its arguments (after `--`).
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "COMMAND"
    )]
    command: Vec<OsString>,
}

/// Runs the subcommand.
pub(crate) fn main(args: Args) -> ExitCode {
    let lib = match libpath::find() {
        Ok(lib) => lib,
        Err(e) => {
            eprintln!("pcp-secure run: {e}");
            return ExitCode::from(125);
        }
    };
    let preload = preload_value(lib.as_os_str(), std::env::var_os("LD_PRELOAD").as_deref());
    let (program, rest) = args.command.split_first().expect("clap requires a command");
    let error = Command::new(program)
        .args(rest)
        .env("LD_PRELOAD", preload)
        .exec();
    eprintln!(
        "pcp-secure run: cannot run \"{}\": {error}",
        program.to_string_lossy()
    );
    ExitCode::from(if error.kind() == std::io::ErrorKind::NotFound {
        127
    } else {
        126
    })
}

/// `lib` followed by the entries of the current `LD_PRELOAD`, colon
/// separated, without any other libpcp_secure (two copies would each keep
/// their own session table).
fn preload_value(lib: &OsStr, current: Option<&OsStr>) -> OsString {
    let mut out = lib.as_bytes().to_vec();
    let current = current.map(OsStr::as_bytes).unwrap_or_default();
    for entry in current.split(|b| *b == b':' || b.is_ascii_whitespace()) {
        let ours = entry
            .rsplit(|b| *b == b'/')
            .next()
            .is_some_and(|name| name.starts_with(b"libpcp_secure.so"));
        if !entry.is_empty() && !ours {
            out.push(b':');
            out.extend_from_slice(entry);
        }
    }
    OsString::from_vec(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn library_goes_first_once() {
        let lib = OsStr::new("/l/libpcp_secure.so.1");
        assert_eq!(preload_value(lib, None), "/l/libpcp_secure.so.1");
        assert_eq!(
            preload_value(
                lib,
                Some(OsStr::new(
                    "/a.so /l/libpcp_secure.so.1:/b.so /o/libpcp_secure.so"
                ))
            ),
            "/l/libpcp_secure.so.1:/a.so:/b.so"
        );
    }
}
