"""`grelab matrix [SCENARIO ...] --dut KIND[,KIND...]`: every case on every implementation, one page and one JSON.

One pytest run per DUT kind, with --not-applicable=skip (a case the kind has no equivalent for is a cell that says
what it lacks, not a failure) and grelab.matrix.record keeping each case's result; then DIR/matrix.json and
DIR/matrix.html (grelab.matrix). Each run's output stays in DIR/<kind>.log.
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from grelab.errors import GrelabError, one_line
from grelab.cli.run import check_folder, scenario_targets, workers
from grelab.scenario.catalog import scenarios_dir

EXAMPLES = """examples:
  grelab matrix two_offices --dut uml -k 'echo' --out matrix   # matrix/matrix.html: 2 cases on uml
  grelab matrix gre_options --dut uml -n 2 -k 'right-key or seq' --out seq    # 4 cases, 2 workers
exit status: 0 no cell failed, 1 a cell failed or errored (a divergence passed), 2 usage, DUT error"""


def add_arguments(parser) -> None:
    parser.description = (
        "run scenarios on each DUT kind named and write one conformance matrix, per case and implementation:\n"
        "pass / fail with the first differing field / not applicable with what the DUT lacks / divergence\n"
        "(the implementation's own behaviour, grelab.dut.divergences) / error; figures per implementation.\n"
        "A variant naming its implementations (strongswan→libreswan) is a column of its own. With no\n"
        "SCENARIO, the whole catalogue on each kind (minutes)")
    parser.epilog = EXAMPLES
    parser.add_argument("scenarios", nargs="*", metavar="SCENARIO", help="scenario module names; default: all")
    parser.add_argument("--dut", required=True, metavar="KIND[,KIND...]", type=kinds,
                        help="the DUT kinds, comma-separated: host, uml, module:Class or a grelab.dut entry point")
    parser.add_argument("-n", dest="workers", default="0", type=workers,
                        help="pytest-xdist workers per run: a number (0: none, the default), auto or logical")
    parser.add_argument("-k", dest="keyword", help="only cases matching this pytest -k expression")
    parser.add_argument("--out", metavar="DIR", default="matrix",
                        help="write matrix.json, matrix.html and each run's log here (default: matrix)")
    parser.add_argument("--shard", metavar="I/N", type=shard,
                        help="run only part I of N of the cases (pytest --shard); grelab report merge joins the parts")


def kinds(text: str) -> list[str]:
    """--dut as a list of kinds, each one grelab knows (usable here or not: that is said later, per kind)."""
    import argparse
    from grelab.dut.select import ENTRY_POINT_GROUP, declared_capabilities
    import importlib.metadata
    named = [kind.strip() for kind in text.split(",")]
    known = sorted(declared_capabilities())
    points = sorted(p.name for p in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP))
    allowed = f"DUT kinds separated by commas, each one of {', '.join(known + points)}, or module:Class"
    for kind in named:
        if not kind or (kind not in known and kind not in points and ":" not in kind) or named.count(kind) > 1:
            raise argparse.ArgumentTypeError(f"{text!r} is not allowed ({kind!r}"
                                             f"{' twice' if kind and named.count(kind) > 1 else ''}); allowed: {allowed}")
    return named


def shard(text: str) -> str:
    import argparse
    found = re.fullmatch(r"(\d+)/(\d+)", text)
    if not found or not 1 <= int(found[1]) <= int(found[2]):
        raise argparse.ArgumentTypeError(f"{text!r} is not allowed; allowed: I/N, part I of N (1 <= I <= N), e.g. 1/4")
    return text


def run(args) -> int:
    from grelab.cli.soak import logged_run, pass_on
    from grelab.lab.ownership import on_stop
    from grelab.matrix import exit_status, write
    from grelab.matrix.table import build
    targets = scenario_targets(args.scenarios)
    check_folder("--out", args.out)
    for kind in args.dut:  # every column can be filled, or none is run: never a quiet empty column
        usable(kind)
    out = Path(args.out)
    out.mkdir(exist_ok=True)
    on_stop(pass_on)
    chosen = f"{', '.join(args.scenarios) or 'the catalogue'}" + (f" (-k {args.keyword})" if args.keyword else "")
    print(f"grelab matrix: {chosen} on {', '.join(args.dut)}" + (f", shard {args.shard}" if args.shard else "") +
          f"; each run's output in {out}", flush=True)
    records, runs = [], []
    for kind in args.dut:
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", kind)
        results, log = out / f"{name}.results.json", out / f"{name}.log"
        results.unlink(missing_ok=True)
        status, seconds = logged_run(pytest_argv(targets, kind, args, results), log)
        if status == 5:
            raise GrelabError(f"no case matches {chosen}; cases are listed by `grelab list`")
        if status not in (0, 1) or not results.exists():
            raise GrelabError(f"--dut {kind}: the run could not test (pytest exit status {status}: "
                              f"{said(log)}): see {log}")
        mine = json.loads(results.read_text())
        records += mine
        runs.append({"dut": kind, "shard": args.shard, "exit": status, "seconds": round(seconds, 1)})
        print(f"--dut {kind}: {len(mine)} cases in {seconds:.1f} s", flush=True)
    table = build(records, args.dut, runs, {"scenarios": args.scenarios, "keyword": args.keyword})
    data, page = write(table, out)
    print()
    print("\n".join(figure_lines(table)))
    print(f"\nmatrix: {page.resolve()}\n        {data.resolve()}")
    return exit_status(table)


def pytest_argv(targets: list[str], kind: str, args, results: Path) -> list[str]:
    """The pytest run of one DUT kind: its cases not applicable skipped as such, each case's record in results."""
    argv = [sys.executable, "-m", "pytest", *targets, "--dut", kind, "--not-applicable=skip", "-q",
            "-p", "no:cacheprovider", "-p", "grelab.matrix.record", "--matrix-results", str(results),
            "--rootdir", str(scenarios_dir().parent)]
    argv += ["-n", str(args.workers)] if args.workers not in ("0", 0) else []
    argv += ["-k", args.keyword] if args.keyword else []
    return argv + (["--shard", args.shard] if args.shard else [])  # pytest's --shard (the shard part), when asked


def usable(kind: str) -> None:
    """The kind can be selected on this machine, or a GrelabError saying why in one line."""
    from grelab.dut.base import DutError
    from grelab.dut.select import select
    try:
        select(kind)
    except DutError as exc:
        text = one_line(exc)
        raise GrelabError(text if text.startswith("--dut ") else f"--dut {kind}: {text.removeprefix(kind + ': ')}") \
            from None


def said(log: Path) -> str:
    """What pytest said went wrong, from its log: its last ERROR line, else its last line."""
    lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    errors = [line.removeprefix("ERROR: ") for line in lines if line.startswith("ERROR: ")]
    return (errors or lines or ["no output"])[-1]


def figure_lines(table: dict) -> list[str]:
    """The figures per implementation as a text table."""
    from grelab.matrix.table import FIGURES
    names = list(FIGURES.values())
    rows = [("implementation", *(n.replace("_", " ") for n in names), "time (s)")]
    for implementation in table["implementations"]:
        n = table["figures"][implementation]
        rows.append((implementation, *(str(n[k]) for k in names), f"{n['seconds']:.1f}"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
