//! `--output text|json|junit|github|sarif` for the commands a pipeline
//! runs (`check`, `test`, `verify`, `receipt verify`): one result model,
//! five renderings (docs/integrations/ci.md#machine-readable-output).
//!
//! Every command turns what it found into [`Results`]: whether it passed,
//! one [`Item`] per thing checked (a finding, a test case, a signature),
//! and the command's own details for the JSON. JUnit makes each item a
//! test case, SARIF 2.1.0 a result, `github` a workflow annotation.

use std::fmt::Write as _;

use clap::ValueEnum;
use serde::Serialize;
use serde_json::{Value, json};

/// How a command reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// For people (the default)
    #[default]
    Text,
    /// One JSON object (docs/integrations/ci.md#json-output)
    Json,
    /// JUnit XML, as GitLab and most CI servers show test reports
    Junit,
    /// GitHub Actions workflow commands, step outputs and job summary
    Github,
    /// SARIF 2.1.0, for code scanning dashboards
    Sarif,
}

/// How serious one item is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Fails the command.
    Error,
    Warning,
    Note,
    /// Checked and fine.
    Pass,
}

impl Level {
    /// A decision finding's severity.
    pub fn of_severity(severity: &str) -> Level {
        match severity {
            "blocking" => Level::Error,
            "warning" => Level::Warning,
            _ => Level::Note,
        }
    }

    fn sarif(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warning => "warning",
            Level::Note => "note",
            Level::Pass => "none",
        }
    }
}

/// One thing a command checked.
#[derive(Debug, Clone, Serialize)]
pub struct Item {
    /// A finding code, a test case name, a signer.
    pub id: String,
    pub level: Level,
    pub message: String,
    /// The file it is about (the request, the test file, the bundle).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// Where in that file (a JSON pointer).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub controls: Vec<String>,
}

/// What a command found.
#[derive(Debug, Clone)]
pub struct Results {
    /// `check`, `test`, `verify`, `receipt verify`.
    pub command: &'static str,
    /// What was checked, in a few words (the JUnit suite's name).
    pub subject: String,
    pub passed: bool,
    pub items: Vec<Item>,
    /// The command's own fields, merged into the JSON object.
    pub details: Value,
}

impl Results {
    /// The JSON shape (docs/integrations/ci.md#json-output):
    /// `{"command", "subject", "passed", "exit_code", ...details, "items"}`.
    pub fn json(&self, exit_code: u8) -> Value {
        let mut v = json!({
            "command": self.command,
            "subject": self.subject,
            "passed": self.passed,
            "exit_code": exit_code,
        });
        if let (Some(out), Some(details)) = (v.as_object_mut(), self.details.as_object()) {
            for (k, d) in details {
                out.entry(k.clone()).or_insert(d.clone());
            }
        }
        v["items"] = serde_json::to_value(&self.items).unwrap_or_default();
        v
    }

