"""Malformed bytes are described, or refused with grelab's own error naming layer, offset and field: the cases
the fuzzer found first, one by one."""
import pytest
from scapy.layers.inet import IP
from scapy.layers.inet6 import ICMPv6EchoRequest, IPv6
from scapy.layers.l2 import Ether

from grelab.craft import SA, decrypt, encrypt, gre, peel
from grelab.craft.esp import decrypt_frame
from grelab.errors import InputError, MalformedPacket
from grelab.expect.match import Template

MACS = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
GCM = SA(0x100, "gcm128", bytes(20))


def test_empty_bytes_invent_no_addresses():
    for link in ("ethernet", "ip"):
        with pytest.raises(MalformedPacket, match="no bytes at all") as raised:
            peel(b"", link=link)
        assert raised.value.offset == 0 and "::1" not in str(raised.value)


def test_a_truncated_ipv4_header_names_layer_offset_and_field():
    with pytest.raises(MalformedPacket) as raised:
        peel(bytes.fromhex("450051030001"), link="ip")
    assert (raised.value.layer, raised.value.offset, raised.value.field) == ("IPv4", 6, "flags")
    assert str(raised.value) == "malformed IPv4 at offset 6: flags: truncated"


def test_version_0_is_not_taken_for_ipv6():
    packet = bytes(gre())
    with pytest.raises(MalformedPacket, match="offset 0: version: 0 is neither 4 nor 6"):
        peel(b"\x05" + packet[1:], link="ip")


def test_gre_with_the_key_bit_and_pptp_protocol_type_is_described():
    frame = bytearray(bytes(MACS / gre(key=7)))
    frame[36:38] = b"\x88\x0b"
    assert "GRE (PPTP, RFC 2637) version=0 proto=0x880b" in str(peel(bytes(frame)))


def test_a_gre_header_cut_short_is_described_as_wireshark_would():
    frame = bytes(MACS / gre(key=1, csum=True))
    text = str(peel(frame[:40]))
    assert "[truncated: IPv4 total length 96 > 26 bytes captured]" in text
    assert "[malformed GRE at offset 40: offset: truncated]" in text and text.endswith("(passenger not reached)")


def test_gcm_esp_cut_to_30_bytes():
    frame = bytes(MACS / encrypt(GCM, gre(), seq=1))[:14 + 30]
    expected = r"malformed ESP at offset 28: data: 2 bytes; gcm128 needs at least 26"
    with pytest.raises(MalformedPacket, match=expected):
        decrypt(GCM, frame[14:])
    with pytest.raises(MalformedPacket, match=expected):
        decrypt_frame(frame, [GCM])
    with pytest.raises(MalformedPacket, match=expected):
        peel(frame, [GCM])


def test_an_esp_header_cut_inside_its_sequence_number_is_named_not_a_scapy_error():
    """Its SPI is there (a known SA's) but scapy leaves the 6 bytes raw: grelab's own error, as for any frame."""
    ip = IP(bytes(encrypt(GCM, gre(), seq=1))[:26])
    ip.len = None
    frame = bytes(MACS / IP(bytes(ip)))
    with pytest.raises(InputError, match="an IP or IPv6 packet carrying ESP"):
        decrypt_frame(frame, [GCM])


def test_decrypt_refuses_what_is_not_a_packet():
    with pytest.raises(InputError, match="packet: 'str' is not allowed"):
        decrypt(GCM, "abc")


def test_the_matcher_takes_frames_too_short_for_ethernet():
    template = Template(bytes(MACS / gre()))
    assert not template.matches(b"") and not template.matches(bytes(13))


def test_esp_under_a_header_whose_version_is_not_its_family_is_refused():
    """Found by the long fuzz run: an Ethernet type of IPv4 over a version nibble of 12, NAT-T ESP inside. decrypt
    refuses it naming the field; the golden normalizer keeps such a frame as it came (ESP it cannot open is kept
    as it is); peel describes it."""
    from grelab.golden.normalize import Normalizer
    sa = SA(0x100, "gcm128", bytes(20), nat_t=(4500, 4500))
    frame = bytearray(bytes(MACS / encrypt(sa, gre(), seq=1)))
    frame[14] = 0xC5
    with pytest.raises(MalformedPacket, match="malformed IP at offset 0: version: 12 is neither 4 nor 6"):
        decrypt(sa, bytes(frame[14:]))
    assert Normalizer([sa]).frame(bytes(frame)) == bytes(frame)
    assert "[malformed IPv4 at offset 14: version 12]" in str(peel(bytes(frame), [sa]))
