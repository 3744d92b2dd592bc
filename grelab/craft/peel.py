"""The reverse of crafting: captured bytes peeled layer by layer (through ESP, given its SA or keys in any form
grelab.craft.keys reads) down to GRE's passenger.

    >>> print(peel(frame, sas=[sa]))
    Ethernet / IPv4 192.0.2.1 > 192.0.2.2 / ESP spi=0x00000100 seq=1 gcm128 transport / GRE proto=0x86dd key=1 seq=2
    checksum=good -> IPv6 / ICMPv6 Echo Request ...

Any bytes are accepted: a layer that is cut short or inconsistent is described as Wireshark would
("[Malformed GRE at offset 34: key: truncated]", "IPv4 total length 84 > 60 bytes captured"), and an
outermost header that is not whole raises MalformedPacket naming the layer, offset and field. What GRE carries
is read and said by its protocol type's row (grelab.craft.carried: ERSPAN, WCCP, NHRP...); PPTP's enhanced GRE
is a GRE like any other, its passenger PPP. The packet an ICMP or ICMPv6 error quotes is peeled as a quote: cut
short on purpose, so not called truncated, and its GRE is not the frame's.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from scapy.layers.inet import ICMP, IP, UDP, IPerror
from scapy.layers.inet6 import IPerror6, IPv6
from scapy.layers.ipsec import ESP
from scapy.layers.l2 import GRE, GRE_PPTP, Ether
from scapy.packet import NoPayload, Packet, Raw
from scapy.utils import checksum

from grelab.craft import esp
from grelab.craft.carried import carried, say
from grelab.craft.dissect import as_dissected, check_whole, dissect, dissect_link
from grelab.errors import MalformedPacket

# What an IP header's protocol / next header says comes next, for naming a payload scapy could not parse.
NEXT = {47: GRE, 50: ESP, 17: UDP}


@dataclass
class Peeled:
    """What peel found: one description per layer, outermost first, and GRE's passenger (None if not reached)."""
    layers: list[str] = field(default_factory=list)
    passenger: Packet | None = None
    gre: GRE | None = None  # GRE_PPTP for PPTP's enhanced GRE (version 1)
    checksum_ok: bool | None = None  # the GRE checksum, when present
    esp_spi: int | None = None
    esp_seq: int | None = None
    esp_icv: str | None = None  # the innermost ESP's ICV verdict (grelab.craft.esp.ICV_VERDICTS)
    passenger_problem: str | None = None  # the passenger's own header is cut short
    quote: Peeled | None = None  # the packet an ICMP or ICMPv6 error quotes, peeled
    packet: Packet | None = None  # the frame as dissected

    def __str__(self) -> str:
        text = " / ".join(self.layers)
        if self.quote is not None:
            return f"{text} / quoting [{self.quote.said()}]"
        passenger = f"[{self.passenger_problem}]" if self.passenger_problem else \
            say(self.gre, self.passenger) if self.passenger is not None else "(passenger not reached)"
        return text + " -> " + passenger

    def said(self) -> str:
        """str(self) when GRE was reached (or a quote), else just the layers: how a quote is said."""
        return str(self) if self.gre is not None or self.quote is not None else " / ".join(self.layers)


def peel(data: bytes | Packet, sas: Iterable[esp.SA] = (), link: str | int = "auto", verify: bool = True,
         seq_hi: int = 0) -> Peeled:
    """Dissect data (an Ethernet frame or an IP packet, told apart by grelab.craft.dissect.guess_link unless
    link="ethernet" or link="ip" says which; another link name or a pcap link type number for other links, as
    dissect_link takes them; or a scapy packet, dissected or just built), decrypt ESP with the first of `sas` (SAs,
    or grelab.craft.keys.Keys with their wildcards) that opens it,
    and stop at the first GRE header: its payload is the passenger. Raises esp.IntegrityError on a bad ICV, unless
    verify=False (to look inside ESP whose integrity key is unknown), MalformedPacket when the outermost header is
    not whole. seq_hi: ESN's high-order bits (esp.decrypt)."""
    layer = as_dissected(data) if isinstance(data, Packet) else dissect_link(data, link)
    sas = sas if hasattr(sas, "sas_for") else list(sas)  # Keys (grelab.craft.keys) or SAs
    report = _walk(layer, len(layer), sas, verify, seq_hi, quote=False)
    report.packet = layer
    return report


