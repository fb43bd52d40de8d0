#!/usr/bin/env python3
"""An independent verifier of stagegate's decision log.

Shares no code with the service: standard library hashing and base64,
Ed25519 from the `cryptography` package. Given the service's address and a
token, it

- checks the checkpoint's Ed25519 signature against the verifier key of
  GET /v1/log/key (C2SP signed-note: key hash, signature line);
- fetches every level-0 tile (C2SP tlog-tiles, full and partial) and the
  entry bundles, checks each leaf is SHA-256(0x00 || entry), and computes
  the root (RFC 9162 section 2.1.1) that the checkpoint must carry;
- verifies inclusion proofs of every entry and consistency proofs from
  every earlier size (RFC 9162 sections 2.1.3.2 and 2.1.4.2), and that a
  proof with one hash changed is refused;
- verifies GET /v1/decisions/{id}/proof for the decision ids given.

Usage: tlog_verify.py BASE_URL TOKEN [DECISION_ID ...]
Exit 0 and "verified ..." when everything holds; 1 with the reason.
"""

import base64
import hashlib
import json
import sys
import urllib.request

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey


def fail(msg):
    print("FAILED: " + msg)
    sys.exit(1)


def get(base, token, path):
    req = urllib.request.Request(base + path, headers={"Authorization": "Bearer " + token})
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.read()


def leaf_hash(entry):
    return hashlib.sha256(b"\x00" + entry).digest()


def node_hash(left, right):
    return hashlib.sha256(b"\x01" + left + right).digest()


def mth(leaves):
    n = len(leaves)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return leaves[0]
    k = 1
    while k * 2 < n:
        k *= 2
    return node_hash(mth(leaves[:k]), mth(leaves[k:]))


def verify_inclusion(index, size, leaf, proof, root):
    if index >= size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(first, second, first_hash, second_hash, proof):
    if first == second:
        return not proof and first_hash == second_hash
    if first == 0 or first > second or not proof:
        return False
    path = list(proof)
    if first & (first - 1) == 0:
        path.insert(0, first_hash)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == first_hash and sr == second_hash


def tile_index(n):
    """C2SP tlog-tiles: N in groups of three digits, x before all but the last."""
    s = "%03d" % (n % 1000)
    n //= 1000
    while n > 0:
        s = "x%03d/%s" % (n % 1000, s)
        n //= 1000
    return s


def parse_vkey(vkey):
    name, khash, raw = vkey.split("+", 2)
    raw = base64.b64decode(raw)
    if len(raw) != 33 or raw[0] != 1:
        fail("the verifier key is not an Ed25519 signed-note key")
    expect = hashlib.sha256(name.encode() + b"\n" + raw).digest()[:4]
    if expect.hex() != khash:
        fail("the verifier key's hash does not match its name and key")
    return name, expect, Ed25519PublicKey.from_public_bytes(raw[1:])


def open_checkpoint(note, vkey):
    name, khash, key = parse_vkey(vkey)
    body, sep, sigs = note.partition("\n\n")
    if not sep:
        fail("checkpoint: no blank line before the signatures")
    body += "\n"
    lines = body.split("\n")
    origin, size, root = lines[0], int(lines[1]), base64.b64decode(lines[2])
    if origin != name:
        fail("checkpoint origin %r is not the key's name %r" % (origin, name))
    for line in sigs.split("\n"):
        if not line.startswith("\u2014 "):
            continue
        signer, blob = line[2:].rsplit(" ", 1)
        blob = base64.b64decode(blob)
        if signer == name and blob[:4] == khash and len(blob) == 68:
            try:
                key.verify(blob[4:], body.encode())
            except Exception:
                fail("the checkpoint's signature does not verify")
            return size, root
    fail("no signature by the log's key on the checkpoint")


def b64list(xs):
    return [base64.b64decode(x) for x in xs]


