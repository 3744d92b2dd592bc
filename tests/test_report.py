"""The run report (pytest --grelab-report DIR), made by a real run and read in headless Chromium from Debian."""
import dataclasses
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether

from grelab.golden.case import read_pcapng, write_pcapng
from test_shell import usable

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium")
pytestmark = [pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (./setup.sh installs it)"),
              pytest.mark.skipif(not usable(), reason="no DUT that can be two routers at once")]


def chromium(tmp_path: Path, *args: str) -> str:
    done = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                           "--no-first-run", "--disable-component-update", "--disable-sync",
                           f"--user-data-dir={tmp_path / 'chromium-profile'}", *args],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """two_offices' echo[gre] against a golden whose lan2 request has the wrong hop limit (it fails, with the
    diff), and tcp[gre] against its true golden (it passes)."""
    work = tmp_path_factory.mktemp("report")
    shutil.copy(ROOT / "scenarios/two_offices.py", work / "two_offices.py")
    (work / "pcaps/two_offices").mkdir(parents=True)
    shutil.copy(ROOT / "pcaps/two_offices/tcp-gre.pcapng", work / "pcaps/two_offices/tcp-gre.pcapng")
    frames = read_pcapng(ROOT / "pcaps/two_offices/echo-gre.pcapng")
    wrong = Ether(frames[2].data)
    wrong[IPv6].hlim = 7
    frames[2] = dataclasses.replace(frames[2], data=bytes(wrong))
    write_pcapng(frames, work / "pcaps/two_offices/echo-gre.pcapng")
    out = work / "out"
    done = subprocess.run([sys.executable, "-m", "pytest", "two_offices.py::test_echo[gre]", "two_offices.py::test_tcp[gre]",
                           "-p", "no:cacheprovider", "--rootdir", str(work), "--grelab-report", str(out), "-q"],
                          cwd=work, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    return work, out, done


def test_the_run_fails_and_names_the_page(report):
    work, out, done = report
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"grelab report: {out / 'index.html'}" in done.stdout
    assert sorted(p.name for p in (out / "cases").glob("*.pcapng")) == ["two_offices.py_test_echo_gre.pcapng",
                                                                       "two_offices.py_test_tcp_gre.pcapng"]


def test_the_page_in_chromium_shows_ladders_results_and_the_diff(report, tmp_path):
    work, out, _ = report
    dom = chromium(tmp_path, "--dump-dom", (out / "index.html").as_uri())
    assert "<h1>grelab run: 1 of 2 cases passed</h1>" in dom, report[2].stdout  # the run's own word on its cases
    echo = dom[dom.index('id="two_offices.py_test_echo_gre"'):dom.index('id="two_offices.py_test_tcp_gre"')]
    assert 'class="case failed"' in dom[dom.index('id="two_offices.py_test_echo_gre"') - 40:][:80]
    assert "h1's ping reaches h2 and comes back" in echo
    arrows = re.findall(r'<g class="arrow" data-from="([^"]+)" data-to="([^"]+)" data-link="([^"]+)">', echo)
    assert arrows == [("h1", "r1", "lan1"), ("r1", "isp", "transit"), ("r2", "h2", "lan2"), ("h2", "r2", "lan2"),
                      ("isp", "r1", "transit"), ("r1", "h1", "lan1")]
    labels = re.findall(r'<text class="label"[^>]*>([^<]+)</text>', echo)
    assert labels[1] == ("Ethernet / IPv4 198.51.100.1 &gt; 203.0.113.1 / GRE proto=0x86dd -&gt; IPv6 / "
                         "ICMPv6 Echo Request (id: 0x4242 seq: 0x1)")
    assert "transit +" in echo and "between the offices only IPv4/GRE (0x86DD)" in echo
    failure = re.search(r'<pre class="failure">(.*?)</pre>', echo, re.S).group(1)
    assert "capture differs from golden" in failure and "IPv6.hlim: expected 7, got 62" in failure
    assert '<a class="pcap" href="cases/two_offices.py_test_echo_gre.pcapng">' in echo
    tcp = dom[dom.index('id="two_offices.py_test_tcp_gre"'):]
    assert 'class="result">PASSED' in tcp and len(re.findall(r'<g class="arrow"', tcp)) >= 10


def test_the_page_renders_a_screenshot(report, tmp_path):
    _, out, _ = report
    shot = out / "screenshot.png"
    chromium(tmp_path, "--window-size=1500,1400", f"--screenshot={shot}", (out / "index.html").as_uri())
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG") and len(data) > 50_000  # a page of text and arrows, not a blank one
