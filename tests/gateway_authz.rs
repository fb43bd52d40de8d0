//! The per-request exposure check over HTTP, as Envoy's ext_authz and
//! nginx's auth_request call it: headers in and out, bad requests, tokens,
//! any method and path suffix, and two replicas on one database agreeing on
//! every subject and following a transition made on the other within a
//! few refreshes.

use crate::support;

use std::time::{Duration, Instant};

use support::records::{Backend, World, deploy, observe, registered_release, token};
use support::server::{Request, Server};

/// How often each replica rebuilds its route table from the records.
const REFRESH_MS: u64 = 250;

fn check(
    s: &Server,
    method: &str,
    path: &str,
    who: Option<&str>,
    headers: &[(&str, &str)],
) -> support::server::Reply {
    Request::new(method, &s.url(path))
        .bearer(who.map(token).as_deref())
        .headers(headers)
        .send()
}

fn world(key: &std::path::Path) -> World {
    world_on(Backend::Sqlite, key).unwrap()
}

fn world_on(backend: Backend, key: &std::path::Path) -> Option<World> {
    World::new(
        backend,
        &format!(
            "\n[integrations.authz]\nkey_file = \"{}\"\nrefresh_ms = {REFRESH_MS}\n",
            key.display()
        ),
    )
}

#[test]
fn the_check_answers_from_headers_with_stage_release_and_why() {
    let keys = tempfile::tempdir().unwrap();
    let w = world(&keys.path().join("authz.key"));
    let s = w.start();
    let release = registered_release(&s, "2.3.0");
    let d = deploy(&s, &release);
    let dep = [("X-Stagegate-Deployment", d.as_str())];
    // The route table follows the creation.
    support::wait_until(
        "the new deployment in the route table",
        support::HANG,
        || {
            check(&s, "GET", "/v1/integrations/authz", Some("gw"), &dep)
                .header("x-stagegate-stage")
                .is_some()
        },
    );

    // Find one admitted and one refused subject at the pilot's 5 %.
    let mut admitted = None;
    let mut refused = None;
    for i in 0..400 {
        let subject = format!("user-{i}");
        let r = check(
            &s,
            "GET",
            "/v1/integrations/authz",
            Some("gw"),
            &[dep[0], ("X-Stagegate-Subject", &subject)],
        );
        assert_eq!(
            r.header("x-stagegate-stage"),
            Some("pilot"),
            "{} {}",
            r.status,
            r.body
        );
        assert_eq!(
            r.header("x-stagegate-release"),
            Some("credit-scoring@2.3.0")
        );
        let why = r.header("x-stagegate-decision").unwrap().to_string();
        match r.status {
            200 => {
                assert!(
                    why.starts_with("in: bucket ") && why.ends_with(" < 500"),
                    "{why}"
                );
                admitted.get_or_insert(subject);
            }
            403 => {
                assert!(
                    why.starts_with("out: bucket ") && why.ends_with(" >= 500"),
                    "{why}"
                );
                refused.get_or_insert(subject);
            }
            other => panic!("status {other}: {}", r.body),
        }
    }
    let (admitted, refused) = (admitted.unwrap(), refused.unwrap());
    // Any method, any path suffix (Envoy appends the original path).
    for (method, path) in [
        ("POST", "/v1/integrations/authz/v1/chat/completions"),
        ("DELETE", "/v1/integrations/authz/x"),
        ("GET", "/v1/integrations/authz"),
    ] {
        let r = check(
            &s,
            method,
            path,
            Some("gw"),
            &[dep[0], ("X-Stagegate-Subject", &admitted)],
        );
        assert_eq!(r.status, 200, "{method} {path}: {}", r.body);
        let r = check(
            &s,
            method,
            path,
            Some("gw"),
            &[dep[0], ("X-Stagegate-Subject", &refused)],
        );
        assert_eq!(r.status, 403, "{method} {path}");
    }
    // No subject: admitted only at 100 %.
    let r = check(&s, "GET", "/v1/integrations/authz", Some("gw"), &dep);
    assert_eq!(r.status, 403);
    assert_eq!(
        r.header("x-stagegate-decision"),
        Some("out: no subject, traffic 5% < 100%")
    );
    // Unknown deployment, neither or both names, no or the wrong token.
    let r = check(
        &s,
        "GET",
        "/v1/integrations/authz",
        Some("gw"),
        &[
            ("X-Stagegate-Deployment", "nope"),
            ("X-Stagegate-Subject", "a"),
        ],
    );
    assert_eq!(r.status, 403);
    assert_eq!(
        r.header("x-stagegate-decision"),
        Some("out: no active deployment 'nope'")
    );
    let r = check(&s, "GET", "/v1/integrations/authz", Some("gw"), &[]);
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("X-Stagegate-Deployment"), "{}", r.body);
    let r = check(
        &s,
        "GET",
        "/v1/integrations/authz",
        Some("gw"),
        &[dep[0], ("X-Stagegate-Ref", "serving/x")],
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(
        check(&s, "GET", "/v1/integrations/authz", None, &dep).status,
        401
    );
    assert_eq!(
        check(&s, "GET", "/v1/integrations/authz", Some("ops"), &dep).status,
        403
    );
    // Counted by deployment and result.
    let metrics = s.get("/metrics", None).body;
    assert!(
        metrics.contains(&format!(
            "stagegate_authz_total{{deployment=\"{d}\",result=\"in\"}}"
        )),
        "{metrics}"
    );
    assert!(metrics.contains("stagegate_authz_total{deployment=\"unknown\",result=\"out\"}"));
}

