//! Asking the person at the terminal, as PCP's NSS-era client did: the
//! question goes to the controlling terminal (`/dev/tty`, or the file named
//! by `PCP_CONSOLE`), the answer is one key read in raw mode, and an answer
//! other than y or n is asked for again, three times at most. Without a
//! terminal, or with `PCP_CONSOLE=none`, the warning and the question go to
//! standard error followed by "(no)", and the answer is no.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::sync::Mutex;

/// Only one question at a time in a process.
static ASKING: Mutex<()> = Mutex::new(());

/// How many times an unrecognised key is answered with the question again.
const TRIES: usize = 3;

/// How a question was answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Answer {
    /// y.
    Yes,
    /// n, or no usable key.
    No,
    /// Nobody could be asked (no terminal, `PCP_CONSOLE=none`, or a job in
    /// the background of its terminal): no.
    NotAsked,
}

/// The key Ctrl-C gives in raw mode.
const INTERRUPT: u8 = 0x03;

/// Shows `warning` (lines) and asks `question` (without "(y/n)?").
/// Ctrl-C at the question interrupts the program, as it would anywhere
/// else (when the program survives SIGINT, the answer is no).
pub(crate) fn ask(warning: &[String], question: &str) -> Answer {
    let _one_at_a_time = ASKING.lock().unwrap_or_else(|p| p.into_inner());
    match console() {
        Some(tty) => {
            let Ok(mut out) = tty.try_clone() else {
                return Answer::No;
            };
            let mut input = Keys { tty };
            match interactive(&mut input, &mut out, warning, question) {
                Key::Yes => Answer::Yes,
                Key::No => Answer::No,
                Key::Interrupt => {
                    // The terminal is already back in its own mode.
                    // SAFETY: raise takes no pointers.
                    unsafe { libc::raise(libc::SIGINT) };
                    Answer::No
                }
            }
        }
        None => {
            let mut text = warning.join("\n");
            text.push_str(&format!("\n{question} (y/n)? (no)\n"));
            let _ = std::io::stderr().lock().write_all(text.as_bytes());
            Answer::NotAsked
        }
    }
}

/// What the keys typed at the question meant.
#[derive(Debug, PartialEq, Eq)]
enum Key {
    Yes,
    No,
    Interrupt,
}

/// The console to talk to, or `None` when there is none to use.
fn console() -> Option<File> {
    let path = match crate::tls::config::env::console() {
        Some(v) if v == "none" => return None,
        Some(v) => v,
        None => "/dev/tty".into(),
    };
    let tty = OpenOptions::new().read(true).write(true).open(path).ok()?;
    let fd = tty.as_raw_fd();
    // SAFETY: isatty, tcgetpgrp and getpgrp take no pointers.
    let background = unsafe { libc::isatty(fd) == 1 && libc::tcgetpgrp(fd) != libc::getpgrp() };
    // A job in the background of its terminal would be stopped by reading
    // it (SIGTTIN): nobody is there to answer, so nobody is asked.
    (!background).then_some(tty)
}

fn interactive(
    input: &mut impl Read,
    out: &mut impl Write,
    warning: &[String],
    question: &str,
) -> Key {
    let mut text = warning.join("\n");
    text.push('\n');
    if out.write_all(text.as_bytes()).is_err() {
        return Key::No;
    }
    for _ in 0..TRIES {
        let _ = write!(out, "{question} (y/n)? ");
        let _ = out.flush();
        let mut byte = [0u8; 1];
        let key = matches!(input.read(&mut byte), Ok(1)).then_some(byte[0]);
        let shown = key
            .filter(|k| k.is_ascii_graphic())
            .map(char::from)
            .unwrap_or(' ');
        let _ = writeln!(out, "{shown}");
        match key {
            Some(b'y' | b'Y') => return Key::Yes,
            Some(b'n' | b'N') | None => return Key::No,
            Some(INTERRUPT) => return Key::Interrupt,
            Some(_) => {}
        }
    }
    Key::No
}

/// Reads one key at a time from the console, in raw mode when it is a
/// terminal (so no Enter is needed), restoring the terminal after each key.
struct Keys {
    tty: File,
}

impl Read for Keys {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let fd = self.tty.as_raw_fd();
        let n = buf.len().min(1);
        let one = &mut buf[..n];
        let mut saved = std::mem::MaybeUninit::<libc::termios>::uninit();
        // SAFETY: saved is a valid out-pointer for tcgetattr.
        if unsafe { libc::tcgetattr(fd, saved.as_mut_ptr()) } != 0 {
            return self.tty.read(one);
        }
        // SAFETY: tcgetattr succeeded, so saved is initialised.
        let saved = unsafe { saved.assume_init() };
        let mut raw = saved;
        // SAFETY: raw is a valid termios; fd is open.
        unsafe {
            libc::cfmakeraw(&mut raw);
            libc::tcsetattr(fd, libc::TCSAFLUSH, &raw);
        }
        let result = self.tty.read(one);
        // SAFETY: saved is the terminal's own earlier state.
        unsafe { libc::tcsetattr(fd, libc::TCSAFLUSH, &saved) };
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(keys: &str) -> (Key, String) {
        let mut out = Vec::new();
        let answer = interactive(
            &mut keys.as_bytes(),
            &mut out,
            &["WARNING: test".into()],
            "Accept",
        );
        (answer, String::from_utf8(out).unwrap())
    }

    #[test]
    fn yes_no_and_three_tries() {
        assert_eq!(run("y").0, Key::Yes);
        assert_eq!(run("Y").0, Key::Yes);
        assert_eq!(run("n").0, Key::No);
        let (yes, shown) = run("xqy");
        assert_eq!(yes, Key::Yes, "the third key counts");
        assert_eq!(shown.matches("Accept (y/n)? ").count(), 3, "{shown}");
        assert_eq!(run("xqzy").0, Key::No, "three bad keys mean no");
        assert_eq!(run("").0, Key::No, "end of input means no");
        assert_eq!(run("x\u{3}y").0, Key::Interrupt, "Ctrl-C interrupts");
        assert!(
            run("y").1.starts_with("WARNING: test\nAccept (y/n)? y\n"),
            "{}",
            run("y").1
        );
    }
}
