"""The catalogue: where the scenarios are (scenarios_dir), what pytest collects of them, and how `grelab list`
(grelab.cli.list) lays it out in 100 columns. One entry per scenario: its name, how many cases, which kinds of DUT
can run them, its story's first sentence; its cases' ids under it (what `grelab run -k` and pytest select).

A scenario's story is its module docstring's first sentence; a case's sentence, its test function's. The cases
are what pytest collects: each test function times its parameters and the scenario's variants (echo[gre-in-esp]).
A kind of DUT can run a case when it declares every capability the case's markers ask for
(grelab.pytest_plugin.needs; grelab.dut.select.declared_capabilities: host, uml, and yours with --dut).
"""
from __future__ import annotations

import contextlib
import inspect
import io
import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

from grelab.dut.base import DutError
from grelab.errors import GrelabError, InputError

def scenarios_dir() -> Path:
    """scenarios/ of the checkout grelab runs from (the working directory's, else the package's)."""
    for base in (Path.cwd(), Path(__file__).resolve().parent.parent.parent):
        if (base / "scenarios").is_dir():
            return base / "scenarios"
    raise InputError("scenarios", str(Path.cwd() / "scenarios"), "a folder of scenario modules; run from the grelab checkout")


WIDTH = 100  # every line of the listing fits a terminal this wide


@dataclass(frozen=True)
class Case:
    id: str  # echo[gre-in-esp]
    function: str  # test_echo
    sentence: str  # the test function's docstring's first sentence
    needs: dict  # capability -> how to say it is missing (grelab.pytest_plugin.needs)


@dataclass(frozen=True)
class Entry:
    """One scenario module of the catalogue."""
    name: str
    story: str  # its docstring's first sentence
    cases: tuple[Case, ...]


def first_sentence(doc: str | None) -> str:
    """A docstring's first sentence: its first paragraph up to a full stop followed by a capital, or all of it."""
    paragraph = " ".join(inspect.cleandoc(doc or "").split("\n\n")[0].split())
    if not paragraph:
        return "(no docstring)"
    match = re.match(r"(.+?[.!?])(?=\s+[A-Z]|$)", paragraph)
    return match.group(1) if match else paragraph


class _Collector:
    """A pytest plugin that keeps what collection found."""

    def __init__(self):
        self.items, self.errors = [], []

    def pytest_collection_finish(self, session):
        self.items = list(session.items)

    def pytest_collectreport(self, report):
        if report.failed:
            self.errors.append(f"{report.nodeid}: {str(report.longrepr).strip().splitlines()[-1]}")


def collect(paths: list[Path]) -> list[Entry]:
    """The scenario modules' entries, collected by pytest itself (one collection), so every parametrized case is one."""
    import pytest

    from grelab.pytest_plugin import needs
    collector = _Collector()
    with contextlib.redirect_stdout(io.StringIO()):  # pytest's own listing: ours says it better
        pytest.main(["--collect-only", "-q", "-p", "no:cacheprovider", "--rootdir", str(paths[0].parent.parent),
                     *map(str, paths)], plugins=[collector])
    if collector.errors:
        raise GrelabError(f"scenario {collector.errors[0]}: cannot collect it: fix the module")
    by_module: dict[str, list] = {path.stem: [] for path in paths}
    for item in collector.items:
        by_module[item.path.stem].append(item)
    entries = []
    for name, items in by_module.items():
        if not items:
            raise GrelabError(f"scenario {name}: cannot collect it: no cases: fix the module")
        cases = tuple(Case(item.name.removeprefix("test_"), item.function.__name__,
                           first_sentence(item.function.__doc__), needs(item)) for item in items)
        entries.append(Entry(name, first_sentence(items[0].module.__doc__), cases))
    return entries


def runs_on(case: Case, kinds: dict[str, frozenset[str]]) -> list[str]:
    """The kinds of DUT that declare everything the case needs."""
    return [kind for kind, capabilities in kinds.items() if set(case.needs) <= capabilities]


def dut_cell(cases, kinds: dict[str, frozenset[str]]) -> str:
    """Which kinds run these cases: a name when it runs all of them, name(k/n) when only k, "-" when none does."""
    said = []
    for kind in kinds:
        count = sum(kind in runs_on(case, kinds) for case in cases)
        if count:
            said.append(kind if count == len(cases) else f"{kind}({count}/{len(cases)})")
    return " ".join(said) or "-"


