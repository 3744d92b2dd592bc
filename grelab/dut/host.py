"""The `host` DUT: a namespace on this machine's own kernel. Cheapest of all, when the kernel can do GRE and ESP.

The lab's veth ends are renamed to the DUT's interface names in the namespace, and commands run there
through `ip netns exec` (which also gives them the namespace's own /sys). A plan is applied as one script
there (ShellDut.apply): one `ip -batch` for its iproute2 lines, `nft -f` for its filters. Whether the kernel can do it
is found out, not assumed: `probe()` tries a GRE link and an ESP state in a throw-away namespace.
"""
from __future__ import annotations

import functools
import gzip
import os
import shlex
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

from grelab.craft.algorithms import xfrm_algorithm_words
from grelab.craft.esp import SA
from grelab.dut.base import CommandResult, DutError, ShellDut
from grelab.dut.plumbing import make_namespace
from grelab.lab import netns
from grelab.lab.rtnl import Rtnl

# What the host probe's capabilities need of the kernel: (its modules, the config options that build them).
HOST_NEEDS = {
    "gre": ("ip_gre", ("CONFIG_NET_IPGRE_DEMUX", "CONFIG_NET_IPGRE")),
    "ipv6_transport": ("ip6_gre", ("CONFIG_IPV6_GRE",)),
    "esp": ("esp4 with AES-GCM", ("CONFIG_INET_ESP", "CONFIG_XFRM_USER", "CONFIG_CRYPTO_GCM")),
}
RESET_SCRIPT = Path(__file__).parent / "reset.sh"
# Each tried in a namespace that exists only for the probe (unshare -n): nothing to clean up.
PROBES = {
    "gre": "ip link add grelab-gre type gre local 192.0.2.1 remote 192.0.2.2",
    "ipv6_transport": "ip link add grelab-gre6 type ip6gre local 2001:db8::1 remote 2001:db8::2",
    "esp": "ip xfrm state add src 192.0.2.1 dst 192.0.2.2 proto esp spi 0x100 mode transport " +
           shlex.join(xfrm_algorithm_words(SA(0x100, "gcm128", bytes(20)))),
}


@dataclass(frozen=True)
class Probe:
    capabilities: frozenset[str]
    missing: dict[str, str]  # capability -> what the kernel said

    @property
    def usable(self) -> bool:
        """Usable as a DUT: GRE and ESP both work."""
        return {"gre", "esp"} <= self.capabilities


def try_in_scratch_namespace(command: str) -> tuple[bool, str]:
    """Run a shell command in a network namespace that lives only as long as it; (worked, its last word)."""
    p = subprocess.run(["unshare", "-n", "sh", "-c", command], capture_output=True, text=True)
    said = (p.stderr + p.stdout).strip()
    return p.returncode == 0, said.splitlines()[-1] if said else f"exit status {p.returncode}"


@functools.cache
def probe() -> Probe:
    """What this kernel can do in a namespace: GRE over IPv4, GRE over IPv6, ESP."""
    have, missing = set(), {}
    for capability, command in PROBES.items():
        ok, said = try_in_scratch_namespace(command)
        if ok:
            have.add(capability)
        else:
            missing[capability] = said
    return Probe(frozenset(have | {"several"}) if have else frozenset(), missing)


@functools.cache
def kernel_config() -> dict[str, str] | None:
    """The running kernel's build options ({"CONFIG_X": "y"|"m"|...}), from /proc/config.gz or
    /boot/config-<release>; None when neither is readable."""
    for path in (Path("/proc/config.gz"), Path("/boot") / f"config-{os.uname().release}"):
        try:
            raw = path.read_bytes()
            text = (gzip.decompress(raw) if path.suffix == ".gz" else raw).decode(errors="replace")
        except (OSError, EOFError, gzip.BadGzipFile):
            continue
        return dict(line.split("=", 1) for line in text.splitlines() if line.startswith("CONFIG_") and "=" in line)
    return None


def kernel_lacks(capability: str, said: str = "") -> str:
    """What the host kernel lacks for a probe capability, naming its module and config options (those that
    are off, when the kernel's config is readable), and what the kernel said. No advice: callers add it."""
    module, options = HOST_NEEDS[capability]
    config = kernel_config()
    off = [o for o in options if config is not None and config.get(o) not in ("y", "m")]
    if off:
        which = f"{', '.join(off)} not set in its config"
    elif config is not None:
        which = f"its config has {', '.join(options)} on, yet the probe failed: modprobe {module.split()[0]}"
    else:
        which = " / ".join(options)
    return f"{module} ({which}{'; the kernel said: ' + said if said else ''})"


