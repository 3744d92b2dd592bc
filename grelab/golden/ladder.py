"""A case's frames as a ladder (Wireshark's Flow Graph): who put each frame on which link for whom, what it is with
its ESP decrypted, what became of it at a DUT that took it in and let nothing of it out, and where it differs from
the golden. Pure: frames, the lab's link ends, the case's SAs and counts in; rows of data out, drawn by
grelab.golden.report_page.

A drop is only drawn where the case asserted what a DUT counted (grelab.golden.recorder.Counted): a frame sent to
that DUT within the span whose packet never came out of it (none of the DUT's frames carries it) ends in a cross,
the counters beside it. Carrying is told by the IP packets a frame holds, through GRE (nested too) and ESP, each
as a router forwards it: TTL or hop limit, TOS or traffic class (ECN marking) and the IPv4 checksum set aside.
"""
from __future__ import annotations

from collections.abc import Iterable

from scapy.layers.inet import IP, IPerror
from scapy.layers.inet6 import IPerror6, IPv6
from scapy.layers.l2 import Ether
from scapy.packet import NoPayload

from grelab.craft.dissect import frame as dissect_frame
from grelab.craft.esp import SA
from grelab.craft.peel import Peeled, peel
from grelab.errors import GrelabError
from grelab.expect.match import Template
from grelab.golden.case import Frame
from grelab.golden.recorder import Counted, GoldenRecorder

# Counters of packets a DUT took and handled as usual: beside a drop, the counters of what was refused count.
TAKEN = ("rx_packets", "tx_packets", "rx_bytes", "tx_bytes", "InReceives", "InDelivers", "ForwDatagrams",
         "OutRequests", "OutForwDatagrams")
LATE = 0.05  # s: a frame stamped when read (not when queued) may carry a time just after the span that counted it


def rows(frames: list[Frame], ends: dict[str, tuple[str, str, str, str]], sas: Iterable[SA] = (),
         counts: Iterable[Counted] = ()) -> list[dict]:
    """One row per frame: link, time, from and to (nodes, by the ends of the link the frame was captured on:
    {link: (node, mac, peer node, peer mac)}), label (the frame peeled, up to its ESP), inner (what the ESP
    decrypts to, or why it does not), comment (what the scenario says of it); "drop" (the counters) on drops."""
    sas = tuple(sas)
    drawn = [{"link": f.link, "time": f.time, **_ends(f, ends.get(f.link)), **labels(f.data, sas),
              "comment": GoldenRecorder.story(f.comment)} for f in frames]
    for index, counted in drops(frames, drawn, sas, counts).items():
        drawn[index]["drop"] = counted
    return drawn


def _ends(f: Frame, end: tuple[str, str, str, str] | None) -> dict:
    src, dst = _mac(f.data[6:12]), _mac(f.data[0:6])
    if end is None:  # a link the lab does not know: the MACs are all there is
        return {"from": src, "to": dst}
    node, mac, peer, peer_mac = end
    sender = node if src == mac else peer if src == peer_mac else node if dst == peer_mac else peer
    return {"from": sender, "to": peer if sender == node else node}  # a veth has two ends: to the other one


