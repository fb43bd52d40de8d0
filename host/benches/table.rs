//! Side-by-side figures for docs/BENCHMARKS.md, all measured in one run:
//! per-decision median and p99 (request bytes → response bytes) for the
//! native floor, stagegate warm and fresh, and regorus; ratios to the floor
//! and to regorus; cold and cached bundle load; memory per warm instance.
//!
//! `cargo bench -p stagegate --bench table` (or `just bench`).

mod support;

use std::time::{Duration, Instant};

use stagegate::decision::DecisionKind;
use stagegate::policy::{ActivePolicy, ComponentCache, Isolation, Limits, Runtime};

/// mimalloc: a decision allocates dozens of small strings; mimalloc cut
/// the native floor's instruction count by a tenth against glibc's malloc.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn measure(iterations: usize, mut f: impl FnMut()) -> (Duration, Duration) {
    for _ in 0..iterations / 10 + 10 {
        f();
    }
    let mut samples = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let t = Instant::now();
        f();
        samples.push(t.elapsed());
    }
    samples.sort();
    (
        samples[samples.len() / 2],
        samples[samples.len() * 99 / 100],
    )
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else to parse.
    let bundle = support::reference_bundle();
    let runtime = support::runtime();
    let warm = support::Sandboxed::new(&runtime, &bundle, Isolation::Warm);
    let fresh = support::Sandboxed::new(&runtime, &bundle, Isolation::Fresh);
    let native = support::Native::new(&bundle);
    // `-- warm-gate`: only the small gate request, native floor and warm
    // sandbox, as one line `warm-gate NATIVE_US WARM_US RATIO` (medians),
    // for the target table `host/benches/http.sh` prints.
    if std::env::args().any(|a| a == "warm-gate") {
        let body = support::request(DecisionKind::Gate, false);
        let n = measure(20_000, || {
            std::hint::black_box(native.decide(DecisionKind::Gate, &body));
        });
        let w = measure(20_000, || {
            std::hint::black_box(warm.decide(DecisionKind::Gate, &body));
        });
        println!(
            "warm-gate {:.2} {:.2} {:.2}",
            us(n.0),
            us(w.0),
            us(w.0) / us(n.0)
        );
        return;
    }
    let mut rego = support::Rego::new(&bundle);

    println!("## Decisions: request bytes to response bytes (µs)\n");
    println!("| decision | size | variant | median | p99 | median × native | regorus ÷ median |");
    println!("|---|---|---|---:|---:|---:|---:|");
    for kind in DecisionKind::ALL {
        for (size, large) in [("small", false), ("large", true)] {
            let body = support::request(kind, large);
            // All variants must agree before they are timed.
            let strip = |b: Vec<u8>| {
                let mut v: serde_json::Value = serde_json::from_slice(&b).unwrap();
                v.as_object_mut().unwrap().remove("decision_id");
                v
            };
            assert_eq!(
                strip(native.decide(kind, &body)),
                strip(warm.decide(kind, &body))
            );
            let n = measure(20_000, || {
                std::hint::black_box(native.decide(kind, &body));
            });
            let w = measure(20_000, || {
                std::hint::black_box(warm.decide(kind, &body));
            });
            let f = measure(3_000, || {
                std::hint::black_box(fresh.decide(kind, &body));
            });
            let r = (kind == DecisionKind::Gate).then(|| {
                let out: serde_json::Value = serde_json::from_slice(&rego.decide(&body)).unwrap();
                assert_eq!(out["outcome"], strip(warm.decide(kind, &body))["outcome"]);
                measure(1_000, || {
                    std::hint::black_box(rego.decide(&body));
                })
            });
            let row = |name: &str, (m, p): (Duration, Duration)| {
                let vs_rego = r
                    .map(|(rm, _)| format!("{:.0}×", us(rm) / us(m)))
                    .unwrap_or_else(|| "–".into());
                println!(
                    "| {kind} | {size} | {name} | {:.2} | {:.2} | {:.2} | {vs_rego} |",
                    us(m),
                    us(p),
                    us(m) / us(n.0)
                );
            };
            row("native (floor)", n);
            row("stagegate warm", w);
            row("stagegate fresh", f);
            if let Some(r) = r {
                row("regorus (Rego)", r);
            }
        }
    }

    println!("\n## Bundle load (ms)\n");
    let bytes = bundle.to_bytes().unwrap();
    let cache_dir = tempfile_dir();
    let cold = measure(5, || {
        let rt = Runtime::new(Limits::default()).unwrap();
        let b = stagegate::bundle::Bundle::from_bytes(&bytes, &Default::default()).unwrap();
        let c = rt.compile(b.wasm()).unwrap();
        std::hint::black_box(
            ActivePolicy::with_component(&rt, &b, &c, b.params().unwrap(), Isolation::Warm)
                .unwrap(),
        );
    });
    let cache = ComponentCache::new(&cache_dir);
    let rt = Runtime::new(Limits::default()).unwrap();
    cache.get_or_compile(&rt, bundle.wasm()).unwrap();
    let cached = measure(20, || {
        let b = stagegate::bundle::Bundle::from_bytes(&bytes, &Default::default()).unwrap();
        let (c, outcome) = cache.get_or_compile(&rt, b.wasm()).unwrap();
        assert_eq!(outcome, stagegate::policy::CacheOutcome::Hit);
        std::hint::black_box(
            ActivePolicy::with_component(&rt, &b, &c, b.params().unwrap(), Isolation::Warm)
                .unwrap(),
        );
    });
    println!("| step | median | p99 |\n|---|---:|---:|");
    println!(
        "| read + compile + instantiate + configure (cold) | {:.1} | {:.1} |",
        us(cold.0) / 1e3,
        us(cold.1) / 1e3
    );
    println!(
        "| read + load from cache + instantiate + configure | {:.1} | {:.1} |",
        us(cached.0) / 1e3,
        us(cached.1) / 1e3
    );
    let _ = std::fs::remove_dir_all(&cache_dir);

    println!("\n## Memory per warm instance\n");
    let limits = Limits {
        warm_per_bundle: 64,
        ..Limits::default()
    };
    let rt = Runtime::new(limits).unwrap();
    let p = ActivePolicy::load(&rt, &bundle, Isolation::Warm).unwrap();
    let before = rss_kib();
    p.loaded.prewarm(64).unwrap();
    let body = support::request(DecisionKind::Gate, true);
    // Touch every instance once with a large decision.
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..64 {
                    std::hint::black_box(p.decide_json(DecisionKind::Gate, &body).unwrap());
                }
            });
        }
    });
    let after = rss_kib();
    println!(
        "{} warm instances: RSS {} KiB → {} KiB, {:.0} KiB per instance",
        p.loaded.warm_instances(),
        before,
        after,
        (after.saturating_sub(before)) as f64 / 63.0
    );
}

fn tempfile_dir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("stagegate-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}
