"""`grelab bench`, engine part: send rate, capture completeness and lag, topology build time, each
beside the usual way measured in the same run (scapy's sendp and sniff, one `ip` process per command).

The baselines are bounded in time: sendp runs for a fixed time and its rate is computed; sniff gets
the same burst and a fixed deadline. scapy runs inside the lab's namespaces with promisc=False: its
interface table is the root namespace's, and enabling promiscuous mode by that table's index fails.
"""
from __future__ import annotations

import statistics
import subprocess
import threading
import time

from grelab.bench import Measure
from grelab.lab import netns
from grelab.lab.build import build
from grelab.lab.topology import End, Link, Node, Topology, a_r_b

A_MAC, B_MAC = "02:00:00:00:00:01", "02:00:00:00:00:02"


def _frame() -> bytes:
    """86 bytes of UDP for a MAC nobody has: B's stack drops it at once, its capture still sees it."""
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether
    return bytes(Ether(src=A_MAC, dst="02:00:00:00:00:99") / IP(src="192.0.2.1", dst="192.0.2.2")
                 / UDP(sport=40000, dport=40001) / (b"x" * 44))


def _pair():
    return build(Topology([Node("a"), Node("b")], [Link(End("a", "eth0", ["192.0.2.1/24"], A_MAC),
                                                        End("b", "eth0", ["192.0.2.2/24"], B_MAC))]))


def _for_a_while(step, seconds: float) -> float:
    """Call step() (one unit) repeatedly for about `seconds`; units per second."""
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        step()
        count += 1
    return count / (time.perf_counter() - start)


def send_rates(lab, frame: bytes, count: int, seconds: float) -> tuple[float, float, float]:
    """(grelab sendmmsg, plain send loop on the same kept-open socket, scapy sendp) frames per second."""
    from scapy.sendrecv import sendp
    with lab.sender("a", "eth0") as tx:
        start = time.perf_counter()
        tx.send(frame, repeat=count)
        batched = count / (time.perf_counter() - start)
        start = time.perf_counter()
        for _ in range(count):
            tx.sock.send(frame)
        loop = count / (time.perf_counter() - start)
    scapy = lab.run_in("a", _for_a_while, lambda: sendp(frame, iface="eth0", verbose=False, promisc=False), seconds)
    return batched, loop, scapy


def capture_burst(lab, frame: bytes, count: int) -> tuple[float, float]:
    """grelab's capture of a burst: (percent captured, ms from the last frame sent to completion)."""
    with lab.capture("b", "eth0", "udp port 40001") as cap, lab.sender("a", "eth0") as tx:
        tx.send(frame, repeat=count)
        sent = time.perf_counter()
        result = cap.wait(count=count, timeout=5)
        lag = time.perf_counter() - sent
    return 100.0 * len(result.frames) / count, lag * 1000


def sniff_burst(lab, frame: bytes, count: int, deadline: float) -> float:
    """scapy's sniff on the same burst (inside B's namespace, armed before sending): percent captured."""
    from scapy.sendrecv import sniff
    armed, got = threading.Event(), []

    def sniffer() -> None:
        netns.enter(lab.namespace("b"))
        got.extend(sniff(iface="eth0", filter="udp port 40001", count=count, timeout=deadline,
                         started_callback=armed.set, store=True, promisc=False))

    thread = threading.Thread(target=sniffer)
    thread.start()
    if not armed.wait(5):
        raise RuntimeError("scapy's sniff did not start")
    with lab.sender("a", "eth0") as tx:
        tx.send(frame, repeat=count)
    thread.join()
    return 100.0 * len(got) / count


def topology_ms(times: int) -> float:
    """Median of `times` builds and teardowns of A-R-B."""
    samples = []
    for _ in range(times):
        start = time.perf_counter()
        with build(a_r_b()):
            pass
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1000


