"""The scenario platform as users meet it: short scenario modules, cases that leave nothing behind (200 in a
row keep a worker's file descriptors and threads flat), and a DUT that panics mid-case.

The long ones run pytest on a scenario written into a scratch project, in a subprocess, as a user would.
"""
import ast
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def code_lines(path: Path) -> tuple[int, int]:
    """(lines of code, lines of case tables): apart from the module docstring, comments and blank lines. A case
    table is a module-level dict, list or tuple literal spanning lines: the cases as data, not code."""
    tree = ast.parse(path.read_text())
    doc = tree.body[0] if tree.body and isinstance(tree.body[0], ast.Expr) and isinstance(tree.body[0].value, ast.Constant) else None
    skip = set(range(doc.lineno, doc.end_lineno + 1)) if doc else set()
    tables = {n for node in tree.body if isinstance(node, ast.Assign) and isinstance(node.value, (ast.Dict, ast.List, ast.Tuple))
              and node.end_lineno > node.lineno for n in range(node.lineno, node.end_lineno + 1)}
    lines = [n for n, line in enumerate(path.read_text().splitlines(), 1)
             if n not in skip and line.strip() and not line.strip().startswith("#")]
    return sum(1 for n in lines if n not in tables), sum(1 for n in lines if n in tables)


def test_each_scenario_module_is_its_story_and_at_most_25_lines_of_code():
    """A story and at most 25 lines of code; a catalogue (cases in tables, or more than two test functions) may
    have up to 50 besides its case tables."""
    for path in sorted((ROOT / "scenarios").glob("[a-z]*.py")):
        assert ast.get_docstring(ast.parse(path.read_text())), f"{path.name} tells no story"
        code, tables = code_lines(path)
        limit = 50 if tables or path.read_text().count("\ndef test_") > 2 else 25
        assert code <= limit, f"{path.name}: {code} lines of code (and {tables} of case tables)"


def run_pytest(tmp_path: Path, scenario: str, conftest: str = "", *args: str) -> subprocess.CompletedProcess:
    (tmp_path / "scenarios").mkdir(exist_ok=True)
    (tmp_path / "scenarios" / "story.py").write_text(scenario)
    (tmp_path / "scenarios" / "conftest.py").write_text(conftest)
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(tmp_path),
                           "--update-golden", "scenarios/story.py", *args],
                          cwd=tmp_path, capture_output=True, text=True, timeout=600)


MANY_CASES = '''"""200 cases in a row."""
import pytest
from scapy.layers.inet import IP
from scapy.layers.inet6 import ICMPv6EchoRequest, IPv6
from scapy.layers.l2 import GRE
from grelab.scenario import PLAIN_GRE
from grelab.networks.endpoint import FAR_LAN_HOST, GRELAB, H1, R1_WAN, grelab_endpoint

net = grelab_endpoint(variants=[PLAIN_GRE]).fixture()


@pytest.mark.parametrize("n", range(200))
def test_echo(net, n):
    net.send("grelab", IP(src=GRELAB, dst=R1_WAN) / GRE() / IPv6(src=FAR_LAN_HOST, dst=H1) / ICMPv6EchoRequest(seq=n))
    net.transit.capture.wait(count=2, timeout=3)
    assert len(net.transit.frames()) == 2  # the echo and its reply; link chatter (MLD, ND) never counts
'''

RECORD_RESOURCES = '''import json, os, threading, pytest


@pytest.hookimpl(trylast=True)
def pytest_runtest_logfinish(nodeid, location):
    with open(os.environ["GRELAB_RESOURCES"], "a") as out:
        out.write(json.dumps([len(os.listdir("/proc/self/fd")), threading.active_count()]) + "\\n")
'''


def test_200_cases_in_a_row_leave_file_descriptors_and_threads_flat(tmp_path):
    record = tmp_path / "resources.jsonl"
    os.environ["GRELAB_RESOURCES"] = str(record)
    try:
        done = run_pytest(tmp_path, MANY_CASES, RECORD_RESOURCES)
    finally:
        del os.environ["GRELAB_RESOURCES"]
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "200 passed" in done.stdout
    counts = [json.loads(line) for line in record.read_text().splitlines()]
    assert len(counts) == 200
    settled = counts[10]  # after the first cases: the DUT booted, the closer thread started
    fds, threads = max(c[0] for c in counts[10:]), max(c[1] for c in counts[10:])
    # A packet socket's close finishes on the closer thread a few ms after its case: allow those few.
    assert fds <= settled[0] + 6 and counts[-1][0] <= settled[0] + 6, (settled, counts[-5:])
    assert threads <= settled[1] + 1, (settled, counts[-5:])


PANIC = '''"""A guest panics mid-case."""
import os
from grelab.lab.ownership import current_run
from grelab.scenario import PLAIN_GRE
from grelab.networks.offices import two_offices

net = two_offices(variants=[PLAIN_GRE]).fixture()


def test_a_panic(net):
    net.ping("h1", "h2")
    net.dut("r1").cmd("echo c > /proc/sysrq-trigger")  # the kernel panics
    net.ping("h1", "h2")


def test_b_next_case(net):
    net.ping("h1", "h2")
    mine = [n for n in os.listdir("/run/netns") if n.startswith(f"grelab-{current_run().id}-")]
    assert not [n for n in mine if n.endswith(".1")], mine  # the first case's lab is gone
'''


