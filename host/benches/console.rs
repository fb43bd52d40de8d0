//! The auditor's console, rendered on the server (docs/console.md): the
//! deployment page of a deployment with 1,000 decisions and 5,000
//! observations, first in a log of its own ~6,000 entries, then with
//! 100,000 more entries of other deployments in the log; and the decision
//! log's first page over those 100,000 decisions; on SQLite, in-process.
//! Each figure is the whole page as an auditor sees it: the records read
//! through `records::console`, the deployment's entries proved by
//! inclusion in the newest signed checkpoint, the template rendered.
//!
//! `cargo bench --workspace --bench console` (optimised; `DECISIONS=`,
//! `LOG_ENTRIES=` change the sizes, `DATABASE=postgres://…/EMPTY_DB` runs
//! it on PostgreSQL). The same program runs unoptimised with `cargo test
//! --workspace --bench console`.

mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use sha2::Digest;
use stagegate::auth::Caller;
use stagegate::config::{Config, Role};
use stagegate::records::Actor;
use stagegate::records::chain::{self, LogEntry};
use stagegate::server::console::Viewer;
use stagegate::server::console::pages;

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A records input from JSON, decoded as the API decodes it.
fn parse<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
    stagegate::decision::decode::decode_as(v.to_string().as_bytes()).unwrap()
}

