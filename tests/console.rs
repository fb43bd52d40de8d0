//! The auditor's console at `/ui` (docs/console.md): sign-in,
//! sessions, the pages over the scenario's records, and bad input — which
//! gets a clear page with a 4xx status, never a 500. The last test drives
//! a real browser (Debian's Chromium through Python's playwright).

use crate::support;

use std::time::Duration;

use serde_json::json;
use support::records::{
    Backend, World, block_on, deploy, get, observe, post, registered_release, token,
};
use support::server::{Reply, Request, Server};

/// A request that does not follow redirects (so a test sees the 303 and
/// its cookie), with `cookie` (a `name=value` pair), if any.
fn request(method: &str, s: &Server, path: &str, cookie: Option<&str>) -> Request {
    let req = Request::new(method, &s.url(path)).no_redirects();
    match cookie {
        Some(c) => req.header("Cookie", c),
        None => req,
    }
}

/// GET `path` with `cookie` (a `name=value` pair), if any.
fn page(s: &Server, path: &str, cookie: Option<&str>) -> Reply {
    request("GET", s, path, cookie)
        .header("Accept", "text/html")
        .send()
}

/// POSTs a form. A sign-in is sent as the console's own form sends it:
/// with the form's token, in its hidden field and its cookie.
fn form(s: &Server, path: &str, cookie: Option<&str>, fields: &[(&str, &str)]) -> Reply {
    let mut cookies: Vec<String> = cookie.map(str::to_string).into_iter().collect();
    let mut fields: Vec<(&str, String)> = fields.iter().map(|(k, v)| (*k, v.to_string())).collect();
    if path == "/ui/sign-in" {
        let f = page(s, "/ui/sign-in", None);
        if let Some(at) = f.body.find("name=\"csrf\" value=\"") {
            let token = f.body[at + 19..].split('"').next().unwrap().to_string();
            fields.push(("csrf", token));
        }
        if let Some(c) = f.header("set-cookie") {
            cookies.push(c.split(';').next().unwrap().trim().to_string());
        }
    }
    let joined = cookies.join("; ");
    let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    request(
        "POST",
        s,
        path,
        (!joined.is_empty()).then_some(joined.as_str()),
    )
    .form(&fields)
    .send()
}

/// Signs in as `who`; returns the session cookie as `name=value`.
fn sign_in(s: &Server, who: &str) -> String {
    let r = form(s, "/ui/sign-in", None, &[("token", &token(who))]);
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(r.header("location"), Some("/ui"));
    let set = r.header("set-cookie").expect("a session cookie");
    set.split(';').next().unwrap().trim().to_string()
}

/// The CSRF token of the sign-out form on a page.
fn csrf(body: &str) -> String {
    let at = body
        .find("name=\"csrf\" value=\"")
        .expect("a sign-out form")
        + 19;
    body[at..].split('"').next().unwrap().to_string()
}

fn world(extra: &str) -> (World, Server) {
    world_on(Backend::Sqlite, extra).expect("SQLite world")
}

/// A world on `backend`; None when PostgreSQL is not configured (and not
/// required).
fn world_on(backend: Backend, extra: &str) -> Option<(World, Server)> {
    let w = World::new(backend, extra)?;
    let s = w.start();
    Some((w, s))
}

