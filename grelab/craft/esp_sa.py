"""Wireshark's `esp_sa` table for a set of SAs, so Wireshark and tshark decrypt grelab's ESP with no typing.

The file goes in Wireshark's profile (~/.config/wireshark/esp_sa) or is passed to tshark row by row
(`-o uat:esp_sa:ROW`, see tshark_options). Columns: protocol, source, destination, SPI, encryption algorithm,
encryption key, authentication algorithm, authentication key; the algorithm names must match Wireshark's exactly.
"""
from __future__ import annotations

from collections.abc import Iterable

from grelab.craft.esp import SA
from grelab.errors import InputError


def wireshark_algorithms(sa: SA) -> tuple[str, str] | None:
    """(encryption, authentication) as Wireshark's esp_sa names them, or None when Wireshark 4.0 cannot decrypt
    this SA's ESP (AES-CCM, AES-GMAC, ChaCha20-Poly1305). An integrity algorithm it lacks (AES-CMAC), or ESN
    (which Wireshark 4.0 does not know: every ICV would look bad), becomes "ANY n bit authentication [no
    checking]": decrypted, ICV unchecked."""
    algo = sa.algo
    if algo.wireshark_crypt is None:
        return None
    auth = algo.wireshark_auth
    if algo.integrity is not None and (auth is None or sa.esn):
        auth = f"ANY {algo.icv_len * 8} bit authentication [no checking]"
    return algo.wireshark_crypt, auth


def esp_sa_row(sa: SA) -> str:
    """One row of the table, in Wireshark's quoting."""
    names = wireshark_algorithms(sa)
    if names is None:
        raise InputError("ESP algorithm", sa.algorithm, "one Wireshark 4.0 can decrypt (AES-CBC, AES-CTR, 3DES, "
                                                        "AES-GCM or NULL encryption)")
    fields = [f"IPv{sa.version}", sa.src, sa.dst, f"0x{sa.spi:08x}", names[0], _hex(sa.key), names[1],
              _hex(sa.auth_key)]
    return ",".join(f'"{f}"' for f in fields)


def esp_sa_text(sas: Iterable[SA]) -> str:
    """The whole esp_sa file: one row per SA, a comment for an SA Wireshark cannot decrypt."""
    return "# Wireshark ESP SAs written by grelab: copy to ~/.config/wireshark/esp_sa\n" + "".join(
        (esp_sa_row(sa) if wireshark_algorithms(sa) else
         f"# SPI 0x{sa.spi:08x} ({sa.algorithm}): Wireshark 4.0 cannot decrypt this algorithm") + "\n" for sa in sas)


def tshark_options(sas: Iterable[SA]) -> list[str]:
    """tshark arguments that decrypt these SAs' ESP (those Wireshark can) and check their ICVs."""
    options = ["-o", "esp.enable_encryption_decode:TRUE", "-o", "esp.enable_authentication_check:TRUE"]
    for sa in sas:
        if wireshark_algorithms(sa):
            options += ["-o", "uat:esp_sa:" + esp_sa_row(sa)]
    return options


def _hex(key: bytes) -> str:
    return "0x" + key.hex() if key else ""
