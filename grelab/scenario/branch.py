"""Branch and HQ, as data: IPv4 LANs joined across a provider, routes learned by real OSPF daemons (BIRD 2).

    h1 --lan1-- r1 ==transit== isp ==transit2== r2 --lan2-- h2
    192.0.2.0/26        198.51.100.0/24  203.0.113.0/24      192.0.2.64/26
                                                  r2 --lan3-- h3   192.0.2.128/26 (known to r1 only through OSPF)

r1 and r2 (the DUTs) hold a GRE tunnel (gre1, 192.0.2.252/30 inside, IPv6 link-local on it for OSPFv3) and
run BIRD: OSPFv2 and OSPFv3 on gre1 (point-to-point, hello every second), their LANs as stub networks (no
Hellos there), routes exported to the kernel. No static route names a far LAN: h1 reaches h3 only once r1's
BIRD learned lan3 from r2's. `ipsec_alone` is the same offices with ESP in tunnel mode between the LANs
and no GRE: OSPF then has only the WAN links to speak on, and its multicast Hellos never reach the far router.
"""
from __future__ import annotations

from grelab.dut.daemon import guest_command, wait_until
from grelab.dut.plan import Daemon, Plan, XfrmPolicy, XfrmState
from grelab.dut.tunnel import gre_tunnel
from grelab.lab.topology import End, Link, Node, Route, Topology
from grelab.scenario.offices import protected
from grelab.scenario.spec import GRE, QUIET_HOST, Comment, Scenario, Variant

H1, R1_LAN, LAN1 = "192.0.2.10", "192.0.2.1", "192.0.2.0/26"
H2, R2_LAN, LAN2 = "192.0.2.74", "192.0.2.65", "192.0.2.64/26"
H3, R2_LAN3, LAN3 = "192.0.2.138", "192.0.2.129", "192.0.2.128/26"
R1_GRE, R2_GRE = "192.0.2.253", "192.0.2.254"
R1_WAN, ISP_1, ISP_2, R2_WAN = "198.51.100.1", "198.51.100.254", "203.0.113.254", "203.0.113.1"
LINKS = {"lan1": ("h1", "eth0"), "transit": ("isp", "eth0"), "lan3": ("h3", "eth0")}
INTERFACES = ("wan", "lan", "lan3")
BIRD = "/usr/sbin/bird"
BIRDC = ["/usr/sbin/birdc", "-s", "/tmp/grelab-daemons/bird/ctl"]
OSPF, IGMP = 89, 2  # IGMP: the reports of the daemons joining OSPF's groups

COMMENTS = (
    Comment("sent by h1 to a LAN behind r2 that r1 knows only through OSPF", "lan1", sent_by="h1"),
    Comment("delivered to h1 by r1, out of the tunnel", "lan1"),
    Comment("between the offices only {carrier}", "transit"),
    Comment("delivered to h3 by r2, out of the tunnel, TTL two less", "lan3", sent_by=None),
)


def topology(r1, r2) -> Topology:
    return Topology(
        nodes=[
            Node("h1", routes=[Route("default", via=R1_LAN)], sysctls=QUIET_HOST),
            Node("r1", routes=[Route("default", via=ISP_1)], forwarding=True, dut=r1),
            Node("isp", sysctls={"net.ipv4.ip_forward": "1"}),
            Node("r2", routes=[Route("default", via=ISP_2)], forwarding=True, dut=r2),
            Node("h2", routes=[Route("default", via=R2_LAN)], sysctls=QUIET_HOST),
            Node("h3", routes=[Route("default", via=R2_LAN3)], sysctls=QUIET_HOST),
        ],
        links=[
            Link(End("h1", "eth0", [f"{H1}/26"], "02:00:00:00:01:10"),
                 End("r1", "lan", [f"{R1_LAN}/26"], "02:00:00:00:01:01")),
            Link(End("r1", "wan", [f"{R1_WAN}/24"], "02:00:00:00:0a:01"),
                 End("isp", "eth0", [f"{ISP_1}/24"], "02:00:00:00:0a:fe")),
            Link(End("isp", "eth1", [f"{ISP_2}/24"], "02:00:00:00:0b:fe"),
                 End("r2", "wan", [f"{R2_WAN}/24"], "02:00:00:00:0b:01")),
            Link(End("r2", "lan", [f"{R2_LAN}/26"], "02:00:00:00:02:01"),
                 End("h2", "eth0", [f"{H2}/26"], "02:00:00:00:02:10")),
            Link(End("r2", "lan3", [f"{R2_LAN3}/26"], "02:00:00:00:03:01"),
                 End("h3", "eth0", [f"{H3}/26"], "02:00:00:00:03:10")),
        ],
    )


def bird_conf(router_id: str, speaks_on: str, stubs: tuple[str, ...], v3: bool = True) -> str:
    """BIRD 2: OSPFv2 (and OSPFv3) speaking only on `speaks_on` (point-to-point, 1 s hellos, neighbour dead
    after 3 s, routing table computed every second), `stubs` announced without Hellos, learnt routes into
    the kernel. Its only other door is the control socket in the DUT's /tmp."""
    stub = "".join(f'      interface "{name}" {{ stub yes; type ptp; }};  # no waiting for a DR election\n\n' for name in stubs)
    talk = f'      interface "{speaks_on}" {{ type ptp; hello 1; dead 3; retransmit 2; }};\n'

    def ospf(version: str, channel: str) -> str:
        return (f"protocol ospf {version} ospf{version[-1]} {{\n  tick 1;\n  {channel} {{ import all; export none; }};\n"
                f"  area 0 {{\n{talk}{stub}  }};\n}}\n")
    text = (f"router id {router_id};\nlog stderr all;\nprotocol device {{ scan time 10; }}\n"
            "protocol kernel k4 { ipv4 { import none; export all; }; }\n" + ospf("v2", "ipv4"))
    if v3:
        text += "protocol kernel k6 { ipv6 { import none; export all; }; }\n" + ospf("v3", "ipv6")
    return text