/// The scenario's first deployment: pilot at 5 %, an alert at 3 % errors,
/// a held promotion to regional, then 8 % errors breach the rollback
/// trigger and the deployment rolls back by itself. Returns its id.
fn rolled_back_deployment(s: &Server) -> String {
    let release = registered_release(s, "2.3.0");
    let id = deploy(s, &release);
    assert_eq!(
        observe(s, &id, 0.03, 20_000).json()["decision"]["outcome"],
        "alert"
    );
    let r = post(
        s,
        "a.lee",
        &format!("/v1/deployments/{id}/reviews"),
        &json!({"outcome": "approved", "target_stage": "regional"}),
        &[],
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let r = post(
        s,
        "j.doe",
        &format!("/v1/deployments/{id}/progressions"),
        &json!({"target_stage": "regional", "authorisation": {"scope": ["regional"]}}),
        &[],
    );
    assert_eq!(r.json()["decision"]["outcome"], "hold", "{}", r.body);
    let r = observe(s, &id, 0.08, 20_000);
    assert_eq!(r.json()["decision"]["outcome"], "rollback", "{}", r.body);
    id
}

#[test]
fn signing_in_sets_an_httponly_strict_session_cookie_and_pages_forbid_scripts() {
    let (_w, s) = world("");
    let r = form(&s, "/ui/sign-in", None, &[("token", &token("audit"))]);
    assert_eq!(r.status, 303, "{}", r.body);
    let set = r.header("set-cookie").unwrap();
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/ui", "Max-Age=28800"] {
        assert!(set.contains(attr), "{attr} missing from {set}");
    }
    assert!(
        !set.contains("Secure"),
        "Secure only when configured: {set}"
    );
    let cookie = sign_in(&s, "audit");
    let r = page(&s, "/ui", Some(&cookie));
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.body.contains("Signed in as <strong>audit</strong>"),
        "{}",
        r.body
    );
    let csp = r.header("content-security-policy").unwrap();
    assert!(csp.contains("default-src 'self'"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(!r.body.contains("<script"), "no script on a console page");
    assert!(r.body.contains("href=\"/v1/bundles\""), "links to its JSON");
}

#[test]
fn a_secure_cookie_is_marked_secure_when_configured() {
    let (_w, s) = world("\n[console]\nsecure_cookie = true\n");
    let r = form(&s, "/ui/sign-in", None, &[("token", &token("audit"))]);
    assert!(r.header("set-cookie").unwrap().contains("; Secure"));
}

#[test]
fn pages_without_a_session_send_the_browser_to_the_sign_in_form() {
    let (_w, s) = world("");
    for path in [
        "/ui",
        "/ui/decisions",
        "/ui/systems/credit-scoring",
        "/ui/deployments/01J00000000000000000000000",
        "/ui/nowhere",
    ] {
        let r = page(&s, path, None);
        assert_eq!(r.status, 303, "{path}: {}", r.body);
        assert_eq!(r.header("location"), Some("/ui/sign-in"), "{path}");
        assert!(!r.body.contains("credit-scoring"), "{path}: nothing shown");
    }
    let r = page(&s, "/ui", Some("sg_session=made-up"));
    assert_eq!(r.status, 303);
    let r = page(&s, "/ui/sign-in", None);
    assert_eq!(r.status, 200);
    assert!(r.body.contains("action=\"/ui/sign-in\""));
    assert!(r.body.contains("Sign in to see the records"));
}

#[test]
fn an_unknown_token_is_401_and_a_token_without_a_console_role_is_403() {
    let (_w, s) = world("");
    let r = form(&s, "/ui/sign-in", None, &[("token", "not-a-token")]);
    assert_eq!(r.status, 401);
    assert!(r.body.contains("not known to this service"), "{}", r.body);
    // No session (the form again carries a fresh sign-in form cookie).
    assert!(
        r.header("set-cookie")
            .is_none_or(|c| !c.starts_with("sg_session="))
    );
    let r = form(&s, "/ui/sign-in", None, &[("token", &token("gw"))]);
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(
        r.body.contains("&#39;gw&#39;") || r.body.contains("&#x27;gw&#x27;"),
        "{}",
        r.body
    );
    assert!(r.body.contains("auditor, approver or operator"));
    assert!(
        r.header("set-cookie")
            .is_none_or(|c| !c.starts_with("sg_session="))
    );
    let r = form(&s, "/ui/sign-in", None, &[("password", "x")]);
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("field named"), "{}", r.body);
    for who in ["audit", "ops", "j.doe"] {
        sign_in(&s, who);
    }
}

