//! Gives the shared library a SONAME carrying the major version, so that
//! `libpcp_secure.so.1` can be installed and linked like any C library, and
//! records the rustls version for `pcp_secure_version()` and the target
//! architecture for the tool's multiarch library lookup.

fn main() {
    let major = std::env::var("CARGO_PKG_VERSION_MAJOR").unwrap_or_else(|_| "1".into());
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libpcp_secure.so.{major}");
    let lock = std::fs::read_to_string("Cargo.lock").unwrap_or_default();
    let rustls = lock
        .split("[[package]]")
        .find(|p| p.contains("\nname = \"rustls\"\n"))
        .and_then(|p| p.lines().find_map(|l| l.strip_prefix("version = \"")))
        .map(|v| v.trim_end_matches('"').to_string())
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=PCP_SECURE_RUSTLS_VERSION={rustls}");
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_else(|_| "x86_64".into());
    println!("cargo:rustc-env=PCP_SECURE_TARGET_ARCH={arch}");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=Cargo.lock");
}
