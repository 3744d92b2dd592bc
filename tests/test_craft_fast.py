"""The fast path is byte-identical to the scapy path for the same inputs."""
import itertools

import pytest
from hypothesis import given, settings, strategies as st
from scapy.layers.inet import ICMP, IP, UDP
from scapy.layers.inet6 import ICMPv6EchoRequest, IPv6
from scapy.layers.l2 import GRE, LLC

from grelab.craft import esp
from grelab.craft.fast import FastESP, Stream
from grelab.craft.gre import OUTER, PASSENGERS, TRANSPORTS, gre, gre_header, passenger
from grelab.errors import InputError

from test_craft_esp import SCAPY_NAMES, SHAPES, make_sa

ECHO = {"ipv6": ICMPv6EchoRequest, "ipv4": ICMP, "ethernet": ICMPv6EchoRequest}


@settings(max_examples=40, deadline=None)
@given(transport=st.sampled_from(TRANSPORTS), kind=st.sampled_from(PASSENGERS), csum=st.booleans(),
       key=st.integers(0, 0xFFFFFFFF - 4), seq=st.integers(0, 0xFFFFFFFF - 4), echo=st.integers(0, 0xFFFF - 4))
def test_stream_matches_scapy(transport, kind, csum, key, seq, echo):
    stream = Stream(gre(passenger(kind, seq=echo), transport=transport, key=key, seq=seq, csum=csum))
    built = stream.build({(GRE, "key"): range(key, key + 5), (GRE, "sequence_number"): range(seq, seq + 5),
                          (ECHO[kind], "seq"): [echo + 4 - i for i in range(5)]})
    for i, packet in enumerate(built):
        expected = gre(passenger(kind, seq=echo + 4 - i), transport=transport, key=key + i, seq=seq + i, csum=csum)
        assert packet == bytes(expected)


def test_stream_fixes_every_checksum_kind():
    # Outer IPv4 header checksum (ttl varies), inner UDP checksum (port varies), GRE checksum (seq varies).
    def packet(ttl, port, seq):
        inner = IP(src="198.51.100.1", dst="198.51.100.2") / UDP(sport=40000, dport=port) / b"payload!"
        return bytes(IP(src="192.0.2.1", dst="192.0.2.2", ttl=ttl) / gre_header(proto=0x0800, csum=True, seq=seq) /
                     inner)

    template = IP(packet(64, 40000, 0))
    # The port whose UDP checksum computes to 0, which UDP sends as 0xffff (RFC 768).
    zero_port = (40000 + template[GRE][UDP].chksum) % 0xFFFF
    ttls, ports, seqs = [1 + i % 255 for i in range(301)], [*range(40001, 40301), zero_port], range(7, 308)
    built = Stream(template).build({(IP, "ttl"): ttls, (UDP, "dport"): ports, (GRE, "sequence_number"): seqs})
    assert built == [packet(*fields) for fields in zip(ttls, ports, seqs)]
    assert IP(built[-1])[UDP].chksum == 0xFFFF


def test_byte_fields_at_odd_and_even_offsets_weigh_right_in_checksums():
    # In a 16-bit word the first byte weighs 256 and the second 1: LLC's dsap/ssap inside GRE's checksum,
    # the inner IPv4 tos/ttl inside the IPv4 header checksum (IPv6 transport, so IP is the inner layer).
    llc = Stream(gre(LLC() / b"data", csum=True)).build({(LLC, "dsap"): range(256), (LLC, "ssap"): range(255, -1, -1)})
    assert llc == [bytes(gre(LLC(dsap=i, ssap=255 - i) / b"data", csum=True)) for i in range(256)]
    template = gre(IP(src="198.51.100.1", dst="198.51.100.2") / ICMP(), csum=True, transport="ipv6")
    built = Stream(template).build({(IP, "tos"): range(256), (IP, "ttl"): range(255, -1, -1)})
    assert built == [bytes(gre(IP(src="198.51.100.1", dst="198.51.100.2", tos=i, ttl=255 - i) / ICMP(), csum=True,
                               transport="ipv6")) for i in range(256)]


