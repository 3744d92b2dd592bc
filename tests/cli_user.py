"""Running `grelab` as a user does, for the command tests: a subprocess of this checkout, its output and status."""
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def grelab(*args, cwd=ROOT, timeout=120, env=None, input=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "grelab.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout, input=input,
                          env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})


def one_line_error(done: subprocess.CompletedProcess, command: str) -> str:
    """The single stderr line of a failed command, checked to be one line, exit 2, no traceback."""
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.startswith(f"grelab {command}: "), done.stderr
    return done.stderr.strip()
