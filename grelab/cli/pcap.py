"""`grelab pcap diff A B`, `grelab pcap show PCAP`, `grelab pcap decrypt IN OUT`: pcaps read the way goldens are,
ESP decrypted.

    grelab pcap diff pcaps/two_offices/echo-gre.pcapng /tmp/caps/two_offices/echo-gre.pcapng
    grelab pcap show pcaps/two_offices/tcp-gre-in-esp.pcapng
    grelab pcap show capture.pcap --esp-sa "0x12345678@192.1.2.45 3des-cbc-hmac96:0x4043..."
    grelab pcap decrypt capture.pcap opened.pcapng --esp-sa router-xfrm.txt

diff compares per link (pcapng interface name), packet by packet, field by field through every layer (the
goldens' diff, grelab.golden.store.describe_difference), after decrypting ESP; timing is not compared. Exit
status: 0 the same, 1 they differ, 2 a file cannot be read. show prints each packet peeled down to GRE's passenger
(grelab.craft.peel), one line each, read by its interface's link type (Ethernet, raw IPv4/IPv6, Linux cooked v1/v2,
BSD loopback; others by scapy's table). decrypt writes a pcapng in which each ESP packet grelab can open is replaced
by what it carries (grelab.golden.decrypted), for a Wireshark that cannot decrypt it.
Keys (--esp-sa, repeatable; default the project's pcaps/esp_sa): a file of Wireshark esp_sa rows, tcpdump espsecret
lines or `ip xfrm state` text, or a tcpdump -E secret itself (grelab.craft.keys).
"""
from __future__ import annotations

import sys

from dataclasses import replace
from pathlib import Path

from grelab.craft.esp import decrypt_frame
from grelab.craft.keys import Keys, keys_from
from grelab.craft.peel import describe
from grelab.errors import GrelabError, InputError
from grelab.golden.case import Frame, read_pcapng, write_pcapng
from grelab.golden.decrypted import decrypted_frames
from grelab.golden.recorder import GoldenRecorder
from grelab.golden.store import ESP_SA_FILE, describe_difference, same

EXAMPLES = """examples:
  grelab pcap show pcaps/two_offices/echo-gre-in-esp.pcapng       # a line a packet, ESP decrypted
  grelab run two_offices -k 'echo and not esp' --keep-pcaps caps  # a run's captures, to compare:
  grelab pcap diff pcaps/two_offices/echo-gre.pcapng caps/two_offices/echo-gre.pcapng
  grelab pcap diff pcaps/two_offices/echo-gre.pcapng pcaps/two_offices/tcp-gre.pcapng  # exit 1
  grelab craft --esp 3des-sha1 --count 2 --keys demo.esp_sa -o demo.pcapng
  grelab pcap show demo.pcapng --esp-sa demo.esp_sa               # the keys grelab craft wrote
  grelab pcap show demo.pcapng --esp-sa \\
      "0x1000@192.0.2.2 3des-cbc-hmac96:0x0102030405060708090a0b0c0d0e0f101112131415161718"
  grelab pcap decrypt pcaps/esp_algorithms/echo-gre-in-esp-ccm128.pcapng ccm.pcapng  # for Wireshark
exit status: 0 same / shown / written, 1 different (diff), 2 a file or key table that cannot be read"""


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
    opened = sub.add_parser("decrypt", help="write OUT: IN with each ESP packet grelab can open replaced by what it "
                            "carries (outer IP header kept, a comment saying SPI, sequence number, algorithm, ICV)",
                            epilog=EXAMPLES, formatter_class=parser.formatter_class)
    opened.add_argument("pcap", metavar="IN")
    opened.add_argument("out", metavar="OUT", help="the pcapng to write (a new file, or --force)")
    opened.add_argument("--force", action="store_true", help="overwrite OUT if it exists")
    for p in (diff, show, opened):
        p.add_argument("--esp-sa", metavar="KEYS", action="append",
                       help="keys to decrypt with, repeatable: a file of Wireshark esp_sa rows, tcpdump espsecret "
                            "lines or `ip xfrm state` text, or a tcpdump -E secret "
                            f"(default: the project's pcaps/{ESP_SA_FILE})")


def default_esp_sa() -> Path | None:
    """pcaps/esp_sa of the checkout grelab runs from, when there is one."""
    from grelab.scenario.catalog import scenarios_dir
    try:
        path = scenarios_dir().parent / "pcaps" / ESP_SA_FILE
    except InputError:
        return None
    return path if path.exists() else None


def sas_of(args) -> Keys:
    """The keys of every --esp-sa (or the project's pcaps/esp_sa)."""
    values = args.esp_sa or ([default_esp_sa()] if default_esp_sa() else [])
    return keys_from(values)


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
    if args.action == "decrypt":
        return decrypt_pcap(args, sas)
    a, b = read("A", args.a), read("B", args.b)
    a, b = decrypted(a, sas), decrypted(b, sas)
    if same(a, b):
        print(f"same: {len(a)} packets, field by field (ESP decrypted with {len(sas)} SAs)")
        return 0
    sys.stdout.write(describe_difference(a, b, names=("A", "B"), every=True) + "\n")  # one write: a reader that
    return 1  # takes a line still gets the whole answer, and the exit status says they differ


def decrypt_pcap(args, sas: Keys) -> int:
    out = Path(args.out)
    if out.resolve() == Path(args.pcap).resolve():
        raise InputError("OUT", str(out), "a file other than IN")
    if out.exists() and not args.force:
        raise InputError("OUT", str(out), "a path that does not exist yet (or --force to overwrite it)")
    if not out.parent.is_dir():
        raise InputError("OUT", str(out), f"a file in an existing folder ({out.parent} is not one)")
    frames = read("IN", args.pcap)
    other = sorted({f.link_type for f in frames} - {1})
    if other:  # the pcapng it writes is Ethernet: another link's frames would come out as garbage
        raise InputError("IN", args.pcap, f"a capture of Ethernet frames (link type 1); this one has link type "
                                          f"{', '.join(map(str, other))}: `grelab pcap show` reads it")
    frames, tally = decrypted_frames(frames, sas)
    write_pcapng(frames, out)
    print(f"{out}: {tally}")
    return 0
