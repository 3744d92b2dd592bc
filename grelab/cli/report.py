"""`grelab report merge DIR... -o OUT`: the reports of a run's shards (grelab run --shard I/N --report DIR, one per
machine) joined into one page, every case once, the totals those of all (grelab.golden.merge)."""
from __future__ import annotations

from pathlib import Path

DESCRIPTION = """\
run reports: merge joins the reports of a run's shards (grelab run --shard I/N --report DIR, or
pytest --shard I/N --grelab-report DIR, one per machine) into one page with every case once, the
run's totals those of all its cases, and each case's capture copied beside it. A case that two
reports hold differently is an error naming it (each case belongs to one shard)."""
EXAMPLES = """examples:
  grelab run two_offices -k echo --shard 1/2 --report part1   # one machine's half of the cases
  grelab run two_offices -k echo --shard 2/2 --report part2   # the other half (CI: a job each)
  grelab report merge part1 part2 -o merged                   # merged/index.html: both parts' cases
exit status: 0 merged, 2 a folder that is not a report, a case in two reports, an OUT not empty"""


def add_arguments(parser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    merge = sub.add_parser("merge", help="join shards' run reports into one", description=DESCRIPTION,
                           epilog=EXAMPLES, formatter_class=parser.formatter_class)
    merge.add_argument("folders", nargs="+", metavar="DIR", help="a run report's folder (its index.html, cases/)")
    merge.add_argument("-o", dest="out", metavar="OUT", required=True,
                       help="the merged report's folder: one that does not exist yet, or is empty")
    parser.description = DESCRIPTION
    parser.epilog = EXAMPLES


def run(args) -> int:
    from grelab.golden.merge import merge
    for line in merge([Path(f) for f in args.folders], Path(args.out)):
        print(f"merged {line}")
    return 0