def describe(data: bytes | Packet, sas: Iterable[esp.SA] = (), peeled: Peeled | None = None,
             link: str | int = "auto") -> str:
    """One line for a captured frame: peeled (str(Peeled)) when it holds GRE, ESP or an ICMP error's quote, else
    scapy's summary of it. Raises what peel raises (an ESP packet of a known SA that does not decrypt)."""
    peeled = peel(data, sas, link) if peeled is None else peeled
    if peeled.gre is not None or peeled.esp_spi is not None or peeled.quote is not None:
        return str(peeled)
    # scapy's summary, and what peel found wrong (a packet cut short at the capture's snap length...)
    problems = "".join(" " + text[text.index("["):] for text in peeled.layers if "[" in text)
    return peeled.packet.summary() + problems


def _walk(layer: Packet, wire: int, sas, verify: bool, seq_hi: int, quote: bool) -> Peeled:
    """Peel from `layer` on; wire: the length of the whole frame (offsets are counted from its start). In a quote
    a header cut short is said to be so, not malformed."""
    report, ip = Peeled(), None
    while not isinstance(layer, NoPayload):
        if isinstance(layer, (IP, IPv6, GRE, UDP, ESP)) and layer.original:
            try:  # scapy leaves the fields past the end of short bytes at their defaults: say so instead
                check_whole(bytes(layer.original), type(layer), wire - len(layer))
            except MalformedPacket as exc:
                report.layers.append(f"{_name(layer)} (cut short on purpose)" if quote else f"[{exc}]")
                return report
        if isinstance(layer, Ether):
            report.layers.append("Ethernet")
        elif isinstance(layer, (IP, IPv6)):
            ip = layer
            problem = _ip_problem(layer, wire - len(layer), quote)
            report.layers.append(f"IPv{layer.version} {layer.src} > {layer.dst}" + problem)
            if problem.startswith(" [malformed"):
                return report  # what follows is not what its header says it is
        elif isinstance(layer.payload, (IPerror, IPerror6)):  # an ICMP or ICMPv6 error: what it quotes
            report.layers.append(_say_error(layer))
            report.quote = _walk(layer.payload, wire, (), verify, seq_hi, quote=True)
            return report
        elif isinstance(layer, UDP) and isinstance(layer.payload, ESP):
            report.layers.append(f"UDP {layer.sport} > {layer.dport} (NAT-T)")
        elif isinstance(layer, ESP):
            report.esp_spi, report.esp_seq = layer.spi, layer.seq
            opened = esp.open_with(sas, ip, seq_hi, verify) if ip is not None else None
            if opened is None:
                report.layers.append(f"ESP spi=0x{layer.spi:08x} seq={layer.seq}" +
                                     (" (quoted: still encrypted)" if quote else " (no SA given: still encrypted)"))
                return report
            report.layers.append(f"ESP spi=0x{layer.spi:08x} seq={layer.seq} {opened.sa.algorithm} {opened.sa.mode}"
                                 + ("" if opened.icv == "good" else f" ({esp.ICV_VERDICTS[opened.icv]})"))
            report.esp_icv = opened.icv
            clear = opened.kept  # the outer header kept: offsets below count in the decrypted packet
            layer = clear.payload
            wire = len(clear) + wire - len(ip)
            continue
        elif isinstance(layer, GRE):
            report.gre = layer
            if isinstance(layer, GRE_PPTP):  # protocol type 0x880b: PPTP's enhanced GRE (RFC 2637), PPP inside
                report.passenger = layer.payload
                report.layers.append(_describe_pptp(layer))
                return report
            report.passenger = carried(layer)
            report.layers.append(_describe_gre(layer, report))
            inner = report.passenger
            if quote and not len(inner):  # the quote ends with GRE's header
                report.passenger_problem = "cut short on purpose"
            elif isinstance(inner, (IP, IPv6, Ether)) and inner.original:
                try:
                    check_whole(bytes(inner.original), type(inner), wire - len(inner))
                except MalformedPacket as exc:
                    report.passenger_problem = f"{_name(inner)} (cut short on purpose)" if quote else str(exc)
            return report
        elif isinstance(layer, Raw) and _next_of(layer.underlayer) is not None:
            # scapy gave up on the header the IP layer announces: say where it breaks
            offset = wire - len(layer)
            try:
                dissect(bytes(layer), _next_of(layer.underlayer), offset)
                report.layers.append(layer.name)
            except MalformedPacket as exc:
                report.layers.append(f"{_name(_next_of(layer.underlayer))} (cut short on purpose)" if quote
                                     else f"[{exc}]")
            return report
        elif quote:  # the rest of a quote, as scapy summarises it (the quoted echo's id and sequence number)
            report.layers.append(_say_quoted(layer))
            return report
        else:
            report.layers.append(layer.name)
        layer = layer.payload
    return report


