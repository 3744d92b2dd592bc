"""Two offices, their GRE inside ESP tunnel mode.

The offices of two_offices (h1 and h2 on IPv6 LANs, r1 and r2 the kernel GRE endpoints across an IPv4-only
provider), but r1 and r2 protect their GRE with ESP in tunnel mode: each GRE packet, its own IPv4 header and
all, is encrypted and carried in a new IPv4 header between the same two routers (the policy's template names
them), where transport mode keeps the GRE packet's header and encrypts only what follows it.

The plot: h1's echo and a TCP exchange reach h2 and come back, and the transit holds only ESP that decrypts
to a whole IPv4/GRE packet between r1 and r2 carrying exactly the IPv6 packets the hosts sent; each told with
AES-GCM and with AES-CBC + HMAC-SHA-512.
"""
from scapy.layers.inet import IP
from scapy.layers.ipsec import ESP

from grelab.craft.esp import decrypt
from grelab.craft.dissect import dissect_ip
from grelab.scenario import in_esp
from grelab.networks import offices

net = offices.two_offices("esp_tunnel_mode", variants=[in_esp("gcm128", "tunnel"),
                                                       in_esp("cbc256-sha512", "tunnel")]).fixture()


def test_echo(net):
    """h1's echo crosses inside GRE inside tunnel-mode ESP: a new outer IPv4 header around the whole GRE packet."""
    reply = net.ping("h1", "h2")
    assert (reply.source, reply.payload) == (offices.H2, b"grelab echo")
    frames = net.transit.frames()
    assert len(frames) == 2  # the request and the reply, nothing else
    net.transit.carries_exactly(net.sent_by("h1", "h2"))
    request = dissect_ip(frames[0][14:])
    outer = (request.proto, request.src, request.dst)
    inner = decrypt(next(sa for sa in net.sas if sa.spi == request[ESP].spi), request)
    # Tunnel mode: a new outer header, and inside it the whole GRE packet with its own IPv4 header.
    assert outer == (50, offices.R1_WAN, offices.R2_WAN)
    assert isinstance(inner, IP) and (inner.proto, inner.src, inner.dst) == (47, offices.R1_WAN, offices.R2_WAN)


def test_tcp(net):
    """A TCP exchange crosses inside GRE inside tunnel-mode ESP, segment for segment."""
    exchange = net.tcp("h1", "h2")
    assert exchange.echoed == exchange.sent
    net.transit.carries_exactly(net.sent_by("h1", "h2"))
