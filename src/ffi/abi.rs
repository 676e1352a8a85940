//! The one list of the library's exports, and what is made from it: the C
//! header `include/pcp_secure.h` (`tests/header.rs` checks that the file
//! is current; `make header` rewrites it), the symbol checks against the
//! built library and the Debian symbols file, and the library's column of
//! MATRIX.md (`tests/abi.rs`).
//!
//! Each entry is the `EXPORT` that [`entry!`](super) wrote next to the
//! function, so the list cannot name a function that does not exist, and
//! the test comparing it with `nm -D` finds an export that is missing here.

use std::fmt::Write;

use super::{data, info, server, ssl, upgrade};

/// One exported C function as [`entry!`](super) recorded it: Rust
/// spellings of the types, and the documentation lines.
#[derive(Debug)]
pub struct Export {
    /// The symbol.
    pub name: &'static str,
    /// Parameter names and their Rust types.
    pub args: &'static [(&'static str, &'static str)],
    /// The Rust return type (`()` for none).
    pub ret: &'static str,
    /// The `///` lines, each without the leading `///`.
    pub docs: &'static [&'static str],
}

/// Every export, in the header's order: the upgrade, server set-up, the
/// data path, then our own functions.
pub const EXPORTS: &[Export] = &[
    upgrade::__pmSecureClientHandshake::EXPORT,
    upgrade::__pmSecureClientConnect::EXPORT,
    upgrade::__pmSecureServerHandshake::EXPORT,
    server::__pmSecureServerInit::EXPORT,
    server::__pmGetSecureConfig::EXPORT,
    server::__pmSecureServerSetup::EXPORT,
    server::__pmSecureServerCertificateSetup::EXPORT,
    server::__pmSecureServerShutdown::EXPORT,
    server::__pmServerHasFeature::EXPORT,
    data::__pmSend::EXPORT,
    data::__pmRecv::EXPORT,
    data::__pmRead::EXPORT,
    data::__pmWrite::EXPORT,
    data::__pmCloseSocket::EXPORT,
    data::__pmSocketClosed::EXPORT,
    data::__pmSecureSocketsError::EXPORT,
    data::select::EXPORT,
    info::pcp_secure_version::EXPORT,
    info::pcp_secure_session_info::EXPORT,
];

/// The OpenSSL functions the library defines (for pmproxy's HTTPS, on the
/// objects made from its own server context; forwarded to libssl for any
/// other). They are OpenSSL's API, declared by `<openssl/ssl.h>`, so the
/// header does not declare them.
pub const OPENSSL_EXPORTS: &[Export] = &[
    ssl::SSL_new::EXPORT,
    ssl::SSL_set_accept_state::EXPORT,
    ssl::SSL_set_bio::EXPORT,
    ssl::SSL_read_ex::EXPORT,
    ssl::SSL_write::EXPORT,
    ssl::SSL_get_error::EXPORT,
    ssl::SSL_get1_peer_certificate::EXPORT,
    ssl::SSL_free::EXPORT,
];

/// The C spelling of a Rust type as `entry!` saw it ("* const c_char" is
/// `const char *`).
pub fn c_type(rust: &str) -> String {
    let joined = rust
        .replace(" :: ", "::")
        .replace(":: ", "::")
        .replace(" ::", "::");
    let spaced = joined.replace('*', " * ");
    let words: Vec<&str> = spaced.split_whitespace().collect();
    c_type_of(&words)
}

fn c_type_of(words: &[&str]) -> String {
    match words {
        ["*", "const", rest @ ..] => format!("const {}*", pointee(rest)),
        ["*", "mut", rest @ ..] => format!("{}*", pointee(rest)),
        [one] => base_type(one).to_string(),
        ["(", ")"] | [] => "void".to_string(),
        _ => words.join(" "),
    }
}

/// A pointer's target, spelled so that `*` can follow it directly.
fn pointee(words: &[&str]) -> String {
    let inner = c_type_of(words);
    if inner.ends_with('*') {
        inner
    } else {
        format!("{inner} ")
    }
}

fn base_type(rust: &str) -> &str {
    let name = rust.rsplit("::").next().unwrap_or(rust);
    match name {
        "c_int" => "int",
        "c_char" => "char",
        "c_void" => "void",
        "()" => "void",
        "timeval" => "struct timeval",
        other => other,
    }
}