#[test]
fn an_expired_session_shows_the_sign_in_page_saying_so() {
    let (_w, s) = world("\n[console]\nsession_seconds = 1\n");
    let cookie = sign_in(&s, "audit");
    assert_eq!(page(&s, "/ui", Some(&cookie)).status, 200);
    std::thread::sleep(Duration::from_millis(1_300));
    let r = page(&s, "/ui", Some(&cookie));
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location"), Some("/ui/sign-in?expired=1"));
    assert!(r.header("set-cookie").unwrap().contains("Max-Age=0"));
    let r = page(&s, "/ui/sign-in?expired=1", None);
    assert!(r.body.contains("session has expired"), "{}", r.body);
}

#[test]
fn signing_out_needs_the_session_csrf_token_and_revokes_the_session() {
    let (_w, s) = world("");
    let cookie = sign_in(&s, "audit");
    let body = page(&s, "/ui", Some(&cookie)).body;
    let token = csrf(&body);
    let r = form(&s, "/ui/sign-out", Some(&cookie), &[("csrf", "forged")]);
    assert_eq!(r.status, 403, "{}", r.body);
    let r = form(&s, "/ui/sign-out", Some(&cookie), &[]);
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(
        page(&s, "/ui", Some(&cookie)).status,
        200,
        "still signed in"
    );
    let r = form(&s, "/ui/sign-out", Some(&cookie), &[("csrf", &token)]);
    assert_eq!(r.status, 303);
    assert!(r.header("set-cookie").unwrap().contains("Max-Age=0"));
    let r = page(&s, "/ui", Some(&cookie));
    assert_eq!(r.status, 303, "the session is revoked on the server");
    assert_eq!(r.header("location"), Some("/ui/sign-in"));
}

#[test]
fn unknown_ids_get_404_pages_not_500() {
    let (_w, s) = world("");
    let cookie = sign_in(&s, "audit");
    for (path, says) in [
        (
            "/ui/systems/no-such-system",
            "no system &#39;no-such-system&#39;",
        ),
        (
            "/ui/deployments/01J00000000000000000000000",
            "no deployment",
        ),
        ("/ui/decisions/01J00000000000000000000000", "no decision"),
        ("/ui/deployments/%3Cscript%3E", "no deployment"),
        ("/ui/no/such/page", "no such page"),
    ] {
        let r = page(&s, path, Some(&cookie));
        assert_eq!(r.status, 404, "{path}: {}", r.body);
        let body = r.body.replace("&#x27;", "&#39;");
        assert!(body.contains(says), "{path}: wanted {says} in {}", r.body);
        assert!(!r.body.contains("<script>"), "{path}: escaped");
    }
}

#[test]
fn malformed_filters_get_400_pages_naming_the_parameter() {
    let (_w, s) = world("");
    let cookie = sign_in(&s, "audit");
    for (query, names) in [
        ("kind=bogus", "Filter &#39;kind&#39;"),
        ("outcome=maybe", "Filter &#39;outcome&#39;"),
        ("from=yesterday", "Filter &#39;from&#39;"),
        (
            "from=2026-11-02T00:00&to=2026-11-01T00:00",
            "Filter &#39;to&#39;",
        ),
        ("before=-1", "Filter &#39;before&#39;"),
        ("limit=100000", "Filter &#39;limit&#39;"),
        ("code=%3Cscript%3E", "Filter &#39;code&#39;"),
        ("colour=red", "Filter &#39;colour&#39;"),
    ] {
        let r = page(&s, &format!("/ui/decisions?{query}"), Some(&cookie));
        assert_eq!(r.status, 400, "{query}: {}", r.body);
        let body = r.body.replace("&#x27;", "&#39;");
        assert!(
            body.contains(names),
            "{query}: wanted {names} in {}",
            r.body
        );
        assert!(!r.body.contains("<script>"), "{query}: escaped");
    }
    let r = page(
        &s,
        "/ui/decisions?from=2026-11-01T00:00&to=2026-11-27T05:00:00Z&kind=gate",
        Some(&cookie),
    );
    assert_eq!(r.status, 200, "{}", r.body);
}

