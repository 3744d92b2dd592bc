"""ESP (RFC 4303) around GRE, through scapy's SecurityAssociation: the reference path the fast path must match.

An SA here is one direction of one IPsec SA: who sends (src) to whom (dst), the SPI, the algorithm and its keys,
transport or tunnel mode, and optionally NAT traversal in UDP (RFC 3948). The same SA feeds scapy, the fast path
(grelab.craft.fast) and Wireshark's esp_sa table (grelab.craft.esp_sa).
"""
from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.ipsec import ESP, IPSecIntegrityError, SecurityAssociation
from scapy.packet import Packet

from grelab.craft.dissect import dissect, dissect_ip
from grelab.craft.gre import address
from grelab.errors import GrelabError, InputError, MalformedPacket, check_choice, check_int


@dataclass(frozen=True)
class Algorithm:
    """One ESP transform: a cipher (maybe NULL) plus integrity (an AEAD's own tag, or an HMAC)."""
    name: str  # grelab's name, as on the command line
    scapy_crypt: str
    scapy_auth: str | None
    key_len: int  # cipher key bytes, including GCM's 4-byte salt (RFC 4106 section 8.1)
    auth_key_len: int  # 0 when the cipher authenticates itself
    iv_len: int
    block: int  # the cipher's block: padding aligns the encrypted part to max(block, 4) (RFC 4303 2.4)
    icv_len: int
    wireshark_crypt: str  # exact names from Wireshark's esp_sa table
    wireshark_auth: str


ALGORITHMS = {a.name: a for a in (
    Algorithm("gcm128", "AES-GCM", None, 16 + 4, 0, 8, 1, 16, "AES-GCM with 16 octet ICV [RFC4106]", "NULL"),
    Algorithm("gcm256", "AES-GCM", None, 32 + 4, 0, 8, 1, 16, "AES-GCM with 16 octet ICV [RFC4106]", "NULL"),
    Algorithm("cbc128-sha256", "AES-CBC", "SHA2-256-128", 16, 32, 16, 16, 16, "AES-CBC [RFC3602]",
              "HMAC-SHA-256-128 [RFC4868]"),
    Algorithm("cbc256-sha256", "AES-CBC", "SHA2-256-128", 32, 32, 16, 16, 16, "AES-CBC [RFC3602]",
              "HMAC-SHA-256-128 [RFC4868]"),
    Algorithm("null-sha256", "NULL", "SHA2-256-128", 0, 32, 0, 1, 16, "NULL", "HMAC-SHA-256-128 [RFC4868]"),
)}
MODES = ("transport", "tunnel")
NAT_T_PORT = 4500  # RFC 3948


class IntegrityError(GrelabError):
    """An ESP packet whose ICV does not verify: wrong key, wrong SA, or bytes changed on the way."""


@dataclass(frozen=True)
class SA:
    """One direction of an IPsec SA. src/dst are the ESP packet's outer addresses (in transport mode, the GRE
    endpoints themselves). key: the cipher key (GCM: key || 4-byte salt); auth_key: the HMAC key.
    nat_t: (source port, destination port) of the UDP encapsulation, or None."""
    spi: int
    algorithm: str
    key: bytes
    auth_key: bytes = b""
    src: str = "192.0.2.1"
    dst: str = "192.0.2.2"
    mode: str = "transport"
    nat_t: tuple[int, int] | None = None

    def __post_init__(self):
        check_int("SPI", self.spi, 1, 0xFFFFFFFF)  # 0 is reserved (RFC 4303 2.1); an int, not "0x10"
        algo = ALGORITHMS[check_choice("ESP algorithm", self.algorithm, list(ALGORITHMS))]
        _check_key(f"{self.algorithm} key", self.key, algo.key_len)
        _check_key(f"{self.algorithm} auth_key", self.auth_key, algo.auth_key_len)
        check_choice("ESP mode", self.mode, MODES)
        src = address("SA src", self.src)
        object.__setattr__(self, "src", src)  # one spelling, for comparisons and Wireshark's table
        object.__setattr__(self, "dst", address("SA dst", self.dst, f"ipv{self.version}"))
        if self.nat_t is not None:
            if not isinstance(self.nat_t, (tuple, list)) or len(self.nat_t) != 2:
                raise InputError("nat_t", self.nat_t, "(source port, destination port)")
            for port in self.nat_t:
                check_int("NAT-T port", port, 1, 0xFFFF)

    @property
    def algo(self) -> Algorithm:
        return ALGORITHMS[self.algorithm]

    @property
    def version(self) -> int:
        return ipaddress.ip_address(self.src).version

    def scapy(self, seq: int) -> SecurityAssociation:
        """scapy's SecurityAssociation for this SA, its next sequence number set to seq."""
        algo = self.algo
        outer = IP if self.version == 4 else IPv6
        return SecurityAssociation(
            ESP, spi=self.spi, seq_num=seq, crypt_algo=algo.scapy_crypt, crypt_key=self.key or None,
            auth_algo=algo.scapy_auth, auth_key=self.auth_key or None,
            tunnel_header=outer(src=self.src, dst=self.dst) if self.mode == "tunnel" else None,
            nat_t_header=UDP(sport=self.nat_t[0], dport=self.nat_t[1]) if self.nat_t else None)