    /// JUnit XML: one test case per item id (items sharing an id, such as
    /// two findings with one code, are one case), failed when any of them
    /// is an error.
    pub fn junit(&self) -> String {
        let mut ids: Vec<&str> = Vec::new();
        for i in &self.items {
            if !ids.contains(&i.id.as_str()) {
                ids.push(&i.id);
            }
        }
        let suite = format!("stagegate.{}", self.command.replace(' ', "."));
        let mut failures = 0;
        let mut cases = String::new();
        for id in &ids {
            let same: Vec<&Item> = self.items.iter().filter(|i| i.id == *id).collect();
            let text = same.iter().map(|i| line(i)).collect::<Vec<_>>().join("\n");
            let _ = write!(
                cases,
                "    <testcase classname=\"{}\" name=\"{}\">",
                xml(&suite),
                xml(id)
            );
            if let Some(first) = same.iter().find(|i| i.level == Level::Error) {
                failures += 1;
                let _ = write!(
                    cases,
                    "<failure type=\"error\" message=\"{}\">{}</failure>",
                    xml(&first.message),
                    xml(&text)
                );
            } else if !text.is_empty() {
                let _ = write!(cases, "<system-out>{}</system-out>", xml(&text));
            }
            cases.push_str("</testcase>\n");
        }
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
             <testsuites name=\"stagegate\" tests=\"{n}\" failures=\"{failures}\">\n  \
             <testsuite name=\"{suite}\" tests=\"{n}\" failures=\"{failures}\" errors=\"0\">\n\
             {cases}  </testsuite>\n</testsuites>\n",
            n = ids.len(),
            suite = xml(&format!("{suite}: {}", self.subject)),
        )
    }

    /// GitHub Actions workflow commands: one annotation per item that is
    /// not a pass (`::error`, `::warning`, `::notice`).
    pub fn github(&self) -> String {
        let mut out = String::new();
        for i in &self.items {
            let level = match i.level {
                Level::Error => "error",
                Level::Warning => "warning",
                Level::Note => "notice",
                Level::Pass => continue,
            };
            let mut props = format!("title={}", property(&format!("stagegate {}", i.id)));
            if let Some(f) = &i.file {
                let _ = write!(props, ",file={}", property(f));
            }
            let _ = writeln!(out, "::{level} {props}::{}", data(&line(i)));
        }
        let _ = writeln!(
            out,
            "stagegate {}: {} ({})",
            self.command,
            if self.passed { "passed" } else { "failed" },
            self.subject
        );
        out
    }

    /// A markdown section for `$GITHUB_STEP_SUMMARY`.
    pub fn step_summary(&self) -> String {
        let mut out = format!(
            "### stagegate {}: {}\n\n{}\n\n",
            self.command,
            if self.passed { "passed" } else { "**failed**" },
            cell(&self.subject)
        );
        let shown: Vec<&Item> = self
            .items
            .iter()
            .filter(|i| i.level != Level::Pass)
            .collect();
        if shown.is_empty() {
            out.push_str("Nothing to report.\n\n");
            return out;
        }
        out.push_str("| level | id | where | message |\n|---|---|---|---|\n");
        for i in shown {
            let at = [i.file.as_deref(), i.path.as_deref()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" ");
            let _ = writeln!(
                out,
                "| {} | `{}` | `{}` | {} |",
                i.level.sarif(),
                cell(&i.id),
                cell(&at),
                cell(&i.message)
            );
        }
        out.push('\n');
        out
    }

    /// A SARIF 2.1.0 log (OASIS, https://docs.oasis-open.org/sarif/sarif/v2.1.0/):
    /// one run, a rule per item id, a result per item that is not a pass.
    pub fn sarif(&self) -> Value {
        let mut rules: Vec<Value> = Vec::new();
        let mut index = std::collections::BTreeMap::new();
        for i in &self.items {
            if i.level == Level::Pass || index.contains_key(&i.id) {
                continue;
            }
            index.insert(i.id.clone(), rules.len());
            let mut rule = json!({
                "id": i.id,
                "shortDescription": {"text": format!("stagegate {} {}", self.command, i.id)},
            });
            if !i.controls.is_empty() {
                rule["properties"] = json!({"tags": i.controls});
            }
            rules.push(rule);
        }
        let results: Vec<Value> = self
            .items
            .iter()
            .filter(|i| i.level != Level::Pass)
            .map(|i| {
                let mut r = json!({
                    "ruleId": i.id,
                    "ruleIndex": index.get(&i.id).copied().unwrap_or(0),
                    "level": i.level.sarif(),
                    "message": {"text": if i.message.is_empty() { i.id.clone() } else { i.message.clone() }},
                });
                let mut location = json!({});
                if let Some(f) = &i.file {
                    location["physicalLocation"] = json!({
                        "artifactLocation": {"uri": f},
                        "region": {"startLine": 1}
                    });
                }
                if let Some(p) = i.path.as_deref().filter(|p| !p.is_empty()) {
                    location["logicalLocations"] =
                        json!([{"fullyQualifiedName": p, "kind": "member"}]);
                }
                if location.as_object().is_some_and(|o| !o.is_empty()) {
                    r["locations"] = json!([location]);
                }
                r
            })
            .collect();
        json!({
            "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
            "version": "2.1.0",
            "runs": [{
                "tool": {"driver": {
                    "name": "stagegate",
                    "version": env!("CARGO_PKG_VERSION"),
                    "informationUri": "https://stagegate.dev",
                    "rules": rules,
                }},
                "results": results,
                "properties": {"command": self.command, "subject": self.subject, "passed": self.passed},
            }]
        })
    }

    /// Prints in `format` (`text` is the command's own and printed by it).
    /// `github` also appends the job summary and, when given, step outputs.
    pub fn print(
        &self,
        format: Output,
        exit_code: u8,
        outputs: &[(&str, &str)],
    ) -> Result<(), OutputFileError> {
        match format {
            Output::Text => {}
            Output::Json => println!("{}", pretty(&self.json(exit_code))),
            Output::Junit => print!("{}", self.junit()),
            Output::Sarif => println!("{}", pretty(&self.sarif())),
            Output::Github => {
                print!("{}", self.github());
                github_files(outputs, &self.step_summary())?;
            }
        }
        Ok(())
    }
}

