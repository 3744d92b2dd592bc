"""The lab in real namespaces: A-R-B reachability, the kernel's MTU behaviour, build time, a DUT node."""
import socket
import subprocess
import time
from pathlib import Path

import pytest
from scapy.layers.inet import ICMP, IP, UDP
from scapy.layers.inet6 import ICMPv6EchoReply, ICMPv6EchoRequest, ICMPv6PacketTooBig, IPv6
from scapy.layers.l2 import Ether

from grelab.errors import GrelabError
from grelab.dut.iproute2 import render
from grelab.lab import netns
from grelab.lab.build import build, wait_unplugged
from grelab.lab.ownership import NAMESPACE_RE, current_run
from grelab.lab.send import NotOurInterface, Sender
from grelab.lab.topology import End, Link, Node, Topology, a_r_b

A_MAC, R_MAC = "02:00:00:00:01:01", "02:00:00:00:01:fe"


@pytest.fixture
def lab():
    with build(a_r_b(mtu_rb=1400)) as lab:
        yield lab


def to_r(packet):
    return Ether(src=A_MAC, dst=R_MAC) / packet


def exchange(lab, packet, node, ifname, expression, count=1):
    """Send from A's eth0, wait for `count` frames matching expression arriving at node:ifname."""
    with lab.capture(node, ifname, expression, direction="in") as cap, lab.sender("a", "eth0") as tx:
        tx.send(to_r(packet))
        result = cap.wait(count=count, timeout=2)
    assert result.matched, f"expected {count} frame(s) matching {expression!r} at {node}:{ifname}, got {len(result.frames)}"
    return result.packets()


def test_ipv4_reachability_through_router(lab):
    reply, = exchange(lab, IP(src="192.0.2.1", dst="198.51.100.1") / ICMP(id=7, seq=1), "a", "eth0",
                      "icmp[icmptype] = icmp-echoreply")
    assert reply[IP].src == "198.51.100.1" and reply[ICMP].id == 7
    assert reply[IP].ttl == 63  # one router on the way back


def test_ipv6_reachability_at_once(lab):
    """No duplicate address detection wait: the first packet after build goes through."""
    reply, = exchange(lab, IPv6(src="2001:db8:1::1", dst="2001:db8:2::1") / ICMPv6EchoRequest(id=9),
                      "a", "eth0", "icmp6 and ip6[40] = 129")
    assert reply[IPv6].src == "2001:db8:2::1" and reply[ICMPv6EchoReply].id == 9 and reply[IPv6].hlim == 63


def test_kernel_sockets_in_a_namespace(lab):
    """run_in: a thread inside B's namespace answers a UDP datagram a thread in A's sent."""
    server = lab.run_in("b", socket.socket, socket.AF_INET6, socket.SOCK_DGRAM)
    client = lab.run_in("a", socket.socket, socket.AF_INET6, socket.SOCK_DGRAM)
    with server, client:
        server.bind(("2001:db8:2::1", 40000))
        server.settimeout(2)
        client.sendto(b"hello", ("2001:db8:2::1", 40000))
        data, peer = server.recvfrom(100)
    assert data == b"hello" and peer[0] == "2001:db8:1::1"


def test_df_across_smaller_mtu_draws_fragmentation_needed(lab):
    big = IP(src="192.0.2.1", dst="198.51.100.1", flags="DF") / UDP(sport=40000, dport=40001) / (b"x" * 1472)
    error, = exchange(lab, big, "a", "eth0", "icmp[icmptype] = icmp-unreach")
    assert (error[ICMP].type, error[ICMP].code, error[ICMP].nexthopmtu) == (3, 4, 1400)


def test_without_df_the_router_fragments(lab):
    big = IP(src="192.0.2.1", dst="198.51.100.1", id=77) / UDP(sport=40000, dport=40001) / (b"x" * 1472)
    fragments = exchange(lab, big, "b", "eth0", "ip[6:2] & 0x3fff != 0", count=2)
    assert [(f[IP].len, f[IP].frag, f[IP].id) for f in fragments] == [(1396, 0, 77), (124, 172, 77)]


