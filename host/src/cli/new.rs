//! `stagegate new policy DIR --lang rust|python`: a policy directory that
//! builds, tests and signs as it stands (docs/policies-rust.md and
//! docs/policies-python.md), with one example rule and its test cases
//! to replace.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand, ValueEnum};

use super::{CliError, CliResult, Exit};

#[derive(Debug, Args)]
pub(super) struct NewArgs {
    #[command(subcommand)]
    what: What,
}

#[derive(Debug, Subcommand)]
enum What {
    /// Scaffold a policy directory
    Policy(PolicyArgs),
}

#[derive(Debug, Args)]
struct PolicyArgs {
    /// The directory to create (must not exist, or be empty)
    dir: PathBuf,
    /// The policy's language
    #[arg(long, value_enum, default_value_t = Lang::Rust)]
    lang: Lang,
    /// The bundle name (default: the directory's name)
    #[arg(long)]
    name: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Lang {
    Rust,
    Python,
}

const PARAMS: &str = r#"{
  "max_first_stage_percent": { "low": 100, "medium": 25, "high": 5, "critical": 1 }
}
"#;

const CONTROLS: &str = r#"{
  "map": {
    "example.": ["ISO/IEC 42001:2023 A.6.2.5"]
  }
}
"#;

const TESTS: &str = r#"[
  {
    "name": "a first stage within the tier's limit is allowed",
    "decision": "gate",
    "input": {
      "now": "2026-11-26T12:00:00Z",
      "system": { "id": "example", "risk_tier": "high" },
      "plan": { "stages": [ { "name": "pilot", "traffic_percent": 5 }, { "name": "all", "traffic_percent": 100 } ] }
    },
    "expect": { "outcome": "allow", "absent_codes": ["example.first_stage_too_wide"] }
  },
  {
    "name": "a first stage wider than the tier's limit is denied",
    "decision": "gate",
    "input": {
      "now": "2026-11-26T12:00:00Z",
      "system": { "id": "example", "risk_tier": "critical" },
      "plan": { "stages": [ { "name": "pilot", "traffic_percent": 5 }, { "name": "all", "traffic_percent": 100 } ] }
    },
    "expect": { "outcome": "deny", "codes": ["example.first_stage_too_wide"] }
  },
  {
    "name": "the limit is a parameter",
    "decision": "gate",
    "params": { "max_first_stage_percent": { "low": 100, "medium": 25, "high": 5, "critical": 5 } },
    "input": {
      "now": "2026-11-26T12:00:00Z",
      "system": { "id": "example", "risk_tier": "critical" },
      "plan": { "stages": [ { "name": "pilot", "traffic_percent": 5 }, { "name": "all", "traffic_percent": 100 } ] }
    },
    "expect": { "outcome": "allow" }
  }
]
"#;

