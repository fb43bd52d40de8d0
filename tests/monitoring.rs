//! Monitoring from the first minute: the scheduler notices silence and
//! breached triggers nobody posted, escalations reach their receiver once
//! and in order even across an outage, replicas share the schedule, and
//! the notice tells users what they rely on.

use crate::support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::receiver::Receiver;
use support::records::{Backend, World, deploy, get, observe, post, registered_release};
use support::wait_until;

/// Fast schedule for tests: a 300 ms interval in the intensive period.
const FAST: &str = "[scheduler]\nintensive_interval_ms = 300\ninterval_ms = 300\ntick_ms = 50\nlease_ms = 1000\n[webhooks]\ntick_ms = 50\nallow = [\"127.0.0.0/8\"]\n";

/// A world whose high-tier silence limit is 1.2 s, so staleness shows in a test.
fn world(b: Backend, extra: &str) -> Option<World> {
    // The receivers run on loopback, which webhooks may reach only when
    // allowed.
    let allow = if extra.contains("[webhooks]") {
        ""
    } else {
        "[webhooks]\nallow = [\"127.0.0.0/8\"]\n"
    };
    let w = World::new(b, &format!("{extra}\n{allow}"))?;
    let silence = json!({"max_silence_minutes": {"low": 0.02, "medium": 0.02, "high": 0.02, "critical": 0.02}});
    std::fs::write(
        w.d.path("ref.bundle"),
        w.d.reference_with_params("1.0.0", silence),
    )
    .unwrap();
    Some(w)
}

fn register_with_hook(s: &support::server::Server, url: &str) {
    let r = post(
        s,
        "ops",
        "/v1/systems",
        &json!({
            "id": "credit-scoring", "name": "Credit scoring", "risk_tier": "high", "consequential": true,
            "escalation_contact": "risk-desk on-call, +44 20 7946 0000",
            "webhooks": [{"url": url, "secret": "0123456789abcdef0123"}]
        }),
        &[],
    );
    assert_eq!(r.status, 201, "{}", r.body);
}

fn history(s: &support::server::Server, id: &str) -> Vec<Value> {
    get(s, "audit", &format!("/v1/deployments/{id}")).json()["history"]
        .as_array()
        .unwrap()
        .clone()
}

fn verify_signature(r: &support::receiver::Received, secret: &str) {
    let (t, v1) = r.signature.split_once(",v1=").unwrap();
    let t: i64 = t.trim_start_matches("t=").parse().unwrap();
    assert_eq!(
        stagegate::records::webhooks::signature(secret, t, &r.raw),
        r.signature
    );
    assert_eq!(v1.len(), 64);
}

#[test]
fn silence_in_the_intensive_period_raises_a_stale_alert_that_reaches_the_receiver() {
    let Some(w) = world(Backend::Sqlite, FAST) else {
        return;
    };
    let receiver = Receiver::start();
    let s = w.start();
    register_with_hook(&s, &receiver.url);
    let d = deploy(&s, &registered_release(&s, "2.3.0"));
    let v = observe(&s, &d, 0.01, 5000).json();
    assert_eq!(v["decision"]["outcome"], "healthy", "{v:#}");
    let last_observation = Instant::now();

    // Nobody posts anything more. Within the silence limit (1.2 s) plus one
    // interval (0.3 s), plus delivery, the alert is recorded and delivered.
    wait_until(
        "a stale alert delivered to the receiver",
        support::HANG,
        || {
            receiver
                .accepted()
                .iter()
                .any(|r| r.body["event"] == "alert")
        },
    );
    let took = last_observation.elapsed();
    let alert = receiver
        .accepted()
        .into_iter()
        .find(|r| r.body["event"] == "alert")
        .unwrap();
    assert!(
        alert.body["reason"]
            .as_str()
            .unwrap()
            .contains("monitoring.stale"),
        "{:#}",
        alert.body
    );
    assert_eq!(alert.body["deployment_id"], d.as_str());
    assert!(
        alert.body["actor"]
            .as_str()
            .unwrap()
            .starts_with("scheduler@"),
        "{:#}",
        alert.body
    );
    assert_eq!(
        alert.body["escalation_contact"],
        "risk-desk on-call, +44 20 7946 0000"
    );
    assert_eq!(alert.event_id, alert.body["event_id"].as_str().unwrap());
    verify_signature(&alert, "0123456789abcdef0123");
    let h = history(&s, &d);
    let stale = h
        .iter()
        .find(|e| e["event"] == "alert")
        .expect("alert in history");
    assert!(stale["actor"].as_str().unwrap().starts_with("scheduler@"));
    eprintln!(
        "stale alert delivered {took:?} after the last observation (silence limit 1.2 s, interval 0.3 s)"
    );
    // Raised by the silence, not before it: never sooner than the limit.
    assert!(took >= Duration::from_millis(1200), "{took:?}");
}

