"""IKEv2 with real daemons, as data: strongSwan's charon and libreswan's pluto negotiate the ESP that protects the two
offices' GRE (grelab.networks.offices), in four pairings, the peers authenticated by a pre-shared key or by
certificates of a test CA made at run time (grelab.networks.test_ca).

    r1 (initiator) ==IKEv2, UDP 500, across the isp== r2 (responder)
    then ESP in transport mode around GRE between 198.51.100.1 and 203.0.113.1, SPIs and keys negotiated

A variant names its pairing, initiator→responder (Variant.implementation: "strongswan→libreswan"); r1 runs the
initiator's implementation, r2 the responder's, each a row of grelab.networks.ike_daemons (its daemons, config,
client commands, how it logs an authentication). Once both hold the connection, r1 initiates. grelab reads the keys
back from r1's kernel (`ip -s xfrm state`: grelab.dut.daemon.read_sas) into the case's SAs (Net.negotiated), so the
case's expectations decrypt the transit, and its golden holds that ESP re-encrypted with stand-in SAs derived like
a variant's (the same every run). IKE itself (random SPIs, nonces, key exchange) is left out of goldens; when the
two daemons do not agree, the failure shows the IKE exchange as the transit carried it (grelab.networks.ike_wire).
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass
from concurrent.futures import ThreadPoolExecutor

from scapy.layers.inet import IP

from grelab.craft.peel import peel
from grelab.dut.daemon import folder, read_sas, wait_until
from grelab.networks import offices
from grelab.networks.ike_daemons import IMPLEMENTATIONS, PSK_AUTH, End, Implementation
from grelab.networks.ike_wire import exchange
from grelab.scenario.spec import Scenario, Variant

ESP_ALGORITHM = "gcm128"  # what both rows propose for ESP (AES-GCM-128), for the variants and stand-in SAs
# The daemons' start to the child SA in both kernels (both start together, r1 initiates once both hold the
# connection): the bound the scenario asserts.
CONVERGENCE_S = 5
PAIRINGS = (("strongswan", "strongswan"), ("strongswan", "libreswan"), ("libreswan", "strongswan"),
            ("libreswan", "libreswan"))
AUTHS = ("psk", "certs")


def variant(initiator: str, responder: str, auth: str) -> Variant:
    """The telling with r1 running `initiator`, r2 `responder`, authenticated by `auth`. strongSwan on both sides keeps
    the story's first ids (ikev2-psk-gcm128: its goldens' stand-in SAs derive from them); the others name their pairing."""
    pairing = "" if (initiator, responder) == ("strongswan", "strongswan") else f"-{initiator}-{responder}"
    return Variant(f"ikev2-{auth}-{ESP_ALGORITHM}{pairing}", esp=ESP_ALGORITHM, implementation=f"{initiator}→{responder}")


VARIANTS = tuple(variant(i, r, auth) for i, r in PAIRINGS for auth in AUTHS)
PSK_VARIANT, CERTS_VARIANT = VARIANTS[:2]  # strongSwan on both sides


def telling(v: Variant) -> tuple[Implementation, Implementation, str]:
    """(r1's implementation, r2's, "psk" or "certs") of a variant."""
    initiator, responder = v.implementation.split("→")
    return IMPLEMENTATIONS[initiator], IMPLEMENTATIONS[responder], "certs" if "-certs-" in v.id else "psk"


def routers(v: Variant, sas) -> dict[str, offices.Plan]:
    """The offices' GRE tunnel, and in each router its implementation's daemons to protect it."""
    r1, r2, auth = telling(v)
    plans = offices.connect(offices.PLAIN_GRE, sas)
    plans["r1"] += r1.plan(End("r1", "r2", offices.R1_WAN, offices.R2_WAN, auth, v.mode))
    plans["r2"] += r2.plan(End("r2", "r1", offices.R2_WAN, offices.R1_WAN, auth, v.mode))
    return plans


def two_offices_ike(name: str = "ikev2", variants=VARIANTS, **changes) -> Scenario:
    """The two offices, their GRE protected by ESP that the daemons negotiate (IKE left out of goldens)."""
    fields = dict(tunnels=routers, routing=frozenset({"ike"}))
    return offices.two_offices(name, variants, **{**fields, **changes})


def rows(net) -> dict[str, Implementation]:
    """{router: the implementation it runs} in this case."""
    r1, r2, _ = telling(net.variant)
    return {"r1": r1, "r2": r2}


def log_of(net, router: str, implementations: dict[str, Implementation] | None = None) -> str:
    return folder(net.dut(router), (implementations or rows(net))[router].daemon) + "/log"


def expected_authentication(net) -> dict[str, str]:
    """{router: how it must say it authenticated the other}: the pre-shared key; or the signature scheme the initiator
    (r1) signs with, and the one the responder (r2) signs with, or r1's again if r2's implementation mirrors it
    (ike_daemons.Implementation.signature, mirrors)."""
    r1, r2, auth = telling(net.variant)
    if auth == "psk":
        return {"r1": PSK_AUTH, "r2": PSK_AUTH}
    return {"r1": r1.signature if r2.mirrors else r2.signature, "r2": r1.signature}


def authenticated(net, implementations: dict[str, Implementation] | None = None) -> dict[str, str]:
    """{router: how its daemon says it authenticated the other router}, from its log, in grelab's words
    (ike_daemons.PSK_AUTH ...), else its own; implementations: {router: its row}, else the variant's (rows)."""
    implementations = implementations or rows(net)
    out = {}
    for me, peer in (("r1", "r2"), ("r2", "r1")):
        log = net.dut(me).cmd(f"cat {log_of(net, me, implementations)}").output
        out[me] = implementations[me].how_authenticated(log, peer)
    return out


