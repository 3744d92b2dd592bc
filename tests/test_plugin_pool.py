"""The pytest plugin's DUT pool: one DUT per name, reset between cases, started again when reset fails."""
import pytest

from grelab.dut.base import DutError
from grelab.dut.pool import DutPool


class FakeDut:
    def __init__(self, name, interfaces, broken=False):
        self.name, self.interfaces, self.broken = name, interfaces, broken
        self.resets = self.stops = 0

    def reset(self):
        self.resets += 1
        if self.broken:
            raise DutError(f"DUT {self.name}: guest hung")

    def stop(self):
        self.stops += 1


class FakeChoice:
    def __init__(self):
        self.started = []

    def start(self, name, interfaces):
        self.started.append(FakeDut(name, interfaces))
        return self.started[-1]


def pool_with(choice):
    pool = DutPool("fake")
    pool._choice = choice
    return pool


def test_a_dut_is_kept_and_reset_between_cases():
    choice = FakeChoice()
    pool = pool_with(choice)
    first = pool.get("r1", ("wan", "lan"))
    assert pool.get("r1", ("wan", "lan")) is first and first.resets == 1 and len(choice.started) == 1


def test_a_dut_that_cannot_be_reset_is_stopped_and_started_again():
    choice = FakeChoice()
    pool = pool_with(choice)
    first = pool.get("r1", ("wan", "lan"))
    first.broken = True
    with pytest.warns(UserWarning, match="DUT r1 could not be reset, so it is started again: .*guest hung"):
        second = pool.get("r1", ("wan", "lan"))
    assert second is not first and first.stops == 1 and second.resets == 0
    pool.stop()
    assert second.stops == 1


def test_a_reset_that_fails_while_the_next_lab_is_built_starts_the_dut_again(tmp_path):
    """For real: r1's background reset after the first case fails (a wedged guest, played by a conftest); the
    second case, whose lab was being built meanwhile, gets r1 started again and passes, saying so in a warning."""
    import os
    import shutil
    import subprocess
    import sys
    from pathlib import Path
    root = Path(__file__).resolve().parent.parent
    shutil.copy(root / "scenarios/two_offices.py", tmp_path / "two_offices.py")
    shutil.copytree(root / "pcaps/two_offices", tmp_path / "pcaps/two_offices")
    (tmp_path / "conftest.py").write_text(
        "from grelab.dut.base import DutError\n"
        "from grelab.dut.uml.guest import Uml\n"
        "real, calls = Uml.reset, []\n"
        "def reset(self):\n"
        "    calls.append(self.name)\n"
        "    if calls.count('r1') == 2:  # the first is the first case's, before it; the second in the background\n"
        "        import time; time.sleep(0.5)  # still under way when the next case's lab is being built\n"
        "        self.wedged = 'reset failed: played by the test'\n"
        "        raise DutError('DUT r1: reset failed: played by the test')\n"
        "    return real(self)\n"
        "Uml.reset = reset\n")
    done = subprocess.run([sys.executable, "-m", "pytest", "two_offices.py::test_echo[gre]", "two_offices.py::test_tcp[gre]",
                           "-p", "no:cacheprovider", "--rootdir", str(tmp_path), "--dut", "uml", "-q"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(root)})
    said = done.stdout + done.stderr
    assert done.returncode == 0 and "2 passed" in said, said
    assert "DUT r1 could not be reset: DUT r1: reset failed: played by the test; it is started again" in said, said
