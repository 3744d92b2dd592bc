"""What r1's IPsec stack refuses, and how it says so.

grelab is the far end of r1's GRE tunnel (as in grelab_endpoint), and r1 requires ESP (transport mode,
AES-CBC + HMAC-SHA-256) for that GRE. grelab sends what a broken or hostile peer would, each packet carrying
an echo for h1 behind r1. Every one must be dropped -- h1 never sees it -- and counted in r1's
/proc/net/xfrm_stat under the name the kernel gives it; right after, a valid echo still goes through and its
answer comes back: the refusal cost r1 nothing.

What the kernel (Linux 6.1, net/xfrm/xfrm_input.c, net/xfrm/xfrm_policy.c, net/ipv4/esp4.c) counts:
- plaintext GRE where the policy requires ESP: XfrmInTmplMismatch (the inbound policy check finds no SA
  applied, __xfrm_policy_check);
- a flipped bit in the ciphertext: XfrmInStateProtoError (esp_input's ICV check fails, -EBADMSG);
- a replayed sequence number, and one left of the 32-packet replay window: XfrmInStateSeqError (the replay
  check, before decryption);
- an SPI r1 has no SA for: XfrmInNoStates;
- ESP truncated inside its 8-byte header: XfrmInHdrError (xfrm_parse_spi cannot read SPI and sequence
  number). The issue names XfrmInHdrError for any truncated ESP; truncated after its header (IV or ICV cut
  off), the kernel counts XfrmInStateProtoError instead (esp_input refuses the length): both are cases here;
- an SA whose hard lifetime is used up (a packet or a byte limit reached): XfrmInStateExpired, once; the
  kernel then deletes the SA, so what follows on that SPI counts as XfrmInNoStates. The short-lived SA is a
  second inbound SA the case adds beside the variant's (another SPI, the same template), so the valid echo
  after it still has the variant's.
"""
import pytest
from scapy.layers.inet import IP
from scapy.layers.inet6 import ICMPv6EchoReply, ICMPv6EchoRequest, IPv6
from scapy.layers.l2 import GRE, Ether

from grelab.craft.esp import SA
from grelab.dut.plan import Plan, XfrmState
from grelab.scenario import in_esp
from grelab.scenario.endpoint import FAR_LAN_HOST, GRELAB, GRELAB_MAC, H1, R1_WAN, R1_WAN_MAC, grelab_endpoint

net = grelab_endpoint("esp_refusals", variants=[in_esp("cbc128-sha256")]).fixture()
BROKEN = "[broken on purpose]"  # tests/test_goldens_tshark.py holds such frames to dissecting only
OUT_OF_SEQUENCE = "[out of sequence on purpose]"  # ... and lets Wireshark warn of the sequence numbers of these


def echo(seq: int) -> IP:
    """What a GRE peer sends for h1: IPv4/GRE/IPv6/ICMPv6 echo request, its ICMPv6 sequence number seq."""
    return (IP(src=GRELAB, dst=R1_WAN, ttl=64) / GRE()
            / IPv6(src=FAR_LAN_HOST, dst=H1, hlim=64) / ICMPv6EchoRequest(id=0x4243, seq=seq, data=b"from grelab"))


def reply(seq: int):
    return (Ether(src=R1_WAN_MAC, dst=GRELAB_MAC) / IP(src=R1_WAN, dst=GRELAB, ttl=64, flags="DF") / GRE()
            / IPv6(src=H1, dst=FAR_LAN_HOST, hlim=63) / ICMPv6EchoReply(id=0x4243, seq=seq, data=b"from grelab"))


def echo_through(net, seq: int, sa: SA | None = None, comment: str | None = None) -> None:
    """A valid echo (the variant's SA, or `sa`) and r1's encrypted answer."""
    net.send("grelab", net.protect(echo(seq), sa=sa), comment=comment)
    net.transit.expect(reply(seq), ignore=["IP.id", "IP.chksum"], timeout=3)


