//! From request bytes to a typed [`Request`], with errors that name the JSON
//! path of the problem (docs/decisions.md#conventions):
//! `/plan/stages/1/traffic_percent: expected a number, found string "5"`.
//!
//! The fast path decodes with plain serde_json. Only when that fails is the
//! body decoded again through `serde_path_to_error` to locate the problem, so
//! well-formed requests never pay for path tracking.

use std::fmt;

use serde::de::DeserializeOwned;

use super::DecisionKind;
use super::limits::{self, DecodeLimits};
use super::request::{
    Attestation, GateRequest, MonitoringRequest, Plan, ProgressionRequest, Request,
};
use super::strict::Strict;

/// Why a request was refused before any policy saw it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.display())]
pub struct RequestError {
    pub kind: RequestErrorKind,
    /// JSON pointer to the offending value, "" for the whole body.
    pub path: String,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestErrorKind {
    /// Not JSON, wrong types, missing required fields (HTTP 400).
    Malformed,
    /// Well-formed JSON with a value outside its domain, or a list longer
    /// than [`DecodeLimits::max_list_len`] (HTTP 422).
    Invalid,
}

impl RequestError {
    fn display(&self) -> String {
        if self.path.is_empty() {
            self.message.clone()
        } else {
            format!("{}: {}", self.path, self.message)
        }
    }

    /// The stable error code used in HTTP error bodies.
    pub fn code(&self) -> &'static str {
        match self.kind {
            RequestErrorKind::Malformed => "request.malformed",
            RequestErrorKind::Invalid => "request.invalid",
        }
    }

    pub(crate) fn invalid(path: String, message: impl Into<String>) -> Self {
        RequestError {
            kind: RequestErrorKind::Invalid,
            path,
            message: message.into(),
        }
    }
}

/// Decodes and validates a request for `kind` under the default
/// [`DecodeLimits`].
pub fn decode(kind: DecisionKind, body: &[u8]) -> Result<Request, RequestError> {
    decode_with(kind, body, DecodeLimits::default())
}

/// Decodes and validates a request for `kind`; a list longer than
/// `limits.max_list_len` is refused as invalid, naming its path.
pub fn decode_with(
    kind: DecisionKind,
    body: &[u8],
    limits: DecodeLimits,
) -> Result<Request, RequestError> {
    let request = limits::with_limits(limits, || {
        let request = match kind {
            DecisionKind::Gate => Request::Gate(decode_as::<GateRequest>(body)?),
            DecisionKind::Progression => {
                Request::Progression(decode_as::<ProgressionRequest>(body)?)
            }
            DecisionKind::Monitoring => Request::Monitoring(decode_as::<MonitoringRequest>(body)?),
        };
        Ok(request)
    })?;
    let items = request.list_items();
    if items > limits.max_total_items {
        return Err(RequestError::invalid(
            String::new(),
            format!(
                "the request holds {items} list items in all (stages, criteria, observations, ...), more than the {} allowed",
                limits.max_total_items
            ),
        ));
    }
    validate(&request)?;
    Ok(request)
}

/// Decodes any JSON object body with this module's errors: a JSON pointer
/// to the problem, serde's wording made readable, trailing bytes refused.
/// The records API decodes its bodies with it too.
pub fn decode_as<T: DeserializeOwned>(body: &[u8]) -> Result<T, RequestError> {
    // One UTF-8 check of the whole body lets serde_json skip it for every
    // string (a measurable share of decoding a request).
    let text = std::str::from_utf8(body).map_err(|e| RequestError {
        kind: RequestErrorKind::Malformed,
        path: String::new(),
        message: format!(
            "body is not valid JSON: invalid UTF-8 at byte {}",
            e.valid_up_to()
        ),
    })?;
    // serde also reads a struct from a JSON array, field by field in
    // declaration order; a request is a JSON object, and an array
    // body would otherwise be decoded positionally or refused with a
    // message about its first element.
    if text.trim_start().starts_with('[') {
        return Err(RequestError {
            kind: RequestErrorKind::Malformed,
            path: String::new(),
            message: "expected the request as a JSON object, found an array".into(),
        });
    }
    limits::clear_refused();
    let mut de = serde_json::Deserializer::from_str(text);
    match T::deserialize(Strict(&mut de)).and_then(|v| de.end().map(|()| v)) {
        Ok(v) => Ok(v),
        Err(_) => Err(locate::<T>(body)),
    }
}

