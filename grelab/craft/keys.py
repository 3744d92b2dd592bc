"""ESP keys in the forms users have them, read into grelab SAs: Wireshark's esp_sa rows (wildcards and "ANY n bit
authentication [no checking]" included), tcpdump's espsecret lines and files (`tcpdump -E`), and `ip xfrm state` /
`ip -s xfrm state` text (a router's output pasted, or the `ip xfrm state add` commands). grelab's own comment rows
of pcaps/esp_sa (grelab.craft.esp_sa.grelab_row) are read too.

    keys = read_keys("esp-secrets.txt")       # the form is told from the text itself
    sas = keys.sas_for(spi, src, dst)        # the SAs that may open this ESP packet, in the order to try them

A key says which ESP it opens: an SPI and addresses, each of which may be a wildcard ("*"; Wireshark also takes "*"
for an IPv4 address's byte or an SPI's hex digit; a tcpdump secret names the destination only, or nothing). Its SA's
mode is None unless the text says it (xfrm): each packet says whether it is tunnel mode. A secret without its
integrity key (tcpdump's "-hmac96", Wireshark's "ANY 96 bit") opens ESP with the ICV unchecked, and says so.
A line grelab cannot read is refused: InputError naming the file and line, the field, and what is allowed.
"""
from __future__ import annotations

import csv
import dataclasses
import ipaddress
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from grelab.craft.algorithms import ALGORITHMS, CIPHERS, COMBINED, DECRYPT_ONLY, INTEGRITIES, UNCHECKED
from grelab.craft.esp import SA
from grelab.craft.esp_sa import GRELAB_ROW, _hex, esp_sa_lines, wireshark_algorithms
from grelab.errors import GrelabError, InputError

ANY = "*"
_PLACEHOLDER = {4: "0.0.0.0", 6: "::"}  # an SA's addresses where the key has a wildcard


@dataclass(frozen=True)
class Key:
    """An SA as a keys file gives it, and the ESP packets it opens: spi, src and dst are an exact value or a
    wildcard (ANY; Wireshark's "*" digits). versions: the IP versions it applies to."""
    sa: SA
    spi: str = ANY
    src: str = ANY
    dst: str = ANY
    versions: tuple[int, ...] = (4, 6)
    origin: str = ""  # "FILE line N"

    def matches(self, spi: int, src: str, dst: str) -> bool:
        version = ipaddress.ip_address(src).version
        return version in self.versions and _spi_matches(self.spi, spi) and _address_matches(self.src, src) \
            and _address_matches(self.dst, dst)


class Keys:
    """The keys of one or more files, in their order: the first key that matches a packet opens it, those that check
    an ICV before those that cannot (Wireshark's "ANY n bit" row and grelab's exact row for the same SA). A key of
    this very SPI whose addresses differ (a NAT rewrote them) is tried when no key matches."""

    def __init__(self, keys: Iterable[Key] = ()):
        self.keys = list(keys)
        self._found: dict[tuple[int, str, str], list[SA]] = {}

    def __len__(self) -> int:
        return len(self.keys)

    def __iter__(self) -> Iterator[Key]:
        return iter(self.keys)

    def __add__(self, other: "Keys") -> "Keys":
        return Keys([*self.keys, *other.keys])

    def sas_for(self, spi: int, src: str, dst: str) -> list[SA]:
        """The SAs that may open ESP with this SPI from src to dst (their wildcards filled in from the packet), in the
        order to try them."""
        if (spi, src, dst) not in self._found:
            version = ipaddress.ip_address(src).version
            found = [k for k in self.keys if k.matches(spi, src, dst)] or \
                [k for k in self.keys if k.spi == f"0x{spi:08x}" and version in k.versions]
            found.sort(key=lambda k: not k.sa.algo.checks_icv)  # stable: the file's order otherwise
            self._found[spi, src, dst] = [dataclasses.replace(k.sa, spi=spi, src=src, dst=dst) for k in found]
        return self._found[spi, src, dst]

    def esp_sa_text(self) -> str:
        """Wireshark's esp_sa table for these keys, wildcards kept; grelab's comment rows for exact SAs Wireshark
        cannot decrypt or check."""
        lines = []
        for key in self.keys:
            names = wireshark_algorithms(key.sa)
            if ANY not in key.spi + key.src + key.dst:
                lines += esp_sa_lines(key.sa)
            elif names:
                lines += [",".join(f'"{f}"' for f in (f"IPv{v}", key.src, key.dst, key.spi, names[0], _hex(key.sa.key),
                                                        names[1], _hex(key.sa.auth_key))) for v in key.versions]
        return "# Wireshark ESP SAs written by grelab\n" + "".join(line + "\n" for line in lines)


