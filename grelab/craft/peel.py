"""The reverse of crafting: captured bytes peeled layer by layer (through ESP, given its SA) down to GRE's passenger.

    >>> print(peel(frame, sas=[sa]))
    Ethernet / IPv4 192.0.2.1 > 192.0.2.2 / ESP spi=0x00000100 seq=1 gcm128 / GRE proto=0x86dd key=1 seq=2
    checksum=good -> IPv6 / ICMPv6 Echo Request ...
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.ipsec import ESP
from scapy.layers.l2 import GRE, Ether
from scapy.packet import NoPayload, Packet
from scapy.utils import checksum

from grelab.craft import esp
from grelab.errors import check_choice


@dataclass
class Peeled:
    """What peel found: one description per layer, outermost first, and GRE's passenger (None if not reached)."""
    layers: list[str] = field(default_factory=list)
    passenger: Packet | None = None
    gre: GRE | None = None
    checksum_ok: bool | None = None  # the GRE checksum, when present
    esp_spi: int | None = None
    esp_seq: int | None = None

    def __str__(self) -> str:
        passenger = self.passenger.summary() if self.passenger is not None else "(passenger not reached)"
        return " / ".join(self.layers) + " -> " + passenger


def peel(data: bytes | Packet, sas: Iterable[esp.SA] = (), link: str = "ethernet", verify: bool = True,
         seq_hi: int = 0) -> Peeled:
    """Dissect data (an Ethernet frame, or an IP packet with link="ip"), decrypt ESP with the SA of its SPI,
    and stop at the first GRE header: its payload is the passenger. Raises esp.IntegrityError on a bad ICV, unless
    verify=False (to look inside ESP whose integrity key is unknown). seq_hi: ESN's high-order bits (esp.decrypt)."""
    if isinstance(data, Packet):
        layer = data
    else:
        check_choice("link", link, ["ethernet", "ip"])
        layer = Ether(data) if link == "ethernet" else esp.dissect_ip(data)
    by_spi = {sa.spi: sa for sa in sas}
    report, ip = Peeled(), None
    while not isinstance(layer, NoPayload):
        if isinstance(layer, Ether):
            report.layers.append("Ethernet")
        elif isinstance(layer, (IP, IPv6)):
            ip = layer
            report.layers.append(f"IPv{layer.version} {layer.src} > {layer.dst}")
        elif isinstance(layer, UDP) and isinstance(layer.payload, ESP):
            report.layers.append(f"UDP {layer.sport} > {layer.dport} (NAT-T)")
        elif isinstance(layer, ESP):
            report.esp_spi, report.esp_seq = layer.spi, layer.seq
            sa = by_spi.get(layer.spi)
            if sa is None:
                report.layers.append(f"ESP spi=0x{layer.spi:08x} seq={layer.seq} (no SA given: still encrypted)")
                return report
            report.layers.append(f"ESP spi=0x{layer.spi:08x} seq={layer.seq} {sa.algorithm} {sa.mode}")
            clear = esp.decrypt(sa, ip.copy(), seq_hi, verify)  # scapy's decrypt edits the packet it is given
            layer = clear.payload if sa.mode == "transport" else clear  # transport: the same IP header again
            continue
        elif isinstance(layer, GRE):
            report.gre, report.passenger = layer, layer.payload
            report.layers.append(_describe_gre(layer, report))
            return report
        else:
            report.layers.append(layer.name)
        layer = layer.payload
    return report


def _describe_gre(gre: GRE, report: Peeled) -> str:
    words = [f"GRE proto=0x{gre.proto:04x}"]
    if gre.key_present:
        words.append(f"key={gre.key}")
    if gre.seqnum_present:
        words.append(f"seq={gre.sequence_number}")
    if gre.chksum_present:
        report.checksum_ok = checksum(bytes(gre)) == 0  # RFC 2784: over the GRE header and payload
        words.append("checksum=" + ("good" if report.checksum_ok else "BAD"))
    if gre.version:
        words.append(f"version={gre.version}")
    return " ".join(words)
