//! `stagegate test DIR`: the policy's rule table, as executable cases.
//!
//! Each `tests/*.json` holds one case or an array of cases:
//!
//! ```json
//! { "name": "…", "decision": "gate", "input": { … },
//!   "expect": { "outcome": "deny", "codes": ["authorisation.missing"],
//!               "absent_codes": ["plan.missing"] } }
//! ```
//!
//! `codes` must all be present, `absent_codes` must all be absent; other
//! findings may appear. An optional `"params": { … }` overrides top-level
//! keys of the bundle's `params.json` for that case, to test thresholds the
//! shipped parameters do not exercise. `expect.error` instead expects the request to be
//! refused with an error whose text contains the given string (usually a
//! JSON path).
//!
//! `--coverage` then reports what the cases left untried (see
//! [`super::coverage`]); `--coverage-min N` fails below N % of the finding
//! codes.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use clap::Args;
use serde::Deserialize;

use super::coverage::Coverage;
use super::output::{Item, Level, Output, Results};
use super::{CliError, CliResult, Exit, LimitArgs};
use crate::bundle::source::PolicySource;
use crate::bundle::{ArchiveLimits, Bundle};
use crate::decision::{DecisionKind, Envelope};
use crate::policy::{ActivePolicy, Runtime};

#[derive(Debug, Args)]
pub(super) struct TestArgs {
    /// Policy directory (bundle.toml, tests/*.json)
    dir: PathBuf,
    /// Test this bundle file instead of building the directory's component
    #[arg(long, value_name = "FILE")]
    bundle: Option<PathBuf>,
    /// Only run cases whose name contains this text
    #[arg(long, value_name = "TEXT")]
    filter: Option<String>,
    /// After the cases, report the finding codes no case produced, the
    /// outcomes no case reached and the params.json keys no case overrode
    #[arg(long)]
    coverage: bool,
    /// Fail (exit 1) when fewer than N % of the finding codes are covered
    /// (implies --coverage)
    #[arg(long, value_name = "N", value_parser = percent)]
    coverage_min: Option<f64>,
    /// How to report: text, json, junit, github or sarif (on standard output)
    #[arg(long, value_enum, default_value_t = Output::Text)]
    output: Output,
    #[command(flatten)]
    limits: LimitArgs,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    decision: DecisionKind,
    #[serde(default)]
    params: Option<serde_json::Map<String, serde_json::Value>>,
    input: serde_json::Value,
    expect: Expect,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    #[serde(default)]
    outcome: Option<String>,
    #[serde(default)]
    codes: Vec<String>,
    #[serde(default)]
    absent_codes: Vec<String>,
    #[serde(default)]
    error: Option<String>,
}

