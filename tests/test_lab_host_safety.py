"""Nothing grelab does puts a frame on an interface outside a namespace it made: a scapy frame without a
destination MAC is refused before scapy can resolve it (and ARP) in the root namespace, and a namespace is
ours by the identity recorded when it was made, not by its name."""
import ctypes
import os
import secrets
import socket
import subprocess
import time
from types import SimpleNamespace

import pytest
from scapy.config import conf
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from grelab.errors import InputError
from grelab.lab import a_r_b, build
from grelab.lab.ownership import NETNS_DIR, current_run
from grelab.lab.send import NotOurInterface, Sender

ETH_P_ALL = 0x0003
MNT_DETACH = 2
MS_BIND = 4096
libc = ctypes.CDLL(None, use_errno=True)


@pytest.fixture
def root_dummy():
    """An interface in the root namespace, made for this test, with an address whose subnet routes through
    it: where scapy's root-namespace resolution would send its ARP. Removed afterwards. A veth pair, since
    this kernel has no dummy links ("Unknown device type")."""
    name = f"grelab-t-{secrets.token_hex(2)}x"
    subnet = f"198.18.{secrets.randbelow(250) + 1}"
    subprocess.run(["ip", "link", "add", name, "type", "veth", "peer", "name", name[:-1] + "y"], check=True)
    try:
        subprocess.run(["ip", "addr", "add", f"{subnet}.1/24", "dev", name], check=True)
        for end in (name, name[:-1] + "y"):  # both up: a veth without carrier drops what is sent on it
            subprocess.run(["ip", "link", "set", end, "up"], check=True)
        rescan()  # scapy reads the root namespace's links and routes once: make it see this route
        yield name, f"{subnet}.2"
    finally:
        subprocess.run(["ip", "link", "del", name], check=True)
        rescan()


def rescan() -> None:
    conf.ifaces.reload()
    conf.route.resync()


def listen(ifname: str) -> socket.socket:
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    sock.bind((ifname, ETH_P_ALL))
    return sock


def drain_until_marker(sock: socket.socket, ifname: str, deadline_s: float = 5.0) -> list[bytes]:
    """Send a marker frame on ifname and read everything until it comes back: what was sent on that interface
    before the marker has been seen by then (one device, one order), without guessing a quiet time."""
    marker = b"\xff" * 6 + b"\x02\x00\x00\x00\x00\x99" + b"\x88\xb5" + secrets.token_bytes(16)
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as tx:
        tx.bind((ifname, 0))
        tx.send(marker)
    seen, deadline = [], time.monotonic() + deadline_s
    sock.settimeout(deadline_s)
    while time.monotonic() < deadline:
        frame = sock.recv(65536)
        if frame == marker:
            return seen
        seen.append(frame)
    raise AssertionError(f"the marker never came back on {ifname}: the capture cannot be trusted")


def test_a_frame_without_destination_mac_puts_nothing_on_the_root_namespace(root_dummy):
    dummy, neighbour = root_dummy
    taps = {dummy: listen(dummy), "lo": listen("lo")}
    try:
        with build(a_r_b()) as lab, lab.sender("a", "eth0") as tx:
            with pytest.raises(InputError, match=r"frame 0 Ether.dst: None .*explicit destination MAC"):
                tx.send(Ether() / IP(dst=neighbour) / UDP(dport=40000))
            assert tx.send(Ether(dst="02:00:00:00:01:fe") / IP(dst=neighbour) / UDP(dport=40000)) == 1
        for ifname, sock in taps.items():
            seen = drain_until_marker(sock, ifname)
            leaked = [f for f in seen if f[12:14] == b"\x08\x06" or neighbour.encode() in f
                      or socket.inet_aton(neighbour) in f]
            assert not leaked, f"{len(leaked)} frames about {neighbour} on the root namespace's {ifname}"
    finally:
        for sock in taps.values():
            sock.close()


def bind_mount(source: str, target: str) -> None:
    fd = os.open(target, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0)
    os.close(fd)
    if libc.mount(source.encode(), target.encode(), b"none", MS_BIND, None) < 0:
        os.unlink(target)
        raise OSError(ctypes.get_errno(), f"bind mount {source} on {target}")


def unmount(target: str) -> None:
    libc.umount2(target.encode(), MNT_DETACH)
    os.unlink(target)


# The host's namespace. /proc/1/ns/net cannot be read here (pid 1 is the VM's init: EACCES); this process's
# main thread lives in the same root namespace.
HOST_NS = f"/proc/{os.getpid()}/ns/net"


def test_a_look_alike_namespace_of_the_host_is_refused():
    name = f"grelab-{current_run().id}-fake"
    path = str(NETNS_DIR / name)
    bind_mount(HOST_NS, path)  # the host's own namespace, named like one of ours
    try:
        with pytest.raises(NotOurInterface, match=f"{name}'?: named like ours, but not the namespace this run created"):
            Sender(SimpleNamespace(namespace=name, ifname="lo", node="fake"))
    finally:
        unmount(path)
    assert not os.path.exists(path)


def test_a_namespace_of_ours_replaced_under_its_name_is_refused():
    with build(a_r_b()) as lab:
        name = lab.namespaces["a"]
        path = str(NETNS_DIR / name)
        unmount(path)  # the namespace we made goes (nothing holds it: the kernel frees it)
        bind_mount(HOST_NS, path)  # and the host's takes its name
        try:
            with pytest.raises(NotOurInterface, match="not the namespace this run created"):
                lab.sender("a", "eth0")
        finally:
            unmount(path)
