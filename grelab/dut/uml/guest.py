"""The `uml` DUT: a user-mode-linux guest (a real Linux network stack with GRE and IPsec, grelab's own kernel:
kernel.py) as one process.

Plumbing, all inside the DUT's own namespace so the host's interfaces are never touched:

    lab veth end --[bridge b-IFACE]-- tap t-IFACE ==(vecN, transport=tap)== guest interface IFACE

No port of the bridge learns MACs, so it floods every frame to its other ports, like a hub: an earlier lab's
veth end, still being deleted in the background (a deletion waits for an RCU grace period), may hang on the
bridge beside the new one without ever taking frames meant for a MAC the new lab reuses.

The guest runs inside that namespace (started through `ip netns exec`), so a sweep that removes the
namespace of a dead run also kills the guest; its pid is recorded with the run as well.
"""
from __future__ import annotations

import ctypes
import dataclasses
import itertools
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import time

from grelab.dut import daemon
from grelab.dut.base import CommandResult, Counters, DutCommandError, DutError, ShellDut, parse_counters
from grelab.dut.iproute2 import render
from grelab.dut.plan import Plan
from grelab.dut.uml import initramfs
from grelab.dut.uml.console import Console, GuestDied, watch
from grelab.dut.plumbing import ip_batch, make_namespace
from grelab.lab import netns
from grelab.lab.ownership import current_run, pids_in_namespace
from grelab.lab.rtnl import Rtnl

IFACE_RE = re.compile(r"[a-z][a-z0-9_]{0,12}")  # +2 chars of prefix must fit IFNAMSIZ (15)
# Skip built-in boot benchmarks (raid6's alone is ~0.85 s); nothing in a DUT uses raid6 or xor.
FAST_BOOT = "initcall_blacklist=raid6_select_algo,calibrate_xor_blocks"
# Unpack the initramfs before the other initcalls run, not beside them (~0.03 s): with a 17 MB archive,
# unpacking alongside them made the crypto self-tests' thread fail to start in 1 boot of 4 to 15 (a
# WARNING at crypto/api.c:170 in dmesg), and then every `ip xfrm state add` of that boot failed with
# "Requested AEAD algorithm not found". The archive is ~10 MB now (iptables comes over hostfs).
BOOT_ARGS = ["initramfs_async=0"]
# UML's seccomp mode (kernels since 6.14): the guest's processes trap their system calls into the kernel by a
# signal, where ptrace mode stops and switches to the kernel's process at each one. Measured here: a reset
# 5.7 -> 3.6-4 ms, an apply 6 -> 4.5-5 ms, a boot 0.24 -> 0.2 s (grelab bench: uml_seccomp_case_ms). On for a
# kernel that has it, unless GRELAB_UML_SECCOMP=0.
SECCOMP = "seccomp=on"


def seccomp_wanted(image) -> bool:
    uml = getattr(image, "uml", None)
    return bool(uml is not None and uml.seccomp) and os.environ.get("GRELAB_UML_SECCOMP", "1") != "0"


_libc = ctypes.CDLL(None, use_errno=True)
SYS_KCMP, KCMP_VM = 312, 1  # x86_64


def _same_address_space(a: int, b: int) -> bool:
    return _libc.syscall(SYS_KCMP, a, b, KCMP_VM, 0, 0) == 0


