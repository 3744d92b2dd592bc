"""Every command that prints ends quietly when its output pipe closes (`grelab pcap show X | head -1`): exit 0, nothing
on stderr but what the command says there anyway, no traceback, no "Exception ignored ... BrokenPipeError" at exit."""
import os
import subprocess
import sys

import pytest

from cli_user import ROOT

GOLDEN = "pcaps/two_offices/echo-gre.pcapng"
OTHER = "pcaps/two_offices/echo-gre-in-esp.pcapng"  # its diff from GOLDEN: ~2.5 KB, well inside a pipe's 64 KiB
# A command whose exit status is its answer keeps it when its output reached the reader: diff writes its few lines
# in one write (print would write the newline apart, after head may be gone), so they reach `head -1` whole and
# "they differ" is 1. A reader gone before the first write (`| true`), or a long output cut mid-way, ends it 0: the
# reader has what it wanted.
ANSWER = {"pcap diff (different)": 1}
PRINTING = {
    "help": ["--help"],
    "pcap help": ["pcap", "--help"],
    "list": ["list"],
    "pcap show": ["pcap", "show", GOLDEN],
    "pcap diff (same)": ["pcap", "diff", GOLDEN, GOLDEN],
    "pcap diff (different)": ["pcap", "diff", GOLDEN, OTHER],
    "craft --show": ["craft", "--count", "3", "--show", "--force", "-o", "{tmp}/craft.pcapng"],
    "doctor": ["doctor"],
    "kernel show": ["kernel", "show"],
    "sweep": ["sweep"],
    "wireshark (tshark's view)": ["wireshark", GOLDEN],
    "bench": ["bench", "--quick", "--only", "craft"],
    "run's header and table": ["run", "malformed", "-k", "pptp"],
}
# What a command says on stderr whatever happens to stdout (the rest must be empty).
SAYS = ("no display (DISPLAY and WAYLAND_DISPLAY unset)",)


def into_closed_pipe(args, tmp_path, read_first_line: bool):
    """Run grelab with stdout a pipe whose reader is gone: from the start (`| true`), or after one line (`| head -1`)."""
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("DISPLAY", None), env.pop("WAYLAND_DISPLAY", None)
    read, write = os.pipe()
    if not read_first_line:
        os.close(read)
    child = subprocess.Popen([sys.executable, "-m", "grelab.cli", *args], stdout=write, stderr=subprocess.PIPE,
                             stdin=subprocess.DEVNULL, cwd=ROOT, env=env)
    os.close(write)
    first = b""
    if read_first_line:
        with os.fdopen(read, "rb") as reader:
            first = reader.readline()
    stderr = child.communicate(timeout=600)[1].decode()
    return child.returncode, first, stderr


@pytest.mark.parametrize("read_first_line", [False, True], ids=["| true", "| head -1"])
@pytest.mark.parametrize("name", PRINTING)
def test_a_closed_output_pipe_ends_the_command_quietly(name, read_first_line, tmp_path):
    code, first, stderr = into_closed_pipe(PRINTING[name], tmp_path, read_first_line)
    said = [line for line in stderr.splitlines() if not line.startswith(SAYS)]
    assert code == (ANSWER.get(name, 0) if read_first_line else 0) and not said, (code, stderr)
    if read_first_line:
        assert first.strip(), "the command printed nothing before its pipe closed"


def test_a_long_listing_cut_by_head_ends_quietly(tmp_path):
    """More than a pipe's buffer of `pcap show` (64 KiB): the writer surely meets the closed pipe mid-listing."""
    from scapy.layers.l2 import Ether
    from scapy.utils import wrpcap

    from grelab.craft import gre
    frame = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / gre(key=1)
    wrpcap(str(tmp_path / "many.pcap"), [frame] * 3000)
    code, first, stderr = into_closed_pipe(["pcap", "show", str(tmp_path / "many.pcap")], tmp_path, True)
    assert code == 0 and stderr == "" and b"GRE proto=0x86dd key=1" in first, (code, stderr)