def read_keys(path: str | Path, option: str = "--esp-sa", _within: tuple[Path, ...] = ()) -> Keys:
    """The keys of a file in any of the forms (the module's docstring)."""
    if Path(path).resolve() in _within:
        raise InputError(option, str(path), "a file not already being read (it includes itself)")
    try:
        text = Path(path).read_text(errors="replace")
    except OSError as exc:
        raise InputError(option, str(path), f"a readable keys file ({exc.strerror})") from None
    return parse_keys(text, str(path), Path(path).parent, (*_within, Path(path).resolve()))


def keys_from(values: Iterable[str | Path], option: str = "--esp-sa") -> Keys:
    """Keys from a command line's values: each a keys file (any form), or a tcpdump -E secret itself (several
    separated by commas, or "file PATH")."""
    keys = Keys()
    for value in values:
        if Path(value).is_file():
            keys += read_keys(value, option)
        elif re.search(r"\S:\S", str(value)) or str(value).startswith("file "):
            keys += parse_keys(str(value).replace(",", "\n"), option, Path.cwd())
        else:
            raise InputError(option, str(value), "a keys file (Wireshark esp_sa, tcpdump espsecret, ip xfrm state) "
                             "or a tcpdump -E secret: [0xSPI@ADDRESS ]ALGORITHM:SECRET")
    return keys


def parse_keys(text: str, source: str = "keys", folder: Path | None = None, _within: tuple[Path, ...] = ()) -> Keys:
    """Keys from text: `ip xfrm state` output or commands when a line starts so, else line by line esp_sa rows,
    grelab's comment rows, tcpdump secrets ("[0xSPI@ADDRESS ]ALGORITHM:SECRET"; "file PATH"; "ikev2 ..." lines,
    IKE's keys not ESP's, are skipped). Every bad line is named; the first one's field is said in full."""
    if any(_XFRM_START.match(line) for line in text.splitlines()):
        return Keys(Key(sa, f"0x{sa.spi:08x}", sa.src, sa.dst, (sa.version,), origin)
                    for sa, origin in _xfrm_states(text, source))
    keys, bad = [], []
    for number, line in enumerate(text.splitlines(), 1):
        try:
            keys += _line_keys(line.strip(), f"{source} line {number}", folder, _within)
        except InputError as exc:
            bad.append((number, exc))
    if bad:
        number, first = bad[0]
        more = f" (also bad: line{'s' if len(bad) > 2 else ''} {', '.join(str(n) for n, _ in bad[1:])})" \
            if len(bad) > 1 else ""
        raise InputError(first.field, first.value, first.allowed + more) from None
    return Keys(keys)


def read_grelab_rows(text: str) -> list[SA]:
    """The SAs of an esp_sa table's grelab comment rows (grelab.craft.esp_sa.grelab_row): those Wireshark cannot
    decrypt or check."""
    return [_grelab_key(next(csv.reader([m["row"]])), f"line {n}").sa for n, line in enumerate(text.splitlines(), 1)
            if (m := GRELAB_ROW.fullmatch(line.strip()))]


def parse_xfrm_state(text: str, source: str = "ip xfrm state") -> list[SA]:
    """`ip xfrm state` (with or without -s) as grelab SAs: ESP states only, in the order listed."""
    return [sa for sa, _ in _xfrm_states(text, source)]


def _line_keys(line: str, where: str, folder: Path | None, within: tuple[Path, ...]) -> list[Key]:
    grelab_row = GRELAB_ROW.fullmatch(line)
    if grelab_row:
        return [_grelab_key(next(csv.reader([grelab_row["row"]])), where)]
    if not line or line.startswith("#"):
        return []
    if line.startswith('"') or '","' in line:
        return [_wireshark_key(next(csv.reader([line])), where)]
    words = line.split()
    if words[0].lower() == "file" and len(words) == 2:
        included = Path(words[1]) if folder is None or Path(words[1]).is_absolute() else folder / words[1]
        return list(read_keys(included, f"{where}: file", within))
    if words[0].lower() == "ikev2":
        return []  # an IKEv2 SA's keys (tcpdump prints IKE with them): not ESP's
    return [key for secret in line.split(",") if secret.strip() for key in _tcpdump_keys(secret.strip(), where)]


# Wireshark's esp_sa: protocol, source, destination, SPI, encryption, its key, authentication, its key.
_BY_WIRESHARK = {(c.wireshark, c.key_len): c for c in (*CIPHERS, *COMBINED) if c.wireshark}
_AUTH_BY_WIRESHARK = {i.wireshark: i for i in (*INTEGRITIES, *UNCHECKED) if i.wireshark}


