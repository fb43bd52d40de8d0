//! Public keys and the evidence trust store.
//!
//! A key is a SubjectPublicKeyInfo PEM file (what `openssl pkey -pubout`,
//! pyca/cryptography and Sigstore write), Ed25519 or ECDSA P-256. Its key
//! id defaults to the lowercase hex SHA-256 of the SPKI DER, and may be set
//! to whatever the signer puts in its signatures' `keyid` (securesystemslib
//! computes its own). Each key is trusted for a list of predicate types
//! only: the build system's key may state provenance, not test results.

use std::path::Path;

use sha2::{Digest, Sha256};

use super::dsse::{Envelope, decode_base64};
use super::statement::Statement;
use super::{AttestError, PAYLOAD_TYPE};

/// A public key of a supported algorithm.
#[derive(Debug, Clone)]
pub enum PublicKey {
    Ed25519(ed25519_dalek::VerifyingKey),
    P256(p256::ecdsa::VerifyingKey),
}

impl PublicKey {
    /// Reads an SPKI PEM (`-----BEGIN PUBLIC KEY-----`); returns the key
    /// and its default key id. `origin` names the source in errors.
    pub fn from_pem(text: &str, origin: &str) -> Result<(Self, String), AttestError> {
        let err = |message: String| AttestError::Key {
            path: origin.to_string(),
            message,
        };
        let (label, doc) =
            spki::Document::from_pem(text).map_err(|e| err(format!("not a PEM document: {e}")))?;
        if label != "PUBLIC KEY" {
            return Err(err(format!(
                "expected a PUBLIC KEY (SubjectPublicKeyInfo) PEM, found {label}"
            )));
        }
        let der = doc.as_bytes();
        let keyid = hex::encode(Sha256::digest(der));
        use spki::DecodePublicKey;
        if let Ok(k) = ed25519_dalek::VerifyingKey::from_public_key_der(der) {
            return Ok((PublicKey::Ed25519(k), keyid));
        }
        if let Ok(k) = p256::ecdsa::VerifyingKey::from_public_key_der(der) {
            return Ok((PublicKey::P256(k), keyid));
        }
        Err(err(
            "not an Ed25519 or ECDSA P-256 public key (the key types supported)".into(),
        ))
    }

    /// Verifies `sig` over `message`: Ed25519 (64 bytes, strict), or ECDSA
    /// P-256 with SHA-256 and a DER signature (either `s`, as producers
    /// such as securesystemslib do not normalise it).
    pub fn verify(&self, message: &[u8], sig: &[u8]) -> bool {
        match self {
            PublicKey::Ed25519(k) => ed25519_dalek::Signature::from_slice(sig)
                .is_ok_and(|s| k.verify_strict(message, &s).is_ok()),
            PublicKey::P256(k) => {
                use p256::ecdsa::signature::Verifier;
                let Ok(s) = p256::ecdsa::Signature::from_der(sig) else {
                    return false;
                };
                let s = s.normalize_s().unwrap_or(s);
                k.verify(message, &s).is_ok()
            }
        }
    }

    /// The algorithm's name, as configuration and listings show it.
    pub fn algorithm(&self) -> &'static str {
        match self {
            PublicKey::Ed25519(_) => "ed25519",
            PublicKey::P256(_) => "ecdsa-p256-sha256",
        }
    }
}

/// One trusted evidence key.
#[derive(Debug, Clone)]
pub struct TrustedKey {
    pub keyid: String,
    pub key: PublicKey,
    /// The predicate types this key may attest.
    pub predicates: Vec<String>,
}

/// How `[[evidence.keys]]` names a key.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    /// SPKI PEM file of the public key.
    pub file: std::path::PathBuf,
    /// The `keyid` its signatures carry; default: hex SHA-256 of the SPKI DER.
    #[serde(default)]
    pub keyid: Option<String>,
    /// Predicate types this key may attest.
    #[serde(default)]
    pub predicates: Vec<String>,
}

