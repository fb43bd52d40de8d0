//! `stagegate eval DECISION --bundle FILE [--bundle FILE ...] --input FILE|-`
//!
//! Several `--bundle`s decide as a policy set (docs/policy-sets.md).

use std::io::Read;
use std::path::{Path, PathBuf};

use clap::Args;

use super::{CliError, CliResult, Exit, LimitArgs, TrustArgs, open_bundle};
use crate::decision::{self, DecisionKind, RequestErrorKind};
use crate::policy::{ActivePolicy, Decided, Runtime};

#[derive(Debug, Args)]
pub(super) struct EvalArgs {
    /// gate, progression or monitoring
    decision: DecisionKind,
    /// Bundle file (or a policy directory, built unsigned for local work);
    /// repeat it to decide with a policy set of these bundles, in order
    #[arg(long, value_name = "FILE", required = true)]
    bundle: Vec<PathBuf>,
    /// The set's name in the envelope when several bundles are given
    #[arg(long, value_name = "NAME", default_value = "set")]
    set_name: String,
    /// Request JSON (docs/decisions.md#requests); `-` reads standard input
    #[arg(long, value_name = "FILE|-")]
    input: PathBuf,
    #[command(flatten)]
    trust: TrustArgs,
    #[command(flatten)]
    limits: LimitArgs,
}

pub(super) fn run(args: EvalArgs) -> CliResult {
    let decided = evaluate(
        args.decision,
        &args.input,
        &args.bundle,
        &args.set_name,
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
/// (`-` is standard input) and decoded before the bundles are opened,
/// each verified against `trust` when given, and run in the sandbox;
/// several bundles decide as the policy set `set_name`
/// (docs/policy-sets.md). Shared by `eval` and `check --local`, so both
/// answer exactly as the service does.
pub(super) fn evaluate(
    kind: DecisionKind,
    input: &Path,
    bundle_paths: &[PathBuf],
    set_name: &str,
    trust: &TrustArgs,
    limits: &LimitArgs,
) -> Result<Decided, CliError> {
    let body = read_input(input)?;
    // Refuse a bad request before spending time on the bundles.
    let request = decision::decode(kind, &body).map_err(|e| {
        let what = match e.kind {
            RequestErrorKind::Malformed => "malformed request",
            RequestErrorKind::Invalid => "invalid request",
        };
        CliError::bad_input(format!("{}: {what}: {e}", input.display()))
    })?;
    let runtime = Runtime::new(limits.limits()).map_err(|e| CliError::failure(e.to_string()))?;
    let mut policies = Vec::with_capacity(bundle_paths.len());
    for path in bundle_paths {
        let bundle = open_bundle(path)?;
        trust.verify(&bundle)?;
        bundle.manifest.check_wit_compatible()?;
        let policy = ActivePolicy::load(&runtime, &bundle, limits.isolation)
            .map_err(|e| CliError::failure(format!("loading {}: {e}", path.display())))?;
        policies.push(policy);
    }
    Ok(match policies.as_slice() {
        [one] => one.decide(request),
        many => {
            let members: Vec<&ActivePolicy> = many.iter().collect();
            crate::policy::set::decide(set_name, &members, request)
        }
    })
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