def flipped(net) -> list[bytes]:
    esp = bytearray(bytes(net.protect(echo(1))))
    esp[20 + 8 + 16 + 4] ^= 0x01  # a bit of the ciphertext, after the IPv4 header, SPI/sequence number and IV
    return [bytes(esp)]


def truncated(length: int):
    def make(net) -> list[bytes]:
        header = IP(bytes(net.protect(echo(1))))
        esp = bytes(header.payload)[:length]
        header.remove_payload()
        header.len, header.chksum = 20 + length, None  # the IPv4 header says so: only the ESP is short
        return [bytes(header) + esp]
    return make


def replayed(net) -> list[bytes]:
    echo_through(net, 1)
    return [bytes(net.protect(echo(1), seq=1))]  # the same sequence number again


def left_of_window(net) -> list[bytes]:
    echo_through(net, 1)
    net.send("grelab", net.protect(echo(2), seq=100), comment=f"a jump ahead, accepted: the window moves to 69..100 "
                                                              f"{OUT_OF_SEQUENCE}")
    net.transit.expect(reply(2), ignore=["IP.id", "IP.chksum"], timeout=3)
    return [bytes(net.protect(echo(3), seq=100 - 32))]


def unknown_spi(net) -> list[bytes]:
    stranger = SA(0x0000DEAD, "cbc128-sha256", bytes(16), bytes(32), src=GRELAB, dst=R1_WAN)
    return [bytes(net.protect(echo(1), sa=stranger))]


def expiring(limits: dict):
    def make(net) -> list[bytes]:
        to_r1 = next(sa for sa in net.sas if sa.dst == R1_WAN)
        short = SA(0x00005001 + len(limits) * 0x10 + ("byte_limit" in limits), to_r1.algorithm, to_r1.key,
                   to_r1.auth_key, src=GRELAB, dst=R1_WAN)
        net.golden.sas(short)
        net.dut("r1").apply(Plan(states=(XfrmState(short, **limits),)))
        echo_through(net, 1, sa=short, comment="on a second SA whose lifetime this packet uses up")
        return [bytes(net.protect(echo(2), sa=short))]
    return make


def plaintext(net) -> list[bytes]:
    return [bytes(echo(1))]


REFUSALS = {  # what grelab sends -> what r1's xfrm_stat must say, and whether Wireshark can make sense of it
    "plaintext-gre": (plaintext, {"XfrmInTmplMismatch": 1}, ""),
    "flipped-bit": (flipped, {"XfrmInStateProtoError": 1}, BROKEN),
    "replayed": (replayed, {"XfrmInStateSeqError": 1}, OUT_OF_SEQUENCE),
    "left-of-window": (left_of_window, {"XfrmInStateSeqError": 1}, OUT_OF_SEQUENCE),
    "unknown-spi": (unknown_spi, {"XfrmInNoStates": 1}, BROKEN),
    "truncated-header": (truncated(6), {"XfrmInHdrError": 1}, BROKEN),
    "truncated-body": (truncated(8 + 16 + 8), {"XfrmInStateProtoError": 1}, BROKEN),
    "expired-packets": (expiring({"packet_limit": 1}), {"XfrmInStateExpired": 1}, ""),
    "expired-bytes": (expiring({"byte_limit": 1}), {"XfrmInStateExpired": 1}, ""),
}


@pytest.mark.parametrize("refusal", REFUSALS)
def test_refused_and_counted(net, refusal):
    make, counted, tag = REFUSALS[refusal]
    packets = make(net)  # what it takes first (a valid echo, a short-lived SA) is not what is counted
    before = net.dut("r1").counters()
    for packet in packets:
        net.send("grelab", packet, protect=False, comment=f"{refusal}: r1 must refuse it {tag}".rstrip())
    moved = net.expect_counters("r1", before, counted)
    assert "Ip6OutForwDatagrams" not in moved["snmp"]  # nothing came out of the tunnel towards h1
    echo_through(net, 10, comment=f"the valid echo right after: r1 still answers "
                                  f"{OUT_OF_SEQUENCE if tag == OUT_OF_SEQUENCE else ''}".rstrip())
