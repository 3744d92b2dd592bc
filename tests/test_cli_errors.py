"""Every bad invocation a new user tried: one line on stderr naming the path or value and what to do, exit
status 2, and no file created or changed (outputs are written to a temporary file and renamed)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def grelab(*args, cwd):
    return subprocess.run([sys.executable, "-m", "grelab.cli", *args], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)


def snapshot(folder: Path) -> dict:
    """Every file and folder below folder: its bytes (or 'dir') and modification time."""
    return {str(p.relative_to(folder)): (("dir" if p.is_dir() else p.read_bytes()), p.stat().st_mtime_ns, p.stat().st_mode)
            for p in sorted(folder.rglob("*"))}


@pytest.fixture
def workdir(tmp_path):
    (tmp_path / "existing.pcapng").write_bytes(b"old pcapng")
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "inside").write_text("kept")
    keys = tmp_path / "readonly.esp_sa"
    keys.write_text("old keys")
    keys.chmod(0o444)
    return tmp_path


@pytest.mark.parametrize("args, message", [
    (["-o", "/nonexistent/x.pcapng"],
     "-o: '/nonexistent/x.pcapng' is not allowed; allowed: a file in an existing folder (/nonexistent is not one: create it first)"),
    (["-o", "folder", "--force"], "-o: 'folder' is not allowed; allowed: a file name, not a folder"),
    (["--esp", "gcm128", "--keys", "missing/k.esp_sa", "-o", "new.pcapng"],
     "--keys: 'missing/k.esp_sa' is not allowed; allowed: a file in an existing folder"),
    (["--esp", "gcm128", "--keys", "readonly.esp_sa", "--force", "-o", "new.pcapng"],
     "--keys: 'readonly.esp_sa' is not allowed; allowed: a writable file (this one is read-only: chmod u+w it"),
    (["--esp", "gcm128", "--keys", "same.out", "-o", "same.out"],
     "--keys: 'same.out' is not allowed; allowed: a file other than -o's"),
    (["--esp", "gcm128", "--keys", "./existing.pcapng", "-o", "existing.pcapng", "--force"],
     "--keys: './existing.pcapng' is not allowed; allowed: a file other than -o's"),
    (["-o", "existing.pcapng"], "-o: 'existing.pcapng' is not allowed; allowed: a path that does not exist yet (or --force"),
    (["--esp", "gcm128", "--keys", "/sys/grelab-test.esp_sa", "-o", "new.pcapng"], "cannot write /sys/grelab-test.esp_sa: "),
])
def test_bad_craft_invocation(workdir, args, message):
    before = snapshot(workdir)
    done = grelab("craft", *args, cwd=workdir)
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.splitlines()) == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith("grelab craft: " + message), done.stderr
    assert snapshot(workdir) == before  # nothing written, not even half a pcapng
    assert not Path("/nonexistent").exists() and not Path("/sys/grelab-test.esp_sa").exists()


def test_unknown_scenario(tmp_path):
    done = grelab("run", "nosuch", cwd=ROOT)
    assert done.returncode == 2
    assert done.stderr.startswith("grelab run: SCENARIO: 'nosuch' is not allowed; allowed: one of ") \
        and len(done.stderr.splitlines()) == 1


@pytest.mark.parametrize("args, message", [
    (["run", "two_offices", "-n", "abc"], "grelab run: -n: 'abc' is not allowed; allowed: a number of workers from 0 to 256, auto or logical"),
    (["run", "two_offices", "-n", "-3"], "grelab run: -n: '-3' is not allowed; allowed: a number of workers"),
    (["run", "two_offices", "-k", "nomatch"], "grelab run: no case matches -k nomatch in two_offices; cases are listed by `grelab list`"),
    (["run", "two_offices", "--kernel", "/nonexistent/linux"], "grelab run: --kernel: '/nonexistent/linux' is not allowed; allowed: an executable user-mode-linux kernel"),
    (["run", "two_offices", "--report", "/proc/grelab-report"], "grelab run: --report: '/proc/grelab-report' is not allowed; allowed: a folder grelab can write"),
    (["run", "two_offices", "--keep-pcaps", "/nonexistent/caps"], "grelab run: --keep-pcaps: '/nonexistent/caps' is not allowed; allowed: a folder in an existing folder"),
    (["run", "--dut"], "grelab run: --dut: expected one argument (see grelab run --help)"),
    (["run", "--nosuch"], "grelab run: unrecognized arguments: --nosuch"),
    (["craft", "--esp", "nosuch", "-o", "x.pcapng"], "grelab craft: --esp: nosuch is not allowed; allowed: one of gcm128, "),
    (["replay", "x.pcapng", "--to", "h1:eth0", "--quiet", "-1"], "grelab replay: --quiet: '-1' is not allowed; allowed: a number from 0.01 to 60"),
    (["replay", "x.pcapng", "--to", "h1:eth0", "--timeout", "abc"], "grelab replay: --timeout: 'abc' is not allowed"),
    (["kernel", "build", "-j", "0"], "grelab kernel build: -j: '0' is not allowed; allowed: an integer from 1 to 1024"),
    (["bench", "--only", "nosuch"], "grelab bench: --only: nosuch is not allowed; allowed: one of craft, lab, dut, scenario, refusals"),
    (["nosuch"], "grelab: COMMAND: nosuch is not allowed; allowed: one of shell, craft"),
    ([], "grelab: the following arguments are required: COMMAND"),
])
def test_every_bad_option_is_one_line(tmp_path, args, message):
    """grelab's own options and those it passes on to pytest: one line, exit 2, before anything runs."""
    done = grelab(*args, cwd=ROOT if args[:1] == ["run"] else tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.startswith(message), done.stderr
    assert len(done.stderr.splitlines()) == 1 and "Traceback" not in done.stderr, done.stderr
    assert not Path("/nonexistent").exists() and not Path("/proc/grelab-report").exists()
    assert list(tmp_path.iterdir()) == []
