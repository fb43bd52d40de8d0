//! `[evidence]` (which keys may attest a release's evidence) and
//! `[receipts]` (signed receipts of `allow` and `promote` decisions).

use std::path::PathBuf;

use serde::Deserialize;

/// The evidence trust store: `[[evidence.keys]]`, each a public key and
/// the predicate types it may attest.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvidenceConfig {
    /// Refuse attestations whose predicate type stagegate does not map into
    /// evidence (otherwise they are kept but used for nothing).
    pub require_known_predicates: bool,
    pub keys: Vec<crate::attest::trust::KeyConfig>,
}

/// Decision receipts.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReceiptsConfig {
    /// Sign a receipt for every `allow` and `promote`.
    pub enabled: bool,
    /// Ed25519 key (a `stagegate keygen` key) receipts are signed with;
    /// created on first start when the file does not exist. Default
    /// `DATA_DIR/keys/receipts/receipt` (a directory of its own, so the
    /// bundle trust store never takes it for a policy signer).
    pub key: Option<PathBuf>,
    /// `verifier.id` in every receipt: this service.
    pub verifier_id: String,
}

impl Default for ReceiptsConfig {
    fn default() -> Self {
        ReceiptsConfig {
            enabled: true,
            key: None,
            verifier_id: "https://stagegate.dev/verifier".into(),
        }
    }
}
