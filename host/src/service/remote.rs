//! Remote bundle sources: an HTTP(S) URL or an OCI registry tag, polled on
//! a thread of its own (docs/distribution.md).
//!
//! A poll asks one conditional question (`If-None-Match` on the URL, or on
//! the tag's manifest) and, only when the answer changed, fetches the
//! bundle and hands it to [`Registry::activate`]: the same verification,
//! version floor, compile cache, smoke call, persistence and atomic swap
//! as every other source. A failed poll changes nothing that serves; it
//! only lengthens the wait before the next (exponential backoff with
//! jitter) and, after `stale_after_ms` without success, flags the source
//! stale.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;

use super::registry::{Origin, PollResult, Registry, Slot, SourceState};
use crate::bundle::ArchiveLimits;
use crate::config::{BundleConfig, SourcesConfig};
use crate::decision::Timestamp;
use crate::distribution::http::{Fetched, HttpSource, Validators};
use crate::distribution::oci::{self, Resolution};
use crate::distribution::{FetchError, TransportOptions, redact_url};

enum Fetcher {
    Url(HttpSource),
    Oci(oci::Client),
}

/// What was last seen at the source, to ask conditionally.
#[derive(Default)]
struct Cursor {
    validators: Validators,
    manifest_digest: Option<String>,
    /// The candidate last refused (`url`: by its validators; `oci`: by its
    /// manifest digest) and why: not fetched again while the source still
    /// offers it.
    rejected: Option<(String, String)>,
}

/// One polled source.
pub(crate) struct Poller {
    name: String,
    fetcher: Fetcher,
    location: String,
    registry: Arc<Registry>,
    slot: Arc<Slot>,
    interval: Duration,
    max_backoff: Duration,
    stale_after: Duration,
    cursor: Cursor,
    failures: u32,
    /// When polling began: staleness counts from here until a success.
    started: Timestamp,
}

/// Why a remote source could not be set up, naming the bundle.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RemoteError {
    /// The source's settings cannot work (a bad reference, a CA file).
    #[error("bundle '{bundle}': {source}")]
    Source {
        bundle: String,
        #[source]
        source: FetchError,
    },
    #[error("bundle '{bundle}': cannot start the source poller: {source}")]
    Spawn {
        bundle: String,
        #[source]
        source: std::io::Error,
    },
}

/// Starts a poller thread for every bundle with a `url` or `oci` source.
/// A source that cannot be set up (an unreadable CA file) is an error
/// before the service listens.
pub(crate) fn start(
    registry: &Arc<Registry>,
    bundles: &[BundleConfig],
    sources: &SourcesConfig,
) -> Result<(), RemoteError> {
    for b in bundles {
        if let Some(p) = Poller::new(registry, b, sources)? {
            p.spawn()?;
        }
    }
    Ok(())
}

impl Poller {
    pub(crate) fn new(
        registry: &Arc<Registry>,
        b: &BundleConfig,
        sources: &SourcesConfig,
    ) -> Result<Option<Self>, RemoteError> {
        let transport = TransportOptions {
            ca_file: b.ca_file.clone(),
            timeout: Duration::from_millis(sources.timeout_ms),
        };
        let err = |source: FetchError| RemoteError::Source {
            bundle: b.name.clone(),
            source,
        };
        let (fetcher, kind, location) = if let Some(url) = &b.url {
            let src =
                HttpSource::new(url, b.credential(), b.allow_insecure, &transport).map_err(err)?;
            (Fetcher::Url(src), "url", redact_url(url))
        } else if let Some(r) = &b.oci {
            let reference: oci::Reference = r.parse().map_err(err)?;
            let location = reference.to_string();
            let client = oci::Client::new(
                reference,
                oci::ClientOptions {
                    plain_http: b.plain_http,
                    allow_insecure: b.allow_insecure,
                    credential: b.credential(),
                    docker_config: b.docker_config.clone(),
                    transport,
                },
            )
            .map_err(err)?;
            (Fetcher::Oci(client), "oci", location)
        } else {
            return Ok(None);
        };
        let interval =
            Duration::from_millis(b.poll_interval_ms.unwrap_or(sources.poll_interval_ms));
        let stale_after = Duration::from_millis(b.stale_after_ms.unwrap_or(sources.stale_after_ms));
        let slot = registry.slot(&b.name);
        slot.update_source(|s| {
            *s = Some(SourceState::new(
                kind,
                location.clone(),
                interval,
                stale_after,
            ))
        });
        registry
            .metrics()
            .source_registered(&b.name, &PollResult::ALL);
        Ok(Some(Poller {
            name: b.name.clone(),
            fetcher,
            location,
            registry: registry.clone(),
            slot,
            interval,
            max_backoff: Duration::from_millis(sources.max_backoff_ms).max(interval),
            stale_after,
            cursor: Cursor::default(),
            failures: 0,
            started: Timestamp::now(),
        }))
    }