#[test]
fn every_value_is_html_escaped() {
    let (_w, s) = world("");
    let r = post(
        &s,
        "ops",
        "/v1/systems",
        &json!({"id": "esc", "name": "<script>alert(1)</script>", "risk_tier": "low",
                "escalation_contact": "\"><img src=x onerror=alert(2)>"}),
        &[],
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let cookie = sign_in(&s, "audit");
    for path in ["/ui", "/ui/systems/esc"] {
        let r = page(&s, path, Some(&cookie));
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        assert!(!r.body.contains("<script>alert"), "{path}");
        assert!(!r.body.contains("<img src=x"), "{path}");
        assert!(
            r.body.contains("&#60;script&#62;alert(1)&#60;/script&#62;"),
            "{path}: {}",
            r.body
        );
    }
}

support::on_both_backends!(
    the_pages_tell_the_rolled_back_deployments_story,
    the_decision_log_pages_by_keyset_without_repeating_or_skipping,
    the_deployment_page_proves_its_entries_by_inclusion_and_names_an_altered_one,
);

fn the_pages_tell_the_rolled_back_deployments_story(backend: Backend) {
    let Some((_w, s)) = world_on(backend, "") else {
        return;
    };
    let id = rolled_back_deployment(&s);
    let cookie = sign_in(&s, "audit");

    let r = page(&s, "/ui", Some(&cookie));
    assert!(r.body.contains("/ui/systems/credit-scoring"), "{}", r.body);
    assert!(r.body.contains("rolled back"), "{}", r.body);
    assert!(r.body.contains("iso42001-reference"), "bundles listed");

    let r = page(&s, "/ui/systems/credit-scoring", Some(&cookie));
    assert_eq!(r.status, 200, "{}", r.body);
    for text in [
        "Release 2.3.0",
        "j.doe",
        "Head of AI Risk",
        "EU only",
        "D-7",
        "within tolerance, monitored",
        "What users are told",
    ] {
        assert!(r.body.contains(text), "system page lacks {text}");
    }

    let r = page(&s, &format!("/ui/deployments/{id}"), Some(&cookie));
    assert_eq!(r.status, 200, "{}", r.body);
    let b = &r.body;
    assert!(b.contains("<svg"), "server-rendered charts");
    let pilot = b.find("pilot 5%").expect("the timeline names the pilot");
    let rollback = b
        .find(">rolled back at pilot<")
        .expect("the timeline names the rollback");
    assert!(pilot < rollback, "pilot, then rollback");
    assert!(
        b.contains("<h3 id=\"metric-1\">error_rate</h3>"),
        "a chart per metric"
    );
    assert!(
        b.contains("rollback trigger &#62; 0.05"),
        "trigger drawn as a line"
    );
    assert!(
        b.contains("<code>trigger.rollback</code>: <span class=\"control\">ISO/IEC 42001:2023"),
        "{b}"
    );
    assert!(b.contains(&format!("/v1/deployments/{id}/record?format=oscal")));
    assert!(
        b.contains("<span class=\"badge good\">proven</span>"),
        "inclusion proof"
    );

    let r = page(&s, "/ui/decisions?code=trigger.rollback", Some(&cookie));
    assert_eq!(r.status, 200);
    assert_eq!(
        r.body.matches("<tr>").count() - 1,
        1,
        "one rollback: {}",
        r.body
    );
    let link = "href=\"/ui/decisions/";
    let at = r.body.find(link).unwrap() + link.len();
    let decision = r.body[at..].split('"').next().unwrap().to_string();
    let r = page(&s, &format!("/ui/decisions/{decision}"), Some(&cookie));
    assert_eq!(r.status, 200, "{}", r.body);
    for text in [
        "Request hash",
        "sha256:",
        "Bundle digest",
        "trigger.rollback",
        "ISO/IEC 42001:2023 A.6.2.",
    ] {
        assert!(r.body.contains(text), "decision page lacks {text}");
    }
    // `trigger.roll` is not a prefix match.
    let r = page(&s, "/ui/decisions?code=trigger.roll", Some(&cookie));
    assert!(r.body.contains("No decision matches"), "{}", r.body);
}

/// The `seq` of the first log entry of `decision_id`.
fn seq_of(w: &World, decision_id: &str) -> i64 {
    let url = w.database.clone();
    let id = decision_id.to_string();
    block_on(async move {
        sqlx::any::install_default_drivers();
        let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&url)
            .await
            .unwrap();
        let row =
            sqlx::query("SELECT seq FROM decision_log WHERE decision_id = $1 ORDER BY seq LIMIT 1")
                .bind(id)
                .fetch_one(&mut conn)
                .await
                .unwrap();
        sqlx::Row::try_get(&row, "seq").unwrap()
    })
}

