//! `stagegate test --coverage`: what a policy's test cases leave untried.
//!
//! Only the bundle (its `controls.json` and `params.json`), the test cases
//! and the decisions they got are read, never the policy's source, so this
//! works for a policy in any language:
//!
//! - **finding codes**: the codes the policy declares (`controls.json`'s
//!   `codes` list and its exact-code keys) and the codes any case names in
//!   its expectations; covered when some case's decision raised it;
//! - **outcomes**: each decision's possible outcomes that no case reached;
//! - **parameters**: the top-level `params.json` keys no case overrode.
//!
//! Decisions in which the policy failed (`policy.error`) reach nothing:
//! their outcome is the host's fail-closed answer, not the policy's.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::decision::{Controls, DecisionKind, Envelope, Outcome};

/// The outcomes each decision may return (docs/decisions.md#the-three-decisions).
fn outcomes(kind: DecisionKind) -> &'static [Outcome] {
    match kind {
        DecisionKind::Gate => &[Outcome::Allow, Outcome::Deny],
        DecisionKind::Progression => &[
            Outcome::Promote,
            Outcome::Hold,
            Outcome::Rollback,
            Outcome::Suspend,
        ],
        DecisionKind::Monitoring => &[
            Outcome::Healthy,
            Outcome::Alert,
            Outcome::Rollback,
            Outcome::Suspend,
        ],
    }
}

/// What the cases run so far tried.
#[derive(Debug, Default)]
pub(super) struct Coverage {
    produced: BTreeSet<String>,
    reached: BTreeSet<(&'static str, &'static str)>,
    named: BTreeSet<String>,
    overridden: BTreeSet<String>,
}

impl Coverage {
    /// A case about to run: the codes its expectations name and the
    /// parameters it overrides.
    pub(super) fn case<'a>(
        &mut self,
        named: impl IntoIterator<Item = &'a String>,
        params: Option<&serde_json::Map<String, serde_json::Value>>,
    ) {
        self.named.extend(named.into_iter().cloned());
        self.overridden
            .extend(params.into_iter().flat_map(|p| p.keys().cloned()));
    }

    /// A decision a case got.
    pub(super) fn decided(&mut self, envelope: &Envelope) {
        if envelope.is_policy_error() {
            return;
        }
        self.reached
            .insert((envelope.decision.as_str(), envelope.outcome.as_str()));
        self.produced.extend(envelope.codes().map(str::to_string));
    }

    /// The report against the bundle's declarations.
    pub(super) fn report(
        &self,
        controls: &Controls,
        params: &serde_json::Map<String, serde_json::Value>,
    ) -> Report {
        let declared: BTreeSet<String> = controls
            .codes
            .iter()
            .cloned()
            .chain(controls.map.keys().filter(|k| !k.ends_with('.')).cloned())
            .collect();
        let expected: BTreeSet<String> = declared.union(&self.named).cloned().collect();
        let uncovered = expected.difference(&self.produced).cloned().collect();
        let undeclared = self.produced.difference(&declared).cloned().collect();
        let unreached = DecisionKind::ALL
            .iter()
            .map(|&k| {
                let missing = outcomes(k)
                    .iter()
                    .map(|o| o.as_str())
                    .filter(|o| !self.reached.contains(&(k.as_str(), *o)))
                    .collect();
                (k.as_str(), missing)
            })
            .collect();
        let unused_params = params
            .keys()
            .filter(|k| !self.overridden.contains(*k))
            .cloned()
            .collect();
        Report {
            expected: expected.len(),
            uncovered,
            undeclared,
            unreached,
            unused_params,
        }
    }
}

/// What `--coverage` prints.
#[derive(Debug)]
pub(super) struct Report {
    /// Declared codes and codes named by the cases.
    pub expected: usize,
    /// Of those, the codes no case's decision raised.
    pub uncovered: Vec<String>,
    /// Codes raised that the policy does not declare.
    pub undeclared: Vec<String>,
    /// Per decision, the outcomes no case reached.
    pub unreached: BTreeMap<&'static str, Vec<&'static str>>,
    /// `params.json` keys no case overrode.
    pub unused_params: Vec<String>,
}

impl Report {
    /// Covered codes as a percentage of the expected ones (100 when the
    /// policy declares and the cases name none).
    pub(super) fn percent(&self) -> f64 {
        if self.expected == 0 {
            return 100.0;
        }
        let covered = self.expected - self.uncovered.len();
        covered as f64 * 100.0 / self.expected as f64
    }
}

fn list(items: &[impl AsRef<str>]) -> String {
    if items.is_empty() {
        "none".to_string()
    } else {
        items
            .iter()
            .map(AsRef::as_ref)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "coverage: {}/{} finding codes produced ({:.1}%)",
            self.expected - self.uncovered.len(),
            self.expected,
            self.percent()
        )?;
        writeln!(f, "  codes no case produced: {}", list(&self.uncovered))?;
        if !self.undeclared.is_empty() {
            writeln!(
                f,
                "  codes produced but not declared in controls.json: {}",
                list(&self.undeclared)
            )?;
        }
        for (kind, missing) in &self.unreached {
            writeln!(f, "  {kind} outcomes never reached: {}", list(missing))?;
        }
        write!(
            f,
            "  params.json keys no case overrode: {}",
            list(&self.unused_params)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::{Finding, FindingSeverity, PolicyRef, Timestamp, Verdict};

    fn envelope(kind: DecisionKind, outcome: Outcome, codes: &[&str]) -> Envelope {
        let findings = codes
            .iter()
            .map(|c| Finding {
                code: c.to_string(),
                severity: FindingSeverity::Blocking,
                message: String::new(),
                path: String::new(),
                controls: Vec::new(),
                bundle: None,
            })
            .collect();
        Envelope::new(
            kind,
            Verdict {
                outcome,
                findings,
                obligations: Vec::new(),
                first_stage: None,
                next_stage: None,
                traffic_percent: None,
                rollback_to: None,
            },
            PolicyRef {
                bundle: "b".into(),
                version: "1".into(),
                digest: "d".into(),
                members: Vec::new(),
            },
            Timestamp(0),
        )
    }

    #[test]
    fn uncovered_codes_unreached_outcomes_and_unused_params_are_named() {
        let controls = Controls::parse(
            br#"{"codes": ["a.one", "a.two"], "map": {"a.": ["X"], "b.three": ["Y"]}}"#,
        )
        .unwrap();
        let params = serde_json::json!({"p": 1, "q": 2});
        let mut c = Coverage::default();
        let over = serde_json::json!({"q": 3});
        c.case(&["c.named".to_string()], over.as_object());
        c.decided(&envelope(
            DecisionKind::Gate,
            Outcome::Deny,
            &["a.one", "z.extra"],
        ));
        c.decided(&envelope(
            DecisionKind::Gate,
            Outcome::Allow,
            &["policy.error"],
        ));
        let r = c.report(&controls, params.as_object().unwrap());
        assert_eq!(r.expected, 4, "a.one, a.two, b.three, c.named");
        assert_eq!(r.uncovered, ["a.two", "b.three", "c.named"]);
        assert_eq!(r.undeclared, ["z.extra"]);
        assert_eq!(
            r.unreached["gate"],
            ["allow"],
            "a policy error reaches nothing"
        );
        assert_eq!(r.unreached["monitoring"].len(), 4);
        assert_eq!(r.unused_params, ["p"]);
        assert_eq!(r.percent(), 25.0);
    }
}
