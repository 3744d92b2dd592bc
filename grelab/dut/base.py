"""What grelab needs from a device under test (DUT), and the result types it hands back.

A DUT is a tunnel endpoint you can apply a plan to: `apply(plan)` makes it hold what a grelab.dut.plan.Plan
says (interfaces, GRE tunnels, routes, rules, sysctls, xfrm states and policies, filters), `reset()` takes
it all away again, `counters()` reads what it counted, and `plug()` wires its interfaces to the lab. That
is all grelab asks: your DUT (a strongSwan or FRR container, a router over SSH, a box on a cable)
implements those and never sees an iproute2 string. Name it with `--dut your.module:YourClass`, or
register it in your package's metadata under the entry point group `grelab.dut` and pass that name (see
grelab.dut.select). Your constructor is called as `YourClass(interfaces=["wan", "lan"], name="r1")`; set
`capabilities` to what it can do. A DUT with a Linux shell gets `apply` and `counters` for free by
subclassing `ShellDut` and implementing `cmd` (the plan goes to it as one script, in one round trip).

How the lab wires a DUT in: the DUT makes a network namespace (`namespace`) on this host where the
host-side ends of its interfaces live. For each DUT interface the lab creates a veth end inside that
namespace and calls `plug(iface, veth_end)`; from then on frames sent into the lab's end of the veth
arrive on the DUT's interface `iface`, and what the DUT sends there comes back out. The lab deletes the
veth when its topology ends; the DUT itself lives on (one boot per pytest worker) and is `reset()`
between tests.
"""
from __future__ import annotations

import re
import shlex
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass

from grelab.dut.iproute2 import Line, Rendered, render, stop_pids_script, udp_encap_script
from grelab.dut.plan import Plan, sysctl_path
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


class DutApplyError(DutError):
    """A plan item the DUT refused; names the item, the command it became and what the DUT said."""


class NotApplicable(DutError):
    """A plan item this DUT has no equivalent for (an implementation without GRE sequence checking, say): the
    case cannot be told on it. `capability` names what it lacks, in the words of Dut.capabilities; `item` the
    plan item that needs it. A run that asked for this DUT fails the case saying so; `grelab matrix` (pytest
    --not-applicable=skip) records it as "not applicable" with the capability."""

    def __init__(self, dut: str, capability: str, item: str):
        self.dut, self.capability, self.item = dut, capability, item
        super().__init__(f"DUT {dut} lacks {capability}: {item}")


# One round trip for every counter a test asserts on, printed in sections the parser splits on.
COUNTERS_SCRIPT = (
    "cd /sys/class/net && grep -r . */statistics/; echo @@xfrm; cat /proc/net/xfrm_stat 2>/dev/null; "
    "echo @@snmp; cat /proc/net/snmp /proc/net/netstat; echo @@snmp6; cat /proc/net/snmp6"
)


def parse_counters(text: str) -> "Counters":
    """COUNTERS_SCRIPT's output as Counters: links {iface: {stat: n}}, xfrm {name: n}, snmp {name: n}.

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
    return Counters(links, xfrm, snmp)


class Counters(dict):
    """What a DUT counted: {"links": {iface: {stat: n}}, "xfrm": {name: n}, "snmp": {name: n}}.

    `later.delta(earlier)` keeps only what moved, by how much: the "which counter said so" of a test. `at`: when
    they were read (time.time(), the clock of capture timestamps), so a report can tell which frames a delta spans."""

    def __init__(self, links=None, xfrm=None, snmp=None):
        super().__init__(links=links or {}, xfrm=xfrm or {}, snmp=snmp or {})
        self.at = time.time()

    def delta(self, earlier: "Counters") -> "Counters":
        moved = {}
        for section in ("xfrm", "snmp"):
            moved[section] = {k: v - earlier[section].get(k, 0) for k, v in self[section].items()
                              if v != earlier[section].get(k, 0)}
        links = {}
        for iface, stats in self["links"].items():
            old = earlier["links"].get(iface, {})
            changed = {k: v - old.get(k, 0) for k, v in stats.items() if v != old.get(k, 0)}
            if changed:
                links[iface] = changed
        return Counters(links, moved["xfrm"], moved["snmp"])

    def link(self, iface: str) -> dict[str, int]:
        return self["links"].get(iface, {})

    def flat(self) -> dict[str, int]:
        """Every counter by one name: "IFACE.stat" (gre1.rx_crc_errors), "snmp.Name" (snmp.IcmpOutDestUnreachs),
        "xfrm.Name" (xfrm.XfrmInNoStates); on a delta, what moved and by how much."""
        flat = {f"{iface}.{stat}": n for iface, stats in self["links"].items() for stat, n in stats.items()}
        for section in ("snmp", "xfrm"):
            flat.update({f"{section}.{name}": n for name, n in self[section].items()})
        return flat


def counter_delta(before: dict, after: dict) -> Counters:
    """after - before, section by section, keeping only what moved."""
    return Counters(**after).delta(Counters(**before))


class ResetFailed(DutError):
    """A DUT's reset, begun in the background while a lab was being built for it, failed (Dut.ready)."""


