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
from grelab.scenario import PLAIN_GRE
from grelab.networks import endpoint as e, flood as f

net = e.grelab_endpoint("flood", variants=[PLAIN_GRE], topology=f.topology, links=f.LINKS,
                        tunnels=lambda variant, sas: {"r1": e.tunnel(key=42, icsum=True)}).fixture()


def test_flood(net, record_property):
    """120,000 mixed GRE packets at full rate: every one is accounted for (sent, dropped before r1, taken, refused, passed), and echoes are still answered."""
    f.echo(net, 1, "before")  # r1 knows h1's and grelab's MACs before the flood
    n = f.run(net)
    print("\nflood:", ", ".join(f"{k}={v}" for k, v in n.items()))
    print(f"grelab flood: {n['sent']:,} frames in {n['send_seconds']:.2f} s ({n['send_rate'] / 1000:.0f}k frames/s, "
          f"sendmmsg through the DUT's bridge and tap); r1 read {n['host_tap_read']:,}, passed {n['h1_captured']:,} to h1")
    for k, v in n.items():
        record_property(f"flood.{k}", v)
    assert n["sent"] == n["valid"] + n["junk"] + n["invalid"] == n["grelab_eth0_tx"] - n["grelab_chatter"]
    assert n["grelab_eth0_tx"] == n["host_veth_rx"] == n["host_tap_read"] + n["host_tap_dropped"]  # in, read, dropped
    assert n["host_tap_read"] == n["wan.rx_packets"] + n["wan.rx_dropped"]  # what the guest read, its wan counted
    assert n["snmp.IpInReceives"] == n["snmp.IpInDelivers"] == n["gre1.rx_packets"] + n["gre1.rx_crc_errors"]  # GRE, taken or refused
    assert 0 <= n["wan.rx_packets"] - n["snmp.IpInReceives"] <= n["grelab_chatter"]  # the rest: grelab's chatter
    assert 0 < n["gre1.rx_errors"] == n["gre1.rx_crc_errors"] <= n["invalid"] and 0 < n["gre1.rx_dropped"] <= n["junk"]
    assert 0 < n["gre1.rx_packets"] - n["gre1.rx_dropped"] == n["h1_captured"] <= n["valid"]  # passed, h1 got them
    assert n["lan.tx_packets"] == n["h1_captured_from_r1"]  # r1 sent h1 nothing else, or it is counted here too
    f.echo(net, 2, "after")
    f.echo(net, 3, "after")
