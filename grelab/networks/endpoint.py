"""grelab as the far end of a tunnel, as data: grelab --transit-- r1 --lan1-- h1.

There is no second router: grelab's own namespace plays the remote office and crafts what a GRE peer sends.
Its kernel has no GRE or ESP and would answer every tunnel packet addressed to it with ICMP
protocol-unreachable, so an nftables rule drops them there; grelab reads them from its capture instead.

h1's LAN is IPv6 and IPv4 (2001:db8:1::/64, 192.0.2.0/24); the far LAN behind grelab is 2001:db8:2::/64 and
203.0.113.0/24, both routed into r1's tunnel gre1. With `tap=True`, r1 also has a gretap tunnel tap1 to grelab
(Ethernet in GRE, 0x6558) holding 198.18.0.1/24, so grelab can speak Ethernet (ARP) to r1 through it.

    net.send("grelab", to_r1(IPv6(...) / ICMPv6EchoRequest(...), key=7))   # IP/GRE from grelab to r1
    net.transit.expect(from_r1(IPv6(...) / ICMPv6EchoReply(...), key=7), ignore=IGNORE)
"""
from __future__ import annotations

from grelab.craft.esp import SA
from grelab.dut.plan import Plan, Tunnel
from grelab.dut.tunnel import esp_transport, gre_tunnel
from grelab.lab.topology import End, Link, Node, Route, Topology
from grelab.scenario.spec import PLAIN_GRE, Comment, Scenario, Variant

GRELAB, R1_WAN, H1, FAR_LAN_HOST = "198.51.100.2", "198.51.100.1", "2001:db8:1::10", "2001:db8:2::10"
GRELAB_MAC, R1_WAN_MAC = "02:00:00:00:0a:02", "02:00:00:00:0a:01"
R1_LAN_MAC, H1_MAC = "02:00:00:00:01:01", "02:00:00:00:01:10"
FAR_LAN = "2001:db8:2::/64"
H1_V4, R1_LAN_V4, FAR_LAN_V4, FAR_LAN_HOST_V4 = "192.0.2.10", "192.0.2.1", "203.0.113.0/24", "203.0.113.10"
R1_TAP, GRELAB_TAP, R1_TAP_MAC, GRELAB_TAP_MAC = "198.18.0.1", "198.18.0.2", "02:00:00:00:0c:01", "02:00:00:00:0c:02"
GRELAB6, R1_WAN6, R1_TAP6, GRELAB_TAP6 = "2001:db8:ff::2", "2001:db8:ff::1", "2001:db8:ff1::1", "2001:db8:ff1::2"
IGNORE = ("IP.id", "IP.chksum")  # what the kernel may choose in r1's answers (every IPv4 header's)
TO_R1 = SA(0x00003001, "cbc128-sha256", bytes(range(33, 49)), bytes(range(49, 81)), src=GRELAB, dst=R1_WAN)
FROM_R1 = SA(0x00004001, "cbc128-sha256", bytes(range(81, 97)), bytes(range(97, 129)), src=R1_WAN, dst=GRELAB)
IN_ESP = Variant("gre-in-esp", esp="cbc128-sha256", sas=(TO_R1, FROM_R1))
# The transit: the tunnel, and ICMP errors about it (grelab's own kernel sends none: see NFT_DROP_TUNNELS).
LINKS = {"transit": ("grelab", "eth0", "ip proto 47 or ip proto 50 or icmp"), "lan1": ("h1", "eth0")}
LINKS6 = {"transit": ("grelab", "eth0", "ip6"), "lan1": ("h1", "eth0")}  # over IPv6 (topology(transport="ipv6"))

# For a node where grelab itself ends tunnels (see above).
NFT_DROP_TUNNELS = """
table inet grelab_endpoint {
    chain input {
        type filter hook input priority 0; policy accept;
        meta l4proto { gre, esp } drop
    }
}
"""

FROM_R1_COMMENT = Comment("r1's GRE to grelab, carrying what h1 sent or answered", "transit",
                          match=lambda frame: frame[6:12] == bytes.fromhex(R1_WAN_MAC.replace(":", "")))
COMMENTS = (
    Comment("crafted by grelab, the far GRE endpoint", "transit", sent_by="grelab"),
    Comment("r1's ICMP error about a packet grelab sent it, quoted whole", "transit",
            match=lambda frame: frame[12:14] == b"\x08\x00" and frame[23] == 1),
    Comment("r1's answer back in the tunnel (h1's reply, or r1's own), checked field by field", "transit"),
    Comment("delivered by r1 out of the tunnel to h1, and h1's reply", "lan1"),
)


