"""Plans for a GRE endpoint, optionally protected by ESP, made from grelab's own SAs.

The same `grelab.craft.SA` objects that craft and decrypt packets on grelab's side go into the DUT's xfrm
states, so the keys in the DUT, in grelab and in pcaps/esp_sa can never disagree. Each function returns a
Plan: add them up and `dut.apply(...)` once.
"""
from __future__ import annotations

import ipaddress

from grelab.craft.esp import SA
from grelab.dut.plan import Plan, Route, Tunnel, XfrmPolicy, XfrmState


def gre_tunnel(name: str, local: str, remote: str, *, routes: tuple[str, ...] = (), **options) -> Plan:
    """A GRE tunnel device (gre over IPv4, ip6gre over IPv6; any Tunnel option) from local to remote, up,
    and the prefixes in `routes` routed into it."""
    tunnel = Tunnel(name, local, remote, **options)
    return Plan(tunnels=(tunnel,), routes=tuple(Route(prefix, dev=name) for prefix in routes))


def esp_transport(outbound: SA, inbound: SA, proto: str = "gre", **state_options) -> Plan:
    """Protect `proto` between the SAs' endpoints with ESP: states for both directions, and policies that
    require ESP both ways, so plain GRE arriving is refused (counted in /proc/net/xfrm_stat)."""
    local, remote = outbound.src, outbound.dst
    width = "/32" if ipaddress.ip_address(local).version == 4 else "/128"
    policies = tuple(XfrmPolicy(src + width, dst + width, direction, sa.src, sa.dst, proto=proto, mode=sa.mode)
                     for direction, src, dst, sa in (("out", local, remote, outbound), ("in", remote, local, inbound)))
    states = tuple(XfrmState(sa, **state_options) for sa in (outbound, inbound))
    return Plan(states=states, policies=policies)
