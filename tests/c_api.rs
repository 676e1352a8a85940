//! The C ABI as a C program sees it.
//!
//! Installs the library built by this very `cargo test` run (the cdylib and
//! staticlib next to the test binary, in target/<profile>/) into a
//! temporary prefix with scripts/install, then compiles each program of
//! c-tests/ with `cc` and `pkg-config --cflags --libs libpcp_secure` against
//! that prefix and runs it: the header's types and layout (abi), the
//! handshake test dynamically and statically linked, the failing-handshake
//! test (bad_ca), the plain pass-through test and the NSS-era server setup
//! from a certutil-made database (nssdb).
//! Also checks the shared library's SONAME and exported symbols.
//!
//! Needs cc, pkg-config, openssl, certutil, readelf and nm
//! (scripts/install-deps).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The symbols the C ABI promises (include/pcp_secure.h).
const EXPORTS: &[&str] = &[
    "__pmSecureClientHandshake",
    "__pmSecureServerHandshake",
    "__pmSecureServerInit",
    "__pmSecureServerShutdown",
    "__pmSecureServerSetup",
    "__pmSecureServerCertificateSetup",
    "__pmGetSecureConfig",
    "__pmServerHasFeature",
    "__pmSend",
    "__pmRecv",
    "__pmRead",
    "__pmWrite",
    "__pmCloseSocket",
    "__pmSocketClosed",
    "__pmSecureSocketsError",
    "select",
    "pcp_secure_version",
    "pcp_secure_session_info",
];

fn source_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Where cargo put the cdylib and staticlib built by this very test run.
///
/// The test binary lives in target/<profile>/deps/. `cargo test` builds the
/// library (all its crate types) into that deps/ directory, but copies the
/// cdylib and staticlib up to target/<profile>/ only for `cargo build`, so
/// the copies there may be stale; the deps/ files are used when present.
fn artifact_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("path of the test binary");
    let deps = exe.parent().expect("test binary directory").to_path_buf();
    let profile = if deps.file_name().is_some_and(|n| n == "deps") {
        deps.parent().unwrap().to_path_buf()
    } else {
        deps.clone()
    };
    let complete = |dir: &Path| {
        ["libpcp_secure.so", "libpcp_secure.a"]
            .iter()
            .all(|f| dir.join(f).is_file())
    };
    if complete(&deps) {
        return deps;
    }
    assert!(
        complete(&profile),
        "libpcp_secure.so and libpcp_secure.a are in neither {} nor {}: the test expects cargo to have built \
         the cdylib and staticlib of this profile (run `cargo build` first)",
        deps.display(),
        profile.display()
    );
    profile
}

fn show(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run `{}`: {e}", show(cmd)))
}

/// Runs a command that must succeed; returns its standard output.
fn run_ok(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "`{}` failed ({}):\n{}{}",
        show(cmd),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn shared_library_has_soname_and_exports() {
    let so = artifact_dir().join("libpcp_secure.so");

    let dynamic = run_ok(Command::new("readelf").arg("-d").arg(&so));
    let soname = dynamic
        .lines()
        .find(|l| l.contains("(SONAME)"))
        .unwrap_or("<no SONAME entry>");
    assert!(
        soname.contains("[libpcp_secure.so.1]"),
        "SONAME of {}: {soname}",
        so.display()
    );

    let symbols = run_ok(Command::new("nm").args(["-D", "--defined-only"]).arg(&so));
    let defined: Vec<(&str, &str)> = symbols
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace().rev();
            let name = f.next()?;
            let kind = f.next()?;
            Some((kind, name))
        })
        .collect();
    let missing: Vec<&str> = EXPORTS
        .iter()
        .copied()
        .filter(|want| {
            !defined
                .iter()
                .any(|(kind, name)| *kind == "T" && name == want)
        })
        .collect();
    assert!(
        missing.is_empty(),
        "{} does not export (as text symbols): {missing:?}",
        so.display()
    );
}

/// A temporary install of this build, certificates and built C tests.
struct Setup {
    _tmp: tempfile::TempDir,
    prefix: PathBuf,
    certs: PathBuf,
    nssdb: PathBuf,
    bin: PathBuf,
}

fn pkg_config(setup: &Setup, args: &[&str]) -> Vec<String> {
    let out = run_ok(
        Command::new("pkg-config")
            .env("PKG_CONFIG_PATH", setup.prefix.join("lib/pkgconfig"))
            .env_remove("PKG_CONFIG_LIBDIR")
            .args(args)
            .arg("libpcp_secure"),
    );
    out.split_whitespace().map(String::from).collect()
}

