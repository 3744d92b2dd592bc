"""OSPF over IPsec alone: without GRE, the routing protocol's multicast Hellos are not carried.

The branch and HQ of ospf_over_gre with the same FRR, but r1 and r2 protect the LANs configured by hand (lan1 <->
lan2) with ESP in tunnel mode and hold no GRE tunnel. ESP carries what its policies select between those LANs:
ospfd has only the WAN link to speak on, and its Hellos to 224.0.0.5 leave r1 in the clear (never inside ESP)
towards the provider, which routes no multicast, so r2 hears none (and r1 none of r2's).

The plot: while r1's ospfd puts its Hellos on the transit, four of them (in the GRE telling its first was answered
at once and the routes were in its kernel before the second), r1 learns no route to HQ's third LAN; each ospfd
has sent Hellos and received none, the transit shows r1's in the clear and no OSPF inside ESP, while h1's echo
reaches h2 through the ESP, which is all the transit carries besides. That is why GRE is there: a link of the
routers' own, multicast and all, that ESP can protect.
"""
from grelab.craft.peel import peel
from grelab.networks import branch

net = branch.ipsec_alone("ospf_over_ipsec").fixture()


def test_multicast_hellos_are_not_carried_by_ipsec_alone(net):
    """No OSPF route to lan3 while r1's Hellos cross the transit, no Hello heard by either router, r1's in the
    clear on the transit, while h1 reaches h2 through the ESP."""
    assert branch.no_ospf_while_hellos_cross(net) >= branch.HELLOS_SHOWN
    for router in ("r1", "r2"):
        heard, sent = branch.ospf_hellos(net.dut(router), "wan")
        assert (heard, sent > 0) == (0, True), f"{router}'s ospfd heard {heard} Hellos, sent {sent}"
    assert branch.ospf_on_transit(net) == {("224.0.0.5", False)}  # r1's Hellos, in the clear
    reply = net.ping("h1", "h2")
    assert (reply.source, reply.payload) == (branch.H2, b"grelab echo")
    frames = net.transit.frames()  # OSPF left out: timed by the daemons
    assert frames and all(peel(frame, net.sas).esp_spi for frame in frames), "something but ESP on the transit"
