"""What a DUT should hold, as data: interfaces, tunnels, routes, rules, sysctls, xfrm states and policies, filters.

A Plan is pure (no I/O): build it, add plans together (`lab_plan + tunnel_plan`), look at it in a REPL, and
hand it to `dut.apply(plan)`, which makes it so in one round trip. How a backend does that is its own
business: the Linux DUTs render a plan to iproute2 batch text (grelab.dut.iproute2), a DUT of yours may
speak NETCONF or write a daemon's configuration. Values are checked here, when the plan is made, so a
typo fails with the field's name and the allowed values instead of an error from inside the DUT.
"""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, fields
from typing import Union

from grelab.craft.esp import SA, check_can_encrypt
from grelab.dut.daemon import Daemon
from grelab.dut.values import address, family, interface_name, network, number_or_inherit
from grelab.errors import InputError, check_choice, check_range

MAC_RE = re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}")
Inherit = Union[int, str]  # a number, or "inherit" (take it from the passenger)


@dataclass(frozen=True)
class Interface:
    """One of the DUT's own interfaces (as the lab plugged it): its MAC, MTU and addresses."""

    name: str
    mac: str | None = None
    mtu: int | None = None
    addresses: tuple[str, ...] = ()

    def __post_init__(self):
        interface_name("interface name", self.name)
        if self.mac is not None and not (isinstance(self.mac, str) and MAC_RE.fullmatch(self.mac.lower())):
            raise InputError(f"{self.name} mac", self.mac, "six hex bytes joined by ':', e.g. 02:00:00:00:01:01")
        if self.mtu is not None:
            check_range(f"{self.name} mtu", self.mtu, 68, 65535)
        object.__setattr__(self, "addresses", tuple(address(f"{self.name} address", a, True) for a in self.addresses))


TUNNEL_KINDS = ("gre", "ip6gre", "gretap", "ip6gretap")


@dataclass(frozen=True)
class Tunnel:
    """A GRE tunnel device with every option the kernel has (ip-link(8), "type gre").

    key/seq/csum set both directions; ikey/okey, iseq/oseq, icsum/ocsum one each. ttl and tos take a number
    or "inherit"; pmtudisc False is nopmtudisc; encaplimit (ip6gre, ip6gretap) a number or "none".
    The device gets no IPv6 link-local address (addrgenmode none) unless link_local: that keeps neighbour
    discovery and MLD out of the tunnel, so the transit holds exactly the traffic under test."""

    name: str
    local: str
    remote: str
    kind: str | None = None  # None: gre or ip6gre, by the address family of local
    key: int | None = None
    ikey: int | None = None
    okey: int | None = None
    seq: bool = False
    iseq: bool = False
    oseq: bool = False
    csum: bool = False
    icsum: bool = False
    ocsum: bool = False
    ttl: Inherit | None = 64
    tos: Inherit | None = None
    pmtudisc: bool | None = None
    ignore_df: bool | None = None
    encaplimit: int | str | None = None
    dev: str | None = None
    mtu: int | None = None
    mac: str | None = None  # gretap / ip6gretap only
    addresses: tuple[str, ...] = ()
    link_local: bool = False

    def __post_init__(self):
        interface_name("tunnel name", self.name)
        local, remote = address(f"{self.name} local", self.local), address(f"{self.name} remote", self.remote)
        object.__setattr__(self, "local", local)
        object.__setattr__(self, "remote", remote)
        if ipaddress.ip_address(local).version != ipaddress.ip_address(remote).version:
            raise InputError(f"{self.name} remote", remote, f"an address of the same family as local {local}")
        six = ipaddress.ip_address(local).version == 6
        kind = self.kind or ("ip6gre" if six else "gre")
        check_choice(f"{self.name} kind", kind, TUNNEL_KINDS)
        if kind.startswith("ip6") != six:
            raise InputError(f"{self.name} kind", kind, "ip6gre/ip6gretap for IPv6 endpoints, gre/gretap for IPv4")
        object.__setattr__(self, "kind", kind)
        for name in ("key", "ikey", "okey"):
            if getattr(self, name) is not None:
                check_range(f"{self.name} {name}", getattr(self, name), 0, 0xFFFFFFFF)
        object.__setattr__(self, "ttl", number_or_inherit(f"{self.name} ttl", self.ttl, 255))
        object.__setattr__(self, "tos", number_or_inherit(f"{self.name} tos", self.tos, 255))
        if self.encaplimit is not None:
            if not six:
                raise InputError(f"{self.name} encaplimit", self.encaplimit, "None on an IPv4 tunnel (ip6gre only)")
            if self.encaplimit != "none":
                check_range(f"{self.name} encaplimit", self.encaplimit, 0, 255)
        if six and (self.pmtudisc is not None or self.ignore_df is not None):
            raise InputError(f"{self.name} pmtudisc/ignore_df", (self.pmtudisc, self.ignore_df),
                             "None on an ip6gre tunnel (the kernel has them for IPv4 GRE only)")
        if self.mac is not None and not kind.endswith("tap"):
            raise InputError(f"{self.name} mac", self.mac, "None: only gretap/ip6gretap carry Ethernet")
        if self.mtu is not None:
            check_range(f"{self.name} mtu", self.mtu, 68, 65535)
        if self.dev is not None:
            interface_name(f"{self.name} dev", self.dev)
        object.__setattr__(self, "addresses", tuple(address(f"{self.name} address", a, True) for a in self.addresses))


