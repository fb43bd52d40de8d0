//! How a policy set's members' answers become the set's one answer
//! (docs/policy-sets.md).
//!
//! Every member decides the same request; the set answers with the most
//! restrictive outcome any member gave, the union of their findings (each
//! naming its member) and obligations, and the stage fields of the members
//! that decided them. A member that failed closed already answered with the
//! decision's fail-closed outcome and a `policy.error` finding, so it pulls
//! the set to at least that outcome. Members that disagree on where a
//! release goes (`first_stage`, `next_stage` and its `traffic_percent`)
//! make the set fail closed with a `policy.conflict` finding: the host
//! never picks one of two stages on a policy's behalf.

use sha2::{Digest, Sha256};

use super::{DecisionKind, Finding, FindingSeverity, Outcome, PolicyRef, Verdict};

/// The code of the finding raised when members disagree on a stage.
pub const CONFLICT: &str = "policy.conflict";

/// How restrictive an outcome is within its decision: higher wins.
/// gate: deny > allow; progression: suspend > rollback > hold > promote;
/// monitoring: suspend > rollback > alert > healthy.
pub fn restrictiveness(outcome: Outcome) -> u8 {
    match outcome {
        Outcome::Allow | Outcome::Promote | Outcome::Healthy => 0,
        Outcome::Deny | Outcome::Hold | Outcome::Alert => 1,
        Outcome::Rollback => 2,
        Outcome::Suspend => 3,
    }
}

/// The `policy` of a set's envelope: the set's name; as version, every
/// member's `name@version` joined by `+`; as digest, the SHA-256 of every
/// member's name and digest (so it changes when any member changes); and
/// the members themselves.
pub fn set_ref(name: &str, members: &[PolicyRef]) -> PolicyRef {
    let mut hash = Sha256::new();
    for m in members {
        hash.update(m.bundle.as_bytes());
        hash.update(b" ");
        hash.update(m.digest.as_bytes());
        hash.update(b"\n");
    }
    PolicyRef {
        bundle: name.to_string(),
        version: members
            .iter()
            .map(|m| format!("{}@{}", m.bundle, m.version))
            .collect::<Vec<_>>()
            .join("+"),
        digest: format!("sha256:{}", hex::encode(hash.finalize())),
        members: members.to_vec(),
    }
}

/// Combines the members' verdicts, given in the set's member order as
/// `(member name, verdict)`, into the set's verdict.
pub fn combine(kind: DecisionKind, members: Vec<(String, Verdict)>) -> Verdict {
    let outcome = members
        .iter()
        .map(|(_, v)| v.outcome)
        .max_by_key(|o| restrictiveness(*o))
        .unwrap_or(Outcome::fail_closed(kind));
    let mut set = Verdict {
        outcome,
        findings: Vec::new(),
        obligations: Vec::new(),
        first_stage: None,
        next_stage: None,
        traffic_percent: None,
        rollback_to: None,
    };
    let mut conflicts = Vec::new();
    // Who decided each stage field, for the conflict message.
    let mut first: Option<(String, String)> = None;
    let mut next: Option<(String, String, Option<f64>)> = None;
    for (name, v) in &members {
        if let Some(stage) = &v.first_stage {
            match &first {
                Some((by, s)) if s != stage => conflicts.push(format!(
                    "'{by}' gives first_stage '{s}', '{name}' gives '{stage}'"
                )),
                Some(_) => {}
                None => first = Some((name.clone(), stage.clone())),
            }
        }
        if let Some(stage) = &v.next_stage {
            match &next {
                Some((by, s, pct)) if s != stage || *pct != v.traffic_percent => {
                    conflicts.push(format!(
                        "'{by}' gives next_stage '{s}' at {}, '{name}' gives '{stage}' at {}",
                        percent(*pct),
                        percent(v.traffic_percent)
                    ))
                }
                Some(_) => {}
                None => next = Some((name.clone(), stage.clone(), v.traffic_percent)),
            }
        }
        if set.rollback_to.is_none() && v.outcome == Outcome::Rollback && outcome == v.outcome {
            set.rollback_to = v.rollback_to.clone();
        }
    }
    for (name, v) in members {
        set.findings.extend(v.findings.into_iter().map(|f| Finding {
            bundle: Some(name.clone()),
            ..f
        }));
        for o in v.obligations {
            if !set.obligations.contains(&o) {
                set.obligations.push(o);
            }
        }
    }
    // Obligations condition a positive gate or progression answer; a set
    // that denies or does not promote owes nothing, as a single policy
    // built on the SDK does.
    if kind != DecisionKind::Monitoring && restrictiveness(outcome) > 0 {
        set.obligations.clear();
    }
    if !conflicts.is_empty() {
        set.obligations.clear();
        set.findings.push(Finding {
            code: CONFLICT.into(),
            severity: FindingSeverity::Blocking,
            message: format!(
                "the set's members disagree on where the release goes: {}; failing closed",
                conflicts.join("; ")
            ),
            path: String::new(),
            controls: Vec::new(),
            bundle: None,
        });
        let closed = Outcome::fail_closed(kind);
        if restrictiveness(closed) > restrictiveness(set.outcome) {
            set.outcome = closed;
        }
        return set;
    }
    // The stage fields belong to the positive outcomes alone; a set that
    // did not end positive carries none.
    match set.outcome {
        Outcome::Allow => set.first_stage = first.map(|(_, s)| s),
        Outcome::Promote => {
            if let Some((_, s, pct)) = next {
                set.next_stage = Some(s);
                set.traffic_percent = pct;
            }
        }
        _ => {}
    }
    set
}

