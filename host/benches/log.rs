//! The decision log's Merkle tree at scale (docs/log.md), on SQLite,
//! in-process: appending with and without the tree, side by side; then,
//! at ENTRIES entries (default 1,000,000), an inclusion proof (planned,
//! read in one query, folded; as `GET /v1/log/proof/inclusion` does) and
//! the logarithmic audit (a consistency proof from a checkpoint to the
//! head, verified), and the linear part of `audit verify` (every entry
//! against its leaf).
//!
//! `cargo test -p stagegate --bench log -- --nocapture` runs it in the
//! dev profile (dependencies, SHA-256 and SQLite included, at opt-level 2
//! as the workspace sets; stagegate itself unoptimised), so its figures
//! are upper bounds; `cargo bench -p stagegate --bench log` runs it
//! optimised.

use std::time::{Duration, Instant};

use stagegate::records::chain::{self, LogEntry};
use stagegate::records::{leaves, merkle, tree};

fn entry(i: u64) -> LogEntry {
    LogEntry {
        decision_id: format!("01JBENCH{i:018}"),
        at: 1_800_000_000_000 + i as i64,
        kind: "gate".into(),
        outcome: "allow".into(),
        codes: vec![],
        bundle: "iso42001-reference".into(),
        bundle_version: "1.0.0".into(),
        bundle_digest: format!("sha256:{}", "ab".repeat(32)),
        request_digest: format!("sha256:{}", "cd".repeat(32)),
        request: None,
        deployment_id: None,
        actor: "gw".into(),
        record: None,
        read_only: false,
    }
}

/// Decision ids are unique across every store of the run.
static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    samples[((samples.len() as f64 - 1.0) * p) as usize]
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

async fn store(dir: &std::path::Path, name: &str) -> stagegate::records::Store {
    stagegate::records::open_store(&format!("sqlite://{}", dir.join(name).display()))
        .await
        .unwrap()
}

/// Appends `n` entries in transactions of `batch` (as the log writer's
/// group commit does), to the chain and the tree or to the chain alone.
async fn append(
    store: &stagegate::records::Store,
    n: u64,
    batch: u64,
    with_tree: bool,
) -> Duration {
    let start = Instant::now();
    let mut done = 0;
    while done < n {
        let k = batch.min(n - done);
        let first = NEXT.fetch_add(k, std::sync::atomic::Ordering::Relaxed);
        let entries: Vec<LogEntry> = (first..first + k).map(entry).collect();
        let mut tx = store.pool.begin().await.unwrap();
        let head = chain::lock(&mut tx).await.unwrap();
        if with_tree {
            chain::append(&mut tx, head, &entries).await.unwrap();
        } else {
            chain::append_chain_only(&mut tx, head, &entries)
                .await
                .unwrap();
        }
        tx.commit().await.unwrap();
        done += k;
    }
    start.elapsed()
}

fn main() {
    let n: u64 = std::env::var("ENTRIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let dir = std::env::temp_dir().join(format!("stagegate-log-bench-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();

        // Appending: the chain alone (as before the tree) and the chain
        // with the tree, the same entries, alternating runs.
        let side = (n / 10).clamp(1000, 100_000);
        let (chain_only, with_tree) = (store(&dir, "chain.db").await, store(&dir, "tree.db").await);
        for batch in [1u64, 64] {
            let runs = if batch == 1 { side / 50 } else { side };
            let mut t = [Duration::ZERO; 2];
            for round in 0..4 {
                let tree_first = round % 2 == 1;
                for with in [tree_first, !tree_first] {
                    let s = if with { &with_tree } else { &chain_only };
                    t[with as usize] += append(s, runs / 4, batch, with).await;
                }
            }
            println!(
                "append, {runs} entries in transactions of {batch}: chain only {:.1} µs/entry, chain + tree {:.1} µs/entry, ratio {:.2}",
                us(t[0]) / runs as f64,
                us(t[1]) / runs as f64,
                t[1].as_secs_f64() / t[0].as_secs_f64()
            );
        }
        drop((chain_only, with_tree));

        // The tree at n entries.
        let big = store(&dir, "big.db").await;
        let built = append(&big, n, 4096, true).await;
        println!("built a log of {n} entries in {:.1} s", built.as_secs_f64());
        let pool = &big.pool;
        let (size, _) = chain::head(pool).await.unwrap();
        let size = size as u64;
        assert_eq!(size, n);
        let root = tree::root(pool, size).await.unwrap();

        let mut samples = Vec::new();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..1000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let index = x % size;
            let start = Instant::now();
            let (head, _) = chain::head(pool).await.unwrap();
            let proof = tree::compute(pool, &merkle::inclusion_plan(index, head as u64)).await.unwrap();
            samples.push(start.elapsed());
            let leaf = tree::compute(pool, &merkle::Plan { ranges: vec![(index, index + 1)] })
                .await
                .unwrap()[0];
            merkle::verify_inclusion(index, size, &leaf, &proof, &root).unwrap();
        }
        println!(
            "inclusion proof at {n} entries (1,000 random indexes): p50 {:.0} µs, p99 {:.0} µs",
            us(percentile(&mut samples, 0.5)),
            us(percentile(&mut samples, 0.99))
        );

        let mut samples = Vec::new();
        for from in [1, n / 3, n / 2 + 1, n - 1000, n - 1] {
            let first = tree::root(pool, from).await.unwrap();
            let start = Instant::now();
            let (head, _) = chain::head(pool).await.unwrap();
            let head = head as u64;
            let second = tree::root(pool, head).await.unwrap();
            let proof = tree::compute(pool, &merkle::consistency_plan(from, head)).await.unwrap();
            merkle::verify_consistency(from, head, &first, &second, &proof).unwrap();
            samples.push(start.elapsed());
        }
        println!(
            "audit by consistency proof at {n} entries (root, proof, verification; 5 checkpoint sizes): max {:.0} µs",
            us(*samples.iter().max().unwrap())
        );

        let start = Instant::now();
        let check = leaves::verify_leaves(pool, n - 1000).await.unwrap();
        assert_eq!(check.broken, None);
        assert_eq!(check.root, root);
        println!(
            "every entry against its leaf and the root recomputed from the entries (audit verify's linear part) at {n} entries: {:.2} s",
            start.elapsed().as_secs_f64()
        );
        drop(big);
        let _ = std::fs::remove_dir_all(&dir);
    });
}
