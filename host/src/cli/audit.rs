//! `stagegate audit verify|export`: the auditor's tools, run against the
//! records database directly (the service need not be running).

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};

use super::{CliError, CliResult, Exit};
use crate::bundle::{ArchiveLimits, Bundle};
use crate::config::Config;
use crate::decision::Controls;
use crate::records::checkpoint::Checkpoint;
use crate::records::{Records, Store, chain, leaves, merkle, oscal, tree, witness};

#[derive(Debug, Args)]
pub(super) struct AuditArgs {
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
    /// Recompute the decision log's hash chain, each entry's leaf in its
    /// Merkle tree and every record row's digest; check that the tree
    /// extends the service's last signed checkpoint (DATA_DIR/log/
    /// last-checkpoint) by a consistency proof; name the first broken
    /// entry and every altered, inserted or deleted row
    Verify {
        /// A signed checkpoint (from `GET /v1/log/checkpoint`) the log must
        /// extend, instead of the service's last one: a rewritten or
        /// rewound history no longer does
        #[arg(long, value_name = "FILE", requires = "key")]
        checkpoint: Option<PathBuf>,
        /// The checkpoint key: its public half as PEM
        /// (`DATA_DIR/log/checkpoint.pub`), or the signed-note verifier
        /// key (`verifier_key` of `GET /v1/log/key`), as a file or inline
        #[arg(long, value_name = "FILE|VKEY")]
        key: Option<String>,
        /// A witness's cosignature/v1 verifier key (file or inline) whose
        /// cosignature on `--checkpoint` counts; repeatable
        #[arg(long, value_name = "FILE|VKEY", requires = "checkpoint")]
        witness: Vec<String>,
        /// How many of the `--witness` keys must have cosigned
        #[arg(long, value_name = "K", default_value_t = 0)]
        min_witnesses: usize,
        /// Also recompute every interior node of the tree
        #[arg(long)]
        full: bool,
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

pub(super) fn run(args: AuditArgs) -> CliResult {
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
            AuditCommand::Verify {
                checkpoint,
                key,
                witness,
                min_witnesses,
                full,
            } => {
                let checkpoint = match checkpoint {
                    Some(file) => Some(open_checkpoint(
                        &file,
                        key.as_deref().unwrap_or_default(),
                        &witness,
                        min_witnesses,
                    )?),
                    None => last_checkpoint(config.as_ref(), key.as_deref())?,
                };
                verify(&store, checkpoint, full).await
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

/// A checkpoint key: a PEM file, or a signed-note verifier key in a file
/// or inline.
fn checkpoint_key(arg: &str) -> Result<ed25519_dalek::VerifyingKey, CliError> {
    let path = Path::new(arg);
    let text = if path.is_file() {
        std::fs::read_to_string(path)
            .map_err(|e| CliError::bad_input(format!("{}: {e}", path.display())))?
    } else {
        arg.to_string()
    };
    if text.contains("-----BEGIN") {
        return crate::bundle::keys::load_public(path)
            .map_err(|e| CliError::bad_input(e.to_string()));
    }
    let k = witness::parse_verifier_key(&text)
        .map_err(|e| CliError::bad_input(format!("--key {arg}: {e}")))?;
    if k.kind != witness::ED25519 {
        return Err(CliError::bad_input(format!(
            "--key {arg}: not a log key (type 0x01)"
        )));
    }
    Ok(k.key)
}

/// Reads and checks a signed checkpoint against its key, and its
/// witnesses' cosignatures.
fn open_checkpoint(
    file: &Path,
    key: &str,
    witnesses: &[String],
    min_witnesses: usize,
) -> Result<Checkpoint, CliError> {
    let note = std::fs::read_to_string(file)
        .map_err(|e| CliError::bad_input(format!("{}: {e}", file.display())))?;
    let key = checkpoint_key(key)?;
    let cp = Checkpoint::open(&note, &key)
        .map_err(|e| CliError::bad_input(format!("{}: {e}", file.display())))?;
    if min_witnesses > witnesses.len() {
        return Err(CliError::bad_input(format!(
            "--min-witnesses {min_witnesses} is more than the {} --witness keys given",
            witnesses.len()
        )));
    }
    let mut cosigned = 0;
    for w in witnesses {
        let text = match Path::new(w).is_file() {
            true => {
                std::fs::read_to_string(w).map_err(|e| CliError::bad_input(format!("{w}: {e}")))?
            }
            false => w.clone(),
        };
        let k = witness::parse_verifier_key(&text)
            .map_err(|e| CliError::bad_input(format!("--witness {w}: {e}")))?;
        match witness::verify_cosignature(&note, &k) {
            Ok(t) => {
                cosigned += 1;
                println!(
                    "witness {} cosigned the checkpoint at {t} (unix seconds)",
                    k.name
                );
            }
            Err(e) => println!("witness {}: {e}", k.name),
        }
    }
    if cosigned < min_witnesses {
        return Err(CliError::failure(format!(
            "checkpoint NOT WITNESSED: {cosigned} of the required {min_witnesses} witnesses cosigned {}",
            file.display()
        )));
    }
    Ok(cp)
}

/// Without `--checkpoint`: the service's last signed checkpoint, kept
/// outside the database beside its key (`records.checkpoint_key`), if
/// there is one.
fn last_checkpoint(
    config: Option<&Config>,
    key: Option<&str>,
) -> Result<Option<Checkpoint>, CliError> {
    let default = Config::default();
    let config = config.unwrap_or(&default);
    let key_path = config.checkpoint_key();
    let file = crate::records::last::path_beside(&key_path);
    if !file.exists() {
        println!(
            "no last signed checkpoint at {}: the log's extension is not checked (pass --checkpoint FILE --key KEY)",
            file.display()
        );
        return Ok(None);
    }
    let public = match key {
        Some(k) => k.to_string(),
        None => crate::bundle::keys::public_path(&key_path)
            .display()
            .to_string(),
    };
    open_checkpoint(&file, &public, &[], 0).map(Some)
}

/// Everything `audit verify` checks, reported line by line; exit 1 on the
/// first kind of problem found.
async fn verify(store: &Store, checkpoint: Option<Checkpoint>, full: bool) -> CliResult {
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
    let size = v.head_seq.max(0) as u64;
    let from = checkpoint.as_ref().map_or(0, |cp| cp.seq.max(0) as u64);
    let leaves = leaves::verify_leaves(&store.pool, from)
        .await
        .map_err(failed)?;
    match &leaves.broken {
        None => println!("tree verified: every entry is its leaf in the Merkle tree"),
        Some((seq, reason)) => {
            ok = false;
            println!("tree BROKEN at entry {seq}: {reason}");
        }
    }
    // The stored subtrees serve everyone's proofs: their root must be the
    // one the entries themselves give.
    let stored_root = tree::root(&store.pool, size).await.map_err(failed)?;
    if stored_root != leaves.root {
        ok = false;
        println!(
            "tree BROKEN: the stored subtrees' root is not the entries' root: the tree was altered (audit verify --full names the subtree)"
        );
    }
    if full {
        match tree::verify_nodes(&store.pool, size)
            .await
            .map_err(failed)?
        {
            None => println!("tree fully recomputed: every stored subtree matches its leaves"),
            Some(reason) => {
                ok = false;
                println!("tree BROKEN: {reason}");
            }
        }
    }
    if let Some(cp) = checkpoint {
        let signed: Option<[u8; 32]> = hex::decode(&cp.hash).ok().and_then(|b| b.try_into().ok());
        let result = match (signed, leaves.root_at) {
            (None, _) => Err("the checkpoint's root is not 32 bytes".to_string()),
            (Some(_), None) => Err(format!(
                "the log holds {size} entries, fewer than the {from} it held: entries were removed"
            )),
            (Some(first), Some(recomputed)) if recomputed != first => Err(format!(
                "its first {from} entries no longer hash to the signed root: history was rewritten"
            )),
            (Some(first), Some(_)) => {
                // And the tree everyone else is served proves it too.
                let proof = tree::compute(&store.pool, &merkle::consistency_plan(from, size))
                    .await
                    .map_err(failed)?;
                if from == 0 {
                    Ok(())
                } else {
                    merkle::verify_consistency(from, size, &first, &stored_root, &proof)
                        .map_err(|e| format!("the served consistency proof fails: {e}"))
                }
            }
        };
        match result {
            Ok(()) => println!(
                "checkpoint verified: the log of {size} entries extends the checkpoint of {} entries signed at {} ({}), by a consistency proof",
                cp.seq, cp.at, cp.origin
            ),
            Err(reason) => {
                ok = false;
                println!(
                    "checkpoint NOT EXTENDED: the log does not extend the checkpoint of {} entries signed at {}: {reason}",
                    cp.seq, cp.at
                );
            }
        }
    }
    Ok(if ok { Exit::Success } else { Exit::Failure })
}
