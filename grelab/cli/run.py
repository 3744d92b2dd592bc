"""`grelab run [SCENARIO ...]`: run scenarios through pytest, then print a table of scenario, case, result, time."""
from __future__ import annotations

from pathlib import Path

import pytest

from grelab.errors import GrelabError, InputError
from grelab.scenario.catalog import scenarios_dir


def add_arguments(parser) -> None:
    parser.add_argument("scenarios", nargs="*", metavar="SCENARIO",
                        help="scenario module names (e.g. two_offices); default: all")
    parser.add_argument("--dut", default="auto", help="device under test: auto, host, uml, ovs or module:Class")
    parser.add_argument("--kernel", metavar="PATH", help="the uml DUT boots this user-mode-linux kernel "
                                                         "(default: grelab's build; grelab kernel build makes one)")
    parser.add_argument("-n", dest="workers", default="0", type=workers,
                        help="pytest-xdist workers: a number (0: none, the default), auto or logical")
    parser.add_argument("--update-golden", action="store_true", help="rewrite these cases' golden pcaps")
    parser.add_argument("--keep-pcaps", metavar="DIR", help="keep every case's captures in DIR")
    parser.add_argument("-k", dest="keyword", help="only cases matching this pytest -k expression")
    parser.add_argument("--report", metavar="DIR", help="write a run report to DIR/index.html (ladders of every "
                                                        "case's packets, golden diffs, pcapng links)")
    parser.add_argument("--shard", metavar="I/N", type=shard, help="run only part I of N of the selected cases, "
                        "balanced by durations.json (a CI job per part; grelab report merge joins their reports)")
    parser.add_argument("--store-durations", action="store_true", help="record each case's duration into "
                        "durations.json, which --shard balances by")
    parser.description = ("run scenarios through pytest against the DUT and print a table of every case's result;\n"
                          "with no SCENARIO, the whole catalogue (grelab list shows it; ~20 s at -n 2 here)")
    parser.epilog = """examples:
  grelab run two_offices -k 'echo and not esp'     # one case, on the DUT --dut auto picks
  grelab run two_offices -k 'tcp and not esp' --keep-pcaps caps --report report   # and a report
  grelab run grelab_endpoint --dut uml -n 2 -k 'gre-in-esp and ipv6'             # 2 workers
  grelab run two_offices -k echo --shard 1/2      # one of the echo cases; --shard 2/2: the other
exit status: 0 every case passed, 1 a case failed, 2 a usage or environment error (no DUT, ...)"""


def workers(text: str) -> str:
    """-n as pytest-xdist takes it, checked here: its own error is four lines of pytest usage."""
    import argparse
    if text in ("auto", "logical") or (text.isdigit() and int(text) <= 256):
        return text
    raise argparse.ArgumentTypeError(f"{text!r} is not allowed; allowed: a number of workers from 0 to 256, "
                                     "auto or logical")


def shard(text: str) -> str:
    """--shard as grelab's pytest option takes it, checked here: one line, before anything runs."""
    import argparse
    from grelab.shard import parse_shard
    try:
        return "/".join(map(str, parse_shard(text)))
    except InputError as exc:
        raise argparse.ArgumentTypeError(f"{exc.value!r} is not allowed; allowed: {exc.allowed}") from None


def check_folder(option: str, path: str) -> None:
    """An output folder: there and writable, or its parent is (it is made). Before any case runs, not after."""
    import os
    import tempfile
    folder = Path(path).expanduser().absolute()
    existing = folder if folder.exists() else folder.parent
    if folder.exists() and not folder.is_dir():
        raise InputError(option, path, "a folder (this is a file)")
    if not existing.is_dir():
        raise InputError(option, path, f"a folder in an existing folder ({existing} is not one: create it first)")
    try:  # the only sure test (root, read-only mounts, /proc): make something there
        os.rmdir(tempfile.mkdtemp(prefix=".grelab-check-", dir=existing))
    except OSError as exc:
        raise InputError(option, path, f"a folder grelab can write ({existing}: {exc.strerror})") from None