@dataclass(frozen=True)
class Neighbour:
    """A static neighbour entry (ip-neighbour(8), nud permanent): `address` on `dev` is at `mac`. What a gretap
    peer needs when the far end answers no ARP or neighbour solicitation. The DUT's reset removes it with its
    device (a tunnel); on the DUT's own interfaces the interface going down and up does."""

    address: str
    mac: str
    dev: str

    def __post_init__(self):
        object.__setattr__(self, "address", address("neighbour address", self.address))
        if not (isinstance(self.mac, str) and MAC_RE.fullmatch(self.mac.lower())):
            raise InputError("neighbour mac", self.mac, "six hex bytes joined by ':', e.g. 02:00:00:00:01:01")
        interface_name("neighbour dev", self.dev)


ROUTE_TYPES = ("unicast", "unreachable", "blackhole", "prohibit")


@dataclass(frozen=True)
class Route:
    """dst: a prefix, "default" (IPv4) or "default6"; table: a number or main/local/default."""

    dst: str
    via: str | None = None
    dev: str | None = None
    table: int | str | None = None
    type: str = "unicast"
    metric: int | None = None
    mtu: int | None = None
    src: str | None = None

    def __post_init__(self):
        object.__setattr__(self, "dst", network("route dst", self.dst))
        if self.via is not None:
            object.__setattr__(self, "via", address("route via", self.via))
        if self.src is not None:
            object.__setattr__(self, "src", address("route src", self.src))
        if self.dev is not None:
            interface_name("route dev", self.dev)
        check_choice("route type", self.type, ROUTE_TYPES)
        if self.type == "unicast" and self.via is None and self.dev is None:
            raise InputError(f"route {self.dst}", "neither via nor dev", "a gateway (via), a device (dev), or both")
        _table("route table", self.table)
        for name, high in (("metric", 0xFFFFFFFF), ("mtu", 65535)):
            if getattr(self, name) is not None:
                check_range(f"route {name}", getattr(self, name), 0, high)

    @property
    def family(self) -> int:
        return family(self.dst)


def _table(field_name: str, value) -> None:
    if value is not None and value not in ("main", "local", "default"):
        check_range(field_name, value, 1, 0xFFFFFFFF)


@dataclass(frozen=True)
class Rule:
    """A policy routing rule (ip-rule(8)): packets matching src/dst/fwmark/iif/oif look up `table`."""

    table: int | str
    priority: int | None = None
    src: str | None = None
    dst: str | None = None
    fwmark: int | None = None
    iif: str | None = None
    oif: str | None = None
    family: int = 4

    def __post_init__(self):
        _table("rule table", self.table)
        if self.table is None:
            raise InputError("rule table", None, "a table number or main/local/default")
        for name in ("src", "dst"):
            if getattr(self, name) is not None:
                value = network(f"rule {name}", getattr(self, name))
                object.__setattr__(self, name, value)
                object.__setattr__(self, "family", family(value))
        check_choice("rule family", self.family, (4, 6))
        if self.priority is not None:
            check_range("rule priority", self.priority, 0, 32765)  # 32766/32767 are the main/default rules
        if self.fwmark is not None:
            check_range("rule fwmark", self.fwmark, 0, 0xFFFFFFFF)
        for name in ("iif", "oif"):
            if getattr(self, name) is not None:
                interface_name(f"rule {name}", getattr(self, name))


