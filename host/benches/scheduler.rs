//! Scheduler cost: CPU time of one scheduled monitoring pass over 1,000
//! active deployments (claim, evaluate from the records, record, release),
//! on SQLite, in-process. `cargo bench -p stagegate --bench scheduler`.

mod support;

use std::time::Instant;

use serde_json::json;
use stagegate::config::Config;
use stagegate::decision::Timestamp;
use stagegate::records::Actor;
use stagegate::records::schedule::{self, Intervals};

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn cpu_seconds() -> f64 {
    // utime + stime of this process, from /proc (ticks of 1/100 s).
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    let ticks: f64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    ticks / 100.0
}

/// A records input from JSON, decoded as the API decodes it.
fn parse<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
    stagegate::decision::decode::decode_as(v.to_string().as_bytes()).unwrap()
}

fn main() {
    let n: usize = std::env::var("DEPLOYMENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let dir = std::env::temp_dir().join(format!("stagegate-sched-bench-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("keys")).unwrap();
        // The service as `stagegate serve` builds it, in-process: its
        // records and its one decision pipeline, without the HTTP layer or
        // the background tasks (the pass below is the scheduler's).
        let mut config = Config::embedded();
        config.data_dir = dir.clone();
        config.trust.dir = dir.join("keys");
        config.bundles[0].build = Some(support::root().join("policies/iso42001"));
        config.bundles[0].sign_with = Some(dir.join("keys/dev"));
        config.scheduler.enabled = false;
        config.webhooks.enabled = false;
        config.records.checkpoint_interval_ms = 0;
        config.scheduler.intensive_interval_ms = 0;
        config.scheduler.interval_ms = 60_000;
        config.scheduler.lease_ms = 60_000;
        // The release's results are attested (the high tier accepts no other).
        config.evidence.keys.push(support::evidence_trust(&dir));
        let app = stagegate::server::prepare(&config).await.unwrap();
        let records = app.records();
        let store = records.bench_store().clone();
        let intervals = records.intervals;
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
        let t = Instant::now();
        let mut ids = Vec::new();
        for _ in 0..n {
            let t = records.create_deployment(&pipeline, &ops, parse(body.clone()), None).await.unwrap();
            ids.push(t.deployment.id);
        }
        let created = t.elapsed().as_secs_f64();
        // One observation each, so the pass evaluates real data.
        let obs: Vec<stagegate::decision::request::Observation> = serde_json::from_value(json!([
            {"metric": "error_rate", "value": 0.01, "samples": 5000},
            {"metric": "harmful_output_rate", "value": 0.0, "samples": 5000}
        ])).unwrap();
        let t2 = Instant::now();
        for id in &ids {
            records.observe(&pipeline, &ops, id, &obs, false, None).await.unwrap();
        }
        let observed = t2.elapsed().as_secs_f64();
        println!("setup: {n} deployments in {:.1} s", t.elapsed().as_secs_f64());
        println!("deployment creation (gate decided from the records): {:.0} transitions/s", n as f64 / created);
        println!("observations recorded (2 per call, no evaluation): {:.0} calls/s", n as f64 / observed);

        let cpu0 = cpu_seconds();
        let wall = Instant::now();
        let scheduler = Actor { name: "scheduler@bench".into(), title: None };
        // Deployments were created due at once (interval 0); the pass
        // schedules each next evaluation a normal interval away, so every
        // deployment is evaluated exactly once.
        let intervals = Intervals { intensive_ms: 60_000, ..intervals };
        let mut evaluated = 0;
        loop {
            let now = Timestamp::now().millis();
            let due = schedule::claim(&store, "bench", now, intervals.lease_ms, 100).await.unwrap();
            if due.is_empty() {
                break;
            }
            for d in due {
                records.observe(&pipeline, &scheduler, &d.deployment_id, &[], true, None).await.unwrap();
                schedule::complete(&store, "bench", &d, Timestamp::now().millis(), &intervals).await.unwrap();
                evaluated += 1;
            }
        }
        let cpu = cpu_seconds() - cpu0;
        let wall = wall.elapsed().as_secs_f64();
        println!(
            "one scheduler pass over {evaluated} active deployments: {cpu:.2} s CPU ({:.2} ms per deployment), {wall:.2} s wall (SQLite, synchronous commits)",
            cpu * 1000.0 / evaluated as f64
        );
        println!("per 1,000 deployments: {:.2} s CPU per interval", cpu * 1000.0 / evaluated as f64);
        println!("monitoring evaluations (decided from the records): {:.0} transitions/s", evaluated as f64 / wall);
        let t3 = Instant::now();
        for id in &ids {
            let new = parse(json!({"target_stage": "regional"}));
            records.progress(&pipeline, &approver, id, new, None, None).await.unwrap();
        }
        println!("progressions (held: too early): {:.0} transitions/s", n as f64 / t3.elapsed().as_secs_f64());
        let _ = std::fs::remove_dir_all(&dir);
    });
}
