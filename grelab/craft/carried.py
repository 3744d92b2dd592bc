"""What rides in GRE: one row per GRE protocol type, naming the scapy layer that reads the payload and how its
header is said in one line, before the packet it carries.

    0x0800 IPv4, 0x86dd IPv6, 0x6558 Ethernet (gretap)  scapy's own bindings, said as scapy summarises them
    0x88be ERSPAN I (no GRE sequence number: the mirrored frame at once) or II;  0x22eb ERSPAN III
    0x883e WCCP: a WCCPv2 redirect header unless an IPv4 header follows at once (as Wireshark and FreeBSD decide)
    0x2001 NHRP (RFC 2332): the fixed header and its operation, the common mandatory part of requests and replies
    0x880b PPP in PPTP's enhanced GRE (RFC 2637): LCP, IPCP, IP...

scapy's own layers are used where it has them (ERSPAN, PPP, PPPoE, LLC/SNAP, STP, CDP, DTP, MPLS), loaded here so
that what grelab finds never depends on whether its caller imported scapy.all. NHRP and WCCP's redirect header,
which scapy lacks, are scapy layers defined below.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import scapy.contrib.cdp  # noqa: F401 - binds SNAP 0x2000 (CDP)
import scapy.contrib.dtp  # noqa: F401 - binds SNAP 0x2004 (DTP)
import scapy.contrib.mpls  # noqa: F401 - binds GRE 0x8847 (MPLS)
import scapy.layers.ppp  # noqa: F401 - binds GRE_PPTP to PPP, Ether 0x8863/0x8864 to PPPoE
from scapy.contrib.erspan import ERSPAN_I, ERSPAN_II, ERSPAN_III
from scapy.fields import (BitEnumField, BitField, ByteEnumField, ByteField, FieldLenField, ShortField, StrLenField,
                          XShortField, XStrFixedLenField)
from scapy.layers.inet import IP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import GRE
from scapy.packet import Packet, Raw, bind_layers
from scapy.utils import checksum

NHRP_OPERATIONS = {1: "Resolution Request", 2: "Resolution Reply", 3: "Registration Request",
                   4: "Registration Reply", 5: "Purge Request", 6: "Purge Reply", 7: "Error Indication",
                   8: "Traffic Indication"}


class NHRP(Packet):
    """RFC 2332 5.1: the fixed header (20 bytes) every NHRP packet starts with."""
    name = "NHRP"
    fields_desc = [XShortField("afn", 1),  # the NBMA's address family (1: IPv4)
                   XShortField("protocol", 0x0800), XStrFixedLenField("snap", b"\0" * 5, 5),
                   ByteField("hop_count", 255), ShortField("size", None), XShortField("checksum", None),
                   ShortField("extension_offset", 0), ByteField("version", 1),
                   ByteEnumField("operation", 1, NHRP_OPERATIONS),
                   ByteField("src_nbma_len", 0), ByteField("src_nbma_sublen", 0)]

    def post_build(self, pkt: bytes, pay: bytes) -> bytes:
        """The packet size and checksum (RFC 2332 5.1: the IP checksum over the whole NHRP packet), when not given."""
        whole = pkt + pay
        if self.size is None:
            whole = whole[:10] + len(whole).to_bytes(2, "big") + whole[12:]
        if self.checksum is None:
            whole = whole[:12] + checksum(whole[:12] + b"\0\0" + whole[14:]).to_bytes(2, "big") + whole[14:]
        return whole


class NHRPMandatory(Packet):
    """RFC 2332 5.2.0.1: the common part of resolution, registration and purge requests and replies (IPv4)."""
    name = "NHRP mandatory part"
    fields_desc = [FieldLenField("src_proto_len", None, length_of="src_proto", fmt="B"),
                   FieldLenField("dst_proto_len", None, length_of="dst_proto", fmt="B"),
                   XShortField("flags", 0), BitField("request_id", 0, 32),
                   StrLenField("src_nbma", b"", length_from=lambda p: p.underlayer.src_nbma_len & 0x3F
                               if p.underlayer else 0),
                   StrLenField("src_nbma_sub", b"", length_from=lambda p: p.underlayer.src_nbma_sublen & 0x3F
                               if p.underlayer else 0),
                   StrLenField("src_proto", b"", length_from=lambda p: p.src_proto_len),
                   StrLenField("dst_proto", b"", length_from=lambda p: p.dst_proto_len)]


for _operation in range(1, 7):
    bind_layers(NHRP, NHRPMandatory, operation=_operation)


class WCCPRedirect(Packet):
    """WCCPv2's redirect header, between GRE and the redirected IPv4 packet (flag bits as Wireshark reads them)."""
    name = "WCCP redirect header"
    fields_desc = [BitField("reserved", 0, 5), BitField("valid", 0, 1), BitField("alternative_used", 0, 1),
                   BitEnumField("dynamic", 0, 1, {0: "well-known", 1: "dynamic"}),
                   ByteField("service_id", 0), ByteField("alternative_bucket", 0), ByteField("primary_bucket", 0)]


bind_layers(WCCPRedirect, IP)


