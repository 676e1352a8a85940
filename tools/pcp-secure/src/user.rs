//! Local users: the one pmcd runs as (`verify --service-user`, `cert
//! server`'s key group) and the owner of a trust store (`trust --user`),
//! and acting as one of them for a while (`as_user`): files are then read
//! and written with exactly that user's rights, by the kernel's own rules
//! (owner, groups, ACLs), as pmcd reads them after it drops to its user.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;

use pcp_secure::api::nssdb::password;

/// A local user: pmcd's (`--service-user`, by default pcp), or the owner
/// of a trust store (`trust --user`).
#[derive(Clone, Debug)]
pub(crate) struct ServiceUser {
    /// The login name (or the uid, for a uid without a name).
    pub(crate) name: String,
    /// The user id.
    pub(crate) uid: libc::uid_t,
    /// The primary group id.
    pub(crate) gid: libc::gid_t,
    /// The home directory (empty when unknown).
    pub(crate) home: std::path::PathBuf,
}

impl ServiceUser {
    /// `--service-user NAME` (or a numeric uid).
    pub(crate) fn parse(s: &str) -> Result<ServiceUser, String> {
        lookup(Who::Name(s))
            .or_else(|| s.parse().ok().and_then(|uid| lookup(Who::Uid(uid))))
            .ok_or_else(|| format!("no user \"{s}\" on this machine"))
    }

    /// pcp (pmcd's default -U) when verify runs as root and that user
    /// exists, else the user running verify.
    pub(crate) fn default_for_pmcd() -> ServiceUser {
        if euid() == 0 {
            if let Some(pcp) = lookup(Who::Name("pcp")) {
                return pcp;
            }
        }
        ServiceUser::current()
    }

    /// The user running verify (and the clients started from here).
    pub(crate) fn current() -> ServiceUser {
        let euid = euid();
        lookup(Who::Uid(euid)).unwrap_or_else(|| ServiceUser {
            name: euid.to_string(),
            uid: euid,
            // SAFETY: getegid has no preconditions.
            gid: unsafe { libc::getegid() },
            home: std::path::PathBuf::new(),
        })
    }
}

enum Who<'a> {
    Name(&'a str),
    Uid(libc::uid_t),
}

/// The password database entry of a user.
fn lookup(who: Who<'_>) -> Option<ServiceUser> {
    let mut buf = vec![0 as libc::c_char; 4096];
    // SAFETY: an all-zero passwd is a valid value to be overwritten.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    let rc = match who {
        Who::Name(name) => {
            let name = CString::new(name).ok()?;
            // SAFETY: the buffers outlive the call; the result points into them.
            unsafe {
                libc::getpwnam_r(
                    name.as_ptr(),
                    &mut pwd,
                    buf.as_mut_ptr(),
                    buf.len(),
                    &mut result,
                )
            }
        }
        // SAFETY: as above.
        Who::Uid(uid) => unsafe {
            libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result)
        },
    };
    if rc != 0 || result.is_null() || pwd.pw_name.is_null() {
        return None;
    }
    // SAFETY: getpw*_r filled pw_name with a NUL-terminated string.
    let name = unsafe { std::ffi::CStr::from_ptr(pwd.pw_name) };
    let home = if pwd.pw_dir.is_null() {
        std::path::PathBuf::new()
    } else {
        // SAFETY: getpw*_r filled pw_dir with a NUL-terminated string.
        let dir = unsafe { std::ffi::CStr::from_ptr(pwd.pw_dir) };
        std::path::PathBuf::from(std::ffi::OsStr::from_bytes(dir.to_bytes()))
    };
    Some(ServiceUser {
        name: name.to_string_lossy().into_owned(),
        uid: pwd.pw_uid,
        gid: pwd.pw_gid,
        home,
    })
}

/// This process's effective uid.
pub(crate) fn euid() -> libc::uid_t {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() }
}

/// Runs `f` with the effective user, group and supplementary groups of
/// `user` (as pmcd has after pmSetProcessIdentity), then switches back.
/// Without switching when this process already is `user`; an error when it
/// is neither that user nor root.
pub(crate) fn as_user<T>(user: &ServiceUser, f: impl FnOnce() -> T) -> Result<T, String> {
    let euid = euid();
    if euid == user.uid {
        return Ok(f());
    }
    if euid != 0 {
        return Err(format!(
            "this command runs as {} (uid {euid}), not as {} or root",
            password::user_name(euid),
            user.name
        ));
    }
    let _back = Switched::to(user)?;
    Ok(f())
}

/// While alive, this (root) process acts as another user.
struct Switched {
    egid: libc::gid_t,
    groups: Vec<libc::gid_t>,
}

impl Switched {
    fn to(user: &ServiceUser) -> Result<Switched, String> {
        let fail = |what: &str| {
            format!(
                "cannot act as user {} ({what}: {})",
                user.name,
                io::Error::last_os_error()
            )
        };
        // SAFETY: getegid has no preconditions; getgroups writes at most
        // `n` entries into a buffer of that size.
        let (egid, groups) = unsafe {
            let egid = libc::getegid();
            let n = libc::getgroups(0, std::ptr::null_mut());
            let mut groups = vec![0 as libc::gid_t; n.max(0) as usize];
            let n = libc::getgroups(n, groups.as_mut_ptr());
            groups.truncate(n.max(0) as usize);
            (egid, groups)
        };
        let back = Switched { egid, groups };
        let name = CString::new(user.name.as_str()).map_err(|_| fail("user name"))?;
        // SAFETY: plain system calls on valid arguments; `back` restores
        // root's identity when it is dropped on any early return.
        unsafe {
            if libc::initgroups(name.as_ptr(), user.gid) != 0 {
                return Err(fail("initgroups"));
            }
            if libc::setegid(user.gid) != 0 {
                return Err(fail("setegid"));
            }
            if libc::seteuid(user.uid) != 0 {
                return Err(fail("seteuid"));
            }
        }
        Ok(back)
    }
}

impl Drop for Switched {
    fn drop(&mut self) {
        // SAFETY: plain system calls; the saved set-user-ID is still root,
        // so these succeed.
        let ok = unsafe {
            libc::seteuid(0) == 0
                && libc::setegid(self.egid) == 0
                && libc::setgroups(self.groups.len(), self.groups.as_ptr()) == 0
        };
        if !ok {
            // Going on with another user's identity would make every later
            // check wrong.
            eprintln!(
                "pcp-secure: cannot switch back to root: {}",
                io::Error::last_os_error()
            );
            std::process::abort();
        }
    }
}