impl Export {
    /// The C prototype, e.g. `ssize_t __pmSend(int fd, const void *buffer,
    /// size_t length, int flags);`.
    pub fn prototype(&self) -> String {
        let ret = c_type(self.ret);
        let args = if self.args.is_empty() {
            "void".to_string()
        } else {
            self.args
                .iter()
                .map(|(name, ty)| {
                    let ty = c_type(ty);
                    if ty.ends_with('*') {
                        format!("{ty}{name}")
                    } else {
                        format!("{ty} {name}")
                    }
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        let gap = if ret.ends_with('*') { "" } else { " " };
        format!("{ret}{gap}{}({args});", self.name)
    }
}

const PREAMBLE: &str = r#"/*
 * libpcp_secure: a rustls-based replacement for the TLS layer of
 * Performance Co-Pilot's libpcp (PCP 6 and 7 ABI).
 *
 * Link with `pkg-config --cflags --libs libpcp_secure`.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#ifndef PCP_SECURE_H
#define PCP_SECURE_H

/*
 * Generated from the library's list of exports (src/ffi/abi.rs); do not
 * edit. Regenerate with `make header`.
 */

#include <stddef.h>
#include <sys/types.h>
#include <sys/select.h>
#include <sys/time.h>

/**
 * libpcp's hash table of connection attributes; opaque here and passed on
 * unchanged to libpcp's SASL code.
 */
typedef struct __pmHashCtl __pmHashCtl;

/**
 * libpcp's parsed `tls.conf` (`__pmSecureConfig`); every field is a
 * NUL-terminated string or NULL.
 */
typedef struct __pmSecureConfig {
    char *cacertfile;     /* tls-ca-cert-file */
    char *cacertdir;      /* tls-ca-cert-dir */
    char *certfile;       /* tls-cert-file */
    char *keyfile;        /* tls-key-file */
    char *ciphers;        /* tls-ciphers (TLS 1.2) */
    char *ciphersuites;   /* tls-ciphersuites (TLS 1.3) */
    char *clientcertfile; /* tls-client-cert-file */
    char *clientkeyfile;  /* tls-client-key-file */
    char *clientverify;   /* tls-verify-clients */
} __pmSecureConfig;

#ifdef __cplusplus
extern "C" {
#endif
"#;

const POSTAMBLE: &str = r#"
#ifdef __cplusplus
}  /* extern "C" */
#endif

#endif  /* PCP_SECURE_H */
"#;

/// The text of `include/pcp_secure.h`.
pub fn header() -> String {
    let mut out = String::from(PREAMBLE);
    for export in EXPORTS {
        out.push_str("\n/**\n");
        for line in export.docs {
            let line = line.strip_prefix(' ').unwrap_or(line);
            if line.is_empty() {
                out.push_str(" *\n");
            } else {
                let _ = writeln!(out, " * {line}");
            }
        }
        out.push_str(" */\n");
        out.push_str(&export.prototype());
        out.push('\n');
    }
    out.push_str(POSTAMBLE);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rust_types_become_c_types() {
        assert_eq!(c_type("c_int"), "int");
        assert_eq!(c_type("* const c_char"), "const char *");
        assert_eq!(c_type("*mut c_void"), "void *");
        assert_eq!(c_type("* mut libc :: fd_set"), "fd_set *");
        assert_eq!(c_type("*mut libc::timeval"), "struct timeval *");
        assert_eq!(c_type("()"), "void");
        assert_eq!(c_type("ssize_t"), "ssize_t");
    }

    #[test]
    fn prototypes_read_like_c() {
        let send = EXPORTS.iter().find(|e| e.name == "__pmSend").unwrap();
        assert_eq!(
            send.prototype(),
            "ssize_t __pmSend(int fd, const void *buffer, size_t length, int flags);"
        );
        let version = EXPORTS
            .iter()
            .find(|e| e.name == "pcp_secure_version")
            .unwrap();
        assert_eq!(version.prototype(), "const char *pcp_secure_version(void);");
        let close = EXPORTS
            .iter()
            .find(|e| e.name == "__pmCloseSocket")
            .unwrap();
        assert_eq!(close.prototype(), "void __pmCloseSocket(int fd);");
    }

    #[test]
    fn names_are_unique_and_every_export_is_documented() {
        let all: Vec<&Export> = EXPORTS.iter().chain(OPENSSL_EXPORTS).collect();
        let mut names: Vec<&str> = all.iter().map(|e| e.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), all.len());
        for e in all {
            assert!(e.docs.iter().any(|l| l.contains("# Safety")), "{}", e.name);
        }
    }
}
