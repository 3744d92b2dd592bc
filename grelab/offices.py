"""The two offices of the mission, as data: IPv6 LANs joined by a GRE tunnel across an IPv4-only transit.

    h1 --lan1-- r1 ==transit== isp ==transit2== r2 --lan2-- h2
    2001:db8:1::/64   198.51.100.0/24   203.0.113.0/24   2001:db8:2::/64

r1 and r2 are devices under test (kernel GRE endpoints); isp forwards IPv4 only and has no IPv6 at all,
so IPv6 crosses only inside the tunnel. h1 and h2 are plain namespaces with the host kernel's stack,
made deterministic for golden pcaps (no TCP timestamps, no random IPv6 flow labels).
"""
from __future__ import annotations

from scapy.utils import mac2str

from grelab.craft.esp import SA
from grelab.dut.base import Dut
from grelab.dut.tunnel import esp_transport, gre_tunnel
from grelab.golden.recorder import GoldenRecorder, is_chatter
from grelab.lab.topology import End, Link, Node, Route, Topology

H1, R1_LAN, R1_WAN = "2001:db8:1::10", "2001:db8:1::1", "198.51.100.1"
ISP_1, ISP_2 = "198.51.100.254", "203.0.113.254"
H2, R2_LAN, R2_WAN = "2001:db8:2::10", "2001:db8:2::1", "203.0.113.1"
LAN1, LAN2 = "2001:db8:1::/64", "2001:db8:2::/64"

H1_MAC, H2_MAC = "02:00:00:00:01:10", "02:00:00:00:02:10"
_H1_MAC_RAW, _H2_MAC_RAW = mac2str(H1_MAC), mac2str(H2_MAC)  # as on the wire
# Where each golden link is seen: (node, interface).
LINKS = {"lan1": ("h1", "eth0"), "transit": ("isp", "eth0"), "lan2": ("h2", "eth0")}

# A fixed key pair for the ESP variant: the same bytes in the DUTs, in grelab, and in pcaps/esp_sa.
ESP_R1_TO_R2 = SA(0x00001001, "gcm128", bytes(range(1, 17)) + b"\x01\x02\x03\x04", src=R1_WAN, dst=R2_WAN)
ESP_R2_TO_R1 = SA(0x00002001, "gcm128", bytes(range(17, 33)) + b"\x05\x06\x07\x08", src=R2_WAN, dst=R1_WAN)
ESP_SAS = (ESP_R1_TO_R2, ESP_R2_TO_R1)

_QUIET_HOST = {"net.ipv4.tcp_timestamps": "0", "net.ipv6.auto_flowlabels": "0"}


def topology(r1: Dut, r2: Dut) -> Topology:
    return Topology(
        nodes=[
            Node("h1", routes=[Route("default6", via=R1_LAN)], sysctls=_QUIET_HOST),
            Node("r1", routes=[Route("default", via=ISP_1)], forwarding=True, dut=r1),
            Node("isp", sysctls={"net.ipv4.ip_forward": "1"}),
            Node("r2", routes=[Route("default", via=ISP_2)], forwarding=True, dut=r2),
            Node("h2", routes=[Route("default6", via=R2_LAN)], sysctls=_QUIET_HOST),
        ],
        links=[
            Link(End("h1", "eth0", [f"{H1}/64"], H1_MAC),
                 End("r1", "lan", [f"{R1_LAN}/64"], "02:00:00:00:01:01")),
            Link(End("r1", "wan", [f"{R1_WAN}/24"], "02:00:00:00:0a:01"),
                 End("isp", "eth0", [f"{ISP_1}/24"], "02:00:00:00:0a:fe")),
            Link(End("isp", "eth1", [f"{ISP_2}/24"], "02:00:00:00:0b:fe"),
                 End("r2", "wan", [f"{R2_WAN}/24"], "02:00:00:00:0b:01")),
            Link(End("r2", "lan", [f"{R2_LAN}/64"], "02:00:00:00:02:01"),
                 End("h2", "eth0", [f"{H2}/64"], H2_MAC)),
        ],
    )


def connect(r1: Dut, r2: Dut, esp: bool = False) -> None:
    """Each router: a GRE tunnel to the other office, the far LAN routed into it; with esp, ESP transport
    mode required for GRE between them both ways."""
    gre_tunnel(r1, "gre1", R1_WAN, R2_WAN, routes=(LAN2,))
    gre_tunnel(r2, "gre1", R2_WAN, R1_WAN, routes=(LAN1,))
    if esp:
        esp_transport(r1, ESP_R1_TO_R2, ESP_R2_TO_R1)
        esp_transport(r2, ESP_R2_TO_R1, ESP_R1_TO_R2)


def explain(golden: GoldenRecorder, carrier: str = "IPv4/GRE (0x86DD)") -> None:
    """The story of each link, as comments on the golden's packets."""
    def from_mac(raw):
        return lambda frame: frame[6:12] == raw
    golden.explain("sent by h1 to h2's office; r1 must carry it through the tunnel", "lan1", from_mac(_H1_MAC_RAW))
    golden.explain("delivered to h1 by r1, out of the tunnel, hop limit two less", "lan1")
    golden.explain(f"between the offices only {carrier}, carrying exactly one packet a host sent, hop limit one less",
                   "transit")
    golden.explain("sent by h2 to h1's office; r2 must carry it through the tunnel", "lan2", from_mac(_H2_MAC_RAW))
    golden.explain("delivered to h2 by r2, out of the tunnel, hop limit two less", "lan2")


def sent_by_hosts(golden: GoldenRecorder) -> list[bytes]:
    """The IP packets h1 put on lan1 and h2 put on lan2, in time order: exactly what the tunnel must carry."""
    sent = [(stamp, data) for link, mac in (("lan1", _H1_MAC_RAW), ("lan2", _H2_MAC_RAW))
            for stamp, data in golden.frames(link)
            if data[6:12] == mac and not is_chatter(data)]
    return [data[14:] for _, data in sorted(sent)]


def transit(golden: GoldenRecorder) -> list[bytes]:
    """The transit link's frames, link chatter left out."""
    return [data for _, data in golden.frames("transit") if not is_chatter(data)]
