//! Matching a token's claims against an entry's `claims`, and naming the
//! actor from them (`subject = "{repository}@{ref}"`).

use super::error::IdentityError;
use serde_json::Value;

/// A claim, by name; a nested claim by its `/`-separated path
/// (`kubernetes.io/namespace` in a Kubernetes ServiceAccount token).
pub(crate) fn lookup<'a>(claims: &'a Value, path: &str) -> Option<&'a Value> {
    if let Some(v) = claims.get(path) {
        return Some(v);
    }
    path.split('/')
        .try_fold(claims, |v, segment| v.get(segment))
}

/// A scalar claim as text (strings as they are, numbers and booleans as
/// JSON writes them); objects, arrays and null are not matched.
pub(crate) fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// An exact value, or a glob: `*` matches any run of characters other
/// than `/`, `**` any run at all. `?`, `[`, `]`, `{`, `}` and `***` are
/// reserved (refused at load, so that a pattern from another tool's syntax
/// is not silently read as a literal).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ClaimPattern {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    /// `*`
    Segment,
    /// `**`
    Any,
}

impl ClaimPattern {
    pub(crate) fn parse(claim: &str, pattern: &str) -> Result<Self, IdentityError> {
        if claim.is_empty() {
            return Err(IdentityError::Pattern(
                "a claim name must not be empty".into(),
            ));
        }
        if pattern.is_empty() {
            return Err(IdentityError::Pattern(
                "an empty pattern matches nothing useful; give a value or a glob".into(),
            ));
        }
        if let Some(c) = pattern
            .chars()
            .find(|c| matches!(c, '?' | '[' | ']' | '{' | '}'))
        {
            return Err(IdentityError::Pattern(format!(
                "'{pattern}': '{c}' is not pattern syntax here (exact values, '*' within a segment, '**' across segments)"
            )));
        }
        if pattern.contains("***") {
            return Err(IdentityError::Pattern(format!(
                "'{pattern}': '***' is not pattern syntax here"
            )));
        }
        let mut parts = Vec::new();
        let mut rest = pattern;
        while !rest.is_empty() {
            if let Some(r) = rest.strip_prefix("**") {
                parts.push(Part::Any);
                rest = r;
            } else if let Some(r) = rest.strip_prefix('*') {
                parts.push(Part::Segment);
                rest = r;
            } else {
                let end = rest.find('*').unwrap_or(rest.len());
                parts.push(Part::Literal(rest[..end].to_string()));
                rest = &rest[end..];
            }
        }
        Ok(ClaimPattern { parts })
    }

    pub(crate) fn matches(&self, value: &str) -> bool {
        matches_from(&self.parts, value)
    }
}

fn matches_from(parts: &[Part], value: &str) -> bool {
    match parts.split_first() {
        None => value.is_empty(),
        Some((Part::Literal(l), rest)) => value
            .strip_prefix(l.as_str())
            .is_some_and(|v| matches_from(rest, v)),
        Some((wild, rest)) => {
            // Try every split point; a `*` may not swallow a '/'.
            for (i, c) in value.char_indices() {
                if matches_from(rest, &value[i..]) {
                    return true;
                }
                if *wild == Part::Segment && c == '/' {
                    return false;
                }
            }
            matches_from(rest, "")
        }
    }
}

/// `"{repository}@{ref}"`: literal text and claim names in braces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SubjectTemplate {
    parts: Vec<(bool, String)>,
}

impl SubjectTemplate {
    pub(crate) fn parse(template: &str) -> Result<Self, IdentityError> {
        let mut parts = Vec::new();
        let mut rest = template;
        while !rest.is_empty() {
            match rest.find(['{', '}']) {
                None => {
                    parts.push((false, rest.to_string()));
                    break;
                }
                Some(i) if rest.as_bytes()[i] == b'}' => {
                    return Err(IdentityError::Template(format!(
                        "'{template}': '}}' without '{{'"
                    )));
                }
                Some(i) => {
                    if i > 0 {
                        parts.push((false, rest[..i].to_string()));
                    }
                    let after = &rest[i + 1..];
                    let end = after.find('}').ok_or_else(|| {
                        IdentityError::Template(format!("'{template}': '{{' without '}}'"))
                    })?;
                    let name = &after[..end];
                    if name.is_empty() || name.contains('{') {
                        return Err(IdentityError::Template(format!(
                            "'{template}': '{{{name}}}' does not name a claim"
                        )));
                    }
                    parts.push((true, name.to_string()));
                    rest = &after[end + 1..];
                }
            }
        }
        if !parts.iter().any(|(claim, _)| *claim) {
            return Err(IdentityError::Template(format!(
                "'{template}' names no claim: every token would get the same actor"
            )));
        }
        Ok(SubjectTemplate { parts })
    }

    /// The actor's subject, or the claim it needed and the token lacks.
    pub(crate) fn render(&self, claims: &Value) -> Result<String, IdentityError> {
        let mut out = String::new();
        for (is_claim, text) in &self.parts {
            if *is_claim {
                let v = lookup(claims, text).and_then(scalar).ok_or_else(|| {
                    IdentityError::Subject(format!(
                        "the subject names claim '{text}', which the token lacks"
                    ))
                })?;
                out.push_str(&v);
            } else {
                out.push_str(text);
            }
        }
        // Records are read by people: no control characters, bounded.
        if out.chars().any(char::is_control) || out.is_empty() || out.len() > 256 {
            return Err(IdentityError::Subject(
                "the subject is empty, longer than 256 bytes or has control characters".into(),
            ));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_single_star_stays_within_a_segment() {
        let p = ClaimPattern::parse("repository", "acme/*").unwrap();
        assert!(p.matches("acme/credit-scoring"));
        assert!(!p.matches("acme/team/credit-scoring"));
        assert!(!p.matches("evil/acme/x"));
        let p = ClaimPattern::parse("ref", "refs/heads/**").unwrap();
        assert!(p.matches("refs/heads/release/2.1"));
        assert!(!p.matches("refs/tags/v1"));
        let p = ClaimPattern::parse("environment", "production").unwrap();
        assert!(p.matches("production"));
        assert!(!p.matches("production-eu"));
        let p = ClaimPattern::parse("x", "a*c").unwrap();
        assert!(p.matches("ac") && p.matches("abbc") && !p.matches("ab/c"));
    }

    #[test]
    fn nested_claims_are_named_by_path() {
        let c = json!({"kubernetes.io": {"namespace": "shop", "serviceaccount": {"name": "gw"}}});
        assert_eq!(lookup(&c, "kubernetes.io/namespace"), Some(&json!("shop")));
        assert_eq!(
            lookup(&c, "kubernetes.io/serviceaccount/name"),
            Some(&json!("gw"))
        );
        assert_eq!(lookup(&c, "kubernetes.io/pod"), None);
    }

    #[test]
    fn subjects_are_rendered_from_claims() {
        let t = SubjectTemplate::parse("{repository}@{ref}").unwrap();
        let c = json!({"repository": "acme/x", "ref": "refs/heads/main"});
        assert_eq!(t.render(&c).unwrap(), "acme/x@refs/heads/main");
        assert!(t.render(&json!({"repository": "acme/x"})).is_err());
        assert!(SubjectTemplate::parse("fixed").is_err());
        assert!(SubjectTemplate::parse("{a}}").is_err());
    }
}
