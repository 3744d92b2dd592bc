"""A case's golden recorder: captures on named links, comments from the scenario, compare or update at the end.

    golden.sas(ESP_OUT, ESP_IN)                           # decrypt and normalize this ESP
    transit = golden.capture("transit", lab, "isp", "eth0")
    ...the case runs; its expectations use `transit` like any capture...
    golden.explain("h1's echo request, in GRE from r1 to r2: expected once", link="transit", match=request_in_gre)

    golden.counted("r1", before.at, time.time(), {"xfrm.XfrmInNoStates": 1})   # (grelab.scenario.net does it)

After the case body passes, the plugin calls `finish()`: every frame of every capture except link
chatter (ARP, neighbour discovery, MLD, also inside a tunnel) is normalized, commented and compared with
pcaps/<scenario>/<case>.pcapng, or written there with --update-golden (with its companion <case>.decrypted.pcapng
when Wireshark 4.0 cannot decrypt the case's ESP: grelab.golden.decrypted).
"""
from __future__ import annotations

import heapq
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from scapy.layers.l2 import Ether

from grelab.capture.capture import Capture
from grelab.craft.esp import SA
from grelab.craft.esp_sa import esp_sa_lines
from grelab.craft.peel import Peeled, describe, peel
from grelab.expect.match import Template, carries_chatter, is_chatter, is_noise, is_routing  # noqa: F401 - is_chatter re-exported
from grelab.golden.case import CaseRecord, Frame, write_pcapng
from grelab.golden.normalize import Normalizer
from grelab.errors import GrelabError
from grelab.golden.store import GoldenStore


@dataclass(frozen=True)
class Counted:
    """What a DUT counted while the case ran, as the case asserted it: between `since` and `until` (seconds since
    the case's start, like frames' times) the DUT's counters moved by `moved` (Counters.flat names). The run report
    draws a frame sent to that DUT within the span that never came out of it as a drop, these counters beside it."""
    dut: str
    since: float
    until: float
    moved: dict