# Both ESP states and the outbound policy in the kernel (a DUT shell test).
INSTALLED = "[ $(/sbin/ip xfrm state | grep -c '^src') -ge 2 ] && /sbin/ip xfrm policy | grep -q 'dir out'"


def established(net, record_property) -> float:
    """Once both daemons hold the connection (each logs its loading), r1 initiates it (had r1 started it on loading,
    r2 might not know it yet and refuse it for good, NO_PROPOSAL_CHOSEN); then until both kernels hold the negotiated
    SAs and policies. The seconds since the daemons started, reported as the case's convergence_s, at most
    CONVERGENCE_S; a failure shows the IKE exchange the transit carried. The SAs are then the case's
    (Net.negotiated)."""
    started = min(net.dut(name).daemons_started for name in ("r1", "r2"))
    left = lambda: max(0.0, CONVERGENCE_S - (time.monotonic() - started))  # noqa: E731
    implementations = rows(net)
    with shown_on_the_wire(net):
        for router, row in implementations.items():
            wait_until(net.dut(router), row.loaded.format(log=log_of(net, router)), timeout=left(),
                       what=f"{row.name}'s connection loaded", logs=row.logs)
        r1 = net.dut("r1")
        r1.check(implementations["r1"].initiate(r1, int(left())))
        for router, row in implementations.items():
            wait_until(net.dut(router), INSTALLED, timeout=left(), what="the IKE-negotiated SAs", logs=[row.daemon])
    took = time.monotonic() - started
    record_property("convergence_s", round(took, 2))
    print(f"IKE SAs installed in {took:.2f} s ({net.variant.implementation})")
    net.negotiated(read_sas(r1))
    return took


@contextmanager
def shown_on_the_wire(net):
    """A failure inside (a deadline passed, a client refused) says also what IKE the transit carried so far, message
    by message: which exchange, who sent it, its payloads, the proposals and notifies of those not encrypted."""
    try:
        yield
    except Exception as error:
        raise AssertionError(f"{error}\n{on_the_wire(net)}") from error


def on_the_wire(net) -> str:
    """The IKE exchanges the transit carried so far, and when each ESP SPI was first used (ike_wire.exchange)."""
    names = {offices.R1_WAN: "r1", offices.R2_WAN: "r2"}
    lines = exchange(net.golden.frames(net.scenario.transit), names)
    return f"--- IKE on the transit ({net.variant.implementation}):\n" + "\n".join(lines or ["none"])


# The stream's echoes carry 600 bytes: on any link, the case's only frames over 500 bytes, told apart without
# decrypting (IKE's are left out of goldens anyway).
STREAM_PAYLOAD, STREAM_FRAME = b"grelab stream " * 43, 500


# During the rekey, r2's IKE messages leave its WAN this late (netem on a band of its own, UDP from port 500 only; ESP
# untouched): the rekey's answer reaches r1 well after r2 could have begun to send under the new SA. A responder that
# does so before the initiator holds the SA then loses the replies of those milliseconds every time, not only when
# the scheduler happens to put one in a gap of ~1 ms; one that waits (for the old SA's delete) loses none.
IKE_LATE_MS = 30


