"""`grelab soak`: the catalogue N times in a row under extra CPU load; every case that did not pass every time.

A harness whose own cases flake teaches its users to ignore red. Each run is a pytest run of its own (as CI
runs it: `-n` workers, a junit XML of its results); `--load CPUS` starts that many CPU-bound processes that
compete with the workers and the guests for the whole soak. A case is flaky when it did not pass in every run:
it is listed with how often and its first failure, and the exit status is 1. Fix the cause, never retry.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field
from pathlib import Path

from grelab.errors import GrelabError, option_number
from grelab.cli.run import check_folder, scenario_targets, workers
from grelab.scenario.catalog import scenarios_dir

EXAMPLES = """examples:
  grelab soak two_offices -k 'echo and not esp' --runs 2 --load 1 -n 0 --out soak   # logs in soak/
exit status: 0 every case passed every time, 1 one failed once or more, 2 usage or environment error"""


def add_arguments(parser) -> None:
    parser.description = ("run the catalogue (or the scenarios named) N times in a row, under extra CPU load, and\n"
                          "list every case that did not pass every time; with no SCENARIO and --runs 20 --load 2,\n"
                          "the whole catalogue 20 times beside 2 CPU-bound processes (minutes)")
    parser.epilog = EXAMPLES
    parser.add_argument("scenarios", nargs="*", metavar="SCENARIO", help="scenario module names; default: all")
    parser.add_argument("--runs", type=option_number(1, 10_000, integer=True), default=20,
                        help="how many times the catalogue runs (default 20)")
    parser.add_argument("--load", type=option_number(0, 256, integer=True), default=0, metavar="CPUS",
                        help="CPU-bound processes that compete for the cores throughout (default 0)")
    parser.add_argument("-n", dest="workers", default="auto", type=workers,
                        help="pytest-xdist workers per run (default auto: one per CPU, as CI runs it)")
    parser.add_argument("-k", dest="keyword", help="only cases matching this pytest -k expression")
    parser.add_argument("--dut", default="auto", help="device under test: auto, host, uml, ovs or module:Class")
    parser.add_argument("--out", metavar="DIR", help="keep each run's output and junit XML here "
                                                     "(default: a temporary folder, removed when every run passed)")


@dataclass
class Case:
    """One case across the runs: how each ended, and the first failure's text."""
    name: str
    results: list[str] = field(default_factory=list)
    first_failure: str = ""

    @property
    def failures(self) -> int:
        return sum(r not in ("passed", "skipped") for r in self.results)


def results(junit: Path) -> dict[str, tuple[str, str]]:
    """{case: (passed|failed|error|skipped, the failure's message)} from a pytest junit XML file."""
    out = {}
    for case in ElementTree.parse(junit).iter("testcase"):
        name = f"{Path(case.get('classname', '').replace('.', '/')).name}::{case.get('name')}"
        outcome, text = "passed", ""
        for tag in ("failure", "error", "skipped"):
            found = case.find(tag)
            if found is not None:
                outcome = {"failure": "failed"}.get(tag, tag)
                text = (found.get("message") or found.text or "").strip()
                break
        if out.get(name, ("passed",))[0] == "passed":  # a teardown error after a pass is that case's too
            out[name] = (outcome, text)
    return out


def load(cpus: int, run) -> None:
    """cpus CPU-bound processes for as long as the run lives (paired with their end the moment they start)."""
    for _ in range(cpus):
        hog = subprocess.Popen([sys.executable, "-c", "while True: pass"], stdin=subprocess.DEVNULL)
        run.record_pid(hog.pid, "soak load")  # a soak killed outright: the next run's sweep ends them
        run.defer(lambda hog=hog: (hog.kill(), hog.wait()), f"soak load {hog.pid}")


_child: list = []  # the pytest run under way: a stop signal reaches it too (registered once, in run)


def pass_on(signum: int) -> None:
    for child in _child:
        if child.poll() is None:
            child.send_signal(signum)


