"""Every golden pcap, as Wireshark shows it: nothing malformed, no expert warning (but in frames whose comment
says they were crafted so deliberately), every ESP packet decrypted
down to GRE with nothing but the repository's pcaps/wireshark folder (esp_sa + preferences)."""
import os
import shutil
import subprocess
from pathlib import Path

import pytest

PCAPS = Path(__file__).resolve().parent.parent / "pcaps"
GOLDENS = sorted(PCAPS.glob("*/*.pcapng"))

pytestmark = pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed (./setup.sh installs it)")


def tshark(path: Path, *args: str) -> str:
    env = dict(os.environ, WIRESHARK_CONFIG_DIR=str(PCAPS / "wireshark"))
    done = subprocess.run(["tshark", "-n", "-r", str(path), *args], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_there_are_goldens():
    assert {p.parent.name for p in GOLDENS} >= {"two_offices", "grelab_endpoint"}


@pytest.mark.parametrize("path", GOLDENS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_golden_dissects_cleanly_and_decrypts(path):
    # A frame crafted malformed on purpose says so in its comment ("deliberately"); every other must be clean.
    assert tshark(path, "-Y", '(_ws.malformed || _ws.expert.severity >= warning) && !(frame.comment contains "deliberately")') == ""
    protocols = tshark(path, "-T", "fields", "-e", "frame.protocols").split()
    assert protocols, "an empty golden"
    esp = [p for p in protocols if ":esp" in p]
    assert all(":esp:gre:" in p for p in esp), f"ESP that did not decrypt to GRE: {esp}"
    comments = tshark(path, "-T", "fields", "-e", "frame.comment").splitlines()
    assert all(c.strip() for c in comments), "every packet says what it is"
    if "gre-in-esp" in path.stem:
        assert esp, "an ESP case with no ESP on the wire"