def bird(router_id: str, speaks_on: str, stubs: tuple[str, ...], v3: bool = True) -> Plan:
    return Plan(daemons=(Daemon("bird", (BIRD, "-f", "-c", "{dir}/bird.conf", "-s", "{dir}/ctl"),
                                {"bird.conf": bird_conf(router_id, speaks_on, stubs, v3)}),))


def birdc(*words: str) -> str:
    """A birdc command line for the UML guest (BIRD's own client, through the host's loader)."""
    return guest_command(BIRDC + list(words))


def routers(variant: Variant, sas) -> dict[str, Plan]:
    """r1 and r2: the GRE tunnel (in ESP in an ESP variant) and BIRD speaking OSPF across it."""
    plans = {"r1": gre_tunnel("gre1", R1_WAN, R2_WAN, addresses=(f"{R1_GRE}/30",), link_local=True)
             + bird(R1_GRE, "gre1", ("lan",)),
             "r2": gre_tunnel("gre1", R2_WAN, R1_WAN, addresses=(f"{R2_GRE}/30",), link_local=True)
             + bird(R2_GRE, "gre1", ("lan", "lan3"))}
    return protected(plans, variant, sas, R1_WAN, R2_WAN)


def branch(name: str = "ospf_over_gre", variants=(GRE,), **changes) -> Scenario:
    fields = dict(topology=topology, duts=("r1", "r2"), links=LINKS, hosts={"h1": H1, "h2": H2, "h3": H3},
                  comments=COMMENTS, tunnels=routers, variants=tuple(variants), interfaces=INTERFACES,
                  carrier="IPv4/GRE", routing=frozenset({OSPF, IGMP}))
    return Scenario(name, **{**fields, **changes})


def lans_in_esp(variant: Variant, sas) -> dict[str, Plan]:
    """IPsec alone: ESP in tunnel mode between the LANs (r1's lan1 <-> r2's lan2 and lan3), no GRE; BIRD
    speaks OSPFv2 on the WAN links, the only links the routers have towards each other."""
    plans = {"r1": bird(R1_WAN, "wan", ("lan",), v3=False), "r2": bird(R2_WAN, "wan", ("lan", "lan3"), v3=False)}
    out, back = sas(R1_WAN, R2_WAN)
    for me, sa_out, sa_in, local, remote in (("r1", out, back, (LAN1,), (LAN2, LAN3)),
                                             ("r2", back, out, (LAN2, LAN3), (LAN1,))):
        policies = []
        for mine in local:
            for theirs in remote:
                policies += [XfrmPolicy(mine, theirs, "out", sa_out.src, sa_out.dst, mode="tunnel"),
                             XfrmPolicy(theirs, mine, "in", sa_in.src, sa_in.dst, mode="tunnel"),
                             XfrmPolicy(theirs, mine, "fwd", sa_in.src, sa_in.dst, mode="tunnel")]
        plans[me] += Plan(states=(XfrmState(sa_out), XfrmState(sa_in)), policies=tuple(policies))
    return plans


# BIRD re-originates a router LSA no sooner than 5 s after the previous one (RFC 2328's MinLSInterval, fixed
# at compile time): the LSA naming the new adjacency waits for it, so from a cold start the routes come
# after ~5-7 s (measured 6.5-6.7 s), not within 5.
CONVERGENCE_S = 10  # with two workers and other runs on 2 cores


def converge(net, record_property) -> float:
    """Until r1's kernel routes HQ's third LAN into gre1 (from BIRD) and r2's routes the branch's LAN back."""
    took = wait_until(net.dut("r1"), f"/sbin/ip route show {LAN3} proto bird | grep -q 'dev gre1'",
                      timeout=CONVERGENCE_S, what="OSPF route to lan3", logs=["bird"])
    took += wait_until(net.dut("r2"), f"/sbin/ip route show {LAN1} proto bird | grep -q 'dev gre1'",
                       timeout=CONVERGENCE_S - took, what="OSPF route to lan1", logs=["bird"])
    record_property("convergence_s", round(took, 2))
    print(f"OSPF converged in {took:.2f} s")
    return took



def full(dut, *protocols: str) -> None:
    """Until BIRD in `dut` has a Full adjacency in each OSPF protocol (ospf2, ospf3)."""
    for protocol in protocols:
        wait_until(dut, birdc("show", "ospf", "neighbors", protocol) + " | grep -q Full",
                   timeout=CONVERGENCE_S, what=f"{protocol} adjacency Full", logs=["bird"])


def hellos_in_tunnel(net) -> set[str]:
    """Destinations of the OSPF packets on the transit, each of which must be inside the tunnel."""
    from scapy.layers.inet import IP
    from scapy.layers.inet6 import IPv6
    from grelab.craft.peel import peel
    from grelab.expect.match import is_noise
    found = set()
    for _, frame in net.golden.frames("transit"):
        if is_noise(frame):  # ARP between r1 and the provider
            continue
        passenger = peel(frame, net.sas).passenger
        assert passenger is not None, "a packet between the offices outside the tunnel"
        if isinstance(passenger, IP) and passenger.proto == OSPF or isinstance(passenger, IPv6) and passenger.nh == OSPF:
            found.add(passenger.dst)
    return found
