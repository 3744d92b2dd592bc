"""The `host` DUT runs the same cases as the UML one, when the host kernel can do GRE and ESP.

Here (no ip_gre, no esp4 in the host kernel) every case skips with the probe's reason."""
import pytest

from grelab.dut.host import Host, probe
from test_dut_uml import (  # noqa: F401 - the cases, run again against this module's `guest`
    lab, test_command_status_and_output, test_esp_transport_decrypts_and_answers_encrypted,
    test_gre_ipv6_echo_is_answered_inside_gre, test_plain_gre_is_refused_under_esp_policy,
    test_reset_leaves_no_state)


@pytest.fixture(scope="module")
def guest():
    found = probe()
    if not found.usable:
        pytest.skip("host kernel cannot be the DUT: " + "; ".join(f"{c}: {why}" for c, why in found.missing.items()))
    with Host(interfaces=["wan", "lan"], name="h1") as dut:
        yield dut
