"""`grelab bench`: each figure grelab promises, measured beside its baseline in the same run (grelab.bench)."""
from __future__ import annotations

import json
import sys

from grelab.bench import PARTS, collect

def add_arguments(parser) -> None:
    parser.description = ("measure what grelab promises beside the baseline, scapy's own way, in the same run;\n"
                          "with no --only, every part (craft, lab, dut, scenario, refusals), full samples: minutes")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument("--quick", action="store_true", help="smaller samples (for tests)")
    parser.add_argument("--only", action="append", default=[], metavar="PART", choices=[n.rsplit(".", 1)[1] for n in PARTS],
                        help="run only these parts (craft, lab, dut, scenario, refusals); repeat for several")


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
