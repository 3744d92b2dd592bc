"""The figure users feel: one scenario case's wall time, DUTs already up, measured the way pytest runs it. It stands on
the DUT's bench (grelab.bench.dut: configuring one command at a time, ptrace mode), never the other way round."""
from __future__ import annotations

from grelab.bench import Measure
from grelab.bench.dut import case_ms, ptrace_mode


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
