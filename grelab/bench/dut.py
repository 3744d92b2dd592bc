"""`grelab bench` figures for the DUT: boot to a configured tunnel, reset between tests, memory per guest,
applying a plan, and the figure users feel: the time of one scenario case.

Baselines, measured in the same run: a guest booted with the kernel's built-in benchmarks left on (raid6
alone costs ~0.85 s); the same reset run as any other command (in a subshell, starting its own `ip -batch`
processes instead of feeding the ones that live in the guest); the same plan applied as it was before plans,
one console command per iproute2 command or sysctl; and the same two-office case with its DUTs configured
that way.
"""
from __future__ import annotations

import contextlib
import os
import statistics
import time

from grelab.bench import Measure
from grelab.craft.esp import SA
from grelab.dut.iproute2 import commands, render
from grelab.dut.plan import Interface, Neighbour, Plan, Route
from grelab.dut.tunnel import esp_transport, gre_tunnel
from grelab.dut.uml.guest import Uml

RESET_WITH_EXEC = "unset GRELAB_IP_COPROCESS; grelab_reset wan lan"  # in a subshell, as any command


LOCAL, REMOTE = "192.0.2.254", "192.0.2.1"
TUNNEL_PLAN = (Plan(interfaces=[Interface("wan", "02:00:00:00:0a:fe", 1500, ["192.0.2.254/24"]),
                                Interface("lan", "02:00:00:00:01:fe", 1500, ["2001:db8:1::1/64"])],
                    routes=[Route("default", via=REMOTE)], neighbours=[Neighbour(REMOTE, "02:00:00:00:0a:01", "wan")],
                    sysctls={"net.ipv4.ip_forward": 1})
               + gre_tunnel("gre1", LOCAL, REMOTE, routes=("2001:db8:2::/64",), addresses=("2001:db8:ff::2/64",)))
"""A GRE tunnel + addresses + routes + the remote's MAC: what every DUT kind can hold (the OVS DUT has no ESP)."""
TYPICAL_PLAN = TUNNEL_PLAN + esp_transport(SA(0x1001, "gcm128", b"\x11" * 20, src=LOCAL, dst=REMOTE),
                                           SA(0x1002, "gcm128", b"\x22" * 20, src=REMOTE, dst=LOCAL))
"""A GRE tunnel + 2 SAs + 2 policies + addresses + routes: what a typical case sets up."""


def configure(dut: Uml, plan: Plan = TYPICAL_PLAN) -> None:
    dut.apply(plan)


def apply_per_command(dut, plan: Plan) -> None:
    """The plan the way it was done before plans: one console command per iproute2 command or sysctl."""
    for command in commands(render(plan)):
        dut.check(command)


def timed_applies(dut: Uml, count: int, apply, plan: Plan = TYPICAL_PLAN) -> float:
    """Median milliseconds of apply(plan) on a clean DUT, over count rounds."""
    times = []
    for _ in range(count):
        dut.reset()
        start = time.perf_counter()
        apply(plan)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


@contextlib.contextmanager
def ptrace_mode():
    """Guests booted meanwhile run in UML's ptrace mode, not its seccomp mode (grelab.dut.uml.guest.SECCOMP)."""
    old = os.environ.get("GRELAB_UML_SECCOMP")
    os.environ["GRELAB_UML_SECCOMP"] = "0"
    try:
        yield
    finally:
        if old is None:
            del os.environ["GRELAB_UML_SECCOMP"]
        else:
            os.environ["GRELAB_UML_SECCOMP"] = old


def boot_to_tunnel(fast_boot: bool) -> tuple[float, Uml]:
    """Seconds from nothing to a guest holding TYPICAL_PLAN; fast_boot=False: the naive way, in ptrace mode with
    the kernel's boot benchmarks on."""
    start = time.perf_counter()
    with contextlib.nullcontext() if fast_boot else ptrace_mode():
        dut = Uml(interfaces=["wan", "lan"], name="bench", fast_boot=fast_boot)
    configure(dut)
    return time.perf_counter() - start, dut


def timed_resets(dut: Uml, count: int, reset, plan: Plan = TYPICAL_PLAN) -> float:
    """Median milliseconds of `reset()` after configuring `plan`, over count rounds (starting from a clean DUT)."""
    dut.reset()
    times = []
    for _ in range(count):
        configure(dut, plan)
        start = time.perf_counter()
        reset()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def case_ms(count: int, per_command: bool = False, dut: str = "uml") -> float:
    """Median milliseconds of the two-office echo case (plain GRE) over count cases after a first one that
    boots the DUTs: reset, build and apply, the echo and its tunnel check, golden compare, teardown. With
    per_command, the DUTs take their plans one console command per iproute2 command (the old way). dut: the kind
    (grelab.dut.select), uml or ovs."""
    from grelab.dut.pool import DutPool
    from grelab.golden.recorder import GoldenRecorder
    from grelab.golden.store import GoldenStore
    from grelab.lab.build import build
    from grelab.lab.ownership import current_run
    from grelab.networks.offices import two_offices
    from grelab.scenario.catalog import scenarios_dir
    from grelab.scenario.net import Net
    from grelab.scenario.spec import PLAIN_GRE
    pool = DutPool(dut)
    store = GoldenStore(scenarios_dir().parent / "pcaps")
    scenario = two_offices(variants=(PLAIN_GRE,))
    times = []
    try:
        for n in range(count + 1):
            start = time.perf_counter()
            scope = current_run().scope.child("bench case")
            try:
                def duts(*names, interfaces, ready_later=False):
                    got = pool.get_many(names, interfaces, ready_later)
                    if per_command:
                        for dut in got:
                            dut.apply = lambda plan, dut=dut: apply_per_command(dut, plan)
                    return got
                golden = GoldenRecorder(store, "two_offices", "echo-gre", "grelab bench")
                net = Net.start(scenario, PLAIN_GRE, duts, lambda topology: build(topology, scope=scope), golden)
                net.ping("h1", "h2")
                net.transit.carries_exactly(net.sent_by("h1", "h2"))
                failure, _ = golden.finish(update=False, keep_dir=None)
                if failure:
                    raise AssertionError(failure)
            finally:
                scope.close()
                pool.release(scenario.duts)  # as the plugin does when a case ends
            if n:  # the first case boots the DUTs
                times.append((time.perf_counter() - start) * 1000)
    finally:
        pool.stop()
    return statistics.median(times)