/// Decodes again, tracking the path, to explain why the fast path failed.
fn locate<T: DeserializeOwned>(body: &[u8]) -> RequestError {
    let mut de = serde_json::Deserializer::from_slice(body);
    let (path, err) = match serde_path_to_error::deserialize::<_, T>(Strict(&mut de)) {
        Ok(_) => match de.end() {
            // Only trailing characters after a valid document can get here.
            Err(e) => (String::new(), e),
            Ok(()) => {
                return RequestError {
                    kind: RequestErrorKind::Malformed,
                    path: String::new(),
                    message: "request could not be decoded".into(),
                };
            }
        },
        Err(e) => (pointer(e.path()), e.into_inner()),
    };
    use serde_json::error::Category;
    match err.classify() {
        Category::Syntax | Category::Eof | Category::Io => RequestError {
            kind: RequestErrorKind::Malformed,
            path: String::new(),
            message: format!("body is not valid JSON: {err}"),
        },
        Category::Data if limits::refused() => {
            RequestError::invalid(path, strip_position(&err.to_string()))
        }
        Category::Data => {
            let raw = strip_position(&err.to_string());
            let (path, message) = match raw.strip_prefix("missing field `") {
                Some(rest) => {
                    let field = rest.trim_end_matches('`');
                    (
                        format!("{path}/{field}"),
                        "required field is missing".to_string(),
                    )
                }
                None => (path, humanise(&raw)),
            };
            RequestError {
                kind: RequestErrorKind::Malformed,
                path,
                message,
            }
        }
    }
}

/// `plan.stages[1].traffic_percent` as the JSON pointer `/plan/stages/1/traffic_percent`.
fn pointer(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for seg in path.iter() {
        match seg {
            Segment::Seq { index } => {
                out.push('/');
                out.push_str(&index.to_string());
            }
            Segment::Map { key } | Segment::Enum { variant: key } => {
                out.push('/');
                out.push_str(&key.replace('~', "~0").replace('/', "~1"));
            }
            Segment::Unknown => {}
        }
    }
    out
}

/// serde_json appends " at line L column C"; the JSON path says more.
fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

/// Rewrites serde's `invalid type: string "5", expected f64` into
/// `expected a number, found string "5"`.
fn humanise(msg: &str) -> String {
    // `invalid length 0, expected struct Plan with 3 elements`: an array
    // where an object belongs, as serde words it when a struct is read
    // positionally (decoding goes through `strict`, which words it as an
    // invalid type; this stays for any caller decoding without it).
    if msg.starts_with("invalid length ") && msg.contains(", expected struct ") {
        return "expected an object, found an array".into();
    }
    let Some(rest) = msg.strip_prefix("invalid type: ") else {
        return msg.to_string();
    };
    let Some((found, expected)) = rest.rsplit_once(", expected ") else {
        return msg.to_string();
    };
    let expected = match expected {
        "f64" | "f32" => "a number",
        "u64" | "u32" => "a non-negative integer",
        "a sequence" => "an array",
        "a map" => "an object",
        e if e.starts_with("struct ") => "an object",
        e => e,
    };
    let found = match found {
        "map" => "an object",
        "sequence" => "an array",
        f => f,
    };
    format!("expected {expected}, found {found}")
}

