"""`grelab list`: every scenario and its cases, one line each with what it shows (its docstring), and whether
the selected DUT can run it.

    grelab list                 # with the DUT --dut auto picks
    grelab list --dut uml

A scenario module's story is its docstring's first line; a case's, its test function's. The cases are the
module's test functions times the scenario's variants (test_echo[gre-in-esp]), as pytest collects them.
"""
from __future__ import annotations

import importlib.util
import inspect
import sys
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


def load(path: Path):
    """Import a scenario module from its file (as pytest would, without collecting)."""
    spec = importlib.util.spec_from_file_location(f"grelab_scenario_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.parent))
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # noqa: BLE001 - any error of someone's scenario, said in one line
        raise GrelabError(f"scenario {path}: cannot import it: {type(exc).__name__}: {exc}: fix the module") from None
    finally:
        sys.path.remove(str(path.parent))
    return module


def cases(path: Path) -> tuple[str, list[Case]]:
    """(the scenario's story, its cases)."""
    module = load(path)
    scenario = next((f.scenario for f in vars(module).values() if hasattr(f, "scenario")), None)
    variants = scenario.variants if scenario is not None else (None,)
    found = []
    for name, fn in vars(module).items():
        if not (name.startswith("test_") and inspect.isfunction(fn)):
            continue
        for variant in variants:
            case_id = name.removeprefix("test_") + (f"[{variant.id}]" if variant is not None else "")
            found.append(Case(path.stem, case_id, first_line(fn.__doc__),
                              scenario.needs(variant) if variant is not None else {}))
    return first_line(module.__doc__), found


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
