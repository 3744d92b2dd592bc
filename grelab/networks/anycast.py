"""Anycast tunnel endpoints, as data: r1's one GRE tunnel to an address two points of presence both hold.

    h1 --lan1-- r1 ==transit== isp ==pop1== pop1 --dc1-- dc1      (2001:db8:2::10 behind each pop)
                                   ==pop2== pop2 --dc2-- dc2

r1, pop1 and pop2 are DUTs; pop1 and pop2 hold 192.0.2.1 on lo and terminate r1's tunnel to it; the isp routes
192.0.2.1 to one of them (move_anycast changes which, in one netlink message).
"""
from __future__ import annotations

import time

from grelab.dut.plan import Interface, Plan
from grelab.dut.tunnel import gre_tunnel
from grelab.lab.rtnl import Rtnl
from grelab.lab.topology import End, Link, Node, Route, Topology
from grelab.scenario.spec import PLAIN_GRE, Comment, Scenario
from grelab.scenario.spec import QUIET_HOST

H1, R1_LAN, R1_WAN, ISP_R1 = "2001:db8:1::10", "2001:db8:1::1", "198.51.100.1", "198.51.100.254"
ANYCAST, SERVICE, POP_LAN = "192.0.2.1", "2001:db8:2::10", "2001:db8:2::1"
POPS = {"pop1": ("203.0.113.1", "203.0.113.126", 1), "pop2": ("203.0.113.129", "203.0.113.254", 2)}  # wan, isp's end
LAN1, SERVICE_LAN = "2001:db8:1::/64", "2001:db8:2::/64"
LINKS = {"lan1": ("h1", "eth0"), "transit": ("isp", "eth0"), "pop1": ("isp", "eth1"), "pop2": ("isp", "eth2"),
         "dc1": ("dc1", "eth0"), "dc2": ("dc2", "eth0")}
COMMENTS = (
    Comment("h1's echo to the service, for r1's tunnel to the anycast address", "lan1", sent_by="h1"),
    Comment("the service's reply, out of r1's tunnel", "lan1"),
    Comment("between r1 and the isp: GRE to and from the anycast address 192.0.2.1, whichever pop holds it", "transit"),
    Comment("the isp routes 192.0.2.1 to pop1: pop1 carries this", "pop1"),
    Comment("the isp routes 192.0.2.1 to pop2: pop2 carries this", "pop2"),
    Comment("dc1, behind pop1: the echo out of pop1's tunnel, and the reply", "dc1"),
    Comment("dc2, behind pop2: the echo out of pop2's tunnel, and the reply", "dc2"),
)


def topology(r1, pop1, pop2) -> Topology:
    duts = {"pop1": pop1, "pop2": pop2}
    nodes = [Node("h1", routes=[Route("default6", via=R1_LAN)], sysctls=QUIET_HOST),
             Node("r1", routes=[Route("default", via=ISP_R1)], forwarding=True, dut=r1),
             Node("isp", routes=[Route(f"{ANYCAST}/32", via=POPS["pop1"][0])], sysctls={"net.ipv4.ip_forward": "1"})]
    links = [Link(End("h1", "eth0", [f"{H1}/64"], "02:00:00:00:01:10"), End("r1", "lan", [f"{R1_LAN}/64"], "02:00:00:00:01:01")),
             Link(End("r1", "wan", [f"{R1_WAN}/24"], "02:00:00:00:0a:01"), End("isp", "eth0", [f"{ISP_R1}/24"], "02:00:00:00:0a:fe"))]
    for pop, (wan, isp_end, n) in POPS.items():
        nodes += [Node(pop, routes=[Route("default", via=isp_end)], forwarding=True, dut=duts[pop]),
                  Node(f"dc{n}", routes=[Route("default6", via=POP_LAN)], sysctls=QUIET_HOST)]
        links += [Link(End("isp", f"eth{n}", [f"{isp_end}/25"], f"02:00:00:00:0{n}:fe"),
                       End(pop, "wan", [f"{wan}/25"], f"02:00:00:00:0{n}:01")),
                  Link(End(pop, "lan", [f"{POP_LAN}/64"], f"02:00:00:00:2{n}:01"),
                       End(f"dc{n}", "eth0", [f"{SERVICE}/64"], f"02:00:00:00:2{n}:10"))]
    return Topology(nodes=nodes, links=links)


