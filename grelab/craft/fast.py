"""The fast path: many packets that differ only in a few fields, built from one template without scapy per packet.

scapy builds ~2,400 GRE packets/s; a stream of a million is built here in about a second:
  - Stream: the template's bytes are repeated N times, and each varying field is written for all N packets at
    once as a column (bytearray extended-slice assignment). Checksums covering a varying field are updated the
    same way: a ones' complement sum is the data's value modulo 0xffff, so a field that changes by d moves the
    checksum by -d (RFC 1624), and scaling by 256 accounts for a field ending on an odd byte.
  - FastESP: ESP with the `cryptography` package directly (the objects of the algorithm's row), the headers
    copied from scapy's encryption of the first packet.
Both are byte-identical to the scapy path for the same inputs (tests/test_craft_fast.py checks it).
"""
from __future__ import annotations

import struct
import sys
from array import array
from collections.abc import Iterable, Mapping, Sequence
from math import lcm

from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import _ICMPv6
from scapy.layers.ipsec import ESP
from scapy.layers.l2 import GRE
from scapy.packet import Packet

from grelab.craft import esp
from grelab.craft.dissect import dissect_ip, ip_length
from grelab.errors import InputError, check_int

_ARRAY_CODES = {1: "B", 2: "H", 4: "I"}


class Stream:
    """Packets like `template`, with fields varied per packet: build({(GRE, "sequence_number"): range(1, 1001)})."""

    def __init__(self, template: Packet):
        if not isinstance(template, Packet):
            raise InputError("template", type(template).__name__, "a scapy packet")
        self.raw = bytes(template)
        self.packet = template.__class__(self.raw)  # dissected: every field holds its built value
        self._checksums = []  # (checksum offset, covered from, covered to, zero is sent as 0xffff), innermost first
        for layer, start, end in self._layers():
            if isinstance(layer, IP):
                covered = start + layer.ihl * 4  # the header only
            elif isinstance(layer, (ICMP, UDP, TCP, _ICMPv6)) or isinstance(layer, GRE) and layer.chksum_present:
                covered = end  # to the end of the packet (UDP, TCP and ICMPv6 add a constant pseudo-header)
            else:
                continue
            offset = _field(layer, "cksum" if isinstance(layer, _ICMPv6) else "chksum")[0]
            self._checksums.append((start + offset, start, covered, isinstance(layer, UDP)))
        self._checksums.reverse()

    def _key(self, key) -> tuple[type, str]:
        """(layer class, field name) from a key of vary: the class, or its name among the template's layers."""
        layers = [type(layer) for layer, _, _ in self._layers()]
        if not isinstance(key, tuple) or len(key) != 2 or not isinstance(key[1], str):
            raise InputError("vary key", key, "(layer, field name), e.g. (GRE, 'sequence_number')")
        layer, name = key
        if isinstance(layer, str):
            named = [c for c in layers if c.__name__ == layer]
            if not named:
                raise InputError("vary key layer", layer, "one of the template's layers: "
                                 + ", ".join(dict.fromkeys(c.__name__ for c in layers)))
            layer = named[0]
        if not (isinstance(layer, type) and issubclass(layer, Packet)):
            raise InputError("vary key layer", layer, "a scapy layer class (GRE, IP, ...) or its name")
        return layer, name

    def field(self, layer_class: type, name: str) -> tuple[int, int]:
        """(offset in the packet, width in bytes) of a field of the first `layer_class` layer."""
        for layer, start, _ in self._layers():
            if isinstance(layer, layer_class):
                offset, width = _field(layer, name)
                return start + offset, width
        raise InputError("layer", layer_class.__name__, "a layer of the template: " + self.packet.summary())

    def build(self, vary: Mapping[tuple[type, str], Iterable[int]]) -> list[bytes]:
        """One packet per value: vary maps (layer class, field name) to that field's values, all the same length.
        The layer may also be named by its class name ("GRE"), as the template's summary shows it."""
        if not isinstance(vary, Mapping) or not vary:
            raise InputError("vary", vary, "a dict {(layer, field name): values}, at least one field")
        columns, counts = [], {}
        for key, values in vary.items():
            layer_class, name = self._key(key)
            if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
                raise InputError(f"{layer_class.__name__}.{name} values", values, "integers (a range or a list)")
            values = values if isinstance(values, Sequence) else list(values)
            if not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
                raise InputError(f"{layer_class.__name__}.{name} values", [v for v in values
                                 if not isinstance(v, int) or isinstance(v, bool)][:3], "integers")
            offset, width = self.field(layer_class, name)
            _check_values(f"{layer_class.__name__}.{name}", values, width)
            columns.append((offset, width, values))
            counts[f"{layer_class.__name__}.{name}"] = len(values)
        if len(set(counts.values())) != 1:
            raise InputError("vary", counts, "one or more fields, each with the same number of values")
        count = len(columns[0][2])
        # A region whose checksum is right sums to a constant (its pseudo-header is fixed: addresses are not
        # integer fields), so a checksum around it ignores what varies inside it.
        sealed = []
        for checksum_at, low, high, zero_as_ffff in self._checksums:
            inside = [c for c in columns if low <= c[0] < high and c[0] != checksum_at
                      and not any(a <= c[0] < b for a, b in sealed)]
            if inside:
                columns.append((checksum_at, 2, self._checksum_column(checksum_at, low, inside, zero_as_ffff)))
            sealed.append((low, high))
        length = len(self.raw)
        buf = bytearray(self.raw * count)
        for offset, width, values in columns:
            column = array(_ARRAY_CODES[width], values)
            if sys.byteorder == "little":
                column.byteswap()
            data = column.tobytes()
            for k in range(width):
                buf[offset + k::length] = data[k::width]
        out = bytes(buf)
        return [out[i:i + length] for i in range(0, count * length, length)]

    def _checksum_column(self, checksum_at, low, inside, zero_as_ffff) -> list[int]:
        # checksum = -(sum) mod 0xffff; each field adds value * 256**(1 if it ends on an odd byte of the region).
        base = int.from_bytes(self.raw[checksum_at:checksum_at + 2], "big")
        terms = []
        for offset, width, values in inside:
            scale = 1 if (offset + width - low) % 2 == 0 else 256
            base += scale * int.from_bytes(self.raw[offset:offset + width], "big")
            terms.append((scale, values))
        base %= 0xFFFF
        if len(terms) == 1:  # the usual case, kept apart because it is twice as fast
            scale, values = terms[0]
            column = [(base - scale * v) % 0xFFFF for v in values]
        else:
            scales = [scale for scale, _ in terms]
            rows = zip(*(values for _, values in terms))
            column = [(base - sum(s * v for s, v in zip(scales, row))) % 0xFFFF for row in rows]
        if zero_as_ffff:  # UDP sends a computed 0 as 0xffff (RFC 768)
            column = [c or 0xFFFF for c in column]
        return column

    def _layers(self):
        """(layer, start offset, end offset) for each layer of the template."""
        layer, total = self.packet, len(self.raw)
        while layer:
            yield layer, total - len(bytes(layer)), total
            layer = layer.payload


