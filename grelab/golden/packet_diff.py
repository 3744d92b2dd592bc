"""Field-by-field difference of two packets, through every layer: the heart of a readable failure."""
from __future__ import annotations

from scapy.packet import Packet


def _layers(pkt: Packet):
    layer, depth = pkt, 0
    while layer is not None and layer.name != "NoPayload":
        yield depth, layer
        layer, depth = layer.payload, depth + 1


def field_diff(expected: Packet, got: Packet) -> list[str]:
    """Lines like `GRE.seqence_number: 7 != 8` (expected != got), outermost layer first."""
    lines = []
    want_layers, got_layers = list(_layers(expected)), list(_layers(got))
    for (depth, w), (_, g) in zip(want_layers, got_layers):
        if type(w) is not type(g):
            lines.append(f"layer {depth + 1}: {w.name} != {g.name}")
            break
        for f in w.fields_desc:
            wv, gv = w.getfieldval(f.name), g.getfieldval(f.name)
            if wv != gv:
                lines.append(f"{w.name}.{f.name}: {f.i2repr(w, wv)} != {f.i2repr(g, gv)}")
    if len(want_layers) != len(got_layers):
        lines.append("layers: " + "/".join(l.name for _, l in want_layers)
                     + " != " + "/".join(l.name for _, l in got_layers))
    return lines
