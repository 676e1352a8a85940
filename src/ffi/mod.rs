//! The C boundary: libpcp's secure-socket entry points with their PCP 6/7
//! signatures, libc's `select`, and two functions of our own.
//!
//! Every export is written with [`entry!`], which makes it `#[no_mangle]
//! extern "C"`, runs its body inside the one panic boundary (no panic or
//! unwinding crosses into C; the failure value is libpcp's, and the log
//! names the function), and records its C prototype and documentation for
//! the generated header and the symbol checks ([`abi`]). A `#[no_mangle]`
//! written by hand is refused by the `unsafe_code` lint in this module.
//! The code here only converts pointers and maps results onto libpcp's
//! conventions (negative `PM_ERR_*` or `-errno`); the work is done in the
//! modules it calls.

#![deny(unsafe_code)]
#![allow(non_snake_case, non_camel_case_types)]

use std::ffi::{c_char, c_int, CStr};

use crate::error::Error;

/// Defines one export: `#[no_mangle] pub unsafe extern "C" fn NAME`, its
/// body run through the panic boundary (returning `on_panic` after a
/// panic, logged with the function's name), and `NAME::EXPORT`, its C
/// prototype and documentation.
macro_rules! entry {
    (
        $(#[doc = $doc:literal])*
        fn $name:ident($($arg:ident: $ty:ty),* $(,)?) -> $ret:ty;
        on_panic: $fail:expr;
        $body:block
    ) => {
        $(#[doc = $doc])*
        #[allow(unsafe_code, clippy::unused_unit)]
        #[no_mangle]
        pub unsafe extern "C" fn $name($($arg: $ty),*) -> $ret {
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| -> $ret { $body })) {
                Ok(value) => value,
                Err(_) => {
                    crate::log::error!(concat!(
                        "internal error in ",
                        stringify!($name),
                        "; the call failed safely"
                    ));
                    $fail
                }
            }
        }

        #[doc = concat!("The C prototype and documentation of `", stringify!($name), "`.")]
        pub mod $name {
            /// What the header, the symbol checks and MATRIX.md need.
            pub const EXPORT: crate::ffi::abi::Export = crate::ffi::abi::Export {
                name: stringify!($name),
                args: &[$((stringify!($arg), stringify!($ty))),*],
                ret: stringify!($ret),
                docs: &[$($doc),*],
            };
        }
    };
}

pub mod abi;
pub mod data;
pub mod info;
pub mod server;
pub mod ssl;
pub mod types;
pub mod upgrade;

pub use info::version_str;

/// Reads an optional C string; NULL gives `None`.
///
/// # Safety
/// `p` is NULL or points to a NUL-terminated string.
#[allow(unsafe_code)]
unsafe fn opt_str(p: *const c_char) -> Option<String> {
    // SAFETY: the caller promises a NUL-terminated string when non-NULL.
    (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
}

/// Sets this thread's `errno`.
#[allow(unsafe_code)]
fn set_errno(value: c_int) {
    // SAFETY: __errno_location always returns this thread's errno slot.
    unsafe { *libc::__errno_location() = value };
}

/// libpcp's status for an error, with the matching `errno` left behind.
fn failure(e: &Error) -> c_int {
    set_errno(e.errno());
    e.code()
}
