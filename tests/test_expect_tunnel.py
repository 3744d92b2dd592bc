"""expect_tunnel_carries: exactly the passengers, in order within each direction; crossing packets of the
two directions may pass the transit either way round."""
import pytest
from scapy.layers.inet6 import IPv6, ICMPv6EchoRequest
from scapy.layers.l2 import Ether

from grelab.craft.gre import gre
from grelab.expect.tunnel import expect_tunnel_carries

A, B = "2001:db8:1::1", "2001:db8:2::1"
a1, a2 = (bytes(IPv6(src=A, dst=B, hlim=64) / ICMPv6EchoRequest(seq=n)) for n in (1, 2))
b1 = bytes(IPv6(src=B, dst=A, hlim=64) / ICMPv6EchoRequest(seq=1))


def transit(*passengers: bytes) -> list[bytes]:
    """The passengers as the routers put them on the transit: in GRE, hop limit one less."""
    return [bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / gre(IPv6(p[:7] + b"\x3f" + p[8:]))) for p in passengers]


def test_packets_crossing_in_opposite_directions_may_pass_either_way_round():
    expect_tunnel_carries(transit(a1, b1, a2), [a1, a2, b1])
    expect_tunnel_carries(transit(b1, a1, a2), [a1, a2, b1])


def test_order_within_one_direction_is_kept():
    with pytest.raises(AssertionError, match=r"passenger 1 from 2001:db8:1::1: expected .*seq: 0x1\).*carried .*seq: 0x2\)"):
        expect_tunnel_carries(transit(a2, a1, b1), [a1, a2, b1])


def test_a_missing_passenger_is_named():
    with pytest.raises(AssertionError, match=r"carried 2 passengers, expected 3[\s\S]*from 2001:db8:2::1: expected .* carried nothing"):
        expect_tunnel_carries(transit(a1, a2), [a1, a2, b1])