def measures(quick: bool) -> list[Measure]:
    rounds = 1 if quick else 3
    boots, naive_boots = [], []
    for _ in range(rounds):
        seconds, dut = boot_to_tunnel(fast_boot=False)
        naive_boots.append(seconds)
        dut.stop()
    for _ in range(rounds):
        seconds, dut = boot_to_tunnel(fast_boot=True)
        boots.append(seconds)
        if len(boots) < rounds:
            dut.stop()
    try:
        memory = dut.memory_mib()
        resets = 3 if quick else 15
        reset_ms = timed_resets(dut, resets, dut.reset)
        naive_reset_ms = timed_resets(dut, resets, lambda: dut.check(RESET_WITH_EXEC))
        apply_ms = timed_applies(dut, resets, dut.apply)
        naive_apply_ms = timed_applies(dut, 1 if quick else 3, lambda plan: apply_per_command(dut, plan))
        uml_tunnel_reset_ms = timed_resets(dut, resets, dut.reset, TUNNEL_PLAN)
    finally:
        dut.stop()
    return [
        Measure("dut_boot_s", statistics.median(boots), statistics.median(naive_boots), "s",
                "UML guest start to a configured GRE tunnel + ESP SA (grelab's kernel, everything built in); baseline: "
                "the same in ptrace mode with the boot benchmarks on (before grelab's kernel: Debian's 6.1 UML with its "
                "modules 1.5-2 s, 7.2 1.075 s)", "<= 0.25"),
        Measure("dut_reset_ms", reset_ms, naive_reset_ms, "ms",
                "reset after a tunnel + SA; baseline: the same reset in a subshell starting its own `ip -batch`", "<= 50"),
        Measure("dut_memory_mib", memory, None, "MiB",
                "resident memory (PSS) of one guest with mem=128M, after configuring", "<= 200"),
        Measure("dut_apply_ms", apply_ms, naive_apply_ms, "ms",
                "apply a plan of a GRE tunnel + 2 SAs + 2 policies + addresses + routes; baseline: one console "
                "command per iproute2 command or sysctl", "<= 30"),
    ] + ovs_measures(quick, statistics.median(boots), uml_tunnel_reset_ms)


def plugged_ovs():
    """An OVS DUT (grelab.dut.ovs) with a veth plugged as each interface, as a lab would, and its start in seconds."""
    from grelab.dut.ovs.switch import Ovs
    start = time.perf_counter()
    dut = Ovs(interfaces=["wan", "lan"], name="bench-ovs")
    took = time.perf_counter() - start
    for iface in dut.interfaces:
        dut.check(f"ip link add {iface}-b type veth peer name {iface}-x")
        dut.plug(iface, f"{iface}-b")
    return took, dut


def ovs_measures(quick: bool, uml_boot_s: float, uml_reset_ms: float) -> list[Measure]:
    """The OVS DUT's start, reset and apply, and the two-office echo case on it, each beside the UML DUT's in this
    run (its reset after the same GRE plan, its case measured again here)."""
    from grelab.dut.ovs.daemons import missing
    if missing():
        return []  # `grelab doctor` says why; the UML figures stand alone
    start_s, dut = plugged_ovs()
    try:
        resets = 3 if quick else 15
        reset_ms = timed_resets(dut, resets, dut.reset, TUNNEL_PLAN)
        apply_ms = timed_applies(dut, resets, dut.apply, TUNNEL_PLAN)
    finally:
        dut.stop()
    cases = 5 if quick else 21
    ovs_case, uml_case = case_ms(cases, dut="ovs"), case_ms(cases)
    return [
        Measure("ovs_start_s", start_s, uml_boot_s, "s", "OVS DUT start: its namespace, a fresh database, ovsdb-server "
                "and ovs-vswitchd ready; baseline: the UML guest's boot to a configured tunnel, this run"),
        Measure("ovs_reset_ms", reset_ms, uml_reset_ms, "ms", "OVS DUT reset after a GRE tunnel + addresses + routes "
                "(one ovs-vsctl transaction, OVS's neighbour and MAC tables flushed, the namespace's kernel reset); "
                "baseline: the UML DUT's reset after the same plan, this run", "<= 50"),
        Measure("ovs_apply_ms", apply_ms, None, "ms", "OVS DUT apply of that plan: one ovs-vsctl transaction, one "
                "ovs-ofctl add-flows, one ip -batch, in one process spawn"),
        Measure("ovs_case_ms", ovs_case, uml_case, "ms", "median two-office echo case (plain GRE) on the OVS DUT: reset, "
                "build, apply, echo, golden compare, teardown; baseline: the same case on the UML DUT, this run"),
    ]
