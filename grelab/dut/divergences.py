"""Where an implementation behaves differently from what a case expects, and that is its behaviour, not grelab's bug.

One row per divergence: which implementation (a DUT kind such as "ovs", or an implementation a variant puts on
the DUTs, Variant.implementation, such as "libreswan"), which cases (a pattern over the case's id within
its scenario, `test_file.py::test_name[variant]`, * and ? wildcards), the behaviour in a sentence, and where it comes from (the
implementation's source line or changelog entry). The pytest plugin marks each matching case a strict expected
failure naming that behaviour: the day the implementation changes, the case passes, and a strict xfail that
passes fails the run, so the row must go. `grelab matrix` shows the row's behaviour in its cell.
"""
from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Divergence:
    implementation: str  # a DUT kind ("ovs") or a Variant.implementation part ("libreswan")
    cases: str  # pattern over "scenario_file.py::test_name[variant]": * any text, ? one character, [ ] themselves
    behaviour: str  # what the implementation does instead, in one sentence
    source: str  # where that is decided: "ofproto/tunnel.c: ..." or a changelog entry


def _rows(implementation: str, cases: tuple[str, ...], behaviour: str, source: str) -> tuple[Divergence, ...]:
    """One behaviour seen in several cases: a row for each."""
    return tuple(Divergence(implementation, case, behaviour, source) for case in cases)


# Open vSwitch 3.1.0 (Debian 12's openvswitch-switch), userspace datapath: `--dut ovs` (grelab.dut.ovs).
OVS = "openvswitch v3.1.0"
OVS_DIVERGENCES = (
    *_rows("ovs", ("gre_options.py::test_option[gre-wrong-key]", "gre_options.py::test_option[gre-missing-key]",
                   "gre_options.py::test_option[gre-ikey-okey]", "hub_and_spoke.py::test_key_from_the_other_spoke[*]"),
           "GRE that no tunnel takes (a wrong or missing key) is dropped with a log line, never answered with ICMP "
           "port unreachable", f"{OVS} ofproto/tunnel.c:316-322, tnl_port_receive: receive tunnel port not found"),
    Divergence("ovs", "gre_options.py::test_option[gre-csum-not-asked-for]",
               "a GRE checksum is verified whenever it is present and the packet then taken: no tunnel option asks "
               "for one or refuses one (the kernel's drops it with rx_crc_errors unless icsum)",
               f"{OVS} lib/netdev-native-tnl.c:384-395, parse_gre_header"),
    Divergence("ovs", "anycast.py::test_failover[gre]",
               "a tunnel ends only on an address of a device that is no loopback: the pops' anycast address on lo "
               "takes no GRE (it goes to the namespace's kernel, which has no GRE)",
               f"{OVS} lib/tnl-ports.c:382, insert_ipdev__: NETDEV_LOOPBACK devices are skipped"),
    *_rows("ovs", ("keepalives.py::test_keepalive[*]", "keepalives.py::test_monitor_reports_down[*]"),
           "GRE is taken out of its outer IP header in userspace before the namespace's IP stack sees it: "
           "IpInReceives and IpInDelivers count the passengers only, never the GRE packets",
           f"{OVS} ofproto/ofproto-dpif-xlate.c:4206, terminate_native_tunnel (tnl_port_map_lookup, then tnl_pop)"),
    *_rows("ovs", ("malformed.py::test_malformed[gre-strict-source-route-bit]",
                   "malformed.py::test_malformed[gre-recursion-control]",
                   "malformed.py::test_malformed[gre-reserved-flag-bit-8]"),
           "GRE with any flag but C, K and S set is dropped (RFC 2784's MUST), where the kernel ignores the strict "
           "source route bit, recursion control and flag bit 8", f"{OVS} lib/netdev-native-tnl.c:374, parse_gre_header"),
    Divergence("ovs", "malformed.py::test_malformed[gre-nested-gre]",
               "GRE is decapsulated once: GRE inside GRE leaves the tunnel as a passenger (to the namespace's "
               "kernel, which has no GRE and answers protocol unreachable); a tunnel ends only where a packet is output "
               "to a port holding the tunnel's address, addressed to that port's MAC",
               f"{OVS} ofproto/ofproto-dpif-xlate.c:4204-4206, terminate_native_tunnel; lib/tnl-ports.c:104-130, map_insert"),
    Divergence("ovs", "malformed.py::test_malformed[gre-empty-passenger-12-byte-header]",
               "an empty passenger behind a 12-byte header is handed on like any other (the tunnel counts it "
               "received): no length error", f"{OVS} lib/netdev-native-tnl.c:378, parse_gre_header checks the header only"),
    Divergence("ovs", "mtu.py::test_path_mtu_shrinks[gre]",
               "a userspace tunnel keeps no path MTU: it sets DF and never reads the ICMP fragmentation-needed that "
               "comes back (the namespace's kernel takes it), so the tunnel's MTU stays 1476",
               f"{OVS} lib/netdev-native-tnl.c:297, netdev_tnl_ip_build_header"),
    Divergence("ovs", "mtu.py::test_nopmtudisc_fragments_on_the_way[gre]",
               "fragmented GRE is never reassembled: a fragment matches no tunnel port and goes to the namespace's "
               "kernel", f"{OVS} lib/tnl-ports.c:126-127, map_insert: 'XXX: No fragments support.'"),
    Divergence("ovs", "ttl_tos_ecn.py::test_decapsulation[gre-not-ect]",
               "a not-ECT passenger in a CE outer header is dropped (RFC 6040) with a log line, counted in no "
               "statistic of the tunnel (the kernel's: rx_frame_errors, rx_errors)",
               f"{OVS} ofproto/tunnel.c:350-353, tnl_process_ecn"),
    Divergence("ovs", "ttl_tos_ecn.py::test_decapsulation[gre-ect0]",
               "only CE is copied inward: an outer ECT(1) leaves an ECT(0) passenger ECT(0) (RFC 6040 makes it ECT(1))",
               f"{OVS} ofproto/tunnel.c:349-357, tnl_process_ecn"),
    *_rows("ovs", ("ipsec_over_ipv6.py::test_echo[gre]", "ipsec_over_ipv6.py::test_tcp[gre]",
                   "ipv6_transport.py::test_passenger[*]", "ipv6_transport.py::test_encapsulation_limit[gre-default-4]",
                   "ipv6_transport.py::test_tunnel_mtu[*-limit-1448]"),
           "GRE over IPv6 carries no tunnel encapsulation limit option (RFC 2473): GRE follows the IPv6 header at "
           "once, 8 bytes fewer than the kernel's default (encaplimit 4), so its MTU is 1456, never 1448",
           f"{OVS} lib/netdev-native-tnl.c:313, netdev_tnl_ip_build_header"),
)