const PYTHON: &str = r#""""An example rule to replace: the first stage may expose at most the
risk tier's `max_first_stage_percent` of traffic. Decisions this policy
does not override answer positively (progression: promote, monitoring:
healthy); see docs/policies-python.md in the stagegate repository."""

from stagegate_policy import PerTier, Policy


class Evaluate(Policy):
    def check_params(self, params):
        PerTier(params["max_first_stage_percent"], "max_first_stage_percent")

    def decide_gate(self, request, f):
        limit = PerTier(self.params["max_first_stage_percent"]).get(request.system.risk_tier)
        stages = request.plan.stages if request.plan else []
        if stages and (stages[0].traffic_percent or 0) > limit:
            f.block(
                "example.first_stage_too_wide",
                "/plan/stages/0/traffic_percent",
                f"the first stage exposes {stages[0].traffic_percent:g} % of traffic; "
                f"at this risk tier at most {limit:g} %",
            )
        first = stages[0].name if stages else None
        return f.into_gate(first)
"#;

const RUST: &str = r#"//! An example rule to replace: the first stage may expose at most the
//! risk tier's `max_first_stage_percent` of traffic. See
//! docs/policies-rust.md in the stagegate repository.

use std::cell::RefCell;

use stagegate_sdk::{
    Findings, GateDecision, GateRequest, Guest, MonitoringDecision, MonitoringOutcome,
    MonitoringRequest, PerTier, ProgressionDecision, ProgressionOutcome, ProgressionRequest,
};

thread_local! {
    static LIMIT: RefCell<Option<PerTier<f64>>> = const { RefCell::new(None) };
}

pub struct Example;

impl Guest for Example {
    fn configure(params: String) -> Result<(), String> {
        let v: serde_json::Value =
            serde_json::from_str(&params).map_err(|e| format!("params.json: {e}"))?;
        let limit = serde_json::from_value::<PerTier<f64>>(v["max_first_stage_percent"].clone())
            .map_err(|e| format!("params.json: max_first_stage_percent: {e}"))?;
        LIMIT.with(|l| *l.borrow_mut() = Some(limit));
        Ok(())
    }

    fn gate(request: GateRequest) -> Result<GateDecision, String> {
        let limit = LIMIT.with(|l| l.borrow().as_ref().map(|t| *t.get(request.system.risk_tier)));
        let limit = limit.ok_or("not configured")?;
        let mut f = Findings::new();
        let stages = request.plan.as_ref().map(|p| p.stages.as_slice()).unwrap_or(&[]);
        if let Some(first) = stages.first()
            && first.traffic_percent.unwrap_or(0.0) > limit
        {
            f.block(
                "example.first_stage_too_wide",
                "/plan/stages/0/traffic_percent",
                format!(
                    "the first stage exposes {} % of traffic; at this risk tier at most {limit} %",
                    first.traffic_percent.unwrap_or(0.0)
                ),
            );
        }
        Ok(f.into_gate(stages.first().and_then(|s| s.name.clone())))
    }

    fn progression(request: ProgressionRequest) -> Result<ProgressionDecision, String> {
        let pct = request
            .plan
            .stages
            .iter()
            .find(|s| s.name.as_deref() == Some(request.target_stage.as_str()))
            .and_then(|s| s.traffic_percent);
        Ok(Findings::new().into_progression(
            ProgressionOutcome::Promote,
            Some(request.target_stage),
            pct,
            None,
        ))
    }

    fn monitoring(_request: MonitoringRequest) -> Result<MonitoringDecision, String> {
        Ok(Findings::new().into_monitoring(MonitoringOutcome::Healthy))
    }
}

#[cfg(target_arch = "wasm32")]
stagegate_sdk::export_policy!(Example);
"#;

pub(super) fn run(args: NewArgs) -> CliResult {
    let What::Policy(args) = args.what;
    let name = match &args.name {
        Some(n) => n.clone(),
        None => args
            .dir
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_ascii_lowercase(),
    };
    crate::bundle::manifest::check_name(&name).map_err(|e| {
        CliError::bad_input(format!("bundle name '{name}' (from --name or DIR): {e}"))
    })?;
    if args.dir.exists()
        && std::fs::read_dir(&args.dir)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        return Err(CliError::bad_input(format!(
            "{} exists and is not empty; name a new directory",
            args.dir.display()
        )));
    }
    let mut files: Vec<(&str, String)> = vec![
        ("params.json", PARAMS.into()),
        ("controls.json", CONTROLS.into()),
        ("tests/gate.json", TESTS.into()),
    ];
    match args.lang {
        Lang::Python => {
            files.push((
                "bundle.toml",
                format!(
                    "name = \"{name}\"\nversion = \"0.1.0\"\ndescription = \"\"\n\n[component]\n# Built with componentize-py ({}) by `stagegate build`.\npython = \"policy.py\"\n",
                    crate::bundle::source::python::INSTALL
                ),
            ));
            files.push(("policy.py", PYTHON.into()));
        }
        Lang::Rust => {
            let sdk = sdk_path();
            files.push((
                "bundle.toml",
                format!(
                    "name = \"{name}\"\nversion = \"0.1.0\"\ndescription = \"\"\n\n[component]\n# Built with `cargo build --target wasm32-wasip2 --profile policy`.\ncrate = \".\"\nprofile = \"policy\"\n"
                ),
            ));
            files.push((
                "Cargo.toml",
                format!(
                    "[package]\nname = \"{crate_name}\"\nversion = \"0.1.0\"\nedition = \"2024\"\npublish = false\n\n[lib]\ncrate-type = [\"cdylib\", \"rlib\"]\n\n[dependencies]\nstagegate-sdk = {{ path = {sdk:?} }}\nserde_json = \"1\"\n\n# A workspace of its own, wherever it is created.\n[workspace]\n\n[profile.policy]\ninherits = \"release\"\nopt-level = 3\nlto = true\ncodegen-units = 1\nstrip = true\npanic = \"abort\"\n",
                    crate_name = name.replace(['.', '-'], "_"),
                    sdk = sdk.display().to_string(),
                ),
            ));
            files.push(("src/lib.rs", RUST.into()));
        }
    }
    for (rel, text) in &files {
        let path = args.dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| CliError::failure(format!("{}: {e}", parent.display())))?;
        }
        std::fs::write(&path, text)
            .map_err(|e| CliError::failure(format!("{}: {e}", path.display())))?;
    }
    println!(
        "created {} ({} policy '{name}'); next: stagegate test {0}",
        args.dir.display(),
        match args.lang {
            Lang::Rust => "Rust",
            Lang::Python => "Python",
        }
    );
    Ok(Exit::Success)
}

/// The Rust SDK of the repository this binary was built from.
fn sdk_path() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let sdk = here.join("../guest/sdk");
    sdk.canonicalize().unwrap_or(sdk)
}
