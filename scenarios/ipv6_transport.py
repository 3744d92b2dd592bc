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
from scapy.layers.inet6 import HBHOptUnknown, ICMPv6EchoReply, ICMPv6EchoRequest, ICMPv6PacketTooBig, IPv6, \
    IPv6ExtHdrDestOpt, PadN
from scapy.layers.l2 import GRE as GREHeader, Ether

from grelab.dut.plan import Neighbour, Plan, Route, Tunnel
from grelab.dut.tunnel import gre_tunnel
from grelab.scenario import GRE, Comment, endpoint as e

COMMENTS = (Comment("r1's ICMP error to h1: the packet is too big for its tunnel", "lan1",
                    match=lambda f: (f[12:14] == b"\x86\xdd" and f[54] == 2) or (f[12:14] == b"\x08\x00" and f[34] == 3)),)
net = e.grelab_endpoint("ipv6_transport", variants=[GRE], tunnels=None, topology=partial(e.topology, transport="ipv6"),
                        links=e.LINKS6, capabilities=frozenset({"gre", "ipv6_transport"}),
                        comments=COMMENTS + (e.FROM_R1_COMMENT,) + e.COMMENTS).fixture()
QUIET = Plan(sysctls={"net.ipv6.auto_flowlabels": 0, "net.ipv6.icmp.ratelimit": 0, "net.ipv4.icmp_ratelimit": 0})


def ip6gre(**options) -> Plan:
    return gre_tunnel("gre1", e.R1_WAN6, e.GRELAB6, routes=(e.FAR_LAN, e.FAR_LAN_V4), **options) + QUIET


def ip6gretap(**options) -> Plan:
    """tap1 with an IPv4 and an IPv6 address, grelab's side of it a static neighbour, the far LANs behind it."""
    tap = Tunnel("tap1", e.R1_WAN6, e.GRELAB6, kind="ip6gretap", mac=e.R1_TAP_MAC,
                 addresses=(f"{e.R1_TAP}/24", f"{e.R1_TAP6}/64"), **options)
    return QUIET + Plan(sysctls={"net.ipv6.conf.default.forwarding": 0}, tunnels=(tap,),  # no MLD: see e.gretap
                        neighbours=(Neighbour(e.GRELAB_TAP, e.GRELAB_TAP_MAC, "tap1"),
                                    Neighbour(e.GRELAB_TAP6, e.GRELAB_TAP_MAC, "tap1")),
                        routes=(Route(e.FAR_LAN, via=e.GRELAB_TAP6), Route(e.FAR_LAN_V4, via=e.GRELAB_TAP)))


def to_r1(passenger):  # grelab's GRE over IPv6 to r1 (no options header: the limit is the sender's business)
    return IPv6(src=e.GRELAB6, dst=e.R1_WAN6, hlim=64) / GREHeader() / passenger


def from_r1(passenger, limit: int | None = 4):  # r1's GRE over IPv6 to grelab, as a frame on the transit
    options = [] if limit is None else [IPv6ExtHdrDestOpt(options=[HBHOptUnknown(otype=4, optdata=bytes([limit])),
                                                                   PadN(optdata=b"\x00")])]
    outer = IPv6(src=e.R1_WAN6, dst=e.GRELAB6, hlim=64)
    for header in options:
        outer = outer / header
    return Ether(src=e.R1_WAN_MAC, dst=e.GRELAB_MAC) / outer / GREHeader() / passenger


def in_tap(packet, to_r1: bool = True):  # an IP packet as Ethernet inside ip6gretap
    return Ether(src=e.GRELAB_TAP_MAC, dst=e.R1_TAP_MAC) / packet if to_r1 else \
        Ether(src=e.R1_TAP_MAC, dst=e.GRELAB_TAP_MAC) / packet


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


def outward(size: int = 100, hlim: int = 64) -> IPv6:  # an IPv6 packet of `size` bytes from h1 to the far LAN
    return IPv6(src=e.H1, dst=e.FAR_LAN_HOST, hlim=hlim) / ICMPv6EchoReply(id=1, seq=size, data=bytes(size - 48))


def outward4(size: int = 100, ttl: int = 64) -> IP:  # an IPv4 packet (DF) of `size` bytes from h1 to the far LAN
    return IP(src=e.H1_V4, dst=e.FAR_LAN_HOST_V4, ttl=ttl, flags="DF") / ICMP(type=0, id=1, seq=size) / bytes(size - 28)


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
