"""What an IKEv2 exchange looked like on the wire, in lines a network engineer reads: when, which exchange, who sent
it, request or response, its payloads, and for the payloads in the clear (IKE_SA_INIT) the proposals and notifies;
between them, the first ESP frame under each SPI (when each side began to use an SA).

    exchange(frames, {"198.51.100.1": "r1", "203.0.113.1": "r2"})     # frames: [(capture time, bytes), ...]
    ['+0.0 ms r1->r2 IKE_SA_INIT request #0: SA[1: AES-CBC/128 PRF_HMAC_SHA2_256 SHA2-256-128 2048MODPgr],
      KE(2048MODPgr), Nonce, N(NAT_DETECTION_SOURCE_IP), ...',
     '+1.9 ms r2->r1 IKE_SA_INIT response #0: N(NO_PROPOSAL_CHOSEN)', ...]

How two daemons disagree (a proposal refused, a rekey answered with an error) is on the wire before it is in
either log; the encrypted payloads (IKE_AUTH on) are described by their size, their notifies are in the daemons' logs.
Pure: frames in, lines out, any bytes accepted (a frame that is not IKE is skipped, one that does not dissect says so).
"""
from __future__ import annotations

import ipaddress
import struct


IKE_PORTS = (500, 4500)


def exchange(frames, names: dict[str, str] | None = None) -> list[str]:
    """One line per IKE message among Ethernet `frames` ((capture time, bytes) pairs, in capture order), and one for
    the first ESP frame of each SPI, each with its time since the first frame; `names` maps addresses to nodes."""
    names = names or {}
    lines, spis, start = [], set(), None
    for when, frame in frames:
        start = when if start is None else start
        line = describe(frame, names)
        if line is None and (esp := _esp(frame)) is not None and esp[2] not in spis:
            spis.add(esp[2])
            src, dst, spi, seq = esp
            line = f"{names.get(src, src)}->{names.get(dst, dst)} ESP SPI 0x{spi:08x}: its first frame (seq {seq})"
        if line is not None:
            lines.append(f"+{(when - start) * 1000:.1f} ms {line}")
    return lines


def _esp(frame: bytes) -> tuple[str, str, int, int] | None:
    """(source, destination, SPI, sequence number) of an IPv4 ESP frame, else None."""
    if len(frame) < 42 or frame[12:14] != b"\x08\x00" or frame[23] != 50:
        return None
    at = 14 + (frame[14] & 0x0F) * 4
    if len(frame) < at + 8:
        return None
    spi, seq = struct.unpack_from("!II", frame, at)
    return str(ipaddress.ip_address(frame[26:30])), str(ipaddress.ip_address(frame[30:34])), spi, seq


def describe(frame: bytes, names: dict[str, str] | None = None) -> str | None:
    """The line for one frame holding IKE over UDP 500/4500 in IPv4 or IPv6, else None."""
    found = _ike(frame)
    if found is None:
        return None
    src, dst, ike = found
    names = names or {}
    who = f"{names.get(src, src)}->{names.get(dst, dst)}"
    try:
        return f"{who} {_message(ike)}"
    except Exception as exc:  # scapy's dissection of bytes it does not expect: said, never raised
        return f"{who} IKE that does not dissect ({len(ike)} bytes): {type(exc).__name__}: {exc}"


def _ike(frame: bytes) -> tuple[str, str, bytes] | None:
    """(source, destination, IKE message bytes) of an IKE frame, else None: by offsets, any bytes accepted."""
    if len(frame) < 14:
        return None
    ethertype = struct.unpack_from("!H", frame, 12)[0]
    if ethertype == 0x0800 and len(frame) >= 34 and frame[23] == 17:
        at = 14 + (frame[14] & 0x0F) * 4
        src, dst = ipaddress.ip_address(frame[26:30]), ipaddress.ip_address(frame[30:34])
    elif ethertype == 0x86DD and len(frame) >= 54 and frame[20] == 17:
        at = 54
        src, dst = ipaddress.ip_address(frame[22:38]), ipaddress.ip_address(frame[38:54])
    else:
        return None
    if len(frame) < at + 8:
        return None
    sport, dport = struct.unpack_from("!HH", frame, at)
    if sport not in IKE_PORTS and dport not in IKE_PORTS:
        return None
    ike = frame[at + 8:]
    if 4500 in (sport, dport):
        if ike[:4] != b"\x00\x00\x00\x00":  # ESP in UDP, or a NAT keepalive: not IKE
            return None
        ike = ike[4:]
    return (str(src), str(dst), ike) if len(ike) >= 28 else None


def _message(data: bytes) -> str:
    from scapy.contrib.ikev2 import IKEv2, IKEv2ExchangeTypes
    header = IKEv2(data)
    flags = int(header.flags)
    kind = "response" if flags & 0x20 else "request"
    exchange_name = IKEv2ExchangeTypes.get(header.exch_type, f"exchange {header.exch_type}")
    payloads = []
    layer = header.payload
    while layer is not None and layer.__class__.__name__ != "NoPayload":
        payloads.append(_payload(layer))
        if layer.__class__.__name__ in ("IKEv2_Encrypted", "Raw", "Padding"):
            break
        layer = layer.payload
    return f"{exchange_name} {kind} #{header.id}: {', '.join(payloads) or 'no payload'}"


def _payload(layer) -> str:
    from scapy.contrib.ikev2 import IKEv2NotifyMessageTypes
    name = layer.__class__.__name__
    if name == "IKEv2_SA":
        return "SA[" + "; ".join(_proposal(p) for p in _chain(layer.prop)) + "]"
    if name == "IKEv2_Notify":
        return f"N({IKEv2NotifyMessageTypes.get(layer.type, layer.type)})"
    if name == "IKEv2_KE":
        return f"KE({layer.get_field('group').i2repr(layer, layer.group)})"
    if name == "IKEv2_Encrypted":
        return f"encrypted ({len(layer.load or b'')} bytes)"
    if name in ("Raw", "Padding"):
        return f"{len(bytes(layer))} bytes not dissected"
    return name.removeprefix("IKEv2_")


def _chain(first) -> list:
    """The proposals or transforms scapy holds as a list, or as one chained to the next by its payload."""
    out = []
    for head in first if isinstance(first, list) else [first]:
        while head is not None and head.__class__.__name__ in ("IKEv2_Proposal", "IKEv2_Transform"):
            out.append(head)
            head = head.payload
    return out


def _proposal(proposal) -> str:
    transforms = []
    for transform in _chain(proposal.trans):
        text = transform.get_field("transform_id").i2repr(transform, transform.transform_id)
        if getattr(transform, "key_length", None):
            text += f"/{transform.key_length}"
        transforms.append(text)
    return f"{proposal.proposal}: " + " ".join(transforms)
