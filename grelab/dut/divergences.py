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
