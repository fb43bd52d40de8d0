//! `stagegate audit verify|export`: the auditor's tools, run against the
//! records database directly (the service need not be running).

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};

use super::{CliError, CliResult, Exit};
use crate::bundle::{ArchiveLimits, Bundle};
use crate::config::Config;
use crate::decision::Controls;
use crate::records::checkpoint::Checkpoint;
use crate::records::{Records, Store, chain, oscal};

#[derive(Debug, Args)]
pub struct AuditArgs {
    #[command(subcommand)]
    command: AuditCommand,
    /// Records database URL (default: the configuration's, else sqlite://data/stagegate.db)
    #[arg(long, global = true, value_name = "URL")]
    database: Option<String>,
    /// Service configuration to take the database from
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Recompute the decision log's hash chain and every record row's
    /// digest; name the first broken entry and every altered, inserted or
    /// deleted row
    Verify {
        /// A signed checkpoint (from `GET /v1/log/checkpoint`) the log must
        /// still extend: a rewritten history, even with recomputed hashes,
        /// no longer holds the checkpointed entry
        #[arg(long, value_name = "FILE", requires = "key")]
        checkpoint: Option<PathBuf>,
        /// The checkpoint key's public half (PEM; `DATA_DIR/log/checkpoint.pub`
        /// or `GET /v1/log/key`)
        #[arg(long, value_name = "FILE", requires = "checkpoint")]
        key: Option<PathBuf>,
    },
    /// Print one deployment's complete record as JSON, or as OSCAL
    /// assessment results (docs/oscal.md)
    Export {
        /// Deployment id
        deployment: String,
        /// `json` (stagegate's record) or `oscal` (OSCAL assessment results)
        #[arg(long, value_enum, default_value_t = ExportFormat::Json)]
        format: ExportFormat,
        /// For `--format oscal`: the bundle file, or policy directory, whose
        /// controls.json the findings are judged by (default: the `--config`
        /// bundle that decided the deployment)
        #[arg(long, value_name = "FILE|DIR")]
        bundle: Option<PathBuf>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ExportFormat {
    Json,
    Oscal,
}

pub fn run(args: AuditArgs) -> CliResult {
    let config = match &args.config {
        Some(path) => Some(
            Config::load(path)
                .map_err(|e| CliError::bad_input(format!("invalid configuration: {e}")))?,
        ),
        None => None,
    };
    let url = match (&args.database, &config) {
        (Some(url), _) => url.clone(),
        (None, Some(config)) => config.database_url(),
        (None, None) => Config::default().database_url(),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::failure(e.to_string()))?;
    rt.block_on(async move {
        let store = crate::records::open_store(&url)
            .await
            .map_err(|e| CliError::failure(e.to_string()))?;
        match args.command {
            AuditCommand::Verify { checkpoint, key } => {
                let checkpoint = match (checkpoint, key) {
                    (Some(file), Some(key)) => Some(open_checkpoint(&file, &key)?),
                    _ => None,
                };
                verify(&store, checkpoint).await
            }
            AuditCommand::Export {
                deployment,
                format,
                bundle,
            } => {
                // Read a named control map before touching the records: a
                // bad bundle is the caller's mistake.
                let named = match (format, &bundle) {
                    (ExportFormat::Oscal, Some(path)) => Some(controls_of(path)?),
                    _ => None,
                };
                let log = crate::records::DecisionLog::start(store.clone(), Default::default(), 16);
                let records = Records::new(store, log, false, Config::default().intervals());
                let failed = |e: crate::records::RecordError| CliError::failure(e.to_string());
                match format {
                    ExportFormat::Json => {
                        let doc = records.export(&deployment).await.map_err(failed)?;
                        println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
                    }
                    ExportFormat::Oscal => {
                        let evidence = records.oscal_evidence(&deployment).await.map_err(failed)?;
                        let controls = match named {
                            Some(controls) => controls,
                            None => configured_controls(config.as_ref(), &evidence)?,
                        };
                        let doc = oscal::document(&evidence, &controls);
                        let bytes =
                            oscal::to_bytes(&doc).map_err(|e| CliError::failure(e.to_string()))?;
                        use std::io::Write;
                        std::io::stdout()
                            .write_all(&bytes)
                            .map_err(|e| CliError::failure(format!("writing the export: {e}")))?;
                    }
                }
                Ok(Exit::Success)
            }
        }
    })
}

/// Without `--bundle`: the control map of the configured bundle that
/// decided the deployment (`[[bundles]]` of `--config` with its name): its
/// `file`, its `build` directory, or the bundle in its `dir` whose digest
/// the decisions recorded.
fn configured_controls(
    config: Option<&Config>,
    evidence: &oscal::Evidence,
) -> Result<Controls, CliError> {
    let need = |why: String| {
        CliError::bad_input(format!(
            "--format oscal needs --bundle FILE|DIR (the bundle or policy directory whose controls.json the findings are judged by): {why}"
        ))
    };
    let Some(decided) = evidence.export.decisions.first().map(|c| &c.entry) else {
        // Nothing was decided: no control map matters, every control is
        // unassessed. Use none rather than guess one.
        return Ok(Controls::default());
    };
    let Some(config) = config else {
        return Err(need(format!(
            "no --config names bundle '{}' that decided the deployment",
            decided.bundle
        )));
    };
    let Some(b) = config.bundles.iter().find(|b| b.name == decided.bundle) else {
        return Err(need(format!(
            "the configuration has no [[bundles]] entry named '{}', the bundle that decided the deployment",
            decided.bundle
        )));
    };
    if let Some(file) = &b.file {
        return controls_of(file);
    }
    if let Some(dir) = &b.build {
        return controls_of(dir);
    }
    if let Some(dir) = &b.dir {
        let entries = std::fs::read_dir(dir)
            .map_err(|e| CliError::bad_input(format!("{}: {e}", dir.display())))?;
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "bundle")
                && let Ok(bundle) = Bundle::read(&path, &ArchiveLimits::default())
                && bundle.digest() == decided.bundle_digest
            {
                return bundle
                    .controls()
                    .map_err(|e| CliError::bad_input(format!("bundle {}: {e}", path.display())));
            }
        }
        return Err(need(format!(
            "no bundle in {} has the digest {} the decisions recorded",
            dir.display(),
            decided.bundle_digest
        )));
    }
    Err(need(format!("bundle '{}' has no source", decided.bundle)))
}

