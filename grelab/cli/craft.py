"""`grelab craft`: GRE (optionally in ESP) packets into a pcapng, the keys for Wireshark beside it.

    grelab craft --esp gcm128 --count 3 --keys demo.esp_sa -o demo.pcapng --show

Every packet is an Ethernet frame between two fixed local MACs; timestamps are 1 ms apart from 0, and the ESP
keys are fixed test keys: the same command always writes the same bytes.
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from scapy.layers.inet import ICMP
from scapy.layers.inet6 import ICMPv6EchoRequest
from scapy.layers.l2 import GRE
from scapy.utils import PcapNgWriter

from grelab.craft import esp
from grelab.craft.algorithms import names_summary
from grelab.craft.esp_sa import esp_sa_text, tshark_options
from grelab.craft.fast import FastESP, Stream
from grelab.craft.gre import OUTER, PASSENGERS, TRANSPORTS, gre, passenger
from grelab.errors import GrelabError, InputError, check_range
from grelab.outputs import check_outputs, write_all

SPI = 0x00001000
OUTER_MACS = b"\x02\x00\x5e\x00\x00\x02", b"\x02\x00\x5e\x00\x00\x01"  # destination, source
ETHERTYPE = {4: b"\x08\x00", 6: b"\x86\xdd"}
DLT_EN10MB = 1
# tshark's usual columns, with the whole protocol stack where the source and destination addresses were.
SUMMARY_COLUMNS = ('gui.column.format:"No.","%m","Time","%t","Length","%L","Protocols","%Cus:frame.protocols",'
                   '"Info","%i"')


def add_arguments(parser) -> None:
    parser.add_argument("--transport", choices=TRANSPORTS, default="ipv4", help="outer IP (default ipv4)")
    parser.add_argument("--passenger", choices=PASSENGERS, default="ipv6",
                        help="what GRE carries: an echo request in IPv6, IPv4 or bridged Ethernet (default ipv6)")
    parser.add_argument("--key", metavar="N", help="GRE key (RFC 2890), 0..4294967295")
    parser.add_argument("--seq", metavar="N", help="first GRE sequence number (RFC 2890); counts up with --count")
    parser.add_argument("--csum", action="store_true", help="GRE checksum (RFC 2784)")
    parser.add_argument("--esp", choices=list(esp.ALGORITHMS), metavar="ALGORITHM",
                        help="protect the GRE packets with ESP: " + names_summary())
    parser.add_argument("--esp-mode", choices=esp.MODES, default=None, help="ESP transport (default) or tunnel mode")
    parser.add_argument("--nat-t", action="store_true", help="ESP in UDP 4500 (RFC 3948)")
    parser.add_argument("--count", metavar="N", default="1", help="number of packets, 1..65535 (default 1)")
    parser.add_argument("--keys", metavar="FILE", help="write Wireshark's esp_sa rows for the SA used")
    parser.add_argument("-o", "--output", metavar="FILE", required=True, help="pcapng to write")
    parser.add_argument("--force", action="store_true", help="overwrite existing output files")
    parser.add_argument("--show", action="store_true", help="print tshark's summary of the file (decrypted)")


def run(args) -> int:
    sa = _sa(args)
    outputs = {"-o": args.output} | ({"--keys": args.keys} if args.keys else {})
    check_outputs(outputs, args.force)
    packets = build(args, sa)
    writers = {args.output: lambda tmp: write_pcapng(tmp, packets)}
    if args.keys:
        writers[args.keys] = lambda tmp: Path(tmp).write_text(esp_sa_text([sa] if sa else []))
    write_all(writers)
    print(f"wrote {len(packets)} packet{'s' * (len(packets) != 1)} to {args.output}")
    if args.keys:
        print(f"wrote Wireshark ESP keys to {args.keys} (copy to ~/.config/wireshark/esp_sa)")
    if args.show:
        print(tshark_summary(args.output, [sa] if sa else []), end="")
    return 0


def build(args, sa: esp.SA | None) -> list[bytes]:
    """The IP packets the arguments describe: a fast-path stream, ESP-protected when an SA is given."""
    count = check_range("--count", args.count, 1, 0xFFFF)
    key = None if args.key is None else check_range("--key", args.key, 0, 0xFFFFFFFF)
    seq = None if args.seq is None else check_range("--seq", args.seq, 0, 0xFFFFFFFF - count + 1)
    template = gre(passenger(args.passenger), transport=args.transport, key=key, seq=seq, csum=args.csum)
    echo = ICMP if args.passenger == "ipv4" else ICMPv6EchoRequest
    vary = {(echo, "seq"): range(1, count + 1)}
    if seq is not None:
        vary[(GRE, "sequence_number")] = range(seq, seq + count)
    packets = Stream(template).build(vary)
    return FastESP(sa).encrypt(packets, first_seq=1) if sa else packets


def write_pcapng(path: str, packets: list[bytes]) -> None:
    """IP packets as Ethernet frames in a pcapng, 1 ms apart."""
    writer = PcapNgWriter(path)
    writer.linktype = DLT_EN10MB  # raw bytes: scapy cannot guess it
    frames = [b"".join(OUTER_MACS) + ETHERTYPE[p[0] >> 4] + p for p in packets]
    writer.write_header(frames[0])
    for i, frame in enumerate(frames):
        writer.write_packet(frame, sec=i / 1000)
    writer.close()


def tshark_summary(path: str, sas: list[esp.SA]) -> str:
    """tshark's one line per packet (number, time, length, protocol stack, info), ESP decrypted with these SAs."""
    tshark = shutil.which("tshark")
    if tshark is None:
        raise GrelabError("tshark is not installed: apt-get install tshark (setup.sh does)")
    result = subprocess.run([tshark, "-r", path, *tshark_options(sas), "-o", SUMMARY_COLUMNS],
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise GrelabError(f"tshark failed on {path}: {result.stderr.strip()}")
    return result.stdout


def _sa(args) -> esp.SA | None:
    """The one SA the packets use, with fixed test keys, or None without --esp."""
    if args.esp is None:
        for flag, given in (("--esp-mode", args.esp_mode), ("--nat-t", args.nat_t)):
            if given:
                raise InputError(flag, given, "only together with --esp")
        return None
    algo = esp.ALGORITHMS[args.esp]
    src, dst = OUTER[args.transport]
    return esp.SA(spi=SPI, algorithm=args.esp, key=bytes(range(1, algo.key_len + 1)),
                  auth_key=bytes(range(0x41, 0x41 + algo.auth_key_len)), src=src, dst=dst,
                  mode=args.esp_mode or "transport", nat_t=esp.nat_t_ports(args.nat_t))
