"""`grelab doctor`: what this machine can do for grelab, and which DUT `--dut auto` picks.

Each check says what it found and, when something is missing, how to get it. Privileges are read from the
process's effective capabilities (uid 0 without CAP_NET_ADMIN/CAP_SYS_ADMIN can do nothing), and a check that
fails for want of them says so rather than blame the kernel's config. `--boot` also starts the chosen DUT
once. Exit status 0 when the DUT `--dut` names is usable (for auto: at least one backend), 1 when it is not.
"""
from __future__ import annotations

import os
import shutil
import time

from grelab.dut.base import DutError
from grelab.dut import host
from grelab.dut.host import try_in_scratch_namespace
from grelab.dut.host import kernel_lacks
from grelab.dut.select import TUN, missing_capabilities, ovs_choice, select, tun_problem, uml_choice

HOST_ROWS = (("gre", "host GRE (ip_gre)"), ("ipv6_transport", "host GRE over IPv6 (ip6_gre)"),
             ("esp", "host ESP (esp4 + AES-GCM)"))


def checks() -> list[tuple[str, bool, str]]:
    """(what, ok, detail) for each capability, in the order a packet needs them; detail says how to get
    what is missing."""
    lacking = missing_capabilities()
    have = f"uid {os.geteuid()}, effective capabilities"
    rows = [("privileges", not lacking, f"{have} include CAP_NET_ADMIN, CAP_SYS_ADMIN, CAP_NET_RAW" if not lacking
             else f"{have} lack {', '.join(lacking)}: grelab makes namespaces, links and packet sockets: run "
                  "it as root with full capabilities (or grant these)")]
    ok, said = try_in_scratch_namespace("true")
    rows.append(("network namespaces", ok, "unshare -n works" if ok else
                 f"{said}: needs CAP_SYS_ADMIN, which this process lacks" if "CAP_SYS_ADMIN" in lacking else
                 f"{said}: needs a kernel with CONFIG_NET_NS"))
    namespaces = ok
    ok, said = try_in_scratch_namespace("ip link add grelab-a type veth peer name grelab-b")
    rows.append(("veth", ok, "veth pairs can be made" if ok else
                 "not tested: no namespace could be made (see above)" if not namespaces else
                 f"{said}: needs CAP_NET_ADMIN, which this process lacks" if "CAP_NET_ADMIN" in lacking else
                 f"{said}: needs CONFIG_VETH (modprobe veth)"))
    try:
        uml = (True, uml_choice().why)
    except DutError as exc:
        uml = (False, str(exc).removeprefix("uml: "))
    if lacking and uml[0]:  # its image is there, but no guest can be plugged in without them
        uml = (False, f"{uml[1]}, but the guest's namespace and taps need the privileges this process lacks")
    otherwise = "or --dut uml, which works here" if uml[0] else "or get the uml DUT working (see UML below)"
    found = host.probe()
    for capability, label in HOST_ROWS:
        if capability in found.capabilities:
            rows.append((label, True, "works in a namespace"))
        else:
            if lacking:
                rows.append((label, False, "not tested: needs the privileges this process lacks (see above)"))
                continue
            lacks = kernel_lacks(capability, found.missing.get(capability, ""))
            rows.append((label, False, f"this kernel lacks {lacks}; use a kernel with it, {otherwise}"))
    tun = tun_problem()
    rows.append(("TUN/TAP", tun is None, f"{TUN} opens (taps can be made)" if tun is None else tun))
    rows.append(("UML kernel", *kernel_row()))
    rows.append(("UML (booted once)", *uml))
    try:
        rows.append(("Open vSwitch (--dut ovs)", True, ovs_choice().why))
    except DutError as exc:
        rows.append(("Open vSwitch (--dut ovs)", False, str(exc).removeprefix("ovs: ")))
    tshark = shutil.which("tshark")
    rows.append(("tshark", bool(tshark), tshark or "apt-get install tshark (pcaps are checked with it)"))
    return rows


def kernel_row() -> tuple[bool, str]:
    """The UML kernel the uml DUT boots: which, from what source (and whether the pinned one), or what is wrong."""
    from grelab.dut.uml import kernel
    try:
        uml = kernel.grelab_kernel()
    except DutError as exc:
        return False, str(exc)
    built = kernel.info(uml)
    detail = uml.describe()
    if built:
        detail += f"; built in {built['build_s']:.0f} s, XSAVE sized from the host: {'yes' if built['xsave_from_host'] else 'no'}"
    return True, detail


def add_arguments(parser) -> None:
    parser.add_argument("--dut", default="auto", help="which DUT to check: auto (default), host, uml, ovs, module:Class")
    parser.add_argument("--kernel", metavar="PATH", help="check this user-mode-linux kernel instead of grelab's build")
    parser.add_argument("--boot", action="store_true", help="also start the chosen DUT once and time it")


def run(args) -> int:
    if args.kernel:
        os.environ["GRELAB_KERNEL"] = os.path.abspath(os.path.expanduser(args.kernel))
    for what, ok, detail in checks():
        print(f"{'ok' if ok else 'MISSING':8} {what:30} {detail}")
    try:
        choice = select(args.dut)
    except DutError as exc:
        print(f"\n--dut {args.dut}: {'nothing usable' if args.dut == 'auto' else 'not usable'}. {exc}")
        return 2  # an environment error, as every grelab command says it (1 is a failed test or comparison)
    print(f"\n--dut {args.dut} picks: {choice.name} ({choice.why})")
    if args.boot:
        start = time.perf_counter()
        dut = choice.start(name="doctor")
        try:
            print(f"booted {choice.name} in {time.perf_counter() - start:.2f} s; interfaces: {', '.join(dut.interfaces)}")
        finally:
            dut.stop()
    return 0
