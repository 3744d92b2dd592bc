"""Network namespaces without forking: made, entered and removed from Python threads.

A network namespace belongs to a thread, not to the process: a thread that calls setns() (or
unshare()) lives in the new namespace while the others stay put, and any socket it creates stays in
that namespace for good, whichever thread later uses it. So `run_in(namespace, fn)` runs fn on a
short-lived thread that has entered the namespace and hands back the result (sockets included).
`ip netns add` costs a process (~10 ms here); doing its two system calls ourselves costs ~1 ms.
"""
from __future__ import annotations

import ctypes
import os
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Callable, TypeVar

from grelab.errors import GrelabError
from grelab.lab.ownership import NETNS_DIR, current_run, delete_namespace  # noqa: F401 - re-exported

libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNET = 0x40000000
MS_BIND = 4096

T = TypeVar("T")


def check(result: int, what: str) -> int:
    """Turn a libc -1 into OSError naming the call."""
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return result


def enter(namespace: str) -> None:
    """Move the calling thread (only it) into /run/netns/NAMESPACE. Use it on threads you own."""
    fd = os.open(NETNS_DIR / namespace, os.O_RDONLY | os.O_CLOEXEC)
    try:
        check(libc.setns(fd, CLONE_NEWNET), f"setns {namespace}")
    finally:
        os.close(fd)


# Worker threads kept for the life of the process: starting a thread per namespace step cost ~1 ms under load
# (a case takes ~20 steps). Every task starts back in the namespace the process started in, whatever the
# task before it entered, so a task sees the same world a fresh thread would.
_HOME = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
_workers = ThreadPoolExecutor(max_workers=16, thread_name_prefix="grelab-netns")
_cpu: int | None = None  # set by pin(): the CPU the namespace threads run on


def pin(cpu: int) -> None:
    """Run what happens inside the lab's namespaces (hosts' sockets, their TCP) on this CPU, the one the DUTs' guests
    run on: a host's frames then all leave from one CPU, the one the guest's replies arrive on, and none overtakes
    another on its way to the DUT. A lone ACK that h1's delayed-ACK timer sent from the guest's CPU and the FIN h1's
    application sent from the other went through two CPUs' backlogs and reached r1 swapped (once in ~20 loaded runs).
    Only these threads: the process's captures and the rest keep both CPUs (pinning the whole worker beside its
    guests starved an IKE rekey under load)."""
    global _cpu
    _cpu = cpu


def pin_this_thread() -> None:
    """The calling thread onto the CPU pin() set, if any (a thread of its own working a lab's sockets)."""
    if _cpu is not None and os.sched_getaffinity(0) != {_cpu}:
        os.sched_setaffinity(0, {_cpu})  # this thread only


def _at_home(body: Callable[[], T]) -> T:
    check(libc.setns(_HOME, CLONE_NEWNET), "setns back to the first namespace")
    pin_this_thread()
    return body()


def on_thread(body: Callable[[], T]) -> T:
    """Run body() on a worker thread (in the process's first namespace at its start), wait, and return its
    result or raise its exception here."""
    return _workers.submit(_at_home, body).result()


def in_background(body: Callable[[], T]) -> Future:
    """Start body() on a worker thread as on_thread does, without waiting: its Future."""
    return _workers.submit(_at_home, body)


def run_in(namespace: str, fn: Callable[..., T], *args, **kwargs) -> T:
    """Call fn(*args, **kwargs) on a thread inside /run/netns/NAMESPACE; return its result or raise its error."""
    if not (NETNS_DIR / namespace).exists():
        raise GrelabError(f"network namespace {namespace!r} does not exist")

    def body() -> T:
        enter(namespace)
        return fn(*args, **kwargs)

    return on_thread(body)


def create_namespace(namespace: str, setup: Callable[[], None] | None = None) -> None:
    """Create /run/netns/NAMESPACE (what `ip netns add` does) and call setup() inside it.

    setup runs before any link exists, which is when IPv6 sysctls such as accept_dad must be set
    for new links to inherit them."""
    path = NETNS_DIR / namespace

    def body() -> None:
        check(libc.unshare(CLONE_NEWNET), "unshare(CLONE_NEWNET)")
        fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0)
        os.close(fd)
        try:  # the bind mount keeps the namespace alive after this thread ends
            check(libc.mount(b"/proc/thread-self/ns/net", bytes(path), b"none", MS_BIND, None),
                  f"bind mount {path}")
        except OSError:
            path.unlink()
            raise
        if setup is not None:
            setup()

    NETNS_DIR.mkdir(exist_ok=True)
    on_thread(body)
    current_run().claim_namespace(namespace)


def write_sysctl(key: str, value) -> None:
    """Set a sysctl in the calling thread's namespace (/proc/sys/net follows the thread). The key is
    dotted, or slashed when an interface name has a dot: net/ipv6/conf/eth0.100/forwarding."""
    Path("/proc/sys", *key.split("/" if "/" in key else ".")).write_text(f"{value}\n")
