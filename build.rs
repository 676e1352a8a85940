//! Gives the shared library a SONAME carrying the major version, so that
//! `libpcp_secure.so.1` can be installed and linked like any C library, and
//! records the rustls and aws-lc-rs versions (and, in the FIPS build, the
//! FIPS module's) for `pcp_secure_version()` and the target
//! architecture for the tool's multiarch library lookup.

fn main() {
    let major = std::env::var("CARGO_PKG_VERSION_MAJOR").unwrap_or_else(|_| "1".into());
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libpcp_secure.so.{major}");
    let lock = std::fs::read_to_string("Cargo.lock").unwrap_or_default();
    let version = |name: &str| {
        lock.split("[[package]]")
            .find(|p| p.contains(&format!("\nname = \"{name}\"\n")))
            .and_then(|p| p.lines().find_map(|l| l.strip_prefix("version = \"")))
            .map(|v| v.trim_end_matches('"').to_string())
            .unwrap_or_else(|| "unknown".into())
    };
    println!(
        "cargo:rustc-env=PCP_SECURE_RUSTLS_VERSION={}",
        version("rustls")
    );
    println!(
        "cargo:rustc-env=PCP_SECURE_AWS_LC_RS_VERSION={}",
        version("aws-lc-rs")
    );
    let fips = if std::env::var_os("CARGO_FEATURE_FIPS").is_some() {
        format!(
            ", FIPS 140-3 module aws-lc-fips-sys {}",
            version("aws-lc-fips-sys")
        )
    } else {
        String::new()
    };
    println!("cargo:rustc-env=PCP_SECURE_FIPS_MODULE={fips}");
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_else(|_| "x86_64".into());
    println!("cargo:rustc-env=PCP_SECURE_TARGET_ARCH={arch}");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=Cargo.lock");
}