class FastESP:
    """ESP-protect same-length IP/IPv6 packets for one SA: packet i gets sequence number first_seq + i (64-bit
    with ESN) and the IV grelab.craft.esp.default_iv derives from it, as grelab.craft.esp.encrypt would. The
    algorithm's row (grelab.craft.algorithms) gives the `cryptography` objects: its cipher's seal and, for a
    cipher that is not a combined mode, its integrity algorithm's MAC."""

    def __init__(self, sa: esp.SA):
        esp.check_can_encrypt(sa)
        self.sa, algo = sa, sa.algo
        self.spi = struct.pack("!I", sa.spi)
        self.align = lcm(algo.block, 4)  # RFC 4303 2.4: the encrypted part ends on a 4-byte boundary
        self.seal = algo.cipher.seal(sa.key)
        self.mac = algo.integrity.mac(sa.auth_key) if algo.integrity and algo.integrity.mac else None

    def encrypt(self, packets: Sequence[bytes], first_seq: int = 1) -> list[bytes]:
        if not packets:
            return []
        sa, algo = self.sa, self.sa.algo
        check_int("ESP sequence number", first_seq, 1, sa.max_seq - len(packets) + 1)
        sample = packets[0]
        if not isinstance(sample, bytes):
            raise InputError("packet 0", type(sample).__name__, "the bytes of an IPv4 or IPv6 packet")
        dissect_ip(sample)  # a whole IP header, version 4 or 6, or MalformedPacket saying where it breaks
        if ip_length(sample) != len(sample):
            raise InputError("packet 0", f"{len(sample)} bytes", f"the {ip_length(sample)} bytes its IP header says")
        version = sample[0] >> 4
        keep = 0  # transport mode keeps the packet's own IP header
        if sa.mode == "transport":
            keep = (sample[0] & 0xF) * 4 if version == 4 else 40
            if version == 6 and sample[6] in (0, 43, 44, 60):
                raise InputError("packet", "IPv6 with extension headers", "a transport-mode packet without them")
        if keep:
            next_header = sample[9] if version == 4 else sample[6]
        else:
            next_header = 4 if version == 4 else 41  # tunnel mode: IPv4 or IPv6 in ESP
        # scapy encrypts the first packet; its bytes before the ESP header (the IP header, with NAT-T the UDP one)
        # are every packet's: the packets have the same length and the same header.
        first = esp.encrypt(sa, esp.dissect_ip(sample), seq=first_seq)
        raw = bytes(first)
        prefix = raw[:len(raw) - len(first[ESP])]
        padlen = -(len(sample) - keep + 2) % self.align
        trailer = bytes(range(1, padlen + 1)) + bytes((padlen, next_header))
        size, kept = len(sample), sample[:keep]

        def unlike(seq: int) -> InputError:
            i = seq - first_seq
            return InputError(f"packet {i}", f"{len(packets[i])} bytes",
                              f"{size} bytes with the same {'IP header' if keep else 'length'} as packet 0")

        out = []
        seal, mac, spi, esn = self.seal, self.mac, self.spi, sa.esn
        iv_from, icv_len = 16 - algo.iv_len, algo.icv_len
        for seq, packet in zip(range(first_seq, first_seq + len(packets)), packets):
            if len(packet) != size or packet[:keep] != kept:
                raise unlike(seq)
            low = struct.pack("!I", seq & 0xFFFFFFFF)
            iv = seq.to_bytes(16, "big")[iv_from:]  # esp.default_iv, inlined: this loop is the hot path
            # ESN: the high-order bits join the AAD between SPI and sequence number (RFC 4106 5, 4309 5, 4543 3.3,
            # 7634 2.1), or are appended to what the ICV covers (RFC 4303 2.2.1); they are never sent.
            high = struct.pack("!I", seq >> 32) if esn else b""
            body = spi + low + iv + seal(iv, packet[keep:] + trailer, spi + high + low)
            if mac is not None:
                body += mac(body + high)[:icv_len]
            out.append(prefix + body)
        if sa.nat_t and sa.version == 6:
            out = [_with_udp6_checksum(p) for p in out]
        return out


