"""Branch and HQ, as data: IPv4 LANs joined across a provider, routes learned by real OSPF daemons (FRR).

    h1 --lan1-- r1 ==transit== isp ==transit2== r2 --lan2-- h2
    192.0.2.0/26        198.51.100.0/24  203.0.113.0/24      192.0.2.64/26
                                                  r2 --lan3-- h3   192.0.2.128/26 (known to r1 only through OSPF)

r1 and r2 (the DUTs) hold a GRE tunnel (gre1, 192.0.2.252/30 inside, IPv6 link-local on it for OSPFv3) and
run Debian's FRR: zebra, ospfd and ospf6d, OSPFv2 and OSPFv3 on gre1 (point-to-point), their LANs as passive
interfaces (stub networks, no Hellos there), routes put in the kernel by zebra. No static route names a far
LAN: h1 reaches h3 only once r1's ospfd learned lan3 from r2's. `lans_in_esp` is the same offices with ESP in
tunnel mode between the LANs and no GRE: OSPF then has only the WAN links to speak on, and its multicast Hellos
never reach the far router.
"""
from __future__ import annotations

import json
import time

from grelab.dut.daemon import client, daemon_log, folder, holds_until, wait_until
from grelab.dut.plan import Daemon, Plan, XfrmPolicy, XfrmState
from grelab.dut.tunnel import gre_tunnel
from grelab.lab.topology import End, Link, Node, Route, Topology
from grelab.networks.offices import protected
from grelab.scenario.spec import PLAIN_GRE, QUIET_HOST, Comment, Scenario, Variant

H1, R1_LAN, LAN1 = "192.0.2.10", "192.0.2.1", "192.0.2.0/26"
H2, R2_LAN, LAN2 = "192.0.2.74", "192.0.2.65", "192.0.2.64/26"
H3, R2_LAN3, LAN3 = "192.0.2.138", "192.0.2.129", "192.0.2.128/26"
R1_GRE, R2_GRE = "192.0.2.253", "192.0.2.254"
R1_WAN, ISP_1, ISP_2, R2_WAN = "198.51.100.1", "198.51.100.254", "203.0.113.254", "203.0.113.1"
LINKS = {"lan1": ("h1", "eth0"), "transit": ("isp", "eth0"), "lan3": ("h3", "eth0")}
INTERFACES = ("wan", "lan", "lan3")
FRR_LIB = "/usr/lib/x86_64-linux-gnu/frr"
ZSERV = "{dir}/../zebra/zserv.api"  # zebra's socket, beside the daemon's own folder
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


def frr_conf(router_id: str, speaks_on: str, stubs: tuple[str, ...], v3: bool = True) -> dict[str, str]:
    """FRR's ospfd (and ospf6d) speaking only on `speaks_on` (point-to-point; OSPFv2 Hellos every 100 ms and
    the neighbour dead after 1 s, OSPFv3 every second, dead after 3), `stubs` announced as passive interfaces
    (no Hellos there); LSAs originated and accepted at once and the routes computed at once (FRR's defaults:
    5 s between router LSAs, 1 s between arrivals, SPF 200 ms after a change); zebra puts the routes in the
    kernel. Their only other doors are the vty sockets in their own folders."""
    log = f"hostname {router_id}\nlog stdout informational\n"
    v2 = (log + f"interface {speaks_on}\n ip ospf area 0\n ip ospf network point-to-point\n"
          " ip ospf dead-interval minimal hello-multiplier 10\n"
          + "".join(f"interface {name}\n ip ospf area 0\n ip ospf passive\n" for name in stubs)
          + f"router ospf\n ospf router-id {router_id}\n log-adjacency-changes\n timers throttle lsa all 0\n"
          " timers lsa min-arrival 0\n timers throttle spf 0 50 1000\n")
    # zebra: routes with their own next hops, not the kernel's nexthop objects, which the DUT's reset leaves
    files = {"zebra": log + "no zebra nexthop kernel enable\n", "ospfd": v2}
    if v3:
        files["ospf6d"] = (log + f"interface {speaks_on}\n ipv6 ospf6 area 0\n ipv6 ospf6 network point-to-point\n"
                           " ipv6 ospf6 hello-interval 1\n ipv6 ospf6 dead-interval 3\n"
                           f"router ospf6\n ospf6 router-id {router_id}\n log-adjacency-changes\n"
                           " timers lsa min-arrival 0\n timers throttle spf 0 50 1000\n")
    return files


