"""Traffic from the kernel's own stack in a lab node: what a real host on an office LAN does.

Each call runs on a thread inside the node's namespace (sockets made there stay there), with fixed
identifiers and ports so that runs repeat packet for packet, and deadlines instead of sleeps.
"""
from __future__ import annotations

import fcntl
import select
import socket
import struct
import threading
import time
from dataclasses import dataclass

from grelab.capture.capture import SO_RCVBUFFORCE
from grelab.errors import Differing, Mismatch
from grelab.lab import netns

ICMPV6_ECHO_REQUEST, ICMPV6_ECHO_REPLY = 128, 129
ICMP_ECHO_REQUEST, ICMP_ECHO_REPLY = 8, 0
TCP_CLOSE = 7  # tcpi_state in struct tcp_info


@dataclass(frozen=True)
class EchoReply:
    source: str
    ident: int
    seq: int
    payload: bytes
    rtt_ms: float


# Echo by address family: (socket family, protocol, request type, reply type, bytes before the ICMP header in
# what the socket receives: raw IPv4 sockets hand over the IP header too).
ECHO = {6: (socket.AF_INET6, socket.IPPROTO_ICMPV6, ICMPV6_ECHO_REQUEST, ICMPV6_ECHO_REPLY, lambda data: 0),
        4: (socket.AF_INET, socket.IPPROTO_ICMP, ICMP_ECHO_REQUEST, ICMP_ECHO_REPLY, lambda data: (data[0] & 0xF) * 4)}


def ping(lab, node: str, dst: str, ident: int = 0x4242, seq: int = 1, payload: bytes = b"grelab echo",
         timeout: float = 3.0) -> EchoReply:
    """One echo (ICMPv6 or ICMP, by dst's family) from `node` to `dst` through a raw socket, so the identifier
    is ours, not the kernel's; returns the reply, or raises AssertionError when none comes before the deadline."""
    family, protocol, request, reply, skip = ECHO[6 if ":" in dst else 4]

    def body() -> EchoReply:
        with socket.socket(family, socket.SOCK_RAW, protocol) as s:
            start = time.monotonic()
            deadline = start + timeout
            header = struct.pack("!BBHHH", request, 0, 0, ident, seq)
            # IPv4's checksum is ours to compute; the kernel fills in ICMPv6's over its pseudo-header.
            s.sendto(header[:2] + struct.pack("!H", _checksum(header + payload)) + header[4:] + payload, (dst, 0))
            while (left := deadline - time.monotonic()) > 0:
                s.settimeout(left)
                try:
                    data, addr = s.recvfrom(65535)
                except socket.timeout:
                    break
                icmp = data[skip(data):]
                kind, _, _, got_ident, got_seq = struct.unpack_from("!BBHHH", icmp)
                if kind == reply and (got_ident, got_seq) == (ident, seq):
                    return EchoReply(addr[0], got_ident, got_seq, icmp[8:], (time.monotonic() - start) * 1000)
        raise Mismatch(f"no echo reply from {dst} to {node} within {timeout} s (ident {ident}, seq {seq})",
                       Differing(node, f"echo reply from {dst}", f"within {timeout} s", "none"))
    return lab.run_in(node, body)