fn setup() -> Setup {
    let tmp = tempfile::Builder::new()
        .prefix("pcp_secure_c_api.")
        .tempdir()
        .expect("temporary directory");
    let prefix = tmp.path().join("prefix");
    let certs = tmp.path().join("certs");
    let bin = tmp.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let src = source_dir();

    run_ok(
        Command::new("bash")
            .arg(src.join("scripts/install"))
            .arg("--artifacts")
            .arg(artifact_dir())
            .arg("--prefix")
            .arg(&prefix)
            .env_remove("DESTDIR")
            .env_remove("LIBDIR")
            .env_remove("INCLUDEDIR"),
    );
    run_ok(
        Command::new("bash")
            .arg(src.join("c-tests/gencerts.sh"))
            .arg(&certs),
    );
    let nssdb = tmp.path().join("nssdb");
    run_ok(
        Command::new("bash")
            .arg(src.join("c-tests/gennssdb.sh"))
            .arg(&nssdb),
    );
    Setup {
        _tmp: tmp,
        prefix,
        certs,
        nssdb,
        bin,
    }
}

fn check_install_layout(setup: &Setup, failures: &mut String) {
    let lib = setup.prefix.join("lib");
    let version = env!("CARGO_PKG_VERSION");
    let major = env!("CARGO_PKG_VERSION_MAJOR");
    let real = format!("libpcp_secure.so.{version}");
    let expect_link = |name: &str, target: &str, failures: &mut String| match std::fs::read_link(
        lib.join(name),
    ) {
        Ok(t) if t == Path::new(target) => {}
        other => writeln!(
            failures,
            "install: lib/{name} should be a symlink to {target}, found {other:?}"
        )
        .unwrap(),
    };
    if !lib.join(&real).is_file() {
        writeln!(failures, "install: lib/{real} missing").unwrap();
    }
    expect_link(&format!("libpcp_secure.so.{major}"), &real, failures);
    expect_link(
        "libpcp_secure.so",
        &format!("libpcp_secure.so.{major}"),
        failures,
    );
    for f in [
        "lib/libpcp_secure.a",
        "include/pcp_secure.h",
        "lib/pkgconfig/libpcp_secure.pc",
    ] {
        if !setup.prefix.join(f).is_file() {
            writeln!(failures, "install: {f} missing").unwrap();
        }
    }
    let pc = std::fs::read_to_string(lib.join("pkgconfig/libpcp_secure.pc")).unwrap_or_default();
    if !pc
        .lines()
        .any(|l| l == format!("prefix={}", setup.prefix.display()))
        || ["@PREFIX@", "@LIBDIR@", "@INCLUDEDIR@", "@VERSION@"]
            .iter()
            .any(|p| pc.contains(p))
    {
        writeln!(
            failures,
            "install: libpcp_secure.pc does not name the prefix {}:\n{pc}",
            setup.prefix.display()
        )
        .unwrap();
    }
    let modversion = pkg_config(setup, &["--modversion"]);
    if modversion != [version] {
        writeln!(
            failures,
            "pkg-config --modversion gives {modversion:?}, want {version}"
        )
        .unwrap();
    }
}

/// Compiles c-tests/<source>.c into bin/<name>; `None` (and a failure
/// recorded) when the compiler refuses.
fn compile(
    setup: &Setup,
    source: &str,
    name: &str,
    link: &[String],
    failures: &mut String,
) -> Option<PathBuf> {
    let out_path = setup.bin.join(name);
    let mut cmd = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()));
    cmd.args(["-std=c11", "-O1", "-g", "-Wall", "-Wextra", "-Werror"])
        .args(pkg_config(setup, &["--cflags"]))
        .arg("-o")
        .arg(&out_path)
        .arg(source_dir().join("c-tests").join(format!("{source}.c")))
        .args(link);
    let out = run(&mut cmd);
    if !out.status.success() {
        writeln!(
            failures,
            "compiling {name} failed: `{}`\n{}{}",
            show(&cmd),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
        .unwrap();
        return None;
    }
    Some(out_path)
}

fn needed_libraries(binary: &Path) -> Vec<String> {
    run_ok(Command::new("readelf").arg("-d").arg(binary))
        .lines()
        .filter(|l| l.contains("(NEEDED)"))
        .filter_map(|l| Some(l.split('[').nth(1)?.trim_end_matches(']').to_string()))
        .collect()
}