def _say_error(icmp: Packet) -> str:
    """An ICMP or ICMPv6 error in words: type and code (and the MTU a Packet Too Big or fragmentation needed says)."""
    if isinstance(icmp, ICMP):
        words = icmp.sprintf("ICMP %ICMP.type% %ICMP.code%")
        return words + (f" mtu={icmp.nexthopmtu}" if icmp.type == 3 and icmp.code == 4 else "")
    mtu = getattr(icmp, "mtu", None)
    return f"{icmp.name} code={icmp.code}" + (f" mtu={mtu}" if mtu is not None else "")


def _say_quoted(layer: Packet) -> str:
    """scapy's summary of a quote's rest; its ICMP in words (scapy's own summary of a quoted ICMP is its class name)."""
    if isinstance(layer, ICMP):
        return layer.sprintf(f"ICMP %{type(layer).__name__}.type% %{type(layer).__name__}.code%") + (
            f" (id: {layer.id:#x} seq: {layer.seq:#x})" if layer.type in (0, 8) else "")
    return layer.summary()


def _next_of(under) -> type | None:
    """The layer class an IPv4/IPv6 header announces as its payload (GRE, ESP, UDP), if we know it."""
    if isinstance(under, IP):
        return NEXT.get(under.proto) if under.frag == 0 else None
    if isinstance(under, IPv6):
        return NEXT.get(under.nh)
    return None


def _ip_problem(ip, offset: int, quote: bool = False) -> str:
    """" [...]" when the header's lengths disagree with the bytes there are, as Wireshark flags it; in a quote, a
    packet shorter than its header says is " (cut short on purpose: N of M bytes)"."""
    have = len(ip.original) if ip.original else len(ip)
    if ip.version != (4 if isinstance(ip, IP) else 6):
        return f" [malformed IPv{4 if isinstance(ip, IP) else 6} at offset {offset}: version {ip.version}]"
    if isinstance(ip, IP):
        if ip.ihl < 5:
            return f" [malformed IPv4 at offset {offset}: ihl {ip.ihl} < 5]"
        if ip.len == 0:  # as Wireshark reads it: a packet the sender's NIC was to cut into segments (TSO)
            return " (total length 0: TCP segmentation offload, length as captured)"
        if ip.len < ip.ihl * 4:
            return f" [malformed IPv4 at offset {offset}: total length {ip.len} < header length {ip.ihl * 4}]"
        length = ip.len
    else:
        length = 40 + ip.plen
    if length > have:
        if quote:
            return f" (cut short on purpose: {have} of {length} bytes)"
        if isinstance(ip, IP):
            return f" [truncated: IPv4 total length {ip.len} > {have} bytes captured]"
        return f" [truncated: IPv6 payload length {ip.plen} > {have - 40} bytes captured]"
    return ""


def _name(layer) -> str:
    """A layer (or layer class) as grelab names it."""
    cls = layer if isinstance(layer, type) else type(layer)
    return {"Ether": "Ethernet", "IP": "IPv4", "IPerror": "IPv4", "IPerror6": "IPv6"}.get(cls.__name__, cls.__name__)


def _describe_pptp(gre: GRE_PPTP) -> str:
    words = [f"GRE (PPTP, RFC 2637) version={gre.version} proto=0x{gre.proto:04x} call_id={gre.call_id}",
             f"payload_len={gre.payload_len}"]
    if gre.seqnum_present:
        words.append(f"seq={gre.sequence_number}")
    if gre.acknum_present:
        words.append(f"ack={gre.ack_number}")
    return " ".join(words)


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
