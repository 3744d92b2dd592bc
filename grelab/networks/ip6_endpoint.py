"""grelab as the far endpoint over an IPv6-only transit (scenarios/ipv6_transport.py): ip6gre and ip6gretap plans,
what grelab sends r1 and what r1 must send back, and the packets h1 sends through the tunnel."""
from __future__ import annotations

from scapy.layers.inet import ICMP, IP
from scapy.layers.inet6 import HBHOptUnknown, ICMPv6EchoReply, IPv6, IPv6ExtHdrDestOpt, PadN
from scapy.layers.l2 import GRE as GREHeader, Ether

from grelab.dut.plan import Neighbour, Plan, Route, Tunnel
from grelab.dut.tunnel import gre_tunnel
from grelab.scenario import Comment
from grelab.networks import endpoint as e


COMMENTS = (Comment("r1's ICMP error to h1: the packet is too big for its tunnel", "lan1",
                    match=lambda f: (f[12:14] == b"\x86\xdd" and f[54] == 2) or (f[12:14] == b"\x08\x00" and f[34] == 3)),)


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


def outward(size: int = 100, hlim: int = 64) -> IPv6:  # an IPv6 packet of `size` bytes from h1 to the far LAN
    return IPv6(src=e.H1, dst=e.FAR_LAN_HOST, hlim=hlim) / ICMPv6EchoReply(id=1, seq=size, data=bytes(size - 48))


def outward4(size: int = 100, ttl: int = 64) -> IP:  # an IPv4 packet (DF) of `size` bytes from h1 to the far LAN
    return IP(src=e.H1_V4, dst=e.FAR_LAN_HOST_V4, ttl=ttl, flags="DF") / ICMP(type=0, id=1, seq=size) / bytes(size - 28)
