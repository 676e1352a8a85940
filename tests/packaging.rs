//! The Debian packages, end to end: builds libpcp-secure1 and
//! libpcp-secure-dev with scripts/build-deb, installs them with dpkg, then
//! uses only installed paths (nothing from target/):
//!
//! - a private pmcd with LD_PRELOAD=/usr/lib/<multiarch>/libpcp_secure.so.1
//!   and pminfo (LD_PRELOAD, and through /usr/bin/pcp-secure-env) over TLS;
//! - copies of pmcd and pminfo relinked with `patchelf --add-needed
//!   libpcp_secure.so.1`, run without LD_PRELOAD: TLS with the server
//!   verified through the client's tls-ca-cert-file, and refused without it
//!   (which stock libpcp would accept);
//! - a C program built with `cc prog.c $(pkg-config --cflags --libs
//!   libpcp_secure)`;
//! - `pcp-secure --version`, and the shipped systemd drop-ins against what
//!   `pcp-secure systemd SERVICE --install` writes;
//!
//! then purges both packages and checks that nothing is left. It installs
//! packages system-wide, so it needs root (CI runs as root) and fails
//! otherwise; the packages are purged in a Drop guard, also on failure.

use pcp_secure_test_support as support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use support::{Certs, RawClient, Run};

const LIB_PKG: &str = "libpcp-secure1";
const DEV_PKG: &str = "libpcp-secure-dev";
/// Limit for building the packages (includes `cargo build --release`).
const BUILD_LIMIT: Duration = Duration::from_secs(1800);
const LIMIT: Duration = Duration::from_secs(120);

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn tempdir(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .expect("cannot create a temporary directory")
}

fn run(cmd: Command) -> Run {
    support::run_with_limit(cmd, LIMIT)
}

/// Removes what cargo puts into a test's environment (LD_LIBRARY_PATH names
/// target/ directories; CARGO_* describe this test crate).
fn clean_env(cmd: &mut Command) {
    cmd.env_remove("LD_LIBRARY_PATH").env_remove("LD_PRELOAD");
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy();
        if k.starts_with("CARGO_PKG_")
            || k.starts_with("CARGO_BIN_")
            || [
                "CARGO_MANIFEST_DIR",
                "CARGO_MANIFEST_PATH",
                "CARGO_CRATE_NAME",
                "CARGO_PRIMARY_PACKAGE",
                "CARGO_TARGET_TMPDIR",
                "OUT_DIR",
                "PKG_CONFIG_PATH",
                "PCP_SECURE_LIB",
            ]
            .contains(&k.as_ref())
        {
            cmd.env_remove(k.as_ref());
        }
    }
}

fn sh(script: &str) -> Run {
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c").arg(script);
    clean_env(&mut cmd);
    run(cmd)
}

fn installed(pkg: &str) -> bool {
    let out = Command::new("dpkg-query")
        .args(["-W", "-f=${db:Status-Status}", pkg])
        .output()
        .expect("cannot run dpkg-query");
    let status = String::from_utf8_lossy(&out.stdout);
    out.status.success() && !status.is_empty() && status != "not-installed"
}

fn purge() -> Run {
    let mut cmd = Command::new("dpkg");
    cmd.args(["--purge", DEV_PKG, LIB_PKG]);
    run(cmd)
}

/// Purges both packages when dropped (also when the test fails), and removes
/// the real systemd drop-in if this test wrote it and it is still there.
struct Packages {
    drop_in_written: Option<PathBuf>,
}

impl Packages {
    fn new() -> Packages {
        if installed(LIB_PKG) || installed(DEV_PKG) {
            eprintln!("packaging: {LIB_PKG}/{DEV_PKG} already installed: purging them first");
            purge().assert_ok();
        }
        Packages {
            drop_in_written: None,
        }
    }
}

impl Drop for Packages {
    fn drop(&mut self) {
        if installed(LIB_PKG) || installed(DEV_PKG) {
            let r = purge();
            if !r.success() {
                eprintln!("packaging: cleanup purge failed:\n{}", r.describe());
            }
        }
        if let Some(path) = self.drop_in_written.take() {
            if path.exists() {
                let _ = std::fs::remove_file(&path);
                let _ = std::fs::remove_dir(path.parent().unwrap());
            }
        }
    }
}

