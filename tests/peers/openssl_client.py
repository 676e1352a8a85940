#!/usr/bin/env python3
"""An independent TLS client for pmcd: speaks PCP's connection handshake in
plaintext (challenge, version credential with SECURE|SECURE_ACK, secure-ack
status), then upgrades the same socket with Python's ssl module (OpenSSL).

usage: openssl_client.py PORT CA_FILE [--tls 1.1|1.2|1.3] [--host NAME]
                                      [--cert CRT --key KEY]
Prints "OK <version> <cipher>" and exits 0 when the handshake completes and
the server answers a request over TLS; prints "FAIL <reason>" and exits 1
otherwise.
"""
import argparse
import os
import socket
import ssl
import struct
import sys

PDU_ERROR = 0x7000
PDU_CREDS = 0x700C


def recv_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed after %d of %d bytes" % (len(data), n))
        data += chunk
    return data


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("port", type=int)
    ap.add_argument("ca")
    ap.add_argument("--tls", choices=["1.1", "1.2", "1.3"])
    ap.add_argument("--host", default="localhost")
    ap.add_argument("--cert")
    ap.add_argument("--key")
    args = ap.parse_args()

    raw = socket.create_connection(("127.0.0.1", args.port), timeout=15)
    length, kind, _ = struct.unpack(">iii", recv_exact(raw, 12))
    body = recv_exact(raw, length - 12)
    if kind != PDU_ERROR or length != 20:
        print("FAIL unexpected challenge PDU type %#x len %d" % (kind, length))
        return 1
    features = struct.unpack(">H", body[6:8])[0]
    if not features & 0x1:
        print("FAIL server does not offer TLS (features %#x)" % features)
        return 1
    flags = 0x1 | 0x10  # SECURE | SECURE_ACK
    creds = struct.pack(">iiii", 20, PDU_CREDS, os.getpid(), 1) + bytes([1, 2, 0, flags])
    raw.sendall(creds)
    length, kind, _ = struct.unpack(">iii", recv_exact(raw, 12))
    (status,) = struct.unpack(">i", recv_exact(raw, length - 12)[:4])
    if kind != PDU_ERROR or status != 0:
        print("FAIL secure-ack status %d" % status)
        return 1

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(args.ca)
    if args.cert:
        ctx.load_cert_chain(args.cert, args.key)
    if args.tls:
        version = {"1.1": ssl.TLSVersion.TLSv1_1, "1.2": ssl.TLSVersion.TLSv1_2,
                   "1.3": ssl.TLSVersion.TLSv1_3}[args.tls]
        if args.tls == "1.1":
            # Let OpenSSL itself offer TLS 1.1, so that a refusal is the server's.
            ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
        ctx.minimum_version = version
        ctx.maximum_version = version
    try:
        tls = ctx.wrap_socket(raw, server_hostname=args.host)
        # A PDU_TEXT_REQ-sized request is not needed: ask for the pmcd
        # metric names' root children (PDU_PMNS_CHILD 0x7009 with status 0,
        # name "pmcd"), and expect any well-formed PDU back over TLS.
        name = b"pmcd"
        pad = (4 - len(name) % 4) % 4
        req = struct.pack(">iiiii", 12 + 8 + len(name) + pad, 0x7009, os.getpid(), 1, len(name))
        req += name + b"\0" * pad
        tls.sendall(req)
        length, kind, _ = struct.unpack(">iii", recv_exact(tls, 12))
        if length < 12:
            print("FAIL bad reply length %d" % length)
            return 1
        recv_exact(tls, length - 12)
        print("OK %s %s reply=%#x" % (tls.version(), tls.cipher()[0], kind))
        tls.close()
        return 0
    except (ssl.SSLError, OSError, ConnectionError) as e:
        print("FAIL %s" % e)
        return 1


if __name__ == "__main__":
    sys.exit(main())
