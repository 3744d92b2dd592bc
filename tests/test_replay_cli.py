"""`grelab replay`, run as a user would: a golden's lan1 frames into the two offices, what comes out elsewhere."""
import re
import shutil

import pytest

from cli_user import ROOT, grelab, one_line_error
from test_shell import usable

pytestmark = pytest.mark.skipif(not usable(), reason="no DUT that can be two routers at once")
GOLDEN = ROOT / "pcaps/two_offices/echo-gre.pcapng"


def test_recorded_pace_the_echo_crosses_the_tunnel(tmp_path):
    out = tmp_path / "out.pcapng"
    done = grelab("replay", GOLDEN, "--link", "lan1", "--to", "h1:eth0", "-o", out)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("sent 2 frames from h1:eth0 in ")
    assert "\ntransit: 2 frames\nlan2: 2 frames\n" in done.stdout  # the request in, h2's real reply back
    shown = grelab("pcap", "show", out).stdout
    assert "transit  Ethernet / IPv4 198.51.100.1 > 203.0.113.1 / GRE proto=0x86dd -> IPv6 / ICMPv6 Echo Request" in shown


@pytest.mark.skipif(shutil.which("tcpreplay") is None, reason="tcpreplay is not installed (./setup.sh installs it)")
def test_top_speed_reports_its_rate_beside_tcpreplay():
    done = grelab("replay", GOLDEN, "--link", "lan1", "--to", "h1:eth0", "--pace", "top", "--loop", "5000")
    assert done.returncode == 0, done.stderr
    ours = re.search(r"sent 10000 frames from h1:eth0 in [\d.]+ s \(top pace\): ([\d,]+) frames/s", done.stdout)
    theirs = re.search(r"tcpreplay --topspeed, the same frames from the same link end: ([\d,]+) frames/s", done.stdout)
    assert ours and theirs, done.stdout
    assert "\x1b[" not in done.stderr  # no progress bar when not a terminal


def test_a_link_end_the_lab_lacks_is_one_line_exit_2():
    assert one_line_error(grelab("replay", GOLDEN, "--to", "h1"), "replay").endswith("allowed: NODE:IFACE, e.g. h1:eth0")
    assert "no link end h9:eth0" in one_line_error(grelab("replay", GOLDEN, "--to", "h9:eth0"), "replay")
