"""Two offices, one GRE tunnel, in the clear or inside IPsec.

h1 and h2 sit on IPv6 LANs in two offices. Between them lies a provider (isp) that forwards IPv4 only.
Their routers r1 and r2, the devices under test, are the kernel's GRE endpoints: r1 puts what h1 sends to
h2's LAN into GRE and sends it over IPv4 to r2, which takes it out and delivers it, and back. GRE has no
security of its own, so in the second telling r1 and r2 require ESP (transport mode) for their GRE.

The plot: h1's echo and a TCP exchange reach h2 and come back, and the transit holds nothing but IPv4
GRE of protocol type 0x86DD (IPv6) -- or only ESP that decrypts to that GRE -- carrying exactly the IPv6
packets the hosts sent.
"""
from grelab.networks import offices

net = offices.two_offices().fixture()


def test_echo(net):
    """h1's ping reaches h2 and comes back; the transit carries only the request and the reply, in the tunnel."""
    reply = net.ping("h1", "h2")
    assert (reply.source, reply.payload) == (offices.H2, b"grelab echo")
    assert len(net.transit.frames()) == 2  # the request and the reply, nothing else
    net.transit.carries_exactly(net.sent_by("h1", "h2"))


def test_tcp(net):
    """A TCP connection from h1 to h2 echoes its data back; the transit carries exactly its segments, in the tunnel."""
    exchange = net.tcp("h1", "h2")
    assert exchange.echoed == exchange.sent
    net.transit.carries_exactly(net.sent_by("h1", "h2"))
