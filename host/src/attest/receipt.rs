//! Decision receipts: proof, checkable without calling stagegate, that an
//! artifact passed the gate or was promoted.
//!
//! A receipt is a DSSE envelope over an in-toto Statement whose subject is
//! the release's artifact digest and whose predicate is a SLSA
//! Verification Summary (`https://slsa.dev/verification_summary/v1`):
//! the verifier (this service), when, which policy bundle decided, the
//! attestations the decision rested on, and `verificationResult: PASSED`.
//! It is signed with the receipt key (Ed25519); its key id is the
//! lowercase hex SHA-256 of the key's SPKI DER.

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::dsse::Envelope;
use super::predicates::VERIFICATION_SUMMARY;
use super::statement::{STATEMENT_V1, Statement};
use super::trust::PublicKey;
use super::{AttestError, PAYLOAD_TYPE};
use crate::decision::{PolicyRef, Timestamp};

/// The key receipts are signed with.
#[derive(Clone)]
pub struct ReceiptSigner {
    pub key: ed25519_dalek::SigningKey,
    pub keyid: String,
    /// `verifier.id` of every receipt.
    pub verifier_id: String,
}

/// A receipt public key as `GET /v1/receipts/keys` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptKey {
    pub keyid: String,
    pub algorithm: String,
    pub public_key_pem: String,
}

/// An attestation a decision rested on, as SLSA VSA v1's
/// `inputAttestations[]` names it: a URI and the digest of the envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputAttestation {
    /// Where stagegate holds it: `urn:stagegate:release:SYSTEM@VERSION:attestation:N`
    /// for a release's, `urn:stagegate:decision:ID:attestation:N` for one a
    /// stateless gate carried.
    pub uri: String,
    /// `sha256:<hex>` of the envelope as received.
    pub digest: String,
}

/// What a receipt is about.
#[derive(Debug, Clone)]
pub struct ReceiptFacts<'a> {
    pub decision_id: &'a str,
    /// `gate` or `progression`.
    pub decision: &'a str,
    /// `allow` or `promote`.
    pub outcome: &'a str,
    /// Lowercase hex SHA-256 of the artifact.
    pub artifact_sha256: &'a str,
    /// The subject's name: the release (`system@version`).
    pub subject_name: &'a str,
    /// The artifact's own URI (SLSA VSA v1 `resourceUri`): the image
    /// reference with its digest or the storage URI the release gave in
    /// `artifact_uri`, else [`artifact_urn`] of its digest.
    pub resource_uri: &'a str,
    /// The deployment a records-backed decision is about.
    pub deployment_id: Option<&'a str>,
    pub policy: &'a PolicyRef,
    pub inputs: &'a [InputAttestation],
    pub at: Timestamp,
    /// The stage a promotion moved to.
    pub stage: Option<&'a str>,
}

/// The URI of a policy bundle version, as receipts and OSCAL name it.
pub fn bundle_urn(name: &str, version: &str) -> String {
    format!("urn:stagegate:bundle:{name}:{version}")
}

/// The URI of an artifact known only by its digest.
pub fn artifact_urn(sha256_hex: &str) -> String {
    format!("urn:stagegate:artifact:sha256:{sha256_hex}")
}

fn digest_set(digest: &str) -> serde_json::Value {
    match digest.split_once(':') {
        Some((alg, hex)) => json!({ alg: hex }),
        None => json!({ "sha256": digest }),
    }
}

impl ReceiptSigner {
    /// Loads the receipt key at `path`, creating it (and `path.pub`) when
    /// it does not exist.
    pub fn load_or_create(path: &Path, verifier_id: &str) -> Result<Self, AttestError> {
        let err = |message: String| AttestError::Key {
            path: path.display().to_string(),
            message,
        };
        let key = if path.exists() {
            crate::bundle::keys::load_secret(path)
        } else {
            tracing::info!(key = %path.display(), "created the receipt signing key");
            crate::bundle::keys::generate(path).map(|(k, _)| k)
        }
        .map_err(|e| err(e.to_string()))?;
        Ok(Self::new(key, verifier_id))
    }

    pub fn new(key: ed25519_dalek::SigningKey, verifier_id: &str) -> Self {
        use ed25519_dalek::pkcs8::EncodePublicKey;
        use sha2::{Digest, Sha256};
        let der = key
            .verifying_key()
            .to_public_key_der()
            .map(|d| d.as_bytes().to_vec())
            .unwrap_or_default();
        ReceiptSigner {
            keyid: hex::encode(Sha256::digest(der)),
            key,
            verifier_id: verifier_id.to_string(),
        }
    }

    /// The public half, as listed to verifiers.
    pub fn public(&self) -> ReceiptKey {
        use ed25519_dalek::pkcs8::EncodePublicKey;
        ReceiptKey {
            keyid: self.keyid.clone(),
            algorithm: "ed25519".into(),
            public_key_pem: self
                .key
                .verifying_key()
                .to_public_key_pem(Default::default())
                .unwrap_or_default(),
        }
    }

