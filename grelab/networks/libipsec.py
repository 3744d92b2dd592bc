"""strongSwan's userspace ESP as data: charon with the kernel-libipsec plugin in r1 does ESP itself, through a TUN
device, against charon with the kernel's xfrm in r2, the two negotiating with IKEv2 to protect the two offices' GRE
(grelab.networks.offices). The two are rows of grelab.networks.ike_daemons (STRONGSWAN_LIBIPSEC: strongSwan's, its
plugins and settings libipsec's; STRONGSWAN); this module keeps what is userspace ESP's own: the TUN device's
counters, the replay experiments, the child SA in tunnel mode.

    h1 -- r1: gre1 -> route (table 220) -> ipsec0 (TUN) -> charon/libipsec: ESP in UDP 4500 ==isp== r2: xfrm -- h2

In r1 the guest's kernel still does GRE (ip_gre), but its xfrm holds nothing: charon loads kernel-libipsec before
kernel-netlink, so only kernel-netlink's routing part is used. For each outbound policy libipsec installs a route
into ipsec0 in charon's routing table (220); the GRE packets the kernel routes there are read by charon, matched
to its policies, encrypted and sent from its own UDP socket; ESP that arrives there is decrypted and written back
to ipsec0, where the kernel's ip_gre takes the GRE. strongSwan 5.9.8's libipsec knows only tunnel mode and only
ESP in UDP (it fakes a NAT in IKE to get it), hence the pairings' tunnel-mode children (a case asks for transport
mode at run time, initiate_in, to show the difference). Its traffic selectors name the IKE peer itself (GRE between r1
and r2), which the plugin refuses unless `allow_peer_ts`: the route to r2 would swallow IKE too, so charon's own
packets carry a firewall mark the routing rule skips (kernel-netlink's fwmark !0x42, socket-default's 0x42:
ike_daemons.libipsec_conf).

Keys are read back from r2's kernel, which holds both directions (grelab.dut.daemon.read_sas).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from scapy.layers.inet import IP
from scapy.layers.inet6 import ICMPv6EchoReply, ICMPv6EchoRequest, IPv6
from scapy.layers.l2 import GRE, Ether

from grelab.craft.peel import describe, peel
from grelab.dut.daemon import folder, read_sas, wait_until
from grelab.dut.plan import Plan
from grelab.networks import ike, offices
from grelab.networks.ike_daemons import PSK_AUTH, REPLAY_WINDOW, STRONGSWAN, STRONGSWAN_LIBIPSEC, End, swanctl
from grelab.networks.refusals import OUT_OF_SEQUENCE
from grelab.scenario.spec import Scenario, Variant

TUN = "ipsec0"  # the TUN device kernel-libipsec makes ("ipsec%d": the first)
ROUTING_TABLE = 220  # charon's, where libipsec's routes into the TUN device go
# libipsec's ESP arrives on charon's UDP socket, which socket-default leaves at the kernel's default size (208 KiB):
# a burst while charon was held up (a rekey on a busy machine) overflowed it, UdpRcvbufErrors the echoes lost.
SOCKET_BUFFER = 4 << 20
ROWS = {"r1": STRONGSWAN_LIBIPSEC, "r2": STRONGSWAN}  # {router: the implementation it runs}, whoever initiates
USERSPACE, KERNEL = STRONGSWAN_LIBIPSEC.name, STRONGSWAN.name  # the implementations' names in the matrix


@dataclass(frozen=True)
class Pairing:
    """Who initiates (r1, libipsec; or r2, the kernel's xfrm) and how the peers authenticate."""

    initiator: str
    certs: bool = False

    def variant(self) -> Variant:
        """The variant (ESP in tunnel mode, AES-GCM-128), its implementation initiator→responder."""
        role = "initiator" if self.initiator == "r1" else "responder"
        order = (USERSPACE, KERNEL) if self.initiator == "r1" else (KERNEL, USERSPACE)
        return Variant(f"libipsec-{role}-{'certs' if self.certs else 'psk'}-{ike.ESP_ALGORITHM}", esp=ike.ESP_ALGORITHM,
                       mode="tunnel", implementation="→".join(order))


PAIRINGS = {p.variant().id: p for p in (Pairing("r1"), Pairing("r1", certs=True), Pairing("r2"))}
VARIANTS = tuple(p.variant() for p in PAIRINGS.values())


def authenticated_as(variant: Variant) -> dict[str, str]:
    """{router: how its charon must say it authenticated the other} in this variant (ike.authenticated's answer):
    strongSwan on both sides, each signing as strongSwan does."""
    return dict.fromkeys(ROWS, STRONGSWAN.signature if PAIRINGS[variant.id].certs else PSK_AUTH)


def routers(variant: Variant, sas) -> dict[str, Plan]:
    """The offices' GRE tunnel; charon with libipsec in r1 (its sockets' buffers SOCKET_BUFFER), charon with the
    kernel's xfrm in r2 (ike_daemons' rows), the child SA in the variant's mode."""
    auth = "certs" if PAIRINGS[variant.id].certs else "psk"
    plans = offices.connect(offices.PLAIN_GRE, sas)
    plans["r1"] += ROWS["r1"].plan(End("r1", "r2", offices.R1_WAN, offices.R2_WAN, auth, variant.mode))
    plans["r2"] += ROWS["r2"].plan(End("r2", "r1", offices.R2_WAN, offices.R1_WAN, auth, variant.mode))
    plans["r1"] += Plan(sysctls={"net.core.rmem_default": str(SOCKET_BUFFER)})
    return plans


def two_offices_libipsec(name: str = "userspace_esp", variants=VARIANTS, **changes) -> Scenario:
    """The two offices, their GRE in ESP that libipsec does in r1's charon (IKE left out of goldens)."""
    fields = dict(tunnels=routers, routing=frozenset({"ike"}))
    return offices.two_offices(name, variants, **{**fields, **changes})


# r1's charon holds the child SA (libipsec: nothing in the kernel to look at), and its route into the TUN device.
USERSPACE_INSTALLED = (f"grep -q 'CHILD_SA gre{{[0-9]*}} established' {{log}} && "
                       f"/sbin/ip route show table {ROUTING_TABLE} | grep -q 'dev {TUN}'")


def loaded(net) -> None:
    """Until both charons hold the connection (charon logs its loading), within CONVERGENCE_S of their start."""
    for router, row in ROWS.items():
        wait_until(net.dut(router), row.loaded.format(log=ike.log_of(net, router, ROWS)), timeout=_left(net),
                   what=f"{row.name}'s connection loaded", logs=row.logs)


def initiate(net):
    """The pairing's initiator starts the child SA (swanctl --initiate, its output: charon's log of it)."""
    router = PAIRINGS[net.variant.id].initiator
    initiator = net.dut(router)
    return initiator.cmd(ROWS[router].initiate(initiator, int(_left(net))))


@dataclass(frozen=True)
class Established:
    """What established() saw."""

    took: float  # seconds from the daemons' start to the SAs in both routers
    tun: dict  # r1's TUN device's counters before any ESP (its own IPv6 chatter silenced first)


def established(net, record_property) -> Established:
    """Once both charons hold the connection and r1's TUN device exists (its IPv6 turned off: its router
    solicitations and MLD reports would go into it, where libipsec drops them, no policy, but the device counts
    them), the pairing's initiator starts the child SA; then until r2's kernel holds both SAs and its outbound
    policy, and r1's charon its child SA and the route into its TUN device. The seconds since the daemons started
    (convergence_s, asserted by the caller), and the TUN's counters before. The SAs, read from r2's kernel (both
    directions), are then the case's."""
    loaded(net)
    r1, r2 = net.dut("r1"), net.dut("r2")
    wait_until(r1, f"[ -e /proc/sys/net/ipv6/conf/{TUN} ] && echo 1 > /proc/sys/net/ipv6/conf/{TUN}/disable_ipv6",
               timeout=_left(net), what=f"charon's TUN device {TUN}", logs=["charon"])
    tun = r1.counters().link(TUN)
    initiated = initiate(net)
    assert initiated.ok, f"swanctl --initiate failed:\n{initiated.output}"
    wait_until(r2, ike.INSTALLED, timeout=_left(net), what="the IKE-negotiated SAs in the kernel", logs=["charon"])
    wait_until(r1, USERSPACE_INSTALLED.replace("{log}", ike.log_of(net, "r1", ROWS)), timeout=_left(net),
               what="libipsec's child SA and its route into the TUN device", logs=["charon"])
    took = time.monotonic() - _started(net)
    record_property("convergence_s", round(took, 2))
    print(f"IKE SAs installed in {took:.2f} s")
    net.negotiated(read_sas(r2))
    return Established(took, tun)


def _started(net) -> float:
    return min(net.dut(name).daemons_started for name in ("r1", "r2"))


def _left(net) -> float:
    return max(0.0, ike.CONVERGENCE_S - (time.monotonic() - _started(net)))


def initiate_in(net, mode: str):
    """Both charons' child asks for `mode` (their swanctl.conf rewritten and loaded again, swanctl --load-conns, before
    anything was initiated), then the pairing's initiator starts it: swanctl --initiate's result (initiate)."""
    loaded(net)
    for router in ("r1", "r2"):
        dut = net.dut(router)
        conf = f"{folder(dut, ROWS[router].daemon)}/swanctl/swanctl.conf"
        dut.check(f"sed -i 's/mode = [a-z]*/mode = {mode}/' {conf} && grep -q 'mode = {mode}' {conf}")
        dut.check(swanctl(dut, "--load-conns", "--file", conf))
    return initiate(net)


def esp_frames(net, link: str = "transit") -> list[tuple[str, int, int, int]]:
    """The ESP on the link so far (IKE and chatter included), in capture order: (outer source, outer IP protocol:
    50 raw or 17 in UDP, SPI, sequence number)."""
    out = []
    for _, frame in net.golden.frames(link):
        peeled = peel(frame)
        if peeled.esp_spi is not None:
            out.append((peeled.packet[IP].src, peeled.packet[IP].proto, peeled.esp_spi, peeled.esp_seq))
    return out


def sequence_numbers(net) -> dict[int, list[int]]:
    """{SPI: the sequence numbers of the ESP under it on the transit, in capture order}."""
    numbers: dict[int, list[int]] = {}
    for _, _, spi, seq in esp_frames(net):
        numbers.setdefault(spi, []).append(seq)
    return numbers


def on_the_wire(net) -> str:
    """The transit's frames (IKE and chatter left out), a line each, peeled with the case's SAs: for failures."""
    return "\n".join(describe(frame, net.sas) for frame in net.transit.frames())


def esp_from(net, source: str, link: str = "transit") -> int:
    """How many ESP packets from `source` the link carried so far."""
    return sum(1 for src, *_ in esp_frames(net, link) if src == source)


def userspace_counted(net, up: Established, timeout: float = 2.0) -> dict[str, int]:
    """What shows that r1's ESP was done in userspace: r1's kernel holds no SA and no policy, and its TUN device
    took in exactly as many packets as r1 sent ESP on the transit (tx) and gave out exactly as many as r2 sent (rx),
    since `up` (before any ESP), at least one each way; polled to a deadline (the capture and the counters are read
    apart). Returns the
    TUN device's tx_packets and rx_packets since then."""
    r1 = net.dut("r1")
    assert r1.check("/sbin/ip xfrm state; /sbin/ip xfrm policy").strip() == "", "r1's kernel holds xfrm states"
    deadline = time.monotonic() + timeout
    while True:
        tun = r1.counters().link(TUN)
        counted = {k: tun.get(k, 0) - up.tun.get(k, 0) for k in ("tx_packets", "rx_packets")}
        sent = {"tx_packets": esp_from(net, offices.R1_WAN), "rx_packets": esp_from(net, offices.R2_WAN)}
        if counted == sent or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert counted == sent and min(sent.values()) >= 1, (f"r1's {TUN} counted {counted}; on the transit r1 sent "
                                                         f"{sent['tx_packets']} ESP packets, r2 {sent['rx_packets']}")
    return counted


def rekey_mid_stream(net, at: int) -> ike.Rekeyed:
    """ike.rekey_mid_stream's plot with libipsec in r1 (ROWS): r1's charon rekeys while h1 streams echoes, the new SAs
    read from r2's kernel (both directions; r1's holds none). r2's IKE is not held back: past IKE_SA_INIT it is in
    UDP 4500 (the NAT libipsec fakes), which ike.ike_late's filter on port 500 does not see."""
    return ike.rekey_mid_stream(net, at, implementations=ROWS, keys_from="r2", late_ms=0)


def for_h1(seq: int) -> IP:
    """What r2 would send for h1, crafted by grelab: IPv4/GRE/IPv6/ICMPv6 echo request from h2's address, its ICMPv6
    sequence number seq (to go inside ESP of r2's SA to r1, from the isp's side of the transit)."""
    return (IP(src=offices.R2_WAN, dst=offices.R1_WAN, ttl=64) / GRE() / IPv6(src=offices.H2, dst=offices.H1, hlim=64)
            / ICMPv6EchoRequest(id=0x4343, seq=seq, data=b"from grelab"))


def delivered_to_h1(seq: int) -> Ether:
    """for_h1(seq) as h1 gets it from r1, out of the tunnel."""
    return (Ether(src=offices.R1_LAN_MAC, dst=offices.H1_MAC) / IPv6(src=offices.H2, dst=offices.H1, hlim=63)
            / ICMPv6EchoRequest(id=0x4343, seq=seq, data=b"from grelab"))


def answer_at_h2(seq: int) -> Ether:
    """h1's answer to for_h1(seq), as h2 gets it from r2 (who sent the echo: grelab, as r2): the case ends once it is
    there, so no answer is still in flight when the golden is taken."""
    return (Ether(src="02:00:00:00:02:01", dst=offices.H2_MAC) / IPv6(src=offices.H1, dst=offices.H2, hlim=62)
            / ICMPv6EchoReply(id=0x4343, seq=seq, data=b"from grelab"))


def send_to_r1(net, seq: int, esp_seq: int, comment: str) -> bytes:
    """for_h1(seq) in ESP of r2's SA (read from r2's kernel) with that ESP sequence number, sent to r1 from the isp's
    end of the transit as if r2 had sent it. Returns the frame."""
    sa = next(sa for sa in net.sas if sa.src == offices.R2_WAN)
    return net.send("isp", net.protect(for_h1(seq), seq=esp_seq, sa=sa), comment=comment)


def replay_to_r1(net) -> tuple[int, int]:
    """grelab, as r2, sends r1 an echo for h1 in ESP, the same ESP again, then the next; once h1 got each echo (once:
    expect is exact) and h2 h1's answers, (how many packets r1's TUN device gave out since the first echo, how many
    ESP packets reached r1 since then, r2's chatter included, but the replay)."""
    frame = send_to_r1(net, 1, esp_seq=5, comment="crafted by grelab as r2 would send it, then sent again as it is: "
                       f"r1 must take it once and refuse the replay {OUT_OF_SEQUENCE}")
    net.link("lan1").expect(delivered_to_h1(1), timeout=3)
    before, arrived = net.dut("r1").counters().link(TUN), esp_from(net, offices.R2_WAN)
    net.send("isp", frame[14:], protect=False)  # the same bytes: the comment above says it
    send_to_r1(net, 2, esp_seq=6, comment="crafted by grelab, the next sequence number: r1 must take it")
    net.link("lan1").expect([delivered_to_h1(1), delivered_to_h1(2)], timeout=3)
    net.link("lan2").expect([answer_at_h2(1), answer_at_h2(2)], timeout=3)
    moved = net.dut("r1").counters().link(TUN)["rx_packets"] - before.get("rx_packets", 0)
    return moved, esp_from(net, offices.R2_WAN) - arrived - 1


def left_of_the_window(net) -> list[int]:
    """grelab, as r2, sends r1 echoes 1, 2 and 3 for h1 in ESP numbered 50, then 40 below (left of a REPLAY_WINDOW
    window, never seen), then 51; once h1 got 1 and 3 and h2 h1's answers, which of them h1 got. r2's inbound SA
    has that window first (kernel-netlink gives the kernel's SAs charon's replay_window)."""
    inbound = net.dut("r2").check(f"/sbin/ip xfrm state list dst {offices.R2_WAN}")
    assert f"replay-window {REPLAY_WINDOW} " in inbound, inbound
    send_to_r1(net, 1, esp_seq=50, comment=f"crafted by grelab as r2 would send it: r1 must take it "
                                           f"{OUT_OF_SEQUENCE}")
    net.link("lan1").expect(delivered_to_h1(1), timeout=3)
    send_to_r1(net, 2, esp_seq=50 - REPLAY_WINDOW - 8, comment=f"crafted by grelab, left of a {REPLAY_WINDOW}-packet "
                                                                f"window: r1 must refuse it {OUT_OF_SEQUENCE}")
    send_to_r1(net, 3, esp_seq=51, comment=f"crafted by grelab, the next sequence number: r1 must take it "
                                           f"{OUT_OF_SEQUENCE}")
    net.link("lan1").expect(delivered_to_h1(3), timeout=3)
    net.link("lan2").expect([answer_at_h2(1), answer_at_h2(3)], timeout=3)
    frames = [frame[14:] for frame in net.link("lan1").frames()]
    return [seq for seq in (1, 2, 3) if bytes(delivered_to_h1(seq))[14:] in frames]

