"""GRE builders: hand-written vectors, round trips through scapy's dissection, properties, bad input."""
import pytest
from hypothesis import given, settings, strategies as st
from scapy.layers.inet import IP
from scapy.layers.inet6 import ICMPv6EchoRequest, IPv6
from scapy.layers.l2 import ARP, GRE, Ether
from scapy.utils import checksum

from grelab.craft.gre import PASSENGERS, TRANSPORTS, gre, gre_header, keepalive, passenger
from grelab.craft.overhead import Stack
from grelab.errors import InputError


def gre_bytes(packet) -> bytes:
    return bytes(packet)[20:]  # after the outer IPv4 header


def test_all_options_by_hand():
    # C, K, S set; protocol 0x0800; checksum, reserved1, key 0x01020304, sequence 5; payload 00 01 02 03.
    # Checksum by hand: 16-bit words b000 + 0800 + 0000 + 0000 + 0102 + 0304 + 0000 + 0005 + 0001 + 0203
    # = 0xbe0f, no carry; one's complement: 0x41f0.
    packet = gre(b"\x00\x01\x02\x03", proto=0x0800, key=0x01020304, seq=5, csum=True)
    assert gre_bytes(packet) == bytes.fromhex("b0000800 41f00000 01020304 00000005 00010203")


def test_checksum_with_odd_length_payload_by_hand():
    # C only, protocol 0x88b5 (local experimental), payload ff: words 8000 + 88b5 + 0000 + 0000 + ff00
    # = 0x207b5 -> fold 0x07b5 + 0x2 = 0x07b7 -> checksum 0xf848.
    assert gre_bytes(gre(b"\xff", proto=0x88B5, csum=True)) == bytes.fromhex("800088b5 f8480000 ff")


def test_plain_and_key_only_headers_by_hand():
    inner = passenger("ipv6")
    assert gre_bytes(gre(inner)) == bytes.fromhex("000086dd") + bytes(inner)
    frame = passenger("ethernet")
    assert gre_bytes(gre(frame, key=42)) == bytes.fromhex("20006558 0000002a") + bytes(frame)
    assert gre_bytes(gre(passenger("ipv4"), seq=0xFFFFFFFF))[:8] == bytes.fromhex("10000800 ffffffff")


@pytest.mark.parametrize("version, reserved0, first_word", [(1, 0, "0001"), (7, 0x1FF, "0fff"), (0, 0x100, "0800"),
                                                            (0, 1, "0008")])
def test_version_and_reserved_bits_for_negative_tests(version, reserved0, first_word):
    packet = gre(b"", proto=0x86DD, version=version, reserved0=reserved0)
    assert gre_bytes(packet)[:2] == bytes.fromhex(first_word)


def test_reserved1_sits_after_the_checksum_and_is_covered_by_it():
    header = gre_bytes(gre(b"", proto=0x86DD, csum=True, reserved1=0xABCD))
    assert header[6:8] == b"\xab\xcd" and checksum(header) == 0


def test_protocol_type_for_each_passenger_and_any_bound_layer():
    assert IP(bytes(gre(passenger("ipv6"))))[GRE].proto == 0x86DD
    assert IP(bytes(gre(passenger("ipv4"))))[GRE].proto == 0x0800
    assert IP(bytes(gre(passenger("ethernet"))))[GRE].proto == 0x6558
    assert IP(bytes(gre(ARP())))[GRE].proto == 0x0806


def test_ipv6_transport_round_trip():
    packet = IPv6(bytes(gre(passenger("ipv4"), transport="ipv6", key=7, seq=9, csum=True)))
    assert packet.nh == 47 and packet[GRE].key == 7 and packet[GRE].sequence_number == 9
    assert checksum(bytes(packet[GRE])) == 0 and packet[GRE].payload.haslayer("ICMP")


def test_keepalive_is_gre_carrying_gre_back_to_the_sender():
    packet = IP(bytes(keepalive(local="10.0.0.1", remote="10.0.0.2", key=3)))
    inner = packet[GRE].payload
    assert (packet.src, packet.dst) == ("10.0.0.1", "10.0.0.2") and packet[GRE].proto == 0x0800
    assert (inner.src, inner.dst) == ("10.0.0.2", "10.0.0.1") and inner.proto == 47
    assert inner[GRE].proto == 0 and inner[GRE].key == 3 and not inner[GRE].payload
    v6 = IPv6(bytes(keepalive(transport="ipv6")))
    assert v6[GRE].proto == 0x86DD and v6[GRE].payload.dst == v6.src


@settings(max_examples=60, deadline=None)
@given(transport=st.sampled_from(TRANSPORTS), kind=st.sampled_from(PASSENGERS),
       key=st.none() | st.integers(0, 0xFFFFFFFF), seq=st.none() | st.integers(0, 0xFFFFFFFF),
       csum=st.booleans(), echo_seq=st.integers(0, 0xFFFF))
def test_round_trip_through_scapy(transport, kind, key, seq, csum, echo_seq):
    built = gre(passenger(kind, seq=echo_seq), transport=transport, key=key, seq=seq, csum=csum)
    raw = bytes(built)
    layer = (IP if transport == "ipv4" else IPv6)(raw)[GRE]
    assert (layer.key_present, layer.seqnum_present, layer.chksum_present) == (key is not None, seq is not None, csum)
    assert (layer.key if key is not None else None) == key
    assert (layer.sequence_number if seq is not None else None) == seq
    assert not csum or checksum(bytes(layer)) == 0
    assert layer[ICMPv6EchoRequest if kind != "ipv4" else "ICMP"].seq == echo_seq
    assert isinstance(layer.payload, {"ipv6": IPv6, "ipv4": IP, "ethernet": Ether}[kind])
    inner = len(bytes(passenger(kind))) - (14 if kind == "ethernet" else 0)
    stack = Stack(transport=transport, csum=csum, key=key is not None, seq=seq is not None, ethernet=kind == "ethernet")
    assert len(raw) == stack.wire_size(inner)


@settings(max_examples=40, deadline=None)
@given(payload=st.binary(max_size=300), proto=st.integers(0, 0xFFFF), csum=st.booleans())
def test_raw_payload_any_length_checksum_verifies(payload, proto, csum):
    raw = gre_bytes(gre(payload, proto=proto, csum=csum))
    assert raw[2:4] == proto.to_bytes(2, "big") and raw.endswith(payload)
    assert not csum or checksum(raw) == 0


@pytest.mark.parametrize("call, field, allowed", [
    (lambda: gre(key=1 << 32), "GRE key", "0 to 4294967295"),
    (lambda: gre(seq=-1), "GRE sequence number", "0 to 4294967295"),
    (lambda: gre(version=8), "GRE version", "0 to 7"),
    (lambda: gre(b"raw"), "passenger", "proto="),
    (lambda: gre(42), "passenger", "scapy packet or bytes"),
    (lambda: passenger("ppp"), "passenger", "ipv6, ipv4, ethernet"),
    (lambda: gre(transport="ipv5"), "transport", "ipv4, ipv6"),
    (lambda: gre(src="router1"), "source", "an IPv4 address"),
    (lambda: gre(transport="ipv6", dst="192.0.2.9"), "destination", "an IPv6 address"),
    (lambda: gre_header(proto=0x86DD, key="0x1ffffffff"), "GRE key", "4294967295"),
])
def test_bad_input_names_field_value_and_allowed(call, field, allowed):
    with pytest.raises(InputError) as caught:
        call()
    assert caught.value.field == field and allowed in caught.value.allowed