def topology(r1, transport: str = "ipv4", also: tuple[str, ...] = ()) -> Topology:
    """transport "ipv6": the transit link has GRELAB6 and R1_WAN6 instead of the IPv4 addresses (ip6gre). also:
    more addresses of grelab's on the transit (more far endpoints, e.g. two spokes)."""
    grelab, wan = (GRELAB, R1_WAN) if transport == "ipv4" else (GRELAB6, R1_WAN6)
    prefix = 24 if transport == "ipv4" else 64
    return Topology(
        nodes=[Node("grelab", nft=NFT_DROP_TUNNELS),
               Node("r1", forwarding=True, dut=r1),
               Node("h1", routes=[Route("default6", via="2001:db8:1::1"), Route("default", via=R1_LAN_V4)],
                    sysctls={"net.ipv6.auto_flowlabels": "0"})],
        links=[Link(End("grelab", "eth0", [f"{grelab}/{prefix}", *(f"{a}/{prefix}" for a in also)], GRELAB_MAC), End("r1", "wan", [f"{wan}/{prefix}"], R1_WAN_MAC)),
               Link(End("r1", "lan", ["2001:db8:1::1/64", f"{R1_LAN_V4}/24"], R1_LAN_MAC),
                    End("h1", "eth0", [f"{H1}/64", f"{H1_V4}/24"], H1_MAC))])


def tunnel(**tunnel_options) -> Plan:
    """r1's GRE tunnel gre1 to grelab with these options (any Tunnel field), both far LANs routed into it."""
    return gre_tunnel("gre1", R1_WAN, GRELAB, routes=(FAR_LAN, FAR_LAN_V4), **tunnel_options)


def gretap(**tunnel_options) -> Plan:
    """r1's gretap tunnel tap1 to grelab (Ethernet in GRE), holding R1_TAP/24 with MAC R1_TAP_MAC.

    An Ethernet device born on a router (IPv6 forwarding on) joins all-routers ff02::2 and reports it in MLDv2,
    again at a random moment within a second: inside ESP that report takes a sequence number the case's own
    packets would have had. Devices made after this plan's sysctls are IPv6 hosts (forwarding is decided by
    conf/all, not per device), so the tunnel stays silent."""
    return Plan(sysctls={"net.ipv6.conf.default.forwarding": "0"}, tunnels=(Tunnel("tap1", R1_WAN, GRELAB, kind="gretap", mac=R1_TAP_MAC, addresses=(f"{R1_TAP}/24",),
                                **tunnel_options),))


def connect(variant: Variant, sas, tap: bool = False, **tunnel_options) -> dict[str, Plan]:
    """r1: a GRE tunnel to grelab, the far LANs routed into it (and with tap, the gretap tunnel too); in an ESP
    variant, ESP required for GRE between them."""
    plan = tunnel(**tunnel_options) + (gretap() if tap else Plan())
    if variant.esp:
        to_r1, from_r1 = sas(GRELAB, R1_WAN)
        plan += esp_transport(from_r1, to_r1)
    return {"r1": plan}


def grelab_endpoint(name: str = "grelab_endpoint", variants=(PLAIN_GRE, IN_ESP), **changes) -> Scenario:
    fields = dict(topology=topology, duts=("r1",), links=LINKS, hosts={"h1": H1}, comments=COMMENTS,
                  tunnels=connect, variants=tuple(variants))
    return Scenario(name, **{**fields, **changes})


def to_r1(passenger, ttl: int = 64, tos: int = 0, **gre_fields):
    """What grelab sends r1 through the tunnel: IPv4 from grelab to r1 / GRE (scapy GRE fields) / passenger."""
    from scapy.layers.inet import IP
    from scapy.layers.l2 import GRE as GREHeader
    return IP(src=GRELAB, dst=R1_WAN, ttl=ttl, tos=tos) / GREHeader(**gre_fields) / passenger


def from_r1(passenger, ttl: int = 64, flags: str = "DF", tos: int = 0, dst: str = GRELAB, **gre_fields):
    """What r1 sends grelab (at dst, one of its addresses) through the tunnel, as a frame on the transit: a template
    for net.transit.expect (with ignore=IGNORE)."""
    from scapy.layers.inet import IP
    from scapy.layers.l2 import GRE as GREHeader, Ether
    return (Ether(src=R1_WAN_MAC, dst=GRELAB_MAC) / IP(src=R1_WAN, dst=dst, ttl=ttl, flags=flags, tos=tos)
            / GREHeader(**gre_fields) / passenger)


