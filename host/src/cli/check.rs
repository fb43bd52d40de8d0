//! `stagegate check DECISION (--server URL [--bundle NAME] | --local BUNDLE) --input FILE|-`:
//! the gate step of a CI pipeline (docs/integrations/ci.md).
//!
//! Unlike `eval`, whose exit code says only whether a decision was made,
//! `check` turns the outcome into the pipeline's pass or fail: 0 for a
//! positive outcome (allow, promote, healthy), 1 for any other, 2 for a bad
//! request or bad arguments, 3 when the service or the policy failed. Under
//! GitHub Actions it also annotates the run, sets step outputs and writes a
//! findings table to the job summary; `--junit` writes a report GitLab shows
//! on the merge request.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use serde::Deserialize;

use super::eval::{evaluate, read_input};
use super::output::{Item, Level, Output, OutputFileError, Results};
use super::{CliError, CliResult, Exit, LimitArgs, TrustArgs};
use crate::decision::DecisionKind;

#[derive(Debug, Args)]
pub(super) struct CheckArgs {
    /// gate, progression or monitoring
    decision: DecisionKind,
    /// Ask this stagegate service
    #[arg(long, value_name = "URL", env = "STAGEGATE_URL")]
    server: Option<String>,
    /// With --server: the bundle to ask (default: the service's default bundle)
    #[arg(long, value_name = "NAME")]
    bundle: Option<String>,
    /// Evaluate in this process with this bundle file (or policy directory)
    #[arg(long, value_name = "BUNDLE")]
    local: Option<PathBuf>,
    /// Request JSON (docs/decisions.md#requests); `-` reads standard input
    #[arg(long, value_name = "FILE|-")]
    input: PathBuf,
    #[command(flatten)]
    credentials: super::credentials::CredentialArgs,
    /// How to report: text, json, junit, github or sarif (on standard output)
    #[arg(long, value_enum, default_value_t = Output::Text)]
    output: Output,
    /// Also write a JUnit XML report here (one test case per finding code)
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    /// With --server: give up on the service after this many seconds
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    timeout_secs: u64,
    #[command(flatten)]
    trust: TrustArgs,
    #[command(flatten)]
    limits: LimitArgs,
}

/// The parts of a decision envelope a pipeline reports
/// (docs/decisions.md#the-response-envelope).
#[derive(Debug, Deserialize)]
pub(super) struct Report {
    pub decision_id: String,
    pub decision: String,
    pub outcome: String,
    #[serde(default)]
    pub findings: Vec<ReportFinding>,
    #[serde(default)]
    pub policy: Option<ReportPolicy>,
}

#[derive(Debug, Deserialize)]
pub(super) struct ReportFinding {
    pub code: String,
    pub severity: String,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub path: String,
    #[serde(default)]
    pub controls: Vec<String>,
}

#[derive(Debug, Deserialize)]
pub(super) struct ReportPolicy {
    pub bundle: String,
    pub version: String,
}

impl Report {
    /// The outcomes that let a pipeline go on.
    pub(super) fn passed(&self) -> bool {
        matches!(self.outcome.as_str(), "allow" | "promote" | "healthy")
    }

    /// The decision is the fail-closed answer to a policy that failed.
    pub(super) fn policy_failed(&self) -> bool {
        self.findings.iter().any(|f| f.code == "policy.error")
    }
}