def frr(router_id: str, speaks_on: str, stubs: tuple[str, ...], v3: bool = True) -> Plan:
    """zebra, then ospfd (and ospf6d) once zebra's socket is there: they learn the interfaces from zebra."""
    daemons = []
    for name, text in frr_conf(router_id, speaks_on, stubs, v3).items():
        zserv = "{dir}/zserv.api" if name == "zebra" else ZSERV
        argv = (f"/usr/lib/frr/{name}", "-u", "root", "-g", "root", "-f", f"{{dir}}/{name}.conf", "-i",
                f"{{dir}}/{name}.pid", "--vty_socket", "{dir}", "-P", "0", "-z", zserv)
        files = {f"{name}.conf": text, "vtysh.conf": "username root nopassword\n"}  # vtysh: no PAM
        daemons.append(Daemon(name, argv, files, library_paths=(FRR_LIB,),
                              after="" if name == "zebra" else ZSERV))
    return Plan(daemons=tuple(daemons))


def vtysh(dut, daemon: str, command: str) -> str:
    """A vtysh command line for `dut`, asking one FRR daemon through its vty socket."""
    where = folder(dut, daemon)
    return client(dut, ["/usr/bin/vtysh", "--config_dir", where, "--vty_socket", where, "-d", daemon, "-c", command],
                         library_paths=(FRR_LIB,))


def routers(variant: Variant, sas) -> dict[str, Plan]:
    """r1 and r2: the GRE tunnel (in ESP in an ESP variant) and FRR speaking OSPF across it."""
    plans = {"r1": gre_tunnel("gre1", R1_WAN, R2_WAN, addresses=(f"{R1_GRE}/30",), link_local=True)
             + frr(R1_GRE, "gre1", ("lan",)),
             "r2": gre_tunnel("gre1", R2_WAN, R1_WAN, addresses=(f"{R2_GRE}/30",), link_local=True)
             + frr(R2_GRE, "gre1", ("lan", "lan3"))}
    return protected(plans, variant, sas, R1_WAN, R2_WAN)


def branch(name: str = "ospf_over_gre", variants=(PLAIN_GRE,), **changes) -> Scenario:
    fields = dict(topology=topology, duts=("r1", "r2"), links=LINKS, hosts={"h1": H1, "h2": H2, "h3": H3},
                  comments=COMMENTS, tunnels=routers, variants=tuple(variants), interfaces=INTERFACES,
                  carrier="IPv4/GRE", routing=frozenset({OSPF, IGMP}))
    return Scenario(name, **{**fields, **changes})


# No GRE: not in_esp's "gre-in-esp-..." (tests/test_goldens_tshark.py holds "ipsec-alone" ESP to carry plain IP)
IPSEC_ALONE = Variant("ipsec-alone-gcm128", esp="gcm128", mode="tunnel")
IPSEC_ALONE_COMMENTS = (
    Comment("sent by h1 to HQ's LAN, which r1's ESP policy names", "lan1", sent_by="h1"),
    Comment("delivered to h1 by r1, out of the ESP", "lan1"),
    Comment("between the offices only {carrier}", "transit"),
)


def ipsec_alone(name: str, **changes) -> Scenario:
    """The branch and HQ with IPsec alone (lans_in_esp) instead of GRE, in its one variant."""
    fields = dict(variants=(IPSEC_ALONE,), tunnels=lans_in_esp, carrier="IPv4", comments=IPSEC_ALONE_COMMENTS)
    return branch(name, **{**fields, **changes})


