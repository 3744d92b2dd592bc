"""`grelab doctor`: what this machine can do for grelab, and which DUT `--dut auto` picks.

Each check says what it found and, when something is missing, how to get it. Exit status 0 when at
least one DUT backend is usable, 1 when none is.
"""
from __future__ import annotations

import os
import shutil
import time

from grelab.dut.base import DutError
from grelab.dut.host import probe, try_in_scratch_namespace
from grelab.dut.select import select, uml_choice


def checks() -> list[tuple[str, bool, str]]:
    """(what, ok, detail) for each capability, in the order a packet needs them."""
    root = os.geteuid() == 0
    rows = [("root", root, "uid 0" if root else "grelab makes namespaces and links: run it as root")]
    ok, said = try_in_scratch_namespace("true")
    rows.append(("network namespaces", ok, "unshare -n works" if ok else said))
    ok, said = try_in_scratch_namespace("ip link add grelab-a type veth peer name grelab-b")
    rows.append(("veth", ok, "veth pairs can be made" if ok else said))
    found = probe()
    for capability, label in (("gre", "host GRE (ip_gre)"), ("ipv6_transport", "host GRE over IPv6 (ip6_gre)"),
                              ("esp", "host ESP (esp4 + AES-GCM)")):
        rows.append((label, capability in found.capabilities,
                     found.missing.get(capability, "works in a namespace")))
    tun = os.path.exists("/dev/net/tun")
    rows.append(("TUN/TAP", tun, "/dev/net/tun" if tun else "no /dev/net/tun: modprobe tun"))
    try:
        rows.append(("UML", True, uml_choice().why))
    except DutError as exc:
        rows.append(("UML", False, str(exc)))
    tshark = shutil.which("tshark")
    rows.append(("tshark", bool(tshark), tshark or "apt-get install tshark (pcaps are checked with it)"))
    return rows


def add_arguments(parser) -> None:
    parser.add_argument("--dut", default="auto", help="which DUT to check: auto (default), host, uml, module:Class")
    parser.add_argument("--boot", action="store_true", help="also start the chosen DUT once and time it")


def run(args) -> int:
    for what, ok, detail in checks():
        print(f"{'ok' if ok else 'MISSING':8} {what:30} {detail}")
    try:
        choice = select(args.dut)
    except DutError as exc:
        print(f"\n--dut {args.dut}: nothing usable. {exc}")
        return 1
    print(f"\n--dut {args.dut} picks: {choice.name} ({choice.why})")
    if args.boot:
        start = time.perf_counter()
        dut = choice.start(name="doctor")
        try:
            print(f"booted {choice.name} in {time.perf_counter() - start:.2f} s; interfaces: {', '.join(dut.interfaces)}")
        finally:
            dut.stop()
    return 0
