#!/usr/bin/env python3
"""Attestations and receipt checks made with implementations stagegate did
not write: securesystemslib (DSSE envelopes, Ed25519 and ECDSA P-256
signers) and in-toto (envelope metadata).

    attestations.py make DIR sha256:HEX
        Writes to DIR: ed25519.pem, p256.pem (SPKI public keys), keys.json
        (their key ids) and signed attestations about the artifact HEX:
        test-result.json (Ed25519), evaluation.json and provenance.json
        (P-256), and the refusal cases wrong-subject.json, tampered.json,
        untrusted.json, unknown-predicate.json.

    attestations.py verify-receipt RECEIPT PEM KEYID sha256:HEX
        Verifies a stagegate receipt with securesystemslib's DSSE
        verification, reads it with in-toto's metadata loader and checks
        it is an in-toto Statement v1 about HEX carrying a PASSED SLSA
        verification summary. Prints the statement.

Exit 0 on success, 1 when a check fails, 3 when a package is missing.
"""

import base64
import copy
import hashlib
import json
import os
import sys

try:
    from cryptography.hazmat.primitives import serialization
    from securesystemslib.dsse import Envelope
    from securesystemslib.signer import CryptoSigner, SSlibKey
    from in_toto.models.metadata import Envelope as InTotoEnvelope
    from in_toto.models.metadata import Metadata
except ImportError as e:  # pragma: no cover - reported to the Rust test
    print(f"missing python package: {e}", file=sys.stderr)
    sys.exit(3)

PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT = "https://in-toto.io/Statement/v1"
TEST_RESULT = "https://in-toto.io/attestation/test-result/v0.1"
EVALUATION = "https://stagegate.dev/attestation/evaluation/v1"
PROVENANCE = "https://slsa.dev/provenance/v1"
SUMMARY = "https://slsa.dev/verification_summary/v1"


def spki_pem(signer):
    return signer._private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def spki_keyid(pem):
    der = serialization.load_pem_public_key(pem).public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()


def statement(hex_digest, predicate_type, predicate):
    return {
        "_type": STATEMENT,
        "subject": [{"name": "credit-scoring-model", "digest": {"sha256": hex_digest}}],
        "predicateType": predicate_type,
        "predicate": predicate,
    }


def sign(stmt, signer):
    env = Envelope(json.dumps(stmt).encode(), PAYLOAD_TYPE, {})
    env.sign(signer)
    return env.to_dict()


def make(out, digest):
    hex_digest = digest.removeprefix("sha256:")
    os.makedirs(out, exist_ok=True)
    # Ed25519 with securesystemslib's own key id; P-256 with the SPKI
    # SHA-256 key id stagegate computes by default.
    ed = CryptoSigner.generate_ed25519()
    p256 = CryptoSigner.generate_ecdsa()
    p256_pem = spki_pem(p256)
    p256 = CryptoSigner(p256._private_key, SSlibKey.from_crypto(
        p256._private_key.public_key(), spki_keyid(p256_pem), "ecdsa-sha2-nistp256"))
    stranger = CryptoSigner.generate_ed25519()
    with open(os.path.join(out, "ed25519.pem"), "wb") as f:
        f.write(spki_pem(ed))
    with open(os.path.join(out, "p256.pem"), "wb") as f:
        f.write(p256_pem)
    with open(os.path.join(out, "keys.json"), "w") as f:
        json.dump({"ed25519": ed.public_key.keyid, "p256": p256.public_key.keyid}, f)

    test_result = {
        "result": "PASSED",
        "configuration": [{"name": "fairness-suite", "uri": "https://tests.example/fairness"}],
        "passedTests": ["demographic-parity", "equalised-odds"],
        "warnedTests": [],
        "failedTests": [],
    }
    evaluation = {
        "metric": "accuracy", "value": 0.93, "threshold": 0.9, "comparison": ">=",
        "dataset": "holdout-2026-q3", "samples": 5000,
    }
    provenance = {
        "buildDefinition": {
            "buildType": "https://ci.example/model-training/v1",
            "externalParameters": {"source": {"uri": "git+https://git.example/credit@refs/tags/v2"}},
            "resolvedDependencies": [],
        },
        "runDetails": {"builder": {"id": "https://ci.example/builders/gpu-trainer"}},
    }
    files = {
        "test-result.json": sign(statement(hex_digest, TEST_RESULT, test_result), ed),
        "evaluation.json": sign(statement(hex_digest, EVALUATION, evaluation), p256),
        "provenance.json": sign(statement(hex_digest, PROVENANCE, provenance), p256),
        "wrong-subject.json": sign(statement("0" * 64, TEST_RESULT, test_result), ed),
        "untrusted.json": sign(statement(hex_digest, TEST_RESULT, test_result), stranger),
        "unknown-predicate.json": sign(
            statement(hex_digest, "https://example.com/custom/v1", {"x": 1}), ed),
        # The provenance key may not attest test results.
        "not-allowed.json": sign(statement(hex_digest, TEST_RESULT, test_result), p256),
    }
    # Signed as FAILED, shown as PASSED: the payload changed after signing.
    failed = dict(test_result, result="FAILED")
    tampered = sign(statement(hex_digest, TEST_RESULT, failed), ed)
    tampered["payload"] = base64.b64encode(
        json.dumps(statement(hex_digest, TEST_RESULT, test_result)).encode()).decode()
    files["tampered.json"] = tampered
    for name, env in files.items():
        with open(os.path.join(out, name), "w") as f:
            json.dump(env, f)
    return 0


def verify_receipt(path, pem_path, keyid, digest):
    with open(path) as f:
        data = json.load(f)
    with open(pem_path, "rb") as f:
        public = serialization.load_pem_public_key(f.read())
    key = SSlibKey.from_crypto(public, keyid, "ed25519")
    env = Envelope.from_dict(copy.deepcopy(data))
    try:
        env.verify([key], 1)
    except Exception as e:  # securesystemslib's VerificationError
        print(f"securesystemslib: receipt does not verify: {e}", file=sys.stderr)
        return 1
    loaded = Metadata.from_dict(copy.deepcopy(data))
    if not isinstance(loaded, InTotoEnvelope) or loaded.payload_type != PAYLOAD_TYPE:
        print("in-toto: not an in-toto DSSE envelope", file=sys.stderr)
        return 1
    stmt = json.loads(loaded.payload)
    problems = []
    if stmt.get("_type") != STATEMENT:
        problems.append(f"_type is {stmt.get('_type')!r}")
    if stmt.get("predicateType") != SUMMARY:
        problems.append(f"predicateType is {stmt.get('predicateType')!r}")
    want = digest.removeprefix("sha256:")
    if not any(s.get("digest", {}).get("sha256") == want for s in stmt.get("subject", [])):
        problems.append(f"no subject with sha256 {want}")
    pred = stmt.get("predicate", {})
    if pred.get("verificationResult") != "PASSED":
        problems.append("verificationResult is not PASSED")
    for field in ("verifier", "timeVerified", "resourceUri", "policy", "inputAttestations"):
        if field not in pred:
            problems.append(f"predicate lacks {field}")
    if problems:
        print("in-toto statement: " + "; ".join(problems), file=sys.stderr)
        return 1
    print(json.dumps(stmt))
    return 0


def main(argv):
    if len(argv) == 3 and argv[0] == "make":
        return make(argv[1], argv[2])
    if len(argv) == 5 and argv[0] == "verify-receipt":
        return verify_receipt(*argv[1:])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
