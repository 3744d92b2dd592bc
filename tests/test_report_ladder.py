"""The run report's ladder rows (grelab.golden.ladder), from the catalogue's goldens: who sent each frame to whom,
what its ESP decrypts to, which frames a DUT dropped (only where the case saw a counter move), and where a capture
differs from its golden."""
import dataclasses
from pathlib import Path

from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether

from grelab.craft.keys import read_keys
from grelab.golden.case import read_pcapng
from grelab.golden.ladder import carried, golden_marks, labels, rows
from grelab.golden.recorder import Counted
from grelab.networks import endpoint

PCAPS = Path(__file__).resolve().parent.parent / "pcaps"
SAS = tuple({key.sa.spi: key.sa for key in reversed(read_keys(PCAPS / "esp_sa").keys)}.values())
GRELAB, R1 = endpoint.GRELAB_MAC.lower(), endpoint.R1_WAN_MAC.lower()
ENDS = {"transit": ("grelab", GRELAB, "r1", R1)}  # the link as the lab knows it: (capturing node, MAC, peer, MAC)


def frames(name: str):
    return read_pcapng(PCAPS / name)


def lan1_ends(got) -> dict:
    """lan1's ends, its MACs read from the frames: the first frame there is r1's, delivering an echo to h1."""
    r1 = ":".join(f"{b:02x}" for b in got[[f.link for f in got].index("lan1")].data[6:12])
    h1 = ":".join(f"{b:02x}" for b in got[[f.link for f in got].index("lan1")].data[0:6])
    return {**ENDS, "lan1": ("h1", h1, "r1", r1)}


def test_a_refused_esp_packet_is_a_drop_at_r1_with_the_counter_and_the_valid_echo_is_not():
    got = frames("esp_refusals/refused_and_counted-gre-in-esp-cbc128-sha256-unknown-spi.pcapng")
    span = Counted("r1", since=0.0, until=got[0].time + 0.001, moved={"xfrm.XfrmInNoStates": 1})
    drawn = rows(got, lan1_ends(got), SAS, [span])
    assert [(r["from"], r["to"], r["link"]) for r in drawn] == [
        ("grelab", "r1", "transit"), ("grelab", "r1", "transit"), ("r1", "h1", "lan1"), ("h1", "r1", "lan1"),
        ("r1", "grelab", "transit")]
    assert [r.get("drop") for r in drawn] == ["XfrmInNoStates +1", None, None, None, None]
    assert drawn[0]["label"] == "IPv4 198.51.100.2 > 198.51.100.1 / ESP spi=0x0000dead seq=1"
    assert drawn[0]["inner"] == "no SA for this SPI: not decrypted"
    assert drawn[1]["inner"] == ("IPv4 198.51.100.2 > 198.51.100.1 / GRE proto=0x86dd -> IPv6 2001:db8:2::10 > "
                                 "2001:db8:1::10 / ICMPv6 Echo Request (id: 0x4243 seq: 0xa)")  # what the ESP held
    assert drawn[1]["label"] == "IPv4 198.51.100.2 > 198.51.100.1 / ESP spi=0x11e657b4 seq=1 cbc128-sha256 transport"


def test_no_counted_span_no_drop_and_a_span_that_does_not_cover_the_frame_none_either():
    got = frames("esp_refusals/refused_and_counted-gre-in-esp-cbc128-sha256-unknown-spi.pcapng")
    assert not any("drop" in r for r in rows(got, lan1_ends(got), SAS))
    later = Counted("r1", since=got[1].time, until=got[-1].time, moved={"xfrm.XfrmInNoStates": 1})
    assert not any("drop" in r for r in rows(got, lan1_ends(got), SAS, [later]))  # the valid echo came out


def test_a_replay_is_a_drop_though_its_twin_came_out_before_it():
    got = frames("esp_refusals/refused_and_counted-gre-in-esp-cbc128-sha256-replayed.pcapng")
    assert got[0].data == got[4].data  # the same bytes twice: the first is forwarded, the second refused
    span = Counted("r1", since=got[4].time - 0.001, until=got[4].time + 0.001, moved={"xfrm.XfrmInStateSeqError": 1})
    drawn = rows(got, lan1_ends(got), SAS, [span])
    assert [i for i, r in enumerate(drawn) if "drop" in r] == [4]
    assert drawn[4]["drop"] == "XfrmInStateSeqError +1"


