//! The library's one list of exports (`src/ffi/abi.rs`) against everything
//! made or kept from it: the symbols the built shared library really
//! exports (`nm -D`), the prototypes of the checked-in header, the Debian
//! symbols file, and MATRIX.md (with the list of definitions the library
//! forwards to, `src/interpose/next.rs`).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

use pcp_secure::api::{EXPORTS, FORWARDS, OPENSSL_EXPORTS, OPENSSL_FORWARDS};
use pcp_secure_test_support as support;

/// Every export: libpcp's functions, ours, and the OpenSSL ones.
fn listed() -> BTreeSet<String> {
    EXPORTS
        .iter()
        .chain(OPENSSL_EXPORTS)
        .map(|e| e.name.to_string())
        .collect()
}

/// The exports the header declares (OpenSSL's are `<openssl/ssl.h>`'s).
fn declared_in_header() -> BTreeSet<String> {
    EXPORTS.iter().map(|e| e.name.to_string()).collect()
}

fn repo_file(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Exactly the listed functions are exported, unversioned (so that they
/// bind libpcp's `@PCP_3.x` and `@PCP_4.x` references alike).
#[test]
fn the_shared_library_exports_exactly_the_list() {
    let lib = support::lib_path();
    let out = Command::new("nm")
        .args(["-D", "--defined-only"])
        .arg(&lib)
        .output()
        .expect("nm runs");
    assert!(out.status.success(), "nm -D {} failed", lib.display());
    let text = String::from_utf8_lossy(&out.stdout);
    let mut exported = BTreeSet::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if let [_, "T", name] = fields[..] {
            assert!(!name.contains('@'), "{name} must be unversioned");
            exported.insert(name.to_string());
        }
    }
    assert_eq!(
        exported,
        listed(),
        "nm -D {} against src/ffi/abi.rs",
        lib.display()
    );
}

/// Every listed function has its prototype in the header, and the header
/// declares no other function.
#[test]
fn the_header_declares_exactly_the_list() {
    let header = repo_file("include/pcp_secure.h");
    for export in EXPORTS {
        assert!(
            header.contains(&export.prototype()),
            "include/pcp_secure.h lacks {}",
            export.prototype()
        );
    }
    let declared: BTreeSet<String> = header
        .lines()
        .filter(|l| l.ends_with(");") && !l.starts_with(' ') && l.contains('('))
        .filter_map(|l| {
            l.split('(')
                .next()?
                .rsplit([' ', '*'])
                .next()
                .map(str::to_string)
        })
        .collect();
    assert_eq!(
        declared,
        declared_in_header(),
        "functions declared in include/pcp_secure.h"
    );
}

/// The Debian symbols file tracks every export (dpkg-gensymbols fails a
/// build whose library gained or lost one).
#[test]
fn the_debian_symbols_file_lists_exactly_the_list() {
    let symbols = repo_file("packaging/libpcp-secure1.symbols");
    let names: BTreeSet<String> = symbols
        .lines()
        .filter(|l| l.starts_with(' '))
        .filter_map(|l| {
            l.split_whitespace()
                .next()?
                .strip_suffix("@Base")
                .map(str::to_string)
        })
        .collect();
    assert_eq!(names, listed(), "packaging/libpcp-secure1.symbols");
}

/// MATRIX.md (made by scripts/matrix from the three PCP releases) says
/// "interposed" for exactly the listed `__pm*` functions and `select`, and
/// "forwards"/"forwarded" for exactly the definitions the library calls.
#[test]
fn matrix_agrees_with_the_lists() {
    let matrix = repo_file("MATRIX.md");
    let mut interposed = BTreeSet::new();
    let mut forwarding = BTreeSet::new();
    let libpcp_table = matrix
        .split("## OpenSSL functions")
        .next()
        .unwrap_or_default();
    for line in libpcp_table.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let name = cells[1].trim_matches('`').to_string();
        let status = cells[2];
        if status.starts_with("interposed") {
            interposed.insert(name.clone());
        }
        if status.contains("forward") {
            forwarding.insert(name);
        }
    }
    let libpcp_side: BTreeSet<String> = listed()
        .into_iter()
        .filter(|n| n.starts_with("__pm") || n == "select")
        .collect();
    assert_eq!(interposed, libpcp_side, "interposed rows of MATRIX.md");
    let forwards: BTreeSet<String> = FORWARDS
        .iter()
        .map(|s| s.to_string_lossy().into_owned())
        .collect();
    assert_eq!(forwarding, forwards, "forwarding rows of MATRIX.md");
    for version in ["6.0.3", "6.3.8", "7.2.2"] {
        assert!(
            matrix.contains(version),
            "MATRIX.md has no {version} column"
        );
    }
    // The OpenSSL table: "defined" for exactly our SSL_* functions,
    // "forwards"/"called" for exactly the OpenSSL functions we call, and
    // every SSL_* function some release's pmproxy imports is defined.
    let table = matrix
        .split("## OpenSSL functions")
        .nth(1)
        .expect("MATRIX.md has the OpenSSL table");
    let mut defined = BTreeSet::new();
    let mut called = BTreeSet::new();
    for line in table.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let name = cells[1].trim_matches('`').to_string();
        if cells[2].starts_with("defined") {
            defined.insert(name.clone());
        }
        if cells[2].contains("forwards") || cells[2] == "called" {
            called.insert(name.clone());
        }
        if name.starts_with("SSL_") && cells[3..6].contains(&"imports") {
            assert!(
                cells[2].starts_with("defined"),
                "pmproxy imports {name}, which the library does not define"
            );
        }
    }
    let ours: BTreeSet<String> = OPENSSL_EXPORTS.iter().map(|e| e.name.to_string()).collect();
    assert_eq!(defined, ours, "defined rows of MATRIX.md's OpenSSL table");
    let forwards: BTreeSet<String> = OPENSSL_FORWARDS
        .iter()
        .map(|s| s.to_string_lossy().into_owned())
        .collect();
    assert_eq!(called, forwards, "called rows of MATRIX.md's OpenSSL table");
}
