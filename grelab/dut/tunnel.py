"""Configure a DUT as a GRE endpoint, optionally protected by ESP: iproute2 commands made from grelab's own SAs.

The same `grelab.craft.SA` objects that craft and decrypt packets on grelab's side go into `ip xfrm`, so the
keys in the DUT, in grelab and in pcaps/esp_sa can never disagree.
"""
from __future__ import annotations

import ipaddress

from grelab.craft.algorithms import xfrm_algorithm_words, xfrm_esn_words
from grelab.craft.esp import SA
from grelab.dut.base import Dut

def gre_tunnel(dut: Dut, name: str, local: str, remote: str, *, key: int | None = None, seq: bool = False,
               csum: bool = False, ttl: int = 64, addresses: tuple[str, ...] = (),
               routes: tuple[str, ...] = ()) -> None:
    """A GRE tunnel device (gre over IPv4, ip6gre over IPv6) from local to remote, up, with its addresses and routes.

    The device gets no automatic IPv6 link-local address (addrgenmode none): that keeps neighbour discovery
    and MLD chatter out of the tunnel, so a transit capture holds exactly the traffic under test."""
    kind = "gre" if ipaddress.ip_address(local).version == 4 else "ip6gre"
    options = ["local", local, "remote", remote, "ttl", str(ttl)]
    if key is not None:
        options += ["key", str(key)]
    if seq:
        options += ["seq"]
    if csum:
        options += ["csum"]
    dut.ip("link", "add", name, "type", kind, *options)
    dut.ip("link", "set", "dev", name, "addrgenmode", "none")
    dut.ip("link", "set", "dev", name, "up")
    for address in addresses:
        dut.ip("addr", "add", address, "dev", name, *(["nodad"] if ":" in address else []))
    for prefix in routes:
        dut.ip("route", "add", prefix, "dev", name)


def esp_transport(dut: Dut, outbound: SA, inbound: SA, proto: str = "gre", seq_hi: int = 0) -> None:
    """Protect `proto` between the SAs' endpoints with ESP: states for both directions, and policies that
    require ESP both ways, so plain GRE arriving is refused (counted in /proc/net/xfrm_stat). seq_hi: with
    ESN, the high-order sequence number bits both states start from."""
    for sa in (outbound, inbound):
        xfrm_state(dut, sa, seq_hi)
    local, remote = outbound.src, outbound.dst
    width = "/32" if ipaddress.ip_address(local).version == 4 else "/128"
    for direction, src, dst in (("out", local, remote), ("in", remote, local)):
        sa = outbound if direction == "out" else inbound
        dut.ip("xfrm", "policy", "add", "src", src + width, "dst", dst + width, "proto", proto,
               "dir", direction, "tmpl", "src", sa.src, "dst", sa.dst, "proto", "esp", "mode", sa.mode)


def xfrm_state(dut: Dut, sa: SA, seq_hi: int = 0) -> None:
    """`ip xfrm state add` for one grelab SA (any algorithm, transport or tunnel mode, NAT-T, ESN)."""
    words = ["xfrm", "state", "add", "src", sa.src, "dst", sa.dst, "proto", "esp", "spi", f"0x{sa.spi:08x}",
             "mode", sa.mode, "replay-window", "32"]
    if sa.nat_t:
        words += ["encap", "espinudp", str(sa.nat_t[0]), str(sa.nat_t[1]), "0.0.0.0"]
    dut.ip(*words, *xfrm_algorithm_words(sa), *xfrm_esn_words(sa, seq_hi))
