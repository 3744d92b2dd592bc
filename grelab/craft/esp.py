"""ESP (RFC 4303) around GRE, through scapy's SecurityAssociation: the reference path the fast path must match.

An SA here is one direction of one IPsec SA: who sends (src) to whom (dst), the SPI, the algorithm and its keys,
transport or tunnel mode, optionally NAT traversal in UDP (RFC 3948) and extended sequence numbers (ESN, RFC 4303
2.2.1: 64-bit sequence numbers whose high-order 32 bits are not sent but go into the ICV). The same SA feeds scapy,
the fast path (grelab.craft.fast), the kernel (grelab.craft.algorithms.xfrm_algorithm_words) and Wireshark's esp_sa
table (grelab.craft.esp_sa). The algorithms are rows of grelab.craft.algorithms.ALGORITHMS.
"""
from __future__ import annotations

import dataclasses
import ipaddress
import struct
from dataclasses import dataclass

from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrFragment, IPv6ExtHdrHopByHop, IPv6ExtHdrRouting
from scapy.layers.ipsec import ESP, CryptAlgo, IPSecIntegrityError, SecurityAssociation
from scapy.packet import Packet, Raw

from grelab.craft.dissect import dissect, dissect_ip
from grelab.craft.algorithms import ALGORITHMS, DECRYPT_ONLY, Algorithm
from grelab.craft.gre import address
from grelab.craft.esp_diagnosis import likely_cause, padding_problem
from grelab.errors import GrelabError, InputError, MalformedPacket, check_choice, check_int


MODES = ("transport", "tunnel")
IPV6_EXTENSION_LAYERS = (IPv6ExtHdrHopByHop, IPv6ExtHdrDestOpt, IPv6ExtHdrRouting, IPv6ExtHdrFragment)
NAT_T_PORT = 4500  # RFC 3948


class IntegrityError(GrelabError):
    """An ESP packet whose ICV does not verify: wrong key, wrong SA, or bytes changed on the way."""


@dataclass(frozen=True)
class SA:
    """One direction of an IPsec SA. src/dst are the ESP packet's outer addresses (in transport mode, the GRE
    endpoints themselves). key: the cipher key (GCM: key || 4-byte salt); auth_key: the HMAC key.
    nat_t: (source port, destination port) of the UDP encapsulation, or None. esn: extended sequence numbers: the
    sequence numbers given to encrypt are 64-bit, decrypt is told the high-order bits it expects.
    mode None: not known (keys read from a file that does not say): decrypt takes each packet's; encrypt and the
    DUTs need one. An algorithm of DECRYPT_ONLY (an ICV without its integrity key) opens ESP and does nothing else."""
    spi: int
    algorithm: str
    key: bytes
    auth_key: bytes = b""
    src: str = "192.0.2.1"
    dst: str = "192.0.2.2"
    mode: str | None = "transport"
    nat_t: tuple[int, int] | None = None
    esn: bool = False

    def __post_init__(self):
        check_int("SPI", self.spi, 1, 0xFFFFFFFF)  # 0 is reserved (RFC 4303 2.1); an int, not "0x10"
        if self.algorithm not in ALGORITHMS and self.algorithm not in DECRYPT_ONLY:
            check_choice("ESP algorithm", self.algorithm, [*ALGORITHMS, "<cipher>-any<64|96|128|192|256> (opening only)"])
        algo = self.algo
        _check_key(f"{self.algorithm} key", self.key, algo.key_len)
        _check_key(f"{self.algorithm} auth_key", self.auth_key, algo.auth_key_len)
        if self.mode is not None:
            check_choice("ESP mode", self.mode, MODES)
        if not isinstance(self.esn, bool):
            raise InputError("esn", self.esn, "True or False")
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
        return ALGORITHMS.get(self.algorithm) or DECRYPT_ONLY[self.algorithm]

    @property
    def version(self) -> int:
        return ipaddress.ip_address(self.src).version

    @property
    def max_seq(self) -> int:
        return (1 << 64 if self.esn else 1 << 32) - 1

    def scapy(self, seq: int) -> SecurityAssociation:
        """scapy's SecurityAssociation for this SA, its next sequence number set to seq (with ESN, 64 bits: scapy
        takes the high-order half apart)."""
        algo = self.algo
        outer = IP if self.version == 4 else IPv6
        sa = SecurityAssociation(
            ESP, spi=self.spi, seq_num=seq & 0xFFFFFFFF, crypt_algo=algo.scapy_crypt, crypt_key=self.key or None,
            crypt_icv_size=algo.cipher.icv_len or None, auth_algo=algo.scapy_auth, auth_key=self.auth_key or None,
            tunnel_header=outer(src=self.src, dst=self.dst) if self.mode == "tunnel" else None,
            nat_t_header=UDP(sport=self.nat_t[0], dport=self.nat_t[1]) if self.nat_t else None,
            esn_en=self.esn, esn=seq >> 32)
        if algo.cipher.scapy_algo is not None:
            sa.crypt_algo = algo.cipher.scapy_algo
        if algo.integrity is not None and algo.integrity.scapy_algo is not None:
            sa.auth_algo = algo.integrity.scapy_algo
        return sa


