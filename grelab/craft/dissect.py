"""Captured bytes into scapy layers without exceptions from inside scapy.

scapy turns a payload it cannot parse into Raw, but the outermost layer of a truncated buffer raises
struct.error (or IndexError...) from its fields; bytes that end exactly between two fields silently leave
the rest at their defaults, and empty bytes become a packet of default values (addresses invented from
nothing). Here the outermost header must be whole, or MalformedPacket names the layer, the offset and the
field that does not fit.

A capture's link type says what its frames start with: LINK_TYPES maps pcap's LINKTYPE_ numbers to grelab's names
for them, LINK_LAYERS the names to scapy's layers; any other link type is read by scapy's own table (conf.l2types).
"""
from __future__ import annotations

from scapy.config import conf
from scapy.layers.inet import IP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import CookedLinux, CookedLinuxV2, Dot3, Ether, Loopback, LoopbackOpenBSD
from scapy.layers.ppp import HDLC, PPP
from scapy.packet import Packet, Raw

import grelab.craft.carried  # noqa: F401 - the layers that ride in GRE and on links, loaded before any dissection
from grelab.errors import InputError, MalformedPacket

# pcap's link types (LINKTYPE_*, tcpdump.org/linktypes.html) -> what grelab calls them
LINK_TYPES = {0: "null", 1: "ethernet", 12: "ip", 14: "ip", 101: "ip", 108: "loop", 113: "sll", 228: "ipv4",
              229: "ipv6", 276: "sll2"}
# "ip": IPv4 or IPv6 by the version nibble; "ipv4", "ipv6": that one only (another version is malformed)
LINK_LAYERS = {"ethernet": Ether, "sll": CookedLinux, "sll2": CookedLinuxV2, "null": Loopback, "loop": LoopbackOpenBSD,
               "ipv4": IP, "ipv6": IPv6}
LINKS = ("auto", "ethernet", "ip", "ipv4", "ipv6", "sll", "sll2", "null", "loop")
# What scapy's dispatch makes of a layer, still that layer: a frame of 802.3 length instead of an EtherType is Dot3,
# a PPP frame with HDLC's address and control bytes (LINKTYPE_PPP) HDLC.
ALSO = {Ether: (Dot3,), PPP: (HDLC,)}


def dissect(data: bytes, layer: type[Packet], base: int = 0) -> Packet:
    """layer(data), or MalformedPacket naming where it breaks (offsets counted from base)."""
    if not isinstance(data, (bytes, bytearray)):
        raise InputError("packet", type(data).__name__, "bytes")
    data = bytes(data)
    if not data:
        raise MalformedPacket(_name(layer), base, layer.fields_desc[0].name, "no bytes at all")
    try:
        packet = layer(data)
    except Exception:  # noqa: BLE001 - scapy raises struct.error, IndexError, ValueError...: located below
        packet = None
    if not isinstance(packet, (layer, *ALSO.get(layer, ()))):
        packet = None  # a dispatch hook that gave up (GRE on 2 bytes) returns Raw
    check_whole(data, type(packet) if packet is not None else layer, base)
    if packet is None:
        raise MalformedPacket(_name(layer), base, "payload", "scapy cannot dissect it")
    return packet


def dissect_ip(data: bytes, base: int = 0) -> Packet:
    """An IPv4 or IPv6 packet, by its version nibble; any other version is malformed (not guessed as IPv6)."""
    version = data[0] >> 4 if data else None
    if version not in (4, 6):
        raise MalformedPacket("IP", base, "version", "no bytes at all" if version is None else
                              f"{version} is neither 4 nor 6")
    return dissect(data, IP if version == 4 else IPv6, base)


def dissect_link(data: bytes, link: str | int = "ethernet") -> Packet:
    """A frame of this link: an Ethernet frame, an IP packet with link="ip", one of the other LINKS, or a pcap link
    type number (LINK_TYPES; others by scapy's table, Raw when scapy has none); link="auto" tells an Ethernet frame
    from an IP packet (guess_link)."""
    link = link_name(link)
    if link == "auto":
        link = guess_link(data)
    if link == "ip":
        return dissect_ip(data)
    if link in ("null", "loop"):
        return _loopback(bytes(data), link)
    if isinstance(link, int):
        layer = conf.l2types.num2layer.get(link)
        return dissect(data, layer) if layer is not None else Raw(bytes(data))
    return dissect(data, LINK_LAYERS[link])


