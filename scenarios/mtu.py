"""MTU, MSS and path MTU: the 24 bytes GRE costs, and what the kernel does with a packet that does not fit.

The two offices (two_offices), r1 and r2 kernel GRE endpoints, with the isp's link to r2 narrowed (1400 bytes, on the
isp's side) in the path MTU cases, every link 1500 bytes otherwise; the LANs have IPv4 too. A GRE tunnel over a 1500-byte link has an MTU of 1476 (20 bytes of IPv4, 4 of GRE), 1472
with a key, 1468 with a key and sequence numbers: an IPv6 packet from h1 one byte bigger draws ICMPv6 Packet Too
Big with exactly that MTU from r1, and never enters the tunnel. A 1476-byte packet fits the tunnel, but its
1500-byte outer packet (DF set: pmtudisc) does not fit the isp's link to r2: the isp answers r1 with ICMP
fragmentation needed (MTU 1400), r1 lowers the tunnel's path MTU, and the next such packet draws a Packet Too Big
of 1376. With nopmtudisc the outer packet has no DF: the isp fragments it, r2 reassembles it and h2 gets it.
An MSS clamp on r1 rewrites the MSS of SYNs through the tunnel (1440, what a 1500-byte IPv6 LAN offers) to 1416,
so no TCP segment is ever too big for it.
"""
from functools import partial

import pytest
from scapy.layers.inet6 import ICMPv6EchoReply, ICMPv6PacketTooBig, IPv6
from scapy.layers.l2 import Ether

from grelab.dut.plan import Filter, Plan
from grelab.expect.tunnel import syn_mss
from grelab.scenario import PLAIN_GRE, Comment
from grelab.networks import offices as o

COMMENTS = (Comment("r1's ICMPv6 Packet Too Big to h1", "lan1", match=lambda f: f[20] == 58 and f[54] == 2),
            Comment("on the isp's link to r2 (1400 bytes in the path MTU cases): the tunnel's packets, or the isp's fragments of them", "transit2"),
            Comment("the isp's ICMP fragmentation needed (MTU 1400) to r1", "transit", match=lambda f: f[23] == 1))
net = o.two_offices("mtu", variants=[PLAIN_GRE], tunnels=None, links={**o.LINKS, "transit2": ("isp", "eth1")},
                    topology=partial(o.topology, ipv4_lans=True), comments=COMMENTS + o.COMMENTS).fixture()
QUIET = Plan(sysctls={"net.ipv6.icmp.ratelimit": 0, "net.ipv6.auto_flowlabels": 0})  # every Too Big, the same
CLAMP = Plan(filters=[Filter("forward", "clamp-mss", 6, oif="gre1", set_mss=1416),
                      Filter("forward", "clamp-mss", 6, iif="gre1", set_mss=1416)])


def sized(size: int, hlim: int = 64) -> IPv6:  # an IPv6 packet of `size` bytes from h1 to h2 that nothing answers
    return IPv6(src=o.H1, dst=o.H2, hlim=hlim) / ICMPv6EchoReply(id=1, seq=size, data=bytes(size - 48))


def too_big(sent, mtu: int):  # r1's Packet Too Big to h1, quoting as much of `sent` (as r1 had it) as fits 1280 bytes
    return Ether(src=o.R1_LAN_MAC, dst=o.H1_MAC) / IPv6(src=o.R1_LAN, dst=o.H1) / ICMPv6PacketTooBig(mtu=mtu) / bytes(sent)[:1232]


@pytest.mark.parametrize("options, mtu", [({}, 1476), ({"key": 7}, 1472), ({"key": 7, "seq": True}, 1468)],
                         ids=["plain", "key", "key-seq"])
def test_too_big_for_the_tunnel(net, options, mtu):
    """One byte over the tunnel MTU (1476, 1472 with a key, 1468 with key and seq) draws r1's Packet Too Big."""
    net.apply({"r1": o.connect(PLAIN_GRE, None, **options)["r1"] + QUIET})
    net.send("h1", sized(mtu + 1), comment=f"crafted from h1: {mtu + 1} bytes, one more than r1's tunnel takes")
    net.link("lan1").expect(too_big(sized(mtu + 1), mtu))
    assert net.transit.frames() == []  # it never entered the tunnel


def narrow(net) -> None:
    """The isp's link to r2 narrowed to 1400 bytes on the isp's side: what the isp forwards there must fit."""
    net.set_mtu("isp", "eth1", 1400)


def test_path_mtu_shrinks(net):
    """A smaller MTU on the way: the isp's fragmentation-needed shrinks r1's tunnel path MTU, and its next Packet Too Big says so."""
    narrow(net)
    net.apply(o.connect(PLAIN_GRE, None) | {"r1": o.connect(PLAIN_GRE, None)["r1"] + QUIET})
    before = net.dut("r1").counters()
    net.send("h1", sized(1476), comment="crafted from h1: 1476 bytes, it fits r1's tunnel but not the isp's link to r2")
    net.wait_counter("r1", "snmp.IcmpInDestUnreachs", before)  # the isp's fragmentation needed, taken in
    net.send("h1", sized(1475), comment="crafted from h1: 1475 bytes, now too big for r1's tunnel")
    net.link("lan1").expect(too_big(sized(1475, hlim=63), 1376))  # the tunnel refused it: forwarded already


def test_nopmtudisc_fragments_on_the_way(net):
    """Without path MTU discovery, r1's GRE has no DF: the isp fragments it and h2 gets the packet whole."""
    narrow(net)
    net.apply(o.connect(PLAIN_GRE, None) | {"r1": o.connect(PLAIN_GRE, None, pmtudisc=False, ttl="inherit")["r1"]})
    net.send("h1", sized(1476), comment="crafted from h1: 1476 bytes; r1's GRE of it has no DF")
    net.link("lan2").expect(Ether(src="02:00:00:00:02:01", dst=o.H2_MAC) / sized(1476, hlim=62))  # two hops on
    assert [len(f) - 14 for f in net.link("transit2").frames()] == [1396, 124]  # the isp's two fragments


def test_mss_clamp(net):
    """r1 clamps the MSS of SYNs crossing the tunnel to what fits it."""
    net.apply(o.connect(PLAIN_GRE, None) | {"r1": o.connect(PLAIN_GRE, None)["r1"] + CLAMP})
    net.tcp("h1", "h2")
    assert syn_mss(net.link("lan1").frames()) == [1440, 1416]  # h1's SYN; h2's SYN-ACK, clamped by r1
    assert syn_mss(net.transit.frames()) == syn_mss(net.link("lan2").frames()) == [1416, 1440]