class Dut(ABC):
    """A device under test: a tunnel endpoint you can apply a plan to. Subclass it to bring your own."""

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
    def apply(self, plan: Plan) -> None:
        """Make the DUT hold what `plan` says, on top of what it holds (in one round trip where it can);
        raise DutApplyError naming the plan item it refused."""

    @abstractmethod
    def reset(self) -> None:
        """Back to the state right after start: nothing any plan added remains (tunnels, SAs, policies, rules,
        addresses, routes, filters); the interfaces up; sysctls restored. Fast (tens of ms): it runs between tests."""

    @abstractmethod
    def counters(self) -> Counters:
        """Per-interface link statistics, /proc/net/xfrm_stat and SNMP counters (see Counters), counted since
        the DUT started: compare two readings with `later.delta(earlier)`."""

    @abstractmethod
    def stop(self) -> None:
        """Stop the DUT and remove what it made (idempotent)."""

    pending_reset = None
    """A reset begun in the background (concurrent.futures.Future) that `ready()` waits for: the pytest plugin's
    pool lends a scenario's lab the DUT before its reset has ended, so the lab's other namespaces and links are
    made meanwhile."""

    def ready(self) -> None:
        """Return once the DUT can take a plan: its pending reset ended; ResetFailed when that reset failed."""
        pending, self.pending_reset = self.pending_reset, None
        if pending is not None:
            try:
                pending.result()
            except DutError as exc:
                raise ResetFailed(f"DUT {self.name} could not be reset: {exc}") from exc

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def apply_failures(dut: str, rendered: Rendered, failed: dict[int, str], batch6: bool = False) -> list[str]:
    """{1-based batch line: what ip said} as lines naming each refused plan item."""
    lines = rendered.batch6 if batch6 else rendered.batch
    out = []
    for number, said in sorted(failed.items()):
        line: Line | None = lines[number - 1] if 0 < number <= len(lines) else None
        if line is None:
            out.append(f"line {number}: {said}")
        else:
            out.append(f"`ip {'-6 ' if batch6 else ''}{line.text}` (from {line.item!r}): {said or 'failed'}")
    return out


def ip_batch_failures(output: str) -> dict[int, str]:
    """`ip -force -batch` output -> {line number: the messages before its "Command failed -:N"} (or the UML
    guest's "@@failed N", numbered within the batch already)."""
    failed, said = {}, []
    for text in output.splitlines():
        m = re.match(r"(?:Command failed -:|@@failed )(-?\d+)", text)
        if m:
            failed[int(m.group(1))] = " ".join(said).strip()
            said = []
        elif text.strip():
            said.append(text.strip())
    return failed