fn percent(p: Option<f64>) -> String {
    p.map(|p| format!("{p} %"))
        .unwrap_or_else(|| "no traffic_percent".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::Obligation;

    fn verdict(outcome: Outcome, codes: &[&str]) -> Verdict {
        let severity = if restrictiveness(outcome) == 0 {
            FindingSeverity::Warning
        } else {
            FindingSeverity::Blocking
        };
        Verdict {
            outcome,
            findings: codes
                .iter()
                .map(|c| Finding {
                    code: c.to_string(),
                    severity,
                    message: String::new(),
                    path: String::new(),
                    controls: Vec::new(),
                    bundle: None,
                })
                .collect(),
            obligations: Vec::new(),
            first_stage: None,
            next_stage: None,
            traffic_percent: None,
            rollback_to: None,
        }
    }

    fn set(kind: DecisionKind, members: Vec<Verdict>) -> Verdict {
        combine(
            kind,
            members
                .into_iter()
                .enumerate()
                .map(|(i, v)| (format!("m{i}"), v))
                .collect(),
        )
    }

    #[test]
    fn the_most_restrictive_outcome_wins_in_every_decision() {
        use Outcome::*;
        for (kind, order) in [
            (DecisionKind::Gate, vec![Allow, Deny]),
            (
                DecisionKind::Progression,
                vec![Promote, Hold, Rollback, Suspend],
            ),
            (
                DecisionKind::Monitoring,
                vec![Healthy, Alert, Rollback, Suspend],
            ),
        ] {
            for (i, a) in order.iter().enumerate() {
                for (j, b) in order.iter().enumerate() {
                    let got = set(kind, vec![verdict(*a, &["x.a"]), verdict(*b, &["x.b"])]);
                    assert_eq!(got.outcome, order[i.max(j)], "{kind}: {a:?} with {b:?}");
                }
            }
        }
    }

    #[test]
    fn findings_are_the_union_in_member_order_each_naming_its_member() {
        let got = set(
            DecisionKind::Gate,
            vec![
                verdict(Outcome::Deny, &["a.one", "a.two"]),
                verdict(Outcome::Allow, &["b.warn"]),
            ],
        );
        let named: Vec<(&str, Option<&str>)> = got
            .findings
            .iter()
            .map(|f| (f.code.as_str(), f.bundle.as_deref()))
            .collect();
        assert_eq!(
            named,
            [
                ("a.one", Some("m0")),
                ("a.two", Some("m0")),
                ("b.warn", Some("m1"))
            ]
        );
    }

    #[test]
    fn obligations_are_the_union_without_duplicates() {
        let ob = |c: &str| Obligation {
            code: c.into(),
            message: "m".into(),
            until: None,
        };
        let mut a = verdict(Outcome::Allow, &[]);
        a.obligations = vec![ob("o.shared"), ob("o.a")];
        let mut b = verdict(Outcome::Allow, &[]);
        b.obligations = vec![ob("o.b"), ob("o.shared")];
        let got = set(DecisionKind::Gate, vec![a.clone(), b]);
        let codes: Vec<&str> = got.obligations.iter().map(|o| o.code.as_str()).collect();
        assert_eq!(codes, ["o.shared", "o.a", "o.b"]);
        // A denied release owes nothing.
        let got = set(
            DecisionKind::Gate,
            vec![a, verdict(Outcome::Deny, &["x.no"])],
        );
        assert!(got.obligations.is_empty());
    }

    #[test]
    fn a_member_that_failed_closed_fails_the_set_closed() {
        let failed = Verdict::policy_error(DecisionKind::Gate, "trap", "boom");
        let mut allow = verdict(Outcome::Allow, &[]);
        allow.first_stage = Some("canary".into());
        let got = set(DecisionKind::Gate, vec![allow, failed]);
        assert_eq!(got.outcome, Outcome::Deny);
        assert_eq!(got.first_stage, None, "no stage on a negative outcome");
        assert!(got.is_policy_error());
        assert_eq!(got.findings[0].bundle.as_deref(), Some("m1"));
    }

    #[test]
    fn stages_come_from_the_member_that_decided_them() {
        let mut a = verdict(Outcome::Promote, &[]);
        a.next_stage = Some("regional".into());
        a.traffic_percent = Some(25.0);
        let b = verdict(Outcome::Promote, &[]);
        let got = set(DecisionKind::Progression, vec![b, a]);
        assert_eq!(got.outcome, Outcome::Promote);
        assert_eq!(got.next_stage.as_deref(), Some("regional"));
        assert_eq!(got.traffic_percent, Some(25.0));

        let mut g = verdict(Outcome::Allow, &[]);
        g.first_stage = Some("canary".into());
        let got = set(DecisionKind::Gate, vec![g.clone(), g]);
        assert_eq!(got.first_stage.as_deref(), Some("canary"));
    }

    #[test]
    fn members_that_disagree_on_a_stage_fail_the_set_closed_with_a_conflict() {
        let stage = |s: &str, pct: f64| {
            let mut v = verdict(Outcome::Promote, &[]);
            v.next_stage = Some(s.into());
            v.traffic_percent = Some(pct);
            v
        };
        for (a, b) in [
            (stage("regional", 25.0), stage("global", 100.0)),
            (stage("regional", 25.0), stage("regional", 50.0)),
        ] {
            let got = set(DecisionKind::Progression, vec![a, b]);
            assert_eq!(got.outcome, Outcome::Hold);
            assert_eq!(got.next_stage, None);
            assert_eq!(got.traffic_percent, None);
            let conflict = got.findings.last().unwrap();
            assert_eq!(conflict.code, CONFLICT);
            assert_eq!(conflict.severity, FindingSeverity::Blocking);
            assert!(conflict.message.contains("'m0'") && conflict.message.contains("'m1'"));
        }
        let first = |s: &str| {
            let mut v = verdict(Outcome::Allow, &[]);
            v.first_stage = Some(s.into());
            v
        };
        let got = set(DecisionKind::Gate, vec![first("canary"), first("pilot")]);
        assert_eq!(got.outcome, Outcome::Deny);
        assert_eq!(got.first_stage, None);
        assert!(got.findings.iter().any(|f| f.code == CONFLICT));
    }

    #[test]
    fn rollback_to_comes_from_the_first_member_that_decided_rollback() {
        let mut hold = verdict(Outcome::Hold, &["h.x"]);
        hold.rollback_to = Some("not this".into());
        let mut rb = verdict(Outcome::Rollback, &["r.x"]);
        rb.rollback_to = Some("drain the canary".into());
        let got = set(DecisionKind::Progression, vec![hold, rb]);
        assert_eq!(got.outcome, Outcome::Rollback);
        assert_eq!(got.rollback_to.as_deref(), Some("drain the canary"));
    }

    #[test]
    fn the_set_reference_names_every_member_and_changes_with_any_of_them() {
        let m = |n: &str, v: &str, d: &str| PolicyRef {
            bundle: n.into(),
            version: v.into(),
            digest: d.into(),
            members: Vec::new(),
        };
        let a = set_ref(
            "acme",
            &[
                m("ref", "1.1.0", "sha256:aa"),
                m("py", "0.1.0", "sha256:bb"),
            ],
        );
        let b = set_ref(
            "acme",
            &[
                m("ref", "1.1.0", "sha256:aa"),
                m("py", "0.1.1", "sha256:cc"),
            ],
        );
        assert_eq!(a.bundle, "acme");
        assert_eq!(a.version, "ref@1.1.0+py@0.1.0");
        assert_eq!(a.members.len(), 2);
        assert!(a.digest.starts_with("sha256:"));
        assert_ne!(a.digest, b.digest);
    }
}
