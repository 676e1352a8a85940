//! Facts about the program the library is loaded into that change what the
//! library may take over. A program that links libssl itself (pmproxy, for
//! its HTTPS server) uses the server context from `__pmSecureServerInit` as
//! an OpenSSL `SSL_CTX`: handing it one of ours would crash it, so its
//! server TLS stays with libpcp's own OpenSSL code, untouched.

#![forbid(unsafe_code)]

use std::sync::OnceLock;

use object::read::elf::{Dyn, ElfFile64, FileHeader};
use object::{elf, Endianness};

/// True when the running program's executable names libssl among the
/// libraries it needs (not through libpcp: directly). Read once, from
/// `/proc/self/exe`; an executable that cannot be read or parsed counts as
/// not linking libssl (the library then serves TLS itself, as for pmcd).
pub(crate) fn links_openssl() -> bool {
    static ANSWER: OnceLock<bool> = OnceLock::new();
    *ANSWER.get_or_init(|| {
        std::fs::read("/proc/self/exe")
            .ok()
            .and_then(|data| needed_libraries(&data))
            .is_some_and(|libs| libs.iter().any(|l| is_libssl(l)))
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
        assert!(!links_openssl());
        assert_eq!(needed_libraries(b"not an ELF file"), None);
    }
}
