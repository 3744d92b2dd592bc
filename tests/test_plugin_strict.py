"""A run that cannot test what it was asked to is a failure, never a green run of skips: an unknown or broken
--dut stops the run with a one-line reason; a DUT named explicitly that lacks what a case needs fails the case;
only --dut auto skips, and the summary says how many cases and why."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from grelab.dut.uml import kernel

pytest_plugins = ["pytester"]
ROOT = Path(__file__).resolve().parent.parent

CASES = '''
import pytest

@pytest.mark.needs_esp
def test_needs_esp():
    pass

def test_plain():
    pass
'''
# A DUT class that has GRE only, and `auto` made to pick it: what a machine without ESP looks like.
FAKE_DUT = '''
from grelab.dut.base import Dut

class GreOnly(Dut):
    capabilities = frozenset({"gre"})
    plug = cmd = reset = stop = None
'''
AUTO_PICKS_IT = '''
from grelab.dut import select
from fakedut import GreOnly
select.select = lambda spec="auto": select.Choice("greonly", GreOnly, GreOnly.capabilities, "test")
'''


def grelab(*args, env=None, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "grelab.cli", *args], capture_output=True, text=True,
                          cwd=cwd, env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}, timeout=120)


def test_grelab_run_with_an_unknown_dut_fails_with_one_line(tmp_path):
    done = grelab("run", "two_offices", "--dut", "nosuch")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert lines == ["grelab run: --dut nosuch: not auto, host, uml, ovs, module:Class, or an entry point of group grelab.dut"]
    assert "passed" not in done.stdout and "skipped" not in done.stdout  # no table of nothing


# grelab's kernel, by path: a GRELAB_CACHE of its own would not hold it (the image cache is what these tests break)
KERNEL = str(kernel.cached().path) if kernel.cached() else "/nonexistent/linux"


def test_grelab_run_with_a_broken_image_cache_fails_with_one_line(tmp_path):
    cache = tmp_path / "not-a-folder"
    cache.write_text("")
    done = grelab("run", "two_offices", "--dut", "uml", env={"GRELAB_CACHE": str(cache), "GRELAB_KERNEL": KERNEL})
    assert done.returncode == 2 and len(done.stderr.splitlines()) == 1
    assert done.stderr.startswith(f"grelab run: uml: cannot prepare the guest image: {cache}/uml/")
    assert "Not a directory" in done.stderr and "GRELAB_CACHE" in done.stderr


@pytest.mark.parametrize("dut", ["uml", "auto"])
def test_a_broken_image_cache_fails_the_run(tmp_path, dut):
    cache = tmp_path / "not-a-folder"
    cache.write_text("")
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "scenarios/two_offices.py",
                           "--dut", dut], capture_output=True, text=True, cwd=ROOT, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT), "GRELAB_CACHE": str(cache), "GRELAB_KERNEL": KERNEL})
    if dut == "auto" and done.returncode == 0 and " skipped" not in done.stdout:
        pytest.skip("the host kernel is a usable DUT here: auto does not need the image")
    assert done.returncode != 0
    output = done.stdout + done.stderr
    assert f"{cache}/uml" in output and "Not a directory" in output and " skipped" not in output.splitlines()[-1]
    if dut == "uml":  # named explicitly: refused before anything runs, in one line
        assert done.returncode == 4 and done.stderr.startswith("ERROR: --dut uml: cannot prepare the guest image")
    else:
        assert "no usable DUT" in output


@pytest.fixture
def project(pytester):
    pytester.makeini("[pytest]\n")
    pytester.makepyfile(test_cases=CASES, fakedut=FAKE_DUT)
    pytester.syspathinsert()
    return pytester


def test_auto_skips_what_its_dut_cannot_do_and_says_how_many_and_why(project):
    project.makeconftest(AUTO_PICKS_IT)
    result = project.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(["*grelab: skipped cases*", "1 skipped: DUT greonly lacks: esp"])


def test_a_dut_named_explicitly_that_lacks_a_capability_fails_the_case(project):
    result = project.runpytest_subprocess("-p", "no:cacheprovider", "--dut", "fakedut:GreOnly")
    result.assert_outcomes(passed=1, errors=1)  # failed in setup: pytest calls it an error
    result.stdout.fnmatch_lines(["*--dut fakedut:GreOnly lacks what this case needs: esp*"])
    assert result.ret == 1


SCENARIO = '''
from grelab.scenario import PLAIN_GRE
from grelab.networks.offices import two_offices

net = two_offices("story", variants=[PLAIN_GRE]).fixture()


def test_echo(net):
    net.ping("h1", "h2")
'''
ESP_ONLY = '''
from grelab.dut.base import Dut

class EspOnly(Dut):
    capabilities = frozenset({"esp", "several"})
    plug = apply = counters = reset = stop = None
'''


@pytest.mark.parametrize("how", ["auto", "named"])
def test_a_scenario_whose_dut_lacks_gre_says_so_instead_of_unknown_device_type(pytester, how):
    pytester.makeini("[pytest]\n")
    pytester.makepyfile(test_story=SCENARIO, espdut=ESP_ONLY)
    pytester.syspathinsert()
    if how == "auto":
        pytester.makeconftest(AUTO_PICKS_IT.replace("fakedut import GreOnly", "espdut import EspOnly as GreOnly")
                              .replace('"greonly"', '"esponly"'))
        result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
        result.assert_outcomes(skipped=1)
        result.stdout.fnmatch_lines(["1 skipped: DUT esponly lacks: gre"])
    else:
        result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--dut", "espdut:EspOnly")
        result.assert_outcomes(errors=1)
        result.stdout.fnmatch_lines(["*--dut espdut:EspOnly lacks what this case needs: gre*"])
    assert "Unknown device type" not in result.stdout.str()
