"""One case's packets as a golden pcap holds them: which link, when (relative to the case's start), the bytes, a comment.

Reading and writing go through scapy's pcapng support, which keeps the interface name (the link) and per-packet
comments, so Wireshark shows the same story the scenario told.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from scapy.layers.l2 import Ether
from scapy.utils import PcapNgWriter, rdpcap

from grelab.errors import GrelabError


@dataclass(frozen=True)
class Frame:
    link: str  # the link the frame was seen on (pcapng interface name)
    time: float  # seconds since the case started
    data: bytes  # Ethernet frame
    comment: str = ""  # what it is and what the scenario expects of it

    def key(self) -> tuple[str, bytes, str]:
        """What a golden comparison looks at: timing varies run to run, the rest must not."""
        return (self.link, self.data, self.comment)


@dataclass
class CaseRecord:
    """The frames of one case, in time order: add() them in that order (the recorder does)."""

    frames: list[Frame] = field(default_factory=list)

    def add(self, link: str, time: float, data: bytes, comment: str = "") -> None:
        self.frames.append(Frame(link, time, bytes(data), comment))

    def sorted(self) -> list[Frame]:
        """The frames in time order: as added, which already is."""
        return list(self.frames)


def write_pcapng(frames: list[Frame], path: Path) -> None:
    writer = PcapNgWriter(str(path))
    try:
        for f in frames:
            pkt = Ether(f.data)
            pkt.time = f.time
            pkt.sniffed_on = f.link
            pkt.comments = [f.comment.encode()] if f.comment else None
            writer.write(pkt)
    finally:
        writer.close()


def read_pcapng(path: Path) -> list[Frame]:
    try:
        packets = rdpcap(str(path))
    except Exception as exc:  # scapy raises several types for a damaged file
        raise GrelabError(f"{path}: not a readable pcapng ({exc})") from None
    frames = []
    for pkt in packets:
        comments = getattr(pkt, "comments", None) or []
        text = b"\n".join(comments).decode(errors="replace")
        frames.append(Frame(pkt.sniffed_on or "", float(pkt.time), bytes(pkt), text))
    return frames
