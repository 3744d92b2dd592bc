"""Runs beyond one machine: `--shard I/N` runs part I of N of the selected cases, and `--store-durations` records
how long each case took, into the durations file the parts are balanced by.

The parts are a function of the selected node ids and the durations file alone, so every machine, and every xdist
worker of each (each collects on its own and xdist insists they agree), computes the same parts whatever order it
collected in. Cases are placed longest recorded first (ties by node id), each into the part with the least recorded
time so far (greedy LPT): the longest part is within the longest case of the ideal (total / N). Inside a part the cases run in collection order, pytest-xdist spreading them over the
machine's workers.

The unit placed is the case, not the scenario: a part pays its DUTs' boots once per worker whatever scenarios it
holds (DutPool.warm boots the names its cases use, ~0.2 s each), and measured over the catalogue at -n 2, four parts
of whole scenarios took as much CPU as four parts of cases while their parts' CPU differed more (README, "Runs
beyond one machine").

The durations file (durations.json in the checkout, {node id: seconds of setup + call + teardown}) is committed; a
run with --store-durations rewrites the entries of the cases it ran (those that reached their call: a case skipped
in setup keeps its entry) and keeps the others. A case the file does not hold is estimated as the median of its
file's recorded cases, else of every recorded case, else 1 s.

pytest-split 0.11 (--splits/--group, .test_durations) was weighed and not used: its parts follow the order pytest
collected in. Its default algorithm cuts that order into consecutive chunks (20 shuffled collections of the catalogue:
20 different parts 1/2), and its least_duration breaks ties between equal durations (every unrecorded case gets the
same average) by str(item), "<Function test_echo[gre]>", which many scenario modules share (with nothing recorded,
as for a new implementation's cases: 8 different parts 1/2 of 20).
"""
from __future__ import annotations

import json
import re
import statistics
from pathlib import Path

import pytest

from grelab.errors import GrelabError, InputError

DURATIONS_FILE = "durations.json"  # in the checkout (pytest's rootdir)
UNRECORDED = 1.0  # seconds: a case's estimate when nothing at all is recorded
SHARD = re.compile(r"(\d{1,4})/(\d{1,4})")


def parse_shard(text: str) -> tuple[int, int]:
    """"I/N" -> (I, N), 1 <= I <= N <= 1000; anything else an InputError naming the option."""
    match = SHARD.fullmatch(text.strip())
    if match:
        index, count = int(match[1]), int(match[2])
        if 1 <= index <= count <= 1000:
            return index, count
    raise InputError("--shard", text, "I/N, part I of N parts, 1 <= I <= N <= 1000 (e.g. 1/4)")


def estimates(nodeids: list[str], recorded: dict[str, float]) -> dict[str, float]:
    """{node id: seconds}: the recorded duration, else the median of its file's recorded cases, else of all."""
    by_file: dict[str, list[float]] = {}
    for nodeid, seconds in recorded.items():
        by_file.setdefault(nodeid.partition("::")[0], []).append(seconds)
    overall = statistics.median(recorded.values()) if recorded else UNRECORDED
    out = {}
    for nodeid in nodeids:
        same_file = by_file.get(nodeid.partition("::")[0])
        out[nodeid] = recorded.get(nodeid, statistics.median(same_file) if same_file else overall)
    return out


def partition(costs: dict[str, float], count: int) -> list[list[str]]:
    """The node ids of `costs` ({node id: seconds}) in `count` parts of near equal total: longest first (ties by
    node id) into the part with the least so far (ties: the lowest numbered). It depends on the costs alone."""
    parts: list[list[str]] = [[] for _ in range(count)]
    totals = [0.0] * count
    for nodeid in sorted(costs, key=lambda n: (-costs[n], n)):
        least = min(range(count), key=lambda i: (totals[i], i))
        parts[least].append(nodeid)
        totals[least] += costs[nodeid]
    return parts


