"""`grelab wireshark PCAP`: Wireshark on a pcap with ESP decrypted by the project's keys; tshark's detailed view
when there is no display (or no Wireshark).

    grelab wireshark pcaps/two_offices/echo-gre-in-esp.pcapng
    grelab wireshark demo.pcapng --esp-sa demo.esp_sa            # the keys `grelab craft --keys` wrote
    grelab wireshark esp.pcap --esp-sa esp-secrets.txt           # tcpdump's secrets, or `ip xfrm state` text

Wireshark reads its configuration folder from WIRESHARK_CONFIG_DIR: the project's pcaps/wireshark (esp_sa and
preferences), or with --esp-sa a temporary copy of it whose esp_sa holds those keys as Wireshark's rows
(grelab.craft.keys: any form grelab reads; wildcards and unchecked ICVs as Wireshark writes them).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from grelab.errors import GrelabError, InputError


def project_config() -> Path:
    """pcaps/wireshark of the checkout grelab runs from."""
    from grelab.scenario.catalog import scenarios_dir
    return scenarios_dir().parent / "pcaps" / "wireshark"


def config_dir(esp_sa, folder: Path) -> Path:
    """The configuration folder to use: the project's, or a copy of it in `folder` with these keys (a keys file or
    secret, or a list of them) as its esp_sa."""
    base = project_config()
    if not esp_sa:
        return base
    from grelab.craft.keys import keys_from
    keys = keys_from([esp_sa] if isinstance(esp_sa, (str, Path)) else esp_sa)  # a bad line is refused, named
    shutil.copy(base / "preferences", folder / "preferences")
    (folder / "esp_sa").write_text(keys.esp_sa_text())
    return folder


def has_display() -> bool:
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def command(pcap: str | Path, config: Path) -> tuple[list[str], dict, str]:
    """(argv, environment, what): Wireshark when there is a display and it is installed, else tshark -V."""
    env = {**os.environ, "WIRESHARK_CONFIG_DIR": str(config)}
    wireshark = shutil.which("wireshark")
    if has_display() and wireshark:
        return [wireshark, "-r", str(pcap)], env, "wireshark"
    tshark = shutil.which("tshark")
    if tshark is None:
        raise GrelabError("neither a display with Wireshark nor tshark: apt-get install tshark (setup.sh does), "
                          "or wireshark with a display")
    return [tshark, "-n", "-V", "-r", str(pcap)], env, "tshark"


def show(pcap: str | Path, esp_sa: str | Path | None = None, wait: bool = True) -> subprocess.Popen | int:
    """Open pcap in Wireshark (wait=False: in the background, the Popen returned) or print tshark's view."""
    if not Path(pcap).is_file():
        raise InputError("PCAP", str(pcap), "an existing pcap or pcapng file")
    folder = Path(tempfile.mkdtemp(prefix="grelab-wireshark-"))
    try:
        argv, env, what = command(pcap, config_dir(esp_sa, folder))
        if what == "tshark":
            reason = "no display (DISPLAY and WAYLAND_DISPLAY unset)" if not has_display() else "no wireshark installed"
            print(f"{reason}: tshark's detailed view of {pcap}, ESP decrypted", file=sys.stderr)
            sys.stdout.flush()
            done = subprocess.run(argv, env=env, stderr=subprocess.PIPE, text=True)
            if done.returncode != 0:
                from grelab.cli import output_closed
                if output_closed():  # `grelab wireshark X | head`: tshark lost its reader, not its pcap
                    raise BrokenPipeError
                raise GrelabError(f"tshark cannot read {pcap}: {done.stderr.strip()}")
            return 0
        if not wait:
            return subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, start_new_session=True)
        subprocess.run(argv, env=env)  # Wireshark's own exit status says nothing about the pcap
        return 0
    finally:
        if wait:
            shutil.rmtree(folder, ignore_errors=True)


