"""Overhead, tunnel MTU and TCP MSS for a stack of encapsulations, and what fragmentation does to a packet.

GRE over IPv4 on a 1500-byte link: 20 (IPv4) + 4 (GRE) = 24 bytes, so the tunnel MTU is 1476 and the MSS of an
IPv4 passenger's TCP is 1476 - 20 - 20 = 1436 (IPv6: 1476 - 40 - 20 = 1416). A full-size 1500-byte packet sent
into that tunnel is 1460 + 20 + 20 + 24 = 1524 bytes on the link: two fragments, 1500 + 44.
"""
from __future__ import annotations

from dataclasses import dataclass
from math import ceil, lcm

from grelab.craft.esp import ALGORITHMS, MODES
from grelab.errors import InputError, check_choice, check_range

IP_HEADER = {"ipv4": 20, "ipv6": 40}
GRE_HEADER = 4  # flags+version, protocol type
GRE_OPTION = 4  # each of: checksum+reserved1, key, sequence number
ESP_HEADER = 8  # SPI, sequence number
ESP_TRAILER = 2  # pad length, next header
UDP_HEADER = 8  # NAT traversal (RFC 3948)
ETHERNET_HEADER = 14  # transparent Ethernet bridging carries the frame without its FCS
TCP_HEADER = 20
IPV6_FRAGMENT_HEADER = 8


@dataclass(frozen=True)
class Stack:
    """What wraps an inner IP packet on its way across the link: GRE (with options) over IPv4/IPv6, optionally
    bridged Ethernet inside, optionally ESP (transport or tunnel mode, optionally in UDP) outside."""
    transport: str = "ipv4"
    gre: bool = True
    csum: bool = False
    key: bool = False
    seq: bool = False
    ethernet: bool = False
    esp: str | None = None
    esp_mode: str = "transport"
    nat_t: bool = False

    def __post_init__(self):
        check_choice("transport", self.transport, list(IP_HEADER))
        check_choice("ESP mode", self.esp_mode, MODES)
        if self.esp is not None:
            check_choice("ESP algorithm", self.esp, list(ALGORITHMS))
        elif self.nat_t:
            raise InputError("nat_t", True, "only with esp (NAT traversal encapsulates ESP)")

    def wire_size(self, inner: int) -> int:
        """Bytes of IP on the link for an inner IP packet of `inner` bytes."""
        size = inner + ETHERNET_HEADER * self.ethernet
        if self.gre:
            size += GRE_HEADER + GRE_OPTION * (self.csum + self.key + self.seq) + IP_HEADER[self.transport]
        if self.esp:
            algo = ALGORITHMS[self.esp]
            protected = size - IP_HEADER[self.transport] if self.esp_mode == "transport" else size
            padded = protected + ESP_TRAILER
            padded += -padded % lcm(algo.block, 4)
            size = IP_HEADER[self.transport] + UDP_HEADER * self.nat_t + ESP_HEADER + algo.iv_len + padded + \
                algo.icv_len
        return size

    def overhead(self, inner: int = 1400) -> int:
        """Bytes added to an inner packet of `inner` bytes (ESP padding makes it depend on the size)."""
        return self.wire_size(inner) - inner

    def tunnel_mtu(self, link_mtu: int = 1500) -> int:
        """The largest inner IP packet that crosses a link of link_mtu without fragmenting."""
        link_mtu = check_range("link MTU", link_mtu, 1, 1 << 16)
        inner = link_mtu
        while inner > 0 and self.wire_size(inner) > link_mtu:
            inner -= 1  # ESP padding makes the overhead depend on the size: step down to the largest that fits
        if inner <= 0:
            raise InputError("link MTU", link_mtu, f"more than this stack's overhead of {self.wire_size(0)} bytes")
        return inner

    def mss(self, link_mtu: int = 1500, ip: str = "ipv4") -> int:
        """TCP's MSS for an IPv4 or IPv6 passenger: the tunnel MTU less the passenger's IP and TCP headers."""
        check_choice("passenger IP", ip, list(IP_HEADER))
        mss = self.tunnel_mtu(link_mtu) - IP_HEADER[ip] - TCP_HEADER
        if mss <= 0:
            raise InputError("link MTU", link_mtu, "room for an IP and a TCP header inside the tunnel")
        return mss


def fragments(size: int, mtu: int = 1500, ip: str = "ipv4") -> list[int]:
    """Sizes of the fragments of a size-byte packet on an mtu link: every fragment but the last carries a multiple
    of 8 bytes of data (RFC 791; IPv6 adds an 8-byte fragment header, RFC 8200)."""
    check_choice("IP", ip, list(IP_HEADER))
    header = IP_HEADER[ip]
    size = check_range("packet size", size, header, 1 << 20)
    if size <= mtu:
        return [size]
    per_fragment_header = header + (IPV6_FRAGMENT_HEADER if ip == "ipv6" else 0)
    chunk = (check_range("MTU", mtu, per_fragment_header + 8, 1 << 16) - per_fragment_header) // 8 * 8
    data = size - header
    return [per_fragment_header + min(chunk, data - offset) for offset in range(0, data, chunk)]


def packets_for(payload_bytes: int, mss: int) -> int:
    """Full-size TCP segments needed to carry payload_bytes at this MSS."""
    return ceil(check_range("payload bytes", payload_bytes, 0, 1 << 62) / check_range("MSS", mss, 1, 1 << 16))
