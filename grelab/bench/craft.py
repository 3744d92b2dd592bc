"""`grelab bench`, craft part: the fast path beside scapy building and encrypting the same packets: GRE packets,
then ESP around them with every algorithm of the table (esp_<algorithm>_pps, '-' written '_')."""
from __future__ import annotations

from scapy.layers.inet import IP
from scapy.layers.inet6 import ICMPv6EchoRequest
from scapy.layers.l2 import GRE

from grelab.bench import Measure, timed_rate
from grelab.craft import esp
from grelab.craft.fast import FastESP, Stream
from grelab.craft.gre import gre, passenger


def _sa(algorithm: str) -> esp.SA:
    algo = esp.ALGORITHMS[algorithm]
    return esp.SA(0x1000, algorithm, bytes(range(1, algo.key_len + 1)), bytes(range(0x41, 0x41 + algo.auth_key_len)))


def measures(quick: bool) -> list[Measure]:
    fast_n, scapy_n = (20_000, 200) if quick else (65_535, 2_000)  # the echo's 16-bit sequence bounds a stream
    stream = Stream(gre(passenger(), key=1, seq=1))
    vary = {(GRE, "sequence_number"): range(1, fast_n + 1), (ICMPv6EchoRequest, "seq"): range(1, fast_n + 1)}
    craft_fast = _best(lambda: stream.build(vary), fast_n)
    craft_scapy = timed_rate(lambda: [bytes(gre(passenger(seq=i), key=1, seq=i)) for i in range(1, scapy_n + 1)],
                             scapy_n)

    packets = stream.build(vary)
    results = [Measure("craft_pps", craft_fast, craft_scapy, "pkt/s",
                       "IPv4/GRE(key,seq)/IPv6/ICMPv6 echo, seq varying: fast path vs scapy building each packet",
                       ">= 1,000,000")]
    # Per algorithm, fewer packets than above: 51 algorithms, each measured both ways.
    esp_fast_n, esp_scapy_n, runs = (500, 10, 1) if quick else (20_000, 500, 3)
    dissected = [IP(p) for p in packets[:esp_scapy_n]]
    for algorithm in esp.ALGORITHMS:
        sa = _sa(algorithm)
        fast_esp = FastESP(sa)
        esp_fast = _best(lambda: fast_esp.encrypt(packets[:esp_fast_n], first_seq=1), esp_fast_n, runs)
        scapy_sa = sa.scapy(1)
        esp_scapy = timed_rate(lambda: [scapy_sa.encrypt(p, seq_num=i, iv=esp.default_iv(algorithm, i))
                                        for i, p in enumerate(dissected, 1)], esp_scapy_n)
        results.append(Measure(f"esp_{algorithm.replace('-', '_')}_pps", esp_fast, esp_scapy, "pkt/s",
                               f"ESP {algorithm} around those packets: cryptography directly vs scapy "
                               "SecurityAssociation.encrypt", ">= 250,000" if algorithm == "gcm128" else ""))
    return results


def _best(fn, count: int, runs: int = 3) -> float:
    """The best of a few runs: the machine is shared, and the fast path is short enough to repeat."""
    return max(timed_rate(fn, count) for _ in range(runs))
