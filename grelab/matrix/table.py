"""The matrix: a row per case, a column per implementation, a cell where they meet (grelab.matrix.cells), the
figures per implementation, as one JSON document (matrix.json). Shards' matrices merge into one.

    {"schema": "grelab-matrix/1", "duts": ["uml", "ovs"], "implementations": ["uml", "ovs", "strongswan→libreswan"],
     "selection": {"scenarios": [...], "keyword": "..."}, "runs": [{"dut", "shard", "exit", "seconds"}],
     "rows": {"gre_options.py::test_option[gre-input-seq-missing]": {"uml": {"status": "pass", ...}, "ovs": {...}}},
     "figures": {"uml": {"passed": 14, "failed": 0, "errors": 0, "not_applicable": 1, "expected_divergences": 0,
                         "skipped": 0, "seconds": 52.1}}}
"""
from __future__ import annotations

import json
from pathlib import Path

from grelab.errors import GrelabError, InputError
from grelab.matrix.cells import BAD, cell, column, row

SCHEMA = "grelab-matrix/1"
FIGURES = {"pass": "passed", "fail": "failed", "error": "errors", "n/a": "not_applicable",
           "xfail": "expected_divergences", "skip": "skipped"}  # a status -> what the figures call it
KEYS = ("schema", "duts", "implementations", "selection", "runs", "rows", "figures")


def build(records: list[dict], duts: list[str], runs: list[dict], selection: dict) -> dict:
    """The matrix of these records (every DUT kind's run's). Each DUT kind is a column even where no case ran on
    it; a variant's implementation is one where a case ran on it."""
    rows: dict[str, dict[str, dict]] = {}
    for record in records:
        name, where = row(record), column(record)
        if where in rows.get(name, {}) and rows[name][where]["dut"] != record["dut"]:
            where = f"{where} on {record['dut']}"  # one implementation run by two DUT kinds: two columns
        if where in rows.get(name, {}):
            name = record["nodeid"].rsplit("/", 1)[-1]  # two variants naming only their implementation apart
        rows.setdefault(name, {})[where] = cell(record)
    return finish({"schema": SCHEMA, "duts": list(duts), "implementations": [], "selection": selection,
                   "runs": list(runs), "rows": rows})


def finish(matrix: dict) -> dict:
    """Rows in order, the columns every cell names (the DUT kinds first), the figures counted from the cells."""
    rows = {name: matrix["rows"][name] for name in sorted(matrix["rows"])}
    named = dict.fromkeys(matrix["duts"])
    for cells in rows.values():
        named.update(dict.fromkeys(sorted(cells)))
    columns = list(named)
    return {**matrix, "implementations": columns, "rows": rows, "figures": {c: figures(rows, c) for c in columns}}


def figures(rows: dict, implementation: str) -> dict:
    """How many of the implementation's cells passed, failed, ..., and the seconds its cases took."""
    cells = [cells[implementation] for cells in rows.values() if implementation in cells]
    counted = {name: sum(c["status"] == status for c in cells) for status, name in FIGURES.items()}
    return counted | {"seconds": round(sum(c["seconds"] for c in cells), 1)}


def merge(matrices: list[dict]) -> dict:
    """Shards' matrices as one (`grelab report merge`): their rows together, DUT kinds and runs in order. A cell
    two of them hold differently is an error: they are not shards of one matrix."""
    if not matrices:
        raise GrelabError("no matrix to merge")
    merged = {"schema": SCHEMA, "duts": [], "implementations": [], "selection": matrices[0]["selection"],
              "runs": [], "rows": {}}
    for matrix in matrices:
        merged["duts"] += [d for d in matrix["duts"] if d not in merged["duts"]]
        merged["runs"] += matrix["runs"]
        for name, cells in matrix["rows"].items():
            mine = merged["rows"].setdefault(name, {})
            for where, found in cells.items():
                if where in mine and mine[where] != found:
                    raise GrelabError(f"case {name} on {where} is in two of the matrices merged, with different "
                                      f"results ({mine[where]['status']}, {found['status']}): merge each shard once")
                mine[where] = found
    return finish(merged)


def exit_status(matrix: dict) -> int:
    """1 when a cell failed or errored (a divergence that no longer holds is a failure), else 0."""
    return int(any(c["status"] in BAD for cells in matrix["rows"].values() for c in cells.values()))


def dumps(matrix: dict) -> str:
    return json.dumps(matrix, indent=1, ensure_ascii=False) + "\n"


def load(path: Path) -> dict:
    """A matrix.json as written by grelab matrix; anything else is an InputError naming the file."""
    try:
        matrix = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError("matrix", str(path), f"a matrix.json grelab matrix wrote ({exc})") from None
    if not isinstance(matrix, dict) or matrix.get("schema") != SCHEMA or any(k not in matrix for k in KEYS):
        raise InputError("matrix", str(path), f"a matrix.json of schema {SCHEMA} (keys {', '.join(KEYS)})")
    return matrix
