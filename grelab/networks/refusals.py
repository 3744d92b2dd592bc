"""The refusals of scenarios/esp_refusals as data: what grelab sends r1 (the grelab_endpoint network, r1 requiring ESP
for its GRE) for each kind of packet the kernel must refuse, and the /proc/net/xfrm_stat counter that must move.

    make, counted, tag = REFUSALS["flipped-bit"]
    packets = make(net)            # IP packets (bytes) to send as they are; anything they need sent first is sent
    echo_through(net, 10)          # a valid echo, and r1's encrypted answer

grelab.bench.refusals sends the same kinds at full rate.
"""
from __future__ import annotations

from scapy.layers.inet import IP
from scapy.layers.inet6 import ICMPv6EchoReply, ICMPv6EchoRequest, IPv6
from scapy.layers.l2 import GRE, Ether

from grelab.craft.esp import SA
from grelab.dut.plan import Plan, XfrmState
from grelab.networks.endpoint import FAR_LAN_HOST, GRELAB, GRELAB_MAC, H1, R1_WAN, R1_WAN_MAC

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
