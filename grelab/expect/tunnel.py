"""What a tunnel's transit link may hold: only the carrier protocol, carrying exactly the passengers sent.

    expect_tunnel_carries(transit_frames, lan_ipv6_packets)              # plain GRE, IPv6 inside
    expect_tunnel_carries(transit_frames, lan_ipv6_packets, sas=[a, b])  # only ESP, decrypting to that GRE

Each transit frame must hold what the receiving stack would take: a whole outer IPv4 header with a right checksum
and a total length the frame has (IPv6: a payload length the frame has); outer addresses those of one of the SAs
of its SPI, and GRE's those of a tunnel's endpoints (when given); a NAT-T UDP checksum that is right (zero allowed
over IPv4 only, RFC 3948 and RFC 8200); an ESP ICV that verifies and padding as RFC 4303 2.4 has it; GRE's
reserved bits and version 0 (RFC 2784, bits 2 and 3 being RFC 2890's key and sequence), a right GRE checksum when
one is present; and a passenger whose own length is what the outer lengths leave for it. A DUT that corrupts what
it sends fails, naming the frame and the field.
Passengers are compared byte for byte except the hop limit (TTL), which each router on the way decrements.
"""
from __future__ import annotations

import ipaddress

from scapy.layers.inet import IP, UDP, in4_chksum
from scapy.layers.inet6 import IPv6, in6_chksum
from scapy.layers.ipsec import ESP
from scapy.layers.l2 import Ether
from scapy.utils import checksum

from grelab.craft.dissect import dissect, dissect_ip, ip_length
from grelab.craft.esp import padding_problem
from grelab.craft.peel import peel
from grelab.errors import Differing, GrelabError, InputError, MalformedPacket, Mismatch
from grelab.expect.match import Template, telling

ETHERTYPE_IPV4, ETHERTYPE_IPV6 = 0x0800, 0x86DD
_FRAME = Ether(src="02:00:00:00:00:00", dst="02:00:00:00:00:00")  # only to compare passengers as frames


def expect_tunnel_carries(transit: list[bytes], passengers: list[bytes], sas=(), proto: int = 0x86DD,
                          endpoints=()) -> None:
    """Every transit frame is IPv4 or IPv6 carrying GRE of protocol type `proto` (inside ESP when `sas` are given,
    and then never plain GRE), well formed (see the module's docstring), and the passengers are exactly
    `passengers` (IP packets), in order within each direction (by source address). endpoints: the tunnels'
    (local, remote) address pairs; GRE's outer addresses must then be one of them, either way round."""
    allowed = {(ipaddress.ip_address(a), ipaddress.ip_address(b)) for pair in endpoints for a, b in (pair, pair[::-1])}
    for n, packet in enumerate(passengers, 1):
        if not isinstance(packet, (bytes, bytearray)):
            raise InputError(f"passenger {n}", type(packet).__name__, "the bytes of an IP or IPv6 packet")
        dissect_ip(bytes(packet))  # MalformedPacket if not even its header is there
    problems, carried, first = [], [], []  # first: the first differing field of each problem (Differing)
    for n, frame in enumerate(transit, 1):
        try:
            passenger = _passenger(frame, sas, proto, allowed)
        except _Bad as bad:
            problems.append(f"transit frame {n}: {bad}")
            first.append(Differing("transit", f"frame {n}", "the tunnel's carrier", str(bad)))
            continue
        carried.append(passenger)
    want, got = _by_source(passengers), _by_source(carried)
    if got != want:
        problems.append(f"the tunnel carried {len(carried)} passengers, expected {len(passengers)}")
        for source in sorted(want.keys() | got.keys()):
            for n, (w, g) in enumerate(zip(want.get(source, []) + [b""], got.get(source, []) + [b""]), 1):
                if w != g:
                    problems.append(f"  passenger {n} from {_address(source)}: expected {_summary(w)}, "
                                    f"carried {_summary(g)}")
                    fields = _differences(w, g)
                    problems.extend(f"    {d}" for d in fields)
                    named = telling(fields) if fields else None
                    first.append(Differing("transit", f"passenger {n} {named.layer}.{named.field}", named.expected,
                                           named.got) if named else
                                 Differing("transit", f"passenger {n} from {_address(source)}", _summary(w), _summary(g)))
                    break
    if problems:
        first.append(Differing("transit", "passengers", str(len(passengers)), str(len(carried))))
        raise Mismatch("transit does not hold exactly the tunnelled passengers:\n" + "\n".join(problems), first[0])


