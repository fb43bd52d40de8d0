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
];

/// The migration after which every record row is committed to the chain:
/// rows written before it are committed by it, once.
const SEALED_RECORDS: i64 = 3;

/// The migration that added `refs` to the deployment row: every existing
/// deployment row has a new shape (and digest), committed by it, once.
const DEPLOYMENT_REFS: i64 = 4;

/// Applies every migration not yet applied.
pub(crate) async fn run(store: &Store) -> Result<(), StoreError> {
    let mut conn = store.pool.acquire().await?;
    conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)")
            .await?;
    if store.dialect == Dialect::Postgres {
        // Replicas starting together migrate one at a time.
        conn.execute("SELECT pg_advisory_lock(424242)").await?;
    }
    let result = async {
        for (version, sql) in MIGRATIONS {
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
/// commits them at 4, once, in their final shape.
fn tables_sealed_by(version: i64) -> Vec<&'static super::ledger::Table> {
    use super::ledger::{DEPLOYMENTS, TABLES};
    match version {
        SEALED_RECORDS => TABLES
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
    super::chain::append(tx, head, &entries).await?;
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
    use super::*;

    #[test]
    fn migrations_split_into_statements_without_comments() {
        let s = statements("-- a\nCREATE TABLE a (x TEXT); -- b\nINSERT INTO a VALUES ('y');\n");
        assert_eq!(
            s,
            vec!["CREATE TABLE a (x TEXT)", "INSERT INTO a VALUES ('y')"]
        );
    }
}
