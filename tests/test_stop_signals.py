"""A stopped run leaves nothing: SIGTERM (a CI timeout), SIGINT (Ctrl-C) and SIGHUP (a closed terminal) sent while
a guest boots (from the booting thread), in the middle of a case, and while a case's lab is torn down; an xdist
run stopped through its controller; an xdist worker killed outright (its controller removes what it left).

Each run is a real pytest run of two_offices against UML guests; a conftest sends the signal at the named point
and first writes down what the run has made by then (its namespaces, its recorded processes), which must all be
gone once the process has exited, and the process must have died of that signal."""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from grelab.lab.ownership import NETNS_DIR, RUN_ROOT, _proc_start_time

ROOT = Path(__file__).resolve().parent.parent

STOPPER = r'''
import json, os, signal
from pathlib import Path
import pytest

AT, SIG, OUT = os.environ["STOP_AT"], getattr(signal, os.environ["STOP_SIGNAL"]), Path(os.environ["STOP_OUT"])
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "main")


def stop(where):
    """What this run has made, written down; then the signal, to this very process (from the calling thread)."""
    if WORKER not in ("main", "gw0") or (OUT / WORKER).exists():
        return
    from grelab.lab.ownership import current_run, grelab_namespaces
    run = current_run()
    pids = [line.split()[:2] for line in (run.path / "pids").read_text().splitlines()]
    made = {"where": where, "run": run.id, "path": str(run.path), "pids": pids,
            "namespaces": [n for n in grelab_namespaces() if n.startswith(f"grelab-{run.id}-")]}
    (OUT / WORKER).write_text(json.dumps(made))
    os.kill(os.getpid(), SIG)


if AT == "boot":  # right after the guest's process started, before it is up: in the thread that boots it
    from grelab.dut.uml import guest
    real_watch = guest.watch
    def watch(proc, console):
        real_watch(proc, console)
        stop("boot")
    guest.watch = watch

if AT == "teardown":  # as the case's scope (its lab, its captures) starts to close
    from grelab.scope import Scope
    real_close = Scope._close
    def _close(self):
        if self.what.startswith("case "):
            stop("teardown")
        return real_close(self)
    Scope._close = _close


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_call(item):
    if AT == "case":  # the lab built, the DUTs holding their plans, the case about to send
        stop("case")
'''


def stopped_run(tmp_path, at: str, sig: str, workers: int = 0) -> tuple[subprocess.CompletedProcess, list[dict]]:
    shutil.copy(ROOT / "scenarios/two_offices.py", tmp_path / "two_offices.py")
    shutil.copytree(ROOT / "pcaps/two_offices", tmp_path / "pcaps/two_offices")
    (tmp_path / "conftest.py").write_text(STOPPER)
    out = tmp_path / "made"
    out.mkdir()
    argv = [sys.executable, "-m", "pytest", "two_offices.py", "-p", "no:cacheprovider", "--rootdir", str(tmp_path),
            "--dut", "uml", "-q"] + (["-n", str(workers), "--max-worker-restart", "0"] if workers else [])
    env = {**os.environ, "PYTHONPATH": str(ROOT), "STOP_AT": at, "STOP_SIGNAL": sig, "STOP_OUT": str(out)}
    env.pop("PYTEST_XDIST_WORKER", None)  # this suite's own worker name is not the child's
    done = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env)
    return done, [json.loads(f.read_text()) for f in sorted(out.iterdir())]


def descends_from(pid: int, ancestor: int) -> bool:
    """Whether process pid is ancestor or one of its descendants (its parents followed up through /proc)."""
    while pid > 1:
        if pid == ancestor:
            return True
        try:
            pid = int(re.search(r"^PPid:\s*(\d+)", Path(f"/proc/{pid}/status").read_text(), re.M).group(1))
        except (OSError, AttributeError):
            return False
    return False


def runs_of(process: int) -> set[str]:
    """The runs (folders under /run/grelab) that this process or its descendants own: other tests' runs, which
    come and go at the same time in a parallel suite, are not theirs."""
    mine = set()
    for run in os.listdir(RUN_ROOT) if RUN_ROOT.exists() else ():
        try:
            owner = int((RUN_ROOT / run / "owner").read_text())
        except (OSError, ValueError):
            continue
        if descends_from(owner, process):
            mine.add(run)
    return mine


def namespaces_of(runs: set[str]) -> list[str]:
    return [n for n in os.listdir(NETNS_DIR) if n.split("-")[1:2] and n.split("-")[1] in runs]


