"""`--dut ovs`: Open vSwitch's userspace datapath as the GRE endpoint, in a namespace of the host (grelab.dut.ovs).

The namespace's kernel is the router's host side and OVS the tunnel (grelab.dut.ovs.mapping says how a plan splits).
Each DUT interface the lab plugs becomes an OVS bridge of that name: the kernel's interface is the bridge's local
port (a tap), the lab's veth its port, renamed `<iface>-p` and kept away from the kernel's stack by an nft netdev
ingress drop. A plan is applied in one process spawn: one ovs-vsctl transaction, one `ovs-ofctl add-flows` from
stdin, the kernel's share as one `ip -batch` (grelab.dut.iproute2, as the host DUT), the filters and daemons; a reset
deletes the tunnels' and the veths' ports in one transaction and the tunnel bridge's flows, flushes OVS's tunnel
neighbour cache and, meanwhile, resets the kernel as the host DUT does (grelab/dut/reset.sh). The daemons start once
per DUT (grelab.dut.ovs.daemons).

Counters: the kernel's, as the host DUT reads them (links, SNMP); a tunnel's link statistics are then its internal
port's as the kernel counts them, which are exactly the passengers that entered the tunnel (tx) and left it (rx), as
a kernel gre device counts them. OVS's own counters are there beside them: a GRE port's statistics as the link
"ovs:gre1" (`ovs-ofctl dump-ports`: a tunnel port's are counted from flow statistics, netdev_vport_inc_tx/rx, so
they lag up to a revalidation round, ~0.5 s, behind the packets, and here counted 10 sent for 5 echoes), and OVS's
drop counters as the link "ovs" (`ovs-appctl coverage/show`'s datapath and drop counters, `dpctl/show`'s lookups).
"""
from __future__ import annotations

import re
import shlex
import subprocess
import time
from dataclasses import replace

from grelab.dut.base import COUNTERS_SCRIPT, Counters, DutApplyError, DutError, _batch_here, _write, parse_counters
from grelab.dut.host import RESET_SCRIPT, Host
from grelab.dut.iproute2 import render
from grelab.dut.ovs import daemons
from grelab.dut.ovs.mapping import (CAPABILITIES, GRE_PORT, TUNNEL_BRIDGE, gre_port, ovs_plan, phys_port, plug_commands,
                                    quiet_ruleset)
from grelab.dut.plan import Plan
from grelab.dut.plumbing import make_namespace
from grelab.lab.ownership import current_run

NEXT_HOP_S = 1.0  # how long an apply waits for OVS to learn a tunnel's next hop from the kernel's ARP/ND
PORT_STAT = re.compile(r"(rx|tx) pkts=(\S+), bytes=(\S+), drop=(\S+), errs=(\S+)(?:, frame=(\S+), over=(\S+), "
                       r"crc=(\S+)|, coll=(\S+))")


