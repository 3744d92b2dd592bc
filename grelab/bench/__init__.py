"""`grelab bench`: each figure grelab promises, measured beside the baseline (scapy's own way) in the same run.

Parts register here: a module with `measures(quick: bool) -> list[Measure]`. `--json` prints one object,
{measure: {"grelab": n, "baseline": n, "unit": "..."}}.
"""
from __future__ import annotations

import importlib
import json
import sys
import time
from dataclasses import dataclass

PARTS = ["grelab.bench.craft", "grelab.bench.lab", "grelab.bench.dut", "grelab.bench.scenario", "grelab.bench.refusals"]


@dataclass
class Measure:
    name: str  # key in the --json object, e.g. "craft_pps"
    grelab: float
    baseline: float | None
    unit: str
    what: str  # one line for people: what was measured and what the baseline is
    goal: str = ""  # the figure the issue asks for, e.g. ">= 1,000,000"


def timed_rate(fn, count: int) -> float:
    """Call fn() once (it does `count` units of work); return units per second."""
    start = time.perf_counter()
    fn()
    return count / (time.perf_counter() - start)


def add_arguments(parser) -> None:
    parser.description = ("measure what grelab promises beside the baseline, scapy's own way, in the same run;\n"
                          "with no --only, every part (craft, lab, dut, scenario, refusals), full samples: minutes")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument("--quick", action="store_true", help="smaller samples (for tests)")
    parser.add_argument("--only", action="append", default=[], metavar="PART", choices=[n.rsplit(".", 1)[1] for n in PARTS],
                        help="run only these parts (craft, lab, dut, scenario, refusals); repeat for several")


def collect(quick: bool, only: list[str]) -> list[Measure]:
    from grelab.progress import progress
    parts = [name for name in PARTS if not only or name.rsplit(".", 1)[1] in only]
    results = []
    with progress("benchmarks", total=len(parts), unit="parts") as advance:
        for name in parts:
            try:
                module = importlib.import_module(name)
            except ModuleNotFoundError as exc:
                if exc.name != name:
                    raise
                continue
            results.extend(module.measures(quick))
            advance()
    return results


def run(args) -> int:
    results = collect(args.quick, args.only)
    if args.json:
        print(json.dumps({m.name: {"grelab": m.grelab, "baseline": m.baseline, "unit": m.unit} for m in results}))
        return 0
    rows = [("measure", "grelab", "baseline", "unit", "goal", "what")]
    for m in results:
        rows.append((m.name, _fmt(m.grelab), _fmt(m.baseline), m.unit, m.goal, m.what))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[5])
    sys.stdout.flush()
    return 0


def _fmt(value) -> str:
    if value is None:
        return "-"
    if value >= 1000:
        return f"{value:,.0f}"
    return f"{value:.3g}"
