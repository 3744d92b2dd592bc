"""A flood at r1, as data and measures: grelab (the far GRE endpoint) -- r1 -- h1, and every frame accounted for.

flood() builds valid, junk and invalid GRE frames (grelab.craft.fast.Stream); run(net) sends them with the lab's
Sender (sendmmsg) and returns what every counter on the way says: grelab's, the DUT's host side (its bridge's veth
end and its tap), the DUT's own, and grelab's capture on h1. See scenarios/flood.py for the story.
"""
from __future__ import annotations

import socket
import subprocess
import time

from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import GRE as GREHeader, Ether

from grelab.craft.fast import Stream
from grelab.expect.match import is_chatter
from grelab.dut.plan import Neighbour, Plan
from grelab.lab import netns
from grelab.lab.rtnl import Rtnl
from grelab.lab.topology import Node
from grelab.progress import progress
from grelab.networks import endpoint as e

FLOOD_MAC, PORT, EACH = "02:00:00:00:0f:02", 40009, 40_000
R1_LAN_MAC = "02:00:00:00:01:01"
NO_IPV6 = {"net.ipv6.conf.all.disable_ipv6": "1", "net.ipv6.conf.default.disable_ipv6": "1"}
H1_DROPS_FLOOD = f"""
table inet flood {{
    chain input {{
        type filter hook input priority 0; policy accept;
        udp dport {PORT} drop
    }}
}}
"""


def topology(r1):
    """The endpoint's, h1 dropping the flood's UDP silently (no ICMP port unreachable back into the tunnel), and
    grelab's own kernel without IPv6 (no MLD or ND of its own on the wire while frames are counted)."""
    t = e.topology(r1)
    t.nodes = [Node(**{**n.__dict__, "nft": H1_DROPS_FLOOD}) if n.name == "h1" else
               Node(**{**n.__dict__, "sysctls": NO_IPV6}) if n.name == "grelab" else n for n in t.nodes]
    return t


# The golden's links leave the flood out: its frames come from a MAC of their own, and go to UDP port PORT.
CHUNK = 10_000  # frames a send call takes: small enough for a progress bar to move, large enough for sendmmsg
LINKS = {"transit": ("grelab", "eth0", f"(ip proto 47 or icmp) and not ether src {FLOOD_MAC}"),
         "lan1": ("h1", "eth0", f"not udp port {PORT}")}
KEY, CSUM = dict(key_present=1, key=42), dict(chksum_present=1)


def flood() -> tuple[list[bytes], dict[str, int]]:
    """The flood's frames, valid, junk and invalid in turn, and how many of each."""
    outer = Ether(src=FLOOD_MAC, dst=e.R1_WAN_MAC) / IP(src=e.GRELAB, dst=e.R1_WAN, ttl=64)
    udp = IPv6(src=e.FAR_LAN_HOST, dst=e.H1, hlim=64) / UDP(sport=1, dport=PORT) / b"grelab flood 0123"
    ids = [n & 0xFFFF for n in range(EACH)]
    kinds = {
        "valid": Stream(outer / GREHeader(**KEY, **CSUM) / udp).build({(IP, "id"): ids, (UDP, "sport"): [1024 + n for n in range(EACH)]}),
        "junk": Stream(outer / GREHeader(**KEY, **CSUM, proto=0x88B5) / bytes(range(46))).build({(IP, "id"): ids}),
        "invalid": Stream(outer / GREHeader(**KEY) / udp).build({(IP, "id"): ids}),
    }
    return [f for three in zip(*kinds.values()) for f in three], {k: len(v) for k, v in kinds.items()}


def _permanent_neighbours(ifname: str, mac: str, addresses) -> None:
    """In the calling thread's namespace: each address at mac on ifname, never probed."""
    rtnl = Rtnl()
    try:
        for address in addresses:
            rtnl.add_neighbour(socket.if_nametoindex(ifname), address, mac)
    finally:
        rtnl.close()


def tx_packets(net, node: str, ifname: str) -> int:
    """A lab node's interface's tx_packets, from its namespace's /proc/net/dev."""
    text = net.lab.run_in(node, lambda: open("/proc/thread-self/net/dev").read())
    fields = next(line.split(":", 1)[1].split() for line in text.splitlines() if line.strip().startswith(ifname + ":"))
    return int(fields[9])


def host_side(dut) -> dict[str, int]:
    """The DUT namespace's counters of its wan: what the lab's veth end took in (veth_rx), what the guest read from
    its tap (tap_read: the tap's tx_packets) and what the tap dropped with its queue full (tap_dropped)."""
    veth = subprocess.run(["ip", "netns", "exec", dut.namespace, "ip", "-o", "link", "show", "master", "b-wan"],
                          capture_output=True, text=True, check=True).stdout
    names = [line.split(":")[1].strip().split("@")[0] for line in veth.splitlines()]
    veth = next(n for n in names if not n.startswith("t-"))
    text = netns.run_in(dut.namespace, lambda: open("/proc/thread-self/net/dev").read())
    dev = {line.split(":")[0].strip(): [int(x) for x in line.split(":", 1)[1].split()]
           for line in text.splitlines() if ":" in line}
    return {"veth_rx": dev[veth][1], "tap_read": dev["t-wan"][9], "tap_dropped": dev["t-wan"][11]}


def drained(dut, before: dict, timeout: float = 10.0) -> dict[str, int]:
    """Until the guest has read or dropped everything its tap queued (no event tells: polled against a deadline);
    the host side's deltas then."""
    deadline = time.monotonic() + timeout
    while True:
        now = host_side(dut)
        delta = {k: now[k] - before[k] for k in now}
        if delta["tap_read"] + delta["tap_dropped"] >= delta["veth_rx"]:
            return delta
        if time.monotonic() > deadline:
            raise AssertionError(f"r1 did not drain its wan tap within {timeout} s: {delta}")
        time.sleep(0.002)