class Ovs(Host):
    """Open vSwitch 3.1 (userspace datapath) in a namespace of its own; see the module's docstring."""

    capabilities = CAPABILITIES

    def __init__(self, interfaces=("wan", "lan"), name: str = "dut"):
        problem = daemons.missing()
        if problem:
            raise DutError(problem)
        self.name, self.interfaces = name, list(interfaces)
        self.namespace, self._remove = make_namespace(
            name, "echo 0 > /proc/sys/net/ipv6/conf/all/accept_dad; echo 0 > /proc/sys/net/ipv6/conf/default/accept_dad;"
                  "ip link set lo up")
        run = current_run()
        try:
            self.switch = daemons.start(self.namespace, run.path / "ovs" / self.namespace, run.record_pid)
        except DutError:
            self._remove()
            raise
        self._plugged: set[str] = set()  # interfaces whose veth is a port now
        self._generation = 0  # of the GRE ports (mapping.gre_port)
        self._tunnels: set[str] = set()  # the tunnels' internal and GRE ports since the last reset

    # The pool lends a DUT whose reset is still under way (Dut.pending_reset) so the lab's links are made meanwhile;
    # this DUT's reset deletes every link of its namespace that is not its own (reset.sh), the lab's new veth ends
    # among them, so the loan waits for the reset to end (~20-30 ms), and ready() says how it ended.
    @property
    def pending_reset(self):
        return self.__dict__.get("_pending_reset")

    @pending_reset.setter
    def pending_reset(self, future) -> None:
        if future is not None:
            future.exception()  # until it ended, however
        self.__dict__["_pending_reset"] = future

    @property
    def died(self) -> str | None:
        how = daemons.death(self.switch)
        return f"DUT {self.name}: {how}" if how else None

    def plug(self, iface: str, veth_end: str) -> None:
        if iface not in self.interfaces:
            raise DutError(f"DUT {self.name} has no interface {iface!r}; it has {', '.join(self.interfaces)}")
        self.ready()  # the lab plugs before it asks for ready(): this DUT's reset touches the same ports
        port = phys_port(iface)
        vsctl = self.switch.vsctl() + "".join(" -- " + shlex.join(c) for c in plug_commands(iface))
        self.check(f"ip link set dev {shlex.quote(veth_end)} name {port} && "
                   f"echo 1 > /proc/sys/net/ipv6/conf/{port}/disable_ipv6 && ip link set dev {port} up && "
                   f"nft -f - <<'GRELAB_EOF'\n{quiet_ruleset(iface)}GRELAB_EOF\n{vsctl}\nip link set dev {iface} up")
        self._plugged.add(iface)

    def apply(self, plan: Plan) -> None:
        self._generation += 1
        ovs = ovs_plan(self.name, plan, self._generation)  # NotApplicable before anything changes
        self._tunnels.update(p for t in plan.tunnels for p in (t.name, gre_port(t.name, self._generation)))
        rendered = render(ovs.kernel)
        # Sysctls of a tunnel's internal port wait until the vsctl transaction made it, as those of a tunnel do.
        made = {t.name for t in plan.tunnels}
        late = tuple(s for s in rendered.sysctls if len(s[0].split("/")) > 7 and s[0].split("/")[6] in made)
        rendered = replace(rendered, late_sysctls=late + rendered.late_sysctls,
                           sysctls=tuple(s for s in rendered.sysctls if s not in late))
        unknown, learn, early = self._sysctl_script(rendered)
        # The internal ports' flags before the plan's sysctls: forwarding turned on makes every IFF_MULTICAST device
        # join ff02::2 and report it (MLD), which a kernel gre device (no IFF_MULTICAST) never does.
        flags = "".join(line + "\n" if "\n" in line else f"{line} || echo '@@ovs-failed {line}'\n"
                        for line in ovs.kernel_first)
        script = learn + "echo @@learnt\n" + self.switch.shell_env() + self._ovs_script(ovs) + flags + early
        script += _batch_here(rendered.batch, "") + "echo @@batch6\n" + _batch_here(rendered.batch6, "-6 ")
        script += "echo @@late\n" + "".join(_write(p, v) for p, v in rendered.late_sysctls)
        script += next_hops_script(ovs.next_hops, {n.address: n.mac for n in plan.neighbours}, self.switch.appctl())
        script += self._helpers_script(rendered) + self._filter_script(rendered) + self._daemons_script(plan.daemons)
        if plan.daemons:
            self.daemons_started = time.monotonic()
        result = self.cmd(script)
        self._daemons_started(result.output)
        failed = [line[2:] for line in result.output.splitlines() if line.startswith("@@ovs-failed")]
        if failed:
            raise DutApplyError(f"DUT {self.name} (OVS) refused part of the plan:\n  " + "\n  ".join(failed))
        self._check_applied(rendered, unknown, result.output, result.ok)
        self._await_next_hops(re.findall(r"^@@next-hop (\S+) (\S+)$", result.output, re.M), ovs.next_hops)

    def _daemons_script(self, daemons) -> str:
        """The host DUT's (grelab.dut.daemon.host_script), with two changes for a namespace of this host: /run stays the
        host's (a private tmpfs there would hide the daemons' folders, under /run/grelab, from the clients and logs
        read later: FRR's paths are all given on its command line), and /etc/group has root in frrvty (FRR refuses
        to start unless its user is in the group of its vty sockets), bind-mounted in this script's mount namespace."""
        script = super()._daemons_script(daemons).replace("mount -t tmpfs grelab-run /run\n", "")
        if not script:
            return ""
        group = self.switch.folder / "group"
        return (f"awk -F: 'BEGIN {{ OFS = \":\" }} $1 == \"frrvty\" && $4 !~ /(^|,)root(,|$)/ "
                f"{{ $4 = ($4 == \"\" ? \"root\" : $4 \",root\") }} {{ print }}' /etc/group > {group} && "
                f"mount --bind {group} /etc/group\n") + script

    def _ovs_script(self, ovs) -> str:
        """Shell lines: the ovs-vsctl transaction (it waits until ovs-vswitchd made the ports), then the flows."""
        if not ovs.vsctl:
            return ""
        vsctl = self.switch.vsctl() + "".join(" -- " + shlex.join(c) for c in ovs.vsctl)
        out = f"said=$({vsctl} 2>&1) || echo \"@@ovs-failed ovs-vsctl: $said\"\n"
        if ovs.flows:
            flows = "\n".join(ovs.flows)
            out += (f"said=$(ovs-ofctl add-flows {TUNNEL_BRIDGE} - 2>&1 <<'GRELAB_EOF'\n{flows}\nGRELAB_EOF\n) || "
                    "echo \"@@ovs-failed ovs-ofctl add-flows: $said\"\n")
        return out

    def _await_next_hops(self, hops: list[tuple[str, str]], remotes: tuple[str, ...]) -> None:
        """Until OVS's tunnel neighbour cache holds each next hop the kernel resolves and its router (which follows the
        kernel's routes through netlink, a little later) routes each tunnel remote, or NEXT_HOP_S passed: without
        either, OVS drops the first packet into that tunnel (its behaviour). OVS snoops the kernel's ARP or ND reply
        only once it knows the bridge's new address (it learns that asynchronously too): a next hop the kernel has
        resolved and OVS has not is set from the kernel's entry (tnl/neigh/set), as a snooped reply would be."""
        deadline = time.monotonic() + NEXT_HOP_S
        appctl = ("ovs-appctl", "-t", f"{self.switch.folder}/vswitchd.ctl")
        remotes = list(remotes)
        while (hops or remotes) and time.monotonic() < deadline:
            if hops:
                shown = self._ovs(*appctl, "tnl/neigh/show")
                hops = [(ip, dev) for ip, dev in hops
                        if not re.search(rf"^{re.escape(ip)}\s+\S+\s+{re.escape(dev)}\s*$", shown, re.M)]
            if hops:
                kernel = self.check("; ".join(f"ip neigh show {ip} dev {dev}" for ip, dev in hops))
                for ip, mac in re.findall(r"^(\S+) lladdr (\S+) (?:REACHABLE|STALE|DELAY|PROBE|PERMANENT)", kernel, re.M):
                    dev = dict(hops)[ip]
                    self._ovs(*appctl, "tnl/neigh/set", dev, ip, mac)
            remotes = [r for r in remotes if "gateway" not in self._ovs(*appctl, "ovs/route/lookup", r, check=False)]
            if hops or remotes:
                time.sleep(0.002)  # the ARP/ND reply, the route, are on their way: poll, to the deadline

    def _ovs(self, *argv: str, check: bool = True) -> str:
        """An OVS client (ovs-appctl, ovs-ofctl) run directly: they reach the daemons through unix sockets."""
        try:
            p = subprocess.run(argv, capture_output=True, text=True, env=self.switch.env, timeout=daemons.COMMAND_S)
        except subprocess.TimeoutExpired:
            raise DutError(f"DUT {self.name}: `{' '.join(argv)}` did not answer within {daemons.COMMAND_S:g} s") from None
        if p.returncode and check:
            raise DutError(f"DUT {self.name}: `{' '.join(argv)}` exited {p.returncode}: {p.stderr.strip()}")
        return p.stdout

    def reset(self) -> None:
        self._stop_daemons()
        ports = [phys_port(i) for i in sorted(self._plugged)]
        self._plugged.clear()
        # The tunnel bridge stays (deleting it took twice as long): its ports and flows go. ovs-vsctl waits for
        # ovs-vswitchd to delete them and their taps (most of a reset's time); meanwhile the flows go and the kernel
        # is reset, leaving those taps to OVS (GRELAB_BOOT_LINKS: reset.sh deletes no other link).
        tunnel_ports = sorted(self._tunnels)
        vsctl = (self.switch.vsctl() + "".join(f" -- --if-exists del-port {p}" for p in ports + tunnel_ports)
                 if ports + tunnel_ports else "true")
        appctl = self.switch.appctl()
        keep = " ".join(["ovs-netdev", TUNNEL_BRIDGE, *tunnel_ports] + [phys_port(i) for i in self.interfaces])
        self._tunnels.clear()
        flows = f"[ ! -e /sys/class/net/{TUNNEL_BRIDGE} ] || ovs-ofctl del-flows {TUNNEL_BRIDGE}"
        self.check(self.switch.shell_env() + f"{vsctl} & vsctl=$!\n{{ {flows}; }} & flows=$!\n"
                   f"{appctl} tnl/neigh/flush >/dev/null\n" + self._sysctl_restore_script() + self._helpers_stop_script()
                   + f". {shlex.quote(str(RESET_SCRIPT))}; GRELAB_BOOT_LINKS={shlex.quote(keep)} "
                   f"grelab_reset {' '.join(self.interfaces)} && wait $vsctl && wait $flows")

    def counters(self) -> Counters:
        appctl = self.switch.appctl()
        text = self.check(self.switch.shell_env() + COUNTERS_SCRIPT + f"; echo @@ovs-ports; ovs-ofctl --names dump-ports "
                          f"{TUNNEL_BRIDGE} 2>/dev/null; echo @@ovs-coverage; {appctl} coverage/show; "
                          f"echo @@ovs-dp; {appctl} dpctl/show")
        return ovs_counters(text)

    def stop(self) -> None:
        self._stop_daemons()
        daemons.stop(self.switch)
        self._remove()