def test_a_missing_key_answered_with_icmp_is_a_drop_the_icmp_error_quotes_but_does_not_carry_it():
    got = frames("gre_options/option-gre-wrong-key.pcapng")
    span = Counted("r1", 0.0, got[-1].time, {"snmp.IcmpOutDestUnreachs": 1, "gre1.rx_packets": 1})
    drawn = rows(got, lan1_ends(got), SAS, [span])
    assert [i for i, r in enumerate(drawn) if "drop" in r] == [0]
    assert drawn[0]["drop"] == "IcmpOutDestUnreachs +1"  # r1's count of what it took (rx_packets) is not the drop's
    assert len(carried(got[1].data, ())) == 1  # the ICMP error: its own packet only


def test_forwarding_changes_are_set_aside_when_telling_a_packet_came_out():
    """The passenger r1 delivers has its hop limit one less and (RFC 6040) its ECN may be marked: still the same."""
    got = frames("ttl_tos_ecn/decapsulation-gre-ect0.pcapng")
    span = Counted("r1", 0.0, got[-1].time, {"gre1.rx_packets": 4})
    assert not any("drop" in r for r in rows(got, lan1_ends(got), SAS, [span]))
    dropped = frames("ttl_tos_ecn/decapsulation-gre-not-ect.pcapng")
    span = Counted("r1", 0.0, dropped[-1].time, {"gre1.rx_packets": 3, "gre1.rx_errors": 1, "gre1.rx_frame_errors": 1})
    drawn = rows(dropped, lan1_ends(dropped), SAS, [span])
    assert [r["drop"] for r in drawn if "drop" in r] == ["gre1.rx_errors +1, gre1.rx_frame_errors +1"]
    assert "CE outer header" in next(r["comment"] for r in drawn if "drop" in r)


def test_gre_in_gre_decapsulated_twice_came_out():
    got = frames("malformed/malformed-gre-nested-gre.pcapng")
    span = Counted("r1", 0.0, got[-1].time, {"gre1.rx_packets": 2})
    assert [len(k) for k in carried(got[0].data, ())] == [107, 83, 59]  # outer IPv4, inner IPv4, the IPv6 echo
    assert not any("drop" in r for r in rows(got, lan1_ends(got), SAS, [span]))


def test_an_esp_frame_that_does_not_decrypt_says_why():
    got = frames("esp_refusals/refused_and_counted-gre-in-esp-cbc128-sha256-flipped-bit.pcapng")
    shown = labels(got[0].data, SAS)
    assert shown["label"] == "IPv4 198.51.100.2 > 198.51.100.1 / ESP spi=0x11e657b4 seq=1"
    assert shown["inner"].startswith("does not decrypt: ESP SPI 0x11e657b4 seq 1: integrity check failed")


def test_tunnel_mode_decrypts_to_the_inner_ip_header():
    [name] = [p.name for p in (PCAPS / "esp_tunnel_mode").glob("echo-gre-in-esp-tunnel-gcm*.pcapng")][:1]
    got = frames(f"esp_tunnel_mode/{name}")
    transit = next(f for f in got if f.link == "transit")
    inner = labels(transit.data, SAS)["inner"]
    assert inner.startswith("IPv4 198.51.100.1 > 203.0.113.1 / GRE proto=0x86dd -> IPv6 2001:db8:1::10"), inner


def test_the_first_frame_per_link_that_differs_from_the_golden_is_marked_with_its_fields():
    golden = frames("two_offices/echo-gre.pcapng")
    wrong = Ether(golden[2].data)
    wrong[IPv6].hlim = 7
    changed = list(golden)
    changed[2] = dataclasses.replace(golden[2], data=bytes(wrong))
    assert golden_marks(changed, golden) == {2: ["IPv6.hlim: expected 7, got 62"]}
    assert golden_marks(golden[:-1], golden) == {len(golden) - 1: ["not in the golden (it has 1 on lan1)"]}
    assert golden_marks(golden, golden) == {}