class _Bad(Exception):
    """What is wrong with one transit frame."""


def _passenger(frame: bytes, sas, proto: int, endpoints: set = frozenset()) -> bytes:
    """The passenger of one transit frame, after checking everything around it; raises _Bad saying what is wrong."""
    try:
        outer = dissect(frame, Ether)
    except MalformedPacket as exc:
        raise _Bad(str(exc)) from None
    kind = outer.type if isinstance(outer, Ether) else None  # an 802.3 frame (scapy's Dot3) has a length instead
    if kind == ETHERTYPE_IPV6:
        _check_outer_ipv6(frame[14:])
    elif kind == ETHERTYPE_IPV4:
        _check_outer_ipv4(frame[14:])
    else:
        raise _Bad(f"{'an 802.3 frame' if kind is None else f'ethertype 0x{kind:04x}'}, not IPv4 or IPv6: "
                   f"{outer.summary()}")
    if sas and not outer.haslayer(ESP):
        raise _Bad(f"not ESP-protected: {outer.summary()}")
    try:
        peeled = peel(outer, sas)  # the frame parsed once: peel decrypts a copy of its IP layer
    except GrelabError as exc:
        raise _Bad(str(exc)) from None
    if outer.haslayer(ESP):
        _check_esp(outer, sas)
    if peeled.gre is None:
        raise _Bad(f"no GRE inside: {peeled}")
    _check_gre_header(peeled.gre)
    carrier = peeled.gre.underlayer
    while carrier is not None and not isinstance(carrier, (IP, IPv6)):  # past ip6gre's encapsulation limit option
        carrier = carrier.underlayer
    if carrier is None:
        raise _Bad(f"GRE with no IP header before it: {peeled}")
    if endpoints and (ipaddress.ip_address(carrier.src), ipaddress.ip_address(carrier.dst)) not in endpoints:
        raise _Bad(f"GRE's outer addresses {carrier.src} > {carrier.dst} are no tunnel's endpoints "
                   f"({_pairs(endpoints)}): {peeled}")
    if peeled.gre.proto != proto:
        raise _Bad(f"GRE protocol type 0x{peeled.gre.proto:04x}, not 0x{proto:04x}: {peeled}")
    if peeled.checksum_ok is False:
        raise _Bad(f"GRE checksum 0x{peeled.gre.chksum:04x} is wrong (over the GRE header and payload): {peeled}")
    passenger = bytes(peeled.passenger)
    said = ip_length(passenger)
    if said != len(passenger):
        raise _Bad(f"passenger length: its header says {said} bytes, the outer lengths leave {len(passenger)} "
                   f"for it: {peeled}")
    return passenger


def _check_esp(outer, sas) -> None:
    """ESP's outer addresses are those of an SA of its SPI, its NAT-T UDP checksum right, its padding RFC 4303's."""
    esp = outer[ESP]
    ip = esp.underlayer
    while ip is not None and not isinstance(ip, (IP, IPv6)):  # past NAT-T's UDP, IPv6 extension headers
        ip = ip.underlayer
    if ip is None:
        raise _Bad(f"ESP with no IP header before it: {outer.summary()}")
    mine = [sa for sa in sas if sa.spi == esp.spi]
    if mine and not any((sa.src, sa.dst) == (ip.src, ip.dst) for sa in mine):
        said = ", ".join(f"{sa.src} > {sa.dst}" for sa in mine)
        raise _Bad(f"ESP SPI 0x{esp.spi:08x}: outer addresses {ip.src} > {ip.dst}, its SA's are {said}")
    if isinstance(esp.underlayer, UDP):
        _check_udp_checksum(esp.underlayer, ip)
    if mine:
        problem = padding_problem(mine[-1], ip)
        if problem:
            raise _Bad(problem)


