"""A Plan as iproute2 batch text (`ip -batch`), sysctl writes and packet-filter rulesets: pure functions.

The Linux DUTs (host namespace, user-mode-linux guest, your router over SSH) apply what `render(plan)`
returns; nothing here runs anything, so every line is unit-tested without a DUT. Order matters and is
fixed: sysctls, the DUT's interfaces (MAC, MTU, addresses), tunnels, neighbours, routes, rules, xfrm states, xfrm
policies; sysctls of devices the batch creates come after it; filters last.
"""
from __future__ import annotations

import shlex
from dataclasses import dataclass

from grelab.craft.algorithms import xfrm_algorithm_words, xfrm_esn_words
from grelab.dut.plan import Filter, Interface, Neighbour, Plan, Route, Rule, Tunnel, XfrmPolicy, XfrmState, sysctl_path

@dataclass(frozen=True)
class Line:
    """One batch command and the plan item it comes from (named in errors)."""

    text: str
    item: object


@dataclass(frozen=True)
class Rendered:
    sysctls: tuple[tuple[str, str], ...]  # (/proc/sys path, value), before the batch
    batch: tuple[Line, ...]  # for `ip -batch`
    batch6: tuple[Line, ...]  # for `ip -6 -batch`: a batch line cannot say -6 (IPv6 rules without addresses)
    late_sysctls: tuple[tuple[str, str], ...]  # of devices the batch creates
    filters: tuple[Filter, ...]
    udp_encap_ports: tuple[int, ...] = ()

    def iptables(self, family: int) -> str:
        return iptables_restore(self.filters, family)

    def nft(self) -> str:
        return nft_ruleset(self.filters)


def render(plan: Plan) -> Rendered:
    made = {t.name for t in plan.tunnels}
    early, late = [], []
    for key, value in plan.sysctls:
        path = sysctl_path(key)
        parts = path.split("/")
        (late if len(parts) > 7 and parts[6] in made else early).append((path, value))  # ./conf/DEV/key
    batch: list[Line] = []
    for interface in plan.interfaces:
        batch += [Line(text, interface) for text in interface_lines(interface)]
    for tunnel in plan.tunnels:
        batch += [Line(text, tunnel) for text in tunnel_lines(tunnel)]
    batch += [Line(neighbour_line(n), n) for n in plan.neighbours]
    batch += [Line(route_line(r), r) for r in plan.routes]
    batch6 = [Line(rule_line(r), r) for r in plan.rules if r.family == 6]
    batch += [Line(rule_line(r), r) for r in plan.rules if r.family == 4]
    batch += [Line(state_line(s), s) for s in plan.states]
    batch += [Line(policy_line(p), p) for p in plan.policies]
    return Rendered(tuple(early), tuple(batch), tuple(batch6), tuple(late), plan.filters, plan.udp_encap_ports)


def _nodad(address: str) -> str:
    return " nodad" if ":" in address else ""  # usable at once, like the lab's own IPv6 addresses


def interface_lines(i: Interface) -> list[str]:
    lines = []
    if i.mac is not None:  # some drivers (UML's vector device) take a new MAC only while the link is down
        lines.append(f"link set dev {i.name} down")
    if i.mac is not None or i.mtu is not None:
        lines.append(f"link set dev {i.name}" + (f" address {i.mac}" if i.mac else "") + (f" mtu {i.mtu}" if i.mtu else ""))
    lines.append(f"link set dev {i.name} up")
    lines += [f"addr add {a} dev {i.name}{_nodad(a)}" for a in i.addresses]
    return lines


def _flag(on: bool, word: str) -> list[str]:
    return [word] if on else []


def tunnel_lines(t: Tunnel) -> list[str]:
    head = ["link", "add", t.name]
    if t.mtu is not None:
        head += ["mtu", str(t.mtu)]
    if t.mac is not None:
        head += ["address", t.mac]
    words = ["type", t.kind, "local", t.local, "remote", t.remote]
    for name in ("key", "ikey", "okey"):
        if getattr(t, name) is not None:
            words += [name, str(getattr(t, name))]
    for name in ("seq", "iseq", "oseq", "csum", "icsum", "ocsum"):
        words += _flag(getattr(t, name), name)
    six = t.kind.startswith("ip6")
    if t.ttl is not None:
        words += ["hoplimit" if six else "ttl", str(t.ttl)]
    if t.tos is not None:  # iproute2 reads a tos/tclass number as hex ("tos 40" is 0x40): say so
        words += ["tclass" if six else "tos", t.tos if t.tos == "inherit" else f"0x{t.tos:02x}"]
    if t.pmtudisc is not None:
        words += ["pmtudisc" if t.pmtudisc else "nopmtudisc"]
    if t.ignore_df is not None:
        words += ["ignore-df" if t.ignore_df else "noignore-df"]
    if t.encaplimit is not None:
        words += ["encaplimit", str(t.encaplimit)]
    if t.dev is not None:
        words += ["dev", t.dev]
    lines = [" ".join(head + words)]
    if not t.link_local:
        lines.append(f"link set dev {t.name} addrgenmode none")
    lines.append(f"link set dev {t.name} up")
    lines += [f"addr add {a} dev {t.name}{_nodad(a)}" for a in t.addresses]
    return lines


