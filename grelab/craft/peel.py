"""The reverse of crafting: captured bytes peeled layer by layer (through ESP, given its SA) down to GRE's passenger.

    >>> print(peel(frame, sas=[sa]))
    Ethernet / IPv4 192.0.2.1 > 192.0.2.2 / ESP spi=0x00000100 seq=1 gcm128 / GRE proto=0x86dd key=1 seq=2
    checksum=good -> IPv6 / ICMPv6 Echo Request ...

Any bytes are accepted: a layer that is cut short or inconsistent is described as Wireshark would
("[Malformed GRE at offset 34: key: truncated]", "IPv4 total length 84 > 60 bytes captured"), and an
outermost header that is not whole raises MalformedPacket naming the layer, offset and field.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.ipsec import ESP
from scapy.layers.l2 import GRE, GRE_PPTP, Ether
from scapy.packet import NoPayload, Packet, Raw
from scapy.utils import checksum

from grelab.craft import esp
from grelab.craft.dissect import check_whole, dissect, dissect_link, frame, guess_link
from grelab.errors import MalformedPacket

# What an IP header's protocol / next header says comes next, for naming a payload scapy could not parse.
NEXT = {47: GRE, 50: ESP, 17: UDP}


@dataclass
class Peeled:
    """What peel found: one description per layer, outermost first, and GRE's passenger (None if not reached)."""
    layers: list[str] = field(default_factory=list)
    passenger: Packet | None = None
    gre: GRE | None = None
    checksum_ok: bool | None = None  # the GRE checksum, when present
    esp_spi: int | None = None
    esp_seq: int | None = None
    esp_icv: str | None = None  # the innermost ESP's ICV verdict (grelab.craft.esp.ICV_VERDICTS)
    passenger_problem: str | None = None  # the passenger's own header is cut short

    def __str__(self) -> str:
        passenger = f"[{self.passenger_problem}]" if self.passenger_problem else \
            self.passenger.summary() if self.passenger is not None else "(passenger not reached)"
        return " / ".join(self.layers) + " -> " + passenger


def peel(data: bytes | Packet, sas: Iterable[esp.SA] = (), link: str = "auto", verify: bool = True,
         seq_hi: int = 0) -> Peeled:
    """Dissect data (an Ethernet frame or an IP packet, told apart by grelab.craft.dissect.guess_link unless
    link="ethernet" or link="ip" says which), decrypt ESP with the SA of its SPI,
    and stop at the first GRE header: its payload is the passenger. Raises esp.IntegrityError on a bad ICV, unless
    verify=False (to look inside ESP whose integrity key is unknown), MalformedPacket when the outermost header is
    not whole. seq_hi: ESN's high-order bits (esp.decrypt)."""
    layer = data if isinstance(data, Packet) else dissect_link(data, link)
    wire = len(layer)
    sas = sas if hasattr(sas, "sas_for") else list(sas)  # Keys (grelab.craft.keys) or SAs
    report, ip = Peeled(), None
    while not isinstance(layer, NoPayload):
        if isinstance(layer, (IP, IPv6, GRE, UDP, ESP)) and layer.original:
            try:  # scapy leaves the fields past the end of short bytes at their defaults: say so instead
                check_whole(bytes(layer.original), type(layer), wire - len(layer))
            except MalformedPacket as exc:
                report.layers.append(f"[{exc}]")
                return report
        if isinstance(layer, Ether):
            report.layers.append("Ethernet")
        elif isinstance(layer, (IP, IPv6)):
            ip = layer
            problem = _ip_problem(layer, wire - len(layer))
            report.layers.append(f"IPv{layer.version} {layer.src} > {layer.dst}" + problem)
            if problem.startswith(" [malformed"):
                return report  # what follows is not what its header says it is
        elif isinstance(layer, UDP) and isinstance(layer.payload, ESP):
            report.layers.append(f"UDP {layer.sport} > {layer.dport} (NAT-T)")
        elif isinstance(layer, ESP):
            report.esp_spi, report.esp_seq = layer.spi, layer.seq
            opened = esp.open_with(sas, ip, seq_hi, verify)
            if opened is None:
                report.layers.append(f"ESP spi=0x{layer.spi:08x} seq={layer.seq} (no SA given: still encrypted)")
                return report
            report.layers.append(f"ESP spi=0x{layer.spi:08x} seq={layer.seq} {opened.sa.algorithm} {opened.sa.mode}"
                                 + ("" if opened.icv == "good" else f" ({esp.ICV_VERDICTS[opened.icv]})"))
            report.esp_icv = opened.icv
            clear = opened.kept  # the outer header kept: offsets below count in the decrypted packet
            layer = clear.payload
            wire = len(clear) + wire - len(ip)
            continue
        elif isinstance(layer, GRE_PPTP):  # protocol type 0x880b: PPTP's enhanced GRE (RFC 2637), a call ID
            report.layers.append(f"GRE (PPTP, RFC 2637) version={layer.version} proto=0x{layer.proto:04x} "
                                 f"call_id={layer.call_id}")
            return report
        elif isinstance(layer, GRE):
            report.gre, report.passenger = layer, layer.payload
            report.layers.append(_describe_gre(layer, report))
            inner = layer.payload
            if isinstance(inner, (IP, IPv6, Ether)) and inner.original:
                try:
                    check_whole(bytes(inner.original), type(inner), wire - len(inner))
                except MalformedPacket as exc:
                    report.passenger_problem = str(exc)
            return report
        elif isinstance(layer, Raw) and _next_of(layer.underlayer) is not None:
            # scapy gave up on the header the IP layer announces: say where it breaks
            offset = wire - len(layer)
            try:
                dissect(bytes(layer), _next_of(layer.underlayer), offset)
                report.layers.append(layer.name)
            except MalformedPacket as exc:
                report.layers.append(f"[{exc}]")
            return report
        else:
            report.layers.append(layer.name)
        layer = layer.payload
    return report