def check_can_encrypt(sa: SA) -> None:
    """InputError unless sa can make ESP (grelab's encryption, a DUT's xfrm state): a known mode, and an algorithm
    that makes its ICV (not one of DECRYPT_ONLY)."""
    if not isinstance(sa, SA):
        raise InputError("sa", type(sa).__name__, "a grelab.craft.SA")
    if sa.algorithm not in ALGORITHMS:
        raise InputError("ESP algorithm", sa.algorithm, "one of grelab craft --help's: this one's ICV cannot be made "
                         "without its integrity key (it opens captured ESP only)")
    if sa.mode is None:
        raise InputError("ESP mode", None, "transport or tunnel: an SA that makes ESP needs one")


def nat_t_ports(enabled: bool) -> tuple[int, int] | None:
    """The usual NAT-T encapsulation: UDP 4500 to 4500."""
    return (NAT_T_PORT, NAT_T_PORT) if enabled else None


def default_iv(algorithm: str, seq: int) -> bytes:
    """A reproducible IV derived from the sequence number. A counter is what RFC 4106 asks for GCM; for CBC
    (which wants unpredictable IVs) it is fine for a test harness, never for real traffic."""
    return seq.to_bytes(16, "big")[16 - ALGORITHMS[algorithm].iv_len:]


def encrypt(sa: SA, packet: Packet, seq: int = 1, iv: bytes | None = None) -> Packet:
    """ESP-protect an IP/IPv6 packet (typically IP/GRE/...) with scapy: transport mode keeps the packet's IP
    header (which must carry the SA's addresses), tunnel mode wraps the whole packet in a new one. With ESN,
    seq is the 64-bit sequence number; its low-order 32 bits go on the wire."""
    check_can_encrypt(sa)
    seq = check_int("ESP sequence number", seq, 1, sa.max_seq)
    iv = default_iv(sa.algorithm, seq) if iv is None else iv
    _check_key("ESP IV", iv, sa.algo.iv_len)
    if not isinstance(packet, (IP, IPv6)):
        raise InputError("packet", type(packet).__name__, "an IP or IPv6 packet")
    if packet.version != (4 if isinstance(packet, IP) else 6):  # scapy would take a wrong one for the other
        raise InputError("packet IP version", packet.version, "4 for IP, 6 for IPv6")
    if sa.mode == "transport" and (address("packet src", packet.src), address("packet dst", packet.dst)) != \
            (sa.src, sa.dst):
        raise InputError("packet addresses", f"{packet.src} -> {packet.dst}",
                         f"the transport-mode SA's {sa.src} -> {sa.dst}")
    protected = sa.scapy(seq).encrypt(packet, seq_num=seq & 0xFFFFFFFF, iv=iv)
    if sa.nat_t and sa.version == 6:
        # scapy zeroes the UDP checksum as RFC 3948 allows for IPv4; IPv6 forbids a zero UDP checksum (RFC 8200).
        protected[UDP].chksum = None
        protected = IPv6(bytes(protected))
    return protected


@dataclass(frozen=True)
class Opened:
    """An ESP packet opened. packet: what the receiver's stack sees (transport mode: the IP header, next header set to
    the inner protocol, and the payload; tunnel mode: the inner packet). kept: the outer IP header kept either way,
    its next header the inner protocol (NAT-T's UDP header gone), and what ESP carried. sa: the SA as this packet
    used it, its mode and NAT-T ports read from the packet. icv: the verdict, ICV_VERDICTS."""
    packet: Packet
    kept: Packet
    sa: SA
    icv: str


ICV_VERDICTS = {"good": "ICV good", "unchecked": "ICV unchecked (no integrity key)",
                "not verified": "ICV not verified (verify=False)", "none": "no ICV (confidentiality only)"}


