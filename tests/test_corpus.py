"""Every frame of every capture under tests/data/corpus/ (tcpdump's and Wireshark's test captures, the ESP ones in
esp/), peeled the way `grelab pcap show` does, cross-checked with tshark frame by frame: no crash, and no frame
called malformed that tshark dissects cleanly. The figures go to the run's summary (grelab's pytest plugin)."""
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from corpus import CORPUS, manifest, present
from grelab.craft.peel import describe
from grelab.errors import GrelabError
from grelab.golden.case import read_pcapng

CAPTURES = (".pcap", ".pcapng", ".pcap.gz", ".pcapng.gz", ".cap")
PI_ERROR = 0x00800000  # Wireshark's expert severity "error" (epan/proto.h PI_ERROR)


@dataclass
class Figures:
    files: int = 0
    frames: int = 0
    tshark_flags: int = 0  # frames tshark finds malformed (or with an expert error)
    grelab_flags: int = 0  # frames grelab calls malformed
    crashes: list = field(default_factory=list)
    wrongly_malformed: list = field(default_factory=list)  # grelab: malformed; tshark: clean

    def line(self) -> str:
        return (f"{self.files} files, {self.frames} frames; tshark flags {self.tshark_flags}, grelab calls "
                f"{self.grelab_flags} malformed; {len(self.crashes)} crashes, "
                f"{len(self.wrongly_malformed)} called malformed that tshark dissects cleanly")


def captures(root: Path = CORPUS) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and p.name.endswith(CAPTURES))


def tshark_flags(path: Path) -> set[int]:
    """The frames tshark calls malformed, or marks with an expert item of severity error."""
    out = subprocess.run(["tshark", "-n", "-r", str(path), "-T", "fields", "-e", "frame.number",
                          "-e", "_ws.malformed", "-e", "_ws.expert.severity"],
                         capture_output=True, text=True, timeout=300).stdout
    flagged = set()
    for line in out.splitlines():
        number, malformed, severities = (line.split("\t") + ["", ""])[:3]
        if malformed or any(int(s) >= PI_ERROR for s in severities.split(",") if s.isdigit()):
            flagged.add(int(number))
    return flagged


def grelab_line(frame) -> str:
    """What `grelab pcap show` prints for a frame (without its number and time)."""
    try:
        return describe(frame.data, (), link=frame.link_type)
    except GrelabError as exc:
        return f"[{exc}]"


def check(paths: list[Path]) -> Figures:
    figures = Figures()
    for path in paths:
        name = path.relative_to(CORPUS) if path.is_relative_to(CORPUS) else path.name
        figures.files += 1
        flagged = tshark_flags(path)
        for number, frame in enumerate(read_pcapng(path), 1):
            figures.frames += 1
            figures.tshark_flags += number in flagged
            try:
                line = grelab_line(frame)
            except Exception as exc:  # noqa: BLE001 - the point of the test
                figures.crashes.append(f"{name} #{number}: {type(exc).__name__}: {exc}")
                continue
            if "malformed" in line:
                figures.grelab_flags += 1
                if number not in flagged:
                    figures.wrongly_malformed.append(f"{name} #{number}: {line}")
    return figures


def test_every_frame_of_the_corpus_peels_and_agrees_with_tshark(record_property):
    debian = [e for e in manifest() if e.via.startswith("debian:")]
    absent = [f"{e.project}/{e.name}" for e in debian if not present(e)]
    assert not absent, f"corpus files missing (./setup.sh lays them: .venv/bin/python tests/corpus.py): {absent}"
    paths = captures()
    figures = check(paths)
    unlaid = [e.name for e in manifest() if e.via == "shared" and not present(e)]
    record_property("corpus", figures.line() + (f"; {len(unlaid)} listed captures of tcpdump's newer tree not laid "
                                               "here (../shared/corpus/tcpdump/ lacks them)" if unlaid else ""))
    assert figures.files >= len([e for e in debian if not e.name.endswith(".txt")]) and figures.frames > 0
    assert not figures.crashes, "\n".join(figures.crashes)
    assert not figures.wrongly_malformed, "\n".join(figures.wrongly_malformed)


def _two_frames(tmp_path) -> Path:
    """A clean 802.3/LLC STP frame, and an IPv4 frame whose version is 0 (tshark: "Bogus IPv4 version")."""
    from scapy.layers.l2 import LLC, STP, Dot3
    from scapy.packet import Raw
    from scapy.utils import wrpcap
    stp = Dot3(src="02:00:00:00:00:01", dst="01:80:c2:00:00:00") / LLC() / STP()
    bogus = Raw(bytes.fromhex("020000000002020000000001" "0800") + bytes(20))
    wrpcap(str(tmp_path / "two.pcap"), [stp, bogus], linktype=1)
    return tmp_path / "two.pcap"


def test_the_cross_check_agrees_with_tshark_frame_by_frame(tmp_path):
    path = _two_frames(tmp_path)
    assert tshark_flags(path) == {2}
    figures = check([path])
    assert (figures.files, figures.frames, figures.tshark_flags, figures.grelab_flags) == (1, 2, 1, 1)
    assert not figures.wrongly_malformed and not figures.crashes
    assert "STP" in grelab_line(read_pcapng(path)[0])


def test_the_cross_check_catches_a_frame_wrongly_called_malformed_and_a_crash(tmp_path, monkeypatch):
    """What the corpus test would say of a peel that called every frame malformed, or crashed on one."""
    path = _two_frames(tmp_path)
    module = sys.modules[__name__]
    monkeypatch.setattr(module, "describe", lambda data, sas, link: "[malformed Ethernet at offset 0: type]")
    assert [w.split(":")[0] for w in check([path]).wrongly_malformed] == ["two.pcap #1"]
    monkeypatch.setattr(module, "describe", lambda data, sas, link: 1 / 0)
    assert [c.split(":")[0] for c in check([path]).crashes] == ["two.pcap #1", "two.pcap #2"]