def _kill_pid(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


# Each guest runs on one CPU. A UML guest is a kernel process and its processes' host processes switching
# back and forth through ptrace at every system call; let the host scheduler spread them over CPUs and each
# switch crosses CPUs: with two pytest workers on two cores, a scenario case's median measured 160 ms with the
# guests free, 100 ms with each worker's guests on a CPU of their own (90 ms against 100 in one process).
_cpus = sorted(os.sched_getaffinity(0))
_next_guest = itertools.count()
_pinned: int | None = None


def pin_guests(worker: int) -> None:
    """This process's guests all go on one CPU, the worker-th of those it may use (one per pytest-xdist worker; the
    one process of a run without workers takes the first), and so do the hosts' sockets (grelab.lab.netns.pin)."""
    global _pinned
    _pinned = _cpus[worker % len(_cpus)]
    netns.pin(_pinned)


def _guest_cpu() -> int:
    return _pinned if _pinned is not None else _cpus[next(_next_guest) % len(_cpus)]


class Uml(ShellDut):
    """A user-mode-linux guest with one interface per name in `interfaces`, booted and ready on return.

    Every process started in the guest costs ~25-200 ms, and the console reads a script one byte per system
    call (~0.1 ms a byte), so what runs per case goes elsewhere: a plan is written as a script into a folder
    of the host that the guest mounts (hostfs, /grelab), read there in blocks, and run in init's own shell,
    which feeds its iproute2 lines to init's long-lived `ip -batch` processes: one round trip, no process."""

    capabilities = frozenset({"gre", "esp", "ipv6_transport", "several"})
    plugs_beside_old_links = True  # its bridges learn no MACs: a lab need not wait for an earlier one's links to go
    # The host's perl through the host's loader, from the host's /usr the guest mounts (FIELD-NOTES): ~0.1 s a start.
    perl = ("/host-usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 --library-path /host-usr/lib/x86_64-linux-gnu "
            "/host-usr/bin/perl")

    def __init__(self, interfaces=("wan", "lan"), name: str = "dut", mem_mib: int = 128,
                 boot_timeout: float = 20.0, image: initramfs.Image | None = None, fast_boot: bool = True):
        """fast_boot=False boots with the kernel's built-in benchmarks, as a naive setup would (a baseline)."""
        self.name, self.interfaces = name, list(interfaces)
        bad = [i for i in self.interfaces if not IFACE_RE.fullmatch(i)]
        if bad or len(set(self.interfaces)) != len(self.interfaces) or not self.interfaces:
            raise DutError(f"DUT {name}: interface names {self.interfaces}: need distinct names matching {IFACE_RE.pattern}")
        image = image or initramfs.prepare()
        # No IPv6 on the host side: bridges and taps would otherwise chatter (MLD, RS) into the lab.
        run = current_run()
        self.scope = run.scope.child(f"DUT {name}")
        self.namespace, remove_ns = make_namespace(name, "echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6;"
                                                         "echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6",
                                                   self.scope)
        self.share = run.path / "uml" / f"{self.namespace}.share"  # the guest's /grelab
        self.share.mkdir(parents=True)
        self.scope.defer(lambda: shutil.rmtree(self.share, ignore_errors=True), f"{self.share}")
        self._files = itertools.count(1)
        self.daemon_pids: dict[str, int] = {}  # this case's daemons (plan.daemons), by name
        self.oneshots: set[str] = set()  # those of them that are meant to exit (Daemon.oneshot)
        try:
            self._plumb()
            self._boot(image, mem_mib, boot_timeout, [FAST_BOOT] if fast_boot else [])
        except BaseException:
            self.stop()
            raise

    def _plumb(self) -> None:
        cmds = ["link set lo up"]
        for iface in self.interfaces:
            cmds += [f"tuntap add dev t-{iface} mode tap",
                     f"link add b-{iface} type bridge mcast_snooping 0",
                     f"link set t-{iface} master b-{iface} up", f"link set t-{iface} type bridge_slave learning off",
                     f"link set b-{iface} up"]
        ip_batch(self.namespace, cmds)

    def _boot(self, image: initramfs.Image, mem_mib: int, boot_timeout: float, extra: list[str]) -> None:
        run = current_run()
        uml_dir = run.path / "uml"  # mconsole socket and pid file; goes with the run's directory
        nonce = secrets.token_hex(4)  # new at every boot: the console's answers name it (console.py)
        argv = ["ip", "netns", "exec", self.namespace, "taskset", "-c", str(_guest_cpu()), str(image.kernel), f"mem={mem_mib}M",
                f"initrd={image.initramfs}", "con=null", "ssl=null", "con0=fd:0,fd:1",
                f"uml_dir={uml_dir}", f"umid={self.namespace}", "quiet", *BOOT_ARGS, *extra,
                *([SECCOMP] if seccomp_wanted(image) else []),
                f"GRELAB_IFACES={','.join(self.interfaces)}", f"GRELAB_SHARE={self.share}", f"GRELAB_NONCE={nonce}"]
        argv += [f"vec{n}:transport=tap,ifname=t-{iface}" for n, iface in enumerate(self.interfaces)]
        self._proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, start_new_session=True)
        run.record_pid(self._proc.pid, f"uml guest {self.name}")
        self.scope.defer(self._kill, f"uml guest {self.name}")
        self.console = Console(self._proc.stdin, self._proc.stdout, self.name, nonce, self.share)
        watch(self._proc, self.console)
        self.console.wait_for("@@READY", boot_timeout)
        self._links_due, self._base = True, _base(Plan())  # as after a reset: nothing on the interfaces

    def _kill(self) -> None:
        # UML runs guest processes as host child processes in the same namespace: kill them all, so
        # the console pipe closes and the reader thread ends (never close its file under it).
        self._proc.kill()
        for pid in pids_in_namespace(self.namespace):
            _kill_pid(pid)
        self._proc.wait(timeout=10)
        self._proc.stdin.close()

    def plug(self, iface: str, veth_end: str) -> None:
        """Bridge veth_end to the guest's iface. The veth end takes a random MAC: a bridge keeps frames for its
        ports' own addresses to itself, and the plan gives the guest's iface the lab's idea of its MAC."""
        if iface not in self.interfaces:
            raise DutError(f"DUT {self.name} has no interface {iface!r}; it has {', '.join(self.interfaces)}")
        spare = "02:" + ":".join(f"{b:02x}" for b in secrets.token_bytes(5))

        def bridge() -> None:
            rtnl = Rtnl()
            try:
                index = socket.if_nametoindex(veth_end)
                rtnl.set_link(index, mac=spare, master=socket.if_nametoindex(f"b-{iface}"))
                rtnl.bridge_port_learning(index, False)
            finally:
                rtnl.close()
        netns.run_in(self.namespace, bridge)

    def apply(self, plan: Plan) -> None:
        """The plan as a script in /grelab, run in init's shell: sysctls by shell builtins, iproute2 lines to
        init's `ip -batch` processes, filters through iptables-restore (a process, only when there are any)."""
        # A MAC the interface holds already is not set again: that takes the link down and up (~10 ms each here).
        macs = self.__dict__.setdefault("_macs", {})
        links_due, whole = getattr(self, "_links_due", False), plan
        keep_links = links_due and getattr(self, "_base", None) == _base(plan)
        if keep_links:  # the interfaces, rules and sysctls the DUT holds are the plan's: kept (see reset)
            plan = dataclasses.replace(plan, interfaces=(), rules=())
            self._links_due = False
        plan = dataclasses.replace(plan, interfaces=tuple(
            dataclasses.replace(i, mac=None) if i.mac is not None and macs.get(i.name) == i.mac.lower() else i
            for i in plan.interfaces))
        rendered = render(plan)
        number = next(self._files)
        unknown, learn, early = self._sysctl_script(rendered)
        script = learn + "echo @@learnt\n" + early
        for fd_in, fd_out, lines, section in ((8, 9, rendered.batch, "@@batch6"), (6, 7, rendered.batch6, "@@late")):
            if lines:
                text = "\n".join(line.text for line in lines)
                script += f"ipb_send {fd_in} {shlex.quote(text)}\nipb_wait {fd_out} {fd_in} || grelab_failed=1\n"
            script += f"echo {section}\n"
        script += "".join(f"echo {shlex.quote(v)} > {shlex.quote(p)} || echo '@@sysctl-failed: {p}'\n"
                          for p, v in rendered.late_sysctls)
        for family in (4, 6):
            text = rendered.iptables(family)
            if text:
                (self.share / f"{number}.ipt{family}").write_text(text)
                tool = "ip6tables-restore" if family == 6 else "iptables-restore"
                script += f"{tool} -n < /grelab/{number}.ipt{family} || grelab_failed=1\n"
        script += self._helpers_script(rendered)
        script += daemon.guest_script(plan.daemons)  # last: on a DUT that holds the rest of the plan
        path = self.share / f"{number}.sh"
        path.write_text(script + '[ -z "$grelab_failed" ]; grelab_status=$?; unset grelab_failed; return $grelab_status\n')
        if plan.daemons:  # they start within this round trip: a time since then is one since their start, or more
            self.daemons_started = time.monotonic()
        try:
            result = self._run_after_reset(f". /grelab/{number}.sh")
        finally:
            path.unlink(missing_ok=True)
            for family in (4, 6):
                (self.share / f"{number}.ipt{family}").unlink(missing_ok=True)
        self.daemon_pids.update(daemon.started(result.output))
        self.oneshots |= {d.name for d in plan.daemons if d.oneshot}
        try:
            self._check_applied(rendered, unknown, result.output, result.ok)
        except DutError:
            macs.clear()  # what the interfaces hold is not known now
            self._base = None
            raise
        macs.update({i.name: i.mac.lower() for i in plan.interfaces if i.mac is not None})
        if links_due and not keep_links:
            self._base = _base(whole)  # on interfaces just reset
        elif not keep_links and _base(whole) != _base(Plan()):
            self._base = None  # a case's own interfaces, rules or sysctls on top: the next reset takes all

    def counters(self) -> Counters:
        """One round trip in init's shell, no process: init's long-lived awk writes the files' lines into the
        folder the host shares with the guest (see grelab_counters in reset.sh), read here."""
        out = self.share / f"counters-{next(self._files)}"
        try:
            result = self._run_after_reset(f"grelab_counters /grelab/{out.name}")
            if not result.ok:
                raise DutCommandError(self.name, result)
            return parse_counters(_counters_text(out.read_text()))
        finally:
            out.unlink(missing_ok=True)

    def cmd(self, script: str, timeout: float = 10.0) -> CommandResult:
        if getattr(self, "_links_due", False):
            self._run_after_reset("")  # the reset's second half first: the script sees a reset DUT
        # A script may delete or rename links behind the back of init's `ip -batch` processes, whose name
        # cache would then be stale: they start afresh before the next apply or reset (~60 ms, only then).
        self._fresh_ip = "ipb_restart\n"
        self._base = None  # and it may change anything: the next reset takes all
        return self._run(script, timeout)

    def _take_fresh_ip(self) -> str:
        line, self._fresh_ip = getattr(self, "_fresh_ip", ""), ""
        return line

    def _run(self, script: str, timeout: float = 10.0, in_init_shell: bool = False) -> CommandResult:
        try:
            return self.console.run(script, timeout, in_init_shell)
        except GuestDied:
            if self.console.dead:
                self.stop()  # panicked or gone: kill what is left of it now, not at teardown
            raise

    def reset(self) -> None:
        """Back to the just-booted state, in init's own shell (it talks to init's `ip -batch` processes and
        spends no fork on a subshell), in two halves (reset.sh). What the case made or left behind (daemons,
        tunnels, SAs, routes, neighbours, filters) goes now. The interfaces' addresses and MTUs, rules and
        sysctls go at the next command, in its round trip, unless that command is an apply whose plan holds
        exactly those again (the next case of a scenario, mostly): then they stay, and the apply skips them. A
        two-office DUT's reset and apply measured 9.3 ms of the guest's CPU that way against 15-17 ms."""
        self._links_due = True
        self.daemon_pids, self.oneshots = {}, set()
        result = self._run_after_reset("", case=True)
        if not result.ok:
            raise DutCommandError(self.name, result)

    def _run_after_reset(self, script: str, case: bool = False) -> CommandResult:
        """script in init's shell, after the reset's case half (case) and the interfaces' half if due; a reset's
        failure is a DutError that leaves the DUT wedged (the pool starts a new one)."""
        reset = ""
        if case:
            reset += self._helpers_stop_script() + f"grelab_reset_case {' '.join(self.interfaces)} || echo '@@reset-failed'\n"
        if getattr(self, "_links_due", False) and not case:
            self._links_due, self._base = False, _base(Plan())
            reset += (self._sysctl_restore_script() + f"grelab_reset_links {' '.join(self.interfaces)}"
                      " || echo '@@reset-failed'\n")
        if reset:
            reset = self._take_fresh_ip() + reset + "echo '@@reset'\n"
        result = self._run(reset + (script or "true") if reset else self._take_fresh_ip() + script, in_init_shell=True)
        if reset:
            lines = result.output.split("\n")
            at = lines.index("@@reset") if "@@reset" in lines else len(lines)
            said, output = "\n".join(lines[:at]), "\n".join(lines[at + 1:])
            if "@@reset-failed" in said or at == len(lines):
                self.wedged = f"reset failed: {said.replace('@@reset-failed', '').strip() or result.output}"
                raise DutError(f"DUT {self.name}: {self.wedged}")
            result = CommandResult(script, result.status, output)
        return result

    def daemons_gone(self) -> dict[str, str]:
        """{name: how it ended} of the case's daemons that are no longer running (crashed, killed): one round trip
        in init's shell, their parent, which `wait`s for each one's exit status."""
        if not self.daemon_pids or self.died:
            return {}
        return daemon.how_gone(self._run(daemon.gone_script(self.daemon_pids), in_init_shell=True).output, self.oneshots)

    @property
    def died(self) -> str | None:
        """How the guest died (a panic, with its last console lines), or None while it lives."""
        console = getattr(self, "console", None)
        return console.death() if console is not None else None

    def stop(self) -> None:
        self.scope.close()  # the guest first, then its folder and namespace; each once

    def memory_mib(self) -> float:
        """Proportional resident memory (PSS) of the guest's host processes, each address space once.

        UML's helper threads are processes sharing the kernel's address space: count that space once."""
        total, spaces = 0, []
        for pid in pids_in_namespace(self.namespace):
            if any(_same_address_space(pid, other) for other in spaces):
                continue
            spaces.append(pid)
            try:
                with open(f"/proc/{pid}/smaps_rollup") as f:
                    total += sum(int(line.split()[1]) for line in f if line.startswith("Pss:"))
            except OSError:
                pass
        return total / 1024