def lans_in_esp(variant: Variant, sas) -> dict[str, Plan]:
    """IPsec alone: ESP in tunnel mode between the LANs configured by hand (r1's lan1 <-> r2's lan2), no GRE;
    lan3 is left for OSPF to teach. ospfd speaks OSPFv2 on the WAN links, the only links the routers have towards
    each other."""
    plans = {"r1": frr(R1_WAN, "wan", ("lan",), v3=False), "r2": frr(R2_WAN, "wan", ("lan", "lan3"), v3=False)}
    out, back = sas(R1_WAN, R2_WAN)
    for me, sa_out, sa_in, mine, theirs in (("r1", out, back, LAN1, LAN2), ("r2", back, out, LAN2, LAN1)):
        policies = (XfrmPolicy(mine, theirs, "out", sa_out.src, sa_out.dst, mode="tunnel"),
                    XfrmPolicy(theirs, mine, "in", sa_in.src, sa_in.dst, mode="tunnel"),
                    XfrmPolicy(theirs, mine, "fwd", sa_in.src, sa_in.dst, mode="tunnel"))
        plans[me] += Plan(states=(XfrmState(sa_out), XfrmState(sa_in)), policies=policies)
    return plans


# FRR configured as above converges in ~0.4-0.5 s from the daemons' start (zebra, then ospfd once zebra's socket
# is there; its first Hello is answered at once) in grelab's UML guest (1.2-2.5 s in Debian's 6.1 UML, whose
# every process start cost several times more). BIRD 2 could not do it in 5: it re-originates its router LSA no
# sooner than 5 s after the previous one (RFC 2328's MinLSInterval, compiled in), and its first one, at start,
# cannot name the adjacency, so the routes came after 6-8 s. The bound is a deadline, not a wait: under load an
# exchange can start over (seen: "Exchange -> ExStart (SeqNumberMismatch)", the routes after ~2 s).
CONVERGENCE_S = 5


def converge(net, record_property) -> float:
    """Until r1's kernel routes HQ's third LAN into gre1 (from ospfd, through zebra) and r2's routes the branch's
    LAN back: the seconds since the daemons started (reported as the case's convergence_s), at most CONVERGENCE_S."""
    started = min(net.dut(name).daemons_started for name in ("r1", "r2"))
    for router, lan in (("r1", LAN3), ("r2", LAN1)):
        wait_until(net.dut(router), f"/sbin/ip route show {lan} proto ospf | grep -q 'dev gre1'",
                   timeout=max(0.0, CONVERGENCE_S - (time.monotonic() - started)),
                   what=f"OSPF route to {lan}", logs=["zebra", "ospfd"])
    took = time.monotonic() - started
    record_property("convergence_s", round(took, 2))
    print(f"OSPF converged in {took:.2f} s")
    return took


NEIGHBOURS = {"ospfd": "show ip ospf neighbor", "ospf6d": "show ipv6 ospf6 neighbor"}


def full(dut, *daemons: str) -> None:
    """Until each FRR daemon (ospfd, ospf6d) in `dut` has a Full adjacency."""
    for daemon in daemons:
        wait_until(dut, vtysh(dut, daemon, NEIGHBOURS[daemon]) + " | grep -q Full", timeout=CONVERGENCE_S,
                   what=f"{daemon} adjacency Full", logs=[daemon])


def heard(dut, daemon: str, router_id: str) -> None:
    """Until the FRR daemon (ospfd, ospf6d) in `dut` lists the router as a neighbour, in any state: it heard a Hello."""
    wait_until(dut, vtysh(dut, daemon, NEIGHBOURS[daemon]) + f" | grep -qF {router_id}", timeout=CONVERGENCE_S,
               what=f"{daemon} hearing {router_id}", logs=[daemon])


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
        peeled = peel(frame, net.sas)
        passenger = peeled.passenger
        assert passenger is not None, f"a packet between the offices outside the tunnel: {peeled}"
        if isinstance(passenger, IP) and passenger.proto == OSPF or isinstance(passenger, IPv6) and passenger.nh == OSPF:
            found.add(passenger.dst)
    return found


