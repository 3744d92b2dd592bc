"""A scenario's network, live: what a case does and asserts, in the network's words.

    reply = net.ping("h1", "h2")                              # h1's kernel pings h2's address
    net.transit.carries_exactly(net.sent_by("h1", "h2"))       # only the tunnel, carrying just that
    moved = net.dut("r1").counters().delta(before)             # which counter said so
    net.send("grelab", IP(...)/GRE()/...)                     # crafted, framed and (ESP) encrypted for you
    net.expect_counters("r1", before, {"XfrmInNoStates": 1})  # a refusal: what the kernel counted
    net.expect_moved("r1", before, {"gre1.rx_crc_errors": 1}, WATCHED)   # exactly that of the counters WATCHED
    net.transit.expect(reply_template, ignore=["IP.id"])       # decrypted with the variant's SAs first
    link, frames = net.expect_on_any(["lan2", "lan3"], template)   # "verify on any of these ports"

Every golden link is captured from before the case body runs (grelab.golden.recorder); link chatter (ARP,
ND, MLD), also inside the tunnel, never counts.
"""
from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
import warnings

from scapy.layers.inet import TCP

from grelab.craft.esp import SA, encrypt
from grelab.dut.base import ResetFailed
from grelab.expect import expect as _expect
from grelab.expect.expect import expect_none
from grelab.expect.match import is_chatter, is_routing
from grelab.expect.tunnel import expect_tunnel_carries
from grelab.errors import Differing, GrelabError, Mismatch
from grelab.scenario import hosts
from grelab.together import side_by_side
# Scenario and Variant (grelab.scenario.spec) are only named in annotations here: spec makes a Net (its fixture),
# so importing spec would close a circle.


class Link:
    """A golden link of the scenario: its capture, its frames, what it must carry."""

    def __init__(self, net: "Net", name: str):
        self.net, self.name = net, name

    @property
    def capture(self):
        return self.net._captures[self.name]

    def frames(self) -> list[bytes]:
        """Every frame on the link so far (the capture settled first), chatter left out."""
        return [data for _, data in self.net.golden.frames(self.name) if self.net.counts(data)]

    def carries_exactly(self, passengers: list[bytes], proto: int = 0x86DD) -> None:
        """Only the carrier (GRE of `proto`, inside ESP in an ESP variant) crossed, carrying exactly these."""
        with self._named():
            expect_tunnel_carries(self.frames(), passengers, sas=self.net.sas, proto=proto, endpoints=self.net.endpoints)

    def expect(self, packets, **options) -> list:
        """grelab.expect.expect on this link, ESP of the variant decrypted first."""
        options.setdefault("sas", self.net.sas)
        with self._named():
            return _expect(self.capture, packets, **options)

    def expect_none(self, packets=None, **options) -> None:
        options.setdefault("sas", self.net.sas)
        with self._named():
            expect_none(self.capture, packets, **options)

    @contextlib.contextmanager
    def _named(self):
        """A mismatch on this link says where by the link's name (transit), not its capture's interface."""
        try:
            yield
        except Mismatch as exc:
            exc.differing = dataclasses.replace(exc.differing, where=self.name)
            raise


