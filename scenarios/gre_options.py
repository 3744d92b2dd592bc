"""Keys, sequence numbers and checksums (RFC 2890, RFC 2784), as the Linux kernel does them.

grelab is the far GRE endpoint (as in grelab_endpoint); r1's tunnel has the options of the case. grelab sends
ICMPv6 echoes for h1 inside GRE with the header fields of the case; r1 answers each echo it takes with h1's reply
in its own GRE. The last echo of every case is one r1 must take: r1 handles packets in order, so by the time
its answer is on the wire, what came before was decided, and an echo not answered by then was dropped.

- Keys pick the tunnel. A wrong or a missing key finds none: r1 answers ICMP port unreachable (ip_gre.c,
  gre_rcv) and counts it in IcmpOutDestUnreachs; no tunnel counter moves. ikey and okey are independent.
- With oseq, r1 numbers what it sends 0, 1, 2, ...; with iseq, an echo numbered below the next one expected,
  or with no number, is dropped and counted in rx_fifo_errors and rx_errors (ip_tunnel.c, ip_tunnel_rcv).
- With icsum, an echo without a checksum is dropped (rx_crc_errors, rx_errors), and so is a checksum a tunnel
  without icsum did not ask for. A checksum that does not verify is dropped before any tunnel is looked up
  (gre_demux.c, gre_parse_header): no counter of the tunnel moves, the drop shows on the wire only. With ocsum,
  r1's checksums verify (the template holds the right one).
"""
import pytest

from grelab.dut.plan import Plan
from grelab.scenario import PLAIN_GRE
from grelab.networks import endpoint as e

net = e.grelab_endpoint("gre_options", variants=[PLAIN_GRE], tunnels=None).fixture()
K, S = (lambda n: dict(key_present=1, key=n)), (lambda n: dict(seqnum_present=1, sequence_number=n))
C, BAD, U = dict(chksum_present=1), dict(chksum_present=1, chksum=0xBAD), "ICMP port unreachable"
CASES = {  # r1's tunnel; per echo (GRE fields grelab sends, r1's answer: GRE fields, U, or None: dropped); counters
    "right-key": (dict(key=42), [(K(42), K(42))], {}),
    "wrong-key": (dict(key=42), [(K(43), U), (K(42), K(42))], {"snmp.IcmpOutDestUnreachs": 1}),
    "missing-key": (dict(key=42), [({}, U), (K(42), K(42))], {"snmp.IcmpOutDestUnreachs": 1}),
    "ikey-okey": (dict(ikey=1, okey=2), [(K(2), U), (K(1), K(2))], {"snmp.IcmpOutDestUnreachs": 1}),
    "output-seq": (dict(oseq=True), [({}, S(0)), ({}, S(1)), ({}, S(2))], {}),
    "input-seq-out-of-order": (dict(iseq=True), [(S(10), {}), (S(9), None), (S(11), {})],
                               {"gre1.rx_fifo_errors": 1, "gre1.rx_errors": 1}),
    "input-seq-missing": (dict(iseq=True), [({}, None), (S(1), {})], {"gre1.rx_fifo_errors": 1, "gre1.rx_errors": 1}),
    "input-csum-missing": (dict(icsum=True), [({}, None), (C, {})], {"gre1.rx_crc_errors": 1, "gre1.rx_errors": 1}),
    "input-csum-bad": (dict(icsum=True), [(BAD, None), (C, {})], {}),
    "csum-not-asked-for": (dict(), [(C, None), ({}, {})], {"gre1.rx_crc_errors": 1, "gre1.rx_errors": 1}),
    "output-csum": (dict(ocsum=True), [({}, C)], {}),
}
FATE = {"taken": "r1 takes it and answers", None: "r1 drops it", U: "no tunnel takes it; r1 answers ICMP"}
WATCHED = ("gre1.rx_packets", "gre1.rx_errors", "gre1.rx_crc_errors", "gre1.rx_fifo_errors", "snmp.IcmpOutDestUnreachs")


@pytest.mark.parametrize("case", CASES)
def test_option(net, case):
    """r1's tunnel with the case's options takes, drops or refuses each crafted echo, and the right counter moves."""
    tunnel, exchanges, moved = CASES[case]
    r1 = net.dut("r1")
    r1.apply(e.tunnel(**tunnel) + Plan(sysctls={"net.ipv4.icmp_ratelimit": 0}))  # every ICMP error, none held back
    before, answers = r1.counters(), []
    for n, (fields, answer) in enumerate(exchanges, 1):
        (request, reply), fate = e.echo(n), FATE.get(answer if answer in (U, None) else "taken")
        sent = e.to_r1(request, **fields)
        net.send("grelab", sent, comment=f"crafted by grelab, {case}{' (checksum deliberately wrong)' * (fields is BAD)}: {fate}")
        if answer is not None:  # answered before the next echo goes: one order on the wire, run after run
            answers.append(e.unreachable(sent) if answer == U else e.from_r1(reply, **answer))
            net.transit.expect(answers, ignore=e.IGNORE)
    taken = {"gre1.rx_packets": sum(isinstance(a, dict) for _, a in exchanges)}
    net.expect_moved("r1", before, {**moved, **taken}, WATCHED)
