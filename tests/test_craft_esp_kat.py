"""Known answers: the primitives of grelab's algorithm table against published test vectors, through the table's
own rows (the fast path's seal and MAC, which tests/test_craft_fast.py holds byte-identical to scapy's path).

The vectors are typed in from the documents cited beside them. Where the document's nonce does not fit ESP's
salt || IV layout (RFC 3610's 13-byte CCM nonces), the `cryptography` object the row uses is checked directly,
and the ESP framing around it by the kernel round trip (tests/test_dut_esp_algorithms.py) and Wireshark.
"""
import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESCCM

from grelab.craft.algorithms import ALGORITHMS, COMBINED, INTEGRITIES

CIPHER = {c.name: c for c in COMBINED} | {a.cipher.name: a.cipher for a in ALGORITHMS.values()}
INTEGRITY = {i.name: i for i in INTEGRITIES}
h = bytes.fromhex


def seal(cipher: str, key: bytes, iv: bytes, plaintext: bytes, aad: bytes = b"") -> bytes:
    return CIPHER[cipher].seal(key)(iv, plaintext, aad)


@pytest.mark.parametrize("cipher, key, iv, plaintext, ciphertext", [
    # RFC 3602 section 4, Case #1: one block, 128-bit key.
    ("cbc128", h("06a9214036b8a15b512e03d534120006"), h("3dafba429d9eb430b422da802c9fac41"), b"Single block msg",
     h("e353779c1079aeb82708942dbe77181a")),
    # RFC 3602 section 4, Case #2: two blocks, 128-bit key.
    ("cbc128", h("c286696d887c9aa0611bbb3e2025a45a"), h("562e17996d093d28ddb3ba695a2e6f58"), bytes(range(32)),
     h("d296cd94c2cccf8a3a863028b5e1dc0a7586602d253cfff91b8266bea6d61ab1")),
    # RFC 3686 section 6, Test Vector #1: the key is the AES key || the 4-byte nonce (00000030).
    ("ctr128", h("ae6852f8121067cc4bf7a5765577f39e" "00000030"), h("0000000000000000"), b"Single block msg",
     h("e4095d4fb7a7b3792d6175a3261311b8")),
    # RFC 3686 section 6, Test Vector #2 (nonce 006cb6db).
    ("ctr128", h("7e24067817fae0d743d6ce1f32539163" "006cb6db"), h("c0543b59da48d90b"), bytes(range(32)),
     h("5104a106168a72d9790d41ee8edad388eb2e1efc46da57c8fce630df9141be28")),
    # 3DES: RFC 2451 gives no vectors. NIST SP 800-20 Appendix A, Table A.1 (variable plaintext known answer
    # test, key 01..01 three times, so TDEA reduces to DES): one block with a zero IV is that block's ECB value.
    ("3des", bytes([1]) * 24, bytes(8), h("8000000000000000"), h("95f8a5e5dd31d900")),
    ("3des", bytes([1]) * 24, bytes(8), h("4000000000000000"), h("dd7f121ca5015619")),
    ("3des", bytes([1]) * 24, bytes(8), h("2000000000000000"), h("2e8653104f3834ea")),
])
def test_ciphers_match_the_published_vectors(cipher, key, iv, plaintext, ciphertext):
    assert seal(cipher, key, iv, plaintext) == ciphertext


# The GCM specification (McGrew and Viega, "The Galois/Counter Mode of Operation", appendix B), Test Case 3:
# 128-bit key, 96-bit IV = the ESP salt (cafebabe) || the ESP IV, no AAD. RFC 4106 has no vectors of its own.
GCM_KEY, GCM_SALT, GCM_IV = h("feffe9928665731c6d6a8f9467308308"), h("cafebabe"), h("facedbaddecaf888")
GCM_PLAINTEXT = h("d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
                  "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255")
GCM_CIPHERTEXT = h("42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e"
                   "21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091473f5985")
GCM_TAG = h("4d5c2af327cd64a62cf35abd2ba6fab4")


@pytest.mark.parametrize("cipher, icv", [("gcm128", 16), ("gcm128-icv12", 12), ("gcm128-icv8", 8)])
def test_gcm_matches_the_gcm_spec_with_every_icv_length(cipher, icv):
    # RFC 4106 section 6: an 8- or 12-byte ICV is the leading bytes of the 16-byte tag.
    assert seal(cipher, GCM_KEY + GCM_SALT, GCM_IV, GCM_PLAINTEXT) == GCM_CIPHERTEXT + GCM_TAG[:icv]


def test_gcm_opened_without_its_tag_is_the_plaintext():
    assert CIPHER["gcm128"].unverified(GCM_KEY + GCM_SALT)(GCM_IV, GCM_CIPHERTEXT) == GCM_PLAINTEXT


def test_gmac_is_gcm_of_nothing_over_everything():
    """RFC 4543 has no vectors: GMAC is GCM with no plaintext, the payload joining the AAD after SPI, sequence
    number and IV (RFC 4543 3.2, 5). The GCM tag it rests on is checked above; here, that the payload stays
    in clear and the tag is that GCM tag."""
    aad, payload = h("0000010200000003"), b"GRE in ESP, in clear"
    sealed = seal("gmac128", GCM_KEY + GCM_SALT, GCM_IV, payload, aad)
    assert sealed[:-16] == payload
    assert sealed[-16:] == seal("gcm128", GCM_KEY + GCM_SALT, GCM_IV, b"", aad + GCM_IV + payload)


