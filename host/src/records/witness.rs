//! Witnesses: independent parties that cosign the log's checkpoints after
//! checking that each extends the last one they cosigned, so that the log
//! cannot show one history to one auditor and another to the next.
//!
//! Cosignatures use the C2SP `tlog-cosignature` v1 form rather than a
//! plain signed-note signature: the witness signs
//! `cosignature/v1\ntime T\n` followed by the checkpoint body, so a
//! cosignature states *when* the witness saw the checkpoint, and its key
//! type (0x04) differs from a log's (0x01), so a witness key can never be
//! mistaken for the log's key. It is what the existing witness networks
//! verify. The note line is `— NAME base64(key hash ‖ T as u64 BE ‖
//! signature)`. docs/log.md, "Running a witness".

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use sha2::{Digest, Sha256};

/// The signed-note key types this service uses.
pub const ED25519: u8 = 0x01;
pub const COSIGNATURE_V1: u8 = 0x04;

/// The first four bytes of SHA-256(name ‖ "\n" ‖ type ‖ key).
pub fn key_hash(name: &str, kind: u8, key: &VerifyingKey) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update([kind]);
    h.update(key.as_bytes());
    let d = h.finalize();
    [d[0], d[1], d[2], d[3]]
}

/// A signed-note verifier key: `name+hex(key hash)+base64(type ‖ key)`.
pub fn verifier_key(name: &str, kind: u8, key: &VerifyingKey) -> String {
    let mut raw = vec![kind];
    raw.extend_from_slice(key.as_bytes());
    format!(
        "{name}+{}+{}",
        hex::encode(key_hash(name, kind, key)),
        B64.encode(raw)
    )
}

/// Why a verifier key or a witness cosignature was not accepted. The
/// CLI prints the message after the flag that gave the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WitnessError {
    #[error("expected a verifier key NAME+HASH+BASE64")]
    KeyFormat,
    #[error("the verifier key's name is empty or has spaces")]
    KeyName,
    #[error("the verifier key's key is not base64: {0}")]
    KeyBase64(String),
    #[error("the verifier key is not an Ed25519 (0x01) or cosignature/v1 (0x04) key")]
    KeyType,
    #[error("bad key length")]
    KeyLength,
    #[error("not an Ed25519 key: {0}")]
    NotEd25519(String),
    #[error("the verifier key's hash does not match its name and key")]
    KeyHash,
    #[error("expected a blank line between the checkpoint and its signatures")]
    NoBlankLine,
    #[error("{0} is not a cosignature/v1 witness key (type 0x04)")]
    NotAWitnessKey(String),
    #[error("bad timestamp")]
    Timestamp,
    #[error("{0}")]
    Signature(String),
    #[error("the cosignature by '{0}' does not verify")]
    BadCosignature(String),
    #[error("no cosignature by witness '{0}'")]
    NoCosignature(String),
}

/// A parsed verifier key: name, type and Ed25519 key.
#[derive(Debug, Clone)]
pub struct NoteKey {
    pub name: String,
    pub kind: u8,
    pub key: VerifyingKey,
}

/// Parses a verifier key string, checking its key hash.
pub fn parse_verifier_key(text: &str) -> Result<NoteKey, WitnessError> {
    let text = text.trim();
    // The name holds no '+'; the base64 key may.
    let mut parts = text.splitn(3, '+');
    let (Some(name), Some(hash), Some(raw)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(WitnessError::KeyFormat);
    };
    if name.is_empty() || name.contains(char::is_whitespace) {
        return Err(WitnessError::KeyName);
    }
    let raw = B64
        .decode(raw)
        .map_err(|e| WitnessError::KeyBase64(e.to_string()))?;
    if raw.len() != 33 || !matches!(raw[0], ED25519 | COSIGNATURE_V1) {
        return Err(WitnessError::KeyType);
    }
    let bytes: [u8; 32] = raw[1..].try_into().map_err(|_| WitnessError::KeyLength)?;
    let key =
        VerifyingKey::from_bytes(&bytes).map_err(|e| WitnessError::NotEd25519(e.to_string()))?;
    if hex::encode(key_hash(name, raw[0], &key)) != hash {
        return Err(WitnessError::KeyHash);
    }
    Ok(NoteKey {
        name: name.to_string(),
        kind: raw[0],
        key,
    })
}

