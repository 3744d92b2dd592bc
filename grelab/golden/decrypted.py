"""A pcap with its ESP opened, for any Wireshark: `grelab pcap decrypt IN OUT`, and the goldens' companions.

Each ESP packet grelab can open (a key of the keys given, grelab.craft.keys) is replaced by what it carries: the outer
IP header kept, its next header set to the inner protocol (NAT-T's UDP header gone), then the decrypted payload (in
tunnel mode the inner IP packet), and a packet comment (before the one it had) giving the SPI, sequence number,
algorithm, mode and the ICV's verdict. ESP inside ESP is opened again. Everything else is copied as it was, comments included; ESP grelab cannot
open (no key, a bad ICV) stays encrypted and its comment says why. So Wireshark 4.0, which cannot decrypt AES-CCM,
AES-GMAC or ChaCha20-Poly1305, shows those packets decrypted too.

A golden `pcaps/<scenario>/<case>.pcapng` whose ESP Wireshark 4.0 cannot decrypt gets such a companion beside it,
`pcaps/<scenario>/<case>.decrypted.pcapng`, written with the golden by --update-golden (GoldenStore.update_companion).
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.ipsec import ESP
from scapy.layers.l2 import GRE
from scapy.packet import Packet

from grelab.craft.dissect import dissect_link, guess_link
from grelab.craft.esp import ICV_VERDICTS, IPV6_EXTENSION_LAYERS, SA, open_with
from grelab.craft.esp_sa import wireshark_algorithms
from grelab.errors import GrelabError
from grelab.golden.case import Frame

COMPANION = ".decrypted.pcapng"  # beside <case>.pcapng
NESTED = 4  # ESP in ESP in ...: opened this deep at most


def companion_path(golden: Path) -> Path:
    """pcaps/<scenario>/<case>.decrypted.pcapng beside pcaps/<scenario>/<case>.pcapng."""
    return golden.with_name(golden.name.removesuffix(".pcapng") + COMPANION)


def is_companion(path: Path) -> bool:
    return path.name.endswith(COMPANION)


def needs_companion(sas) -> bool:
    """Whether ESP of these SAs needs a companion to be read in Wireshark 4.0 (it cannot decrypt their algorithm)."""
    return any(wireshark_algorithms(sa) is None for sa in sas)


@dataclass
class Tally:
    """What decrypted_frames did: frames, ESP packets opened by ICV verdict, ESP left encrypted by why."""
    frames: int = 0
    opened: Counter = field(default_factory=Counter)
    left: Counter = field(default_factory=Counter)

    def __str__(self) -> str:
        opened = ", ".join(f"{n} {ICV_VERDICTS[v]}" for v, n in sorted(self.opened.items()))
        left = ", ".join(f"{n} {why}" for why, n in sorted(self.left.items()))
        return (f"{self.frames} frames, {sum(self.opened.values())} ESP packets decrypted" + (f" ({opened})" if opened
                else "") + (f"; {sum(self.left.values())} left encrypted ({left})" if left else ""))


def decrypted_frames(frames: list[Frame], sas: list[SA] | object) -> tuple[list[Frame], Tally]:
    """The frames with every ESP packet grelab can open replaced (the module's docstring), and the tally."""
    out, tally = [], Tally(frames=len(frames))
    for f in frames:
        data, notes = open_frame(f.data, sas, tally)
        comment = "\n".join(part for part in (*notes, f.comment) if part)  # grelab's word first: what changed
        out.append(Frame(f.link, f.time, data, comment))
    return out, tally


def open_frame(data: bytes, sas, tally: Tally | None = None) -> tuple[bytes, list[str]]:
    """(the frame with its ESP opened, one note per ESP header met). An Ethernet frame or an IP packet."""
    tally = tally if tally is not None else Tally()
    link = guess_link(data)
    notes: list[str] = []
    for _ in range(NESTED):
        try:
            packet = dissect_link(data, link)
        except GrelabError:
            break  # not a whole outermost header: nothing to open
        esp = packet.getlayer(ESP)
        if esp is None:
            break
        ip = _ip_above(esp)
        what = f"ESP spi=0x{esp.spi:08x} seq={esp.seq}"
        try:
            opened = open_with(sas, ip) if ip is not None else None
        except GrelabError as exc:
            notes.append(f"grelab could not decrypt {what}: {exc}")
            tally.left["failed to open"] += 1
            break
        if opened is None:
            notes.append(f"{what}: no key given, left encrypted")
            tally.left["without a key"] += 1
            break
        sa = opened.sa
        notes.append(f"grelab decrypted {what} {sa.algorithm} {sa.mode}" + (" in UDP (NAT-T)" if sa.nat_t else "")
                     + f": {ICV_VERDICTS[opened.icv]}")
        tally.opened[opened.icv] += 1
        data = _replace(packet, ip, opened.kept)
    return data, notes


def _ip_above(layer: Packet) -> Packet | None:
    """The IP or IPv6 header nearest above layer (past NAT-T's UDP header and IPv6 extension headers)."""
    under = layer.underlayer
    while under is not None and not isinstance(under, (IP, IPv6)):
        if isinstance(under, (UDP, *IPV6_EXTENSION_LAYERS)):
            under = under.underlayer
        else:
            return None
    return under


def _replace(packet: Packet, ip: Packet, kept: Packet) -> bytes:
    """The bytes of packet with its layer `ip` (and what follows) replaced by kept."""
    if ip is packet:
        return bytes(kept)
    parent = ip.underlayer  # the outer IP header is kept: the link's type field stays right
    parent.remove_payload()
    parent.add_payload(kept)
    layer = parent
    while layer is not None:  # every header around it says the new length (and its checksum over it)
        for name in ("len", "chksum", "plen"):
            if name in layer.fields and not (name == "chksum" and isinstance(layer, GRE) and not layer.chksum_present):
                del layer.fields[name]
        layer = layer.underlayer
    return bytes(packet)
