"""The figure users feel: one scenario case's wall time, DUTs already up, measured the way pytest runs it. It stands on
the DUT's bench (grelab.bench.dut: configuring one command at a time, ptrace mode), never the other way round."""
from __future__ import annotations

import statistics
import time

from grelab.bench import Measure
from grelab.bench.dut import apply_per_command, ptrace_mode
from grelab.golden.recorder import GoldenRecorder
from grelab.golden.store import GoldenStore
from grelab.lab.build import build
from grelab.lab.ownership import current_run
from grelab.scenario.net import Net
from grelab.networks.offices import two_offices
from grelab.scenario.spec import PLAIN_GRE


def case_ms(count: int, per_command: bool = False) -> float:
    """Median milliseconds of the two-office echo case (plain GRE) over count cases after a first one that
    boots the DUTs: reset, build and apply, the echo and its tunnel check, golden compare, teardown. With
    per_command, the DUTs take their plans one console command per iproute2 command (the old way)."""
    from grelab.dut.pool import DutPool
    from grelab.scenario.catalog import scenarios_dir
    pool = DutPool("uml")
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
    cases = 5 if quick else 21
    scenario_ms, naive_scenario_ms = case_ms(cases), case_ms(1 if quick else 3, per_command=True)
    with ptrace_mode():
        ptrace_ms = case_ms(cases)
    return [
        Measure("scenario_case_ms", scenario_ms, naive_scenario_ms, "ms",
                "median two-office echo case, DUTs up: reset, build, apply, echo, golden compare, teardown; "
                "baseline: the same with the DUTs configured one console command per iproute2 command (before "
                "grelab's kernel: 44 ms)", "<= 30"),
        Measure("uml_seccomp_case_ms", scenario_ms, ptrace_ms, "ms",
                "the same case, the guests in UML's seccomp mode (grelab's default); baseline: in ptrace mode",
                "< baseline"),
    ]