def _mark(field_name: str, mark) -> tuple[int, int] | None:
    if mark is None:
        return None
    value, mask = (mark, 0xFFFFFFFF) if isinstance(mark, int) else tuple(mark)
    return check_range(f"{field_name} mark", value, 0, 0xFFFFFFFF), check_range(f"{field_name} mask", mask, 0, 0xFFFFFFFF)


@dataclass(frozen=True)
class XfrmState:
    """An SA in the DUT: the same grelab SA that crafts and decrypts on grelab's side, so keys never disagree.

    NAT traversal comes from sa.nat_t; ESN from sa.esn, the state starting at high-order bits seq_hi.
    Lifetimes: the SA expires (hard) after that many bytes or packets."""

    sa: SA
    replay_window: int = 32
    seq_hi: int = 0
    mark: int | tuple[int, int] | None = None
    reqid: int | None = None
    byte_limit: int | None = None
    packet_limit: int | None = None

    def __post_init__(self):
        if not isinstance(self.sa, SA):
            raise InputError("xfrm state sa", self.sa, "a grelab.craft.esp.SA")
        check_can_encrypt(self.sa)  # a kernel needs a mode and an ICV it can make: refused here, not by the DUT
        check_range("replay_window", self.replay_window, 1 if self.sa.esn else 0, 4096)  # ESN needs a window
        check_range("xfrm state seq_hi", self.seq_hi, 0, 0xFFFFFFFF)
        object.__setattr__(self, "mark", _mark("xfrm state", self.mark))
        for name in ("reqid", "byte_limit", "packet_limit"):
            if getattr(self, name) is not None:
                check_range(f"xfrm state {name}", getattr(self, name), 0, 2**64 - 1)


@dataclass(frozen=True)
class XfrmPolicy:
    """Traffic from src to dst (of proto) in direction dir must be protected by ESP with the template's
    endpoints and mode (action allow), or is refused (action block)."""

    src: str
    dst: str
    dir: str
    tmpl_src: str | None = None
    tmpl_dst: str | None = None
    proto: str | int | None = None
    mode: str = "transport"
    action: str = "allow"
    priority: int | None = None
    mark: int | tuple[int, int] | None = None
    reqid: int | None = None
    level: str = "required"

    def __post_init__(self):
        object.__setattr__(self, "src", network("policy src", self.src))
        object.__setattr__(self, "dst", network("policy dst", self.dst))
        check_choice("policy dir", self.dir, ("in", "out", "fwd"))
        check_choice("policy mode", self.mode, ("transport", "tunnel"))
        check_choice("policy action", self.action, ("allow", "block"))
        check_choice("policy level", self.level, ("required", "use"))
        for name in ("tmpl_src", "tmpl_dst"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, address(f"policy {name}", getattr(self, name)))
        if self.proto is not None and not isinstance(self.proto, int):
            check_choice("policy proto", self.proto, PROTOCOLS)
        elif self.proto is not None:
            check_range("policy proto", self.proto, 0, 255)
        if self.priority is not None:
            check_range("policy priority", self.priority, 0, 0xFFFFFFFF)
        object.__setattr__(self, "mark", _mark("xfrm policy", self.mark))


PROTOCOLS = ("gre", "esp", "tcp", "udp", "icmp", "ipv6-icmp")


@dataclass(frozen=True)
class Filter:
    """A packet-filter rule: in `chain`, packets matching every given field are dropped, accepted, or (TCP
    SYNs, with set_mss) get their MSS option clamped. length: the IP packet's length range (low, high)."""

    chain: str = "input"
    action: str = "drop"
    family: int = 4
    proto: str | int | None = None
    src: str | None = None
    dst: str | None = None
    iif: str | None = None
    oif: str | None = None
    length: tuple[int, int] | None = None
    set_mss: int | None = None

    def __post_init__(self):
        check_choice("filter chain", self.chain, ("input", "forward", "output"))
        check_choice("filter action", self.action, ("drop", "accept", "clamp-mss"))
        check_choice("filter family", self.family, (4, 6))
        if isinstance(self.proto, str):
            check_choice("filter proto", self.proto, PROTOCOLS)
        elif self.proto is not None:
            check_range("filter proto", self.proto, 0, 255)
        for name in ("src", "dst"):
            if getattr(self, name) is not None:
                value = network(f"filter {name}", getattr(self, name))
                if family(value) != self.family:
                    raise InputError(f"filter {name}", value, f"an IPv{self.family} prefix (family={self.family})")
                object.__setattr__(self, name, value)
        for name in ("iif", "oif"):
            if getattr(self, name) is not None:
                interface_name(f"filter {name}", getattr(self, name))
        if self.length is not None:
            low, high = self.length
            check_range("filter length low", low, 0, 65535)
            check_range("filter length high", high, low, 65535)
        if (self.action == "clamp-mss") != (self.set_mss is not None):
            raise InputError("filter set_mss", self.set_mss, "an MSS exactly when action is clamp-mss")
        if self.set_mss is not None:
            check_range("filter set_mss", self.set_mss, 536 if self.family == 4 else 1220, 65495)
            if self.proto not in (None, "tcp"):
                raise InputError("filter proto", self.proto, "tcp (or None) for an MSS clamp")


