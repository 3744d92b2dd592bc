"""Two offices, their GRE protected by ESP transport mode, once per ESP algorithm grelab knows.

The offices of two_offices: h1 and h2 on IPv6 LANs, r1 and r2 (the devices under test) their GRE endpoints
across an IPv4-only provider. Here r1 and r2 require ESP in transport mode for their GRE, and each case
tells the story with another row of grelab's algorithm table (grelab.craft.algorithms.ALGORITHMS: AES-GCM,
-CCM and -GMAC with each key and ICV length, ChaCha20-Poly1305, and NULL, AES-CBC, AES-CTR and 3DES each with
HMAC-SHA1/-MD5/-SHA-256/-384/-512 and AES-CMAC; AES-CBC, AES-CTR and 3DES also with no integrity algorithm,
confidentiality-only ESP as RFC 4303 allows and `ip xfrm state ... enc` alone makes). The SAs are derived from the
scenario and the row.

The plot: h1's echo reaches h2 and comes back, and the transit holds exactly two packets, ESP of that row
which decrypts (its ICV checked, where it has one) to GRE carrying exactly the IPv6 packets the hosts sent. The
goldens decrypt in Wireshark with pcaps/esp_sa, except the rows Wireshark 4.0 lacks (CCM, GMAC,
ChaCha20-Poly1305): those goldens have a companion beside them, <case>.decrypted.pcapng, their ESP decrypted by
grelab (grelab.golden.decrypted), which any Wireshark reads.
"""
from grelab.craft.algorithms import ALGORITHMS
from grelab.scenario import in_esp
from grelab.networks import offices

net = offices.two_offices("esp_algorithms", variants=[in_esp(name) for name in ALGORITHMS]).fixture()


def test_echo(net):
    """h1's echo reaches h2 through GRE in ESP with this row's algorithm; the transit holds exactly the two ESP packets, decrypting (ICV checked where there is one) to that GRE."""
    reply = net.ping("h1", "h2")
    assert (reply.source, reply.payload) == (offices.H2, b"grelab echo")
    assert len(net.transit.frames()) == 2  # the request and the reply, nothing else
    net.transit.carries_exactly(net.sent_by("h1", "h2"))
