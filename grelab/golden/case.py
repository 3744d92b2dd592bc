"""One case's packets as a golden pcap holds them: which link, when (relative to the case's start), the bytes, a comment.

Reading and writing go through scapy's pcapng support, which keeps the interface name (the link) and per-packet
comments, so Wireshark shows the same story the scenario told.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from scapy.layers.l2 import Ether
from scapy.utils import PcapNgWriter, RawPcapReader

from grelab.errors import GrelabError


@dataclass(frozen=True)
class Frame:
    link: str  # the link the frame was seen on (pcapng interface name)
    time: float  # seconds since the case started
    data: bytes  # Ethernet frame (goldens); a frame of link type `link_type` when read from another capture
    comment: str = ""  # what it is and what the scenario expects of it
    link_type: int = 1  # pcap's LINKTYPE_ of the frame's interface: 1 Ethernet, 101 raw IP, 113 Linux cooked...

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
    """The frames of a pcapng or pcap file (gzipped too), each with its interface's link type: scapy's raw reader,
    so no frame is dissected (nor guessed at) before the link type is known."""
    try:
        with RawPcapReader(str(path)) as reader:  # a RawPcapNgReader for pcapng files
            return [_frame(reader, data, meta) for data, meta in reader]
    except Exception as exc:  # scapy raises several types for a damaged file
        raise GrelabError(f"{path}: not a readable pcapng ({exc})") from None


def _frame(reader, data: bytes, meta) -> Frame:
    if hasattr(meta, "linktype"):  # pcapng: per interface, with its name and per-packet comments
        time = ((meta.tshigh << 32) + meta.tslow) / meta.tsresol if meta.tshigh is not None else 0.0
        text = b"\n".join(meta.comments or []).decode(errors="replace")
        name = meta.ifname.decode(errors="replace") if meta.ifname else ""
        return Frame(name, float(time), bytes(data), text, meta.linktype)
    # a pcap header's link type is its low 16 bits (above them: the FCS length, when there is one)
    return Frame("", meta.sec + meta.usec / (1e9 if reader.nano else 1e6), bytes(data), "", reader.linktype & 0xFFFF)
