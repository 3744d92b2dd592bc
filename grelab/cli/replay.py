"""`grelab replay PCAP --to NODE:IFACE`: a pcap's frames sent into a link of a live lab, and what came out on the
scenario's links captured (grelab.scenario.live: the two offices by default, their DUTs booted).

    grelab replay pcaps/two_offices/echo-gre.pcapng --link lan1 --to h1:eth0
    grelab replay pcaps/two_offices/echo-gre.pcapng --link lan1 --to h1:eth0 --pace top --loop 20000

--pace recorded keeps the pcap's gaps (each frame waits for its moment on a deadline); --pace top sends as fast
as the lab's sender can (sendmmsg) and then sends the same frames with tcpreplay --topspeed from the same link end,
printing both rates. The replay ends when the links have been quiet for --quiet seconds (at most --timeout).
"""
from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from grelab.errors import GrelabError, InputError, check_range, option_number

EXAMPLES = """examples:
  grelab replay pcaps/two_offices/echo-gre.pcapng --link lan1 --to h1:eth0     # h1's echo again
  grelab replay pcaps/two_offices/echo-gre.pcapng --link lan1 --to h1:eth0 --pace top --loop 500
  grelab replay pcaps/grelab_endpoint/reply_through_r1-gre-ipv6-echo.pcapng --link transit \\
      --to grelab:eth0 --scenario endpoint -o out.pcapng       # what came out, into out.pcapng
exit status: 0 replayed, 2 usage or environment error (no such pcap, link end or DUT)"""


def add_arguments(parser) -> None:
    parser.epilog = EXAMPLES
    parser.add_argument("pcap", metavar="PCAP")
    parser.add_argument("--to", required=True, metavar="NODE:IFACE", help="the link end the frames leave from")
    parser.add_argument("--pace", choices=("recorded", "top"), default="recorded")
    parser.add_argument("--link", help="only the frames the pcapng shows on this interface (e.g. lan1)")
    parser.add_argument("--loop", default="1", metavar="N", help="send the frames N times (default 1)")
    parser.add_argument("--scenario", choices=("offices", "endpoint"), default="offices")
    parser.add_argument("--variant", default="gre", help="gre (default) or gre-in-esp")
    parser.add_argument("--dut", default="auto")
    parser.add_argument("--quiet", type=option_number(0.01, 60), default=0.3,
                        help="seconds of silence that end the capture")
    parser.add_argument("--timeout", type=option_number(0.1, 3600), default=10.0, help="the longest the capture waits")
    parser.add_argument("-o", "--output", help="write what the lab's links carried to this pcapng")
    parser.add_argument("--force", action="store_true", help="overwrite --output")


def run(args) -> int:
    from grelab.cli.pcap import read
    from grelab.outputs import check_outputs, write_all
    from grelab.progress import progress
    from grelab.scenario import live
    node, _, ifname = args.to.partition(":")
    if not node or not ifname:
        raise InputError("--to", args.to, "NODE:IFACE, e.g. h1:eth0")
    loop = check_range("--loop", args.loop, 1, 10_000_000)
    if args.output:
        check_outputs({"-o": args.output}, args.force)
    frames = [f for f in read("PCAP", args.pcap) if args.link in (None, f.link)]
    if not frames:
        raise InputError("--link", args.link, "an interface name of the pcapng's frames")
    lab = getattr(live, args.scenario)(args.variant, args.dut)
    try:
        end = lab.net.lab.link_end(node, ifname)
        changed = threading.Event()
        for name in lab.scenario.links:
            lab.net.link(name).capture.on_frames(changed.set)
        data = [f.data for f in frames]
        with lab.net.lab.sender(end.node, end.ifname) as tx, progress("replaying", len(data) * loop, "frames") as advance:
            start = time.perf_counter()
            if args.pace == "top":
                chunk = max(1, 65536 // len(data))
                for done in range(0, loop, chunk):
                    advance(tx.send(data, repeat=min(chunk, loop - done)))
            else:
                for _ in range(loop):
                    base, first = time.perf_counter(), frames[0].time
                    for f in frames:
                        threading.Event().wait(max(0.0, base + f.time - first - time.perf_counter()))
                        advance(tx.send(f.data))
            elapsed = time.perf_counter() - start
        sent = len(data) * loop
        print(f"sent {sent} frames from {args.to} in {elapsed:.3f} s ({args.pace} pace): {sent / elapsed:,.0f} frames/s")
        if args.pace == "top":
            print(f"tcpreplay --topspeed, the same frames from the same link end: {tcpreplay(end, frames, loop):,.0f} frames/s")
        deadline = time.monotonic() + args.timeout
        while time.monotonic() < deadline:  # until the links are quiet: each arrival re-arms the wait
            changed.clear()
            if not changed.wait(min(args.quiet, max(0.0, deadline - time.monotonic()))):
                break
        for name in lab.scenario.links:
            print(f"{name}: {len(lab.net.link(name).frames())} frames")
        if args.output:
            write_all({args.output: lambda tmp: lab.pcap(tmp)})
            print(f"wrote {args.output}")
    finally:
        lab.close()
    return 0


def tcpreplay(end, frames, loop: int) -> float:
    """tcpreplay --topspeed's own rate (its "Rated: ... pps") sending these frames `loop` times from the end."""
    from grelab.golden.case import write_pcapng
    from grelab.lab.send import check_ours
    if shutil.which("tcpreplay") is None:
        raise GrelabError("tcpreplay is not installed: apt-get install tcpreplay (setup.sh does)")
    check_ours(end.namespace, end.ifname)  # tcpreplay too sends only inside this run's namespaces
    with tempfile.TemporaryDirectory(prefix="grelab-replay-") as folder:
        path = Path(folder) / "frames.pcapng"
        write_pcapng(frames, path)
        done = subprocess.run(["ip", "netns", "exec", end.namespace, "tcpreplay", "--topspeed", f"--loop={loop}",
                               "-i", end.ifname, str(path)], capture_output=True, text=True)
    rated = re.search(r"Rated:.*?([\d.]+) pps", done.stdout)
    if done.returncode != 0 or rated is None:
        raise GrelabError(f"tcpreplay failed: {(done.stderr or done.stdout).strip().splitlines()[-1:]}")
    return float(rated.group(1))
