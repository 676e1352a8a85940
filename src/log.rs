//! Diagnostics on standard error, where pmcd's log and a client's terminal
//! both end up. Every line starts with `pcp_secure:` so that an administrator
//! can tell our messages from libpcp's. Nothing secret is ever passed here.

#![forbid(unsafe_code)]

use std::io::Write;

/// How important a message is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Level {
    /// Something failed; an administrator has to act.
    Error,
    /// Something is weaker or odder than it should be.
    Warning,
    /// Normal but noteworthy (server context set up).
    Info,
    /// Only with `PCP_SECURE_DEBUG` set.
    Debug,
}

/// True when `PCP_SECURE_DEBUG` is set to anything but "" or "0".
pub(crate) fn debug_enabled() -> bool {
    crate::tls::config::env::debug()
}

/// Writes one message; failures to write are ignored (never panic).
pub(crate) fn emit(level: Level, args: std::fmt::Arguments<'_>) {
    if level == Level::Debug && !debug_enabled() {
        return;
    }
    let word = match level {
        Level::Error => "error",
        Level::Warning => "warning",
        Level::Info => "info",
        Level::Debug => "debug",
    };
    let line = format!("pcp_secure: {word}: {args}\n");
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// Writes a block of text as it is (a multi-line warning for a person).
pub(crate) fn emit_raw(text: &str) {
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}

/// Logs at error level.
macro_rules! error {
    ($($arg:tt)*) => { $crate::log::emit($crate::log::Level::Error, format_args!($($arg)*)) };
}
/// Logs at warning level.
macro_rules! warning {
    ($($arg:tt)*) => { $crate::log::emit($crate::log::Level::Warning, format_args!($($arg)*)) };
}
/// Logs at info level.
macro_rules! info {
    ($($arg:tt)*) => { $crate::log::emit($crate::log::Level::Info, format_args!($($arg)*)) };
}
/// Logs at debug level (only with `PCP_SECURE_DEBUG`).
macro_rules! debug {
    ($($arg:tt)*) => { $crate::log::emit($crate::log::Level::Debug, format_args!($($arg)*)) };
}
pub(crate) use {debug, error, info, warning};