#[test]
fn a_breach_seen_only_by_the_scheduler_rolls_back_and_the_route_follows_within_an_interval() {
    let Some(w) = world(Backend::Sqlite, FAST) else {
        return;
    };
    let s = w.start();
    let d = deploy(&s, &registered_release(&s, "2.3.0"));
    // Ingested without evaluation: only the scheduler will judge it.
    let r = post(
        &s,
        "ops",
        &format!("/v1/deployments/{d}/observations?evaluate=false"),
        &json!({"observations": [{"metric": "error_rate", "value": 0.2, "samples": 5000}]}),
        &[],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.json().get("decision").is_none());
    assert_eq!(
        get(&s, "gw", &format!("/v1/deployments/{d}/route")).json()["status"],
        "active"
    );
    let took = wait_until("the route to show the rollback", support::HANG, || {
        get(&s, "gw", &format!("/v1/deployments/{d}/route")).json()["status"] == "rolled_back"
    });
    let h = history(&s, &d);
    let rb = h.iter().find(|e| e["event"] == "rolled_back").unwrap();
    assert!(rb["actor"].as_str().unwrap().starts_with("scheduler@"));
    assert!(rb["reason"].as_str().unwrap().contains("trigger.rollback"));
    eprintln!(
        "scheduler rollback visible on the route after {took:?} (interval 0.3 s, route cache 1 s)"
    );
}

