//! The data path: TLS on descriptors with a session of ours, libpcp's own
//! definition for every other descriptor; closing; libpcp's error
//! conventions for wrapped errors; the `select` hook.

use std::ffi::{c_int, c_void};

use libc::{size_t, ssize_t};

use super::{failure, set_errno};
use crate::error::Error;
use crate::interpose::next;
use crate::pcp;
use crate::tls::io;
use crate::tls::session::{table, Session};

/// Turns a data-path result into a byte count or libpcp's error value.
fn data_result(result: crate::error::Result<usize>) -> ssize_t {
    match result {
        Ok(n) => n as ssize_t,
        Err(Error::Io(e)) => {
            set_errno(e.raw_os_error().unwrap_or(libc::EIO));
            -1
        }
        Err(e) => failure(&e) as ssize_t,
    }
}

/// The common part of the four data-path exports: checks the descriptor
/// and buffer (NULL with a non-zero length fails with EFAULT, as the system
/// call would), then runs `tls` for a descriptor with a session of ours, or
/// `other` (libpcp's own definition, which knows its own TLS descriptors,
/// else the plain system call) for every other descriptor.
fn data_path(
    fd: c_int,
    buffer: *const c_void,
    length: size_t,
    tls: impl FnOnce(&Session) -> crate::error::Result<usize>,
    other: impl FnOnce() -> ssize_t,
) -> ssize_t {
    if fd < 0 {
        return -libc::EBADF as ssize_t;
    }
    if buffer.is_null() && length > 0 {
        set_errno(libc::EFAULT);
        return -1;
    }
    match table().get(fd) {
        Some(session) => data_result(tls(&session)),
        None => other(),
    }
}

/// The bytes at `ptr`.
///
/// # Safety
/// `ptr` is valid for reads of `len` bytes or `len` is 0.
#[allow(unsafe_code)]
unsafe fn slice<'a>(ptr: *const c_void, len: size_t) -> &'a [u8] {
    if len == 0 {
        &[]
    } else {
        // SAFETY: the caller's promise; len > 0 means ptr is not NULL
        // (data_path checked).
        unsafe { std::slice::from_raw_parts(ptr.cast(), len) }
    }
}

/// The writable bytes at `ptr`.
///
/// # Safety
/// `ptr` is valid for writes of `len` bytes or `len` is 0.
#[allow(unsafe_code)]
unsafe fn slice_mut<'a>(ptr: *mut c_void, len: size_t) -> &'a mut [u8] {
    if len == 0 {
        &mut []
    } else {
        // SAFETY: as for `slice`.
        unsafe { std::slice::from_raw_parts_mut(ptr.cast(), len) }
    }
}

entry! {
    /// Sends `length` bytes: through our TLS on a descriptor of ours, else
    /// through libpcp's `__pmSend` (its own TLS or `send(2)`), else `send(2)`.
    ///
    /// # Safety
    /// `buffer` is valid for reads of `length` bytes (or NULL with length 0).
    fn __pmSend(fd: c_int, buffer: *const c_void, length: size_t, flags: c_int) -> ssize_t;
    on_panic: pcp::PM_ERR_TLS as ssize_t;
    {
        data_path(
            fd,
            buffer,
            length,
            // SAFETY: the caller's promise about buffer, checked for NULL.
            |s| io::send(fd, s, unsafe { slice(buffer, length) }),
            // SAFETY: the same arguments, for a function of the same type.
            || unsafe {
                match next::send() {
                    Some(f) => f(fd, buffer, length, flags),
                    None => libc::send(fd, buffer, length, flags),
                }
            },
        )
    }
}

entry! {
    /// Receives up to `length` bytes: from our TLS on a descriptor of ours,
    /// else through libpcp's `__pmRecv`, else `recv(2)`. Returns 0 at end of
    /// stream.
    ///
    /// # Safety
    /// `buffer` is valid for writes of `length` bytes (or NULL with length 0).
    fn __pmRecv(fd: c_int, buffer: *mut c_void, length: size_t, flags: c_int) -> ssize_t;
    on_panic: pcp::PM_ERR_TLS as ssize_t;
    {
        data_path(
            fd,
            buffer,
            length,
            // SAFETY: the caller's promise about buffer, checked for NULL.
            |s| io::recv(fd, s, unsafe { slice_mut(buffer, length) }),
            // SAFETY: the same arguments, for a function of the same type.
            || unsafe {
                match next::recv() {
                    Some(f) => f(fd, buffer, length, flags),
                    None => libc::recv(fd, buffer, length, flags),
                }
            },
        )
    }
}

entry! {
    /// Like `__pmRecv` without flags; other descriptors (pipes too) go to
    /// libpcp's `__pmRead`, else `read(2)`.
    ///
    /// # Safety
    /// `buffer` is valid for writes of `length` bytes (or NULL with length 0).
    fn __pmRead(fd: c_int, buffer: *mut c_void, length: size_t) -> ssize_t;
    on_panic: pcp::PM_ERR_TLS as ssize_t;
    {
        data_path(
            fd,
            buffer,
            length,
            // SAFETY: the caller's promise about buffer, checked for NULL.
            |s| io::recv(fd, s, unsafe { slice_mut(buffer, length) }),
            // SAFETY: the same arguments, for a function of the same type.
            || unsafe {
                match next::read() {
                    Some(f) => f(fd, buffer, length),
                    None => libc::read(fd, buffer, length),
                }
            },
        )
    }
}

