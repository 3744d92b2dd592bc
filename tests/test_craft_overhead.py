"""Overhead, MTU and MSS arithmetic: the issue's figures, and agreement with real crafted packets."""
import itertools

import pytest
from scapy.layers.inet import IP

from grelab.craft import esp
from grelab.craft.gre import OUTER, gre
from grelab.craft.overhead import Stack, fragments, packets_for
from grelab.errors import InputError

from test_craft_esp import SCAPY_NAMES, make_sa


def test_gre_over_ipv4_on_a_1500_link():
    stack = Stack()
    assert stack.overhead() == 24 and stack.tunnel_mtu(1500) == 1476
    assert stack.mss(1500, "ipv4") == 1436 and stack.mss(1500, "ipv6") == 1416


def test_a_full_size_packet_in_gre_fragments():
    assert 1460 + 20 + 20 + Stack().overhead() == 1524
    assert fragments(1524, 1500) == [1500, 44]
    assert fragments(1524, 1400) == [1396, 148]  # what the kernel did in the field notes
    assert fragments(1500, 1500) == [1500]
    assert fragments(1524, 1280, "ipv6") == [1280, 300]  # 1484 bytes of data: 1232 + 252, each behind 40 + 8


def test_packets_to_carry_150000_bytes_with_and_without_gre():
    assert packets_for(150_000, Stack(gre=False).mss(1500)) == 103  # 1460-byte segments
    assert packets_for(150_000, Stack().mss(1500)) == 105  # 1436-byte segments


@pytest.mark.parametrize("stack, mtu", [
    (Stack(csum=True, key=True, seq=True), 1464),
    (Stack(transport="ipv6"), 1456),
    (Stack(ethernet=True), 1462),
    (Stack(esp="gcm128"), 1442),  # 20 + 8 ESP + 8 IV + 4 GRE + (inner + 2 trailer, on 4 bytes) + 16 ICV
    # 20 + 8 UDP + 8 ESP + 16 IV + 16 ICV leave 1432, so 1424 encrypted: 1398 + 24 (IPv4+GRE) + 2 trailer
    (Stack(esp="cbc128-sha256", esp_mode="tunnel", nat_t=True), 1398),
    (Stack(gre=False, esp="null-sha256", esp_mode="tunnel"), 1454),
])
def test_tunnel_mtu_for_options_and_esp(stack, mtu):
    assert stack.tunnel_mtu(1500) == mtu
    assert stack.wire_size(mtu) <= 1500 < stack.wire_size(mtu + 1)


@pytest.mark.parametrize("algorithm, mode, nat_t, transport", sorted(
    set(itertools.product(SCAPY_NAMES, esp.MODES, (False, True), ("ipv4", "ipv6"))) |
    {(algorithm, "transport", False, "ipv4") for algorithm in esp.ALGORITHMS}))
def test_wire_size_agrees_with_crafted_esp_for_every_padding(algorithm, mode, nat_t, transport):
    sa = make_sa(algorithm, mode, nat_t, transport)
    stack = Stack(transport=transport, key=True, esp=algorithm, esp_mode=mode, nat_t=nat_t)
    src, dst = OUTER[transport]
    for size in range(40, 56):  # a whole AES block's worth of paddings
        packet = gre(IP(src="198.51.100.1", dst="198.51.100.2") / bytes(size - 20), transport=transport, key=1)
        assert len(bytes(esp.encrypt(sa, packet))) == stack.wire_size(size)


@pytest.mark.parametrize("call, field", [
    (lambda: Stack().tunnel_mtu(24), "link MTU"),
    (lambda: Stack().mss(64), "link MTU"),
    (lambda: Stack(esp="aes-ctr"), "ESP algorithm"),
    (lambda: Stack(transport="ipx"), "transport"),
    (lambda: Stack(nat_t=True), "nat_t"),
    (lambda: Stack().mss(1500, "ipx"), "passenger IP"),
    (lambda: fragments(1524, 20), "MTU"),
])
def test_bad_input(call, field):
    with pytest.raises(InputError) as caught:
        call()
    assert caught.value.field == field