#[test]
fn a_receiver_that_was_down_gets_every_event_once_and_in_order() {
    let Some(w) = world(Backend::Sqlite, FAST) else {
        return;
    };
    let receiver = Receiver::start();
    receiver
        .down
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let s = w.start();
    register_with_hook(&s, &receiver.url);
    let d = deploy(&s, &registered_release(&s, "2.3.0"));
    // While the receiver is down: alerts from silence (no observation at
    // all), then an operator's suspension.
    wait_until("an alert from silence, refused", support::HANG, || {
        *receiver.refused.lock().unwrap() >= 1
    });
    let r = post(
        &s,
        "ops",
        &format!("/v1/deployments/{d}/suspend"),
        &json!({"reason": "pager: complaints spike"}),
        &[],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    wait_until("several refused attempts", support::HANG, || {
        *receiver.refused.lock().unwrap() >= 3
    });
    let pending = get(&s, "audit", &format!("/v1/deployments/{d}/deliveries")).json();
    assert!(
        pending["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["status"] == "pending" && x["attempts"].as_i64().unwrap() >= 1)
    );
    let metrics = s.get("/metrics", None).body;
    assert!(
        metrics.lines().any(|l| l
            .starts_with("stagegate_webhook_deliveries_total{result=\"failed\"} ")
            && !l.ends_with(" 0")),
        "{metrics}"
    );

    receiver
        .down
        .store(false, std::sync::atomic::Ordering::SeqCst);
    let expected = || {
        get(&s, "audit", &format!("/v1/deployments/{d}/deliveries")).json()["deliveries"]
            .as_array()
            .unwrap()
            .len()
    };
    wait_until("every queued event to arrive", support::HANG, || {
        receiver
            .accepted()
            .iter()
            .any(|r| r.body["event"] == "suspended")
            && receiver.accepted().len() >= expected()
    });
    let got = receiver.accepted();
    let ids: std::collections::BTreeSet<&str> = got.iter().map(|r| r.event_id.as_str()).collect();
    assert_eq!(ids.len(), got.len(), "an event arrived twice");
    let seqs: Vec<i64> = got
        .iter()
        .map(|r| r.body["seq"].as_i64().unwrap())
        .collect();
    assert!(
        seqs.windows(2).all(|p| p[1] == p[0] + 1),
        "out of order or with gaps: {seqs:?}"
    );
    assert_eq!(seqs[0], 1);
    assert_eq!(got.last().unwrap().body["event"], "suspended");
    let log = get(&s, "audit", &format!("/v1/deployments/{d}/deliveries")).json();
    assert!(
        log["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .all(|x| x["status"] == "delivered"),
        "{log:#}"
    );
    eprintln!(
        "{} events delivered once, in order, after {} refused attempts",
        got.len(),
        receiver.refused.lock().unwrap()
    );
}

#[test]
fn the_notice_tells_users_what_the_live_release_can_and_cannot_do() {
    let Some(w) = world(Backend::Sqlite, "") else {
        return;
    };
    let s = w.start();
    register_with_hook(&s, "http://127.0.0.1:9/unused");
    let release = registered_release(&s, "2.3.0");
    // Before the first live traffic: the notice already exists.
    let before = s.get("/v1/systems/credit-scoring/notice", None);
    assert_eq!(before.status, 200, "{}", before.body);
    let v = before.json();
    assert_eq!(v["operational"]["in_operational_use"], false);
    assert_eq!(v["intended_use"], "decision support for credit officers");
    let d = deploy(&s, &release);
    let v = s.get("/v1/systems/credit-scoring/notice", None).json();
    assert_eq!(v["operational"]["in_operational_use"], true);
    assert_eq!(v["operational"]["stage"], "pilot");
    assert_eq!(v["operational"]["deployment_id"], d.as_str());
    assert_eq!(v["limitations"][0], "not validated for business lending");
    assert_eq!(
        v["escalation_contact"],
        "risk-desk on-call, +44 20 7946 0000"
    );
    let html = s.send("GET", "/v1/systems/credit-scoring/notice", None, None, None);
    assert!(html.body.starts_with('{'), "JSON by default");
    let page = support::server::Request::get(&s.url("/v1/systems/credit-scoring/notice"))
        .header("Accept", "text/html")
        .send();
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let page = page.body;
    assert!(page.contains("<html lang=\"en\">"));
    assert!(page.contains("<h1>About Credit scoring</h1>"));
    assert!(page.contains("<li>thin-file applicants score less reliably</li>"));
    assert!(page.contains("in operational use at stage <strong>pilot</strong>"));
    // The system as shown to callers never reveals webhook secrets.
    let sys = get(&s, "audit", "/v1/systems/credit-scoring").json();
    assert_eq!(sys["webhooks"][0]["secret"], "(redacted)");
    assert_eq!(s.get("/v1/systems/nope/notice", None).status, 404);
}

#[test]
fn two_replicas_evaluate_each_deployment_once_per_interval_and_take_over_from_a_dead_one() {
    const INTERVAL_MS: i64 = 1000;
    const LEASE_MS: i64 = 1500;
    // The decision log's sequencer lease (A takes it first). Until B holds
    // it, B's evaluations wait to be appended, so B takes over A's work
    // once both leases ran out: the sequencer's a little later (B tries
    // for it every quarter lease). Longer than the scheduler's, so that a
    // loaded machine starving A's renewals for a moment does not hand the
    // log to B mid-test.
    const SEQUENCER_LEASE_MS: i64 = 3000;
    const TICK_MS: i64 = 50;
    let Some(w) = world(
        Backend::Postgres,
        &format!(
            "sequencer_lease_ms = {SEQUENCER_LEASE_MS}\n[scheduler]\nintensive_interval_ms = {INTERVAL_MS}\ninterval_ms = {INTERVAL_MS}\ntick_ms = {TICK_MS}\nlease_ms = {LEASE_MS}\n"
        ),
    ) else {
        return;
    };
    // A second replica: same database and bundle, its own data directory.
    let second = w.d.path("config2.toml");
    let config = std::fs::read_to_string(w.d.config()).unwrap().replace(
        &format!("data_dir = \"{}\"", w.d.path("data").display()),
        &format!("data_dir = \"{}\"", w.d.path("data2").display()),
    );
    std::fs::write(&second, config).unwrap();
    let a = w.start();
    let b = support::server::Server::start(w.d.dir.path(), Some(&second));
    let deployments: Vec<String> = {
        let release = registered_release(&a, "2.3.0");
        (0..3).map(|_| deploy(&a, &release)).collect()
    };
    let scheduled = |s: &support::server::Server, d: &str| -> Vec<(i64, String)> {
        let rec = get(s, "audit", &format!("/v1/deployments/{d}/record")).json();
        rec["decisions"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["actor"].as_str().unwrap().starts_with("scheduler@"))
            .map(|e| {
                (
                    e["at"].as_i64().unwrap(),
                    e["actor"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    // Never two evaluations of one interval: two replicas evaluating the
    // same due deployment do so within a tick or two of each other. A late
    // evaluation may be followed by the punctual next one sooner than an
    // interval (the schedule keeps its phase: the next is due one interval
    // after the previous due time), but never within three ticks, unless
    // the machine stalls for most of an interval.
    let once_per_interval = |d: &str, evals: &[&(i64, String)]| {
        for p in evals.windows(2) {
            assert!(
                p[1].0 - p[0].0 >= 3 * TICK_MS,
                "{d}: evaluated twice within one interval: {evals:?}"
            );
        }
    };
    // Counted, not timed: wait for three evaluations of each deployment.
    let mut replicas = std::collections::BTreeSet::new();
    let mut gaps = Vec::new();
    for d in &deployments {
        support::wait_until("3 scheduled evaluations", support::HANG, || {
            scheduled(&a, d).len() >= 3
        });
        let evals = scheduled(&a, d);
        once_per_interval(d, &evals.iter().collect::<Vec<_>>());
        gaps.extend(evals.windows(2).map(|p| p[1].0 - p[0].0));
        replicas.extend(evals.into_iter().map(|e| e.1));
    }
    gaps.sort();
    let usual_gap = gaps[gaps.len() / 2];
    eprintln!("replicas that evaluated: {replicas:?}; median gap {usual_gap} ms");

    // Kill replica A; B takes over once A's lease has run out, and from
    // then on evaluates alone, once per interval.
    a.kill();
    let killed_at = stagegate::decision::Timestamp::now().millis();
    let after_kill = |d: &str| -> Vec<(i64, String)> {
        scheduled(&b, d)
            .into_iter()
            .filter(|e| e.0 > killed_at)
            .collect()
    };
    for d in &deployments {
        support::wait_until("2 evaluations after the kill", support::HANG, || {
            after_kill(d).len() >= 2
        });
        let after = after_kill(d);
        assert!(after.iter().all(|e| e.1 == after[0].1), "{d}: {after:?}");
        // Within the lease plus two of the usual gaps between evaluations
        // (measured above, before the kill).
        let first_gap = after[0].0 - killed_at;
        assert!(
            first_gap <= LEASE_MS.max(SEQUENCER_LEASE_MS * 5 / 4) + 2 * usual_gap,
            "{d}: took {first_gap} ms to take over (lease {LEASE_MS} ms, the log's sequencer lease {SEQUENCER_LEASE_MS} ms, usual gap {usual_gap} ms)"
        );
        once_per_interval(d, &after.iter().collect::<Vec<_>>());
    }
}

#[test]
fn a_dead_receiver_does_not_delay_a_rollback_alert_to_a_healthy_one() {
    let Some(w) = world(Backend::Sqlite, FAST) else {
        return;
    };
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    // A receiver that accepts connections and never answers: each delivery
    // to it runs into the delivery timeout, and then stagegate closes the
    // connection. Counted: deliveries begun, and given up.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_url = format!("http://{}/hook", dead.local_addr().unwrap());
    let begun = Arc::new(AtomicUsize::new(0));
    let given_up = Arc::new(AtomicUsize::new(0));
    {
        let (begun, given_up) = (begun.clone(), given_up.clone());
        std::thread::spawn(move || {
            for mut conn in dead.incoming().flatten() {
                begun.fetch_add(1, Ordering::SeqCst);
                let given_up = given_up.clone();
                std::thread::spawn(move || {
                    // Reads the request, answers nothing, until the
                    // sender closes the connection.
                    let mut buf = [0u8; 4096];
                    while matches!(std::io::Read::read(&mut conn, &mut buf), Ok(n) if n > 0) {}
                    given_up.fetch_add(1, Ordering::SeqCst);
                });
            }
        });
    }
    let healthy = Receiver::start();
    let s = w.start();
    let r = post(
        &s,
        "ops",
        "/v1/systems",
        &json!({
            "id": "credit-scoring", "risk_tier": "high", "consequential": true,
            "webhooks": [
                {"url": dead_url, "secret": "0123456789abcdef0123"},
                {"url": healthy.url, "secret": "0123456789abcdef0123"}
            ]
        }),
        &[],
    );
    assert_eq!(r.status, 201, "{}", r.body);
    // A backlog at the dead receiver: alerts of several deployments.
    let release = registered_release(&s, "2.3.0");
    for _ in 0..3 {
        let d = deploy(&s, &release);
        let v = observe(&s, &d, 0.03, 5000).json();
        assert_eq!(v["decision"]["outcome"], "alert", "{v:#}");
    }
    std::thread::sleep(Duration::from_millis(300));
    let d = deploy(&s, &release);
    let v = observe(&s, &d, 0.09, 5000).json();
    assert_eq!(v["decision"]["outcome"], "rollback", "{v:#}");
    let took = wait_until(
        "the rollback alert at the healthy receiver",
        support::HANG,
        || {
            healthy
                .accepted()
                .iter()
                .any(|r| r.body["event"] == "rolled_back" && r.body["deployment_id"] == d.as_str())
        },
    );
    // Not behind the dead receiver: the rollback alert arrived while the
    // deliveries to the dead receiver were still waiting for an answer,
    // before a single one of them had been given up.
    let (begun, given_up) = (
        begun.load(Ordering::SeqCst),
        given_up.load(Ordering::SeqCst),
    );
    eprintln!(
        "rollback alert delivered to the healthy receiver {took:?} after the rollback, beside a dead one ({begun} deliveries to it begun, {given_up} given up)"
    );
    assert!(begun >= 1, "no delivery to the dead receiver was begun");
    assert_eq!(
        given_up, 0,
        "the rollback alert arrived only after a delivery to the dead receiver timed out ({took:?})"
    );
}

#[test]
fn receivers_on_internal_addresses_are_refused_unless_allowed() {
    let Some(w) = World::new(Backend::Sqlite, "") else {
        return;
    };
    let s = w.start();
    for (i, url) in [
        "http://127.0.0.1:9/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.7/hook",
        "http://[::1]:9/hook",
    ]
    .into_iter()
    .enumerate()
    {
        let r = post(
            &s,
            "ops",
            "/v1/systems",
            &json!({"id": format!("s{i}"), "risk_tier": "low",
                    "webhooks": [{"url": url, "secret": "0123456789abcdef0123"}]}),
            &[],
        );
        assert_eq!(r.status, 422, "{url}: {}", r.body);
        assert_eq!(r.json()["error"]["path"], "/webhooks/0/url");
        assert!(r.body.contains("internal address"), "{}", r.body);
    }
    // Secrets are never shown back, and URLs lose their credentials.
    let r = post(
        &s,
        "ops",
        "/v1/systems",
        &json!({"id": "public", "risk_tier": "low",
                "webhooks": [{"url": "https://user:pw@8.8.8.8/hook?token=abc", "secret": "0123456789abcdef0123"}]}),
        &[],
    );
    assert_eq!(r.status, 201, "{}", r.body);
    assert!(
        !r.body.contains("0123456789abcdef0123")
            && !r.body.contains("pw@")
            && !r.body.contains("abc"),
        "{}",
        r.body
    );
    let g = get(&s, "audit", "/v1/systems/public");
    assert!(
        !g.body.contains("0123456789abcdef0123") && !g.body.contains("token=abc"),
        "{}",
        g.body
    );
}
