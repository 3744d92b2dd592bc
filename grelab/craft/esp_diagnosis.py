"""Why an ESP packet does not open with an SA: what else would verify it (likely_cause), and what is wrong with its
padding (padding_problem, RFC 4303 2.4), which is all that tells a wrong key where there is no ICV to check.

Pure functions of an SA (grelab.craft.esp.SA) and a scapy packet carrying ESP; grelab.craft.esp raises with them.
"""
from __future__ import annotations

import dataclasses
import struct

from scapy.layers.ipsec import ESP
from scapy.packet import Packet

from grelab.craft.algorithms import ALGORITHMS


def padding_problem(sa, packet: Packet, seq_hi: int = 0) -> str | None:
    """What is wrong with an ESP packet's padding (RFC 4303 2.4: the bytes 1, 2, 3, ... up to the pad length, which
    fits in what was encrypted), or None. scapy drops the padding unchecked; call this on a packet that decrypts."""
    esp = packet[ESP]
    scapy_sa = sa.scapy((seq_hi << 32 if sa.esn else 0) | esp.seq)
    icv = scapy_sa.crypt_icv_size or scapy_sa.crypt_algo.icv_size or scapy_sa.auth_algo.icv_size
    plain = scapy_sa.crypt_algo.decrypt(scapy_sa, esp.copy(), scapy_sa.crypt_key, icv, esn_en=scapy_sa.esn_en,
                                        esn=scapy_sa.esn)
    if len(plain.padding) < plain.padlen:
        return f"ESP pad length {plain.padlen}: the encrypted part holds only {len(plain.padding)} bytes before it"
    if plain.padding != bytes(range(1, plain.padlen + 1)):
        want = " ".join(f"{n:02x}" for n in range(1, min(plain.padlen, 4) + 1)) + (" ..." if plain.padlen > 4 else "")
        shown = plain.padding[:8].hex(" ") + (" ..." if len(plain.padding) > 8 else "")
        return f"ESP padding {shown} (pad length {plain.padlen}): RFC 4303 2.4 wants {want}"
    return None


_ICV_LENGTHS = (8, 12, 16, 24, 32)


def likely_cause(sa, packet: Packet, seq_hi: int = 0) -> str:
    """Why an ESP packet does not verify with sa, found by trying what else would verify: ESN on or off (or other
    high-order bits), another ICV length of the same MAC (`ip xfrm ... auth` truncates HMACs to 96 bits), another
    algorithm taking keys of the same lengths. When nothing does, the likely cause is the key."""
    esp_layer, algo = packet[ESP], sa.algo
    toggled = dataclasses.replace(sa, esn=not sa.esn)
    tries = [(f"ESN {'off' if sa.esn else 'on (high-order bits 0)'}", "ESN", toggled, 0)]
    if sa.esn:
        tries += [(f"ESN high-order bits {hi}, not {seq_hi}", "ESN", sa, hi) for hi in (seq_hi - 1, seq_hi + 1)
                  if 0 <= hi <= 0xFFFFFFFF]
    for name, other in ALGORITHMS.items():
        if name != sa.algorithm and other.icv_len and (other.key_len, other.auth_key_len) == \
                (algo.key_len, algo.auth_key_len):  # with no ICV anything "verifies"
            same_cipher = (other.cipher.scapy, other.scapy_auth) == (algo.cipher.scapy, algo.scapy_auth)
            tries.append((f"{name} ({other.icv_len}-byte ICV, not {algo.icv_len})" if same_cipher else name,
                          "ICV length" if same_cipher else "algorithm", dataclasses.replace(sa, algorithm=name),
                          seq_hi))
    for what, cause, candidate, hi in tries:
        try:
            candidate.scapy((hi << 32 if candidate.esn else 0) | esp_layer.seq).decrypt(packet.copy())
        except Exception:  # noqa: BLE001 - any failure means: not this one
            continue
        return f"likely cause: {cause}: it verifies with {what}"
    if algo.integrity is not None and algo.integrity.mac is not None:
        raw, mac = bytes(esp_layer), algo.integrity.mac(sa.auth_key)
        for esn in (sa.esn, not sa.esn):
            high = struct.pack("!I", seq_hi) if esn else b""
            for n in _ICV_LENGTHS:
                if n != algo.icv_len and len(raw) > 8 + n and raw[-n:] == mac(raw[:-n] + high)[:n]:
                    return (f"likely cause: ICV length: the ICV is {algo.integrity.xfrm} truncated to {n} bytes, "
                            f"not {algo.icv_len}" + (f" (and ESN {'on' if esn else 'off'})" if esn != sa.esn else "")
                            + (" (`ip xfrm state ... auth` truncates to 96 bits: use auth-trunc)" if n == 12 else ""))
    return ("likely cause: key: no other ESN setting, ICV length or algorithm with these key lengths verifies "
            "(or the packet is another SA's, or was changed on the way)")