# BSD loopback's address family: 2 is IPv4 everywhere, IPv6 is 24 (NetBSD, OpenBSD), 28 (FreeBSD), 30 (Darwin) or
# 10 (Linux); scapy binds only this host's AF_INET6.
LOOPBACK_IP = {2: 4, 10: 6, 24: 6, 28: 6, 30: 6}


def _loopback(data: bytes, link: str) -> Packet:
    """A BSD loopback frame: a 4-byte address family in the capturing host's byte order ("null": a big-endian
    host's too, told by its size, as Wireshark does) or in network order ("loop", OpenBSD), then the packet."""
    if link == "null" and len(data) >= 4 and int.from_bytes(data[:4], "little") > 0xFFFF:
        link = "loop"
    header = dissect(data, Loopback if link == "null" else LoopbackOpenBSD)
    if LOOPBACK_IP.get(header.type) and len(data) > 4:
        try:
            packet = dissect_ip(data[4:], base=4)
        except MalformedPacket:
            packet = Raw(data[4:])
        header.remove_payload()
        header.add_payload(packet)
    return header


def link_name(link: str | int) -> str | int:
    """grelab's name for a link (a name, or a pcap link type number); a number grelab has no name for stays one."""
    if isinstance(link, int) and not isinstance(link, bool) and link >= 0:
        return LINK_TYPES.get(link, link)
    if link not in LINKS:
        raise InputError("link", link, "one of " + ", ".join(LINKS) + ", or a pcap link type number")
    return link


def as_dissected(packet: Packet) -> Packet:
    """A scapy packet as if read from the wire: one built in the REPL (lengths, checksums and such not yet computed)
    is built and dissected again; one dissected from bytes is itself."""
    if packet.original:
        return packet
    try:
        data = bytes(packet)
    except Exception as exc:  # noqa: BLE001 - scapy raises struct.error, TypeError...: said in one line
        raise InputError("packet", packet.summary(), f"a packet scapy can build ({type(exc).__name__}: {exc})") from None
    return dissect(data, type(packet))


def frame(data: bytes) -> Packet:
    """Ether(data) for matching and reports: never raises; bytes too short for Ethernet are one Raw layer."""
    try:
        return dissect(data, Ether)
    except MalformedPacket:
        return Raw(bytes(data))


def guess_link(data: bytes) -> str:
    """"ip" when data is one whole IP packet: an IPv4 header with a valid checksum whose total length is the
    length of data, or an IPv6 header whose payload length accounts for every byte; else "ethernet". (An
    Ethernet frame would need a destination MAC that reads as such a header, its length and its checksum.)"""
    data = bytes(data) if isinstance(data, (bytes, bytearray)) else b""
    if ip_length(data) != len(data):
        return "ethernet"
    if data[0] >> 4 == 6:
        return "ip"
    header = (data[0] & 0xF) * 4
    if header < 20 or len(data) < header:
        return "ethernet"
    total = int.from_bytes(data[:header] + b"\0" * (header % 2), "big")  # one's complement sum of the header
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return "ip" if total == 0xFFFF else "ethernet"


def ip_length(packet: bytes) -> int | None:
    """The length an IPv4 (total length) or IPv6 (40 + payload length) header says its packet has; None
    for anything else, or a header cut short."""
    version = packet[0] >> 4 if packet else None
    if version == 6 and len(packet) >= 40:
        return 40 + int.from_bytes(packet[4:6], "big")
    if version == 4 and len(packet) >= 20:
        return int.from_bytes(packet[2:4], "big")
    return None


def check_whole(data: bytes, layer: type[Packet], base: int = 0) -> None:
    """Raise MalformedPacket if data does not hold a whole `layer` header."""
    offset, field = where_it_breaks(data, layer)
    if field is not None:
        raise MalformedPacket(_name(layer), base + offset, field)


def where_it_breaks(data: bytes, layer: type[Packet]) -> tuple[int, str | None]:
    """(offset, name) of the first field of `layer` that data cannot fill, dissecting as scapy does but going
    on past the end of the bytes (a field that needs none, e.g. absent options, is fine); (length, None)
    when the header is whole."""
    packet, rest = layer(), data
    for field in layer.fields_desc:
        try:
            rest, value = field.getfield(packet, rest)
        except Exception:  # noqa: BLE001 - this is the field that breaks
            return len(data) - len(rest), field.name
        packet.fields[field.name] = value
    return len(data) - len(rest), None


def _name(layer: type[Packet]) -> str:
    return {"Ether": "Ethernet", "IP": "IPv4"}.get(layer.__name__, layer.__name__)