pub(super) fn run(args: CheckArgs) -> CliResult {
    // STAGEGATE_URL set in the environment does not stop an explicit
    // --local; both given on the command line is a usage error.
    let server_from_env = args.server.is_some()
        && std::env::var("STAGEGATE_URL").ok().as_deref() == args.server.as_deref();
    let server = match (&args.server, &args.local) {
        (Some(_), Some(_)) if !server_from_env => {
            return Err(CliError::bad_input(
                "give --server URL or --local BUNDLE, not both",
            ));
        }
        (Some(s), None) => Some(s.as_str()),
        _ => None,
    };
    if args.bundle.is_some() && server.is_none() {
        return Err(CliError::bad_input(
            "--bundle goes with --server (or STAGEGATE_URL)",
        ));
    }
    let report = match (server, &args.local) {
        (Some(server), _) => ask_server(&args, server)?,
        (None, Some(bundle)) => {
            let decided = evaluate(
                args.decision,
                &args.input,
                std::slice::from_ref(bundle),
                "set",
                &args.trust,
                &args.limits,
            )
            .map_err(|e| match e.exit {
                // The bundle could not be read, verified or loaded: the
                // policy side failed, not the request.
                Exit::Failure => CliError {
                    exit: Exit::PolicyError,
                    message: e.message,
                },
                _ => e,
            })?;
            let value = serde_json::to_value(&decided.envelope)
                .map_err(|e| CliError::failure(format!("encoding the decision: {e}")))?;
            serde_json::from_value(value).map_err(|e| CliError {
                exit: Exit::PolicyError,
                message: format!("reading the decision: {e}"),
            })?
        }
        (None, None) => {
            return Err(CliError::bad_input(
                "give --server URL (or set STAGEGATE_URL) or --local BUNDLE",
            ));
        }
    };
    let exit = if report.policy_failed() {
        Exit::PolicyError
    } else if report.passed() {
        Exit::Success
    } else {
        Exit::Failure
    };
    let written = |e: OutputFileError| CliError {
        exit: Exit::PolicyError,
        message: e.to_string(),
    };
    match args.output {
        Output::Text => {
            print!("{}", summary(&report));
            // Under GitHub Actions the text mode annotates too, as it
            // always has.
            if github_actions() {
                github::annotate(&report);
                github::outputs(&report).map_err(written)?;
            }
        }
        Output::Github => {
            print!("{}", summary(&report));
            github::annotate(&report);
            github::outputs(&report).map_err(written)?;
        }
        Output::Junit => print!("{}", junit::report(&report)),
        format => results(&report, &args.input)
            .print(format, exit as u8, &[])
            .map_err(written)?,
    }
    if let Some(path) = &args.junit {
        std::fs::write(path, junit::report(&report)).map_err(|e| CliError {
            exit: Exit::PolicyError,
            message: format!("writing the JUnit report {}: {e}", path.display()),
        })?;
    }
    if exit == Exit::PolicyError {
        eprintln!("error: the policy failed; the decision fails closed");
    }
    Ok(exit)
}

/// The decision as the common result model: an `outcome` item (an error
/// unless the outcome lets the pipeline go on), then one item per finding.
fn results(r: &Report, input: &Path) -> Results {
    let file = (input != Path::new("-")).then(|| input.display().to_string());
    let mut items = vec![Item {
        id: "outcome".into(),
        level: if r.passed() {
            Level::Pass
        } else {
            Level::Error
        },
        message: format!("{} {}: {}", r.decision, r.decision_id, r.outcome),
        file: file.clone(),
        path: None,
        controls: Vec::new(),
    }];
    items.extend(r.findings.iter().map(|f| Item {
        id: f.code.clone(),
        level: Level::of_severity(&f.severity),
        message: f.message.clone(),
        file: file.clone(),
        path: Some(f.path.clone()).filter(|p| !p.is_empty()),
        controls: f.controls.clone(),
    }));
    Results {
        command: "check",
        subject: format!("{} decision {}", r.decision, r.decision_id),
        passed: r.passed(),
        items,
        details: serde_json::json!({
            "decision": r.decision,
            "decision_id": r.decision_id,
            "outcome": r.outcome,
            "policy": r.policy.as_ref().map(|p| serde_json::json!({"bundle": p.bundle, "version": p.version})),
        }),
    }
}

fn github_actions() -> bool {
    std::env::var("GITHUB_ACTIONS").is_ok_and(|v| v == "true")
}