def echo_stream(lab, node: str, dst: str, count: int, interval: float = 0.0005, midway=None, at: int = 0,
                ident: int = 0x4243, payload: bytes = b"grelab stream", timeout: float = 3.0,
                until=None, limit: int = 0) -> "Answered":
    """`count` echoes (seq 1..count) from `node` to `dst`, one every `interval` seconds without waiting for replies,
    with `midway()` called right after echo `at` left (a change of the network while echoes are in flight);
    returns {seq: round trip in ms} of those answered before the deadline. With until(sent), the stream goes on
    past `count` until until(echoes sent so far) is true, at most `limit` echoes (a change that must be over
    before the stream ends). Pacing is the stream's rate, not a wait for packets: replies are read as they come,
    until all are in or the deadline passes. The answer's .sent: how many echoes were sent."""
    family, protocol, request, reply, skip = ECHO[6 if ":" in dst else 4]

    def body() -> Answered:
        sent: dict[int, float] = {}
        answered: dict[int, float] = {}
        with socket.socket(family, socket.SOCK_RAW, protocol) as s:
            s.setblocking(False)
            # Room for every reply: a thread the scheduler held back sends the echoes it owes in one burst, and
            # their replies came back faster than it read them (a run of 57 "lost" echoes on a loaded machine was
            # this socket's default buffer overflowing, not the tunnel).
            s.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 16 << 20)
            start = time.monotonic()

            def read_replies() -> None:
                while True:
                    try:
                        data = s.recv(65535)
                    except BlockingIOError:
                        return
                    icmp = data[skip(data):]
                    kind, _, _, got_ident, got_seq = struct.unpack_from("!BBHHH", icmp)
                    if kind == reply and got_ident == ident and got_seq in sent:
                        answered.setdefault(got_seq, (time.monotonic() - sent[got_seq]) * 1000)
            seq = 0
            while seq < count or until is not None and seq < limit and not until(seq):
                seq += 1
                while (wait := start + (seq - 1) * interval - time.monotonic()) > 0:
                    select.select([s], [], [], wait)  # replies read as they come, until this echo's time
                    read_replies()
                header = struct.pack("!BBHHH", request, 0, 0, ident, seq)
                s.sendto(header[:2] + struct.pack("!H", _checksum(header + payload)) + header[4:] + payload, (dst, 0))
                sent[seq] = time.monotonic()
                read_replies()  # also while catching up: no wait between echoes then
                if seq == at and midway is not None:
                    midway()
            deadline = time.monotonic() + timeout
            while len(answered) < len(sent) and (left := deadline - time.monotonic()) > 0:
                select.select([s], [], [], left)
                read_replies()
        return Answered(answered, sent=len(sent))
    return lab.run_in(node, body)


class Answered(dict):
    """{seq: round trip in ms} of a stream's answered echoes; .sent: how many echoes the stream sent."""

    def __init__(self, answered: dict, sent: int):
        super().__init__(answered)
        self.sent = sent


def _checksum(data: bytes) -> int:
    total = int.from_bytes(data + b"\0" * (len(data) % 2), "big")  # 16-bit words summed mod 0xffff
    return (-total) % 0xFFFF or 0xFFFF


@dataclass(frozen=True)
class TcpExchange:
    sent: bytes
    echoed: bytes


def tcp_echo(lab, client: str, server: str, server_addr: str, port: int = 40001, client_port: int = 40000,
             data: bytes = b"hello from grelab", timeout: float = 3.0) -> TcpExchange:
    """A TCP connection from `client` to an echo server in `server`: connect, send, read the echo back,
    close in order (client first, server after it reads the end). Fixed ports make every run the same."""
    def serve(conn: socket.socket) -> None:
        while chunk := conn.recv(65535):
            conn.sendall(chunk)

    def talk(s: socket.socket) -> bytes:
        s.sendall(data)
        echoed = b""
        while len(echoed) < len(data) and (chunk := s.recv(65535)):
            echoed += chunk
        return echoed

    echoed = _connection(lab, client, server, server_addr, port, client_port, timeout, serve, talk, "echo")
    if echoed != data:
        raise AssertionError(f"TCP echo from {server_addr}: sent {data!r}, got back {echoed!r}")
    return TcpExchange(data, echoed)