/// The evidence trust store: which keys may attest what.
#[derive(Debug, Clone, Default)]
pub struct EvidenceTrust {
    pub keys: Vec<TrustedKey>,
    /// Refuse attestations whose predicate type stagegate cannot map.
    pub require_known_predicates: bool,
    /// Envelopes already verified with these keys ([`EvidenceTrust::verify_text`]).
    pub verified: VerifiedCache,
}

/// Envelopes that verified, by the SHA-256 of their exact JSON text.
///
/// A gateway sends a release's signed evidence with every gate request
/// about it: the same envelope bytes, again and again. Verifying one costs
/// an Ed25519 or P-256 signature check and the statement's parse (about
/// 30 % of a stateless gate carrying three envelopes, as profiled); what it
/// yields depends only on those bytes and this store's keys, so a second
/// sight of the same bytes is answered from here after one SHA-256 (which
/// the caller computes anyway: it is the envelope digest receipts cite).
///
/// Only successes are kept, so nothing a caller without a trusted key can
/// sign ever takes a slot. The map is bounded: at [`VERIFIED_CACHE_ENTRIES`]
/// it is emptied and refills with what is sent. A clone starts empty,
/// since a cloned store may be given other keys.
#[derive(Default)]
pub struct VerifiedCache(std::sync::Mutex<std::collections::HashMap<String, Verified>>);

/// Verified envelopes kept at most (a statement is ~1 KiB).
pub const VERIFIED_CACHE_ENTRIES: usize = 1024;

impl VerifiedCache {
    fn get(&self, digest: &str) -> Option<Verified> {
        self.0.lock().ok()?.get(digest).cloned()
    }

    fn put(&self, digest: &str, verified: &Verified) {
        if let Ok(mut m) = self.0.lock() {
            if m.len() >= VERIFIED_CACHE_ENTRIES {
                m.clear();
            }
            m.insert(digest.to_string(), verified.clone());
        }
    }

    /// How many envelopes are kept.
    pub fn len(&self) -> usize {
        self.0.lock().map(|m| m.len()).unwrap_or(0)
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Clone for VerifiedCache {
    fn clone(&self) -> Self {
        VerifiedCache::default()
    }
}

impl std::fmt::Debug for VerifiedCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "VerifiedCache({} envelopes)", self.len())
    }
}

/// An envelope whose signature verified: the key that signed it and the
/// statement it carries.
#[derive(Debug, Clone)]
pub struct Verified {
    pub keyid: String,
    pub statement: Statement,
    /// `sha256:` of the payload (the statement's bytes as signed).
    pub statement_digest: String,
}

impl EvidenceTrust {
    /// Loads the configured keys; relative files are read from `base`.
    pub fn load(
        keys: &[KeyConfig],
        require_known_predicates: bool,
        base: &Path,
    ) -> Result<Self, AttestError> {
        let mut out = Vec::new();
        for (i, k) in keys.iter().enumerate() {
            let path = base.join(&k.file);
            let origin = format!("evidence.keys[{i}].file ({})", path.display());
            let text = std::fs::read_to_string(&path).map_err(|e| AttestError::Key {
                path: origin.clone(),
                message: e.to_string(),
            })?;
            let (key, default_id) = PublicKey::from_pem(&text, &origin)?;
            if k.predicates.is_empty() {
                return Err(AttestError::Key {
                    path: format!("evidence.keys[{i}].predicates"),
                    message: "list the predicate types this key may attest".into(),
                });
            }
            let keyid = k.keyid.clone().unwrap_or(default_id);
            if out.iter().any(|t: &TrustedKey| t.keyid == keyid) {
                return Err(AttestError::Key {
                    path: format!("evidence.keys[{i}].keyid"),
                    message: format!("key id '{keyid}' is configured twice"),
                });
            }
            out.push(TrustedKey {
                keyid,
                key,
                predicates: k.predicates.clone(),
            });
        }
        Ok(EvidenceTrust {
            keys: out,
            require_known_predicates,
            verified: VerifiedCache::default(),
        })
    }

