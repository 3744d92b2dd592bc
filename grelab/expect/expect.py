"""Expectations on a capture: packets matching templates, in number and order, or nothing at all.

    expect(cap, frame, ignore=["IP.id", "IP.chksum", "GRE.sequence_number", "IPv6:2.hlim"], count=10)
    expect(cap, [first, second, third])  # each once, in this order
    expect_none(cap, within=0.2)         # nothing but ARP/ND/MLD chatter

A failure raises Mismatch (an AssertionError) with the report of grelab.expect.report, so pytest shows it as the
assertion message, and the first differing field (grelab matrix names it). Frames the capture dropped fail every
expectation: an incomplete capture proves nothing.
"""
from __future__ import annotations

from grelab.capture.capture import Capture, CaptureResult
from grelab.craft.esp import decrypt_frame
from grelab.craft.dissect import frame
from grelab.errors import Differing, GrelabError, Mismatch
from grelab.expect.match import Template, is_chatter, is_noise, telling
from grelab.expect.report import failure_report, silence_report


def _templates(packets, ignore) -> list[Template]:
    if isinstance(packets, (bytes, Template)) or hasattr(packets, "build"):
        packets = [packets]
    return [p if isinstance(p, Template) else Template(p, ignore) for p in packets]


class _Progress:
    """Which frames matched which template, decided incrementally as frames arrive."""

    def __init__(self, templates: list[Template], count: int, ordered: bool, noise: bool, sas=()):
        self.templates, self.ordered, self.noise, self.sas = templates, ordered, noise, tuple(sas)
        self.wanted = [t for t in templates for _ in range(count)]
        self.matched: list = []  # (timestamp, bytes)
        self.extra = 0  # frames matching a template beyond what was wanted
        self.others: list[bytes] = []  # every frame that is neither noise nor a match
        self.seen = 0

    def feed(self, frames) -> bool:
        new = frames[self.seen:]
        for frame in new:
            self._one(frame)
        self.seen += len(new)
        return len(self.matched) == len(self.wanted)

    def _one(self, frame) -> None:
        data = frame[1]
        if self.noise and is_noise(data):  # link chatter is never ESP: not worth decrypting
            return
        try:
            raw = decrypt_frame(data, self.sas) if self.sas else data
        except GrelabError:  # ESP that does not verify (a refusal's broken packet): compared as it is
            raw = data
        if self.noise and raw is not data and is_noise(raw):  # chatter that came inside ESP
            return
        frame = (frame[0], raw)
        done = len(self.matched)
        pending = self.wanted[done:done + 1] if self.ordered else self.wanted[done:]
        for i, template in enumerate(pending, start=done):
            if template.matches(raw):
                self.matched.append(frame)
                self.wanted[done], self.wanted[i] = self.wanted[i], self.wanted[done]  # matched ones first
                return
        if any(t.matches(raw) for t in self.templates):
            self.extra += 1  # wanted already, or (in order) not yet
        self.others.append(raw)


def expect(capture: Capture, packets, ignore=(), count: int = 1, ordered: bool = True, timeout: float = 1.0,
           noise: bool = True, exact: bool = True, sas=()) -> list:
    """Wait for `count` frames matching each template (a packet, bytes, or a list of them; with a list
    and ordered=True, in list order). Returns the matched frames dissected. Fails on a timeout, on
    drops, and (exact=True) on more matching frames than wanted among those arrived by then.
    With `sas` (grelab.craft SAs), ESP frames of those SAs are decrypted first: templates describe the
    packet inside, so the reply of a DUT is checked field by field through its encryption."""
    templates = _templates(packets, ignore)
    progress = _Progress(templates, count, ordered, noise, sas)
    result = capture.wait(until=progress.feed, timeout=timeout)
    progress.feed(result.frames)
    wanted = len(progress.wanted)
    problem = None
    if result.dropped:
        problem = f"the capture dropped {result.dropped} frames: cannot tell what arrived"
    elif len(progress.matched) < wanted:
        template = progress.wanted[len(progress.matched)]
        order = " in order" if ordered and len(templates) > 1 else ""
        problem = (f"expected {wanted} matching frames{order} within {timeout} s, matched {len(progress.matched)}; "
                   f"waiting for template #{templates.index(template) + 1}")
    elif exact and progress.extra:
        problem = f"expected {wanted} matching frames, got {wanted + progress.extra}"
    if problem:
        template = progress.wanted[min(len(progress.matched), wanted - 1)]
        differing = first_differing(template, progress.others, result.ifname) or \
            Differing(result.ifname, "frames", f"{wanted} matching", f"{len(progress.matched) + progress.extra}")
        raise Mismatch(failure_report(problem, template, result, progress.others), differing)
    return CaptureResult(progress.matched, True, result.passed, result.dropped, result.ifname).packets()


def expect_none(capture: Capture, packets=None, ignore=(), within: float = 0.2, noise: bool = True, sas=()) -> None:
    """Nothing (matching the templates, if given) arrives within `within` seconds; ARP/ND/MLD do not count,
    on the link or carried inside a tunnel (GRE, or ESP of `sas`)."""
    templates = _templates(packets, ignore) if packets is not None else []
    result = capture.wait(timeout=within)
    offending = [raw for _, raw in result.frames
                 if not (noise and is_chatter(raw, sas)) and (not templates or any(t.matches(raw) for t in templates))]
    if result.dropped or offending:
        what = f"{len(offending)} frames arrived where none should" if offending else \
            f"the capture dropped {result.dropped} frames: cannot tell that nothing arrived"
        got = frame(offending[0]).summary() if offending else f"{result.dropped} dropped"
        raise Mismatch(silence_report(what, result, offending), Differing(result.ifname, "frames", "none", got))


def first_differing(template: Template, candidates: list[bytes], where: str) -> Differing | None:
    """The field where the closest of `candidates` differs from the template (failure_report's first; a length or
    checksum only when nothing else differs), or None when nothing else arrived."""
    closest = min((template.differences(frame(raw)) for raw in dict.fromkeys(candidates)), key=len, default=None)
    if not closest:
        return None
    first = telling(closest)
    return Differing(where, f"{first.layer}.{first.field}", first.expected, first.got)
