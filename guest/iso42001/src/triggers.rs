//! Rollback and suspension triggers: the plan's bad conditions, checked
//! against the newest observation of each metric by both progression and
//! monitoring.
//!
//! Cost: one O(log m) lookup per trigger in the observations index, so
//! O(t log m) for t triggers — never a scan of the observations per trigger.

use stagegate_sdk::criteria::{self, Observations, describe};
use stagegate_sdk::{Findings, Plan};

/// What a breached trigger forces. A suspension outranks a rollback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Breach {
    Suspend,
    Rollback,
}

/// Reports every breached trigger and returns the strongest breach, if any.
pub fn check(plan: &Plan, obs: &Observations<'_>, f: &mut Findings) -> Option<Breach> {
    let mut forced = None;
    for (i, t) in plan.suspension_triggers.iter().enumerate() {
        if let Some(value) = criteria::breached(t, obs) {
            f.block(
                "trigger.suspension",
                format!("/plan/suspension_triggers/{i}"),
                format!(
                    "suspension trigger '{}' breached: observed {value}",
                    describe(t)
                ),
            );
            forced = Some(Breach::Suspend);
        }
    }
    let rollback = plan
        .rollback
        .as_ref()
        .map(|r| r.triggers.as_slice())
        .unwrap_or_default();
    for (i, t) in rollback.iter().enumerate() {
        if let Some(value) = criteria::breached(t, obs) {
            f.block(
                "trigger.rollback",
                format!("/plan/rollback/triggers/{i}"),
                format!(
                    "rollback trigger '{}' breached: observed {value}",
                    describe(t)
                ),
            );
            forced.get_or_insert(Breach::Rollback);
        }
    }
    forced
}
