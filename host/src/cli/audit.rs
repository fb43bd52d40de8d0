//! `stagegate audit verify|export`: the auditor's tools, run against the
//! records database directly (the service need not be running).

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::{CliError, CliResult, Exit};
use crate::records::{Records, Store};
use crate::server::config::Config;

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
    /// Recompute the decision log's hash chain; name the first broken entry
    Verify,
    /// Print one deployment's complete record as JSON
    Export {
        /// Deployment id
        deployment: String,
    },
}

pub fn run(args: AuditArgs) -> CliResult {
    let url = match (&args.database, &args.config) {
        (Some(url), _) => url.clone(),
        (None, Some(path)) => Config::load(path)
            .map_err(|e| CliError::bad_input(format!("invalid configuration: {e}")))?
            .database_url(),
        (None, None) => Config::default().database_url(),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::failure(e.to_string()))?;
    rt.block_on(async move {
        let store = Store::open(&url)
            .await
            .map_err(|e| CliError::failure(e.to_string()))?;
        match args.command {
            AuditCommand::Verify => {
                let v = crate::records::chain::verify(&store.pool)
                    .await
                    .map_err(|e| CliError::failure(e.to_string()))?;
                match v.broken {
                    None => {
                        println!(
                            "decision log verified: {} entries, head {} {}",
                            v.entries, v.head_seq, v.head_hash
                        );
                        Ok(Exit::Success)
                    }
                    Some(b) => {
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
                        Ok(Exit::Failure)
                    }
                }
            }
            AuditCommand::Export { deployment } => {
                let log = crate::records::DecisionLog::start(store.clone(), Default::default(), 16);
                let records = Records::new(store, log, false, Config::default().intervals());
                let doc = records
                    .export(&deployment)
                    .await
                    .map_err(|e| CliError::failure(e.to_string()))?;
                println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
                Ok(Exit::Success)
            }
        }
    })
}