def read_durations(path: Path) -> dict[str, float]:
    """The durations file, {node id: seconds}; {} when there is none. Anything else there is grelab's error."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise GrelabError(f"durations file {path}: not readable as JSON ({exc}): refresh it with "
                          "--store-durations, or give another with --durations-file") from None
    if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, (int, float)) and v >= 0
                                             for k, v in data.items()):
        raise GrelabError(f"durations file {path}: not an object of node id -> seconds: refresh it with "
                          "--store-durations")
    return {k: float(v) for k, v in data.items()}


def write_durations(path: Path, durations: dict[str, float]) -> None:
    """One case per line, sorted, to the millisecond: a refresh reads as a diff of the cases that moved."""
    from grelab.outputs import write_all
    text = json.dumps({k: round(v, 3) for k, v in sorted(durations.items())}, indent=0) + "\n"
    write_all({str(path): lambda tmp: Path(tmp).write_text(text)})


def add_options(group) -> None:
    group.addoption("--shard", metavar="I/N", help="run only part I of N (1-based) of the selected cases, parts "
                    "balanced by the recorded durations: the same on every machine (a CI job per part; grelab "
                    "report merge joins their reports)")
    group.addoption("--store-durations", action="store_true", help="record each case's duration (setup + call + "
                    "teardown) into the durations file, for --shard")
    group.addoption("--durations-file", metavar="PATH", help=f"the durations --shard balances by and "
                    f"--store-durations writes (default: {DURATIONS_FILE} in the rootdir)")


def configure(config) -> None:
    """Check --shard (one usage line when it is wrong) and register what the options ask for: the part's selection
    (every process that collects) and the durations' recording (the process that sees every case's reports)."""
    text = config.getoption("--shard", None)
    path = Path(config.getoption("--durations-file", None) or config.rootpath / DURATIONS_FILE)
    try:
        shard = parse_shard(text) if text else None
        recorded = read_durations(path) if shard else {}
    except GrelabError as exc:
        raise pytest.UsageError(str(exc)) from None
    if shard:
        config.pluginmanager.register(ShardSelection(shard, recorded, path), "grelab-shard")
    if config.getoption("--store-durations", False) and not hasattr(config, "workerinput"):
        config.pluginmanager.register(DurationsRecorder(path), "grelab-store-durations")


class ShardSelection:
    """Deselects every collected case (after -k and -m) outside this part."""

    def __init__(self, shard: tuple[int, int], recorded: dict[str, float], path: Path):
        self.shard, self.recorded, self.path = shard, recorded, path
        self.line = ""

    @pytest.hookimpl(trylast=True)  # after -k and -m have deselected theirs
    def pytest_collection_modifyitems(self, config, items):
        index, count = self.shard
        costs = estimates([item.nodeid for item in items], self.recorded)
        mine = set(partition(costs, count)[index - 1])
        kept = [item for item in items if item.nodeid in mine]
        config.hook.pytest_deselected(items=[item for item in items if item.nodeid not in mine])
        items[:] = kept
        unrecorded = sum(nodeid not in self.recorded for nodeid in costs)
        self.line = (f"grelab shard {index}/{count}: {len(kept)} of {len(costs)} cases, "
                     f"{sum(costs[n] for n in mine):.1f} of {sum(costs.values()):.1f} s recorded"
                     + (f" ({unrecorded} estimated)" if unrecorded else "") + f" in {self.path.name}")

    def pytest_report_header(self, config):
        index, count = self.shard
        return f"grelab shard {index}/{count}, balanced by {self.path} ({len(self.recorded)} cases recorded)"

    def pytest_report_collectionfinish(self, config):
        return self.line or None  # not under xdist's controller: its workers collect, and say nothing here


class DurationsRecorder:
    """--store-durations: sums each case's steps from the reports, and writes them into the file at the end."""

    def __init__(self, path: Path):
        self.path = path
        self.seconds: dict[str, float] = {}
        self.called: set[str] = set()

    def pytest_runtest_logreport(self, report):
        self.seconds[report.nodeid] = self.seconds.get(report.nodeid, 0.0) + report.duration
        if report.when == "call":
            self.called.add(report.nodeid)

    def pytest_sessionfinish(self, session):
        if self.called:
            durations = read_durations(self.path) | {n: self.seconds[n] for n in self.called}
            write_durations(self.path, durations)

    def pytest_terminal_summary(self, terminalreporter):
        if self.called:
            terminalreporter.write_line(f"grelab: {len(self.called)} cases' durations stored in {self.path}")
