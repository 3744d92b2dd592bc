"""GRE packets (RFC 2784 + RFC 2890 key and sequence number) as scapy packets, and GRE keepalives.

    outer IPv4/IPv6 (protocol 47) | GRE: C.KS.Reserved0.Ver, protocol type, [checksum, reserved1], [key], [seq] | passenger

scapy does most of the work; this module sets what scapy leaves to chance (the protocol type for a raw passenger,
the checksum's reserved1 half) and turns bad input into InputError instead of a traceback from inside scapy.
"""
from __future__ import annotations

import ipaddress

from scapy.layers.inet import ICMP, IP
from scapy.layers.inet6 import ICMPv6EchoRequest, IPv6
from scapy.layers.l2 import GRE, Ether
from scapy.packet import Packet, Raw

from grelab.errors import InputError, check_choice, check_range

TRANSPORTS = ("ipv4", "ipv6")
PASSENGERS = ("ipv6", "ipv4", "ethernet")

# Documentation addresses (RFC 5737, RFC 3849, RFC 7042), so nothing crafted here can reach a real host.
OUTER = {"ipv4": ("192.0.2.1", "192.0.2.2"), "ipv6": ("2001:db8::1", "2001:db8::2")}
INNER = {"ipv4": ("198.51.100.1", "198.51.100.2"), "ipv6": ("2001:db8:1::1", "2001:db8:1::2")}
INNER_MACS = ("02:00:5e:10:00:01", "02:00:5e:10:00:02")
ECHO_ID = 0x6772  # "gr": recognisable in a capture
ECHO_DATA = b"grelab echo 0123"  # 16 bytes: no padding question, and visible in a hex dump



def passenger(kind: str = "ipv6", seq: int = 1) -> Packet:
    """The default passenger of each kind: an echo request (ICMPv6 for ipv6 and ethernet, ICMP for ipv4)."""
    check_choice("passenger", kind, PASSENGERS)
    seq = check_range("echo sequence number", seq, 0, 0xFFFF)
    if kind == "ipv4":
        src, dst = INNER["ipv4"]
        return IP(src=src, dst=dst) / ICMP(id=ECHO_ID, seq=seq) / ECHO_DATA
    src, dst = INNER["ipv6"]
    echo = IPv6(src=src, dst=dst) / ICMPv6EchoRequest(id=ECHO_ID, seq=seq, data=ECHO_DATA)
    if kind == "ethernet":
        return Ether(src=INNER_MACS[0], dst=INNER_MACS[1]) / echo
    return echo


def protocol_type(payload: Packet | bytes) -> int:
    """The GRE protocol type (an EtherType) for a passenger: from scapy's GRE bindings, so any bound layer works."""
    if isinstance(payload, Packet) and not isinstance(payload, Raw):
        for fields, cls in GRE.payload_guess:
            if cls is type(payload) and "proto" in fields:
                return fields["proto"]
    raise InputError("passenger", _describe(payload),
                     "IPv6, IP, Ether or another scapy layer bound to GRE; for raw bytes give proto=")


def gre(payload: Packet | bytes | None = None, *, transport: str = "ipv4", src: str | None = None,
        dst: str | None = None, key: int | None = None, seq: int | None = None, csum: bool = False,
        proto: int | None = None, version: int = 0, reserved0: int = 0, reserved1: int = 0) -> Packet:
    """IPv4/GRE/payload or IPv6/GRE/payload.

    payload: a scapy packet or bytes (default: the IPv6 echo passenger); proto: the GRE protocol type, found
    from the payload when not given. key, seq: RFC 2890 options (None: absent). csum: RFC 2784 checksum,
    computed. version, reserved0 (the 9 bits between S and Ver), reserved1 (after the checksum): 0 on the
    wire per RFC 2784; settable for negative tests.
    """
    check_choice("transport", transport, TRANSPORTS)
    if payload is None:
        payload = passenger()
    if not isinstance(payload, (Packet, bytes)):
        raise InputError("passenger", _describe(payload), "a scapy packet or bytes")
    header = gre_header(proto=protocol_type(payload) if proto is None else proto, key=key, seq=seq, csum=csum, version=version,
                        reserved0=reserved0, reserved1=reserved1)
    default_src, default_dst = OUTER[transport]
    outer = IP if transport == "ipv4" else IPv6
    return outer(src=address("source", src or default_src, transport),
                 dst=address("destination", dst or default_dst, transport)) / header / payload


def gre_header(*, proto: int, key: int | None = None, seq: int | None = None, csum: bool = False,
               version: int = 0, reserved0: int = 0, reserved1: int = 0) -> GRE:
    """The GRE layer alone, every field checked (scapy would silently truncate a 33-bit key)."""
    proto = check_range("GRE protocol type", proto, 0, 0xFFFF)
    version = check_range("GRE version", version, 0, 7)
    reserved0 = check_range("GRE reserved0", reserved0, 0, 0x1FF)
    reserved1 = check_range("GRE reserved1", reserved1, 0, 0xFFFF)
    fields = dict(proto=proto, version=version,
                  # scapy splits Reserved0 into RFC 1701's old fields: keep that detail here.
                  strict_route_source=reserved0 >> 8, recursion_control=(reserved0 >> 5) & 7, flags=reserved0 & 0x1F)
    if csum:
        fields.update(chksum_present=1, offset=reserved1)
    if key is not None:
        fields.update(key_present=1, key=check_range("GRE key", key, 0, 0xFFFFFFFF))
    if seq is not None:
        fields.update(seqnum_present=1, sequence_number=check_range("GRE sequence number", seq, 0, 0xFFFFFFFF))
    return GRE(**fields)


def keepalive(*, transport: str = "ipv4", local: str | None = None, remote: str | None = None,
              key: int | None = None) -> Packet:
    """A GRE keepalive as `local` sends it: GRE to `remote`, carrying an IP packet from `remote` back to `local`
    that is itself an empty GRE packet; the peer decapsulates it and routes the inner packet back to us."""
    check_choice("transport", transport, TRANSPORTS)
    default_local, default_remote = OUTER[transport]
    local = address("local", local or default_local, transport)
    remote = address("remote", remote or default_remote, transport)
    inner_ip = IP if transport == "ipv4" else IPv6
    reply = inner_ip(src=remote, dst=local) / gre_header(proto=0, key=key)
    return gre(reply, transport=transport, src=local, dst=remote, key=key)


def address(field: str, value: str, family: str | None = None) -> str:
    """value as a normalised IP address (of family "ipv4"/"ipv6" if given): scapy would try DNS on a typo."""
    wanted = family.replace("ipv", "IPv") if family else "IPv4 or IPv6"
    try:
        parsed = ipaddress.ip_address(value)
    except ValueError:
        raise InputError(field, value, f"an {wanted} address") from None
    if family and f"ipv{parsed.version}" != family:
        raise InputError(field, value, f"an {wanted} address")
    return str(parsed)


def _describe(payload) -> str:
    if isinstance(payload, bytes):
        return f"{len(payload)} raw bytes"
    return type(payload).__name__
