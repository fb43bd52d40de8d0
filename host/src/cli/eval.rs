//! `stagegate eval DECISION --bundle FILE --input FILE|-`

use std::io::Read;
use std::path::{Path, PathBuf};

use clap::Args;

use super::{CliError, CliResult, Exit, LimitArgs, TrustArgs, open_bundle};
use crate::decision::{self, DecisionKind, RequestErrorKind};
use crate::policy::{ActivePolicy, Decided, Runtime};

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// gate, progression or monitoring
    decision: DecisionKind,
    /// Bundle file (or a policy directory, built unsigned for local work)
    #[arg(long, value_name = "FILE")]
    bundle: PathBuf,
    /// Request JSON (docs/decisions.md#requests); `-` reads standard input
    #[arg(long, value_name = "FILE|-")]
    input: PathBuf,
    #[command(flatten)]
    trust: TrustArgs,
    #[command(flatten)]
    limits: LimitArgs,
}

pub fn run(args: EvalArgs) -> CliResult {
    let decided = evaluate(
        args.decision,
        &args.input,
        &args.bundle,
        &args.trust,
        &args.limits,
    )?;
    let json = serde_json::to_string_pretty(&decided.envelope)
        .map_err(|e| CliError::failure(format!("encoding the decision: {e}")))?;
    println!("{json}");
    match decided.error {
        Some(e) => {
            eprintln!(
                "error: the policy failed ({}): {e}; the decision above fails closed",
                e.cause()
            );
            Ok(Exit::PolicyError)
        }
        None => Ok(Exit::Success),
    }
}

/// One decision evaluated in this process: the request read from `input`
/// (`-` is standard input) and decoded before the bundle is opened,
/// verified against `trust` when given, and run in the sandbox. Shared by
/// `eval` and `check --local`, so both answer exactly as the service does.
pub(super) fn evaluate(
    kind: DecisionKind,
    input: &Path,
    bundle_path: &Path,
    trust: &TrustArgs,
    limits: &LimitArgs,
) -> Result<Decided, CliError> {
    let body = read_input(input)?;
    // Refuse a bad request before spending time on the bundle.
    let request = decision::decode(kind, &body).map_err(|e| {
        let what = match e.kind {
            RequestErrorKind::Malformed => "malformed request",
            RequestErrorKind::Invalid => "invalid request",
        };
        CliError::bad_input(format!("{}: {what}: {e}", input.display()))
    })?;
    let bundle = open_bundle(bundle_path)?;
    trust.verify(&bundle)?;
    bundle.manifest.check_wit_compatible()?;
    let runtime = Runtime::new(limits.limits()).map_err(|e| CliError::failure(e.to_string()))?;
    let policy = ActivePolicy::load(&runtime, &bundle, limits.isolation)
        .map_err(|e| CliError::failure(format!("loading {}: {e}", bundle_path.display())))?;
    Ok(policy.decide(request))
}

pub(super) fn read_input(path: &Path) -> Result<Vec<u8>, CliError> {
    let mut body = Vec::new();
    if path.as_os_str() == "-" {
        std::io::stdin()
            .read_to_end(&mut body)
            .map_err(|e| CliError::bad_input(format!("reading standard input: {e}")))?;
    } else {
        body = std::fs::read(path)
            .map_err(|e| CliError::bad_input(format!("input {}: {e}", path.display())))?;
    }
    Ok(body)
}
