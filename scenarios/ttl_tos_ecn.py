"""TTL, DSCP and ECN across the tunnel (RFC 2784, RFC 6040), as the Linux kernel does them.

grelab is the far GRE endpoint (as in grelab_endpoint). Towards grelab, r1 encapsulates what h1 sends to the far
LAN; from grelab, r1 decapsulates what grelab sends to h1. Every packet is an ICMPv6 echo reply nobody answers,
so each link holds exactly what r1 did with it.

- Encapsulation. The outer TTL is the tunnel's fixed ttl, or with `ttl inherit` the passenger's hop limit (as r1
  forwarded it: 63). The outer DSCP is the tunnel's fixed tos, or with `tos inherit` the passenger's. ECN is
  RFC 6040's normal mode whatever the tos: ECT(0) and ECT(1) are copied outward, CE becomes ECT(0) outside
  (ip_tunnel.c, ip_tunnel_ecn_encap -> INET_ECN_encapsulate), not-ECT stays not-ECT.
- Decapsulation, one case per row of RFC 6040's table (the passenger's ECN), each with the four outer ECN values:
  an outer CE becomes CE inside, an outer ECT(1) makes an ECT(0) passenger ECT(1), and a not-ECT passenger arriving
  in a CE outer header is dropped and counted in rx_frame_errors and rx_errors (ip_tunnel_rcv ->
  IP_ECN_decapsulate -> __INET_ECN_decapsulate returning 2). A not-ECT passenger in an ECT outer header passes
  unchanged (the kernel returns 1: logged if ip_gre's module parameter log_ecn_error is on, not dropped). The
  outer DSCP is never copied inward.

The CE column is sent first in every row: r1 handles packets in order, so when the last delivery is on lan1, its
fate was decided.
"""
import pytest
from scapy.layers.inet6 import ICMPv6EchoReply, IPv6

from grelab.scenario import PLAIN_GRE

from grelab.networks import endpoint as e

net = e.grelab_endpoint("ttl_tos_ecn", variants=[PLAIN_GRE], tunnels=None, comments=(e.FROM_R1_COMMENT,) + e.COMMENTS).fixture()
NOT_ECT, ECT1, ECT0, CE = 0, 1, 2, 3
ECN = {NOT_ECT: "not-ECT", ECT1: "ECT(1)", ECT0: "ECT(0)", CE: "CE"}
EF, AF11 = 0xB8, 0x28  # DSCP 46 and 10, in the traffic class / TOS byte


def outward(tc: int, seq: int, hlim: int = 64) -> IPv6:  # from h1 to the far LAN, through r1's tunnel
    return IPv6(src=e.H1, dst=e.FAR_LAN_HOST, hlim=hlim, tc=tc) / ICMPv6EchoReply(id=0x4545, seq=seq)


def inward(tc: int, seq: int, hlim: int = 64) -> IPv6:  # from the far LAN to h1, in grelab's GRE
    return IPv6(src=e.FAR_LAN_HOST, dst=e.H1, hlim=hlim, tc=tc) / ICMPv6EchoReply(id=0x4646, seq=seq)


ENCAPSULATION = {  # r1's tunnel; the passenger's traffic class -> the outer TTL and TOS r1 sends
    "ttl-fixed": (dict(ttl=17), 0, 17, 0),
    "ttl-inherit": (dict(ttl="inherit"), 0, 63, 0),
    "tos-fixed": (dict(tos=AF11), EF, 64, AF11),
    "tos-inherit": (dict(tos="inherit"), EF, 64, EF),
    "ecn-not-ect": (dict(tos=AF11), NOT_ECT, 64, AF11 | NOT_ECT),
    "ecn-ect0": (dict(tos=AF11), ECT0, 64, AF11 | ECT0),
    "ecn-ect1": (dict(tos=AF11), ECT1, 64, AF11 | ECT1),
    "ecn-ce": (dict(tos=AF11), CE, 64, AF11 | ECT0),
}


@pytest.mark.parametrize("case", ENCAPSULATION)
def test_encapsulation(net, case):
    """r1's outer header: TTL fixed or the passenger's, TOS fixed or the passenger's, ECT copied and CE as ECT(0)."""
    tunnel, tc, ttl, tos = ENCAPSULATION[case]
    net.apply({"r1": e.tunnel(**tunnel)})
    net.send("h1", outward(tc, 1), comment=f"crafted from h1, traffic class 0x{tc:02x}: r1 encapsulates it ({case})")
    net.transit.expect(e.from_r1(outward(tc, 1, hlim=63), ttl=ttl, tos=tos), ignore=e.IGNORE)


# RFC 6040, section 4.2: the passenger's ECN (row) and the outer ECN (column) -> what h1 gets; None: dropped.
DECAPSULATION = {
    "not-ect": (NOT_ECT, {CE: None, NOT_ECT: NOT_ECT, ECT0: NOT_ECT, ECT1: NOT_ECT}),
    "ect0": (ECT0, {CE: CE, NOT_ECT: ECT0, ECT0: ECT0, ECT1: ECT1}),
    "ect1": (ECT1, {CE: CE, NOT_ECT: ECT1, ECT0: ECT1, ECT1: ECT1}),
    "ce": (CE, {CE: CE, NOT_ECT: CE, ECT0: CE, ECT1: CE}),
}
WATCHED = ("gre1.rx_packets", "gre1.rx_errors", "gre1.rx_frame_errors")


@pytest.mark.parametrize("row", DECAPSULATION)
def test_decapsulation(net, row):
    """One row of RFC 6040's decapsulation table: an outer CE marks the passenger CE, and a not-ECT one is dropped."""
    inner, columns = DECAPSULATION[row]
    r1 = net.dut("r1")
    r1.apply(e.tunnel())
    before, delivered = r1.counters(), []
    for seq, (outer, result) in enumerate(columns.items(), 1):
        fate = "r1 drops it" if result is None else f"h1 gets it {ECN[result]}"
        net.send("grelab", e.to_r1(inward(AF11 | inner, seq), tos=EF | outer),
                 comment=f"crafted by grelab: {ECN[inner]} passenger, {ECN[outer]} outer header: {fate}")
        delivered += [] if result is None else [e.to_h1(inward(AF11 | result, seq, hlim=63))]  # DSCP: the passenger's
    net.link("lan1").expect(delivered)
    dropped = sum(result is None for result in columns.values())
    net.expect_moved("r1", before, {"gre1.rx_packets": len(delivered),
                                    **({"gre1.rx_errors": dropped, "gre1.rx_frame_errors": dropped} if dropped else {})}, WATCHED)
