//! GitHub webhook deliveries already seen, by `X-GitHub-Delivery`.
//!
//! GitHub names every delivery with a GUID and keeps it when a delivery is
//! redelivered. A signed delivery captured once (a proxy log, a debugging
//! session) could otherwise be replayed for as long as the secret lasts,
//! and each replay would judge the release again and post another review.
//! So a delivery id is answered once in 24 hours; a repeat gets `200
//! {"duplicate": true}` and does nothing.
//!
//! Kept in memory, not in the records database: a replay is only worth
//! refusing while the deployment it targets is waiting (GitHub waits at
//! most 30 days, usually minutes), a restart loses at most the ids of the
//! last day, and a replay after a restart still only re-asks the gate on
//! the same records, which answers the same. Several replicas each keep
//! their own set; an operator who needs one set across replicas routes the
//! webhook to one replica. The set is bounded (`MAX_IDS`): past it the
//! oldest ids are forgotten first.
//!
//! A delivery whose review could not be reported to GitHub is forgotten
//! again, so that GitHub's "Redeliver" can retry it.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a delivery id is remembered.
pub const REMEMBER: Duration = Duration::from_secs(24 * 60 * 60);
/// Most ids remembered at once.
pub const MAX_IDS: usize = 100_000;

#[derive(Debug, Default)]
struct Seen {
    at: HashMap<String, Instant>,
    order: VecDeque<(Instant, String)>,
}

/// The delivery ids seen in the last 24 hours.
#[derive(Debug)]
pub struct Deliveries {
    seen: Mutex<Seen>,
    remember: Duration,
    max: usize,
}

impl Default for Deliveries {
    fn default() -> Self {
        Deliveries::new(REMEMBER, MAX_IDS)
    }
}

impl Deliveries {
    pub fn new(remember: Duration, max: usize) -> Self {
        Deliveries {
            seen: Mutex::default(),
            remember,
            max: max.max(1),
        }
    }

    /// Records `id` at `now`: true the first time within the window,
    /// false for a repeat.
    pub fn first(&self, id: &str, now: Instant) -> bool {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        // Forget what is past the window, oldest first.
        while let Some((at, old)) = seen.order.front().cloned() {
            let expired = now.saturating_duration_since(at) >= self.remember;
            if !expired && seen.at.len() < self.max {
                break;
            }
            seen.order.pop_front();
            if seen.at.get(&old) == Some(&at) {
                seen.at.remove(&old);
            }
        }
        if seen.at.contains_key(id) {
            return false;
        }
        seen.at.insert(id.to_string(), now);
        seen.order.push_back((now, id.to_string()));
        true
    }

    /// Forgets `id` (its review could not be reported).
    pub fn forget(&self, id: &str) {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.at.remove(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delivery_id_is_answered_once_within_the_window() {
        let d = Deliveries::new(Duration::from_secs(60), 10);
        let t = Instant::now();
        assert!(d.first("a", t));
        assert!(!d.first("a", t + Duration::from_secs(59)));
        assert!(d.first("b", t));
        // Past the window: a new delivery again.
        assert!(d.first("a", t + Duration::from_secs(61)));
    }

    #[test]
    fn the_set_is_bounded_and_forgets_the_oldest_first() {
        let d = Deliveries::new(Duration::from_secs(3600), 3);
        let t = Instant::now();
        for id in ["a", "b", "c", "d"] {
            assert!(d.first(id, t));
        }
        assert!(d.first("a", t), "the oldest was forgotten");
        assert!(!d.first("d", t), "the newest is remembered");
    }

    #[test]
    fn a_forgotten_delivery_is_answered_again() {
        let d = Deliveries::default();
        let t = Instant::now();
        assert!(d.first("x", t));
        d.forget("x");
        assert!(d.first("x", t));
    }
}
