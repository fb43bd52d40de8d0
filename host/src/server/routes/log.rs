//! The verifiable decision log over HTTP (docs/log.md): C2SP tlog-tiles
//! under `/v1/log/tile/…`, RFC 9162 proofs for callers who don't want
//! tiles, single entries, and a decision's proof under a signed
//! checkpoint. Every answer is bounded by the tree's size.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::auth::Role;
use crate::records::proofs::TILE_WIDTH;
use crate::server::App;
use crate::server::auth::RequireRole;
use crate::server::error::ApiError;

const READERS: &[Role] = &[
    Role::Auditor,
    Role::Operator,
    Role::Approver,
    Role::Publisher,
    Role::Gateway,
];

/// A 200 with the value as JSON (the records routes' encoder).
fn json<T: serde::Serialize>(v: &T) -> Result<Response, ApiError> {
    super::respond::json(StatusCode::OK, v)
}

/// A required non-negative integer query parameter.
fn number(q: &HashMap<String, String>, name: &str) -> Result<u64, ApiError> {
    let v = q.get(name).ok_or_else(|| {
        ApiError::bad_request(
            "request.invalid",
            format!("missing query parameter '{name}'"),
        )
        .at(format!("/{name}"))
    })?;
    v.parse::<u64>().map_err(|_| {
        ApiError::bad_request(
            "request.invalid",
            format!("query parameter '{name}' must be a non-negative integer, got '{v}'"),
        )
        .at(format!("/{name}"))
    })
}

/// A proof asked outside the tree: 400 naming the parameter (a size
/// beyond the tree stays 404).
fn outside(e: crate::records::RecordError) -> ApiError {
    match e {
        crate::records::RecordError::Invalid { path, message } => {
            ApiError::bad_request("log.outside_tree", message).at(path)
        }
        e => e.into(),
    }
}

/// `GET /v1/log/proof/inclusion?index=I&size=S`
pub(crate) async fn inclusion(
    State(app): State<Arc<App>>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    app.auth.caller(&headers)?.require(READERS)?;
    let (index, size) = (number(&q, "index")?, number(&q, "size")?);
    let hashes = app
        .records
        .inclusion_proof(index, size)
        .await
        .map_err(outside)?;
    json(&serde_json::json!({"index": index, "size": size, "hashes": hashes}))
}

/// `GET /v1/log/proof/consistency?from=A&to=B`
pub(crate) async fn consistency(
    State(app): State<Arc<App>>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    app.auth.caller(&headers)?.require(READERS)?;
    let (from, to) = (number(&q, "from")?, number(&q, "to")?);
    let hashes = app
        .records
        .consistency_proof(from, to)
        .await
        .map_err(outside)?;
    json(&serde_json::json!({"from": from, "to": to, "hashes": hashes}))
}

/// `GET /v1/log/entries/{I}`
pub(crate) async fn entry(
    State(app): State<Arc<App>>,
    Path(index): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    app.auth.caller(&headers)?.require(READERS)?;
    let index: u64 = index.parse().map_err(|_| {
        ApiError::not_found(format!(
            "'{index}' is not an entry index (a non-negative integer)"
        ))
    })?;
    json(&app.records.log_entry(index).await?)
}

/// `GET /v1/decisions/{id}/proof`
pub(crate) async fn decision_proof(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    app.auth.caller(&headers)?.require(READERS)?;
    json(&app.records.decision_proof(&id).await?)
}

/// `GET /v1/decisions/{id}/receipt?include=proof`: the receipt's DSSE
/// envelope and the decision's log proof in one document.
pub(crate) async fn receipt_with_proof(
    app: &App,
    id: &str,
    envelope: &str,
) -> Result<Response, ApiError> {
    let envelope: serde_json::Value = serde_json::from_str(envelope)
        .map_err(|e| ApiError::internal(format!("the stored receipt is not JSON: {e}")))?;
    let proof = app.records.decision_proof(id).await?;
    json(&serde_json::json!({"dsse_envelope": envelope, "log": proof}))
}