def host_problem(found=None) -> str | None:
    """Why the host kernel cannot be the DUT (None when it can), without advice about other backends."""
    found = found or probe()
    if found.usable:
        return None
    lacking = [kernel_lacks(c, found.missing.get(c, "")) for c in ("gre", "esp") if c not in found.capabilities]
    return "this kernel lacks " + " and ".join(lacking) + ": boot a kernel that has them"


class Host(ShellDut):
    """A namespace of the host kernel as the DUT. Raises DutError, saying what is missing, if it cannot be one."""

    def __init__(self, interfaces=("wan", "lan"), name: str = "dut"):
        found = probe()
        if not found.usable:
            raise DutError(f"the host kernel cannot be the DUT: {host_problem(found)}")
        self.capabilities = found.capabilities
        self.name, self.interfaces = name, list(interfaces)
        self.namespace, self._remove = make_namespace(
            name, "echo 0 > /proc/sys/net/ipv6/conf/all/accept_dad; echo 0 > /proc/sys/net/ipv6/conf/default/accept_dad;"
                  "ip link set lo up")

    def plug(self, iface: str, veth_end: str) -> None:
        if iface not in self.interfaces:
            raise DutError(f"DUT {self.name} has no interface {iface!r}; it has {', '.join(self.interfaces)}")

        def rename() -> None:  # the veth end is down: renamed and brought up in one message
            rtnl = Rtnl()
            try:
                rtnl.set_link(socket.if_nametoindex(veth_end), name=iface)
            finally:
                rtnl.close()
        netns.run_in(self.namespace, rename)

    def cmd(self, script: str, timeout: float = 10.0) -> CommandResult:
        try:
            p = subprocess.run(["ip", "netns", "exec", self.namespace, "sh", "-c", script],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise DutError(f"DUT {self.name}: {script!r} did not finish within {timeout:g} s") from None
        return CommandResult(script, p.returncode, p.stdout.rstrip("\n"))

    def _daemons_script(self, daemons) -> str:
        from grelab.dut import daemon
        from grelab.lab.ownership import current_run
        if not daemons:
            return ""
        for d in daemons:  # a package unpacked, not installed, whose program runs its helpers from compiled-in
            # folders (libreswan's pluto: /usr/libexec/ipsec/addconn): the guest links them, this host has them not
            missing = [path for path in d.library_paths if d.root and not Path(path).exists()]
            if missing:
                from grelab.dut.base import NotApplicable
                raise NotApplicable(self.name, "daemons_unpacked", f"Daemon {d.name} from {d.root} runs its helpers "
                                    f"from {missing[0]}, which this host lacks (the package is not installed)")
        self.__dict__.setdefault("_oneshots", set()).update(d.name for d in daemons if d.oneshot)
        self._daemon_base = str(current_run().path / "daemons" / self.namespace)
        return daemon.host_script(daemons, self._daemon_base)

    def daemon_folder(self, name: str) -> str:
        return f"{self._daemon_base}/{name}"

    def _daemons_started(self, output: str) -> None:
        from grelab.dut import daemon
        self.__dict__.setdefault("_daemon_pids", {}).update(daemon.started(output))

    def daemons_gone(self) -> dict[str, str]:
        """{name: how it ended} of the case's daemons no longer running (their parent shell is gone: no status, so
        a oneshot that is gone is taken to have done its job)."""
        gone = {}
        oneshots = self.__dict__.get("_oneshots", set())
        for name, pid in self.__dict__.get("_daemon_pids", {}).items():
            if name in oneshots:
                continue
            try:
                state = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
            except OSError:
                state = "gone"
            if state in ("Z", "X", "gone"):
                gone[name] = "it is no longer running"
        return gone

    def _stop_daemons(self) -> None:
        import signal
        import shutil
        self.__dict__.pop("_oneshots", None)
        for pid in self.__dict__.pop("_daemon_pids", {}).values():
            try:
                os.killpg(pid, signal.SIGKILL)  # setsid: the daemon leads its own group
            except ProcessLookupError:
                pass
        if getattr(self, "_daemon_base", None):
            shutil.rmtree(self._daemon_base, ignore_errors=True)

    def reset(self) -> None:
        self._stop_daemons()
        self.check(self._sysctl_restore_script() + self._helpers_stop_script()
                   + f". {shlex.quote(str(RESET_SCRIPT))}; grelab_reset {' '.join(self.interfaces)}")

    def stop(self) -> None:
        self._stop_daemons()
        self._remove()