/// Runs one C test program; records a failure unless it exits 0 and closes
/// with "NAME: N passed, 0 failed".
fn run_program(
    setup: &Setup,
    binary: &Path,
    args: &[PathBuf],
    dynamic: bool,
    failures: &mut String,
) {
    let mut cmd = Command::new(binary);
    cmd.args(args)
        .env_remove("PCP_TLSCONF_PATH")
        .env_remove("PCP_SECURE_HANDSHAKE_TIMEOUT")
        .env_remove("PMCD_REQUEST_TIMEOUT")
        .env_remove("LD_PRELOAD")
        .env_remove("PCP_SECURE_DB_PATH")
        // No NSS database of the person running the tests is read.
        .env("HOME", &setup.bin)
        .env("PCP_CONF", "/dev/null");
    if dynamic {
        cmd.env("LD_LIBRARY_PATH", setup.prefix.join("lib"));
    } else {
        // Prove the static program does not need the shared library.
        cmd.env("LD_LIBRARY_PATH", "/nonexistent");
    }
    let out = run(&mut cmd);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("==== {}\n{stdout}---- stderr:\n{stderr}", show(&cmd));
    let name = binary.file_name().unwrap().to_string_lossy();
    let closing = stdout.lines().last().unwrap_or("");
    let summary_ok =
        closing.starts_with(&format!("{name}: ")) && closing.ends_with(" passed, 0 failed");
    if !out.status.success() || !summary_ok {
        let failed: Vec<&str> = stdout.lines().filter(|l| l.starts_with("FAIL")).collect();
        writeln!(
            failures,
            "{name} failed ({}), closing line {closing:?}:\n  {}\n(stderr: {})",
            out.status,
            failed.join("\n  "),
            stderr.trim()
        )
        .unwrap();
    }
}

#[test]
fn c_programs_against_the_installed_library() {
    let setup = setup();
    let mut failures = String::new();
    check_install_layout(&setup, &mut failures);

    let libs = pkg_config(&setup, &["--libs"]);
    // pkg-config --static adds Libs.private; -Bstatic makes the linker pick
    // libpcp_secure.a over the .so in the same directory.
    let static_libs: Vec<String> = pkg_config(&setup, &["--static", "--libs"])
        .into_iter()
        .flat_map(|a| {
            if a == "-lpcp_secure" {
                vec!["-Wl,-Bstatic".into(), a, "-Wl,-Bdynamic".into()]
            } else {
                vec![a]
            }
        })
        .collect();

    let c = &setup.certs;
    let handshake_args = [
        c.join("server.crt"),
        c.join("server.key"),
        c.join("ca.crt"),
        c.join("client.crt"),
        c.join("client.key"),
    ];
    let bad_ca_args = [
        c.join("server.crt"),
        c.join("server.key"),
        c.join("ca.crt"),
        c.join("other-ca.crt"),
    ];

    if let Some(bin) = compile(&setup, "abi", "abi", &libs, &mut failures) {
        run_program(&setup, &bin, &[], true, &mut failures);
    }
    if let Some(bin) = compile(&setup, "handshake", "handshake", &libs, &mut failures) {
        let needed = needed_libraries(&bin);
        if !needed.iter().any(|n| n == "libpcp_secure.so.1") {
            writeln!(
                failures,
                "handshake is not linked against libpcp_secure.so.1 (NEEDED: {needed:?})"
            )
            .unwrap();
        }
        run_program(&setup, &bin, &handshake_args, true, &mut failures);
    }
    if let Some(bin) = compile(&setup, "bad_ca", "bad_ca", &libs, &mut failures) {
        run_program(&setup, &bin, &bad_ca_args, true, &mut failures);
    }
    if let Some(bin) = compile(&setup, "plain", "plain", &libs, &mut failures) {
        run_program(&setup, &bin, &[], true, &mut failures);
    }
    if let Some(bin) = compile(&setup, "nssdb", "nssdb", &libs, &mut failures) {
        let nss = &setup.nssdb;
        let db = PathBuf::from(format!("sql:{}", nss.join("db").display()));
        let args = [db, nss.join("password"), nss.join("ca.crt")];
        run_program(&setup, &bin, &args, true, &mut failures);
    }
    if let Some(bin) = compile(
        &setup,
        "handshake",
        "handshake_static",
        &static_libs,
        &mut failures,
    ) {
        let needed = needed_libraries(&bin);
        if needed.iter().any(|n| n.starts_with("libpcp_secure")) {
            writeln!(
                failures,
                "handshake_static still needs the shared library (NEEDED: {needed:?})"
            )
            .unwrap();
        }
        run_program(&setup, &bin, &handshake_args, false, &mut failures);
    }

    assert!(failures.is_empty(), "C API tests failed:\n{failures}");
}
