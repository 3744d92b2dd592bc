"""Wireshark's `esp_sa` table for a set of SAs, so Wireshark and tshark decrypt grelab's ESP with no typing.

The file goes in Wireshark's profile (~/.config/wireshark/esp_sa) or is passed to tshark row by row
(`-o uat:esp_sa:ROW`, see tshark_options). Columns: protocol, source, destination, SPI, encryption algorithm,
encryption key, authentication algorithm, authentication key; the algorithm names must match Wireshark's exactly.
"""
from __future__ import annotations

from collections.abc import Iterable

from grelab.craft.esp import SA


def esp_sa_row(sa: SA) -> str:
    """One row of the table, in Wireshark's quoting."""
    algo = sa.algo
    fields = [f"IPv{sa.version}", sa.src, sa.dst, f"0x{sa.spi:08x}",
              algo.wireshark_crypt, _hex(sa.key), algo.wireshark_auth, _hex(sa.auth_key)]
    return ",".join(f'"{f}"' for f in fields)


def esp_sa_text(sas: Iterable[SA]) -> str:
    """The whole esp_sa file: one row per SA."""
    return "# Wireshark ESP SAs written by grelab: copy to ~/.config/wireshark/esp_sa\n" + \
        "".join(esp_sa_row(sa) + "\n" for sa in sas)


def tshark_options(sas: Iterable[SA]) -> list[str]:
    """tshark arguments that decrypt these SAs' ESP."""
    options = ["-o", "esp.enable_encryption_decode:TRUE"]
    for sa in sas:
        options += ["-o", "uat:esp_sa:" + esp_sa_row(sa)]
    return options


def _hex(key: bytes) -> str:
    return "0x" + key.hex() if key else ""
