"""`grelab bench`, scenario part: esp_refusals at speed. grelab is the far end of r1's ESP-protected GRE tunnel
(the grelab_endpoint network) and sends 10,000 packets of each kind r1 must refuse, built by the fast path
(grelab.craft.fast: Stream + FastESP) and sent by the lab's Sender at full rate; the DUT's /proc/net/xfrm_stat
deltas say what it counted. Baseline: scapy's SecurityAssociation building the same packets, one by one.

refuse_<kind>_pps: packets built and sent per second (grelab) beside scapy building them (baseline);
refuse_<kind>_counted: packets the DUT counted under the kind's counter (grelab) of those sent (baseline). A
user-mode-linux DUT does not take 10,000 frames at full rate: what its interface dropped is not counted.
"""
from __future__ import annotations

import struct
import time

from scapy.layers.inet import IP
from scapy.layers.inet6 import ICMPv6EchoRequest, IPv6
from scapy.layers.l2 import GRE

from grelab.bench import Measure, timed_rate
from grelab.craft import esp
from grelab.craft.fast import FastESP, Stream
from grelab.dut.plan import Plan, XfrmState
from grelab.lab.build import build
from grelab.lab.ownership import current_run
from grelab.networks.endpoint import FAR_LAN_HOST, GRELAB, H1, IN_ESP, R1_WAN, connect, grelab_endpoint, topology

STRANGER = esp.SA(0x0000DEAD, "cbc128-sha256", bytes(16), bytes(32), src=GRELAB, dst=R1_WAN)


def _echoes(count: int) -> list[bytes]:
    template = (IP(src=GRELAB, dst=R1_WAN, ttl=64) / GRE() / IPv6(src=FAR_LAN_HOST, dst=H1, hlim=64)
                / ICMPv6EchoRequest(id=0x4243, seq=0, data=b"from grelab"))
    return Stream(template).build({(ICMPv6EchoRequest, "seq"): range(count)})


def _truncated(packet: bytes, esp_bytes: int) -> bytes:
    header = bytearray(packet[:20])
    header[2:4], header[10:12] = struct.pack("!H", 20 + esp_bytes), b"\0\0"
    header[10:12] = struct.pack("!H", _ip_checksum(bytes(header)))
    return bytes(header) + packet[20:20 + esp_bytes]


def _ip_checksum(header: bytes) -> int:
    total = sum(struct.unpack(f"!{len(header) // 2}H", header))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _flip(packet: bytes) -> bytes:
    at = 20 + 8 + 16 + 4  # a bit of the ciphertext
    return packet[:at] + bytes([packet[at] ^ 1]) + packet[at + 1:]


def kinds(to_r1: esp.SA, count: int, scapy_count: int) -> dict:
    """kind -> (counter, fast path: () -> the count IP packets, scapy: () -> the first scapy_count of them built by
    scapy one by one, the valid packets to send first)."""
    echoes = _echoes(count)
    ahead = count + 100  # one valid packet this far ahead moves the window past every sequence number below
    fast, stranger = FastESP(to_r1), FastESP(STRANGER)
    scapy_sa, scapy_stranger = to_r1.scapy(1), STRANGER.scapy(1)

    def scapy_esp(sa, seqs):
        return lambda: [bytes(sa.encrypt(IP(p), seq_num=s, iv=esp.default_iv(to_r1.algorithm, s)))
                        for p, s in zip(echoes[:scapy_count], seqs)]
    return {
        "plaintext_gre": ("XfrmInTmplMismatch", lambda: echoes,
                          lambda: [bytes(IP(p)) for p in echoes[:scapy_count]], ()),
        "flipped_bit": ("XfrmInStateProtoError", lambda: [_flip(p) for p in fast.encrypt(echoes, 1)],
                        scapy_esp(scapy_sa, range(1, count + 1)), ()),
        "left_of_window": ("XfrmInStateSeqError", lambda: fast.encrypt(echoes, 1),
                           scapy_esp(scapy_sa, range(1, count + 1)), fast.encrypt(echoes[:1], ahead)),
        "replayed": ("XfrmInStateSeqError", lambda: fast.encrypt(echoes[:1], ahead + 1) * count,
                     lambda: [bytes(scapy_sa.encrypt(IP(echoes[0]), seq_num=ahead + 1,
                                                     iv=esp.default_iv(to_r1.algorithm, ahead + 1)))
                                     for _ in range(scapy_count)],
                     fast.encrypt(echoes[:1], ahead + 1)),
        "unknown_spi": ("XfrmInNoStates", lambda: stranger.encrypt(echoes, 1),
                        scapy_esp(scapy_stranger, range(1, count + 1)), ()),
        "truncated_header": ("XfrmInHdrError", lambda: [_truncated(p, 6) for p in fast.encrypt(echoes, 1)],
                             lambda: [_truncated(b, 6) for b in scapy_esp(scapy_sa, range(1, count + 1))()], ()),
    }