def _with_udp6_checksum(packet: bytes) -> bytes:
    # Summing 16-bit words modulo 0xffff equals the big-endian integer modulo 0xffff: one C call per packet.
    udp = bytearray(packet[40:])
    udp[6:8] = b"\0\0"
    pseudo = packet[8:40] + struct.pack("!II", len(udp), 17)
    total = int.from_bytes(pseudo, "big") + int.from_bytes(udp + b"\0" * (len(udp) % 2), "big")
    udp[6:8] = struct.pack("!H", (-total) % 0xFFFF or 0xFFFF)
    return packet[:40] + bytes(udp)


def _field(layer: Packet, name: str) -> tuple[int, int]:
    """(offset in the layer, width) of a whole-byte integer field, by building the fields before it."""
    built = b""
    for f in layer.fields_desc:
        if f.name == name:
            if isinstance(built, tuple) or f.fmt[-1] not in "BHI" or not isinstance(f.i2m(layer, 0), int):
                raise InputError("field", f"{type(layer).__name__}.{name}", "a 1-, 2- or 4-byte integer field")
            return len(built), struct.calcsize(f.fmt)
        built = f.addfield(layer, built, layer.getfieldval(f.name))
    raise InputError("field", f"{type(layer).__name__}.{name}",
                     "one of " + ", ".join(f.name for f in layer.fields_desc))


def _check_values(field: str, values: Sequence[int], width: int) -> None:
    if len(values) and not 0 <= min(values) <= max(values) < 1 << (8 * width):
        raise InputError(field, f"values from {min(values)} to {max(values)}", f"0 to {(1 << 8 * width) - 1}")