/// Plays someone with write access to the database who alters entry
/// `seq`'s outcome and stores the altered entry's leaf hash in the tree,
/// so that the row and its stored leaf agree again.
fn rewrite_entry_and_its_leaf(w: &World, seq: i64, outcome: &str) {
    let url = w.database.clone();
    let outcome = outcome.to_string();
    block_on(async move {
        use stagegate::records::{chain, merkle};
        sqlx::any::install_default_drivers();
        let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&url)
            .await
            .unwrap();
        let row = sqlx::query(&format!("{} WHERE seq = $1", chain::SELECT))
            .bind(seq)
            .fetch_one(&mut conn)
            .await
            .unwrap();
        let mut c = chain::from_row(&row).unwrap();
        c.entry.outcome = outcome;
        let leaf = merkle::leaf_hash(&chain::entry_bytes(c.seq, &c.entry, &c.prev_hash));
        sqlx::query("UPDATE decision_log SET outcome = $1 WHERE seq = $2")
            .bind(&c.entry.outcome)
            .bind(seq)
            .execute(&mut conn)
            .await
            .unwrap();
        let n = sqlx::query("UPDATE log_tree SET hash = $1 WHERE level = 0 AND idx = $2")
            .bind(hex::encode(leaf))
            .bind(seq - 1)
            .execute(&mut conn)
            .await
            .unwrap()
            .rows_affected();
        assert_eq!(n, 1, "entry {seq} has a leaf");
    });
}

