"""Traffic from the kernel's own stack in a lab node: what a real host on an office LAN does.

Each call runs on a thread inside the node's namespace (sockets made there stay there), with fixed
identifiers and ports so that runs repeat packet for packet, and deadlines instead of sleeps.
"""
from __future__ import annotations

import socket
import struct
import threading
import time
from dataclasses import dataclass

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
        raise AssertionError(f"no echo reply from {dst} to {node} within {timeout} s (ident {ident}, seq {seq})")
    return lab.run_in(node, body)


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
    family = socket.AF_INET6 if ":" in server_addr else socket.AF_INET
    listener = lab.run_in(server, _listen, family, server_addr, port)
    served: list[BaseException] = []

    def serve() -> None:
        try:
            listener.settimeout(timeout)
            conn, _ = listener.accept()
            with conn:
                conn.settimeout(timeout)
                while chunk := conn.recv(65535):
                    conn.sendall(chunk)
                conn.shutdown(socket.SHUT_WR)  # our FIN, after the client's
                _wait_closed(conn, time.monotonic() + timeout)
        except BaseException as exc:  # noqa: BLE001 - reported in the caller's thread
            served.append(exc)
        finally:
            listener.close()

    server_thread = threading.Thread(target=serve, name="grelab-tcp-echo")
    server_thread.start()

    def talk() -> bytes:
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", client_port))
            s.settimeout(timeout)
            s.connect((server_addr, port))
            s.sendall(data)
            echoed = b""
            while len(echoed) < len(data):
                chunk = s.recv(65535)
                if not chunk:
                    break
                echoed += chunk
            s.shutdown(socket.SHUT_WR)
            s.recv(1)  # the server's FIN: the exchange ends in the same order every run
            return echoed

    try:
        echoed = lab.run_in(client, talk)
    finally:
        server_thread.join(timeout + 1)
    if served:
        raise AssertionError(f"TCP echo server in {server}: {served[0]!r}")
    if echoed != data:
        raise AssertionError(f"TCP echo from {server_addr}: sent {data!r}, got back {echoed!r}")
    return TcpExchange(data, echoed)


def tcp_transfer(lab, client: str, server: str, server_addr: str, size: int, port: int = 40003,
                 client_port: int = 40002, timeout: float = 5.0) -> int:
    """`size` bytes from `client` to a server in `server`, in one write, and the server's one-byte "got it all"
    back before the client closes: the client's FIN never rides on its last data segment, so the data segments on
    the wire are the same every run (full MSS but the last). Returns the number of bytes the server read."""
    family = socket.AF_INET6 if ":" in server_addr else socket.AF_INET
    listener = lab.run_in(server, _listen, family, server_addr, port)
    got: list = []

    def serve() -> None:
        try:
            listener.settimeout(timeout)
            conn, _ = listener.accept()
            with conn:
                conn.settimeout(timeout)
                count = 0
                while count < size and (chunk := conn.recv(1 << 20)):
                    count += len(chunk)
                got.append(count)
                conn.sendall(b"k")
                while conn.recv(1 << 16):  # until the client's FIN
                    pass
                conn.shutdown(socket.SHUT_WR)
                _wait_closed(conn, time.monotonic() + timeout)
        except BaseException as exc:  # noqa: BLE001 - reported in the caller's thread
            got.append(exc)
        finally:
            listener.close()

    server_thread = threading.Thread(target=serve, name="grelab-tcp-transfer")
    server_thread.start()

    def send() -> None:
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 * size)  # one write, whole
            s.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", client_port))
            s.settimeout(timeout)
            s.connect((server_addr, port))
            s.sendall(bytes(size))
            if s.recv(1) != b"k":
                raise AssertionError(f"TCP transfer to {server_addr}: the server never said it got it all")
            s.shutdown(socket.SHUT_WR)
            s.recv(1)  # the server's FIN

    try:
        lab.run_in(client, send)
    finally:
        server_thread.join(timeout + 1)
    if not got or isinstance(got[0], BaseException):
        raise AssertionError(f"TCP transfer server in {server}: {got[0] if got else 'no connection'!r}")
    return got[0]


def _wait_closed(conn: socket.socket, deadline: float) -> None:
    """Until the connection reaches CLOSE: the peer's last ACK has arrived, so no packet of the exchange is
    still on its way (what a capture holds then is all of it). The kernel signals no event for this state
    change, so it is polled, briefly, against a deadline."""
    while conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0] != TCP_CLOSE:
        if time.monotonic() > deadline:
            raise AssertionError("TCP echo server: the client's last ACK never came")
        time.sleep(0.001)


def _listen(family: int, addr: str, port: int) -> socket.socket:
    s = socket.socket(family, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port))
    s.listen(1)
    return s
