//! `signatures.json`: Ed25519 signatures over the manifest, k-of-n.
//!
//! Each signature covers a domain-separation prefix plus the exact bytes of
//! `manifest.json` as stored in the bundle. No canonicalisation is involved,
//! so there is no second parser whose reading could differ from the signer's.

use std::collections::BTreeSet;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier};
use serde::{Deserialize, Serialize};

use super::BundleError;
use super::keys::{TrustStore, key_id};

/// Prefixed to the manifest bytes before signing, so a bundle signature can
/// never be replayed as a signature over anything else.
const CONTEXT: &[u8] = b"stagegate-bundle-manifest-v1\n";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signatures {
    pub signatures: Vec<SignatureEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignatureEntry {
    /// [`key_id`] of the signing key.
    pub key_id: String,
    pub algorithm: String,
    /// Base64 of the 64-byte Ed25519 signature.
    pub signature: String,
}

/// A signature that verified against a trusted key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Signer {
    pub key_id: String,
    /// The trust store's name for the key (its file stem).
    pub name: String,
}

impl Signatures {
    pub fn parse(bytes: &[u8]) -> Result<Self, BundleError> {
        serde_json::from_slice(bytes).map_err(|e| BundleError::SignaturesFile(e.to_string()))
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec_pretty(self).unwrap_or_default();
        out.push(b'\n');
        out
    }

    /// Adds (or replaces) the signature of `key` over `manifest`.
    pub fn sign(&mut self, key: &SigningKey, manifest: &[u8]) -> String {
        let id = key_id(&key.verifying_key());
        let sig = key.sign(&message(manifest));
        self.signatures.retain(|s| s.key_id != id);
        self.signatures.push(SignatureEntry {
            key_id: id.clone(),
            algorithm: "ed25519".into(),
            signature: BASE64.encode(sig.to_bytes()),
        });
        id
    }

    /// Verifies k-of-n: at least `min` distinct trusted keys must have
    /// signed `manifest`. A signature that claims a trusted key but does not
    /// verify is an error even if enough others do: it means tampering.
    /// Signatures by unknown keys are ignored but named in the error when
    /// too few trusted ones remain.
    pub fn verify(
        &self,
        manifest: &[u8],
        trust: &TrustStore,
        min: usize,
    ) -> Result<Vec<Signer>, BundleError> {
        let msg = message(manifest);
        let mut signers = Vec::new();
        let mut seen = BTreeSet::new();
        let mut untrusted = Vec::new();
        for entry in &self.signatures {
            let Some(trusted) = trust.keys.get(&entry.key_id) else {
                untrusted.push(entry.key_id.clone());
                continue;
            };
            let bad = || BundleError::BadSignature {
                key_id: entry.key_id.clone(),
                key_name: trusted.name.clone(),
            };
            if entry.algorithm != "ed25519" {
                return Err(bad());
            }
            let bytes = BASE64.decode(&entry.signature).map_err(|_| bad())?;
            let sig = Signature::from_slice(&bytes).map_err(|_| bad())?;
            trusted.key.verify(&msg, &sig).map_err(|_| bad())?;
            if seen.insert(entry.key_id.clone()) {
                signers.push(Signer {
                    key_id: entry.key_id.clone(),
                    name: trusted.name.clone(),
                });
            }
        }
        if signers.len() < min.max(1) {
            let mut why = format!(
                "bundle has {} valid signature(s) by trusted keys, {} required",
                signers.len(),
                min.max(1)
            );
            if self.signatures.is_empty() {
                why.push_str("; it is unsigned (run `stagegate sign`)");
            }
            if !untrusted.is_empty() {
                why.push_str(&format!(
                    "; signed by key(s) not in the trust store {}: {}",
                    trust.path.display(),
                    untrusted.join(", ")
                ));
            }
            return Err(BundleError::TooFewSignatures(why));
        }
        Ok(signers)
    }
}

fn message(manifest: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(CONTEXT.len() + manifest.len());
    m.extend_from_slice(CONTEXT);
    m.extend_from_slice(manifest);
    m
}
