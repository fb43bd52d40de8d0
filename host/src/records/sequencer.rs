//! One sequencer per PostgreSQL log (docs/log.md, "Replicas").
//!
//! Replicas sharing a PostgreSQL database elect one of them to append to
//! the decision log: it holds a lease row (`log_sequencer`), renews it
//! well before it runs out, and appends its own entries and everyone
//! else's. The others put their entries in a queue (`log_queue`), in the
//! transaction that writes the records they commit to, and, under
//! `durability = "ack"`, answer once the sequencer has appended them.
//!
//! Why one writer: each replica appending for itself makes every replica
//! hash against a head another replica keeps moving, so under load most
//! appends are hashed twice and every commit contends for the head's row
//! lock. One sequencer keeps its frontier in memory and appends everyone's
//! entries in one transaction per batch.
//!
//! Fencing: an append checks the lease in its own transaction (`holder =
//! me AND expires_at > now`, database clock, `FOR SHARE`), after it took
//! the chain lock. A takeover is an `UPDATE` of the lease row, which waits
//! for every transaction holding the row `FOR SHARE`; so a lease is never
//! taken over while its holder's append is in flight, and once it is
//! taken over the old holder's next append finds it gone and queues its
//! entries instead. Expiry is measured by the database's clock only, so
//! replicas' clocks need not agree.
//!
//! Wake-ups: a replica that queues entries notifies the sequencer
//! (`NOTIFY stagegate_log_queued`, sent when its transaction commits), and
//! a sequencer that appended queued entries notifies the replicas waiting
//! for them (`stagegate_log_appended`). Each replica listens on a
//! connection of its own. Notifications are hints, never the record: a
//! replica also looks at the queue on a slow timer, so one lost on a
//! reconnect, or a pooler that does not pass `LISTEN` through (PgBouncer in
//! transaction mode), costs latency, never an entry; without a listener
//! the replica polls as often as it did before notifications.
//!
//! SQLite has one process and never elects: stores without a sequencer
//! append as they always did.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use sqlx::{Any, AnyPool, Row, Transaction};
use tokio::sync::{Notify, mpsc, oneshot};

// Below the store and the chain (the store holds a replica's part, the
// writers encode entries): this module speaks SQL and JSON text only.

/// The database's clock in ms since the epoch: lease times are compared
/// with it alone.
const NOW_MS: &str = "(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT";

/// How often a replica waiting for its queued entries asks whether they
/// are in the log yet, when it has no notification listener.
const WAIT_POLL: Duration = Duration::from_millis(2);

/// How often it asks while its listener runs: a backstop for a lost
/// notification, not the way it learns.
const WAIT_BACKSTOP: Duration = Duration::from_millis(100);

/// The channel a replica that queued entries notifies (the sequencer
/// appends them), and the one a sequencer that appended queued entries
/// notifies (their replicas answer).
const QUEUED: &str = "stagegate_log_queued";
const APPENDED: &str = "stagegate_log_appended";

/// Told (holds the lease, leases lost so far) when either changes: the
/// service's metrics.
type Observer = dyn Fn(bool, u64) + Send + Sync;

/// This replica's part in sequencing one PostgreSQL log.
pub(crate) struct Sequencing {
    /// This process's name in the lease and the queue: unique per process,
    /// so a restarted replica never mistakes an old lease for its own.
    pub(crate) holder: String,
    lease: Duration,
    /// Answer `ack` decisions once integrated (`false`: once queued).
    pub(crate) ack: bool,
    /// Until when this replica believes it holds the lease: a hint that
    /// decides whether to try appending; the transaction decides.
    held_until: Mutex<Option<Instant>>,
    held: AtomicBool,
    lost: AtomicU64,
    /// Woken when this replica takes the lease, so its writer drains the
    /// queue at once.
    pub(crate) taken: Notify,
    /// Woken when another replica queued entries (a notification).
    pub(crate) queued: Notify,
    /// Woken when a sequencer appended queued entries (a notification).
    appended: Notify,
    /// The notification listener is connected and listening: polls are
    /// backstops only.
    listening: AtomicBool,
    waiters: mpsc::UnboundedSender<Waiter>,
    observer: OnceLock<Box<Observer>>,
    pool: AnyPool,
    /// The notification listener's task: stopped with this replica's
    /// part (it waits on its connection and would otherwise keep it).
    listener: OnceLock<tokio::task::AbortHandle>,
}

