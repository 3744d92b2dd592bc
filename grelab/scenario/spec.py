"""A scenario as data: its topology, which link is the transit, who the hosts are, what the golden says of
each link, its variants (plain GRE, GRE inside ESP with a named algorithm) and the tunnels they need.

    scenario = Scenario("two_offices", topology, duts=("r1", "r2"), links={...}, hosts={...},
                        comments=[...], tunnels=connect, variants=[PLAIN_GRE, IN_ESP])
    net = scenario.fixture()          # in the scenario module: the pytest fixture its cases take

Good defaults make a new scenario short: a variant's SAs are derived from the scenario's name, the variant
and the direction (reproducible keys; SPIs checked to be unique across every scenario of the process), the
markers a variant needs (ESP, several DUTs) are added for it, hosts are made quiet (no TCP timestamps, no
random IPv6 flow labels), and a capture of each golden link is armed before the case runs.
"""
from __future__ import annotations

import dataclasses
import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from grelab.craft.esp import ALGORITHMS, SA
from grelab.errors import InputError, check_choice
from grelab.lab.topology import Topology

# Hosts whose packets repeat run to run: no TCP timestamps or IPv6 flow labels (random), no tail loss probes (a
# retransmission a busy machine's late ACK would draw: one data segment more than the transfer needs), and no
# retransmission timeout under 2 s (the kernel's 200 ms floor drew a second copy of an echo whose ACK a loaded
# machine held back: once in ~100 soak runs). A real loss in a lab shows as a stall, then a golden difference.
QUIET_HOST = {"net.ipv4.tcp_timestamps": "0", "net.ipv6.auto_flowlabels": "0", "net.ipv4.tcp_early_retrans": "0",
              **({"net.ipv4.tcp_rto_min_us": "2000000"} if Path("/proc/sys/net/ipv4/tcp_rto_min_us").exists() else {})}


@dataclass(frozen=True)
class Variant:
    """One telling of a scenario: `id` names its cases and goldens (test_echo[gre-in-esp] ->
    echo-gre-in-esp.pcapng); esp: the ESP algorithm around the GRE (None: plain GRE); sas: explicit SAs
    (else derived, see Scenario.sas); mode: ESP transport or tunnel mode; implementation: the implementations
    the variant puts on the DUTs beside the DUT kind's own, e.g. "strongswan→libreswan" (initiator→responder):
    `grelab matrix` makes it the case's column, and grelab.dut.divergences matches its parts."""

    id: str
    esp: str | None = None
    sas: tuple[SA, ...] = ()
    mode: str = "transport"
    implementation: str | None = None

    def __post_init__(self):
        if self.esp is not None:
            check_choice("variant esp", self.esp, list(ALGORITHMS))

    def carrier(self, plain: str) -> str:
        """How the transit's packets are described in the golden's comments."""
        return f"ESP ({self.mode} mode) around {plain}" if self.esp else plain


PLAIN_GRE = Variant("gre")
IN_ESP = Variant("gre-in-esp", esp="gcm128")


def in_esp(algorithm: str, mode: str = "transport") -> Variant:
    """GRE inside ESP with that algorithm, the case id naming it (gre-in-esp-cbc128-sha256; in tunnel mode
    gre-in-esp-tunnel-cbc128-sha256)."""
    return Variant(f"gre-in-esp-{'tunnel-' if mode == 'tunnel' else ''}{algorithm}", esp=algorithm, mode=mode)


@dataclass(frozen=True)
class Comment:
    """What the golden says of frames on `link` (every link if None); with sent_by, only of frames that host
    put on it; with match, only of frames it matches. `{carrier}` in the text becomes the variant's carrier (e.g. "ESP (transport mode) around ...")."""

    text: str
    link: str | None = None
    sent_by: str | None = None
    match: object = None  # and only of frames matching this (a template, or a function of the frame's bytes)


