"""Crafting GRE and GRE-over-IPsec packets: pure code, no sockets.

    from grelab.craft import gre, passenger, keepalive, SA, encrypt, decrypt, peel, Stream, FastESP, Stack
    from grelab.craft import read_keys, parse_keys, open_esp     # keys users bring; ESP opened, mode from the packet

gre.py builds (scapy), esp.py protects and opens (scapy's SecurityAssociation; esp_diagnosis.py says why ESP does not
open), fast.py builds streams without scapy per packet, peel.py takes captured bytes apart, overhead.py does MTU/MSS
arithmetic, esp_sa.py writes Wireshark's keys, keys.py reads keys in the forms users have them (Wireshark, tcpdump,
`ip xfrm state`).
"""
from grelab.craft.esp import ALGORITHMS, SA, IntegrityError, decrypt, encrypt, open_esp
from grelab.craft.esp_sa import esp_sa_row, esp_sa_text, tshark_options
from grelab.craft.fast import FastESP, Stream
from grelab.craft.gre import gre, gre_header, keepalive, passenger
from grelab.craft.keys import Keys, parse_keys, read_keys
from grelab.craft.overhead import Stack, fragments, packets_for
from grelab.craft.peel import Peeled, peel

__all__ = ["ALGORITHMS", "SA", "IntegrityError", "decrypt", "encrypt", "open_esp", "Keys", "parse_keys", "read_keys",
           "esp_sa_row", "esp_sa_text",
           "tshark_options", "FastESP", "Stream", "gre", "gre_header", "keepalive", "passenger", "Stack",
           "fragments", "packets_for", "Peeled", "peel"]
