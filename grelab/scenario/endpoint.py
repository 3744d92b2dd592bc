"""grelab as the far end of a tunnel, as data: grelab --transit-- r1 --lan1-- h1.

There is no second router: grelab's own namespace plays the remote office and crafts what a GRE peer sends.
Its kernel has no GRE or ESP and would answer every tunnel packet addressed to it with ICMP
protocol-unreachable, so an nftables rule drops them there; grelab reads them from its capture instead.
"""
from __future__ import annotations

from grelab.craft.esp import SA
from grelab.dut.plan import Plan
from grelab.dut.tunnel import esp_transport, gre_tunnel
from grelab.lab.topology import End, Link, Node, Route, Topology
from grelab.scenario.spec import GRE, Comment, Scenario, Variant

GRELAB, R1_WAN, H1, FAR_LAN_HOST = "198.51.100.2", "198.51.100.1", "2001:db8:1::10", "2001:db8:2::10"
GRELAB_MAC, R1_WAN_MAC = "02:00:00:00:0a:02", "02:00:00:00:0a:01"
FAR_LAN = "2001:db8:2::/64"
TO_R1 = SA(0x00003001, "cbc128-sha256", bytes(range(33, 49)), bytes(range(49, 81)), src=GRELAB, dst=R1_WAN)
FROM_R1 = SA(0x00004001, "cbc128-sha256", bytes(range(81, 97)), bytes(range(97, 129)), src=R1_WAN, dst=GRELAB)
IN_ESP = Variant("gre-in-esp", esp="cbc128-sha256", sas=(TO_R1, FROM_R1))
LINKS = {"transit": ("grelab", "eth0", "ip proto 47 or ip proto 50"), "lan1": ("h1", "eth0")}

# For a node where grelab itself ends tunnels (see above).
NFT_DROP_TUNNELS = """
table inet grelab_endpoint {
    chain input {
        type filter hook input priority 0; policy accept;
        meta l4proto { gre, esp } drop
    }
}
"""

COMMENTS = (
    Comment("crafted by grelab, the far GRE endpoint", "transit", sent_by="grelab"),
    Comment("r1's answer: the reply h1 sent, back in the tunnel, checked field by field", "transit"),
    Comment("delivered by r1 out of the tunnel to h1, and h1's reply", "lan1"),
)


def topology(r1) -> Topology:
    return Topology(
        nodes=[Node("grelab", nft=NFT_DROP_TUNNELS),
               Node("r1", forwarding=True, dut=r1),
               Node("h1", routes=[Route("default6", via="2001:db8:1::1")],
                    sysctls={"net.ipv6.auto_flowlabels": "0"})],
        links=[Link(End("grelab", "eth0", [f"{GRELAB}/24"], GRELAB_MAC), End("r1", "wan", [f"{R1_WAN}/24"], R1_WAN_MAC)),
               Link(End("r1", "lan", ["2001:db8:1::1/64"], "02:00:00:00:01:01"),
                    End("h1", "eth0", [f"{H1}/64"], "02:00:00:00:01:10"))])


def connect(variant: Variant, sas, **tunnel_options) -> dict[str, Plan]:
    """r1: a GRE tunnel to grelab, the far LAN routed into it; in an ESP variant, ESP required for that GRE."""
    plan = gre_tunnel("gre1", R1_WAN, GRELAB, routes=(FAR_LAN,), **tunnel_options)
    if variant.esp:
        to_r1, from_r1 = sas(GRELAB, R1_WAN)
        plan += esp_transport(from_r1, to_r1)
    return {"r1": plan}


def grelab_endpoint(name: str = "grelab_endpoint", variants=(GRE, IN_ESP), **changes) -> Scenario:
    fields = dict(topology=topology, duts=("r1",), links=LINKS, hosts={"h1": H1}, comments=COMMENTS,
                  tunnels=connect, variants=tuple(variants))
    return Scenario(name, **{**fields, **changes})
