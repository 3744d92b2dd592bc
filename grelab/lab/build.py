"""Make a Topology real, and take it down again, as one unit: `with build(topology) as lab: ...`.

Every namespace is `grelab-<run-id>-<node>.<lab number>` and its removal is deferred on the run the
moment it exists, so a failure half-way, an exception in a test, SIGTERM or interpreter exit all
leave nothing behind (after SIGKILL, the next run's sweep does). Netlink goes through small
rtnetlink sockets (grelab.lab.rtnl) opened by one thread that steps into each namespace in turn (a
socket stays in the namespace it was made in); no `ip` processes, so A-R-B is up in milliseconds.

A node with `dut=` is a device under test that owns its namespace: the lab creates the veth end
there under a temporary name, hands it over with `dut.plug(ifname, temp_name)`, and configures it
with one plan (`dut.apply`): its interfaces' MACs, MTUs and addresses, routes, sysctls, and whatever the
node's own `plan` adds (tunnels, SAs), so a case costs each DUT one round trip. The DUTs are configured
side by side. At teardown the lab deletes that veth end (which removes the pair), and leaves the DUT's
namespace alone.

Everything the lab makes is deferred in its scope (grelab.scope), a child of the caller's (a case's) or
of the run's.
"""
from __future__ import annotations

import ctypes
import errno
import fcntl
import itertools
import os
import secrets
import socket
import struct
import subprocess
import threading
import time
from dataclasses import dataclass


from grelab.dut.plan import Interface, Plan
from grelab.dut.plan import Route as PlanRoute
from grelab.errors import GrelabError
from grelab.lab import netns
from grelab.lab.ownership import NETNS_DIR, Run, current_run
from grelab.lab.rtnl import RTMGRP_LINK, Rtnl
from grelab.lab.send import Sender
from grelab.lab.topology import End, Link, Node, Route, Topology
from grelab.scope import Scope
from grelab.together import side_by_side

SIOCETHTOOL, ETHTOOL_STXCSUM = 0x8946, 0x17
LINKS_READY_S = 5.0  # how long links may take to be reported running (a DUT's side included)
_lab_numbers = itertools.count(1)
_temp_numbers = itertools.count()
_numbers_lock = threading.Lock()


@dataclass(frozen=True)
class LinkEnd:
    """Where a link end lives: enough to open a socket on it."""

    node: str
    namespace: str
    ifname: str
    mac: str


class Lab:
    """A built topology. Close it (or leave the `with` block) to remove everything it made."""

    def __init__(self, topology: Topology, run: Run, number: int, scope: Scope):
        self.topology = topology
        self.run = run
        self.number = number
        self.scope = scope
        self.group = 1000 + number % 100000  # the device group of its veth ends in DUT namespaces
        self._unplug: set[str] = set()
        self.namespaces: dict[str, str] = {}  # node name -> network namespace name
        self._ends: dict[tuple[str, str], LinkEnd] = {}
        self._created_names: dict[tuple[str, str], str] = {}  # (node, ifname) -> name at creation

    def namespace(self, node: str) -> str:
        try:
            return self.namespaces[node]
        except KeyError:
            raise GrelabError(f"no node {node!r} in this lab; nodes: {', '.join(self.namespaces)}") from None

    def link_end(self, node: str, ifname: str) -> LinkEnd:
        try:
            return self._ends[(node, ifname)]
        except KeyError:
            raise GrelabError(f"no link end {node}:{ifname} in this lab") from None

    def run_in(self, node: str, fn, *args, **kwargs):
        """Call fn inside node's namespace (on a thread there) and return its result."""
        return netns.run_in(self.namespace(node), fn, *args, **kwargs)

    def sender(self, node: str, ifname: str) -> Sender:
        return Sender(self.link_end(node, ifname))

    def capture(self, node: str, ifname: str, expression: str = "", **options):
        """A Capture armed on node:ifname (options: buffer_bytes, direction), closed with the lab at the latest."""
        from grelab.capture.capture import Capture  # here: grelab.capture imports grelab.lab
        options.setdefault("scope", self.scope)
        return Capture(self.link_end(node, ifname), expression, **options)

    def close(self) -> None:
        """Tear down, newest resource first; every step runs even if one fails (ScopeError names those)."""
        self.scope.close()

    def _defer(self, cleanup, what: str) -> None:
        self.scope.defer(cleanup, what)

    def __enter__(self) -> "Lab":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def build(topology: Topology, scope: Scope | None = None) -> Lab:
    """Create every namespace, link, address, route, sysctl and ruleset of `topology`; its cleanups go into
    a child of `scope` (default: the run's)."""
    _check(topology)
    run = current_run()
    with _numbers_lock:
        number = next(_lab_numbers)
    lab = Lab(topology, run, number, (scope or run.scope).child(f"lab {number}"))
    try:
        _build(lab)
    except BaseException:
        lab.close()
        raise
    return lab