def next_hops_script(remotes: tuple[str, ...], static: dict[str, str], appctl: str) -> str:
    """Shell lines: each tunnel remote's next hop on the underlay into OVS's neighbour cache. One the plan gives a MAC
    (a static neighbour, {address: mac}) is set there; any other the kernel resolves (`ip neigh ... use` sends the
    ARP request or neighbour solicitation), whose reply OVS snoops: printing "@@next-hop IP DEV" to wait for."""
    known = "".join(f"{address}) {appctl} tnl/neigh/set $dev {address} {mac} > /dev/null;; "
                    for address, mac in static.items())
    out = ""
    for remote in remotes:
        out += (f"set -- $(ip -o route get {remote} 2>/dev/null); nh={remote}; dev=\n"
                'while [ $# -gt 0 ]; do case $1 in via) nh=$2;; dev) dev=$2;; esac; shift; done\n'
                f'[ -z "$dev" ] || case $nh in {known}*) ip neigh replace $nh dev $dev use 2>/dev/null; '
                'echo "@@next-hop $nh $dev";; esac\n')
    return out


def ovs_counters(text: str) -> Counters:
    """COUNTERS_SCRIPT's output followed by OVS's sections, as Counters: a tunnel's OVS GRE port statistics are the
    link "ovs:TUNNEL", OVS's drop counters the link "ovs"."""
    counters = parse_counters(text)
    ports = text.partition("@@ovs-ports")[2].partition("@@ovs-coverage")[0]
    for block in re.split(r"^\s*port\s+", ports, flags=re.M)[1:]:
        name = block.split(":", 1)[0].strip().strip('"')
        port = GRE_PORT.match(name)
        if port is None:
            continue
        stats = {}
        for m in PORT_STAT.finditer(block):
            way = m.group(1)
            values = dict(zip(("packets", "bytes", "dropped", "errors", "frame_errors", "over_errors", "crc_errors",
                               "collisions"), m.groups()[1:]))
            for stat, value in values.items():
                if value is not None and value.rstrip(",").isdigit():
                    stats["collisions" if stat == "collisions" else f"{way}_{stat}"] = int(value.rstrip(","))
        counters["links"][f"ovs:{port.group('tunnel')}"] = stats
    coverage = text.partition("@@ovs-coverage")[2].partition("@@ovs-dp")[0]
    ovs = {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\S+)\s+.*total:\s*(\d+)\s*$", coverage, re.M)
           if "drop" in m.group(1) or m.group(1).startswith("datapath_")}
    dp = text.partition("@@ovs-dp")[2]
    m = re.search(r"lookups: hit:(\d+) missed:(\d+) lost:(\d+)", dp)
    if m:
        ovs.update(lookups_hit=int(m.group(1)), lookups_missed=int(m.group(2)), lookups_lost=int(m.group(3)))
    counters["links"]["ovs"] = ovs
    return counters

