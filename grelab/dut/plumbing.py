"""Host-side plumbing every DUT backend shares: its own namespace, and iproute2 batches run inside it."""
from __future__ import annotations

import subprocess
from typing import Callable

from grelab.dut.base import DutError
from grelab.lab.ownership import current_run, remove_namespace
from grelab.scope import Scope


def make_namespace(node: str, setup: str, scope: Scope | None = None) -> tuple[str, Callable[[], None]]:
    """A fresh namespace of this run, its removal deferred at once (in `scope`, else the run's), `setup` (a
    shell script) run in it before any link exists; returns (name, remove-it-now)."""
    run = current_run()
    name = run.namespace_name(node)
    subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True)
    run.claim_namespace(name)
    remove = (scope or run.scope).defer(lambda: remove_namespace(name), f"namespace {name}")
    in_namespace(name, setup)
    return name, remove


def in_namespace(namespace: str, script: str, timeout: float = 10.0) -> subprocess.CompletedProcess:
    """Run a shell script inside a host namespace (with its own /sys); raise DutError on failure."""
    p = subprocess.run(["ip", "netns", "exec", namespace, "sh", "-c", script],
                       capture_output=True, text=True, timeout=timeout)
    if p.returncode:
        raise DutError(f"namespace {namespace}: `{script}` failed: {(p.stderr or p.stdout).strip()}")
    return p


def ip_batch(namespace: str, commands: list[str]) -> None:
    """Run iproute2 commands in a host namespace in one process; raise DutError with its output on failure."""
    p = subprocess.run(["ip", "-n", namespace, "-batch", "-"], input="\n".join(commands) + "\n",
                       capture_output=True, text=True)
    if p.returncode:
        raise DutError(f"namespace {namespace}: ip -batch failed: {(p.stderr or p.stdout).strip()}")