class ResultTable:
    """A pytest plugin that keeps one row per case, from the reports pytest (or xdist's controller) sees."""

    def __init__(self):
        self.rows: dict[str, list] = {}

    def pytest_runtest_logreport(self, report):
        row = self.rows.setdefault(report.nodeid, [report.nodeid, "passed", 0.0])
        row[2] += report.duration
        if report.when == "call" or report.outcome != "passed":
            if report.outcome != "passed" or row[1] == "passed":
                row[1] = report.outcome if not (report.when != "call" and report.failed) else "error"

    def lines(self) -> list[str]:
        table = [("scenario", "case", "result", "time")]
        for nodeid, result, seconds in self.rows.values():
            path, _, case = nodeid.partition("::")
            table.append((Path(path).stem, case, result, f"{seconds:.2f}s"))
        widths = [max(len(r[i]) for r in table) for i in range(4)]
        return ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in table]


def scenario_targets(names: list[str]) -> list[str]:
    """The scenario modules named (two_offices or two_offices.py) as pytest's arguments; all of scenarios/ if none."""
    folder = scenarios_dir()
    targets = []
    for name in names:
        module = folder / f"{name.removesuffix('.py')}.py"
        if not module.exists():
            known = sorted(p.stem for p in folder.glob("[a-z]*.py"))
            raise InputError("SCENARIO", name, "one of " + ", ".join(known))
        targets.append(str(module))
    return targets or [str(folder)]


def run(args) -> int:
    folder = scenarios_dir()
    targets = scenario_targets(args.scenarios)
    from grelab.dut.select import select
    for option, path in (("--report", args.report), ("--keep-pcaps", args.keep_pcaps)):
        if path:
            check_folder(option, path)
    if args.kernel:
        import os
        kernel = Path(args.kernel).expanduser().resolve()
        if not kernel.is_file() or not os.access(kernel, os.X_OK):
            raise InputError("--kernel", args.kernel, "an executable user-mode-linux kernel (a `linux` binary; "
                                                      "grelab kernel build makes one)")
        os.environ["GRELAB_KERNEL"] = str(kernel)
    # Every scenario needs a DUT: one that cannot be used (a kernel that cannot boot here) is a one-line error
    # (exit 2) up front. The run's header names it and its kernel.
    choice = select(args.dut)
    print(f"grelab run: DUT {choice.name}, kernel {choice.kernel or 'not known to grelab'}", flush=True)
    pytest_args = targets + ["--dut", args.dut, "-q", "-p", "no:cacheprovider",
                                                "--rootdir", str(folder.parent)]
    if args.workers not in ("0", 0):
        pytest_args += ["-n", str(args.workers)]
    if args.update_golden:
        pytest_args.append("--update-golden")
    if args.keep_pcaps:
        pytest_args += ["--keep-pcaps", args.keep_pcaps]
    if args.keyword:
        pytest_args += ["-k", args.keyword]
    if args.report:
        pytest_args += ["--grelab-report", args.report]
    if args.shard:
        pytest_args += ["--shard", args.shard]
    if args.store_durations:
        pytest_args.append("--store-durations")
    table = ResultTable()
    code = pytest.main(pytest_args, plugins=[table])
    if code == pytest.ExitCode.NO_TESTS_COLLECTED or (code == pytest.ExitCode.OK and not table.rows):
        chosen = f"-k {args.keyword}" + (f" in {', '.join(args.scenarios)}" if args.scenarios else "") \
            if args.keyword else ", ".join(args.scenarios) or "the catalogue"
        chosen += f" in shard {args.shard}" if args.shard else ""
        raise GrelabError(f"no case matches {chosen}; cases are listed by `grelab list`")  # tested nothing: no pass
    if code not in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
        return 2  # pytest printed the reason (a --dut that cannot be used, -k matching nothing); no table of nothing
    print()
    print("\n".join(table.lines()))
    print(f"\ngolden pcaps: {folder.parent / 'pcaps'}" +
          (f"\ncaptures kept in: {Path(args.keep_pcaps).resolve()}" if args.keep_pcaps else "") +
          (f"\nreport: {(Path(args.report) / 'index.html').resolve()}" if args.report else ""))
    return int(code)
