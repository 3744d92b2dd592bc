"""The two offices of the mission, as data: IPv6 LANs joined by a GRE tunnel across an IPv4-only transit
(or, two_offices_v6, an IPv6-only one).

    h1 --lan1-- r1 ==transit== isp ==transit2== r2 --lan2-- h2
    2001:db8:1::/64   198.51.100.0/24   203.0.113.0/24   2001:db8:2::/64

r1 and r2 are devices under test (kernel GRE endpoints); isp forwards IPv4 only and has no IPv6 at all,
so IPv6 crosses only inside the tunnel. h1 and h2 are plain namespaces with the host kernel's stack,
made deterministic for golden pcaps (no TCP timestamps, no random IPv6 flow labels).
"""
from __future__ import annotations

from grelab.craft.esp import SA
from grelab.dut.plan import Plan
from grelab.dut.tunnel import esp_transport, gre_tunnel
from grelab.lab.topology import End, Link, Node, Route, Topology
from grelab.scenario.spec import PLAIN_GRE, QUIET_HOST, Comment, Scenario, Variant

H1, R1_LAN, R1_WAN = "2001:db8:1::10", "2001:db8:1::1", "198.51.100.1"
ISP_1, ISP_2 = "198.51.100.254", "203.0.113.254"
H2, R2_LAN, R2_WAN = "2001:db8:2::10", "2001:db8:2::1", "203.0.113.1"
LAN1, LAN2 = "2001:db8:1::/64", "2001:db8:2::/64"
# IPv4 on the LANs too (topology(ipv4_lans=True)): routed natively across the isp unless a plan routes them into a tunnel.
H1_V4, R1_LAN_V4, H2_V4, R2_LAN_V4 = "10.1.0.10", "10.1.0.1", "10.2.0.10", "10.2.0.1"
LAN1_V4, LAN2_V4 = "10.1.0.0/24", "10.2.0.0/24"
H1_MAC, H2_MAC = "02:00:00:00:01:10", "02:00:00:00:02:10"
R1_LAN_MAC, R1_WAN_MAC, ISP_1_MAC = "02:00:00:00:01:01", "02:00:00:00:0a:01", "02:00:00:00:0a:fe"
# Where each golden link is seen: (node, interface).
LINKS = {"lan1": ("h1", "eth0"), "transit": ("isp", "eth0"), "lan2": ("h2", "eth0")}

# A fixed key pair for the ESP variant: the same bytes in the DUTs, in grelab, and in pcaps/esp_sa.
ESP_R1_TO_R2 = SA(0x00001001, "gcm128", bytes(range(1, 17)) + b"\x01\x02\x03\x04", src=R1_WAN, dst=R2_WAN)
ESP_R2_TO_R1 = SA(0x00002001, "gcm128", bytes(range(17, 33)) + b"\x05\x06\x07\x08", src=R2_WAN, dst=R1_WAN)
ESP_SAS = (ESP_R1_TO_R2, ESP_R2_TO_R1)
IN_ESP = Variant("gre-in-esp", esp="gcm128", sas=ESP_SAS)

COMMENTS = (
    Comment("sent by h1 to h2's office; r1 must carry it through the tunnel", "lan1", sent_by="h1"),
    Comment("delivered to h1 by r1, out of the tunnel, hop limit two less", "lan1"),
    Comment("between the offices only {carrier}, carrying exactly one packet a host sent, hop limit one less",
            "transit"),
    Comment("sent by h2 to h1's office; r2 must carry it through the tunnel", "lan2", sent_by="h2"),
    Comment("delivered to h2 by r2, out of the tunnel, hop limit two less", "lan2"),
)