    /// Polls forever on a thread of its own: at once when the bundle has
    /// no active version yet; otherwise (the persisted copy is serving)
    /// after a random part of the interval, so a fleet restarted together
    /// does not ask the registry all at the same moment.
    fn spawn(mut self) -> Result<(), RemoteError> {
        let name = self.name.clone();
        std::thread::Builder::new()
            .name(format!("stagegate-source-{}", self.name))
            .spawn(move || {
                if self.slot.active().is_some() {
                    let first = self
                        .interval
                        .mul_f64(rand::thread_rng().gen_range(0.0..1.0));
                    self.sleep(first);
                }
                loop {
                    let wait = self.poll();
                    self.sleep(wait);
                }
            })
            .map(|_| ())
            .map_err(|source| RemoteError::Spawn {
                bundle: name,
                source,
            })
    }

    /// Sleeps `wait`, waking when the source turns stale to say so.
    fn sleep(&self, wait: Duration) {
        let until = Instant::now() + wait;
        loop {
            let now = Instant::now();
            if now >= until {
                return;
            }
            let stale = self.refresh_stale();
            // Until the stale deadline when not yet stale, else the end.
            let step = if stale {
                until - now
            } else {
                (until - now).min(self.until_stale().unwrap_or(until - now))
            };
            std::thread::sleep(step.max(Duration::from_millis(10)));
        }
    }

    fn until_stale(&self) -> Option<Duration> {
        let status = self.slot.source_status()?;
        let since = status.last_success_at.unwrap_or(self.started).millis();
        let deadline = since + self.stale_after.as_millis() as i64 + 1;
        let left = deadline - Timestamp::now().millis();
        Some(Duration::from_millis(left.max(0) as u64))
    }

    fn refresh_stale(&self) -> bool {
        let stale = self.slot.source_status().is_some_and(|s| s.stale);
        self.registry.metrics().source_stale(&self.name, stale);
        stale
    }

    /// One poll: asks, maybe activates, records; returns the wait before
    /// the next.
    pub(crate) fn poll(&mut self) -> Duration {
        let (result, error) = match &self.fetcher {
            Fetcher::Url(_) => self.poll_url(),
            Fetcher::Oci(_) => self.poll_oci(),
        };
        let now = Timestamp::now();
        if result == PollResult::Error {
            self.failures = self.failures.saturating_add(1);
        } else {
            self.failures = 0;
        }
        let wait = next_wait(self.interval, self.max_backoff, self.failures);
        let metrics = self.registry.metrics();
        metrics.source_poll(&self.name, result.as_str());
        if result.is_success() {
            metrics.source_success(&self.name, now.millis() / 1000);
        }
        match (&error, result) {
            (Some(e), PollResult::Error) => {
                tracing::warn!(bundle = %self.name, source = %self.location, error = %e, failures = self.failures, retry_ms = wait.as_millis() as u64, "bundle source poll failed; the active version keeps serving")
            }
            _ => {
                tracing::debug!(bundle = %self.name, source = %self.location, result = result.as_str(), "bundle source polled")
            }
        }
        let cursor = &self.cursor;
        let failures = self.failures;
        self.slot.update_source(|s| {
            if let Some(s) = s {
                let st = &mut s.status;
                st.last_poll_at = Some(now);
                st.last_result = Some(result);
                st.last_error = error;
                if result.is_success() {
                    st.last_success_at = Some(now);
                }
                st.etag = cursor.validators.etag.clone();
                st.last_modified = cursor.validators.last_modified.clone();
                st.manifest_digest = cursor.manifest_digest.clone();
                st.consecutive_failures = failures;
                st.backoff_ms = (failures > 0).then_some(wait.as_millis() as u64);
                st.next_poll_at = Some(Timestamp(now.millis() + wait.as_millis() as i64));
            }
        });
        self.refresh_stale();
        wait
    }

