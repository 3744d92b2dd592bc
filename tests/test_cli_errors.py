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
