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
pub(crate) async fn read(
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
pub(crate) fn require_json(headers: &HeaderMap) -> Result<(), ApiError> {
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

/// Refuses a request after reading and discarding up to 8 MiB of its
/// body, a chunk at a time. hyper closes a connection whose request body
/// was not read, and a client still sending a large upload then sees a
/// reset instead of the 401 or 403 that explains the refusal; reading a
/// bounded amount first lets the answer arrive. Nothing is kept: 64
/// refused 8 MiB uploads at once cost 64 chunks, not 512 MiB.
pub(crate) async fn refuse_after_drain(headers: &HeaderMap, body: Body, err: ApiError) -> ApiError {
    use http_body_util::BodyExt;
    const DRAIN: u64 = 8 << 20;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n <= DRAIN) {
        let mut body = body;
        let mut seen = 0u64;
        while seen <= DRAIN {
            match body.frame().await {
                Some(Ok(frame)) => {
                    seen += frame.data_ref().map_or(0, |d| d.len() as u64);
                }
                _ => break,
            }
        }
    }
    err
}

/// The content types a browser may send cross-site without asking first
/// (a form post, `fetch` with `no-cors`). A write carrying one of them, or
/// none, could come from any web page the operator visits.
fn is_cors_simple(essence: &str) -> bool {
    matches!(
        essence,
        "" | "application/x-www-form-urlencoded" | "multipart/form-data" | "text/plain"
    )
}

fn essence(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// In open development mode (no tokens, so no `Authorization` header a
/// web page would have to forge), a state-changing request must carry a
/// content type a browser cannot send without a CORS preflight, which the
/// service never grants: JSON for records, anything but a form type for
/// bundle uploads.
pub(crate) fn require_non_form(headers: &HeaderMap, open: bool) -> Result<(), ApiError> {
    let essence = essence(headers);
    if open && is_cors_simple(&essence) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!(
                "without access tokens a write must say what it sends (content type '{essence}' is what a web form sends): use Content-Type: application/json, or application/octet-stream for a bundle"
            ),
        ));
    }
    Ok(())
}