def forwarded(dut, before, timeout: float = 5.0) -> dict[str, int]:
    """The DUT's counters' deltas once every GRE packet it passed has left on its lan. Its tap is drained by then,
    and what it read is counted at once, but the UML vector driver sends its TX queue in batches, later: once in
    twenty runs under load, a frame h1 captured was not yet in lan.tx_packets when the counters were read. No
    event tells: polled against a deadline."""
    deadline = time.monotonic() + timeout
    while True:
        moved = dut.counters().delta(before).flat()
        passed = moved.get("gre1.rx_packets", 0) - moved.get("gre1.rx_dropped", 0)
        if moved.get("lan.tx_packets", 0) >= passed:
            return moved
        if time.monotonic() > deadline:
            raise AssertionError(f"r1 sent {moved.get('lan.tx_packets', 0)} frames on lan within {timeout} s of the "
                                 f"flood's end, but its gre1 passed {passed}")
        time.sleep(0.002)


def agreed(dut, before, capture, got: dict, timeout: float = 5.0) -> list:
    """The frames h1 captured from r1, once they are as many as r1's lan counted, read again after they were: r1's own
    chatter (an MLD report, a neighbour advertisement) may leave at any time, so the count and the capture are taken
    until they agree (got's lan.tx_packets is updated to it). A frame r1 counted that never reached h1 never agrees."""
    deadline = time.monotonic() + timeout
    while True:
        frames = capture.wait(count=got["lan.tx_packets"], timeout=max(0.0, deadline - time.monotonic())).frames
        counted = dut.counters().delta(before).flat().get("lan.tx_packets", 0)
        if counted == got["lan.tx_packets"] == len(frames):
            return frames
        if time.monotonic() > deadline:
            raise AssertionError(f"r1's lan counted {counted} frames sent, h1 captured {len(frames)} from r1")
        got["lan.tx_packets"] = counted


def echo(net, seq: int, when: str) -> None:
    """A legitimate echo for h1 through r1's tunnel, and h1's reply back."""
    request, reply = e.echo(seq)
    net.send("grelab", e.to_r1(request, **KEY, **CSUM), comment=f"a legitimate echo for h1 in the tunnel, {when} the flood")
    net.transit.expect(e.from_r1(reply, **KEY), ignore=e.IGNORE, timeout=3)


def run(net) -> dict[str, int]:
    """Send the flood from grelab at r1 and wait until r1 has dealt with it; the figures: what grelab sent and
    its eth0 counted, the DUT's host side (veth rx, tap read, tap dropped), r1's counters that moved, and what
    grelab captured on h1 (flood UDP, and every frame from r1)."""
    r1 = net.dut("r1")
    # Neighbour entries fixed both ways across r1's lan: a probe when one ages during a long flood on a loaded machine
    # (h1 asks for r1's address, r1 answers) would be frames to h1 besides the flood (seen twice in 40 soak runs).
    r1.apply(Plan(neighbours=(Neighbour(e.H1, e.H1_MAC, "lan"),)))
    net.lab.run_in("h1", lambda: _permanent_neighbours("eth0", e.R1_LAN_MAC, ("2001:db8:1::1", "fe80::ff:fe00:101")))
    frames, kinds = flood()
    passed = net.lab.capture("h1", "eth0", f"ether src {R1_LAN_MAC}")  # grelab's count of what r1 passed to h1
    chatter = net.lab.capture("grelab", "eth0", f"ether src {e.GRELAB_MAC}")  # grelab's own kernel: ARP, MLD, ND
    before, host_before, tx_before = r1.counters(), host_side(r1), tx_packets(net, "grelab", "eth0")
    with net.lab.sender("grelab", "eth0") as tx, progress("flood", len(frames), "frames") as advance:
        start, sent = time.monotonic(), 0
        for at in range(0, len(frames), CHUNK):  # chunks only so a bar can move (on a terminal)
            sent += tx.send(frames[at:at + CHUNK])
            advance(len(frames[at:at + CHUNK]))
        seconds = time.monotonic() - start
    host = drained(r1, host_before)
    moved = forwarded(r1, before)
    got = {k: moved.get(k, 0) for k in ("wan.rx_packets", "wan.rx_dropped", "snmp.IpInReceives", "snmp.IpInDelivers",
                                        "gre1.rx_packets", "gre1.rx_dropped", "gre1.rx_crc_errors", "gre1.rx_errors",
                                        "lan.tx_packets")}
    to_h1 = agreed(r1, before, passed, got)
    own = chatter.settle().frames
    if [f for _, f in own if f[12:14] == b"\x08\x00"]:
        raise AssertionError("grelab's own kernel sent IPv4 during the flood: only link chatter was expected")
    udp_to_h1 = sum(1 for _, f in to_h1 if f[12:14] == b"\x86\xdd" and f[20] == 17)
    others = [f for _, f in to_h1 if not (f[12:14] == b"\x86\xdd" and f[20] == 17) and not is_chatter(f)]
    if others:
        raise AssertionError(f"r1 sent h1 {len(others)} frames besides the flood's UDP it passed and link chatter: "
                             + "; ".join(Ether(f).summary() for f in others[:5]))
    figures = dict(sent=sent, send_seconds=round(seconds, 3), send_rate=round(sent / seconds),
                   grelab_eth0_tx=tx_packets(net, "grelab", "eth0") - tx_before, host_veth_rx=host["veth_rx"],
                   host_tap_dropped=host["tap_dropped"], host_tap_read=host["tap_read"],
                   grelab_chatter=len(own),
                   **got, h1_captured=udp_to_h1, h1_captured_from_r1=len(to_h1))
    return {**kinds, **figures}
