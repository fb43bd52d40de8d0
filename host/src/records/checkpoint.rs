//! Signed checkpoints of the decision log.
//!
//! The service signs its Merkle tree's head (size, root hash, time) with
//! its own Ed25519 key; an auditor or a witness keeps the signed text
//! outside the database, and the service keeps its own last one outside
//! the database too ([`super::last`]). Later, any checkpoint proves that
//! today's log extends it (a consistency proof, RFC 9162 §2.1.4) and that
//! an entry is in it (an inclusion proof): a rewrite or a rewind, however
//! carefully re-hashed, is detected.
//!
//! The text is a C2SP `tlog-checkpoint` in `signed-note` form, the one
//! Go's checksum database and Sigstore's Rekor publish:
//!
//! ```text
//! stagegate/decision-log          <- origin: which log
//! 4812                            <- tree size: entries in the log
//! 3q2+7w1X…=                      <- base64 of the Merkle root (32 bytes)
//! time 2026-11-27T02:00:00Z       <- extension line: when it was signed
//!
//! — stagegate/decision-log AbCd…  <- em dash, key name, base64(key hash ‖ signature)
//! ```
//!
//! The signature is Ed25519 over every byte before the blank line; the key
//! hash is the first 4 bytes of SHA-256(name ‖ "\n" ‖ 0x01 ‖ public key),
//! so a note can carry several signatures (witnesses' cosignatures,
//! [`super::witness`]) and a verifier picks its own. docs/log.md.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::decision::Timestamp;

/// What a checkpoint states about the log.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Checkpoint {
    pub origin: String,
    /// The tree size: entries in the log (the head entry's seq).
    pub seq: i64,
    /// The Merkle tree's root hash at that size (hex).
    pub hash: String,
    pub at: Timestamp,
}

/// Why a checkpoint text was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    #[error("line {line}: {message}")]
    Malformed { line: usize, message: String },
    #[error("no signature by key '{name}' ({key_hash}) on the checkpoint")]
    NoSignature { name: String, key_hash: String },
    #[error(
        "the signature by '{0}' does not verify: the checkpoint was altered or signed by another key"
    )]
    BadSignature(String),
}

/// The first four bytes of SHA-256(name ‖ "\n" ‖ 0x01 ‖ key): how a signed
/// note names the key that made a signature (0x01 = Ed25519).
pub fn key_hash(name: &str, key: &VerifyingKey) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update([0x01]);
    h.update(key.as_bytes());
    let d = h.finalize();
    [d[0], d[1], d[2], d[3]]
}

/// The verifier key string of C2SP signed notes:
/// `name+hex(key hash)+base64(0x01 ‖ key)`.
pub fn verifier_key(name: &str, key: &VerifyingKey) -> String {
    let mut raw = vec![0x01];
    raw.extend_from_slice(key.as_bytes());
    format!(
        "{name}+{}+{}",
        hex::encode(key_hash(name, key)),
        B64.encode(raw)
    )
}

fn head_bytes(hash: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    if let Ok(bytes) = hex::decode(hash)
        && bytes.len() == 32
    {
        out.copy_from_slice(&bytes);
    }
    out
}

impl Checkpoint {
    /// The signed body: origin, size, root hash, one extension line.
    fn body(&self) -> String {
        format!(
            "{}\n{}\n{}\ntime {}\n",
            self.origin,
            self.seq,
            B64.encode(head_bytes(&self.hash)),
            self.at
        )
    }

    /// The checkpoint as a signed note, signed by `key` under the origin's
    /// name.
    pub fn sign(&self, key: &SigningKey) -> String {
        let body = self.body();
        let signature = key.sign(body.as_bytes());
        let mut blob = key_hash(&self.origin, &key.verifying_key()).to_vec();
        blob.extend_from_slice(&signature.to_bytes());
        format!("{body}\n\u{2014} {} {}\n", self.origin, B64.encode(blob))
    }

