//! Every record in the chain.
//!
//! The decision log's hash chain ([`super::chain`]) proves that no decision
//! was changed, inserted or removed. The facts those decisions rest on —
//! systems, releases, reviews, authorisations, risk acceptances, the
//! deployments themselves, their history, observations and material
//! issues — live in ordinary tables that anyone with write access to the
//! database could edit. So every write of such a row also appends a chain
//! entry committing to the row's digest (SHA-256 over its columns as
//! canonical JSON), in the same transaction. `stagegate audit verify`
//! recomputes each row's digest and compares it with the newest entry for
//! that row: an edited row, a row inserted behind the service's back and a
//! deleted row are each named.
//!
//! A table is described once ([`Table`]): the same column list binds the
//! insert, computes the digest on write and reads the row back on verify,
//! so the three cannot disagree.

use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use super::chain::{LogEntry, RecordRef};
use super::store::StoreError;
use crate::decision::Timestamp;

/// The SQL type of a column, as both dialects store it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Text,
    Int,
    Real,
}

/// A table whose rows are committed to the chain.
pub(crate) struct Table {
    pub name: &'static str,
    /// The column naming a row.
    pub key: &'static str,
    /// Every column, in the order they are bound and digested.
    pub columns: &'static [(&'static str, Kind)],
}

impl Table {
    /// A stored row's cells, in column order.
    fn read(&self, row: &AnyRow) -> Result<Vec<Cell>, sqlx::Error> {
        self.columns
            .iter()
            .map(|(name, kind)| Cell::read(row, name, *kind))
            .collect()
    }
}

use Kind::{Int, Real, Text};

pub(crate) const SYSTEMS: Table = Table {
    name: "systems",
    key: "id",
    columns: &[
        ("id", Text),
        ("risk_tier", Text),
        ("doc", Text),
        ("created_at", Int),
        ("created_by", Text),
    ],
};

pub(crate) const RELEASES: Table = Table {
    name: "releases",
    key: "id",
    columns: &[
        ("id", Text),
        ("system_id", Text),
        ("version", Text),
        ("doc", Text),
        ("created_at", Int),
        ("created_by", Text),
    ],
};

pub(crate) const AUTHORISATIONS: Table = Table {
    name: "authorisations",
    key: "id",
    columns: &[
        ("id", Text),
        ("release_id", Text),
        ("deployment_id", Text),
        ("authorised_by", Text),
        ("role", Text),
        ("authorised_at", Int),
        ("expires_at", Int),
        ("doc", Text),
    ],
};

pub(crate) const ACCEPTANCES: Table = Table {
    name: "acceptances",
    key: "id",
    columns: &[
        ("id", Text),
        ("release_id", Text),
        ("deficiency_id", Text),
        ("accepted_by", Text),
        ("accepted_at", Int),
        ("expires_at", Int),
        ("doc", Text),
    ],
};

pub(crate) const REVIEWS: Table = Table {
    name: "reviews",
    key: "id",
    columns: &[
        ("id", Text),
        ("release_id", Text),
        ("deployment_id", Text),
        ("reviewer", Text),
        ("completed_at", Int),
        ("outcome", Text),
        ("doc", Text),
    ],
};

pub(crate) const DEPLOYMENTS: Table = Table {
    name: "deployments",
    key: "id",
    columns: &[
        ("id", Text),
        ("release_id", Text),
        ("system_id", Text),
        ("plan", Text),
        ("status", Text),
        ("stage", Text),
        ("traffic_percent", Real),
        ("stage_entered_at", Int),
        ("deployed_at", Int),
        ("version", Int),
        ("updated_at", Int),
        // Added by migration 4; NULL when the deployment has no refs.
        ("refs", Text),
    ],
};

pub(crate) const EVENTS: Table = Table {
    name: "deployment_events",
    key: "id",
    columns: &[
        ("id", Text),
        ("deployment_id", Text),
        ("seq", Int),
        ("at", Int),
        ("actor", Text),
        ("kind", Text),
        ("status", Text),
        ("stage", Text),
        ("traffic_percent", Real),
        ("decision_id", Text),
        ("reason", Text),
        ("doc", Text),
    ],
};

