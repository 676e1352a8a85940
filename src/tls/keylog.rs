//! Optional key logging for debugging TLS with a packet analyser (the NSS
//! key log format Wireshark reads). Off unless `PCP_TLS_KEYLOG` names a
//! file; when on, every process that uses it says so loudly, because anyone
//! who can read that file can decrypt the traffic.

#![forbid(unsafe_code)]

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::sync::{Arc, Mutex};

use crate::log;

/// Writes TLS secrets to the file named by `PCP_TLS_KEYLOG`.
#[derive(Debug)]
pub(crate) struct KeyLogFile {
    file: Mutex<File>,
}

impl rustls::KeyLog for KeyLogFile {
    fn log(&self, label: &str, client_random: &[u8], secret: &[u8]) {
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        let line = format!("{label} {} {}\n", hex(client_random), hex(secret));
        if let Ok(mut file) = self.file.lock() {
            let _ = file.write_all(line.as_bytes());
        }
    }
}

/// The key log to use: `None` (the default), or the file named by
/// `PCP_TLS_KEYLOG`, opened for appending with mode 0600.
pub(crate) fn from_env() -> Option<Arc<dyn rustls::KeyLog>> {
    let path = crate::tls::config::env::keylog()?;
    match OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(&path)
    {
        Ok(file) => {
            log::warning!(
                "PCP_TLS_KEYLOG is set: TLS session secrets are written to \"{}\"; anyone who can read that file can decrypt this process's TLS traffic",
                std::path::Path::new(&path).display()
            );
            Some(Arc::new(KeyLogFile {
                file: Mutex::new(file),
            }))
        }
        Err(e) => {
            log::error!(
                "PCP_TLS_KEYLOG \"{}\": cannot open ({e}); no secrets are logged",
                std::path::Path::new(&path).display()
            );
            None
        }
    }
}
