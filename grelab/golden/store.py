"""Golden pcaps on disk: pcaps/<scenario>/<case>.pcapng, compared after normalization, rewritten only on request.

A rewrite goes to a temporary file beside the golden and is renamed over it, so a crash or a concurrent
pytest-xdist worker never leaves a truncated golden; a golden whose packets did not change is not touched
(its timestamps alone do not count as a change). pcaps/esp_sa, Wireshark's ESP key table, is merged under
a lock on the pcaps folder, since every worker may add rows to it. A golden whose ESP Wireshark 4.0 cannot decrypt
has a companion beside it, <case>.decrypted.pcapng (grelab.golden.decrypted), written with it; comparisons never read
companions.
"""
from __future__ import annotations

import fcntl
import os
import re
from contextlib import contextmanager
from pathlib import Path

from grelab.craft.dissect import frame as dissect_frame
from grelab.errors import Differing
from grelab.golden.case import Frame, read_pcapng, write_pcapng
from grelab.golden.decrypted import companion_path, decrypted_frames, needs_companion
from grelab.expect.match import Template, telling

ESP_SA_FILE = "esp_sa"


def case_file_name(test_name: str) -> str:
    """`test_echo[gcm128]` -> `echo-gcm128`: a file name that says which case it is."""
    name = re.sub(r"^test_", "", test_name)
    name = re.sub(r"[\[\]]", "-", name).strip("-")
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


class GoldenStore:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.differing: Differing | None = None  # the last compare's first differing field (grelab matrix's cell)

    def path(self, scenario: str, case: str) -> Path:
        return self.root / scenario / f"{case}.pcapng"

    def compare(self, scenario: str, case: str, frames: list[Frame], update_hint: str) -> str | None:
        """None when the frames equal the golden; otherwise the failure message to show (and first_differing
        has its first differing field)."""
        path = self.path(scenario, case)
        self.differing = None
        if not path.exists():
            self.differing = Differing(f"golden {path.name}", "file", "a golden pcap", "none yet")
            return (f"no golden pcap {path} yet; look at the capture, and if it is right create the golden with:\n"
                    f"    {update_hint}")
        golden = read_pcapng(path)
        if same(golden, frames):
            return None
        self.differing = first_differing(golden, frames)
        return f"capture differs from golden {path}\n" + describe_difference(golden, frames) + \
            f"\nif the new packets are right, update the golden with:\n    {update_hint}"

    def update(self, scenario: str, case: str, frames: list[Frame]) -> str:
        """Write the golden if it is new or its packets changed. Returns 'created', 'changed' or 'unchanged'."""
        path = self.path(scenario, case)
        if path.exists():
            if _per_link(read_pcapng(path)) == _per_link(frames):
                return "unchanged"
            status = "changed"
        else:
            status = "created"
        _write_whole(frames, path)
        return status

    def update_companion(self, scenario: str, case: str, sas) -> str | None:
        """With a golden whose ESP Wireshark 4.0 cannot decrypt (grelab.golden.decrypted.needs_companion): write its
        companion <case>.decrypted.pcapng, the golden's frames (timestamps too) with that ESP opened, if it is new
        or differs.
        Returns 'companion created', '... changed', '... unchanged', or None when the golden needs none (then an
        existing file of that name is left alone)."""
        if not needs_companion(sas):
            return None
        path = companion_path(self.path(scenario, case))
        golden = read_pcapng(self.path(scenario, case))  # as on disk: an unchanged golden keeps its timestamps
        opened, _ = decrypted_frames(golden, sas)
        if path.exists() and read_pcapng(path) == opened:
            return "companion unchanged"
        status = "companion changed" if path.exists() else "companion created"
        _write_whole(opened, path)
        return status

    def merge_esp_sa(self, rows: list[str]) -> bool:
        """Add Wireshark esp_sa rows not yet in pcaps/esp_sa; True if the file changed."""
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / ESP_SA_FILE
        with _locked(self.root):
            old = path.read_text().splitlines() if path.exists() else []
            merged = sorted(set(old) | set(rows))
            if merged == sorted(set(old)):
                return False
            tmp = path.with_name(f".{ESP_SA_FILE}.{os.getpid()}.tmp")
            tmp.write_text("".join(line + "\n" for line in merged))
            os.replace(tmp, path)
            return True


