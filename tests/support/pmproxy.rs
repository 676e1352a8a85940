//! A private pmproxy on 127.0.0.1 (stock, or with libpcp_secure preloaded),
//! with its own tls.conf and optionally a pmproxy.conf; stopped when the
//! guard is dropped.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::{free_port, lib_path, read_lossy, stop_child, tempdir, user_name, write_file};

/// pmproxy, the same path in PCP 6.0.3, 6.3.8 and 7.2.2.
pub const PMPROXY: &str = "/usr/lib/pcp/bin/pmproxy";
/// How long pmproxy may take to listen and answer HTTP.
pub const PMPROXY_START_LIMIT: Duration = Duration::from_secs(30);

/// What to start.
#[derive(Default)]
pub struct PmproxyBuilder {
    tls_conf: String,
    config: Option<String>,
    env: Vec<(String, String)>,
    preload_ours: bool,
    preload_after: Vec<String>,
    dirs: Vec<(String, String)>,
}

impl PmproxyBuilder {
    /// The contents of pmproxy's tls.conf.
    pub fn tls_conf(mut self, text: &str) -> Self {
        self.tls_conf = text.to_string();
        self
    }
    /// The contents of a pmproxy.conf (`-c`); none by default.
    pub fn config(mut self, text: &str) -> Self {
        self.config = Some(text.to_string());
        self
    }
    /// An environment variable for pmproxy.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_string(), value.to_string()));
        self
    }
    /// LD_PRELOAD libpcp_secure into pmproxy.
    pub fn preload_ours(mut self, yes: bool) -> Self {
        self.preload_ours = yes;
        self
    }
    /// Also LD_PRELOAD the shared object `path`, after libpcp_secure (if
    /// preloaded): it sees the calls the library passes on.
    pub fn preload_after(mut self, path: &str) -> Self {
        self.preload_after.push(path.to_string());
        self
    }
    /// A directory `name` made in pmproxy's own directory, named to
    /// pmproxy by the environment variable `key`.
    pub fn env_dir(mut self, key: &str, name: &str) -> Self {
        self.dirs.push((key.to_string(), name.to_string()));
        self
    }
    pub fn start(self) -> Pmproxy {
        Pmproxy::start(self)
    }
}

/// A running pmproxy.
pub struct Pmproxy {
    child: Option<Child>,
    dir: TempDir,
    port: u16,
    opts: PmproxyBuilder,
}

impl Pmproxy {
    pub fn builder() -> PmproxyBuilder {
        PmproxyBuilder::default()
    }