    /// Signs a receipt.
    pub fn sign(&self, f: &ReceiptFacts<'_>) -> Envelope {
        let mut decision = json!({
            "id": f.decision_id,
            "uri": format!("urn:stagegate:decision:{}", f.decision_id),
            "kind": f.decision,
            "outcome": f.outcome,
        });
        if let Some(stage) = f.stage {
            decision["stage"] = json!(stage);
        }
        if let Some(d) = f.deployment_id {
            decision["deployment"] = json!(format!("urn:stagegate:deployment:{d}"));
        }
        let statement = json!({
            "_type": STATEMENT_V1,
            "subject": [{"name": f.subject_name, "digest": {"sha256": f.artifact_sha256}}],
            "predicateType": VERIFICATION_SUMMARY,
            "predicate": {
                "verifier": {
                    "id": self.verifier_id,
                    "version": {"stagegate": env!("CARGO_PKG_VERSION")},
                },
                "timeVerified": f.at.to_string(),
                "resourceUri": f.resource_uri,
                "policy": {
                    "name": f.policy.bundle,
                    "uri": bundle_urn(&f.policy.bundle, &f.policy.version),
                    "digest": digest_set(&f.policy.digest),
                    "annotations": {"version": f.policy.version},
                },
                "inputAttestations": f.inputs.iter().map(|i| json!({
                    "uri": i.uri,
                    "digest": digest_set(&i.digest),
                })).collect::<Vec<_>>(),
                "verificationResult": "PASSED",
                "verifiedLevels": [],
                "decision": decision,
            },
        });
        // A JSON value of strings and numbers: serialising cannot fail.
        let payload = serde_json::to_vec(&statement).unwrap_or_default();
        Envelope::sign_ed25519(PAYLOAD_TYPE, &payload, &self.keyid, &self.key)
    }
}

/// A receipt that verified: its key, the statement and the decision id.
#[derive(Debug, Clone)]
pub struct VerifiedReceipt {
    pub keyid: String,
    pub statement: Statement,
    pub decision_id: Option<String>,
    /// The artifact's URI the receipt states (`resourceUri`).
    pub resource_uri: Option<String>,
}

/// Verifies a receipt: a signature by one of `keys` (by key id), an
/// in-toto Statement v1 carrying a PASSED verification summary and, when
/// `subject` is given (`sha256:<hex>`), a subject with that digest.
pub fn verify(
    env: &Envelope,
    keys: &[(String, PublicKey)],
    subject: Option<&str>,
) -> Result<VerifiedReceipt, AttestError> {
    let (keyid, payload) = super::trust::signer(
        env,
        keys.iter().map(|(id, key)| (id.as_str(), key, id.clone())),
    )?;
    let statement = Statement::parse(&payload)?;
    if statement.predicate_type != VERIFICATION_SUMMARY {
        return Err(AttestError::Receipt(format!(
            "predicateType is '{}', expected '{VERIFICATION_SUMMARY}'",
            statement.predicate_type
        )));
    }
    let result = statement
        .predicate
        .pointer("/verificationResult")
        .and_then(|v| v.as_str())
        .unwrap_or_default();
    if result != "PASSED" {
        return Err(AttestError::Receipt(format!(
            "verificationResult is '{result}', expected PASSED"
        )));
    }
    if let Some(subject) = subject {
        let hex = super::sha256_hex(subject).ok_or_else(|| {
            AttestError::Receipt(format!("subject '{subject}' is not sha256:<64 hex digits>"))
        })?;
        statement.require_subject(&hex)?;
    }
    let text = |pointer: &str| {
        statement
            .predicate
            .pointer(pointer)
            .and_then(|v| v.as_str())
            .map(str::to_string)
    };
    let decision_id = text("/decision/id");
    let resource_uri = text("/resourceUri");
    Ok(VerifiedReceipt {
        keyid,
        decision_id,
        resource_uri,
        statement,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts<'a>(policy: &'a PolicyRef, hex: &'a str) -> ReceiptFacts<'a> {
        ReceiptFacts {
            decision_id: "01J",
            decision: "gate",
            outcome: "allow",
            artifact_sha256: hex,
            subject_name: "sys@1.0.0",
            resource_uri: "registry.example/sys@sha256:aaaa",
            deployment_id: None,
            policy,
            inputs: &[],
            at: Timestamp(1_795_694_400_000),
            stage: None,
        }
    }

    #[test]
    fn a_receipt_verifies_with_its_key_and_subject_and_not_otherwise() {
        let signer = ReceiptSigner::new(ed25519_dalek::SigningKey::from_bytes(&[3; 32]), "v");
        let policy = PolicyRef {
            bundle: "b".into(),
            version: "1.0.0".into(),
            digest: format!("sha256:{}", "0".repeat(64)),
            members: Vec::new(),
        };
        let hex = "a".repeat(64);
        let env = signer.sign(&facts(&policy, &hex));
        let (key, _) = PublicKey::from_pem(&signer.public().public_key_pem, "k").unwrap();
        let keys = vec![(signer.keyid.clone(), key)];
        let ok = verify(&env, &keys, Some(&format!("sha256:{hex}"))).unwrap();
        assert_eq!(ok.decision_id.as_deref(), Some("01J"));
        let wrong = verify(&env, &keys, Some(&format!("sha256:{}", "b".repeat(64))));
        assert!(matches!(wrong, Err(AttestError::WrongSubject { .. })));
        let mut tampered = env.clone();
        tampered.payload = tampered.payload.replace('A', "B");
        assert!(verify(&tampered, &keys, None).is_err());
        let other = ReceiptSigner::new(ed25519_dalek::SigningKey::from_bytes(&[4; 32]), "v");
        let (other_key, _) = PublicKey::from_pem(&other.public().public_key_pem, "k").unwrap();
        let e = verify(&env, &[(other.keyid.clone(), other_key)], None).unwrap_err();
        assert!(matches!(e, AttestError::UntrustedKey(_)), "{e}");
    }
}
