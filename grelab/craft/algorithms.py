"""grelab's ESP algorithms as ONE table: an algorithm is a row, not code spread over modules (as scapy's CRYPT_ALGOS).

A row names a transform everywhere it has to be named: grelab (the command line), scapy (SecurityAssociation's
crypt_algo/auth_algo and ICV size), the fast path (`cryptography` objects, grelab.craft.fast), the kernel
(`ip xfrm state add`: `aead NAME KEY ICVBITS`, or `enc NAME KEY` + `auth-trunc NAME KEY TRUNCBITS`) and Wireshark
(its esp_sa table; None where Wireshark 4.0 has no such algorithm).

Names: a combined-mode cipher (AEAD, RFC 4303 3.2.3) alone, its ICV length when not 16 bytes: "gcm128",
"gcm256-icv8", "ccm128-icv12", "gmac128", "chacha20-poly1305"; any other cipher with any integrity algorithm:
"<cipher>-<integrity>", "cbc128-sha256", "3des-sha1", "null-cmac"; or with none: confidentiality-only ESP (RFC 4303
3.2 allows it; Linux's `ip xfrm state` takes `enc` alone), "cbc128-none", "3des-none", "ctr256-none" (NULL encryption
needs integrity: there is no "null-none").

Keys users bring sometimes have no integrity key, only the ICV's length (tcpdump's "3des-cbc-hmac96" secrets,
Wireshark's "ANY 96 bit authentication [no checking]"): DECRYPT_ONLY holds those as "<cipher>-any<bits>",
"3des-any96": grelab opens their ESP with the ICV skipped and says so; it never crafts with them, and no DUT takes them.

AES comes with 128- and 256-bit keys (192 would add rows, not code paths). Not here: AES-XCBC-MAC-96 (RFC 3566):
neither scapy nor `cryptography` has XCBC, and a MAC built here from AES blocks would be a hand-rolled primitive.
AES-CMAC-96 (RFC 4494) stands for the AES-based MAC instead.
"""
from __future__ import annotations

import functools
import hmac
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher as _Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESCCM, AESGCM, ChaCha20Poly1305
from cryptography.hazmat.primitives.cmac import CMAC
from scapy.layers.ipsec import AuthAlgo, CryptAlgo

from grelab.errors import InputError

# The fast path's shape of a cipher: key -> seal(iv, plaintext, aad) -> ciphertext (|| tag, for a combined mode).
Seal = Callable[[bytes, bytes, bytes], bytes]
# ... and of an integrity algorithm: key -> mac(data) -> the whole MAC (the row truncates it).
Mac = Callable[[bytes], bytes]


def _cbc(cipher: type) -> Callable[[bytes], Seal]:
    def make(key: bytes) -> Seal:
        def seal(iv: bytes, data: bytes, aad: bytes) -> bytes:
            encryptor = _Cipher(cipher(key), modes.CBC(iv)).encryptor()
            return encryptor.update(data) + encryptor.finalize()
        return seal
    return make


def _counter_mode(aes, first_block: bytes, data: bytes) -> bytes:
    encryptor = _Cipher(aes, modes.CTR(first_block)).encryptor()
    return encryptor.update(data) + encryptor.finalize()


def _ctr(key: bytes) -> Seal:
    aes, nonce = algorithms.AES(key[:-4]), key[-4:]  # RFC 3686 5.1: the key's last 4 bytes are the nonce
    # RFC 3686 4: counter block = nonce || IV || 1
    return lambda iv, data, aad: _counter_mode(aes, nonce + iv + b"\0\0\0\1", data)


def _gcm(icv: int) -> Callable[[bytes], Seal]:
    def make(key: bytes) -> Seal:
        aead, salt, cut = AESGCM(key[:-4]), key[-4:], 16 - icv  # RFC 4106 8.1: key || 4-byte salt
        if not cut:
            return lambda iv, data, aad: aead.encrypt(salt + iv, data, aad)
        # A short GCM tag is the full tag's leading bytes (NIST SP 800-38D 5.2.1.2).
        return lambda iv, data, aad: aead.encrypt(salt + iv, data, aad)[:-cut]
    return make


def _ccm(icv: int) -> Callable[[bytes], Seal]:
    def make(key: bytes) -> Seal:
        aead, salt = AESCCM(key[:-3], tag_length=icv), key[-3:]  # RFC 4309 7.1: key || 3-byte salt
        return lambda iv, data, aad: aead.encrypt(salt + iv, data, aad)
    return make


def _gmac(key: bytes) -> Seal:
    aead, salt = AESGCM(key[:-4]), key[-4:]
    # RFC 4543 3.2/5: nothing is encrypted; the tag covers SPI, sequence number, IV and the payload as AAD.
    return lambda iv, data, aad: data + aead.encrypt(salt + iv, b"", aad + iv + data)