    fn limit() -> u64 {
        ArchiveLimits::default().max_archive_bytes
    }

    fn poll_url(&mut self) -> (PollResult, Option<String>) {
        let Fetcher::Url(src) = &self.fetcher else {
            return (PollResult::Error, None);
        };
        let origin = Origin::Url {
            url: self.location.clone(),
        };
        match src.fetch(&self.cursor.validators, Self::limit()) {
            Ok(Fetched::NotModified) => match &self.cursor.rejected {
                Some((_, reason)) => (PollResult::Rejected, Some(reason.clone())),
                None => (PollResult::Unchanged, None),
            },
            Ok(Fetched::Body { bytes, validators }) => {
                let key = format!("{validators:?}");
                self.cursor.validators = validators;
                self.cursor.rejected = None;
                match self
                    .registry
                    .activate(&self.name, &bytes, origin, false, None)
                {
                    Ok(a) if a.unchanged => (PollResult::Unchanged, None),
                    Ok(_) => (PollResult::Changed, None),
                    Err(e) => {
                        let reason = e.to_string();
                        self.cursor.rejected = Some((key, reason.clone()));
                        (PollResult::Rejected, Some(reason))
                    }
                }
            }
            Err(e) if e.is_rejection() => {
                self.registry.refuse(&self.name, origin, e.to_string());
                (PollResult::Rejected, Some(e.to_string()))
            }
            Err(e) => (PollResult::Error, Some(e.to_string())),
        }
    }

    fn poll_oci(&mut self) -> (PollResult, Option<String>) {
        let Fetcher::Oci(client) = &self.fetcher else {
            return (PollResult::Error, None);
        };
        let resolved = match client.resolve(self.cursor.manifest_digest.as_deref()) {
            Ok(Resolution::Unchanged) => {
                // The tag names the manifest accepted last: whatever was
                // refused in between is gone from it.
                self.cursor.rejected = None;
                return (PollResult::Unchanged, None);
            }
            Ok(Resolution::Manifest(r)) => r,
            Err(e) if e.is_rejection() => {
                let origin = Origin::Oci {
                    reference: self.location.clone(),
                    manifest_digest: None,
                };
                self.registry.refuse(&self.name, origin, e.to_string());
                return (PollResult::Rejected, Some(e.to_string()));
            }
            Err(e) => return (PollResult::Error, Some(e.to_string())),
        };
        if let Some((digest, reason)) = &self.cursor.rejected
            && *digest == resolved.digest
        {
            return (PollResult::Rejected, Some(reason.clone()));
        }
        let origin = Origin::Oci {
            reference: self.location.clone(),
            manifest_digest: Some(resolved.digest.clone()),
        };
        let bytes = match client.fetch_blob(&resolved.layer, Self::limit()) {
            Ok(b) => b,
            // A corrupt blob may be repaired under the same digest: it is
            // refused now and fetched again at the next poll.
            Err(e) if e.is_rejection() => {
                self.registry.refuse(&self.name, origin, e.to_string());
                return (PollResult::Rejected, Some(e.to_string()));
            }
            Err(e) => return (PollResult::Error, Some(e.to_string())),
        };
        match self
            .registry
            .activate(&self.name, &bytes, origin, false, None)
        {
            Ok(a) => {
                self.cursor.manifest_digest = Some(resolved.digest);
                self.cursor.rejected = None;
                if a.unchanged {
                    (PollResult::Unchanged, None)
                } else {
                    (PollResult::Changed, None)
                }
            }
            Err(e) => {
                let reason = e.to_string();
                self.cursor.rejected = Some((resolved.digest, reason.clone()));
                (PollResult::Rejected, Some(reason))
            }
        }
    }
}

