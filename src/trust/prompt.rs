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

/// Shows `warning` (lines) and asks `question` (without "(y/n)?").
/// Returns true for yes.
pub(crate) fn ask(warning: &[String], question: &str) -> bool {
    let _one_at_a_time = ASKING.lock().unwrap_or_else(|p| p.into_inner());
    match console() {
        Some(tty) => {
            let Ok(mut out) = tty.try_clone() else {
                return false;
            };
            let mut input = Keys { tty };
            interactive(&mut input, &mut out, warning, question)
        }
        None => {
            let mut text = warning.join("\n");
            text.push_str(&format!("\n{question} (y/n)? (no)\n"));
            let _ = std::io::stderr().lock().write_all(text.as_bytes());
            false
        }
    }
}

/// The console to talk to, or `None` when there is none to use.
fn console() -> Option<File> {
    let path = match crate::tls::config::env::console() {
        Some(v) if v == "none" => return None,
        Some(v) => v,
        None => "/dev/tty".into(),
    };
    OpenOptions::new().read(true).write(true).open(path).ok()
}

fn interactive(
    input: &mut impl Read,
    out: &mut impl Write,
    warning: &[String],
    question: &str,
) -> bool {
    let mut text = warning.join("\n");
    text.push('\n');
    if out.write_all(text.as_bytes()).is_err() {
        return false;
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
            Some(b'y' | b'Y') => return true,
            Some(b'n' | b'N') | None => return false,
            Some(_) => {}
        }
    }
    false
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

    fn run(keys: &str) -> (bool, String) {
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
        assert!(run("y").0);
        assert!(run("Y").0);
        assert!(!run("n").0);
        let (yes, shown) = run("xqy");
        assert!(yes, "the third key counts");
        assert_eq!(shown.matches("Accept (y/n)? ").count(), 3, "{shown}");
        assert!(!run("xqzy").0, "three bad keys mean no");
        assert!(!run("").0, "end of input means no");
        assert!(
            run("y").1.starts_with("WARNING: test\nAccept (y/n)? y\n"),
            "{}",
            run("y").1
        );
    }
}
