#!/usr/bin/env python3
"""Edits the trust object of one certificate in an NSS sql: database made
with an empty password, the way a newer NSS (or an attacker) would write it:

  nss_trust_edit.py DIR ISSUER_SERIAL_HEX pkcs11v32 SERVER CLIENT
      turn the NSS trust object into a PKCS#11 3.2 one (class CKO_TRUST,
      CKA_TRUST_SERVER_AUTH / CKA_TRUST_CLIENT_AUTH = SERVER / CLIENT),
      with valid integrity codes computed here from the password key;
  nss_trust_edit.py DIR ISSUER_SERIAL_HEX break-server-mac
      flip one bit of the integrity code of its server-auth trust.

The certificate is found by the hex of CKA_SERIAL_NUMBER (its DER INTEGER).
Independent of the library: PBKDF2 and HMAC come from Python's hashlib.
"""
import hashlib
import hmac
import sqlite3
import struct
import sys


def der_items(data):
    """Yields (tag, contents) of the DER elements in data, recursively."""
    i = 0
    while i < len(data):
        tag = data[i]
        length = data[i + 1]
        i += 2
        if length & 0x80:
            n = length & 0x7F
            length = int.from_bytes(data[i:i + n], "big")
            i += n
        contents = data[i:i + length]
        i += length
        yield tag, contents
        if tag & 0x20:
            yield from der_items(contents)


def mac_params(entry):
    """Salt, iterations and key length of a PBMAC1 integrity entry."""
    items = list(der_items(entry))
    salt = next(c for t, c in items if t == 0x04)
    ints = [int.from_bytes(c, "big") for t, c in items if t == 0x02]
    return salt, ints[0], ints[1]


def main():
    dbdir, serial_hex, action = sys.argv[1:4]
    cert = sqlite3.connect(f"{dbdir}/cert9.db")
    key = sqlite3.connect(f"{dbdir}/key4.db")
    serial = bytes.fromhex(serial_hex)
    nss_trust = struct.pack(">I", 0xCE534353)
    row = cert.execute(
        "SELECT id FROM nssPublic WHERE a0 = ? AND a82 = ?", (nss_trust, serial)
    ).fetchone()
    if row is None:
        sys.exit(f"no NSS trust object with serial {serial_hex}")
    obj = row[0]
    meta = dict(key.execute("SELECT id, item1 FROM metaData").fetchall())
    server_name = f"sig_cert_{obj:08x}_ce536358"
    if action == "break-server-mac":
        mac = bytearray(meta[server_name])
        mac[-1] ^= 1
        key.execute("UPDATE metaData SET item1 = ? WHERE id = ?", (bytes(mac), server_name))
        key.commit()
        return
    if action != "pkcs11v32":
        sys.exit(f"unknown action {action}")
    server, client = int(sys.argv[4]), int(sys.argv[5])
    global_salt = meta["password"]
    pwkey = hashlib.sha1(global_salt + b"").digest()
    template = meta[server_name]
    salt, iterations, keylen = mac_params(template)
    mac_key = hashlib.pbkdf2_hmac("sha256", pwkey, salt, iterations, keylen)
    cols = [r[1] for r in cert.execute("PRAGMA table_info(nssPublic)")]
    for attr in ("a62c", "a62d"):
        if attr not in cols:
            cert.execute(f"ALTER TABLE nssPublic ADD COLUMN {attr}")
    for attr, value in ((0x62C, server), (0x62D, client)):
        plain = struct.pack(">I", value)
        mac = hmac.new(mac_key, struct.pack(">II", obj, attr) + plain, hashlib.sha256).digest()
        # The template's last 32 bytes are its MAC: same parameters, new code.
        entry = template[:-32] + mac
        key.execute(
            "INSERT OR REPLACE INTO metaData (id, item1, item2) VALUES (?, ?, NULL)",
            (f"sig_cert_{obj:08x}_{attr:08x}", entry),
        )
        cert.execute(f"UPDATE nssPublic SET a{attr:x} = ? WHERE id = ?", (plain, obj))
    cert.execute(
        "UPDATE nssPublic SET a0 = ?, ace536358 = NULL, ace536359 = NULL WHERE id = ?",
        (struct.pack(">I", 0x0B), obj),
    )
    cert.commit()
    key.commit()


main()
