"""`grelab bench`: each figure grelab promises, measured beside the baseline (scapy's own way) in the same run.

Parts register here: a module with `measures(quick: bool) -> list[Measure]`. `--json` prints one object,
{measure: {"grelab": n, "baseline": n, "unit": "..."}}.
"""
from __future__ import annotations

import importlib
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


