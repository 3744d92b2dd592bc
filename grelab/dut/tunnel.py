"""Configure a DUT as a GRE endpoint, optionally protected by ESP: iproute2 commands made from grelab's own SAs.

The same `grelab.craft.SA` objects that craft and decrypt packets on grelab's side go into `ip xfrm`, so the
keys in the DUT, in grelab and in pcaps/esp_sa can never disagree.
"""
from __future__ import annotations

import ipaddress

from grelab.craft.esp import SA
from grelab.dut.base import Dut

# grelab's algorithm name -> the kernel's transform for `ip xfrm state` (after the key).
XFRM_TRANSFORMS = {
    "gcm128": ["aead", "rfc4106(gcm(aes))", "{key}", "128"],
    "gcm256": ["aead", "rfc4106(gcm(aes))", "{key}", "128"],
    "cbc128-sha256": ["enc", "cbc(aes)", "{key}", "auth-trunc", "hmac(sha256)", "{auth_key}", "128"],
    "cbc256-sha256": ["enc", "cbc(aes)", "{key}", "auth-trunc", "hmac(sha256)", "{auth_key}", "128"],
    "null-sha256": ["enc", "ecb(cipher_null)", "", "auth-trunc", "hmac(sha256)", "{auth_key}", "128"],
}


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


def esp_transport(dut: Dut, outbound: SA, inbound: SA, proto: str = "gre") -> None:
    """Protect `proto` between the SAs' endpoints with ESP: states for both directions, and policies that
    require ESP both ways, so plain GRE arriving is refused (counted in /proc/net/xfrm_stat)."""
    for sa in (outbound, inbound):
        xfrm_state(dut, sa)
    local, remote = outbound.src, outbound.dst
    width = "/32" if ipaddress.ip_address(local).version == 4 else "/128"
    for direction, src, dst in (("out", local, remote), ("in", remote, local)):
        sa = outbound if direction == "out" else inbound
        dut.ip("xfrm", "policy", "add", "src", src + width, "dst", dst + width, "proto", proto,
               "dir", direction, "tmpl", "src", sa.src, "dst", sa.dst, "proto", "esp", "mode", sa.mode)


def xfrm_state(dut: Dut, sa: SA) -> None:
    """`ip xfrm state add` for one grelab SA (any algorithm, transport or tunnel mode, NAT-T)."""
    words = ["xfrm", "state", "add", "src", sa.src, "dst", sa.dst, "proto", "esp", "spi", f"0x{sa.spi:08x}",
             "mode", sa.mode, "replay-window", "32"]
    if sa.nat_t:
        words += ["encap", "espinudp", str(sa.nat_t[0]), str(sa.nat_t[1]), "0.0.0.0"]
    keys = {"key": "0x" + sa.key.hex() if sa.key else "", "auth_key": "0x" + sa.auth_key.hex()}
    words += [w.format(**keys) for w in XFRM_TRANSFORMS[sa.algorithm]]
    dut.ip(*words)