pub(super) fn run(args: TestArgs) -> CliResult {
    let source = PolicySource::open(&args.dir)?;
    let bundle = match &args.bundle {
        Some(file) => Bundle::read(file, &ArchiveLimits::default())?,
        None => source.bundle()?,
    };
    let runtime =
        Runtime::new(args.limits.limits()).map_err(|e| CliError::failure(e.to_string()))?;
    let component = runtime
        .compile(bundle.wasm())
        .map_err(|e| CliError::failure(format!("compiling {}: {e}", args.dir.display())))?;
    let base: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&bundle.params()?).unwrap_or_default();
    let controls = bundle.controls()?;
    let mut coverage = Coverage::default();
    let mut policies = Policies {
        runtime: &runtime,
        bundle: &bundle,
        component: &component,
        base: base.clone(),
        isolation: args.limits.isolation,
        loaded: BTreeMap::new(),
    };

    let mut cases = Vec::new();
    for (file, bytes) in source.test_files()? {
        cases.extend(
            parse_cases(&file, &bytes)?
                .into_iter()
                .map(|c| (file.clone(), c)),
        );
    }
    if cases.is_empty() {
        return Err(CliError::bad_input(format!(
            "{}: no test cases in tests/*.json",
            args.dir.display()
        )));
    }

    let (mut passed, mut failed) = (0usize, 0usize);
    let mut items = Vec::new();
    for (file, case) in &cases {
        if args
            .filter
            .as_deref()
            .is_some_and(|f| !case.name.contains(f))
        {
            continue;
        }
        coverage.case(
            case.expect.codes.iter().chain(&case.expect.absent_codes),
            case.params.as_ref(),
        );
        let result = policies
            .for_case(case)
            .and_then(|policy| check(policy, case, &mut coverage).map_err(|p| p.join("\n     ")));
        let text = args.output == Output::Text;
        let at = args.dir.join("tests").join(file).display().to_string();
        match result {
            Ok(()) => {
                passed += 1;
                if text {
                    println!("ok   {file}: {}", case.name);
                }
                items.push(Item {
                    id: case.name.clone(),
                    level: Level::Pass,
                    message: "passed".into(),
                    file: Some(at),
                    path: None,
                    controls: Vec::new(),
                });
            }
            Err(problems) => {
                failed += 1;
                if text {
                    println!("FAIL {file}: {}", case.name);
                    println!("     {problems}");
                }
                items.push(Item {
                    id: case.name.clone(),
                    level: Level::Error,
                    message: problems,
                    file: Some(at),
                    path: None,
                    controls: Vec::new(),
                });
            }
        }
    }
    let mut below = None;
    let mut coverage_percent = None;
    if args.coverage || args.coverage_min.is_some() {
        let report = coverage.report(&controls, &base);
        coverage_percent = Some(report.percent());
        if args.output == Output::Text {
            println!("{report}");
        }
        if let Some(min) = args.coverage_min
            && report.percent() < min
        {
            below = Some(format!(
                "coverage {:.1}% of finding codes is below --coverage-min {min}%",
                report.percent()
            ));
        }
    }
    let exit = if failed == 0 && below.is_none() {
        Exit::Success
    } else {
        Exit::Failure
    };
    if args.output == Output::Text {
        println!("{passed} passed, {failed} failed");
        if let Some(message) = &below {
            println!("{message}");
        }
        return Ok(exit);
    }
    if let Some(message) = &below {
        items.push(Item {
            id: "coverage".into(),
            level: Level::Error,
            message: message.clone(),
            file: None,
            path: None,
            controls: Vec::new(),
        });
    }
    let (p, f) = (passed.to_string(), failed.to_string());
    Results {
        command: "test",
        subject: args.dir.display().to_string(),
        passed: exit == Exit::Success,
        items,
        details: serde_json::json!({
            "cases_passed": passed,
            "cases_failed": failed,
            "coverage_percent": coverage_percent,
        }),
    }
    .print(args.output, exit as u8, &[("passed", &p), ("failed", &f)])
    .map_err(|e| CliError::failure(e.to_string()))?;
    Ok(exit)
}

/// `--coverage-min`: a percentage from 0 to 100.
fn percent(text: &str) -> Result<f64, String> {
    match text.trim_end_matches('%').parse::<f64>() {
        Ok(n) if (0.0..=100.0).contains(&n) => Ok(n),
        _ => Err(format!("'{text}' is not a percentage from 0 to 100")),
    }
}

/// The policy configured with each distinct parameter set the cases use,
/// sharing one compiled component.
struct Policies<'a> {
    runtime: &'a Runtime,
    bundle: &'a Bundle,
    component: &'a wasmtime::component::Component,
    base: serde_json::Map<String, serde_json::Value>,
    isolation: crate::policy::Isolation,
    loaded: BTreeMap<String, ActivePolicy>,
}