def decrypt(sa: SA, packet: Packet | bytes, seq_hi: int = 0, verify: bool = True) -> Packet:
    """The packet inside an ESP packet: with the outer header (transport mode) or without it (tunnel mode).
    seq_hi: with ESN, the high-order 32 bits of the sequence number the receiver expects (they are not sent).
    Raises IntegrityError when the ICV does not verify, saying what likely differs (key, ICV length, ESN or
    algorithm), MalformedPacket when the ESP cannot hold this SA's IV, padding and ICV. verify=False skips the
    check: to look inside ESP whose integrity key (or ESN state) is unknown. An SA whose mode is None takes the
    packet's (open_esp)."""
    return open_esp(sa, packet, seq_hi, verify).packet


def open_esp(sa: SA, packet: Packet | bytes, seq_hi: int = 0, verify: bool = True) -> Opened:
    """decrypt, telling more (Opened): the mode is the SA's, or when it has none the packet's (what ESP carried
    is an IPv4 or IPv6 packet: tunnel mode; anything else: transport mode); ESP inside UDP is NAT-T (RFC 3948)
    whatever the SA says, with the packet's ports."""
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
    seq_hi = check_int("ESN high-order bits", seq_hi, 0, 0xFFFFFFFF)
    udp = esp.underlayer if isinstance(esp.underlayer, UDP) else None
    sa = dataclasses.replace(sa, nat_t=(udp.sport, udp.dport) if udp else None)
    try:
        _check_esp_length(sa, esp, offset)
    except MalformedPacket:
        # Lengths that do not fit this SA may fit another ICV length or algorithm: say so when one verifies.
        cause = likely_cause(sa, packet, seq_hi) if verify and len(esp.data or b"") >= sa.algo.iv_len + 2 else ""
        if cause and not cause.startswith("likely cause: key"):
            raise IntegrityError(f"ESP SPI 0x{sa.spi:08x} seq {esp.seq}: integrity check failed ({sa.algorithm}): "
                                 + cause) from None
        raise
    # Opened as transport mode always (scapy keeps the outer header, next header set to what ESP carried); the
    # mode only decides what the receiver's stack sees after that.
    scapy_sa = dataclasses.replace(sa, mode="transport").scapy((seq_hi << 32 if sa.esn else 0) | esp.seq)
    unchecked = verify and not (sa.algo.icv_len and sa.algo.checks_icv)
    original = packet.copy() if unchecked else None  # scapy's decrypt edits the packet
    try:
        if not sa.nat_t and isinstance(packet, IPv6) and packet.nh != 50:
            kept = _decrypt_after_extensions(sa, scapy_sa, packet, esp, verify, seq_hi)
        elif not verify:
            kept = _decrypt_unverified(sa, scapy_sa, packet)
        else:
            kept = scapy_sa.decrypt(packet)  # scapy changes the packet only once it verified
    except IPSecIntegrityError:
        raise IntegrityError(f"ESP SPI 0x{sa.spi:08x} seq {esp.seq}: integrity check failed ({sa.algorithm}): "
                             + likely_cause(sa, packet, seq_hi)) from None
    except (ValueError, struct.error, IndexError, TypeError) as exc:  # what unauthenticated (or authenticated) bytes
        if unchecked and (problem := padding_problem(sa, original, seq_hi)):  # hide: a wrong key, when no ICV says so
            raise IntegrityError(f"ESP SPI 0x{sa.spi:08x} seq {esp.seq}: does not open with {sa.algorithm}: "
                                 f"{problem}: likely the wrong key") from None
        raise MalformedPacket("ESP", offset + 8, "data", f"does not decrypt ({exc})") from None
    carried = kept.payload
    while isinstance(carried, IPV6_EXTENSION_LAYERS):
        carried = carried.payload
    mode = sa.mode or ("tunnel" if isinstance(carried, (IP, IPv6)) else "transport")
    icv = "none" if not sa.algo.icv_len else "unchecked" if not sa.algo.checks_icv else "good" if verify \
        else "not verified"
    if unchecked:  # no ICV tells a wrong key: the padding does, almost surely
        problem = padding_problem(sa, original, seq_hi)
        if problem:
            raise IntegrityError(f"ESP SPI 0x{sa.spi:08x} seq {esp.seq}: does not open with {sa.algorithm} "
                                 f"({ICV_VERDICTS[icv]}): {problem}: likely the wrong key")
    return Opened(carried if mode == "tunnel" else kept, kept, dataclasses.replace(sa, mode=mode), icv)


