"""Values a plan's items hold, checked as they are made: interface names, addresses, prefixes, numbers that may be
"inherit". Each raises InputError naming the field, the value and what is allowed."""
from __future__ import annotations

import ipaddress
import re

from grelab.errors import InputError, check_range

IFNAME_RE = re.compile(r"[A-Za-z0-9_.-]{1,15}")  # the kernel's IFNAMSIZ, and nothing a shell would read


def interface_name(field_name: str, value) -> str:
    if not isinstance(value, str) or not IFNAME_RE.fullmatch(value):
        raise InputError(field_name, value, "an interface name of 1-15 letters, digits, '_', '.', '-'")
    return value


def address(field_name: str, value, prefix: bool = False) -> str:
    try:
        parsed = ipaddress.ip_interface(value) if prefix else ipaddress.ip_address(value)
    except (ValueError, TypeError):
        raise InputError(field_name, value, "an IPv4 or IPv6 address" + (" with /prefix" if prefix else "")) from None
    if prefix and "/" not in str(value):
        raise InputError(field_name, value, "an address with its /prefix length, e.g. 192.0.2.1/24")
    return str(parsed)


def network(field_name: str, value) -> str:
    if value in ("default", "default6"):
        return value
    try:
        return str(ipaddress.ip_network(value, strict=False))
    except (ValueError, TypeError):
        raise InputError(field_name, value, "a prefix such as 2001:db8:2::/64, default or default6") from None


def family(value: str) -> int:
    if value == "default":
        return 4
    if value == "default6":
        return 6
    return ipaddress.ip_network(value, strict=False).version if "/" in value else ipaddress.ip_address(value).version


def number_or_inherit(field_name: str, value, high: int):
    if value is None or value == "inherit":
        return value
    return check_range(field_name, value, 0, high)
