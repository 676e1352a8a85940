//! Keeps the checked-in C header, include/pcp_secure.h, in step with the
//! Rust exports: the header is generated from the library's one list of
//! exports (`pcp_secure::api::header`, from `src/ffi/abi.rs`) and compared
//! byte for byte with the file.
//!
//! With `PCP_SECURE_BLESS=1` the file is rewritten instead (`make header`).

use std::path::{Path, PathBuf};

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The header as the library's export list makes it.
fn generate() -> String {
    pcp_secure::api::header()
}

fn first_difference(old: &str, new: &str) -> String {
    let mut old_lines = old.lines();
    let mut new_lines = new.lines();
    let mut line = 1;
    loop {
        match (old_lines.next(), new_lines.next()) {
            (None, None) => return "the files differ only in line endings".into(),
            (a, b) if a == b => line += 1,
            (a, b) => {
                return format!(
                    "first difference at line {line}:\n  checked in: {}\n  generated:  {}",
                    a.unwrap_or("<end of file>"),
                    b.unwrap_or("<end of file>")
                )
            }
        }
    }
}

#[test]
fn header_is_up_to_date() {
    let dir = manifest_dir();
    let header = dir.join("include").join("pcp_secure.h");
    let generated = generate();

    // Sanity checks on the generated text itself, so that a silently empty
    // or broken generation cannot be blessed unnoticed.
    for needle in [
        "#ifndef PCP_SECURE_H",
        "#include <sys/select.h>",
        "struct timeval *timeout",
        "ssize_t __pmSend(int fd, const void *buffer, size_t length, int flags);",
        "typedef struct __pmHashCtl __pmHashCtl;",
        "int __pmSecureClientHandshake(int fd, int flags, const char *hostname, __pmHashCtl *attrs);",
        "const char *pcp_secure_version(void);",
    ] {
        assert!(
            generated.contains(needle),
            "generated header lacks {needle:?}:\n{generated}"
        );
    }

    if std::env::var_os("PCP_SECURE_BLESS").is_some_and(|v| v == "1") {
        std::fs::create_dir_all(header.parent().unwrap()).unwrap();
        std::fs::write(&header, &generated)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", header.display()));
        eprintln!("wrote {}", header.display());
        return;
    }

    let current = std::fs::read_to_string(&header).unwrap_or_default();
    if current != generated {
        let fresh = Path::new(env!("CARGO_TARGET_TMPDIR")).join("pcp_secure.h.generated");
        let _ = std::fs::write(&fresh, &generated);
        panic!(
            "include/pcp_secure.h is out of date with the Rust exports.\n{}\n\
             See the whole change with: diff -u {} {}\n\
             Regenerate it with `make header` (or PCP_SECURE_BLESS=1 cargo test --test header) and commit it.",
            first_difference(&current, &generated),
            header.display(),
            fresh.display()
        );
    }
}
