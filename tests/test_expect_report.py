"""Expectations: don't-care fields at any depth, counts, order, silence amid noise, the failure report."""
import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import ICMPv6EchoRequest, ICMPv6MLReport2, ICMPv6ND_NS, IPv6, IPv6ExtHdrHopByHop, RouterAlert
from scapy.layers.l2 import ARP, GRE, Ether

from grelab.capture.capture import CaptureResult
from grelab.errors import GrelabError
from grelab.expect import Template, expect, expect_none, is_noise
from grelab.lab.build import build
from grelab.lab.topology import End, Link, Node, Topology

MACS = dict(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
DONT_CARE = ["IP.id", "IP.chksum", "GRE.sequence_number", "IPv6.hlim"]


def gre_v4(ip_id=1, seq=1, hlim=64, echo_seq=1):
    return bytes(Ether(**MACS) / IP(src="192.0.2.1", dst="192.0.2.2", id=ip_id) / GRE(seqnum_present=1, sequence_number=seq)
                 / IPv6(src="2001:db8:1::1", dst="2001:db8:2::1", hlim=hlim) / ICMPv6EchoRequest(id=7, seq=echo_seq))


def gre_v6(outer_hlim=64, inner_hlim=64):
    return bytes(Ether(**MACS) / IPv6(src="2001:db8::1", dst="2001:db8::2", hlim=outer_hlim) / GRE()
                 / IPv6(src="2001:db8:1::1", dst="2001:db8:2::1", hlim=inner_hlim) / ICMPv6EchoRequest(id=7))


class Replay:
    """A capture that already holds these frames (the matching logic, without namespaces)."""

    def __init__(self, frames, dropped=0):
        self.frames = [(float(i), raw) for i, raw in enumerate(frames)]
        self.dropped = dropped

    def wait(self, count=None, until=None, timeout=1.0):
        matched = bool(until and until(self.frames))
        return CaptureResult(self.frames, matched, len(self.frames) + self.dropped, self.dropped, "b:eth0")


def test_dont_care_fields_at_every_depth():
    template = Template(gre_v4(), DONT_CARE)
    assert template.matches(gre_v4(ip_id=99, seq=7, hlim=63))
    assert not template.matches(gre_v4(echo_seq=2))
    plain = Template(gre_v4())
    assert {(d.layer, d.field) for d in plain.differences(Ether(gre_v4(ip_id=99, seq=7, hlim=63)))} == {
        ("IP", "id"), ("IP", "chksum"), ("GRE", "sequence_number"), ("IPv6", "hlim")}


def test_the_nth_layer_of_a_class_is_named_by_its_depth():
    inner_only = Template(gre_v6(), ["IPv6:2.hlim"])
    assert inner_only.matches(gre_v6(inner_hlim=1))
    assert not inner_only.matches(gre_v6(outer_hlim=1))
    assert Template(gre_v6(), ["IPv6.hlim"]).matches(gre_v6(outer_hlim=1, inner_hlim=1))  # no :n: every IPv6


def test_counts_and_order():
    first, second = gre_v4(echo_seq=1), gre_v4(echo_seq=2)
    assert len(expect(Replay([first, second, first]), first, count=2)) == 2
    with pytest.raises(AssertionError, match="expected 1 matching frames, got 2"):
        expect(Replay([first, first]), first)
    with pytest.raises(AssertionError, match="matched 2; waiting for template #1"):
        expect(Replay([first, first]), first, count=3)
    expect(Replay([second, first]), [first, second], ordered=False)
    with pytest.raises(AssertionError, match="in order"):
        expect(Replay([second, first]), [first, second])


def test_drops_fail_an_expectation_even_when_everything_matched():
    with pytest.raises(AssertionError, match="dropped 5 frames"):
        expect(Replay([gre_v4()], dropped=5), gre_v4())


def noise():
    mld = Ether(**MACS) / IPv6(src="fe80::1", dst="ff02::16", hlim=1) / IPv6ExtHdrHopByHop(options=[RouterAlert()]) \
        / ICMPv6MLReport2()
    ns = Ether(**MACS) / IPv6(src="fe80::1", dst="ff02::1:ff00:2") / ICMPv6ND_NS(tgt="2001:db8::2")
    arp = Ether(**MACS) / ARP(pdst="192.0.2.2")
    return [bytes(p) for p in (mld, ns, arp)]


def test_expect_none_ignores_link_chatter():
    assert all(map(is_noise, noise()))
    expect_none(Replay(noise()))
    udp = bytes(Ether(**MACS) / IP(src="192.0.2.1", dst="192.0.2.2") / UDP(sport=40000, dport=40001))
    with pytest.raises(AssertionError, match=r"(?s)1 frames arrived where none should.*UDP.*hexdump"):
        expect_none(Replay(noise() + [udp]))
    expect_none(Replay([udp]), gre_v4())  # only frames matching the template count


def test_a_misspelt_dont_care_field_is_refused():
    with pytest.raises(GrelabError, match="Layer:n.field"):
        Template(gre_v4(), ["hlim"])


@pytest.fixture(scope="module")
def pair():
    topology = Topology([Node("a"), Node("b")], [Link(End("a", "eth0", mac=MACS["src"]), End("b", "eth0", mac=MACS["dst"]))])
    with build(topology) as lab:
        yield lab


def test_the_failure_report_shows_a_differing_inner_field(pair):
    """Sent for real: the inner hop limit differs (63 instead of 64); the outer fields are don't-care."""
    with pair.capture("b", "eth0", "ip6 proto 47") as cap, pair.sender("a", "eth0") as tx:
        tx.send([gre_v6(inner_hlim=63)])
        received, = expect(cap, gre_v6(), ignore=["IPv6.hlim"], timeout=2)  # every IPv6 hop limit: a match
    assert received[IPv6:2].hlim == 63
    with pair.capture("b", "eth0", "ip6 proto 47") as cap, pair.sender("a", "eth0") as tx:
        tx.send([gre_v6(inner_hlim=63)])
        with pytest.raises(AssertionError) as failure:
            expect(cap, gre_v6(), ignore=["IPv6:1.hlim"], timeout=2)
    text = str(failure.value)
    assert "received on b:eth0: 1 frames (0 dropped by the capture)" in text
    assert "expected: Ether / IPv6 / GRE / IPv6 / ICMPv6 Echo Request" in text
    assert "IPv6:2.hlim: expected 64, got 63" in text
    assert "closest received #1 (1 differing fields)" in text
    side = [line for line in text.splitlines() if line.split()[0] in ("IPv6.hlim", "IPv6:2.hlim") and ":" not in line.split()[1]]
    assert side[0].split()[1:] == ["64", "64", "~"] and side[1].split()[1:] == ["64", "63", "!"]
    assert "hexdump expected:" in text and "hexdump received:" in text and "0000  02 00 00 00 00 02" in text
