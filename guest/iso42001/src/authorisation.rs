//! Is there a valid, documented authorisation resting on a completed review?
//!
//! Shared by the gate (each problem is its own finding) and progression
//! (any problem means `progression.unauthorised`), so both apply exactly the
//! same checks: progression must not accept an authorisation the gate
//! would refuse.

use stagegate_sdk::text::{non_blank, present};
use stagegate_sdk::time::{DAY_MS, rfc3339};
use stagegate_sdk::{Authorisation, Review, ReviewOutcome, RiskTier, Timestamp};

use crate::params::Params;

/// One reason an authorisation is not valid.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub code: &'static str,
    pub path: &'static str,
    pub message: String,
}

/// What the authorisation checks need from a request.
pub struct Context<'a> {
    pub now: Timestamp,
    pub tier: RiskTier,
    pub authorisation: Option<&'a Authorisation>,
    pub review: Option<&'a Review>,
    pub params: &'a Params,
}

/// Every problem with the authorisation, empty when it is valid.
pub fn problems(cx: &Context<'_>) -> Vec<Problem> {
    let mut out = Vec::new();
    let Some(auth) = cx.authorisation.filter(|a| present(&a.authorised_by)) else {
        out.push(Problem {
            code: "authorisation.missing",
            path: "/authorisation",
            message: "no deployment authorisation by an accountable party is recorded".into(),
        });
        return out;
    };
    if !present(&auth.role) {
        out.push(Problem {
            code: "authorisation.incomplete",
            path: "/authorisation/role",
            message: "the authorisation does not record the authorising party's role".into(),
        });
    }
    let Some(at) = auth.authorised_at else {
        out.push(Problem {
            code: "authorisation.incomplete",
            path: "/authorisation/authorised_at",
            message: "the authorisation does not record when it was given".into(),
        });
        return out;
    };
    if at > cx.now {
        out.push(Problem {
            code: "authorisation.not_yet_valid",
            path: "/authorisation/authorised_at",
            message: format!("the authorisation is dated {}, after now", rfc3339(at)),
        });
    }
    if let Some(exp) = auth.expires_at.filter(|exp| *exp < cx.now) {
        out.push(Problem {
            code: "authorisation.expired",
            path: "/authorisation/expires_at",
            message: format!("the authorisation expired at {}", rfc3339(exp)),
        });
    }
    let max_age_days = *cx.params.authorisation_max_age_days.get(cx.tier);
    let max_age_ms = (max_age_days * DAY_MS as f64) as i64;
    if cx.now.saturating_sub(at) > max_age_ms {
        out.push(Problem {
            code: "authorisation.expired",
            path: "/authorisation/authorised_at",
            message: format!(
                "the authorisation of {} is older than the {max_age_days} days allowed for {} risk",
                rfc3339(at),
                cx.tier.as_str()
            ),
        });
    }
    if let Some(done) = cx
        .review
        .and_then(|r| r.completed_at)
        .filter(|done| at < *done)
    {
        out.push(Problem {
            code: "authorisation.before_review",
            path: "/authorisation/authorised_at",
            message: format!(
                "authorised at {} but the review completed at {}: authorisation must rest on a completed review",
                rfc3339(at),
                rfc3339(done)
            ),
        });
    }
    out
}

/// Why a review does not count as a completed pre-deployment review.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReviewGap {
    /// No review, no completion time, or one in the future.
    Missing,
    /// The review concluded `rejected`.
    Rejected,
}

/// `None` when the review is completed (not in the future) and not rejected.
pub fn review_gap(review: Option<&Review>, now: Timestamp) -> Option<ReviewGap> {
    let Some(review) = review else {
        return Some(ReviewGap::Missing);
    };
    match review.completed_at {
        Some(done) if done <= now => {}
        _ => return Some(ReviewGap::Missing),
    }
    (review.outcome == Some(ReviewOutcome::Rejected)).then_some(ReviewGap::Rejected)
}

/// The reviewer's identity, if recorded.
pub fn reviewer(review: Option<&Review>) -> Option<&str> {
    review.and_then(|r| non_blank(&r.reviewer))
}