def describe(data: bytes, sas: Iterable[esp.SA] = (), peeled: Peeled | None = None) -> str:
    """One line for a captured frame: peeled (str(Peeled)) when it holds GRE or ESP, else scapy's summary of it.
    Raises what peel raises (an ESP packet of a known SA that does not decrypt)."""
    peeled = peel(data, sas) if peeled is None else peeled
    if peeled.gre is not None or peeled.esp_spi is not None:
        return str(peeled)
    if not isinstance(data, (bytes, bytearray)):
        return data.summary()
    return (dissect_link(data, "ip") if guess_link(data) == "ip" else frame(data)).summary()


def _next_of(under) -> type | None:
    """The layer class an IPv4/IPv6 header announces as its payload (GRE, ESP, UDP), if we know it."""
    if isinstance(under, IP):
        return NEXT.get(under.proto) if under.frag == 0 else None
    if isinstance(under, IPv6):
        return NEXT.get(under.nh)
    return None


def _ip_problem(ip, offset: int) -> str:
    """" [...]" when the header's lengths disagree with the bytes there are, as Wireshark flags it."""
    have = len(ip.original) if ip.original else len(ip)
    if ip.version != (4 if isinstance(ip, IP) else 6):
        return f" [malformed IPv{4 if isinstance(ip, IP) else 6} at offset {offset}: version {ip.version}]"
    if isinstance(ip, IP):
        if ip.ihl < 5:
            return f" [malformed IPv4 at offset {offset}: ihl {ip.ihl} < 5]"
        if ip.len < ip.ihl * 4:
            return f" [malformed IPv4 at offset {offset}: total length {ip.len} < header length {ip.ihl * 4}]"
        if ip.len > have:
            return f" [truncated: IPv4 total length {ip.len} > {have} bytes captured]"
    elif 40 + ip.plen > have:
        return f" [truncated: IPv6 payload length {ip.plen} > {have - 40} bytes captured]"
    return ""


def _describe_gre(gre: GRE, report: Peeled) -> str:
    words = [f"GRE proto=0x{gre.proto:04x}"]
    if gre.key_present:
        words.append(f"key={gre.key}")
    if gre.seqnum_present:
        words.append(f"seq={gre.sequence_number}")
    if gre.routing_present:
        words.append("routing=1 (RFC 1701 source routes: not parsed)")
    if gre.chksum_present:
        # RFC 2784: over the GRE header and payload as they were on the wire, not as scapy would rebuild them
        report.checksum_ok = checksum(bytes(gre.original) if gre.original else bytes(gre)) == 0
        words.append("checksum=" + ("good" if report.checksum_ok else "BAD"))
    if gre.version:
        words.append(f"version={gre.version}")
    return " ".join(words)
