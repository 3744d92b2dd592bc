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
from grelab.dut.plan import Interface, Plan, Route
from grelab.dut.tunnel import esp_transport, gre_tunnel
from grelab.dut.uml.guest import Uml

RESET_WITH_EXEC = "unset GRELAB_IP_COPROCESS; grelab_reset wan lan"  # in a subshell, as any command


LOCAL, REMOTE = "192.0.2.254", "192.0.2.1"
TYPICAL_PLAN = (Plan(interfaces=[Interface("wan", "02:00:00:00:0a:fe", 1500, ["192.0.2.254/24"]),
                                 Interface("lan", "02:00:00:00:01:fe", 1500, ["2001:db8:1::1/64"])],
                     routes=[Route("default", via=REMOTE)], sysctls={"net.ipv4.ip_forward": 1})
                + gre_tunnel("gre1", LOCAL, REMOTE, routes=("2001:db8:2::/64",), addresses=("2001:db8:ff::2/64",))
                + esp_transport(SA(0x1001, "gcm128", b"\x11" * 20, src=LOCAL, dst=REMOTE),
                                SA(0x1002, "gcm128", b"\x22" * 20, src=REMOTE, dst=LOCAL)))
"""A GRE tunnel + 2 SAs + 2 policies + addresses + routes: what a typical case sets up."""


def configure(dut: Uml) -> None:
    dut.apply(TYPICAL_PLAN)


def apply_per_command(dut, plan: Plan) -> None:
    """The plan the way it was done before plans: one console command per iproute2 command or sysctl."""
    for command in commands(render(plan)):
        dut.check(command)


def timed_applies(dut: Uml, count: int, apply) -> float:
    """Median milliseconds of apply(TYPICAL_PLAN) on a clean DUT, over count rounds."""
    times = []
    for _ in range(count):
        dut.reset()
        start = time.perf_counter()
        apply(TYPICAL_PLAN)
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


def timed_resets(dut: Uml, count: int, reset) -> float:
    """Median milliseconds of `reset()` after configuring, over count rounds (starting from a clean DUT)."""
    dut.reset()
    times = []
    for _ in range(count):
        configure(dut)
        start = time.perf_counter()
        reset()
        times.append((time.perf_counter() - start) * 1000)
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
    ]
