"""IKEv2: the offices' GRE protected by ESP whose keys nobody typed, strongSwan and libreswan negotiating them.

The two offices of two_offices (IPv6 LANs, GRE across an IPv4 provider), but r1 and r2 hold no ESP keys: an IKEv2
daemon runs in each, Debian's strongSwan (charon) or Debian's libreswan (pluto), in all four pairings
(strongSwan–strongSwan, strongSwan–libreswan both ways, libreswan–libreswan: r1 runs the initiator's), authenticating
the other by a pre-shared key or by a certificate of a test CA made for the run, and r1 negotiates a child SA for
GRE between them (ESP in transport mode, AES-GCM-128) as soon as both hold the connection.

The plot, on every pairing: both kernels hold the negotiated SAs within 5 s of the daemons' start (reported per case
as convergence_s); each daemon says it authenticated the other as asked (the key, or the other's signature scheme);
grelab reads the keys back from r1's kernel, so h1's echo to h2 is seen inside GRE inside that ESP on the transit,
and nothing else but IKE crosses; a rekey in the middle of a stream of echoes (r1 asks for it) puts new SPIs on the
wire both ways and loses no echo. Where the two daemons disagree, the failure shows the IKE exchange the transit
carried. The goldens leave IKE out and hold the ESP re-encrypted with stand-in SAs (pcaps/esp_sa), so they repeat
run to run and Wireshark decrypts them.
"""
from grelab.networks import ike

net = ike.two_offices_ike().fixture()


def test_h1_reaches_h2_through_the_negotiated_esp(net, record_property):
    """The daemons in r1 and r2 install ESP for their GRE, each having authenticated the other as asked; h1's echo
    crosses in it, and only in it."""
    assert ike.established(net, record_property) <= ike.CONVERGENCE_S
    assert ike.authenticated(net) == ike.expected_authentication(net)
    reply = net.ping("h1", "h2")
    assert reply.payload == b"grelab echo"
    net.transit.carries_exactly(net.sent_by("h1", "h2"))


def test_a_rekey_mid_stream_loses_no_echo(net, record_property):
    """r1 rekeys its child SA while h1 streams echoes to h2 (one every 5 ms, on until the old SAs are deleted): the
    stream's ESP under new SPIs both ways from then on, every echo answered."""
    ike.established(net, record_property)
    net.ping("h1", "h2")
    rekey = ike.rekey_mid_stream(net, at=20)
    record_property("rekey_echoes_sent", rekey.sent)
    record_property("rekey_echoes_lost", len(rekey.lost))
    print(f"rekey mid-stream ({net.variant.implementation}): {rekey.sent} echoes sent, {len(rekey.lost)} lost")
    assert rekey.lost == [], f"echoes lost across the rekey: {rekey.lost}\n{rekey.where}"
    assert all(rekey.carried[way]["old"] and rekey.carried[way]["new"] for way in rekey.carried), rekey.carried
    net.ping("h1", "h2")  # under the new SAs