/// POSTs the request to `{server}/v1/decisions/{decision}[?bundle=NAME]`.
/// The service judges the request: its 400, 404, 413, 415 and 422 are bad
/// input (exit 2); any other refusal, or no answer, is the service failing
/// (exit 3).
fn ask_server(args: &CheckArgs, server: &str) -> Result<Report, CliError> {
    let service = |message: String| CliError {
        exit: Exit::PolicyError,
        message,
    };
    let body = read_input(&args.input)?;
    let url = format!(
        "{}/v1/decisions/{}",
        server.trim_end_matches('/'),
        args.decision.as_str()
    );
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(args.timeout_secs))
        .build();
    let mut request = agent.post(&url).set("Content-Type", "application/json");
    if let Some(bundle) = &args.bundle {
        request = request.query("bundle", bundle);
    }
    if let Some(token) = args.credentials.token()? {
        request = request.set("Authorization", &format!("Bearer {token}"));
    }
    match request.send_bytes(&body) {
        Ok(response) => {
            let text = response
                .into_string()
                .map_err(|e| service(format!("reading the answer of {url}: {e}")))?;
            serde_json::from_str(&text)
                .map_err(|e| service(format!("{url} answered something not a decision: {e}")))
        }
        Err(ureq::Error::Status(status, response)) => {
            let text = response.into_string().unwrap_or_default();
            let why = api_error(&text);
            let message = format!("{url} answered {status}: {why}");
            match status {
                400 | 404 | 413 | 415 | 422 => Err(CliError::bad_input(format!(
                    "{}: {message}",
                    args.input.display()
                ))),
                _ => Err(service(message)),
            }
        }
        Err(ureq::Error::Transport(e)) => Err(service(format!("{url}: {e}"))),
    }
}

/// `code: message (at path)` from the service's error body, or the body.
fn api_error(text: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(text).unwrap_or_default();
    let e = &v["error"];
    match (e["code"].as_str(), e["message"].as_str()) {
        (Some(code), Some(message)) => match e["path"].as_str() {
            Some(path) if !path.is_empty() => format!("{code}: {message} (at {path})"),
            _ => format!("{code}: {message}"),
        },
        _ => text.chars().take(500).collect(),
    }
}

/// The human summary: the outcome, the decision id, then each finding.
pub(super) fn summary(r: &Report) -> String {
    let mut out = String::new();
    let policy = r
        .policy
        .as_ref()
        .map(|p| format!(", bundle {} {}", p.bundle, p.version))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "stagegate {}: {} (decision {}{policy})",
        r.decision, r.outcome, r.decision_id
    );
    for f in &r.findings {
        let path = if f.path.is_empty() { "-" } else { &f.path };
        let _ = writeln!(out, "  {:<8} {}  at {path}", f.severity, f.code);
        if !f.message.is_empty() {
            let _ = writeln!(out, "           {}", f.message);
        }
        if !f.controls.is_empty() {
            let _ = writeln!(out, "           controls: {}", f.controls.join("; "));
        }
    }
    let count = |s: &str| r.findings.iter().filter(|f| f.severity == s).count();
    let _ = writeln!(
        out,
        "{} blocking, {} warning, {} info: {}",
        count("blocking"),
        count("warning"),
        count("info"),
        if r.passed() { "passed" } else { "failed" }
    );
    out
}

/// GitHub Actions: workflow commands and the files the runner reads.
mod github {
    use super::*;

    /// One annotation per finding: blocking → `::error`, warning →
    /// `::warning`, info → `::notice`.
    pub(super) fn annotate(r: &Report) {
        let mut out = std::io::stdout().lock();
        for f in &r.findings {
            let level = match f.severity.as_str() {
                "blocking" => "error",
                "warning" => "warning",
                _ => "notice",
            };
            let _ = writeln!(out, "{}", annotation(level, f));
        }
    }

    pub(super) fn annotation(level: &str, f: &ReportFinding) -> String {
        let mut text = f.message.clone();
        if !f.path.is_empty() {
            let _ = write!(text, " (at {})", f.path);
        }
        if !f.controls.is_empty() {
            let _ = write!(text, " [{}]", f.controls.join("; "));
        }
        format!(
            "::{level} title={}::{}",
            escape_property(&format!("stagegate {}", f.code)),
            escape_data(&text)
        )
    }

