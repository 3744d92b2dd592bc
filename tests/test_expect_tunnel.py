"""expect_tunnel_carries: exactly the passengers, in order within each direction; crossing packets of the
two directions may pass the transit either way round."""
import hashlib
import hmac

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


# As strict as the receiving stack: NAT-T checksums, outer addresses, ESP padding, GRE's reserved bits.
def _esp_frames(sa, *passengers):
    """Each passenger in GRE in ESP of sa (grelab's encrypt), framed."""
    from grelab.craft.esp import encrypt
    frames = []
    for n, p in enumerate(passengers, 1):
        inner = gre(IPv6(p[:7] + b"\x3f" + p[8:]), transport=f"ipv{sa.version}", src=sa.src, dst=sa.dst)
        frames.append(bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / encrypt(sa, inner, seq=n)))
    return frames


def _sa(version=4, nat_t=None, algorithm="cbc128-sha256"):
    from grelab.craft.esp import SA
    from grelab.craft.algorithms import ALGORITHMS
    algo = ALGORITHMS[algorithm]
    src, dst = ("192.0.2.1", "198.51.100.2") if version == 4 else ("2001:db8::1", "2001:db8::2")
    return SA(0x1001, algorithm, bytes(range(algo.key_len)), bytes(range(algo.auth_key_len)), src=src, dst=dst,
              nat_t=nat_t)


def _with_udp_checksum(frame: bytes, value: int, version: int) -> bytes:
    at = 14 + (20 if version == 4 else 40) + 6
    return frame[:at] + value.to_bytes(2, "big") + frame[at + 2:]


@pytest.mark.parametrize("version", [4, 6])
def test_nat_t_esp_with_a_wrong_udp_checksum_fails(version):
    sa = _sa(version, nat_t=(4500, 4500))
    frame = _esp_frames(sa, a1)[0]
    expect_tunnel_carries([frame], [a1], sas=[sa])  # as crafted: zero over IPv4, computed over IPv6
    wrong = _with_udp_checksum(frame, 0x1234, version)
    with pytest.raises(AssertionError, match=r"transit frame 1: NAT-T UDP checksum 0x1234 is wrong \(0x.... would be right"):
        expect_tunnel_carries([wrong], [a1], sas=[sa])


def test_a_zero_nat_t_checksum_is_allowed_over_ipv4_only():
    sa4, sa6 = _sa(4, nat_t=(4500, 4500)), _sa(6, nat_t=(4500, 4500))
    expect_tunnel_carries([_with_udp_checksum(_esp_frames(sa4, a1)[0], 0, 4)], [a1], sas=[sa4])
    with pytest.raises(AssertionError, match=r"NAT-T UDP checksum 0 over IPv6: RFC 8200 8.1 wants it computed"):
        expect_tunnel_carries([_with_udp_checksum(_esp_frames(sa6, a1)[0], 0, 6)], [a1], sas=[sa6])


def test_esp_whose_outer_addresses_are_not_its_sas_fails():
    import dataclasses
    sa = _sa()
    frame = _esp_frames(sa, a1)[0]
    elsewhere = dataclasses.replace(sa, dst="198.51.100.99")  # the same SPI and keys, another destination
    with pytest.raises(AssertionError, match=r"ESP SPI 0x00001001: outer addresses 192.0.2.1 > 198.51.100.2, its SA's "
                                             r"are 192.0.2.1 > 198.51.100.99"):
        expect_tunnel_carries([frame], [a1], sas=[elsewhere])


def test_gre_whose_outer_addresses_are_no_tunnels_endpoints_fails():
    frames = transit(a1, b1)  # gre()'s default addresses, 192.0.2.1 <> 198.51.100.1 or so
    from scapy.layers.inet import IP
    src, dst = Ether(frames[0])[IP].src, Ether(frames[0])[IP].dst
    expect_tunnel_carries(frames, [a1, b1], endpoints=[(src, dst)])  # either way round
    with pytest.raises(AssertionError, match=rf"transit frame 1: GRE's outer addresses {src} > {dst} are no tunnel's "
                                             r"endpoints \(203.0.113.1 <> 203.0.113.2\)"):
        expect_tunnel_carries(frames, [a1, b1], endpoints=[("203.0.113.1", "203.0.113.2")])


def test_esp_padding_other_than_rfc_4303s_fails():
    """scapy drops the padding unchecked; RFC 4303 2.4 has it 1, 2, 3, ... A null-cipher SA shows it in the clear."""
    from grelab.craft.esp import SA
    sa = SA(0x1001, "null-sha256", b"", bytes(32), src="192.0.2.1", dst="198.51.100.2")
    frame = bytearray(_esp_frames(sa, a1)[0])
    expect_tunnel_carries([bytes(frame)], [a1], sas=[sa])
    icv = 16  # hmac-sha256-128
    pad_length = frame[-icv - 2]
    assert pad_length >= 2
    frame[-icv - 2 - pad_length] = 0xEE  # the first padding byte, which must be 01
    esp_at = 14 + 20
    body = bytes(frame[esp_at:-icv])
    frame[-icv:] = hmac.new(bytes(32), body, hashlib.sha256).digest()[:icv]  # the ICV made right again
    with pytest.raises(AssertionError, match=r"transit frame 1: ESP padding ee 02.* \(pad length \d+\): RFC 4303 2.4 "
                                             r"wants 01 02"):
        expect_tunnel_carries([bytes(frame)], [a1], sas=[sa])


@pytest.mark.parametrize("field, value, said", [
    ("reserved0", 0x100, r"GRE reserved bits s \(strict source route, bit 4\): 1, RFC 2784 wants 0"),
    ("reserved0", 0x001, r"GRE reserved bits Flags \(bits 8-12\): 1, RFC 2784 wants 0"),
    ("version", 1, r"GRE version 1: RFC 2784 wants 0"),
    ("reserved1", 0xABCD, r"GRE Reserved1 0xabcd: RFC 2784 wants 0"),
])
def test_gre_reserved_bits_and_version_must_be_zero(field, value, said):
    frame = bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
                  / gre(IPv6(a1[:7] + b"\x3f" + a1[8:]), csum=field == "reserved1", **{field: value}))
    with pytest.raises(AssertionError, match="transit frame 1: " + said):
        expect_tunnel_carries([frame], [a1])
