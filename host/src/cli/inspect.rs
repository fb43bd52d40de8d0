//! `stagegate inspect FILE`

use std::path::PathBuf;

use clap::Args;

use super::{CliResult, Exit};
use crate::bundle::{ArchiveLimits, Bundle, TrustStore};

#[derive(Debug, Args)]
pub(super) struct InspectArgs {
    /// Bundle file
    file: PathBuf,
    /// Name signers by their key file in this trust store
    #[arg(long, value_name = "DIR")]
    trust: Option<PathBuf>,
    /// Print JSON instead of text
    #[arg(long)]
    json: bool,
}

pub(super) fn run(args: InspectArgs) -> CliResult {
    let bundle = Bundle::read(&args.file, &ArchiveLimits::default())?;
    let trust = args.trust.as_deref().map(TrustStore::load).transpose()?;
    let m = &bundle.manifest;
    let signers: Vec<serde_json::Value> = bundle
        .signatures
        .signatures
        .iter()
        .map(|s| {
            let name = trust
                .as_ref()
                .and_then(|t| t.keys.get(&s.key_id))
                .map(|k| k.name.clone());
            serde_json::json!({ "key_id": s.key_id, "algorithm": s.algorithm, "trusted_as": name })
        })
        .collect();
    let wit_ok = m.check_wit_compatible().map_err(|e| e.to_string());
    if args.json {
        let doc = serde_json::json!({
            "manifest": m,
            "digest": bundle.digest(),
            "signatures": signers,
            "wit_compatible": wit_ok.is_ok(),
        });
        println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
        return Ok(Exit::Success);
    }
    println!("bundle      {} {}", m.name, m.version);
    if let Some(d) = &m.description {
        println!("description {d}");
    }
    println!("digest      {}", bundle.digest());
    match &wit_ok {
        Ok(()) => println!("wit world   {} (runs on this host)", m.wit),
        Err(e) => println!("wit world   {} (NOT runnable here: {e})", m.wit),
    }
    println!("files");
    for f in &m.files {
        println!("  {:<16} {:>9} bytes  sha256:{}", f.path, f.size, f.sha256);
    }
    println!("signatures  {}", signers.len());
    for s in &bundle.signatures.signatures {
        let name = trust
            .as_ref()
            .and_then(|t| t.keys.get(&s.key_id))
            .map(|k| format!("trusted as '{}'", k.name))
            .unwrap_or_else(|| "not in trust store".into());
        println!("  {} {} ({name})", s.algorithm, s.key_id);
    }
    Ok(Exit::Success)
}