impl Drop for Sequencing {
    fn drop(&mut self) {
        if let Some(listener) = self.listener.get() {
            listener.abort();
        }
    }
}

/// Entries a replica queued that are not in the log yet when its caller
/// stops waiting (no sequencer appended them in time, or the waiter
/// stopped); they stay queued and are appended when a sequencer runs.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct NotAppended(pub(crate) String);

/// Callers waiting for queued entries: done once no entry this replica
/// queued up to `max_id` is still queued.
struct Waiter {
    max_id: i64,
    since: Instant,
    done: Vec<oneshot::Sender<Result<(), String>>>,
}

impl Sequencing {
    /// Starts taking and renewing the lease, and answering waiters, on
    /// `pool` (PostgreSQL), and listening for the queue's notifications on
    /// a connection of its own to `listen` (none: polling alone).
    pub(crate) fn start(
        pool: AnyPool,
        listen: Option<Arc<str>>,
        name: &str,
        lease_ms: u64,
        ack: bool,
    ) -> Arc<Self> {
        let (waiters, rx) = mpsc::unbounded_channel();
        let holder = format!("{name}-{}", ulid::Ulid::new().to_string().to_lowercase());
        let s = Arc::new(Sequencing {
            holder,
            lease: Duration::from_millis(lease_ms.max(100)),
            ack,
            held_until: Mutex::new(None),
            held: AtomicBool::new(false),
            lost: AtomicU64::new(0),
            taken: Notify::new(),
            queued: Notify::new(),
            appended: Notify::new(),
            listening: AtomicBool::new(false),
            waiters,
            observer: OnceLock::new(),
            pool: pool.clone(),
            listener: OnceLock::new(),
        });
        tokio::spawn(lease_loop(pool.clone(), Arc::downgrade(&s)));
        tokio::spawn(answer_waiters(pool, Arc::downgrade(&s), rx));
        if let Some(url) = listen {
            let task = tokio::spawn(listen_loop(url, Arc::downgrade(&s)));
            let _ = s.listener.set(task.abort_handle());
        }
        s
    }

    /// Whether the notification listener runs (polls are backstops).
    pub(crate) fn is_listening(&self) -> bool {
        self.listening.load(Ordering::Acquire)
    }

    /// Calls `observer(holds the lease, leases lost)` on every change
    /// (once only; later observers are ignored).
    pub(crate) fn observe(&self, observer: Box<Observer>) {
        observer(
            self.held.load(Ordering::Acquire),
            self.lost.load(Ordering::Acquire),
        );
        let _ = self.observer.set(observer);
    }

    /// Whether this replica believes it holds the lease (a hint: the
    /// append's transaction checks).
    pub(crate) fn is_held(&self) -> bool {
        let until = *self.held_until.lock().unwrap_or_else(|e| e.into_inner());
        until.is_some_and(|u| Instant::now() < u)
    }

    /// Whether this replica holds the lease, checked in `tx` and kept
    /// until `tx` ends (`FOR SHARE`: a takeover waits for it). Take the
    /// chain lock first: every appender locks in that order.
    pub(crate) async fn holds(&self, tx: &mut Transaction<'_, Any>) -> Result<bool, sqlx::Error> {
        let row = sqlx::query(&format!(
            "SELECT epoch FROM log_sequencer WHERE id = 1 AND holder = $1 AND expires_at > {NOW_MS} FOR SHARE"
        ))
        .bind(&self.holder)
        .fetch_optional(&mut **tx)
        .await?;
        Ok(row.is_some())
    }

