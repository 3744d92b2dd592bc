"""Link chatter never counts, also when a tunnel carries it: expect_none ignores neighbour discovery inside
GRE (and inside ESP of the SAs it is given), and still catches a real packet there."""
import pytest
from scapy.layers.inet import IP
from scapy.layers.inet6 import ICMPv6EchoRequest, ICMPv6ND_NS, IPv6
from scapy.layers.l2 import GRE, Ether

from grelab.capture.capture import CaptureResult
from grelab.craft.esp import SA, encrypt
from grelab.expect import expect_none

OUTER = IP(src="198.51.100.1", dst="203.0.113.1")
SA_ = SA(0x1001, "gcm128", bytes(20), src="198.51.100.1", dst="203.0.113.1")


class Held:
    """A capture that holds these frames already."""

    def __init__(self, *frames):
        self.frames = [(0.0, bytes(f)) for f in frames]

    def wait(self, **_):
        return CaptureResult(self.frames, False, len(self.frames), 0, "test:eth0")


def frame(inner, sa=None):
    packet = OUTER / GRE() / inner
    return Ether(src="02:00:00:00:0a:01", dst="02:00:00:00:0a:fe") / (encrypt(sa, packet) if sa else packet)


NS = IPv6(src="fe80::1", dst="ff02::1:ff00:2", hlim=255) / ICMPv6ND_NS(tgt="fe80::2")
ECHO = IPv6(src="2001:db8:1::10", dst="2001:db8:2::10") / ICMPv6EchoRequest()


def test_neighbour_discovery_inside_gre_or_esp_is_chatter():
    expect_none(Held(frame(NS)))
    expect_none(Held(frame(NS, SA_)), sas=[SA_])


def test_a_real_packet_inside_the_tunnel_still_fails_expect_none():
    with pytest.raises(AssertionError, match="1 frames arrived where none should"):
        expect_none(Held(frame(NS), frame(ECHO)))
