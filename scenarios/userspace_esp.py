"""Userspace ESP: strongSwan's kernel-libipsec in r1 does the ESP around the offices' GRE, the kernel's xfrm in r2.

The two offices of ikev2 (IPv6 LANs, GRE across an IPv4 provider, charon negotiating the ESP with IKEv2 and a
pre-shared key or certificates of a test CA), but r1's charon loads the kernel-libipsec plugin: r1's kernel still
does GRE, routes the GRE packets into a TUN device (ipsec0) and takes the decrypted ones back from it, while the
ESP itself is done in charon, in userspace; r2 keeps the kernel's xfrm. r1 initiates, or r2 does (libipsec the
responder). strongSwan 5.9.8's libipsec does tunnel mode only and always puts ESP in UDP 4500 (it fakes a NAT in
IKE to get it), so the child SA is tunnel mode here, where ikev2's is transport mode.

The plot: the SAs come up within 5 s of the daemons' start (convergence_s); h1's echo and a TCP exchange cross, the
transit holding only ESP that decrypts, with the keys read back from r2's kernel, to exactly the GRE the hosts'
packets became, its sequence numbers 1, 2, 3, ... per SA; r1's kernel holds no SA or policy and its xfrm_stat does
not move, while its TUN device counts exactly the ESP packets r1 sent and received (the proof that the ESP was done
in userspace); a rekey mid-stream loses no echo; ESP grelab replays to r1 is dropped. Where libipsec is not the
kernel (ESP in UDP with no NAT between the routers; no transport mode; a replay window of its own), the case asks
for what the kernel does and fails showing what happened instead, a strict expected failure naming strongSwan's
source line (grelab.dut.divergences).
"""
from grelab.networks import ike, libipsec

net = libipsec.two_offices_libipsec().fixture()


def test_h1_reaches_h2_in_userspace_esp(net, record_property):
    """The SAs come up; h1's echo crosses in ESP that r1's charon made, r1's kernel xfrm untouched, its TUN busy."""
    before, up = net.dut("r1").counters(), libipsec.established(net, record_property)
    assert up.took <= ike.CONVERGENCE_S and ike.authenticated(net, libipsec.ROWS) == libipsec.authenticated_as(net.variant)
    assert net.ping("h1", "h2").payload == b"grelab echo"
    net.transit.carries_exactly(net.sent_by("h1", "h2"))
    libipsec.userspace_counted(net, up)
    assert net.dut("r1").counters().delta(before)["xfrm"] == {}, "r1's /proc/net/xfrm_stat moved"


def test_tcp_in_userspace_esp(net, record_property):
    """A TCP exchange crosses segment for segment; each SA's sequence numbers run 1, 2, 3, ... (RFC 4303 2.2)."""
    up = libipsec.established(net, record_property)
    exchange = net.tcp("h1", "h2")
    assert exchange.echoed == exchange.sent
    net.transit.carries_exactly(net.sent_by("h1", "h2"))
    libipsec.userspace_counted(net, up)
    numbers = libipsec.sequence_numbers(net)
    assert len(numbers) == 2 and all(seqs == list(range(1, len(seqs) + 1)) for seqs in numbers.values()), numbers


def test_a_rekey_mid_stream_loses_no_echo(net, record_property):
    """r1's charon rekeys the child SA while h1 streams echoes to h2: new SPIs both ways, every echo answered."""
    up = libipsec.established(net, record_property)
    net.ping("h1", "h2")
    rekey = libipsec.rekey_mid_stream(net, at=20)
    assert rekey.lost == [], f"echoes lost across the rekey: {rekey.lost}\n{rekey.where}"  # UDP counters among it
    assert all(by_sa["old"] and by_sa["new"] for by_sa in rekey.carried.values()), rekey.carried
    net.ping("h1", "h2")  # under the new SAs
    libipsec.userspace_counted(net, up)


def test_a_replayed_esp_packet_is_refused(net, record_property):
    """ESP r1 took, sent again by grelab as r2: libipsec drops it (h1 gets each echo once), takes the next."""
    libipsec.established(net, record_property)
    moved, taken = libipsec.replay_to_r1(net)
    assert moved == taken >= 1, f"r1's {libipsec.TUN} gave out {moved} packets for {taken + 1} ESP, a replay among them"


def test_replay_window_is_charons(net, record_property):
    """charon's replay_window (32, as r2's kernel has it): ESP 40 below the highest r1 took is refused (RFC 4303)."""
    libipsec.established(net, record_property)
    got = libipsec.left_of_the_window(net)
    assert got == [1, 3], f"h1 got grelab's echoes {got}: the one left of the window went through"


def test_esp_is_raw_with_no_nat_between_the_routers(net, record_property):
    """No NAT between r1 and r2: ESP crosses as IP protocol 50, as the kernel pairing's does (RFC 7296 2.23)."""
    libipsec.established(net, record_property)
    net.ping("h1", "h2")
    assert [p for _, p, _, _ in libipsec.esp_frames(net)] == [50, 50], "on the transit:\n" + libipsec.on_the_wire(net)


def test_transport_mode_as_the_kernel_pairing_asks(net, record_property):
    """Both charons' child asks for transport mode, as ikev2's does: it comes up, h1's echo crosses in it."""
    initiated = libipsec.initiate_in(net, "transport")
    net.ping("h1", "h2")
    assert initiated.ok, f"no child SA: swanctl said:\n{initiated.output}\non the transit:\n{libipsec.on_the_wire(net)}"
    assert {sa.mode for sa in net.negotiated(libipsec.read_sas(net.dut("r2")))} == {"transport"}, net.sas
    net.transit.carries_exactly(net.sent_by("h1", "h2"))