/// A GitHub Actions file (`$GITHUB_OUTPUT`, `$GITHUB_STEP_SUMMARY`) that
/// could not be appended to; each command decides the exit code.
#[derive(Debug, thiserror::Error)]
#[error(
    "writing {path}{}: {source}",
    var.as_ref().map(|v| format!(" (${v})")).unwrap_or_default()
)]
pub struct OutputFileError {
    pub path: String,
    /// The variable that named the file, when the message says so.
    pub var: Option<String>,
    #[source]
    pub source: std::io::Error,
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

/// Appends `outputs` to `$GITHUB_OUTPUT` and `summary` to
/// `$GITHUB_STEP_SUMMARY` (either may be unset).
pub fn github_files(outputs: &[(&str, &str)], summary: &str) -> Result<(), OutputFileError> {
    use std::io::Write as _;
    let append = |var: &str, text: &str| -> Result<(), OutputFileError> {
        let Some(path) = std::env::var_os(var) else {
            return Ok(());
        };
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(text.as_bytes()))
            .map_err(|source| OutputFileError {
                path: path.to_string_lossy().into_owned(),
                var: Some(var.to_string()),
                source,
            })
    };
    if !outputs.is_empty() {
        let text: String = outputs
            .iter()
            .map(|(k, v)| format!("{k}={}\n", v.replace(['\r', '\n'], " ")))
            .collect();
        append("GITHUB_OUTPUT", &text)?;
    }
    append("GITHUB_STEP_SUMMARY", summary)
}

fn line(i: &Item) -> String {
    let mut text = i.message.clone();
    if let Some(p) = i.path.as_deref().filter(|p| !p.is_empty()) {
        let _ = write!(text, " (at {p})");
    }
    if !i.controls.is_empty() {
        let _ = write!(text, " [{}]", i.controls.join("; "));
    }
    text
}

/// Workflow command data: `%`, CR and LF are percent-encoded.
fn data(text: &str) -> String {
    text.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// Workflow command properties: also `:` and `,`.
fn property(text: &str) -> String {
    data(text).replace(':', "%3A").replace(',', "%2C")
}

/// A markdown table cell.
fn cell(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace(['\r', '\n'], " ")
}

/// XML content and attribute text (characters XML 1.0 cannot carry become
/// U+FFFD).
pub fn xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            '\t' => out.push_str("&#9;"),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn results() -> Results {
        Results {
            command: "test",
            subject: "policies/x".into(),
            passed: false,
            items: vec![
                Item {
                    id: "a case".into(),
                    level: Level::Pass,
                    message: String::new(),
                    file: Some("tests/a.json".into()),
                    path: None,
                    controls: vec![],
                },
                Item {
                    id: "b case".into(),
                    level: Level::Error,
                    message: "expected deny, got allow\nnext".into(),
                    file: Some("tests/b.json".into()),
                    path: Some("/x".into()),
                    controls: vec![],
                },
            ],
            details: json!({"passed_cases": 1, "failed_cases": 1}),
        }
    }

    #[test]
    fn json_has_the_common_fields_then_the_details() {
        let v = results().json(1);
        assert_eq!(v["command"], "test");
        assert_eq!(v["passed"], false);
        assert_eq!(v["exit_code"], 1);
        assert_eq!(v["failed_cases"], 1);
        assert_eq!(v["items"][1]["level"], "error");
    }

    #[test]
    fn junit_fails_only_the_error_cases() {
        let x = results().junit();
        assert!(x.contains("tests=\"2\" failures=\"1\""), "{x}");
        assert!(x.contains("expected deny, got allow&#10;next"), "{x}");
    }

    #[test]
    fn github_annotates_all_but_passes() {
        let g = results().github();
        assert_eq!(g.matches("::error").count(), 1, "{g}");
        assert!(g.contains("file=tests/b.json"), "{g}");
        assert!(g.contains("got allow%0Anext"), "{g}");
    }

    #[test]
    fn sarif_has_a_result_per_problem_and_a_rule_per_id() {
        let s = results().sarif();
        assert_eq!(s["version"], "2.1.0");
        assert_eq!(s["runs"][0]["results"].as_array().unwrap().len(), 1);
        assert_eq!(s["runs"][0]["tool"]["driver"]["rules"][0]["id"], "b case");
    }
}