def _check_udp_checksum(udp: UDP, ip) -> None:
    """NAT-T's UDP checksum: right, or zero over IPv4 (RFC 3948 3.1.2); IPv6 has no zero UDP checksum (RFC 8200 8.1)."""
    wire = bytes(udp)
    if udp.chksum == 0:
        if isinstance(ip, IPv6):
            raise _Bad("NAT-T UDP checksum 0 over IPv6: RFC 8200 8.1 wants it computed (zero only over IPv4)")
        return
    def over(data: bytes) -> int:  # scapy's pseudo-header sums: IPv4's from the IP layer, IPv6's from the UDP one
        return in6_chksum(17, udp, data) if isinstance(ip, IPv6) else in4_chksum(17, ip, data)
    if over(wire) not in (0, 0xFFFF):
        right = over(wire[:6] + b"\0\0" + wire[8:])
        raise _Bad(f"NAT-T UDP checksum 0x{udp.chksum:04x} is wrong (0x{right or 0xFFFF:04x} would be right"
                   + (", or 0 over IPv4)" if isinstance(ip, IP) else ")"))


# The GRE header's first 16 bits: C R K S s Recur(3) Flags(5) Ver(3). RFC 2784 makes bits 1-12 Reserved0 (zero),
# RFC 2890 takes bits 2 (K) and 3 (S) from them; Reserved1 (after the checksum) is zero too.
_GRE_RESERVED = {0x4000: "R (routing present, bit 1)", 0x0800: "s (strict source route, bit 4)",
                 0x0700: "Recur (bits 5-7)", 0x00F8: "Flags (bits 8-12)"}


def _check_gre_header(gre) -> None:
    head = bytes(gre)[:8]
    word = int.from_bytes(head[:2], "big")
    for mask, name in _GRE_RESERVED.items():
        if word & mask:
            raise _Bad(f"GRE reserved bits {name}: {(word & mask) >> (mask & -mask).bit_length() - 1}, "
                       f"RFC 2784 wants 0 (flags 0x{word:04x})")
    if word & 0x7:
        raise _Bad(f"GRE version {word & 0x7}: RFC 2784 wants 0")
    if word & 0x8000 and head[6:8] != b"\0\0":
        raise _Bad(f"GRE Reserved1 0x{head[6:8].hex()}: RFC 2784 wants 0")


def _pairs(endpoints: set) -> str:
    return ", ".join(sorted({f"{a} <> {b}" for a, b in endpoints if str(a) < str(b)}))


def _check_outer_ipv4(header: bytes) -> None:
    """The outer IPv4 header as on the wire: whole, its checksum right, its total length in the frame."""
    if len(header) < 20 or header[0] >> 4 != 4 or len(header) < (header[0] & 0xF) * 4 or header[0] & 0xF < 5:
        raise _Bad(f"outer IPv4 header malformed: {header[:20].hex()} ({len(header)} bytes after Ethernet)")
    length = (header[0] & 0xF) * 4
    if checksum(header[:length]):
        right = checksum(header[:10] + b"\0\0" + header[12:length])
        raise _Bad(f"outer IPv4 header checksum 0x{header[10:12].hex()} is wrong (0x{right:04x} would be right)")
    total = int.from_bytes(header[2:4], "big")
    if not length <= total <= len(header):
        raise _Bad(f"outer IPv4 total length {total}: the frame holds {len(header)} bytes after Ethernet, "
                   f"the header {length}")


def _check_outer_ipv6(header: bytes) -> None:
    """The outer IPv6 header as on the wire (ip6gre): whole, version 6, its payload length in the frame."""
    if len(header) < 40 or header[0] >> 4 != 6:
        raise _Bad(f"outer IPv6 header malformed: {header[:40].hex()} ({len(header)} bytes after Ethernet)")
    payload = int.from_bytes(header[4:6], "big")
    if payload > len(header) - 40:
        raise _Bad(f"outer IPv6 payload length {payload}: the frame holds {len(header) - 40} bytes after the header")