# RFC 8439 section 2.8.2: the AEAD_CHACHA20_POLY1305 example. Its 12-byte nonce is ESP's salt (07000000) || IV
# (RFC 7634 section 2).
CHACHA_KEY = bytes(range(0x80, 0xA0))
CHACHA_SALT, CHACHA_IV, CHACHA_AAD = h("07000000"), h("4041424344454647"), h("50515253c0c1c2c3c4c5c6c7")
CHACHA_PLAINTEXT = (b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, "
                    b"sunscreen would be it.")
CHACHA_CIPHERTEXT = h("d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d63dbea45e8ca9671282fafb69da92728b"
                      "1a71de0a9e060b2905d6a5b67ecd3b3692ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc"
                      "3ff4def08e4b7a9de576d26586cec64b6116")
CHACHA_TAG = h("1ae10b594f09e26a7e902ecbd0600691")


def test_chacha20_poly1305_matches_rfc_8439():
    sealed = seal("chacha20-poly1305", CHACHA_KEY + CHACHA_SALT, CHACHA_IV, CHACHA_PLAINTEXT, CHACHA_AAD)
    assert sealed == CHACHA_CIPHERTEXT + CHACHA_TAG
    opened = CIPHER["chacha20-poly1305"].unverified(CHACHA_KEY + CHACHA_SALT)(CHACHA_IV, CHACHA_CIPHERTEXT)
    assert opened == CHACHA_PLAINTEXT


@pytest.mark.parametrize("tag_length", [8, 12, 16])
def test_ccm_primitive_matches_rfc_3610(tag_length):
    """RFC 3610 section 8, Packet Vector #1 (13-byte nonce, 8-byte MAC): the AESCCM object the ccm rows use.
    Its CTR part is checked against the rows' own unverified opening (ESP's 11-byte nonce: flags 3)."""
    key, nonce = h("c0c1c2c3c4c5c6c7c8c9cacbcccdcecf"), h("00000003020100a0a1a2a3a4a5")
    aad, plaintext = h("0001020304050607"), h("08090a0b0c0d0e0f101112131415161718191a1b1c1d1e")
    if tag_length == 8:
        assert AESCCM(key, tag_length=8).encrypt(nonce, plaintext, aad) == \
            h("588c979a61c663d2f066d0c2c0f989806d5f6b61dac384") + h("17e8d12cfdf926e0")
    esp_key, iv = key + h("a0a1a2"), h("a3a4a5a6a7a8a9aa")  # an ESP nonce: 3-byte salt || 8-byte IV
    sealed = seal(f"ccm128-icv{tag_length}" if tag_length != 16 else "ccm128", esp_key, iv, plaintext, aad)
    assert sealed == AESCCM(key, tag_length=tag_length).encrypt(h("a0a1a2") + iv, plaintext, aad)
    assert CIPHER["ccm128"].unverified(esp_key)(iv, sealed[:-tag_length]) == plaintext


@pytest.mark.parametrize("integrity, key, data, mac", [
    # RFC 2202 section 2, test_case 2 (HMAC-MD5) and section 3, test_case 2 (HMAC-SHA-1).
    ("md5", b"Jefe", b"what do ya want for nothing?", h("750c783e6ab0b503eaa86e310a5db738")),
    ("sha1", b"Jefe", b"what do ya want for nothing?", h("effcdf6ae5eb2fa2d27416d5f184df9c259a7c79")),
    # RFC 4231 section 4.3, Test Case 2.
    ("sha256", b"Jefe", b"what do ya want for nothing?",
     h("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")),
    ("sha384", b"Jefe", b"what do ya want for nothing?",
     h("af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e8e2240ca5e69e2c78b3239ecfab21649")),
    ("sha512", b"Jefe", b"what do ya want for nothing?",
     h("164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea2505549758bf75c05a994a6d034f65f8f0e6fd"
       "caeab1a34d4a6b4b636e070a38bce737")),
    # RFC 4493 section 4, Examples 1 and 2 (AES-CMAC; RFC 4494's AES-CMAC-96 is its first 96 bits).
    ("cmac", h("2b7e151628aed2a6abf7158809cf4f3c"), b"", h("bb1d6929e95937287fa37d129b756746")),
    ("cmac", h("2b7e151628aed2a6abf7158809cf4f3c"), h("6bc1bee22e409f96e93d7e117393172a"),
     h("070a16b46b4d4144f79bdd9dd04a287c")),
])
def test_integrity_matches_the_rfc_vectors(integrity, key, data, mac):
    row = INTEGRITY[integrity]
    assert row.mac(key)(data) == mac
    # What goes on the wire: RFC 2403/2404 and RFC 4494 truncate to 96 bits, RFC 4868 to half the hash.
    assert row.mac(key)(data)[:row.icv_len] == mac[:{"md5": 12, "sha1": 12, "cmac": 12}.get(integrity, len(mac) // 2)]
