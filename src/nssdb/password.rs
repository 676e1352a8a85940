//! Password files of NSS databases, with the rule of PCP's guide: owned by
//! the user the service runs as, readable by that user only (mode 0400, or 0600 as PCP 5 also took).

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use zeroize::Zeroizing;

/// The largest password file read (libpcp's NSS-era limit).
const MAX_LEN: u64 = 256;

/// The passwords a password file may hold, most likely first: the whole
/// file without trailing CR/LF (how PCP's server read it), then its first
/// and last lines (certutil -f takes a line of the file), if different. `key` names the setting
/// for messages.
pub(crate) fn read(key: &str, path: &str) -> Result<Vec<Zeroizing<Vec<u8>>>, String> {
    let file = std::fs::File::open(Path::new(path))
        .map_err(|e| format!("{key} \"{path}\": cannot open ({e})"))?;
    let meta = file
        .metadata()
        .map_err(|e| format!("{key} \"{path}\": cannot stat ({e})"))?;
    // SAFETY: geteuid has no preconditions.
    check_owner_and_mode(key, path, &meta, unsafe { libc::geteuid() })?;
    if meta.len() > MAX_LEN {
        return Err(format!(
            "{key} \"{path}\": larger than {MAX_LEN} bytes; it should hold only the database password"
        ));
    }
    let mut bytes = Zeroizing::new(Vec::new());
    std::io::Read::read_to_end(&mut std::io::Read::take(&file, MAX_LEN), &mut bytes)
        .map_err(|e| format!("{key} \"{path}\": cannot read ({e})"))?;
    Ok(candidates(&bytes))
}

fn candidates(bytes: &[u8]) -> Vec<Zeroizing<Vec<u8>>> {
    let whole = bytes.trim_ascii_end_crlf();
    let mut lines = whole
        .split(|&b| b == b'\n')
        .map(|l| l.trim_ascii_end_crlf());
    let first = lines.next().unwrap_or(&[]);
    let last = lines.next_back().unwrap_or(first);
    let mut out: Vec<Zeroizing<Vec<u8>>> = Vec::new();
    for candidate in [whole, first, last] {
        if !out.iter().any(|c| c.as_slice() == candidate) {
            out.push(Zeroizing::new(candidate.to_vec()));
        }
    }
    out
}

trait TrimCrLf {
    fn trim_ascii_end_crlf(&self) -> &[u8];
}

impl TrimCrLf for [u8] {
    fn trim_ascii_end_crlf(&self) -> &[u8] {
        let mut s = self;
        while let [rest @ .., b'\r' | b'\n'] = s {
            s = rest;
        }
        s
    }
}

/// The guide's rule: owned by the user the service runs as (`uid`; the
/// library passes its own effective uid, `pcp-secure verify` the user pmcd
/// runs as), mode 0400; 0600 (as PCP 5 accepted, and as private) is
/// taken too.
pub fn check_owner_and_mode(
    key: &str,
    path: &str,
    meta: &std::fs::Metadata,
    uid: libc::uid_t,
) -> Result<(), String> {
    if meta.uid() != uid {
        return Err(format!(
            "{key} \"{path}\": owned by {} (uid {}), but it is read as {} (uid {uid}); \
             the password file must belong to the user the service runs as \
             (chown {} \"{path}\")",
            user_name(meta.uid()),
            meta.uid(),
            user_name(uid),
            user_name(uid)
        ));
    }
    let mode = meta.mode() & 0o7777;
    if mode != 0o400 && mode != 0o600 {
        return Err(format!(
            "{key} \"{path}\": mode {mode:04o}, but it must be 0400 (or 0600: readable by its owner only): chmod 0400 \"{path}\""
        ));
    }
    Ok(())
}

/// The name of the user this process runs as (its effective user).
pub(crate) fn current_user_name() -> String {
    // SAFETY: geteuid takes no arguments and cannot fail.
    user_name(unsafe { libc::geteuid() })
}

/// The name of group `gid`, or the number.
pub fn group_name(gid: libc::gid_t) -> String {
    let mut buf = vec![0 as libc::c_char; 4096];
    // SAFETY: an all-zero group (NULL pointers, zero id) is a valid value.
    let mut grp: libc::group = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::group = std::ptr::null_mut();
    // SAFETY: the buffers outlive the call; the result points into them.
    let rc = unsafe { libc::getgrgid_r(gid, &mut grp, buf.as_mut_ptr(), buf.len(), &mut result) };
    if rc == 0 && !result.is_null() && !grp.gr_name.is_null() {
        // SAFETY: getgrgid_r filled gr_name with a NUL-terminated string.
        let name = unsafe { std::ffi::CStr::from_ptr(grp.gr_name) };
        return name.to_string_lossy().into_owned();
    }
    gid.to_string()
}

/// The name of the effective group of this process.
pub(crate) fn current_group_name() -> String {
    // SAFETY: getegid takes no arguments and cannot fail.
    group_name(unsafe { libc::getegid() })
}

/// The name of user `uid`, or the number.
pub fn user_name(uid: libc::uid_t) -> String {
    let mut buf = vec![0 as libc::c_char; 1024];
    // SAFETY: an all-zero passwd (NULL pointers, zero ids) is a valid value.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: the buffers outlive the call; the result points into them.
    let rc = unsafe { libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result) };
    if rc == 0 && !result.is_null() && !pwd.pw_name.is_null() {
        // SAFETY: getpwuid_r filled pw_name with a NUL-terminated string.
        let name = unsafe { std::ffi::CStr::from_ptr(pwd.pw_name) };
        return name.to_string_lossy().into_owned();
    }
    uid.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn whole_file_then_first_line() {
        let c = candidates(b"secret\r\n");
        assert_eq!(c.len(), 1);
        assert_eq!(&c[0][..], b"secret");
        let c = candidates(b"one\ntwo\n");
        assert_eq!(&c[0][..], b"one\ntwo");
        assert_eq!(&c[1][..], b"one");
        assert_eq!(&c[2][..], b"two");
        assert_eq!(c.len(), 3);
        assert_eq!(&candidates(b"\n")[0][..], b"");
    }

    #[test]
    fn mode_must_be_0400() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        std::fs::write(&path, "secret\n").unwrap();
        let p = path.to_str().unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = read("tls-nssdb-password-file", p).unwrap_err();
        assert!(
            e.contains("0644") && e.contains("0400") && e.contains(p),
            "{e}"
        );
        for bad in [0o640, 0o604, 0o700, 0o4400] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(bad)).unwrap();
            assert!(read("tls-nssdb-password-file", p).is_err(), "{bad:o}");
        }
        for good in [0o400, 0o600] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(good)).unwrap();
            assert_eq!(
                &read("tls-nssdb-password-file", p).unwrap()[0][..],
                b"secret"
            );
        }
    }
}
