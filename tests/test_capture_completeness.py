"""Capture: every frame of a 100k burst, a jumbo frame whole, drops reported, filters, direction."""
import time

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from grelab.capture.capture import compile_filter
from grelab.errors import GrelabError
from grelab.lab.build import build
from grelab.lab.topology import End, Link, Node, Topology

A_MAC, B_MAC = "02:00:00:00:00:01", "02:00:00:00:00:02"


@pytest.fixture(scope="module")
def pair():
    topology = Topology([Node("a"), Node("b")],
                        [Link(End("a", "eth0", ["192.0.2.1/24"], A_MAC), End("b", "eth0", ["192.0.2.2/24"], B_MAC),
                              mtu=9000)])
    with build(topology) as lab:
        yield lab


def udp(size=44, dst=B_MAC, dport=40001):
    return bytes(Ether(src=A_MAC, dst=dst) / IP(src="192.0.2.1", dst="192.0.2.2")
                 / UDP(sport=40000, dport=dport) / (b"x" * size))


def test_a_100k_burst_is_captured_whole_and_promptly(pair):
    frame = udp(dst="02:00:00:00:00:99")  # for another host: B's stack drops it at once, the capture sees it
    assert len(frame) == 86
    with pair.capture("b", "eth0", "udp port 40001") as cap, pair.sender("a", "eth0") as tx:
        assert tx.send(frame, repeat=100_000) == 100_000
        sent = time.perf_counter()
        result = cap.wait(count=100_000, timeout=5)
        lag = time.perf_counter() - sent
    assert (len(result.frames), result.passed, result.dropped) == (100_000, 100_000, 0)
    assert all(data == frame for _, data in result.frames)
    assert lag < 0.25, f"completion {lag * 1000:.1f} ms after the last frame (goal 50 ms)"


def test_a_jumbo_frame_arrives_whole(pair):
    jumbo = udp(size=9000 - 28)
    assert len(jumbo) == 9014
    with pair.capture("b", "eth0", "udp") as cap, pair.sender("a", "eth0") as tx:
        tx.send(jumbo)
        result = cap.wait(count=1, timeout=2)
    assert [data for _, data in result.frames] == [jumbo]


def test_a_frame_too_big_for_the_link_is_refused_clearly(pair):
    with pair.sender("a", "eth0") as tx, pytest.raises(GrelabError, match="larger than the link's MTU"):
        tx.send(udp(size=9100))


def test_drops_are_reported_and_fail_loudly(pair):
    with pair.capture("b", "eth0", "udp", buffer_bytes=4096) as cap, pair.sender("a", "eth0") as tx:
        tx.send(udp(dst="02:00:00:00:00:99"), repeat=20_000)
        result = cap.wait(count=20_000, timeout=0.5)
    assert result.dropped > 0 and len(result.frames) + result.dropped <= result.passed <= 20_000
    with pytest.raises(AssertionError, match=r"dropped \d+ of \d+ frames"):
        result.check_no_drops()


def test_the_filter_is_armed_before_sending_and_keeps_other_frames_out(pair):
    with pair.capture("b", "eth0", "udp port 40002") as cap, pair.sender("a", "eth0") as tx:
        tx.send([udp(dport=40001), udp(dport=40002), udp(dport=40003), udp(dport=40002)])
        result = cap.wait(count=2, timeout=2)
    assert [Ether(data)[UDP].dport for _, data in result.frames] == [40002, 40002]
    assert all(abs(stamp - time.time()) < 5 for stamp, _ in result.frames)


def test_direction_and_predicate(pair):
    frames = [udp(dport=40000 + n) for n in range(5)]
    with pair.capture("a", "eth0", "udp", direction="out") as out, \
            pair.capture("a", "eth0", "udp", direction="in") as inbound, pair.sender("a", "eth0") as tx:
        tx.send(frames)
        result = out.wait(until=lambda got: any(Ether(d)[UDP].dport == 40003 for _, d in got), timeout=2)
        assert result.matched and len(result.frames) >= 4
        assert inbound.settle().frames == []  # the frames sent went past it as they left: read, and left out


def test_a_bad_filter_is_named():
    with pytest.raises(GrelabError, match="capture filter 'udp prt 5'"):
        compile_filter("udp prt 5")
