"""The `uml` DUT: a user-mode-linux guest (a real Linux 6.1 network stack with GRE and IPsec) as one process.

Plumbing, all inside the DUT's own namespace so the host's interfaces are never touched:

    lab veth end --[bridge b-IFACE]-- tap t-IFACE ==(vecN, transport=tap)== guest interface IFACE

The guest runs inside that namespace (started through `ip netns exec`), so a sweep that removes the
namespace of a dead run also kills the guest; its pid is recorded with the run as well.
"""
from __future__ import annotations

import ctypes
import json
import os
import re
import secrets
import signal
import subprocess

from grelab.dut.base import CommandResult, Dut, DutCommandError, DutError
from grelab.dut.uml import initramfs
from grelab.dut.uml.console import Console, GuestDied, watch
from grelab.dut.plumbing import ip_batch, make_namespace
from grelab.lab.ownership import current_run, pids_in_namespace

IFACE_RE = re.compile(r"[a-z][a-z0-9_]{0,12}")  # +2 chars of prefix must fit IFNAMSIZ (15)
# Skip built-in boot benchmarks (raid6's alone is ~0.85 s); nothing in a DUT uses raid6 or xor.
FAST_BOOT = "initcall_blacklist=raid6_select_algo,calibrate_xor_blocks"
# Unpack the initramfs before the other initcalls run, not beside them (~0.03 s): with a 17 MB archive,
# unpacking alongside them made the crypto self-tests' thread fail to start in 1 boot of 4 to 15 (a
# WARNING at crypto/api.c:170 in dmesg), and then every `ip xfrm state add` of that boot failed with
# "Requested AEAD algorithm not found". The archive is ~10 MB now (iptables comes over hostfs).
BOOT_ARGS = ["initramfs_async=0"]


_libc = ctypes.CDLL(None, use_errno=True)
SYS_KCMP, KCMP_VM = 312, 1  # x86_64


def _same_address_space(a: int, b: int) -> bool:
    return _libc.syscall(SYS_KCMP, a, b, KCMP_VM, 0, 0) == 0


def _kill_pid(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


class Uml(Dut):
    """A user-mode-linux guest with one interface per name in `interfaces`, booted and ready on return."""

    capabilities = frozenset({"gre", "esp", "ipv6_transport", "several"})

    def __init__(self, interfaces=("wan", "lan"), name: str = "dut", mem_mib: int = 128,
                 boot_timeout: float = 20.0, image: initramfs.Image | None = None, fast_boot: bool = True):
        """fast_boot=False boots with the kernel's built-in benchmarks, as a naive setup would (a baseline)."""
        self.name, self.interfaces = name, list(interfaces)
        bad = [i for i in self.interfaces if not IFACE_RE.fullmatch(i)]
        if bad or len(set(self.interfaces)) != len(self.interfaces) or not self.interfaces:
            raise DutError(f"DUT {name}: interface names {self.interfaces}: need distinct names matching {IFACE_RE.pattern}")
        image = image or initramfs.prepare()
        # No IPv6 on the host side: bridges and taps would otherwise chatter (MLD, RS) into the lab.
        self.namespace, remove_ns = make_namespace(name, "echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6;"
                                                         "echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6")
        self._undo = [remove_ns]
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
                     f"link set t-{iface} master b-{iface} up", f"link set b-{iface} up"]
        ip_batch(self.namespace, cmds)

    def _boot(self, image: initramfs.Image, mem_mib: int, boot_timeout: float, extra: list[str]) -> None:
        run = current_run()
        uml_dir = run.path / "uml"  # mconsole socket and pid file; goes with the run's directory
        argv = ["ip", "netns", "exec", self.namespace, str(image.kernel), f"mem={mem_mib}M",
                f"initrd={image.initramfs}", "con=null", "ssl=null", "con0=fd:0,fd:1",
                f"uml_dir={uml_dir}", f"umid={self.namespace}", "quiet", *BOOT_ARGS, *extra,
                f"GRELAB_IFACES={','.join(self.interfaces)}"]
        argv += [f"vec{n}:transport=tap,ifname=t-{iface}" for n, iface in enumerate(self.interfaces)]
        self._proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, start_new_session=True)
        run.record_pid(self._proc.pid, f"uml guest {self.name}")
        self._undo.insert(0, run.defer(self._kill, f"uml guest {self.name}"))
        self.console = Console(self._proc.stdin, self._proc.stdout, self.name)
        watch(self._proc, self.console)
        self.console.wait_for("@@READY", boot_timeout)

    def _kill(self) -> None:
        # UML runs guest processes as host child processes in the same namespace: kill them all, so
        # the console pipe closes and the reader thread ends (never close its file under it).
        self._proc.kill()
        for pid in pids_in_namespace(self.namespace):
            _kill_pid(pid)
        self._proc.wait(timeout=10)
        self._proc.stdin.close()

    def plug(self, iface: str, veth_end: str) -> None:
        """Bridge veth_end to the guest's iface, and give iface the veth end's MAC address: the lab's idea
        of the DUT's address (its topology may fix it, for golden pcaps) becomes true. The veth end takes
        a random one, since a bridge keeps frames for its ports' own addresses to itself."""
        if iface not in self.interfaces:
            raise DutError(f"DUT {self.name} has no interface {iface!r}; it has {', '.join(self.interfaces)}")
        mac = json.loads(subprocess.run(["ip", "-n", self.namespace, "-j", "link", "show", "dev", veth_end],
                                        capture_output=True, text=True, check=True).stdout)[0]["address"]
        spare = "02:" + ":".join(f"{b:02x}" for b in secrets.token_bytes(5))
        ip_batch(self.namespace, [f"link set dev {veth_end} address {spare} master b-{iface} up"])
        # The vector driver takes a new address only while the link is down.
        self.check(f"/sbin/ip link set dev {iface} down && /sbin/ip link set dev {iface} address {mac} up")

    def cmd(self, script: str, timeout: float = 10.0) -> CommandResult:
        return self._run(script, timeout)

    def _run(self, script: str, timeout: float = 10.0, in_init_shell: bool = False) -> CommandResult:
        try:
            return self.console.run(script, timeout, in_init_shell)
        except GuestDied:
            if self.console.dead:
                self.stop()  # panicked or gone: kill what is left of it now, not at teardown
            raise

    def reset(self) -> None:
        # In init's own shell (init sourced reset.sh at boot): it talks to init's long-lived `ip -batch`
        # processes over fds 6-9, and no fork is spent on a subshell.
        script = self._sysctl_restore_script() + "grelab_reset " + " ".join(self.interfaces)
        result = self._run(script, in_init_shell=True)
        if not result.ok:
            raise DutCommandError(self.name, result)

    def stop(self) -> None:
        while self._undo:  # guest first, then its namespace; each once
            self._undo.pop(0)()

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