    /// Waits until the entries this replica queued up to `max_id` are in
    /// the log. Fails when no sequencer appended them within twice the
    /// lease and 5 s (they stay queued and are appended later).
    pub(crate) async fn integrated(&self, max_id: i64) -> Result<(), NotAppended> {
        let (done, wait) = oneshot::channel();
        self.integrated_all(max_id, vec![done]);
        wait.await
            .map_err(|_| "the queue's waiter stopped".to_string())
            .and_then(|r| r)
            .map_err(NotAppended)
    }

    /// [`Self::integrated`] for many callers, answered through `done`.
    pub(crate) fn integrated_all(
        &self,
        max_id: i64,
        done: Vec<oneshot::Sender<Result<(), String>>>,
    ) {
        if let Err(e) = self.waiters.send(Waiter {
            max_id,
            since: Instant::now(),
            done,
        }) {
            for d in e.0.done {
                let _ = d.send(Err("the queue's waiter stopped".into()));
            }
        }
    }

    /// Gives the lease up (a replica stopping): another replica takes it
    /// at its next attempt instead of after the lease runs out. An append
    /// of this replica after it queues instead (fencing).
    pub(crate) async fn release(&self) -> Result<(), sqlx::Error> {
        *self.held_until.lock().unwrap_or_else(|e| e.into_inner()) = None;
        sqlx::query("UPDATE log_sequencer SET expires_at = 0 WHERE id = 1 AND holder = $1")
            .bind(&self.holder)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    fn set_held(&self, until: Option<Instant>) {
        *self.held_until.lock().unwrap_or_else(|e| e.into_inner()) = until;
        let now = until.is_some();
        let was = self.held.swap(now, Ordering::AcqRel);
        if was && !now {
            self.lost.fetch_add(1, Ordering::AcqRel);
        }
        if was != now
            && let Some(o) = self.observer.get()
        {
            o(now, self.lost.load(Ordering::Acquire));
        }
    }
}

/// Takes the lease if it is free or expired, or renews it if this
/// replica holds it; returns the lease's epoch (bumped on every change of
/// holder), or None when another replica holds it.
pub(crate) async fn claim(
    pool: &AnyPool,
    holder: &str,
    lease_ms: i64,
) -> Result<Option<i64>, sqlx::Error> {
    let row = sqlx::query(&format!(
        "UPDATE log_sequencer SET \
         epoch = CASE WHEN holder = $1 THEN epoch ELSE epoch + 1 END, \
         holder = $2, expires_at = {NOW_MS} + $3 \
         WHERE id = 1 AND (holder = $4 OR holder IS NULL OR expires_at <= {NOW_MS}) \
         RETURNING epoch"
    ))
    .bind(holder)
    .bind(holder)
    .bind(lease_ms)
    .bind(holder)
    .fetch_optional(pool)
    .await?;
    row.map(|r| r.try_get("epoch")).transpose()
}

/// Renews the lease every quarter of it while held, and otherwise tries
/// to take it as often, or every second if that is sooner: a dead
/// sequencer is replaced within a lease and a quarter, one that stopped
/// (and gave the lease up) within a second.
async fn lease_loop(pool: AnyPool, s: std::sync::Weak<Sequencing>) {
    let mut epoch = None;
    loop {
        let Some(s) = s.upgrade() else { return };
        let started = Instant::now();
        let lease_ms = s.lease.as_millis() as i64;
        match claim(&pool, &s.holder, lease_ms).await {
            Ok(Some(e)) => {
                // Believed held for three quarters of the lease from before
                // the claim was sent: never past the database's expiry.
                s.set_held(Some(started + s.lease * 3 / 4));
                if epoch != Some(e) {
                    tracing::info!(holder = %s.holder, epoch = e, "this replica is the decision log's sequencer");
                    epoch = Some(e);
                    s.taken.notify_one();
                }
            }
            Ok(None) => {
                if s.held.load(Ordering::Acquire) {
                    tracing::warn!(holder = %s.holder, "this replica lost the decision log's sequencer lease to another replica; its entries are queued for the new sequencer");
                }
                epoch = None;
                s.set_held(None);
            }
            Err(e) => {
                tracing::warn!(holder = %s.holder, error = %e, "could not renew the decision log's sequencer lease");
                if !s.is_held() {
                    epoch = None;
                    s.set_held(None);
                }
            }
        }
        // The others try at least every second: a lease given up by a
        // replica that stopped is taken at once, however long leases are.
        let pause = if s.held.load(Ordering::Acquire) {
            s.lease / 4
        } else {
            (s.lease / 4).min(Duration::from_secs(1))
        };
        drop(s);
        tokio::time::sleep(pause).await;
    }
}

/// Queues entries (each as JSON, as the log writer encodes them) in `tx` for
/// the sequencer; returns the largest queue id given (None for none).
pub(crate) async fn enqueue(
    tx: &mut Transaction<'_, Any>,
    holder: &str,
    entries: &[String],
) -> Result<Option<i64>, sqlx::Error> {
    let mut max = None;
    let mut at = 0usize;
    for rows in super::statements::sizes(entries.len(), 64) {
        let sql = super::statements::insert_sql(
            "INSERT INTO log_queue (replica, entry) VALUES ",
            2,
            rows,
        );
        let sql = format!("{sql} RETURNING id");
        let mut q = sqlx::query(&sql);
        for e in &entries[at..at + rows] {
            q = q.bind(holder).bind(e.as_str());
        }
        at += rows;
        for row in q.fetch_all(&mut **tx).await? {
            let id: i64 = row.try_get("id")?;
            max = max.max(Some(id));
        }
    }
    if max.is_some() {
        notify(tx, QUEUED).await?;
    }
    Ok(max)
}

/// Sends a notification on `channel` when `tx` commits (none if it rolls
/// back; PostgreSQL folds repeats within one transaction into one).
async fn notify(tx: &mut Transaction<'_, Any>, channel: &str) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_notify($1, '')")
        .bind(channel)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Takes up to `limit` queued entries, oldest first, out of the queue in
/// `tx` (which holds the chain lock and the lease: the caller appends
/// them in the same transaction, so they leave the queue exactly when
/// they enter the log). Each as (queue id, JSON).
pub(crate) async fn drain(
    tx: &mut Transaction<'_, Any>,
    limit: usize,
) -> Result<Vec<(i64, String)>, sqlx::Error> {
    let rows = sqlx::query(
        "DELETE FROM log_queue WHERE id IN (SELECT id FROM log_queue ORDER BY id LIMIT $1) RETURNING id, entry",
    )
    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
    .fetch_all(&mut **tx)
    .await?;
    let mut queued = rows
        .iter()
        .map(|r| Ok((r.try_get("id")?, r.try_get("entry")?)))
        .collect::<Result<Vec<(i64, String)>, sqlx::Error>>()?;
    queued.sort_by_key(|(id, _)| *id);
    if !queued.is_empty() {
        notify(tx, APPENDED).await?;
    }
    Ok(queued)
}

/// Whether anything is queued (a read without locks, so an idle
/// sequencer's polling costs one index probe).
pub(crate) async fn anything_queued(pool: &AnyPool) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query("SELECT id FROM log_queue LIMIT 1")
        .fetch_optional(pool)
        .await?
        .is_some())
}