def neighbour_line(n: Neighbour) -> str:
    return f"neigh replace {n.address} lladdr {n.mac} dev {n.dev} nud permanent"


def route_line(r: Route) -> str:
    dst = {"default": "0.0.0.0/0", "default6": "::/0"}.get(r.dst, r.dst)
    words = ["route", "add"] + ([r.type] if r.type != "unicast" else []) + [dst]
    for name, word in (("via", "via"), ("dev", "dev"), ("src", "src"), ("metric", "metric"),
                       ("table", "table"), ("mtu", "mtu")):
        if getattr(r, name) is not None:
            words += [word, str(getattr(r, name))]
    return " ".join(words)


def rule_line(r: Rule) -> str:
    words = ["rule", "add"]
    for name, word in (("priority", "priority"), ("src", "from"), ("dst", "to"), ("iif", "iif"), ("oif", "oif")):
        if getattr(r, name) is not None:
            words += [word, str(getattr(r, name))]
    if r.fwmark is not None:
        words += ["fwmark", f"0x{r.fwmark:x}"]
    return " ".join(words + ["table", str(r.table)])


def _mark_words(mark) -> list[str]:
    return ["mark", f"0x{mark[0]:x}", "mask", f"0x{mark[1]:x}"] if mark else []


def state_line(s: XfrmState) -> str:
    sa = s.sa
    words = ["xfrm", "state", "add", "src", sa.src, "dst", sa.dst, "proto", "esp", "spi", f"0x{sa.spi:08x}",
             "mode", sa.mode, "replay-window", str(s.replay_window)]
    if s.reqid is not None:
        words += ["reqid", str(s.reqid)]
    words += _mark_words(s.mark)
    if sa.nat_t:
        words += ["encap", "espinudp", str(sa.nat_t[0]), str(sa.nat_t[1]), "0.0.0.0"]
    words += [w if w else '""' for w in xfrm_algorithm_words(sa)]  # NULL's empty key, as the batch reads it
    words += xfrm_esn_words(sa, s.seq_hi)
    for name, word in (("byte_limit", "byte-hard"), ("packet_limit", "packet-hard")):
        if getattr(s, name) is not None:
            words += ["limit", word, str(getattr(s, name))]
    return " ".join(words)


def policy_line(p: XfrmPolicy) -> str:
    words = ["xfrm", "policy", "add", "src", p.src, "dst", p.dst]
    if p.proto is not None:
        words += ["proto", str(p.proto)]
    words += ["dir", p.dir]
    if p.priority is not None:
        words += ["priority", str(p.priority)]
    words += _mark_words(p.mark)
    words += ["action", p.action]
    if p.action == "allow":
        words += ["tmpl"]
        if p.tmpl_src is not None:
            words += ["src", p.tmpl_src]
        if p.tmpl_dst is not None:
            words += ["dst", p.tmpl_dst]
        words += ["proto", "esp", "mode", p.mode]
        if p.reqid is not None:
            words += ["reqid", str(p.reqid)]
        words += ["level", p.level]
    return " ".join(words)


# Packet filters: the same rule as iptables arguments (the UML guest's x_tables) and as nft (the host).
_IPTABLES_CHAIN = {"input": "INPUT", "forward": "FORWARD", "output": "OUTPUT"}


def _proto(f: Filter) -> str | None:
    if f.proto is None:
        return None
    if f.proto == "icmp" and f.family == 6:
        return "ipv6-icmp"
    return str(f.proto)


def iptables_restore(filters, family: int) -> str:
    """iptables-restore input (`-n`: appended to what is there) for the filters of one family."""
    tables: dict[str, list[str]] = {}
    for f in filters:
        if f.family != family:
            continue
        words = ["-A", _IPTABLES_CHAIN[f.chain]]
        proto = "tcp" if f.action == "clamp-mss" and f.proto is None else _proto(f)
        if proto is not None:
            words += ["-p", proto]
        for name, flag in (("src", "-s"), ("dst", "-d"), ("iif", "-i"), ("oif", "-o")):
            if getattr(f, name) is not None:
                words += [flag, getattr(f, name)]
        if f.length is not None:
            words += ["-m", "length", "--length", f"{f.length[0]}:{f.length[1]}"]
        if f.action == "clamp-mss":
            words += ["--tcp-flags", "SYN,RST", "SYN", "-j", "TCPMSS", "--set-mss", str(f.set_mss)]
            tables.setdefault("mangle", []).append(" ".join(words))
        else:
            tables.setdefault("filter", []).append(" ".join(words + ["-j", f.action.upper()]))
    return "".join(f"*{table}\n" + "".join(rule + "\n" for rule in rules) + "COMMIT\n" for table, rules in tables.items())


