//! Descriptors the library has no session for are libpcp's business: the
//! four data-path exports hand them to the next definition (libpcp's own,
//! which may carry its own TLS on them, as PCP 7.2's HTTPS push does) and
//! never send or receive on them directly. A stand-in "libpcp"
//! (tests/peers/next_libpcp.c) preloaded after the library marks every byte
//! that goes through it.

use pcp_secure_test_support as support;

use std::path::PathBuf;
use std::process::{Command, Stdio};

const SCRIPT: &str = r#"
import ctypes, socket
lib = ctypes.CDLL(None)
a, b = socket.socketpair()
for name in ("__pmSend", "__pmWrite"):
    fn = getattr(lib, name)
    fn.restype = ctypes.c_ssize_t
    data = b"secret"
    if name == "__pmSend":
        n = fn(a.fileno(), data, ctypes.c_size_t(len(data)), 0)
    else:
        n = fn(a.fileno(), data, ctypes.c_size_t(len(data)))
    print(name, n, b.recv(100).decode())
for name in ("__pmRecv", "__pmRead"):
    fn = getattr(lib, name)
    fn.restype = ctypes.c_ssize_t
    buf = ctypes.create_string_buffer(64)
    if name == "__pmRecv":
        n = fn(a.fileno(), buf, ctypes.c_size_t(64), 0)
    else:
        n = fn(a.fileno(), buf, ctypes.c_size_t(64))
    print(name, n, buf.value.decode())
"#;

#[test]
fn descriptors_without_a_session_go_to_libpcps_own_data_path() {
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("libnext_libpcp.so");
    let source = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/peers/next_libpcp.c");
    let cc = Command::new("cc")
        .args(["-shared", "-fPIC", "-O1", "-Wall", "-Werror", "-o"])
        .arg(&fake)
        .arg(&source)
        .status()
        .expect("cc runs");
    assert!(cc.success(), "cannot build {}", source.display());
    // Debian's python3, whatever python3 comes first in PATH.
    let out = Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(SCRIPT)
        .env(
            "LD_PRELOAD",
            format!("{} {}", support::lib_path().display(), fake.display()),
        )
        .stdin(Stdio::null())
        .output()
        .expect("python3 runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines,
        [
            "__pmSend 6 next-send:secret",
            "__pmWrite 6 next-write:secret",
            "__pmRecv 14 from-next-recv",
            "__pmRead 14 from-next-read",
        ],
        "every call must go through the next definition"
    );
}
