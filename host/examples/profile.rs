//! A loop for profilers (perf, valgrind --tool=callgrind): one variant of
//! one decision, many times.
//!
//! `cargo build --release --example profile -p stagegate`
//! `valgrind --tool=callgrind target/release/examples/profile gate small warm 20000`

#[path = "../benches/support/mod.rs"]
mod support;

use stagegate::decision::DecisionKind;

/// The same allocator as the `stagegate` binary.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;
use stagegate::policy::Isolation;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let kind: DecisionKind = args
        .get(1)
        .map(String::as_str)
        .unwrap_or("gate")
        .parse()
        .expect("decision");
    let large = args.get(2).map(String::as_str) == Some("large");
    let variant = args.get(3).cloned().unwrap_or_else(|| "warm".into());
    let n: usize = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let body = support::request(kind, large);
    let bundle = support::reference_bundle();
    match variant.as_str() {
        "native" => {
            let native = support::Native::new(&bundle);
            for _ in 0..n {
                std::hint::black_box(native.decide(kind, &body));
            }
        }
        "decode" => {
            for _ in 0..n {
                std::hint::black_box(stagegate::decision::decode(kind, &body).unwrap());
            }
        }
        "warm" | "fresh" => {
            let isolation = if variant == "warm" {
                Isolation::Warm
            } else {
                Isolation::Fresh
            };
            let runtime = support::runtime();
            let p = support::Sandboxed::new(&runtime, &bundle, isolation);
            for _ in 0..n {
                std::hint::black_box(p.decide(kind, &body));
            }
        }
        other => panic!("unknown variant {other}: native, decode, warm or fresh"),
    }
}
