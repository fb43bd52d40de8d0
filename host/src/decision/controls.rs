//! Control references cited by findings, from a bundle's `controls.json`
//! (docs/decisions.md#control-references).
//!
//! The mapping is data, not code, so an organisation whose catalogue
//! numbers AI system deployment A.6.2.5 rather than A.6.2.7 remaps it in
//! `controls.json` and re-signs the bundle without touching the policy.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::Finding;

/// `controls.json`: finding code or code prefix (ending in `.`) to the
/// control references a finding with that code cites.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Controls {
    /// Which catalogue the references come from (documentation only).
    #[serde(default)]
    pub catalogue: Option<String>,
    /// Notes for the people who maintain the mapping.
    #[serde(default)]
    pub notes: Vec<String>,
    /// `"authorisation."` or `"policy.error"` → references.
    #[serde(default)]
    pub map: BTreeMap<String, Vec<String>>,
    /// Every finding code the policy can raise: documentation, and what
    /// `stagegate test --coverage` expects the test cases to produce.
    #[serde(default)]
    pub codes: Vec<String>,
}

/// A `controls.json` that does not decode: the field at fault (`map.x`,
/// `.` for the whole document) and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("controls.json at {path}: {message}")]
pub struct ControlsError {
    pub path: String,
    pub message: String,
}

impl Controls {
    /// Parses `controls.json`, naming the offending field on error.
    pub fn parse(bytes: &[u8]) -> Result<Self, ControlsError> {
        let mut de = serde_json::Deserializer::from_slice(bytes);
        serde_path_to_error::deserialize(&mut de).map_err(|e| ControlsError {
            path: e.path().to_string(),
            message: e.into_inner().to_string(),
        })
    }

    /// The references for `code`: an exact entry wins, else the longest
    /// matching prefix ending in `.`.
    pub fn lookup(&self, code: &str) -> &[String] {
        if let Some(refs) = self.map.get(code) {
            return refs;
        }
        self.map
            .iter()
            .filter(|(k, _)| k.ends_with('.') && code.starts_with(k.as_str()))
            .max_by_key(|(k, _)| k.len())
            .map(|(_, v)| v.as_slice())
            .unwrap_or_default()
    }

    /// One map for several bundles deciding together (a policy set): each
    /// code's references are the union of the members' for it, in member
    /// order; the declared codes likewise.
    pub fn merged<'a>(members: impl IntoIterator<Item = &'a Controls>) -> Controls {
        let mut out = Controls::default();
        for c in members {
            if out.catalogue.is_none() {
                out.catalogue.clone_from(&c.catalogue);
            }
            for (code, refs) in &c.map {
                let entry = out.map.entry(code.clone()).or_default();
                for r in refs {
                    if !entry.contains(r) {
                        entry.push(r.clone());
                    }
                }
            }
            for code in &c.codes {
                if !out.codes.contains(code) {
                    out.codes.push(code.clone());
                }
            }
        }
        out
    }

    /// Adds the mapped references to each finding, after any the policy
    /// cited itself, without duplicates.
    pub fn annotate(&self, findings: &mut [Finding]) {
        for f in findings {
            for r in self.lookup(&f.code) {
                if !f.controls.contains(r) {
                    f.controls.push(r.clone());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_codes_win_over_prefixes_and_longer_prefixes_win() {
        let c = Controls::parse(
            br#"{"map": {"x.": ["A"], "x.y.": ["B"], "x.missing": ["C"], "x.y": ["D"]}}"#,
        )
        .unwrap();
        assert_eq!(c.lookup("x.missing"), ["C"]);
        assert_eq!(c.lookup("x.y.z"), ["B"]);
        assert_eq!(c.lookup("x.stage_order"), ["A"]);
        assert!(c.lookup("risk.prohibited").is_empty());
    }

    #[test]
    fn an_unknown_key_is_an_error_naming_it() {
        let err = Controls::parse(br#"{"mapping": {}}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("mapping"), "{err}");
    }
}
