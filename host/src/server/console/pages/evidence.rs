//! Evidence rows shared by the system and deployment pages: reviews,
//! authorisations and risk acceptances as the console shows them.

use super::*;

/// Evidence rows shared by the system and deployment pages.
pub struct ReviewView {
    pub reviewer: String,
    pub at: String,
    pub outcome: String,
    pub conditions: String,
    pub target: String,
    pub deployment: Option<String>,
}

pub struct AuthorisationView {
    pub by: String,
    pub role: String,
    pub at: String,
    pub expires: String,
    pub conditions: String,
    pub scope: String,
    pub deployment: Option<String>,
}

pub struct AcceptanceView {
    pub deficiency: String,
    pub by: String,
    pub at: String,
    pub expires: String,
    pub rationale: String,
}

fn list(v: &[String]) -> String {
    if v.is_empty() {
        "none".into()
    } else {
        v.join("; ")
    }
}

pub(super) fn review_view(
    k: &crate::records::export::Keyed<crate::records::model::Review>,
) -> ReviewView {
    let r = &k.record;
    ReviewView {
        reviewer: r.reviewer.clone(),
        at: time(r.completed_at),
        outcome: crate::records::evidence::wire_name(&r.outcome).replace('_', " "),
        conditions: list(&r.conditions),
        target: r
            .target_stage
            .clone()
            .unwrap_or_else(|| "the release".into()),
        deployment: k.deployment_id.clone(),
    }
}

pub(super) fn authorisation_view(
    k: &crate::records::export::Keyed<crate::records::model::Authorisation>,
) -> AuthorisationView {
    let a = &k.record;
    AuthorisationView {
        by: a.authorised_by.clone(),
        role: a.role.clone(),
        at: time(a.authorised_at),
        expires: a.expires_at.map_or_else(|| "no expiry".into(), time),
        conditions: list(&a.conditions),
        scope: a
            .scope
            .as_ref()
            .map_or_else(|| "all stages".into(), |s| s.join(", ")),
        deployment: k.deployment_id.clone(),
    }
}

pub(super) fn acceptance_view(
    k: &crate::records::export::Keyed<crate::records::export::AcceptanceOf>,
) -> AcceptanceView {
    let a = &k.record.acceptance;
    AcceptanceView {
        deficiency: k.record.deficiency_id.clone(),
        by: a.accepted_by.clone(),
        at: time(a.accepted_at),
        expires: a.expires_at.map_or_else(|| "no expiry".into(), time),
        rationale: a.rationale.clone(),
    }
}