/// Domain checks that serde's types cannot express (HTTP 422).
pub(crate) fn validate(request: &Request) -> Result<(), RequestError> {
    match request {
        Request::Gate(r) => {
            if let Some(plan) = &r.plan {
                validate_plan(plan)?;
            }
            if let Some(h) = r.monitoring.as_ref().and_then(|m| m.intensive_period_hours) {
                non_negative(h, "/monitoring/intensive_period_hours".into())?;
            }
            if let Some(v) = &r.verification {
                for (i, result) in v.results.iter().enumerate() {
                    if let Some(a) = &result.attestation {
                        validate_attestation(a, &format!("/verification/results/{i}/attestation"))?;
                    }
                }
            }
            if let Some(a) = r.supply_chain.as_ref().and_then(|s| s.attestation.as_ref()) {
                validate_attestation(a, "/supply_chain/attestation")?;
            }
            Ok(())
        }
        Request::Progression(r) => validate_plan(&r.plan),
        Request::Monitoring(r) => validate_plan(&r.plan),
    }
}

pub(crate) fn validate_plan(plan: &Plan) -> Result<(), RequestError> {
    for (i, stage) in plan.stages.iter().enumerate() {
        if let Some(p) = stage.traffic_percent
            && !(0.0..=100.0).contains(&p)
        {
            return Err(RequestError::invalid(
                format!("/plan/stages/{i}/traffic_percent"),
                format!("expected a percentage from 0 to 100, found {p}"),
            ));
        }
        if let Some(h) = stage.min_duration_hours {
            non_negative(h, format!("/plan/stages/{i}/min_duration_hours"))?;
        }
    }
    Ok(())
}

/// An attestation names a key, a predicate type and a statement digest in
/// the form the records API produces (docs/decisions.md#attestations).
fn validate_attestation(a: &Attestation, at: &str) -> Result<(), RequestError> {
    if a.keyid.is_empty() {
        return Err(RequestError::invalid(
            format!("{at}/keyid"),
            "expected a key id, found an empty string",
        ));
    }
    if a.predicate_type.is_empty() {
        return Err(RequestError::invalid(
            format!("{at}/predicate_type"),
            "expected a predicate type URI, found an empty string",
        ));
    }
    let hex = a.statement_digest.strip_prefix("sha256:");
    if !hex
        .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
    {
        return Err(RequestError::invalid(
            format!("{at}/statement_digest"),
            format!(
                "expected \"sha256:\" and 64 lowercase hex digits, found {:?}",
                a.statement_digest
            ),
        ));
    }
    Ok(())
}

fn non_negative(h: f64, path: String) -> Result<(), RequestError> {
    if h < 0.0 {
        return Err(RequestError::invalid(
            path,
            format!("expected a non-negative number of hours, found {h}"),
        ));
    }
    Ok(())
}

