//! Reading request bodies: size caps that answer 413 in JSON, and the
//! content types a decision accepts.

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode, header};

use super::error::ApiError;

fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
        format!("request body exceeds the limit of {limit} bytes"),
    )
}

/// Reads at most `limit` bytes; more is a 413 naming the limit. A declared
/// `Content-Length` over the limit is refused before a byte is read, so a
/// client that sent `Expect: 100-continue` never uploads the body at all.
pub async fn read(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<axum::body::Bytes, ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large(limit));
    }
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        let too_large = std::error::Error::source(&e)
            .is_some_and(|s| s.is::<http_body_util::LengthLimitError>())
            || e.to_string().contains("length limit");
        if too_large {
            self::too_large(limit)
        } else {
            ApiError::bad_request(
                "body_unreadable",
                format!("could not read the request body: {e}"),
            )
        }
    })
}

/// Decisions take JSON. `application/x-www-form-urlencoded` is accepted
/// too, because it is what `curl -d @request.json` sends by default; the
/// body is still parsed as JSON. Anything else is a 415 saying what to send.
pub fn require_json(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let ct = value.to_str().unwrap_or_default().to_ascii_lowercase();
    let essence = ct.split(';').next().unwrap_or_default().trim();
    let ok = essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
        || essence == "application/x-www-form-urlencoded";
    if ok {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("content type '{essence}' is not accepted; send application/json"),
        ))
    }
}

/// Refuses a request after reading (and discarding) up to 8 MiB of its
/// body. hyper closes a connection whose request body was not read, and a
/// client still sending a large upload then sees a reset instead of the
/// 401 or 403 that explains the refusal; reading a bounded amount first
/// lets the answer arrive.
pub async fn refuse_after_drain(headers: &HeaderMap, body: Body, err: ApiError) -> ApiError {
    const DRAIN: usize = 8 << 20;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n <= DRAIN) {
        let _ = axum::body::to_bytes(body, DRAIN).await;
    }
    err
}