fn median(mut samples: Vec<Duration>) -> (Duration, Duration, Duration) {
    samples.sort();
    (
        samples[0],
        samples[samples.len() / 2],
        samples[samples.len() - 1],
    )
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    let decisions: usize = std::env::var("DECISIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let log_entries: usize = std::env::var("LOG_ENTRIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let dir = std::env::temp_dir().join(format!("stagegate-console-bench-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("keys")).unwrap();
        let mut config = Config::embedded();
        config.data_dir = dir.clone();
        config.trust.dir = dir.join("keys");
        config.bundles[0].build = Some(support::root().join("policies/iso42001"));
        config.bundles[0].sign_with = Some(dir.join("keys/dev"));
        config.scheduler.enabled = false;
        config.webhooks.enabled = false;
        config.records.checkpoint_interval_ms = 0;
        // PostgreSQL instead of SQLite: an empty database's URL.
        if let Ok(url) = std::env::var("DATABASE") {
            config.records.database = Some(url);
        }
        // The release's results are attested (the high tier accepts no other).
        config.evidence.keys.push(support::evidence_trust(&dir));
        let app = stagegate::server::prepare(&config).await.unwrap();
        let records = app.records();
        let pipeline = app.pipeline(None).unwrap();
        let ops = Actor { name: "ops".into(), title: None };
        let approver = Actor { name: "j.doe".into(), title: Some("Head of AI Risk".into()) };
        let reviewer = Actor { name: "a.lee".into(), title: None };
        records.register_system(&ops, parse(json!({"id":"s","risk_tier":"high","consequential":true}))).await.unwrap();
        let g: serde_json::Value = serde_json::from_slice(&std::fs::read(support::root().join("examples/gate-high-risk.json")).unwrap()).unwrap();
        let (rel, attestations) = support::attested_release(&g, "1.0.0");
        records.register_release(&ops, "s", parse(rel), &Default::default(), &attestations).await.unwrap();
        records.record_review(&reviewer, "s@1.0.0", None, parse(json!({"outcome":"approved"}))).await.unwrap();
        records.record_authorisation(&approver, "s@1.0.0", Default::default()).await.unwrap();
        let body = json!({"release_id": "s@1.0.0", "plan": g["plan"]});
        let id = records.create_deployment(&pipeline, &ops, parse(body), None).await.unwrap().deployment.id;

        // 1,000 decisions and 5,000 observations: each call records five
        // observations and is judged by the monitoring policy (the gate
        // is the first decision).
        let t = Instant::now();
        for i in 0..decisions.saturating_sub(1) {
            let e = 0.005 + (i % 10) as f64 * 0.001;
            let obs: Vec<stagegate::decision::request::Observation> = serde_json::from_value(json!([
                {"metric": "error_rate", "value": e, "samples": 5000},
                {"metric": "harmful_output_rate", "value": 0.0, "samples": 5000},
                {"metric": "complaint_rate", "value": 0.0001, "samples": 5000},
                {"metric": "latency_p99_ms", "value": 180.0 + (i % 7) as f64, "samples": 5000},
                {"metric": "override_rate", "value": 0.01, "samples": 5000}
            ])).unwrap();
            records.observe(&pipeline, &ops, &id, &obs, true, None).await.unwrap();
        }
        // The 5,000th observation, recorded without a decision.
        let last: Vec<stagegate::decision::request::Observation> = serde_json::from_value(json!([
            {"metric": "error_rate", "value": 0.01, "samples": 5000},
            {"metric": "harmful_output_rate", "value": 0.0, "samples": 5000},
            {"metric": "complaint_rate", "value": 0.0001, "samples": 5000},
            {"metric": "latency_p99_ms", "value": 181.0, "samples": 5000},
            {"metric": "override_rate", "value": 0.01, "samples": 5000}
        ])).unwrap();
        records.observe(&pipeline, &ops, &id, &last, false, None).await.unwrap();
        records.checkpoint().await.unwrap();
        let x = records.export(&id).await.unwrap();
        let observations = records.observations(&id).await.unwrap().len();
        println!(
            "setup: deployment with {} decisions and {observations} observations in {:.1} s",
            x.decisions.len(),
            t.elapsed().as_secs_f64()
        );
        let decisions = x.decisions.len();

        let viewer = Viewer {
            caller: Caller { name: "audit".into(), roles: vec![Role::Auditor], title: None },
            session: None,
        };
        // The deployment page: records read, entries proved, HTML out.
        let measure = |log: String| {
            let (app, id, viewer, records) = (&app, &id, &viewer, &records);
            async move {
                let mut whole = Vec::new();
                let mut render_only = Vec::new();
                let mut bytes = 0;
                for i in 0..33 {
                    let t = Instant::now();
                    let page = pages::deployment_page(app, id, viewer).await.unwrap();
                    let t2 = Instant::now();
                    let html = page.html().unwrap();
                    let end = Instant::now();
                    bytes = html.len();
                    assert!(html.contains("badge good\">proven<"), "every entry is proven");
                    if i >= 3 {
                        whole.push(end - t);
                        render_only.push(end - t2);
                    }
                }
                let (lo, med, hi) = median(whole);
                println!(
                    "deployment page ({decisions} decisions, {observations} observations, {log}, {} KiB of HTML): median {:.1} ms (min {:.1}, max {:.1}) over 30 renders, of which the template {:.1} ms",
                    bytes / 1024,
                    ms(med),
                    ms(lo),
                    ms(hi),
                    ms(median(render_only).1)
                );
                // Where the time goes: each part read alone.
                let (mut read, mut obs, mut proof) = (Vec::new(), Vec::new(), Vec::new());
                let mut check = None;
                for i in 0..33 {
                    let t = Instant::now();
                    let rec = records.deployment_record(id).await.unwrap();
                    let t2 = Instant::now();
                    records.observations(id).await.unwrap();
                    let t3 = Instant::now();
                    let c = records.prove_inclusion(&rec.entries).await.unwrap();
                    if i >= 3 {
                        read.push(t2 - t);
                        obs.push(t3 - t2);
                        proof.push(t3.elapsed());
                    }
                    check = Some(c);
                }
                let c = check.unwrap();
                println!(
                    "  of which, read alone (medians): the deployment's records and its {} log entries {:.1} ms, the observations {:.1} ms, the inclusion proof of the entries {:.1} ms ({} stored hashes read, checkpoint of {} entries)",
                    c.entries.len(),
                    ms(median(read).1),
                    ms(median(obs).1),
                    ms(median(proof).1),
                    c.tree_hashes_read,
                    c.checkpoint.as_ref().map_or(0, |c| c.size)
                );
            }
        };
        let entries_now = chain::head(&records.bench_store().pool).await.unwrap().0;
        measure(format!("log of {entries_now} entries")).await;

        // A second deployment of the system, for the entries below that
        // are not the measured deployment's.
        let body = json!({"release_id": "s@1.0.0", "plan": g["plan"]});
        let other = records.create_deployment(&pipeline, &ops, parse(body), None).await.unwrap().deployment.id;

        // The decision log: 100,000 decisions appended to the log as the
        // log writer appends them, one in ten about the system's other
        // deployment, none about the measured one.
        let t = Instant::now();
        let kinds = ["gate", "progression", "monitoring"];
        let outcomes = [["allow", "deny"], ["promote", "hold"], ["healthy", "alert"]];
        let mut written = 0;
        while written < log_entries {
            let n = (log_entries - written).min(5000);
            let entries: Vec<LogEntry> = (0..n)
                .map(|j| {
                    let k = (written + j) % 3;
                    let rollback = (written + j) % 997 == 0;
                    LogEntry {
                        decision_id: stagegate::records::new_id(),
                        at: stagegate::decision::Timestamp::now().millis(),
                        kind: kinds[k].into(),
                        outcome: if rollback { "rollback".into() } else { outcomes[k][(written + j) % 2].into() },
                        codes: if rollback { vec!["trigger.rollback".into()] } else { vec![] },
                        bundle: "iso42001-reference".into(),
                        bundle_version: "1.0.0".into(),
                        bundle_digest: "sha256:00".into(),
                        request_digest: format!(
                            "sha256:{}",
                            hex::encode(sha2::Sha256::digest(format!("r{}", written + j).as_bytes()))
                        ),
                        request: None,
                        deployment_id: ((written + j) % 10 == 0).then(|| other.clone()),
                        read_only: false,
                        actor: "gw".into(),
                        record: None,
                    }
                })
                .collect();
            let mut tx = records.bench_store().pool.begin().await.unwrap();
            let head = chain::lock(&mut tx).await.unwrap();
            chain::append(&mut tx, head, &entries).await.unwrap();
            tx.commit().await.unwrap();
            written += n;
        }
        println!("setup: {log_entries} more decisions in the log in {:.1} s", t.elapsed().as_secs_f64());
        // A checkpoint of the longer log, as the schedule would sign.
        records.checkpoint().await.unwrap();
        let entries_now = chain::head(&records.bench_store().pool).await.unwrap().0;
        measure(format!("log of {entries_now} entries")).await;

        // The worst case for the batch proof: entries far apart, as when
        // many deployments write at once. 6,000 entries, one in 17 of the
        // log, proved together.
        let rows = sqlx::query(&format!("{} WHERE seq % 17 = 0 ORDER BY seq LIMIT 6000", chain::SELECT))
            .fetch_all(&records.bench_store().pool)
            .await
            .unwrap();
        let scattered: Vec<chain::Chained> = rows.iter().map(|r| chain::from_row(r).unwrap()).collect();
        let mut samples = Vec::new();
        let mut check = None;
        for i in 0..13 {
            let t = Instant::now();
            let c = records.prove_inclusion(&scattered).await.unwrap();
            if i >= 3 {
                samples.push(t.elapsed());
            }
            check = Some(c);
        }
        let c = check.unwrap();
        assert!(c.all_proven());
        println!(
            "inclusion proof of {} entries one in 17 apart in a log of {entries_now}: median {:.1} ms over 10 ({} stored hashes read)",
            scattered.len(),
            ms(median(samples).1),
            c.tree_hashes_read
        );

        let q = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
        };
        for (label, query) in [
            ("first page, no filter", q(&[])),
            ("first page, code=trigger.rollback", q(&[("code", "trigger.rollback")])),
            ("first page, kind=gate, outcome=deny", q(&[("kind", "gate"), ("outcome", "deny")])),
            ("first page, system=s", q(&[("system", "s")])),
            ("page deep in the log (before=1000)", q(&[("before", "1000")])),
        ] {
            let mut samples = Vec::new();
            let mut rows = 0;
            for i in 0..53 {
                let t = Instant::now();
                let page = pages::decisions_page(&app, &query, &viewer).await.unwrap().unwrap();
                let html = page.html().unwrap();
                rows = html.matches("aria-label=\"Decision ").count();
                if i >= 3 {
                    samples.push(t.elapsed());
                }
            }
            let (lo, med, hi) = median(samples);
            println!(
                "decision log of {} entries, {label} ({rows} rows): median {:.1} ms (min {:.1}, max {:.1}) over 50 renders",
                log_entries + decisions,
                ms(med),
                ms(lo),
                ms(hi)
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
    });
}
