//! Every console page shows only what the API would give the same role
//! (issue 23): reviews, authorisations and risk acceptances are part of
//! the auditor's record (`GET /v1/deployments/{id}/record`), and the log's
//! checkpoint is the auditors' and operators'.

use crate::support;

use std::time::Duration;

use support::records::{Backend, World, deploy, registered_release, token};
use support::server::{Server, reply_of};

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .redirects(0)
        .timeout(Duration::from_secs(60))
        .build()
}

/// Signs in as `who` through the console's own form; the session cookie.
fn session(s: &Server, who: &str) -> String {
    let form = reply_of(agent().get(&s.url("/ui/sign-in")).call());
    assert_eq!(form.status, 200, "{}", form.body);
    let csrf = form
        .body
        .find("name=\"csrf\" value=\"")
        .map(|at| form.body[at + 19..].split('"').next().unwrap().to_string())
        .unwrap_or_default();
    let cookie = form
        .header("set-cookie")
        .map(|c| c.split(';').next().unwrap().trim().to_string())
        .unwrap_or_default();
    let r = reply_of(
        agent()
            .post(&s.url("/ui/sign-in"))
            .set("Cookie", &cookie)
            .send_form(&[("token", token(who).as_str()), ("csrf", csrf.as_str())]),
    );
    assert_eq!(r.status, 303, "{who}: {}", r.body);
    r.header("set-cookie")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .trim()
        .to_string()
}

fn page(s: &Server, cookie: &str, path: &str) -> String {
    let r = reply_of(agent().get(&s.url(path)).set("Cookie", cookie).call());
    assert_eq!(r.status, 200, "{path}: {}", r.body);
    r.body
}

/// What the release's approvers recorded (support::records::registered_release).
const ACCEPTANCE_RATIONALE: &str = "within tolerance, monitored";
const AUTHORISATION_TITLE: &str = "Head of AI Risk";

#[test]
fn the_system_page_shows_reviews_authorisations_and_acceptances_only_to_auditors() {
    let w = World::new(Backend::Sqlite, "").unwrap();
    let s = w.start();
    let release = registered_release(&s, "2.3.0");
    let deployment = deploy(&s, &release);
    // The API: only the auditor's record carries them.
    for who in ["ops", "a.lee"] {
        let r = support::records::get(&s, who, &format!("/v1/deployments/{deployment}/record"));
        assert_eq!(r.status, 403, "{who}: {}", r.body);
        let r = support::records::get(&s, who, &format!("/v1/releases/{release}"));
        assert_eq!(r.status, 200, "{who}: {}", r.body);
        assert!(
            !r.body.contains(ACCEPTANCE_RATIONALE),
            "the release API itself carries the acceptance: {}",
            r.body
        );
    }
    let audit = session(&s, "audit");
    let shown = page(&s, &audit, "/ui/systems/credit-scoring");
    assert!(
        shown.contains(ACCEPTANCE_RATIONALE) && shown.contains(AUTHORISATION_TITLE),
        "the auditor sees the release's acceptances and authorisations"
    );
    for who in ["ops", "a.lee"] {
        let cookie = session(&s, who);
        let shown = page(&s, &cookie, "/ui/systems/credit-scoring");
        assert!(
            !shown.contains(ACCEPTANCE_RATIONALE),
            "{who} is shown a risk acceptance, which the API gives auditors only"
        );
        assert!(
            !shown.contains(AUTHORISATION_TITLE),
            "{who} is shown an authorisation, which the API gives auditors only"
        );
        assert!(
            shown.contains("which the API gives to auditors only"),
            "{who} is told why the facts are not shown"
        );
        // The evidence the release API gives every reader stays.
        assert!(shown.contains("2.3.0"), "{who} sees the release");
    }
}

#[test]
fn the_decision_log_page_offers_the_checkpoint_only_to_roles_the_api_serves_it_to() {
    let w = World::new(Backend::Sqlite, "").unwrap();
    let s = w.start();
    let release = registered_release(&s, "2.3.0");
    deploy(&s, &release);
    for (who, served) in [("audit", true), ("ops", true), ("a.lee", false)] {
        let api = support::records::get(&s, who, "/v1/log/checkpoint");
        // 404 when checkpoints are not signed: the role may still ask.
        assert_eq!(
            api.status != 403,
            served,
            "{who}: the API answered {}",
            api.status
        );
        let cookie = session(&s, who);
        let shown = page(&s, &cookie, "/ui/decisions");
        assert_eq!(
            shown.contains("/v1/log/checkpoint"),
            served,
            "{who}: the decision log page's link to the checkpoint"
        );
    }
}