    /// Appends `outcome` and `decision_id` to `$GITHUB_OUTPUT` and the
    /// findings table to `$GITHUB_STEP_SUMMARY` (either may be unset).
    pub(super) fn outputs(r: &Report) -> Result<(), OutputFileError> {
        if let Some(path) = std::env::var_os("GITHUB_OUTPUT") {
            append(
                Path::new(&path),
                &format!("outcome={}\ndecision_id={}\n", r.outcome, r.decision_id),
            )?;
        }
        if let Some(path) = std::env::var_os("GITHUB_STEP_SUMMARY") {
            append(Path::new(&path), &step_summary(r))?;
        }
        Ok(())
    }

    fn append(path: &Path, text: &str) -> Result<(), OutputFileError> {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .and_then(|mut f| f.write_all(text.as_bytes()))
            .map_err(|source| OutputFileError {
                path: path.display().to_string(),
                var: None,
                source,
            })
    }

    /// A markdown section: the outcome, then a table of findings.
    pub(super) fn step_summary(r: &Report) -> String {
        let mut out = format!(
            "### stagegate {}: `{}`\n\nDecision `{}`\n\n",
            r.decision, r.outcome, r.decision_id
        );
        if r.findings.is_empty() {
            out.push_str("No findings.\n\n");
            return out;
        }
        out.push_str("| severity | code | path | controls | message |\n|---|---|---|---|---|\n");
        for f in &r.findings {
            let _ = writeln!(
                out,
                "| {} | `{}` | `{}` | {} | {} |",
                cell(&f.severity),
                cell(&f.code),
                cell(&f.path),
                cell(&f.controls.join("; ")),
                cell(&f.message)
            );
        }
        out.push('\n');
        out
    }

    /// A table cell: a `|` would end it and a line break the row.
    fn cell(text: &str) -> String {
        text.replace('\\', "\\\\")
            .replace('|', "\\|")
            .replace(['\r', '\n'], " ")
    }

    /// Workflow command data: `%`, CR and LF are percent-encoded.
    pub(super) fn escape_data(text: &str) -> String {
        text.replace('%', "%25")
            .replace('\r', "%0D")
            .replace('\n', "%0A")
    }

    /// Workflow command properties: also `:` and `,`.
    pub(super) fn escape_property(text: &str) -> String {
        escape_data(text).replace(':', "%3A").replace(',', "%2C")
    }
}

/// The JUnit XML report: one test case per finding code, failed when any
/// finding with that code is blocking, plus an `outcome` case that fails
/// unless the outcome lets the pipeline go on (so a clean allow is one
/// passing case, not an empty report).
mod junit {
    use super::*;
    use crate::cli::output::xml as escape;

