"""`grelab shell` in a pseudo-terminal, as a person uses it: type, read what it prints, leave; nothing stays."""
import os
import pty
import re
import select
import signal
import sys
import time
from pathlib import Path

import pytest

from grelab.dut.select import select as select_dut

ROOT = Path(__file__).resolve().parent.parent
PROMPT = ">>> "


def usable() -> bool:
    try:
        return "several" in select_dut("auto").capabilities
    except Exception:  # noqa: BLE001 - no DUT here: these tests cannot run
        return False


pytestmark = pytest.mark.skipif(not usable(), reason="no DUT that can be two routers at once")


class Terminal:
    """grelab shell on a pseudo-terminal of its own (its controlling terminal, as under a terminal emulator)."""

    def __init__(self, *args, home: Path):
        env = {**os.environ, "PYTHONPATH": str(ROOT), "HOME": str(home), "DISPLAY": "", "WAYLAND_DISPLAY": "",
               "IPY_TEST_SIMPLE_PROMPT": "1", "TERM": "dumb"}
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            signal.signal(signal.SIGINT, signal.SIG_DFL)  # a pytest-xdist worker ignores it; exec would keep that
            os.execve(sys.executable, [sys.executable, "-m", "grelab.cli", "shell", *args], env)
        self.seen = ""

    def read_until(self, pattern: str, timeout: float = 90) -> str:
        """Everything printed up to and including pattern (a regex); fails at the deadline saying what came."""
        deadline = time.monotonic() + timeout
        while not (match := re.search(pattern, self.seen)):
            left = deadline - time.monotonic()
            assert left > 0, f"no {pattern!r} within {timeout} s; the terminal shows:\n{self.seen[-3000:]}"
            if select.select([self.fd], [], [], left)[0]:
                try:
                    chunk = os.read(self.fd, 65536)
                except OSError:  # EIO: the shell closed the terminal
                    chunk = b""
                assert chunk, f"the shell ended before {pattern!r}:\n{self.seen[-3000:]}"
                # Colours stripped from all seen so far: an escape sequence may arrive split across two reads.
                self.seen = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", self.seen + chunk.decode(errors="replace")).replace("\r", "")
        out, self.seen = self.seen[:match.end()], self.seen[match.end():]
        return out

    def type(self, line: str, timeout: float = 90) -> str:
        """Type a line, return what it printed before the next prompt."""
        os.write(self.fd, line.encode() + b"\n")
        return self.read_until(re.escape(PROMPT), timeout).partition("\n")[2]  # after the echo of the line

    def wait_exit(self, timeout: float = 60) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if select.select([self.fd], [], [], 0.5)[0]:
                    os.read(self.fd, 65536)
            except OSError:
                pass
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                return os.waitstatus_to_exitcode(status)
        os.kill(self.pid, signal.SIGKILL)
        raise AssertionError("the shell did not end")


def leftovers(run_id: str) -> list[str]:
    """Namespaces, run folders and guest processes of that run still there."""
    left = [n for n in os.listdir("/run/netns") if n.startswith(f"grelab-{run_id}-")]
    left += [str(p) for p in [Path("/run/grelab") / run_id] if p.exists()]
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if f"grelab-{run_id}-".encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                left.append(f"process {pid}")
        except OSError:
            pass
    return left


def bring_up(term: Terminal, variant: str = "gre") -> str:
    """lab = offices(...), then its repr: the run id, for checking what it leaves."""
    term.type(f'lab = offices("{variant}")')
    shown = term.type("lab")
    return re.search(r"variant \S+, run ([0-9a-f]{6}):", shown).group(1)


@pytest.mark.parametrize("shell", ["ipython", "plain"])
def test_the_two_office_lab_by_hand_then_ctrl_d(tmp_path, shell):
    term = Terminal(*(["--plain"] if shell == "plain" else []), home=tmp_path)
    banner = term.read_until(re.escape(PROMPT))
    assert "grelab shell: scapy with grelab loaded" in banner and "lab = offices()" in banner
    assert ("using IPython" in banner) == (shell == "ipython")
    assert "SAs: ESP_R1_TO_R2 ESP_R2_TO_R1 FROM_R1 TO_R1" in banner
    assert "<GRE  proto=IPv6 |<IPv6" in term.type("IP()/GRE()/IPv6()")  # scapy's first line: scapy's GRE
    run_id = bring_up(term, "gre-in-esp")
    assert term.type('lab.send("h1", IPv6(src=H1, dst=H2) / ICMPv6EchoRequest(id=7, seq=1))').strip() == ">>>"
    shown = term.type('print("\\n".join(describe(p, lab.sas) for p in lab.capture("transit", count=2)))')
    assert "ESP spi=0x00001001 seq=1 gcm128 transport / GRE proto=0x86dd -> IPv6 / ICMPv6 Echo Request (id: 0x7" in shown
    assert "ESP spi=0x00002001 seq=1 gcm128 transport / GRE proto=0x86dd -> IPv6 / ICMPv6 Echo Reply (id: 0x7" in shown
    shown = term.type('lab.dut("r1").counters()["links"]["gre1"]["tx_packets"]')
    assert re.search(r"(^|\n)(Out\[\d+\]: )?1\n", shown), shown
    shown = term.type('lab.wireshark("transit")')
    assert "no display" in shown and shown.count("Generic Routing Encapsulation (IPv6)") == 2
    assert leftovers(run_id)  # up while the shell runs
    os.write(term.fd, b"\x04")  # Ctrl-D
    assert term.wait_exit() == 0
    assert leftovers(run_id) == []


def test_ctrl_c_interrupts_the_line_and_the_shell_goes_on(tmp_path):
    term = Terminal(home=tmp_path)
    term.read_until(re.escape(PROMPT))
    run_id = bring_up(term)
    os.write(term.fd, b"import time; print('sleep' + 'ing'); time.sleep(60)\n")
    term.read_until("sleeping\n")
    os.write(term.fd, b"\x03")  # Ctrl-C while it sleeps
    assert "KeyboardInterrupt" in term.read_until(re.escape(PROMPT), 30)
    assert "198.51.100.1" in term.type("R1_WAN")  # still answering
    assert leftovers(run_id)
    os.write(term.fd, b"exit()\n")
    assert term.wait_exit() == 0
    assert leftovers(run_id) == []


def test_a_killed_terminal_leaves_nothing_behind(tmp_path):
    term = Terminal("--plain", home=tmp_path)
    term.read_until(re.escape(PROMPT))
    run_id = bring_up(term)
    os.close(term.fd)  # the terminal emulator went away: the kernel hangs the shell up (SIGHUP)
    deadline = time.monotonic() + 60
    while not (done := os.waitpid(term.pid, os.WNOHANG))[0] and time.monotonic() < deadline:
        select.select([], [], [], 0.1)  # wait for the child, with a deadline
    assert done[0], "the shell outlived its terminal"
    assert leftovers(run_id) == []


def test_sigterm_ends_the_shell_and_leaves_nothing_behind(tmp_path):
    """SIGTERM (systemd, a session ending) at a shell waiting at its prompt: a REPL would catch the exception a
    handler raises and go on, so the shell takes everything down itself and ends."""
    term = Terminal("--plain", home=tmp_path)
    term.read_until(re.escape(PROMPT))
    run_id = bring_up(term)
    os.kill(term.pid, signal.SIGTERM)
    assert term.wait_exit() == 128 + signal.SIGTERM
    assert leftovers(run_id) == []