def _settled(dut, deadline: float):
    """The DUT's counters once two readings agree (nothing more arrives), or at the deadline."""
    last = dut.counters()
    while time.monotonic() < deadline:
        now = dut.counters()
        if now == last:
            return now
        last = now
    return last


def measures(quick: bool) -> list[Measure]:
    from grelab.dut.pool import DutPool
    count, scapy_count = (1_000, 50) if quick else (10_000, 500)
    scenario = grelab_endpoint("bench_refusals", variants=(IN_ESP,))
    pool = DutPool("uml")
    scope = current_run().scope.child("bench refusals")
    results = []
    try:
        dut = pool.get("r1", scenario.interfaces)
        plans = connect(IN_ESP, lambda local, remote: scenario.sas(IN_ESP, local, remote))
        lab = build(scenario.with_plans(topology(r1=dut), plans), scope=scope)
        to_r1 = scenario.sas(IN_ESP, GRELAB, R1_WAN)[0]
        end, peer = lab.link_end("grelab", "eth0"), lab.link_end("r1", "wan")
        ether = bytes.fromhex(peer.mac.replace(":", "") + end.mac.replace(":", "")) + b"\x08\x00"
        with lab.sender("grelab", "eth0") as tx:
            for kind, (counter, fast, scapy, setup) in kinds(to_r1, count, scapy_count).items():
                if setup:
                    tx.send([ether + p for p in setup])
                before = _settled(dut, time.monotonic() + 2)
                start = time.perf_counter()
                frames = [ether + p for p in fast()]
                tx.send(frames)
                pps = count / (time.perf_counter() - start)
                moved = _settled(dut, time.monotonic() + 5).delta(before)
                scapy_pps = timed_rate(scapy, scapy_count)
                wan = moved.link("wan").get("rx_packets", 0)
                results.append(Measure(f"refuse_{kind}_pps", pps, scapy_pps, "pkt/s",
                                       f"{count} {kind.replace('_', ' ')} packets built (fast path) and sent to r1; "
                                       "baseline: scapy SecurityAssociation building them"))
                results.append(Measure(f"refuse_{kind}_counted", moved["xfrm"].get(counter, 0), count, "pkts",
                                       f"{counter} of those sent (baseline); r1's wan received {wan}; "
                                       f"xfrm_stat moved: {moved['xfrm']}"))
            moved = expired_at_speed(dut, tx, ether, to_r1, count)
            results.append(Measure("refuse_expired_counted", moved.get("XfrmInStateExpired", 0), count, "pkts",
                                   "XfrmInStateExpired of the packets sent on an SA with one packet of lifetime "
                                   f"(baseline: sent); the kernel then deletes it: xfrm_stat moved: {moved}"))
    finally:
        scope.close()
        pool.stop()
    return results


def expired_at_speed(dut, tx, ether: bytes, to_r1: esp.SA, count: int) -> dict:
    """A short-lived SA (one packet of lifetime) beside the variant's, then count packets on it: the first over
    the limit counts as XfrmInStateExpired, the kernel deletes the SA, and the rest count as no state."""
    short = esp.SA(0x00005101, to_r1.algorithm, to_r1.key, to_r1.auth_key, src=GRELAB, dst=R1_WAN)
    dut.apply(Plan(states=(XfrmState(short, packet_limit=1),)))
    before = _settled(dut, time.monotonic() + 2)
    tx.send([ether + p for p in FastESP(short).encrypt(_echoes(count), 1)])
    return _settled(dut, time.monotonic() + 5).delta(before)["xfrm"]
