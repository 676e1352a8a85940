//! The `select` hook. libpcp waits for PDU bytes with `select` before it
//! calls `__pmRecv`; plaintext that TLS already decrypted into its buffer
//! is invisible to the kernel, so such descriptors are reported readable
//! here, else the reader would stall until its time-out.

use std::os::raw::c_int;

use crate::interpose::next;
use crate::tls::session::table;

/// `select` with TLS-buffered plaintext counted as readable.
///
/// # Safety
/// Same contract as libc's `select`: the sets are null or valid `fd_set`s,
/// `timeout` is null or valid.
pub(crate) unsafe fn select(
    nfds: c_int,
    readfds: *mut libc::fd_set,
    writefds: *mut libc::fd_set,
    exceptfds: *mut libc::fd_set,
    timeout: *mut libc::timeval,
) -> c_int {
    let Some(real) = next::select() else {
        // SAFETY: the caller's arguments, passed on unchanged.
        return unsafe { plain(nfds, readfds, writefds, exceptfds, timeout) };
    };
    if readfds.is_null() || nfds <= 0 || table().is_empty() {
        // SAFETY: libc's select, with the caller's arguments.
        return unsafe { real(nfds, readfds, writefds, exceptfds, timeout) };
    }
    // SAFETY (for the FD_* calls below): readfds is a valid fd_set (the
    // caller's promise, checked for NULL) and every fd is below FD_SETSIZE.
    let nfds_bounded = nfds.min(libc::FD_SETSIZE as c_int);
    let mut ready: Vec<c_int> = Vec::new();
    table().for_each_pending(nfds_bounded, |fd| {
        // SAFETY: see above.
        if fd >= 0 && unsafe { libc::FD_ISSET(fd, readfds) } {
            ready.push(fd);
        }
    });
    if ready.is_empty() {
        // SAFETY: libc's select, with the caller's arguments.
        return unsafe { real(nfds, readfds, writefds, exceptfds, timeout) };
    }
    if writefds.is_null() && exceptfds.is_null() {
        let asked = (0..nfds_bounded)
            // SAFETY: see above.
            .filter(|&fd| unsafe { libc::FD_ISSET(fd, readfds) })
            .count();
        if asked == ready.len() {
            // Every descriptor asked about is ready (libpcp's one-descriptor
            // wait for the rest of a PDU): the sets already say so.
            return asked as c_int;
        }
    }
    // Something is ready now: poll the rest without waiting, then add ours.
    let mut zero = libc::timeval {
        tv_sec: 0,
        tv_usec: 0,
    };
    // SAFETY: libc's select, with the caller's sets and our own time-out.
    let mut n = unsafe { real(nfds, readfds, writefds, exceptfds, &mut zero) };
    if n < 0 {
        // Report just the buffered descriptors.
        // SAFETY: each set is NULL-checked and a valid fd_set otherwise.
        unsafe {
            libc::FD_ZERO(readfds);
            if !writefds.is_null() {
                libc::FD_ZERO(writefds);
            }
            if !exceptfds.is_null() {
                libc::FD_ZERO(exceptfds);
            }
        }
        n = 0;
    }
    for fd in ready {
        // SAFETY: see above.
        unsafe {
            if !libc::FD_ISSET(fd, readfds) {
                libc::FD_SET(fd, readfds);
                n += 1;
            }
        }
    }
    n
}

/// `select` exactly as libc does it, without looking at any session: the
/// hook's fallback after an internal error, so that a caller's loop waits
/// as it would without the library (never a spinning `EINTR`). Uses libc's
/// `select`, or `pselect` (with the same time-out, updated as Linux does)
/// where that cannot be found.
///
/// # Safety
/// Same contract as libc's `select`.
pub(crate) unsafe fn plain(
    nfds: c_int,
    readfds: *mut libc::fd_set,
    writefds: *mut libc::fd_set,
    exceptfds: *mut libc::fd_set,
    timeout: *mut libc::timeval,
) -> c_int {
    if let Some(real) = next::select() {
        // SAFETY: libc's select, with the caller's arguments.
        return unsafe { real(nfds, readfds, writefds, exceptfds, timeout) };
    }
    // SAFETY: the caller's promise: timeout is NULL or valid.
    let Some(tv) = (unsafe { timeout.as_mut() }) else {
        // SAFETY: pselect with the caller's sets, no time-out, no mask.
        return unsafe {
            libc::pselect(
                nfds,
                readfds,
                writefds,
                exceptfds,
                std::ptr::null(),
                std::ptr::null(),
            )
        };
    };
    let start = std::time::Instant::now();
    let ts = libc::timespec {
        tv_sec: tv.tv_sec,
        tv_nsec: tv.tv_usec.clamp(0, 999_999) * 1000,
    };
    // SAFETY: pselect with the caller's sets, our own timespec, no mask.
    let n = unsafe { libc::pselect(nfds, readfds, writefds, exceptfds, &ts, std::ptr::null()) };
    let asked = std::time::Duration::new(tv.tv_sec.max(0) as u64, ts.tv_nsec as u32);
    let left = asked.saturating_sub(start.elapsed());
    tv.tv_sec = left.as_secs() as libc::time_t;
    tv.tv_usec = left.subsec_micros() as libc::suseconds_t;
    n
}