def _write_whole(frames: list[Frame], path: Path) -> None:
    """Write a pcapng through a temporary file renamed over path: never half a file, even beside another worker."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write_pcapng(frames, tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def same(a: list[Frame], b: list[Frame]) -> bool:
    """Whether two recordings hold the same frames per link (timing apart)."""
    return _per_link(a) == _per_link(b)


def _per_link(frames: list[Frame]) -> list[tuple]:
    """What must repeat: each link's frames in order. How frames on different links interleave within
    microseconds depends on scheduling, not on the network."""
    return [f.key() for f in sorted(frames, key=lambda f: f.link)]  # stable: time order within a link


@contextmanager
def _locked(folder: Path):
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def describe_difference(golden: list[Frame], got: list[Frame], names: tuple[str, str] = ("golden", "capture"),
                        every: bool = False) -> str:
    """Per link: the frame counts, then the first differing frame pair (every one, with every=True), field
    by field. names: what the two sides are called."""
    width = max(map(len, names))
    lines, seen = [], set()
    for link, want, have, i, w, h in _differing_frames(golden, got):
        if link in seen and not every:
            continue
        if link not in seen:
            seen.add(link)
            lines.append(f"link {link or '(unnamed)'}: {names[0]} has {len(want)} frames, {names[1]} has {len(have)}")
        lines.append(f"  {'difference' if every else 'first difference'} at frame {i + 1} on {link or '(unnamed)'}:")
        lines.append(f"    {names[0]:{width}}: {_summary(w)}")
        lines.append(f"    {names[1]:{width}}: {_summary(h)}")
        if w is not None and h is not None:
            if w.comment != h.comment:
                lines.append(f"    comment: {w.comment!r} != {h.comment!r}")
            lines.extend(f"    {d}" for d in Template(w.data).differences(dissect_frame(h.data)))
    return "\n".join(lines)


def first_differing(golden: list[Frame], got: list[Frame]) -> Differing | None:
    """What describe_difference shows first: on the first link that differs, its first differing frame's telling
    field (grelab.expect.match.telling; the frame itself when one side has none there, its comment when only that
    differs)."""
    for link, _, _, i, w, h in _differing_frames(golden, got):
        where = f"golden {link or '(unnamed)'} frame {i + 1}"
        if w is None or h is None:
            return Differing(where, "frame", _summary(w), _summary(h))
        fields = Template(w.data).differences(dissect_frame(h.data))
        if fields:
            named = telling(fields)
            return Differing(where, f"{named.layer}.{named.field}", named.expected, named.got)
        return Differing(where, "comment", w.comment, h.comment)
    return None


def _differing_frames(golden: list[Frame], got: list[Frame]):
    """(link, its golden frames, its captured frames, i, golden's i-th frame or None, the capture's) for every
    frame pair that differs, link by link in name order."""
    for link in sorted({f.link for f in golden} | {f.link for f in got}):
        want = [f for f in golden if f.link == link]
        have = [f for f in got if f.link == link]
        if [f.key() for f in want] == [f.key() for f in have]:
            continue
        for i in range(max(len(want), len(have))):
            w = want[i] if i < len(want) else None
            h = have[i] if i < len(have) else None
            if w is None or h is None or w.key() != h.key():
                yield link, want, have, i, w, h


def _summary(frame: Frame | None) -> str:
    if frame is None:
        return "(none)"
    text = dissect_frame(frame.data).summary()
    return f"{text}  [{frame.comment}]" if frame.comment else text