def test_ipv6_across_smaller_mtu_draws_packet_too_big(lab):
    big = IPv6(src="2001:db8:1::1", dst="2001:db8:2::1") / UDP(sport=40000, dport=40001) / (b"x" * 1452)
    error, = exchange(lab, big, "a", "eth0", "icmp6 and ip6[40] = 2")
    assert error[ICMPv6PacketTooBig].mtu == 1400


def test_nftables_rules_and_sysctls_of_a_node():
    router = Node("r", forwarding=True, sysctls={"net/ipv4/conf/eth1/rp_filter": "0"},
                  nft="table inet t { chain f { type filter hook forward priority 0; udp dport 40001 drop; }; }")
    with build(a_r_b(r=router)) as lab:
        rp_filter = lab.run_in("r", lambda: open("/proc/sys/net/ipv4/conf/eth1/rp_filter").read())
        assert rp_filter == "0\n"
        with lab.capture("b", "eth0", "udp", direction="in") as cap, lab.sender("a", "eth0") as tx:
            tx.send([to_r(IP(src="192.0.2.1", dst="198.51.100.1") / UDP(sport=40000, dport=port))
                     for port in (40001, 40002)])
            # 40002 arriving tells the router has forwarded what it forwards (40001, sent first, would be ahead)
            cap.wait(until=lambda frames: any(Ether(data)[UDP].dport == 40002 for _, data in frames), timeout=2)
            result = cap.settle()
    assert [p[UDP].dport for p in result.packets()] == [40002]


def test_names_carry_the_run_id(lab):
    for node in "arb":
        match = NAMESPACE_RE.match(lab.namespace(node))
        assert match and match.group(1) == current_run().id


def test_teardown_leaves_nothing():
    with build(a_r_b()) as lab:
        names = list(lab.namespaces.values())
    assert not any((netns.NETNS_DIR / name).exists() for name in names)


def test_refuses_interfaces_outside_its_namespaces(lab):
    class Elsewhere:
        node, namespace, ifname = "host", "", "lo"
    with pytest.raises(NotOurInterface, match="only sends and captures inside namespaces this run created"):
        Sender(Elsewhere())
    Elsewhere.namespace = "grelab-000000-a"  # another run's name
    with pytest.raises(NotOurInterface):
        Sender(Elsewhere())


def test_a_bad_topology_is_refused_before_anything_is_made():
    with pytest.raises(GrelabError, match="names no node"):
        build(Topology([Node("a")], [Link(End("a", "eth0"), End("z", "eth0"))]))


class FakeDut:
    """The DUT contract on a plain namespace: plug renames the veth end to the DUT's interface name."""

    def __init__(self):
        self.namespace = current_run().namespace_name("fakedut")
        netns.create_namespace(self.namespace)
        self.close = current_run().defer(lambda: netns.delete_namespace(self.namespace), "fake DUT")
        self.plugged = []

    def plug(self, iface, veth_end):
        assert len(veth_end) <= 15 and veth_end.startswith("grelab-")
        self.ip("link", "set", "dev", veth_end, "name", iface)
        self.plugged.append(iface)

    def ip(self, *args):
        return subprocess.run(["ip", "-n", self.namespace, *args], check=True, capture_output=True, text=True).stdout

    def apply(self, plan):
        """A plan the way a user's DUT could take it: rendered to iproute2 lines and sysctl writes."""
        rendered = render(plan)
        for path, value in rendered.sysctls:
            netns.run_in(self.namespace, lambda: Path(path).write_text(value))
        subprocess.run(["ip", "-n", self.namespace, "-batch", "-"], input="".join(f"{line.text}\n" for line in rendered.batch),
                       check=True, capture_output=True, text=True)


def test_a_dut_stands_in_for_the_router():
    dut = FakeDut()
    try:
        for _ in range(2):  # one DUT serves topology after topology
            with build(a_r_b(r=Node("r", forwarding=True, dut=dut))) as lab:
                assert lab.namespace("r") == dut.namespace
                reply, = exchange(lab, IP(src="192.0.2.1", dst="198.51.100.1") / ICMP(id=3),
                                  "a", "eth0", "icmp[icmptype] = icmp-echoreply")
                assert reply[IP].ttl == 63
            wait_unplugged(dut.namespace)  # teardown deletes the links in the background; the next build waits so
            assert "eth0" not in dut.ip("-o", "link")
        assert dut.plugged == ["eth0", "eth1"] * 2
    finally:
        dut.close()