def _check(topology: Topology) -> None:
    names = [n.name for n in topology.nodes]
    if len(set(names)) != len(names):
        raise GrelabError(f"node names repeat: {names}")
    for node in topology.nodes:
        if node.dut is not None and node.nft:
            raise GrelabError(f"node {node.name}: nftables rules on a DUT node are the DUT's to load (Plan filters)")
        if node.dut is None and node.plan is not None:
            raise GrelabError(f"node {node.name}: a plan is for a DUT node; this one is a namespace")
    seen = set()
    for link in topology.links:
        for end in (link.a, link.b):
            if end.node not in names:
                raise GrelabError(f"link end {end.node}:{end.ifname} names no node of the topology")
            if not 1 <= len(end.ifname) <= 15:
                raise GrelabError(f"interface name {end.ifname!r}: 1 to 15 characters")
            if (end.node, end.ifname) in seen:
                raise GrelabError(f"interface {end.node}:{end.ifname} appears twice")
            seen.add((end.node, end.ifname))


def _build(lab: Lab) -> None:
    topology, run = lab.topology, lab.run
    for node in topology.nodes:
        if node.dut is not None:
            lab.namespaces[node.name] = node.dut.namespace
            continue
        name = run.namespace_name(f"{node.name}.{lab.number}")
        netns.create_namespace(name, lambda node=node: _namespace_sysctls(node))
        lab.namespaces[node.name] = name
        lab._defer(lambda name=name: netns.delete_namespace(name), f"namespace {name}")
    for node in topology.nodes:
        if node.dut is not None:  # before it takes new links: earlier labs' gone (or failing to go, said here)
            wait_unplugged(node.dut.namespace, pending_too=not getattr(node.dut, "plugs_beside_old_links", False))
    to_plug, monitors = netns.on_thread(lambda: _links_and_addresses(lab))
    try:
        for node, ifname, temp, index in to_plug:
            _plug(lab, node, ifname, temp, index)
        duts = [n for n in topology.nodes if n.dut is not None]
        for node in duts:  # every reset over before any plan: the DUTs take their plans at once, as routers that
            _ready(node.dut)  # boot together would (r1's first Hello in GRE must find r2's tunnel there)
        side_by_side(lambda node: node.dut.apply(dut_plan(lab, node)), duts)
        deadline = time.monotonic() + LINKS_READY_S
        for node, monitor, indexes in monitors:
            monitor.wait_running(indexes, deadline, f"node {node.name}")
    finally:
        for _, monitor, _ in monitors:
            monitor.close()


def _ready(dut) -> None:
    """Until the DUT's reset, begun in the background, has ended (grelab.dut.base.Dut.ready; a DUT of yours that
    does not derive from Dut has none)."""
    ready = getattr(dut, "ready", None)
    if ready is not None:
        ready()


def _namespace_sysctls(node: Node) -> None:
    # Before any link exists, so every link inherits it: no 2-second duplicate address detection.
    for family in ("all", "default"):
        netns.write_sysctl(f"net.ipv6.conf.{family}.accept_dad", 0)
    if node.forwarding:
        netns.write_sysctl("net.ipv4.ip_forward", 1)
        netns.write_sysctl("net.ipv6.conf.all.forwarding", 1)


