//! The `select` hook. libpcp waits for PDU bytes with `select` before it
//! calls `__pmRecv`; plaintext that TLS already decrypted into its buffer
//! is invisible to the kernel, so such descriptors are reported readable
//! here, else the reader would stall until its time-out.
//!
//! It is also where pmcd's server handshakes advance (`tls::accept`): while
//! one is in progress, bytes arriving on its descriptor are fed to the
//! handshake and the descriptor is hidden from the caller until plaintext is
//! there or the connection ended, and the wait is cut short to end the
//! handshakes whose deadline passes.

use std::os::raw::c_int;
use std::time::{Duration, Instant};

use crate::interpose::next;
use crate::tls::accept;
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
    if table().any_accepting() {
        // SAFETY: the caller's arguments; readfds is not NULL.
        return unsafe { with_handshakes(real, nfds, readfds, writefds, exceptfds, timeout) };
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

/// `select` while server handshakes are in progress: the caller's wait, in
/// steps that end at the next handshake deadline, with the handshakes'
/// descriptors reported only when they have plaintext or have ended, and
/// TLS-buffered plaintext reported as in [`select`].
///
/// # Safety
/// As for [`select`]; `readfds` is not NULL.
unsafe fn with_handshakes(
    real: next::SelectFn,
    nfds: c_int,
    readfds: *mut libc::fd_set,
    writefds: *mut libc::fd_set,
    exceptfds: *mut libc::fd_set,
    timeout: *mut libc::timeval,
) -> c_int {
    let nfds = nfds.min(libc::FD_SETSIZE as c_int);
    // SAFETY: the caller's promises: readfds is a valid fd_set, the other
    // sets and the time-out are NULL or valid.
    let (asked_read, asked_write, asked_except, limit) = unsafe {
        (
            *readfds,
            writefds.as_ref().copied(),
            exceptfds.as_ref().copied(),
            timeout.as_ref().map(|tv| Instant::now() + duration(tv)),
        )
    };
    // (For the FD_* calls below: every set is a valid fd_set and every
    // descriptor tested is in 0..nfds, below FD_SETSIZE.)
    let asked = |fd: c_int| {
        // SAFETY: see above.
        fd >= 0 && unsafe { libc::FD_ISSET(fd, &asked_read) }
    };
    loop {
        let wake = accept::tend();
        let mut buffered = Vec::new();
        table().for_each_pending(nfds, |fd| {
            if asked(fd) {
                buffered.push(fd);
            }
        });
        let now = Instant::now();
        let until = match (limit, wake) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let mut step = match (buffered.is_empty(), until) {
            (false, _) => Some(Duration::ZERO),
            (true, u) => u.map(|u| u.saturating_duration_since(now)),
        }
        .map(timeval);
        let step_ptr = step
            .as_mut()
            .map_or(std::ptr::null_mut(), |tv| tv as *mut libc::timeval);
        // SAFETY: the caller's sets (restored to what was asked) and our
        // own time-out, for libc's select.
        let mut n = unsafe {
            *readfds = asked_read;
            if let Some(w) = asked_write {
                *writefds = w;
            }
            if let Some(e) = asked_except {
                *exceptfds = e;
            }
            real(nfds, readfds, writefds, exceptfds, step_ptr)
        };
        if n < 0 {
            return n;
        }
        for (fd, session) in table().accepting(nfds) {
            // SAFETY: see above.
            if unsafe { libc::FD_ISSET(fd, readfds) } && !accept::advance(fd, &session) {
                // SAFETY: see above.
                unsafe { libc::FD_CLR(fd, readfds) };
                n -= 1;
            }
        }
        table().for_each_pending(nfds, |fd| {
            // SAFETY: see above.
            if asked(fd) && unsafe { !libc::FD_ISSET(fd, readfds) } {
                // SAFETY: see above.
                unsafe { libc::FD_SET(fd, readfds) };
                n += 1;
            }
        });
        let left = limit.map(|l| l.saturating_duration_since(Instant::now()));
        if n > 0 || left == Some(Duration::ZERO) {
            // SAFETY: the caller's time-out, NULL or valid; Linux leaves
            // the time not waited in it.
            if let (Some(tv), Some(left)) = (unsafe { timeout.as_mut() }, left) {
                *tv = timeval(left);
            }
            return n;
        }
    }
}

/// The length of a `timeval`.
fn duration(tv: &libc::timeval) -> Duration {
    Duration::new(
        tv.tv_sec.max(0) as u64,
        (tv.tv_usec.clamp(0, 999_999) * 1000) as u32,
    )
}

/// A `timeval` of `d`, rounded up to the microsecond so that a wait for a
/// deadline never ends just before it.
fn timeval(d: Duration) -> libc::timeval {
    let micros = d.as_nanos().div_ceil(1000);
    libc::timeval {
        tv_sec: (micros / 1_000_000).min(libc::time_t::MAX as u128) as libc::time_t,
        tv_usec: (micros % 1_000_000) as libc::suseconds_t,
    }
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
    let left = duration(tv).saturating_sub(start.elapsed());
    tv.tv_sec = left.as_secs() as libc::time_t;
    tv.tv_usec = left.subsec_micros() as libc::suseconds_t;
    n
}
