//! The records schema: embedded migrations, applied in order at start,
//! each once, replicas one at a time.

use sqlx::Executor;

use super::store::{Dialect, Store, StoreError};

/// Embedded migrations, applied in order, each once.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("migrations/0001_records.sql")),
    (2, include_str!("migrations/0002_monitoring.sql")),
    (3, include_str!("migrations/0003_sealed_records.sql")),
    (4, include_str!("migrations/0004_refs.sql")),
    (5, include_str!("migrations/0005_attestations.sql")),
    (6, include_str!("migrations/0006_console.sql")),
    (7, include_str!("migrations/0007_log_tree.sql")),
];

/// The migration that made the log a Merkle tree: it hashes every
/// existing entry into the tree, in order, once.
const LOG_TREE: i64 = 7;

/// The migration after which every record row is committed to the chain:
/// rows written before it are committed by it, once.
const SEALED_RECORDS: i64 = 3;

/// The migration that added `refs` to the deployment row: every existing
/// deployment row has a new shape (and digest), committed by it, once.
const DEPLOYMENT_REFS: i64 = 4;

/// Applies every migration not yet applied.
pub(crate) async fn run(store: &Store) -> Result<(), StoreError> {
    run_until(store, i64::MAX).await
}

/// Applies every migration up to `last` not yet applied (tests stop
/// early to write rows in an older shape).
async fn run_until(store: &Store, last: i64) -> Result<(), StoreError> {
    let mut conn = store.pool.acquire().await?;
    conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)")
            .await?;
    if store.dialect == Dialect::Postgres {
        // Replicas starting together migrate one at a time.
        conn.execute("SELECT pg_advisory_lock(424242)").await?;
    }
    let result = async {
        for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v <= last) {
            let applied: Option<(i64,)> =
                sqlx::query_as("SELECT version FROM schema_migrations WHERE version = $1")
                    .bind(*version)
                    .fetch_optional(&mut *conn)
                    .await?;
            if applied.is_some() {
                continue;
            }
            let mig = |e: sqlx::Error| StoreError::Migrate {
                version: *version,
                message: e.to_string(),
            };
            let mut tx = sqlx::Connection::begin(&mut *conn).await.map_err(mig)?;
            for statement in statements(sql) {
                tx.execute(statement.as_str()).await.map_err(mig)?;
            }
            let tables = tables_sealed_by(*version);
            if !tables.is_empty() {
                seal_existing_rows(&mut tx, &tables)
                    .await
                    .map_err(|e| StoreError::Migrate {
                        version: *version,
                        message: e.to_string(),
                    })?;
            }
            if *version == LOG_TREE {
                super::leaves::build_from_log(&mut tx)
                    .await
                    .map_err(|e| StoreError::Migrate {
                        version: *version,
                        message: e.to_string(),
                    })?;
            }
            sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)")
                .bind(*version)
                .bind(crate::decision::Timestamp::now().millis())
                .execute(&mut *tx)
                .await
                .map_err(mig)?;
            tx.commit().await.map_err(mig)?;
            tracing::info!(version, "applied records migration");
        }
        Ok::<(), StoreError>(())
    }
    .await;
    if store.dialect == Dialect::Postgres {
        let _ = conn.execute("SELECT pg_advisory_unlock(424242)").await;
    }
    result
}

/// The tables whose existing rows migration `version` commits to the
/// chain. Deployment rows are read with the columns the code knows (the
/// `refs` column of migration 4), so a database migrating from before 3
/// commits them at 4, once, in their final shape. Tables created after 3
/// (attestations, receipts) are committed from their first row.
fn tables_sealed_by(version: i64) -> Vec<&'static super::ledger::Table> {
    use super::ledger::{DEPLOYMENTS, TABLES_SEALED_BY_MIGRATION_3};
    match version {
        SEALED_RECORDS => TABLES_SEALED_BY_MIGRATION_3
            .into_iter()
            .filter(|t| t.name != DEPLOYMENTS.name)
            .collect(),
        DEPLOYMENT_REFS => vec![&DEPLOYMENTS],
        _ => Vec::new(),
    }
}

