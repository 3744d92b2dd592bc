"""A DUT kind of the matrix tests' own: the uml guest made a different implementation, for `grelab matrix
--dut tests.matrix_duts:ReducedUml`. Loaded as a pytest plugin too (PYTEST_PLUGINS=tests.matrix_duts in the
matrix's runs), it adds two divergence rows to grelab.dut.divergences for the run (the shipped table is not
touched): ROW, that implementation's behaviour, and STALE, a row for uml that no longer holds.

What it does differently, each a cell of the matrix test:
- it declares no ESP: cases with ESP are not applicable, lacking esp;
- it has no equivalent for GRE input sequence checking (iseq): NotApplicable, lacking gre_iseq;
- it keys what it sends with its input key (okey becomes ikey): gre_options' ikey-okey case fails, and ROW says
  that is its behaviour, so the case is an expected divergence;
- it never numbers what it sends (oseq is dropped): gre_options' output-seq case fails, no row excusing it, on
  GRE's seqnum_present.
"""
import dataclasses

from grelab.dut.base import NotApplicable
from grelab.dut.divergences import Divergence
from grelab.dut.uml.guest import Uml

KIND = "tests.matrix_duts:ReducedUml"
ROW = Divergence(KIND, "gre_options.py::test_option[*ikey-okey]", "keys what it sends with its input key",
                 "tests/matrix_duts.py: ReducedUml.apply")
# A row that no longer holds: uml does what right-key expects, so its strict expected failure passes and fails.
STALE = Divergence("uml", "gre_options.py::test_option[gre-right-key]", "answers a right key with no key",
                   "tests/matrix_duts.py: STALE")


class ReducedUml(Uml):
    capabilities = Uml.capabilities - {"esp"}

    def apply(self, plan):
        tunnels = []
        for tunnel in plan.tunnels:
            if tunnel.iseq:
                raise NotApplicable(self.name, "gre_iseq", f"Tunnel {tunnel.name} iseq=True")
            changed = {"oseq": False} | ({"okey": tunnel.ikey} if tunnel.okey is not None else {})
            tunnels.append(dataclasses.replace(tunnel, **changed))
        super().apply(dataclasses.replace(plan, tunnels=tuple(tunnels)))


def pytest_configure(config):
    from grelab.dut import divergences
    divergences.DIVERGENCES += (ROW, STALE)