impl fmt::Display for RequestErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RequestErrorKind::Malformed => "malformed request",
            RequestErrorKind::Invalid => "invalid request",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate_err(body: &str) -> RequestError {
        decode(DecisionKind::Gate, body.as_bytes()).unwrap_err()
    }

    const MIN: &str = r#"{"now":"2026-11-26T12:00:00Z","system":{"id":"s","risk_tier":"low"}"#;

    #[test]
    fn a_minimal_gate_request_decodes_with_spec_defaults() {
        let Request::Gate(r) = decode(DecisionKind::Gate, format!("{MIN}}}").as_bytes()).unwrap()
        else {
            panic!("not a gate request")
        };
        assert_eq!(r.system.consequential, None);
        assert!(r.deficiencies.is_empty());
        assert!(r.plan.is_none());
    }

    #[test]
    fn a_wrong_type_names_the_json_pointer_and_the_expected_type() {
        let e = gate_err(&format!(
            r#"{MIN},"plan":{{"stages":[{{"name":"a"}},{{"name":"b","traffic_percent":"5"}}]}}}}"#
        ));
        assert_eq!(e.kind, RequestErrorKind::Malformed);
        assert_eq!(e.path, "/plan/stages/1/traffic_percent");
        assert_eq!(e.message, r#"expected a number, found string "5""#);
        assert_eq!(
            e.to_string(),
            r#"/plan/stages/1/traffic_percent: expected a number, found string "5""#
        );
    }

    #[test]
    fn a_missing_required_field_is_named() {
        let e = gate_err(r#"{"now":"2026-11-26T12:00:00Z","system":{"id":"s"}}"#);
        assert_eq!(e.path, "/system/risk_tier");
        assert_eq!(e.message, "required field is missing");
        let e = gate_err(r#"{"system":{"id":"s","risk_tier":"low"}}"#);
        assert_eq!(e.path, "/now");
    }

    #[test]
    fn null_counts_as_missing_for_optional_fields_only() {
        let ok = format!(r#"{MIN},"deficiencies":null,"verification":{{"complete":null}}}}"#);
        assert!(decode(DecisionKind::Gate, ok.as_bytes()).is_ok());
        let e = gate_err(r#"{"now":null,"system":{"id":"s","risk_tier":"low"}}"#);
        assert_eq!(e.path, "/now");
    }

    #[test]
    fn an_unknown_enum_value_lists_the_allowed_ones() {
        let e =
            gate_err(r#"{"now":"2026-11-26T12:00:00Z","system":{"id":"s","risk_tier":"extreme"}}"#);
        assert_eq!(e.path, "/system/risk_tier");
        assert!(e.message.contains("`critical`"), "{}", e.message);
    }

    #[test]
    fn an_array_where_an_object_belongs_is_named_as_such() {
        let e = gate_err("  [1, 2]");
        assert_eq!(e.kind, RequestErrorKind::Malformed);
        assert_eq!(e.path, "");
        assert_eq!(
            e.message,
            "expected the request as a JSON object, found an array"
        );
        let e = gate_err(&format!(r#"{MIN},"plan":[]}}"#));
        assert_eq!(e.path, "/plan");
        assert_eq!(e.message, "expected an object, found an array");
        // Plain serde would fill these positionally and accept them; a
        // later domain error would then name a path the body lacks.
        let e = gate_err(r#"{"now":"2026-11-26T12:00:00Z","system":["s","low"]}"#);
        assert_eq!(e.path, "/system");
        assert_eq!(e.message, "expected an object, found an array");
        let e = gate_err(&format!(
            r#"{MIN},"plan":{{"stages":[["pilot",5],{{"name":"b"}}]}}}}"#
        ));
        assert_eq!(e.path, "/plan/stages/0");
        assert_eq!(e.message, "expected an object, found an array");
    }

    #[test]
    fn not_json_is_malformed_without_a_path() {
        let e = gate_err("not json");
        assert_eq!(e.kind, RequestErrorKind::Malformed);
        assert_eq!(e.path, "");
        assert!(
            e.message.starts_with("body is not valid JSON"),
            "{}",
            e.message
        );
        let e = gate_err(&format!("{MIN}}} trailing"));
        assert!(
            e.message.starts_with("body is not valid JSON"),
            "{}",
            e.message
        );
    }

    #[test]
    fn a_bad_timestamp_is_named() {
        let e = gate_err(r#"{"now":"yesterday","system":{"id":"s","risk_tier":"low"}}"#);
        assert_eq!(e.path, "/now");
        assert!(e.message.contains("RFC 3339"), "{}", e.message);
    }

    #[test]
    fn an_out_of_range_percentage_is_invalid_not_malformed() {
        let e = gate_err(&format!(
            r#"{MIN},"plan":{{"stages":[{{"traffic_percent":150}}]}}}}"#
        ));
        assert_eq!(e.kind, RequestErrorKind::Invalid);
        assert_eq!(e.path, "/plan/stages/0/traffic_percent");
    }

    #[test]
    fn unknown_fields_are_ignored_and_extensions_pass_through() {
        let body = format!(r#"{MIN},"future_field":1,"extensions":{{"model_card":"mc-1"}}}}"#);
        let Request::Gate(r) = decode(DecisionKind::Gate, body.as_bytes()).unwrap() else {
            panic!()
        };
        assert_eq!(r.extensions.unwrap().get(), r#"{"model_card":"mc-1"}"#);
    }

    #[test]
    fn progression_requires_its_own_fields() {
        let e = decode(
            DecisionKind::Progression,
            br#"{"now":"2026-11-26T12:00:00Z","system":{"id":"s","risk_tier":"low"},"plan":{},"current_stage":"a","target_stage":"b"}"#,
        )
        .unwrap_err();
        assert_eq!(e.path, "/stage_entered_at");
    }

    fn monitoring_with_observations(items: &str) -> String {
        format!(
            r#"{{"now":"2026-11-26T12:00:00Z","system":{{"id":"s","risk_tier":"low"}},"plan":{{}},"current_stage":"a","deployed_at":"2026-11-26T12:00:00Z","observations":[{items}]}}"#
        )
    }

    fn repeat(item: &str, n: usize) -> String {
        vec![item; n].join(",")
    }

    #[test]
    fn a_list_longer_than_the_limit_is_invalid_and_names_its_path() {
        let body = monitoring_with_observations(&repeat(r#"{"metric":"e"}"#, 1001));
        let e = decode(DecisionKind::Monitoring, body.as_bytes()).unwrap_err();
        assert_eq!(e.kind, RequestErrorKind::Invalid);
        assert_eq!(e.code(), "request.invalid");
        assert_eq!(
            e.to_string(),
            "/observations: expected at most 1000 items, found 1001"
        );
        let body = monitoring_with_observations(&repeat(r#"{"metric":"e"}"#, 1000));
        assert!(decode(DecisionKind::Monitoring, body.as_bytes()).is_ok());
    }

    #[test]
    fn nested_lists_each_within_bounds_are_refused_beyond_the_total() {
        // 30 stages of 400 criteria: every list within 1,000, 12,030 items
        // in all (the product is what a policy would have to walk).
        let stage = format!(
            r#"{{"name":"s","criteria":[{}]}}"#,
            vec![r#"{"metric":"m"}"#; 400].join(",")
        );
        let body = format!(
            r#"{MIN},"plan":{{"stages":[{}]}}}}"#,
            vec![stage.as_str(); 30].join(",")
        );
        let e = decode(DecisionKind::Gate, body.as_bytes()).unwrap_err();
        assert_eq!(e.kind, RequestErrorKind::Invalid);
        assert_eq!(e.path, "");
        assert!(e.message.contains("12030 list items"), "{}", e.message);
        assert!(
            e.message.contains("more than the 10000 allowed"),
            "{}",
            e.message
        );
        let roomy = DecodeLimits {
            max_total_items: 20_000,
            ..DecodeLimits::default()
        };
        assert!(decode_with(DecisionKind::Gate, body.as_bytes(), roomy).is_ok());
    }

    #[test]
    fn the_list_bound_applies_to_nested_lists_and_optional_ones() {
        let limits = DecodeLimits {
            max_list_len: 2,
            ..DecodeLimits::default()
        };
        let body = format!(r#"{MIN},"plan":{{"stages":[{{}},{{"criteria":[{{}},{{}},{{}}]}}]}}}}"#);
        let e = decode_with(DecisionKind::Gate, body.as_bytes(), limits).unwrap_err();
        assert_eq!(e.kind, RequestErrorKind::Invalid);
        assert_eq!(e.path, "/plan/stages/1/criteria");
        assert_eq!(e.message, "expected at most 2 items, found 3");

        let body = format!(r#"{MIN},"authorisation":{{"scope":["a","b","c"]}}}}"#);
        let e = decode_with(DecisionKind::Gate, body.as_bytes(), limits).unwrap_err();
        assert_eq!(e.path, "/authorisation/scope");
        let body = format!(r#"{MIN},"monitoring":{{"metrics":["a","b","c","d"]}}}}"#);
        let e = decode_with(DecisionKind::Gate, body.as_bytes(), limits).unwrap_err();
        assert_eq!(e.path, "/monitoring/metrics");
        assert_eq!(e.message, "expected at most 2 items, found 4");
        // The default bound is back for the next decode on this thread.
        let body = format!(r#"{MIN},"monitoring":{{"metrics":["a","b","c","d"]}}}}"#);
        assert!(decode(DecisionKind::Gate, body.as_bytes()).is_ok());
    }

    #[test]
    fn items_past_the_bound_are_counted_not_decoded() {
        // Were the items past the bound decoded, the string would be refused
        // as "expected an object" at /observations/1001.
        let items = format!(
            r#"{},"not an observation",{}"#,
            repeat("{}", 1001),
            repeat("[]", 50_000)
        );
        let e = decode(
            DecisionKind::Monitoring,
            monitoring_with_observations(&items).as_bytes(),
        )
        .unwrap_err();
        assert_eq!(e.kind, RequestErrorKind::Invalid);
        assert_eq!(e.path, "/observations");
        assert_eq!(e.message, "expected at most 1000 items, found 51002");
    }

    #[test]
    fn a_list_of_the_wrong_type_is_still_malformed() {
        let e = gate_err(&format!(r#"{MIN},"deficiencies":"none"}}"#));
        assert_eq!(e.kind, RequestErrorKind::Malformed);
        assert_eq!(e.path, "/deficiencies");
        assert_eq!(e.message, r#"expected an array, found string "none""#);
        // A refusal on this thread does not turn a later type error invalid.
        let long = monitoring_with_observations(&repeat("{}", 1001));
        assert!(decode(DecisionKind::Monitoring, long.as_bytes()).is_err());
        let e = gate_err(&format!(r#"{MIN},"deficiencies":"none"}}"#));
        assert_eq!(e.kind, RequestErrorKind::Malformed);
    }

    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn an_attestation_on_a_result_and_on_the_supply_chain_is_decoded() {
        let att = format!(
            r#"{{"keyid":"k1","predicate_type":"https://in-toto.io/attestation/test-result/v0.1","statement_digest":"{DIGEST}"}}"#
        );
        let body = format!(
            r#"{MIN},"verification":{{"results":[{{"name":"a","passed":true,"attestation":{att}}},{{"name":"b","passed":true}}]}},"supply_chain":{{"third_party":true,"attestation":{att}}}}}"#
        );
        let Request::Gate(r) = decode(DecisionKind::Gate, body.as_bytes()).unwrap() else {
            panic!("not a gate request")
        };
        let results = &r.verification.unwrap().results;
        let a = results[0].attestation.as_ref().unwrap();
        assert_eq!(a.keyid, "k1");
        assert_eq!(a.statement_digest, DIGEST);
        assert!(results[1].attestation.is_none(), "absent = not attested");
        assert!(r.supply_chain.unwrap().attestation.is_some());
        let null = format!(r#"{MIN},"supply_chain":{{"attestation":null}}}}"#);
        assert!(decode(DecisionKind::Gate, null.as_bytes()).is_ok());
    }

    #[test]
    fn an_incomplete_or_misformed_attestation_names_its_field() {
        let e = gate_err(&format!(
            r#"{MIN},"verification":{{"results":[{{}},{{"attestation":{{"predicate_type":"p","statement_digest":"{DIGEST}"}}}}]}}}}"#
        ));
        assert_eq!(e.kind, RequestErrorKind::Malformed);
        assert_eq!(e.path, "/verification/results/1/attestation/keyid");
        assert_eq!(e.message, "required field is missing");

        let e = gate_err(&format!(
            r#"{MIN},"supply_chain":{{"attestation":{{"keyid":"k","predicate_type":"p","statement_digest":"md5:00"}}}}}}"#
        ));
        assert_eq!(e.kind, RequestErrorKind::Invalid);
        assert_eq!(e.path, "/supply_chain/attestation/statement_digest");
        assert!(e.message.contains("64 lowercase hex"), "{}", e.message);

        let e = gate_err(&format!(
            r#"{MIN},"verification":{{"results":[{{"attestation":{{"keyid":"","predicate_type":"p","statement_digest":"{DIGEST}"}}}}]}}}}"#
        ));
        assert_eq!(e.kind, RequestErrorKind::Invalid);
        assert_eq!(e.path, "/verification/results/0/attestation/keyid");
    }
}