support::on_both_backends!(
    a_second_replica_assigns_the_same_buckets_and_follows_a_rollback_on_the_other
);

fn a_second_replica_assigns_the_same_buckets_and_follows_a_rollback_on_the_other(backend: Backend) {
    let keys = tempfile::tempdir().unwrap();
    let Some(w) = world_on(backend, &keys.path().join("authz.key")) else {
        return;
    };
    let a = w.start();
    let release = registered_release(&a, "2.3.0");
    let d = deploy(&a, &release);
    let b = w.start();
    for s in [&a, &b] {
        support::wait_until("the deployment in both route tables", support::HANG, || {
            check(
                s,
                "GET",
                "/v1/integrations/authz",
                Some("gw"),
                &[("X-Stagegate-Deployment", d.as_str())],
            )
            .header("x-stagegate-stage")
            .is_some()
        });
    }
    let ask = |s: &Server, subject: &str| {
        check(
            s,
            "GET",
            "/v1/integrations/authz",
            Some("gw"),
            &[
                ("X-Stagegate-Deployment", d.as_str()),
                ("X-Stagegate-Subject", subject),
            ],
        )
        .status
    };
    let on_a: Vec<u16> = (0..300).map(|i| ask(&a, &format!("u{i}"))).collect();
    let on_b: Vec<u16> = (0..300).map(|i| ask(&b, &format!("u{i}"))).collect();
    assert_eq!(on_a, on_b, "the replicas disagree on some subject");
    let admitted = format!("u{}", on_a.iter().position(|s| *s == 200).unwrap());

    // A rollback committed on replica A. B learns of it only from its own
    // periodic refresh: within a refresh or two, plus the time a query
    // takes. How long a query takes on this machine right now is measured
    // side by side: the rollback's own round trip (a decision and a
    // write) on A.
    let sent = Instant::now();
    let v = observe(&a, &d, 0.08, 20_000).json();
    let write = sent.elapsed();
    assert_eq!(v["deployment"]["status"], "rolled_back", "{v:#}");
    let took = support::wait_until("replica B to stop admitting", support::HANG, || {
        ask(&b, &admitted) == 403
    });
    println!(
        "replica B refused {} ms after the rollback on replica A answered (refresh {REFRESH_MS} ms, the rollback's round trip {} ms)",
        took.as_millis(),
        write.as_millis()
    );
    let bound = Duration::from_millis(4 * REFRESH_MS) + write * 4;
    assert!(
        took <= bound,
        "replica B took {took:?}: more than 4 refreshes of {REFRESH_MS} ms and 4 of the rollback's round trips ({write:?})"
    );
    let r = check(
        &b,
        "GET",
        "/v1/integrations/authz",
        Some("gw"),
        &[
            ("X-Stagegate-Deployment", d.as_str()),
            ("X-Stagegate-Subject", &admitted),
        ],
    );
    assert_eq!(
        r.header("x-stagegate-decision").unwrap(),
        format!("out: no active deployment '{d}'")
    );
}
