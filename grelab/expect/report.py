"""The failure report: what was expected beside the closest frames received, field by field.

Written for the person reading a red test: the expected packet and the closest received one side by
side through every layer (differing fields marked `!`, don't-care fields `~`), the differences of the
next closest, how many frames arrived (and were dropped), and hexdumps.
"""
from __future__ import annotations

from scapy.utils import hexdump

from grelab.capture.capture import CaptureResult
from grelab.craft.dissect import frame
from grelab.expect.match import Template, layers

CLOSEST = 3
VALUE_WIDTH = 28


def side_by_side(template: Template, got) -> list[str]:
    """One line per field of every layer: `  IPv6:2.hlim   64   63   !`."""
    lines = [f"  {'field':<30} {'expected':<{VALUE_WIDTH}} {'received':<{VALUE_WIDTH}}"]
    got_layers = dict(layers(got))
    for label, want in layers(template.packet):
        have = got_layers.get(label)
        for field in want.fields_desc:
            a = field.i2repr(want, want.getfieldval(field.name))
            b = "(no such layer)" if have is None else field.i2repr(have, have.getfieldval(field.name))
            mark = "~" if template.is_masked(label, field.name) else ("!" if a != b else "")
            lines.append(f"  {label + '.' + field.name:<30} {_cut(a):<{VALUE_WIDTH}} {_cut(b):<{VALUE_WIDTH}} {mark}")
    return lines


def _received(result: CaptureResult) -> str:
    return f"received on {result.ifname}: {len(result.frames)} frames ({result.dropped} dropped by the capture)"


def _cut(text: str) -> str:
    return text if len(text) <= VALUE_WIDTH else text[:VALUE_WIDTH - 3] + "..."


def failure_report(headline: str, template: Template, result: CaptureResult, candidates: list[bytes]) -> str:
    """headline, then the expected packet beside the closest of `candidates` (frames that did not match)."""
    lines = [headline, _received(result),
             f"don't-care fields: {', '.join(sorted(template.ignore)) or 'none'}",
             f"expected: {template.packet.summary()}"]
    scored = sorted((len(template.differences(frame(raw))), i, raw) for i, raw in enumerate(dict.fromkeys(candidates)))
    if not scored:
        lines.append("nothing else received (noise aside)")
    for rank, (count, _, raw) in enumerate(scored[:CLOSEST]):
        got = frame(raw)
        lines.append(f"closest received #{rank + 1} ({count} differing fields): {got.summary()}")
        lines += [f"  {d}" for d in template.differences(got)]
        if rank == 0:
            lines += side_by_side(template, got)
            lines += ["hexdump expected:", hexdump(template.packet, dump=True),
                      "hexdump received:", hexdump(got, dump=True)]
    return "\n".join(lines)


def silence_report(headline: str, result: CaptureResult, offending: list[bytes]) -> str:
    """For expect_none: what arrived, the first few summarised and the first one dumped."""
    lines = [headline, _received(result)]
    lines += [f"  {frame(raw).summary()}" for raw in offending[:CLOSEST]]
    if offending:
        lines += ["hexdump of the first:", hexdump(offending[0], dump=True)]
    return "\n".join(lines)
