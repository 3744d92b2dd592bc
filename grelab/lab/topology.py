"""Topologies as data: nodes, veth links between them, addresses, routes, sysctls, nftables rules.

Nothing here touches the kernel; `grelab.lab.build.build(topology)` makes it real. Use the
documentation ranges (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32).
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class End:
    """One end of a veth link: the interface `ifname` in node `node`."""

    node: str
    ifname: str  # at most 15 characters (the kernel's IFNAMSIZ)
    addresses: list[str] = field(default_factory=list)  # "192.0.2.1/24", "2001:db8:1::1/64"
    mac: str | None = None  # None: a random locally administered one (on a DUT, its own interface gets it)


@dataclass
class Link:
    """A veth pair; both ends get the same MTU."""

    a: End
    b: End
    mtu: int = 1500


@dataclass
class Route:
    dst: str  # "198.51.100.0/24", "2001:db8:2::/64", "default" (IPv4) or "default6"
    via: str | None = None
    dev: str | None = None


@dataclass
class Node:
    """A network namespace, or a device under test standing in for one (see grelab.lab.build)."""

    name: str
    routes: list[Route] = field(default_factory=list)
    forwarding: bool = False  # IPv4 and IPv6 forwarding: a router
    sysctls: dict[str, str] = field(default_factory=dict)  # "net.ipv4.conf.all.rp_filter": "0"
    nft: str | None = None  # an `nft -f` ruleset loaded after the links are up
    dut: object | None = None  # a DUT (grelab.dut.base.Dut) instead of a new namespace
    plan: object | None = None  # a DUT node's own grelab.dut.plan.Plan (tunnels, SAs), applied with its links


@dataclass
class Topology:
    nodes: list[Node]
    links: list[Link]

    def node(self, name: str) -> Node:
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(f"no node {name!r} in the topology")


def a_r_b(mtu_ar: int = 1500, mtu_rb: int = 1500, r: Node | None = None) -> Topology:
    """A -- R -- B: two veth pairs, IPv4 and IPv6, R forwards. A and B route everything through R.

    A eth0 192.0.2.1/24 2001:db8:1::1/64 -- R eth0 .254 ::fe | R eth1 -- B eth0 198.51.100.1/24 2001:db8:2::1/64
    Pass `r` to stand a DUT (or a differently configured router) in R's place."""
    router = r or Node("r", forwarding=True)
    return Topology(
        nodes=[
            Node("a", routes=[Route("default", via="192.0.2.254"), Route("default6", via="2001:db8:1::fe")]),
            router,
            Node("b", routes=[Route("default", via="198.51.100.254"), Route("default6", via="2001:db8:2::fe")]),
        ],
        links=[
            Link(End("a", "eth0", ["192.0.2.1/24", "2001:db8:1::1/64"], "02:00:00:00:01:01"),
                 End(router.name, "eth0", ["192.0.2.254/24", "2001:db8:1::fe/64"], "02:00:00:00:01:fe"),
                 mtu=mtu_ar),
            Link(End(router.name, "eth1", ["198.51.100.254/24", "2001:db8:2::fe/64"], "02:00:00:00:02:fe"),
                 End("b", "eth0", ["198.51.100.1/24", "2001:db8:2::1/64"], "02:00:00:00:02:01"),
                 mtu=mtu_rb),
        ],
    )
