//! The database behind the records: SQLite by default (a file under
//! `./data`, WAL, synchronous commits), PostgreSQL for several replicas.
//!
//! One schema and one set of queries serve both through sqlx's `Any`
//! driver: the SQL sticks to types and syntax the two share, with numbered
//! parameters (`$1`, `$2`, … in order of appearance). The schema's
//! migrations are in [`super::migrations`].

use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Executor};

/// Which database is behind the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// A record store failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database {url}: {message}")]
    Connect { url: String, message: String },
    #[error("migration {version}: {message}")]
    Migrate { version: i64, message: String },
    #[error("database: {0}")]
    Query(#[from] sqlx::Error),
    #[error("stored record is corrupt: {0}")]
    Corrupt(String),
}

/// A connection pool plus its dialect.
#[derive(Clone)]
pub struct Store {
    pub pool: AnyPool,
    pub dialect: Dialect,
    /// Bumped by every committed write of this process: what caches of
    /// records (the public notice) compare to know they are stale.
    changes: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// On PostgreSQL shared by replicas: this replica's part in electing
    /// the one that appends to the log (none: this process appends).
    pub(crate) sequencing: Option<std::sync::Arc<super::sequencer::Sequencing>>,
    /// PostgreSQL: the URL the sequencer's notification listener connects
    /// with (its own connection: `LISTEN` holds one for as long as it runs).
    listen_url: Option<std::sync::Arc<str>>,
}

impl Store {
    /// Connects to (creating if needed) the database at `url`:
    /// `sqlite://path/to/file.db` or `postgres://user@host/db`. The schema
    /// is the business of [`super::migrations`]; open a store for use with
    /// [`super::open_store`].
    pub(crate) async fn connect(url: &str) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let err = |message: String| StoreError::Connect {
            url: redact(url),
            message,
        };
        let dialect = if url.starts_with("sqlite:") {
            Dialect::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Dialect::Postgres
        } else {
            return Err(err("expected a sqlite:// or postgres:// URL".into()));
        };
        let mut url = url.to_string();
        if dialect == Dialect::Sqlite {
            let path = url
                .trim_start_matches("sqlite://")
                .trim_start_matches("sqlite:");
            let path = path.split('?').next().unwrap_or_default().to_string();
            if let Some(dir) = std::path::Path::new(&path)
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
            {
                std::fs::create_dir_all(dir).map_err(|e| err(format!("{}: {e}", dir.display())))?;
            }
            if !url.contains('?') {
                url.push_str("?mode=rwc");
            }
        }
        let options = AnyConnectOptions::from_str(&url).map_err(|e| err(e.to_string()))?;
        let pool = AnyPoolOptions::new()
            // SQLite has one writer at a time; four connections keep reads
            // concurrent without each holding its own page cache for nothing.
            .max_connections(if dialect == Dialect::Sqlite { 4 } else { 16 })
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if dialect == Dialect::Sqlite {
                        // WAL: readers never block the writer. FULL: a
                        // commit is on disk before it is acknowledged.
                        for pragma in [
                            "PRAGMA journal_mode = WAL",
                            "PRAGMA synchronous = FULL",
                            "PRAGMA busy_timeout = 10000",
                            // 1 MiB page cache per connection (default 2 MiB).
                            "PRAGMA cache_size = -1024",
                            "PRAGMA foreign_keys = ON",
                        ] {
                            conn.execute(pragma).await?;
                        }
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .map_err(|e| err(e.to_string()))?;
        let store = Store {
            pool,
            dialect,
            changes: Default::default(),
            sequencing: None,
            listen_url: (dialect == Dialect::Postgres).then(|| std::sync::Arc::from(url.as_str())),
        };
        Ok(store)
    }

    /// Has this replica take part in electing the log's sequencer, as
    /// `name`, with a lease of `lease_ms` (PostgreSQL only: SQLite has one
    /// process, which appends). `ack`: writes whose entries are queued
    /// answer once the entries are in the log. Start the decision log's
    /// writer with the store this returns.
    pub fn with_sequencer(mut self, name: &str, lease_ms: u64, ack: bool) -> Store {
        if self.dialect == Dialect::Postgres && self.sequencing.is_none() {
            self.sequencing = Some(super::sequencer::Sequencing::start(
                self.pool.clone(),
                self.listen_url.clone(),
                name,
                lease_ms,
                ack,
            ));
        }
        self
    }

    /// How many writes this process committed (see [`Store::changed`]).
    pub fn changes(&self) -> u64 {
        self.changes.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Records that a write committed.
    pub(crate) fn changed(&self) {
        self.changes
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }

    /// Leases up to `limit` rows of `queue` to `replica` until
    /// `now + lease_ms`: the claim both the monitoring scheduler and the
    /// webhook deliverer make. On PostgreSQL the candidates are locked
    /// `SKIP LOCKED`, so replicas claiming at once take disjoint rows;
    /// SQLite has one writer anyway.
    pub async fn lease(
        &self,
        queue: &Leased,
        replica: &str,
        now: i64,
        lease_ms: i64,
        limit: i64,
    ) -> Result<Vec<AnyRow>, sqlx::Error> {
        let lock = match self.dialect {
            Dialect::Postgres => " FOR UPDATE SKIP LOCKED",
            Dialect::Sqlite => "",
        };
        let Leased {
            table,
            key,
            candidates,
            returning,
        } = queue;
        let sql = format!(
            "UPDATE {table} SET claimed_by = $1, claimed_until = $2 WHERE {key} IN \
             ({candidates} LIMIT $5{lock}) RETURNING {returning}"
        );
        sqlx::query(&sql)
            .bind(replica)
            .bind(now + lease_ms)
            .bind(now)
            .bind(now)
            .bind(limit)
            .fetch_all(&self.pool)
            .await
    }
}

/// A table whose rows replicas lease for a while (see [`Store::lease`]).
pub struct Leased {
    pub table: &'static str,
    /// The column that names a row.
    pub key: &'static str,
    /// `SELECT key … ORDER BY …`: the rows due, oldest first. It may use
    /// `$3` and `$4` (both `now`, once each: numbered parameters are bound
    /// in order) and must skip rows whose lease has not run out.
    pub candidates: &'static str,
    /// The columns the claim returns.
    pub returning: &'static str,
}

/// A JSON text column decoded into `T`; a column that no longer decodes is
/// a corrupt record, named by its column.
pub(crate) fn json_column<T: serde::de::DeserializeOwned>(
    row: &AnyRow,
    column: &str,
) -> Result<T, StoreError> {
    use sqlx::Row;
    let text: String = row.try_get(column)?;
    serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(format!("{column}: {e}")))
}

/// A unique-constraint violation, in either dialect.
pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(d) => {
            d.is_unique_violation() || d.message().contains("UNIQUE constraint failed")
        }
        _ => false,
    }
}

/// A URL without its password, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted_from_urls() {
        assert_eq!(
            redact("postgres://sg:secret@db/sg"),
            "postgres://sg:***@db/sg"
        );
        assert_eq!(redact("sqlite://data/x.db"), "sqlite://data/x.db");
    }
}
