#!/usr/bin/env python3
"""Independent check of SMT's TLS 1.3 record test vectors.

Reads docs/test-vectors/records.json (or the path given as the only argument) and,
without using any SMT code, for every vector:

* re-derives the traffic key and IV with TLS 1.3's HKDF-Expand-Label (RFC 8446 7.1,
  written here on top of hmac/hashlib) from the fixed traffic secret
  Hash("SMT record test vectors " || cipher suite name), and compares them;
* parses the record header (RFC 8446 5.1/5.2): outer type 0x17, legacy version
  0x0303, length equal to the bytes that follow and within the TLS 1.3 limits;
* builds the nonce (RFC 8446 5.3): IV XOR the 64-bit sequence number
  message_id << 16 | record_index, left-padded with zeros to 12 bytes;
* decrypts with the 5-byte header as additional data, strips the zero padding,
  takes the last non-zero byte as the content type (RFC 8446 5.4), and compares
  content, content type and padding length with the vector;
* re-encrypts the inner plaintext and compares with the record byte for byte, and
  checks that decrypting under the next record index or next message ID fails.

HKDF-Expand-Label itself is first checked against RFC 8448 section 3.

Needs the `cryptography` package (Debian: python3-cryptography). Prints
"N vectors verified" and exits 0, or reports every mismatch and exits 1.
"""

import hashlib
import hmac
import json
import sys
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

# name -> (AEAD class, key length, hash)
SUITES = {
    "TLS_AES_128_GCM_SHA256": (AESGCM, 16, hashlib.sha256),
    "TLS_AES_256_GCM_SHA384": (AESGCM, 32, hashlib.sha384),
    "TLS_CHACHA20_POLY1305_SHA256": (ChaCha20Poly1305, 32, hashlib.sha256),
}
SECRET_PREFIX = b"SMT record test vectors "
IV_LEN = 12
TAG_LEN = 16
HEADER_LEN = 5
MAX_PLAINTEXT = 1 << 14  # TLSInnerPlaintext may be at most 2^14 + 1 bytes
MAX_CIPHERTEXT = (1 << 14) + 256
MESSAGE_ID_BITS = 48
RECORD_INDEX_BITS = 16
DEFAULT_PATH = Path(__file__).resolve().parent.parent / "docs" / "test-vectors" / "records.json"


def hkdf_expand(hash_fn, prk: bytes, info: bytes, length: int) -> bytes:
    """HKDF-Expand from RFC 5869 section 2.3."""
    hash_len = hash_fn().digest_size
    if length > 255 * hash_len:
        raise ValueError("HKDF-Expand output too long")
    out = b""
    block = b""
    counter = 1
    while len(out) < length:
        block = hmac.new(prk, block + info + bytes([counter]), hash_fn).digest()
        out += block
        counter += 1
    return out[:length]


def hkdf_expand_label(hash_fn, secret: bytes, label: bytes, context: bytes, length: int) -> bytes:
    """HKDF-Expand-Label from RFC 8446 section 7.1."""
    full_label = b"tls13 " + label
    hkdf_label = (
        length.to_bytes(2, "big")
        + bytes([len(full_label)])
        + full_label
        + bytes([len(context)])
        + context
    )
    return hkdf_expand(hash_fn, secret, hkdf_label, length)


def self_test() -> None:
    # RFC 8448 section 3, TLS_AES_128_GCM_SHA256: server handshake traffic secret and
    # the write key and IV expanded from it.
    secret = bytes.fromhex("b67b7d690cc16c4e75e54213cb2d37b4e9c912bcded9105d42befd59d391ad38")
    key = hkdf_expand_label(hashlib.sha256, secret, b"key", b"", 16)
    iv = hkdf_expand_label(hashlib.sha256, secret, b"iv", b"", 12)
    if key.hex() != "3fce516009c21727d0f2e4e86ee403bc" or iv.hex() != "5d313eb2671276ee13000b30":
        sys.exit("check-vectors: HKDF-Expand-Label does not reproduce RFC 8448; script is broken")


def nonce_for(iv: bytes, sequence: int) -> bytes:
    padded = sequence.to_bytes(IV_LEN, "big")
    return bytes(a ^ b for a, b in zip(iv, padded))


def unhex(vector: dict, field: str) -> bytes:
    text = vector[field]
    if not isinstance(text, str) or text != text.lower():
        raise ValueError(f"{field} is not a lowercase hex string")
    return bytes.fromhex(text)