def test_a_panic_fails_its_case_with_one_error_naming_it_and_the_next_case_passes(tmp_path):
    done = run_pytest(tmp_path, PANIC, "")
    out = done.stdout
    assert done.returncode == 1, out[-3000:] + done.stderr[-3000:]
    assert out.strip().splitlines()[-1].startswith("1 failed, 1 passed in"), out[-3000:]  # no teardown error
    failures = out.split("= FAILURES =")[1].split("short test summary")[0]
    assert failures.count("DUT r1 died during this case: guest panicked (Kernel panic - not syncing: "
                          "sysrq triggered crash)") == 1, failures[-3000:]
    assert failures.count("_ test_a_panic[gre] _") == 1 and "test_b_next_case" not in failures


ON_ANY = '''"""Verify on any of these links."""
from scapy.layers.inet6 import ICMPv6EchoReply, IPv6
from scapy.layers.l2 import Ether
from grelab.scenario import PLAIN_GRE
from grelab.networks.offices import H1, H2, two_offices

net = two_offices(variants=[PLAIN_GRE]).fixture()
REPLY = Ether() / IPv6(src=H2, dst=H1) / ICMPv6EchoReply(id=0x4242, seq=1, data=b"grelab echo")
ANYHOW = ["Ether.src", "Ether.dst", "IPv6.hlim"]


def test_the_reply_is_found_on_whichever_link_has_it(net):
    net.ping("h1", "h2")
    link, frames = net.expect_on_any(["transit", "lan1"], REPLY, ignore=ANYHOW)
    assert link == "lan1" and len(frames) == 1  # on the transit it is inside GRE: not this frame


def test_none_of_the_links_fails_naming_each(net):
    try:
        net.expect_on_any(["transit", "lan2"], REPLY, ignore=ANYHOW, timeout=0.2)
    except AssertionError as failure:
        assert "none of transit, lan2 got it within 0.2 s" in str(failure) and "on lan2:" in str(failure)
    else:
        raise AssertionError("expect_on_any passed with the packet on neither link")
'''


def test_expect_on_any_of_several_links(tmp_path):
    done = run_pytest(tmp_path, ON_ANY)
    assert done.returncode == 0 and "2 passed" in done.stdout, done.stdout[-3000:] + done.stderr[-2000:]


def test_derived_sas_have_whole_keys_for_every_algorithm():
    from grelab.craft.algorithms import ALGORITHMS
    from grelab.scenario.spec import derived_sa, in_esp
    for name, algo in ALGORITHMS.items():
        sa = derived_sa("platform_keys", in_esp(name), "192.0.2.1", "192.0.2.2")
        assert (len(sa.key), len(sa.auth_key)) == (algo.key_len, algo.auth_key_len)
    sha256 = derived_sa("platform_keys", in_esp("null-sha256"), "192.0.2.1", "192.0.2.2")
    sha512 = derived_sa("platform_keys", in_esp("null-sha512"), "192.0.2.1", "192.0.2.2")
    assert sha256.auth_key == derived_sa("platform_keys", in_esp("null-sha256"), "192.0.2.1", "192.0.2.2").auth_key
    assert len(sha512.auth_key) == 64 and sha512.auth_key != sha256.auth_key


KILLED = '''"""A guest killed from outside mid-case (the OOM killer, a careless kill -9)."""
import os
import signal
from grelab.scenario import PLAIN_GRE
from grelab.networks.offices import two_offices

net = two_offices(variants=[PLAIN_GRE]).fixture()


def test_a_killed(net):
    net.ping("h1", "h2")
    os.kill(net.dut("r1")._proc.pid, signal.SIGKILL)  # the guest's host process
    net.ping("h1", "h2")


def test_b_next_case(net):
    reply = net.ping("h1", "h2")
    assert reply.payload == b"grelab echo"
'''


def test_a_guest_killed_mid_case_fails_that_case_in_one_error_and_the_next_case_gets_a_working_dut(tmp_path):
    done = run_pytest(tmp_path, KILLED, "")
    out = done.stdout
    assert done.returncode == 1, out[-3000:] + done.stderr[-3000:]
    assert out.strip().splitlines()[-1].startswith("1 failed, 1 passed in"), out[-3000:]
    failures = out.split("= FAILURES =")[1].split("short test summary")[0]
    assert failures.count("DUT r1 died during this case: ") == 1, failures[-3000:]
    assert "killed by signal 9" in failures, failures[-3000:]
    assert failures.count("_ test_a_killed[gre] _") == 1 and "test_b_next_case" not in failures


CRASHED = '''"""A daemon crashes mid-case: ospfd in r1, killed while the offices converge."""
from grelab.scenario import PLAIN_GRE
from grelab.networks import branch

net = branch.branch("story", variants=[PLAIN_GRE]).fixture()


def test_a_crash(net, record_property):
    r1 = net.dut("r1")
    r1.cmd(f"kill -SEGV {r1.daemon_pids['ospfd']}")  # as if it had crashed
    branch.converge(net, record_property)


def test_b_next_case(net, record_property):
    assert branch.converge(net, record_property) <= branch.CONVERGENCE_S
'''


def test_a_daemon_crashing_mid_case_fails_that_case_naming_it_and_the_next_case_gets_it_again(tmp_path):
    done = run_pytest(tmp_path, CRASHED, "")
    out = done.stdout
    assert done.returncode == 1, out[-3000:] + done.stderr[-3000:]
    assert out.strip().splitlines()[-1].startswith("1 failed, 1 passed in"), out[-3000:]
    failures = out.split("= FAILURES =")[1].split("short test summary")[0]
    assert failures.count("daemon ospfd in DUT r1 died during this case: killed by SIGSEGV") == 1, failures[-3000:]
    assert "what the case saw then:" in failures
    assert "test_b_next_case" not in failures