def _chacha20_poly1305(key: bytes) -> Seal:
    aead, salt = ChaCha20Poly1305(key[:-4]), key[-4:]  # RFC 7634 2: 256-bit key || 4-byte salt
    return lambda iv, data, aad: aead.encrypt(salt + iv, data, aad)


# Combined modes opened without checking their tag (decrypt(verify=False)): key -> open(iv, ciphertext) -> plaintext.
Open = Callable[[bytes, bytes], bytes]


def _gcm_unverified(key: bytes) -> Open:
    aes, salt = algorithms.AES(key[:-4]), key[-4:]
    # NIST SP 800-38D 7.2: the plaintext is the counter mode from inc32(J0), J0 = salt || IV || 1.
    return lambda iv, data: _counter_mode(aes, salt + iv + b"\0\0\0\2", data)


def _ccm_unverified(key: bytes) -> Open:
    aes, salt = algorithms.AES(key[:-3]), key[-3:]
    # RFC 3610 2.3: counter blocks are flags (L-1 = 3 beside an 11-byte nonce) || nonce || i, from i = 1.
    return lambda iv, data: _counter_mode(aes, b"\x03" + salt + iv + b"\0\0\0\1", data)


def _chacha20_unverified(key: bytes) -> Open:
    chacha, salt = key[:-4], key[-4:]
    # RFC 8439 2.8: the payload is ChaCha20 from block counter 1 (`cryptography` takes a 4-byte little-endian
    # counter before the 12-byte nonce).
    return lambda iv, data: _Cipher(algorithms.ChaCha20(chacha, b"\1\0\0\0" + salt + iv), None).decryptor().update(data)


def _gmac_unverified(key: bytes) -> Open:
    return lambda iv, data: data  # GMAC encrypts nothing


def _null(key: bytes) -> Seal:
    return lambda iv, data, aad: data


def _hmac(digest: str) -> Callable[[bytes], Mac]:
    # The standard library's hmac.digest is OpenSSL's HMAC in one C call: faster per packet than an HMAC object.
    return lambda key: functools.partial(hmac.digest, key, digest=digest)


def _cmac(key: bytes) -> Mac:
    aes = algorithms.AES(key)

    def mac(data: bytes) -> bytes:
        c = CMAC(aes)
        c.update(data)
        return c.finalize()
    return mac


# scapy's AES-GCM (the AESGCM API) always appends the whole 16-byte tag, whatever crypt_icv_size says. The same
# CryptAlgo on the Cipher API's GCM mode truncates the tag on encryption and verifies a short one on decryption.
SCAPY_GCM_SHORT_ICV = CryptAlgo("AES-GCM", cipher=algorithms.AES, mode=modes.GCM, block_size=1, iv_size=8,
                                salt_size=4, icv_size=16, format_mode_iv=lambda sa, iv, **kw: sa.crypt_salt + iv)


@dataclass(frozen=True)
class Cipher:
    """An encryption transform. A combined mode (icv_len > 0) authenticates itself and takes no integrity row."""
    name: str
    scapy: str  # scapy's CRYPT_ALGOS name
    key_len: int  # bytes, including the salt or nonce the key ends with
    iv_len: int
    block: int  # padding aligns the encrypted part to max(block, 4) (RFC 4303 2.4)
    icv_len: int  # the combined mode's tag; 0 for a cipher that needs an integrity algorithm
    xfrm: str  # the kernel's name, for `ip xfrm state add ... aead|enc NAME`
    wireshark: str | None  # Wireshark's esp_sa name; None: Wireshark 4.0 cannot decrypt it
    seal: Callable[[bytes], Seal]  # the fast path
    scapy_algo: CryptAlgo | None = None  # replaces CRYPT_ALGOS[scapy] where that cannot do this row
    unverified: Callable[[bytes], Open] | None = None  # a combined mode's decryption without its tag check
    tcpdump: tuple[str, ...] = ()  # its names in tcpdump's espsecret (-E), "-cbc" and all


@dataclass(frozen=True)
class Integrity:
    """An integrity transform for a cipher that is not a combined mode: a MAC truncated to icv_len. "none" has no
    ICV (confidentiality only); an "any<bits>" row has an ICV of that length nobody can check (its key unknown)."""
    name: str
    scapy: str  # scapy's AUTH_ALGOS name
    key_len: int
    icv_len: int
    xfrm: str | None  # for `ip xfrm state add ... auth-trunc NAME KEY BITS`; None: no auth words (none), no state
    wireshark: str | None  # None: Wireshark 4.0 cannot check it (it still decrypts, with "ANY n bit")
    mac: Callable[[bytes], Mac] | None  # the fast path: the whole MAC, truncated by the caller; None: no MAC here
    scapy_algo: AuthAlgo | None = None  # replaces AUTH_ALGOS[scapy] where that cannot do this row


