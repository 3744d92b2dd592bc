"""Malformed GRE: what the Linux kernel drops, where, and what it counts; r1 alive and answering right after.

grelab is the far GRE endpoint (as in grelab_endpoint) and r1 has a plain GRE tunnel to it. Each case sends one
deliberately malformed GRE packet, carrying an ICMPv6 echo for h1 where there is room for one, then a valid echo:
r1 handles packets in order, so when h1's reply to the valid echo is back in the tunnel, the malformed one's fate
was decided; it was dropped if h1 never saw it (lan1 holds only the valid echo and its reply).

Where Linux drops them (net/ipv4/gre_demux.c, ip_gre.c; the same in 6.1 and 7.3):
- gre_demux.c, gre_rcv: fewer than 12 bytes after the IP header (however short the header the flags announce:
  also an empty passenger behind a 4-byte header); a version with no handler: 1 (PPTP: the pptp module, not
  loaded here) and 2-7, the "version" being the low 7 bits of the second byte, so reserved flag bits 9-12 set
  read as a version of 8 or more.
- gre_demux.c, gre_parse_header (from ip_gre.c's gre_rcv): the routing bit, a version other than 0, a header
  shorter than its flags announce, a checksum that does not verify (here: computed over two bytes too few).
None of these is counted anywhere: the IPv4 layer delivered the packet to GRE (IpInDelivers), then GRE freed it.
Past the parser the tunnel counts: an empty IPv6 passenger behind a 12-byte header (key and sequence number) has
no room for its IPv6 header (gre1.rx_length_errors, rx_errors); a passenger of an unknown protocol type is taken
(gre1.rx_packets) and then finds no protocol handler (gre1.rx_dropped: the core counts it there, not in
rx_nohandler, for a device that is no bond slave).

Where the kernel is more lenient than RFC 2784 (receivers MUST discard packets with bits 1-5 of the flags set,
unless they implement RFC 1701): the strict source route bit, the recursion control bits and reserved flag bit 8
are ignored, and such an echo reaches h1. GRE nested in GRE is decapsulated twice: the inner GRE, addressed to
r1 from grelab, comes out of gre1 and is taken by gre1 again.
"""
import struct

import pytest
from scapy.layers.inet import IP
from scapy.layers.l2 import GRE as GREHeader
from scapy.packet import Raw
from scapy.utils import checksum

from grelab.scenario import PLAIN_GRE

from grelab.networks import endpoint as e

net = e.grelab_endpoint("malformed", variants=[PLAIN_GRE], tunnels=None).fixture()


def ip(gre: bytes) -> IP:  # grelab's IPv4 to r1 carrying exactly these bytes as GRE
    return IP(src=e.GRELAB, dst=e.R1_WAN, ttl=64, proto=47) / Raw(gre)


def echo(seq: int = 1) -> bytes:
    return bytes(e.echo(seq)[0])


def csum_short(passenger: bytes) -> bytes:  # GRE with a checksum computed over all but the last two bytes
    body = b"\x80\x00\x86\xdd" + b"\x00\x00\x00\x00" + passenger
    return body[:4] + struct.pack("!H", checksum(body[:-2])) + body[6:]


K = dict(key_present=1, key=1)  # the cases whose tunnel has key 1 (the valid echo carries it too)
CASES = {  # what grelab sends as GRE; whether h1 gets the echo in it; the counters that move (besides the valid echo's)
    "version-1-pptp": (b"\x30\x01\x88\x0b" + struct.pack("!HHI", 4 + len(echo()), 1, 1) + b"\xff\x03\x00\x57" + echo(),
                       False, {}),
    "version-7": (bytes(GREHeader(version=7, proto=0x86DD)) + echo(), False, {}),
    "reserved-flags-9-12": (bytes(GREHeader(flags=0x0F, proto=0x86DD)) + echo(), False, {}),  # read as a version
    "routing-bit": (bytes(GREHeader(routing_present=1, proto=0x86DD)) + echo(), False, {}),
    "truncated-header": (bytes(GREHeader(key_present=1, key=1, seqnum_present=1, chksum_present=1, proto=0x86DD))[:12],
                         False, {}),
    "too-short": (bytes(GREHeader(proto=0x86DD)) + echo()[:7], False, {}),
    "empty-passenger": (bytes(GREHeader(proto=0x86DD)), False, {}),
    "empty-passenger-12-byte-header": (bytes(GREHeader(proto=0x86DD, seqnum_present=1, sequence_number=1, **K)),
                                       False, {"gre1.rx_length_errors": 1, "gre1.rx_errors": 1}),
    "unknown-protocol": (bytes(GREHeader(proto=0x88B5)) + echo(), False, {"gre1.rx_packets": 1, "gre1.rx_dropped": 1}),
    "checksum-wrong-length": (csum_short(echo()), False, {}),
    "strict-source-route-bit": (bytes(GREHeader(strict_route_source=1, proto=0x86DD)) + echo(), True, {"gre1.rx_packets": 1}),
    "recursion-control": (bytes(GREHeader(recursion_control=7, proto=0x86DD)) + echo(), True, {"gre1.rx_packets": 1}),
    "reserved-flag-bit-8": (bytes(GREHeader(flags=0x10, proto=0x86DD)) + echo(), True, {"gre1.rx_packets": 1}),
    "nested-gre": (bytes(GREHeader(proto=0x0800)) + bytes(e.to_r1(e.echo(1)[0])), True, {"gre1.rx_packets": 2}),
}
KEYED = {"empty-passenger-12-byte-header"}  # 12 bytes of header without a checksum: key and sequence number
WATCHED = ("gre1.rx_packets", "gre1.rx_errors", "gre1.rx_length_errors", "gre1.rx_crc_errors", "gre1.rx_frame_errors", "gre1.rx_fifo_errors", "gre1.rx_nohandler", "gre1.rx_dropped", "snmp.Ip6InHdrErrors",
           "snmp.IcmpOutDestUnreachs")


@pytest.mark.parametrize("case", CASES)
def test_malformed(net, case):
    """A malformed GRE packet is dropped (or, where Linux is lenient, taken), and r1 answers a valid echo right after."""
    gre, taken, moved = CASES[case]
    r1 = net.dut("r1")
    keyed = case in KEYED
    r1.apply(e.tunnel(**({"key": 1} if keyed else {})))
    before = r1.counters()
    fate = "r1 takes it all the same" if taken else "r1 drops it"
    net.send("grelab", ip(gre), comment=f"crafted by grelab, deliberately malformed ({case}): {fate}")
    if taken:  # its answer first, so the transit's order is the same every run
        net.transit.expect(e.from_r1(e.echo(1)[1]), ignore=e.IGNORE)
    request, reply = e.echo(2)
    net.send("grelab", e.to_r1(request, **(K if keyed else {})),
             comment="crafted by grelab: a valid echo right after, r1 must take it")
    answers = ([e.from_r1(e.echo(1)[1])] if taken else []) + [e.from_r1(reply, **(K if keyed else {}))]
    net.transit.expect(answers, ignore=e.IGNORE)
    assert len(net.link("lan1").frames()) == 2 * len(answers)  # h1 saw each echo r1 took, and answered it
    valid = {"gre1.rx_packets": 1}
    net.expect_moved("r1", before, {k: moved.get(k, 0) + valid.get(k, 0) for k in {**moved, **valid}}, WATCHED)
