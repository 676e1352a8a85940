//! Facts about the program the library is loaded into that change what the
//! library may take over. A program that links libssl itself (pmproxy, for
//! its HTTPS server) uses the server context from `__pmSecureServerInit` as
//! an OpenSSL `SSL_CTX`: it may have ours only when every `SSL_*` function
//! it imports is one the library defines for its own objects (a function
//! that reached libssl with one of ours would crash it). Otherwise its
//! server TLS stays with libpcp's own OpenSSL code, untouched.

#![forbid(unsafe_code)]

use std::sync::OnceLock;

use object::read::elf::{Dyn, ElfFile64, FileHeader};
use object::{elf, Endianness, Object, ObjectSymbol};

/// The running program's name: its executable's file name ("pmcd"), or
/// `None` when it cannot be found.
pub(crate) fn name() -> Option<String> {
    let exe = std::env::current_exe().ok()?;
    Some(exe.file_name()?.to_string_lossy().into_owned())
}

/// Who serves the program's TLS when it uses the server context itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum OpensslServer {
    /// The program does not link libssl: the context is only ours to use.
    NotLinked,
    /// The program links libssl and imports only `SSL_*` functions the
    /// library defines: our context, served by rustls.
    Ours,
    /// The program imports these `SSL_*` functions the library does not
    /// define: its server TLS stays libpcp's.
    Libpcp(Vec<String>),
}

/// What `/proc/self/exe` says, read once. `defined` lists the `SSL_*`
/// functions the library defines. An executable that cannot be read or
/// parsed counts as not linking libssl (the library then serves TLS
/// itself, as for pmcd).
pub(crate) fn openssl_server(defined: &[&str]) -> OpensslServer {
    static ANSWER: OnceLock<OpensslServer> = OnceLock::new();
    ANSWER
        .get_or_init(|| {
            std::fs::read("/proc/self/exe")
                .ok()
                .and_then(|data| judge(&data, defined))
                .unwrap_or(OpensslServer::NotLinked)
        })
        .clone()
}

/// What an executable takes from libssl.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SslUse {
    /// It does not link libssl.
    NotLinked,
    /// It links libssl and imports these `SSL_*` functions (sorted, without
    /// their symbol versions).
    Imports(Vec<String>),
}

/// What the ELF64 executable `data` takes from libssl; `None` when it is
/// not one.
pub fn ssl_use(data: &[u8]) -> Option<SslUse> {
    let libs = needed_libraries(data)?;
    if !libs.iter().any(|l| is_libssl(l)) {
        return Some(SslUse::NotLinked);
    }
    ssl_imports(data).map(SslUse::Imports)
}

/// The verdict for the ELF64 executable `data`; `None` when it is not one.
fn judge(data: &[u8], defined: &[&str]) -> Option<OpensslServer> {
    let SslUse::Imports(imports) = ssl_use(data)? else {
        return Some(OpensslServer::NotLinked);
    };
    let missing: Vec<String> = imports
        .into_iter()
        .filter(|name| !defined.contains(&name.as_str()))
        .collect();
    Some(if missing.is_empty() {
        OpensslServer::Ours
    } else {
        OpensslServer::Libpcp(missing)
    })
}

/// The `DT_NEEDED` names of an ELF64 executable, or `None` when `data` is
/// not one.
fn needed_libraries(data: &[u8]) -> Option<Vec<String>> {
    let file = ElfFile64::<Endianness>::parse(data).ok()?;
    let endian = file.endian();
    let header = file.elf_header();
    let sections = header.sections(endian, data).ok()?;
    let (dynamic, index) = sections.dynamic(endian, data).ok()??;
    let strings = sections.strings(endian, data, index).ok()?;
    let mut names = Vec::new();
    for entry in dynamic {
        if entry.d_tag(endian) == elf::DT_NEEDED {
            let offset = u32::try_from(entry.d_val(endian)).ok()?;
            let name = strings.get(offset).ok()?;
            names.push(String::from_utf8_lossy(name).into_owned());
        }
    }
    Some(names)
}

/// The `SSL_*` functions an ELF64 executable imports (undefined dynamic
/// symbols), without their version (`SSL_new@OPENSSL_3.0.0` is `SSL_new`).
fn ssl_imports(data: &[u8]) -> Option<Vec<String>> {
    let file = ElfFile64::<Endianness>::parse(data).ok()?;
    let mut names: Vec<String> = file
        .dynamic_symbols()
        .filter(|s| s.is_undefined())
        .filter_map(|s| {
            s.name()
                .ok()
                .map(|n| n.split('@').next().unwrap_or(n).to_string())
        })
        .filter(|n| n.starts_with("SSL_"))
        .collect();
    names.sort();
    names.dedup();
    Some(names)
}

/// `libssl.so`, `libssl.so.3`, `libssl.so.1.1`, ...
fn is_libssl(name: &str) -> bool {
    name == "libssl.so" || name.starts_with("libssl.so.")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_of_libssl() {
        assert!(is_libssl("libssl.so.3"));
        assert!(is_libssl("libssl.so.1.1"));
        assert!(!is_libssl("libssl3.so"));
        assert!(!is_libssl("libcrypto.so.3"));
    }

    #[test]
    fn reads_the_needed_libraries_of_an_executable() {
        // The test binary itself: a Rust executable needs libc, not libssl.
        let data = std::fs::read("/proc/self/exe").unwrap();
        let libs = needed_libraries(&data).unwrap();
        assert!(libs.iter().any(|l| l.starts_with("libc.so")), "{libs:?}");
        assert_eq!(openssl_server(&[]), OpensslServer::NotLinked);
        assert_eq!(needed_libraries(b"not an ELF file"), None);
        assert_eq!(judge(b"not an ELF file", &[]), None);
    }

    /// Debian's pmproxy (installed by scripts/install-deps) links libssl and
    /// imports the `SSL_*` functions its HTTPS server uses.
    #[test]
    fn judges_pmproxy_by_the_ssl_functions_it_imports() {
        let Ok(data) = std::fs::read("/usr/lib/pcp/bin/pmproxy") else {
            panic!("/usr/lib/pcp/bin/pmproxy is missing: run scripts/install-deps");
        };
        let imports = ssl_imports(&data).unwrap();
        for name in ["SSL_new", "SSL_read_ex", "SSL_write", "SSL_free"] {
            assert!(imports.iter().any(|i| i == name), "{imports:?}");
        }
        let all: Vec<&str> = imports.iter().map(String::as_str).collect();
        assert_eq!(judge(&data, &all), Some(OpensslServer::Ours));
        assert_eq!(
            judge(&data, &all[1..]),
            Some(OpensslServer::Libpcp(vec![imports[0].clone()]))
        );
    }
}
