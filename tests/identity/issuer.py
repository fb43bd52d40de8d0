#!/usr/bin/env python3
"""A stand-in OIDC issuer for the workload identity tests.

Independent of the code under test: keys, JWKS documents and tokens are
made here with `cryptography` (pyca) and the standard library only, by
hand from RFC 7515/7517/7518/8037, so that a bug shared by stagegate's
verifier and the minter cannot hide.

    issuer.py keys DIR        new RSA-2048, P-256 and Ed25519 keys with new
                              kids (a rotation when DIR has keys already)
    issuer.py serve DIR       an HTTP server on 127.0.0.1 (port printed on
                              stdout): /jwks the current public keys,
                              /hits how often /jwks was read, /big a
                              10 MB answer without Content-Length
    issuer.py mint DIR        a token from the JSON spec on stdin:
                              {"key": "rsa"|"ec"|"ed", "claims": {...},
                               "attack": null|"none"|"hs256-public"|
                                         "tamper"|"rs-as-ec", "kid": "..."}
"""

import base64
import hashlib
import hmac
import http.server
import json
import os
import secrets
import sys

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def uint(n: int, size: int = 0) -> bytes:
    size = size or (n.bit_length() + 7) // 8
    return n.to_bytes(size, "big")


def load(d, name):
    with open(os.path.join(d, name + ".pem"), "rb") as f:
        return serialization.load_pem_private_key(f.read(), password=None)


def keys(d):
    os.makedirs(d, exist_ok=True)
    made = {
        "rsa": rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "ec": ec.generate_private_key(ec.SECP256R1()),
        "ed": ed25519.Ed25519PrivateKey.generate(),
    }
    kids = {}
    jwks = []
    for name, key in made.items():
        with open(os.path.join(d, name + ".pem"), "wb") as f:
            f.write(key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
        kid = f"{name}-{secrets.token_hex(4)}"
        kids[name] = kid
        pub = key.public_key()
        if name == "rsa":
            n = pub.public_numbers()
            jwk = {"kty": "RSA", "alg": "RS256", "n": b64(uint(n.n)), "e": b64(uint(n.e))}
        elif name == "ec":
            n = pub.public_numbers()
            jwk = {"kty": "EC", "crv": "P-256", "x": b64(uint(n.x, 32)), "y": b64(uint(n.y, 32))}
        else:
            raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
            jwk = {"kty": "OKP", "crv": "Ed25519", "x": b64(raw)}
        jwk.update({"kid": kid, "use": "sig"})
        jwks.append(jwk)
    with open(os.path.join(d, "kids.json"), "w") as f:
        json.dump(kids, f)
    tmp = os.path.join(d, "jwks.json.tmp")
    with open(tmp, "w") as f:
        json.dump({"keys": jwks}, f)
    os.replace(tmp, os.path.join(d, "jwks.json"))
    print(json.dumps(kids))


def sign(name, key, data: bytes) -> bytes:
    if name == "rsa":
        return key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    if name == "ec":
        r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
        return uint(r, 32) + uint(s, 32)  # JWS wants r || s (RFC 7518 §3.4)
    return key.sign(data)


ALG = {"rsa": "RS256", "ec": "ES256", "ed": "EdDSA"}


def mint(d):
    spec = json.load(sys.stdin)
    with open(os.path.join(d, "kids.json")) as f:
        kids = json.load(f)
    name = spec.get("key", "rsa")
    attack = spec.get("attack")
    header = {"alg": ALG[name], "typ": "JWT", "kid": spec.get("kid") or kids[name]}
    payload = b64(json.dumps(spec["claims"]).encode())
    if attack == "none":
        header = {"alg": "none", "typ": "JWT"}
        print(f"{b64(json.dumps(header).encode())}.{payload}.")
        return
    if attack == "hs256-public":
        # The classic key confusion: HMAC keyed with the issuer's *public*
        # RSA key, which a naive verifier would load as the secret.
        header["alg"] = "HS256"
        pem = load(d, "rsa").public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        signing_input = f"{b64(json.dumps(header).encode())}.{payload}".encode()
        sig = hmac.new(pem, signing_input, hashlib.sha256).digest()
        print(f"{signing_input.decode()}.{b64(sig)}")
        return
    if attack == "rs-as-ec":
        # RS256-signed with the RSA key, but naming the EC key's kid.
        header["kid"] = kids["ec"]
    signing_input = f"{b64(json.dumps(header).encode())}.{payload}".encode()
    sig = sign(name, load(d, name), signing_input)
    token = f"{signing_input.decode()}.{b64(sig)}"
    if attack == "tamper":
        # The same signature over a payload with one claim changed.
        claims = dict(spec["claims"])
        claims["repository"] = "mallory/credit-scoring"
        h, _, s = token.split(".")
        token = f"{h}.{b64(json.dumps(claims).encode())}.{s}"
    print(token)


def serve(d):
    hits = {"jwks": 0}

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            if self.path == "/jwks":
                hits["jwks"] += 1
                with open(os.path.join(d, "jwks.json"), "rb") as f:
                    body = f.read()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            elif self.path == "/hits":
                body = json.dumps(hits).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            elif self.path == "/big":
                # 10 MB, no Content-Length: only a bounded read stops it.
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                try:
                    self.wfile.write(b'{"keys": [')
                    chunk = b" " * 65536
                    for _ in range(160):
                        self.wfile.write(chunk)
                    self.wfile.write(b"]}")
                except (BrokenPipeError, ConnectionResetError):
                    pass
            else:
                self.send_error(404)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    command, directory = sys.argv[1], sys.argv[2]
    {"keys": keys, "serve": serve, "mint": mint}[command](directory)
