"""Reports of a run's shards (`--shard I/N`, each with --grelab-report) joined into one: `grelab report merge`.

What a report folder holds decides how it merges: MERGERS, {what the folder holds: how folders holding it merge
into one}. A run report (grelab.golden.report) holds cases/ (a JSON per case, its capture and decrypted companion
beside it) and run.json (each case's steps, the run's seconds): the merged folder holds every case once, its files
copied (the page links them relative to itself), the steps of all, each shard's seconds, and the page drawn anew
from them, so its totals are those of every case. A case two reports both hold is an error naming it, unless both
hold it identically (the same report given twice, a copy of it).

grelab matrix's report (matrix.json, its shards' made with `grelab matrix --shard I/N`) merges through
grelab.matrix: its rows together (a cell two shards hold differently refused), the page drawn anew.
"""
from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from grelab.errors import GrelabError, InputError
from grelab.golden.report import RUN_FILE, file_stem, write_page

CASE_FILES = ("pcap", "pcap_decrypted")  # a case's own files, relative to its report folder (save_case)


def merge_runs(folders: list[Path], out: Path) -> str:
    """Every case of the run reports in `folders` into `out` (made, empty): its cases/, run.json and index.html.
    Returns what was merged, in a line."""
    cases: dict[str, tuple[Path, dict, dict]] = {}  # nodeid -> (folder, its data, its steps)
    clashes: dict[str, list[Path]] = {}
    took: list[float] = []
    for folder in folders:
        run = _run_file(folder)
        took += run["took"] if isinstance(run["took"], list) else [run["took"]]  # a merged report merges again
        for path in sorted((folder / "cases").glob("*.json")):
            data = _case(path)
            mine = (folder, data, run["steps"].get(data["nodeid"], {}))
            seen = cases.setdefault(data["nodeid"], mine)
            if seen is not mine and not _same(seen, mine):
                clashes.setdefault(data["nodeid"], [seen[0]]).append(folder)
    if clashes:
        said = "; ".join(f"{nodeid} (in {', '.join(map(str, where))})" for nodeid, where in sorted(clashes.items()))
        raise GrelabError(f"{len(clashes)} cases are in more than one report, differently: {said}: each case belongs "
                          "to one shard (were these made with the same --shard N and selection, from one run?)")
    (out / "cases").mkdir(parents=True)
    steps = {}
    for nodeid, (folder, data, mine) in cases.items():
        data = dict(data, golden=_golden_here(data["golden"])) if data.get("golden") else data
        for key in CASE_FILES:
            if data.get(key):
                shutil.copyfile(folder / data[key], out / data[key])
        (out / "cases" / f"{file_stem(nodeid)}.json").write_text(json.dumps(data))
        steps[nodeid] = mine
    (out / RUN_FILE).write_text(json.dumps({"took": took, "steps": steps}))
    page = write_page(out, steps, took)
    outcomes = [data["outcome"] for _, data, _ in cases.values()]
    counted = ", ".join(f"{outcomes.count(o)} {o}" for o in sorted(set(outcomes)))
    return f"{len(folders)} reports, {len(cases)} cases ({counted or 'none'}): {page}"


def merge_matrices(folders: list[Path], out: Path) -> str:
    """The matrices of `folders` (grelab matrix --out DIR --shard I/N) as one matrix.json and matrix.html in `out`."""
    from grelab import matrix
    merged = matrix.merge([matrix.load(folder / "matrix.json") for folder in folders])
    _, page = matrix.write(merged, out)
    return f"{len(folders)} matrices, {len(merged['rows'])} cases on {', '.join(merged['implementations'])}: {page}"


# What a report folder holds -> how folders holding it merge (into an empty folder; returns a line saying what).
MERGERS: dict[str, Callable[[list[Path], Path], str]] = {
    "cases": merge_runs,
    "matrix.json": merge_matrices,
}


def merge(folders: list[Path], out: Path) -> list[str]:
    """Merge the report folders into `out` (a folder that does not exist yet, or is empty), written whole: in a
    folder beside it, renamed at the end. Returns a line per kind of report merged."""
    if not folders:
        raise InputError("DIR", "", "one or more report folders")
    for folder in folders:
        kinds = [kind for kind in MERGERS if (folder / kind).exists()]
        if not kinds:
            raise InputError("DIR", str(folder), "a report folder (pytest --grelab-report DIR, grelab run "
                                                 f"--report DIR, grelab matrix --out DIR): it has no {' or '.join(MERGERS)}")
    real = [os.path.realpath(f) for f in folders]
    twice = next((f for f, r in zip(folders, real) if real.count(r) > 1), None)
    if twice is not None:
        raise InputError("DIR", str(twice), "each report folder once")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InputError("-o", str(out), "a folder that does not exist yet, or is empty (the merged report is "
                                         "written whole there)")
    if os.path.realpath(out) in real:
        raise InputError("-o", str(out), "a folder other than the reports merged")
    if not out.absolute().parent.is_dir():
        raise InputError("-o", str(out), f"a folder in an existing folder ({out.absolute().parent} is not one)")
    # Built beside `out` (links to goldens, relative to the page, hold once it is renamed), then renamed.
    building = out.absolute().parent / f".{out.name}.merging.{os.getpid()}"
    try:
        building.mkdir()
        said = [merger([f for f in folders if (f / kind).exists()], building).replace(str(building), str(out.absolute()))
                for kind, merger in MERGERS.items() if any((f / kind).exists() for f in folders)]
        if out.exists():
            out.rmdir()
        building.rename(out)
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return said


def _run_file(folder: Path) -> dict:
    try:
        run = json.loads((folder / RUN_FILE).read_text())
        if isinstance(run, dict) and isinstance(run.get("steps"), dict) and "took" in run:
            return run
    except FileNotFoundError:
        raise InputError("DIR", str(folder), f"a report with its {RUN_FILE} (each case's steps: grelab writes it "
                                             "at the end of a run; this one has none)") from None
    except (OSError, ValueError):
        pass
    raise InputError("DIR", str(folder), f"a report whose {RUN_FILE} grelab wrote ({folder / RUN_FILE} is not one)")


def _case(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise GrelabError(f"{path}: not a case grelab's report wrote ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("nodeid"), str):
        raise GrelabError(f"{path}: not a case grelab's report wrote (no nodeid)")
    for key in CASE_FILES:
        if data.get(key) and not (path.parent.parent / data[key]).is_file():
            raise GrelabError(f"{path}: its {key} {path.parent.parent / data[key]} is missing")
    return data


def _same(a: tuple[Path, dict, dict], b: tuple[Path, dict, dict]) -> bool:
    """The same case, byte for byte: its data, its steps and its files."""
    return a[1] == b[1] and a[2] == b[2] and all(
        (a[0] / a[1][key]).read_bytes() == (b[0] / b[1][key]).read_bytes() for key in CASE_FILES if a[1].get(key))


def _golden_here(golden: str) -> str:
    """A case's golden as the report that ran it saw it (an absolute path on that machine): kept when it is there,
    else the same pcaps/... in the checkout grelab runs from (a shard's report merged on another machine)."""
    path = Path(golden)
    if path.exists() or "pcaps" not in path.parts:
        return golden
    from grelab.scenario.catalog import scenarios_dir
    tail = path.parts[len(path.parts) - 1 - path.parts[::-1].index("pcaps"):]
    try:
        here = scenarios_dir().parent.joinpath(*tail)
    except InputError:  # merging outside any checkout: the link stays as the shard had it, shown as missing
        return golden
    return str(here) if here.exists() else golden
