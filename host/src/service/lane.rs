//! Keeping a slow policy from stalling everyone else.
//!
//! Decisions normally run inline on the async worker that received them:
//! a warm call takes microseconds, less than any hand-off. But a policy
//! that loops until its deadline would hold that worker for the whole
//! deadline, and with a worker per core a few such requests would stall
//! every other bundle. So each bundle has a lane: once one of its calls is
//! slow, its decisions move for a while to the blocking thread pool, at
//! most half the cores' worth at a time, and wait their turn there without
//! holding a worker. Fast bundles never leave the inline path.
//!
//! Slowness is judged per request cost, not only per bundle. A *heavy*
//! request always runs in the slow lane and its time never marks the bundle
//! slow: otherwise a client sending large requests (long lists are legal up
//! to the decoder's bound, and each item may become a finding) would push
//! the bundle, and so every other caller of it, into the slow lane,
//! queueing their microsecond calls behind its own. A request is heavy by
//! its body ([`HEAVY_REQUEST_BYTES`]: decoding it is then most of the
//! work, so it is decoded in the lane too) or by its list items
//! ([`HEAVY_REQUEST_ITEMS`]: the reference policy's rules are O(n log n)
//! in them). Only a slow call on a light request says the policy is slow.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use crate::decision::{Request, Timestamp};

/// A call slower than this (wall clock) marks its bundle slow. Wall time
/// includes preemption: on a loaded two-core machine a microsecond call can
/// be descheduled for a few milliseconds, so the threshold sits well above
/// a scheduler time slice (a first version at 2 ms sent every bundle to the
/// slow lane under load and capped throughput at ~4k decisions/s) and well
/// below the 100 ms a policy spinning to its deadline takes.
pub(crate) const SLOW_CALL: Duration = Duration::from_millis(25);
/// How long a bundle stays in the slow lane after its last slow call.
pub(crate) const SLOW_FOR: Duration = Duration::from_secs(10);
/// A request body above this size is heavy: it is decoded and decided in
/// the slow lane and its duration says nothing about the bundle. The
/// reference examples are 3–5 KiB.
pub(crate) const HEAVY_REQUEST_BYTES: usize = 64 << 10;
/// A request with more list items than this (all lists, nested ones
/// included) is heavy. The reference examples hold a few dozen; a 62 KiB
/// gate request of 20,000 empty criteria asks for 20,000 findings and took
/// 300 ms in a debug build, enough to mark a bundle slow on its own.
pub(crate) const HEAVY_REQUEST_ITEMS: usize = 256;

pub(crate) struct Lane {
    slow_until_ms: AtomicI64,
    permits: Arc<Semaphore>,
}

impl Lane {
    pub(crate) fn new() -> Self {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        Lane {
            slow_until_ms: AtomicI64::new(0),
            permits: Arc::new(Semaphore::new((cores / 2).max(1))),
        }
    }

    /// Whether the next decision should go to the slow lane.
    pub(crate) fn is_slow(&self) -> bool {
        self.slow_until_ms.load(Ordering::Relaxed) > Timestamp::now().millis()
    }

    /// Records how long a call took.
    pub(crate) fn observe(&self, took: Duration) {
        if took > SLOW_CALL {
            let until = Timestamp::now().millis() + SLOW_FOR.as_millis() as i64;
            self.slow_until_ms.store(until, Ordering::Relaxed);
        }
    }

    /// Runs `f`, the work on one request, inline; or on the blocking pool
    /// under the lane's permits if the bundle is slow or the request
    /// `heavy` (see [`is_heavy_body`], [`is_heavy_request`]). Only a light
    /// request's time is observed. Returns what `f` returned.
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        heavy: bool,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, LaneError> {
        if !heavy && !self.is_slow() {
            let started = Instant::now();
            let out = f();
            self.observe(started.elapsed());
            return Ok(out);
        }
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(LaneError::Closed)?;
        let (out, took) = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let started = Instant::now();
            let out = f();
            (out, started.elapsed())
        })
        .await
        .map_err(LaneError::Died)?;
        if !heavy {
            self.observe(took);
        }
        Ok(out)
    }
}

/// Why a lane did not run its work to the end.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LaneError {
    /// The lane's permits were closed (the service is stopping).
    #[error("{0}")]
    Closed(#[source] tokio::sync::AcquireError),
    /// The blocking task running the work died.
    #[error("{0}")]
    Died(#[source] tokio::task::JoinError),
}

/// A body this large is heavy whatever it holds.
pub(crate) fn is_heavy_body(bytes: usize) -> bool {
    bytes > HEAVY_REQUEST_BYTES
}

/// A decoded request with this many list items is heavy.
pub(crate) fn is_heavy_request(request: &Request) -> bool {
    request.list_items() > HEAVY_REQUEST_ITEMS
}

impl Default for Lane {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slow_call() {
        std::thread::sleep(SLOW_CALL + Duration::from_millis(10));
    }

    #[tokio::test]
    async fn a_slow_light_call_moves_the_bundle_to_the_slow_lane() {
        let lane = Lane::new();
        lane.run(false, slow_call).await.unwrap();
        assert!(lane.is_slow());
    }

    #[tokio::test]
    async fn a_slow_heavy_request_does_not_move_the_bundle_to_the_slow_lane() {
        let lane = Lane::new();
        let here = std::thread::current().id();
        let ran_on = lane
            .run(true, || {
                slow_call();
                std::thread::current().id()
            })
            .await
            .unwrap();
        assert_ne!(ran_on, here, "a heavy request runs off the async worker");
        assert!(!lane.is_slow(), "light requests stay inline");
        let light = lane
            .run(false, || std::thread::current().id())
            .await
            .unwrap();
        assert_eq!(light, here);
    }

    #[test]
    fn a_request_is_heavy_by_its_body_or_by_its_list_items() {
        use crate::decision::{DecisionKind, decode};
        assert!(!is_heavy_body(HEAVY_REQUEST_BYTES));
        assert!(is_heavy_body(HEAVY_REQUEST_BYTES + 1));
        let gate = |criteria: usize| {
            let body = format!(
                r#"{{"now":"2026-11-26T12:00:00Z","system":{{"id":"s","risk_tier":"low"}},"plan":{{"stages":[{{"criteria":[{}]}},{{}}]}}}}"#,
                vec!["{}"; criteria].join(",")
            );
            decode(DecisionKind::Gate, body.as_bytes()).unwrap()
        };
        // Two stages plus their criteria.
        assert!(!is_heavy_request(&gate(HEAVY_REQUEST_ITEMS - 2)));
        assert!(is_heavy_request(&gate(HEAVY_REQUEST_ITEMS - 1)));
    }
}