def _wireshark_key(row: list[str], where: str) -> Key:
    if len(row) != 8:
        raise InputError(f"{where}: columns", len(row), "8: protocol, source, destination, SPI, encryption, key, "
                         "authentication, key")
    protocol, src, dst, spi, crypt, key_text, auth, auth_text = (field.strip() for field in row)
    if protocol not in ("IPv4", "IPv6"):
        raise InputError(f"{where}: protocol", protocol, "IPv4 or IPv6")
    version = int(protocol[-1])
    key, auth_key = _key(key_text, f"{where}: encryption key"), _key(auth_text, f"{where}: authentication key")
    cipher = _BY_WIRESHARK.get((crypt, len(key)))
    if cipher is None:
        raise InputError(f"{where}: encryption", f"{crypt} with a {len(key)}-byte key", "one of " + "; ".join(
            sorted({f"{c.wireshark} ({', '.join(str(k) for (n, k) in _BY_WIRESHARK if n == c.wireshark)} bytes)"
                    for c in _BY_WIRESHARK.values()})))
    if cipher.icv_len:  # a combined mode authenticates itself: Wireshark's authentication says NULL
        if auth != "NULL":
            raise InputError(f"{where}: authentication", auth, f"NULL beside {crypt}")
        name = cipher.name
    else:
        integrity = _AUTH_BY_WIRESHARK.get(auth)
        if integrity is None:
            raise InputError(f"{where}: authentication", auth, "one of " + ", ".join(_AUTH_BY_WIRESHARK))
        name = f"{cipher.name}-{integrity.name}"
        if integrity.mac is None:
            auth_key = b""  # nothing to check it with: Wireshark ignores the key too
    return _key_for(where, _spi_filter(spi, f"{where}: SPI"), _address_filter(src, version, f"{where}: source"),
                    _address_filter(dst, version, f"{where}: destination"), (version,), algorithm=name, key=key,
                    auth_key=auth_key)


def _grelab_key(row: list[str], where: str) -> Key:
    try:
        version, src, dst, spi, algorithm, key, auth, esn, mode, nat_t = row
    except ValueError:
        raise InputError(f"{where}: columns", len(row), "10, as grelab.craft.esp_sa.grelab_row writes them") from None
    ports = tuple(int(p) for p in nat_t.split(":")) if re.fullmatch(r"\d+:\d+", nat_t) else None
    sa = _sa(where, spi=_int(spi, f"{where}: SPI"), algorithm=algorithm, key=_key(key, f"{where}: key"),
             auth_key=_key(auth, f"{where}: authentication key"), src=src, dst=dst, mode=mode or None, nat_t=ports,
             esn=esn == "esn")
    return Key(sa, f"0x{sa.spi:08x}", sa.src, sa.dst, (sa.version,), where)


# tcpdump's espsecret: [SPI@DESTINATION ]ALGORITHM:SECRET, ALGORITHM a cipher's name, "-hmac96" after it for an
# ICV of 96 bits tcpdump skips unchecked (print-esp.c); SECRET 0x and hex digits, or the key's bytes as text.
_BY_TCPDUMP = {name.removesuffix("-cbc"): c for c in CIPHERS for name in c.tcpdump}


def _tcpdump_keys(secret: str, where: str) -> list[Key]:
    words = secret.split()
    if len(words) > 2:
        raise InputError(f"{where}: secret", secret, "[0xSPI@ADDRESS ]ALGORITHM:SECRET")
    spi, dst = ANY, ANY
    if len(words) == 2:
        target = re.fullmatch(r"(\w+)@(\S+)", words[0])
        if target is None:
            raise InputError(f"{where}: SPI@address", words[0], "0xSPI@ADDRESS, e.g. 0x12345678@192.1.2.45")
        spi = f"0x{_int(target[1], f'{where}: SPI'):08x}"
        if "*" in target[2]:  # Wireshark's wildcards are its own: tcpdump takes an address
            raise InputError(f"{where}: address", target[2], "an IPv4 or IPv6 address (tcpdump's secrets have no wildcards)")
        dst = _address_filter(target[2], None, f"{where}: address")
    algorithm, colon, text = words[-1].partition(":")
    if not colon:
        raise InputError(f"{where}: ALGORITHM:SECRET", words[-1], "an algorithm, a colon and the secret")
    unchecked = algorithm.endswith("-hmac96")
    cipher = _BY_TCPDUMP.get(algorithm.removesuffix("-hmac96").removesuffix("-cbc"))
    if cipher is None:
        raise InputError(f"{where}: algorithm", algorithm, "one of " + ", ".join(
            sorted({n for c in CIPHERS for n in c.tcpdump})) + ", each optionally followed by -hmac96")
    key = _key(text, f"{where}: secret")
    versions = (ipaddress.ip_address(dst).version,) if dst != ANY else (4, 6)
    return [_key_for(where, spi, ANY, dst, versions, algorithm=f"{cipher.name}-{'any96' if unchecked else 'none'}",
                     key=key)]


