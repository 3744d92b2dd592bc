"""Flood: 120,000 GRE packets at full rate at r1 (valid, junk and invalid mixed), and the tunnel still answers.

grelab is the far GRE endpoint (as in grelab_endpoint); r1's tunnel gre1 has key 42 and requires checksums
(icsum). grelab builds the flood with grelab.craft.fast.Stream and sends it with the lab's Sender (sendmmsg),
as fast as the host goes, one of each kind in turn:

- valid: GRE with key and checksum carrying IPv6/UDP for h1 (port 40009): r1 takes it out of gre1 and forwards
  it to h1 (gre1 rx_packets, lan tx_packets; h1's firewall drops it silently, grelab's capture on h1 counts it);
- junk: GRE with key and checksum carrying bytes of an EtherType nothing handles (0x88B5): gre1 takes it and then
  nothing does (gre1 rx_packets and rx_dropped);
- invalid: GRE without the checksum gre1 requires: dropped by the tunnel (gre1 rx_crc_errors, rx_errors).

A user-mode-linux r1 cannot take half a million packets a second: the guest reads its wan from a raw socket on
the host side (UML's vector transport=tap), whose receive buffer overflows; the kernel counts those drops on that
socket (sk_drops, read with `ss -0 -m` in the DUT's namespace). Nothing goes unaccounted: frames sent = grelab's
eth0 tx_packets = r1's wan rx_packets + drops at the socket; every frame r1 got reached IP and GRE (IpInReceives,
IpInDelivers); gre1 took it or refused it for its checksum; of what it took, junk was dropped and the rest went out
of lan to h1, where grelab's capture counted exactly that many. Before and after the flood, h1 answers an echo
through the tunnel: the golden holds those three echoes and their replies only (the flood's frames, sent from a MAC
of their own and to UDP port 40009, are left out of its captures: 120,000 frames are no golden).
"""
import subprocess
import time

from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import GRE as GREHeader, Ether

from grelab.craft.fast import Stream
from grelab.lab import netns
from grelab.lab.topology import Node
from grelab.scenario import GRE, endpoint as e

FLOOD_MAC, PORT, EACH = "02:00:00:00:0f:02", 40009, 40_000
H1_MAC, R1_LAN_MAC = "02:00:00:00:01:10", "02:00:00:00:01:01"
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


LINKS = {"transit": ("grelab", "eth0", f"(ip proto 47 or icmp) and not ether src {FLOOD_MAC}"),
         "lan1": ("h1", "eth0", f"not udp port {PORT}")}
net = e.grelab_endpoint("flood", variants=[GRE], topology=topology, links=LINKS,
                        tunnels=lambda variant, sas: {"r1": e.tunnel(key=42, icsum=True)}).fixture()
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


def echo(net, seq: int, when: str) -> None:
    request, reply = e.echo(seq)
    net.send("grelab", e.to_r1(request, **KEY, **CSUM), comment=f"a legitimate echo for h1 in the tunnel, {when} the flood")
    net.transit.expect(e.from_r1(reply, **KEY), ignore=e.IGNORE, timeout=3)


def test_flood(net, record_property):
    """120,000 mixed GRE packets at full rate: every one is accounted for (sent, dropped before r1, taken, refused, passed), and echoes are still answered."""
    r1 = net.dut("r1")
    frames, kinds = flood()
    echo(net, 1, "before")  # r1 knows h1's and grelab's MACs before the flood
    passed = net.lab.capture("h1", "eth0", f"ether src {R1_LAN_MAC}")  # grelab's count of what r1 passed to h1
    chatter = net.lab.capture("grelab", "eth0", f"ether src {e.GRELAB_MAC}")  # grelab's own kernel: ARP, MLD, ND
    before, host_before, tx_before = r1.counters(), host_side(r1), tx_packets(net, "grelab", "eth0")
    with net.lab.sender("grelab", "eth0") as tx:
        start = time.monotonic()
        sent = tx.send(frames)
        seconds = time.monotonic() - start
    host = drained(r1, host_before)
    moved = r1.counters().delta(before).flat()
    got = {k: moved.get(k, 0) for k in ("wan.rx_packets", "wan.rx_dropped", "snmp.IpInReceives", "snmp.IpInDelivers",
                                        "gre1.rx_packets", "gre1.rx_dropped", "gre1.rx_crc_errors", "gre1.rx_errors",
                                        "lan.tx_packets")}
    # What r1 sent on lan is still on its way through the host side: wait for as many as r1 counted, then settle.
    passed.wait(count=got["lan.tx_packets"], timeout=5)
    to_h1, own = passed.settle().frames, chatter.settle().frames
    assert not [f for _, f in own if f[12:14] == b"\x08\x00"]  # no IPv4 from grelab's kernel: only link chatter
    udp_to_h1 = sum(1 for _, f in to_h1 if f[12:14] == b"\x86\xdd" and f[20] == 17)
    figures = dict(sent=sent, send_seconds=round(seconds, 3), send_rate=round(sent / seconds),
                   grelab_eth0_tx=tx_packets(net, "grelab", "eth0") - tx_before, host_veth_rx=host["veth_rx"],
                   host_tap_dropped=host["tap_dropped"], host_tap_read=host["tap_read"],
                   grelab_chatter=len(own),
                   **got, h1_captured=udp_to_h1, h1_captured_from_r1=len(to_h1))
    print("\nflood:", ", ".join(f"{k}={v}" for k, v in figures.items()))
    print(f"grelab flood: {sent:,} frames in {seconds:.2f} s ({sent / seconds / 1000:.0f}k frames/s, sendmmsg through "
          f"the DUT's bridge and tap); r1 read {host['tap_read']:,} ({host['tap_read'] / sent:.0%}), passed "
          f"{udp_to_h1:,} to h1")
    for k, v in figures.items():
        record_property(f"flood.{k}", v)
    assert sent == len(frames) == sum(kinds.values()) == figures["grelab_eth0_tx"] - len(own)
    assert figures["grelab_eth0_tx"] == host["veth_rx"] == host["tap_read"] + host["tap_dropped"]  # in, read, dropped
    assert host["tap_read"] == got["wan.rx_packets"] + got["wan.rx_dropped"]  # what the guest read, its wan counted
    assert got["snmp.IpInReceives"] == got["snmp.IpInDelivers"]  # every IPv4 packet r1 got was GRE for gre1
    assert 0 <= got["wan.rx_packets"] - got["snmp.IpInReceives"] <= len(own)  # the rest: grelab's chatter
    assert got["gre1.rx_packets"] + got["gre1.rx_crc_errors"] == got["snmp.IpInDelivers"]  # taken, or refused
    assert got["gre1.rx_errors"] == got["gre1.rx_crc_errors"] <= kinds["invalid"]
    assert got["gre1.rx_dropped"] <= kinds["junk"]
    valid = got["gre1.rx_packets"] - got["gre1.rx_dropped"]
    assert valid == udp_to_h1 <= kinds["valid"]  # what the tunnel passed, h1 got
    assert got["lan.tx_packets"] == len(to_h1)  # and r1 sent nothing else to h1 (or it is counted here too)
    assert valid > 0 and got["gre1.rx_dropped"] > 0 and got["gre1.rx_crc_errors"] > 0  # each kind reached gre1
    echo(net, 2, "after")
    echo(net, 3, "after")
