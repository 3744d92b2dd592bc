"""Every ESP algorithm of grelab's table against the kernel DUT (and each shape of them with ESN): grelab encrypts an
IPv4/GRE/IPv6/ICMPv6 echo, the DUT (xfrm states and policies from the same SAs, through
grelab.craft.algorithms.xfrm_algorithm_words, applied as a plan) decrypts it and answers inside ESP, grelab decrypts the answer.

One DUT (the worker's pooled one) and one lab serve every row: between rows the DUT is only reset. A row the
kernel cannot do fails: the DUT refuses the plan's state (DutApplyError), or no answer comes. A row costs ~0.1-0.3 s, most of it
the kernel setting up an algorithm instance the first time (authenc(hmac(sha1),cbc(aes)), ...): ESN, another
instance for each cipher x integrity (authencesn), is tried on one algorithm of each kind the kernel handles
apart, not on all 51: authencesn around an HMAC or CMAC, and each combined mode (its AAD carries the high bits).
"""
import pytest
from scapy.layers.inet import IP
from scapy.layers.inet6 import ICMPv6EchoReply
from scapy.layers.ipsec import ESP
from scapy.layers.l2 import GRE, Ether

from grelab.craft import esp
from grelab.dut.plan import Interface, Plan
from grelab.dut.tunnel import esp_transport, gre_tunnel
from grelab.lab.build import build
from grelab.lab.topology import End, Link, Node, Topology

from test_dut_uml import H, H_MAC, R, R6, echo, exchange

SEQ_HI = 1  # with ESN both ends start at 2**32: the high-order bits are not sent, so only the ICV can tell
ESN_KINDS = ["cbc128-sha256", "null-sha1", "ctr256-cmac", "3des-md5", "cbc256-none", "gcm128-icv8", "ccm256", "gmac128",
             "chacha20-poly1305"]


@pytest.fixture(scope="module")
def dut_lab(grelab_dut_pool):
    dut = grelab_dut_pool.get("r1", ("wan", "lan"))
    topology = Topology(nodes=[Node("h"), Node("r1", dut=dut)],
                        links=[Link(End("h", "eth0", [f"{H}/24"], H_MAC), End("r1", "wan", [f"{R}/24"]))])
    with build(topology) as lab:
        lab.dut_mac = dut.check("cat /sys/class/net/wan/address").strip()
        yield dut, lab


def sas(algorithm: str, esn: bool) -> tuple[esp.SA, esp.SA]:
    """(h to the DUT, the DUT to h): different keys each way, so a key mix-up cannot pass."""
    algo = esp.ALGORITHMS[algorithm]
    return tuple(esp.SA(spi, algorithm, bytes(range(base, base + algo.key_len)),
                        bytes(range(base + 100, base + 100 + algo.auth_key_len)), src, dst, esn=esn)
                 for spi, base, src, dst in ((0x1001, 1, H, R), (0x2002, 7, R, H)))


@pytest.mark.needs_esp
@pytest.mark.parametrize("algorithm, esn", [*((a, False) for a in esp.ALGORITHMS), *((a, True) for a in ESN_KINDS)],
                         ids=lambda v: {False: "", True: "esn"}.get(v, v) if isinstance(v, bool) else v)
def test_kernel_answers_an_echo_in_esp(dut_lab, algorithm, esn):
    dut, lab = dut_lab
    dut.reset()
    (to_dut, from_dut), seq_hi = sas(algorithm, esn), SEQ_HI if esn else 0
    dut.apply(Plan(interfaces=[Interface("wan", addresses=[f"{R}/24"])])
              + gre_tunnel("gre1", R, H, addresses=(f"{R6}/64",)) + esp_transport(from_dut, to_dut, seq_hi=seq_hi))
    request = esp.encrypt(to_dut, IP(src=H, dst=R) / echo(5), seq=(seq_hi << 32) + 1)
    reply = exchange(lab, Ether(src=H_MAC, dst=lab.dut_mac) / request, "ip proto 50")
    assert (reply[ESP].spi, reply[ESP].seq) == (0x2002, 1)
    inner = esp.decrypt(from_dut, reply[IP], seq_hi=seq_hi)
    assert inner[GRE] and inner[ICMPv6EchoReply].seq == 5 and inner[ICMPv6EchoReply].data == b"grelab"
