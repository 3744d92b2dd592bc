"""Two offices across an IPv6-only provider: ip6gre, in the clear, in ESP transport mode, in ESP tunnel mode.

The offices of two_offices, but the provider between them (isp) forwards IPv6 only: r1 and r2, the devices
under test, are ip6gre endpoints (2001:db8:a::1 and 2001:db8:b::1), and GRE over IPv6 carries their LANs'
IPv6. Then r1 and r2 require ESP for that GRE between their IPv6 addresses: in transport mode (the ESP
header follows the outer IPv6 header) and in tunnel mode (a new IPv6 header around the whole ip6gre packet).

The plot: h1's echo and a TCP exchange reach h2 and come back, and the transit holds only IPv6 GRE of protocol
type 0x86DD -- or only ESP that decrypts to it -- carrying exactly the IPv6 packets the hosts sent.
"""
from socket import AF_INET6, inet_pton

from grelab.scenario import PLAIN_GRE, in_esp

from grelab.networks import offices

net = offices.two_offices_v6("ipsec_over_ipv6", variants=[PLAIN_GRE, in_esp("gcm256"),
                                                          in_esp("cbc128-sha256", "tunnel")]).fixture()


def test_echo(net):
    """h1's echo crosses an IPv6-only transit inside ip6gre (in the clear, or inside ESP between IPv6 endpoints)."""
    reply = net.ping("h1", "h2")
    assert (reply.source, reply.payload) == (offices.H2, b"grelab echo")
    frames = net.transit.frames()
    assert [(f[12:14], f[22:38]) for f in frames] == [  # the request and the reply, nothing else, over IPv6
        (b"\x86\xdd", inet_pton(AF_INET6, offices.R1_WAN6)), (b"\x86\xdd", inet_pton(AF_INET6, offices.R2_WAN6))]
    net.transit.carries_exactly(net.sent_by("h1", "h2"))


def test_tcp(net):
    """A TCP exchange crosses an IPv6-only transit inside ip6gre, segment for segment."""
    exchange = net.tcp("h1", "h2")
    assert exchange.echoed == exchange.sent
    net.transit.carries_exactly(net.sent_by("h1", "h2"))
