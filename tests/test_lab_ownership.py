"""Ownership: a run's namespaces go with it however it ends; concurrent runs never collide."""
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from grelab.lab.ownership import NETNS_DIR, RUN_ROOT

# A child run: builds A-R-B, prints its namespaces, then ends as told.
CHILD = r"""
import os, signal, sys
from grelab.lab import build, a_r_b
lab = build(a_r_b())
print(" ".join(lab.namespaces.values()), flush=True)
if sys.argv[1] == "kill":
    os.kill(os.getpid(), signal.SIGKILL)
sys.stdin.read()  # until the parent signals
"""

# A child run that exchanges packets through lab after lab (for the concurrency test).
BUSY = r"""
from scapy.layers.inet import ICMP, IP
from scapy.layers.l2 import Ether
from grelab.lab import build, a_r_b
for n in range(15):
    with build(a_r_b()) as lab:
        with lab.capture("a", "eth0", "icmp[icmptype] = icmp-echoreply") as cap, lab.sender("a", "eth0") as tx:
            tx.send(Ether(src="02:00:00:00:01:01", dst="02:00:00:00:01:fe")
                    / IP(src="192.0.2.1", dst="198.51.100.1") / ICMP(id=n))
            assert cap.wait(count=1, timeout=2).matched, n
print("ok")
"""


def start(script, *args):
    return subprocess.Popen([sys.executable, "-c", script, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)


def alive(names):
    return [n for n in names if (NETNS_DIR / n).exists()]


def run_id(names):
    return names[0].split("-")[1]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signalled_run_cleans_up_after_itself(sig):
    child = start(CHILD, "wait")
    names = child.stdout.readline().split()
    assert len(alive(names)) == 3
    child.send_signal(sig)
    child.wait(timeout=10)
    assert alive(names) == []
    assert not (RUN_ROOT / run_id(names)).exists()


def test_a_sigkilled_run_is_swept_by_the_next():
    child = start(CHILD, "kill")
    names = child.stdout.readline().split()
    assert child.wait(timeout=10) == -signal.SIGKILL
    assert len(alive(names)) == 3  # SIGKILL: nothing could clean up
    subprocess.run([sys.executable, "-c", "from grelab.lab.ownership import current_run; current_run()"],
                   check=True, timeout=20)
    assert alive(names) == []
    assert not (RUN_ROOT / run_id(names)).exists()


def test_two_concurrent_runs_do_not_collide():
    children = [start(BUSY), start(BUSY)]
    outputs = [child.communicate(timeout=60)[0] for child in children]
    assert [child.returncode for child in children] == [0, 0]
    assert outputs == ["ok\n", "ok\n"]


def test_nothing_of_this_run_left_in_the_host_links():
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout
    # grelab-t-*: a root-namespace link test_lab_host_safety makes on purpose (and removes), maybe right now
    assert "grelab-" not in links.replace("grelab-t-", "")
    assert Path(NETNS_DIR).is_dir()


def test_a_node_name_asked_twice_in_one_run_gets_two_namespace_names():
    """A pytest worker's pooled DUT r1 and a test's own r1 exist at once: their namespaces must differ."""
    from grelab.lab.ownership import NAMESPACE_RE, current_run
    run = current_run()
    first, second = run.namespace_name("twice"), run.namespace_name("twice")
    assert first != second and second == first + ".2"
    assert NAMESPACE_RE.match(first) and NAMESPACE_RE.match(second)  # a sweep still recognizes both
