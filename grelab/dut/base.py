"""What grelab needs from a device under test (DUT), and the result types it hands back.

A DUT is anything that terminates GRE / IPsec and can be configured by shell commands: the host kernel
in a namespace (grelab.dut.host), a user-mode-linux guest (grelab.dut.uml), or your own (your daemon,
your router namespace, a box on a cable). To plug in your own, subclass `Dut`, implement the abstract
members, and name it with `--dut your.module:YourClass`, or register it in your package's metadata
under the entry point group `grelab.dut` and pass that name (see grelab.dut.select). Your constructor
is called as `YourClass(interfaces=["wan", "lan"], name="r1")`; set `capabilities` to what it can do.

How the lab wires a DUT in: the DUT makes a network namespace (`namespace`) on this host where the
host-side ends of its interfaces live. For each DUT interface the lab creates a veth end inside that
namespace and calls `plug(iface, veth_end)`; from then on frames sent into the lab's end of the veth
arrive on the DUT's interface `iface`, and what the DUT sends there comes back out. The lab deletes the
veth when its topology ends; the DUT itself lives on (one boot per pytest worker) and is `reset()`
between tests.
"""
from __future__ import annotations

import shlex
from abc import ABC, abstractmethod
from dataclasses import dataclass

from grelab.errors import GrelabError


class DutError(GrelabError):
    """The DUT could not be started, reached or configured."""


@dataclass(frozen=True)
class CommandResult:
    """A command run in the DUT: what ran, its exit status, and its stdout and stderr together."""

    command: str
    status: int
    output: str

    @property
    def ok(self) -> bool:
        return self.status == 0


class DutCommandError(DutError):
    """A command the caller expected to succeed exited non-zero."""

    def __init__(self, dut: str, result: CommandResult):
        self.result = result
        super().__init__(f"DUT {dut}: `{result.command}` exited {result.status}: {result.output.strip() or '(no output)'}")


# One round trip for every counter a test asserts on, printed in sections the parser splits on.
COUNTERS_SCRIPT = (
    "cd /sys/class/net && grep -r . */statistics/; echo @@xfrm; cat /proc/net/xfrm_stat 2>/dev/null; "
    "echo @@snmp; cat /proc/net/snmp /proc/net/netstat; echo @@snmp6; cat /proc/net/snmp6"
)


def parse_counters(text: str) -> dict:
    """COUNTERS_SCRIPT's output as {"links": {iface: {stat: n}}, "xfrm": {name: n}, "snmp": {name: n}}.

    Link stats use the kernel's names (rx_errors, rx_crc_errors, rx_fifo_errors, rx_dropped, ...);
    SNMP names are nstat's (IpInReceives, Icmp6InEchos, TcpExtTCPTimeouts, ...)."""
    links: dict[str, dict[str, int]] = {}
    xfrm: dict[str, int] = {}
    snmp: dict[str, int] = {}
    section = "links"
    header: list[str] | None = None
    for line in text.splitlines():
        if line.startswith("@@"):
            section = line[2:]
            continue
        if section == "links" and "/statistics/" in line:
            path, _, value = line.rpartition(":")
            iface, _, stat = path.partition("/statistics/")
            if value.strip().isdigit():
                links.setdefault(iface, {})[stat] = int(value)
        elif section in ("xfrm", "snmp6"):
            parts = line.split()
            if len(parts) == 2 and parts[1].isdigit():
                (xfrm if section == "xfrm" else snmp)[parts[0]] = int(parts[1])
        elif section == "snmp" and ":" in line:
            # /proc/net/snmp and netstat: a "Proto: Name Name" line, then "Proto: 1 2".
            proto, _, rest = line.partition(":")
            fields = rest.split()
            if header is None or header[0] != proto:
                header = [proto] + fields
            else:
                snmp.update({proto + name: int(v) for name, v in zip(header[1:], fields)})
                header = None
    return {"links": links, "xfrm": xfrm, "snmp": snmp}


