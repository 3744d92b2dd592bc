"""One consistent command: every subcommand's --help has examples; progress bars only on a terminal."""
import os
import pty
import re
import select
import sys
import time

import pytest

from cli_user import ROOT, grelab
from grelab.cli import SUBCOMMANDS
from test_shell import usable


@pytest.mark.parametrize("command", sorted(SUBCOMMANDS))
def test_help_has_examples(command):
    done = grelab(command, "--help")
    assert done.returncode == 0, done.stderr
    assert f"usage: grelab {command}" in done.stdout and "\nexamples:\n  grelab " in done.stdout, done.stdout


def test_usage_errors_exit_2():
    assert grelab("nosuch").returncode == 2
    assert grelab("pcap", "diff", "only-one").returncode == 2


@pytest.mark.skipif(not usable(), reason="no DUT that can be two routers at once")
def test_a_replay_shows_a_progress_bar_on_a_terminal():
    pid, fd = pty.fork()
    if pid == 0:
        os.execve(sys.executable, [sys.executable, "-m", "grelab.cli", "replay", str(ROOT / "pcaps/two_offices/echo-gre.pcapng"),
                                   "--link", "lan1", "--to", "h1:eth0", "--pace", "recorded", "--loop", "400"],
                  {**os.environ, "PYTHONPATH": str(ROOT), "TERM": "xterm"})
    seen, deadline = b"", time.monotonic() + 120
    while time.monotonic() < deadline:
        if select.select([fd], [], [], 1)[0]:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", seen.decode(errors="replace"))
    assert re.search(r"replaying .*\d+/800 frames +[\d,]+/s", text), text[-2000:]
    assert "sent 800 frames from h1:eth0" in text