def ospf_on_transit(net) -> set[tuple[str, bool]]:
    """(destination, inside a tunnel) of each OSPF packet on the transit: in the clear, or inside GRE or ESP (of
    the case's SAs; in tunnel mode without GRE, the packet it carries)."""
    from scapy.layers.inet import IP
    from scapy.layers.ipsec import ESP
    from scapy.layers.inet6 import IPv6
    from grelab.craft import esp
    from grelab.craft.dissect import frame as dissect_frame
    from grelab.craft.peel import peel
    from grelab.expect.match import is_noise
    by_spi, found = {sa.spi: sa for sa in net.sas}, set()
    for _, frame in net.golden.frames("transit"):
        if is_noise(frame):
            continue
        packet, peeled = dissect_frame(frame).payload, peel(frame, net.sas)
        if peeled.gre is not None:
            packet = peeled.passenger
        elif ESP in packet:
            packet = esp.decrypt(by_spi[packet[ESP].spi], packet.copy())
        if isinstance(packet, IP) and packet.proto == OSPF or isinstance(packet, IPv6) and packet.nh == OSPF:
            found.add((packet.dst, peeled.gre is not None or peeled.esp_spi is not None))
    return found


# In the GRE telling r1's first Hello is answered at once (database descriptions, a request and an update follow
# within milliseconds) and the routes are in r1's kernel before its second Hello, 100 ms later (measured). So r1
# putting HELLOS_SHOWN Hellos on the transit, no route to lan3 all the while, is several times what GRE needed.
HELLOS_SHOWN = 4


def no_ospf_while_hellos_cross(net) -> int:
    """Until r1's ospfd has put HELLOS_SHOWN Hellos on the transit (in the clear: to 224.0.0.5 from its WAN
    address), r1's kernel never holds an OSPF route to lan3 (checked every 50 ms); the Hellos that crossed. Fails
    when a route appears, or when the Hellos do not come within CONVERGENCE_S of the daemons' start."""
    r1 = net.dut("r1")
    deadline = min(net.dut(name).daemons_started for name in ("r1", "r2")) + CONVERGENCE_S
    crossed = [0]

    def enough() -> bool:
        crossed[0] = r1_hellos_on_transit(net)
        if crossed[0] < HELLOS_SHOWN and time.monotonic() > deadline:
            raise AssertionError(f"r1's ospfd put {crossed[0]} Hellos on the transit within {CONVERGENCE_S} s of "
                                 f"its start, not {HELLOS_SHOWN}:\n{daemon_log(r1, 'ospfd')}")
        return crossed[0] >= HELLOS_SHOWN
    holds_until(r1, f"! /sbin/ip route show {LAN3} proto ospf | grep -q .", enough, what="no OSPF route to lan3",
                interval=0.05, logs=["ospfd"])
    return crossed[0]


def r1_hellos_on_transit(net) -> int:
    """How many OSPF Hellos (type 1) from r1's WAN address the transit carried in the clear."""
    from scapy.layers.inet import IP
    from grelab.craft.dissect import frame as dissect_frame
    count = 0
    for _, frame in net.golden.frames("transit"):
        packet = dissect_frame(frame).payload
        if isinstance(packet, IP) and packet.proto == OSPF and packet.src == R1_WAN and bytes(packet.payload)[1:2] == b"\x01":
            count += 1
    return count


def ospf_hellos(dut, interface: str) -> tuple[int, int]:
    """(Hellos received, Hellos sent) on `interface`, as FRR's ospfd in `dut` counted them."""
    text = dut.check(vtysh(dut, "ospfd", f"show ip ospf interface traffic {interface} json"))
    counts = json.loads(text)[interface]
    return counts["helloIn"], counts["helloOut"]