/// Listens for the queue's notifications on a connection of its own and
/// wakes this replica's writer (entries queued) or waiters (entries
/// appended); reconnects after a failure, waking both, since a
/// notification sent meanwhile is lost.
async fn listen_loop(url: Arc<str>, s: std::sync::Weak<Sequencing>) {
    let mut pause = Duration::from_millis(100);
    loop {
        let connected = async {
            let mut l = sqlx::postgres::PgListener::connect(&url).await?;
            l.listen_all([QUEUED, APPENDED]).await?;
            Ok::<_, sqlx::Error>(l)
        }
        .await;
        let Some(strong) = s.upgrade() else { return };
        let mut listener = match connected {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "the decision log's queue notifications are unavailable; replicas poll the queue instead");
                drop(strong);
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(10));
                continue;
            }
        };
        pause = Duration::from_millis(100);
        strong.listening.store(true, Ordering::Release);
        // Anything sent before the listener ran is looked for now.
        strong.queued.notify_one();
        strong.appended.notify_one();
        drop(strong);
        loop {
            let next = listener.try_recv().await;
            let Some(strong) = s.upgrade() else { return };
            match next {
                Ok(Some(n)) if n.channel() == QUEUED => strong.queued.notify_one(),
                Ok(Some(_)) => strong.appended.notify_one(),
                // The connection was lost; `try_recv` reconnects (and
                // listens again) on its next call.
                Ok(None) => {
                    strong.queued.notify_one();
                    strong.appended.notify_one();
                }
                Err(e) => {
                    tracing::warn!(error = %e, "the decision log's queue notifications stopped; polling until they are back");
                    strong.listening.store(false, Ordering::Release);
                    strong.queued.notify_one();
                    strong.appended.notify_one();
                    break;
                }
            }
        }
    }
}