def ip_commands_ms() -> float:
    """The same A-R-B with one `ip` (or sysctl) process per command, up and down."""
    from grelab.lab.ownership import current_run
    ns = {n: current_run().namespace_name(f"bench-ip-{n}") for n in "arb"}
    commands = [["ip", "netns", "add", ns[n]] for n in "arb"]
    commands += [["ip", "netns", "exec", ns[n], "sysctl", "-qw", f"net.ipv6.conf.{f}.accept_dad=0"]
                 for n in "arb" for f in ("all", "default")]
    commands += [["ip", "netns", "exec", ns["r"], "sysctl", "-qw", k] for k in
                 ("net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")]
    commands += [["ip", "link", "add", "eth0", "netns", ns["a"], "type", "veth", "peer", "eth0", "netns", ns["r"]],
                 ["ip", "link", "add", "eth1", "netns", ns["r"], "type", "veth", "peer", "eth0", "netns", ns["b"]]]
    ends = [("a", "eth0", "192.0.2.1/24", "2001:db8:1::1/64"), ("r", "eth0", "192.0.2.254/24", "2001:db8:1::fe/64"),
            ("r", "eth1", "198.51.100.254/24", "2001:db8:2::fe/64"), ("b", "eth0", "198.51.100.1/24", "2001:db8:2::1/64")]
    for node, dev, v4, v6 in ends:
        commands += [["ip", "-n", ns[node], "link", "set", dev, "up"],
                     ["ip", "-n", ns[node], "addr", "add", v4, "dev", dev],
                     ["ip", "-n", ns[node], "addr", "add", v6, "dev", dev]]
    commands += [["ip", "-n", ns[n], "link", "set", "lo", "up"] for n in "arb"]
    for node, v4, v6 in (("a", "192.0.2.254", "2001:db8:1::fe"), ("b", "198.51.100.254", "2001:db8:2::fe")):
        commands += [["ip", "-n", ns[node], "route", "add", "default", "via", v4],
                     ["ip", "-n", ns[node], "-6", "route", "add", "default", "via", v6]]
    commands += [["ip", "netns", "delete", ns[n]] for n in "arb"]
    start = time.perf_counter()
    try:
        for argv in commands:
            subprocess.run(argv, check=True, capture_output=True)
    finally:
        for name in ns.values():
            netns.delete_namespace(name)
    return (time.perf_counter() - start) * 1000


def measures(quick: bool) -> list[Measure]:
    frame = _frame()
    out = []
    with _pair() as lab:
        batched, loop, scapy = send_rates(lab, frame, 50_000 if quick else 300_000, 0.3 if quick else 1.5)
        out.append(Measure("send_pps", batched, scapy, "frames/s",
                           "86-byte frames, kept-open AF_PACKET + sendmmsg; baseline scapy sendp per frame",
                           ">= 400,000"))
        out.append(Measure("send_loop_pps", loop, scapy, "frames/s",
                           "the same socket, one send() per frame; baseline scapy sendp per frame"))
        for count, key in ((10_000, "10k"), (100_000, "100k")):
            percent, lag = capture_burst(lab, frame, count)
            sniffed = sniff_burst(lab, frame, count, 0.5 if quick else 2.0)
            out.append(Measure(f"capture_{key}_percent", percent, sniffed, "%",
                               f"{count:,}-frame burst at full speed; baseline scapy sniff (same burst, armed first)",
                               "100"))
            out.append(Measure(f"capture_{key}_lag_ms", lag, None, "ms",
                               "last frame sent -> capture complete (sniff cannot tell it is complete)",
                               "<= 50"))
    out.append(Measure("capture_lag_ms", out[-1].grelab, None, "ms", "as capture_100k_lag_ms", "<= 50"))
    out.append(Measure("topology_ms", topology_ms(3 if quick else 9), ip_commands_ms(), "ms",
                       "A-R-B (2 veth pairs, IPv4+IPv6, forwarding) up and down; baseline one `ip` per command",
                       "<= 15"))
    return out
