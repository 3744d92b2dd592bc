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


def test_a_bad_gre_checksum_fails_naming_frame_and_field():
    frame = bytearray(bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / gre(IPv6(a1), csum=True)))
    frame[38] ^= 0xFF  # the GRE checksum: peel says checksum=BAD, so must the assertion
    with pytest.raises(AssertionError, match=r"transit frame 1: GRE checksum 0x.... is wrong .*checksum=BAD"):
        expect_tunnel_carries([bytes(frame)], [a1])


def test_a_bad_outer_ipv4_header_checksum_fails_naming_frame_and_field():
    frame = bytearray(transit(a1)[0])
    frame[24] ^= 0x01
    with pytest.raises(AssertionError, match=r"transit frame 1: outer IPv4 header checksum 0x.... is wrong \(0x.... would be right\)"):
        expect_tunnel_carries([bytes(frame)], [a1])


def test_a_passenger_whose_length_disagrees_with_the_outer_lengths_fails():
    outer = Ether(transit(a1)[0][:-1])  # one byte less of passenger; its own payload length still counts it
    outer.len = outer.chksum = None  # the outer lengths made to match what is left
    rebuilt = bytes(outer)
    with pytest.raises(AssertionError, match=r"transit frame 1: passenger length: its header says 48 bytes, the outer lengths leave 47"):
        expect_tunnel_carries([rebuilt], [a1])


def test_an_outer_total_length_beyond_the_frame_fails():
    frame = bytearray(transit(a1)[0])
    frame[16:18] = (int.from_bytes(frame[16:18], "big") + 8).to_bytes(2, "big")
    frame[24:26] = b"\0\0"
    from scapy.utils import checksum
    frame[24:26] = checksum(bytes(frame[14:34])).to_bytes(2, "big")
    with pytest.raises(AssertionError, match=r"transit frame 1: outer IPv4 total length 80: the frame holds 72 bytes after Ethernet"):
        expect_tunnel_carries([bytes(frame)], [a1])


def test_an_empty_or_truncated_expected_passenger_is_refused_by_name():
    from grelab.errors import MalformedPacket
    with pytest.raises(MalformedPacket, match="no bytes at all"):
        expect_tunnel_carries(transit(a1), [b""])
    with pytest.raises(MalformedPacket, match="malformed IPv6 at offset"):
        expect_tunnel_carries(transit(a1), [a1[:30]])


def test_ipv6_transport_ip6gre_and_its_lengths():
    frames = [bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
                    / gre(IPv6(p[:7] + b"\x3f" + p[8:]), transport="ipv6")) for p in (a1, b1)]
    expect_tunnel_carries(frames, [a1, b1])
    short = frames[0][:-4]  # the outer payload length now says more than the frame holds
    with pytest.raises(AssertionError, match="outer IPv6 payload length"):
        expect_tunnel_carries([short, frames[1]], [a1, b1])


def _tcp_frames():
    from scapy.layers.inet import IP, TCP
    segments = [IP(src="10.1.0.10", dst="10.2.0.10") / TCP(flags="S", options=[("MSS", 1460)]),
                IP(src="10.2.0.10", dst="10.1.0.10") / TCP(flags="SA", options=[("MSS", 1436)]),
                IP(src="10.1.0.10", dst="10.2.0.10") / TCP(flags="A", seq=1) / (b"x" * 1436),
                IP(src="10.2.0.10", dst="10.1.0.10") / TCP(flags="A"),
                IP(src="10.1.0.10", dst="10.2.0.10") / TCP(flags="PA", seq=1437) / (b"x" * 100),
                IP(src="10.1.0.10", dst="10.2.0.10") / TCP(flags="A", seq=1) / (b"x" * 1436)]  # a retransmission
    plain = [bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / s) for s in segments]
    tunnelled = [bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / gre(s, src="198.51.100.1", dst="203.0.113.1"))
                 for s in segments]
    return plain, tunnelled


def test_data_segments_and_syn_mss_on_the_link_and_inside_gre():
    from grelab.expect.tunnel import data_segments, syn_mss
    for frames in _tcp_frames():
        assert data_segments(frames, "10.1.0.10") == [1436, 100]  # the sender's first sendings: no ACK, SYN, resend
        assert data_segments(frames, "10.2.0.10") == []
        assert syn_mss(frames) == [1460, 1436]
