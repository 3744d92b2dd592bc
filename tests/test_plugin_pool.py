"""The pytest plugin's DUT pool: one DUT per name, reset between cases, started again when reset fails."""
import pytest

from grelab.dut.base import DutError
from grelab.pytest_plugin import DutPool


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
