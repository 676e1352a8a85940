//! Whether a file that trust decisions rest on could have been changed by
//! somebody else, judged as ssh judges its own files: it (or its
//! directory) belongs to another user (root excepted), or its group or
//! anyone may write it.

use std::path::{Path, PathBuf};

/// What makes a file untrustworthy.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Exposure {
    /// `path` belongs to user `owner`, neither the caller nor root.
    OtherOwner {
        /// The file or directory.
        path: PathBuf,
        /// Its owner's name.
        owner: String,
    },
    /// `path` is writable by its group or by anyone.
    Writable {
        /// The file or directory.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
}

/// The first of `paths` (those that exist) that somebody else could have
/// changed; `None` when they are all safe.
pub(crate) fn exposure(paths: &[&Path]) -> Option<Exposure> {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: geteuid takes no arguments and cannot fail.
    let me = unsafe { libc::geteuid() };
    for path in paths {
        let Ok(meta) = std::fs::metadata(path) else {
            continue;
        };
        if meta.uid() != me && meta.uid() != 0 {
            return Some(Exposure::OtherOwner {
                path: path.to_path_buf(),
                owner: crate::nssdb::password::user_name(meta.uid()),
            });
        }
        let mode = meta.mode() & 0o7777;
        if mode & 0o022 != 0 {
            return Some(Exposure::Writable {
                path: path.to_path_buf(),
                mode,
            });
        }
    }
    None
}

impl Exposure {
    /// "`what`: PATH is ...; it is not used for trust decisions (fix: ...)".
    pub(crate) fn describe(&self, what: &str) -> String {
        match self {
            Exposure::OtherOwner { path, owner } => format!(
                "{what}: {} belongs to user {owner}, not to you; it is not used for trust decisions (fix: remove it, or chown it to yourself)",
                path.display()
            ),
            Exposure::Writable { path, mode } => format!(
                "{what}: {} is writable by other users (mode {mode:04o}), so anyone could have changed what it trusts; it is not used for trust decisions (fix: chmod go-w {})",
                path.display(),
                path.display()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn group_or_world_writable_files_are_exposed() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, "x").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        assert_eq!(exposure(&[dir.path(), &file]), None);
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o664)).unwrap();
        let found = exposure(&[dir.path(), &file]).unwrap();
        assert_eq!(
            found,
            Exposure::Writable {
                path: file.clone(),
                mode: 0o664
            }
        );
        let text = found.describe("NSS database \"sql:/x\"");
        assert!(
            text.contains("mode 0664") && text.contains("chmod go-w"),
            "{text}"
        );
        // A missing file is not exposed (there is nothing to trust).
        assert_eq!(exposure(&[&dir.path().join("missing")]), None);
    }
}