def _by_source(packets: list[bytes]) -> dict[bytes, list[bytes]]:
    """The packets (hop limit zeroed) by source address, in order. Order holds within a direction; two
    packets crossing in opposite directions (both ends' FINs) may pass the transit either way round."""
    out: dict[bytes, list[bytes]] = {}
    for packet in packets:
        out.setdefault(_source(packet), []).append(_hop_limit_zero(packet))
    return out


def _source(packet: bytes) -> bytes:
    version = packet[0] >> 4 if packet else None
    if version == 6 and len(packet) >= 24:
        return packet[8:24]
    if version == 4 and len(packet) >= 16:
        return packet[12:16]
    return b""


def _address(source: bytes) -> str:
    return str(ipaddress.ip_address(source)) if source else "(no source address)"


def _summary(packet: bytes) -> str:
    if not packet:
        return "nothing"
    try:
        return dissect_ip(packet).summary()
    except MalformedPacket as exc:
        return f"[{exc}]"


def _differences(want: bytes, got: bytes) -> list:
    """Field by field, when both are whole IP packets of one version."""
    try:
        w, g = dissect_ip(want), dissect_ip(got)
    except MalformedPacket:
        return []
    if type(w) is not type(g):
        return []
    return Template(bytes(_FRAME / w)).differences(_FRAME / g)


def _hop_limit_zero(packet: bytes) -> bytes:
    """The packet with its hop limit (IPv6) or TTL (IPv4) zeroed: routers change it. The IPv4 checksum is
    updated for that change only (RFC 1624), so a checksum that was wrong stays wrong and shows."""
    version = packet[0] >> 4 if packet else None
    if version == 6 and len(packet) >= 8:
        return packet[:7] + b"\x00" + packet[8:]
    if version == 4 and len(packet) >= 20:
        old = int.from_bytes(packet[8:10], "big")  # TTL and protocol: one 16-bit word of the sum
        new = packet[9]
        total = (~int.from_bytes(packet[10:12], "big") & 0xFFFF) + (~old & 0xFFFF) + new
        while total >> 16:
            total = (total & 0xFFFF) + (total >> 16)
        return packet[:8] + b"\x00" + packet[9:10] + (~total & 0xFFFF).to_bytes(2, "big") + packet[12:]
    return packet


def tcp_segments(frames: list[bytes], sas=()) -> list:
    """Every TCP segment among the frames, as the IP packet carrying it (on the link, or the tunnel's passenger)."""
    from scapy.layers.inet import TCP
    found = []
    for frame in frames:
        try:
            peeled = peel(frame, sas)
        except GrelabError:
            continue
        packet = peeled.passenger if peeled.gre is not None else dissect(frame, Ether).payload
        if packet is not None and packet.haslayer(TCP):
            found.append(packet)
    return found


def data_segments(frames: list[bytes], src: str, sas=()) -> list[int]:
    """The payload length of every TCP segment from `src` that carries data, in order, each sent the first time: how
    a transfer was cut. A retransmission (a sequence number sent before: a loss, or a timer that fired on a busy
    machine) is not another cut."""
    from scapy.layers.inet import TCP
    seen, cut = set(), []
    for p in tcp_segments(frames, sas):
        if p.src == src and len(p[TCP].payload) and p[TCP].seq not in seen:
            seen.add(p[TCP].seq)
            cut.append(len(p[TCP].payload))
    return cut


def syn_mss(frames: list[bytes], sas=()) -> list[int | None]:
    """The MSS option of every TCP SYN among the frames (on the link, or the tunnel's passenger), in order; None
    for a SYN without one: what an MSS clamp is seen by."""
    from scapy.layers.inet import TCP
    return [dict(p[TCP].options).get("MSS") for p in tcp_segments(frames, sas) if p[TCP].flags.S]