def ike_late(ms: int) -> str:
    """Shell lines delaying a DUT's IKE (UDP source port 500) on its WAN by `ms`; the DUT's reset removes the qdisc."""
    return (f"tc qdisc add dev wan root handle 1: prio && tc qdisc add dev wan parent 1:3 handle 30: netem delay {ms}ms"
            " && tc filter add dev wan parent 1: protocol ip prio 1 u32 match ip protocol 17 0xff match ip sport 500 "
            "0xffff flowid 1:3")


@dataclass
class Rekeyed:
    """What a rekey mid-stream showed: {"r1->r2" / "r2->r1": {"old": stream frames under the SA before, "new": under
    the new one}}, the echoes sent, those left unanswered, and where they went (empty when none was lost): the xfrm
    and UDP counters each router moved during the stream (UdpRcvbufErrors: a daemon's socket overflowing) and the
    transit's IKE and first ESP frame of each SPI, in time."""
    carried: dict
    sent: int
    lost: list[int]
    where: str


def rekey_mid_stream(net, at: int, after: int = 20, interval: float = 0.005, implementations=None,
                     keys_from: str = "r1", late_ms: int = IKE_LATE_MS) -> Rekeyed:
    """h1 streams echoes to h2 (one every `interval` s, never waiting for replies); once echo `at` left, r1's daemon
    is asked to rekey the child SA (swanctl --rekey, whack --rekey-ipsec; in a thread of its own: the stream goes
    on), its answer from r2 `late_ms` late (0: not delayed), and the stream goes on until the rekey is over (neither
    router's kernel holds its old outbound SA: the old SAs' delete exchanged) and `after` echoes more, at most 5 s.
    implementations: {router: its row}, else the variant's (rows). The new SAs, read from `keys_from`'s kernel,
    become the case's (Net.negotiated); the stream stays out of the golden (which SA carries which echo is the
    daemons' timing), what comes before and after it stays in."""
    from grelab.scenario.hosts import echo_stream
    implementations = implementations or rows(net)
    net.leave_out(lambda frame: len(frame) > STREAM_FRAME)
    old = {sa.spi for sa in net.sas}
    outbound = {router: next(sa.spi for sa in net.sas if sa.src == address)
                for router, address in (("r1", offices.R1_WAN), ("r2", offices.R2_WAN))}
    if late_ms:
        net.dut("r2").check(ike_late(late_ms))
    before = {router: net.dut(router).counters() for router in outbound}
    rekeying, ended = [], []  # the rekey's future once echo `at` left; the echoes sent when it was over

    def rekey() -> None:
        r1 = net.dut("r1")
        r1.check(implementations["r1"].rekey(r1))
        for router, spi in outbound.items():  # (a kernel that never held it, libipsec's, is done at once)
            wait_until(net.dut(router), f"! /sbin/ip xfrm state | grep -q 'spi 0x{spi:08x}'", timeout=5,
                       what=f"{router}'s old outbound SA gone after the rekey", logs=[implementations[router].daemon])

    def until(sent: int) -> bool:
        if rekeying and rekeying[0].done() and not ended:
            ended.append(sent)
        return bool(ended) and sent >= ended[0] + after
    with shown_on_the_wire(net), ThreadPoolExecutor(1, thread_name_prefix="ike-rekey") as pool:
        answered = echo_stream(net.lab, "h1", offices.H2, at, interval=interval, at=at, payload=STREAM_PAYLOAD,
                               midway=lambda: rekeying.append(pool.submit(rekey)), until=until,
                               limit=at + int(5 / interval))
        rekeying[0].result()  # its failure, if any, raised here
    assert ended, f"the rekey was not over after {answered.sent} echoes"
    net.negotiated(read_sas(net.dut(keys_from)))
    carried = {direction: {"old": 0, "new": 0} for direction in ("r1->r2", "r2->r1")}
    for _, frame in net.golden.frames("transit"):
        peeled = peel(frame) if len(frame) > STREAM_FRAME else None
        if peeled and peeled.esp_spi is not None:  # raw or in UDP
            direction = "r1->r2" if peeled.packet[IP].src == offices.R1_WAN else "r2->r1"
            carried[direction]["old" if peeled.esp_spi in old else "new"] += 1
    print(f"stream frames by SA: {carried}")
    lost = sorted(set(range(1, answered.sent + 1)) - set(answered))
    where = ""
    if lost:
        moved = {}
        for router in outbound:
            delta = net.dut(router).counters().delta(before[router])
            moved[router] = {**delta["xfrm"], **{k: n for k, n in delta["snmp"].items() if k.startswith("Udp")}}
        where = f"xfrm and UDP counters moved during the stream: {moved}\n{on_the_wire(net)}"
    return Rekeyed(carried, answered.sent, lost, where)