def check_vector(v: dict) -> list:
    """Returns a list of problems with one vector (empty if it is correct)."""
    problems = []
    name = v["cipher_suite"]
    if name not in SUITES:
        return [f"unknown cipher suite {name!r}"]
    aead_class, key_len, hash_fn = SUITES[name]
    key = unhex(v, "key")
    iv = unhex(v, "iv")
    plaintext = unhex(v, "plaintext")
    record = unhex(v, "record")
    message_id = v["message_id"]
    record_index = v["record_index"]
    content_type = v["content_type"]
    padding_len = v["padding_len"]

    # Key schedule.
    secret = hash_fn(SECRET_PREFIX + name.encode("ascii")).digest()
    if key != hkdf_expand_label(hash_fn, secret, b"key", b"", key_len):
        problems.append("key is not HKDF-Expand-Label(secret, 'key', '', key_len)")
    if iv != hkdf_expand_label(hash_fn, secret, b"iv", b"", IV_LEN):
        problems.append("iv is not HKDF-Expand-Label(secret, 'iv', '', 12)")
    if len(key) != key_len or len(iv) != IV_LEN:
        return problems + [f"key/iv lengths {len(key)}/{len(iv)}, want {key_len}/{IV_LEN}"]

    # Sequence number.
    if not (0 <= message_id < 1 << MESSAGE_ID_BITS):
        return problems + [f"message_id {message_id} is not a 48-bit value"]
    if not (0 <= record_index < 1 << RECORD_INDEX_BITS):
        return problems + [f"record_index {record_index} is not a 16-bit value"]
    sequence = (message_id << RECORD_INDEX_BITS) | record_index

    # Record header (RFC 8446 5.2).
    if len(record) < HEADER_LEN + 1 + TAG_LEN:
        return problems + [f"record of {len(record)} bytes is too short"]
    header = record[:HEADER_LEN]
    body = record[HEADER_LEN:]
    if header[0] != 0x17:
        problems.append(f"outer content type {header[0]:#04x}, want 0x17")
    if header[1:3] != b"\x03\x03":
        problems.append(f"legacy record version {header[1:3].hex()}, want 0303")
    length = int.from_bytes(header[3:5], "big")
    if length != len(body):
        problems.append(f"header length {length}, but {len(body)} bytes follow")
    if length > MAX_CIPHERTEXT:
        problems.append(f"header length {length} exceeds 2^14 + 256")
    if problems:
        return problems

    # Decrypt (RFC 8446 5.2, 5.3).
    aead = aead_class(key)
    nonce = nonce_for(iv, sequence)
    try:
        inner = aead.decrypt(nonce, body, header)
    except InvalidTag:
        return [f"record does not authenticate at sequence number {sequence:#018x}"]
    if len(inner) > MAX_PLAINTEXT + 1:
        problems.append(f"inner plaintext of {len(inner)} bytes exceeds 2^14 + 1")

    # TLSInnerPlaintext: content || content type || zeros (RFC 8446 5.4).
    stripped = inner.rstrip(b"\x00")
    if not stripped:
        return problems + ["inner plaintext is all zeros (no content type)"]
    got_padding = len(inner) - len(stripped)
    got_type = stripped[-1]
    got_content = stripped[:-1]
    if got_content != plaintext:
        problems.append("decrypted content differs from plaintext")
    if got_type != content_type:
        problems.append(f"content type {got_type}, want {content_type}")
    if got_padding != padding_len:
        problems.append(f"padding length {got_padding}, want {padding_len}")

    # Encrypting the expected inner plaintext must give exactly this record.
    expected_inner = plaintext + bytes([content_type]) + bytes(padding_len)
    expected_header = b"\x17\x03\x03" + (len(expected_inner) + TAG_LEN).to_bytes(2, "big")
    if expected_header + aead.encrypt(nonce, expected_inner, expected_header) != record:
        problems.append("re-encrypting the plaintext does not reproduce the record")

    # Wrong sequence numbers (next record of the message, same record of the next
    # message; both wrap within 64 bits at the top of the range) must not open it.
    for what, wrong in (("record_index + 1", sequence + 1), ("message_id + 1", sequence + (1 << 16))):
        try:
            aead.decrypt(nonce_for(iv, wrong % (1 << 64)), body, header)
            problems.append(f"record also opens with {what}")
        except InvalidTag:
            pass
    return problems


def main() -> int:
    if len(sys.argv) > 2:
        print(f"usage: {sys.argv[0]} [records.json]", file=sys.stderr)
        return 2
    path = Path(sys.argv[1]) if len(sys.argv) == 2 else DEFAULT_PATH
    self_test()
    with open(path, encoding="utf-8") as f:
        vectors = json.load(f)["vectors"]
    failures = 0
    per_suite = {}
    for i, v in enumerate(vectors):
        try:
            problems = check_vector(v)
        except (KeyError, TypeError, ValueError) as e:
            problems = [f"malformed vector: {e!r}"]
        label = f"vector {i} ({v.get('cipher_suite')}, message {v.get('message_id')}, record {v.get('record_index')})"
        for p in problems:
            print(f"FAIL {label}: {p}", file=sys.stderr)
        if problems:
            failures += 1
        per_suite[v.get("cipher_suite")] = per_suite.get(v.get("cipher_suite"), 0) + 1
    for name in SUITES:
        if per_suite.get(name, 0) < 1:
            print(f"FAIL no vectors for {name}", file=sys.stderr)
            failures += 1
    if not vectors:
        print("FAIL the file holds no vectors", file=sys.stderr)
        return 1
    if failures:
        print(f"{failures} of {len(vectors)} vectors FAILED", file=sys.stderr)
        return 1
    print(f"{len(vectors)} vectors verified")
    return 0


if __name__ == "__main__":
    sys.exit(main())
