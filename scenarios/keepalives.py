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

The monitor (grelab.networks.monitor) sends a keepalive every interval and reports the tunnel down after three
unanswered in a row: while r1 answers, every keepalive comes back; once r1 drops all GRE (its far end is gone),
the monitor says so within three intervals of the first lost keepalive.
"""
import pytest

from grelab.dut.plan import Filter, Plan
from grelab.scenario import PLAIN_GRE
from grelab.networks import endpoint as e

net = e.grelab_endpoint("keepalives", variants=[PLAIN_GRE], tunnels=None, comments=e.KEEPALIVE_COMMENTS).fixture()
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


@pytest.mark.parametrize("case", CASES)
def test_keepalive(net, case):
    """A keepalive comes back through r1 only when gre1 may take its own address as source (accept_local, not strict rp_filter)."""
    sysctls, addresses, returns, moved = CASES[case]
    (r1 := net.dut("r1")).apply(e.tunnel(addresses=addresses) + Plan(sysctls={f"net.ipv4.conf.gre1.{k}": v for k, v in sysctls.items()}))
    before = r1.counters()
    fate = "r1 routes it back" if returns else "r1 drops the inner packet (its own address as source)"
    net.send("grelab", e.keepalive_to_r1(1), comment=f"grelab's keepalive, gre1 {sysctls or 'as booted'}{' with an address' * bool(addresses)}: {fate}")
    if returns:  # back before the echo goes: the transit's order is then r1's doing, not the scheduler's
        net.transit.expect([e.keepalive_back(1)], ignore=e.IGNORE, timeout=3)
    request, reply = e.echo(2)
    net.send("grelab", e.to_r1(request), comment="an echo for h1 after it: its answer means r1 has dealt with the keepalive")
    net.transit.expect([e.from_r1(reply)], ignore=e.IGNORE, timeout=3)
    assert (bytes(e.keepalive_back(1)) in net.transit.frames()) == returns
    net.expect_moved("r1", before, {**ALWAYS, **moved}, WATCHED)


def test_monitor_reports_down(net):
    """grelab's monitor sees keepalives come back while r1 answers, and reports the tunnel down within three intervals once r1 drops GRE."""
    (r1 := net.dut("r1")).apply(e.tunnel() + Plan(sysctls={"net.ipv4.conf.gre1.accept_local": 1}))
    with net.lab.sender("grelab", "eth0") as tx:
        monitor = e.keepalive_monitor(net, tx, INTERVAL, MISSES)
        before = r1.counters()
        up = monitor.run(until=("sent", 3), timeout=3)
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
    net.transit.expect([e.keepalive_back(n) for n in (1, 2, 3)])
    assert [f for f in net.transit.frames() if e.keepalive_number(f)] == [bytes(e.keepalive_back(n)) for n in (1, 2, 3)]