    /// Verifies an envelope's signature with a trusted key and parses its
    /// statement; then checks that the key may attest the statement's
    /// predicate type. Signatures whose `keyid` is empty are tried with
    /// every key (DSSE makes the hint optional).
    pub fn verify(&self, env: &Envelope) -> Result<Verified, AttestError> {
        let (key, payload) = signer(env, self.keys.iter().map(|k| (k.keyid.as_str(), &k.key, k)))?;
        let statement = Statement::parse(&payload)?;
        if !key.predicates.contains(&statement.predicate_type) {
            return Err(AttestError::PredicateNotAllowed {
                keyid: key.keyid.clone(),
                predicate: statement.predicate_type.clone(),
            });
        }
        Ok(Verified {
            keyid: key.keyid.clone(),
            statement,
            statement_digest: super::sha256_digest(&payload),
        })
    }

    /// [`EvidenceTrust::verify`] for an envelope given as its JSON `text`,
    /// with the envelope's `sha256:` digest (what receipts cite): an
    /// envelope these keys verified before is answered from
    /// [`VerifiedCache`] without parsing it or checking its signature
    /// again. The digest is computed here from `text`, never taken from the
    /// caller, so a cache entry can only ever answer for the bytes that
    /// verified.
    pub fn verify_text(&self, text: &str) -> Result<(Verified, String), AttestError> {
        let digest = super::sha256_digest(text.as_bytes());
        if let Some(hit) = self.verified.get(&digest) {
            return Ok((hit, digest));
        }
        let verified = self.verify(&Envelope::parse(text)?)?;
        self.verified.put(&digest, &verified);
        Ok((verified, digest))
    }
}