pub(crate) const OBSERVATIONS: Table = Table {
    name: "observations",
    key: "id",
    columns: &[
        ("id", Text),
        ("deployment_id", Text),
        ("metric", Text),
        ("value", Real),
        ("samples", Int),
        ("window_end", Int),
        ("recorded_at", Int),
        ("actor", Text),
    ],
};

pub(crate) const MATERIAL_ISSUES: Table = Table {
    name: "material_issues",
    key: "id",
    columns: &[
        ("id", Text),
        ("deployment_id", Text),
        ("issue_id", Text),
        ("severity", Text),
        ("status", Text),
        ("recorded_at", Int),
        ("actor", Text),
        ("doc", Text),
    ],
};

pub(crate) const ATTESTATIONS: Table = Table {
    name: "attestations",
    key: "id",
    columns: &[
        ("id", Text),
        ("release_id", Text),
        ("position", Int),
        ("keyid", Text),
        ("predicate_type", Text),
        ("statement_digest", Text),
        ("envelope_digest", Text),
        ("envelope", Text),
        ("doc", Text),
        ("created_at", Int),
    ],
};

pub(crate) const RECEIPTS: Table = Table {
    name: "receipts",
    key: "decision_id",
    columns: &[
        ("decision_id", Text),
        ("subject_digest", Text),
        ("release_id", Text),
        ("deployment_id", Text),
        ("keyid", Text),
        ("created_at", Int),
        ("envelope", Text),
    ],
};

/// The tables that existed when migration 3 committed the rows written
/// before it; tables added later are committed from their first row.
pub(crate) const TABLES_SEALED_BY_MIGRATION_3: [&Table; 9] = [
    &SYSTEMS,
    &RELEASES,
    &AUTHORISATIONS,
    &ACCEPTANCES,
    &REVIEWS,
    &DEPLOYMENTS,
    &EVENTS,
    &OBSERVATIONS,
    &MATERIAL_ISSUES,
];

/// Every table committed to the chain.
pub(crate) const TABLES: [&Table; 11] = [
    &SYSTEMS,
    &RELEASES,
    &AUTHORISATIONS,
    &ACCEPTANCES,
    &REVIEWS,
    &DEPLOYMENTS,
    &EVENTS,
    &OBSERVATIONS,
    &MATERIAL_ISSUES,
    &ATTESTATIONS,
    &RECEIPTS,
];

/// One column's value.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub(crate) enum Cell {
    Text(Option<String>),
    Int(Option<i64>),
    Real(Option<f64>),
}

impl Cell {
    fn read(row: &AnyRow, name: &str, kind: Kind) -> Result<Cell, sqlx::Error> {
        Ok(match kind {
            Text => Cell::Text(row.try_get(name)?),
            Int => Cell::Int(row.try_get(name)?),
            Real => Cell::Real(row.try_get(name)?),
        })
    }
}

impl From<String> for Cell {
    fn from(s: String) -> Cell {
        Cell::Text(Some(s))
    }
}

impl From<&str> for Cell {
    fn from(s: &str) -> Cell {
        Cell::Text(Some(s.to_string()))
    }
}

impl From<Option<String>> for Cell {
    fn from(s: Option<String>) -> Cell {
        Cell::Text(s)
    }
}

impl From<i64> for Cell {
    fn from(v: i64) -> Cell {
        Cell::Int(Some(v))
    }
}

impl From<Option<i64>> for Cell {
    fn from(v: Option<i64>) -> Cell {
        Cell::Int(v)
    }
}

impl From<Timestamp> for Cell {
    fn from(t: Timestamp) -> Cell {
        Cell::Int(Some(t.millis()))
    }
}

impl From<Option<Timestamp>> for Cell {
    fn from(t: Option<Timestamp>) -> Cell {
        Cell::Int(t.map(Timestamp::millis))
    }
}

impl From<f64> for Cell {
    fn from(v: f64) -> Cell {
        Cell::Real(Some(v))
    }
}

/// A row about to be written: its table and its cells, in column order.
#[derive(Clone)]
pub(crate) struct RowValues {
    pub table: &'static Table,
    pub cells: Vec<Cell>,
}

