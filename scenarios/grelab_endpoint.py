"""grelab as the far end of the tunnel, with every passenger GRE carries.

Here there is no second router: grelab itself plays the remote office. From its namespace it crafts what a
GRE peer sends to r1, the device under test, and r1 must take it out of the tunnel and answer through it:
an IPv6 echo (GRE 0x86DD) and an IPv4 echo (0x0800) for h1 behind r1, which r1 delivers and whose replies it
puts back into GRE towards grelab; and Ethernet (gretap, 0x6558) carrying a broadcast ARP request for the
address of r1's gretap interface, which r1 itself answers with a unicast ARP reply inside GRE.

The plot: each reply is checked field by field, outer and inner, against the packet a correct GRE endpoint
sends (only IPv4 identifications and checksums may be anything); with ESP transport mode required by r1,
grelab encrypts what it sends, and r1's encrypted replies must decrypt to those same packets.
"""
from functools import partial

import pytest
from scapy.layers.inet import ICMP, IP
from scapy.layers.inet6 import ICMPv6EchoReply, ICMPv6EchoRequest, IPv6
from scapy.layers.l2 import ARP, Ether

from grelab.networks import endpoint as e

net = e.grelab_endpoint(tunnels=partial(e.connect, tap=True)).fixture()
BROADCAST = "ff:ff:ff:ff:ff:ff"
PASSENGERS = {  # what grelab sends inside GRE, and what r1 must send back inside GRE
    "ipv6-echo": (IPv6(src=e.FAR_LAN_HOST, dst=e.H1, hlim=64) / ICMPv6EchoRequest(id=0x4243, seq=7, data=b"from grelab"),
                  IPv6(src=e.H1, dst=e.FAR_LAN_HOST, hlim=63) / ICMPv6EchoReply(id=0x4243, seq=7, data=b"from grelab")),
    "ipv4-echo": (IP(src=e.FAR_LAN_HOST_V4, dst=e.H1_V4, ttl=64) / ICMP(id=0x4243, seq=7) / b"from grelab",
                  IP(src=e.H1_V4, dst=e.FAR_LAN_HOST_V4, ttl=63) / ICMP(type=0, id=0x4243, seq=7) / b"from grelab"),
    "ethernet-arp": (Ether(src=e.GRELAB_TAP_MAC, dst=BROADCAST) / ARP(hwsrc=e.GRELAB_TAP_MAC, psrc=e.GRELAB_TAP,
                                                                      hwdst="00:00:00:00:00:00", pdst=e.R1_TAP),
                     Ether(src=e.R1_TAP_MAC, dst=e.GRELAB_TAP_MAC) / ARP(op=2, hwsrc=e.R1_TAP_MAC, psrc=e.R1_TAP,
                                                                        hwdst=e.GRELAB_TAP_MAC, pdst=e.GRELAB_TAP)),
}


@pytest.mark.parametrize("passenger", PASSENGERS)
def test_reply_through_r1(net, passenger):
    """grelab's crafted GRE reaches r1, and what r1 sends back in GRE is the right packet, field by field."""
    sent, answer = PASSENGERS[passenger]
    net.send("grelab", e.to_r1(sent))
    net.transit.expect(e.from_r1(answer), ignore=e.IGNORE, timeout=3)