/// A parsed tile path: `entries` bundles or hash tiles at `level`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct TilePath {
    /// `None`: an entry bundle.
    pub level: Option<u32>,
    pub index: u64,
    /// `None`: a full tile.
    pub width: Option<u64>,
}

/// Parses `L/x001/x234/067[.p/W]` or `entries/…` (C2SP tlog-tiles): the
/// index in groups of three digits, `x` before every group but the last,
/// no leading zero group; `W` in 1..=255. Anything else is `None`.
pub(crate) fn parse_tile_path(path: &str) -> Option<TilePath> {
    let parts: Vec<&str> = path.split('/').collect();
    let (first, rest) = parts.split_first()?;
    let level = if *first == "entries" {
        None
    } else {
        if first.is_empty() || first.len() > 2 || !first.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let l: u32 = first.parse().ok()?;
        if l.to_string() != *first || l > 7 {
            return None;
        }
        Some(l)
    };
    let (groups, width) = match rest {
        [.., last_group, w] if last_group.ends_with(".p") => {
            if w.is_empty() || w.len() > 3 || !w.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let width: u64 = w.parse().ok()?;
            if width == 0 || width >= TILE_WIDTH || width.to_string() != *w {
                return None;
            }
            (&rest[..rest.len() - 1], Some(width))
        }
        _ => (rest, None),
    };
    let (last, init) = groups.split_last()?;
    let last = if width.is_some() {
        last.strip_suffix(".p")?
    } else {
        last
    };
    let mut index: u64 = 0;
    for (i, g) in init.iter().enumerate() {
        let digits = g.strip_prefix('x')?;
        if digits.len() != 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        if i == 0 && digits == "000" {
            return None;
        }
        index = index.checked_mul(1000)?.checked_add(digits.parse().ok()?)?;
    }
    if last.len() != 3 || !last.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    index = index.checked_mul(1000)?.checked_add(last.parse().ok()?)?;
    Some(TilePath {
        level,
        index,
        width,
    })
}

/// `GET /v1/log/tile/{*path}`: hash tiles and entry bundles. Full tiles
/// never change and are cached for a year; partial ones are not cached.
pub(crate) async fn tile(
    State(app): State<Arc<App>>,
    Path(path): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    app.auth.caller(&headers)?.require(READERS)?;
    let Some(t) = parse_tile_path(&path) else {
        return Err(ApiError::not_found(format!(
            "'{path}' is not a tile path: expected L/N[.p/W] or entries/N[.p/W], N as x001/x234/067, W in 1..255"
        )));
    };
    let width = t.width.unwrap_or(TILE_WIDTH);
    let body = match t.level {
        Some(level) => app.records.tile(level, t.index, width).await?,
        None => app.records.entry_bundle(t.index, width).await?,
    };
    let cache = if t.width.is_none() {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/octet-stream"),
            (header::CACHE_CONTROL, cache),
        ],
        body,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tile_paths_parse_as_the_spec_writes_them() {
        assert_eq!(
            parse_tile_path("0/x001/x234/067"),
            Some(TilePath {
                level: Some(0),
                index: 1_234_067,
                width: None
            })
        );
        assert_eq!(
            parse_tile_path("1/000.p/7"),
            Some(TilePath {
                level: Some(1),
                index: 0,
                width: Some(7)
            })
        );
        assert_eq!(
            parse_tile_path("entries/x001/002.p/255"),
            Some(TilePath {
                level: None,
                index: 1002,
                width: Some(255)
            })
        );
    }

    #[test]
    fn malformed_tile_paths_do_not_parse() {
        for p in [
            "",
            "0",
            "0/",
            "0/1",
            "0/0001",
            "0/x000/001",
            "0/001/002",
            "0/001.p",
            "0/001.p/0",
            "0/001.p/256",
            "0/001.p/07",
            "00/001",
            "8/001",
            "a/001",
            "0/x1/001",
            "entries",
            "0/001/.p/3",
            "0/-01",
            "0/x999/x999/x999/x999/x999/x999/x999/999",
        ] {
            assert_eq!(parse_tile_path(p), None, "{p}");
        }
    }
}