def _base(plan: Plan) -> tuple:
    """What of a plan the reset's second half takes away: its interfaces (addresses, MTUs, MACs), rules, sysctls."""
    return plan.interfaces, plan.rules, tuple(sorted(plan.sysctls))


def _counters_text(lines: str) -> str:
    """grelab_counters' "FILE:line" lines in parse_counters' sections."""
    sections: dict[str, list[str]] = {"links": [], "xfrm": [], "snmp": [], "snmp6": []}
    for line in lines.splitlines():
        path, _, rest = line.partition(":")
        if path == "@links":
            sections["links"] += [f"{link}/statistics/{stat}:{value}" for link, stats in _link_statistics(rest).items()
                                  for stat, value in stats.items()]
        else:
            sections[{"/proc/net/xfrm_stat": "xfrm", "/proc/net/snmp6": "snmp6"}.get(path, "snmp")].append(rest)
    return "\n".join(sections["links"] + [f"@@{name}\n" + "\n".join(sections[name]) for name in ("xfrm", "snmp", "snmp6")])


# iproute2's JSON names of a link's statistics (`ip -j -s -s link`) that the kernel's sysfs names otherwise
# (statistics/<direction>_<name>).
_SYSFS_NAME = {("rx", "multicast"): "multicast", ("tx", "collisions"): "collisions"}


def _link_statistics(text: str) -> dict[str, dict[str, int]]:
    """`ip -j -s -s link show` -> {link: {sysfs statistics name: n}} (rx_crc_errors, tx_packets, multicast...)."""
    import json
    try:
        links = json.loads(text)
    except ValueError:
        raise DutError(f"link statistics from the guest are not iproute2's JSON: {text[:200]!r}") from None
    found = {}
    for link in links:
        stats = {}
        for direction in ("rx", "tx"):
            for name, value in link.get("stats64", {}).get(direction, {}).items():
                if name != "carrier_changes":  # not a statistics/ file in sysfs
                    stats[_SYSFS_NAME.get((direction, name), f"{direction}_{name}")] = int(value)
        found[link["ifname"]] = stats
    return found
