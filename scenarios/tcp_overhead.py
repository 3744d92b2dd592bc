"""The cost of GRE's 24 bytes in packets: the "two extra packets" of the GRE-over-1500 story.

The two offices (two_offices) with IPv4 LANs too, every link 1500 bytes. 150,000 bytes of TCP from h1 to h2, counted in data segments on the wire: 103 at MSS 1460 with IPv4 routed natively
(no GRE), 105 at MSS 1436 through the tunnel with r1 clamping the SYNs' MSS from 1460 to 1436 (IPv4 passenger), 106 at
MSS 1416 (IPv6 passenger, clamped from 1440). With the clamp the biggest packet on the transit is 1500 bytes: the
1524-byte GRE packet a 1460 MSS would make never appears (nor the ICMP fragmentation needed it would draw).
"""
from functools import partial

import pytest
from scapy.layers.inet import TCP

from grelab.dut.plan import Filter, Plan, Route
from grelab.expect.tunnel import data_segments, syn_mss, tcp_segments
from grelab.scenario import PLAIN_GRE
from grelab.networks import offices as o

net = o.two_offices("tcp_overhead", variants=[PLAIN_GRE], tunnels=None, links={**o.LINKS, "transit2": ("isp", "eth1")},
                    topology=partial(o.topology, ipv4_lans=True)).fixture()
CLAMP = Plan(filters=[Filter("forward", "clamp-mss", 6, oif="gre1", set_mss=1416),
                      Filter("forward", "clamp-mss", 6, iif="gre1", set_mss=1416)])


TRANSFER = 150_000
# A path: the passenger's addresses; what r1 and r2 hold (None: nothing, IPv4 routed natively across the isp);
# the MSS h1's segments have; how many data segments 150,000 bytes take (ceil(150000 / MSS)).
V4_TUNNEL = {"r1": Plan(routes=[Route(o.LAN2_V4, dev="gre1")], filters=[
                 Filter("forward", "clamp-mss", 4, oif="gre1", set_mss=1436), Filter("forward", "clamp-mss", 4, iif="gre1", set_mss=1436)]),
             "r2": Plan(routes=[Route(o.LAN1_V4, dev="gre1")])}
PATHS = {
    "ipv4-without-gre": (o.H1_V4, o.H2_V4, None, 1460, 103),
    "ipv4-in-gre": (o.H1_V4, o.H2_V4, V4_TUNNEL, 1436, 105),
    "ipv6-in-gre": (o.H1, o.H2, {"r1": CLAMP}, 1416, 106),
}


@pytest.mark.parametrize("path", PATHS)
def test_transfer(net, path):
    """150,000 bytes of TCP from h1 to h2: 103 data segments of 1460 without GRE, 105 of 1436 (IPv4) and 106 of 1416 (IPv6) in it."""
    client, server, plans, mss, segments = PATHS[path]
    carrier = "h1's TCP to h2 routed natively, no GRE" if plans is None else \
        f"GRE ({'0x0800' if '.' in client else '0x86DD'}) carrying h1's TCP to h2 and back"
    for link in ("transit", "transit2"):
        net.explain(f"{carrier}; the data segments are counted, not kept", link)
    if plans is not None:
        base = o.connect(PLAIN_GRE, None)
        net.apply({name: base[name] + plans.get(name, Plan()) for name in base})
    # The golden keeps the handshake (each side's MSS, clamped) and h1's FIN. Where PSH falls among the data segments,
    # and h2's ACKs (how many, their windows) are the kernels' timing: counted here, not kept.
    net.leave_out(lambda frame: any(not p[TCP].flags.S and not (p.src == client and p[TCP].flags.F)
                                    for p in tcp_segments([frame])))
    assert net.transfer("h1", "h2", TRANSFER, address=server) == TRANSFER
    cut = data_segments(net.transit.frames(), client)
    short = [(n, c) for n, c in enumerate(cut, 1) if c != mss]
    assert (len(cut), max(cut), sum(cut)) == (segments, mss, TRANSFER), f"segments not of {mss} bytes: {short}"
    assert cut == data_segments(net.link("lan1").frames(), client) == data_segments(net.link("lan2").frames(), client)
    assert len(tcp_segments(net.link("lan1").frames())) == len(net.link("lan1").frames())  # no ICMP error, ever
    biggest = max(len(f) - 14 for f in net.transit.frames())
    assert biggest == 1500  # full segments fill the link exactly: no 1524-byte packet (a 1460 MSS in GRE) ever
    if plans is not None:  # the clamp: h1 offered 1460 (1440 for IPv6), h2 was told what fits the tunnel
        assert syn_mss(net.link("lan1").frames())[0] == mss + 24 and syn_mss(net.link("lan2").frames())[0] == mss