/// Answers the callers waiting for this replica's queued entries: when a
/// sequencer says it appended queued entries (or on the backstop timer, or
/// every few ms without a listener), one query for all of them (the oldest
/// entry this replica still has queued).
async fn answer_waiters(
    pool: AnyPool,
    s: std::sync::Weak<Sequencing>,
    mut rx: mpsc::UnboundedReceiver<Waiter>,
) {
    let Some((holder, lease)) = s.upgrade().map(|s| (s.holder.clone(), s.lease)) else {
        return;
    };
    let give_up = lease * 2 + Duration::from_secs(5);
    // By max_id: the waiters that are done are a prefix.
    let mut waiting: BTreeMap<i64, Vec<Waiter>> = BTreeMap::new();
    loop {
        if waiting.is_empty() {
            match rx.recv().await {
                Some(w) => waiting.entry(w.max_id).or_default().push(w),
                None => return,
            }
        }
        match s.upgrade() {
            Some(s) if s.is_listening() => tokio::select! {
                () = s.appended.notified() => {}
                () = tokio::time::sleep(WAIT_BACKSTOP) => {}
            },
            Some(_) => tokio::time::sleep(WAIT_POLL).await,
            None => return,
        }
        while let Ok(w) = rx.try_recv() {
            waiting.entry(w.max_id).or_default().push(w);
        }
        let oldest = sqlx::query("SELECT MIN(id) AS oldest FROM log_queue WHERE replica = $1")
            .bind(&holder)
            .fetch_one(&pool)
            .await
            .and_then(|r| r.try_get::<Option<i64>, _>("oldest"));
        match oldest {
            Ok(oldest) => {
                let done = match oldest {
                    Some(o) => {
                        let later = waiting.split_off(&o);
                        std::mem::replace(&mut waiting, later)
                    }
                    None => std::mem::take(&mut waiting),
                };
                for w in done.into_values().flatten() {
                    for d in w.done {
                        let _ = d.send(Ok(()));
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not read the decision log's queue"),
        }
        // Entries no sequencer appended in time: answered with an error
        // (they stay queued; the caller is told they are not in the log yet).
        let now = Instant::now();
        for list in waiting.values_mut() {
            for w in list
                .iter_mut()
                .filter(|w| now.duration_since(w.since) > give_up)
            {
                for d in w.done.drain(..) {
                    let _ = d.send(Err(format!(
                        "the entry is queued but no sequencer appended it within {} ms (is a replica holding the sequencer lease?); it will be appended when one does",
                        give_up.as_millis()
                    )));
                }
            }
            list.retain(|w| !w.done.is_empty());
        }
        waiting.retain(|_, l| !l.is_empty());
    }
}