@dataclass(frozen=True)
class Rider:
    """How a GRE payload of one protocol type is read and said."""
    name: str
    read: Callable[[bytes, GRE], Packet]  # the payload's bytes (and the GRE header, for its flags) -> scapy layers
    say: Callable[[Packet], tuple[str, Packet | None]]  # the carried header in words, and what it carries


def _erspan(data: bytes, gre: GRE) -> Packet:
    """0x88be: type I has no header and no GRE sequence number; type II has both (its version nibble 1)."""
    return ERSPAN_II(data) if gre.seqnum_present else ERSPAN_I(data)


def _erspan_iii(data: bytes) -> Packet:
    """ERSPAN III carries an Ethernet frame (frame type 0) or an IP packet (2); scapy reads Ethernet for any type."""
    header = ERSPAN_III(data)
    if header.ft != 0 and not header.o and len(header.payload):
        inner = bytes(header.payload)
        header.remove_payload()
        header.add_payload(IP(inner) if header.ft == 2 and inner[0] >> 4 == 4 else
                           IPv6(inner) if header.ft == 2 and inner[0] >> 4 == 6 else Raw(inner))
    return header


def _wccp(data: bytes, gre: GRE) -> Packet:
    return IP(data) if data[:1] and data[0] >> 4 == 4 else WCCPRedirect(data)


def _say_erspan(p: Packet) -> tuple[str, Packet | None]:
    if isinstance(p, ERSPAN_III):
        words = (f"ERSPAN III session={p.session_id} vlan={p.vlan} cos={p.cos} bso={p.bso} truncated={p.t} "
                 f"timestamp={p.timestamp} granularity={p.get_field('gra').i2repr(p, p.gra)} sgt={p.sgt_other} "
                 f"frame_type={p.get_field('ft').i2repr(p, p.ft)} hw={p.hw} "
                 f"direction={'egress' if p.d else 'ingress'}")
    elif isinstance(p, ERSPAN_II):
        words = f"ERSPAN II session={p.session_id} vlan={p.vlan} cos={p.cos} en={p.en} truncated={p.t} index={p.index}"
    elif isinstance(p, ERSPAN_I):
        words = "ERSPAN I"
    else:
        return "ERSPAN [cut short]", p
    return words, p.payload


def _say_wccp(p: Packet) -> tuple[str, Packet | None]:
    if isinstance(p, Raw):
        return "WCCP [cut short]", p
    if not isinstance(p, WCCPRedirect):
        return "WCCP (no redirect header)", p
    return (f"WCCP redirect service={p.service_id} {p.get_field('dynamic').i2repr(p, p.dynamic)} "
            f"primary_bucket={p.primary_bucket} alternative_bucket={p.alternative_bucket}"
            + (" (alternative used)" if p.alternative_used else ""), p.payload)


def _say_nhrp(p: Packet) -> tuple[str, Packet | None]:
    if not isinstance(p, NHRP):
        return "NHRP [cut short]", p
    words = [f"NHRP {NHRP_OPERATIONS.get(p.operation, f'operation {p.operation}')} version={p.version} "
             f"afn={p.afn} protocol=0x{p.protocol:04x} hops={p.hop_count} size={p.size}"]
    part = p.payload
    if isinstance(part, NHRPMandatory):
        words.append(f"request_id={part.request_id}")
        words += [f"{name}={'.'.join(map(str, value))}" for name, value in
                  (("src", part.src_proto), ("dst", part.dst_proto)) if len(value) == 4]
    return " ".join(words), None  # the rest (client information entries, extensions) is not said


RIDERS: dict[int, Rider] = {
    0x88BE: Rider("ERSPAN", _erspan, _say_erspan),
    0x22EB: Rider("ERSPAN III", lambda data, gre: _erspan_iii(data), _say_erspan),
    0x883E: Rider("WCCP", _wccp, _say_wccp),
    0x2001: Rider("NHRP", lambda data, gre: NHRP(data), _say_nhrp),
}


def carried(gre: GRE) -> Packet:
    """GRE's payload read by its protocol type's row (put back under gre, so .underlayer still leads out); scapy's
    own reading for the protocol types without a row."""
    rider, payload = RIDERS.get(gre.proto), gre.payload
    if rider is None or not len(payload):
        return payload
    data = bytes(payload)
    try:
        packet = rider.read(data, gre)
        if len(data) < len(packet) - len(packet.payload):  # scapy filled what the bytes lack with defaults
            packet = Raw(data)
    except Exception:  # noqa: BLE001 - scapy raises struct.error, IndexError...: said as the bytes they are
        packet = Raw(data)
    gre.remove_payload()
    gre.add_payload(packet)
    return packet


def say(gre: GRE, passenger: Packet) -> str:
    """One line for what GRE carries: a rider's header in words, then scapy's summary of what that carries."""
    rider = RIDERS.get(gre.proto)
    if rider is None or not len(passenger):
        return passenger.summary()
    words, rest = rider.say(passenger)
    return words + (f" / {rest.summary()}" if rest is not None and len(rest) else "")
