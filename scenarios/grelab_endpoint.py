"""grelab as the far end of the tunnel.

Here there is no second router: grelab itself plays the remote office. From its namespace it crafts what a
GRE peer sends -- IPv4 / GRE / IPv6 / ICMPv6 echo request for h1 behind r1, the device under test -- and
r1 must take it out of the tunnel, deliver it, and put h1's reply back into GRE towards grelab.

The plot: the reply that comes back is checked field by field against the packet a correct GRE endpoint
sends (only the IPv4 identification and checksum may be anything); with ESP transport mode required by r1,
grelab encrypts what it sends, and r1's encrypted reply must decrypt to that same packet.
"""
from scapy.layers.inet import IP
from scapy.layers.inet6 import ICMPv6EchoReply, ICMPv6EchoRequest, IPv6
from scapy.layers.l2 import GRE, Ether

from grelab.scenario.endpoint import FAR_LAN_HOST, GRELAB, GRELAB_MAC, H1, R1_WAN, R1_WAN_MAC, grelab_endpoint

net = grelab_endpoint().fixture()


def test_echo_through_r1(net):
    """grelab's crafted GRE echo reaches h1 through r1, and r1's GRE reply is the right packet, field by field."""
    net.send("grelab", IP(src=GRELAB, dst=R1_WAN, ttl=64) / GRE()
             / IPv6(src=FAR_LAN_HOST, dst=H1, hlim=64) / ICMPv6EchoRequest(id=0x4243, seq=7, data=b"from grelab"))
    # What a correct GRE endpoint sends back: every field fixed but the ones the kernel may choose.
    reply = (Ether(src=R1_WAN_MAC, dst=GRELAB_MAC) / IP(src=R1_WAN, dst=GRELAB, ttl=64, flags="DF") / GRE()
             / IPv6(src=H1, dst=FAR_LAN_HOST, hlim=63) / ICMPv6EchoReply(id=0x4243, seq=7, data=b"from grelab"))
    net.transit.expect(reply, ignore=["IP.id", "IP.chksum"], timeout=3)
