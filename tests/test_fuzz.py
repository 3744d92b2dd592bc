"""The parsing surface takes any bytes: mutated GRE and ESP frames (bit flips, truncation, GRE flag, version
and routing bits, protocol types, IP version and protocol, garbage) fed to peel, decrypt, decrypt_frame, the
matcher, the failure report, expect_tunnel_carries, golden normalization and comparison raise nothing but
grelab's own errors (and the AssertionError an expectation exists to raise).

The default suite runs a bounded, derandomized hypothesis search (a few seconds); `pytest -m fuzz` runs
100,000 seeded frames and prints the count of frames and of unexpected exceptions.
"""
import collections
import random
import time
import traceback

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from scapy.layers.l2 import Ether

from grelab.capture.capture import CaptureResult
from grelab.craft import SA, decrypt, encrypt, gre, passenger, peel
from grelab.craft.esp import ALGORITHMS, decrypt_frame
from grelab.errors import GrelabError
from grelab.expect.match import Template, is_noise
from grelab.expect.report import failure_report
from grelab.expect.tunnel import expect_tunnel_carries
from grelab.golden.case import Frame
from grelab.golden.normalize import Normalizer
from grelab.golden.store import describe_difference

MACS = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
GRE_PROTOS = (0x86DD, 0x0800, 0x6558, 0x880B, 0x0000, 0x8847)


def _sas() -> list[SA]:
    sas = []
    for name, algo in ALGORITHMS.items():
        for mode in ("transport", "tunnel"):
            for nat_t in (None, (4500, 4500)):
                sas.append(SA(0x100 + len(sas), name, bytes(range(1, algo.key_len + 1)),
                              bytes(range(1, algo.auth_key_len + 1)), mode=mode, nat_t=nat_t))
    return sas


SAS = _sas()


def _bases() -> list[tuple[bytes, bytes]]:
    """(frame, its passenger): GRE of every option set, passenger and transport, and ESP of every SA."""
    bases = []
    for options in ({}, dict(key=5), dict(seq=7), dict(csum=True), dict(key=1, seq=1, csum=True)):
        for kind in ("ipv6", "ipv4", "ethernet"):
            for transport in ("ipv4", "ipv6"):
                packet = gre(passenger(kind), transport=transport, **options)
                bases.append((bytes(MACS / packet), bytes(packet.payload.payload)))
    for sa in SAS:
        packet = gre(key=1, seq=2, csum=True)
        bases.append((bytes(MACS / encrypt(sa, packet, seq=3)), bytes(packet.payload.payload)))
    return bases


BASES = _bases()


def mutate(frame: bytes, ops) -> bytes:
    """Apply (kind, position, value) mutations; positions and values are folded into range."""
    f = bytearray(frame)
    gre_at = 34 if f[12:14] == b"\x08\x00" else 54
    for kind, position, value in ops:
        if kind == "flip" and f:
            f[position % len(f)] ^= 1 << (value % 8)
        elif kind == "cut":
            del f[position % (len(f) + 1):]
        elif kind == "gre-flags" and len(f) >= gre_at + 2:  # C R K S s Recur | flags Ver
            f[gre_at:gre_at + 2] = (value & 0xFFFF).to_bytes(2, "big")
        elif kind == "gre-proto" and len(f) >= gre_at + 4:
            f[gre_at + 2:gre_at + 4] = GRE_PROTOS[value % len(GRE_PROTOS)].to_bytes(2, "big") if value % 3 else \
                (value & 0xFFFF).to_bytes(2, "big")
        elif kind == "ip-first-byte" and len(f) > 14:  # version and IHL
            f[14] = value & 0xFF
        elif kind == "ip-protocol" and len(f) > 23:
            f[23] = (47, 50, 17, 41, 4, 0, value & 0xFF)[value % 7]
        elif kind == "garbage":
            f[position % (len(f) + 1):position % (len(f) + 1)] = value.to_bytes(8, "big")[:value % 9]
    return bytes(f)


KINDS = ("flip", "cut", "gre-flags", "gre-proto", "ip-first-byte", "ip-protocol", "garbage")


def consumers(frame: bytes, good: bytes, carried: bytes):
    """(name, call) for every parser a captured frame can reach."""
    template = Template(good)
    yield "peel", lambda: peel(frame, SAS)
    yield "peel ip", lambda: peel(frame[14:], SAS, link="ip")
    yield "decrypt", lambda: decrypt(SAS[0], frame[14:])
    yield "decrypt_frame", lambda: decrypt_frame(frame, SAS)
    yield "matcher", lambda: (template.matches(frame), is_noise(frame))
    yield "report", lambda: failure_report("x", template, CaptureResult([(0.0, frame)], False, 1, 0, "l"), [frame])
    yield "tunnel", lambda: expect_tunnel_carries([frame], [carried], SAS)
    yield "tunnel passenger", lambda: expect_tunnel_carries([good], [frame[14:]], SAS)
    yield "normalize", lambda: Normalizer(SAS).frame(frame)
    yield "golden compare", lambda: describe_difference([Frame("l", 0, good)], [Frame("l", 0, frame)])
    yield "capture reader", lambda: CaptureResult([(0.0, frame)], True, 1, 0).packets()[0].summary()


def unexpected(frame: bytes, good: bytes, carried: bytes) -> list[tuple[str, BaseException]]:
    found = []
    for name, call in consumers(frame, good, carried):
        try:
            call()
        except (GrelabError, AssertionError):
            pass
        except Exception as exc:  # noqa: BLE001 - the point of the test
            found.append((name, exc))
    return found


OPS = st.lists(st.tuples(st.sampled_from(KINDS), st.integers(0, 2000), st.integers(0, 2 ** 64 - 1)),
               min_size=1, max_size=4)


@settings(derandomize=True, database=None, max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(base=st.integers(0, len(BASES) - 1), ops=OPS)
def test_mutated_frames_raise_only_grelab_errors(base, ops):
    good, carried = BASES[base]
    frame = mutate(good, ops)
    found = unexpected(frame, good, carried)
    assert not found, f"{frame.hex()}: " + "; ".join(f"{name}: {type(e).__name__}: {e}" for name, e in found)


@pytest.mark.parametrize("frame", [b"", b"\x00", bytes(13), bytes(14), bytes.fromhex("450051030001")])
def test_tiny_inputs(frame):
    good, carried = BASES[0]
    assert not unexpected(frame, good, carried)
    assert not unexpected(bytes(14) + frame, good, carried)


@pytest.mark.fuzz
def test_long_fuzz_run(capsys):
    frames, seed = 100_000, 10
    rng = random.Random(seed)
    counts, example = collections.Counter(), {}
    start = time.perf_counter()
    for _ in range(frames):
        good, carried = rng.choice(BASES)
        ops = [(rng.choice(KINDS), rng.randrange(2000), rng.getrandbits(64)) for _ in range(rng.randint(1, 4))]
        frame = mutate(good, ops)
        for name, exc in unexpected(frame, good, carried):
            key = (name, type(exc).__name__)
            counts[key] += 1
            example.setdefault(key, (frame.hex(), "".join(traceback.format_exception(exc)[-3:])))
    took = time.perf_counter() - start
    with capsys.disabled():
        print(f"\nfuzz: {frames} frames (seed {seed}), {sum(counts.values())} unexpected exceptions, {took:.0f} s")
        for (name, kind), count in counts.most_common():
            print(f"  {count} {kind} in {name}, e.g. {example[(name, kind)][0]}\n{example[(name, kind)][1]}")
    assert not counts
