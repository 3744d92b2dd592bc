"""scenarios/userspace_esp.py's parts that need no DUT: which of its cases the divergence table makes strict xfails
(exactly the three that ask for what libipsec lacks, in every pairing, and never one of the others), the matrix
columns its variants name, and the charon settings that make r1's ESP userspace."""
import os
import re
import subprocess
import sys

import pytest

from cli_user import ROOT
from grelab.dut.divergences import DIVERGENCES, divergences_for, implementations_of
from grelab.networks import libipsec
from grelab.networks.ike_daemons import libipsec_conf, strongswan_conf

DIVERGING = {"test_esp_is_raw_with_no_nat_between_the_routers", "test_transport_mode_as_the_kernel_pairing_asks",
             "test_replay_window_is_charons"}


@pytest.fixture(scope="module")
def cases() -> list[str]:
    """The scenario's case ids, as pytest collects them (a process of its own)."""
    out = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                          "scenarios/userspace_esp.py"], cwd=ROOT, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    found = [line for line in out.stdout.splitlines() if re.match(r"scenarios/userspace_esp\.py::test_", line)]
    assert len(found) == 7 * len(libipsec.VARIANTS), out.stdout[-2000:]
    return found


def test_the_divergences_cover_exactly_the_cases_asking_for_what_libipsec_lacks(cases):
    for case in cases:
        variant = next(v for v in libipsec.VARIANTS if case.endswith(f"[{v.id}]"))
        rows = divergences_for(case, implementations_of("uml", variant.implementation))
        test = case.split("::")[1].split("[")[0]
        assert len(rows) == (test in DIVERGING), (case, rows)
        assert all(row.implementation == libipsec.USERSPACE and "5.9.8" in row.source for row in rows)
    assert {row.cases.split("::")[1].split("[")[0] for row in DIVERGENCES
            if row.implementation == libipsec.USERSPACE} == DIVERGING


def test_each_pairing_is_a_column_initiator_first():
    columns = {v.id: v.implementation for v in libipsec.VARIANTS}
    assert columns == {"libipsec-initiator-psk-gcm128": "strongswan-libipsec→strongswan",
                       "libipsec-initiator-certs-gcm128": "strongswan-libipsec→strongswan",
                       "libipsec-responder-psk-gcm128": "strongswan→strongswan-libipsec"}
    assert all(v.mode == "tunnel" for v in libipsec.VARIANTS)  # libipsec's only mode


def test_only_r1s_charon_does_esp_in_userspace():
    plans = libipsec.routers(libipsec.VARIANTS[0], lambda local, remote: ())
    userspace, kernel = (dict(plans[router].daemons[0].config_files)["strongswan.conf"] for router in ("r1", "r2"))
    assert userspace == libipsec_conf() and kernel == strongswan_conf()  # r2: the strongswan row as it is
    load = re.search(r"load = (.*)", userspace).group(1).split()
    # The first kernel-ipsec registered is the one charon uses (kernel_interface.c, add_ipsec_interface).
    assert load.index("kernel-libipsec") < load.index("kernel-netlink") and "gcm" in load
    assert "kernel-libipsec" not in kernel and "fwmark" not in kernel
    assert re.search(r"kernel-netlink \{\s*fwmark = !0x42", userspace)
    assert re.search(r"socket-default \{\s*fwmark = 0x42", userspace)
    assert re.search(r"allow_peer_ts = yes", userspace)
    assert "keep_alive = 0" in userspace and f"replay_window = {libipsec.REPLAY_WINDOW}" in userspace
    for router in ("r1", "r2"):  # the child SA in the variant's mode, tunnel: libipsec's only one
        assert "mode = tunnel" in dict(plans[router].daemons[0].config_files)["swanctl/swanctl.conf"]
    assert dict(plans["r1"].sysctls)["net.core.rmem_default"] == str(libipsec.SOCKET_BUFFER)
    assert "net.core.rmem_default" not in dict(plans["r2"].sysctls)
