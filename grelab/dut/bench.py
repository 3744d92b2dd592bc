"""`grelab bench` figures for the DUT: boot to a configured tunnel, reset between tests, memory per guest.

Baselines, measured in the same run: a guest booted with the kernel's built-in benchmarks left on (raid6
alone costs ~0.85 s), and the same reset run as any other command: in a subshell, starting its own `ip -batch`
processes instead of feeding the ones that live in the guest.
"""
from __future__ import annotations

import statistics
import time

from grelab.bench import Measure
from grelab.craft.esp import SA
from grelab.dut.tunnel import xfrm_state
from grelab.dut.uml.guest import Uml

RESET_WITH_EXEC = "unset GRELAB_IP_COPROCESS; grelab_reset wan lan"  # in a subshell, as any command


def configure(dut: Uml) -> None:
    """A GRE tunnel with an IPv6 address inside and an ESP SA: what a typical case sets up."""
    dut.ip("addr", "add", "192.0.2.254/24", "dev", "wan")
    dut.ip("link", "add", "gre1", "type", "gre", "local", "192.0.2.254", "remote", "192.0.2.1")
    dut.ip("link", "set", "gre1", "up")
    dut.ip("addr", "add", "2001:db8:ff::2/64", "dev", "gre1")
    xfrm_state(dut, SA(0x1001, "gcm128", b"\x11" * 20, src="192.0.2.1", dst="192.0.2.254"))


def boot_to_tunnel(fast_boot: bool) -> tuple[float, Uml]:
    start = time.perf_counter()
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
    finally:
        dut.stop()
    return [
        Measure("dut_boot_s", statistics.median(boots), statistics.median(naive_boots), "s",
                "UML guest start to a configured GRE tunnel + ESP SA; baseline: same with the kernel's boot "
                "benchmarks on (field notes: ~2.5 s)", "<= 2"),
        Measure("dut_reset_ms", reset_ms, naive_reset_ms, "ms",
                "reset after a tunnel + SA; baseline: the same reset in a subshell starting its own `ip -batch`", "<= 50"),
        Measure("dut_memory_mib", memory, None, "MiB",
                "resident memory (PSS) of one guest with mem=128M, after configuring", "<= 200"),
    ]