@dataclass(frozen=True)
class Plan:
    """Everything one DUT should hold. `a + b` is both (sysctls of b win); applying is `dut.apply(plan)`."""

    interfaces: tuple[Interface, ...] = ()
    tunnels: tuple[Tunnel, ...] = ()
    routes: tuple[Route, ...] = ()
    rules: tuple[Rule, ...] = ()
    neighbours: tuple[Neighbour, ...] = ()
    sysctls: tuple[tuple[str, str], ...] = ()
    states: tuple[XfrmState, ...] = ()
    policies: tuple[XfrmPolicy, ...] = ()
    filters: tuple[Filter, ...] = ()
    daemons: tuple[Daemon, ...] = ()  # started after everything else (grelab.dut.daemon)
    # UDP ports where the DUT holds a socket with UDP_ENCAP_ESPINUDP, as an IKE daemon does: the kernel takes ESP
    # out of UDP (NAT traversal, RFC 3948) only on such a socket. For a DUT where no daemon runs.
    udp_encap_ports: tuple[int, ...] = ()

    def __post_init__(self):
        ports = tuple(check_range("udp_encap_ports", p, 1, 65535) for p in self.udp_encap_ports)
        object.__setattr__(self, "udp_encap_ports", tuple(dict.fromkeys(ports)))
        types = {"interfaces": Interface, "tunnels": Tunnel, "routes": Route, "rules": Rule, "neighbours": Neighbour,
                 "states": XfrmState, "policies": XfrmPolicy, "filters": Filter, "daemons": Daemon}
        for name, kind in types.items():
            items = tuple(getattr(self, name))
            for item in items:
                if not isinstance(item, kind):
                    raise InputError(f"plan {name}", item, f"{kind.__name__} objects")
            object.__setattr__(self, name, items)
        sysctls = self.sysctls.items() if isinstance(self.sysctls, dict) else self.sysctls
        object.__setattr__(self, "sysctls", tuple((_sysctl_key(k), str(v)) for k, v in sysctls))
        devices = [i.name for i in self.interfaces] + [t.name for t in self.tunnels]
        repeated = {d for d in devices if devices.count(d) > 1}
        if repeated:
            raise InputError("plan interfaces/tunnels", sorted(repeated), "each device named once")
        names = [d.name for d in self.daemons]
        if len(set(names)) != len(names):
            raise InputError("plan daemons", names, "each daemon named once")

    def __add__(self, other: "Plan") -> "Plan":
        if not isinstance(other, Plan):
            return NotImplemented
        merged = {f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self) if f.name != "sysctls"}
        merged["udp_encap_ports"] = tuple(dict.fromkeys(merged["udp_encap_ports"]))
        return Plan(**merged, sysctls=tuple({**dict(self.sysctls), **dict(other.sysctls)}.items()))

    @property
    def empty(self) -> bool:
        return not any(getattr(self, f.name) for f in fields(self))


def _sysctl_key(key) -> str:
    if not isinstance(key, str) or not re.fullmatch(r"[A-Za-z0-9_./-]+", key) or ".." in key.replace(".", "/").split("/"):
        raise InputError("sysctl", key, "a name such as net.ipv4.ip_forward (or net/ipv6/conf/eth0.5/mtu)")
    return key


def sysctl_path(key: str) -> str:
    """/proc/sys path of a sysctl named with dots (net.ipv4.ip_forward) or slashes (net/ipv6/conf/eth0.5/...)."""
    return "/proc/sys/" + (key if "/" in key else key.replace(".", "/"))


EMPTY = Plan()
