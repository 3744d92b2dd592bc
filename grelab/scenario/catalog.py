"""`grelab list`: every scenario and its cases, one line each with what it shows (its docstring), and whether
the selected DUT can run it.

    grelab list                 # with the DUT --dut auto picks
    grelab list --dut uml

A scenario module's story is its docstring's first line; a case's, its test function's. The cases are what
pytest collects: each test function times its parameters and the scenario's variants (echo[gre-in-esp]).
"""
from __future__ import annotations

import contextlib
import inspect
import io
from dataclasses import dataclass
from pathlib import Path

from grelab.dut.base import DutError
from grelab.errors import GrelabError

EXAMPLES = """examples:
  grelab list
  grelab list --dut uml
  grelab run two_offices -k 'echo and gre-in-esp'      # then run one of them
exit status: 0 listed, 2 a --dut named explicitly that cannot be used, or a scenario that does not import"""


@dataclass(frozen=True)
class Case:
    scenario: str
    id: str  # echo[gre-in-esp]
    story: str
    needs: dict  # capability -> how to say it is missing


def first_line(doc: str | None) -> str:
    return (inspect.cleandoc(doc).splitlines() or [""])[0] if doc else "(no docstring)"


class _Collector:
    """A pytest plugin that keeps what collection found."""

    def __init__(self):
        self.items, self.errors = [], []

    def pytest_collection_finish(self, session):
        self.items = list(session.items)

    def pytest_collectreport(self, report):
        if report.failed:
            self.errors.append(str(report.longrepr).strip().splitlines()[-1])


def cases(path: Path) -> tuple[str, list[Case]]:
    """(the scenario's story, its cases): collected by pytest itself, so every parametrized case is one."""
    import pytest

    from grelab.scenario.spec import scenario_of
    collector = _Collector()
    with contextlib.redirect_stdout(io.StringIO()):  # pytest's own listing: the rows below say it better
        pytest.main(["--collect-only", "-q", "-p", "no:cacheprovider", "--rootdir", str(path.parent.parent),
                     str(path)], plugins=[collector])
    if collector.errors or not collector.items:
        raise GrelabError(f"scenario {path}: cannot collect it: {'; '.join(collector.errors) or 'no cases'}: fix the module")
    found = []
    for item in collector.items:
        scenario = scenario_of(item.module)
        variant = item.callspec.params.get("net") if hasattr(item, "callspec") else None
        needs = scenario.needs(variant) if scenario is not None and variant is not None else {}
        found.append(Case(path.stem, item.name.removeprefix("test_"), first_line(item.function.__doc__), needs))
    return first_line(collector.items[0].module.__doc__), found


def add_arguments(parser) -> None:
    parser.epilog = EXAMPLES
    parser.add_argument("--dut", default="auto", help="which DUT's abilities to check against: auto (default), "
                                                      "host, uml or module:Class")


def run(args) -> int:
    from grelab.dut.select import select
    from grelab.run import scenarios_dir
    try:
        choice, why_none = select(args.dut), None
    except DutError as exc:
        if args.dut != "auto":
            raise
        choice, why_none = None, str(exc).splitlines()[0]
    rows = []
    for path in sorted(scenarios_dir().glob("[a-z]*.py")):
        story, found = cases(path)
        rows.append((path.stem, story, ""))
        for case in found:
            if choice is None:
                verdict = "no usable DUT"
            else:
                missing = [say for capability, say in case.needs.items() if capability not in choice.capabilities]
                verdict = f"runs on {choice.name}" if not missing else f"skipped on {choice.name}: lacks {', '.join(missing)}"
            rows.append((f"  {case.id}", case.story, verdict))
    width = max(len(r[0]) for r in rows)
    story_width = max(len(r[1]) for r in rows if r[2])
    for name, story, verdict in rows:
        print(f"{name:{width}}  {story:{story_width}}  {verdict}".rstrip())
    print(f"\nDUT: {choice.name} ({choice.why})" if choice else f"\nDUT: none usable with --dut {args.dut}: {why_none}")
    return 0