/// Commits every existing row of `tables` to the chain, as the migration
/// that introduced record entries or changed a table's columns.
async fn seal_existing_rows(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    tables: &[&'static super::ledger::Table],
) -> Result<(), StoreError> {
    let rows = super::ledger::all_rows(tx, tables).await?;
    if rows.is_empty() {
        return Ok(());
    }
    let now = crate::decision::Timestamp::now();
    let entries: Vec<_> = rows
        .iter()
        .map(|r| super::ledger::entry(r, "stagegate-migration", now, None))
        .collect();
    let head = super::chain::lock(tx).await?;
    super::chain::append_before_tree(tx, head, &entries).await?;
    Ok(())
}

/// Splits a migration into statements, dropping `--` comments.
fn statements(sql: &str) -> Vec<String> {
    let text: String = sql
        .lines()
        .map(|l| l.split("--").next().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n");
    text.split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::ledger::{self, Kind, RowValues, Table};
    use super::*;

    /// The deployment row as migrations 1 to 3 knew it (no `refs`).
    const OLD_DEPLOYMENTS: Table = Table {
        name: "deployments",
        key: "id",
        columns: &[
            ("id", Kind::Text),
            ("release_id", Kind::Text),
            ("system_id", Kind::Text),
            ("plan", Kind::Text),
            ("status", Kind::Text),
            ("stage", Kind::Text),
            ("traffic_percent", Kind::Real),
            ("stage_entered_at", Kind::Int),
            ("deployed_at", Kind::Int),
            ("version", Kind::Int),
            ("updated_at", Kind::Int),
        ],
    };

    /// A store at migration `version`, holding one system, release and
    /// deployment written as the code of that time wrote them (committed
    /// to the chain when `sealed`).
    async fn old_store(dir: &std::path::Path, version: i64, sealed: bool) -> Store {
        let url = format!("sqlite://{}", dir.join("old.db").display());
        let store = Store::connect(&url).await.unwrap();
        run_until(&store, version).await.unwrap();
        let mut tx = store.pool.begin().await.unwrap();
        let rows = [
            RowValues {
                table: &ledger::SYSTEMS,
                cells: vec![
                    "s".into(),
                    "high".into(),
                    "{}".into(),
                    1i64.into(),
                    "ops".into(),
                ],
            },
            RowValues {
                table: &ledger::RELEASES,
                cells: vec![
                    "s@1".into(),
                    "s".into(),
                    "1".into(),
                    "{}".into(),
                    1i64.into(),
                    "ops".into(),
                ],
            },
            RowValues {
                table: &OLD_DEPLOYMENTS,
                cells: vec![
                    "d1".into(),
                    "s@1".into(),
                    "s".into(),
                    "{}".into(),
                    "active".into(),
                    "pilot".into(),
                    5.0f64.into(),
                    1i64.into(),
                    1i64.into(),
                    1i64.into(),
                    1i64.into(),
                ],
            },
        ];
        for row in &rows {
            ledger::insert(&mut tx, row).await.unwrap();
        }
        if sealed {
            let now = crate::decision::Timestamp(1);
            let entries: Vec<_> = rows
                .iter()
                .map(|r| ledger::entry(r, "old", now, None))
                .collect();
            let head = super::super::chain::lock(&mut tx).await.unwrap();
            super::super::chain::append_before_tree(&mut tx, head, &entries)
                .await
                .unwrap();
        }
        tx.commit().await.unwrap();
        store
    }

    #[tokio::test]
    async fn deployments_sealed_before_refs_existed_verify_after_the_refs_migration() {
        let dir = tempfile::tempdir().unwrap();
        let store = old_store(dir.path(), 3, true).await;
        run(&store).await.unwrap();
        assert_eq!(ledger::verify(&store.pool).await.unwrap(), vec![]);
        let chain = super::super::chain::verify(&store.pool).await.unwrap();
        assert_eq!(chain.broken, None);
    }

    #[tokio::test]
    async fn a_database_from_before_sealed_records_commits_every_row_once_in_its_final_shape() {
        let dir = tempfile::tempdir().unwrap();
        let store = old_store(dir.path(), 2, false).await;
        run(&store).await.unwrap();
        assert_eq!(ledger::verify(&store.pool).await.unwrap(), vec![]);
        let (entries,): (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM decision_log WHERE record_table = 'deployments'")
                .fetch_one(&store.pool)
                .await
                .unwrap();
        assert_eq!(entries, 1);
    }

    #[test]
    fn migrations_split_into_statements_without_comments() {
        let s = statements("-- a\nCREATE TABLE a (x TEXT); -- b\nINSERT INTO a VALUES ('y');\n");
        assert_eq!(
            s,
            vec!["CREATE TABLE a (x TEXT)", "INSERT INTO a VALUES ('y')"]
        );
    }

    #[tokio::test]
    async fn an_existing_log_is_hashed_into_the_tree_in_order_and_its_chain_still_verifies() {
        use super::super::{chain, leaves as leaf_audit, merkle, tree};
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("db").display());
        let store = Store::connect(&url).await.unwrap();
        run_until(&store, LOG_TREE - 1).await.unwrap();
        let entries: Vec<chain::LogEntry> = (0..300)
            .map(|i| chain::LogEntry {
                decision_id: format!("d{i}"),
                at: i,
                kind: "gate".into(),
                outcome: "allow".into(),
                codes: vec![],
                bundle: "b".into(),
                bundle_version: "1".into(),
                bundle_digest: "sha256:00".into(),
                request_digest: "sha256:11".into(),
                request: None,
                deployment_id: None,
                actor: "gw".into(),
                record: None,
                read_only: false,
            })
            .collect();
        let mut tx = store.pool.begin().await.unwrap();
        let head = chain::lock(&mut tx).await.unwrap();
        chain::append_before_tree(&mut tx, head, &entries)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let hashes_before: Vec<(i64, String)> =
            sqlx::query_as("SELECT seq, hash FROM decision_log ORDER BY seq")
                .fetch_all(&store.pool)
                .await
                .unwrap();

        run(&store).await.unwrap();

        let hashes_after: Vec<(i64, String)> =
            sqlx::query_as("SELECT seq, hash FROM decision_log ORDER BY seq")
                .fetch_all(&store.pool)
                .await
                .unwrap();
        assert_eq!(hashes_before, hashes_after, "the chain's hashes are kept");
        assert_eq!(chain::verify(&store.pool).await.unwrap().broken, None);
        // The leaves are the entries in order: the root a verifier
        // computes from the entries themselves.
        let mut prev = "genesis".to_string();
        let mut leaves = Vec::new();
        for (i, e) in entries.iter().enumerate() {
            let seq = i as i64 + 1;
            leaves.push(merkle::leaf_hash(&chain::entry_bytes(seq, e, &prev)));
            prev = chain::hash(seq, e, &prev);
        }
        let check = leaf_audit::verify_leaves(&store.pool, 300).await.unwrap();
        assert_eq!(check.broken, None);
        assert_eq!(tree::root(&store.pool, 300).await.unwrap(), check.root);
        assert_eq!(tree::verify_nodes(&store.pool, 300).await.unwrap(), None);
        let mut all = std::collections::HashMap::new();
        for (n, h) in merkle::append(0, &Default::default(), &leaves).unwrap() {
            all.insert(n, h);
        }
        assert_eq!(merkle::root_plan(300).hashes(&all).unwrap()[0], check.root);
        // Appending after the migration extends the same tree.
        let mut tx = store.pool.begin().await.unwrap();
        let head = chain::lock(&mut tx).await.unwrap();
        chain::append(
            &mut tx,
            head,
            &entries[..1]
                .iter()
                .map(|e| chain::LogEntry {
                    decision_id: "next".into(),
                    ..e.clone()
                })
                .collect::<Vec<_>>(),
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        assert_eq!(
            leaf_audit::verify_leaves(&store.pool, 300)
                .await
                .unwrap()
                .broken,
            None
        );
        assert_eq!(tree::verify_nodes(&store.pool, 301).await.unwrap(), None);
    }
}
