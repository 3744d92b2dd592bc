"""Keepalives and stateless monitoring: a GRE keepalive crafted by grelab comes back through r1, or says r1 is gone.

grelab is the far GRE endpoint (as in grelab_endpoint). A GRE keepalive needs nothing from the far end but its
tunnel: grelab sends r1 GRE carrying an IP packet from r1's own address to grelab's (itself an empty GRE packet,
protocol type 0); r1 takes it out of its tunnel gre1 and routes it, like any packet, back to grelab. A keepalive
that comes back proves the tunnel works both ways, and r1 keeps no state for it.

But Linux is wary of a packet that arrives with one of its own addresses as source: ip_route_input_slow asks
fib_validate_source (net/ipv4/fib_frontend.c), which, with rp_filter off, refuses a source that is a local
address (a martian source, dropped with no SNMP counter: the inner packet is received, IpInReceives, but neither
delivered nor forwarded) unless accept_local is set on the device it came in on, gre1. With strict rp_filter
(1) even accept_local does not help: the reverse route to r1's own address leaves by wan, not gre1, and the
packet is dropped as a reverse-path failure (TcpExtIPReversePathFilter). Loose rp_filter (2) drops it the same way
while gre1 has no IPv4 address (fib_validate_source's "last resort": any rp_filter refuses), and lets it through
once gre1 has one.

The monitor (grelab.scenario.monitor) sends a keepalive every interval and reports the tunnel down after three
unanswered in a row: while r1 answers, every keepalive comes back; once r1 drops all GRE (its far end is gone),
the monitor says so within three intervals of the first lost keepalive.
"""
import pytest
from scapy.layers.inet import IP
from scapy.layers.l2 import GRE as GREHeader, Ether

from grelab.craft import keepalive
from grelab.dut.plan import Filter, Plan
from grelab.scenario import GRE, Comment, endpoint as e
from grelab.scenario.monitor import KeepaliveMonitor

R1_WAN = bytes(map(int, e.R1_WAN.split(".")))
RETURNED = lambda f: f[12:14] == b"\x08\x00" and f[23] == 47 and f[26:30] == R1_WAN and f[36:38] == b"\0\0"  # noqa: E731
COMMENTS = (Comment("grelab's keepalive: GRE to r1 carrying a packet from r1 back to grelab (its IP id numbers it)",
                    "transit", sent_by="grelab", match=lambda f: f[36:38] == b"\x08\x00" and f[60:62] == b"\0\0"),
            Comment("the keepalive come back: r1 took it out of gre1 and routed it to grelab, TTL one less", "transit",
                    match=RETURNED)) + e.COMMENTS
net = e.grelab_endpoint("keepalives", variants=[GRE], tunnels=None, comments=COMMENTS).fixture()
GRE1 = "net.ipv4.conf.gre1."
CASES = {  # gre1's sysctls and addresses; does the keepalive come back; the watched counters that move besides ALWAYS
    "accept-local": ({"accept_local": 1}, (), True, {"snmp.IpForwDatagrams": 1}),
    "default": ({}, (), False, {}),  # a martian source: no counter of its own
    "rp-filter-strict": ({"accept_local": 1, "rp_filter": 1}, (), False, {"snmp.TcpExtIPReversePathFilter": 1}),
    "rp-filter-loose-no-address": ({"accept_local": 1, "rp_filter": 2}, (), False, {"snmp.TcpExtIPReversePathFilter": 1}),
    "rp-filter-loose": ({"accept_local": 1, "rp_filter": 2}, ("192.0.2.253/30",), True, {"snmp.IpForwDatagrams": 1}),
}
# Every case: the keepalive and the echo after it, two GRE packets gre1 takes (IpInDelivers); IP receives three
# packets, the keepalive's inner one among them, whatever becomes of it.
ALWAYS = {"gre1.rx_packets": 2, "snmp.IpInReceives": 3, "snmp.IpInDelivers": 2}
WATCHED = tuple(ALWAYS) + ("snmp.IpForwDatagrams", "snmp.TcpExtIPReversePathFilter")
INTERVAL, MISSES = 0.05, 3


