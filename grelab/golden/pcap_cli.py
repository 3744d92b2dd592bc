"""`grelab pcap diff A B` and `grelab pcap show PCAP`: pcaps read the way goldens are, ESP decrypted.

    grelab pcap diff pcaps/two_offices/echo-gre.pcapng /tmp/caps/two_offices/echo-gre.pcapng
    grelab pcap show pcaps/two_offices/tcp-gre-in-esp.pcapng

diff compares per link (pcapng interface name), packet by packet, field by field through every layer (the
goldens' diff, grelab.golden.store.describe_difference), after decrypting the ESP of the esp_sa table's SAs;
timing is not compared. Exit status: 0 the same, 1 they differ, 2 a file cannot be read.
show prints each packet peeled down to GRE's passenger (grelab.craft.peel), one line each, read by its
interface's link type (Ethernet, raw IPv4/IPv6, Linux cooked v1/v2, BSD loopback; others by scapy's table).
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from grelab.craft.esp import decrypt_frame
from grelab.craft.esp_sa import read_esp_sa
from grelab.craft.peel import describe
from grelab.errors import GrelabError, InputError
from grelab.golden.case import Frame, read_pcapng
from grelab.golden.recorder import GoldenRecorder
from grelab.golden.store import ESP_SA_FILE, describe_difference, same

EXAMPLES = """examples:
  grelab pcap show pcaps/two_offices/echo-gre-in-esp.pcapng
  grelab pcap diff pcaps/two_offices/echo-gre.pcapng /tmp/caps/two_offices/echo-gre.pcapng
  grelab pcap diff a.pcapng b.pcapng --esp-sa demo.esp_sa     # keys as `grelab craft --keys` writes them
exit status: 0 same, 1 different (diff), 2 a file or key table that cannot be read"""


def add_arguments(parser) -> None:
    parser.epilog = EXAMPLES
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    diff = sub.add_parser("diff", help="compare two pcaps packet by packet, field by field (exit 1 if they differ)",
                          epilog=EXAMPLES, formatter_class=parser.formatter_class)
    diff.add_argument("a", metavar="A", help="the first pcap(ng), e.g. a golden")
    diff.add_argument("b", metavar="B", help="the second pcap(ng), e.g. a capture kept with --keep-pcaps")
    show = sub.add_parser("show", help="each packet peeled to its passenger, one line each",
                          epilog=EXAMPLES, formatter_class=parser.formatter_class)
    show.add_argument("pcap", metavar="PCAP")
    for p in (diff, show):
        p.add_argument("--esp-sa", metavar="FILE",
                       help=f"Wireshark esp_sa table of the SAs to decrypt (default: the project's pcaps/{ESP_SA_FILE})")


def default_esp_sa() -> Path | None:
    """pcaps/esp_sa of the checkout grelab runs from, when there is one."""
    from grelab.run import scenarios_dir
    try:
        path = scenarios_dir().parent / "pcaps" / ESP_SA_FILE
    except InputError:
        return None
    return path if path.exists() else None


def sas_of(args) -> list:
    path = args.esp_sa or default_esp_sa()
    return read_esp_sa(path) if path else []


def read(option: str, path: str) -> list[Frame]:
    if not Path(path).is_file():
        raise InputError(option, path, "an existing pcap or pcapng file")
    try:
        return read_pcapng(Path(path))
    except GrelabError as exc:
        raise InputError(option, path, f"a pcap or pcapng scapy can read ({str(exc).split(': ', 1)[-1]})") from None


def decrypted(frames: list[Frame], sas) -> list[Frame]:
    """The frames with the ESP of these SAs decrypted (what a receiver sees); ESP that does not decrypt stays."""
    out = []
    for f in frames:
        try:
            data = decrypt_frame(f.data, sas) if f.link_type == 1 else f.data  # decrypt_frame reads Ethernet
        except GrelabError:  # a bad ICV or a damaged packet: compared as it is, and shown so by the diff
            data = f.data
        out.append(replace(f, data=data))
    return out


def run(args) -> int:
    sas = sas_of(args)
    if args.action == "show":
        for number, f in enumerate(read("PCAP", args.pcap), 1):
            try:
                what = describe(f.data, sas, link=f.link_type)
            except GrelabError as exc:
                what = f"[{exc}]"
            print(f"{number:4} {f.time:10.6f} {f.link or '-':8} {what}" + (f"  # {GoldenRecorder.story(f.comment)}" if f.comment else ""))
        return 0
    a, b = read("A", args.a), read("B", args.b)
    a, b = decrypted(a, sas), decrypted(b, sas)
    if same(a, b):
        print(f"same: {len(a)} packets, field by field (ESP decrypted with {len(sas)} SAs)")
        return 0
    print(describe_difference(a, b, names=("A", "B"), every=True))
    return 1