# `ip xfrm state` / `ip -s xfrm state` output (a block per state, from "src A dst B"), or its add commands.
_XFRM_START = re.compile(r"^\s*(?:ip\s+(?:-\S+\s+)*)?(?:xfrm\s+state\s+add\s+)?src\s+\S+\s+dst\s+\S+")
_BITS = r"(?: \(\d+ bits\))?"  # -s adds each key's length
_XFRM_ALGORITHMS = {(a.cipher.xfrm, a.key_len, a.integrity.xfrm if a.integrity else None, a.icv_len * 8): name
                    for name, a in ALGORITHMS.items()}
# `auth NAME KEY` truncates as the kernel's algorithm table says (net/xfrm/xfrm_algo.c: icv_truncbits).
_AUTH_DEFAULT_BITS = {"hmac(md5)": 96, "hmac(sha1)": 96, "hmac(sha256)": 96, "hmac(sha384)": 192,
                      "hmac(sha512)": 256, "cmac(aes)": 96}


def _xfrm_states(text: str, source: str) -> list[tuple[SA, str]]:
    lines = text.splitlines()
    starts = [n for n, line in enumerate(lines) if _XFRM_START.match(line)]
    states = []
    for first, end in zip(starts, [*starts[1:], len(lines)]):
        where = f"{source} line {first + 1}"
        block = " ".join(lines[first:end]).replace("'", " ").replace('"', " ")
        block = re.sub(r"\s+", " ", re.sub(r"^\s*(?:ip\s+(?:-\S+\s+)*)?(?:xfrm\s+state\s+add\s+)?", "", block))
        proto = re.search(r"\bproto (\S+)", block)
        if proto is None or proto[1] not in ("esp", "50"):
            continue  # AH, IPcomp: not ESP
        head = re.match(r"src (\S+) dst (\S+)", block)
        spi = re.search(r"\bspi (0x[0-9a-fA-F]+|\d+)", block)
        if spi is None:
            raise InputError(f"{where}: spi", block[:60], "spi 0x... in the state")
        mode = re.search(r"\bmode (\S+)", block)
        if mode and mode[1] not in ("transport", "tunnel"):
            raise InputError(f"{where}: mode", mode[1], "transport or tunnel")
        algorithm, key, auth_key = _xfrm_algorithm(block, where)
        encap = re.search(r"\bencap (?:type )?espinudp (?:sport )?(\d+) (?:dport )?(\d+)", block)
        states.append((_sa(where, spi=_int(spi[1], f"{where}: spi"), algorithm=algorithm, key=key, auth_key=auth_key,
                           src=head[1], dst=head[2], mode=mode[1] if mode else None,
                           nat_t=(int(encap[1]), int(encap[2])) if encap else None,
                           esn=_esn(block)), where))
    return states


# The state flags iproute2 names (ip/xfrm_state.c), after "flag": the list ends at the first other word (in `ip xfrm
# state` output "(0x...)"): "anti-replay esn context", which the kernel shows for any state given a replay window in
# its ESN form (libreswan's, ESN off too), is not a flag.
_XFRM_FLAGS = re.compile(r"\bflag((?: (?:noecn|decap-dscp|nopmtudisc|wildrecv|icmp|af-unspec|align4|esn)\b)*)")


def _esn(block: str) -> bool:
    return any("esn" in found.split() for found in _XFRM_FLAGS.findall(block))


