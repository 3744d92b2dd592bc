"""Two UML DUTs at once, in the two-office picture: h1 -- r1 == isp == r2 -- h2, IPv6 offices joined by a
GRE tunnel across IPv4-only transit. h1's echo to h2 crosses the transit inside GRE and is answered."""
import pytest
from scapy.layers.inet import IP
from scapy.layers.inet6 import ICMPv6EchoReply, ICMPv6EchoRequest, IPv6
from scapy.layers.l2 import GRE, Ether

from grelab.dut.uml.guest import Uml
from grelab.lab.build import build
from grelab.lab.topology import End, Link, Node, Route, Topology

H1, R1_LAN, R1_WAN, ISP_1 = "2001:db8:1::10", "2001:db8:1::1", "198.51.100.1", "198.51.100.254"
H2, R2_LAN, R2_WAN, ISP_2 = "2001:db8:2::10", "2001:db8:2::1", "203.0.113.1", "203.0.113.254"
H1_MAC, R1_LAN_MAC = "02:00:00:00:01:10", "02:00:00:00:01:01"


@pytest.fixture(scope="module")
def routers():
    with Uml(["wan", "lan"], name="r1") as r1, Uml(["wan", "lan"], name="r2") as r2:
        yield r1, r2


def offices(r1, r2) -> Topology:
    return Topology(
        nodes=[Node("h1", routes=[Route("default6", via=R1_LAN)]),
               Node("r1", routes=[Route("default", via=ISP_1)], forwarding=True, dut=r1),
               Node("isp", forwarding=True),
               Node("r2", routes=[Route("default", via=ISP_2)], forwarding=True, dut=r2),
               Node("h2", routes=[Route("default6", via=R2_LAN)])],
        links=[Link(End("h1", "eth0", [f"{H1}/64"], H1_MAC), End("r1", "lan", [f"{R1_LAN}/64"], R1_LAN_MAC)),
               Link(End("r1", "wan", [f"{R1_WAN}/24"]), End("isp", "eth0", [f"{ISP_1}/24"])),
               Link(End("isp", "eth1", [f"{ISP_2}/24"]), End("r2", "wan", [f"{R2_WAN}/24"])),
               Link(End("r2", "lan", [f"{R2_LAN}/64"]), End("h2", "eth0", [f"{H2}/64"]))])


def tunnel(dut, local: str, remote: str, far_lan: str) -> None:
    dut.ip("link", "add", "gre1", "type", "gre", "local", local, "remote", remote, "ttl", "64")
    dut.ip("link", "set", "gre1", "up")
    dut.ip("-6", "route", "add", far_lan, "dev", "gre1")


def test_two_offices_talk_through_the_tunnel(routers):
    r1, r2 = routers
    for dut in routers:
        dut.reset()
    with build(offices(r1, r2)) as lab:
        tunnel(r1, R1_WAN, R2_WAN, "2001:db8:2::/64")
        tunnel(r2, R2_WAN, R1_WAN, "2001:db8:1::/64")
        echo = Ether(src=H1_MAC, dst=R1_LAN_MAC) / IPv6(src=H1, dst=H2) / ICMPv6EchoRequest(id=7, seq=1)
        with lab.capture("isp", "eth0", "ip proto 47") as transit, \
                lab.capture("h1", "eth0", "icmp6 and ip6[40] = 129", direction="in") as back, \
                lab.sender("h1", "eth0") as tx:
            tx.send(echo)
            answer = back.wait(count=1, timeout=3)
            crossed = transit.wait(count=2, timeout=1)
        assert answer.matched, "h2's echo reply did not come back to h1"
        assert answer.packets()[0][ICMPv6EchoReply].id == 7
        assert crossed.matched
        there, back_again = crossed.packets()
        assert (there[IP].src, there[IP].dst) == (R1_WAN, R2_WAN) and there[GRE][IPv6].dst == H2
        assert (back_again[IP].src, back_again[IP].dst) == (R2_WAN, R1_WAN) and back_again[GRE][IPv6].dst == H1
