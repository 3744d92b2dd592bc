"""The errors grelab raises on purpose: each names what is wrong, so nobody reads a traceback from inside scapy."""
from __future__ import annotations

from dataclasses import asdict, dataclass


class GrelabError(Exception):
    """Something grelab could not do, said in words a network engineer can act on."""


class InputError(GrelabError, ValueError):
    """A value the user gave is outside what is allowed: names the field, the value and the allowed range."""

    def __init__(self, field: str, value, allowed: str):
        self.field, self.value, self.allowed = field, value, allowed
        super().__init__(f"{field}: {value!r} is not allowed; allowed: {allowed}")


@dataclass(frozen=True)
class Differing:
    """The first thing a check found other than expected, in four words: where (a link, a DUT), what (a packet
    field as "IPv6:2.hlim", a counter as "gre1.rx_fifo_errors", "frames"), the value expected and the one seen."""

    where: str
    field: str
    expected: str
    got: str

    def __str__(self) -> str:
        return f"{self.where}: {self.field} expected {self.expected}, got {self.got}"

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


class Mismatch(AssertionError):
    """A check saw something other than it expected: the message is for the person reading the red test,
    `differing` the first differing field, for what records results (grelab matrix's cell names it)."""

    def __init__(self, message: str, differing: Differing):
        super().__init__(message)
        self.differing = differing


def check_range(field: str, value, low: int, high: int) -> int:
    """Return value as an int if low <= value <= high, else raise InputError naming the field."""
    if isinstance(value, bool) or not isinstance(value, int):
        try:
            if isinstance(value, bool):
                raise TypeError
            value = int(value, 0) if isinstance(value, str) else int(value)
        except (TypeError, ValueError):
            raise InputError(field, value, f"an integer from {low} to {high}") from None
    if not low <= value <= high:
        raise InputError(field, value, f"an integer from {low} to {high}")
    return value


def check_choice(field: str, value, choices) -> str:
    """Return value if it is one of choices, else raise InputError listing them."""
    if value not in choices:
        raise InputError(field, value, "one of " + ", ".join(map(str, choices)))
    return value


class MalformedPacket(GrelabError):
    """Bytes that are not a whole packet of the layer expected there: names the layer, the byte offset (from
    the start of the bytes given) and the field that does not fit or is not allowed."""

    def __init__(self, layer: str, offset: int, field: str, why: str = "truncated"):
        self.layer, self.offset, self.field, self.why = layer, offset, field, why
        super().__init__(f"malformed {layer} at offset {offset}: {field}: {why}")


def check_int(field: str, value, low: int, high: int) -> int:
    """For API arguments: value must already be an int (not a string to parse) with low <= value <= high."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(field, value, f"an int from {low} to {high}")
    return check_range(field, value, low, high)


def one_line(text: str) -> str:
    """A message of several lines (a list of reasons) as one line, for command lines and usage errors."""
    parts = [part.strip() for part in str(text).splitlines() if part.strip()]
    out = parts[0] if parts else ""
    for part in parts[1:]:
        out += (" " if out.endswith(":") else "; ") + part
    return out


def option_number(low: float, high: float, integer: bool = False):
    """An argparse `type` for a number from low to high: a bad value is one line naming what is allowed."""
    import argparse

    def parse(text: str):
        try:
            value = int(text) if integer else float(text)
        except ValueError:
            value = None
        if value is None or not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text!r} is not allowed; allowed: "
                                             f"{'an integer' if integer else 'a number'} from {low} to {high}")
        return value
    return parse
