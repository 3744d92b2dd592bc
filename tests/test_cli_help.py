"""One consistent command: `grelab --help` says what grelab is for and where to start; every subcommand's help ends
with examples, and every example runs as written; progress bars only on a terminal."""
import argparse
import os
import pty
import re
import select
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass

import pytest

from cli_user import ROOT, grelab
from grelab.cli import SUBCOMMANDS, build_parser
from test_shell import usable


def parsers() -> dict[str, argparse.ArgumentParser]:
    """{"grelab pcap diff": its parser, ...}: grelab's and every subcommand's, nested ones included."""
    found = {}

    def walk(words: str, parser: argparse.ArgumentParser) -> None:
        found[words] = parser
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(f"{words} {name}", sub)
    walk("grelab", build_parser())
    return found


@dataclass
class Example:
    command: str  # a shell command line, as printed (continuation lines joined)
    stdin: str  # the >>> lines under it, typed into it
    status: int  # 0, or what its comment says ("# exit 1: they differ")


def examples(help_text: str) -> list[Example]:
    """The examples a help text ends with (grelab's own: its "start with:" commands), in order."""
    heading = "\nexamples:\n" if "\nexamples:\n" in help_text else "\nstart with:\n"
    found: list[Example] = []
    lines = iter(help_text.split(heading, 1)[1].splitlines())
    for line in lines:
        if not line.startswith("  "):
            break
        while line.endswith("\\"):
            line = line[:-1] + next(lines).strip()
        if line.strip().startswith(">>> "):
            found[-1].stdin += line.strip().removeprefix(">>> ") + "\n"
        else:
            status = re.search(r"#\s*exit (\d+)", line)
            found.append(Example(line.strip(), "", int(status.group(1)) if status else 0))
    return found


def test_examples_are_read_as_a_user_types_them():
    text = ("usage: x\n\nexamples:\n  grelab a --b c \\\n      --d e    # f\n  >>> g()\n  >>> h()   # i\n"
            "  grelab pcap diff A B   # exit 1: they differ\nexit status: 0 ok\n")
    assert examples(text) == [Example("grelab a --b c --d e    # f", "g()\nh()   # i\n", 0),
                              Example("grelab pcap diff A B   # exit 1: they differ", "", 1)]
    assert WRITES.findall("grelab craft -o demo.pcapng --keys k.esp_sa | tee > out.txt") == ["demo.pcapng", "k.esp_sa",
                                                                                            "out.txt"]


BLOCKS = {}  # each different examples block once, named by the first command that shows it
for _words, _parser in parsers().items():
    BLOCKS.setdefault(tuple(map(str, (e.command for e in examples(_parser.format_help())))), _words)


@pytest.mark.parametrize("words", sorted(parsers()))
def test_every_help_ends_with_examples_and_fits_100_columns(words):
    text = parsers()[words].format_help()
    assert max(map(len, text.splitlines())) <= 100, [line for line in text.splitlines() if len(line) > 100]
    found = examples(text)
    assert found and all(re.search(r"(^|[|=] ?)grelab ", e.command) for e in found), text
    if words == "grelab":  # what grelab is for, then where to start: three commands
        assert text.split("\n\n")[1].startswith("grelab tests GRE and GRE-over-IPsec tunnel endpoints.")
        assert [e.command.split("#")[0].split() for e in found] == [["grelab", "list"], ["grelab", "run", "two_offices"],
                                                                   ["grelab", "shell"]]
        assert "add_arguments" not in text
    else:  # the examples are the last thing said, but for the exit status
        tail = text.split("\nexamples:\n", 1)[1].splitlines()
        assert all(line.startswith("  ") for line in tail[:-1]) and tail[-1].startswith(("exit status:", "  ")), tail


@pytest.mark.parametrize("command", sorted(SUBCOMMANDS))
def test_help_as_the_user_sees_it(command):
    done = grelab(command, "--help")
    assert done.returncode == 0, done.stderr
    assert f"usage: grelab {command}" in done.stdout and "\nexamples:\n  grelab " in done.stdout, done.stdout


# Files an example writes: each must be in the working folder afterwards.
WRITES = re.compile(r"(?:^|\s)(?:-o|--keys|--out|--keep-pcaps|--report|>)\s+([^\s|;#]+)")


@pytest.mark.skipif(not usable(), reason="no DUT that can be two routers at once: the examples need one")
@pytest.mark.parametrize("words", sorted(BLOCKS.values()))
def test_every_example_runs_as_written(words, tmp_path):
    """Each help's examples, in order, as a user types them: in bash (pipes, redirections), as root, in a working
    folder of their own that holds what a checkout does for them (a copy of pcaps/), `grelab` on the PATH, no
    display. Each exits 0 (or the status its comment states) without a traceback; what it writes is there."""
    shutil.copytree(ROOT / "pcaps", tmp_path / "pcaps")
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin/grelab").write_text(f'#!/bin/sh\nexec {sys.executable} -m grelab.cli "$@"\n')
    (tmp_path / "bin/grelab").chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env.update(PATH=f"{tmp_path / 'bin'}:{env['PATH']}", PYTHONPATH=str(ROOT), HOME=str(tmp_path), TERM="dumb")
    for example in examples(parsers()[words].format_help()):
        done = subprocess.run(["bash", "-o", "pipefail", "-c", example.command], cwd=tmp_path, env=env,
                              input=example.stdin, capture_output=True, text=True, timeout=600)
        said = f"{example.command}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        assert done.returncode == example.status, said
        assert "Traceback" not in done.stdout + done.stderr, said
        for written in WRITES.findall(example.command):
            assert (tmp_path / written).exists(), f"{example.command}: no {written} in the working folder"


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