fn multiarch() -> String {
    for (prog, args) in [
        ("dpkg-architecture", &["-qDEB_HOST_MULTIARCH"][..]),
        ("gcc", &["-print-multiarch"][..]),
    ] {
        if let Ok(out) = Command::new(prog).args(args).stderr(Stdio::null()).output() {
            let s = String::from_utf8_lossy(&out.stdout).trim().to_string();
            if out.status.success() && !s.is_empty() {
                return s;
            }
        }
    }
    panic!("cannot tell the multiarch triplet (dpkg-architecture, gcc -print-multiarch)");
}

/// A private pmcd from `bin` (the system one or a relinked copy) listening
/// on 127.0.0.1, with `env` added to a clean environment; stopped on drop.
struct Pmcd {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
}

impl Pmcd {
    fn start(bin: &Path, tls_conf: &str, env: &[(&str, &str)]) -> Pmcd {
        let dir = tempdir("pcp-secure-pkg-pmcd.");
        let root = dir.path().join("root");
        let merge = Command::new(support::PMNSMERGE)
            .arg("-a")
            .arg(support::pmns_root("pmcd"))
            .arg(support::pmns_root("linux"))
            .arg(&root)
            .stdin(Stdio::null())
            .output()
            .expect("cannot run pmnsmerge");
        assert!(merge.status.success(), "pmnsmerge failed: {merge:?}");
        std::fs::write(
            dir.path().join("pmcd.conf"),
            format!(
                "pmcd 2 dso pmcd_init {}\nlinux 60 dso linux_init {}\n",
                support::pmda_pmcd(),
                support::pmda_linux()
            ),
        )
        .unwrap();
        std::fs::write(dir.path().join("tls.conf"), tls_conf).unwrap();
        let f = |n: &str| dir.path().join(n);
        let mut last = String::new();
        for _ in 0..5 {
            let port = support::free_port(false);
            let mut cmd = Command::new(bin);
            cmd.env_clear()
                .env("PATH", "/usr/bin:/bin")
                .env("HOME", dir.path())
                .env("LC_ALL", "C")
                .env("PCP_TLSCONF_PATH", f("tls.conf"));
            for (k, v) in env {
                cmd.env(k, v);
            }
            cmd.args(["-f", "-A", "-p", &port.to_string(), "-i", "127.0.0.1", "-c"])
                .arg(f("pmcd.conf"))
                .arg("-n")
                .arg(&root)
                .arg("-s")
                .arg(f("pmcd.socket"))
                .arg("-l")
                .arg(f("pmcd.log"))
                .arg("-x")
                .arg(f("pmcd.fatal"))
                .stdin(Stdio::null())
                .stdout(std::fs::File::create(f("pmcd.stdout")).unwrap())
                .stderr(std::fs::File::create(f("pmcd.stderr")).unwrap());
            let mut child = cmd
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
            let start = Instant::now();
            let ready = loop {
                if let Ok(Some(status)) = child.try_wait() {
                    last = format!("pmcd exited with {status}\n{}", output(dir.path()));
                    break false;
                }
                let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
                if let Ok(mut raw) = RawClient::connect_timeout(addr, Duration::from_secs(5)) {
                    if raw.read_challenge().is_ok() {
                        break true;
                    }
                }
                if start.elapsed() > support::PMCD_START_LIMIT {
                    last = format!("pmcd not ready\n{}", output(dir.path()));
                    break false;
                }
                thread::sleep(Duration::from_millis(100));
            };
            if ready {
                return Pmcd { child, dir, port };
            }
            let _ = child.kill();
            let _ = child.wait();
            if !last.contains("Address already in use") {
                break;
            }
        }
        panic!("{} did not start: {last}", bin.display());
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn output(&self) -> String {
        output(self.dir.path())
    }

    /// The files the running pmcd has mapped.
    fn maps(&self) -> String {
        std::fs::read_to_string(format!("/proc/{}/maps", self.child.id())).unwrap_or_default()
    }
}

impl Drop for Pmcd {
    fn drop(&mut self) {
        // SAFETY: kill takes no pointers; the pid is our own child's.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let start = Instant::now();
        while matches!(self.child.try_wait(), Ok(None)) {
            if start.elapsed() > Duration::from_secs(5) {
                let _ = self.child.kill();
                break;
            }
            thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.wait();
        if thread::panicking() {
            eprintln!("pmcd on port {}:\n{}", self.port, self.output());
        }
    }
}

/// pmcd's log, stdout and stderr in `dir`.
fn output(dir: &Path) -> String {
    let r = |n: &str| std::fs::read_to_string(dir.join(n)).unwrap_or_default();
    format!(
        "--- pmcd.log ---\n{}--- stdout ---\n{}--- stderr ---\n{}",
        r("pmcd.log"),
        r("pmcd.stdout"),
        r("pmcd.stderr")
    )
}

/// pminfo-like client `bin` with a clean environment plus `env`, trusting
/// what `tls_conf` says, fetching pmcd.feature.secure and kernel.all.load.
fn client(
    bin: &str,
    args_before: &[&str],
    host: &str,
    tls_conf: &str,
    env: &[(&str, &str)],
) -> Run {
    let home = tempdir("pcp-secure-pkg-home.");
    let conf = home.path().join("tls.conf");
    std::fs::write(&conf, tls_conf).unwrap();
    let mut cmd = Command::new(bin);
    cmd.env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", home.path())
        .env("LC_ALL", "C")
        .env("PCP_TLSCONF_PATH", &conf)
        .env("PCP_SECURE_SOCKETS", "enforce");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.args(args_before)
        .args(["-h", host, "-f", "pmcd.feature.secure", "kernel.all.load"]);
    run(cmd)
}

fn assert_secure(run: &Run, what: &str) {
    assert!(
        run.success() && run.value_of("pmcd.feature.secure").as_deref() == Some("1"),
        "{what}: expected pmcd.feature.secure = 1 over TLS\n{}",
        run.describe()
    );
    assert!(
        run.stdout.contains("kernel.all.load"),
        "{what}: no kernel.all.load\n{}",
        run.describe()
    );
}

/// Whether a line "NAME ... => PATH" of ldd or `ldconfig -p` output names
/// `file` (the same file: with merged /usr, /lib/<multiarch> is
/// /usr/lib/<multiarch>).
fn resolves_to(out: &str, name: &str, file: &str) -> bool {
    let want = std::fs::canonicalize(file).ok();
    out.lines().any(|l| {
        let l = l.trim_start();
        l.starts_with(name)
            && l.split("=> ").nth(1).is_some_and(|rest| {
                let path = rest.split(" (").next().unwrap_or("").trim();
                path == file || (want.is_some() && std::fs::canonicalize(path).ok() == want)
            })
    })
}

/// One field of a .deb's control file ("" when it has none).
fn control_field(deb: &Path, field: &str) -> String {
    let r = sh(&format!("dpkg-deb -f {} {field}", deb.display()));
    r.assert_ok();
    r.stdout.trim().to_string()
}

/// A dependency field as its groups of alternatives: "a (>= 1) | b, c" is
/// [["a (>= 1)", "b"], ["c"]].
fn dependency_groups(field: &str) -> Vec<Vec<String>> {
    field
        .split(',')
        .map(|g| g.split('|').map(|a| a.trim().to_string()).collect())
        .filter(|g: &Vec<String>| g.iter().all(|a| !a.is_empty()))
        .collect()
}

/// The libpcp the system's PCP uses: the soname pmcd links
/// ("libpcp.so.3" with PCP 6, Debian 12; "libpcp.so.4" with PCP 7) and the
/// package that ships that file ("libpcp3", "libpcp4").
fn system_libpcp() -> (String, String) {
    let ldd = sh(&format!("ldd {}", support::PMCD));
    ldd.assert_ok();
    let soname = ldd
        .stdout
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .find(|n| n.starts_with("libpcp.so."))
        .unwrap_or_else(|| panic!("{} links no libpcp.so.N:\n{}", support::PMCD, ldd.stdout))
        .to_string();
    assert!(
        soname == "libpcp.so.3" || soname == "libpcp.so.4",
        "{} links {soname}: neither PCP 6's libpcp.so.3 nor PCP 7's libpcp.so.4",
        support::PMCD
    );
    let owners = sh(&format!("dpkg -S '*/{soname}'"));
    owners.assert_ok();
    let package = owners
        .stdout
        .lines()
        .find_map(|l| {
            let (pkgs, path) = l.split_once(": ")?;
            path.trim()
                .ends_with(&format!("/{soname}"))
                .then(|| pkgs.split(',').next().unwrap_or("").trim())
        })
        .map(|p| p.split(':').next().unwrap_or(p).to_string())
        .unwrap_or_else(|| panic!("no package ships {soname}:\n{}", owners.stdout));
    (soname, package)
}

/// Whether the installed version of `package` satisfies `alternative`
/// ("libpcp3 (>= 6)" or a bare "libpcp4").
fn satisfies(package: &str, alternative: &str) -> bool {
    let mut words = alternative.split_whitespace();
    if words.next() != Some(package) {
        return false;
    }
    let constraint: String = words.collect::<Vec<_>>().join(" ");
    let Some(inner) = constraint
        .strip_prefix('(')
        .and_then(|c| c.strip_suffix(')'))
    else {
        return constraint.is_empty();
    };
    let Some((op, want)) = inner.split_once(' ') else {
        return false;
    };
    let op = match op {
        ">=" => "ge",
        "<=" => "le",
        ">>" => "gt",
        "<<" => "lt",
        "=" => "eq",
        _ => return false,
    };
    sh(&format!(
        "dpkg --compare-versions \"$(dpkg-query -W -f='${{Version}}' {package})\" {op} '{}'",
        want.trim()
    ))
    .success()
}

/// Lines of `dpkg -L pkg`.
fn dpkg_list(pkg: &str) -> Vec<String> {
    let out = Command::new("dpkg").args(["-L", pkg]).output().unwrap();
    assert!(out.status.success(), "dpkg -L {pkg} failed: {out:?}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with('/'))
        .map(str::to_string)
        .collect()
}

#[test]
fn debian_packages_install_work_and_purge_cleanly() {
    // Root is required: CI runs as root, and a skipped test would hide a
    // broken package.
    assert_eq!(
        // SAFETY: geteuid takes no arguments and cannot fail.
        unsafe { libc::geteuid() },
        0,
        "tests/packaging.rs installs Debian packages with dpkg and must run as root \
         (CI does): run `sudo -E cargo test --test packaging`"
    );
    support::ensure_deps();
    for tool in [
        "dpkg",
        "dpkg-deb",
        "dpkg-shlibdeps",
        "patchelf",
        "cc",
        "pkg-config",
        "ldd",
    ] {
        assert!(
            sh(&format!("command -v {tool}")).success(),
            "{tool} is missing (apt-get install dpkg-dev patchelf gcc pkg-config)"
        );
    }
    let ma = multiarch();
    let libdir = format!("/usr/lib/{ma}");
    let lib = format!("{libdir}/libpcp_secure.so.1");
    let version = env!("CARGO_PKG_VERSION");
    let real = format!("{libdir}/libpcp_secure.so.{version}");

    let mut guard = Packages::new();

    // Build.
    let out = tempdir("pcp-secure-debs.");
    let mut build = Command::new(manifest_dir().join("scripts/build-deb"));
    build.arg(out.path()).current_dir(manifest_dir());
    clean_env(&mut build);
    let built = support::run_with_limit(build, BUILD_LIMIT);
    assert!(
        built.success(),
        "scripts/build-deb failed\n{}",
        built.describe()
    );
    let debs: Vec<PathBuf> = [LIB_PKG, DEV_PKG]
        .iter()
        .map(|p| out.path().join(format!("{p}_{version}-1_amd64.deb")))
        .collect();
    for d in &debs {
        assert!(
            d.is_file(),
            "{} was not built\n{}",
            d.display(),
            built.describe()
        );
    }
    let fields = sh(&format!(
        "dpkg-deb -f {} Depends Recommends Section; dpkg-deb -f {} Depends Section",
        debs[0].display(),
        debs[1].display()
    ));
    fields.assert_ok();
    for want in ["libc6 (>= ", "libgcc-s1", "Section: libs"] {
        assert!(
            fields.stdout.contains(want),
            "control lacks {want:?}:\n{}",
            fields.stdout
        );
    }
    assert!(
        fields
            .stdout
            .contains(&format!("Depends: {LIB_PKG} (= {version}-1)"))
            && fields.stdout.contains("Section: libdevel"),
        "{}",
        fields.stdout
    );
    // The library does not link libpcp (it takes libpcp's place in the
    // process): nothing ties the packages to one libpcp. They recommend
    // the libpcp of PCP 7 (libpcp4) or of PCP 6 (libpcp3, Debian 12), and
    // this system's libpcp, whichever it is, is one of them. (PCP 7 first:
    // Debian 12 has no libpcp4, so apt takes libpcp3 there; where both
    // exist apt takes libpcp4 rather than PCP 7's transitional libpcp3.)
    for deb in &debs {
        let depends = control_field(deb, "Depends");
        for alternative in dependency_groups(&depends).concat() {
            let name = alternative.split_whitespace().next().unwrap_or("");
            assert!(
                !name.starts_with("libpcp") || name == LIB_PKG,
                "{} depends on {alternative}: {depends}",
                deb.display()
            );
        }
    }
    let recommends = control_field(&debs[0], "Recommends");
    let libpcp = dependency_groups(&recommends)
        .into_iter()
        .find(|g| g.iter().any(|a| a.starts_with("libpcp")))
        .unwrap_or_else(|| panic!("{LIB_PKG} recommends no libpcp: {recommends:?}"));
    assert_eq!(
        libpcp,
        ["libpcp4", "libpcp3 (>= 6)"],
        "{LIB_PKG} should recommend libpcp4 | libpcp3 (>= 6): {recommends:?}"
    );
    let (soname, pcp_pkg) = system_libpcp();
    assert!(
        libpcp.iter().any(|a| satisfies(&pcp_pkg, a)),
        "this system's {soname} comes from {pcp_pkg} (version {}), which does not satisfy \
         {LIB_PKG}'s Recommends: {recommends}",
        sh(&format!("dpkg-query -W -f='${{Version}}' {pcp_pkg}")).stdout
    );

    // Install.
    let mut dpkg = Command::new("dpkg");
    dpkg.arg("-i").args(&debs);
    clean_env(&mut dpkg);
    let inst = run(dpkg);
    assert!(inst.success(), "dpkg -i failed\n{}", inst.describe());
    let mut files = dpkg_list(LIB_PKG);
    files.extend(dpkg_list(DEV_PKG));
    for f in [
        real.as_str(),
        lib.as_str(),
        "/usr/bin/pcp-secure",
        "/usr/bin/pcp-secure-env",
        "/usr/share/doc/libpcp-secure1/copyright",
        "/usr/share/doc/libpcp-secure1/changelog.Debian.gz",
        "/usr/share/libpcp-secure/systemd/pmcd.service.d/libpcp-secure.conf",
        "/usr/share/libpcp-secure/systemd/pmlogger.service.d/libpcp-secure.conf",
        "/usr/share/libpcp-secure/systemd/pmie.service.d/libpcp-secure.conf",
        "/usr/share/libpcp-secure/systemd/pmproxy.service.d/libpcp-secure.conf",
        "/usr/include/pcp_secure.h",
        &format!("{libdir}/libpcp_secure.so"),
        &format!("{libdir}/libpcp_secure.a"),
        &format!("{libdir}/pkgconfig/libpcp_secure.pc"),
    ] {
        assert!(files.iter().any(|l| l == f), "dpkg -L does not list {f}");
        assert!(Path::new(f).exists(), "{f} is not installed");
    }
    let cache = sh("ldconfig -p");
    assert!(
        resolves_to(&cache.stdout, "libpcp_secure.so.1 (", &lib),
        "the ldconfig trigger did not run:\n{}\n{}",
        inst.describe(),
        cache.stdout
    );
    // Nothing is enabled by installing.
    assert!(
        !Path::new("/etc/ld.so.preload").exists()
            || !std::fs::read_to_string("/etc/ld.so.preload")
                .unwrap()
                .contains("pcp_secure")
    );

    // pcp-secure --version.
    let v = sh("/usr/bin/pcp-secure --version");
    v.assert_ok();
    assert!(
        v.stdout
            .contains(&format!("libpcp_secure {version} (rustls ")),
        "{}",
        v.describe()
    );

    // The shipped drop-ins are exactly what `pcp-secure systemd` writes.
    let sysroot = tempdir("pcp-secure-pkg-sysroot.");
    // /usr/local/lib wins over the packaged library when both exist.
    let local = Path::new("/usr/local/lib/libpcp_secure.so.1").exists();
    let lib_env = if local {
        format!("PCP_SECURE_LIB={lib} ")
    } else {
        String::new()
    };
    for service in ["pmcd", "pmlogger", "pmie", "pmproxy"] {
        let shipped = std::fs::read_to_string(format!(
            "/usr/share/libpcp-secure/systemd/{service}.service.d/libpcp-secure.conf"
        ))
        .unwrap();
        assert!(
            shipped.contains(&format!("\nEnvironment=LD_PRELOAD={lib}\n")),
            "{shipped}"
        );
        let r = sh(&format!(
            "{lib_env}/usr/bin/pcp-secure systemd {service} --install --root {}",
            sysroot.path().display()
        ));
        r.assert_ok();
        let written = std::fs::read_to_string(sysroot.path().join(format!(
            "etc/systemd/system/{service}.service.d/libpcp-secure.conf"
        )))
        .unwrap();
        assert_eq!(
            written, shipped,
            "pcp-secure systemd {service} --install differs from the shipped drop-in"
        );
    }
    // Enabling for real (when the admin has no drop-in of their own): the
    // package removal takes it back.
    let real_drop_in = PathBuf::from("/etc/systemd/system/pmcd.service.d/libpcp-secure.conf");
    let enable_for_real = !real_drop_in.exists() && !local;
    let drop_in_dir_existed = real_drop_in.parent().unwrap().exists();
    if enable_for_real {
        guard.drop_in_written = Some(real_drop_in.clone());
        sh("/usr/bin/pcp-secure systemd pmcd --install").assert_ok();
        assert!(real_drop_in.is_file());
    } else {
        eprintln!("packaging: {} exists already (or /usr/local/lib has the library): not enabling pmcd's drop-in for real", real_drop_in.display());
    }

    let certs = Certs::new();

    // 1. Installed library preloaded into the system pmcd and pminfo.
    {
        let pmcd = Pmcd::start(
            Path::new(support::PMCD),
            &certs.server_conf(),
            &[("LD_PRELOAD", &lib)],
        );
        assert!(
            pmcd.maps().contains(&real),
            "pmcd did not map {real}\n{}",
            pmcd.maps()
        );
        let r = client(
            support::PMINFO,
            &[],
            &pmcd.host(),
            &certs.client_conf(),
            &[("LD_PRELOAD", &lib)],
        );
        assert_secure(&r, "pminfo with LD_PRELOAD");
        let r = client(
            "/usr/bin/pcp-secure-env",
            &[support::PMINFO],
            &pmcd.host(),
            &certs.client_conf(),
            &[],
        );
        assert_secure(&r, "pcp-secure-env pminfo");
        let r = client(
            "/usr/bin/pcp-secure",
            &["run", "--", support::PMINFO],
            &pmcd.host(),
            &certs.client_conf(),
            &[],
        );
        assert_secure(&r, "pcp-secure run -- pminfo");
        assert!(
            pmcd.output().contains("pcp_secure: info: libpcp_secure"),
            "pmcd log does not show libpcp_secure serving TLS\n{}",
            pmcd.output()
        );
    }

    // 2. Relinked copies, no LD_PRELOAD.
    {
        let bin = tempdir("pcp-secure-relinked.");
        let pminfo = bin.path().join("pminfo");
        let pmcd_bin = bin.path().join("pmcd");
        std::fs::copy(support::PMINFO, &pminfo).unwrap();
        std::fs::copy(support::PMCD, &pmcd_bin).unwrap();
        for b in [&pminfo, &pmcd_bin] {
            sh(&format!(
                "patchelf --add-needed libpcp_secure.so.1 {}",
                b.display()
            ))
            .assert_ok();
            let ldd = sh(&format!("ldd {}", b.display()));
            ldd.assert_ok();
            let pos = |name: &str| {
                ldd.stdout
                    .lines()
                    .position(|l| l.trim_start().starts_with(name))
            };
            let (ours, pcp) = (pos("libpcp_secure.so.1"), pos(&soname));
            assert!(
                ours.is_some() && pcp.is_some() && ours < pcp,
                "ldd of {} must list libpcp_secure.so.1 before {soname}:\n{}",
                b.display(),
                ldd.stdout
            );
            assert!(
                resolves_to(&ldd.stdout, "libpcp_secure.so.1 ", &lib),
                "{}",
                ldd.stdout
            );
        }
        let pmcd = Pmcd::start(&pmcd_bin, &certs.server_conf(), &[]);
        assert!(
            pmcd.maps().contains(&real),
            "relinked pmcd did not map {real}\n{}",
            pmcd.maps()
        );
        let pminfo = pminfo.to_str().unwrap();
        let r = client(pminfo, &[], &pmcd.host(), &certs.client_conf(), &[]);
        assert_secure(&r, "relinked pminfo (tls-ca-cert-file)");
        // Without the CA the server's certificate is not trusted: our TLS
        // refuses it (stock libpcp would not check it at all).
        let r = client(pminfo, &[], &pmcd.host(), "# trusts nothing\n", &[]);
        assert!(
            !r.success() && r.stderr.contains("pcp_secure") && r.stderr.contains("not trusted"),
            "relinked pminfo accepted an untrusted server: it does not use libpcp_secure\n{}",
            r.describe()
        );
    }

    // 3. A C program built against the installed -dev package.
    {
        let dir = tempdir("pcp-secure-cprog.");
        std::fs::write(
            dir.path().join("prog.c"),
            "#include <stdio.h>\n#include <pcp_secure.h>\n\
             int main(void) { printf(\"%s\\n\", pcp_secure_version()); return 0; }\n",
        )
        .unwrap();
        let r = sh(&format!(
            "cd {} && unset PKG_CONFIG_PATH && echo \"$(pkg-config --variable=prefix libpcp_secure) $(pkg-config --variable=libdir libpcp_secure)\" && \
             cc prog.c $(pkg-config --cflags --libs libpcp_secure) -o prog && ./prog && ldd ./prog",
            dir.path().display()
        ));
        assert!(r.success(), "C program build/run failed\n{}", r.describe());
        let mut lines = r.stdout.lines();
        assert_eq!(
            lines.next(),
            Some(format!("/usr {libdir}").as_str()),
            "{}",
            r.stdout
        );
        assert!(
            lines
                .next()
                .unwrap_or("")
                .starts_with(&format!("libpcp_secure {version} (rustls ")),
            "{}",
            r.stdout
        );
        assert!(
            resolves_to(&r.stdout, "libpcp_secure.so.1 ", &lib),
            "{}",
            r.stdout
        );
    }

    // Purge and check that nothing is left.
    let p = purge();
    assert!(p.success(), "dpkg --purge failed\n{}", p.describe());
    for pkg in [LIB_PKG, DEV_PKG] {
        assert!(!installed(pkg), "{pkg} is still known to dpkg");
        let l = Command::new("dpkg").args(["-L", pkg]).output().unwrap();
        assert!(!l.status.success(), "dpkg -L {pkg} still lists files");
    }
    for f in &files {
        let path = Path::new(f);
        let ours = f.contains("pcp_secure") || f.contains("pcp-secure");
        if ours || path.is_file() || path.is_symlink() {
            assert!(
                !path.exists() && !path.is_symlink(),
                "{f} is left after purge"
            );
        }
    }
    for gone in [
        "/usr/share/libpcp-secure",
        "/usr/share/doc/libpcp-secure1",
        "/usr/share/doc/libpcp-secure-dev",
        "/usr/include/pcp_secure.h",
    ] {
        assert!(!Path::new(gone).exists(), "{gone} is left after purge");
    }
    assert!(!Path::new(&lib).exists() && !Path::new(&real).exists());
    let cache = sh("ldconfig -p");
    assert!(
        !cache.stdout.contains("libpcp_secure"),
        "ldconfig cache still lists libpcp_secure:\n{}",
        cache.stdout
    );
    if enable_for_real {
        assert!(
            !real_drop_in.exists(),
            "the enabled pmcd drop-in was not removed with the package"
        );
        assert!(
            drop_in_dir_existed || !real_drop_in.parent().unwrap().exists(),
            "the empty pmcd.service.d directory was left behind"
        );
    }
}