def _links_and_addresses(lab: Lab) -> tuple[list, list]:
    """Runs on one thread that steps into each namespace in turn. Returns the DUT ends to plug, and
    per namespace a link monitor with the links to wait for."""
    topology = lab.topology
    rtnl = Rtnl()  # veths can be made from anywhere: each end names its namespace by fd
    try:
        for number, link in enumerate(topology.links):
            _make_veth(lab, rtnl, link, number)
    finally:
        rtnl.close()
    to_plug, monitors = [], []
    for node in topology.nodes:
        netns.enter(lab.namespaces[node.name])
        ends = _ends_of(topology, node)
        names = [lab._created_names[(end.node, end.ifname)] for end in ends]
        monitor = Rtnl(RTMGRP_LINK)  # listening before any link goes up: no notification is missed
        monitors.append((node, monitor, {socket.if_nametoindex(name) for name in names}))
        if node.dut is not None:
            to_plug += [(node, end.ifname, name, socket.if_nametoindex(name)) for end, name in zip(ends, names)]
            continue
        rtnl = Rtnl()
        try:
            _configure_node(lab, rtnl, node)
        finally:
            rtnl.close()
    return to_plug, monitors


def _ends_of(topology: Topology, node: Node) -> list[End]:
    return [end for link in topology.links for end in (link.a, link.b) if end.node == node.name]


def _make_veth(lab: Lab, rtnl: Rtnl, link: Link, number: int) -> None:
    """Create the pair with each end directly in its namespace, MTU and MAC set.

    The two ends get different interface indexes: when they are equal (both 2 in fresh namespaces)
    the kernel treats carrier changes as not urgent and reports the link running up to 1 s late."""
    ends = []
    fds = []
    try:
        for side, end in enumerate((link.a, link.b)):
            is_dut = lab.topology.node(end.node).dut is not None
            name = _temp_name(lab.run) if is_dut else end.ifname
            lab._created_names[(end.node, end.ifname)] = name
            mac = end.mac or "02:" + ":".join(f"{b:02x}" for b in secrets.token_bytes(5))
            fds.append(os.open(NETNS_DIR / lab.namespaces[end.node], os.O_RDONLY | os.O_CLOEXEC))
            index = 0 if is_dut else 100 + 2 * number + side  # 0: the DUT's namespace picks a free one
            ends.append((index, name, fds[-1], link.mtu, mac, lab.group if is_dut else 0))
            lab._ends[(end.node, end.ifname)] = LinkEnd(end.node, lab.namespaces[end.node], end.ifname, mac)
        rtnl.add_veth(*ends)
    finally:
        for fd in fds:
            os.close(fd)


def _temp_name(run: Run) -> str:
    with _numbers_lock:
        number = next(_temp_numbers) % 256
    return f"grelab-{run.id}{number:02x}"  # 15 characters: the kernel's limit


def tx_checksum_off(ifname: str) -> None:
    """Turn off TX checksum offload (and with it TSO) on a link of the calling thread's namespace.

    With offload on, a veth passes TCP and UDP on with the checksum left for "hardware" to fill in, and
    captures show it unfilled: a golden would hold bytes that never crossed any wire."""
    request = ctypes.create_string_buffer(struct.pack("II", ETHTOOL_STXCSUM, 0))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        fcntl.ioctl(s, SIOCETHTOOL, struct.pack("16sP8x", ifname.encode(), ctypes.addressof(request)))


def _configure_node(lab: Lab, rtnl: Rtnl, node: Node) -> None:
    rtnl.set_up(socket.if_nametoindex("lo"))
    for end in _ends_of(lab.topology, node):
        index = socket.if_nametoindex(end.ifname)
        tx_checksum_off(end.ifname)
        rtnl.set_up(index)
        for address in end.addresses:  # the link is up already: IPv6 addresses are usable at once
            rtnl.add_address(index, address)
    for route in node.routes:
        rtnl.add_route(_destination(route), route.via,
                       socket.if_nametoindex(route.dev) if route.dev else None)
    for key, value in node.sysctls.items():
        netns.write_sysctl(key, value)
    if node.nft:
        _run(["nft", "-f", "-"], node.nft)  # forked from this thread: runs in this namespace


