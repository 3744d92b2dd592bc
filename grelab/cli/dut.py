"""`grelab dut prepare` builds the UML guest's initramfs (cached) and unpacks the Debian packages DUT daemons run
without their being installed (libreswan: grelab.dut.unpacked); `grelab dut shell` boots a DUT and gives you its
console (one command per line, each answered with its output and exit status)."""
from __future__ import annotations

import sys
import time

from grelab.dut.select import prepare_uml, select


EXAMPLES = """examples:
  grelab dut prepare                       # the guest's image, into the cache (quick when there)
  echo 'ip -s link' | grelab dut shell --dut uml
exit status: 0 done, 2 the DUT cannot be prepared or booted (the message says what is missing)"""


def add_arguments(parser) -> None:
    parser.epilog = EXAMPLES
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    sub.add_parser("prepare", help="build the UML guest's initramfs and unpack libreswan into the cache (quick when "
                              "already there)",
                   epilog=EXAMPLES, formatter_class=parser.formatter_class)
    shell = sub.add_parser("shell", help="boot a DUT and run commands in it interactively",
                           epilog=EXAMPLES, formatter_class=parser.formatter_class)
    shell.add_argument("--dut", default="auto", help="auto (default), host, uml or module:Class")
    shell.add_argument("--interfaces", default="wan,lan", help="comma-separated interface names (default wan,lan)")


def run(args) -> int:
    if args.action == "prepare":
        from grelab.progress import status
        start = time.perf_counter()
        with status("building the user-mode-linux guest's image (cached)"):
            image, _ = prepare_uml()  # failures as a DutError saying what is missing, not a traceback
        print(f"uml guest ready: {image.kernel} with {image.initramfs} ({time.perf_counter() - start:.2f} s)")
        from grelab.dut.unpacked import LIBRESWAN, unpack, version
        with status("unpacking Debian's libreswan for the IKE scenario (cached)"):
            root = unpack(LIBRESWAN)
        print(f"libreswan {version(LIBRESWAN)} unpacked in {root}")
        return 0
    from grelab.progress import status
    choice = select(args.dut)
    with status(f"booting a {choice.name} DUT"):
        dut = choice.start(name="shell", interfaces=args.interfaces.split(","))
    with dut:
        print(f"{choice.name} DUT up, interfaces {', '.join(dut.interfaces)}, host side in namespace "
              f"{dut.namespace}. One command per line; end with EOF (Ctrl-D).", file=sys.stderr)
        for line in sys.stdin:
            if not line.strip():
                continue
            result = dut.cmd(line)
            if result.output:
                print(result.output)
            if not result.ok:
                print(f"[exit {result.status}]", file=sys.stderr)
    return 0