def topology(r1, r2, transit2_mtu: int = 1500, ipv4_lans: bool = False) -> Topology:
    """transit2_mtu: the MTU of the isp -- r2 link (a narrower path behind the first hop). ipv4_lans: the LANs have
    IPv4 too (H1_V4, H2_V4), the isp routing them to r1 and r2."""
    v4 = (lambda *items: list(items)) if ipv4_lans else (lambda *items: [])
    return Topology(
        nodes=[
            Node("h1", routes=[Route("default6", via=R1_LAN), *v4(Route("default", via=R1_LAN_V4))], sysctls=QUIET_HOST),
            Node("r1", routes=[Route("default", via=ISP_1)], forwarding=True, dut=r1),
            Node("isp", routes=v4(Route(LAN1_V4, via=R1_WAN), Route(LAN2_V4, via=R2_WAN)),
                 sysctls={"net.ipv4.ip_forward": "1"}),
            Node("r2", routes=[Route("default", via=ISP_2)], forwarding=True, dut=r2),
            Node("h2", routes=[Route("default6", via=R2_LAN), *v4(Route("default", via=R2_LAN_V4))], sysctls=QUIET_HOST),
        ],
        links=[
            Link(End("h1", "eth0", [f"{H1}/64", *v4(f"{H1_V4}/24")], H1_MAC),
                 End("r1", "lan", [f"{R1_LAN}/64", *v4(f"{R1_LAN_V4}/24")], R1_LAN_MAC)),
            Link(End("r1", "wan", [f"{R1_WAN}/24"], R1_WAN_MAC),
                 End("isp", "eth0", [f"{ISP_1}/24"], ISP_1_MAC)),
            Link(End("isp", "eth1", [f"{ISP_2}/24"], "02:00:00:00:0b:fe"),
                 End("r2", "wan", [f"{R2_WAN}/24"], "02:00:00:00:0b:01"), mtu=transit2_mtu),
            Link(End("r2", "lan", [f"{R2_LAN}/64", *v4(f"{R2_LAN_V4}/24")], "02:00:00:00:02:01"),
                 End("h2", "eth0", [f"{H2}/64", *v4(f"{H2_V4}/24")], H2_MAC)),
        ],
    )


def connect(variant: Variant, sas, **tunnel_options) -> dict[str, Plan]:
    """Each router: a GRE tunnel to the other office, the far LAN routed into it; in an ESP variant, ESP
    required for GRE between them both ways (sas(local, remote) -> the variant's SA pair)."""
    plans = {"r1": gre_tunnel("gre1", R1_WAN, R2_WAN, routes=(LAN2,), **tunnel_options),
             "r2": gre_tunnel("gre1", R2_WAN, R1_WAN, routes=(LAN1,), **tunnel_options)}
    return protected(plans, variant, sas, R1_WAN, R2_WAN)


def protected(plans: dict[str, Plan], variant: Variant, sas, r1: str, r2: str) -> dict[str, Plan]:
    """The routers' plans with, in an ESP variant, ESP required for GRE between r1's and r2's addresses both ways."""
    if variant.esp:
        out, back = sas(r1, r2)
        plans["r1"] += esp_transport(out, back)
        plans["r2"] += esp_transport(back, out)
    return plans


# The same offices across an IPv6-only provider: ip6gre between IPv6 endpoints (two_offices_v6).
R1_WAN6, ISP6_1, ISP6_2, R2_WAN6 = "2001:db8:a::1", "2001:db8:a::fe", "2001:db8:b::fe", "2001:db8:b::1"


def topology_v6(r1, r2) -> Topology:
    """The offices' topology with the transit's IPv4 addresses replaced by IPv6 ones: isp forwards IPv6 only."""
    six = {R1_WAN: f"{R1_WAN6}/64", ISP_1: f"{ISP6_1}/64", ISP_2: f"{ISP6_2}/64", R2_WAN: f"{R2_WAN6}/64"}
    base = topology(r1, r2)
    for link in base.links:
        for end in (link.a, link.b):
            end.addresses = [six.get(a.split("/")[0], a) for a in end.addresses]
    for node in base.nodes:
        if node.name in ("r1", "r2"):
            node.routes = [Route("default6", via=ISP6_1 if node.name == "r1" else ISP6_2)]
        if node.name == "isp":
            node.sysctls = {"net.ipv6.conf.all.forwarding": "1"}
    return base


def connect_v6(variant: Variant, sas, **tunnel_options) -> dict[str, Plan]:
    """connect() between the IPv6 endpoints: ip6gre, and in an ESP variant ESP required for it both ways. The
    routers label their IPv6 flows 0 (no hash of the passenger's ports in the outer flow label: goldens repeat)."""
    quiet = Plan(sysctls={"net.ipv6.auto_flowlabels": "0"})
    plans = {"r1": quiet + gre_tunnel("gre1", R1_WAN6, R2_WAN6, routes=(LAN2,), **tunnel_options),
             "r2": quiet + gre_tunnel("gre1", R2_WAN6, R1_WAN6, routes=(LAN1,), **tunnel_options)}
    return protected(plans, variant, sas, R1_WAN6, R2_WAN6)


def two_offices_v6(name: str = "two_offices_v6", variants=(PLAIN_GRE,), **changes) -> Scenario:
    """The two offices joined by ip6gre across an IPv6 transit (the DUTs need ipv6_transport)."""
    fields = dict(topology=topology_v6, tunnels=connect_v6, carrier="IPv6/GRE (0x86DD)",
                  capabilities=frozenset({"gre", "ipv6_transport"}))
    return two_offices(name, variants, **{**fields, **changes})


