"""Take out of captured frames what the kernel makes random, so a rerun can equal its golden byte for byte.

What varies run to run, and what is done about it:
- IPv4 identification (outer and inner): set to 0, checksums recomputed;
- TCP initial sequence numbers: made relative per flow (like Wireshark's "relative sequence numbers"), and TCP
  timestamp option values zeroed;
- ESP the kernel sends: random IVs make random ciphertext. With the SA known, the packet is decrypted, its
  inside normalized too, and encrypted again with an IV derived from its sequence number, so the golden still
  decrypts in Wireshark with pcaps/esp_sa.
Checksums over changed bytes (IPv4, TCP, UDP, GRE) are recomputed. Everything else must match exactly.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrHopByHop, IPv6ExtHdrRouting
from scapy.layers.ipsec import ESP
from scapy.layers.l2 import GRE, Ether
from scapy.packet import Packet

from grelab.craft.dissect import frame as dissect_frame
from grelab.craft.esp import SA, decrypt, encrypt
from grelab.errors import GrelabError


class Normalizer:
    """Normalizes the frames of one case; keeps per-flow state (TCP initial sequence numbers) across frames.

    sas: the ESP SAs whose packets are re-encrypted (by SPI); ESP of unknown SAs is left as it is."""

    def __init__(self, sas: Iterable[SA] = (), renumber: bool = False, stand_ins: dict[int, SA] | None = None):
        """renumber: ESP sequence numbers become 1, 2, ... per SA in the order first seen (the same packet on
        two links keeps one number); stand_ins {SPI: SA}: ESP of that SPI (a daemon's random SA) is encrypted
        again with the stand-in SA (deterministic SPI and keys) instead of its own."""
        self.keyring = {sa.spi: sa for sa in sas}
        self._isn: dict[tuple, int] = {}
        self.renumber, self.stand_ins = renumber, dict(stand_ins or {})
        self._seqs: dict[tuple[int, int], int] = {}
        self._next: dict[int, int] = {}

    def frame(self, data: bytes) -> bytes:
        pkt = dissect_frame(data)
        if not isinstance(pkt, Ether):
            return data  # too short for Ethernet: nothing the kernel randomised can be in it
        changed = self._walk(pkt)
        return bytes(pkt) if changed else data

    def _walk(self, pkt: Packet) -> bool:
        """Normalize every layer in place; True if anything changed."""
        changed = False
        layer = pkt
        while layer is not None and layer.name != "NoPayload":
            if isinstance(layer, (IP, IPv6)) and self._known_esp(layer):
                return self._reencrypt(layer)
            if isinstance(layer, IP):
                changed |= self._ip(layer)
            elif isinstance(layer, TCP):
                changed |= self._tcp(layer)
            layer = layer.payload
        if changed:
            _forget_checksums(pkt)
        return changed

    @staticmethod
    def _ip(ip: IP) -> bool:
        if ip.id == 0:
            return False
        ip.id = 0
        return True

    def _tcp(self, tcp: TCP) -> bool:
        under = tcp.underlayer
        flow = (under.src, under.dst, tcp.sport, tcp.dport)
        back = (under.dst, under.src, tcp.dport, tcp.sport)
        isn = self._isn.setdefault(flow, tcp.seq - (1 if not tcp.flags.S and tcp.seq else 0))
        tcp.seq = (tcp.seq - isn) & 0xFFFFFFFF
        if tcp.flags.A and back in self._isn:
            tcp.ack = (tcp.ack - self._isn[back]) & 0xFFFFFFFF
        tcp.options = [(k, (0, 0)) if k == "Timestamp" else (k, v) for k, v in tcp.options]
        return True

    def _known_esp(self, ip) -> bool:
        """ESP right under this IP header (or under its NAT-T UDP header), of an SA we hold."""
        inner = ip.payload
        while isinstance(inner, (IPv6ExtHdrHopByHop, IPv6ExtHdrDestOpt, IPv6ExtHdrRouting)):  # ip6gre's destination option
            inner = inner.payload
        if isinstance(inner, UDP):
            inner = inner.payload
        return isinstance(inner, ESP) and inner.spi in self.keyring

    def _reencrypt(self, outer) -> bool:
        """Decrypt, normalize the inside, encrypt again with an IV made from the sequence number; False (the frame
        left as it is) for ESP that does not verify: grelab broke it on purpose, the kernel never sends such.

        The new ESP (with its NAT-T UDP header, if any) goes under the kernel's own outer header, which
        keeps its TTL, TOS and flags; only lengths, checksums and the IPv4 id are redone."""
        esp = outer.getlayer(ESP)
        sa = self.keyring[esp.spi]
        if sa.mode == "transport" and (sa.src, sa.dst) != (outer.src, outer.dst):
            sa = dataclasses.replace(sa, src=outer.src, dst=outer.dst)  # the same SA on the other side of a NAT
        try:
            plain = decrypt(sa, outer.__class__(bytes(outer)))
        except GrelabError:
            return False
        self._walk(plain)
        _forget_checksums(plain)
        seq = esp.seq
        if self.renumber:
            if (esp.spi, seq) not in self._seqs:
                self._next[esp.spi] = self._next.get(esp.spi, 0) + 1
                self._seqs[(esp.spi, seq)] = self._next[esp.spi]
            seq = self._seqs[(esp.spi, seq)]
        again = encrypt(self.stand_ins.get(esp.spi, sa), plain.__class__(bytes(plain)), seq=seq)  # tunnel mode: under a new outer header
        outer.remove_payload()
        outer.add_payload(again.payload)
        if isinstance(outer, IP):
            outer.len, outer.chksum, outer.id = None, None, 0
        else:
            outer.plen = None
        return True


def _forget_checksums(pkt: Packet) -> None:
    """Make scapy recompute the checksums of every layer on the next build."""
    layer = pkt
    while layer is not None and layer.name != "NoPayload":
        if isinstance(layer, (IP, TCP, UDP)):
            layer.chksum = None
        if isinstance(layer, GRE) and layer.chksum_present:
            layer.chksum = None
        layer = layer.payload
