//! Attestations in and out: DSSE envelopes over in-toto Statements.
//!
//! Evidence a release pipeline types into JSON is only as good as the
//! pipeline; evidence it *signs* can be checked. This module verifies
//! attestations a release brings (docs/evidence-and-receipts.md) and signs
//! the receipts stagegate gives for its `allow` and `promote` decisions
//! (docs/evidence-and-receipts.md):
//!
//! - [`dsse`]: the envelope and its pre-authentication encoding (PAE);
//! - [`trust`]: public keys (Ed25519, ECDSA P-256) and the evidence trust
//!   store, each key limited to the predicate types it may attest;
//! - [`statement`]: in-toto Statement v1 and its subjects;
//! - [`predicates`]: the predicates stagegate understands, mapped into a
//!   release's evidence;
//! - [`receipt`]: SLSA verification summaries signed by the service.
//!
//! The wire formats are the ecosystem's own (securesystemslib, in-toto,
//! Sigstore), so the other end is never stagegate-specific code.

pub mod dsse;
pub mod predicates;
pub mod receipt;
pub mod statement;
pub mod trust;

pub use dsse::Envelope;
pub use predicates::Attested;
pub use receipt::{ReceiptKey, ReceiptSigner};
pub use statement::Statement;
pub use trust::{EvidenceTrust, PublicKey};

/// The DSSE payload type of in-toto Statements.
pub const PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

/// Why an attestation or a receipt was refused. The message is what the
/// caller reads after `attestations[i]: `, so it names the field or key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttestError {
    /// Not a DSSE envelope, or not one stagegate reads.
    #[error("not a DSSE envelope: {0}")]
    Envelope(String),
    /// The envelope is well formed but no signature verifies with the key
    /// it names: the payload or the signature was changed.
    #[error(
        "the signature by key '{keyid}' does not verify: the payload or the signature was altered"
    )]
    BadSignature { keyid: String },
    /// No signature is by a key of the trust store.
    #[error("signed by no trusted key (signatures by: {0})")]
    UntrustedKey(String),
    /// The payload is not an in-toto Statement v1.
    #[error("not an in-toto Statement v1: {0}")]
    Statement(String),
    /// No subject names the artifact the attestation is about.
    #[error("no subject has sha256 digest {expected} (subjects: {found})")]
    WrongSubject { expected: String, found: String },
    /// The signing key is trusted, but not for this predicate type.
    #[error("key '{keyid}' is not allowed to attest predicate type '{predicate}'")]
    PredicateNotAllowed { keyid: String, predicate: String },
    /// A predicate type stagegate cannot map, where the configuration
    /// requires known ones.
    #[error("unknown predicate type '{0}' (evidence.require_known_predicates = true)")]
    UnknownPredicate(String),
    /// A known predicate type whose content is not what it should be.
    #[error("predicate '{predicate}': {message}")]
    Predicate { predicate: String, message: String },
    /// A key file or key text that is not a usable public or secret key.
    #[error("{path}: {message}")]
    Key { path: String, message: String },
    /// A receipt that is not a PASSED verification summary.
    #[error("not a stagegate receipt: {0}")]
    Receipt(String),
}

/// Decodes JSON, an error naming the JSON path of the problem
/// (`/signatures/0/sig: invalid type ...`).
pub(crate) fn json_at_path<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, JsonError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(&mut de).map_err(|e| JsonError {
        pointer: json_pointer(e.path()),
        message: e.inner().to_string(),
    })
}

/// JSON that does not decode: where (a JSON pointer, "" for the root)
/// and why. Each caller says what the document was meant to be.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{pointer}: {message}")]
pub(crate) struct JsonError {
    pub(crate) pointer: String,
    pub(crate) message: String,
}

/// A serde path as a JSON pointer (`/signatures/0/sig`; "" for the root).
pub(crate) fn json_pointer(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    path.iter()
        .map(|s| match s {
            Segment::Seq { index } => format!("/{index}"),
            Segment::Map { key } => format!("/{key}"),
            Segment::Enum { variant } => format!("/{variant}"),
            Segment::Unknown => "/?".to_string(),
        })
        .collect()
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// The lowercase hex of a `sha256:<64 hex>` artifact digest (case
/// ignored), if it is one.
pub fn sha256_hex(digest: &str) -> Option<String> {
    let hex = digest.strip_prefix("sha256:")?;
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| hex.to_ascii_lowercase())
}
