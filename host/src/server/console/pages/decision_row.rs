//! A logged decision as the deployment, decision log and decision pages
//! list it, with the control references its finding codes map to.

use super::*;
use crate::records::chain::Chained;
use crate::server::App;
use crate::server::console::charts::outcome_class;

/// A finding of a logged decision: its code and the control references
/// the bundle maps it to.
pub struct FindingRow {
    pub code: String,
    pub controls: Vec<String>,
}

/// A decision as the console lists it.
pub struct DecisionRow {
    pub id: String,
    pub seq: i64,
    pub at: String,
    pub kind: String,
    pub outcome: String,
    pub class: &'static str,
    pub actor: String,
    pub deployment: Option<String>,
    pub bundle: String,
    pub findings: Vec<FindingRow>,
    /// Why, as the deployment's history recorded it.
    pub reason: Option<String>,
}

/// The control references of `code` under the active bundle `bundle`,
/// and a note when that bundle is not the one that decided.
fn controls(app: &App, bundle: &str, codes: &[String]) -> Vec<FindingRow> {
    let active = app.registry.slots().get(bundle).and_then(|s| s.active());
    codes
        .iter()
        .map(|c| FindingRow {
            code: c.clone(),
            controls: active
                .as_ref()
                .map(|a| a.policy.controls.lookup(c).to_vec())
                .unwrap_or_default(),
        })
        .collect()
}

pub(super) fn decision_row(app: &App, c: &Chained, reason: Option<String>) -> DecisionRow {
    let e = &c.entry;
    DecisionRow {
        id: e.decision_id.clone(),
        seq: c.seq,
        at: time(Timestamp(e.at)),
        kind: e.kind.clone(),
        outcome: e.outcome.clone(),
        class: outcome_class(&e.outcome),
        actor: e.actor.clone(),
        deployment: e.deployment_id.clone(),
        bundle: format!("{} {}", e.bundle, e.bundle_version),
        findings: controls(app, &e.bundle, &e.codes),
        reason,
    }
}