# r1 behind a NAT (two_offices_nat): its provider masquerades 192.0.2.0/24 behind 203.0.113.254.
R1_PRIVATE, NAT_INSIDE, NAT_PUBLIC = "192.0.2.1", "192.0.2.254", "203.0.113.254"
NAT_LINKS = {"inside": ("isp", "eth0"), "outside": ("isp", "eth1"), "lan1": ("h1", "eth0"), "lan2": ("h2", "eth0")}
NFT_MASQUERADE = """
table ip grelab_nat {
    chain postrouting {
        type nat hook postrouting priority 100; policy accept;
        oifname "eth1" masquerade
    }
}
"""
NAT_COMMENTS = (
    Comment("sent by h1 to h2's office; r1 must carry it through the tunnel", "lan1", sent_by="h1"),
    Comment("delivered to h1 by r1, out of the tunnel, hop limit two less", "lan1"),
    Comment("behind the NAT (r1's own address) only {carrier}, carrying exactly one packet a host sent "
            "[seen on two links]", "inside"),
    Comment("past the NAT (its public address, the same UDP ports) only {carrier}, carrying exactly one packet a host "
            "sent [seen on two links]", "outside"),
    Comment("sent by h2 to h1's office; r2 must carry it through the tunnel", "lan2", sent_by="h2"),
    Comment("delivered to h2 by r2, out of the tunnel, hop limit two less", "lan2"),
)


def topology_nat(r1, r2) -> Topology:
    """The offices' topology with r1 on 192.0.2.0/24 behind isp, which masquerades it (nftables) towards r2."""
    base = topology(r1, r2)
    private = {R1_WAN: f"{R1_PRIVATE}/24", ISP_1: f"{NAT_INSIDE}/24"}
    for link in base.links:
        for end in (link.a, link.b):
            end.addresses = [private.get(a.split("/")[0], a) for a in end.addresses]
    for node in base.nodes:
        if node.name == "r1":
            node.routes = [Route("default", via=NAT_INSIDE)]
        if node.name == "isp":
            node.nft = NFT_MASQUERADE
    return base


def nat_t(algorithm: str, scenario: str = "two_offices_nat") -> Variant:
    """GRE in ESP in UDP 4500 (RFC 3948) through the NAT: each direction's SA as r1 sees it (r1's own address)
    and as r2 sees it (the NAT's), the same SPI and keys (derived from the scenario and the algorithm)."""
    from dataclasses import replace

    from grelab.scenario.spec import derived_sa
    variant = Variant(f"gre-in-esp-in-udp-{algorithm}", esp=algorithm)
    out = replace(derived_sa(scenario, variant, R1_PRIVATE, R2_WAN), nat_t=(4500, 4500))
    back = replace(derived_sa(scenario, variant, R2_WAN, R1_PRIVATE), nat_t=(4500, 4500))
    return replace(variant, sas=(out, back, replace(out, src=NAT_PUBLIC), replace(back, dst=NAT_PUBLIC)))


def connect_nat(variant: Variant, sas, **tunnel_options) -> dict[str, Plan]:
    """r1: GRE from its own address to r2; r2: GRE to the NAT's public address (where r1's GRE comes from, for
    r2). With ESP: NAT-T SAs and policies as each sees the addresses, and a UDP-encapsulation socket on 4500."""
    plans = {"r1": gre_tunnel("gre1", R1_PRIVATE, R2_WAN, routes=(LAN2,), **tunnel_options),
             "r2": gre_tunnel("gre1", R2_WAN, NAT_PUBLIC, routes=(LAN1,), **tunnel_options)}
    if variant.esp:
        out, back = sas(R1_PRIVATE, R2_WAN)
        out_seen, back_seen = sas(NAT_PUBLIC, R2_WAN)
        encap = Plan(udp_encap_ports=(4500,))
        plans["r1"] += esp_transport(out, back) + encap
        plans["r2"] += esp_transport(back_seen, out_seen) + encap
    return plans


def two_offices_nat(name: str = "two_offices_nat", variants=(PLAIN_GRE,), **changes) -> Scenario:
    """The two offices with r1 behind a NAT on the transit node (links: inside and outside of the NAT)."""
    fields = dict(topology=topology_nat, tunnels=connect_nat, links=NAT_LINKS, transit="inside",
                  comments=NAT_COMMENTS)
    return two_offices(name, variants, **{**fields, **changes})


def two_offices(name: str = "two_offices", variants=(PLAIN_GRE, IN_ESP), **changes) -> Scenario:
    """The two offices as a Scenario; `changes` replace any of its fields (comments, tunnels, ...)."""
    fields = dict(topology=topology, duts=("r1", "r2"), links=LINKS, hosts={"h1": H1, "h2": H2},
                  comments=COMMENTS, tunnels=connect, variants=tuple(variants))
    return Scenario(name, **{**fields, **changes})