class ShellDut(Dut):
    """A DUT with a Linux shell: implement `cmd` (and plug, reset, stop). `apply` sends the whole plan as one
    script (sysctls as shell builtins, iproute2's lines through one `ip -batch`), `counters` reads the kernel's
    counters in one script, `ip` and `sysctl` are there for what a plan cannot say."""

    @abstractmethod
    def cmd(self, script: str, timeout: float = 10.0) -> CommandResult:
        """Run a shell script in the DUT and return its status and output; raise DutError if the DUT
        itself fails (dies, hangs past timeout), never for a non-zero status."""

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
        """Set one sysctl in the DUT; reset() puts back the value it had before the first change."""
        self.apply(Plan(sysctls={key: value}))

    # What every sysctl a plan changed held at boot ({/proc/sys path: value}), learnt at its first change
    # (by `cat`: the shell's `read` takes procfs sysctls one byte at a time, and procfs answers a read past
    # the start with EOF, so `read` would keep "6" of "64"); and those changed since the last reset.
    def _sysctl_state(self) -> tuple[dict[str, str], set[str]]:
        return self.__dict__.setdefault("_sysctl_boot", {}), self.__dict__.setdefault("_sysctl_changed", set())

    def _sysctl_script(self, rendered: Rendered) -> tuple[list[str], str, str]:
        """(paths whose boot value the script prints first, the lines that print them, the lines writing
        the early sysctls) for an apply script; records the paths as changed."""
        boot, changed = self._sysctl_state()
        # Sysctls of devices the plan creates (late_sysctls) have no value to restore: reset removes the device.
        paths = [p for p, _ in rendered.sysctls]
        unknown = [p for p in dict.fromkeys(paths) if p not in boot]
        changed.update(paths)
        learn = f"cat {' '.join(map(shlex.quote, unknown))} || echo '@@sysctl-unreadable'\n" if unknown else ""
        return unknown, learn, "".join(_write(p, v) for p, v in rendered.sysctls)

    def _learn_sysctls(self, unknown: list[str], values: list[str]) -> None:
        boot, _ = self._sysctl_state()
        if len(values) != len(unknown):
            raise DutError(f"DUT {self.name}: could not read sysctls {unknown}: {values}")
        boot.update(zip(unknown, values))

    def _sysctl_restore_script(self) -> str:
        """Shell lines putting back every sysctl changed since the last reset (one of a device gone is skipped)."""
        boot, changed = self._sysctl_state()
        lines = "".join(f"[ ! -e {shlex.quote(p)} ] || echo {shlex.quote(boot[p])} > {shlex.quote(p)}\n"
                        for p in sorted(changed) if p in boot)
        changed.clear()
        return lines

    def apply(self, plan: Plan) -> None:
        rendered = render(plan)
        unknown, learn, early = self._sysctl_script(rendered)
        script = learn + "echo @@learnt\n" + early + _batch_here(rendered.batch, "") + "echo @@batch6\n"
        script += _batch_here(rendered.batch6, "-6 ") + "echo @@late\n"
        script += "".join(_write(p, v) for p, v in rendered.late_sysctls) + self._helpers_script(rendered)
        script += self._filter_script(rendered) + self._daemons_script(plan.daemons)
        if plan.daemons:  # they start within this round trip: a time since then is one since their start, or more
            self.daemons_started = time.monotonic()
        result = self.cmd(script)
        self._daemons_started(result.output)
        self._check_applied(rendered, unknown, result.output, result.ok)

    def _daemons_script(self, daemons) -> str:
        """Shell lines starting the plan's daemons (grelab.dut.daemon); a DUT that runs them says how."""
        if daemons:
            raise DutError(f"DUT {self.name} ({type(self).__name__}) cannot run daemons "
                           f"({', '.join(d.name for d in daemons)})")
        return ""

    def _daemons_started(self, output: str) -> None:
        """An apply's output, for the pids of the daemons it started (grelab.dut.daemon.started)."""

    perl = "perl"
    """How the DUT's shell runs perl (the UDP-encapsulation socket holder, Plan.udp_encap_ports)."""

    def _helpers_script(self, rendered: Rendered) -> str:
        """Shell lines starting the plan's helper processes (UDP-encapsulation sockets); last in an apply."""
        return udp_encap_script(rendered.udp_encap_ports, self.perl)

    def _helpers_stop_script(self) -> str:
        """Shell lines ending the helpers plans started (for reset), forgetting them."""
        pids, self.__dict__["_helper_pids"] = self.__dict__.get("_helper_pids", []), []
        return stop_pids_script(pids)

    def _filter_script(self, rendered: Rendered) -> str:
        """Shell lines loading the plan's filters: nft (override for a DUT with iptables only)."""
        text = rendered.nft()
        return f"nft -f - <<'GRELAB_EOF'\n{text}GRELAB_EOF\n" if text else ""

    def _check_applied(self, rendered: Rendered, unknown: list[str], output: str, ok: bool) -> None:
        learnt, _, rest = output.partition("@@learnt")
        self._learn_sysctls(unknown, learnt.split())
        batch, _, rest = rest.partition("@@batch6")
        batch6, _, late = rest.partition("@@late")
        problems = apply_failures(self.name, rendered, ip_batch_failures(batch))
        problems += apply_failures(self.name, rendered, ip_batch_failures(batch6), batch6=True)
        problems += [line[2:] for line in output.splitlines()
                     if line.startswith(("@@sysctl-failed", "@@died", "@@encap-failed"))]
        self.__dict__.setdefault("_helper_pids", []).extend(
            line.split()[2] for line in output.splitlines() if line.startswith("@@encap ") and len(line.split()) == 3)
        if not ok or problems:
            said = late.strip() or batch.strip()
            raise DutApplyError(f"DUT {self.name} refused part of the plan:\n  " +
                                "\n  ".join(problems or [f"`{said}`"]))

    def counters(self) -> Counters:
        return parse_counters(self.check(COUNTERS_SCRIPT))


def _write(path: str, value: str) -> str:
    return f"echo {shlex.quote(str(value))} > {shlex.quote(path)} || echo '@@sysctl-failed: {path}'\n"


def _batch_here(lines, option: str) -> str:
    if not lines:
        return ""
    body = "".join(line.text + "\n" for line in lines)
    return f"/sbin/ip {option}-force -batch - <<'GRELAB_EOF' 2>&1\n{body}GRELAB_EOF\n"