/// The control map of a bundle file, or of a policy directory's
/// `controls.json` (none there: an empty map), without building anything.
fn controls_of(path: &Path) -> Result<Controls, CliError> {
    if path.is_dir() {
        let file = path.join("controls.json");
        match std::fs::read(&file) {
            Ok(bytes) => Controls::parse(&bytes)
                .map_err(|e| CliError::bad_input(format!("{}: {e}", file.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Controls::default()),
            Err(e) => Err(CliError::bad_input(format!("{}: {e}", file.display()))),
        }
    } else {
        let bundle = Bundle::read(path, &ArchiveLimits::default())
            .map_err(|e| CliError::bad_input(format!("bundle {}: {e}", path.display())))?;
        bundle
            .controls()
            .map_err(|e| CliError::bad_input(format!("bundle {}: {e}", path.display())))
    }
}

/// Reads and checks a signed checkpoint against its key.
fn open_checkpoint(file: &Path, key: &Path) -> Result<Checkpoint, CliError> {
    let note = std::fs::read_to_string(file)
        .map_err(|e| CliError::bad_input(format!("{}: {e}", file.display())))?;
    let key =
        crate::bundle::keys::load_public(key).map_err(|e| CliError::bad_input(e.to_string()))?;
    Checkpoint::open(&note, &key)
        .map_err(|e| CliError::bad_input(format!("{}: {e}", file.display())))
}

/// Everything `audit verify` checks, reported line by line; exit 1 on the
/// first kind of problem found.
async fn verify(store: &Store, checkpoint: Option<Checkpoint>) -> CliResult {
    let failed = |e: crate::records::StoreError| CliError::failure(e.to_string());
    let v = chain::verify(&store.pool).await.map_err(failed)?;
    let mut ok = true;
    match &v.broken {
        None => println!(
            "decision log verified: {} entries, head {} {}",
            v.entries, v.head_seq, v.head_hash
        ),
        Some(b) => {
            ok = false;
            println!(
                "decision log BROKEN at entry {} (decision {}): {}",
                b.seq,
                if b.decision_id.is_empty() {
                    "-"
                } else {
                    &b.decision_id
                },
                b.reason
            );
        }
    }
    let tampered = crate::records::ledger::verify(&store.pool)
        .await
        .map_err(failed)?;
    if tampered.is_empty() {
        println!("records verified: every row matches the digest the chain commits to");
    } else {
        ok = false;
        for t in &tampered {
            println!("record TAMPERED: {} {}: {}", t.table, t.id, t.reason);
        }
    }
    if let Some(cp) = checkpoint {
        let stored = chain::hash_at(&store.pool, cp.seq).await.map_err(failed)?;
        let expected = (cp.seq == 0).then(|| "genesis".to_string());
        match stored.or(expected) {
            Some(h) if h == cp.hash => println!(
                "checkpoint verified: the log still holds entry {} as signed at {} ({})",
                cp.seq, cp.at, cp.origin
            ),
            Some(h) => {
                ok = false;
                println!(
                    "checkpoint NOT EXTENDED: entry {} has hash {h}, but the checkpoint signed at {} says {}: history was rewritten",
                    cp.seq, cp.at, cp.hash
                );
            }
            None => {
                ok = false;
                println!(
                    "checkpoint NOT EXTENDED: the log no longer holds entry {} signed at {}: entries were removed",
                    cp.seq, cp.at
                );
            }
        }
    }
    Ok(if ok { Exit::Success } else { Exit::Failure })
}