/// The auditor's deployment page proves every entry of the deployment by
/// inclusion in the newest signed checkpoint: an altered entry elsewhere
/// in the log does not touch it, one of its own altered rows is named as
/// not proven, and so is one whose stored leaf was rewritten to match
/// (the signed root catches it).
fn the_deployment_page_proves_its_entries_by_inclusion_and_names_an_altered_one(backend: Backend) {
    let Some((w, s)) = world_on(backend, "") else {
        return;
    };
    let elsewhere = post(
        &s,
        "gw",
        "/v1/decisions/gate",
        &support::high_risk_gate(),
        &[],
    )
    .json()["decision_id"]
        .as_str()
        .unwrap()
        .to_string();
    let id = rolled_back_deployment(&s);
    let cookie = sign_in(&s, "audit");
    let proof_of = |body: &str| -> String {
        let at = body.find("id=\"chain\"").expect("the proof section");
        body[at..].split("</section>").next().unwrap().to_string()
    };
    let r = page(&s, &format!("/ui/deployments/{id}"), Some(&cookie));
    assert_eq!(r.status, 200, "{}", r.body);
    let proof = proof_of(&r.body);
    assert!(
        proof.contains("<span class=\"badge good\">proven</span>"),
        "{proof}"
    );
    assert!(
        proof.contains("are proven included in the checkpoint of"),
        "{proof}"
    );
    assert!(!proof.contains("Entries not proven"), "{proof}");

    // An entry of another caller, altered: not this deployment's to prove.
    w.sql(&format!(
        "UPDATE decision_log SET outcome = 'allow' WHERE decision_id = '{elsewhere}'"
    ));
    let proof = proof_of(&page(&s, &format!("/ui/deployments/{id}"), Some(&cookie)).body);
    assert!(
        proof.contains("<span class=\"badge good\">proven</span>"),
        "{proof}"
    );

    // The rollback decision's row, altered: named, the rest still proven.
    let r = page(&s, "/ui/decisions?code=trigger.rollback", Some(&cookie));
    let link = "href=\"/ui/decisions/";
    let at = r.body.find(link).expect("the rollback decision") + link.len();
    let rollback = r.body[at..].split('"').next().unwrap().to_string();
    let seq = seq_of(&w, &rollback);
    w.sql(&format!(
        "UPDATE decision_log SET outcome = 'healthy' WHERE seq = {seq}"
    ));
    let proof = proof_of(&page(&s, &format!("/ui/deployments/{id}"), Some(&cookie)).body);
    assert!(
        proof.contains("<span class=\"badge bad\">not proven</span>"),
        "{proof}"
    );
    let row = proof
        .split("<tr>")
        .find(|r| r.contains(&rollback))
        .unwrap_or_else(|| panic!("the altered entry is named: {proof}"));
    assert!(
        row.contains(&format!("<td class=\"num\">{seq}</td>"))
            && row.contains("its row no longer hashes to its leaf in the tree"),
        "{row}"
    );
    assert_eq!(
        proof.matches("<strong>not proven</strong>").count(),
        1,
        "only the altered entry: {proof}"
    );

    // Put back, it is proven again.
    w.sql(&format!(
        "UPDATE decision_log SET outcome = 'rollback' WHERE seq = {seq}"
    ));
    let proof = proof_of(&page(&s, &format!("/ui/deployments/{id}"), Some(&cookie)).body);
    assert!(
        proof.contains("<span class=\"badge good\">proven</span>"),
        "{proof}"
    );

    // History rewritten with every chain hash after it recomputed: the
    // chain walk the page did before (still the JSON export's `chain`
    // section) sees nothing wrong; the leaf in the tree does.
    w.rewrite_history(seq, "healthy");
    let export = get(&s, "audit", &format!("/v1/deployments/{id}/record")).json();
    assert_eq!(
        export["chain"]["log_verified"], true,
        "{:#}",
        export["chain"]
    );
    let proof = proof_of(&page(&s, &format!("/ui/deployments/{id}"), Some(&cookie)).body);
    assert!(
        proof.contains("<span class=\"badge bad\">not proven</span>"),
        "{proof}"
    );
    let row = proof
        .split("<tr>")
        .find(|r| r.contains(&rollback))
        .unwrap_or_else(|| panic!("the rewritten entry is named: {proof}"));
    assert!(
        row.contains("its row no longer hashes to its leaf in the tree"),
        "{row}"
    );

    // And with its leaf rewritten to match the row, the stored tree no
    // longer leads to the signed root.
    rewrite_entry_and_its_leaf(&w, seq, "healthy");
    let proof = proof_of(&page(&s, &format!("/ui/deployments/{id}"), Some(&cookie)).body);
    assert!(
        proof.contains("<span class=\"badge bad\">not proven</span>"),
        "{proof}"
    );
    let row = proof
        .split("<tr>")
        .find(|r| r.contains(&rollback))
        .unwrap_or_else(|| panic!("the rewritten entry is named: {proof}"));
    assert!(
        row.contains("its inclusion proof from the stored tree fails"),
        "{row}"
    );
}