def wrap(words: list[str], width: int, indent: str, first: str | None = None, sep: str = " ") -> list[str]:
    """Words filled into lines of at most width, the first line led by `first` (default: indent), the others by
    indent; never broken inside a word (ids have hyphens), a word longer than a line on a line of its own."""
    return textwrap.wrap(sep.join(words), width, initial_indent=indent if first is None else first,
                         subsequent_indent=indent, break_long_words=False, break_on_hyphens=False)


def columns(rows: list[tuple[str, str, str, str]]) -> list[list[str]]:
    """Rows of (name, count, DUTs, text) in columns, each row's text wrapped in the room left of WIDTH: each row's
    lines. When that room is under 30 (a long DUT name), the DUTs and the text go on lines of their own."""
    name_w, count_w, dut_w = (max(len(r[i]) for r in rows) for i in range(3))
    at = name_w + count_w + dut_w + 6
    out = []
    for name, count, duts, text in rows:
        if WIDTH - at >= 30:
            head = f"{name:{name_w}}  {count:>{count_w}}  {duts:{dut_w}}  "
            out.append([line.rstrip() for line in wrap(text.split(), WIDTH, " " * at, first=head)] or [head.rstrip()])
        else:
            out.append([f"{name:{name_w}}  {count:>{count_w}}"] + wrap(duts.split(), WIDTH, " " * 6) +
                       wrap(text.split(), WIDTH, " " * 6))
    return out


def render(entries: list[Entry], kinds: dict[str, frozenset[str]], verbose: bool = False) -> list[str]:
    """The listing, every line at most WIDTH long (but for an id longer than that alone)."""
    rows = columns([("scenario", "cases", "DUTs", "story")] +
                   [(e.name, str(len(e.cases)), dut_cell(e.cases, kinds), e.story) for e in entries])
    lines = list(rows[0])
    for entry, row in zip(entries, rows[1:]):
        lines += row
        if not verbose:
            lines += wrap([case.id for case in entry.cases], WIDTH, "    ", sep="  ")
            continue
        for function in dict.fromkeys(case.function for case in entry.cases):
            cases = [case for case in entry.cases if case.function == function]
            label = f"  {function.removeprefix('test_')}: "
            hang = " " * (len(label) if len(label) <= 30 else 6)  # a long function name leaves the sentence room
            lines += wrap(cases[0].sentence.split(), WIDTH, hang, first=label)
            id_w = max(len(case.id) for case in cases)
            for case in cases:
                duts = " ".join(runs_on(case, kinds)) or "-"
                line = f"    {case.id:{id_w}}  {duts}"
                lines += [line] if len(line) <= WIDTH else [f"    {case.id}", f"      {duts}"]
    return lines


def as_json(entries: list[Entry], kinds: dict[str, frozenset[str]], here: dict[str, tuple[bool, str]],
            auto: str | None) -> dict:
    """The catalogue for tools: each kind of DUT (its capabilities, whether it can be used here: why or why not),
    and each scenario's story and cases (id, test function, sentence, needs, the kinds that can run it)."""
    return {
        "duts": {kind: {"capabilities": sorted(capabilities), "usable_here": here[kind][0], "why": here[kind][1]}
                 for kind, capabilities in kinds.items()},
        "auto": auto,
        "scenarios": [{"name": e.name, "story": e.story, "cases": [
            {"id": c.id, "function": c.function, "sentence": c.sentence, "needs": sorted(c.needs),
             "duts": runs_on(c, kinds)} for c in e.cases]} for e in entries],
    }


def usable_here() -> dict[str, tuple[bool, str]]:
    """{host, uml, ovs: (whether it can be used on this machine, why or why not)}."""
    from grelab.dut.select import host_choice, ovs_choice, privilege_problem, uml_choice
    problem = privilege_problem()
    here = {}
    for kind, choose in (("host", host_choice), ("uml", uml_choice), ("ovs", ovs_choice)):
        try:
            if problem:
                raise DutError(problem)
            here[kind] = (True, choose().why)
        except DutError as exc:
            here[kind] = (False, str(exc).removeprefix(f"{kind}: ").splitlines()[0])
    return here