def main():
    if len(sys.argv) < 3:
        fail("usage: tlog_verify.py BASE_URL TOKEN [DECISION_ID ...]")
    base, token, decisions = sys.argv[1], sys.argv[2], sys.argv[3:]
    vkey = json.loads(get(base, token, "/v1/log/key"))["verifier_key"]
    note = get(base, token, "/v1/log/checkpoint").decode()
    size, root = open_checkpoint(note, vkey)

    leaves, entries = [], []
    for n in range((size + 255) // 256):
        width = min(256, size - n * 256)
        suffix = "" if width == 256 else ".p/%d" % width
        tile = get(base, token, "/v1/log/tile/0/" + tile_index(n) + suffix)
        if len(tile) != 32 * width:
            fail("tile 0/%d holds %d bytes, expected %d" % (n, len(tile), 32 * width))
        leaves += [tile[i:i + 32] for i in range(0, len(tile), 32)]
        bundle = get(base, token, "/v1/log/tile/entries/" + tile_index(n) + suffix)
        i = 0
        while i < len(bundle):
            ln = int.from_bytes(bundle[i:i + 2], "big")
            entries.append(bundle[i + 2:i + 2 + ln])
            i += 2 + ln
    if len(entries) != size:
        fail("the entry bundles hold %d entries, the checkpoint %d" % (len(entries), size))
    for i, (e, l) in enumerate(zip(entries, leaves)):
        if leaf_hash(e) != l:
            fail("entry %d does not hash to its leaf in the tile" % i)
    if mth(leaves) != root:
        fail("the root computed from the level-0 tiles is not the checkpoint's")
    if size > 256:
        # A level-1 tile holds the level-8 subtrees: check the first.
        t1 = get(base, token, "/v1/log/tile/1/000.p/%d" % (size // 256))
        if t1[:32] != mth(leaves[:256]):
            fail("the first hash of tile 1/000 is not the first 256 leaves' root")

    for i in range(size):
        doc = json.loads(get(base, token, "/v1/log/proof/inclusion?index=%d&size=%d" % (i, size)))
        proof = b64list(doc["hashes"])
        if not verify_inclusion(i, size, leaves[i], proof, root):
            fail("the inclusion proof of entry %d does not verify" % i)
        if proof:
            forged = [bytes([proof[0][0] ^ 1]) + proof[0][1:]] + proof[1:]
            if verify_inclusion(i, size, leaves[i], forged, root):
                fail("a forged inclusion proof verified")
    for m in range(1, size + 1):
        doc = json.loads(get(base, token, "/v1/log/proof/consistency?from=%d&to=%d" % (m, size)))
        proof = b64list(doc["hashes"])
        if not verify_consistency(m, size, mth(leaves[:m]), root, proof):
            fail("the consistency proof from %d to %d does not verify" % (m, size))
        if proof:
            forged = proof[:-1] + [bytes([proof[-1][0] ^ 1]) + proof[-1][1:]]
            if verify_consistency(m, size, mth(leaves[:m]), root, forged):
                fail("a forged consistency proof verified")

    for d in decisions:
        doc = json.loads(get(base, token, "/v1/decisions/%s/proof" % d))
        psize, proot = open_checkpoint(doc["checkpoint"], vkey)
        entry = base64.b64decode(doc["entry"])
        if json.loads(entry)["entry"]["decision_id"] != d:
            fail("the proof's entry does not name decision %s" % d)
        leaf = leaf_hash(entry)
        if base64.b64decode(doc["leaf_hash"]) != leaf:
            fail("the proof's leaf_hash is not its entry's")
        if doc["inclusion"]["size"] != psize:
            fail("the inclusion proof's size is not its checkpoint's")
        if not verify_inclusion(doc["index"], psize, leaf, b64list(doc["inclusion"]["hashes"]), proot):
            fail("decision %s's proof does not verify against its checkpoint" % d)

    print("verified: %d entries, root %s, %d decision proofs" % (size, root.hex(), len(decisions)))


if __name__ == "__main__":
    main()
