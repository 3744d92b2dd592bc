"""OSPF over GRE: a routing protocol's multicast crosses a GRE tunnel, in the clear or inside IPsec.

Branch (r1, LAN 192.0.2.0/26) and HQ (r2, LANs 192.0.2.64/26 and 192.0.2.128/26) are joined by a GRE
tunnel across a provider. Nobody configured a route to HQ's LANs: real OSPF daemons (FRR, Debian's: zebra,
ospfd, ospf6d) in r1 and r2 speak OSPFv2 (Hellos to 224.0.0.5) and OSPFv3 (to ff02::5) through the tunnel,
form adjacencies and teach each other their LANs. In the second telling the GRE is inside ESP, keyed by
grelab: the provider sees only ESP. Without GRE, IPsec alone does not carry the Hellos: see ospf_over_ipsec.

The plot: the routes are learnt within 5 s of the daemons starting (the time is reported per case as
convergence_s; see branch.CONVERGENCE_S), r1's kernel holds HQ's third LAN as a route from ospfd through gre1,
h1's echo reaches h3 there, r2 counted the multicast Hellos arriving on gre1, and the transit holds nothing
but GRE (or ESP around it): the Hellos inside it, and h1's and h3's packets exactly. OSPF's own packets are
timed by the daemons, so the goldens leave them out and hold the echo (see README, "Daemons").
"""
from grelab.scenario import PLAIN_GRE, in_esp
from grelab.networks import branch

net = branch.branch("ospf_over_gre", variants=[PLAIN_GRE, in_esp("gcm128")]).fixture()


def test_h1_reaches_a_lan_learnt_through_ospf(net, record_property):
    """FRR in r1 and r2 forms OSPF adjacencies across the tunnel, and h1 reaches h3's LAN, known only through OSPF."""
    assert branch.converge(net, record_property) <= branch.CONVERGENCE_S
    reply = net.ping("h1", "h3")
    assert (reply.source, reply.payload) == (branch.H3, b"grelab echo")
    net.transit.carries_exactly(net.sent_by("h1", "h3"), proto=0x0800)


def test_multicast_hellos_cross_the_tunnel_and_are_counted(net, record_property):
    """OSPF's multicast Hellos (224.0.0.5, ff02::5) cross inside the tunnel and r2 counts them on gre1."""
    r2 = net.dut("r2")
    before = r2.counters()
    branch.converge(net, record_property)
    branch.full(r2, "ospfd")
    branch.heard(r2, "ospf6d", branch.R1_GRE)  # r1's OSPFv3 Hellos (one a second) reached r2's ospf6d
    moved = r2.counters().delta(before)
    hellos = branch.hellos_in_tunnel(net)  # every OSPF packet between the offices inside the tunnel
    assert {"224.0.0.5", "ff02::5"} <= hellos
    assert moved.link("gre1").get("rx_packets", 0) >= 2
    net.ping("h1", "h3")  # and the LAN they taught each other is reached
    assert moved["snmp"].get("IpExtInMcastPkts", 0) >= 1 and moved["snmp"].get("Ip6InMcastPkts", 0) >= 1
