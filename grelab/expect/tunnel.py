"""What a tunnel's transit link may hold: only the carrier protocol, carrying exactly the passengers sent.

    expect_tunnel_carries(transit_frames, lan_ipv6_packets)              # plain GRE, IPv6 inside
    expect_tunnel_carries(transit_frames, lan_ipv6_packets, sas=[a, b])  # only ESP, decrypting to that GRE

Passengers are compared byte for byte except the hop limit (TTL), which each router on the way decrements.
"""
from __future__ import annotations

import ipaddress

from scapy.layers.inet import IP
from scapy.layers.inet6 import IPv6
from scapy.layers.ipsec import ESP
from scapy.layers.l2 import Ether

from grelab.craft.peel import peel
from grelab.errors import GrelabError
from grelab.expect.match import Template

ETHERTYPE_IPV4 = 0x0800
_FRAME = Ether(src="02:00:00:00:00:00", dst="02:00:00:00:00:00")  # only to compare passengers as frames


def expect_tunnel_carries(transit: list[bytes], passengers: list[bytes], sas=(), proto: int = 0x86DD) -> None:
    """Every transit frame is IPv4 carrying GRE of protocol type `proto` (inside ESP when `sas` are given,
    and then never plain GRE), and the passengers are exactly `passengers` (IP packets), in order within
    each direction (by source address)."""
    problems, carried = [], []
    for n, frame in enumerate(transit, 1):
        outer = Ether(frame)
        if outer.type != ETHERTYPE_IPV4:
            problems.append(f"transit frame {n}: ethertype 0x{outer.type:04x}, not IPv4: {outer.summary()}")
            continue
        if sas and not outer.haslayer(ESP):
            problems.append(f"transit frame {n}: not ESP-protected: {outer.summary()}")
            continue
        try:
            peeled = peel(outer, sas)  # the frame parsed once: peel decrypts a copy of its IP layer
        except GrelabError as exc:
            problems.append(f"transit frame {n}: {exc}")
            continue
        if peeled.gre is None:
            problems.append(f"transit frame {n}: no GRE inside: {peeled}")
        elif peeled.gre.proto != proto:
            problems.append(f"transit frame {n}: GRE protocol type 0x{peeled.gre.proto:04x}, not 0x{proto:04x}: {peeled}")
        else:
            carried.append(bytes(peeled.passenger))
    want, got = _by_source(passengers), _by_source(carried)
    if got != want:
        problems.append(f"the tunnel carried {len(carried)} passengers, expected {len(passengers)}")
        for source in sorted(want.keys() | got.keys()):
            for n, (w, g) in enumerate(zip(want.get(source, []) + [b""], got.get(source, []) + [b""]), 1):
                if w != g:
                    problems.append(f"  passenger {n} from {_address(source)}: expected {_summary(w)}, "
                                    f"carried {_summary(g)}")
                    if w and g:
                        kind = IPv6 if w[0] >> 4 == 6 else IP
                        problems.extend(f"    {d}" for d in Template(bytes(_FRAME / kind(w))).differences(_FRAME / kind(g)))
                    break
    if problems:
        raise AssertionError("transit does not hold exactly the tunnelled passengers:\n" + "\n".join(problems))


def _by_source(packets: list[bytes]) -> dict[bytes, list[bytes]]:
    """The packets (hop limit zeroed) by source address, in order. Order holds within a direction; two
    packets crossing in opposite directions (both ends' FINs) may pass the transit either way round."""
    out: dict[bytes, list[bytes]] = {}
    for packet in packets:
        source = packet[8:24] if packet[0] >> 4 == 6 else packet[12:16]
        out.setdefault(source, []).append(_hop_limit_zero(packet))
    return out


def _address(source: bytes) -> str:
    return str(ipaddress.ip_address(source))


def _summary(packet: bytes) -> str:
    if not packet:
        return "nothing"
    return (IPv6 if packet[0] >> 4 == 6 else IP)(packet).summary()


def _hop_limit_zero(packet: bytes) -> bytes:
    """The packet with its hop limit (IPv6) or TTL (IPv4, checksum redone) zeroed: routers change it."""
    if packet[0] >> 4 == 6:
        return packet[:7] + b"\x00" + packet[8:]
    ip = IP(packet)
    ip.ttl, ip.chksum = 0, None
    return bytes(ip)
