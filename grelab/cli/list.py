"""`grelab list`: the catalogue in 100 columns (grelab.scenario.catalog collects and lays it out)."""
from __future__ import annotations

import json

from grelab.scenario.catalog import WIDTH, as_json, collect, render, scenarios_dir, usable_here, wrap

EXAMPLES = """examples:
  grelab list                                     # every scenario: its cases, their DUTs, its story
  grelab list -v                                  # and each case's sentence
  grelab list --json > catalogue.json             # for tools: each case's sentence, needs, DUTs
  grelab run two_offices -k 'echo and gre-in-esp' # then run one case of it
exit status: 0 listed, 2 a --dut named that cannot be used, or a scenario that does not import"""


def add_arguments(parser) -> None:
    parser.epilog = EXAMPLES
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="each case's sentence (its test function's docstring), and each id with its DUTs")
    parser.add_argument("--json", action="store_true", help="one JSON object: the DUT kinds, every scenario and case")
    parser.add_argument("--dut", default="auto", help="also list this DUT of yours (module:Class or a grelab.dut "
                                                      "entry point) beside host and uml; host or uml: fail (exit 2) "
                                                      "unless that one can be used here")


def run(args) -> int:
    from grelab.dut.select import declared_capabilities, select
    kinds, here = declared_capabilities(), usable_here()
    if args.dut != "auto":
        choice = select(args.dut)  # one named explicitly must be usable here (else a DutError: exit 2)
        kinds.setdefault(choice.name, choice.capabilities)
        here.setdefault(choice.name, (True, choice.why))
    auto = next((kind for kind in ("host", "uml") if here[kind][0]), None)  # select("auto")'s order
    entries = collect(sorted(scenarios_dir().glob("[a-z]*.py")))
    if args.json:
        print(json.dumps(as_json(entries, kinds, here, auto)))
        return 0
    lines = render(entries, kinds, args.verbose) + [""]
    for kind, capabilities in kinds.items():
        usable, why = here[kind]
        said = f"{kind}: declares {', '.join(sorted(capabilities)) or 'nothing here'}; " + \
               (f"usable here ({why})" if usable else f"not usable here: {why}")
        lines += wrap(said.split(), WIDTH, "  ", first="")
    lines.append(f"--dut auto picks {auto}" if auto else "--dut auto finds no usable DUT here")
    print("\n".join(lines))
    return 0
