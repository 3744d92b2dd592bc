"""Captured bytes into scapy layers without exceptions from inside scapy.

scapy turns a payload it cannot parse into Raw, but the outermost layer of a truncated buffer raises
struct.error (or IndexError...) from its fields; bytes that end exactly between two fields silently leave
the rest at their defaults, and empty bytes become a packet of default values (addresses invented from
nothing). Here the outermost header must be whole, or MalformedPacket names the layer, the offset and the
field that does not fit.
"""
from __future__ import annotations

from scapy.layers.inet import IP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Packet, Raw

from grelab.errors import InputError, MalformedPacket

LINKS = ("auto", "ethernet", "ip")


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
    if not isinstance(packet, layer):
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


def dissect_link(data: bytes, link: str = "ethernet") -> Packet:
    """An Ethernet frame, or an IP packet with link="ip"; link="auto" tells them apart (guess_link)."""
    if link not in LINKS:
        raise InputError("link", link, "one of " + ", ".join(LINKS))
    if link == "auto":
        link = guess_link(data)
    return dissect(data, Ether) if link == "ethernet" else dissect_ip(data)


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
