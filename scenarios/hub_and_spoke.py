"""Two tunnels, one transit: r1 is the hub of two spokes, its GRE tunnels to them told apart by key.

grelab plays both spokes from its namespace on the transit: spoke 2 at 198.51.100.2 (its LAN 2001:db8:2::/64) and
spoke 3 at 198.51.100.3 (2001:db8:3::/64). r1 has gre2 to spoke 2 with key 2 and gre3 to spoke 3 with key 3, each
spoke's LAN routed into its own tunnel. What h1 sends a spoke's LAN goes down that spoke's tunnel only (its remote,
its key); an echo a spoke sends h1 in its tunnel is delivered, and h1's reply goes back down the same tunnel.

A tunnel is its key and its endpoints together (ip_tunnel.c, ip_tunnel_lookup): a packet with spoke 2's key from
spoke 3's address matches neither tunnel (nor the fallback device gre0, which is down), so r1 answers it with ICMP
port unreachable (IcmpOutDestUnreachs), h1 never sees it and no tunnel counts it; the right spoke's echo right after
is answered.
"""
import pytest
from scapy.layers.inet6 import ICMPv6EchoReply, IPv6

from grelab.networks import endpoint as e, hub as h

net = h.hub_and_spoke().fixture()


def test_each_spoke_its_tunnel(net):
    """h1's packets for each spoke's LAN go down that spoke's tunnel only: its address, its key."""
    before = net.dut("r1").counters()
    for key, (spoke, host) in h.SPOKES.items():
        net.send("h1", IPv6(src=e.H1, dst=host, hlim=64) / ICMPv6EchoReply(id=0x4747, seq=key),
                 comment=f"crafted from h1 for spoke {key}'s LAN: r1 must send it down gre{key}")
    net.transit.expect([e.from_r1(IPv6(src=e.H1, dst=host, hlim=63) / ICMPv6EchoReply(id=0x4747, seq=key), dst=spoke,
                                  key_present=1, key=key) for key, (spoke, host) in h.SPOKES.items()], ignore=e.IGNORE)
    net.expect_moved("r1", before, {"gre2.tx_packets": 1, "gre3.tx_packets": 1}, h.WATCHED)


@pytest.mark.parametrize("spoke", h.SPOKES)
def test_spoke_reaches_h1(net, spoke):
    """A spoke's echo in its own tunnel reaches h1, and the reply goes back down the same tunnel."""
    before = net.dut("r1").counters()
    net.send("grelab", h.to_r1(spoke, spoke, 1), comment=f"crafted by grelab as spoke {spoke}, key {spoke}: r1 takes it")
    net.transit.expect(h.reply_to(spoke, 1), ignore=e.IGNORE)
    net.expect_moved("r1", before, {f"gre{spoke}.rx_packets": 1, f"gre{spoke}.tx_packets": 1}, h.WATCHED)


@pytest.mark.parametrize("key, spoke", [(2, 3), (3, 2)], ids=["key-2-from-spoke-3", "key-3-from-spoke-2"])
def test_key_from_the_other_spoke(net, key, spoke):
    """A spoke's key from the other spoke's address finds no tunnel: ICMP port unreachable, nothing reaches h1."""
    before = net.dut("r1").counters()
    wrong = h.to_r1(key, spoke, 1)
    net.send("grelab", wrong, comment=f"crafted by grelab as spoke {spoke} with spoke {key}'s key: no tunnel takes it")
    net.transit.expect(e.unreachable(wrong), ignore=e.IGNORE)  # before the next: the golden's order is r1's answer's
    net.send("grelab", h.to_r1(spoke, spoke, 2), comment=f"crafted by grelab as spoke {spoke}, its own key: r1 takes it")
    net.transit.expect([e.unreachable(wrong), h.reply_to(spoke, 2)], ignore=e.IGNORE)
    assert len(net.link("lan1").frames()) == 2  # only the right echo and its reply
    net.expect_moved("r1", before, {f"gre{spoke}.rx_packets": 1, f"gre{spoke}.tx_packets": 1, "snmp.IcmpOutDestUnreachs": 1},
                    h.WATCHED)
