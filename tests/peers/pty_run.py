#!/usr/bin/env python3
"""Runs a command with a fresh pseudo-terminal as its controlling terminal
and talks to it like a person at that terminal.

usage: pty_run.py [--timeout SECS] [--transcript FILE] [--clear-env]
                  [--env NAME=VALUE]... [--stdin-null] [--stderr FILE]
                  [--no-wait-raw] [--wait-noecho]
                  [--expect REGEX [--send KEYS]] [--wait-file FILE REGEX]...
                  -- COMMAND [ARG...]

The command starts in a new session (setsid) whose controlling terminal is
the slave side of a new pty; that pty is also its stdin, stdout and stderr,
except that --stdin-null gives it /dev/null as stdin and --stderr FILE sends
its stderr to FILE (the controlling terminal, /dev/tty, stays the pty).

The steps run in the order given. --expect REGEX waits until REGEX (Python
syntax, MULTILINE) matches the terminal output after the end of the previous
match. --send KEYS writes KEYS to the terminal; before that it waits until the
terminal is in non-canonical ("raw") mode, i.e. until the program is reading
single keys, so a key is never typed into a line buffer that the program
would discard (--no-wait-raw sends at once; --wait-noecho waits instead
until the terminal no longer echoes, as a program reading a password line
sets it: typing before that could be flushed away). After the last step the helper
reads the terminal until the command exits.

The child's environment is the helper's own (nothing with --clear-env) plus
every --env. Everything the terminal showed is written to --transcript
(as bytes, with the terminal's CR LF line ends). On stdout the helper prints
one line:
    exit N              the command exited with status N
    signal N            the command was killed by signal N
    timeout STEP        the time limit passed while waiting for STEP (the
                        command's session was then killed with SIGKILL)
and exits 0; it exits 2 on a usage or setup error.
"""
import errno
import os
import pty
import re
import select
import signal
import sys
import termios
import time


def usage(msg):
    sys.stderr.write("pty_run.py: %s\n" % msg)
    sys.stderr.write(__doc__)
    sys.exit(2)


def parse(argv):
    opts = {
        "timeout": 30.0,
        "transcript": None,
        "clear_env": False,
        "env": [],
        "stdin_null": False,
        "stderr": None,
        "wait_raw": True,
        "wait_noecho": False,
        "steps": [],
        "command": None,
    }
    i = 0

    def value():
        nonlocal i
        if i + 1 >= len(argv):
            usage("%s needs a value" % argv[i])
        i += 1
        return argv[i]

    while i < len(argv):
        a = argv[i]
        if a == "--":
            opts["command"] = argv[i + 1:]
            break
        elif a == "--timeout":
            opts["timeout"] = float(value())
        elif a == "--transcript":
            opts["transcript"] = value()
        elif a == "--clear-env":
            opts["clear_env"] = True
        elif a == "--env":
            kv = value()
            if "=" not in kv:
                usage("--env wants NAME=VALUE, not %r" % kv)
            opts["env"].append(tuple(kv.split("=", 1)))
        elif a == "--stdin-null":
            opts["stdin_null"] = True
        elif a == "--stderr":
            opts["stderr"] = value()
        elif a == "--no-wait-raw":
            opts["wait_raw"] = False
        elif a == "--wait-noecho":
            opts["wait_raw"] = False
            opts["wait_noecho"] = True
        elif a == "--expect":
            opts["steps"].append(("expect", re.compile(value().encode(), re.MULTILINE)))
        elif a == "--send":
            opts["steps"].append(("send", value().encode()))
        elif a == "--wait-file":
            path = value()
            opts["steps"].append(("wait-file", (path, re.compile(value().encode(), re.MULTILINE))))
        else:
            usage("unknown argument %r" % a)
        i += 1
    if not opts["command"]:
        usage("no command after --")
    return opts