impl Policies<'_> {
    fn for_case(&mut self, case: &Case) -> Result<&ActivePolicy, String> {
        let mut params = self.base.clone();
        if let Some(over) = &case.params {
            params.extend(over.clone());
        }
        let text = serde_json::Value::Object(params).to_string();
        match self.loaded.entry(text) {
            std::collections::btree_map::Entry::Occupied(e) => Ok(e.into_mut()),
            std::collections::btree_map::Entry::Vacant(e) => {
                let p = ActivePolicy::with_component(
                    self.runtime,
                    self.bundle,
                    self.component,
                    e.key().clone(),
                    self.isolation,
                )
                .map_err(|err| format!("loading the policy with this case's params: {err}"))?;
                Ok(e.insert(p))
            }
        }
    }
}

/// A file holds one case or an array of them; errors name the file, the
/// case index and the field.
fn parse_cases(file: &str, bytes: &[u8]) -> Result<Vec<Case>, CliError> {
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| CliError::bad_input(format!("{file}: not valid JSON: {e}")))?;
    let one = |v: serde_json::Value, at: String| -> Result<Case, CliError> {
        serde_path_to_error::deserialize(v).map_err(|e| {
            let field = e.path().to_string();
            CliError::bad_input(format!("{file}: case {at}field {field}: {}", e.inner()))
        })
    };
    match value {
        serde_json::Value::Array(items) => items
            .into_iter()
            .enumerate()
            .map(|(i, v)| one(v, format!("{i}, ")))
            .collect(),
        v => Ok(vec![one(v, String::new())?]),
    }
}

/// Runs one case, noting its decision in `coverage`; the problems, if it
/// fails.
fn check(policy: &ActivePolicy, case: &Case, coverage: &mut Coverage) -> Result<(), Vec<String>> {
    let body = serde_json::to_vec(&case.input).unwrap_or_default();
    let result = policy.decide_json(case.decision, &body);
    if let Ok(d) = &result {
        coverage.decided(&d.envelope);
    }
    let decided = match (result, &case.expect.error) {
        (Err(e), Some(want)) if e.to_string().contains(want.as_str()) => return Ok(()),
        (Err(e), Some(want)) => {
            return Err(vec![format!(
                "expected an error containing '{want}', got: {e}"
            )]);
        }
        (Err(e), None) => return Err(vec![format!("request refused: {e}")]),
        (Ok(d), Some(want)) => {
            return Err(vec![format!(
                "expected an error containing '{want}', got outcome {}",
                d.envelope.outcome.as_str()
            )]);
        }
        (Ok(d), None) => d,
    };
    compare(&decided.envelope, &case.expect)
}

fn compare(envelope: &Envelope, expect: &Expect) -> Result<(), Vec<String>> {
    let actual: BTreeSet<&str> = envelope.codes().collect();
    let mut problems = Vec::new();
    if let Some(want) = &expect.outcome
        && want != envelope.outcome.as_str()
    {
        problems.push(format!(
            "expected outcome {want}, got {}",
            envelope.outcome.as_str()
        ));
    }
    let missing: Vec<&str> = expect
        .codes
        .iter()
        .map(String::as_str)
        .filter(|c| !actual.contains(c))
        .collect();
    if !missing.is_empty() {
        problems.push(format!("expected codes missing: {}", missing.join(", ")));
    }
    let unexpected: Vec<&str> = expect
        .absent_codes
        .iter()
        .map(String::as_str)
        .filter(|c| actual.contains(c))
        .collect();
    if !unexpected.is_empty() {
        problems.push(format!(
            "codes that must be absent are present: {}",
            unexpected.join(", ")
        ));
    }
    if problems.is_empty() {
        return Ok(());
    }
    let codes: Vec<&str> = envelope.codes().collect();
    problems.push(format!(
        "actual: outcome {}, codes [{}]",
        envelope.outcome.as_str(),
        codes.join(", ")
    ));
    for f in &envelope.findings {
        if expect.codes.contains(&f.code)
            || expect.absent_codes.contains(&f.code)
            || f.code == "policy.error"
        {
            problems.push(format!("  {} at '{}': {}", f.code, f.path, f.message));
        }
    }
    Err(problems)
}
