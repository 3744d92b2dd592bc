"""A console you can trust: commands to the guest's shell and their exit status, each within a deadline.

The guest's /init (guest/init.sh) reads `<id> <line count>` and the script's lines (or `<id> f`, the script
being in the folder the guest mounts at /grelab, as `c<id>`: the console costs a system call a byte), and
answers `@@B <nonce>-<id>`, the script's output, a newline, `@@E <nonce>-<id> <status>`. The id is a
sequence number and the nonce is new at every boot, so output of an earlier, abandoned command can never be
taken for this one's. A reader
thread keeps the last lines of everything the guest printed, so a panic or a hang is reported with what
the guest said.
"""
from __future__ import annotations

import collections
import re
import secrets
import threading
import time
from pathlib import Path
from typing import IO

from grelab.dut.base import CommandResult, DutError

TAIL_LINES = 40
EXIT_DRAIN_S = 0.5  # after the guest's process exits, how long its console may take to reach EOF
PANIC_RE = re.compile(r"^(Kernel panic - not syncing|Kernel mode fault at addr)")  # as the kernel prints them


class GuestDied(DutError):
    """The guest panicked, hung or exited; the message ends with its console's last lines."""


class Console:
    """The guest's console on a pair of pipes (its stdin and stdout). One command at a time."""

    def __init__(self, to_guest: IO[bytes], from_guest: IO[bytes], name: str, nonce: str | None = None,
                 share: Path | None = None):
        """nonce: the guest's GRELAB_NONCE; share: the host folder the guest mounts at /grelab (scripts go there)."""
        self._to, self._from, self.name, self._share = to_guest, from_guest, name, share
        self._nonce = nonce or secrets.token_hex(4)
        self._seq = 0
        self._cond = threading.Condition()
        self._tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        self._lines: list[str] = []  # lines since the current command was sent
        self._closed = False
        self._exited: str | None = None  # how the guest's process ended, once it has
        self._panic: str | None = None
        self._busy = threading.Lock()
        self._reader = threading.Thread(target=self._read, name=f"console-{name}", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for raw in iter(self._from.readline, b""):
            line = raw.decode(errors="replace").rstrip("\r\n")
            with self._cond:
                self._tail.append(line)
                self._lines.append(line)
                if self._panic is None and PANIC_RE.search(line):
                    self._panic = line
                self._cond.notify_all()
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def exited(self, how: str) -> None:
        """The guest's process ended (see watch): every wait ends now, saying so, instead of at its deadline.
        The console pipe alone does not tell: the guest's helper processes may keep it open."""
        with self._cond:
            self._exited = how
            self._cond.notify_all()

    @property
    def dead(self) -> bool:
        """The guest panicked or exited (a command past its deadline leaves it alive, maybe busy)."""
        with self._cond:
            return self._panic is not None or self._closed or self._exited is not None

    def death(self) -> str | None:
        """How the guest died (its panic line and last console lines), or None while it lives."""
        with self._cond:
            if self._panic is None and not self._closed and self._exited is None:
                return None
            if self._panic is not None:
                what = f"guest panicked ({self._panic})"
            else:  # how its process ended (killed by which signal) says more than a closed console
                self._cond.wait_for(lambda: self._exited is not None, EXIT_DRAIN_S)
                what = f"guest died: {self._exited or 'its console closed'}"
        return f"{what}; its console's last lines:\n{self.tail()}"

    def tail(self) -> str:
        with self._cond:
            return "\n".join(self._tail)

    def _failure(self, what: str) -> GuestDied:
        return GuestDied(f"DUT {self.name}: {what}; its console's last lines:\n{self.tail()}")

    def wait_for(self, marker: str, timeout: float) -> None:
        """Block until the guest prints a line equal to marker (e.g. the boot's @@READY)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while marker not in self._lines:
                self._check_alive(deadline, f"no {marker!r} within {timeout:g} s")
                self._cond.wait(max(0.0, deadline - time.monotonic()))
            self._lines.clear()

    def _check_alive(self, deadline: float, hang: str) -> None:
        if self._panic is not None:
            raise self._failure(f"guest panicked ({self._panic})")
        if self._exited is not None:
            raise self._failure(f"guest died: {self._exited}")
        if self._closed:
            # How its process ended says more (killed by which signal), and the watcher says it at once: a
            # guest whose helpers die with it closes its console before that.
            self._cond.wait_for(lambda: self._exited is not None, EXIT_DRAIN_S)
            raise self._failure(f"guest died: {self._exited or 'its console closed'}")
        if time.monotonic() >= deadline:
            raise self._failure(f"guest hung: {hang}")

    def run(self, script: str, timeout: float = 10.0, in_init_shell: bool = False) -> CommandResult:
        """Run a shell script in the guest; return its exit status and combined stdout/stderr.

        A script runs in a subshell of init's unless in_init_shell (for grelab's own scripts only: it
        saves a fork, ~9 ms, but an `exit` there ends init and so the guest)."""
        with self._busy:
            self._seq += 1
            cid = f"{self._nonce}-{self._seq}"
            script_file = self._share / f"c{self._seq}" if self._share is not None else None
            begin, end_re = f"@@B {cid}", re.compile(rf"^@@E {re.escape(cid)} (\d+)$")
            with self._cond:
                self._lines.clear()
                self._check_alive(float("inf"), "")  # a dead guest's folder may be gone already
            here = " here" if in_init_shell else ""
            try:
                if script_file is not None:
                    script_file.write_text(script + "\n")
                    self._to.write(f"{self._seq} f{here}\n".encode())
                else:
                    lines = script.splitlines() or [""]
                    self._to.write(f"{self._seq} {len(lines)}{here}\n{chr(10).join(lines)}\n".encode())
                self._to.flush()
            except (BrokenPipeError, ValueError):
                raise self._failure("guest died: its console closed") from None
            try:
                return self._answer(script, cid, begin, end_re, timeout)
            finally:
                if script_file is not None:
                    script_file.unlink(missing_ok=True)

    def _answer(self, script: str, cid: str, begin: str, end_re, timeout: float) -> CommandResult:
        """The command's output and status, once the guest printed its end marker."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for i, line in enumerate(self._lines):
                    m = end_re.match(line)
                    if m:
                        body = self._lines[:i]
                        if begin in body:
                            body = body[body.index(begin) + 1:]
                        if body and body[-1] == "":
                            body.pop()  # the newline init puts before the end marker
                        self._lines.clear()
                        return CommandResult(script, int(m.group(1)), "\n".join(body))
                self._check_alive(deadline, f"{script!r} did not finish within {timeout:g} s")
                self._cond.wait(max(0.0, deadline - time.monotonic()))


def watch(process, console: Console) -> None:
    """Tell the console when the guest's process exits (a thread waits on it): a guest killed by SIGKILL is
    reported dead at once, not as hung when a command's deadline passes."""
    def wait() -> None:
        status = process.wait()
        # A panic's last lines may still be in the pipe: let the reader reach them (it ends at EOF, at once
        # when nothing else holds the pipe) so the panic, not the exit it caused, is what gets reported.
        console._reader.join(timeout=EXIT_DRAIN_S)
        console.exited(f"its process {process.pid} was killed by signal {-status}" if status < 0
                       else f"its process {process.pid} exited with status {status}")
    threading.Thread(target=wait, name=f"guest-exit-{console.name}", daemon=True).start()
