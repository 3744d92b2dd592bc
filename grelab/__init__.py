"""grelab: craft, send, capture and assert on GRE and GRE-over-IPsec packets against a real tunnel endpoint.

The packages follow the path a packet takes: craft -> lab -> dut -> capture -> expect -> golden.
"""
from grelab.errors import GrelabError, InputError

__version__ = "0.1.0"
__all__ = ["GrelabError", "InputError", "__version__"]
