"""Two offices, r1 behind a NAT: GRE inside ESP inside UDP 4500 (NAT traversal), both ways.

The offices of two_offices, but r1's provider (isp) hands it a private address (192.0.2.1) and masquerades
it behind its own public one (203.0.113.254, an nftables masquerade on isp). Plain ESP has no ports a NAT
could track; NAT traversal (RFC 3948) puts it in UDP 4500, which the NAT rewrites like any UDP flow. r1's
SAs name its own address, r2's the NAT's, and r2's GRE tunnel ends at the NAT's address, where r1's GRE
comes from as far as r2 can tell. The kernel takes ESP out of UDP only on a socket bound to the port with
UDP_ENCAP_ESPINUDP, which an IKE daemon holds open; with no daemon here, grelab holds one in each DUT
(Plan.udp_encap_ports: a perl one-liner, from the host's /usr in the UML guest).

The plot: h1's echo and a TCP exchange reach h2 and come back, inside the NAT the link holds only UDP 4500 from
r1's own address carrying ESP, outside only the same from the NAT's address, and both decrypt to GRE carrying
exactly the IPv6 packets the hosts sent.
"""
from scapy.layers.inet import IP, UDP

from grelab.craft.dissect import dissect_ip
from grelab.networks import offices

net = offices.two_offices_nat("nat_traversal", variants=[offices.nat_t("gcm128", "nat_traversal"),
                                                         offices.nat_t("cbc128-sha1", "nat_traversal")]).fixture()


def outer(frame: bytes) -> tuple:
    packet = dissect_ip(frame[14:])
    return packet[IP].src, packet[IP].dst, packet[UDP].sport, packet[UDP].dport


def test_echo(net):
    """h1's echo crosses the NAT as GRE in ESP in UDP 4500, both sides of the NAT carrying exactly it."""
    reply = net.ping("h1", "h2")
    assert (reply.source, reply.payload) == (offices.H2, b"grelab echo")
    inside, outside = net.link("inside").frames(), net.link("outside").frames()
    assert [outer(f) for f in inside] == [(offices.R1_PRIVATE, offices.R2_WAN, 4500, 4500),
                                          (offices.R2_WAN, offices.R1_PRIVATE, 4500, 4500)]
    assert [outer(f) for f in outside] == [(offices.NAT_PUBLIC, offices.R2_WAN, 4500, 4500),
                                           (offices.R2_WAN, offices.NAT_PUBLIC, 4500, 4500)]
    for side in ("inside", "outside"):
        net.link(side).carries_exactly(net.sent_by("h1", "h2"))


def test_tcp(net):
    """A TCP exchange crosses the NAT as GRE in ESP in UDP 4500, segment for segment."""
    exchange = net.tcp("h1", "h2")
    assert exchange.echoed == exchange.sent
    for side in ("inside", "outside"):
        net.link(side).carries_exactly(net.sent_by("h1", "h2"))
