"""`grelab kernel build` makes a UML kernel: grelab's own (the pinned Debian source, into the cache; ./setup.sh
runs it), or one from your kernel tree with grelab's configuration, to run the catalogue against your patch:

    grelab kernel build --source ~/linux            # -> ~/linux/.grelab-um/linux (a rebuild compiles what changed)
    grelab run --kernel ~/linux/.grelab-um/linux

`grelab kernel show` says which kernel the uml DUT boots and what it has.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

from grelab.dut.uml import kernel
from grelab.errors import option_number


DESCRIPTION = """\
build the UML DUT's kernel: grelab's own (Debian's pinned linux-source, cached; ./setup.sh builds
it), or one from your kernel tree with grelab's configuration, to run the catalogue against your
patch: build --source DIR makes DIR/.grelab-um/linux (a rebuild compiles what changed), and
grelab run --kernel DIR/.grelab-um/linux runs the catalogue on it. show: the kernel the DUT boots."""
EXAMPLES = """examples:
  grelab kernel build               # grelab's kernel: built once (6 minutes), then from the cache
  grelab kernel show                # the kernel the uml DUT boots, and any feature it lacks
exit status: 0 built (or shown), 2 the build failed or the kernel lacks a feature (said which)"""


def add_arguments(parser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    build = sub.add_parser("build", help="build grelab's UML kernel (cached), or one from a kernel tree (--source)",
                           epilog=EXAMPLES, formatter_class=parser.formatter_class)
    build.add_argument("--source", metavar="DIR", help="a Linux kernel tree (default: Debian's pinned linux-source)")
    build.add_argument("--config", metavar="FRAGMENT", help="more config lines on top of grelab's (e.g. CONFIG_KASAN=y)")
    build.add_argument("--out", metavar="DIR", help="the build folder (default: DIR/.grelab-um)")
    build.add_argument("-j", dest="jobs", type=option_number(1, 1024, integer=True), help="parallel jobs (default: one per CPU)")
    show = sub.add_parser("show", help="which kernel the uml DUT boots, its origin, and the features it lacks",
                          epilog=EXAMPLES, formatter_class=parser.formatter_class)
    parser.description = DESCRIPTION
    parser.epilog = EXAMPLES


def _fragment(extra: str | None, out: Path) -> Path:
    """grelab's fragment, with the user's lines after it (later lines win in merge_config.sh)."""
    if not extra:
        return kernel.FRAGMENT
    text = Path(extra).read_text()  # an OSError names the path (grelab's CLI says it in one line)
    merged = out / "grelab-fragment.config"
    out.mkdir(parents=True, exist_ok=True)
    merged.write_text(kernel.FRAGMENT.read_text() + f"\n# from {extra}\n" + text)
    return merged


def run(args) -> int:
    if args.action == "show":
        uml = kernel.grelab_kernel()
        print(uml.describe())
        print(f"path: {uml.path}")
        lacking = kernel.missing(uml)
        print("lacks: " + ("; ".join(lacking) if lacking else "nothing the catalogue needs"))
        return 0
    if args.source is None:
        if args.config or args.out:
            print("grelab kernel build: --config and --out go with --source (grelab's own kernel is built with "
                  "its own configuration, into the cache)", file=sys.stderr)
            return 2
        start = time.perf_counter()
        if kernel.cached() is None:
            print(f"grelab kernel build: building grelab's UML kernel from Debian's {kernel.PINNED.package} "
                  f"{kernel.PINNED.version}, once (about 6 minutes on 2 cores)", file=sys.stderr, flush=True)
        uml = kernel.ensure()
        print(f"{uml.describe()}\n{uml.path} ({time.perf_counter() - start:.1f} s)")
        return 0
    source = Path(args.source).expanduser().resolve()
    out = Path(args.out).expanduser().resolve() if args.out else source / ".grelab-um"
    if (source / "arch/um").is_dir() and not kernel.sizes_xsave_from_host(source):
        print(f"note: {source}'s UML passes the host a fixed-size XSAVE buffer (before 6.13): its guests panic on "
              "CPUs with AMX", file=sys.stderr)
    built = kernel.build(source, out, _fragment(args.config, out), args.jobs)
    kernel.user_kernel(built.linux)  # checked: a feature the catalogue needs missing is a DutError (exit 2)
    print(f"built {built.linux} (UML {built.release}) in {built.seconds:.1f} s\n"
          f"run the catalogue on it: grelab run --kernel {built.linux}")
    return 0