fn the_decision_log_pages_by_keyset_without_repeating_or_skipping(backend: Backend) {
    let Some((_w, s)) = world_on(backend, "") else {
        return;
    };
    let id = rolled_back_deployment(&s);
    let all = get(&s, "audit", &format!("/v1/deployments/{id}/record")).json();
    let total = all["decisions"].as_array().unwrap().len();
    assert!(total >= 4, "{all}");
    let cookie = sign_in(&s, "audit");
    let mut seen: Vec<String> = Vec::new();
    let mut next = Some("/ui/decisions?limit=1".to_string());
    while let Some(path) = next.take() {
        let r = page(&s, &path, Some(&cookie));
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        let marker = "aria-label=\"Decision ";
        for (i, _) in r.body.match_indices(marker) {
            let rest = &r.body[i + marker.len()..];
            seen.push(rest[..rest.find('"').unwrap()].to_string());
        }
        // The pager's "older" link: `<a href="…" rel="next">`.
        next = r.body.find("\" rel=\"next\"").map(|end| {
            let start = r.body[..end].rfind("href=\"").unwrap() + 6;
            r.body[start..end].replace("&#38;", "&")
        });
        assert!(seen.len() <= total + 1, "paging does not end: {seen:?}");
    }
    let mut sorted = seen.clone();
    sorted.sort_by_key(|s| std::cmp::Reverse(s.parse::<i64>().unwrap()));
    sorted.dedup();
    assert_eq!(sorted, seen, "newest first, each once");
    assert_eq!(seen.len(), total, "{seen:?}");
}

#[test]
fn without_tokens_the_console_is_open_on_loopback_only() {
    let d = support::server::Deployment::new(
        "[[bundles]]\nname = \"iso42001-reference\"\nfile = \"ref.bundle\"\ndefault = true\n",
    );
    std::fs::write(d.path("ref.bundle"), d.reference("1.0.0")).unwrap();
    let s = d.start();
    let r = page(&s, "/ui", None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("open mode"), "{}", r.body);
    let r = request("GET", &s, "/ui", None)
        .header("Host", "console.example")
        .send();
    assert_eq!(r.status, 403, "a non-loopback Host is refused: {}", r.body);
}

/// The browser test's script: `tests/browser/console.py`.
#[test]
fn an_auditor_reads_the_rollback_in_a_real_browser() {
    if !support::require_tool("chromium") || !support::require_tool("playwright") {
        return;
    }
    let (_w, s) = world("");
    let id = rolled_back_deployment(&s);
    // A second, healthy deployment promoted to regional, so the overview
    // shows more than one story.
    let release = registered_release(&s, "2.3.1");
    let d2 = deploy(&s, &release);
    assert_eq!(
        observe(&s, &d2, 0.01, 20_000).json()["decision"]["outcome"],
        "healthy"
    );
    let r = post(
        &s,
        "a.lee",
        &format!("/v1/deployments/{d2}/reviews"),
        &json!({"outcome": "approved", "target_stage": "regional"}),
        &[],
    );
    assert_eq!(r.status, 201);
    let r = post(
        &s,
        "j.doe",
        &format!("/v1/deployments/{d2}/progressions"),
        &json!({"target_stage": "regional", "authorisation": {"scope": ["regional"]}}),
        &[],
    );
    assert_eq!(r.json()["decision"]["outcome"], "promote", "{}", r.body);
    assert_eq!(get(&s, "audit", "/v1/log/checkpoint").status, 200);

    let out = std::process::Command::new("python3")
        .arg(support::root().join("tests/browser/console.py"))
        .env("CONSOLE_URL", s.url(""))
        .env("CONSOLE_TOKEN", token("audit"))
        .env("CONSOLE_DEPLOYMENT", &id)
        .env(
            "CONSOLE_SCREENSHOTS",
            // Relative to the repository root, as docs/console.md says.
            std::env::var_os("STAGEGATE_SCREENSHOTS")
                .filter(|d| !d.is_empty())
                .map(|d| support::root().join(d))
                .unwrap_or_default(),
        )
        .output()
        .expect("running tests/browser/console.py");
    let (stdout, stderr) = support::text(&out);
    assert!(
        out.status.success(),
        "browser test failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("console browser test passed"), "{stdout}");
}