def nat_t_ports(enabled: bool) -> tuple[int, int] | None:
    """The usual NAT-T encapsulation: UDP 4500 to 4500."""
    return (NAT_T_PORT, NAT_T_PORT) if enabled else None


def default_iv(algorithm: str, seq: int) -> bytes:
    """A reproducible IV derived from the sequence number. A counter is what RFC 4106 asks for GCM; for CBC
    (which wants unpredictable IVs) it is fine for a test harness, never for real traffic."""
    return seq.to_bytes(16, "big")[16 - ALGORITHMS[algorithm].iv_len:]


def encrypt(sa: SA, packet: Packet, seq: int = 1, iv: bytes | None = None) -> Packet:
    """ESP-protect an IP/IPv6 packet (typically IP/GRE/...) with scapy: transport mode keeps the packet's IP
    header (which must carry the SA's addresses), tunnel mode wraps the whole packet in a new one."""
    if not isinstance(sa, SA):
        raise InputError("sa", type(sa).__name__, "a grelab.craft.SA")
    seq = check_int("ESP sequence number", seq, 1, 0xFFFFFFFF)
    iv = default_iv(sa.algorithm, seq) if iv is None else iv
    _check_key("ESP IV", iv, sa.algo.iv_len)
    if not isinstance(packet, (IP, IPv6)):
        raise InputError("packet", type(packet).__name__, "an IP or IPv6 packet")
    if sa.mode == "transport" and (address("packet src", packet.src), address("packet dst", packet.dst)) != \
            (sa.src, sa.dst):
        raise InputError("packet addresses", f"{packet.src} -> {packet.dst}",
                         f"the transport-mode SA's {sa.src} -> {sa.dst}")
    protected = sa.scapy(seq).encrypt(packet, seq_num=seq, iv=iv)
    if sa.nat_t and sa.version == 6:
        # scapy zeroes the UDP checksum as RFC 3948 allows for IPv4; IPv6 forbids a zero UDP checksum (RFC 8200).
        protected[UDP].chksum = None
        protected = IPv6(bytes(protected))
    return protected


def decrypt(sa: SA, packet: Packet | bytes) -> Packet:
    """The packet inside an ESP packet: with the outer header (transport mode) or without it (tunnel mode).
    Raises IntegrityError when the ICV does not verify, MalformedPacket when the ESP cannot hold this SA's
    IV, padding and ICV."""
    if not isinstance(sa, SA):
        raise InputError("sa", type(sa).__name__, "a grelab.craft.SA")
    if isinstance(packet, (bytes, bytearray)):
        packet = dissect_ip(bytes(packet))
    elif not isinstance(packet, Packet):
        raise InputError("packet", type(packet).__name__, "an IP or IPv6 packet (scapy) or its bytes")
    wrong = {IP: 4, IPv6: 6}.get(type(packet))
    if wrong is not None and packet.version != wrong:  # scapy would go on with the other family's fields
        raise MalformedPacket(f"IPv{wrong}", 0, "version", f"{packet.version} in an IPv{wrong} header")
    esp = packet.getlayer(ESP)
    if esp is None:
        raise InputError("packet", packet.summary(), "an IP or IPv6 packet carrying ESP")
    if esp.spi != sa.spi:
        raise InputError("ESP SPI", f"0x{esp.spi:08x}", f"the SA's SPI 0x{sa.spi:08x}")
    offset = len(packet) - len(esp)
    _check_esp_length(sa, esp, offset)
    try:
        return sa.scapy(esp.seq).decrypt(packet)
    except IPSecIntegrityError:
        raise IntegrityError(f"ESP SPI 0x{sa.spi:08x} seq {esp.seq}: integrity check failed ({sa.algorithm}): "
                             "wrong key, wrong SA, or the packet was changed") from None
    except (ValueError, struct.error, IndexError, TypeError) as exc:  # what authenticated bytes still hide
        raise MalformedPacket("ESP", offset + 8, "data", f"does not decrypt ({exc})") from None


