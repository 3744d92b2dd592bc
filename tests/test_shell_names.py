"""`grelab shell` keeps scapy's names: in the running shell, every name of scapy's own interactive namespace
(scapy.main.init_session: scapy.all's names and the extensions' it adds) is bound to the very object scapy binds,
so IP()/GRE()/IPv6() is scapy's packet; grelab's additions have names of their own (PLAIN_GRE for the variant)."""
import builtins
import re

import pytest

from cli_user import grelab
from grelab.cli.shell import banner, preloaded

# Typed into the shell: scapy's own namespace made again, then compared with the shell's, object by object.
CHECK = """\
import scapy.main
scapys = scapy.main.init_session(None, ret=True)
print("REBOUND", sorted(k for k, v in scapys.items() if k != "_scpybuiltins" and globals().get(k) is not v))
print("HAS", len(scapys), sorted(k for k in globals() if k not in scapys))
print("PACKET", (IP()/GRE()/IPv6()/ICMPv6EchoRequest()).summary())
print("VARIANT", PLAIN_GRE.id, IN_ESP.id, in_esp("gcm256").id)
"""


def shown(text: str, key: str) -> str:
    """The line the shell printed for `key` (colours stripped)."""
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)
    match = re.search(rf"^(?:>>> |In \[\d+\]: )*{key} (.*)$", text, re.M)
    assert match, f"no {key} line in:\n{text[-3000:]}"
    return match.group(1)


@pytest.mark.parametrize("shell", ["plain", "ipython"])
def test_the_running_shell_rebinds_no_name_of_scapys(shell, tmp_path):
    if shell == "ipython":
        pytest.importorskip("IPython")
    done = grelab("shell", *(["--plain"] if shell == "plain" else []), input=CHECK, cwd=tmp_path,
                  env={"HOME": str(tmp_path), "DISPLAY": ""})
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stdout + done.stderr, done.stdout + done.stderr
    assert shown(done.stdout, "REBOUND") == "[]"
    size, added = shown(done.stdout, "HAS").split(" ", 1)
    assert int(size) > 1000  # scapy's whole namespace was there to compare with
    for name in preloaded():  # each one there, and not one of scapy's names
        assert repr(name) in added, f"{name} is not in the shell as grelab's own"
    assert shown(done.stdout, "PACKET") == "IP / GRE / IPv6 / ICMPv6 Echo Request (id: 0x0 seq: 0x0)"
    assert shown(done.stdout, "VARIANT") == "gre gre-in-esp gre-in-esp-gcm256"


def test_no_builtin_rebound_and_the_banner_names_the_variants():
    names = preloaded()
    assert not set(names) & set(dir(builtins)), set(names) & set(dir(builtins))
    text = banner(names)
    assert "variants PLAIN_GRE IN_ESP in_esp" in text and "IP()/GRE()/IPv6()" in text
