"""Matching received frames against a scapy template, with don't-care fields at any depth.

A don't-care field is named `Layer.field` (every layer of that class) or `Layer:n.field` (its n-th
occurrence counting from the outside, as in scapy's `pkt[IPv6:2]`):

    Template(frame, ignore=["IP.id", "IP.chksum", "GRE.sequence_number", "IPv6:2.hlim"])

Received frames are compared as bytes first (~47 M/s) and dissected only when the bytes differ.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from scapy.packet import Packet

from grelab.craft.dissect import frame as dissect_frame
from grelab.errors import GrelabError

_IGNORE_RE = re.compile(r"^([A-Za-z0-9_]+)(?::(\d+))?\.([A-Za-z0-9_]+)$")
# Neighbour discovery and MLD (ICMPv6 types 130-137, 143): links chatter for seconds after coming up.
NOISE_ICMP6 = set(range(130, 138)) | {143}


def layers(packet: Packet) -> list[tuple[str, Packet]]:
    """[(label, layer)] outermost first; a label is `Name` or `Name:n` for the n-th of its class."""
    seen: dict[type, int] = {}
    out = []
    layer = packet
    while layer is not None and layer.__class__.__name__ not in ("NoPayload", "Padding"):  # padding: Ethernet's minimum
        n = seen[type(layer)] = seen.get(type(layer), 0) + 1
        out.append((layer.__class__.__name__ if n == 1 else f"{layer.__class__.__name__}:{n}", layer))
        layer = layer.payload
    return out


@dataclass(frozen=True)
class Difference:
    layer: str  # "IPv6:2", or "layers" when the layer stacks differ
    field: str
    expected: str
    got: str

    def __str__(self) -> str:
        return f"{self.layer}.{self.field}: expected {self.expected}, got {self.got}"


class Template:
    """An expected frame, fully built once, and the fields whose values do not matter."""

    def __init__(self, packet, ignore=()):
        raw = packet if isinstance(packet, bytes) else bytes(packet)
        self.raw = raw
        self.packet = dissect_frame(raw)  # dissected back: computed fields (lengths, checksums) have their values
        self.ignore = frozenset(ignore)
        self._masked: set[tuple[str, int | None, str]] = set()
        for name in self.ignore:
            match = _IGNORE_RE.match(name)
            if match is None:
                raise GrelabError(f"don't-care field {name!r}: write Layer.field or Layer:n.field, e.g. IPv6:2.hlim")
            layer, nth, field = match.groups()
            self._masked.add((layer, int(nth) if nth else None, field))
        self._verdicts: dict[bytes, bool] = {}  # bursts repeat the same bytes: decide each once

    def is_masked(self, layer_label: str, field: str) -> bool:
        name, _, nth = layer_label.partition(":")
        return (name, None, field) in self._masked or (name, int(nth or 1), field) in self._masked

    def matches(self, frame: bytes) -> bool:
        if frame == self.raw:
            return True
        verdict = self._verdicts.get(frame)
        if verdict is None:
            verdict = self._verdicts[frame] = not self.differences(dissect_frame(frame), limit=1)
        return verdict

    def differences(self, got: Packet, limit: int | None = None) -> list[Difference]:
        """Every differing field that matters, through every layer, outermost first."""
        found: list[Difference] = []
        want_layers, got_layers = layers(self.packet), layers(got)
        for (label, want), (got_label, have) in zip(want_layers, got_layers):
            if label != got_label:
                found.append(Difference("layers", label, label, got_label))
                break
            for field in want.fields_desc:
                if self.is_masked(label, field.name):
                    continue
                a, b = want.getfieldval(field.name), have.getfieldval(field.name)
                if a != b:
                    found.append(Difference(label, field.name, field.i2repr(want, a), field.i2repr(have, b)))
                    if limit and len(found) >= limit:
                        return found
        if len(want_layers) != len(got_layers):
            found.append(Difference("layers", "stack", " / ".join(l for l, _ in want_layers),
                                    " / ".join(l for l, _ in got_layers)))
        return found


# Fields computed from the others: a length or checksum differs because something else does, which tells more.
DERIVED_FIELDS = frozenset({"len", "plen", "ihl", "chksum", "cksum", "dataofs"})


def telling(differences: list[Difference]) -> Difference:
    """Of a packet's differences, the one to name first: the first that is not a length or checksum (those follow
    from the others), else the first."""
    return next((d for d in differences if d.field not in DERIVED_FIELDS), differences[0])


def is_noise(frame: bytes) -> bool:
    """ARP, neighbour discovery or MLD: the chatter of links, not the traffic under test."""
    ethertype = frame[12:14]
    if ethertype == b"\x08\x06":
        return True
    if ethertype != b"\x86\xdd" or len(frame) < 56:
        return False
    next_header, offset = frame[20], 54
    if next_header == 0:  # hop-by-hop options (MLD carries a router alert)
        next_header, offset = frame[54], 54 + (frame[55] + 1) * 8
    return next_header == 58 and len(frame) > offset and frame[offset] in NOISE_ICMP6


def is_chatter(data: bytes, sas=()) -> bool:
    """Link chatter, on the link itself or carried inside a tunnel (GRE, ESP of `sas`): not the traffic a
    case is about."""
    if is_noise(data):
        return True
    from grelab.craft.peel import peel  # here: peel is the heavier import, needed only past the cheap test
    try:
        peeled = peel(data, sas)
    except GrelabError:  # ESP that does not decrypt is surely not chatter
        return False
    return carries_chatter(peeled)


def is_routing(data: bytes, sas=(), routing=frozenset({89})) -> bool:
    """Control-plane traffic of daemons, in the clear or inside a tunnel (GRE, ESP of `sas`): an IP packet of a
    protocol number in `routing` (89: OSPF), or with "ike" in it, IKE (UDP 500, or 4500 without an ESP SPI)."""
    from scapy.layers.inet import IP, UDP
    from scapy.layers.inet6 import IPv6
    from scapy.packet import NoPayload
    from grelab.craft.dissect import frame as dissect_frame
    from grelab.craft.peel import peel
    layers = [dissect_frame(data)]
    try:
        peeled = peel(data, sas)
        if peeled.passenger is not None:
            layers.append(peeled.passenger)
    except GrelabError:
        pass
    for top in layers:
        layer = top
        while layer is not None and not isinstance(layer, NoPayload):
            if isinstance(layer, IP) and layer.proto in routing or isinstance(layer, IPv6) and layer.nh in routing:
                return True
            if "ike" in routing and isinstance(layer, UDP) and (
                    500 in (layer.sport, layer.dport)
                    or 4500 in (layer.sport, layer.dport) and bytes(layer.payload)[:4] == b"\0\0\0\0"):
                return True
            layer = layer.payload
    return False


def carries_chatter(peeled) -> bool:
    """The tunnel's passenger (of a grelab.craft.peel.Peeled) is neighbour discovery or MLD."""
    from scapy.layers.inet6 import _ICMPv6  # the base of every ICMPv6 message class
    from scapy.packet import NoPayload
    layer = peeled.passenger
    while layer is not None and not isinstance(layer, NoPayload):
        if isinstance(layer, _ICMPv6):
            return layer.type in NOISE_ICMP6
        layer = layer.payload
    return False