def _check_esp_length(sa: SA, esp: ESP, offset: int) -> None:
    """The ESP data (after SPI and sequence number) holds the IV, the pad length and next header, and the
    ICV, with the encrypted part a whole number of cipher blocks (RFC 4303 2.4): otherwise scapy's and
    cryptography's errors ("Nonce must be between 8 and 128 bytes") would speak instead."""
    algo, data = sa.algo, len(esp.data or b"")
    least = algo.iv_len + 2 + algo.icv_len
    if data < least:
        raise MalformedPacket("ESP", offset + 8, "data", f"{data} bytes; {sa.algorithm} needs at least "
                              f"{least} (IV {algo.iv_len}, pad length and next header 2, ICV {algo.icv_len})")
    if (data - algo.iv_len - algo.icv_len) % max(algo.block, 4):
        raise MalformedPacket("ESP", offset + 8 + algo.iv_len, "encrypted data",
                              f"{data - algo.iv_len - algo.icv_len} bytes, not a multiple of "
                              f"{max(algo.block, 4)} ({sa.algorithm})")


def decrypt_frame(frame: bytes, sas) -> bytes:
    """An Ethernet frame with its ESP (of one of `sas`, by SPI) decrypted in place: Ethernet / the decrypted
    packet, as the receiver's stack sees it. Frames without ESP, or of another SA, come back unchanged, told
    from their bytes without dissecting them."""
    spi = _esp_spi(frame)
    sa = next((sa for sa in sas if sa.spi == spi), None) if spi is not None else None
    if sa is None:
        return frame
    from scapy.layers.l2 import Ether  # here: the rest of this module works on IP packets only
    ether = dissect(frame, Ether)
    plain = decrypt(sa, ether.payload.copy())
    return bytes(ether.__class__(dst=ether.dst, src=ether.src, type=ether.type) / plain)


_IPV6_EXTENSIONS = (0, 43, 44, 60)  # hop-by-hop, routing, fragment, destination options: ESP may follow them


def _esp_spi(frame: bytes) -> int | None:
    """The SPI of the ESP in an Ethernet frame, read from its bytes: ESP right under the IPv4 header (protocol
    50), the IPv6 header (next header 50, after any extension headers; in a first fragment) or NAT-T's UDP
    header (port 4500, RFC 3948). None when there is no ESP there (a zero SPI marks NAT-T's non-ESP)."""
    ethertype = frame[12:14]
    if ethertype == b"\x08\x00" and len(frame) >= 34:
        proto, offset = frame[23], 14 + (frame[14] & 0x0F) * 4
    elif ethertype == b"\x86\xdd" and len(frame) >= 54:
        proto, offset = frame[20], 54
        while proto in _IPV6_EXTENSIONS and len(frame) >= offset + 4:
            if proto == 44 and int.from_bytes(frame[offset + 2:offset + 4], "big") >> 3:
                return None  # a later fragment: no ESP header in it
            proto, offset = frame[offset], offset + (8 if proto == 44 else (frame[offset + 1] + 1) * 8)
    else:
        return None
    if proto == 17 and len(frame) >= offset + 8 and NAT_T_PORT in struct.unpack_from("!HH", frame, offset):
        offset += 8
    elif proto != 50:
        return None
    return int.from_bytes(frame[offset:offset + 4], "big") if len(frame) >= offset + 4 else None


def _check_key(field: str, value: bytes, length: int) -> None:
    if not isinstance(value, bytes) or len(value) != length:
        shown = f"{len(value)} bytes" if isinstance(value, bytes) else value
        raise InputError(field, shown, f"exactly {length} bytes" if length else "no key (empty)")