def counter_delta(before: dict, after: dict) -> dict:
    """after - before, section by section, keeping only what moved (a test's "which counter said so")."""
    out = {}
    for section in ("xfrm", "snmp"):
        out[section] = {k: v - before[section].get(k, 0) for k, v in after[section].items()
                        if v != before[section].get(k, 0)}
    out["links"] = {}
    for iface, stats in after["links"].items():
        old = before["links"].get(iface, {})
        moved = {k: v - old.get(k, 0) for k, v in stats.items() if v != old.get(k, 0)}
        if moved:
            out["links"][iface] = moved
    return out


def sysctl_path(key: str) -> str:
    """/proc/sys path of a sysctl named with dots (net.ipv4.ip_forward) or slashes (net/ipv4/conf/eth0.5/...)."""
    return "/proc/sys/" + (key if "/" in key else key.replace(".", "/"))


class Dut(ABC):
    """A device under test. Subclass it to bring your own; `ip`, `sysctl`, `check` and `counters` work
    through `cmd` on anything with a Linux shell (override them if yours has none)."""

    name: str
    """Short name for messages, e.g. "r1"."""
    namespace: str
    """The host network namespace holding the host-side ends of the DUT's interfaces (see plug)."""
    interfaces: list[str]
    """The DUT's interface names, as the lab names them (e.g. ["wan", "lan"])."""
    capabilities: frozenset[str] = frozenset({"gre"})
    """What it can do, for skipping cases it cannot run: "gre", "esp" (xfrm), "ipv6_transport" (GRE over
    IPv6), "several" (more than one instance at once)."""

    @abstractmethod
    def plug(self, iface: str, veth_end: str) -> None:
        """Take over `veth_end` (a veth end the lab made inside `namespace`) as interface `iface`."""

    @abstractmethod
    def cmd(self, script: str, timeout: float = 10.0) -> CommandResult:
        """Run a shell script in the DUT and return its status and output; raise DutError if the DUT
        itself fails (dies, hangs past timeout), never for a non-zero status."""

    @abstractmethod
    def reset(self) -> None:
        """Back to the state right after start: no tunnels, SAs, policies, rules, addresses, routes; the
        interfaces up; sysctls set through `sysctl()` restored. Fast (tens of ms): it runs between tests."""

    @abstractmethod
    def stop(self) -> None:
        """Stop the DUT and remove what it made (idempotent)."""

    def check(self, script: str, timeout: float = 10.0) -> str:
        """Run a shell script in the DUT; return its output, or raise DutCommandError if it failed."""
        result = self.cmd(script, timeout)
        if not result.ok:
            raise DutCommandError(self.name, result)
        return result.output

    def ip(self, *args: str) -> str:
        """`ip ARGS` (iproute2's, with xfrm) in the DUT; its output, or DutCommandError with it."""
        return self.check("/sbin/ip " + shlex.join(args))

    def sysctl(self, key: str, value) -> None:
        """Set a sysctl in the DUT; reset() puts back the value it had before the first change.

        Through /proc/sys with shell builtins: no process to start (each costs tens of ms in UML)."""
        path = shlex.quote(sysctl_path(key))
        saved = self.__dict__.setdefault("_sysctl_saved", {})
        if key not in saved:
            # procfs answers a 1-byte read with the first byte then EOF: `read` fails yet sets v.
            saved[key] = self.check(f"{{ read -r v || [ -n \"$v\" ]; }} < {path} && echo \"$v\"").strip()
        self.check(f"echo {shlex.quote(str(value))} > {path}")

    def _sysctl_restore_script(self) -> str:
        """Shell lines putting back every sysctl changed since the last reset (and forgetting them)."""
        saved = self.__dict__.pop("_sysctl_saved", {})
        return "".join(f"echo {shlex.quote(v)} > {shlex.quote(sysctl_path(k))}\n" for k, v in saved.items())

    def counters(self) -> dict:
        """Per-interface link statistics, /proc/net/xfrm_stat and SNMP counters (see parse_counters).

        They count since the DUT started; compare two readings with counter_delta()."""
        return parse_counters(self.check(COUNTERS_SCRIPT))

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
