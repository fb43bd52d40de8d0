//! Decision clients that keep a service busy while a test swaps what it
//! serves (uploads, set members, a moved registry tag).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;

/// `clients` threads POSTing `body` to `url` until [`Load::stop`]. Every
/// request is counted, every non-200 a failure; `judge` checks each 200
/// answer (asserting what must hold) and returns what it saw of it (a
/// version), kept per client in the order answered.
pub struct Load {
    stop: Arc<AtomicBool>,
    total: Arc<AtomicUsize>,
    failures: Arc<AtomicUsize>,
    clients: Vec<JoinHandle<Vec<String>>>,
}

/// What the clients sent and saw.
pub struct Report {
    pub total: usize,
    pub failures: usize,
    /// Per client, what `judge` returned for each answer, in order.
    pub seen: Vec<Vec<String>>,
}

impl Load {
    pub fn start(
        clients: usize,
        url: String,
        body: Vec<u8>,
        judge: impl Fn(&serde_json::Value) -> String + Send + Sync + 'static,
    ) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let total = Arc::new(AtomicUsize::new(0));
        let failures = Arc::new(AtomicUsize::new(0));
        let judge = Arc::new(judge);
        let clients = (0..clients)
            .map(|_| {
                let (url, body, stop, total, failures, judge) = (
                    url.clone(),
                    body.clone(),
                    stop.clone(),
                    total.clone(),
                    failures.clone(),
                    judge.clone(),
                );
                std::thread::spawn(move || {
                    let mut seen = Vec::new();
                    while !stop.load(Ordering::Relaxed) {
                        let r = super::server::send(
                            &url,
                            "POST",
                            None,
                            Some("application/json"),
                            Some(&body),
                        );
                        total.fetch_add(1, Ordering::Relaxed);
                        if r.status != 200 {
                            failures.fetch_add(1, Ordering::Relaxed);
                            continue;
                        }
                        seen.push(judge(&r.json()));
                    }
                    seen
                })
            })
            .collect();
        Load {
            stop,
            total,
            failures,
            clients,
        }
    }

    /// Stops the clients and reports.
    pub fn stop(self) -> Report {
        self.stop.store(true, Ordering::Relaxed);
        let seen = self
            .clients
            .into_iter()
            .map(|c| c.join().expect("client thread"))
            .collect();
        Report {
            total: self.total.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            seen,
        }
    }
}

impl Report {
    /// No request failed, and more than `min` were sent.
    pub fn assert_none_failed(&self, min: usize) {
        let total = self.total;
        assert_eq!(self.failures, 0, "failed requests out of {total}");
        assert!(total > min, "the load generator sent only {total} requests");
    }

    /// Everything any client saw.
    pub fn all_seen(&self) -> std::collections::BTreeSet<String> {
        self.seen.iter().flatten().cloned().collect()
    }
}
