"""A scenario's network, live and by hand: the lab a case gets (grelab.scenario.net.Net), outside pytest.

    lab = offices()                          # the two offices, their DUTs booted side by side, tunnels up
    lab.send("h1", IPv6(src=H1, dst=H2) / ICMPv6EchoRequest())
    lab.capture("transit", count=2)          # what crossed that link so far (chatter left out)
    lab.dut("r1").counters()
    lab.wireshark("transit")                 # Wireshark (tshark's view without a display), ESP decrypted
    lab.close()                              # or leave it: the run's scope takes it down at exit

It is the same Net a case gets: the DUTs come from a DUT pool (grelab.dut.pool; grelab.dut.select
behind it), the lab is built in a scope of the run (grelab.scope), captures of every golden link are armed
by a golden recorder, and everything goes when the lab is closed, or with the run.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from grelab.golden.case import write_pcapng
from grelab.golden.recorder import GoldenRecorder
from grelab.golden.store import GoldenStore
from grelab.scenario.net import Net
from grelab.scenario.spec import PLAIN_GRE, Scenario, Variant


class LiveLab:
    """One scenario's network up, with the variant's tunnels in its DUTs, until close()."""

    def __init__(self, scenario: Scenario, variant: Variant = PLAIN_GRE, dut: str = "auto"):
        from grelab.lab.build import build
        from grelab.lab.ownership import current_run
        from grelab.progress import status
        from grelab.dut.pool import DutPool
        self.scenario, self.variant, self.run_id = scenario, variant, current_run().id
        self.scope = current_run().scope.child(f"live lab {scenario.name}")
        self.folder = Path(tempfile.mkdtemp(prefix=f"grelab-{self.run_id}-live-"))
        self.scope.defer(lambda: shutil.rmtree(self.folder, ignore_errors=True), str(self.folder))
        try:
            pool = DutPool(dut)
            self.scope.defer(pool.stop, "the lab's DUTs")
            with status(f"booting {', '.join(scenario.duts)} ({pool.choice().name} DUT)"):
                duts = dict(zip(scenario.duts, pool.get_many(scenario.duts, scenario.interfaces)))
            recorder = GoldenRecorder(GoldenStore(self.folder), scenario.name, "live", "")
            booted = lambda *names, interfaces, ready_later=False: [duts[n] for n in names] if len(names) > 1 \
                else duts[names[0]]  # noqa: E731
            self.net = Net.start(scenario, variant, booted, lambda topology: build(topology, scope=self.scope), recorder)
        except BaseException:
            self.scope.close()
            raise

    def __getattr__(self, name):  # ping, tcp, sent_by, link, transit, address...: the Net's own
        if name == "net":
            raise AttributeError(name)
        return getattr(self.net, name)

    def send(self, node: str, packet, ifname: str | None = None) -> None:
        """An IP packet from node, framed to its peer's MAC (and ESP-protected in an ESP variant): Net.send."""
        self.net.send(node, packet, ifname)

    def capture(self, link: str, count: int | None = None, timeout: float = 2.0):
        """The frames on a golden link so far, chatter left out, as a scapy PacketList; count: wait (up to
        timeout) until there are that many."""
        from scapy.layers.l2 import Ether
        from scapy.plist import PacketList
        view = self.net.link(link)
        if count is not None:
            view.capture.wait(until=lambda _frames: len(view.frames()) >= count, timeout=timeout)
        return PacketList([Ether(data) for data in view.frames()], name=link)

    def dut(self, name: str):
        return self.net.dut(name)

    def pcap(self, path: str | Path, link: str | None = None) -> Path:
        """Write what was captured (one link, or all) as a pcapng with the golden's comments."""
        frames = [f for f in self.net.golden.record().sorted() if link is None or f.link == self.net.link(link).name]
        write_pcapng(frames, Path(path))
        return Path(path)

    def wireshark(self, link: str | None = None):
        """Open what was captured (one link, or all) in Wireshark, ESP decrypted with this lab's SAs; without
        a display, print tshark's detailed view."""
        from grelab.craft.esp_sa import esp_sa_text
        from grelab.golden.wireshark import show
        keys = self.folder / "esp_sa"
        keys.write_text(esp_sa_text(self.net.sas))
        opened = show(self.pcap(self.folder / f"{link or 'all'}.pcapng", link), keys, wait=False)
        return None if isinstance(opened, int) else opened  # tshark printed it; else the Wireshark process

    def close(self) -> None:
        self.scope.close()

    def __repr__(self) -> str:
        nodes = " ".join(n.name for n in self.net.lab.topology.nodes)
        return (f"<{self.scenario.name} lab, variant {self.variant.id}, run {self.run_id}: nodes {nodes}; "
                f"links {', '.join(self.scenario.links)}>")


def offices(variant: str = "gre", dut: str = "auto") -> LiveLab:
    """The two offices (h1 - r1 - isp - r2 - h2), variant "gre" or "gre-in-esp"."""
    from grelab.networks import offices as made
    scenario = made.two_offices("shell_offices")
    return LiveLab(scenario, _variant(scenario, variant), dut)


def endpoint(variant: str = "gre", dut: str = "auto") -> LiveLab:
    """grelab as the far GRE endpoint (grelab - r1 - h1), variant "gre" or "gre-in-esp"."""
    from grelab.networks import endpoint as made
    scenario = made.grelab_endpoint("shell_endpoint")
    return LiveLab(scenario, _variant(scenario, variant), dut)


def _variant(scenario: Scenario, name: str) -> Variant:
    from grelab.errors import check_choice
    ids = [v.id for v in scenario.variants]
    return scenario.variants[ids.index(check_choice("variant", name, ids))]