def main():
    opts = parse(sys.argv[1:])
    env = {} if opts["clear_env"] else dict(os.environ)
    for k, v in opts["env"]:
        env[k] = v

    pid, master = pty.fork()
    if pid == 0:
        # Child: pty.fork() has made a new session with the pty slave as the
        # controlling terminal and as fds 0, 1 and 2.
        try:
            if opts["stdin_null"]:
                fd = os.open(os.devnull, os.O_RDONLY)
                os.dup2(fd, 0)
                os.close(fd)
            if opts["stderr"]:
                fd = os.open(opts["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                os.dup2(fd, 2)
                os.close(fd)
            os.execvpe(opts["command"][0], opts["command"], env)
        except BaseException as e:  # never return into the parent's code
            try:
                os.write(2, ("pty_run.py: cannot run %r: %s\n" % (opts["command"], e)).encode())
            finally:
                os._exit(127)

    deadline = time.monotonic() + opts["timeout"]
    transcript = bytearray()
    eof = False
    status = None

    def pump(wait):
        """Reads what the terminal has (waiting up to `wait` seconds)."""
        nonlocal eof
        if eof:
            time.sleep(wait)
            return
        r, _, _ = select.select([master], [], [], wait)
        if not r:
            return
        try:
            data = os.read(master, 65536)
        except OSError as e:
            if e.errno != errno.EIO:
                raise
            data = b""
        if data:
            transcript.extend(data)
        else:
            eof = True  # the slave side is closed everywhere

    def reap():
        nonlocal status
        if status is None:
            p, st = os.waitpid(pid, os.WNOHANG)
            if p == pid:
                status = st
        return status is not None

    def finish(result):
        if opts["transcript"]:
            with open(opts["transcript"], "wb") as f:
                f.write(bytes(transcript))
        sys.stdout.write(result + "\n")
        sys.stdout.flush()
        sys.exit(0)

    def give_up(step):
        # Drain what is there, then kill the whole session (its id is the
        # child's pid) and reap the child.
        pump(0.2)
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if status is None:
            os.waitpid(pid, 0)
        finish("timeout %s" % step)

    def is_raw():
        try:
            return not (termios.tcgetattr(master)[3] & termios.ICANON)
        except termios.error:
            return False

    def is_noecho():
        try:
            return not (termios.tcgetattr(master)[3] & termios.ECHO)
        except termios.error:
            return False

    pos = 0
    for kind, arg in opts["steps"]:
        if kind == "wait-file":
            # Another process's file (a server log) shows REGEX: the moment
            # to go on, whatever the command is doing meanwhile.
            path, pattern = arg
            while True:
                try:
                    with open(path, "rb") as f:
                        if pattern.search(f.read()):
                            break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    give_up("waiting for %r in %s" % (pattern.pattern.decode(), path))
                pump(0.05)
            continue
        if kind == "expect":
            while True:
                m = arg.search(bytes(transcript), pos)
                if m:
                    pos = m.end()
                    break
                if eof and reap():
                    give_up("expecting %r (the command exited)" % arg.pattern.decode())
                if time.monotonic() > deadline:
                    give_up("expecting %r" % arg.pattern.decode())
                pump(0.05)
        else:
            while opts["wait_raw"] and not is_raw():
                if eof and reap():
                    give_up("waiting for raw mode to send %r (the command exited)" % arg.decode())
                if time.monotonic() > deadline:
                    give_up("waiting for raw mode to send %r" % arg.decode())
                pump(0.02)
            while opts["wait_noecho"] and not is_noecho():
                if eof and reap():
                    give_up("waiting for echo off to send %r (the command exited)" % arg.decode())
                if time.monotonic() > deadline:
                    give_up("waiting for echo off to send %r" % arg.decode())
                pump(0.02)
            os.write(master, arg)

    # Read until the command has exited and its output is drained.
    while True:
        if reap():
            # The child is gone; read what is left (others may still hold
            # the slave open, so do not wait for EOF forever).
            end = time.monotonic() + 2.0
            while not eof and time.monotonic() < end:
                pump(0.05)
            break
        if time.monotonic() > deadline:
            give_up("waiting for the command to exit")
        pump(0.05)
    os.close(master)
    if os.WIFEXITED(status):
        finish("exit %d" % os.WEXITSTATUS(status))
    finish("signal %d" % os.WTERMSIG(status))


if __name__ == "__main__":
    main()