def to_h1(passenger):
    """What r1 delivers to h1 out of the tunnel, as a frame on lan1: a template for net.link("lan1").expect."""
    from scapy.layers.l2 import Ether
    return Ether(src=R1_LAN_MAC, dst=H1_MAC) / passenger


def echo(seq: int = 7, data: bytes = b"from grelab"):
    """(the ICMPv6 echo request from the far LAN to h1 that grelab puts in the tunnel, h1's reply as r1 sends it
    back into the tunnel: hop limit one less)."""
    from scapy.layers.inet6 import ICMPv6EchoReply, ICMPv6EchoRequest, IPv6
    return (IPv6(src=FAR_LAN_HOST, dst=H1, hlim=64) / ICMPv6EchoRequest(id=0x4243, seq=seq, data=data),
            IPv6(src=H1, dst=FAR_LAN_HOST, hlim=63) / ICMPv6EchoReply(id=0x4243, seq=seq, data=data))


def unreachable(sent, code: int = 3):
    """r1's ICMP destination unreachable (code 3: port) about `sent`, a packet grelab sent it (from any of its
    addresses), quoted whole: what Linux answers GRE that no tunnel takes (ip_gre.c: gre_rcv). A template for
    net.transit.expect."""
    from scapy.layers.inet import ICMP, IP
    from scapy.layers.l2 import Ether
    return (Ether(src=R1_WAN_MAC, dst=GRELAB_MAC) / IP(src=R1_WAN, dst=sent[IP].src, ttl=64, tos=0xC0)
            / ICMP(type=3, code=code) / bytes(sent))


# GRE keepalives between grelab and r1 (scenarios/keepalives.py): grelab's keepalive n carries an IP packet from
# r1 back to grelab (IP id n, itself an empty GRE packet), which r1 routes back when it takes the keepalive.
def keepalive_to_r1(number: int):
    """grelab's keepalive number `number` (the inner packet's IP id), as r1 gets it."""
    from scapy.layers.l2 import GRE as GREHeader
    from grelab.craft import keepalive
    packet = keepalive(local=GRELAB, remote=R1_WAN)
    packet[GREHeader].payload.id = number
    return packet


def keepalive_back(number: int):
    """Keepalive `number` as r1 routes it back to grelab: the inner packet, TTL one less (a frame on the transit)."""
    from scapy.layers.inet import IP
    from scapy.layers.l2 import GRE as GREHeader, Ether
    return Ether(src=R1_WAN_MAC, dst=GRELAB_MAC) / IP(src=R1_WAN, dst=GRELAB, id=number, ttl=63) / GREHeader(proto=0)


def keepalive_number(frame: bytes) -> int | None:
    """The number of the keepalive this transit frame brings back from r1 (IPv4 from r1, GRE of protocol type 0
    without options), or None."""
    r1 = bytes(map(int, R1_WAN.split(".")))
    if frame[12:14] == b"\x08\x00" and frame[23] == 47 and frame[26:30] == r1 and frame[34:38] == bytes(4):
        return int.from_bytes(frame[18:20], "big")
    return None


def keepalive_monitor(net, tx, interval: float, misses: int):
    """grelab.networks.monitor's KeepaliveMonitor for r1: grelab's keepalives sent with `tx` (a Sender on grelab's
    eth0), their return watched on the transit's capture."""
    from scapy.layers.l2 import Ether
    from grelab.networks.monitor import KeepaliveMonitor
    frame = lambda n: bytes(Ether(src=GRELAB_MAC, dst=R1_WAN_MAC) / keepalive_to_r1(n))  # noqa: E731
    return KeepaliveMonitor(tx.send, net.transit.capture, frame, keepalive_number, interval, misses)


KEEPALIVE_COMMENTS = (
    Comment("grelab's keepalive: GRE to r1 carrying a packet from r1 back to grelab (its IP id numbers it)", "transit",
            sent_by="grelab", match=lambda f: f[36:38] == b"\x08\x00" and f[60:62] == b"\0\0"),
    Comment("the keepalive come back: r1 took it out of gre1 and routed it to grelab, TTL one less", "transit",
            match=lambda f: keepalive_number(f) is not None)) + COMMENTS
