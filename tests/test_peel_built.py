"""peel and describe take a packet as the REPL holds it (built by grelab's builders, lengths and checksums not yet
computed) and say of it what they say of its bytes read from a file: a property test over every builder."""
from types import SimpleNamespace

from hypothesis import given, settings, strategies as st
from scapy.layers.l2 import GRE, Ether
from scapy.packet import Packet

from grelab.craft import SA, encrypt, gre, gre_header, keepalive, passenger, peel
from grelab.craft.algorithms import ALGORITHMS
from grelab.cli.craft import build as craft_build
from grelab.craft.fast import FastESP, Stream
from grelab.craft.gre import PASSENGERS, TRANSPORTS
from grelab.craft.peel import describe
from grelab.golden.case import read_pcapng

keys = st.none() | st.integers(0, 0xFFFFFFFF)
seqs = st.none() | st.integers(0, 0xFFFFFFFF - 10)


@st.composite
def sas(draw, transport):
    algorithm = draw(st.sampled_from(sorted(ALGORITHMS)))
    algo = ALGORITHMS[algorithm]
    ends = dict(src="192.0.2.1", dst="192.0.2.2") if transport == "ipv4" else dict(src="2001:db8::1", dst="2001:db8::2")
    return SA(draw(st.integers(1, 0xFFFFFFFF)), algorithm, bytes(range(algo.key_len)),
              bytes(range(algo.auth_key_len)), mode=draw(st.sampled_from(["transport", "tunnel"])), **ends)


@st.composite
def built(draw):
    """(what grelab built: a scapy packet or bytes, the SAs that open it)."""
    transport = draw(st.sampled_from(TRANSPORTS))
    kind = draw(st.sampled_from(PASSENGERS))
    tunnel = dict(transport=transport, key=draw(keys), seq=draw(seqs), csum=draw(st.booleans()))
    builder = draw(st.sampled_from(["gre", "passenger", "keepalive", "gre_header", "encrypt", "Stream", "FastESP",
                                    "craft"]))
    if builder == "gre":
        return gre(passenger(kind, seq=draw(st.integers(0, 0xFFFF))), **tunnel), []
    if builder == "passenger":
        return passenger(kind), []
    if builder == "keepalive":
        return keepalive(transport=transport, key=tunnel["key"]), []
    if builder == "gre_header":
        return gre_header(proto=draw(st.sampled_from([0x0800, 0x86DD, 0x6558, 0x88BE, 0x883E, 0x2001])),
                          key=tunnel["key"], seq=tunnel["seq"], csum=tunnel["csum"]) / passenger(kind), []
    sa = draw(sas(transport))
    if builder == "encrypt":
        return encrypt(sa, gre(passenger(kind), **tunnel), seq=draw(st.integers(1, 1000))), [sa]
    if builder == "Stream":
        return Stream(gre(passenger(kind), **tunnel)).build({(GRE, "key"): [1, 2]})[1], []
    if builder == "FastESP":
        return FastESP(sa).encrypt([bytes(gre(passenger(kind), **tunnel))])[0], [sa]
    args = SimpleNamespace(count=2, key=tunnel["key"], seq=tunnel["seq"], transport=transport, passenger=kind,
                           csum=tunnel["csum"])
    return craft_build(args, sa if draw(st.booleans()) else None)[-1], [sa]


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(made=built(), framed=st.booleans())
def test_peel_and_describe_say_of_a_built_packet_what_they_say_of_its_bytes(made, framed):
    packet, keys_ = made
    if isinstance(packet, GRE):  # a bare GRE header (gre_header): no IP around it, read as GRE
        assert str(peel(packet)) == str(peel(GRE(bytes(packet)))) and str(peel(packet)).startswith("GRE proto=")
        return
    if framed:  # as a capture holds it: in an Ethernet frame
        packet = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / packet
    link = "ethernet" if isinstance(packet, Ether) else "ip"
    wire = bytes(packet)
    from_wire = peel(wire, keys_, link=link)
    assert "malformed" not in str(from_wire) and "truncated" not in str(from_wire), str(from_wire)
    if from_wire.esp_spi is not None:  # ESP of a known SA opens, to GRE
        assert from_wire.gre is not None, str(from_wire)
    if isinstance(packet, Packet):
        held = peel(packet, keys_)  # the packet as the REPL holds it, fields not yet computed
        assert str(held) == str(from_wire)
        assert describe(packet, keys_) == describe(wire, keys_, link=link)
        assert (held.gre is None) == (from_wire.gre is None)
        if held.passenger is not None:
            assert bytes(held.passenger) == bytes(from_wire.passenger)


def test_peel_of_a_packet_just_built_in_the_shell():
    """The issue's line, typed in `grelab shell`: it used to raise TypeError reading ip.ihl before the build."""
    peeled = peel(gre(passenger("ipv6")))
    assert str(peeled) == ("IPv4 192.0.2.1 > 192.0.2.2 / GRE proto=0x86dd -> IPv6 / ICMPv6 Echo Request "
                           "(id: 0x6772 seq: 0x1)")
    assert describe(passenger("ipv4")) == "IP / ICMP 198.51.100.1 > 198.51.100.2 echo-request 0 / Raw"


def test_frames_read_from_a_file_are_peeled_the_same(tmp_path):
    """Frames read back from a pcap (as bytes, or as scapy's packets) say what the packet said before it was written."""
    from scapy.utils import rdpcap, wrpcap
    packets = [Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / gre(passenger(k), key=9) for k in PASSENGERS]
    wrpcap(str(tmp_path / "built.pcap"), packets)
    frames = read_pcapng(tmp_path / "built.pcap")
    assert [describe(f.data, link=f.link_type) for f in frames] == [describe(p) for p in packets]
    assert [str(peel(p)) for p in rdpcap(str(tmp_path / "built.pcap"))] == [str(peel(p)) for p in packets]