def _decrypt_after_extensions(sa: SA, scapy_sa: SecurityAssociation, packet: Packet, esp: ESP, verify: bool,
                              seq_hi: int) -> Packet:
    """Transport-mode ESP after IPv6 extension headers (ip6gre's encapsulation limit is a destination option the
    kernel keeps before ESP): scapy would dissect the payload with the class of the first extension header. The
    ESP alone is decrypted (nothing before it is covered), and put back after the headers that preceded it."""
    bare = IPv6(bytes(IPv6(src=packet.src, dst=packet.dst, nh=50) / Raw(bytes(esp))))
    try:
        clear = scapy_sa.decrypt(bare) if verify else _decrypt_unverified(sa, scapy_sa, bare)
    except IPSecIntegrityError:
        raise IntegrityError(f"ESP SPI 0x{sa.spi:08x} seq {esp.seq}: integrity check failed ({sa.algorithm}): "
                             + likely_cause(sa, bare, seq_hi)) from None
    head = packet.copy()
    under = head[ESP].underlayer
    under.nh = clear.nh
    under.remove_payload()
    head.plen = None
    raw, inner = bytearray(bytes(head)), bytes(clear.payload)
    raw[4:6] = struct.pack("!H", len(raw) - 40 + len(inner))
    return IPv6(bytes(raw) + inner)


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


def _decrypt_unverified(sa: SA, scapy_sa: SecurityAssociation, packet: Packet) -> Packet:
    algo = sa.algo
    if algo.integrity is not None:  # the cipher does not need the ICV: scapy just skips the check
        return scapy_sa.decrypt(packet, verify=False)
    # A combined mode verifies as it decrypts: open the ciphertext with the cipher alone (the table's `unverified`),
    # then let scapy unframe it as NULL encryption with the same IV length.
    esp = packet[ESP]
    iv, body = esp.data[:algo.iv_len], esp.data[algo.iv_len:len(esp.data) - algo.icv_len]
    esp.data = iv + algo.cipher.unverified(sa.key)(iv, body)
    scapy_sa.crypt_algo, scapy_sa.crypt_icv_size = CryptAlgo("NULL", cipher=None, mode=None, iv_size=algo.iv_len), 0
    return scapy_sa.decrypt(packet, verify=False)


def sas_for(sas, spi: int, src: str, dst: str) -> list[SA]:
    """The SAs of `sas` that may open ESP with this SPI from src to dst, in the order to try them: sas is a
    grelab.craft.keys.Keys (keys files, wildcards) or SAs (by SPI; the one to dst first)."""
    if hasattr(sas, "sas_for"):
        return sas.sas_for(spi, src, dst)
    same = [sa for sa in sas if sa.spi == spi]
    return sorted(same, key=lambda sa: ipaddress.ip_address(sa.dst) != ipaddress.ip_address(dst))


def open_with(sas, packet: Packet, seq_hi: int = 0, verify: bool = True) -> Opened | None:
    """packet's ESP opened with the first of sas_for(...) that opens it; None when no SA is for it. When every one
    fails, the first one's error is raised."""
    esp = packet.getlayer(ESP)
    if esp is None:  # an ESP header cut short: scapy left it raw
        raise InputError("packet", packet.summary(), "an IP or IPv6 packet carrying ESP")
    failures = []
    for sa in sas_for(sas, esp.spi, packet.src, packet.dst):
        try:
            return open_esp(sa, packet.copy(), seq_hi, verify)  # scapy's decrypt edits the packet it is given
        except GrelabError as exc:
            failures.append(exc)
    if failures:
        raise failures[0]
    return None


def decrypt_frame(frame: bytes, sas) -> bytes:
    """An Ethernet frame with its ESP (of one of `sas`, by SPI) decrypted in place: Ethernet / the decrypted
    packet, as the receiver's stack sees it. Frames without ESP, or of another SA, come back unchanged, told
    from their bytes without dissecting them."""
    spi = frame_esp_spi(frame)
    if spi is None or not hasattr(sas, "sas_for") and all(sa.spi != spi for sa in sas):
        return frame
    from scapy.layers.l2 import Ether  # here: the rest of this module works on IP packets only
    ether = dissect(frame, Ether)
    opened = open_with(sas, ether.payload)
    if opened is None:
        return frame
    plain = opened.packet
    return bytes(ether.__class__(dst=ether.dst, src=ether.src, type={IP: 0x0800, IPv6: 0x86DD}.get(type(plain), ether.type)) / plain)


_IPV6_EXTENSIONS = (0, 43, 44, 60)  # hop-by-hop, routing, fragment, destination options: ESP may follow them


def frame_esp_spi(frame: bytes) -> int | None:
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