def keepalive_to_r1(number: int):
    """grelab's keepalive number `number` (the inner packet's IP id), as r1 gets it."""
    packet = keepalive(local=e.GRELAB, remote=e.R1_WAN)
    packet[GREHeader].payload.id = number
    return packet


def come_back(number: int):
    """The keepalive as r1 routes it back to grelab: the inner packet, TTL one less."""
    return (Ether(src=e.R1_WAN_MAC, dst=e.GRELAB_MAC) / IP(src=e.R1_WAN, dst=e.GRELAB, id=number, ttl=63)
            / GREHeader(proto=0))


def setup(net, addresses=(), **gre1) -> None:
    net.dut("r1").apply(e.tunnel(addresses=addresses) + Plan(sysctls={GRE1 + k: v for k, v in gre1.items()}))


@pytest.mark.parametrize("case", CASES)
def test_keepalive(net, case):
    """A keepalive comes back through r1 only when gre1 may take its own address as source (accept_local, not strict rp_filter)."""
    sysctls, addresses, returns, moved = CASES[case]
    setup(net, addresses, **sysctls)
    r1 = net.dut("r1")
    before = r1.counters()
    fate = "r1 routes it back" if returns else "r1 drops the inner packet (its own address as source)"
    net.send("grelab", keepalive_to_r1(1), comment=f"grelab's keepalive, gre1 {sysctls or 'as booted'}{' with an address' * bool(addresses)}: {fate}")
    request, reply = e.echo(2)
    net.send("grelab", e.to_r1(request), comment="an echo for h1 after it: its answer means r1 has dealt with the keepalive")
    answers = [come_back(1), e.from_r1(reply)] if returns else [e.from_r1(reply)]
    net.transit.expect(answers, ignore=e.IGNORE, timeout=3)
    got = net.transit.frames()
    assert any(f == bytes(come_back(1)) for f in got) == returns
    delta = r1.counters().delta(before).flat()
    assert {k: delta[k] for k in WATCHED if k in delta} == {**ALWAYS, **moved}


def test_monitor_reports_down(net):
    """grelab's monitor sees keepalives come back while r1 answers, and reports the tunnel down within three intervals once r1 drops GRE."""
    setup(net, accept_local=1)
    r1 = net.dut("r1")
    with net.lab.sender("grelab", "eth0") as tx:
        frame = lambda n: bytes(Ether(src=e.GRELAB_MAC, dst=e.R1_WAN_MAC) / keepalive_to_r1(n))  # noqa: E731
        returned = lambda f: int.from_bytes(f[18:20], "big") if RETURNED(f) and f[34:36] == b"\0\0" else None  # noqa: E731
        monitor = KeepaliveMonitor(tx.send, net.transit.capture, frame, returned, INTERVAL, MISSES)
        before = r1.counters()
        up = monitor.run(until=("answered", 3), timeout=3)
        assert (up.answered, up.unanswered) == ([1, 2, 3], [])
        middle = r1.counters()
        assert {k: v for k, v in middle.delta(before).flat().items() if k in WATCHED} == \
            {"gre1.rx_packets": 3, "snmp.IpInReceives": 6, "snmp.IpInDelivers": 3, "snmp.IpForwDatagrams": 3}
        r1.apply(Plan(filters=[Filter("input", "drop", proto="gre")]))  # the far end is gone: r1 takes no GRE
        down = monitor.run(until="down", timeout=3)
    print(f"\nup: {up.summary(INTERVAL)}\ndown: {down.summary(INTERVAL)}")
    assert (down.answered, down.unanswered) == ([], [4, 5, 6])
    assert down.down_at - down.first_miss_at <= (MISSES + 0.5) * INTERVAL  # the schedule says 3; a loaded machine lags
    moved = {k: v for k, v in r1.counters().delta(middle).flat().items() if k in WATCHED}
    assert moved == {"snmp.IpInReceives": 3}  # IP saw them; the filter dropped them before gre1
    net.transit.expect([come_back(n) for n in (1, 2, 3)])
    assert [f for f in net.transit.frames() if RETURNED(f)] == [bytes(come_back(n)) for n in (1, 2, 3)]