@pytest.mark.parametrize("algorithm, mode, nat_t, transport", sorted(
    set(itertools.product(SCAPY_NAMES, esp.MODES, (False, True), TRANSPORTS)) |
    {(algorithm, "tunnel", True, "ipv6") for algorithm in SHAPES}))
def test_fast_esp_matches_scapy(algorithm, mode, nat_t, transport):
    sa = make_sa(algorithm, mode, nat_t, transport)
    packets = Stream(gre(passenger("ipv4"), transport=transport, seq=0)).build({(GRE, "sequence_number"): range(4)})
    protected = FastESP(sa).encrypt(packets, first_seq=1000)
    for i, (plain, fast) in enumerate(zip(packets, protected)):
        assert fast == bytes(esp.encrypt(sa, esp.dissect_ip(plain), seq=1000 + i))
        assert bytes(esp.decrypt(sa, fast)) == plain


@pytest.mark.parametrize("algorithm, esn", list(itertools.product(esp.ALGORITHMS, (False, True))))
def test_fast_esp_matches_scapy_for_every_algorithm_with_and_without_esn(algorithm, esn):
    """With ESN, across the wrap of the low-order 32 bits: 0x1ffffffff, then 0x200000000 (0 on the wire)."""
    sa = make_sa(algorithm, esn=esn)
    first = 0x1FFFFFFFF if esn else 0xFFFFFFFE
    packets = Stream(gre(passenger("ipv4"), seq=0)).build({(GRE, "sequence_number"): range(2)})
    for i, (plain, fast) in enumerate(zip(packets, FastESP(sa).encrypt(packets, first_seq=first))):
        assert fast == bytes(esp.encrypt(sa, esp.dissect_ip(plain), seq=first + i))
        assert fast[24:28] == ((first + i) & 0xFFFFFFFF).to_bytes(4, "big")  # only the low-order bits are sent
        assert bytes(esp.decrypt(sa, fast, seq_hi=(first + i) >> 32)) == plain


def test_fast_esp_refuses_packets_it_cannot_template():
    sa = make_sa("gcm128")
    packets = [bytes(gre(seq=1)), bytes(gre(seq=1, key=1))]
    with pytest.raises(InputError, match="packet 1"):
        FastESP(sa).encrypt(packets)
    with pytest.raises(InputError, match="ESP sequence number"):
        FastESP(sa).encrypt([packets[0]] * 2, first_seq=0xFFFFFFFF)
    assert FastESP(sa).encrypt([]) == []


@pytest.mark.parametrize("vary, field, allowed", [
    ({(GRE, "key"): [1 << 32]}, "GRE.key", "0 to 4294967295"),
    ({(GRE, "nonsense"): [1]}, "field", "sequence_number"),
    ({(GRE, "proto"): [1], (GRE, "key"): [1, 2]}, "vary", "same number of values"),
    ({(IPv6, "src"): [1]}, "field", "integer field"),
    ({(UDP, "sport"): [1]}, "layer", "a layer of the template"),
])
def test_bad_stream_input(vary, field, allowed):
    with pytest.raises(InputError) as caught:
        Stream(gre(passenger("ipv6"), key=1, transport="ipv4", dst=OUTER["ipv4"][1])).build(vary)
    assert caught.value.field == field and allowed in caught.value.allowed


@settings(max_examples=40, deadline=None)
@given(algorithm=st.sampled_from(list(esp.ALGORITHMS)), mode=st.sampled_from(esp.MODES), nat_t=st.booleans(),
       transport=st.sampled_from(TRANSPORTS), size=st.integers(0, 64), first_seq=st.integers(1, 0xFFFFFFFF - 2),
       esn_high=st.one_of(st.none(), st.integers(0, 0xFFFFFFFF - 1)))
def test_fast_esp_matches_scapy_for_every_padding(algorithm, mode, nat_t, transport, size, first_seq, esn_high):
    sa = make_sa(algorithm, mode, nat_t, transport, esn=esn_high is not None)
    first_seq += (esn_high or 0) << 32
    packets = [bytes(gre(bytes([n]) * size, proto=0x88B5, transport=transport, key=n)) for n in range(2)]
    for i, fast in enumerate(FastESP(sa).encrypt(packets, first_seq=first_seq)):
        assert fast == bytes(esp.encrypt(sa, esp.dissect_ip(packets[i]), seq=first_seq + i))