DIVERGENCES: tuple[Divergence, ...] = (
    # Seen on the wire (scenarios/ikev2.py): r2's first ESP under its new SPI leaves before (or with) its
    # CREATE_CHILD_SA response, and r1 drops it as XfrmAcquireError (ESP for an SPI it has only reserved). strongSwan
    # as the responder sends under the new SA only once the initiator deleted the old one
    # (src/libcharon/sa/ikev2/tasks/child_create.c:709-713 at 5.9.8): none lost.
    Divergence("libreswan", "ikev2.py::test_a_rekey_mid_stream_loses_no_echo[*-libreswan]",
               "as the responder of a Child SA rekey, pluto installs the new outbound SA with the inbound one when "
               "the request arrives, so it sends under the new SPI before the initiator holds it: the echo replies "
               "of the rekey's round trip are dropped by the initiator's kernel (XfrmAcquireError)",
               "programs/pluto/ikev2_child.c:382-383 at v4.10 (process_v2_child_request_payloads: "
               "install_ipsec_sa(&larval_child->sa, true), inbound and outbound at once)"),
    # strongSwan 5.9.8's userspace ESP (charon's kernel-libipsec plugin, libipsec), scenarios/userspace_esp.py.
    Divergence("strongswan-libipsec", "userspace_esp.py::test_esp_is_raw_with_no_nat_between_the_routers[*]",
               "libipsec does ESP only in UDP 4500: charon fakes a NAT in IKE to get it, with no NAT between the peers",
               "strongSwan 5.9.8 src/libcharon/plugins/kernel_libipsec/kernel_libipsec_ipsec.c:234 (get_features: "
               "KERNEL_REQUIRE_UDP_ENCAPSULATION), src/libcharon/sa/ikev2/tasks/ike_natd.c:149 (a faked NAT-D hash), "
               "src/libipsec/ipsec_sa.c:288 (\"only UDP encapsulation is supported\"); raw ESP came in 5.9.11"),
    Divergence("strongswan-libipsec", "userspace_esp.py::test_transport_mode_as_the_kernel_pairing_asks[*]",
               "libipsec refuses a transport-mode SA (\"IPsec SA: unsupported mode\"): as initiator charon deletes the "
               "child, as responder it answers NO_PROPOSAL_CHOSEN; GRE then crosses in the clear",
               "strongSwan 5.9.8 src/libipsec/ipsec_sa.c:303 (mode != MODE_TUNNEL)"),
    Divergence("strongswan-libipsec", "userspace_esp.py::test_replay_window_is_charons[*]",
               "libipsec's replay window is always 128 packets, whatever charon's replay_window says (the kernel's "
               "SAs get 32): ESP 40 below the highest number taken is accepted",
               "strongSwan 5.9.8 src/libipsec/esp_context.c:30 (ESP_DEFAULT_WINDOW_SIZE 128, set at :336); "
               "src/libcharon/plugins/kernel_libipsec/kernel_libipsec_ipsec.c:255 (add_sa passes no replay_window)"),
    *OVS_DIVERGENCES,
)


def case_id(nodeid: str) -> str:
    """A pytest node id without its folders: scenarios/gre_options.py::test_iseq[gre] -> gre_options.py::test_iseq[gre]."""
    path, sep, rest = nodeid.partition("::")
    return path.rsplit("/", 1)[-1] + sep + rest


def implementations_of(dut_kind: str, variant_implementation: str | None) -> set[str]:
    """What implementations a case runs on: the DUT kind, and each named in its variant (e.g. "strongswan→libreswan")."""
    named = set(filter(None, (variant_implementation or "").replace("→", " ").replace(",", " ").split()))
    return {dut_kind} | named


def divergences_for(nodeid: str, implementations: set[str],
                    table: tuple[Divergence, ...] | None = None) -> list[Divergence]:
    """The rows of `table` (DIVERGENCES as it is when called) that say how one of `implementations` behaves in this
    case."""
    case = case_id(nodeid)
    return [row for row in (DIVERGENCES if table is None else table) if row.implementation in implementations and _matches(row.cases, case)]


def _matches(pattern: str, case: str) -> bool:
    """`*` and `?` as wildcards; everything else, brackets included (case ids have them), as itself."""
    wild = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(wild, case) is not None


def reason(rows: list[Divergence]) -> str:
    """The strict xfail's reason: each implementation's behaviour and where it is decided."""
    return "; ".join(f"{row.implementation}: {row.behaviour} ({row.source})" for row in rows)
