"""The golden workflow as a user lives it, in a scratch project: create, pass, a changed packet fails with a
readable diff, --update-golden -n 2 rewrites exactly the changed file, --keep-pcaps keeps captures."""
import os

import pytest
from scapy.layers.inet6 import IPv6
from scapy.utils import rdpcap, wrpcapng

pytest_plugins = ["pytester"]

SCENARIO = '''
"""Two crafted GRE packets cross A-R-B; the golden holds what R saw."""
import pytest
from scapy.layers.inet6 import ICMPv6EchoRequest, IPv6
from scapy.layers.l2 import Ether
from grelab.craft import gre
from grelab.expect import expect
from grelab.lab import a_r_b


@pytest.mark.parametrize("seq", [1, 2])
def test_crossing(lab, golden, seq):
    net = lab(a_r_b())
    seen = golden.capture("ar", net, "r", "eth0", "ip proto 47")
    golden.explain("crafted by grelab at A", "ar")
    frame = Ether(src="02:00:00:00:01:01", dst="02:00:00:00:01:fe") / gre(
        IPv6(src="2001:db8:1::1", dst="2001:db8:2::1") / ICMPv6EchoRequest(seq=seq), src="192.0.2.1", dst="198.51.100.1")
    with net.sender("a", "eth0") as tx:
        tx.send(frame)
    expect(seen, frame)
'''


@pytest.fixture
def project(pytester):
    pytester.makeini("[pytest]\n")
    pytester.makepyfile(test_crossing=SCENARIO)
    return pytester


def run(project, *args):
    return project.runpytest_subprocess("-p", "no:cacheprovider", *args)


def golden_path(project, seq):
    return project.path / "pcaps" / "crossing" / f"crossing-{seq}.pcapng"


def test_golden_lifecycle(project, tmp_path):
    missing = run(project)
    missing.assert_outcomes(failed=2)
    missing.stdout.fnmatch_lines(["*no golden pcap*crossing-1.pcapng*", "*--update-golden*"])

    created = run(project, "--update-golden")
    created.assert_outcomes(passed=2)
    created.stdout.fnmatch_lines(["*created: *crossing-1.pcapng", "*2 written, 0 unchanged*"])
    run(project).assert_outcomes(passed=2)

    # A deliberately changed packet: the inner hop limit of the one frame in crossing-2.
    path = golden_path(project, 2)
    packets = rdpcap(str(path))
    packets[0][IPv6].hlim = 7
    wrpcapng(str(path), packets)
    untouched = golden_path(project, 1).stat().st_mtime_ns

    changed = run(project)
    changed.assert_outcomes(passed=1, failed=1)
    changed.stdout.fnmatch_lines(["*capture differs from golden*crossing-2.pcapng*",
                                  "*first difference at frame 1 on ar*",
                                  "*IPv6.hlim: expected 7, got 64*",
                                  "*pytest 'test_crossing.py::test_crossing[[]2[]]' --update-golden*"])

    updated = run(project, "--update-golden", "-n", "2")
    updated.assert_outcomes(passed=2)
    updated.stdout.fnmatch_lines(["*changed: *crossing-2.pcapng", "*1 written, 1 unchanged*"])
    assert golden_path(project, 1).stat().st_mtime_ns == untouched
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")], "a temporary file was left"
    run(project).assert_outcomes(passed=2)

    kept = run(project, "--keep-pcaps", str(tmp_path / "kept"))
    kept.assert_outcomes(passed=2)
    assert sorted(os.listdir(tmp_path / "kept" / "crossing")) == ["crossing-1.pcapng", "crossing-2.pcapng"]