def nft_ruleset(filters) -> str:
    """An `nft -f` ruleset (table inet grelab) holding every filter."""
    chains: dict[str, list[str]] = {}
    for f in filters:
        words = []
        ip = "ip" if f.family == 4 else "ip6"
        words += ["meta", "nfproto", "ipv4" if f.family == 4 else "ipv6"]
        proto = "tcp" if f.action == "clamp-mss" and f.proto is None else _proto(f)
        if proto is not None:
            words += ["meta", "l4proto", proto]
        for name, key in (("src", "saddr"), ("dst", "daddr")):
            if getattr(f, name) is not None:
                words += [ip, key, getattr(f, name)]
        for name, key in (("iif", "iifname"), ("oif", "oifname")):
            if getattr(f, name) is not None:
                words += [key, f'"{getattr(f, name)}"']
        if f.length is not None:
            words += [ip, "length" if f.family == 4 else "length", f"{f.length[0]}-{f.length[1]}"]
        if f.action == "clamp-mss":
            words += ["tcp", "flags", "&", "(syn|rst)", "==", "syn", "tcp", "option", "maxseg", "size", "set", str(f.set_mss)]
        else:
            words += [f.action]
        chains.setdefault(f.chain, []).append(" ".join(words))
    if not chains:
        return ""
    body = "".join(f"  chain {chain} {{\n    type filter hook {chain} priority 0; policy accept;\n"
                   + "".join(f"    {rule}\n" for rule in rules) + "  }\n" for chain, rules in chains.items())
    return "table inet grelab {\n" + body + "}\n"


def commands(rendered: Rendered) -> list[str]:
    """The rendered plan as one shell command per step, the way it is done without batches (a baseline, and a
    DUT with a plain shell): sysctls, `ip` per line, late sysctls."""
    out = [f"echo {shlex.quote(value)} > {path}" for path, value in rendered.sysctls]
    out += ["/sbin/ip " + shlex.join(shlex.split(line.text)) for line in rendered.batch]  # batch quoting -> shell's
    out += ["/sbin/ip -6 " + shlex.join(shlex.split(line.text)) for line in rendered.batch6]
    out += [f"echo {shlex.quote(value)} > {path}" for path, value in rendered.late_sysctls]
    return out


# UDP_ENCAP_ESPINUDP on a bound UDP socket, held by a process: perl (Debian's perl-base is Essential, and its
# builtins reach setsockopt without a module). SOL_UDP 17, UDP_ENCAP 100, UDP_ENCAP_ESPINUDP 2 (linux/udp.h).
UDP_ENCAP_PERL = ('socket(S,2,2,17) or die "socket: $!\\n"; setsockopt(S,17,100,pack("i",2)) or die "UDP_ENCAP: $!\\n"; '
                  'bind(S,pack("S n N x8",2,$ARGV[0],0)) or die "bind: $!\\n"; $|=1; print "bound\\n"; sleep')


def udp_encap_script(ports, perl: str = "perl", fifo_dir: str = "/tmp") -> str:
    """Shell lines starting one UDP-encapsulation socket holder per port, each in the background, and waiting
    (a blocking read on a fifo: no polling) until it is bound. Prints "@@encap PORT PID" per holder, or
    "@@encap-failed PORT: what it said" and sets grelab_failed."""
    out = []
    for port in ports:
        fifo = f"{fifo_dir}/grelab-encap-{port}.$$"
        out.append(f"rm -f {fifo}; mkfifo {fifo}\n{perl} -e {shlex.quote(UDP_ENCAP_PERL)} {port} > {fifo} 2>&1 &\n"
                   f"echo \"@@encap {port} $!\"; read -r grelab_encap < {fifo}; rm -f {fifo}\n"
                   f"[ \"$grelab_encap\" = bound ] || {{ echo \"@@encap-failed {port}: $grelab_encap\"; grelab_failed=1; }}\n")
    return "".join(out)


def stop_pids_script(pids) -> str:
    """Shell lines ending these processes and waiting until they are gone (a child of this shell is reaped by
    `wait`; another is watched with kill -0), so the next plan can bind their ports again."""
    return "".join(f"kill {p} 2>/dev/null; wait {p} 2>/dev/null; while kill -0 {p} 2>/dev/null; do sleep 0.01; done\n"
                   for p in pids)