def _xfrm_algorithm(block: str, where: str) -> tuple[str, bytes, bytes]:
    aead = re.search(rf"\baead (\S+) (0x[0-9a-fA-F]*){_BITS} (\d+)", block)
    enc = re.search(rf"\benc (\S+)(?: (0x[0-9a-fA-F]*))?{_BITS}", block)
    trunc = re.search(rf"\bauth-trunc (\S+) (?:(0x[0-9a-fA-F]*){_BITS} )?(\d+)\b", block)
    auth = trunc or re.search(rf"\bauth (\S+)(?: (0x[0-9a-fA-F]*))?{_BITS}", block)
    if aead:
        cipher, key, integrity, auth_key, bits = aead[1], _key(aead[2], where), None, b"", int(aead[3])
    elif enc:
        cipher, key = enc[1], _key(enc[2] or "", f"{where}: enc key")
        integrity, auth_key = (auth[1], _key(auth[2] or "", f"{where}: auth key")) if auth else (None, b"")
        bits = int(trunc[3]) if trunc else _AUTH_DEFAULT_BITS.get(integrity, 96) if auth else 0
    else:
        raise InputError(f"{where}: algorithm", "no aead or enc", "aead NAME KEY BITS, or enc NAME KEY [auth-trunc "
                         "NAME KEY BITS]")
    if integrity is not None and not auth_key:  # the integrity key is not given: its ICV is skipped unchecked
        name = next((f"{c.name}-any{bits}" for c in CIPHERS if (c.xfrm, c.key_len) == (cipher, len(key))), None)
        if name in DECRYPT_ONLY:
            return name, key, b""
    name = _XFRM_ALGORITHMS.get((cipher, len(key), integrity, bits))
    if name is None:
        raise InputError(f"{where}: algorithm", f"{cipher} ({len(key)}-byte key)" + (
            f" with {integrity} ({bits}-bit ICV)" if integrity else "" if aead else " alone"),
            "a row of grelab's ESP table (grelab craft --help lists them; `auth` truncates as the kernel does: "
            "use auth-trunc NAME KEY BITS)")
    return name, key, auth_key


def _key_for(where: str, spi: str, src: str, dst: str, versions: tuple[int, ...], **fields) -> Key:
    """A Key whose SA holds the exact SPI and addresses where there are, stand-ins where they are wildcards."""
    exact = lambda text: ANY not in text  # noqa: E731
    sa = _sa(where, spi=int(spi, 16) if exact(spi) else 1, src=src if exact(src) else _PLACEHOLDER[versions[0]],
             dst=dst if exact(dst) else _PLACEHOLDER[versions[0]], mode=None, **fields)
    return Key(sa, spi, src, dst, versions, where)


def _sa(where: str, **fields) -> SA:
    try:
        return SA(**fields)
    except InputError as exc:
        raise InputError(f"{where}: {exc.field}", exc.value, exc.allowed) from None
    except GrelabError as exc:
        raise InputError(where, str(exc), "an SA grelab can use") from None


def _key(text: str, field: str) -> bytes:
    """A key as Wireshark and tcpdump take it: 0x and hex digits, or the key's bytes written as text."""
    if not re.match(r"0[xX]", text):
        return text.encode()
    try:
        return bytes.fromhex(text[2:])
    except ValueError:
        raise InputError(field, text, "0x and an even number of hex digits, or the key as text") from None


def _int(text: str, field: str) -> int:
    try:
        return int(text, 16) if re.match(r"0[xX]", text) else int(text)
    except ValueError:
        raise InputError(field, text, "a number: 0x and hex digits, or decimal") from None


def _spi_filter(text: str, field: str) -> str:
    """Wireshark's SPI: "*", or 0x and 8 hex digits of which any may be "*" (a number without "*" is normalised)."""
    if text == ANY:
        return ANY
    if ANY in text:
        if not re.fullmatch(r"0x[0-9a-fA-F*]{8}", text):
            raise InputError(field, text, "*, a number, or 0x and 8 hex digits with * for any digit")
        return text.lower()
    spi = _int(text, field)
    if not 1 <= spi <= 0xFFFFFFFF:
        raise InputError(field, text, "an SPI from 1 to 0xffffffff")
    return f"0x{spi:08x}"


def _spi_matches(pattern: str, spi: int) -> bool:
    return pattern == ANY or all(p in (ANY, s) for p, s in zip(pattern, f"0x{spi:08x}"))


def _address_filter(text: str, version: int | None, field: str) -> str:
    """An address, "*", or (IPv4) an address with "*" for any of its bytes; normalised."""
    if text == ANY:
        return ANY
    if version != 6 and re.fullmatch(r"(\d{1,3}|\*)(\.(\d{1,3}|\*)){3}", text) and ANY in text:
        return text
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        address = None
    if address is None or version not in (None, address.version):
        kind = {4: "an IPv4 address", 6: "an IPv6 address", None: "an IPv4 or IPv6 address"}[version]
        raise InputError(field, text, f"{kind}, or * for any" + ("" if version == 6 else
                                                              " (IPv4: * for any of its bytes, 192.0.2.*)"))
    return str(address)


def _address_matches(pattern: str, address: str) -> bool:
    if pattern == ANY or pattern == address:
        return True
    if ANY not in pattern or "." not in address:
        return ipaddress.ip_address(pattern) == ipaddress.ip_address(address) if ANY not in pattern else False
    return all(p in (ANY, a) for p, a in zip(pattern.split("."), address.split(".")))
