//! `pcp-secure` never panics on bad input or a reader that goes away: a
//! one-line error and a non-zero status, or a quiet end.

use std::io::Read;
use std::process::{Command, Stdio};

fn tool() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pcp-secure"));
    cmd.stdin(Stdio::null());
    cmd
}

/// `probe --timeout` takes a number of seconds; NaN, infinity, 0 and
/// negative values are refused by name.
#[test]
fn probe_refuses_a_timeout_that_is_not_a_number_of_seconds() {
    for bad in ["NaN", "inf", "0", "-5", "soon", "1e9"] {
        let out = tool()
            .args(["probe", &format!("--timeout={bad}"), "127.0.0.1:1"])
            .output()
            .expect("pcp-secure runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "--timeout {bad} must be refused");
        assert!(!stderr.contains("panicked"), "--timeout {bad}: {stderr}");
        assert!(
            stderr.contains(&format!("\"{bad}\" is not a number of seconds")),
            "--timeout {bad}: {stderr}"
        );
    }
}

/// Output into a pipe whose reader has gone (`| head -0`) ends the tool
/// quietly (SIGPIPE, as for any command-line tool), never with a panic.
#[test]
fn a_closed_pipe_ends_the_tool_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = tool()
        .args(["verify"])
        .env("PCP_TLSCONF_PATH", dir.path().join("tls.conf"))
        .env("HOME", dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("pcp-secure runs");
    drop(child.stdout.take());
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let status = child.wait().unwrap();
    assert!(!stderr.contains("panicked"), "{stderr}");
    use std::os::unix::process::ExitStatusExt;
    assert!(
        status.success() || status.signal() == Some(libc::SIGPIPE) || status.code() == Some(1),
        "{status:?}: {stderr}"
    );
}
