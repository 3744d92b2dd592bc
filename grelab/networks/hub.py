"""The hub and spoke network (scenarios/hub_and_spoke.py): r1 the hub, grelab both spokes, tunnels told apart by key."""
from __future__ import annotations

from functools import partial

from scapy.layers.inet6 import ICMPv6EchoReply, ICMPv6EchoRequest, IPv6

from grelab.dut.plan import Plan
from grelab.dut.tunnel import gre_tunnel
from grelab.scenario import PLAIN_GRE, Comment, Scenario
from grelab.networks import endpoint as e

SPOKES = {2: (e.GRELAB, "2001:db8:2::10"), 3: ("198.51.100.3", "2001:db8:3::10")}  # key -> (address, LAN host)
COMMENTS = (Comment("crafted by grelab as spoke 3", "transit", sent_by="grelab", match=lambda f: f[26:30] == bytes([198, 51, 100, 3])),
            Comment("crafted by grelab as spoke 2", "transit", sent_by="grelab"),
            Comment("r1's GRE down a spoke's tunnel", "transit", match=lambda f: f[6:12] == bytes.fromhex("02000000 0a01")
                    and f[23] == 47),
            Comment("r1's ICMP port unreachable: no tunnel takes it", "transit", match=lambda f: f[23] == 1),
            Comment("delivered by r1 out of a spoke's tunnel to h1, and h1's reply", "lan1"))


def hub() -> Plan:
    plan = Plan(sysctls={"net.ipv4.icmp_ratelimit": 0})
    for key, (spoke, host) in SPOKES.items():
        plan += gre_tunnel(f"gre{key}", e.R1_WAN, spoke, key=key, routes=(host.replace("::10", "::/64"),))
    return plan


def to_r1(key: int, spoke: int, seq: int):  # spoke `spoke` sends an echo for h1 with `key`
    address, host = SPOKES[spoke]
    request = IPv6(src=host, dst=e.H1, hlim=64) / ICMPv6EchoRequest(id=0x4848, seq=seq)
    sent = e.to_r1(request, key_present=1, key=key)
    sent.src = address
    return sent


def reply_to(spoke: int, seq: int):  # h1's reply as r1 sends it down the spoke's tunnel
    address, host = SPOKES[spoke]
    return e.from_r1(IPv6(src=e.H1, dst=host, hlim=63) / ICMPv6EchoReply(id=0x4848, seq=seq), dst=address,
                     key_present=1, key=spoke)


WATCHED = ("gre2.rx_packets", "gre3.rx_packets", "gre2.tx_packets", "gre3.tx_packets", "snmp.IcmpOutDestUnreachs")


def hub_and_spoke(name: str = "hub_and_spoke") -> Scenario:
    return e.grelab_endpoint(name, variants=[PLAIN_GRE], topology=partial(e.topology, also=(SPOKES[3][0],)),
                             comments=COMMENTS, tunnels=lambda variant, sas: {"r1": hub()})
