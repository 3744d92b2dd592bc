"""`grelab wireshark PCAP`: Wireshark on a pcap with ESP decrypted by the project's keys; tshark's detailed view
when there is no display (or no Wireshark). What it does: grelab.golden.wireshark."""
from __future__ import annotations

from grelab.golden.wireshark import show

EXAMPLES = """examples:
  grelab wireshark pcaps/two_offices/echo-gre-in-esp.pcapng   # without a display: tshark's view
  grelab craft --esp gcm256 --count 2 --keys demo.esp_sa -o demo.pcapng
  grelab wireshark demo.pcapng --esp-sa demo.esp_sa           # decrypted with the keys craft wrote
  DISPLAY= WAYLAND_DISPLAY= grelab wireshark pcaps/two_offices/tcp-gre.pcapng > tcp-gre.txt
exit status: 0 shown, 2 no such pcap, no tshark/Wireshark, or a key table that cannot be read"""


def add_arguments(parser) -> None:
    parser.epilog = EXAMPLES
    parser.add_argument("pcap", metavar="PCAP", help="the pcap(ng) to open")
    parser.add_argument("--esp-sa", metavar="KEYS", action="append",
                        help="keys to decrypt with, repeatable: a file of Wireshark esp_sa rows, tcpdump espsecret "
                             "lines or `ip xfrm state` text, or a tcpdump -E secret (default: the project's "
                             "pcaps/esp_sa)")


def run(args) -> int:
    return show(args.pcap, args.esp_sa)