impl RowValues {
    /// The row's key (its first column, by construction of every table).
    pub(crate) fn key(&self) -> String {
        match self.cells.first() {
            Some(Cell::Text(Some(k))) => k.clone(),
            _ => String::new(),
        }
    }

    /// `sha256:` over the canonical JSON of the row: `{"table", "row":
    /// {column: value, …}}` with columns in the table's order.
    pub(crate) fn digest(&self) -> String {
        digest(self.table, &self.cells)
    }
}

fn digest(table: &Table, cells: &[Cell]) -> String {
    #[derive(Serialize)]
    struct Canonical<'a> {
        table: &'a str,
        row: Vec<(&'a str, &'a Cell)>,
    }
    let row = table
        .columns
        .iter()
        .zip(cells)
        .map(|((name, _), cell)| (*name, cell))
        .collect();
    let bytes = serde_json::to_vec(&Canonical {
        table: table.name,
        row,
    })
    .unwrap_or_default();
    super::chain::digest(&bytes)
}

/// Inserts `row` in `tx`.
pub(crate) async fn insert(
    tx: &mut Transaction<'_, Any>,
    row: &RowValues,
) -> Result<(), sqlx::Error> {
    let columns: Vec<&str> = row.table.columns.iter().map(|(n, _)| *n).collect();
    let params: Vec<String> = (1..=columns.len()).map(|i| format!("${i}")).collect();
    let sql = format!(
        "INSERT INTO {} ({}) VALUES ({})",
        row.table.name,
        columns.join(", "),
        params.join(", ")
    );
    let mut q = sqlx::query(&sql);
    for cell in &row.cells {
        q = match cell {
            Cell::Text(v) => q.bind(v.clone()),
            Cell::Int(v) => q.bind(*v),
            Cell::Real(v) => q.bind(*v),
        };
    }
    q.execute(&mut **tx).await?;
    Ok(())
}

/// The chain entry committing to `row` as written by `actor` at `at`.
pub(crate) fn entry(
    row: &RowValues,
    actor: &str,
    at: Timestamp,
    deployment_id: Option<&str>,
) -> LogEntry {
    LogEntry {
        decision_id: super::new_id(),
        at: at.millis(),
        kind: "record".into(),
        outcome: "recorded".into(),
        codes: Vec::new(),
        bundle: String::new(),
        bundle_version: String::new(),
        bundle_digest: String::new(),
        request_digest: row.digest(),
        request: None,
        deployment_id: deployment_id.map(str::to_string),
        actor: actor.to_string(),
        record: Some(RecordRef {
            table: row.table.name.to_string(),
            id: row.key(),
        }),
        read_only: false,
    }
}

/// A row whose stored contents no longer match the chain.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Tampered {
    pub table: String,
    pub id: String,
    pub reason: String,
}

/// Rows reported at most per verification: enough to act on, bounded so a
/// wholesale rewrite cannot exhaust memory.
const REPORT_LIMIT: usize = 100;