CIPHERS = [
    # name, scapy, key bytes, IV bytes, block, ICV bytes, kernel, Wireshark, fast path
    Cipher("null", "NULL", 0, 0, 1, 0, "ecb(cipher_null)", "NULL", _null, tcpdump=("none",)),
    Cipher("cbc128", "AES-CBC", 16, 16, 16, 0, "cbc(aes)", "AES-CBC [RFC3602]", _cbc(algorithms.AES),
           tcpdump=("aes128-cbc", "aes-128-cbc")),
    Cipher("cbc256", "AES-CBC", 32, 16, 16, 0, "cbc(aes)", "AES-CBC [RFC3602]", _cbc(algorithms.AES),
           tcpdump=("aes256-cbc", "aes-256-cbc")),
    Cipher("3des", "3DES", 24, 8, 8, 0, "cbc(des3_ede)", "TripleDES-CBC [RFC2451]", _cbc(TripleDES),
           tcpdump=("3des-cbc", "des-ede3-cbc")),
    Cipher("ctr128", "AES-CTR", 16 + 4, 8, 1, 0, "rfc3686(ctr(aes))", "AES-CTR [RFC3686]", _ctr),
    Cipher("ctr256", "AES-CTR", 32 + 4, 8, 1, 0, "rfc3686(ctr(aes))", "AES-CTR [RFC3686]", _ctr),
]
COMBINED = [
    *(Cipher(f"gcm{bits}" + (f"-icv{icv}" if icv != 16 else ""), "AES-GCM", bits // 8 + 4, 8, 1, icv,
             "rfc4106(gcm(aes))", f"AES-GCM with {icv} octet ICV [RFC4106]", _gcm(icv),
             scapy_algo=None if icv == 16 else SCAPY_GCM_SHORT_ICV, unverified=_gcm_unverified)
      for bits in (128, 256) for icv in (16, 8, 12)),
    *(Cipher(f"ccm{bits}" + (f"-icv{icv}" if icv != 16 else ""), "AES-CCM", bits // 8 + 3, 8, 1, icv,
             "rfc4309(ccm(aes))", None, _ccm(icv), unverified=_ccm_unverified)
      for bits in (128, 256) for icv in (16, 8, 12)),
    Cipher("gmac128", "AES-NULL-GMAC", 16 + 4, 8, 1, 16, "rfc4543(gcm(aes))", None, _gmac,
           unverified=_gmac_unverified),
    Cipher("gmac256", "AES-NULL-GMAC", 32 + 4, 8, 1, 16, "rfc4543(gcm(aes))", None, _gmac,
           unverified=_gmac_unverified),
    Cipher("chacha20-poly1305", "CHACHA20-POLY1305", 32 + 4, 8, 1, 16, "rfc7539esp(chacha20,poly1305)", None,
           _chacha20_poly1305, unverified=_chacha20_unverified),
]
INTEGRITIES = [
    # name, scapy, key bytes, ICV bytes, kernel, Wireshark, fast path
    Integrity("sha1", "HMAC-SHA1-96", 20, 12, "hmac(sha1)", "HMAC-SHA-1-96 [RFC2404]", _hmac("sha1")),
    Integrity("md5", "HMAC-MD5-96", 16, 12, "hmac(md5)", "HMAC-MD5-96 [RFC2403]", _hmac("md5")),
    Integrity("sha256", "SHA2-256-128", 32, 16, "hmac(sha256)", "HMAC-SHA-256-128 [RFC4868]", _hmac("sha256")),
    Integrity("sha384", "SHA2-384-192", 48, 24, "hmac(sha384)", "HMAC-SHA-384-192 [RFC4868]", _hmac("sha384")),
    Integrity("sha512", "SHA2-512-256", 64, 32, "hmac(sha512)", "HMAC-SHA-512-256 [RFC4868]", _hmac("sha512")),
    Integrity("cmac", "AES-CMAC-96", 16, 12, "cmac(aes)", None, _cmac),
    NO_INTEGRITY := Integrity("none", "NULL", 0, 0, None, "NULL", None),  # confidentiality only: `enc` alone
]
# An ICV of this many bits whose algorithm and key are unknown: skipped, never checked (Wireshark's "ANY n bit").
UNCHECKED = [Integrity(f"any{bits}", "NULL", 0, bits // 8, None, f"ANY {bits} bit authentication [no checking]",
                       None, AuthAlgo(f"ANY-{bits}", mac=None, digestmod=None, icv_size=bits // 8))
             for bits in (64, 96, 128, 192, 256)]


@dataclass(frozen=True)
class Algorithm:
    """One ESP transform: a combined-mode cipher alone, or a cipher (maybe NULL) with an integrity algorithm."""
    name: str  # grelab's name, as on the command line
    cipher: Cipher
    integrity: Integrity | None

    @property
    def key_len(self) -> int:
        return self.cipher.key_len

    @property
    def auth_key_len(self) -> int:  # 0 when the cipher authenticates itself
        return self.integrity.key_len if self.integrity else 0

    @property
    def iv_len(self) -> int:
        return self.cipher.iv_len

    @property
    def block(self) -> int:
        return self.cipher.block

    @property
    def icv_len(self) -> int:
        return self.integrity.icv_len if self.integrity else self.cipher.icv_len

    @property
    def scapy_crypt(self) -> str:
        return self.cipher.scapy

    @property
    def scapy_auth(self) -> str | None:
        return self.integrity.scapy if self.integrity else None

    @property
    def wireshark_crypt(self) -> str | None:
        return self.cipher.wireshark

    @property
    def checks_icv(self) -> bool:
        """Whether opening this ESP verifies an ICV: False with no ICV (confidentiality only) or an unchecked one."""
        return self.integrity is None or self.integrity.mac is not None

    @property
    def wireshark_auth(self) -> str | None:
        if self.integrity is None:
            return "NULL"  # a combined mode checks its own tag
        return self.integrity.wireshark


ALGORITHMS = {a.name: a for a in (
    *(Algorithm(c.name, c, None) for c in COMBINED),
    *(Algorithm(f"{c.name}-{i.name}", c, i) for c in CIPHERS for i in INTEGRITIES if (c.name, i.name) != ("null", "none")),
)}
# Keys without their integrity key (tcpdump's "-hmac96", Wireshark's "ANY 96 bit"): for opening ESP only.
# NULL encryption without integrity (RFC 4303 forbids it; test set-ups and Wireshark's esp_sa have it) likewise.
DECRYPT_ONLY = {a.name: a for a in (*(Algorithm(f"{c.name}-{i.name}", c, i) for c in CIPHERS for i in UNCHECKED),
                                    Algorithm("null-none", CIPHERS[0], NO_INTEGRITY))}


def names_summary() -> str:
    """Every name, compactly (for --help): the combined modes, then how the others are made."""
    short_icv = sorted({c.name.split("-icv")[0] for c in COMBINED if "-icv" in c.name})
    return (", ".join(c.name for c in COMBINED if "-icv" not in c.name) +
            f" ({', '.join(short_icv)} also with -icv8, -icv12); or CIPHER-INTEGRITY: CIPHER one of " +
            ", ".join(c.name for c in CIPHERS) + "; INTEGRITY one of " + ", ".join(i.name for i in INTEGRITIES) +
            " (none: confidentiality only, not with null)")


def xfrm_algorithm_words(sa) -> list[str]:
    """The algorithm part of `ip xfrm state add` for a grelab SA: keys in hex, ICV lengths in bits.
    ["aead", "rfc4106(gcm(aes))", "0x…", "128"] or ["enc", "cbc(aes)", "0x…", "auth-trunc", "hmac(sha256)", "0x…",
    "128"]. NULL encryption's key is the empty word "" (quote it in a batch line)."""
    algo = sa.algo
    if sa.algorithm not in ALGORITHMS:
        raise InputError("ESP algorithm", sa.algorithm, "one of grelab craft --help's: this one's ICV cannot be made "
                         "without its integrity key (it opens captured ESP only)")
    key = "0x" + sa.key.hex() if sa.key else ""
    if algo.integrity is None:
        return ["aead", algo.cipher.xfrm, key, str(algo.icv_len * 8)]
    if algo.integrity.xfrm is None:  # confidentiality only: no auth words at all
        return ["enc", algo.cipher.xfrm, key]
    return ["enc", algo.cipher.xfrm, key,
            "auth-trunc", algo.integrity.xfrm, "0x" + sa.auth_key.hex(), str(algo.icv_len * 8)]


def xfrm_esn_words(sa, seq_hi: int = 0) -> list[str]:
    """The ESN part of `ip xfrm state add` (RFC 4303 2.2.1), empty without ESN: the flag, and the high-order 32
    bits of the sequence numbers the state starts from, both ways (a state either sends or receives). The kernel
    needs a replay window with ESN: `replay-window N` with N > 0 goes in the command too."""
    if not sa.esn:
        return []
    return ["flag", "esn", "replay-seq-hi", str(seq_hi), "replay-oseq-hi", str(seq_hi)]
