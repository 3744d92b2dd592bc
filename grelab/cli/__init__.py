"""`grelab` command line: one subcommand per module, each with add_arguments(parser) and run(args) -> exit code.
What `grelab --help` says is DESCRIPTION; every subcommand's help ends with examples that run as written
(tests/test_cli_help.py runs each one)."""
from __future__ import annotations

import argparse
import importlib
import re
import sys
from collections.abc import Collection

from grelab.errors import GrelabError, one_line

# subcommand -> (module, one-line help). Modules are imported only when their subcommand runs.
SUBCOMMANDS = {
    "shell": ("grelab.cli.shell", "scapy's shell with grelab loaded and offices() to bring a lab up"),
    "craft": ("grelab.cli.craft", "build GRE / ESP packets into a pcapng"),
    "bench": ("grelab.cli.bench", "measure grelab beside scapy's own way"),
    "doctor": ("grelab.cli.doctor", "what this machine can do, and which DUT --dut auto picks"),
    "dut": ("grelab.cli.dut", "prepare, boot and inspect the device under test"),
    "kernel": ("grelab.cli.kernel", "build the UML DUT's kernel (grelab's, or from your tree), show which runs"),
    "list": ("grelab.cli.list", "scenarios and their cases: what each shows, whether the DUT can run it"),
    "run": ("grelab.cli.run", "run scenarios through pytest and print a results table"),
    "matrix": ("grelab.cli.matrix", "run scenarios on several DUT kinds: one page and JSON of every case on each"),
    "report": ("grelab.cli.report", "merge the run reports of a run's shards (--shard I/N) into one"),
    "soak": ("grelab.cli.soak", "run the catalogue N times under extra CPU load: every case that did not always pass"),
    "pcap": ("grelab.cli.pcap", "compare two pcaps field by field, or show each packet peeled, ESP decrypted"),
    "wireshark": ("grelab.cli.wireshark", "open a pcap in Wireshark with ESP decrypted (tshark's view without a display)"),
    "replay": ("grelab.cli.replay", "replay a pcap into a link of a live lab, capture what comes out"),
    "sweep": ("grelab.cli.sweep", "remove namespaces and guests that dead grelab runs left behind"),
}


DESCRIPTION = """\
grelab tests GRE and GRE-over-IPsec tunnel endpoints. It crafts GRE and ESP packets with scapy,
sends them through a device under test (the Linux kernel's GRE and IPsec, in a user-mode-linux guest
grelab boots, or the host's own kernel) inside network namespaces it creates, captures what comes
out, and checks it field by field and against golden pcaps you open in Wireshark, ESP decrypted.

start with:
  grelab list                  # the scenarios: what each shows, its cases, the DUTs that run them
  grelab run two_offices       # run one scenario against the DUT: a table of its cases' results
  grelab shell                 # scapy with grelab loaded: lab = offices() brings a lab up"""

EPILOG = """\
Every command has --help, ending with examples that run as written (in a checkout, as root).
exit status: 0 ok, 1 a case or a comparison failed, 2 a usage or environment error (one line)"""

# Examples for the subcommands whose modules set none themselves (parser.epilog).
EXAMPLES = {
    "craft": """examples:
  grelab craft --esp gcm128 --count 3 --keys demo.esp_sa -o demo.pcapng --show   # tshark's view too
  grelab craft --transport ipv6 --passenger ethernet --key 7 --csum -o eth.pcapng
exit status: 0 written, 2 a value not allowed or an output that exists (--force overwrites it)""",
    "bench": """examples:
  grelab bench --only craft --quick            # building packets beside scapy's way; small samples
  grelab bench --only lab --quick --json       # the lab's sender and captures, as one JSON object
exit status: 0 measured, 2 an environment error (no DUT for the dut and scenario parts)""",
    "doctor": """examples:
  grelab doctor
  grelab doctor --dut uml --boot               # and boot a guest once, timed
exit status: 0 the DUT is usable, 1 it is not (the rows above say what is missing)""",
    "sweep": """examples:
  grelab sweep
exit status: 0 swept (what it removed is listed), 2 an environment error""",
}


class Formatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions and epilogs as written (examples, exit status), the rest wrapped at 100 columns, as everywhere."""

    def __init__(self, prog: str):
        super().__init__(prog, width=100, max_help_position=30)


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line naming the option, the value and what is allowed (exit status 2)."""

    def error(self, message: str):
        message = re.sub(r"^argument ([^:]+): ", r"\1: ", message)  # "argument --dut: ..." -> "--dut: ..."
        message = re.sub(r"invalid choice: ('[^']*') \(choose from (.*)\)$", r"\1 is not allowed; allowed: one of \2",
                         message).replace("'", "") if "invalid choice" in message else message
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def build_parser(load: Collection[str] = tuple(SUBCOMMANDS)) -> argparse.ArgumentParser:
    """Every subcommand, listed with its help; those named in `load` (all by default) get their module imported
    and their arguments."""
    parser = Parser(prog="grelab", description=DESCRIPTION, epilog=EPILOG, formatter_class=Formatter)
    sub = parser.add_subparsers(title="commands", dest="command", required=True, metavar="COMMAND")
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text, formatter_class=Formatter)
        if name in load:
            module = importlib.import_module(module_name)
            module.add_arguments(p)
            p.epilog = p.epilog or EXAMPLES.get(name)
            p.set_defaults(_module=module, _parser=p)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand. A closed output pipe (`grelab pcap show X | head`) ends it quietly with exit 0: the
    reader has what it wanted."""
    try:
        code = _main(sys.argv[1:] if argv is None else argv)
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's last flush (a traceback at exit)
        return code
    except SystemExit:  # argparse: --help, or a usage error said on stderr
        _flush_quietly()
        raise
    except BrokenPipeError:
        _quiet_stdout()
        return 0


def _main(argv: list[str]) -> int:
    # The subcommand is the first argument that is not an option (grelab itself has none but --help).
    command = next((arg for arg in argv if not arg.startswith("-")), None)
    args, unknown = build_parser(load=(command,)).parse_known_args(argv)
    if unknown:  # said by the subcommand's parser: "grelab run: unrecognized ...", not "grelab: ..."
        args._parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    if args.command != "shell":  # the shell keeps Ctrl-C for its prompt and handles SIGTERM/SIGHUP itself
        from grelab.lab.ownership import arm_stop_signals
        arm_stop_signals()
    try:
        return args._module.run(args) or 0
    except GrelabError as exc:
        print(f"grelab {args.command}: {one_line(exc)}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        raise  # not an OSError to report: main ends quietly
    except OSError as exc:  # the last resort: still one line naming the path, never a traceback
        print(f"grelab {args.command}: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # a stop signal: what the run made goes at exit, then it dies of that signal
        return 130


def output_closed() -> bool:
    """Whether the reader of our stdout has gone (a pipe whose read end is closed polls as an error): a child that
    wrote to our stdout and failed (tshark) failed for that, not for its input."""
    import select
    poll = select.poll()
    poll.register(sys.stdout.fileno(), select.POLLOUT)
    return any(events & select.POLLERR for _, events in poll.poll(0))


def _flush_quietly() -> None:
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _quiet_stdout()


def _quiet_stdout() -> None:
    """Point stdout at /dev/null: the interpreter's last flush of a closed pipe would print a traceback."""
    import os
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())