@dataclass(frozen=True)
class Scenario:
    name: str
    topology: Callable[..., Topology]  # topology(**duts) -> Topology, DUT nodes given by name
    duts: tuple[str, ...]
    links: dict[str, tuple]  # golden link name -> (node, ifname) or (node, ifname, capture filter)
    hosts: dict[str, str] = field(default_factory=dict)  # host node -> its address (ping, tcp)
    transit: str = "transit"
    carrier: str = "IPv4/GRE (0x86DD)"
    comments: tuple[Comment, ...] = ()
    tunnels: Callable | None = None  # tunnels(variant, sas) -> {dut name: Plan}
    variants: tuple[Variant, ...] = (PLAIN_GRE, IN_ESP)
    interfaces: tuple[str, ...] = ("wan", "lan")  # each DUT's
    routing: frozenset = frozenset()  # control-plane traffic of the DUTs' daemons: IP protocol numbers (89:
    # OSPF) and "ike" (UDP 500/4500): timed by the daemons, so left out of goldens and of link.frames()
    # (grelab.expect.match.is_routing); assert on it through the captures (net.golden.frames(link))
    capabilities: frozenset[str] = frozenset({"gre"})  # what its DUTs must do (gre, ipv6_transport), besides a
    # variant's ESP: a DUT that lacks one skips the case saying so (fails it, when named with --dut)

    def __post_init__(self):
        if self.transit not in self.links:
            raise InputError("scenario transit", self.transit, "one of its links: " + ", ".join(self.links))
        ids = [v.id for v in self.variants]
        if len(set(ids)) != len(ids):
            raise InputError("scenario variants", ids, "distinct ids")

    def sas(self, variant: Variant, local: str, remote: str) -> tuple[SA, SA]:
        """(local -> remote, remote -> local) SAs of the variant: its own, or derived from the scenario's
        name, the variant and the direction, so they repeat run to run and differ between scenarios."""
        if variant.sas:
            forward = [sa for sa in variant.sas if (sa.src, sa.dst) == (local, remote)]
            backward = [sa for sa in variant.sas if (sa.src, sa.dst) == (remote, local)]
            if len(forward) != 1 or len(backward) != 1:
                raise InputError(f"variant {variant.id} sas", variant.sas, f"one SA {local}->{remote} and one back")
            return forward[0], backward[0]
        return (derived_sa(self.name, variant, local, remote), derived_sa(self.name, variant, remote, local))

    def derived_sa(self, variant: Variant, src: str, dst: str) -> SA:
        """The SA of this scenario, variant and direction that derived_sa makes (a daemon's SA's stand-in)."""
        return derived_sa(self.name, variant, src, dst)

    def fixture(self, name: str = "net"):
        """The pytest fixture (named `net`) giving each case a grelab.scenario.net.Net, once per variant. The
        calling module is remembered as this scenario's (scenario_of), so the plugin boots its DUTs early."""
        import inspect

        import pytest

        _by_module[inspect.currentframe().f_back.f_globals.get("__name__", "")] = self

        from grelab.scenario.net import Net

        params = [pytest.param(v, id=v.id, marks=self.marks(v)) for v in self.variants]

        @pytest.fixture(name=name, params=params)
        def net(request, duts, lab, golden):
            return Net.start(self, request.param, duts, lab, golden)
        net.scenario = self  # for `grelab list` (grelab.scenario.catalog)
        return net

    def needs(self, variant: Variant) -> dict[str, str]:
        """What a DUT must be able to do for this variant: {capability: how to say it is missing}."""
        needs = {"several": f"{len(self.duts)} DUTs at once"} if len(self.duts) > 1 else {}
        for capability in sorted(set(self.capabilities) | ({"esp"} if variant.esp else set())):
            needs[capability] = capability
        return needs

    def marks(self, variant: Variant) -> list:
        import pytest
        needs = self.needs(variant)
        marks = [pytest.mark.needs_duts(len(self.duts))] if "several" in needs else []
        marks += [getattr(pytest.mark, f"needs_{capability}") for capability in needs if capability != "several"]
        return marks

    def with_plans(self, topology: Topology, plans: dict) -> Topology:
        """The topology with each DUT node's plan (its tunnels) added, so the lab applies it in one go."""
        nodes = [dataclasses.replace(n, plan=(n.plan + plans[n.name]) if n.plan else plans[n.name])
                 if n.name in plans else n for n in topology.nodes]
        return dataclasses.replace(topology, nodes=nodes)


_by_module: dict[str, Scenario] = {}


def scenario_of(module) -> Scenario | None:
    """The Scenario whose fixture a test module made, if any."""
    return _by_module.get(getattr(module, "__name__", None))


_spis: dict[int, str] = {}
_spis_lock = threading.Lock()


def derived_sa(scenario: str, variant: Variant, src: str, dst: str) -> SA:
    """An SA whose SPI and keys are a hash of (scenario, variant, direction): the same every run, and
    refused if its SPI was already handed to another (scenario, variant, direction) in this process."""
    who = f"{scenario}/{variant.id}/{src}>{dst}"
    digest = hashlib.sha256(who.encode()).digest()
    spi = 0x10000000 | int.from_bytes(digest[:4], "big") & 0x0FFFFFFF  # below: SPIs written by hand
    with _spis_lock:
        if _spis.setdefault(spi, who) != who:
            raise InputError("derived SPI", f"0x{spi:08x} for {who}", f"one not taken by {_spis[spi]}: rename the variant")
    algo = ALGORITHMS[variant.esp]
    # 32 bytes for the cipher, then as many as the integrity key takes (HMAC-SHA-384/512: 48/64), the first 32 of
    # them what they always were.
    keys = hashlib.sha256(digest).digest() + hashlib.sha256(digest + b"auth").digest() \
        + hashlib.sha256(digest + b"auth+").digest()
    return SA(spi, variant.esp, keys[:algo.key_len], keys[32:32 + algo.auth_key_len], src=src, dst=dst,
              mode=variant.mode)