    pub(super) fn report(r: &Report) -> String {
        let mut codes: Vec<&str> = Vec::new();
        for f in &r.findings {
            if !codes.contains(&f.code.as_str()) {
                codes.push(&f.code);
            }
        }
        let suite = format!("stagegate.{}", r.decision);
        let mut cases = String::new();
        let mut failures = 0;
        // The outcome.
        let _ = write!(
            cases,
            "    <testcase classname=\"{}\" name=\"outcome\">",
            escape(&suite)
        );
        if !r.passed() {
            failures += 1;
            let _ = write!(
                cases,
                "<failure type=\"{}\" message=\"{}\"/>",
                escape(&r.outcome),
                escape(&format!(
                    "outcome {} (decision {})",
                    r.outcome, r.decision_id
                ))
            );
        }
        cases.push_str("</testcase>\n");
        for code in &codes {
            let found: Vec<&ReportFinding> =
                r.findings.iter().filter(|f| f.code == *code).collect();
            let text: String = found
                .iter()
                .map(|f| {
                    let mut line = format!("{}: {}", f.severity, f.message);
                    if !f.path.is_empty() {
                        let _ = write!(line, " (at {})", f.path);
                    }
                    if !f.controls.is_empty() {
                        let _ = write!(line, " [{}]", f.controls.join("; "));
                    }
                    line
                })
                .collect::<Vec<_>>()
                .join("\n");
            let _ = write!(
                cases,
                "    <testcase classname=\"{}\" name=\"{}\">",
                escape(&suite),
                escape(code)
            );
            if found.iter().any(|f| f.severity == "blocking") {
                failures += 1;
                let _ = write!(
                    cases,
                    "<failure type=\"blocking\" message=\"{}\">{}</failure>",
                    escape(&found[0].message),
                    escape(&text)
                );
            } else {
                let _ = write!(cases, "<system-out>{}</system-out>", escape(&text));
            }
            cases.push_str("</testcase>\n");
        }
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
             <testsuites name=\"stagegate\" tests=\"{n}\" failures=\"{failures}\">\n  \
             <testsuite name=\"{suite}\" tests=\"{n}\" failures=\"{failures}\" errors=\"0\">\n  \
             <properties><property name=\"decision_id\" value=\"{id}\"/>\
             <property name=\"outcome\" value=\"{outcome}\"/></properties>\n\
             {cases}  </testsuite>\n</testsuites>\n",
            n = codes.len() + 1,
            suite = escape(&suite),
            id = escape(&r.decision_id),
            outcome = escape(&r.outcome),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(code: &str, severity: &str, message: &str) -> ReportFinding {
        ReportFinding {
            code: code.into(),
            severity: severity.into(),
            message: message.into(),
            path: "/a|b".into(),
            controls: vec!["ISO/IEC 42001:2023 A.6.2.7".into()],
        }
    }

    fn report(outcome: &str, findings: Vec<ReportFinding>) -> Report {
        Report {
            decision_id: "01JDECISION".into(),
            decision: "gate".into(),
            outcome: outcome.into(),
            findings,
            policy: None,
        }
    }

    #[test]
    fn junit_escapes_markup_and_drops_characters_xml_cannot_carry() {
        let r = report(
            "deny",
            vec![finding("x.y", "blocking", "a <b> & \"c\" 'd'\u{1}\nnext")],
        );
        let xml = junit::report(&r);
        assert!(
            xml.contains("a &lt;b&gt; &amp; &quot;c&quot; &apos;d&apos;\u{FFFD}&#10;next"),
            "{xml}"
        );
        assert!(!xml.contains('\u{1}'));
        assert!(xml.contains("tests=\"2\" failures=\"2\""), "{xml}");
    }

    #[test]
    fn junit_has_one_case_per_finding_code_and_warnings_do_not_fail() {
        let r = report(
            "allow",
            vec![
                finding("a.warn", "warning", "one"),
                finding("a.warn", "warning", "two"),
                finding("b.info", "info", "three"),
            ],
        );
        let xml = junit::report(&r);
        assert_eq!(xml.matches("<testcase ").count(), 3, "{xml}");
        assert_eq!(xml.matches("name=\"a.warn\"").count(), 1);
        assert!(!xml.contains("<failure"), "{xml}");
        assert!(xml.contains("failures=\"0\""));
    }

    #[test]
    fn annotations_escape_workflow_command_syntax() {
        let f = finding("a.b", "blocking", "50% of\nthings: x, y");
        let line = github::annotation("error", &f);
        assert_eq!(
            line,
            "::error title=stagegate a.b::50%25 of%0Athings: x, y (at /a|b) [ISO/IEC 42001:2023 A.6.2.7]"
        );
        let title = github::escape_property("a:b,c");
        assert_eq!(title, "a%3Ab%2Cc");
    }

    #[test]
    fn step_summary_cells_cannot_break_the_table() {
        let r = report("deny", vec![finding("a.b", "blocking", "x | y\nz")]);
        let md = github::step_summary(&r);
        assert!(md.contains("x \\| y z"), "{md}");
        assert!(md.contains("`/a\\|b`"), "{md}");
    }
}
