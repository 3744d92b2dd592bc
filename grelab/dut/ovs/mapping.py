"""A Plan as Open vSwitch configuration: pure data, unit-tested without OVS (grelab.dut.ovs.switch applies it).

The OVS DUT splits a router the way OpenStack's br-tun does. The namespace's own kernel is the router's host side:
the LAN addresses, routes, neighbour discovery, forwarding, TTL, ICMP errors, sysctls and filters of the plan. OVS
(userspace datapath) is the tunnel: each DUT interface is an OVS bridge of its own name (its local port is the
kernel's interface, the lab's veth its port: `ports`), and each plan tunnel is an internal port of that name on
the tunnel bridge, beside a GRE port (`type=gre`) that OVS's native tunnelling encapsulates into and decapsulates
out of; two OpenFlow rules join them. An L3 passenger (gre, ip6gre) leaves the kernel in an Ethernet frame that OVS
strips when it outputs to a `packet_type=legacy_l3` port, and comes back with the internal port's MAC as both
addresses (the internal port is NOARP, so the kernel addresses its frames to its own MAC); an Ethernet passenger
(gretap, ip6gretap) crosses as it is.

What OVS has no equivalent for is NotApplicable, named by the capability OVS lacks: xfrm (ESP), the kernel's
receive-side GRE rules (iseq drops an unnumbered or out-of-order packet, icsum one without a checksum: OVS numbers
and checksums what it sends, verifies a checksum that is there and ignores sequence numbers), ignore-df, a fixed
encapsulation limit, a tunnel bound to a device.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from grelab.dut.base import NotApplicable
from grelab.dut.plan import Interface, Plan, Tunnel

TUNNEL_BRIDGE = "br-gre"  # every tunnel's internal port and GRE port; made by an apply, emptied by a reset
CAPABILITIES = frozenset({"gre", "ipv6_transport", "several"})
L3_MAC_PREFIX = "02:6f:76:73"  # "ovs": the MACs of L3 tunnels' internal ports, never on any wire

# One row per plan tunnel kind: OVS's port type and packet_type (None: OVS's default, legacy_l2, Ethernet in GRE).
KINDS = {
    "gre": ("gre", "legacy_l3"),
    "ip6gre": ("gre", "legacy_l3"),
    "gretap": ("gre", None),
    "ip6gretap": ("ip6gre", None),
}

# One row per GRE option of a plan Tunnel: the OVS interface option it becomes (as key=value words), or the
# capability OVS lacks when it is set. A value of None or False is the kernel's default and needs nothing.
OPTIONS = {
    "key": lambda v: [f"key={v}"],
    "ikey": lambda v: [f"in_key={v}"],
    "okey": lambda v: [f"out_key={v}"],
    "seq": "gre_iseq",            # seq is iseq + oseq: OVS ignores received sequence numbers
    "iseq": "gre_iseq",
    "oseq": lambda v: ["seq=true"],  # netdev-native-tnl.c numbers each packet it sends
    "csum": "gre_icsum",          # csum is icsum + ocsum: OVS never requires a received checksum
    "icsum": "gre_icsum",
    "ocsum": lambda v: ["csum=true"],
    "ttl": lambda v: [f"ttl={v}"],  # a number or "inherit"
    "tos": lambda v: [f"tos={v}"],
    "pmtudisc": lambda v: [f"df_default={'true' if v else 'false'}"],
    "ignore_df": "gre_ignore_df",
    "dev": "gre_dev",
}


@dataclass(frozen=True)
class OvsPlan:
    """What one apply does: `vsctl` (ovs-vsctl commands, each a list of words, run as one transaction), `flows`
    (OpenFlow rules for the tunnel bridge, one `ovs-ofctl add-flows` from stdin), `kernel` (the Plan the namespace's
    kernel applies, tunnels become their internal ports), `next_hops` (tunnel remotes whose underlay next hop the
    kernel resolves, so OVS's neighbour cache knows it before the first packet: a miss drops that packet)."""

    vsctl: tuple[tuple[str, ...], ...]
    flows: tuple[str, ...]
    kernel: Plan
    kernel_first: tuple[str, ...]  # shell lines for the internal ports, still down, before the kernel plan
    next_hops: tuple[str, ...]


def phys_port(iface: str) -> str:
    """The lab's veth as a port of the interface's bridge: `wan` is the kernel's side (the bridge's local port)."""
    return f"{iface[:13]}-p"


def gre_port(tunnel: str, generation: int = 0) -> str:
    """The OVS GRE port of a tunnel: an OVS name only (userspace tunnels are no kernel devices). A new name each
    apply (generation): OVS keeps a deleted port's netdev, and with it the GRE sequence number it reached, while
    references to it remain, and hands it to a port of the same name made meanwhile."""
    return f"{tunnel}-gre{generation}"


GRE_PORT = re.compile(r"^(?P<tunnel>.+)-gre\d+$")


def plug_commands(iface: str) -> list[tuple[str, ...]]:
    """ovs-vsctl commands making `iface` a netdev bridge with the lab's veth (renamed phys_port) as its port."""
    port = phys_port(iface)
    return [("--may-exist", "add-br", iface), ("set", "bridge", iface, "datapath_type=netdev"),
            ("--if-exists", "del-port", port), ("add-port", iface, port)]


def quiet_ruleset(iface: str) -> str:
    """nft: the namespace's kernel drops every frame the veth brings before its stack sees it (an nft netdev
    ingress hook). OVS reads the veth through a packet socket, which sees frames before that hook; without it
    the kernel would answer GRE with "protocol 47 unreachable" and ARP for its addresses a second time."""
    port, table = phys_port(iface), f"grelab_quiet_{iface}".replace("-", "_").replace(".", "_")
    return (f"add table netdev {table}\ndelete table netdev {table}\n"
            f"table netdev {table} {{\n  chain drop_all {{\n"
            f"    type filter hook ingress device \"{port}\" priority 0; policy drop;\n  }}\n}}\n")


def mld_ruleset(ports: list[str]) -> str:
    """nft: the kernel sends no MLD message out of these internal ports (as out of a kernel gre device, which has no
    IFF_MULTICAST), dropped at the output hook, before the tap counts them."""
    names = ", ".join(f'"{p}"' for p in ports)
    return ("table ip6 grelab_ovs_mld {\n  chain output {\n    type filter hook output priority -300; policy accept;\n"
            f"    oifname {{ {names} }} icmpv6 type {{ mld-listener-report, mld-listener-done, mld2-listener-report }} drop\n"
            "  }\n}\n")


def l3_mac(index: int) -> str:
    return f"{L3_MAC_PREFIX}:{index >> 8 & 0xFF:02x}:{index & 0xFF:02x}"


def not_applicable(dut: str, plan: Plan) -> None:
    """Raise NotApplicable for the first plan item OVS has no equivalent for."""
    if plan.states or plan.policies:
        item = plan.states[0] if plan.states else plan.policies[0]
        raise NotApplicable(dut, "esp", repr(item))
    if plan.udp_encap_ports:
        raise NotApplicable(dut, "esp", f"udp_encap_ports={plan.udp_encap_ports}")
    for tunnel in plan.tunnels:
        for name, row in OPTIONS.items():
            if isinstance(row, str) and is_set(name, getattr(tunnel, name)):
                raise NotApplicable(dut, row, f"Tunnel {tunnel.name} {name}={getattr(tunnel, name)!r}")
        if tunnel.encaplimit not in (None, "none"):  # OVS puts no encapsulation limit option in: "none" is OVS
            raise NotApplicable(dut, "ip6gre_encaplimit", f"Tunnel {tunnel.name} encaplimit={tunnel.encaplimit!r}")


def overhead(tunnel: Tunnel) -> int:
    """Bytes OVS puts before the passenger: outer IP header, GRE header with its optional words, and the
    passenger's Ethernet header for gretap (no encapsulation limit option: OVS has none)."""
    outer = 40 if tunnel.kind.startswith("ip6") else 20
    words = sum(1 for on in (tunnel.key is not None or tunnel.okey is not None, tunnel.oseq, tunnel.ocsum) if on)
    return outer + 4 + 4 * words + (14 if tunnel.kind.endswith("tap") else 0)


def is_set(option: str, value) -> bool:
    """Whether a Tunnel option asks for something: None is the kernel's default, and so is False for a flag (seq,
    csum, ignore_df, ...), but pmtudisc=False is nopmtudisc."""
    return value is not None and (value is not False or option == "pmtudisc")


def tunnel_options(tunnel: Tunnel) -> list[str]:
    """The GRE port's `options:` (key=value), from the OPTIONS table."""
    options = [f"remote_ip={tunnel.remote}", f"local_ip={tunnel.local}"]
    for name, row in OPTIONS.items():
        value = getattr(tunnel, name)
        if callable(row) and is_set(name, value):
            options += row(value)
    packet_type = KINDS[tunnel.kind][1]
    return options + ([f"packet_type={packet_type}"] if packet_type else [])


def underlay_mtu(plan: Plan, tunnel: Tunnel) -> int:
    """The MTU of the plan interface holding the tunnel's local address (1500 when the plan does not say)."""
    for interface in plan.interfaces:
        if any(a.split("/")[0] == tunnel.local for a in interface.addresses) and interface.mtu:
            return interface.mtu
    return 1500


def ovs_plan(dut: str, plan: Plan, generation: int = 0) -> OvsPlan:
    """The plan as OVS commands, flows and the kernel's share; NotApplicable for what OVS cannot hold."""
    not_applicable(dut, plan)
    # The transaction always changes something (the generation), so ovs-vsctl waits for ovs-vswitchd to have made it,
    # and what plugs asked for without waiting too.
    vsctl: list[tuple[str, ...]] = [("set", "Open_vSwitch", ".", f"external_ids:grelab-generation={generation}")]
    vsctl += [("set", "bridge", i.name, f"other_config:hwaddr=\"{i.mac}\"") for i in plan.interfaces if i.mac]
    flows: list[str] = []
    internal: list[Interface] = []
    first: list[str] = []
    quiet: list[str] = []
    if plan.tunnels:
        vsctl += [("--may-exist", "add-br", TUNNEL_BRIDGE),
                  ("set", "bridge", TUNNEL_BRIDGE, "datapath_type=netdev", "fail_mode=secure")]
    for index, tunnel in enumerate(plan.tunnels):
        port_type, packet_type = KINDS[tunnel.kind]
        mac = tunnel.mac or l3_mac(generation << 8 | index)
        mtu = tunnel.mtu or underlay_mtu(plan, tunnel) - overhead(tunnel)
        gre = gre_port(tunnel.name, generation)
        vsctl += [("add-port", TUNNEL_BRIDGE, tunnel.name),
                  ("set", "interface", tunnel.name, "type=internal", f"mac=\"{mac}\"", f"mtu_request={mtu}"),
                  ("add-port", TUNNEL_BRIDGE, gre),
                  ("set", "interface", gre, f"type={port_type}", *(f"options:{o}" for o in tunnel_options(tunnel)))]
        flows.append(f"in_port={tunnel.name},actions=output:{gre}")
        if packet_type == "legacy_l3":  # OVS strips the kernel's Ethernet header on output to the GRE port
            flows.append(f"in_port={gre},actions=mod_dl_src:{mac},mod_dl_dst:{mac},output:{tunnel.name}")
            # As the kernel's gre device: NOARP (frames to its own MAC: no ARP, no ND) and no IFF_MULTICAST, so no
            # MLD report of ff02::2 into the tunnel (it would take a sequence number and count as a packet). The tap
            # joined ff02::2 when it was made if forwarding was on; forwarding off leaves it (the tap still down:
            # nothing sent), and back on joins nothing once IFF_MULTICAST is off.
            forwarding = f"/proc/sys/net/ipv6/conf/{tunnel.name}/forwarding"
            first += [f"echo 0 > {forwarding}", f"ip link set dev {tunnel.name} arp off multicast off",
                      f"cat /proc/sys/net/ipv6/conf/all/forwarding > {forwarding}"]
            quiet.append(tunnel.name)
        else:
            flows.append(f"in_port={gre},actions=output:{tunnel.name}")
        if not tunnel.link_local:  # as the kernel's tunnels (grelab.dut.iproute2): no ND or MLD in the tunnel
            first.append(f"ip link set dev {tunnel.name} addrgenmode none")
        internal.append(Interface(tunnel.name, None, mtu, tunnel.addresses))
    kernel = Plan(interfaces=tuple(plan.interfaces) + tuple(internal), routes=plan.routes, rules=plan.rules,
                  neighbours=plan.neighbours, sysctls=plan.sysctls, filters=plan.filters, daemons=plan.daemons)
    if quiet:  # what is left: a tap's MLD reports (the kernel's own, never a passenger's), kept out of the tunnel
        first.insert(0, f"nft -f - <<'GRELAB_EOF' || echo '@@ovs-failed nft {TUNNEL_BRIDGE}'\n{mld_ruleset(quiet)}GRELAB_EOF")
    return OvsPlan(tuple(vsctl), tuple(flows), kernel, tuple(first), tuple(dict.fromkeys(t.remote for t in plan.tunnels)))
