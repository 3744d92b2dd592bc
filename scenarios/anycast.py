"""Anycast tunnel endpoints: the transit moves the anycast address from pop1 to pop2 mid-stream, and r1 never notices.

A customer router r1 has one GRE tunnel, to 192.0.2.1. Two points of presence, pop1 and pop2 (each a kernel GRE
endpoint, like r1), both hold 192.0.2.1 (on lo) and both terminate that tunnel: each has gre1 from 192.0.2.1 to
r1, and a data centre behind it (dc1, dc2) holding the same service address 2001:db8:2::10. The transit (isp)
routes 192.0.2.1 to pop1. h1 pings the service: r1 puts the echo in GRE to 192.0.2.1, the isp hands it to pop1,
dc1 answers, pop1 puts the reply in GRE from 192.0.2.1 back to r1. h1 streams its echoes (one every 0.5 ms,
never waiting for a reply); mid-stream, while echoes and replies are in flight, the isp's route moves to pop2
(one netlink message: `ip route replace`), and every later echo is pop2's to carry, with nothing changed on r1:
GRE keeps no state, so an endpoint that has never seen the tunnel takes it over from its first packet.

The plot: each echo and its reply are seen on the link of the pop the route pointed to when the echo left and
on no other (captures on the isp's links to pop1 and pop2), pop1's and pop2's gre1 counted exactly theirs, r1's
gre1 counted all of them, and none was lost at the switch.
"""
from grelab.networks import anycast as a

net = a.anycast().fixture()
BEFORE, AFTER = 20, 20  # echoes before and after the switch


def test_failover(net):
    """The transit's route to the anycast address moves from pop1 to pop2 mid-stream: every echo is answered, each by the pop the route pointed to, r1 unchanged."""
    duts = {name: net.dut(name) for name in ("r1", "pop1", "pop2")}
    before = {name: dut.counters() for name, dut in duts.items()}
    carriers, lost = a.stream(net, BEFORE + AFTER, move_after=BEFORE)
    print(f"\ncarriers per echo: {carriers}; lost at the switch: {len(lost)}")
    assert lost == []
    assert list(carriers.values()) == [["pop1"]] * BEFORE + [["pop2"]] * AFTER  # request and reply: one pop
    assert a.carried(net) == {"pop1": 2 * BEFORE, "pop2": 2 * AFTER}
    moved = a.gre1_counts(duts, before)
    assert moved == {"r1": {"gre1.rx_packets": BEFORE + AFTER, "gre1.tx_packets": BEFORE + AFTER},
                     "pop1": {"gre1.rx_packets": BEFORE, "gre1.tx_packets": BEFORE},
                     "pop2": {"gre1.rx_packets": AFTER, "gre1.tx_packets": AFTER}}
    outer = {(f[26:30], f[30:34]) for f in net.transit.frames()}  # r1 only ever spoke with the anycast address
    r1, anycast = bytes([198, 51, 100, 1]), bytes([192, 0, 2, 1])
    assert outer == {(r1, anycast), (anycast, r1)}
