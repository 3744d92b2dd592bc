"""GRE over an IPv6 transport: ip6gre and ip6gretap (RFC 7676), IPv4 and IPv6 passengers, the encapsulation limit.

grelab is the far endpoint (as in grelab_endpoint), but the transit between grelab and r1 is IPv6 only
(2001:db8:ff::/64). r1's tunnel is ip6gre (IP in GRE, 0x86DD or 0x0800) or ip6gretap (Ethernet in GRE, 0x6558;
r1 knows grelab's Ethernet address from a static neighbour entry, so nothing but the case's packets crosses). grelab
sends an echo for h1 inside GRE over IPv6, r1 delivers it and puts h1's reply back into its own GRE over IPv6.

r1's packets carry, between the IPv6 header and GRE, a destination options header with the tunnel encapsulation
limit option (RFC 2473, 4.1.1: type 4, length 1, the limit, padded with PadN): 4 by default, the tunnel's
`encaplimit` if given, and no such header at all with `encaplimit none`. Its 8 bytes come out of the tunnel's
MTU: over a 1500-byte link an ip6gre tunnel takes 1448 bytes (40 IPv6 + 8 options + 4 GRE), 1456 without the
limit; one byte more draws Packet Too Big (an IPv6 passenger) or fragmentation needed (an IPv4 one, DF) with
exactly that MTU, and never enters the tunnel.
"""
from functools import partial

import pytest
from scapy.layers.inet import ICMP, IP
from scapy.layers.inet6 import ICMPv6PacketTooBig, IPv6

from grelab.scenario import PLAIN_GRE

from grelab.networks import endpoint as e
from grelab.networks.ip6_endpoint import COMMENTS, from_r1, in_tap, ip6gre, ip6gretap, outward, outward4, to_r1

net = e.grelab_endpoint("ipv6_transport", variants=[PLAIN_GRE], tunnels=None, topology=partial(e.topology, transport="ipv6"),
                        links=e.LINKS6, capabilities=frozenset({"gre", "ipv6_transport"}),
                        comments=COMMENTS + (e.FROM_R1_COMMENT,) + e.COMMENTS).fixture()


ECHOES = {  # the far LAN's echo for h1, and h1's reply as r1 forwards it back
    "ipv6": e.echo(),
    "ipv4": (IP(src=e.FAR_LAN_HOST_V4, dst=e.H1_V4, ttl=64) / ICMP(id=0x4243, seq=7) / b"from grelab",
             IP(src=e.H1_V4, dst=e.FAR_LAN_HOST_V4, ttl=63) / ICMP(type=0, id=0x4243, seq=7) / b"from grelab"),
}


@pytest.mark.parametrize("kind", ["ip6gre", "ip6gretap"])
@pytest.mark.parametrize("passenger", ECHOES)
def test_passenger(net, kind, passenger):
    """An echo in GRE over IPv6 reaches h1 through r1, and the reply comes back with r1's encapsulation limit 4."""
    request, reply = ECHOES[passenger]
    tap = kind == "ip6gretap"
    net.apply({"r1": ip6gretap() if tap else ip6gre()})
    net.send("grelab", to_r1(in_tap(request) if tap else request),
             comment=f"crafted by grelab: an {passenger} echo for h1 in {kind} over IPv6")
    net.transit.expect(from_r1(in_tap(reply, to_r1=False) if tap else reply), ignore=e.IGNORE)


@pytest.mark.parametrize("limit", [4, 0, "none"], ids=["default-4", "0", "none"])
def test_encapsulation_limit(net, limit):
    """r1's destination options header holds the tunnel encapsulation limit (4 unless set); `encaplimit none` has none."""
    net.apply({"r1": ip6gre(**({} if limit == 4 else {"encaplimit": limit}))})
    net.send("h1", outward(), comment=f"crafted from h1 for the far LAN: r1 encapsulates it, encaplimit {limit}")
    net.transit.expect(from_r1(outward(hlim=63), limit=None if limit == "none" else limit))


@pytest.mark.parametrize("limit, mtu", [(4, 1448), ("none", 1456)], ids=["limit-1448", "none-1456"])
@pytest.mark.parametrize("passenger", ["ipv6", "ipv4"])
def test_tunnel_mtu(net, passenger, limit, mtu):
    """ip6gre on a 1500-byte link: 1448 bytes (1456 without the limit); one more draws r1's ICMP error of exactly that."""
    net.apply({"r1": ip6gre(**({} if limit == 4 else {"encaplimit": limit}))})
    if passenger == "ipv6":
        net.send("h1", outward(mtu + 1), comment=f"crafted from h1: {mtu + 1} bytes, one more than r1's tunnel takes")
        error = IPv6(src="2001:db8:1::1", dst=e.H1) / ICMPv6PacketTooBig(mtu=mtu) / bytes(outward(mtu + 1))[:1232]
    else:
        net.send("h1", outward4(mtu + 1), comment=f"crafted from h1: {mtu + 1} bytes, DF, one more than r1's tunnel takes")
        error = IP(src=e.R1_LAN_V4, dst=e.H1_V4, tos=0xC0) / ICMP(type=3, code=4, nexthopmtu=mtu) / bytes(outward4(mtu + 1))[:548]
    net.link("lan1").expect(e.to_h1(error), ignore=e.IGNORE)  # quoting it as r1 got it: forwarding refused it
    net.send("h1", outward(mtu) if passenger == "ipv6" else outward4(mtu), comment=f"crafted from h1: {mtu} bytes, it fits")
    sent = net.transit.expect(from_r1(outward(mtu, hlim=63) if passenger == "ipv6" else outward4(mtu, ttl=63),
                                      limit=None if limit == "none" else 4), ignore=e.IGNORE)
    assert len(sent[0]) - 14 == 1500  # the outer packet fills the link exactly