    /// Parses a signed note and checks its signature by `key` (named by
    /// the note's origin).
    pub fn open(note: &str, key: &VerifyingKey) -> Result<Checkpoint, CheckpointError> {
        let malformed = |line: usize, message: &str| CheckpointError::Malformed {
            line,
            message: message.to_string(),
        };
        let (body, signatures) = note.split_once("\n\n").ok_or_else(|| {
            malformed(
                0,
                "expected a blank line between the checkpoint and its signatures",
            )
        })?;
        let body = format!("{body}\n");
        let lines: Vec<&str> = body.lines().collect();
        if lines.len() < 3 {
            return Err(malformed(
                lines.len() + 1,
                "expected origin, size and root hash lines",
            ));
        }
        let origin = lines[0].to_string();
        if origin.is_empty() {
            return Err(malformed(1, "empty origin"));
        }
        let seq: i64 = lines[1]
            .parse()
            .ok()
            .filter(|n| *n >= 0)
            .ok_or_else(|| malformed(2, "expected the log size as a decimal number"))?;
        let root = B64
            .decode(lines[2])
            .ok()
            .filter(|b| b.len() == 32)
            .ok_or_else(|| malformed(3, "expected the root hash as base64 of 32 bytes"))?;
        let at = lines
            .iter()
            .skip(3)
            .find_map(|l| l.strip_prefix("time "))
            .and_then(Timestamp::parse)
            .ok_or_else(|| malformed(4, "expected a 'time RFC3339' extension line"))?;
        let hash = hex::encode(&root);
        let want = key_hash(&origin, key);
        let no_signature = || CheckpointError::NoSignature {
            name: origin.clone(),
            key_hash: hex::encode(want),
        };
        for line in signatures.lines().filter(|l| !l.is_empty()) {
            let Some(rest) = line.strip_prefix("\u{2014} ") else {
                continue;
            };
            let Some((name, blob)) = rest.rsplit_once(' ') else {
                continue;
            };
            let Ok(blob) = B64.decode(blob) else { continue };
            if name != origin || blob.len() != 68 || blob[..4] != want {
                continue;
            }
            let signature = Signature::from_slice(&blob[4..]).map_err(|_| no_signature())?;
            key.verify(body.as_bytes(), &signature)
                .map_err(|_| CheckpointError::BadSignature(name.to_string()))?;
            return Ok(Checkpoint {
                origin,
                seq,
                hash,
                at,
            });
        }
        Err(no_signature())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SigningKey {
        SigningKey::from_bytes(&[7u8; 32])
    }

    fn checkpoint() -> Checkpoint {
        Checkpoint {
            origin: "stagegate/decision-log".into(),
            seq: 42,
            hash: hex::encode([0xabu8; 32]),
            at: Timestamp(1_800_000_000_000),
        }
    }

    #[test]
    fn a_signed_checkpoint_opens_with_its_key_and_states_what_was_signed() {
        let note = checkpoint().sign(&key());
        assert!(note.starts_with("stagegate/decision-log\n42\n"), "{note}");
        assert!(
            note.contains("\n\n\u{2014} stagegate/decision-log "),
            "{note}"
        );
        assert_eq!(
            Checkpoint::open(&note, &key().verifying_key()).unwrap(),
            checkpoint()
        );
    }

    #[test]
    fn an_altered_checkpoint_does_not_verify() {
        let note = checkpoint().sign(&key()).replacen("\n42\n", "\n43\n", 1);
        assert!(matches!(
            Checkpoint::open(&note, &key().verifying_key()),
            Err(CheckpointError::BadSignature(_))
        ));
    }

    #[test]
    fn another_key_finds_no_signature_of_its_own() {
        let other = SigningKey::from_bytes(&[9u8; 32]);
        let note = checkpoint().sign(&key());
        assert!(matches!(
            Checkpoint::open(&note, &other.verifying_key()),
            Err(CheckpointError::NoSignature { .. })
        ));
    }

    #[test]
    fn garbage_is_refused_with_the_line_at_fault() {
        let err =
            Checkpoint::open("origin\nnot-a-number\nAAAA\n\n", &key().verifying_key()).unwrap_err();
        assert_eq!(
            err,
            CheckpointError::Malformed {
                line: 2,
                message: "expected the log size as a decimal number".into()
            }
        );
    }

    #[test]
    fn verifier_keys_follow_the_signed_note_layout() {
        let vk = verifier_key("stagegate/decision-log", &key().verifying_key());
        let parts: Vec<&str> = vk.splitn(3, '+').collect();
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[0], "stagegate/decision-log");
        assert_eq!(parts[1].len(), 8);
    }
}
