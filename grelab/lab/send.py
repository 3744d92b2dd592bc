"""Send frames out of a link end of a lab: a kept-open raw socket and batched sendmmsg.

`scapy.sendp` opens and closes a socket per call (~41 packets/s here); a kept-open AF_PACKET socket
with sendmmsg (up to 1024 frames per system call, through ctypes: Python has no sendmmsg) sends
~500k 86-byte frames/s. Frames go out exactly as given: a scapy frame without `Ether(dst=...)` is refused,
since scapy would resolve it (and send ARP) in the ROOT namespace, on the host's own interfaces.
"""
from __future__ import annotations

import ctypes
import errno
import itertools
import os
import socket
from array import array

from grelab.errors import GrelabError, InputError
from grelab.lab import netns
from grelab.lab.ownership import NAMESPACE_RE, current_run

BATCH = 1024  # the kernel's UIO_MAXIOV: the most messages one sendmmsg takes
MMSGHDR_WORDS = 8  # struct mmsghdr as 64-bit words: name, namelen, iov, iovlen, control, controllen, flags, len


class NotOurInterface(GrelabError):
    """grelab sends and captures only on interfaces in namespaces this run created."""


def check_ours(namespace: str, ifname: str) -> tuple[int, int]:
    """Refuse an interface outside the namespaces of this run: never touch the host's own links. Returns the
    namespace's identity (st_dev, st_ino), recorded when this run created it and checked again now."""
    run = current_run()
    match = NAMESPACE_RE.match(namespace or "")
    if match is None or match.group(1) != run.id:
        raise NotOurInterface(
            f"refusing to use interface {ifname!r} in namespace {namespace!r}: grelab only sends and "
            f"captures inside namespaces this run created (grelab-{run.id}-<node>)")
    try:
        st = os.stat(netns.NETNS_DIR / namespace)
    except FileNotFoundError:
        raise NotOurInterface(f"namespace {namespace!r} does not exist (the lab was torn down?)") from None
    made = run.made(namespace)
    if made is None or made != (st.st_dev, st.st_ino):
        raise NotOurInterface(
            f"refusing to use interface {ifname!r} in namespace {namespace!r}: named like ours, but not the "
            f"namespace this run created (its identity {st.st_dev}:{st.st_ino} is not the one recorded)")
    return made


def open_packet_socket(namespace: str, ifname: str, protocol: int, before_bind=None) -> socket.socket:
    """An AF_PACKET socket bound to ifname inside namespace. before_bind(sock) runs first, while the
    socket cannot receive anything yet (it is created with protocol 0)."""
    identity = check_ours(namespace, ifname)

    def make() -> socket.socket:
        st = os.stat("/proc/thread-self/ns/net")  # where setns really took us, not what the path says now
        if (st.st_dev, st.st_ino) != identity:
            raise NotOurInterface(f"namespace {namespace!r} changed under us: refusing {ifname!r}")
        try:
            socket.if_nametoindex(ifname)  # a missing interface named plainly, before any socket is made
        except OSError:
            raise GrelabError(f"no interface {ifname!r} in namespace {namespace}") from None
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW | socket.SOCK_CLOEXEC, 0)
        try:
            if before_bind is not None:
                before_bind(sock)
            sock.bind((ifname, protocol))
        except BaseException:
            sock.close()
            raise
        return sock

    return netns.run_in(namespace, make)


def frames_of(packets) -> list[bytes]:
    """A scapy packet, bytes, or a list of either -> a list of bytes. A scapy Ethernet frame must name its
    destination MAC: building it without one makes scapy resolve it through the root namespace's routes and
    ARP there, from whatever namespace the caller is in."""
    if isinstance(packets, (bytes, bytearray)) or hasattr(packets, "build"):
        packets = [packets]
    out = []
    for n, p in enumerate(packets):
        if isinstance(p, (bytes, bytearray)):
            out.append(bytes(p))
            continue
        if not hasattr(p, "build"):
            raise InputError(f"frame {n}", type(p).__name__, "a scapy packet or bytes")
        if p.__class__.__name__ == "Ether" and p.fields.get("dst") is None:  # .dst itself would resolve it
            raise InputError(f"frame {n} Ether.dst", None, "an explicit destination MAC, Ether(dst=...): scapy "
                             "would resolve it, and send ARP, in the root namespace")
        out.append(bytes(p))
    return out


def message_table(bases: array, lengths: array) -> tuple[array, array]:
    """struct mmsghdr[] for sendmmsg/recvmmsg, as 64-bit words, message i being one buffer of
    lengths[i] bytes at address bases[i]. Keep both arrays alive while the kernel uses them."""
    count = len(bases)
    iov = array("Q", bytes(16 * count))  # struct iovec: base, length
    iov[0::2], iov[1::2] = bases, lengths
    table = array("Q", bytes(8 * MMSGHDR_WORDS * count))
    iov_base = iov.buffer_info()[0]
    table[2::MMSGHDR_WORDS] = array("Q", range(iov_base, iov_base + 16 * count, 16))
    table[3::MMSGHDR_WORDS] = array("Q", [1]) * count
    return iov, table


class Sender:
    """Sends on one link end. `with lab.sender("a", "eth0") as tx: tx.send(frames, repeat=1000)`."""

    def __init__(self, end):
        self.end = end
        self.sock = open_packet_socket(end.namespace, end.ifname, 0)  # 0: receive nothing
        self._cancel = current_run().defer(self.sock.close, f"sender on {end.namespace}:{end.ifname}")

    def send(self, packets, repeat: int = 1) -> int:
        """Send the frames in order, the whole list `repeat` times. Returns the number of frames sent."""
        frames = frames_of(packets)
        if not frames or repeat < 1:
            return 0
        total = len(frames) * repeat
        # One table of messages, the list tiled up to a batch, all pointing into one joined buffer.
        tiles = min(repeat, max(1, BATCH // len(frames)))
        buffer = b"".join(frames)
        base = ctypes.cast(ctypes.c_char_p(buffer), ctypes.c_void_p).value
        lengths = array("Q", map(len, frames))
        offsets = array("Q", itertools.accumulate(lengths, initial=0))[:-1]
        count = len(frames) * tiles
        iov, table = message_table(array("Q", map(base.__add__, offsets)) * tiles, lengths * tiles)  # noqa: F841 - iov: the kernel reads it
        table_base = table.buffer_info()[0]
        fd = self.sock.fileno()
        sent = position = 0
        while sent < total:
            want = min(count - position, total - sent)
            done = netns.libc.sendmmsg(fd, ctypes.c_void_p(table_base + 8 * MMSGHDR_WORDS * position), want, 0)
            if done < 0:
                self._raise(ctypes.get_errno(), frames)
            sent += done
            position = (position + done) % count
        return sent

    def _raise(self, err: int, frames: list[bytes]):
        if err == errno.EMSGSIZE:
            raise GrelabError(f"{self.end.ifname}: a frame of {max(map(len, frames))} bytes is larger than "
                              f"the link's MTU allows (AF_PACKET refuses it; raise the link MTU)")
        raise OSError(err, f"sendmmsg on {self.end.namespace}:{self.end.ifname}: {os.strerror(err)}")

    def close(self) -> None:
        self._cancel()

    def __enter__(self) -> "Sender":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
