"""API inputs are checked at the boundary: grelab's InputError (or MalformedPacket) naming the field, never a
struct.error or AttributeError from deep inside."""
import pytest

from grelab.craft import SA, FastESP, Stream, decrypt, encrypt, gre
from grelab.errors import InputError, MalformedPacket

GCM = SA(0x10, "gcm128", bytes(20))


@pytest.mark.parametrize("kwargs, message", [
    (dict(spi="0x10"), "SPI: '0x10' is not allowed; allowed: an int from 1 to 4294967295"),
    (dict(spi=0), "SPI: 0 is not allowed"),
    (dict(spi=True), "SPI: True is not allowed"),
    (dict(key="k" * 20), "gcm128 key: "),
    (dict(key=bytes(19)), "gcm128 key: '19 bytes' is not allowed; allowed: exactly 20 bytes"),
    (dict(nat_t=("4500", 4500)), "NAT-T port: '4500' is not allowed"),
])
def test_sa_fields(kwargs, message):
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        SA(**{"spi": 0x10, "algorithm": "gcm128", "key": bytes(20)} | kwargs)


def test_fast_esp_refuses_what_is_not_a_whole_ip_packet():
    with pytest.raises(MalformedPacket, match="malformed IP at offset 0: version: 0 is neither 4 nor 6"):
        FastESP(GCM).encrypt([b"\0" * 10])
    with pytest.raises(InputError, match="packet 0: 'str' is not allowed"):
        FastESP(GCM).encrypt(["abc"])
    packet = bytes(gre(src="192.0.2.1", dst="192.0.2.2"))
    with pytest.raises(InputError, match=f"packet 0: '{len(packet) - 1} bytes' is not allowed; allowed: the {len(packet)} bytes"):
        FastESP(GCM).encrypt([packet[:-1]])
    with pytest.raises(InputError, match="ESP sequence number: '1' is not allowed"):
        FastESP(GCM).encrypt([packet], first_seq="1")
    assert len(FastESP(GCM).encrypt([packet, packet])) == 2


def test_decrypt_and_encrypt_refuse_wrong_types():
    with pytest.raises(InputError, match="packet: 'str' is not allowed; allowed: an IP or IPv6 packet"):
        decrypt(GCM, "abc")
    with pytest.raises(InputError, match="sa: 'str' is not allowed"):
        decrypt("sa", b"")
    with pytest.raises(InputError, match="ESP sequence number: '1' is not allowed"):
        encrypt(GCM, gre(), seq="1")


def test_stream_wants_a_scapy_template():
    with pytest.raises(InputError, match="template: 'bytes' is not allowed; allowed: a scapy packet"):
        Stream(bytes(gre()))


@pytest.mark.parametrize("vary, said", [
    ({("IP", "nosuch"): range(3)}, "field: 'IP.nosuch' is not allowed; allowed: one of version, ihl"),
    ({("IPX", "ttl"): range(3)}, "vary key layer: 'IPX' is not allowed; allowed: one of the template's layers: IP, GRE"),
    ({"IP": [1]}, r"vary key: 'IP' is not allowed; allowed: \(layer, field name\)"),
    ({(3, "ttl"): [1]}, "vary key layer: 3 is not allowed; allowed: a scapy layer class"),
    ({("IP", "ttl"): "ab"}, "IP.ttl values: 'ab' is not allowed; allowed: integers"),
    ({("IP", "ttl"): [1.5]}, r"IP.ttl values: \[1.5\] is not allowed; allowed: integers"),
    ({}, "vary: {} is not allowed; allowed: a dict"),
    ([("IP", "ttl")], "vary: .* is not allowed; allowed: a dict"),
])
def test_stream_build_names_a_bad_key_or_value(vary, said):
    with pytest.raises(InputError, match=said):
        Stream(gre()).build(vary)


def test_stream_build_takes_a_layer_by_name_too():
    from scapy.layers.inet import IP
    assert Stream(gre()).build({("IP", "ttl"): [7, 8]}) == Stream(gre()).build({(IP, "ttl"): [7, 8]})