class Net:
    """One case's network: the built lab, its DUTs (reset, with the variant's tunnels), golden captures."""

    def __init__(self, scenario: Scenario, variant: Variant, lab, duts: dict, golden, sas: tuple[SA, ...]):
        self.scenario, self.variant, self.lab, self.duts, self.golden, self.sas = \
            scenario, variant, lab, duts, golden, sas
        self._captures: dict = {}
        self._esp_seq: dict[int, int] = {}
        self._counts: dict[bytes, bool] = {}  # frame -> counts: a case asks of the same frames again and again
        self.endpoints: set[tuple[str, str]] = set()  # (local, remote) of every tunnel the DUTs hold: GRE's outer addresses

    @classmethod
    def start(cls, scenario: Scenario, variant: Variant, duts_fixture, lab_fixture, golden) -> "Net":
        """The case's network: its DUTs (their resets may still be ending while the lab is built: the build waits
        for all of them before the first plan) and the lab. A DUT whose reset failed meanwhile is started again by the
        pool, and the lab built again, as if the DUTs had been asked for after their resets."""
        try:
            return cls._start(scenario, variant, duts_fixture, lab_fixture, golden, ready_later=True)
        except ResetFailed as exc:
            warnings.warn(f"{exc}; it is started again")
            return cls._start(scenario, variant, duts_fixture, lab_fixture, golden, ready_later=False)

    @classmethod
    def _start(cls, scenario: Scenario, variant: Variant, duts_fixture, lab_fixture, golden, ready_later: bool):
        got = duts_fixture(*scenario.duts, interfaces=scenario.interfaces, ready_later=ready_later)
        duts = dict(zip(scenario.duts, got if len(scenario.duts) > 1 else [got]))
        sas: list[SA] = []

        def sa_pair(local: str, remote: str) -> tuple[SA, SA]:
            pair = scenario.sas(variant, local, remote)
            sas.extend(sa for sa in pair if sa not in sas)
            return pair
        plans = scenario.tunnels(variant, sa_pair) if scenario.tunnels else {}
        built = lab_fixture(scenario.with_plans(scenario.topology(**duts), plans))
        net = cls(scenario, variant, built, duts, golden, tuple(sas))
        net._tunnels(plans)
        for name, (node, ifname, *expression) in scenario.links.items():
            net._captures[name] = golden.capture(name, built, node, ifname, *expression)
        golden.sas(*net.sas)
        if scenario.routing:
            golden.leave_out_routing(scenario.routing)
        for comment in scenario.comments:
            net._explain(comment.text.format(carrier=variant.carrier(scenario.carrier)), comment.link, comment.sent_by,
                         comment.match)
        return net

    def counts(self, frame: bytes) -> bool:
        """Whether a frame is traffic the case is about: not link chatter, nor the daemons' routing protocol. Each
        frame dissected once (scapy's ~6,000 frames/s made a 150,000-byte transfer's checks take ~0.4 s)."""
        known = self._counts.get(frame)
        if known is None:
            routing = self.scenario.routing
            known = self._counts[frame] = not is_chatter(frame, self.sas) and not (
                routing and is_routing(frame, self.sas, routing))
        return known

    def negotiated(self, sas) -> tuple[SA, ...]:
        """SAs a daemon negotiated (random SPIs and keys, read from a DUT's kernel: grelab.dut.daemon.read_sas) are the
        case's from now on: expectations decrypt with them, and the golden holds their ESP re-encrypted with
        stand-ins derived like a variant's SAs (the n-th of a direction, n in the id: the same every run). SAs
        already known are skipped. Returns the new SAs' stand-ins."""
        import dataclasses
        stand_ins = []
        for sa in sas:
            if any(sa.spi == known.spi for known in self.sas):
                continue
            n = 1 + sum((known.src, known.dst) == (sa.src, sa.dst) for known in self.sas)  # this direction's n-th
            variant = dataclasses.replace(self.variant, id=f"{self.variant.id}-negotiated-{n}", esp=sa.algorithm, sas=())
            stand_in = dataclasses.replace(self.scenario.derived_sa(variant, sa.src, sa.dst), mode=sa.mode,
                                           nat_t=sa.nat_t, esn=sa.esn)
            self.golden.stand_in(sa, stand_in)
            self.golden.sas(sa)
            self.sas += (sa,)
            self._counts.clear()  # ESP it could not decrypt before (never chatter) it can now
            stand_ins.append(stand_in)
        return tuple(stand_ins)

    def explain(self, text: str, link: str | None = None, sent_by: str | None = None, match=None) -> None:
        """The case's own comment for frames on `link` (any if None) put there by `sent_by` (a node, or anyone)
        and matching `match` (a template or a function of the frame's bytes, or None): it wins over the
        scenario's comments, and over the case's earlier ones."""
        self._explain(text, link, sent_by, match, first=True)

    def _explain(self, text: str, link, sent_by, match=None, first: bool = False) -> None:
        if match is not None and not callable(match):
            from grelab.expect.match import Template
            match = Template(match).matches
        if sent_by is not None:
            raw, inner = self._mac_of(sent_by), match
            match = lambda frame: frame[6:12] == raw and (inner is None or inner(frame))  # noqa: E731
        self.golden.explain(text, link, match, first=first)

    def link(self, name: str) -> Link:
        if name not in self.scenario.links:
            raise GrelabError(f"no link {name!r} in scenario {self.scenario.name}; links: {', '.join(self.scenario.links)}")
        return Link(self, name)

    @property
    def transit(self) -> Link:
        return self.link(self.scenario.transit)

    def dut(self, name: str):
        try:
            return self.duts[name]
        except KeyError:
            raise GrelabError(f"no DUT {name!r} in scenario {self.scenario.name}; DUTs: {', '.join(self.duts)}") from None

    def apply(self, plans: dict) -> None:
        """Apply {DUT name: Plan} on top of what the DUTs hold (a case's own tunnels), the DUTs side by side."""
        side_by_side(lambda item: self.dut(item[0]).apply(item[1]), plans.items())
        self._tunnels(plans)

    def _tunnels(self, plans: dict) -> None:
        self.endpoints |= {(t.local, t.remote) for plan in plans.values() for t in plan.tunnels if t.local and t.remote}

    def leave_out(self, match, link: str | None = None) -> None:
        """Keep frames on `link` (any if None) matching `match` (a function of the frame's bytes) out of the golden:
        only for what the kernel decides by timing (a TCP receiver's pure ACKs); expectations still see them."""
        self.golden.leave_out(match, link)

    def order(self, key, link: str | None = None) -> None:
        """The golden holds frames on `link` (any if None) sorted by key(frame bytes), not by arrival: only for
        traffic whose interleaving the scheduler decides (a stream's requests and replies); expectations see arrival."""
        self.golden.order(key, link)

    def set_mtu(self, node: str, ifname: str, mtu: int) -> None:
        """Change the MTU of a lab node's interface (not a DUT's: give the DUT an Interface in a plan) for this
        case: one ioctl in the node's namespace, the link stays up."""
        import fcntl
        import socket
        import struct
        name = self.lab.link_end(node, ifname).ifname

        def set_it() -> None:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                fcntl.ioctl(s, 0x8922, struct.pack("16si12x", name.encode(), mtu))  # SIOCSIFMTU
        self.lab.run_in(node, set_it)

    def wait_counter(self, dut: str, name: str, before, moved: int = 1, timeout: float = 2.0):
        """Poll the DUT's counters until `name` (as Counters.flat names it, e.g. snmp.IcmpInDestUnreachs) has
        moved by at least `moved` since `before`; the delta then, or AssertionError at the deadline. Only for
        what nothing on the wire tells (that the DUT took in a packet it answers with silence)."""
        deadline = time.monotonic() + timeout
        while True:
            delta = self.dut(dut).counters().delta(before)
            if delta.flat().get(name, 0) >= moved:
                return delta
            if time.monotonic() > deadline:
                got = delta.flat().get(name, 0)
                raise Mismatch(f"DUT {dut}: {name} moved {got} within {timeout} s, not {moved}; what moved: "
                               f"{delta.flat()}", Differing(f"DUT {dut}", name, f"{moved} or more", str(got)))

    def address(self, host: str) -> str:
        try:
            return self.scenario.hosts[host]
        except KeyError:
            raise GrelabError(f"no host {host!r} in scenario {self.scenario.name}; hosts: {', '.join(self.scenario.hosts)}") from None

    # What hosts do, through their own kernels.
    def ping(self, src: str, dst: str, **options) -> hosts.EchoReply:
        """One echo from host src to host dst's address (ICMPv6 or ICMP, by the address)."""
        return hosts.ping(self.lab, src, self.address(dst), **options)

    def tcp(self, client: str, server: str, **options) -> hosts.TcpExchange:
        """A TCP echo exchange (grelab.scenario.hosts.tcp_echo). The golden keeps every segment but the pure ACKs:
        whether an ACK rides on the next segment or goes alone is the kernels' delayed-ACK timer against the
        scheduler (a loaded machine drew a lone ACK before a FIN); expectations still see them all."""
        from grelab.expect.tunnel import tcp_segments
        self.leave_out(lambda frame: any(p[TCP].flags == "A" and not len(p[TCP].payload)
                                         for p in tcp_segments([frame], self.sas)))
        return hosts.tcp_echo(self.lab, client, server, self.address(server), **options)

    def transfer(self, client: str, server: str, size: int, address: str | None = None, **options) -> int:
        """`size` bytes over TCP from client to server (at its address, or `address`); what the server got."""
        return hosts.tcp_transfer(self.lab, client, server, address or self.address(server), size, **options)

    def sent_by(self, *names: str) -> list[bytes]:
        """The IP packets these hosts put on their links, in time order: exactly what a tunnel must carry."""
        sent = []
        for host in names:
            link, raw = self._link_of(host), self._mac_of(host)
            sent += [(stamp, data) for stamp, data in self.golden.frames(link)
                     if data[6:12] == raw and not is_chatter(data)]
        return [data[14:] for _, data in sorted(sent)]

    # What grelab itself does, as a node of the lab.
    def send(self, node: str, packet, ifname: str | None = None, protect: bool = True,
             comment: str | None = None) -> bytes:
        """Send an IP packet (scapy, or its bytes) from node (grelab crafting, as a far endpoint): framed from its
        link end to the peer's MAC, and ESP-protected when the variant has an SA from its source (sequence
        numbers from 1) unless protect=False or it is ESP already (sent as it is: plaintext, or ESP the case made).
        comment: what the golden says of exactly this frame (over the scenario's comments). Returns the frame."""
        from scapy.layers.l2 import Ether
        end, peer = self._ends(node, ifname)
        if protect and not isinstance(packet, (bytes, bytearray)) and not packet.haslayer("ESP"):
            packet = self.protect(packet, required=False)
        packet = bytes(packet)
        frame = bytes(Ether(src=end.mac, dst=peer.mac, type=0x86DD if packet[0] >> 4 == 6 else 0x0800)) + packet
        if comment is not None:
            self.golden.explain(comment, match=lambda data, frame=frame: data == frame, first=True)
        with self.lab.sender(end.node, end.ifname) as tx:
            tx.send(frame)
        return frame

    def protect(self, packet, seq: int | None = None, sa: SA | None = None, required: bool = True):
        """The packet inside ESP of `sa` (default: the variant's SA for its addresses), with sequence number seq
        (default: the SA's next one; a given seq becomes the next one's base). Unchanged when no SA fits and
        not required."""
        sa = sa or next((sa for sa in self.sas if sa.src == packet.src and sa.dst == packet.dst), None)
        if sa is None:
            if required:
                raise GrelabError(f"no SA of variant {self.variant.id} for {packet.src} -> {packet.dst}")
            return packet
        seq = self._esp_seq.get(sa.spi, 0) + 1 if seq is None else seq
        self._esp_seq[sa.spi] = max(seq, self._esp_seq.get(sa.spi, 0))
        return encrypt(sa, packet, seq=seq)

    def expect_counters(self, dut: str, before, xfrm: dict[str, int], timeout: float = 2.0):
        """Wait until the DUT's /proc/net/xfrm_stat moved by exactly `xfrm` since `before` (its counters() then):
        a refused packet leaves no trace on the wire, so the counters are polled against the deadline. Returns the
        whole delta (links, xfrm, snmp); fails naming what moved instead."""
        deadline = time.monotonic() + timeout
        while True:
            moved = self.dut(dut).counters().delta(before)
            if moved["xfrm"] == xfrm:
                self.golden.counted(dut, before.at, moved.at, {f"xfrm.{k}": n for k, n in xfrm.items()})
                return moved
            reached = all(moved["xfrm"].get(name, 0) >= n for name, n in xfrm.items())
            if reached or time.monotonic() > deadline:
                raise Mismatch(f"DUT {dut}: /proc/net/xfrm_stat moved by {moved['xfrm'] or 'nothing'}, expected "
                               f"exactly {xfrm}; SNMP moved by {moved['snmp']}, links by {moved['links']}",
                               first_counter(f"DUT {dut}", {f"xfrm.{k}": n for k, n in xfrm.items()},
                                             {f"xfrm.{k}": n for k, n in moved["xfrm"].items()}))

    def expect_moved(self, dut: str, before, moved: dict[str, int], watched) -> dict[str, int]:
        """Of the `watched` counters (Counters.flat names: gre1.rx_crc_errors, snmp.IcmpOutDestUnreachs), exactly
        `moved` moved since `before` (the DUT's counters() then). The run report draws what the DUT dropped meanwhile
        with these beside it. Returns every counter that moved (flat)."""
        after = self.dut(dut).counters()
        delta = after.delta(before).flat()
        seen = {k: delta[k] for k in watched if k in delta}
        if seen != moved:
            raise Mismatch(f"DUT {dut}: of {', '.join(watched)}, {seen or 'nothing'} moved, expected exactly {moved}",
                           first_counter(f"DUT {dut}", moved, seen))
        self.golden.counted(dut, before.at, after.at, moved)
        return delta

    def expect_on_any(self, links: list[str], packets, timeout: float = 1.0, **options) -> tuple[str, list]:
        """Wait until the packets arrive on one of these links (whichever first); (that link, the frames)."""
        deadline = time.monotonic() + timeout
        views = [self.link(name) for name in links]
        changed = threading.Event()
        for view in views:
            view.capture.on_frames(changed.set)
        failures = []
        while True:
            failures.clear()
            for view in views:
                try:
                    return view.name, view.expect(packets, timeout=0, **options)
                except AssertionError as exc:
                    failures.append(f"on {view.name}: {exc}")
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"none of {', '.join(links)} got it within {timeout} s:\n" + "\n".join(failures))
            changed.wait(left)
            changed.clear()

    def _ends(self, node: str, ifname: str | None):
        for link in self.lab.topology.links:
            for end, other in ((link.a, link.b), (link.b, link.a)):
                if end.node == node and ifname in (None, end.ifname):
                    return self.lab.link_end(end.node, end.ifname), self.lab.link_end(other.node, other.ifname)
        raise GrelabError(f"node {node!r} has no link{' ' + ifname if ifname else ''} in scenario {self.scenario.name}")

    def _link_of(self, host: str) -> str:
        for name, (node, *_) in self.scenario.links.items():
            if node == host:
                return name
        raise GrelabError(f"host {host!r} is on no golden link of scenario {self.scenario.name}")

    def _mac_of(self, host: str) -> bytes:
        from scapy.utils import mac2str
        node, ifname, *_ = self.scenario.links[self._link_of(host)]
        return mac2str(self.lab.link_end(node, ifname).mac)


def first_counter(where: str, expected: dict[str, int], got: dict[str, int]) -> Differing:
    """The first counter (in the order expected names them, then the others) that moved other than expected (one
    expected to move by 0 that is not among those seen counts too: the dicts differ)."""
    name = next(k for k in [*expected, *got] if expected.get(k) != got.get(k))
    return Differing(where, name, str(expected.get(name, 0)), str(got.get(name, 0)))
