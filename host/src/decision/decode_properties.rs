//! Property tests of the request decoder: whatever bytes or JSON arrive,
//! decoding never panics, and every refusal says what is wrong and where
//! (a non-empty message and a valid JSON pointer, which for a JSON document
//! points into that document).

use proptest::prelude::*;
use serde_json::{Map, Value, json};

use super::{DecisionKind, DecodeLimits, RequestError, decode_with};

/// Field names of the three requests, so generated objects reach past the
/// top level into the typed decoders instead of being ignored as unknown.
const FIELDS: &[&str] = &[
    "now",
    "system",
    "id",
    "risk_tier",
    "autonomy",
    "consequential",
    "release",
    "risk",
    "assessment_ref",
    "verification",
    "complete",
    "results",
    "passed",
    "metric",
    "threshold",
    "review",
    "completed_at",
    "outcome",
    "conditions",
    "authorisation",
    "authorised_by",
    "authorised_at",
    "expires_at",
    "scope",
    "deficiencies",
    "severity",
    "status",
    "acceptance",
    "plan",
    "stages",
    "name",
    "traffic_percent",
    "min_duration_hours",
    "criteria",
    "op",
    "min_samples",
    "rollback",
    "procedure",
    "tested",
    "triggers",
    "suspension_triggers",
    "safeguards",
    "compensating_controls",
    "communication",
    "limitations",
    "published_at",
    "monitoring",
    "metrics",
    "contacts",
    "intensive_period_hours",
    "supply_chain",
    "current_stage",
    "target_stage",
    "stage_entered_at",
    "deployed_at",
    "observations",
    "value",
    "samples",
    "window_end",
    "material_issues",
    "extensions",
    "a/b~c",
];

/// Strings a request's enums and timestamps accept, and some they do not.
const WORDS: &[&str] = &[
    "",
    "low",
    "high",
    "critical",
    "open",
    "resolved",
    "<=",
    ">",
    "approved",
    "rejected",
    "autonomous",
    "2026-11-26T12:00:00Z",
    "9999-12-31T23:59:59Z",
    "2026-02-30T00:00:00Z",
    "2026-11-26T12:00:00+25:00",
    "yesterday",
    "é\u{0}",
];

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        prop::sample::select(WORDS).prop_map(Value::from),
        ".{0,12}".prop_map(Value::String),
    ]
}

/// Nested JSON values whose object keys are mostly request field names.
fn json_value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(5, 96, 8, |inner| {
        let key = prop_oneof![
            4 => prop::sample::select(FIELDS).prop_map(str::to_string),
            1 => ".{0,6}",
        ];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::vec((key, inner), 0..8)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// A request that passes the required fields, with arbitrary values at
/// some request fields: reaches the deeper decoders more often than a
/// value generated from nothing.
fn request_like() -> impl Strategy<Value = Value> {
    prop::collection::vec((prop::sample::select(FIELDS), json_value()), 0..6).prop_map(|fields| {
        let mut base = json!({
            "now": "2026-11-26T12:00:00Z",
            "system": {"id": "s", "risk_tier": "high"},
            "plan": {"stages": [{"name": "a", "criteria": [{"metric": "e"}]}]},
            "current_stage": "a", "target_stage": "b",
            "stage_entered_at": "2026-11-20T00:00:00Z",
            "deployed_at": "2026-11-20T00:00:00Z",
        });
        for (k, v) in fields {
            base[k] = v;
        }
        base
    })
}

fn is_json_pointer(path: &str) -> bool {
    if path.is_empty() {
        return true;
    }
    if !path.starts_with('/') {
        return false;
    }
    // `~` only as the escapes `~0` and `~1`.
    let mut chars = path.chars();
    while let Some(c) = chars.next() {
        if c == '~' && !matches!(chars.next(), Some('0' | '1')) {
            return false;
        }
    }
    true
}

fn check_refusal(e: &RequestError) -> Result<(), TestCaseError> {
    prop_assert!(!e.message.trim().is_empty(), "empty message: {e:?}");
    prop_assert!(is_json_pointer(&e.path), "not a JSON pointer: {e:?}");
    Ok(())
}

/// A refusal of a JSON document points into it: at a value that is there,
/// or, for a missing field, into an object that lacks it.
fn check_points_into(e: &RequestError, doc: &Value) -> Result<(), TestCaseError> {
    if doc.pointer(&e.path).is_some() {
        return Ok(());
    }
    let parent = e.path.rsplit_once('/').map_or("", |(parent, _)| parent);
    prop_assert!(
        e.message == "required field is missing"
            && doc.pointer(parent).is_some_and(Value::is_object),
        "path {:?} is not in the request: {e:?}",
        e.path
    );
    Ok(())
}

/// Decodes `body` as every decision kind, under the default limits and a
/// tiny list bound (so list refusals are exercised too).
fn decode_everywhere(body: &[u8], doc: Option<&Value>) -> Result<(), TestCaseError> {
    for kind in DecisionKind::ALL {
        for limits in [
            DecodeLimits::default(),
            DecodeLimits {
                max_list_len: 2,
                ..DecodeLimits::default()
            },
        ] {
            if let Err(e) = decode_with(kind, body, limits) {
                check_refusal(&e)?;
                if let Some(doc) = doc {
                    check_points_into(&e, doc)?;
                }
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_are_refused_with_a_message_and_a_pointer(
        body in prop::collection::vec(any::<u8>(), 0..512)
    ) {
        decode_everywhere(&body, None)?;
    }

    #[test]
    fn arbitrary_json_is_decoded_or_refused_with_a_message_and_a_pointer(value in json_value()) {
        decode_everywhere(value.to_string().as_bytes(), Some(&value))?;
    }

    #[test]
    fn request_shaped_json_is_decoded_or_refused_with_a_message_and_a_pointer(
        value in request_like()
    ) {
        decode_everywhere(value.to_string().as_bytes(), Some(&value))?;
    }
}

#[test]
fn the_pointer_check_accepts_pointers_only() {
    assert!(is_json_pointer(""));
    assert!(is_json_pointer("/plan/stages/0"));
    assert!(is_json_pointer("/a~1b~0c"));
    assert!(!is_json_pointer("plan"));
    assert!(!is_json_pointer("/a~b"));
}