def tcp_transfer(lab, client: str, server: str, server_addr: str, size: int, port: int = 40003,
                 client_port: int = 40002, timeout: float = 5.0) -> int:
    """`size` bytes from `client` to a server in `server`, in one corked write, and the server's one-byte "got it
    all" back before the client closes: the client's FIN never rides on its last data segment, so the data
    segments on the wire are the same every run (full MSS but the last). Returns the number of bytes the server
    read."""
    got: list[int] = []

    def serve(conn: socket.socket) -> None:
        count = 0
        while count < size and (chunk := conn.recv(1 << 20)):
            count += len(chunk)
        got.append(count)
        conn.sendall(b"k")
        while conn.recv(1 << 16):  # until the client's FIN
            pass

    def send(s: socket.socket) -> None:
        # Corked: no segment leaves shorter than the MSS, neither because the application's write was cut up
        # (whatever the scheduler does to this thread) nor to fill what the receiver's window had left (a window's
        # edge falls anywhere: seen on a loaded machine, 8 + 1072 bytes for the last 1080). The cork comes off
        # once only the last, short segment is unsent and nothing is in flight: the window then takes it whole.
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
        s.sendall(bytes(size))
        _until_only_the_last_is_left(s, time.monotonic() + timeout, server_addr)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 0)
        if s.recv(1) != b"k":
            raise AssertionError(f"TCP transfer to {server_addr}: the server never said it got it all")

    _connection(lab, client, server, server_addr, port, client_port, timeout, serve, send, "transfer",
                send_buffer=4 * size)
    return got[0]


def _connection(lab, client: str, server: str, server_addr: str, port: int, client_port: int, timeout: float,
                serve, talk, what: str, send_buffer: int | None = None):
    """One TCP connection, the same packets every run: a server in `server` (serve(conn) on a thread), the
    client in `client` (talk(sock), from fixed ports), then a close in one order: the client's FIN first, the
    server's after it read that, and the server waits for the last ACK. Returns what talk returned."""
    family = socket.AF_INET6 if ":" in server_addr else socket.AF_INET
    listener = lab.run_in(server, _listen, family, server_addr, port)
    failed: list[BaseException] = []

    def server_side() -> None:
        netns.pin_this_thread()  # the server's segments leave from the CPU the client's do (grelab.lab.netns.pin)
        try:
            listener.settimeout(timeout)
            conn, _ = listener.accept()
            with conn:
                conn.settimeout(timeout)
                serve(conn)
                conn.shutdown(socket.SHUT_WR)  # our FIN, after the client's
                _wait_closed(conn, time.monotonic() + timeout)
        except BaseException as exc:  # noqa: BLE001 - reported in the caller's thread
            failed.append(exc)
        finally:
            listener.close()

    def client_side():
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if send_buffer:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer)  # one write, whole
            s.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", client_port))
            s.settimeout(timeout)
            s.connect((server_addr, port))
            result = talk(s)
            s.shutdown(socket.SHUT_WR)
            s.recv(1)  # the server's FIN: the exchange ends in the same order every run
            return result

    server_thread = threading.Thread(target=server_side, name=f"grelab-tcp-{what}")
    server_thread.start()
    try:
        result = lab.run_in(client, client_side)
    finally:
        server_thread.join(timeout + 1)
    if failed:
        raise AssertionError(f"TCP {what} server in {server}: {failed[0]!r}")
    return result


def _wait_closed(conn: socket.socket, deadline: float) -> None:
    """Until the connection reaches CLOSE: the peer's last ACK has arrived, so no packet of the exchange is
    still on its way (what a capture holds then is all of it). The kernel signals no event for this state
    change, so it is polled, briefly, against a deadline."""
    while conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0] != TCP_CLOSE:
        if time.monotonic() > deadline:
            raise AssertionError("TCP echo server: the client's last ACK never came")
        time.sleep(0.001)


SIOCOUTQ, SIOCOUTQNSD = 0x5411, 0x894B  # a TCP socket's bytes not yet acknowledged; of those, not yet sent


def _until_only_the_last_is_left(s: socket.socket, deadline: float, peer: str) -> None:
    """Until the corked socket has nothing in flight and less than one MSS unsent: the ACKs of what was sent are the
    event, which no system call waits for; its state is read every half millisecond against the deadline."""
    mss = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG)

    def queue(request: int) -> int:
        return struct.unpack("i", fcntl.ioctl(s.fileno(), request, b"\0" * 4))[0]
    while True:
        unsent = queue(SIOCOUTQNSD)
        if unsent < mss and queue(SIOCOUTQ) == unsent:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"TCP transfer to {peer}: {queue(SIOCOUTQ)} bytes still unacknowledged")
        time.sleep(0.0005)


def _listen(family: int, addr: str, port: int) -> socket.socket:
    s = socket.socket(family, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port))
    s.listen(1)
    return s