def _mac(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


def labels(data: bytes, sas: tuple[SA, ...]) -> dict:
    """{"label": the frame up to and with its ESP header, "inner": what that ESP decrypts to, or why it does not
    ("" without ESP)}."""
    try:
        peeled, problem = peel(data, sas), ""
    except GrelabError as exc:  # ESP of a known SA that does not decrypt (broken on purpose)
        try:
            peeled, problem = peel(data), f"does not decrypt: {exc}"
        except GrelabError:  # not even its outermost header is whole
            return {"label": _plain(data), "inner": str(exc)}
    if peeled.esp_spi is None:
        return {"label": _tunnel(peeled.layers[1:], peeled) if peeled.gre is not None else _plain(data), "inner": problem}
    at = next(i for i, layer in enumerate(peeled.layers) if layer.startswith("ESP"))
    outer, inner = peeled.layers[1:at + 1], peeled.layers[at + 1:]
    if problem or not any(sa.spi == peeled.esp_spi for sa in sas):
        return {"label": " / ".join(outer).split(" (no SA given")[0], "inner": problem or "no SA for this SPI: not decrypted"}
    if not inner or not inner[0].startswith("IPv"):  # transport mode: the same IP header, carrying what ESP held
        inner = [layer for layer in outer if layer.startswith("IPv")][-1:] + inner
    # ESP carrying plain IP (no GRE): its layers say it all
    return {"label": " / ".join(outer), "inner": _tunnel(inner, peeled) if peeled.gre is not None else " / ".join(inner)}


def _tunnel(layers: list[str], peeled: Peeled) -> str:
    passenger = f"[{peeled.passenger_problem}]" if peeled.passenger_problem else _summary(peeled.passenger)
    return " / ".join(layers) + " -> " + passenger


def _plain(data: bytes) -> str:
    """A frame without a tunnel."""
    packet = dissect_frame(data)
    return _summary(packet.payload) if isinstance(packet, Ether) and packet.payload else _summary(packet)


def _summary(packet) -> str:
    """scapy's summary, with the IP addresses (scapy leaves them out for IPv6 and for IPv4 in IPv4)."""
    if packet is None or isinstance(packet, NoPayload):
        return "(nothing)"
    if isinstance(packet, (IP, IPv6)):
        rest = packet.payload.summary() if packet.payload else "(no payload)"
        named = isinstance(packet, IP) and packet.src in rest  # ICMP, TCP, UDP over IPv4 name them
        return rest if named else f"IPv{packet.version} {packet.src} > {packet.dst} / {rest}"
    return packet.summary()


def drops(frames: list[Frame], drawn: list[dict], sas: tuple[SA, ...], counts: Iterable[Counted]) -> dict[int, str]:
    """{row index: the counters beside its cross} for each frame sent to a DUT within a span the case counted
    whose packet no frame of that DUT carries (each of the DUT's frames accounts for one frame sent to it)."""
    counts = list(counts)
    if not counts:
        return {}
    held = [carried(f.data, sas) for f in frames]
    found: dict[int, str] = {}
    for dut in dict.fromkeys(c.dut for c in counts):
        out = [i for i, row in enumerate(drawn) if row["from"] == dut]
        used: set[int] = set()
        for i, row in enumerate(drawn):
            if row["to"] != dut:
                continue
            inside = held[i][1:] or held[i][:1]  # what it carries (a packet of its own: itself)
            came_out = next((j for j in out if j not in used and set(inside) & set(held[j])), None)
            if came_out is not None:
                used.add(came_out)
                continue
            span = next((c for c in counts if c.dut == dut and c.since <= frames[i].time <= c.until + LATE), None)
            if span is not None:
                found[i] = counters_text(span.moved)
    return found


def counters_text(moved: dict[str, int]) -> str:
    """What a DUT counted, as beside a cross: "XfrmInNoStates +1", "gre1.rx_crc_errors +1, gre1.rx_errors +1"."""
    shown = [f"{name.removeprefix('xfrm.').removeprefix('snmp.')} +{n}" for name, n in moved.items()
             if not name.endswith(TAKEN)]
    return ", ".join(shown) or "no counter moved"


def carried(data: bytes, sas: tuple[SA, ...]) -> list[bytes]:
    """The IP packets a frame holds, outermost first: its own, then each GRE passenger's (through ESP that
    decrypts, and GRE in GRE), each as forwarding leaves it. What an ICMP error quotes is not carried."""
    found: list[bytes] = []
    packet = Ether(data).payload
    while isinstance(packet, (IP, IPv6)):
        found.append(_as_forwarded(bytes(packet)))
        if packet.haslayer(IPerror) or packet.haslayer(IPerror6):  # an ICMP error quotes a packet, carries none
            break
        try:
            peeled = peel(packet, sas)
        except GrelabError:
            break
        packet = peeled.passenger
        if isinstance(packet, Ether):  # gretap: the Ethernet frame's IP packet
            packet = packet.payload
    return found


def _as_forwarded(raw: bytes) -> bytes:
    """The packet's bytes up to its own length, without what a router may change on the way."""
    b = bytearray(raw)
    if len(b) >= 20 and b[0] >> 4 == 4:
        b = b[:max(20, int.from_bytes(b[2:4], "big"))]
        b[1] = b[8] = b[10] = b[11] = 0  # TOS (ECN), TTL, checksum
    elif len(b) >= 40 and b[0] >> 4 == 6:
        b = b[:40 + int.from_bytes(b[4:6], "big")]
        b[0], b[1], b[7] = 0x60, b[1] & 0x0F, 0  # traffic class (ECN), hop limit
    return bytes(b)


def golden_marks(golden: list[Frame], got: list[Frame]) -> dict[int, list[str]]:
    """{index in got: why} for the first frame per link that differs from the golden (field by field, as the
    failure says), or that the golden does not have."""
    marks: dict[int, list[str]] = {}
    for link in dict.fromkeys(f.link for f in got):
        want = [f for f in golden if f.link == link]
        have = [i for i, f in enumerate(got) if f.link == link]
        for n, i in enumerate(have):
            if n >= len(want):
                marks[i] = [f"not in the golden (it has {len(want)} on {link})"]
                break
            if want[n].key() != got[i].key():
                fields = Template(want[n].data).differences(dissect_frame(got[i].data))
                marks[i] = [str(d) for d in fields] or [f"comment: golden {want[n].comment!r}"]
                break
    return marks