def soak_run(n: int, argv: list[str], out: Path) -> tuple[int, float]:
    """One pytest run, its output in out/run-N.log: (exit status, seconds)."""
    return logged_run(argv + ["--junitxml", str(out / f"run-{n}.xml")], out / f"run-{n}.log")


def logged_run(argv: list[str], log_path: Path) -> tuple[int, float]:
    """Run argv (a pytest run), its output in log_path: (exit status, seconds). A stop signal reaches it too (it
    removes what it made; pass_on, registered by the caller), and this waits for it. grelab matrix's runs too."""
    start = time.monotonic()
    with open(log_path, "w") as log:
        try:
            _child[:] = [subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)]
            _child[0].wait()
        except KeyboardInterrupt:
            for child in _child:
                child.wait()
            raise
    return _child[0].returncode, time.monotonic() - start


def run(args) -> int:
    from grelab.lab.ownership import current_run
    folder = scenarios_dir()
    targets = scenario_targets(args.scenarios)
    if args.out:
        check_folder("--out", args.out)
        out = Path(args.out)
        out.mkdir(exist_ok=True)
    else:
        out = Path(tempfile.mkdtemp(prefix="grelab-soak-"))
    argv = [sys.executable, "-m", "pytest", *targets, "--dut", args.dut, "-q", "-p", "no:cacheprovider",
            "--rootdir", str(folder.parent), "-o", "junit_family=xunit1"]
    if args.workers not in ("0", 0):
        argv += ["-n", str(args.workers)]
    if args.keyword:
        argv += ["-k", args.keyword]
    from grelab.lab.ownership import on_stop
    on_stop(pass_on)
    load(args.load, current_run())
    cases: dict[str, Case] = {}
    print(f"grelab soak: {args.runs} runs of {', '.join(args.scenarios) or 'the catalogue'}"
          f"{f' (-k {args.keyword})' if args.keyword else ''}, -n {args.workers}, {args.load} CPU-bound "
          f"processes beside them on {os.cpu_count()} CPUs; each run's output in {out}", flush=True)
    for n in range(1, args.runs + 1):
        status, seconds = soak_run(n, argv, out)
        junit = out / f"run-{n}.xml"
        if status == 5:
            raise GrelabError(f"no case matches {f'-k {args.keyword} in ' if args.keyword else ''}"
                              f"{', '.join(args.scenarios) or 'the catalogue'}; cases are listed by `grelab list`")
        if status not in (0, 1) or not junit.exists():
            raise GrelabError(f"run {n} could not test (pytest exit status {status}): see {out / f'run-{n}.log'}")
        got = results(junit)
        for name, (outcome, text) in got.items():
            case = cases.setdefault(name, Case(name, ["absent"] * (n - 1)))
            case.results.append(outcome)
            if outcome in ("failed", "error") and not case.first_failure:
                case.first_failure = f"run {n}: {text}"
        for name in cases.keys() - got.keys():
            cases[name].results.append("absent")
        failed = [c.name for c in cases.values() if c.results[-1] in ("failed", "error")]
        print(f"run {n}/{args.runs}: {sum(o == 'passed' for o, _ in got.values())} passed, {len(failed)} failed, "
              f"{sum(o == 'skipped' for o, _ in got.values())} skipped in {seconds:.1f} s"
              + (f": {', '.join(failed)}" if failed else ""), flush=True)
    flaky = sorted((c for c in cases.values() if c.failures or "absent" in c.results), key=lambda c: -c.failures)
    print(f"\n{len(cases)} cases, {args.runs} runs, load {args.load}: "
          f"{len(flaky)} did not pass every time" + (":" if flaky else ""))
    for case in flaky:
        first = case.first_failure.splitlines()[0][:160] if case.first_failure else "absent from a run"
        print(f"  {case.name}: failed {case.failures} of {args.runs}; first: {first}")
    if not flaky and not args.out:
        import shutil
        shutil.rmtree(out, ignore_errors=True)
    return 1 if flaky else 0
