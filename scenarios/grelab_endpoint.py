"""grelab as the far end of the tunnel.

Here there is no second router: grelab itself plays the remote office. From its namespace it crafts what a
GRE peer sends -- IPv4 / GRE / IPv6 / ICMPv6 echo request for h1 behind r1, the device under test -- and
r1 must take it out of the tunnel, deliver it, and put h1's reply back into GRE towards grelab.

The plot: the reply that comes back is checked field by field against the packet a correct GRE endpoint
sends (only the IPv4 identification and checksum may be anything); with ESP transport mode required by r1,
grelab encrypts what it sends, and r1's encrypted reply must decrypt to that same packet.
"""
from typing import NamedTuple

import pytest
from scapy.layers.inet import IP
from scapy.layers.inet6 import ICMPv6EchoReply, ICMPv6EchoRequest, IPv6
from scapy.layers.l2 import GRE, Ether
from scapy.utils import mac2str

from grelab.craft.esp import SA, encrypt
from grelab.dut.tunnel import esp_transport, gre_tunnel
from grelab.expect import expect
from grelab.lab.topology import NFT_DROP_TUNNELS, End, Link, Node, Route, Topology

GRELAB, R1_WAN, H1, FAR_LAN_HOST = "198.51.100.2", "198.51.100.1", "2001:db8:1::10", "2001:db8:2::10"
GRELAB_MAC, R1_WAN_MAC = "02:00:00:00:0a:02", "02:00:00:00:0a:01"
_GRELAB_MAC_RAW = mac2str(GRELAB_MAC)
TO_R1 = SA(0x00003001, "cbc128-sha256", bytes(range(33, 49)), bytes(range(49, 81)), src=GRELAB, dst=R1_WAN)
FROM_R1 = SA(0x00004001, "cbc128-sha256", bytes(range(81, 97)), bytes(range(97, 129)), src=R1_WAN, dst=GRELAB)


class Endpoint(NamedTuple):
    lab: object  # the built grelab.lab.build.Lab
    sas: tuple  # grelab's SA to r1 and r1's SA back, or none
    transit: object  # the capture of tunnel packets at grelab's end


def topology(r1) -> Topology:
    """grelab --transit-- r1 --lan1-- h1. grelab's namespace drops GRE and ESP addressed to it, so its kernel
    does not answer r1's tunnel packets with protocol-unreachable: grelab reads them from its capture."""
    return Topology(
        nodes=[Node("grelab", nft=NFT_DROP_TUNNELS),
               Node("r1", forwarding=True, dut=r1),
               Node("h1", routes=[Route("default6", via="2001:db8:1::1")],
                    sysctls={"net.ipv6.auto_flowlabels": "0"})],
        links=[Link(End("grelab", "eth0", [f"{GRELAB}/24"], GRELAB_MAC), End("r1", "wan", [f"{R1_WAN}/24"], R1_WAN_MAC)),
               Link(End("r1", "lan", ["2001:db8:1::1/64"], "02:00:00:00:01:01"),
                    End("h1", "eth0", [f"{H1}/64"], "02:00:00:00:01:10"))])


@pytest.fixture(params=[pytest.param(False, id="gre"), pytest.param(True, id="gre-in-esp", marks=pytest.mark.needs_esp)])
def net(request, duts, lab, golden):
    esp = request.param
    r1 = duts("r1")
    built = lab(topology(r1))
    gre_tunnel(r1, "gre1", R1_WAN, GRELAB, routes=("2001:db8:2::/64",))
    sas = (TO_R1, FROM_R1) if esp else ()
    if esp:
        esp_transport(r1, FROM_R1, TO_R1)
        golden.sas(*sas)
    transit = golden.capture("transit", built, "grelab", "eth0", "ip proto 47 or ip proto 50")
    golden.capture("lan1", built, "h1", "eth0")
    golden.explain("crafted by grelab, the far GRE endpoint", "transit", lambda f: f[6:12] == _GRELAB_MAC_RAW)
    golden.explain("r1's answer: the reply h1 sent, back in the tunnel, checked field by field", "transit")
    golden.explain("delivered by r1 out of the tunnel to h1, and h1's reply", "lan1")
    return Endpoint(built, sas, transit)


def test_echo_through_r1(net):
    request = (IP(src=GRELAB, dst=R1_WAN, ttl=64) / GRE()
               / IPv6(src=FAR_LAN_HOST, dst=H1, hlim=64) / ICMPv6EchoRequest(id=0x4243, seq=7, data=b"from grelab"))
    wire = encrypt(TO_R1, request, seq=1) if net.sas else request
    with net.lab.sender("grelab", "eth0") as tx:
        tx.send(Ether(src=GRELAB_MAC, dst=R1_WAN_MAC) / wire)
    # What a correct GRE endpoint sends back: every field fixed but the ones the kernel may choose.
    reply = (Ether(src=R1_WAN_MAC, dst=GRELAB_MAC) / IP(src=R1_WAN, dst=GRELAB, ttl=64, flags="DF") / GRE()
             / IPv6(src=H1, dst=FAR_LAN_HOST, hlim=63) / ICMPv6EchoReply(id=0x4243, seq=7, data=b"from grelab"))
    expect(net.transit, reply, ignore=["IP.id", "IP.chksum"], timeout=3, sas=net.sas)
