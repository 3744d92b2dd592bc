"""`grelab shell`: scapy's interactive shell (IPython when installed, else the plain console, as scapy does) with
grelab preloaded: the builders, the SAs, peel, the scenarios' topologies, and `offices()` / `endpoint()`, which
bring a scenario's lab up with its DUTs (grelab.scenario.live). Whatever was brought up goes on exit: Ctrl-D,
exit(), a killed terminal (SIGHUP) or SIGTERM; Ctrl-C only interrupts the line, as in any Python shell.
"""
from __future__ import annotations

import logging
import os
import signal
import threading
import warnings

EXAMPLES = """examples:
  grelab shell
  >>> IP(dst=R1_WAN)/GRE()/IPv6(dst=H1)/ICMPv6EchoRequest()   # scapy's names are scapy's
  >>> lab = offices()                         # h1 - r1 - isp - r2 - h2, the DUTs booted, GRE up
  >>> lab.send("h1", IPv6(src=H1, dst=H2) / ICMPv6EchoRequest())
  >>> lab.capture("transit", count=2).nsummary()
  >>> lab.dut("r1").counters()["links"]["gre1"]
  >>> lab.wireshark("transit")                # Wireshark; without a display tshark's detailed view
  grelab shell --plain                        # the plain Python console even with IPython installed
exit status: 0 after the shell ends (all it brought up removed), 2 no shell can start"""


def add_arguments(parser) -> None:
    parser.epilog = EXAMPLES
    parser.add_argument("--plain", action="store_true", help="the plain Python console, not IPython")


def preloaded() -> dict[str, object]:
    """What the shell starts with beyond scapy's own names, none of which it rebinds (tests/test_shell_names.py):
    GRE, IP, ESP... mean what they mean in scapy's shell; the scenario variants are PLAIN_GRE, IN_ESP, in_esp()."""
    from grelab import craft
    from grelab.craft.peel import describe
    from grelab.lab import a_r_b, build
    from grelab.scenario import IN_ESP, PLAIN_GRE, Variant, in_esp
    from grelab.networks import endpoint as endpoint_scenario, offices as offices_scenario
    from grelab.scenario.live import LiveLab, endpoint, offices
    names = {name: getattr(craft, name) for name in craft.__all__}
    names.update(describe=describe, a_r_b=a_r_b, build=build, PLAIN_GRE=PLAIN_GRE, IN_ESP=IN_ESP, Variant=Variant,
                 in_esp=in_esp, LiveLab=LiveLab, offices=offices, endpoint=endpoint,
                 offices_topology=offices_scenario.topology, endpoint_topology=endpoint_scenario.topology,
                 two_offices=offices_scenario.two_offices, grelab_endpoint=endpoint_scenario.grelab_endpoint)
    for module in (offices_scenario, endpoint_scenario):  # addresses and SAs: H1, H2, R1_WAN, ESP_R1_TO_R2, TO_R1...
        names.update({k: v for k, v in vars(module).items() if k.isupper() and not k.startswith("_")
                      and isinstance(v, (str, craft.SA))})
    return names


def banner(names: dict[str, object]) -> str:
    from grelab.craft import SA
    sas = sorted(k for k, v in names.items() if isinstance(v, SA))
    return "\n".join([
        "grelab shell: scapy with grelab loaded; scapy's names stay scapy's (IP()/GRE()/IPv6() as in scapy)",
        "  build    gre passenger keepalive gre_header Stream FastESP Stack fragments packets_for",
        "  ESP      SA encrypt decrypt ALGORITHMS esp_sa_text tshark_options; SAs: " + " ".join(sas),
        "  read     peel describe open_esp; keys users bring: read_keys parse_keys",
        "  labs     lab = offices() / endpoint()   (variant='gre-in-esp', dut='uml'): the scenario's lab, DUTs booted",
        "           lab.send(node, pkt)  lab.capture(link, count=)  lab.dut(name).counters()  lab.ping(a, b)",
        "           lab.wireshark(link)  lab.pcap(path)  lab.close()",
        "  topology a_r_b offices_topology endpoint_topology build two_offices grelab_endpoint",
        "  variants PLAIN_GRE IN_ESP in_esp(algorithm) Variant: two_offices(variants=[PLAIN_GRE, in_esp('gcm256')])",
        "  names    H1 H2 R1_WAN R2_WAN ISP_1 ISP_2 GRELAB ... (the offices' and the endpoint's addresses)",
        "Everything brought up goes when the shell ends (Ctrl-D).",
    ])


_ending = threading.Lock()


def on_hangup(signum, frame) -> None:
    """The terminal went away, or the shell was told to stop (SIGTERM): take everything down now (a REPL would
    catch an exception), then exit. On the watcher's thread, which holds no lock the main thread may hold when the
    signal lands (the run's, a scope's); once, however many times the signal comes."""
    if not _ending.acquire(blocking=False):  # never released: the first one ends the process
        return
    from grelab.lab.ownership import close_current_run
    try:
        close_current_run()
    finally:
        os._exit(128 + signum)


def watch_stop_signals() -> None:
    """SIGTERM and SIGHUP end the shell even while its prompt waits in readline, whose select() a signal that lands
    just before it does not wake (Python's handler then waits for the next key: seen once in ten). Python's C-level
    handler writes every signal's number to the wakeup pipe, from whatever thread took it; a thread reads it."""
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)

    def to_watcher(signum, frame) -> None:  # Python's handler, on the main thread: the watcher does the work (and
        try:                                # hears it this way too where IPython's event loop took the wakeup fd)
            os.write(write_end, bytes([signum]))
        except BlockingIOError:
            pass
    signal.signal(signal.SIGHUP, to_watcher)
    signal.signal(signal.SIGTERM, to_watcher)

    def watch() -> None:
        while True:
            for signum in os.read(read_end, 64):
                if signum in (signal.SIGTERM, signal.SIGHUP):
                    on_hangup(signum, None)
    threading.Thread(target=watch, name="grelab-shell-signals", daemon=True).start()


def run(args) -> int:
    from scapy.config import conf
    from scapy.main import interact
    names = preloaded()
    watch_stop_signals()
    conf.fancy_banner = False
    argv = ["grelab"]
    if args.plain:
        conf.interactive_shell = "python"
        argv.append("-P")  # scapy's pre-start file would choose the shell again
    text = banner(names)
    if args.plain or not _has("IPython"):  # scapy's plain console shows only its own banner line
        print(text, flush=True)
    try:
        interact(mydict=names, argv=argv, mybanner=text, loglevel=logging.WARNING)
    finally:
        import gc
        from grelab.lab.ownership import close_current_run
        warnings.simplefilter("ignore", ResourceWarning)  # scapy's interact turned every warning on
        close_current_run()  # now, not at interpreter exit: the guests go before the prompt comes back
        gc.collect()  # the guests' console pipes, closed while warnings are still off
    return 0


def _has(module: str) -> bool:
    import importlib.util
    return importlib.util.find_spec(module) is not None
