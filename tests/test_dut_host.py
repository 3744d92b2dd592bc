"""The `host` DUT runs the same cases as the UML one, when the host kernel can do GRE and ESP.

Here (no ip_gre, no esp4 in the host kernel) every case skips with the probe's reason."""
import pytest

from grelab.dut.host import Host, probe
from grelab.dut.host import host_problem
from test_dut_uml import (  # noqa: F401 - the cases, run again against this module's `guest`
    lab, test_command_status_and_output, test_esp_transport_decrypts_and_answers_encrypted,
    test_gre_ipv6_echo_is_answered_inside_gre, test_plain_gre_is_refused_under_esp_policy,
    test_reset_leaves_no_state)


@pytest.fixture(scope="module")
def guest():
    found = probe()
    if not found.usable:
        pytest.skip(f"host kernel cannot be the DUT: {host_problem(found)}")
    with Host(interfaces=["wan", "lan"], name="h1") as dut:
        yield dut


def test_host_plumbing_works_even_without_tunnels(monkeypatch):
    """plug, ip, sysctl, counters and reset of the host backend, on this kernel's plain IPv4: the probe is
    told GRE and ESP work so the namespace can be made; nothing here needs them."""
    from scapy.layers.inet import ICMP, IP
    from scapy.layers.l2 import Ether

    from grelab.dut import host
    from grelab.dut.base import counter_delta
    from grelab.lab.build import build
    from grelab.lab.topology import End, Link, Node, Topology

    monkeypatch.setattr(host, "probe", lambda: host.Probe(frozenset({"gre", "esp"}), {}))
    with host.Host(["wan"], name="hp") as dut:
        topology = Topology([Node("h"), Node("hp", dut=dut)],
                            [Link(End("h", "eth0", ["192.0.2.1/24"], "02:00:00:00:01:01"),
                                  End("hp", "wan", ["192.0.2.254/24"], "02:00:00:00:01:fe"))])
        with build(topology) as lab:
            dut.sysctl("net.ipv4.icmp_echo_ignore_all", 0)
            before = dut.counters()
            with lab.capture("h", "eth0", "icmp[icmptype] = icmp-echoreply", direction="in") as cap, \
                    lab.sender("h", "eth0") as tx:
                tx.send(Ether(src="02:00:00:00:01:01", dst="02:00:00:00:01:fe")
                        / IP(src="192.0.2.1", dst="192.0.2.254") / ICMP(id=5))
                assert cap.wait(count=1, timeout=2).matched
            moved = counter_delta(before, dut.counters())
            assert moved["links"]["wan"]["rx_packets"] >= 1 and moved["snmp"]["IcmpInEchos"] == 1
            dut.sysctl("net.ipv4.ip_forward", 1)
            dut.reset()
            assert dut.ip("-4", "addr", "show", "dev", "wan").strip() == ""
            assert dut.check("cat /proc/sys/net/ipv4/ip_forward").strip() == "0"
        # The lab is gone and its veths with it (the host DUT's interfaces were those): reset still works,
        # as it must between two cases of one pytest worker.
        dut.ip("route", "add", "blackhole", "198.51.100.0/24")
        dut.reset()
        assert dut.ip("-4", "route", "show", "table", "all", "proto", "boot").strip() == ""