/// The wait before the next poll: the interval with ±20 % jitter while the
/// source answers; after `failures` consecutive failures, the interval
/// doubled per failure up to `max_backoff`, drawn from 50–100 % of that
/// ("equal jitter"), so a fleet that lost its registry together does not
/// return to it together.
pub(crate) fn next_wait(interval: Duration, max_backoff: Duration, failures: u32) -> Duration {
    let mut rng = rand::thread_rng();
    if failures == 0 {
        return interval.mul_f64(rng.gen_range(0.8..=1.2));
    }
    let factor = 2u32.saturating_pow(failures.min(30));
    let ceiling = interval.saturating_mul(factor).min(max_backoff);
    ceiling.mul_f64(rng.gen_range(0.5..=1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn healthy_waits_spread_around_the_interval() {
        let i = Duration::from_millis(1000);
        for _ in 0..200 {
            let w = next_wait(i, Duration::from_secs(60), 0);
            assert!((800..=1200).contains(&w.as_millis()), "{w:?}");
        }
    }

    /// The registry load of a fleet, simulated with the real wait
    /// function: `n` instances polling every `interval`; the peak count of
    /// polls in any tenth of an interval, over intervals `from..to`, for a
    /// fleet whose first polls are at `first(i)`.
    fn peak_per_tenth(n: usize, from: u32, to: u32, first: impl Fn(usize) -> f64) -> (f64, usize) {
        let interval = Duration::from_secs(1);
        let buckets = (to * 10) as usize;
        let mut counts = vec![0usize; buckets];
        for i in 0..n {
            let mut t = first(i);
            while t < f64::from(to) {
                let b = (t * 10.0) as usize;
                counts[b] += 1;
                t += next_wait(interval, Duration::from_secs(60), 0).as_secs_f64();
            }
        }
        let window = &counts[(from * 10) as usize..];
        let mean = window.iter().sum::<usize>() as f64 / window.len() as f64;
        (mean, window.iter().copied().max().unwrap_or(0))
    }

    #[test]
    fn jitter_spreads_a_fleet_that_starts_in_step() {
        let n = 1000;
        // Restarted together with persisted bundles: first poll at a
        // random point of the first interval.
        let (mean, peak) = peak_per_tenth(n, 0, 20, |_| rand::thread_rng().gen_range(0.0..1.0));
        eprintln!(
            "computed: {n} instances, persisted start: {mean:.0} polls per tenth of an interval on average, peak {peak}"
        );
        assert!((peak as f64) < mean * 2.0, "{peak} vs {mean}");
        // New instances with nothing to serve poll at once: one burst of
        // n, then jitter spreads them out.
        let (mean, peak_early) = peak_per_tenth(n, 1, 5, |_| 0.0);
        let (_, peak_late) = peak_per_tenth(n, 10, 20, |_| 0.0);
        eprintln!(
            "computed: {n} instances, cold start in step: peak {peak_early} per tenth in intervals 1-5, {peak_late} in intervals 10-20 (mean {mean:.0})"
        );
        assert!((peak_late as f64) < mean * 2.0, "{peak_late} vs {mean}");
        assert!(peak_late < peak_early);
    }

    #[test]
    fn failures_back_off_exponentially_up_to_the_ceiling() {
        let i = Duration::from_millis(1000);
        let max = Duration::from_millis(10_000);
        for (failures, ceiling) in [(1, 2000), (2, 4000), (3, 8000), (4, 10_000), (40, 10_000)] {
            for _ in 0..50 {
                let w = next_wait(i, max, failures).as_millis();
                assert!(
                    (ceiling / 2..=ceiling).contains(&w),
                    "{failures} failures: {w} ms"
                );
            }
        }
    }
}
