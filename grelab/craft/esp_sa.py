"""Wireshark's `esp_sa` table for a set of SAs, so Wireshark and tshark decrypt grelab's ESP with no typing.

The file goes in Wireshark's profile (~/.config/wireshark/esp_sa) or is passed to tshark row by row
(`-o uat:esp_sa:ROW`, see tshark_options). Columns: protocol, source, destination, SPI, encryption algorithm,
encryption key, authentication algorithm, authentication key; the algorithm names must match Wireshark's exactly.
"""
from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from pathlib import Path

from grelab.craft.esp import ALGORITHMS, SA
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


def wireshark_checks_icv(sa: SA) -> bool:
    """Whether Wireshark 4.0 decrypts this SA's ESP and checks its ICV (not CMAC, not with ESN)."""
    names = wireshark_algorithms(sa)
    return names is not None and not names[1].startswith("ANY ")


GRELAB_ROW = re.compile(r"# grelab \((?P<why>[^)]*)\): (?P<row>.*)")


def grelab_row(sa: SA) -> str:
    """A comment line of the table (Wireshark skips it) keeping what Wireshark 4.0 cannot use, in grelab's words:
    the SA as a row with grelab's algorithm name, so a test can decrypt and check those packets itself (read_grelab_rows)."""
    why = (f"Wireshark 4.0 cannot decrypt {sa.algorithm}" if wireshark_algorithms(sa) is None
           else f"Wireshark 4.0 cannot check the ICV of {sa.algorithm}{' with ESN' if sa.esn else ''}")
    fields = [f"IPv{sa.version}", sa.src, sa.dst, f"0x{sa.spi:08x}", sa.algorithm, _hex(sa.key), _hex(sa.auth_key),
              "esn" if sa.esn else "", sa.mode, f"{sa.nat_t[0]}:{sa.nat_t[1]}" if sa.nat_t else ""]
    return f"# grelab ({why}): " + ",".join(f'"{f}"' for f in fields)


def esp_sa_lines(sa: SA) -> list[str]:
    """The table's lines for an SA: Wireshark's row where it can decrypt it, and grelab's comment row where it
    cannot decrypt it or check its ICV."""
    return ([esp_sa_row(sa)] if wireshark_algorithms(sa) else []) + ([] if wireshark_checks_icv(sa) else [grelab_row(sa)])


def read_grelab_rows(text: str) -> list[SA]:
    """The SAs of the table's grelab comment rows (grelab_row): those Wireshark cannot decrypt or check."""
    sas = []
    for line in text.splitlines():
        m = GRELAB_ROW.fullmatch(line.strip())
        if m:
            version, src, dst, spi, algorithm, key, auth, esn, mode, nat_t = next(csv.reader([m["row"]]))
            ports = tuple(int(p) for p in nat_t.split(":")) if nat_t else None
            sas.append(SA(int(spi, 16), algorithm, bytes.fromhex(key[2:]), bytes.fromhex(auth[2:]), src=src, dst=dst,
                          mode=mode, nat_t=ports, esn=esn == "esn"))
    return sas


def esp_sa_text(sas: Iterable[SA]) -> str:
    """The whole esp_sa file: Wireshark's rows, and grelab's comment rows for what Wireshark cannot use."""
    return "# Wireshark ESP SAs written by grelab: copy to ~/.config/wireshark/esp_sa\n" + "".join(
        line + "\n" for sa in sas for line in esp_sa_lines(sa))


def tshark_options(sas: Iterable[SA]) -> list[str]:
    """tshark arguments that decrypt these SAs' ESP (those Wireshark can) and check their ICVs."""
    options = ["-o", "esp.enable_encryption_decode:TRUE", "-o", "esp.enable_authentication_check:TRUE"]
    for sa in sas:
        if wireshark_algorithms(sa):
            options += ["-o", "uat:esp_sa:" + esp_sa_row(sa)]
    return options


def read_esp_sa(path: str | Path) -> list[SA]:
    """The SAs of an esp_sa table (this module's rows, or Wireshark's own file): each row's algorithm names and
    key lengths matched against grelab's table. A row no algorithm matches raises InputError naming its line."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise InputError("--esp-sa", str(path), f"a readable esp_sa file ({exc.strerror})") from None
    sas = []
    for number, row in enumerate(csv.reader(text.splitlines()), 1):
        if not row or row[0].lstrip().startswith("#"):
            continue
        try:
            _, src, dst, spi, crypt, key, auth, auth_key = (row + [""] * 8)[:8]
            key, auth_key, spi = _unhex(key), _unhex(auth_key), int(spi, 16)
        except ValueError:
            raise InputError(f"{path} line {number}", ",".join(row), "a Wireshark esp_sa row: protocol, source, "
                             "destination, SPI (0x...), encryption, key (0x...), authentication, key") from None
        algorithm = next((name for name, algo in ALGORITHMS.items()
                          if algo.wireshark_crypt == crypt and _auth_name(algo) == auth
                          and (algo.key_len, algo.auth_key_len) == (len(key), len(auth_key))), None)
        if algorithm is None:
            raise InputError(f"{path} line {number}", f"{crypt} / {auth}", "algorithms and key lengths of "
                             "grelab's ESP table (grelab craft --help lists them)")
        sas.append(SA(spi, algorithm, key, auth_key, src=src or "0.0.0.0", dst=dst or "0.0.0.0"))
    return sas


def _auth_name(algo) -> str:
    """How Wireshark's table names this algorithm's integrity (wireshark_algorithms, without ESN)."""
    if algo.integrity is not None and algo.wireshark_auth is None:
        return f"ANY {algo.icv_len * 8} bit authentication [no checking]"
    return algo.wireshark_auth


def _unhex(text: str) -> bytes:
    return bytes.fromhex(text.strip().removeprefix("0x").removeprefix("0X"))


def _hex(key: bytes) -> str:
    return "0x" + key.hex() if key else ""