/// The one DSSE signer selection (issue: it was written twice, for
/// evidence and for receipts): the first signature that verifies over the
/// envelope's PAE with a candidate key. A signature names its key by
/// `keyid`; an empty `keyid` is tried with every key (DSSE makes the hint
/// optional). The error says whether a named key failed to verify (the
/// payload or signature was altered) or no signature was by a known key.
///
/// Returns the chosen key's value and the payload's bytes.
pub(crate) fn signer<'k, T>(
    env: &Envelope,
    keys: impl Iterator<Item = (&'k str, &'k PublicKey, T)> + Clone,
) -> Result<(T, Vec<u8>), AttestError> {
    if env.payload_type != PAYLOAD_TYPE {
        return Err(AttestError::Envelope(format!(
            "payloadType is '{}', expected '{PAYLOAD_TYPE}'",
            env.payload_type
        )));
    }
    let payload = env.payload_bytes()?;
    let pae = super::dsse::pae(&env.payload_type, &payload);
    let mut failed: Option<String> = None;
    for s in &env.signatures {
        let Some(sig) = decode_base64(&s.sig) else {
            return Err(AttestError::Envelope(format!(
                "signature by '{}' is not base64",
                s.keyid
            )));
        };
        let candidates = keys
            .clone()
            .filter(|(keyid, _, _)| s.keyid.is_empty() || *keyid == s.keyid);
        for (keyid, key, value) in candidates {
            if key.verify(&pae, &sig) {
                return Ok((value, payload));
            }
            failed.get_or_insert_with(|| keyid.to_string());
        }
    }
    Err(match failed {
        Some(keyid) => AttestError::BadSignature { keyid },
        None => AttestError::UntrustedKey(
            env.signatures
                .iter()
                .map(|s| format!("'{}'", s.keyid))
                .collect::<Vec<_>>()
                .join(", "),
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::pkcs8::EncodePublicKey;

    #[test]
    fn the_default_key_id_is_the_sha256_of_the_spki_der() {
        let sk = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        let pem = sk
            .verifying_key()
            .to_public_key_pem(Default::default())
            .unwrap();
        let der = sk.verifying_key().to_public_key_der().unwrap();
        let (key, id) = PublicKey::from_pem(&pem, "k.pem").unwrap();
        assert_eq!(id, hex::encode(Sha256::digest(der.as_bytes())));
        assert_eq!(key.algorithm(), "ed25519");
    }

    #[test]
    fn a_private_key_pem_is_refused_naming_its_origin() {
        let text = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIAcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcH\n-----END PRIVATE KEY-----\n";
        let e = PublicKey::from_pem(text, "evidence.keys[0].file").unwrap_err();
        assert!(e.to_string().contains("evidence.keys[0].file"), "{e}");
        assert!(e.to_string().contains("PUBLIC KEY"), "{e}");
    }

    #[test]
    fn p256_der_signatures_verify_with_high_and_low_s() {
        use p256::ecdsa::signature::Signer;
        let sk = p256::ecdsa::SigningKey::from_slice(&[9; 32]).unwrap();
        let vk = PublicKey::P256(*sk.verifying_key());
        let sig: p256::ecdsa::Signature = sk.sign(b"message");
        let low = sig.normalize_s().unwrap_or(sig);
        // The same signature with s replaced by n - s also verifies ECDSA.
        let (r, s) = low.split_scalars();
        let high = p256::ecdsa::Signature::from_scalars(r, -*s).unwrap();
        for s in [low, high] {
            assert!(vk.verify(b"message", s.to_der().as_bytes()));
        }
        assert!(!vk.verify(b"messagE", low.to_der().as_bytes()));
    }

    fn evaluation_store(key: &ed25519_dalek::SigningKey) -> EvidenceTrust {
        EvidenceTrust {
            keys: vec![TrustedKey {
                keyid: "ev".into(),
                key: PublicKey::Ed25519(key.verifying_key()),
                predicates: vec![super::super::predicates::EVALUATION.into()],
            }],
            ..Default::default()
        }
    }

    fn evaluation_envelope(key: &ed25519_dalek::SigningKey) -> String {
        let payload = serde_json::to_vec(&serde_json::json!({
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [{"name": "model", "digest": {"sha256": "ab".repeat(32)}}],
            "predicateType": super::super::predicates::EVALUATION,
            "predicate": {"metric": "accuracy", "value": 0.93, "threshold": 0.9,
                "comparison": ">=", "dataset": "holdout", "samples": 5000}
        }))
        .unwrap();
        let env = Envelope::sign_ed25519(PAYLOAD_TYPE, &payload, "ev", key);
        serde_json::to_string(&env).unwrap()
    }

    #[test]
    fn an_envelope_verified_once_is_answered_alike_from_the_cache() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[3; 32]);
        let trust = evaluation_store(&key);
        let text = evaluation_envelope(&key);
        let (first, digest) = trust.verify_text(&text).unwrap();
        assert_eq!(digest, super::super::sha256_digest(text.as_bytes()));
        assert_eq!(trust.verified.len(), 1);
        let (again, _) = trust.verify_text(&text).unwrap();
        assert_eq!(
            (
                again.keyid,
                again.statement_digest,
                again.statement.predicate_type
            ),
            (
                first.keyid,
                first.statement_digest,
                first.statement.predicate_type
            )
        );
        assert_eq!(trust.verified.len(), 1);
    }

    #[test]
    fn an_envelope_that_fails_to_verify_is_refused_every_time_and_never_kept() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[3; 32]);
        let stranger = ed25519_dalek::SigningKey::from_bytes(&[4; 32]);
        let trust = evaluation_store(&key);
        let text = evaluation_envelope(&stranger);
        for _ in 0..2 {
            assert!(trust.verify_text(&text).is_err());
        }
        assert!(trust.verified.is_empty());
        // A store with other keys does not inherit what this one verified.
        let good = evaluation_envelope(&key);
        trust.verify_text(&good).unwrap();
        let other = EvidenceTrust {
            keys: evaluation_store(&stranger).keys,
            ..trust.clone()
        };
        assert!(other.verified.is_empty());
        assert!(other.verify_text(&good).is_err());
    }
}