/// The note's body (with its final newline) and its signature lines.
fn split(note: &str) -> Result<(String, Vec<&str>), WitnessError> {
    let (body, sigs) = note.split_once("\n\n").ok_or(WitnessError::NoBlankLine)?;
    Ok((
        format!("{body}\n"),
        sigs.lines().filter(|l| !l.is_empty()).collect(),
    ))
}

fn message(body: &str, time: u64) -> String {
    format!("cosignature/v1\ntime {time}\n{body}")
}

/// Adds `name`'s cosignature, at `time` (seconds since the epoch), to a
/// checkpoint note.
pub fn cosign(note: &str, name: &str, key: &SigningKey, time: u64) -> Result<String, WitnessError> {
    let (body, _) = split(note)?;
    let signature = key.sign(message(&body, time).as_bytes());
    let mut blob = key_hash(name, COSIGNATURE_V1, &key.verifying_key()).to_vec();
    blob.extend_from_slice(&time.to_be_bytes());
    blob.extend_from_slice(&signature.to_bytes());
    let mut out = note.to_string();
    if !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(&format!("\u{2014} {name} {}\n", B64.encode(blob)));
    Ok(out)
}

/// Checks `witness`'s cosignature on the note: `Ok(time)` when present
/// and valid.
pub fn verify_cosignature(note: &str, witness: &NoteKey) -> Result<u64, WitnessError> {
    if witness.kind != COSIGNATURE_V1 {
        return Err(WitnessError::NotAWitnessKey(witness.name.clone()));
    }
    let (body, sigs) = split(note)?;
    let want = key_hash(&witness.name, COSIGNATURE_V1, &witness.key);
    for line in sigs {
        let Some((name, blob)) = line
            .strip_prefix("\u{2014} ")
            .and_then(|r| r.rsplit_once(' '))
        else {
            continue;
        };
        let Ok(blob) = B64.decode(blob) else { continue };
        if name != witness.name || blob.len() != 76 || blob[..4] != want {
            continue;
        }
        let time = u64::from_be_bytes(
            blob[4..12]
                .try_into()
                .map_err(|_| WitnessError::Timestamp)?,
        );
        let signature = Signature::from_slice(&blob[12..])
            .map_err(|e| WitnessError::Signature(e.to_string()))?;
        witness
            .key
            .verify(message(&body, time).as_bytes(), &signature)
            .map_err(|_| WitnessError::BadCosignature(name.to_string()))?;
        return Ok(time);
    }
    Err(WitnessError::NoCosignature(witness.name.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cosignature_verifies_with_the_witness_key_and_not_after_an_edit() {
        let log = SigningKey::from_bytes(&[1; 32]);
        let note = super::super::checkpoint::Checkpoint {
            origin: "o".into(),
            seq: 3,
            hash: hex::encode([5u8; 32]),
            at: crate::decision::Timestamp(1_800_000_000_000),
        }
        .sign(&log);
        let w = SigningKey::from_bytes(&[2; 32]);
        let cosigned = cosign(&note, "example.org/witness", &w, 1_800_000_000).unwrap();
        let vkey = verifier_key("example.org/witness", COSIGNATURE_V1, &w.verifying_key());
        let parsed = parse_verifier_key(&vkey).unwrap();
        assert_eq!(verify_cosignature(&cosigned, &parsed), Ok(1_800_000_000));
        // The log's own signature still opens.
        super::super::checkpoint::Checkpoint::open(&cosigned, &log.verifying_key()).unwrap();
        let edited = cosigned.replacen("\n3\n", "\n4\n", 1);
        assert!(verify_cosignature(&edited, &parsed).is_err());
        assert!(verify_cosignature(&note, &parsed).is_err());
    }

    #[test]
    fn verifier_keys_with_a_wrong_hash_are_refused() {
        let w = SigningKey::from_bytes(&[2; 32]);
        let vkey = verifier_key("w", COSIGNATURE_V1, &w.verifying_key());
        let forged = vkey.replacen("w+", "x+", 1);
        assert!(parse_verifier_key(&forged).is_err());
        // Keys whose base64 holds '+' parse.
        for seed in 0..64u8 {
            let k = SigningKey::from_bytes(&[seed; 32]);
            let v = verifier_key("w", COSIGNATURE_V1, &k.verifying_key());
            assert!(parse_verifier_key(&v).is_ok(), "{v}");
        }
    }
}