/// Recomputes every committed row's digest and compares it with the
/// newest chain entry for that row; also names entries whose row is gone.
pub(crate) async fn verify(pool: &sqlx::AnyPool) -> Result<Vec<Tampered>, StoreError> {
    let mut found = Vec::new();
    // A row written by a replica that queued its entry for the log's
    // sequencer (docs/log.md, "Replicas") is committed by that entry once
    // it is appended: until then the queued entry is the row's newest.
    let queued = queued_digests(pool).await?;
    for table in TABLES {
        let columns: Vec<String> = table
            .columns
            .iter()
            .map(|(n, _)| format!("t.{n}"))
            .collect();
        let mut after = String::new();
        loop {
            let sql = format!(
                "SELECT {}, (SELECT l.request_digest FROM decision_log l WHERE l.record_table = $1 AND l.record_id = t.{key} ORDER BY l.seq DESC LIMIT 1) AS committed \
                 FROM {name} t WHERE t.{key} > $2 ORDER BY t.{key} LIMIT 1000",
                columns.join(", "),
                key = table.key,
                name = table.name,
            );
            let rows = sqlx::query(&sql)
                .bind(table.name)
                .bind(&after)
                .fetch_all(pool)
                .await?;
            let Some(last) = rows.last() else { break };
            after = last.try_get(table.key)?;
            for row in &rows {
                let cells = table.read(row)?;
                let id: String = row.try_get(table.key)?;
                let committed: Option<String> =
                    match queued.get(&(table.name.to_string(), id.clone())) {
                        Some(d) => Some(d.clone()),
                        None => row.try_get("committed")?,
                    };
                let reason = match committed {
                    None => Some("the row has no entry in the chain: it was written outside the service".to_string()),
                    Some(d) if d != digest(table, &cells) => Some(
                        "the row's contents do not match the digest committed in the chain: it was altered".to_string(),
                    ),
                    Some(_) => None,
                };
                if let Some(reason) = reason {
                    found.push(Tampered {
                        table: table.name.into(),
                        id,
                        reason,
                    });
                    if found.len() >= REPORT_LIMIT {
                        return Ok(found);
                    }
                }
            }
        }
        let missing = sqlx::query(&format!(
            "SELECT DISTINCT l.record_id FROM decision_log l WHERE l.record_table = $1 \
             AND NOT EXISTS (SELECT 1 FROM {name} t WHERE t.{key} = l.record_id) ORDER BY l.record_id LIMIT {REPORT_LIMIT}",
            name = table.name,
            key = table.key,
        ))
        .bind(table.name)
        .fetch_all(pool)
        .await?;
        for row in &missing {
            found.push(Tampered {
                table: table.name.into(),
                id: row.try_get("record_id")?,
                reason: "the chain commits to this row but it is gone: it was deleted".into(),
            });
            if found.len() >= REPORT_LIMIT {
                return Ok(found);
            }
        }
    }
    Ok(found)
}

/// The digest each record row's newest queued entry commits to, by
/// (table, id); empty when nothing waits for the sequencer.
async fn queued_digests(
    pool: &sqlx::AnyPool,
) -> Result<std::collections::HashMap<(String, String), String>, StoreError> {
    let rows = sqlx::query("SELECT id, entry FROM log_queue ORDER BY id")
        .fetch_all(pool)
        .await?;
    let mut newest = std::collections::HashMap::new();
    for row in &rows {
        let id: i64 = row.try_get("id")?;
        let text: String = row.try_get("entry")?;
        let entry: LogEntry = serde_json::from_str(&text)
            .map_err(|e| StoreError::Corrupt(format!("log_queue entry {id}: {e}")))?;
        if let Some(r) = entry.record {
            newest.insert((r.table, r.id), entry.request_digest);
        }
    }
    Ok(newest)
}

/// Reads every row of `tables` as [`RowValues`]: for committing rows
/// written before the chain covered them (the migration that introduced
/// this module) or before their table gained a column.
pub(crate) async fn all_rows(
    tx: &mut Transaction<'_, Any>,
    tables: &[&'static Table],
) -> Result<Vec<RowValues>, sqlx::Error> {
    let mut out = Vec::new();
    for &table in tables {
        let columns: Vec<&str> = table.columns.iter().map(|(n, _)| *n).collect();
        let rows = sqlx::query(&format!(
            "SELECT {} FROM {} ORDER BY {}",
            columns.join(", "),
            table.name,
            table.key
        ))
        .fetch_all(&mut **tx)
        .await?;
        for row in &rows {
            let cells = table.read(row)?;
            out.push(RowValues { table, cells });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_digest_changes_with_any_column_and_not_otherwise() {
        let row = |role: &str| RowValues {
            table: &AUTHORISATIONS,
            cells: vec![
                "a1".into(),
                "s@1".into(),
                Cell::Text(None),
                "j.doe".into(),
                role.into(),
                1_000i64.into(),
                Cell::Int(None),
                "{}".into(),
            ],
        };
        assert_eq!(
            row("Head of AI Risk").digest(),
            row("Head of AI Risk").digest()
        );
        assert_ne!(row("Head of AI Risk").digest(), row("intern").digest());
        assert_eq!(row("x").key(), "a1");
    }

    #[test]
    fn every_table_is_keyed_by_its_first_column() {
        for t in TABLES {
            assert_eq!(t.columns[0].0, t.key, "{}", t.name);
        }
    }
}
