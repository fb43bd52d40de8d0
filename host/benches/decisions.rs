//! Criterion benchmark: one decision from request bytes to response bytes,
//! for stagegate (warm and fresh instances), the same rules linked natively
//! (the floor), and the same gate rules in Rego on regorus.
//!
//! `just bench` runs this and `table`, which prints medians, p99 and ratios
//! side by side.

mod support;

use criterion::{Criterion, criterion_group, criterion_main};
use stagegate::decision::DecisionKind;
use stagegate::policy::Isolation;

/// mimalloc: a decision allocates dozens of small strings; mimalloc cut
/// the native floor's instruction count by a tenth against glibc's malloc.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn decisions(c: &mut Criterion) {
    let bundle = support::reference_bundle();
    let runtime = support::runtime();
    let warm = support::Sandboxed::new(&runtime, &bundle, Isolation::Warm);
    let fresh = support::Sandboxed::new(&runtime, &bundle, Isolation::Fresh);
    let native = support::Native::new(&bundle);
    let mut rego = support::Rego::new(&bundle);
    for kind in DecisionKind::ALL {
        for (size, large) in [("small", false), ("large", true)] {
            let body = support::request(kind, large);
            let mut g = c.benchmark_group(format!("{kind}/{size}"));
            g.bench_function("native", |b| b.iter(|| native.decide(kind, &body)));
            g.bench_function("stagegate-warm", |b| b.iter(|| warm.decide(kind, &body)));
            g.bench_function("stagegate-fresh", |b| b.iter(|| fresh.decide(kind, &body)));
            if kind == DecisionKind::Gate {
                g.bench_function("regorus", |b| b.iter(|| rego.decide(&body)));
            }
            g.finish();
        }
    }
}

criterion_group!(benches, decisions);
criterion_main!(benches);