    fn start(opts: PmproxyBuilder) -> Pmproxy {
        super::ensure_deps();
        let dir = tempdir("pcp-secure-pmproxy.");
        write_file(&dir.path().join("tls.conf"), &opts.tls_conf);
        if let Some(config) = &opts.config {
            write_file(&dir.path().join("pmproxy.conf"), config);
        }
        for (_, d) in &opts.dirs {
            std::fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        let mut proxy = Pmproxy {
            child: None,
            dir,
            port: 0,
            opts,
        };
        let mut attempts = Vec::new();
        for _ in 0..4 {
            proxy.port = free_port(false);
            proxy.spawn();
            match proxy.wait_ready() {
                Ok(()) => {
                    proxy.check_preload();
                    return proxy;
                }
                Err(why) if why.contains("Address already in use") => {
                    attempts.push(why);
                    proxy.stop();
                }
                Err(why) => {
                    proxy.stop();
                    panic!("pmproxy did not start: {why}");
                }
            }
        }
        panic!(
            "pmproxy did not start on any port:\n{}",
            attempts.join("\n")
        );
    }

    /// A file in pmproxy's directory.
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn spawn(&mut self) {
        for f in ["pmproxy.log", "pmproxy.out", "pmproxy.socket"] {
            let _ = std::fs::remove_file(self.file(f));
        }
        let out = std::fs::File::create(self.file("pmproxy.out")).unwrap();
        let err = out.try_clone().unwrap();
        let mut cmd = Command::new(PMPROXY);
        cmd.env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("HOME", self.dir.path())
            .env("LC_ALL", "C")
            .env("PCP_TLSCONF_PATH", self.file("tls.conf"));
        let mut preload: Vec<String> = Vec::new();
        if self.opts.preload_ours {
            preload.push(lib_path().display().to_string());
        }
        preload.extend(self.opts.preload_after.iter().cloned());
        if !preload.is_empty() {
            cmd.env("LD_PRELOAD", preload.join(":"));
        }
        for (k, v) in &self.opts.env {
            cmd.env(k, v);
        }
        for (k, d) in &self.opts.dirs {
            cmd.env(k, self.file(d));
        }
        cmd.args(["-f", "-A", "-U", &user_name(), "-p", &self.port.to_string()])
            .args(["-i", "127.0.0.1"]);
        if self.opts.config.is_some() {
            cmd.arg("-c").arg(self.file("pmproxy.conf"));
        }
        cmd.arg("-s")
            .arg(self.file("pmproxy.socket"))
            .arg("-l")
            .arg(self.file("pmproxy.log"))
            .arg("-x")
            .arg(self.file("pmproxy.fatal"))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {PMPROXY}: {e}"));
        self.child = Some(child);
    }

    /// Listening on our port and answering HTTP: a plain request straight to
    /// pmproxy gets an HTTP status line back.
    fn wait_ready(&mut self) -> Result<(), String> {
        let start = Instant::now();
        let row = format!(" {} inet ", self.port);
        while start.elapsed() < PMPROXY_START_LIMIT {
            if let Ok(Some(status)) = self.child.as_mut().unwrap().try_wait() {
                return Err(format!("pmproxy exited with {status}\n{}", self.output()));
            }
            let log = self.log();
            let listening = log
                .lines()
                .any(|l| l.trim_start().starts_with("ok") && l.contains(&row));
            if log
                .lines()
                .any(|l| l.trim_start().starts_with("err") && l.contains(&row))
            {
                return Err(format!("pmproxy could not listen\n{}", self.output()));
            }
            if listening && self.http_probe() {
                return Ok(());
            }
            thread::sleep(Duration::from_millis(50));
        }
        Err(format!(
            "pmproxy was not ready after {PMPROXY_START_LIMIT:?}\n{}",
            self.output()
        ))
    }

    fn http_probe(&self) -> bool {
        let Ok(mut s) = TcpStream::connect_timeout(&self.addr(), Duration::from_secs(5)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
        if s.write_all(b"OPTIONS /pmapi/context HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .is_err()
        {
            return false;
        }
        let mut got = [0u8; 16];
        let mut n = 0;
        while n < 9 {
            match s.read(&mut got[n..]) {
                Ok(0) | Err(_) => return false,
                Ok(k) => n += k,
            }
        }
        got.starts_with(b"HTTP/1.")
    }

    /// Makes sure LD_PRELOAD took effect exactly when asked for.
    fn check_preload(&self) {
        let pid = self.child.as_ref().unwrap().id();
        let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap_or_default();
        let loaded = maps.contains("libpcp_secure");
        assert_eq!(
            loaded, self.opts.preload_ours,
            "libpcp_secure mapped into pmproxy: {loaded}, asked for: {}",
            self.opts.preload_ours
        );
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The running pmproxy's process id (`-f`: pmproxy itself, not a
    /// daemonised copy).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("pmproxy not running").id()
    }

    /// How many descriptors pmproxy has open (entries of /proc/PID/fd).
    pub fn fd_count(&self) -> usize {
        let pid = self.pid();
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap_or_else(|e| panic!("/proc/{pid}/fd: {e}"))
            .count()
    }

    /// pmproxy's open descriptors, one `N -> target` line each in number
    /// order, for failure messages.
    pub fn fd_listing(&self) -> String {
        let pid = self.pid();
        let mut fds: Vec<(u32, String)> = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .map(|rd| {
                rd.flatten()
                    .map(|e| {
                        let n = e.file_name().to_str().and_then(|n| n.parse().ok());
                        let target = std::fs::read_link(e.path())
                            .map(|t| t.display().to_string())
                            .unwrap_or_default();
                        (n.unwrap_or(u32::MAX), target)
                    })
                    .collect()
            })
            .unwrap_or_default();
        fds.sort();
        fds.iter().map(|(n, t)| format!("  {n} -> {t}\n")).collect()
    }

    /// Connections to pmproxy's port that pmproxy has not closed yet
    /// (ESTABLISHED, SYN_RECV, CLOSE_WAIT sockets whose local port is
    /// pmproxy's, from /proc/net/tcp and tcp6).
    pub fn open_connections(&self) -> usize {
        super::open_connections_on(self.port)
    }

    /// pmproxy's resident set size in kB (VmRSS in /proc/PID/status).
    pub fn vm_rss_kb(&self) -> u64 {
        let pid = self.pid();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .unwrap_or_else(|e| panic!("/proc/{pid}/status: {e}"));
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no VmRSS in /proc/{pid}/status"))
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// pmproxy.log so far.
    pub fn log(&self) -> String {
        read_lossy(&self.file("pmproxy.log"))
    }

    /// Everything pmproxy wrote, for failure messages.
    pub fn output(&self) -> String {
        format!(
            "--- pmproxy.log ---\n{}--- pmproxy stdout/stderr ---\n{}--- pmproxy.fatal ---\n{}----------------",
            self.log(),
            read_lossy(&self.file("pmproxy.out")),
            read_lossy(&self.file("pmproxy.fatal"))
        )
    }

    /// Asserts that pmproxy is still running, showing its output otherwise.
    pub fn assert_running(&mut self) {
        if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
            panic!("pmproxy exited with {status}\n{}", self.output());
        }
    }

    fn stop(&mut self) {
        stop_child(&mut self.child, Duration::from_secs(10));
    }
}

impl Drop for Pmproxy {
    fn drop(&mut self) {
        self.stop();
        if thread::panicking() {
            eprintln!("pmproxy on port {}:\n{}", self.port, self.output());
        }
    }
}
