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

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use crate::decision::Timestamp;

/// A call slower than this (wall clock) marks its bundle slow. Wall time
/// includes preemption: on a loaded two-core machine a microsecond call can
/// be descheduled for a few milliseconds, so the threshold sits well above
/// a scheduler time slice (a first version at 2 ms sent every bundle to the
/// slow lane under load and capped throughput at ~4k decisions/s) and well
/// below the 100 ms a policy spinning to its deadline takes.
pub const SLOW_CALL: Duration = Duration::from_millis(25);
/// How long a bundle stays in the slow lane after its last slow call.
pub const SLOW_FOR: Duration = Duration::from_secs(10);

pub struct Lane {
    slow_until_ms: AtomicI64,
    permits: Arc<Semaphore>,
}

impl Lane {
    pub fn new() -> Self {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        Lane {
            slow_until_ms: AtomicI64::new(0),
            permits: Arc::new(Semaphore::new((cores / 2).max(1))),
        }
    }

    /// Whether the next decision should go to the slow lane.
    pub fn is_slow(&self) -> bool {
        self.slow_until_ms.load(Ordering::Relaxed) > Timestamp::now().millis()
    }

    /// Records how long a call took.
    pub fn observe(&self, took: Duration) {
        if took > SLOW_CALL {
            let until = Timestamp::now().millis() + SLOW_FOR.as_millis() as i64;
            self.slow_until_ms.store(until, Ordering::Relaxed);
        }
    }

    /// Runs `f` inline, or on the blocking pool under the lane's permits
    /// if the bundle is slow. Returns what `f` returned and how long it ran.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, String> {
        if !self.is_slow() {
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
            .map_err(|e| e.to_string())?;
        let (out, took) = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let started = Instant::now();
            let out = f();
            (out, started.elapsed())
        })
        .await
        .map_err(|e| e.to_string())?;
        self.observe(took);
        Ok(out)
    }
}

impl Default for Lane {
    fn default() -> Self {
        Self::new()
    }
}