def _destination(route: Route) -> str:
    return {"default": "0.0.0.0/0", "default6": "::/0"}.get(route.dst, route.dst)


# DUT namespace -> deletions of earlier labs' veth ends there, still under way. A deletion waits for an RCU
# grace period (~20 ms): a case's teardown does not wait for it; the next lab that plugs into that DUT does.
_unplugging: dict[str, list] = {}
_unplugging_lock = threading.Lock()


def _plug(lab: Lab, node: Node, ifname: str, temp: str, index: int) -> None:
    namespace = lab.namespaces[node.name]
    if namespace not in lab._unplug:
        lab._unplug.add(namespace)
        lab._defer(lambda: _unplug_later(namespace, lab.group), f"veths of {node.name}")
    # What the DUT leaves to "hardware" (a GRE checksum, when its device offloads it to the host's tap) must be
    # filled in before it leaves the DUT's namespace, as a NIC would: else the lab's captures see it unfilled.
    netns.run_in(namespace, tx_checksum_off, temp)
    node.dut.plug(ifname, temp)


def _unplug_later(namespace: str, group: int) -> None:
    """Delete the lab's veth ends in a DUT's namespace (one device group, one batch) in the background."""
    def delete() -> None:
        if not (NETNS_DIR / namespace).exists():
            return  # the DUT is gone (stopped after a panic), and its namespace with the pairs in it
        netns.enter(namespace)
        rtnl = Rtnl()
        try:
            rtnl.delete_group(group)
        except OSError as exc:
            if exc.errno != errno.ENODEV:  # none left: gone with the lab's namespaces already
                raise
        finally:
            rtnl.close()
    with _unplugging_lock:
        _unplugging.setdefault(namespace, []).append(netns.in_background(delete))


def wait_unplugged(namespace: str, pending_too: bool = True) -> None:
    """Until earlier labs' veth ends in this DUT namespace are gone (with pending_too=False, only those whose
    deletion has ended: a failed one is reported)."""
    with _unplugging_lock:
        pending = _unplugging.pop(namespace, [])
        if not pending_too:
            _unplugging[namespace] = [future for future in pending if not future.done()]
            pending = [future for future in pending if future.done()]
    for future in pending:
        try:
            future.result()
        except OSError as exc:
            if not (NETNS_DIR / namespace).exists():
                continue  # removed meanwhile, and the pairs with it
            raise GrelabError(f"removing an earlier lab's links from {namespace} failed: {exc}") from None


def dut_plan(lab: Lab, node: Node) -> Plan:
    """What a DUT node of the lab holds: its interfaces with the lab's MACs (so link_end(...).mac is what
    the DUT really sends from, and frames repeat run to run), MTUs and addresses; its routes and sysctls
    (forwarding for a router); then the node's own plan."""
    interfaces = tuple(Interface(end.ifname, lab.link_end(end.node, end.ifname).mac, link.mtu, tuple(end.addresses))
                       for link in lab.topology.links for end in (link.a, link.b) if end.node == node.name)
    sysctls = dict(node.sysctls)
    if node.forwarding:
        sysctls.update({"net.ipv4.ip_forward": "1", "net.ipv6.conf.all.forwarding": "1"})
    routes = tuple(PlanRoute(_destination(r), via=r.via, dev=r.dev) for r in node.routes)
    return Plan(interfaces=interfaces, routes=routes, sysctls=sysctls) + (node.plan or Plan())


def _run(argv: list[str], stdin: str) -> None:
    done = subprocess.run(argv, input=stdin, capture_output=True, text=True)
    if done.returncode != 0:
        raise GrelabError(f"{' '.join(argv)} failed: {done.stderr.strip()}")