entry! {
    /// Like `__pmSend` without flags; other descriptors (pipes too) go to
    /// libpcp's `__pmWrite`, else `write(2)`.
    ///
    /// # Safety
    /// `buffer` is valid for reads of `length` bytes (or NULL with length 0).
    fn __pmWrite(fd: c_int, buffer: *const c_void, length: size_t) -> ssize_t;
    on_panic: pcp::PM_ERR_TLS as ssize_t;
    {
        data_path(
            fd,
            buffer,
            length,
            // SAFETY: the caller's promise about buffer, checked for NULL.
            |s| io::send(fd, s, unsafe { slice(buffer, length) }),
            // SAFETY: the same arguments, for a function of the same type.
            || unsafe {
                match next::write() {
                    Some(f) => f(fd, buffer, length),
                    None => libc::write(fd, buffer, length),
                }
            },
        )
    }
}

entry! {
    /// Ends the descriptor's TLS session (close_notify, best effort), then lets
    /// libpcp reset its IPC entry and close the descriptor (plain `close` when
    /// libpcp is not loaded).
    ///
    /// # Safety
    /// No pointers are involved.
    fn __pmCloseSocket(fd: c_int) -> ();
    on_panic: ();
    {
        if let Some(session) = table().remove(fd) {
            io::close(fd, &session);
            crate::metrics::record_close(&session);
        }
        match next::close_socket() {
            // SAFETY: libpcp's function of this type.
            Some(f) => unsafe { f(fd) },
            None if fd >= 0 => {
                // SAFETY: close takes no pointers.
                unsafe { libc::close(fd) };
            }
            None => {}
        }
    }
}

entry! {
    /// True (1) when the last error (`errno`, or an errno that
    /// `__pmSecureSocketsError(-errno)` shifted below `PM_ERR_NYI`) means the
    /// peer or the network went away.
    ///
    /// # Safety
    /// No pointers are involved.
    fn __pmSocketClosed() -> c_int;
    on_panic: 0;
    {
        // SAFETY: __errno_location always returns this thread's errno slot.
        c_int::from(peer_gone(unsafe { *libc::__errno_location() }))
    }
}

/// Whether `errno` (possibly shifted by `__pmSecureSocketsError`) means
/// the connection is gone.
fn peer_gone(errno: c_int) -> bool {
    // __pmSecureSocketsError(-e) leaves -PM_ERR_NYI + e in errno.
    let err = if errno > -pcp::PM_ERR_NYI {
        errno + pcp::PM_ERR_NYI
    } else {
        errno
    };
    matches!(
        err,
        libc::ECONNRESET
            | libc::EPIPE
            | libc::ETIMEDOUT
            | libc::ENETDOWN
            | libc::ENETUNREACH
            | libc::EHOSTDOWN
            | libc::EHOSTUNREACH
            | libc::ECONNREFUSED
    )
}

entry! {
    /// Encodes a security-library error `code` below `PM_ERR_NYI`, leaves its
    /// magnitude in `errno` and returns it.
    ///
    /// # Safety
    /// No pointers are involved.
    fn __pmSecureSocketsError(code: c_int) -> c_int;
    on_panic: pcp::PM_ERR_NYI;
    {
        let status = pcp::PM_ERR_NYI.saturating_add(code);
        set_errno(status.saturating_neg());
        status
    }
}

entry! {
    /// libc's `select`, except that descriptors whose TLS session holds
    /// decrypted but unread data are reported readable at once. After an
    /// internal error it is libc's `select`, unchanged.
    ///
    /// # Safety
    /// Same contract as `select(2)`.
    fn select(
        nfds: c_int,
        readfds: *mut libc::fd_set,
        writefds: *mut libc::fd_set,
        exceptfds: *mut libc::fd_set,
        timeout: *mut libc::timeval,
    ) -> c_int;
    // SAFETY: the caller's arguments, passed on unchanged.
    on_panic: unsafe { crate::interpose::select::plain(nfds, readfds, writefds, exceptfds, timeout) };
    {
        // SAFETY: the caller's arguments, passed on unchanged.
        unsafe { crate::interpose::select::select(nfds, readfds, writefds, exceptfds, timeout) }
    }
}

#[cfg(test)]
#[allow(unsafe_code)]
mod tests {
    use super::*;

    #[test]
    fn socket_closed_understands_plain_and_shifted_errnos() {
        assert!(peer_gone(libc::ECONNRESET));
        assert!(!peer_gone(libc::EINTR));
        // SAFETY: no pointers involved.
        let status = unsafe { __pmSecureSocketsError(-libc::EPIPE) };
        assert_eq!(status, pcp::PM_ERR_NYI - libc::EPIPE);
        // SAFETY: no pointers involved.
        assert_eq!(unsafe { __pmSocketClosed() }, 1);
        // SAFETY: no pointers involved.
        unsafe { __pmSecureSocketsError(-libc::EACCES) };
        // SAFETY: no pointers involved.
        assert_eq!(unsafe { __pmSocketClosed() }, 0);
    }
}
