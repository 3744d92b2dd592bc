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
in userspace); a rekey mid-stream loses no echo. Where libipsec is not the kernel (ESP in UDP with no NAT between
the routers; no transport mode), the case asks for what the kernel does and fails showing what was on the wire,
a strict expected failure naming strongSwan's source line (grelab.dut.divergences).
"""
from grelab.craft.peel import describe
from grelab.networks import ike, libipsec, offices
from grelab.networks.refusals import OUT_OF_SEQUENCE

net = libipsec.two_offices_libipsec().fixture()


def test_h1_reaches_h2_in_userspace_esp(net, record_property):
    """The SAs come up; h1's echo crosses in ESP that r1's charon made, r1's kernel xfrm untouched, its TUN busy."""
    before = net.dut("r1").counters()
    up = libipsec.established(net, record_property)
    assert up.took <= ike.CONVERGENCE_S
    assert ike.authenticated(net) == dict.fromkeys(("r1", "r2"), libipsec.authentication(net.variant))
    reply = net.ping("h1", "h2")
    assert reply.payload == b"grelab echo"
    net.transit.carries_exactly(net.sent_by("h1", "h2"))
    counted = libipsec.userspace_counted(net, up)
    assert counted["tx_packets"] >= 1 and counted["rx_packets"] >= 1, counted
    assert net.dut("r1").counters().delta(before)["xfrm"] == {}, "r1's /proc/net/xfrm_stat moved"


def test_tcp_in_userspace_esp(net, record_property):
    """A TCP exchange crosses segment for segment; each SA's sequence numbers run 1, 2, 3, ... (RFC 4303 2.2)."""
    up = libipsec.established(net, record_property)
    exchange = net.tcp("h1", "h2")
    assert exchange.echoed == exchange.sent
    net.transit.carries_exactly(net.sent_by("h1", "h2"))
    libipsec.userspace_counted(net, up)
    numbers = {}
    for _, _, spi, seq in libipsec.esp_frames(net):
        numbers.setdefault(spi, []).append(seq)
    assert len(numbers) == 2 and all(seqs == list(range(1, len(seqs) + 1)) for seqs in numbers.values()), numbers


def test_a_rekey_mid_stream_loses_no_echo(net, record_property):
    """r1's charon rekeys the child SA while h1 streams echoes to h2: new SPIs both ways, every echo answered."""
    up = libipsec.established(net, record_property)
    net.ping("h1", "h2")
    before = net.dut("r1").counters()
    carried, lost = libipsec.rekey_mid_stream(net, at=20)
    udp = {k: n for k, n in net.dut("r1").counters().delta(before)["snmp"].items() if k.startswith("Udp")}
    assert lost == [], f"echoes lost across the rekey: {lost}; r1's UDP counters moved by {udp}"
    print(f"stream frames by SA: {carried}")
    assert all(carried[direction]["old"] and carried[direction]["new"] for direction in carried), carried
    net.ping("h1", "h2")  # under the new SAs
    libipsec.userspace_counted(net, up)


def test_a_replayed_esp_packet_is_refused(net, record_property):
    """grelab replays ESP r1 already took (as if from r2): libipsec drops it, h1 never gets it twice, the TUN device
    does not count it; a fresh packet right after gets through."""
    libipsec.established(net, record_property)
    frame = libipsec.send_to_r1(net, 1, esp_seq=5, comment="crafted by grelab as r2 would send it, then sent again "
                                f"as it is: r1 must take it once and refuse the replay {OUT_OF_SEQUENCE}")
    net.link("lan1").expect(libipsec.delivered_to_h1(1), timeout=3)
    before = net.dut("r1").counters().link(libipsec.TUN)
    net.send("isp", frame[14:], protect=False)  # the same bytes: the comment above says it
    libipsec.send_to_r1(net, 2, esp_seq=6, comment="crafted by grelab, the next sequence number: r1 must take it")
    net.link("lan1").expect([libipsec.delivered_to_h1(1), libipsec.delivered_to_h1(2)], timeout=3)  # exact: once each
    net.link("lan2").expect([libipsec.answer_at_h2(1), libipsec.answer_at_h2(2)], timeout=3)
    moved = net.dut("r1").counters().link(libipsec.TUN)["rx_packets"] - before.get("rx_packets", 0)
    assert moved == 1, f"r1's {libipsec.TUN} gave out {moved} packets for the replay and the fresh one, expected 1"


def test_replay_window_is_charons(net, record_property):
    """charon's replay_window (32) is the window: ESP 40 below the highest number r1 took is refused, though never
    seen, as the kernel refuses it with the window kernel-netlink sets (RFC 4303 3.4.3)."""
    libipsec.established(net, record_property)
    inbound = net.dut("r2").check(f"/sbin/ip xfrm state list dst {offices.R2_WAN}")  # the kernel pairing's window
    assert f"replay-window {libipsec.REPLAY_WINDOW} " in inbound, inbound
    libipsec.send_to_r1(net, 1, esp_seq=50, comment="crafted by grelab as r2 would send it: r1 must take it")
    net.link("lan1").expect(libipsec.delivered_to_h1(1), timeout=3)
    libipsec.send_to_r1(net, 2, esp_seq=50 - libipsec.REPLAY_WINDOW - 8,
                        comment="crafted by grelab, left of a 32-packet window: r1 must refuse it")
    libipsec.send_to_r1(net, 3, esp_seq=51, comment="crafted by grelab, the next sequence number: r1 must take it")
    net.link("lan1").expect(libipsec.delivered_to_h1(3), timeout=3)
    net.link("lan2").expect([libipsec.answer_at_h2(1), libipsec.answer_at_h2(3)], timeout=3)
    got = [seq for seq in (1, 2, 3) if any(frame[14:] == bytes(libipsec.delivered_to_h1(seq))[14:]
                                           for frame in net.link("lan1").frames())]
    assert got == [1, 3], f"h1 got grelab's echoes {got}: the one left of the window went through"


def test_esp_is_raw_with_no_nat_between_the_routers(net, record_property):
    """No NAT between r1 and r2, so ESP crosses as IP protocol 50, as the kernel pairing's does (RFC 7296 2.23:
    UDP encapsulation only when NAT detection finds a NAT)."""
    libipsec.established(net, record_property)
    net.ping("h1", "h2")
    on_wire = [describe(frame, net.sas) for frame in net.transit.frames()]
    assert [proto for _, proto, _, _ in libipsec.esp_frames(net)] == [50, 50], "on the transit:\n" + "\n".join(on_wire)


def test_transport_mode_as_the_kernel_pairing_asks(net, record_property):
    """Both charons' child asks for transport mode, as ikev2's does: the child SA comes up in it and h1's echo
    crosses in transport-mode ESP."""
    libipsec.ask_for(net, "transport")
    initiated = libipsec.initiate(net)
    net.ping("h1", "h2")
    on_wire = "\n".join(describe(frame, net.sas) for frame in net.transit.frames())
    assert initiated.ok, (f"no transport-mode child SA: swanctl --initiate said:\n{initiated.output}\n"
                          f"on the transit:\n{on_wire}")
    net.negotiated(libipsec.read_sas(net.dut("r2")))
    assert {sa.mode for sa in net.sas} == {"transport"}, net.sas
    net.transit.carries_exactly(net.sent_by("h1", "h2"))