def assert_nothing_left(made: dict) -> None:
    assert made["namespaces"], made  # the run had made something by then
    left = [n for n in made["namespaces"] if (NETNS_DIR / n).exists()]
    left += [n for n in namespaces_of({made["run"]}) if n not in left]  # also those made after the signal
    assert left == [], f"namespaces left by a run stopped at {made['where']}: {left}"
    assert not Path(made["path"]).exists(), f"the run's folder {made['path']} is left"
    alive = [pid for pid, start in made["pids"] if start != "None" and _proc_start_time(int(pid)) == start]
    assert alive == [], f"processes left by a run stopped at {made['where']}: {alive}"


@pytest.mark.parametrize("at", ["boot", "case", "teardown"])
@pytest.mark.parametrize("sig", ["SIGTERM", "SIGINT", "SIGHUP"])
def test_a_stopped_run_leaves_nothing(tmp_path, at, sig):
    done, made = stopped_run(tmp_path, at, sig)
    said = done.stdout + done.stderr
    assert len(made) == 1, said  # the signal was sent where it was meant to be
    assert_nothing_left(made[0])
    assert done.returncode == -getattr(signal, sig), said  # died of it, as its parent expects, after cleaning up
    assert f"RunStopped: stopped by {sig}" in said, said


def test_an_xdist_run_stopped_through_its_controller_leaves_nothing(tmp_path):
    """SIGTERM to the controller only (what `timeout` does): the workers get it too and clean up their own."""
    shutil.copy(ROOT / "scenarios/two_offices.py", tmp_path / "two_offices.py")
    shutil.copytree(ROOT / "pcaps/two_offices", tmp_path / "pcaps/two_offices")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("PYTEST_XDIST_WORKER", None)
    child = subprocess.Popen([sys.executable, "-m", "pytest", "two_offices.py", "-p", "no:cacheprovider", "--rootdir",
                              str(tmp_path), "--dut", "uml", "-q", "-n", "2"], cwd=tmp_path, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    runs: set[str] = set()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and child.poll() is None:  # until both workers have guests up
        runs = runs_of(child.pid)
        if len(runs) >= 2 and all(len([n for n in namespaces_of({r}) if "-r" in n]) >= 2 for r in runs):
            break
        time.sleep(0.01)
    made = {r: [n for n in os.listdir(NETNS_DIR) if n.startswith(f"grelab-{r}-")] for r in runs}
    child.send_signal(signal.SIGTERM)
    said = child.communicate(timeout=60)[0]
    assert len(runs) == 2 and all(made.values()), (made, said)
    for run, names in made.items():
        assert [n for n in names if (NETNS_DIR / n).exists()] == [], said
        assert not (RUN_ROOT / run).exists(), said
    assert namespaces_of(runs) == [], said  # also those made after the signal
    assert child.returncode == -signal.SIGTERM, said


def test_an_xdist_worker_killed_outright_is_cleaned_up_by_its_controller(tmp_path):
    """SIGKILL to worker gw0 mid-case (as xdist's controller kills a worker that will not exit): nothing of it could
    clean up, so the controller removes what it left as soon as it sees the worker down (no new worker is started
    in its place, whose run's start would sweep it: --max-worker-restart 0)."""
    done, made = stopped_run(tmp_path, "case", "SIGKILL", workers=2)
    said = done.stdout + done.stderr
    assert len(made) == 1 and made[0]["where"] == "case", said
    assert "worker 'gw0' crashed" in said, said
    assert_nothing_left(made[0])


def test_grelab_run_stopped_by_timeout_leaves_nothing(tmp_path):
    """The issue's reproduction: `timeout 1.5 grelab run two_offices` left 2 namespaces, 2 guests and its folder.
    Here SIGTERM comes once the run's guests are up, as `timeout` would send it."""
    env = {**os.environ}
    env.pop("PYTEST_XDIST_WORKER", None)
    child = subprocess.Popen([str(Path(sys.executable).with_name("grelab")), "run", "two_offices", "--dut", "uml"],
                             cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    made: list[str] = []
    runs: set[str] = set()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and child.poll() is None and len(made) < 2:
        runs = runs_of(child.pid)
        made = namespaces_of(runs)
        time.sleep(0.01)
    child.send_signal(signal.SIGTERM)
    said = child.communicate(timeout=60)[0]
    assert len(made) >= 2, said
    assert [n for n in made if (NETNS_DIR / n).exists()] == [], said
    assert namespaces_of(runs) == [], said  # also those made after the signal
    assert [r for r in runs if (RUN_ROOT / r).exists()] == [], said
    assert child.returncode == -signal.SIGTERM, said
