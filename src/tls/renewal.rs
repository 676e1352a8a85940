//! Renewal without a restart: the files a server context was built from
//! (certificate, key, CA file or directory, NSS database and its password
//! file) are looked at again, at most once a second, when a client
//! connects. When they changed, the context is built anew from the same
//! settings and used for new connections; a renewal that cannot be used
//! (a key that does not fit, an unreadable file, an expired certificate) is
//! logged once and the previous certificate keeps serving.

#![forbid(unsafe_code)]

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::tls::config::TlsConf;

/// One file as found: inode, size, and modification time (seconds and
/// nanoseconds).
type Seen = (u64, u64, i64, i64);

/// What was on disk: for each file, how it was found (`None` when it could
/// not be looked at).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct FileStamp(Vec<(PathBuf, Option<Seen>)>);

impl FileStamp {
    /// The files the server's settings name, as they are now.
    pub(crate) fn of(conf: &TlsConf) -> FileStamp {
        let mut paths: Vec<PathBuf> = [
            &conf.cert_file,
            &conf.key_file,
            &conf.ca_cert_file,
            &conf.ca_cert_dir,
            &conf.nssdb_password_file,
        ]
        .into_iter()
        .flatten()
        .map(PathBuf::from)
        .collect();
        if let Some(db) = &conf.nssdb {
            if let Ok(dir) = crate::nssdb::directory(db) {
                paths.push(dir.join("cert9.db"));
                paths.push(dir.join("key4.db"));
            }
        }
        FileStamp(
            paths
                .into_iter()
                .map(|p| {
                    let seen = std::fs::metadata(&p)
                        .ok()
                        .map(|m| (m.ino(), m.len(), m.mtime(), m.mtime_nsec()));
                    (p, seen)
                })
                .collect(),
        )
    }
}

/// When to look at the files again, and what was last found there.
#[derive(Debug)]
pub(crate) struct Watch {
    /// The settings the context is built from.
    pub(crate) conf: TlsConf,
    /// The files as the serving context (or the last rejected renewal)
    /// found them.
    pub(crate) seen: FileStamp,
    /// The last look.
    checked: Instant,
}

/// How often the files are looked at, at most.
const EVERY: Duration = Duration::from_secs(1);

impl Watch {
    /// Starts watching the files of `conf`, as they are now.
    pub(crate) fn new(conf: TlsConf) -> Watch {
        let seen = FileStamp::of(&conf);
        Watch {
            conf,
            seen,
            checked: Instant::now(),
        }
    }

    /// The files as they are now, when it is time to look and they differ
    /// from what was seen; records that they were looked at.
    pub(crate) fn changed(&mut self) -> Option<FileStamp> {
        if self.checked.elapsed() < EVERY {
            return None;
        }
        self.checked = Instant::now();
        let now = FileStamp::of(&self.conf);
        (now != self.seen).then_some(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rewritten_file_is_a_change_and_a_look_is_rate_limited() {
        let dir = std::env::temp_dir().join(format!("pcp-secure-renewal-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let cert = dir.join("server.crt");
        std::fs::write(&cert, "one").unwrap();
        let conf = TlsConf {
            cert_file: Some(cert.display().to_string()),
            ..TlsConf::default()
        };
        let mut watch = Watch::new(conf);
        assert_eq!(watch.changed(), None, "looked again within a second");
        watch.checked -= EVERY;
        assert_eq!(watch.changed(), None, "nothing changed");
        std::fs::write(dir.join("new"), "a longer text").unwrap();
        std::fs::rename(dir.join("new"), &cert).unwrap();
        watch.checked -= EVERY;
        assert!(
            watch.changed().is_some(),
            "the renamed-over file is a change"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