def tunnels(variant, sas) -> dict[str, Plan]:
    """r1: one tunnel, to the anycast address; each pop: the anycast address on lo and a tunnel from it to r1."""
    pop = gre_tunnel("gre1", ANYCAST, R1_WAN, routes=(LAN1,)) + Plan(interfaces=[Interface("lo", addresses=(f"{ANYCAST}/32",))])
    return {"r1": gre_tunnel("gre1", R1_WAN, ANYCAST, routes=(SERVICE_LAN,)), "pop1": pop, "pop2": pop}



def anycast(name: str = "anycast", **changes) -> Scenario:
    fields = dict(topology=topology, duts=("r1", "pop1", "pop2"), links=LINKS, hosts={"h1": H1}, comments=COMMENTS,
                  tunnels=tunnels, variants=(PLAIN_GRE,))
    return Scenario(name, **{**fields, **changes})


def move_anycast(net, pop: str) -> None:
    """The isp's route to the anycast address now points at `pop` (one netlink route replace in its namespace)."""
    def replace() -> None:
        rtnl = Rtnl()
        try:
            rtnl.add_route(f"{ANYCAST}/32", POPS[pop][0], None, replace=True)
        finally:
            rtnl.close()
    net.lab.run_in("isp", replace)


def carried(net) -> dict[str, int]:
    """GRE frames seen so far on the isp's link to each pop."""
    return {pop: sum(1 for f in net.link(pop).frames() if f[23] == 47) for pop in POPS}


def stream(net, count: int, move_after: int, source: str = "pop1", to: str = "pop2") -> tuple[dict[int, list[str]], list[int]]:
    """h1 streams `count` echoes to the service (seq 1, 2, ..., one every 0.5 ms, never waiting for a reply); once
    echo `move_after` has passed the isp towards `source`, the anycast address moves to `to`, while replies are
    still in flight: ({seq: the pops whose link carried that echo's request or reply}, the echoes left unanswered)."""
    from grelab.scenario.hosts import echo_stream
    net.order(_by_echo)  # requests and replies cross on each link in the order the scheduler chose

    def move() -> None:
        deadline = time.monotonic() + 2
        while move_after not in _echoes_on(net, source, 128):  # each look settles the capture: no sleep
            if time.monotonic() > deadline:
                raise AssertionError(f"echo {move_after} never reached {source}'s link")
        move_anycast(net, to)
    answered = echo_stream(net.lab, "h1", SERVICE, count, midway=move, at=move_after)
    carriers: dict[int, list[str]] = {seq: [] for seq in range(1, count + 1)}
    for pop in POPS:
        for seq in _echoes_on(net, pop, 128, 129):
            if seq in carriers and pop not in carriers[seq]:
                carriers[seq].append(pop)
    return carriers, sorted(set(carriers) - set(answered))


def _by_echo(frame: bytes) -> tuple:
    """Where a frame of the stream goes in the golden: by echo (sequence number), the request before its reply."""
    ipv6 = 14 + (24 if frame[12:14] == b"\x08\x00" and frame[23] == 47 else 0)  # in GRE on the transit, else not
    if len(frame) >= ipv6 + 48 and frame[ipv6 + 40] in (128, 129):
        return int.from_bytes(frame[ipv6 + 46:ipv6 + 48], "big"), frame[ipv6 + 40]
    return (0, 0)


def _echoes_on(net, link: str, *kinds: int) -> list[int]:
    """Sequence numbers of the ICMPv6 echoes of those types (128 request, 129 reply) in GRE on the link so far."""
    # IPv4 (20) / GRE (4) / IPv6 (40) / ICMPv6 echo: its type at 78, its sequence number at 84
    return [int.from_bytes(f[84:86], "big") for f in net.link(link).frames()
            if len(f) >= 86 and f[23] == 47 and f[78] in kinds]


def gre1_counts(duts: dict, before: dict) -> dict[str, dict[str, int]]:
    """{DUT: its gre1 rx_packets and tx_packets since `before` ({DUT: Counters})}."""
    return {name: {k: v for k, v in dut.counters().delta(before[name]).flat().items()
                   if k in ("gre1.rx_packets", "gre1.tx_packets")} for name, dut in duts.items()}
