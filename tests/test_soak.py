"""grelab soak: the runs, the load beside them, and every case that did not pass every time (exit 1)."""
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

STORY = '''"""Two cases: one steady, one that fails in every other run (a counter file beside it)."""
from pathlib import Path

COUNT = Path(__file__).with_name("count")


def test_steady():
    pass


def test_flaky():
    n = int(COUNT.read_text()) if COUNT.exists() else 0
    COUNT.write_text(str(n + 1))
    assert n % 2 == 1, "the first of every two runs fails"
'''


def hogs(mark: str) -> list[int]:
    """The soak's CPU hogs still running: those whose environment holds `mark` (other soaks run beside this test,
    the CLI examples' among them, with hogs of their own)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if (Path(f"/proc/{pid}/cmdline").read_bytes().endswith(b"-c\0while True: pass\0")
                    and mark.encode() in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")):
                found.append(int(pid))
        except OSError:
            pass
    return found


def catalogue(tmp_path: Path) -> None:
    """A checkout's layout: scenarios/story.py, collected as the project's pytest settings collect scenarios."""
    (tmp_path / "scenarios").mkdir()
    (tmp_path / "scenarios" / "story.py").write_text(STORY)
    (tmp_path / "pytest.ini").write_text("[pytest]\npython_files = scenarios/[a-z]*.py\n")


def test_soak_lists_the_case_that_did_not_pass_every_time(tmp_path):
    catalogue(tmp_path)
    mark = f"GRELAB_SOAK_TEST={os.getpid()}-{tmp_path.name}"
    env = {**os.environ, "PYTHONPATH": str(ROOT), mark.split("=")[0]: mark.split("=")[1]}
    env.pop("PYTEST_XDIST_WORKER", None)
    done = subprocess.run([sys.executable, "-m", "grelab.cli", "soak", "--runs", "3", "--load", "1", "-n", "0",
                           "--out", str(tmp_path / "out")], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env=env)
    said = done.stdout + done.stderr
    assert done.returncode == 1, said
    assert "run 1/3: 1 passed, 1 failed, 0 skipped" in said and "run 2/3: 2 passed, 0 failed" in said, said
    assert "2 cases, 3 runs, load 1: 1 did not pass every time:" in said, said
    assert "story::test_flaky: failed 2 of 3; first: run 1: AssertionError: the first of every two runs fails" in said
    assert "test_steady" not in said.split("did not pass every time")[1]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [f"run-{n}.{e}" for n in (1, 2, 3) for e in ("log", "xml")]
    assert hogs(mark) == []  # the load went with the soak


def test_soak_of_a_selection_matching_nothing_is_one_line(tmp_path):
    catalogue(tmp_path)
    done = subprocess.run([sys.executable, "-m", "grelab.cli", "soak", "--runs", "2", "-k", "nomatch", "-n", "0"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 2
    assert done.stderr.strip() == "grelab soak: no case matches -k nomatch in the catalogue; cases are listed by `grelab list`"
