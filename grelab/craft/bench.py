"""`grelab bench`, craft part: the fast path beside scapy building and encrypting the same packets."""
from __future__ import annotations

from scapy.layers.inet import IP
from scapy.layers.inet6 import ICMPv6EchoRequest
from scapy.layers.l2 import GRE

from grelab.bench import Measure, timed_rate
from grelab.craft import esp
from grelab.craft.fast import FastESP, Stream
from grelab.craft.gre import gre, passenger

GCM_SA = esp.SA(spi=0x1000, algorithm="gcm128", key=bytes(range(1, 21)))


def measures(quick: bool) -> list[Measure]:
    fast_n, scapy_n = (20_000, 200) if quick else (65_535, 2_000)  # the echo's 16-bit sequence bounds a stream
    stream = Stream(gre(passenger(), key=1, seq=1))
    vary = {(GRE, "sequence_number"): range(1, fast_n + 1), (ICMPv6EchoRequest, "seq"): range(1, fast_n + 1)}
    craft_fast = _best(lambda: stream.build(vary), fast_n)
    craft_scapy = timed_rate(lambda: [bytes(gre(passenger(seq=i), key=1, seq=i)) for i in range(1, scapy_n + 1)],
                             scapy_n)

    packets = stream.build(vary)
    fast_esp = FastESP(GCM_SA)
    esp_fast = _best(lambda: fast_esp.encrypt(packets, first_seq=1), fast_n)
    dissected = [IP(p) for p in packets[:scapy_n]]
    scapy_sa = GCM_SA.scapy(1)
    esp_scapy = timed_rate(lambda: [scapy_sa.encrypt(p, seq_num=i, iv=esp.default_iv("gcm128", i))
                                    for i, p in enumerate(dissected, 1)], scapy_n)
    return [
        Measure("craft_pps", craft_fast, craft_scapy, "pkt/s",
                "IPv4/GRE(key,seq)/IPv6/ICMPv6 echo, seq varying: fast path vs scapy building each packet",
                ">= 1,000,000"),
        Measure("esp_gcm_pps", esp_fast, esp_scapy, "pkt/s",
                "ESP AES-GCM-128 around those packets: cryptography directly vs scapy SecurityAssociation.encrypt",
                ">= 250,000"),
    ]


def _best(fn, count: int, runs: int = 3) -> float:
    """The best of a few runs: the machine is shared, and the fast path is short enough to repeat."""
    return max(timed_rate(fn, count) for _ in range(runs))