class GoldenRecorder:
    def __init__(self, store: GoldenStore, scenario: str, case: str, update_hint: str):
        self.store, self.scenario, self.case, self.update_hint = store, scenario, case, update_hint
        self.start = time.time()
        self._captures: list[tuple[str, Capture]] = []
        self._sas: list[SA] = []
        self._rules: list[tuple[str | None, Callable[[bytes], bool] | None, str]] = []
        self._routing: frozenset = frozenset()
        self._stand_ins: dict[int, SA] = {}
        self._left_out: list[tuple[str | None, Callable[[bytes], bool]]] = []
        self._order: list[tuple[str | None, Callable[[bytes], object]]] = []
        self.where: dict[str, tuple[str, str]] = {}  # link name -> (node, ifname) of its capture
        self.counts: list[Counted] = []

    @property
    def differing(self):
        """When finish found the capture differs from the golden: its first differing field (grelab.errors.Differing)."""
        return self.store.differing

    def leave_out_routing(self, routing) -> None:
        """Leave daemons' control-plane traffic out of the golden (grelab.expect.match.is_routing): it is timed
        by the daemons, so how much of it a case sees varies run to run. ESP sequence numbers are then
        renumbered in the golden's order (the traffic left out used some), as after leave_out."""
        self._routing = frozenset(routing)

    def stand_in(self, real: SA, stand_in: SA) -> None:
        """ESP of `real` (an SA a daemon negotiated: random SPI and keys) goes into the golden re-encrypted
        with `stand_in` (deterministic), and pcaps/esp_sa gets the stand-in."""
        self._stand_ins[real.spi] = stand_in

    def capture(self, link: str, lab, node: str, ifname: str, expression: str = "") -> Capture:
        """Arm a capture on node:ifname whose frames go into the golden under the name `link`."""
        cap = lab.capture(node, ifname, expression)
        self._captures.append((link, cap))
        self.where[link] = (node, ifname)
        return cap

    def sas(self, *sas: SA) -> None:
        """ESP SAs of this case: their packets are compared after decryption and land in pcaps/esp_sa."""
        self._sas.extend(sas)

    @property
    def esp_sas(self) -> tuple[SA, ...]:
        """What decrypts this case's ESP as record() has it: the SAs given so far and their stand-ins."""
        return tuple(self._sas) + tuple(self._stand_ins.values())

    def counted(self, dut: str, since: float, until: float, moved: dict[str, int]) -> None:
        """The case saw `dut`'s counters move by `moved` between the times since and until (time.time()): kept
        for the run report (see Counted)."""
        self.counts.append(Counted(dut, round(since - self.start, 6), round(until - self.start, 6), dict(moved)))

    def explain(self, comment: str, link: str | None = None, match=None, ignore=(), first: bool = False) -> None:
        """Frames on `link` (any link if None) that match get this comment in the golden; the first rule that
        fits a frame wins. match: None (every frame), a packet (a template; `ignore` names don't-care fields),
        or a function of the frame's bytes. first: before every rule given so far (a case's own frames, named
        over the scenario's general comments). A frame that does not peel (ESP broken on purpose) takes only a
        rule whose match names it."""
        if match is not None and not callable(match):
            match = Template(match, ignore).matches
        self._rules.insert(0 if first else len(self._rules), (link, match, comment))

    def leave_out(self, match: Callable[[bytes], bool], link: str | None = None) -> None:
        """Frames on `link` (any if None) that match are not kept in the golden: what the kernel decides by timing
        (e.g. a TCP receiver's pure ACKs, their number and windows), so the golden repeats run to run. Expectations
        still see them."""
        self._left_out.append((link, match))

    def order(self, key: Callable[[bytes], object], link: str | None = None) -> None:
        """Frames on `link` (any if None) go into the golden sorted by key(frame), not by arrival: for traffic whose
        interleaving is the scheduler's choice (a stream's requests and replies crossing on one link)."""
        self._order.append((link, key))

    def frames(self, link: str) -> list[tuple[float, bytes]]:
        """Every frame captured on `link` so far, the capture settled first (complete up to now)."""
        for name, cap in self._captures:
            if name == link:
                result = cap.settle()
                if not result.matched:
                    raise AssertionError(f"capture on {link} did not catch up with the kernel within its deadline")
                result.check_no_drops()
                return result.frames
        raise KeyError(f"no golden capture named {link!r}; have {', '.join(n for n, _ in self._captures)}")

    def record(self) -> CaseRecord:
        """Everything captured so far, chatter left out, normalized and commented, times relative to the start."""
        # Links merged by time, each in its capture's order (the order the kernel queued its frames): their times
        # can disagree with it, a transit's request stamped after the reply forwarded right after it (~1 run in 20
        # under load; a frame that reaches the socket without a timestamp is stamped when it is read).
        raw = list(heapq.merge(*([(stamp, link, data) for stamp, data in self.frames(link)] for link, _ in self._captures),
                               key=lambda item: item[0]))
        for where, key in self._order:  # each link's frames re-sorted in their own places: other links' stay put
            slots = [i for i, (_, link, _) in enumerate(raw) if where in (None, link)]
            for link in {raw[i][1] for i in slots}:
                mine = [i for i in slots if raw[i][1] == link]
                for i, item in zip(mine, sorted((raw[i] for i in mine), key=lambda item: key(item[2]))):
                    raw[i] = item
        # Frames left out used ESP sequence numbers: the golden renumbers them in its own order, so how many a
        # kernel's timing left out never shows in the frames kept.
        normalizer = Normalizer(self._sas, renumber=bool(self._routing or self._left_out), stand_ins=self._stand_ins)
        record = CaseRecord()
        for stamp, link, data in raw:
            if is_noise(data) or any(where in (None, link) and match(data) for where, match in self._left_out):
                continue
            try:  # peeled once, for the chatter test and the comment
                peeled: Peeled | GrelabError = peel(data, self._sas)
            except GrelabError as exc:  # ESP that does not decrypt is surely not chatter; the comment raises it
                peeled = exc
            if isinstance(peeled, Peeled) and carries_chatter(peeled):
                continue
            if self._routing and is_routing(data, self._sas, self._routing):
                continue
            normal = normalizer.frame(data)
            if self._routing and normal != data and isinstance(peeled, Peeled):
                peeled = peel(normal, self._sas)  # the comment names the renumbered ESP sequence number
            record.add(link, round(stamp - self.start, 6), normal, self._comment(link, data, peeled))
        return record

    def _comment(self, link: str, data: bytes, peeled: Peeled | GrelabError) -> str:
        if isinstance(peeled, GrelabError):
            for rule_link, match, text in self._rules:
                if match is not None and rule_link in (None, link) and match(data):
                    return f"{text}: {Ether(data).summary()} ({peeled})"
            raise peeled
        what = describe(data, peeled=peeled)
        for rule_link, match, text in self._rules:
            if rule_link in (None, link) and (match is None or match(data)):
                return f"{text}: {what}"
        return f"not named by the scenario: {what}"

    def golden_sas(self) -> list[SA]:
        """The SAs of the ESP in the golden: the case's, a daemon's replaced by its stand-in."""
        return [self._stand_ins.get(sa.spi, sa) for sa in self._sas]

    @staticmethod
    def story(comment: str) -> str:
        """What the scenario says of a frame: its golden comment without the packet description after it."""
        return re.sub(r": (Ethernet|Ether) .*$", "", comment, flags=re.S)

    def finish(self, update: bool, keep_dir: Path | None) -> tuple[str | None, str | None]:
        """(failure message or None, update status or None)."""
        frames: list[Frame] = self.record().sorted()
        if keep_dir is not None:
            kept = keep_dir / self.scenario / f"{self.case}.pcapng"
            kept.parent.mkdir(parents=True, exist_ok=True)
            write_pcapng(frames, kept)
        if update:
            status = self.store.update(self.scenario, self.case, frames)
            kept = self.golden_sas()
            if kept:
                self.store.merge_esp_sa([line for sa in kept for line in esp_sa_lines(sa)])
            companion = self.store.update_companion(self.scenario, self.case, kept)
            return None, status + (f", {companion}" if companion else "")
        return self.store.compare(self.scenario, self.case, frames, self.update_hint), None
