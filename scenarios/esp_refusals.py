"""What r1's IPsec stack refuses, and how it says so.

grelab is the far end of r1's GRE tunnel (as in grelab_endpoint), and r1 requires ESP (transport mode,
AES-CBC + HMAC-SHA-256) for that GRE. grelab sends what a broken or hostile peer would, each packet carrying
an echo for h1 behind r1. Every one must be dropped -- h1 never sees it -- and counted in r1's
/proc/net/xfrm_stat under the name the kernel gives it; right after, a valid echo still goes through and its
answer comes back: the refusal cost r1 nothing.

What the kernel (Linux 6.1 and 7.3 alike, net/xfrm/xfrm_input.c, net/xfrm/xfrm_policy.c, net/ipv4/esp4.c) counts:
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

from grelab.scenario import in_esp
from grelab.networks.endpoint import grelab_endpoint
from grelab.networks.refusals import OUT_OF_SEQUENCE, REFUSALS, echo_through

net = grelab_endpoint("esp_refusals", variants=[in_esp("cbc128-sha256")]).fixture()


@pytest.mark.parametrize("refusal", REFUSALS)
def test_refused_and_counted(net, refusal):
    """r1's xfrm stack refuses what grelab sends, counts it in /proc/net/xfrm_stat, and answers a valid echo right after."""
    make, counted, tag = REFUSALS[refusal]
    packets = make(net)  # what it takes first (a valid echo, a short-lived SA) is not what is counted
    before = net.dut("r1").counters()
    for packet in packets:
        net.send("grelab", packet, protect=False, comment=f"{refusal}: r1 must refuse it {tag}".rstrip())
    moved = net.expect_counters("r1", before, counted)
    assert "Ip6OutForwDatagrams" not in moved["snmp"]  # nothing came out of the tunnel towards h1
    echo_through(net, 10, comment=f"the valid echo right after: r1 still answers "
                                  f"{OUT_OF_SEQUENCE if tag == OUT_OF_SEQUENCE else ''}".rstrip())
