//! A policy set deciding: every member answers the same request, and the
//! answers combine by `decision::combine` (docs/policy-sets.md).

use super::{ActivePolicy, Decided};
use crate::decision::{DecisionKind, Envelope, PolicyRef, Request, Timestamp, combine};

/// Decides `request` with every member of set `name`, in order. The caller
/// passes the members it resolved once for this decision, so the decision
/// sees one version of each whatever is activated meanwhile. The first
/// member failure (if any) is the set's error: a member that failed closed
/// fails the set closed.
pub fn decide(name: &str, members: &[&ActivePolicy], request: Request) -> Decided {
    let kind = request.kind();
    let now = request.now();
    let mut verdicts = Vec::with_capacity(members.len());
    let mut error = None;
    for m in members {
        let (mut verdict, e) = m.verdict(request.clone());
        m.controls.annotate(&mut verdict.findings);
        if error.is_none() {
            error = e;
        }
        verdicts.push((m.policy_ref.bundle.clone(), verdict));
    }
    Decided {
        envelope: Envelope::new(
            kind,
            combine::combine(kind, verdicts),
            set_ref(name, members),
            now,
        ),
        error,
    }
}

/// The fail-closed answer of the whole set when `error` kept it from
/// deciding (e.g. the task running it died).
pub fn fail_closed(
    name: &str,
    members: &[&ActivePolicy],
    kind: DecisionKind,
    now: Timestamp,
    error: super::PolicyError,
) -> Decided {
    Decided {
        envelope: Envelope::new(kind, error.verdict(kind), set_ref(name, members), now),
        error: Some(error),
    }
}

/// The envelope's `policy` for the set.
pub fn set_ref(name: &str, members: &[&ActivePolicy]) -> PolicyRef {
    let refs: Vec<PolicyRef> = members.iter().map(|m| m.policy_ref.clone()).collect();
    combine::set_ref(name, &refs)
}
